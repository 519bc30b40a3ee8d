/* erofs-top, tracepoint tier: which EROFS pages are resident, who inserted them.
 *
 * Hooks (tracepoints only: no kprobes, no kernel struct reads, so this runs
 * under lockdown=confidentiality and on kernels without a matching header tree):
 *   filemap:mm_filemap_add_to_page_cache       every kernel with the `order`
 *   filemap:mm_filemap_delete_from_page_cache  field (large folios, 5.18+)
 *   erofs:erofs_fill_inode   (HAVE_EROFS_FILL_INODE; adds new superblocks to the
 *                             filter at mount time, before user space sees them)
 *   erofs:erofs_readahead    (HAVE_EROFS_READAHEAD; plain files only from 6.16)
 *   erofs:erofs_read_folio   (HAVE_EROFS_READ_FOLIO; 7.2 swapped `uptodate`
 *                             for `order`: neither field is read here)
 * BCC builds the tracepoint argument structs from tracefs at load time, so the
 * 7.1 move of i_ino (u64, first field) needs nothing here.
 *
 * Filter, in the kernel: `watched_devs` holds the s_dev (kernel encoding,
 * major<<20|minor) of every EROFS superblock.  erofs_fill_inode adds new ones
 * at mount time; user space removes the ones whose superblock it found dead
 * (ustat(2)): one unmounted lazily stays watched while it lives.  The image
 * files' own page cache (the double cache of file-backed and loop mounts) is
 * not traced: user space asks cachestat(2) for it at each refresh, so events
 * on the host filesystem cost nothing but the filter.
 * Every event first asks `watched_cache`, a per-CPU direct-mapped cache of
 * watched_devs lookups (hits and misses, 64 slots): most page-cache events on
 * a node are not EROFS, and a hash lookup per event costs more than the whole
 * empty program.  A cached answer holds while `watched_gen` is unchanged:
 * slot 0 is bumped by erofs_fill_inode's own additions, slot 1 by user space
 * after each change it makes to watched_devs, so every change takes effect at
 * once (no expiry, no clock read per event).
 *
 * Maps:
 *   chunks   (dev, ino, page_index/64) -> up to 4 (cgroup id, 64-bit page mask)
 *            + a mask of pages whose owner did not fit + a mask of seeded pages.
 *            One entry per 64 pages of a file that has resident pages.
 *            Preallocated (CHUNK_ENTRIES x ~170 bytes of kernel memory at
 *            load): creating an entry on the insert path then takes one from
 *            a per-CPU free list instead of allocating.
 *   io       (dev, ino, cgroup id) -> evicted pages (and the seeded part of
 *            them), readahead pages, read_folio calls over the run.  Evictions
 *            go to the cgroup that inserted the page (found in `chunks`), not
 *            to the evicting context.  Inserted pages are not counted here:
 *            user space derives them exactly as pages held now (not seeded)
 *            + evicted - evicted that were seeded, which saves a map update
 *            on every insertion.  Preallocated (IO_ENTRIES x ~120 bytes):
 *            readahead and read_folio create these entries.
 *   dirty    keys changed since user space's last read, for reads that cost
 *            what changed (erofs_top/kernel/maps.py DirtyReader): a chunk
 *            entry (pad = DIRTY_CHUNK) or an io entry (pad = DIRTY_IO, chunk =
 *            cgroup id), + DIRTY_ODD when marked in an odd generation.
 *            `read_gen` slot 0 is the read generation; user space bumps it
 *            before each read, reads the map and deletes the keys of the
 *            generation that just ended, so marks made meanwhile (the other
 *            parity) stay and are not lost.  A probe that changes an entry marks it
 *            once per generation: the entry's `dirty_gen` says whether it is
 *            marked already (an array lookup and a compare per event; one hash
 *            insert per entry per read).  The mark is made after the change
 *            (the atomics before it order it on x86), so a drain that finds
 *            the key reads the changed value.  Full map: CNT_DIRTY_OVERFLOW,
 *            and user space reads everything once.  Preallocated.
 *   io_slots per-CPU write-combining buffer in front of `io` (issue 11): IO_SLOTS
 *            direct-mapped slots, each one pending (dev, ino, cgroup id) with
 *            the counts not yet added to `io` and a `busy` flag set while it
 *            changes.  io_acc() adds an event's counts to the slot of its key
 *            (no hash lookup, no atomic, no generation read); a slot holding
 *            another key is first added to `io` (io_add: the lookup, the
 *            atomics, the dirty mark).  The io counts are sums, so the order
 *            in which CPUs add them does not matter.  User space empties every
 *            CPU's slots before it reads the maps: it runs `flush_io_slots` (a
 *            raw tracepoint program that is never attached) on each CPU with
 *            BPF_PROG_TEST_RUN (BPF_F_TEST_RUN_ON_CPU), FLUSH_BATCH slots a
 *            run, which adds them to `io` and marks them dirty; the read then
 *            sees every count made before the flush (erofs_top/kernel/slots.py).
 *            The flush runs in an IPI (hardirq) on that CPU, so it may
 *            interrupt a probe in the middle of a slot update (readahead runs
 *            with interrupts on): it leaves a busy slot and returns 1, and
 *            user space runs it again.  A probe cannot interrupt the flush
 *            (page-cache tracepoints do not fire in hardirq context); if one
 *            ever found a slot busy it would add its counts to `io` directly.
 *            Chunk page state is not buffered this way: a set pending on one
 *            CPU and a clear of the same page on another would be applied
 *            out of order (docs/performance.md).
 *   io_current, io_log  (issue 11: the rare hooks) per CPU (arrays indexed
 *            by CPU number: no pointer to load first), `io_current` is one
 *            line: the file (dev, ino, cgroup id) of this CPU's last EROFS
 *            insertion, the readahead pages and read_folio calls counted for
 *            it since, and the positions of this CPU's part of `io_log`, a
 *            ring of IO_LOG pending (key, readahead pages, read_folio calls).
 *            erofs_readahead and erofs_read_folio come right after the
 *            insertions they read (same task), so their counts go to
 *            io_current, which every insertion touches (in cache), instead
 *            of to an io_slots slot: reading a slot is a cache miss on these
 *            rare hooks (~300 ns, most of their cost, docs/performance.md).
 *            An insertion of another file appends the line's counts to
 *            io_log (stores only, no load of a cold line) and starts the new
 *            file; a read of a file that is not io_current's is appended
 *            too.  A full log (or a CPU >= LOG_CPUS) falls back to io_acc.
 *            User space empties the log and io_current into `io` before it
 *            reads, with `flush_io_log` (run like flush_io_slots, again
 *            while it returns 1).  Same `busy` protocol as io_slots.
 *   big_folio_progs, big_folio_next: the eviction of a large folio (order > 6,
 *            several whole chunks) is cleared one chunk per program run:
 *            the delete program tail-calls `delete_big_folio` (installed by
 *            user space at load, kernel/probes.py), which clears the chunk
 *            `big_folio_next` (per CPU) names and tail-calls itself for the
 *            next one.  A loop over the chunks in the delete program took the
 *            verifier 0.7 s at start-up (784k instructions: the loop's 8
 *            chunk_clear bodies multiplied by the single-chunk path's states);
 *            the two programs take 0.1 s together.  Until the tail call is
 *            installed (or if a call fails) the folio's pages are counted in
 *            CNT_BIG_FOLIO_LOST_PAGES.
 *   counters per-CPU: map update failures, lost pages, owner overflow, ...
 * Record mode (EROFS_TOP_RECORD): additionally one event per hook into the
 * ring buffer `events` (or a perf buffer with USE_PERF_BUFFER).
 */
#include <uapi/linux/ptrace.h>
#include "chunk_owners.h"      /* owners_claim / owners_release, MAX_OWNERS */

/* erofs tracepoint formats name these types; they live in fs/erofs/internal.h */
typedef u64 erofs_nid_t;
typedef u64 erofs_off_t;
typedef u64 erofs_blk_t;

#ifndef CHUNK_ENTRIES
#define CHUNK_ENTRIES 262144
#endif
#ifndef IO_ENTRIES
#define IO_ENTRIES 65536
#endif
#ifndef DIRTY_ENTRIES
#define DIRTY_ENTRIES 65536
#endif
#ifndef IO_SLOTS
#define IO_SLOTS 512                 /* per CPU, a power of two; 0: no slots, io_add per event */
#endif
/* Folios up to order 9 (2 MiB with 4 KiB pages): the page cache's largest
 * (MAX_PAGECACHE_ORDER = PMD order, 9 on x86-64 and 4 KiB-page arm64);
 * larger ones count their pages beyond in CNT_BIG_FOLIO_LOST_PAGES.  The
 * insert path loops over them; the delete path clears one chunk per
 * tail call (delete_big_folio), at most 33 in a chain. */
#ifndef MAX_FOLIO_CHUNKS
#define MAX_FOLIO_CHUNKS 8
#endif
#define DIRTY_CHUNK 0                /* dirty key kinds (struct chunk_key.pad) */
#define DIRTY_IO 1
#define DIRTY_ODD 2                  /* + in the key: marked in an odd generation */

#define KIND_EROFS 1

/* Counters, in the order of erofs_top/kernel/probes.py COUNTERS (lower case,
 * without CNT_); tests/unit/test_probe_contracts.py checks it. */
enum counter {
    CNT_CHUNK_UPDATE_FAILURES = 0,  /* chunks map full: pages not tracked */
    CNT_IO_UPDATE_FAILURES,         /* io map full */
    CNT_OWNER_OVERFLOW_PAGES,       /* pages whose chunk had 4 owners already */
    CNT_BIG_FOLIO_LOST_PAGES,       /* folios beyond MAX_FOLIO_CHUNKS */
    CNT_DELETE_UNTRACKED_PAGES,     /* deletions of pages we never saw inserted */
    CNT_EVENTS_LOST,                /* record mode: ring buffer full */
    CNT_DIRTY_OVERFLOW,             /* dirty map full: user space reads all */
    CNT_MAX,
};

/* Record mode: struct page_event.kind, erofs_top/readings.py EventKind (same
 * names without EV_); kinds 5, 6 and 16+ are not emitted by any probe. */
enum event_kind {
    EV_ADD = 1,
    EV_DELETE = 2,
    EV_READAHEAD = 3,
    EV_READ_FOLIO = 4,
};

struct chunk_key {
    u32 dev;
    u32 pad;
    u64 ino;
    u64 chunk;
};

struct chunk_val {
    u64 cgid[MAX_OWNERS];
    u64 bits[MAX_OWNERS];
    u64 other_bits;     /* resident, owner did not fit in the slots */
    u64 seeded_bits;    /* resident before tracing started (set by user space) */
    u64 dirty_gen;      /* read_gen when last marked dirty (0: never) */
};

struct io_key {
    u32 dev;
    u32 pad;
    u64 ino;
    u64 cgid;
};

struct io_val {
    u64 evicted_pages;
    u64 readahead_pages;
    u64 read_folio_count;
    u64 evicted_seeded_pages;   /* part of evicted_pages that was seeded, not inserted */
    u64 dirty_gen;              /* read_gen when last marked dirty (0: never) */
};

/* a pending io update (io_slots); dev 0: empty; busy while it changes */
struct io_slot {
    u32 dev;
    u32 busy;
    u64 ino;
    u64 cgid;
    u64 evicted_pages;
    u64 readahead_pages;
    u64 read_folio_count;
    u64 evicted_seeded_pages;
};

BPF_HASH(watched_devs, u32, u64, 4096);   /* value: KIND_* bits */
/* preallocated (no BPF_F_NO_PREALLOC): entries are created on the hot path */
BPF_F_TABLE("hash", struct chunk_key, struct chunk_val, chunks, CHUNK_ENTRIES, 0);
BPF_F_TABLE("hash", struct io_key, struct io_val, io, IO_ENTRIES, 0);
BPF_PERCPU_ARRAY(counters, u64, CNT_MAX);
/* value unused (1); preallocated: marks are made on the hot path */
BPF_F_TABLE("hash", struct chunk_key, u8, dirty, DIRTY_ENTRIES, 0);
BPF_ARRAY(read_gen, u64, 1);
BPF_PERCPU_ARRAY(io_slots, struct io_slot, IO_SLOTS > 0 ? IO_SLOTS : 1);
/* the last EROFS insertion's file and its counts since, and this CPU's
 * io_log positions (io_current, see the top); one cache line */
struct io_cur {
    u32 dev;
    u32 busy;
    u64 ino;
    u64 cgid;
    u64 readahead_pages;
    u64 read_folio_count;
    u64 log_head;       /* next entry to write (total appended) */
    u64 log_tail;       /* next entry to empty (total emptied) */
    u64 pad;
};
struct io_logent {
    u32 dev;
    u32 read_folio_count;
    u64 ino;
    u64 cgid;
    u64 readahead_pages;
};
#ifndef LOG_CPUS
#define LOG_CPUS 1                   /* user space passes the possible CPUs */
#endif
#ifndef IO_LOG
#define IO_LOG 1024                  /* entries per CPU, a power of two */
#endif
BPF_ARRAY(io_current, struct io_cur, LOG_CPUS);
BPF_ARRAY(io_log, struct io_logent, LOG_CPUS * IO_LOG);

#ifndef barrier
#define barrier() asm volatile("" ::: "memory")
#endif

/* watched_devs through the per-CPU cache (see the top).  Per-CPU slots need
 * no atomics: tracepoint programs do not nest on a CPU (bpf_prog_active). */
#define WCACHE_SLOTS 64
#define GEN_KERNEL 0                     /* watched_gen slots */
#define GEN_USER 1
struct wcache {
    u32 dev;
    u32 kind;
    u64 gen;        /* (kernel gen & 0xffffffff) | user gen << 32 when filled */
};
BPF_PERCPU_ARRAY(watched_cache, struct wcache, WCACHE_SLOTS);
BPF_ARRAY(watched_gen, u64, 2);

/* The generation is read before watched_devs: a change (update, then bump)
 * that the lookup missed bumps after this read, so the entry is stale at once. */
static __always_inline u64 watched_kind(u32 dev)
{
    u32 slot = (dev ^ (dev >> 7) ^ (dev >> 20)) & (WCACHE_SLOTS - 1);
    u32 ki = GEN_KERNEL, ui = GEN_USER;
    u64 *kgen = watched_gen.lookup(&ki);
    u64 *ugen = watched_gen.lookup(&ui);
    u64 gen = ((kgen ? *kgen : 0) & 0xffffffffULL) | ((ugen ? *ugen : 0) << 32);
    struct wcache *c = watched_cache.lookup(&slot);
    if (c && c->dev == dev && c->gen == gen)
        return c->kind;
    u64 *k = watched_devs.lookup(&dev);
    u64 kind = k ? *k : 0;
    if (c) {
        c->dev = dev;
        c->kind = kind;
        c->gen = gen;
    }
    return kind;
}

static __always_inline void count(int idx, u64 n)
{
    u64 *c = counters.lookup(&idx);
    if (c)
        *c += n;   /* per-CPU slot: no atomic needed */
}

/* the read generation: 0 until user space's first read (a full one), then 1, 2, ... */
#define GEN_UNREAD (~0ULL)           /* struct mark_ctx: not read yet (io_acc reads it) */
static __always_inline u64 current_gen(void)
{
    u32 zero = 0;
    u64 *g = read_gen.lookup(&zero);
    return g ? *g : 0;
}

/* One event's marking: the generation, read once, and the OR of the dirty
 * map updates' errors, counted once at the end (mark_done): no branch per
 * mark, which keeps the verifier's state count of the delete path (up to
 * MAX_FOLIO_CHUNKS x 5 io updates) under its limit. */
struct mark_ctx {
    u64 gen;
    long err;
};

/* key into the dirty map for this generation.  An update, not an insert: an
 * existing key is then no error, and replacing a key of a full preallocated
 * map does not fail (it uses the map's spare element). */
static __always_inline void dirty_insert(u32 dev, u32 kind, u64 ino, u64 x, struct mark_ctx *mc)
{
    struct chunk_key dk = {.dev = dev, .pad = kind | (u32)(mc->gen & 1) << 1, .ino = ino, .chunk = x};
    u8 one = 1;
    mc->err |= dirty.update(&dk, &one);
}

/* after changing an entry: mark it once per generation */
static __always_inline void mark_dirty(u64 *dirty_gen, u32 dev, u32 kind, u64 ino, u64 x,
                                       struct mark_ctx *mc)
{
    if (*dirty_gen == mc->gen)
        return;
    *dirty_gen = mc->gen;
    dirty_insert(dev, kind, ino, x, mc);
}

static __always_inline void mark_done(struct mark_ctx *mc)
{
    if (mc->err)
        count(CNT_DIRTY_OVERFLOW, 1);
}

#ifdef EROFS_TOP_RECORD
struct page_event {
    u64 ts_ns;
    u64 cgroup_id;
    u64 ino;
    u64 index;
    u32 dev;
    u32 nr_pages;
    u32 pid;
    u8 kind;        /* enum event_kind */
    u8 pad[3];
};
#ifdef USE_PERF_BUFFER
BPF_PERF_OUTPUT(events);
#else
BPF_RINGBUF_OUTPUT(events, RINGBUF_PAGES);
#endif

static __always_inline void emit(void *ctx, u8 kind, u32 dev, u64 ino, u64 index, u32 nr, u64 cg)
{
    struct page_event ev = {};
    ev.ts_ns = bpf_ktime_get_ns();
    ev.cgroup_id = cg;
    ev.ino = ino;
    ev.index = index;
    ev.dev = dev;
    ev.nr_pages = nr;
    ev.pid = bpf_get_current_pid_tgid() >> 32;
    ev.kind = kind;
#ifdef USE_PERF_BUFFER
    if (events.perf_submit(ctx, &ev, sizeof(ev)) != 0)
        count(CNT_EVENTS_LOST, 1);
#else
    if (events.ringbuf_output(&ev, sizeof(ev), 0) != 0)
        count(CNT_EVENTS_LOST, 1);
#endif
}
#define EMIT(ctx, kind, dev, ino, index, nr, cg) emit(ctx, kind, dev, ino, index, nr, cg)
#else
#define EMIT(ctx, kind, dev, ino, index, nr, cg) do {} while (0)
#endif

/* user space may hold the root cgroup as 1; 0 means "unknown" everywhere.
 * Adds the given counts to (dev, ino, cg) in one map operation (constant
 * zero arguments compile away). */
static __always_inline void io_add(u32 dev, u64 ino, u64 cg, u64 evicted, u64 evicted_seeded,
                                   u64 readahead, u64 read_folio, struct mark_ctx *mc)
{
    struct io_key k = {.dev = dev, .ino = ino, .cgid = cg};
    struct io_val *v = io.lookup(&k);
    if (!v) {
        /* a new entry starts with its first counts, marked dirty */
        struct io_val z = {};
        z.evicted_pages = evicted;
        z.evicted_seeded_pages = evicted_seeded;
        z.readahead_pages = readahead;
        z.read_folio_count = read_folio;
        z.dirty_gen = mc->gen;
        if (io.insert(&k, &z) == 0) {
            dirty_insert(dev, DIRTY_IO, ino, cg, mc);
            return;
        }
        v = io.lookup(&k);          /* lost a race with another CPU, or full */
        if (!v) {
            count(CNT_IO_UPDATE_FAILURES, 1);
            return;
        }
    }
    if (evicted)
        __sync_fetch_and_add(&v->evicted_pages, evicted);
    if (evicted_seeded)
        __sync_fetch_and_add(&v->evicted_seeded_pages, evicted_seeded);
    if (readahead)
        __sync_fetch_and_add(&v->readahead_pages, readahead);
    if (read_folio)
        __sync_fetch_and_add(&v->read_folio_count, read_folio);
    mark_dirty(&v->dirty_gen, dev, DIRTY_IO, ino, cg, mc);
}

/* This CPU's io_slots slot of (dev, ino, cg): the high bits of a product. */
static __always_inline u32 io_slot_index(u32 dev, u64 ino, u64 cg)
{
    u64 h = (ino ^ (cg << 17) ^ ((u64)dev << 40)) * 0x9E3779B97F4A7C15ULL;
    return (u32)(h >> 40) & (IO_SLOTS - 1);
}

/* io_add through this CPU's write-combining slot (io_slots, see the top):
 * the counts stay in the slot while events of the same key follow; at most
 * one io_add, of the key the slot held before (or of this event when a flush
 * of this CPU is running, which cannot happen from a tracepoint). */
static __always_inline void io_acc(u32 dev, u64 ino, u64 cg, u64 evicted, u64 evicted_seeded,
                                   u64 readahead, u64 read_folio, struct mark_ctx *mc)
{
#if IO_SLOTS == 0
    io_add(dev, ino, cg, evicted, evicted_seeded, readahead, read_folio, mc);
#else
    u32 si = io_slot_index(dev, ino, cg);
    struct io_slot *s = io_slots.lookup(&si);
    struct io_slot out = {};        /* what goes to `io` now (dev 0: nothing) */
    if (!s || s->busy) {
        out.dev = dev;
        out.ino = ino;
        out.cgid = cg;
        out.evicted_pages = evicted;
        out.evicted_seeded_pages = evicted_seeded;
        out.readahead_pages = readahead;
        out.read_folio_count = read_folio;
    } else {
        s->busy = 1;
        barrier();
        if (s->dev == dev && s->ino == ino && s->cgid == cg) {
            s->evicted_pages += evicted;
            s->evicted_seeded_pages += evicted_seeded;
            s->readahead_pages += readahead;
            s->read_folio_count += read_folio;
        } else {
            out = *s;
            s->dev = dev;
            s->ino = ino;
            s->cgid = cg;
            s->evicted_pages = evicted;
            s->evicted_seeded_pages = evicted_seeded;
            s->readahead_pages = readahead;
            s->read_folio_count = read_folio;
        }
        barrier();
        s->busy = 0;
    }
    if (out.dev) {
        if (mc->gen == GEN_UNREAD)
            mc->gen = current_gen();
        io_add(out.dev, out.ino, out.cgid, out.evicted_pages, out.evicted_seeded_pages,
               out.readahead_pages, out.read_folio_count, mc);
    }
#endif
}

/* this CPU's io_current line, and the CPU's number (its part of io_log) */
static __always_inline struct io_cur *io_cur_of_cpu(u32 *cpu)
{
    *cpu = bpf_get_smp_processor_id();
    return io_current.lookup(cpu);
}

/* counts of (dev, ino, cg) into this CPU's io_log; c busy.  Full: io_acc. */
static __always_inline void io_log_append(struct io_cur *c, u32 cpu, u32 dev, u64 ino, u64 cg,
                                          u64 readahead, u64 read_folio, struct mark_ctx *mc)
{
    u64 head = c->log_head;
    if (head - c->log_tail < IO_LOG) {
        u32 i = cpu * IO_LOG + (u32)(head & (IO_LOG - 1));
        struct io_logent *e = io_log.lookup(&i);
        if (e) {
            e->dev = dev;
            e->read_folio_count = read_folio;
            e->ino = ino;
            e->cgid = cg;
            e->readahead_pages = readahead;
            barrier();
            c->log_head = head + 1;
            return;
        }
    }
    if (mc->gen == GEN_UNREAD)
        mc->gen = current_gen();
    io_acc(dev, ino, cg, 0, 0, readahead, read_folio, mc);
}

/* An insertion: io_current follows its file; the counts it held for the
 * previous file go to io_log first (busy across the move, so a flush that
 * interrupts it runs again instead of missing them). */
static __always_inline void io_cur_follow(u32 dev, u64 ino, u64 cg, struct mark_ctx *mc)
{
#if IO_SLOTS > 0
    u32 cpu;
    struct io_cur *c = io_cur_of_cpu(&cpu);
    if (!c || c->busy || (c->dev == dev && c->ino == ino && c->cgid == cg))
        return;
    c->busy = 1;
    barrier();
    if (c->dev && (c->readahead_pages | c->read_folio_count))
        io_log_append(c, cpu, c->dev, c->ino, c->cgid, c->readahead_pages, c->read_folio_count, mc);
    c->dev = dev;
    c->ino = ino;
    c->cgid = cg;
    c->readahead_pages = 0;
    c->read_folio_count = 0;
    barrier();
    c->busy = 0;
#endif
}

/* erofs_readahead / erofs_read_folio: into io_current when it follows this
 * file (the usual case), else through io_slots */
static __always_inline void io_acc_read(u32 dev, u64 ino, u64 cg, u64 readahead, u64 read_folio,
                                        struct mark_ctx *mc)
{
#if IO_SLOTS > 0
    u32 cpu;
    struct io_cur *c = io_cur_of_cpu(&cpu);
    if (c && !c->busy) {
        c->busy = 1;
        barrier();
        if (c->dev == dev && c->ino == ino && c->cgid == cg) {
            c->readahead_pages += readahead;
            c->read_folio_count += read_folio;
        } else {
            io_log_append(c, cpu, dev, ino, cg, readahead, read_folio, mc);
        }
        barrier();
        c->busy = 0;
        return;
    }
#endif
    io_acc(dev, ino, cg, 0, 0, readahead, read_folio, mc);
}

#if IO_SLOTS > 0
#ifndef FLUSH_BATCH
#define FLUSH_BATCH 32               /* slots per flush_io_slots run: 64 takes the verifier 0.3 s, 32 0.07 s */
#endif
/* flush_io_slots: one slot into `io`, emptied; 1 if a probe is changing it */
static __always_inline int flush_slot(u32 i, struct mark_ctx *mc)
{
    struct io_slot *s = io_slots.lookup(&i);
    if (!s || !s->dev)
        return 0;
    if (s->busy)
        return 1;
    s->busy = 1;
    barrier();
    io_add(s->dev, s->ino, s->cgid, s->evicted_pages, s->evicted_seeded_pages,
           s->readahead_pages, s->read_folio_count, mc);
    s->dev = 0;
    s->ino = 0;
    s->cgid = 0;
    s->evicted_pages = 0;
    s->evicted_seeded_pages = 0;
    s->readahead_pages = 0;
    s->read_folio_count = 0;
    barrier();
    s->busy = 0;
    return 0;
}

/* Never attached: user space runs it on each CPU (BPF_PROG_TEST_RUN with
 * BPF_F_TEST_RUN_ON_CPU, args[0] = first slot) before it reads the maps,
 * IO_SLOTS / FLUSH_BATCH times per CPU (BCC has no bpf_loop callbacks, and a
 * bounded loop over every slot is over the verifier's limit).  Returns 0
 * when slots [first, first + FLUSH_BATCH) of this CPU are in `io` (and
 * marked dirty), 1 when one of them was left because the flush interrupted
 * a probe changing it (run it again). */
int flush_io_slots(struct bpf_raw_tracepoint_args *ctx)
{
    struct mark_ctx mc = {.gen = current_gen()};
    u32 first = (u32)ctx->args[0];
    int busy = 0;
    for (u32 i = 0; i < FLUSH_BATCH; i++) {
        u32 k = first + i;
        if (k >= IO_SLOTS)
            break;
        busy |= flush_slot(k, &mc);
    }
    mark_done(&mc);
    return busy;
}

#define LOG_BATCH 16                 /* io_log entries per flush_io_log run: 32 takes the verifier 0.12 s, 16 0.03 s */
/* Never attached, run like flush_io_slots on each CPU: LOG_BATCH entries
 * of this CPU's io_log into `io`, then, once the log is empty, io_current's
 * counts.  Returns 1 while there is more (or a probe was interrupted in the
 * middle of io_current: busy), 0 when both are in `io`. */
int flush_io_log(struct bpf_raw_tracepoint_args *ctx)
{
    struct mark_ctx mc = {.gen = current_gen()};
    u32 cpu;
    struct io_cur *c = io_cur_of_cpu(&cpu);
    if (!c)
        return 0;
    if (c->busy)
        return 1;
    for (u32 n = 0; n < LOG_BATCH; n++) {
        u64 tail = c->log_tail;
        if (tail == c->log_head)
            break;
        u32 i = cpu * IO_LOG + (u32)(tail & (IO_LOG - 1));
        struct io_logent *e = io_log.lookup(&i);
        if (e && e->dev)
            io_add(e->dev, e->ino, e->cgid, 0, 0, e->readahead_pages, e->read_folio_count, &mc);
        c->log_tail = tail + 1;
    }
    if (c->log_tail != c->log_head) {
        mark_done(&mc);
        return 1;
    }
    if (c->dev && (c->readahead_pages | c->read_folio_count)) {
        io_add(c->dev, c->ino, c->cgid, 0, 0, c->readahead_pages, c->read_folio_count, &mc);
        c->readahead_pages = 0;
        c->read_folio_count = 0;
    }
    mark_done(&mc);
    return 0;
}
#endif

/* find-or-create stays per file: BCC rewrites map calls only outside macros,
 * so the slot logic is what chunk_owners.h shares */
static __always_inline void chunk_set(struct chunk_key *k, u64 cg, u64 mask, struct mark_ctx *mc)
{
    struct chunk_val *v = chunks.lookup(k);
    if (!v) {
        struct chunk_val z = {};
        z.cgid[0] = cg;
        z.bits[0] = mask;
        z.dirty_gen = mc->gen;
        if (chunks.insert(k, &z) == 0) {
            dirty_insert(k->dev, DIRTY_CHUNK, k->ino, k->chunk, mc);
            return;
        }
        v = chunks.lookup(k);       /* lost a race with another CPU, or full */
        if (!v) {
            count(CNT_CHUNK_UPDATE_FAILURES, __builtin_popcountll(mask));
            return;
        }
    }
    u64 overflow = owners_claim(v->cgid, v->bits, &v->other_bits, cg, mask);
    if (overflow)
        count(CNT_OWNER_OVERFLOW_PAGES, __builtin_popcountll(overflow));
    mark_dirty(&v->dirty_gen, k->dev, DIRTY_CHUNK, k->ino, k->chunk, mc);
}

/* evictions counted through io_slots (io_acc) */
static __always_inline void chunk_clear(struct chunk_key *k, u64 mask, struct mark_ctx *mc)
{
    struct chunk_val *v = chunks.lookup(k);
    if (!v) {
        count(CNT_DELETE_UNTRACKED_PAGES, __builtin_popcountll(mask));
        return;
    }
    u64 hits[MAX_OWNERS + 1];
    u64 seeded = v->seeded_bits & mask;
    u64 seen = owners_release(v->cgid, v->bits, &v->other_bits, mask, hits);
#pragma unroll
    for (int s = 0; s <= MAX_OWNERS; s++) {
        if (!hits[s])
            continue;
        u64 cg = s < MAX_OWNERS ? v->cgid[s] : 0;
        io_acc(k->dev, k->ino, cg, __builtin_popcountll(hits[s]),
               __builtin_popcountll(hits[s] & seeded), 0, 0, mc);
    }
    if (seeded)
        __sync_fetch_and_and(&v->seeded_bits, ~mask);
    if (mask & ~seen)
        count(CNT_DELETE_UNTRACKED_PAGES, __builtin_popcountll(mask & ~seen));
    if (seen | seeded)
        mark_dirty(&v->dirty_gen, k->dev, DIRTY_CHUNK, k->ino, k->chunk, mc);
}

/* A folio of 2^order pages starting at index (aligned to its size) touches
 * one chunk when order <= 6, else 2^(order-6) whole chunks. */
static __always_inline u64 folio_mask(u64 index, u32 order)
{
    u64 nr = 1ULL << order;
    return nr == 64 ? ~0ULL : ((1ULL << nr) - 1) << (index & 63);
}

static __always_inline void folio_add(u32 dev, u64 ino, u64 index, u32 order, u64 cg,
                                      struct mark_ctx *mc)
{
    struct chunk_key k = {.dev = dev, .ino = ino};
    if (order <= 6) {
        k.chunk = index >> 6;
        chunk_set(&k, cg, folio_mask(index, order), mc);
        return;
    }
    u32 nchunks = 1U << (order - 6);
    /* a bounded loop (kernel 5.3+), not unrolled: it is rarely taken */
    for (u32 i = 0; i < MAX_FOLIO_CHUNKS; i++) {
        if (i >= nchunks)
            break;
        k.chunk = (index >> 6) + i;
        chunk_set(&k, cg, ~0ULL, mc);
    }
    if (nchunks > MAX_FOLIO_CHUNKS)
        count(CNT_BIG_FOLIO_LOST_PAGES, (u64)(nchunks - MAX_FOLIO_CHUNKS) * 64);
}

/* a large folio's eviction: one chunk per run of delete_big_folio (see the top) */
#define BIG_FOLIO_PROG 0
BPF_PROG_ARRAY(big_folio_progs, 1);
BPF_PERCPU_ARRAY(big_folio_next, u32, 1);   /* per CPU: tail calls do not nest or migrate */

TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache)
{
    /* two map operations per EROFS folio: the filter (cached) and `chunks` */
    u32 dev = args->s_dev;
    if (!(watched_kind(dev) & KIND_EROFS))
        return 0;
    u64 cg = bpf_get_current_cgroup_id();
    struct mark_ctx mc = {.gen = current_gen()};
    folio_add(dev, args->i_ino, args->index, args->order, cg, &mc);
    io_cur_follow(dev, args->i_ino, cg, &mc);
    mark_done(&mc);
    EMIT(args, EV_ADD, dev, args->i_ino, args->index, 1ULL << args->order, cg);
    return 0;
}

TRACEPOINT_PROBE(filemap, mm_filemap_delete_from_page_cache)
{
    u32 dev = args->s_dev;
    if (!(watched_kind(dev) & KIND_EROFS))
        return 0;
    /* before the work: a large folio's tail calls do not come back here */
    EMIT(args, EV_DELETE, dev, args->i_ino, args->index, 1ULL << args->order, bpf_get_current_cgroup_id());
    u32 order = args->order;
    if (order > 6) {
        u32 zero = 0;
        u32 *next = big_folio_next.lookup(&zero);
        if (next) {
            *next = 0;
            big_folio_progs.call(args, BIG_FOLIO_PROG);
        }
        /* not installed yet (start-up) or failed: nothing cleared */
        count(CNT_BIG_FOLIO_LOST_PAGES, 1ULL << (order < 32 ? order : 31));
        return 0;
    }
    struct mark_ctx mc = {.gen = current_gen()};
    struct chunk_key k = {.dev = dev, .ino = args->i_ino, .chunk = args->index >> 6};
    chunk_clear(&k, folio_mask(args->index, order), &mc);
    mark_done(&mc);
    return 0;
}

/* Tail-called (big_folio_progs) by the delete program for a folio of order
 * > 6, then by itself: clears chunk big_folio_next of the folio, then the
 * next one.  Loaded by user space, never attached. */
int delete_big_folio(void *ctx)
{
    /* the struct BCC made for the delete probe above (a parameter of this
     * type would make it define the struct again) */
    struct tracepoint__filemap__mm_filemap_delete_from_page_cache *args = ctx;
    u32 zero = 0;
    u32 *next = big_folio_next.lookup(&zero);
    if (!next)
        return 0;
    u32 i = *next;
    u32 order = args->order;
    u32 nchunks = order > 6 && order < 32 ? 1U << (order - 6) : 0;
    if (i >= nchunks || i >= MAX_FOLIO_CHUNKS)
        return 0;
    struct mark_ctx mc = {.gen = current_gen()};
    struct chunk_key k = {.dev = args->s_dev, .ino = args->i_ino, .chunk = (args->index >> 6) + i};
    chunk_clear(&k, ~0ULL, &mc);
    mark_done(&mc);
    *next = i + 1;
    if (i + 1 >= nchunks)
        return 0;
    if (i + 1 < MAX_FOLIO_CHUNKS)
        big_folio_progs.call(args, BIG_FOLIO_PROG);
    /* beyond MAX_FOLIO_CHUNKS, or the call failed: the chunks left */
    count(CNT_BIG_FOLIO_LOST_PAGES, (u64)(nchunks - i - 1) * 64);
    return 0;
}

#ifdef HAVE_EROFS_FILL_INODE
/* A new EROFS superblock fills its root inode at mount time, before any data
 * page is read: watch it from then on, without waiting for user space to see
 * the mount (containers read right after mounting). */
TRACEPOINT_PROBE(erofs, erofs_fill_inode)
{
    u32 dev = args->dev;
    u64 *kind = watched_devs.lookup(&dev);
    if (kind) {
        if (!(*kind & KIND_EROFS)) {
            __sync_fetch_and_or(kind, KIND_EROFS);
            u32 ki = GEN_KERNEL;
            u64 *gen = watched_gen.lookup(&ki);
            if (gen)
                __sync_fetch_and_add(gen, 1);
        }
        return 0;
    }
    u64 k = KIND_EROFS;
    watched_devs.update(&dev, &k);
    u32 ki = GEN_KERNEL;
    u64 *gen = watched_gen.lookup(&ki);
    if (gen)
        __sync_fetch_and_add(gen, 1);
    return 0;
}
#endif

#ifdef HAVE_EROFS_READAHEAD
TRACEPOINT_PROBE(erofs, erofs_readahead)
{
    u32 dev = args->dev;
    if (!(watched_kind(dev) & KIND_EROFS))
        return 0;
    u64 cg = bpf_get_current_cgroup_id();
    struct mark_ctx mc = {.gen = GEN_UNREAD};      /* read when a slot goes to `io` */
    io_acc_read(dev, args->nid, cg, args->nrpage, 0, &mc);
    mark_done(&mc);
    EMIT(args, EV_READAHEAD, dev, args->nid, args->start, args->nrpage, cg);
    return 0;
}
#endif

#ifdef HAVE_EROFS_READ_FOLIO
TRACEPOINT_PROBE(erofs, erofs_read_folio)
{
    u32 dev = args->dev;
    if (!(watched_kind(dev) & KIND_EROFS))
        return 0;
    u64 cg = bpf_get_current_cgroup_id();
    struct mark_ctx mc = {.gen = GEN_UNREAD};      /* read when a slot goes to `io` */
    io_acc_read(dev, args->nid, cg, 0, 1, &mc);
    mark_done(&mc);
    EMIT(args, EV_READ_FOLIO, dev, args->nid, args->index, 1, cg);
    return 0;
}
#endif

/* gather_chunks / gather_io (issue 11): the values of the keys an incremental
 * read looks up, without a bpf(2) lookup syscall per key.  User space writes
 * the dirty keys into `gather_keys` (a BPF_F_MMAPABLE array: its own memory,
 * no syscall) and runs the program, never attached, with BPF_PROG_TEST_RUN
 * (args[0] = first key, args[1] = keys left); it copies each key's value
 * from `chunks` (or `io`) into `gather_chunk_out` (`gather_io_out`) with a
 * found flag, GATHER_BATCH keys a run (BCC has no bpf_loop callbacks), and
 * user space reads them from the mapped array (erofs_top/kernel/gather.py).
 * A value is copied as a lookup syscall copies it: while a probe on another
 * CPU may be changing it, which the dirty protocol marks again (`dirty`).
 * GATHER_MAX 0: not built (the read looks up one key per syscall). */
#ifndef GATHER_MAX
#define GATHER_MAX 0
#endif
#if GATHER_MAX > 0
#ifndef GATHER_BATCH
#define GATHER_BATCH 128
#endif
#ifndef BPF_F_MMAPABLE
#define BPF_F_MMAPABLE (1U << 10)
#endif
struct gather_chunk {
    u64 found;
    struct chunk_val v;
};
struct gather_io {
    u64 found;
    struct io_val v;
};
BPF_F_TABLE("array", u32, struct chunk_key, gather_keys, GATHER_MAX, BPF_F_MMAPABLE);
BPF_F_TABLE("array", u32, struct gather_chunk, gather_chunk_out, GATHER_MAX, BPF_F_MMAPABLE);
BPF_F_TABLE("array", u32, struct gather_io, gather_io_out, GATHER_MAX, BPF_F_MMAPABLE);

/* gather_io is gather_chunks with the other map and types: BCC 0.26 refuses
 * map calls inside a macro ("cannot use map function inside a macro") and a
 * map cannot be passed to a function, so the loop is written twice. */
int gather_chunks(struct bpf_raw_tracepoint_args *ctx)
{
    u32 first = (u32)ctx->args[0], left = (u32)ctx->args[1];
    for (u32 j = 0; j < GATHER_BATCH; j++) {
        u32 i = first + j;
        if (j >= left)
            break;
        struct chunk_key *k = gather_keys.lookup(&i);
        struct gather_chunk *o = gather_chunk_out.lookup(&i);
        if (!k || !o)
            return 1;
        struct chunk_val *v = chunks.lookup(k);
        if (v) {
            o->v = *v;
            o->found = 1;
        } else {
            o->found = 0;
        }
    }
    return 0;
}

int gather_io(struct bpf_raw_tracepoint_args *ctx)
{
    u32 first = (u32)ctx->args[0], left = (u32)ctx->args[1];
    for (u32 j = 0; j < GATHER_BATCH; j++) {
        u32 i = first + j;
        if (j >= left)
            break;
        struct chunk_key *k = gather_keys.lookup(&i);
        struct gather_io *o = gather_io_out.lookup(&i);
        if (!k || !o)
            return 1;
        struct io_val *v = io.lookup((struct io_key *)k);
        if (v) {
            o->v = *v;
            o->found = 1;
        } else {
            o->found = 0;
        }
    }
    return 0;
}
#endif
