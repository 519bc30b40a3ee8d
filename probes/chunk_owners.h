/* erofs-top: the owner slots of a 64-page chunk, shared by filemap.c (pages
 * keyed by (dev, ino)) and ishare.c (shared inodes, keyed by mapping).
 *
 * A chunk entry holds up to MAX_OWNERS (cgroup id, page mask) slots and a mask
 * of pages whose inserting cgroup did not fit (reported as cgroup 0).  The
 * callers find or create the map entry; these helpers only touch its slots,
 * with atomics, since several CPUs may insert into one chunk at once.
 */
#ifndef EROFS_TOP_CHUNK_OWNERS_H
#define EROFS_TOP_CHUNK_OWNERS_H

#define MAX_OWNERS 4

/* Mark mask as inserted by cg.  Returns the pages that went to *other because
 * every slot belongs to another cgroup with pages still resident (0 if none). */
static __always_inline u64 owners_claim(u64 *cgid, u64 *bits, u64 *other, u64 cg, u64 mask)
{
    /* pages re-inserted after an eviction: drop them from the unknown mask */
    if (*other & mask)
        __sync_fetch_and_and(other, ~mask);
#pragma unroll
    for (int s = 0; s < MAX_OWNERS; s++) {
        u64 c = cgid[s];
        if (c == cg) {
            __sync_fetch_and_or(&bits[s], mask);
            return 0;
        }
        /* free slot, or a slot whose pages were all evicted: claim it */
        if (c == 0 || bits[s] == 0) {
            if (__sync_val_compare_and_swap(&cgid[s], c, cg) == c) {
                __sync_fetch_and_or(&bits[s], mask);
                return 0;
            }
        }
    }
    __sync_fetch_and_or(other, mask);
    return mask;
}

/* Clear mask.  hits[s] gets the pages cleared from slot s, hits[MAX_OWNERS]
 * those cleared from *other; returns every page cleared. */
static __always_inline u64 owners_release(u64 *cgid, u64 *bits, u64 *other, u64 mask, u64 *hits)
{
    u64 seen = 0;
#pragma unroll
    for (int s = 0; s < MAX_OWNERS; s++) {
        u64 hit = bits[s] & mask;
        if (hit)
            __sync_fetch_and_and(&bits[s], ~hit);
        hits[s] = hit;
        seen |= hit;
    }
    u64 hit = *other & mask;
    if (hit)
        __sync_fetch_and_and(other, ~hit);
    hits[MAX_OWNERS] = hit;
    return seen | hit;
}

#endif
