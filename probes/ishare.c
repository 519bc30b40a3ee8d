/* erofs-top, full tier: EROFS page-cache sharing (inode_share, Linux 7.0+).
 *
 * With `mount -o inode_share,domain_id=D`, regular files whose fingerprint
 * xattr, domain, aops and size match share one page cache: a "shared inode"
 * on the kernel-internal `pseudo_erofs` superblock.  Every shared inode has
 * i_ino 0 on that superblock, so its pages are keyed by the address_space
 * pointer (`folio->mapping`), never by (s_dev, i_ino).
 *
 * Hooks:
 *   raw_tracepoint mm_filemap_add_to_page_cache       args[0] = folio: pages
 *   raw_tracepoint mm_filemap_delete_from_page_cache  of pseudo_erofs inodes
 *   erofs_ishare_file_open (entry + return)  on success file->private_data is
 *                  the backing "realfile": its f_mapping is the shared mapping
 *   erofs_ishare_file_read_iter (entry)      read(2) users
 *   erofs_ishare_mmap (entry)                mmap users (faults never call read)
 *   erofs_ishare_fill_inode (entry + return) + iget5_locked (return, only
 *                  inside fill_inode): which real inodes joined which shared one
 *   erofs_ishare_free_inode (entry)          a real inode leaves: forget it
 *   raw_tracepoint mm_filemap_get_pages      pages a read asked for,
 *   raw_tracepoint mm_filemap_map_pages      pages a fault-around mapped and
 *   raw_tracepoint mm_filemap_fault          a fault hit (all three 6.10+):
 *                  which pages each member's readers touched (a page saves
 *                  only where two members touched it)
 *   erofs_file_read_iter (entry; stock files, optional) and
 *   erofs_ishare_file_read_iter (entry)      every buffered read of an EROFS
 *                  regular file, in order, into the read_log ring: the
 *                  replay of the kernel's readahead (erofs_top/read_replay.py)
 *                  needs each open file's reads (random readers, docs/sharing.md)
 *   erofs_kill_sb (entry, optional)          an EROFS superblock goes: a
 *                  READ_SB_GONE record in the same ring, in order, so that
 *                  the reads of a mount that is gone are never taken for
 *                  reads of a later mount that gets the same s_dev
 * kprobes/kretprobes by default; with -DISHARE_FENTRY the same logic as
 * fentry/fexit (BCC MODULE_KFUNC_PROBE; needs module BTF).  erofs.ko must be
 * loaded before attaching (the symbols appear in kallsyms only then).
 *
 * Kernels: 7.0+ with CONFIG_EROFS_FS_PAGE_CACHE_SHARE=y.  Struct offsets come
 * from the running kernel's BTF (erofs_top/kernel/btf.py, -DBTF_LAYOUT: every
 * kernel field is read through READ_FIELD); without BTF, from its own header
 * tree (the headers were ~3/4 of this file's compile time).  Only public VFS structs
 * are read (folio, address_space, inode, super_block, file, file_system_type);
 * never struct erofs_inode, and never the fingerprint blob: it carries the
 * secret domain_id.  The pseudo superblock is recognised by its
 * file_system_type name "pseudo_erofs" (major 0 is not enough: file-backed
 * mounts are 0:N too), cached per file_system_type pointer.
 *
 * Maps:
 *   shared_chunks (mapping, page_index/64) -> up to 4 (inserting cgroup id,
 *                 64-bit resident mask) + a mask of pages whose owner did not
 *                 fit (the same layout as the tracepoint tier's chunks).
 *   members       (mapping, real s_dev, real i_ino) -> i_size, real inode ptr
 *   real_inodes   real inode ptr -> member key (for erofs_ishare_free_inode)
 *   users         (mapping, cgroup id, real s_dev, real i_ino) -> open, read
 *                 and mmap calls, last use (ns); the loading process itself
 *                 (-DSELF_TGID) is never a user
 *   touched       (mapping, member s_dev, member i_ino, page_index/64) -> 64-bit
 *                 mask of pages that member's readers asked for; a fault marks
 *                 the read-around window the member's own inode would have read
 *   read_member   thread id -> the member its current read(2) goes through
 *   cg_member     (mapping, cgroup id) -> the member that cgroup used last (faults
 *                 carry no file: the mmap user's member)
 *   fs_types      file_system_type ptr -> 1 pseudo_erofs, 2 another erofs type
 *   read_log      ring buffer (READ_LOG_PAGES pages, preallocated) of struct
 *                 read_rec: (member s_dev, i_ino, the struct file whose f_ra
 *                 the read uses (the realfile on inode_share), the shared
 *                 mapping or 0, pos, count, f_ra.prev_pos before the read (-1:
 *                 a fresh open), i_size, cgroup id, kind); a full ring drops
 *                 the record and counts it (read_log_drops).  kind
 *                 READ_SB_GONE: only dev is set, the s_dev of the superblock
 *                 being killed.  kind READ_FAULT: a filemap_fault of page
 *                 pos >> 12 (raw_tracepoint mm_filemap_fault; no file).
 *                 O_DIRECT reads are not logged (no page cache).
 *   counters      per-CPU: map update failures, owner overflow, ...
 */
#include <uapi/linux/ptrace.h>
#ifdef BTF_LAYOUT
/* Struct layouts from the running kernel's BTF (erofs_top/kernel/btf.py passes
 * OFF_/SZ_/VAL_ macros): no kernel header tree, which was ~20 of the ~27 s
 * this file took to compile under the lab's TCG.  The structs stay opaque. */
struct super_block;
struct file_system_type;
struct address_space;
struct inode;
struct folio;
struct file;
struct kiocb;
struct iov_iter;
struct vm_area_struct;
#define FIELD_AT(p, st, f) ((const void *)((const char *)(p) + OFF_##st##__##f))
#define FIELD_SIZE(st, f) SZ_##st##__##f
#define NESTED_AT(p, st, f, g) ((const void *)((const char *)(p) + OFF_##st##__##f##__##g))
#define NESTED_SIZE(st, f, g) SZ_##st##__##f##__##g
#define PG_HEAD_BIT VAL_pageflags__PG_head
#define IOCB_DIRECT (1 << 17)       /* a macro, not in BTF; this value since 5.9 */
#else
/* no BTF: the header tree of the running kernel */
#include <linux/fs.h>
#include <linux/mm_types.h>
#include <linux/page-flags.h>
#include <linux/uio.h>
#define FIELD_AT(p, st, f) ((const void *)&((struct st *)(p))->f)
#define FIELD_SIZE(st, f) sizeof(((struct st *)0)->f)
#define NESTED_AT(p, st, f, g) ((const void *)&((struct st *)(p))->f.g)
#define NESTED_SIZE(st, f, g) sizeof(((struct st *)0)->f.g)
#define PG_HEAD_BIT PG_head
#endif
/* one kernel field into a zeroed variable at least as wide (little endian: a
 * narrower field fills its low bytes) */
#define READ_FIELD(dst, p, st, f) ({                                        \
        _Static_assert(FIELD_SIZE(st, f) <= sizeof(dst), #st "." #f " wider than " #dst); \
        bpf_probe_read_kernel(&(dst), FIELD_SIZE(st, f), FIELD_AT(p, st, f)); })
/* the same for a member of a member: st.f.g */
#define READ_NESTED(dst, p, st, f, g) ({                                    \
        _Static_assert(NESTED_SIZE(st, f, g) <= sizeof(dst), #st "." #f "." #g " wider than " #dst); \
        bpf_probe_read_kernel(&(dst), NESTED_SIZE(st, f, g), NESTED_AT(p, st, f, g)); })
#include "chunk_owners.h"      /* owners_claim / owners_release, MAX_OWNERS */

#ifndef SHARED_CHUNK_ENTRIES
#define SHARED_CHUNK_ENTRIES 262144
#endif
#ifndef MEMBER_ENTRIES
#define MEMBER_ENTRIES 65536
#endif
#ifndef USER_ENTRIES
#define USER_ENTRIES 65536
#endif
#ifndef TOUCH_ENTRIES
#define TOUCH_ENTRIES 262144
#endif
#ifndef READ_LOG_PAGES
#define READ_LOG_PAGES 1024          /* 4 MiB: about 58,000 reads between two refreshes */
#endif
#define MAX_FOLIO_CHUNKS 16          /* folios up to order 10 (4 MiB) */
#define MAX_TOUCH_CHUNKS 64          /* one event marks up to 16 MiB (4 KiB pages) */
#define FAULT_AROUND_PAGES 32        /* default ra_pages: an mmap miss reads this window */
#define EROFS_MAGIC 0xE0F5E1E2U
#define FS_PSEUDO 1
#define FS_OTHER 2

/* Counters, in the order of erofs_top/kernel/sharing.py COUNTERS (lower case,
 * without CNT_); tests/unit/test_probe_contracts.py checks it. */
enum counter {
    CNT_CHUNK_UPDATE_FAILURES = 0,  /* shared_chunks full: pages not tracked */
    CNT_MEMBER_UPDATE_FAILURES,     /* members / real_inodes full */
    CNT_USER_UPDATE_FAILURES,       /* users full */
    CNT_OWNER_OVERFLOW_PAGES,       /* pages whose chunk had 4 owners already */
    CNT_BIG_FOLIO_LOST_PAGES,       /* folios beyond MAX_FOLIO_CHUNKS */
    CNT_DELETE_UNTRACKED_PAGES,     /* deletions of pages never seen inserted */
    CNT_FILL_SHARED,                /* erofs_ishare_fill_inode returned true */
    CNT_FILL_NOT_SHARED,            /* ... returned false (no digest, size, aops) */
    CNT_FREE_INODE,                 /* erofs_ishare_free_inode calls */
    CNT_OPEN,
    CNT_READ,
    CNT_MMAP,
    CNT_FILL_NO_IGET,               /* shared, but the iget5_locked return was not seen */
    CNT_TOUCH_UPDATE_FAILURES,      /* touched full: pages not marked */
    CNT_TOUCH_NO_MEMBER,            /* a shared page touched by a task with no known member */
    CNT_TOUCH_TRUNCATED_PAGES,      /* pages beyond MAX_TOUCH_CHUNKS in one event */
    CNT_READ_LOG_DROPS,             /* read records the full read_log ring dropped */
    CNT_MAX,
};

struct chunk_key {
    u64 mapping;
    u64 chunk;
};

struct chunk_val {
    u64 cgid[MAX_OWNERS];
    u64 bits[MAX_OWNERS];
    u64 other_bits;     /* resident, owner did not fit in the slots */
};

struct member_key {
    u64 mapping;
    u32 dev;            /* kernel dev_t (major << 20 | minor) of the real sb */
    u32 pad;
    u64 ino;
};

struct member_val {
    u64 size;           /* i_size in bytes */
    u64 inode;          /* real inode pointer */
};

struct user_key {
    u64 mapping;
    u64 cgid;
    u32 dev;
    u32 pad;
    u64 ino;
};

struct user_val {
    u64 opens;
    u64 reads;
    u64 mmaps;
    u64 last_ns;
};

struct touch_key {
    u64 mapping;
    u32 dev;
    u32 pad;
    u64 ino;
    u64 chunk;
};

struct member_ref {
    u64 mapping;
    u32 dev;
    u32 pad;
    u64 ino;
};

struct cg_key {
    u64 mapping;
    u64 cgid;
};

struct read_rec {
    u64 file;           /* struct file * whose f_ra filemap_read uses */
    u64 mapping;        /* shared address_space (inode_share), else 0 */
    u64 ino;
    s64 pos;
    u64 count;
    s64 prev_pos;       /* f_ra.prev_pos before the read: -1 on a fresh open */
    u64 size;           /* i_size */
    u64 cgid;
    u32 dev;
    u32 kind;           /* READ_READ, or READ_SB_GONE: superblock dev went away */
};

#define READ_READ 0
#define READ_SB_GONE 1
#define READ_FAULT 2        /* filemap_fault of page pos >> 12; file 0, count 0 */

struct fill_arg {
    u64 inode;          /* real inode passed to erofs_ishare_fill_inode */
    u64 shared;         /* iget5_locked() result inside it: the shared inode */
};

BPF_F_TABLE("hash", struct chunk_key, struct chunk_val, shared_chunks,
            SHARED_CHUNK_ENTRIES, BPF_F_NO_PREALLOC);
BPF_F_TABLE("hash", struct member_key, struct member_val, members, MEMBER_ENTRIES, BPF_F_NO_PREALLOC);
BPF_F_TABLE("hash", u64, struct member_key, real_inodes, MEMBER_ENTRIES, BPF_F_NO_PREALLOC);
BPF_F_TABLE("hash", struct user_key, struct user_val, users, USER_ENTRIES, BPF_F_NO_PREALLOC);
BPF_HASH(fs_types, u64, u32, 64);
BPF_F_TABLE("hash", struct touch_key, u64, touched, TOUCH_ENTRIES, BPF_F_NO_PREALLOC);
BPF_HASH(read_member, u64, struct member_ref, 4096);
BPF_HASH(cg_member, struct cg_key, struct member_ref, USER_ENTRIES);
BPF_HASH(fill_args, u64, struct fill_arg, 4096);    /* thread id -> args */
BPF_HASH(open_args, u64, u64, 4096);                /* thread id -> struct file * */
BPF_PERCPU_ARRAY(counters, u64, CNT_MAX);
BPF_RINGBUF_OUTPUT(read_log, READ_LOG_PAGES);

static __always_inline void count(int idx, u64 n)
{
    u64 *c = counters.lookup(&idx);
    if (c)
        *c += n;   /* per-CPU slot: no atomic needed */
}

/* ------------------------------------------------------------ pseudo sb */
static __always_inline int is_pseudo_sb(struct super_block *sb)
{
    unsigned long magic = 0;
    struct file_system_type *t = NULL;
    READ_FIELD(magic, sb, super_block, s_magic);
    if ((u32)magic != EROFS_MAGIC)
        return 0;
    READ_FIELD(t, sb, super_block, s_type);
    u64 key = (u64)t;
    u32 *kind = fs_types.lookup(&key);
    if (kind)
        return *kind == FS_PSEUDO;
    const char *np = NULL;
    char name[16] = {};
    READ_FIELD(np, t, file_system_type, name);
    if (np)
        bpf_probe_read_kernel_str(name, sizeof(name), np);
    const char want[] = "pseudo_erofs";
    u32 v = FS_PSEUDO;
#pragma unroll
    for (int i = 0; i < sizeof(want); i++) {
        if (name[i] != want[i]) {
            v = FS_OTHER;
            break;
        }
    }
    fs_types.update(&key, &v);
    return v == FS_PSEUDO;
}

/* a mapping of a shared inode: its host lives on the pseudo_erofs superblock */
static __always_inline int is_shared_mapping(struct address_space *mapping)
{
    struct inode *host = NULL;
    struct super_block *sb = NULL;
    if (!mapping)
        return 0;
    READ_FIELD(host, mapping, address_space, host);
    if (!host)
        return 0;
    READ_FIELD(sb, host, inode, i_sb);
    return sb && is_pseudo_sb(sb);
}

/* ------------------------------------------------------------ page chunks */
/* find-or-create stays per file: BCC rewrites map calls only outside macros,
 * so the slot logic is what chunk_owners.h shares */
static __always_inline void chunk_set(struct chunk_key *k, u64 cg, u64 mask)
{
    struct chunk_val *v = shared_chunks.lookup(k);
    if (!v) {
        struct chunk_val z = {};
        z.cgid[0] = cg;
        z.bits[0] = mask;
        if (shared_chunks.insert(k, &z) == 0)
            return;
        v = shared_chunks.lookup(k);       /* lost a race with another CPU, or full */
        if (!v) {
            count(CNT_CHUNK_UPDATE_FAILURES, __builtin_popcountll(mask));
            return;
        }
    }
    u64 overflow = owners_claim(v->cgid, v->bits, &v->other_bits, cg, mask);
    if (overflow)
        count(CNT_OWNER_OVERFLOW_PAGES, __builtin_popcountll(overflow));
}

static __always_inline void chunk_clear(struct chunk_key *k, u64 mask)
{
    struct chunk_val *v = shared_chunks.lookup(k);
    if (!v) {
        count(CNT_DELETE_UNTRACKED_PAGES, __builtin_popcountll(mask));
        return;
    }
    u64 hits[MAX_OWNERS + 1];
    u64 seen = owners_release(v->cgid, v->bits, &v->other_bits, mask, hits);
    if (mask & ~seen)
        count(CNT_DELETE_UNTRACKED_PAGES, __builtin_popcountll(mask & ~seen));
}

static __always_inline void folio_event(struct folio *folio, int add)
{
    struct address_space *mapping = NULL;
    READ_FIELD(mapping, folio, folio, mapping);
    if (!is_shared_mapping(mapping))
        return;
    unsigned long index = 0, flags = 0, flags1 = 0;
    READ_FIELD(index, folio, folio, index);
    /* folio_order(): the flags word is the first member of struct folio
     * (memdesc_flags_t since 6.18, unsigned long before), the order sits
     * in _flags_1 of large (PG_head) folios */
    bpf_probe_read_kernel(&flags, sizeof(flags), (void *)folio);
    u32 order = 0;
    if (flags & (1UL << PG_HEAD_BIT)) {
        READ_FIELD(flags1, folio, folio, _flags_1);
        order = flags1 & 0xff;
    }
    u64 cg = add ? bpf_get_current_cgroup_id() : 0;
    struct chunk_key k = {.mapping = (u64)mapping};
    if (order <= 6) {
        u64 nr = 1ULL << order;
        u64 mask = nr == 64 ? ~0ULL : ((1ULL << nr) - 1) << (index & 63);
        k.chunk = index >> 6;
        if (add)
            chunk_set(&k, cg, mask);
        else
            chunk_clear(&k, mask);
        return;
    }
    u32 nchunks = 1U << (order - 6);
    for (u32 i = 0; i < MAX_FOLIO_CHUNKS; i++) {
        if (i >= nchunks)
            break;
        k.chunk = (index >> 6) + i;
        if (add)
            chunk_set(&k, cg, ~0ULL);
        else
            chunk_clear(&k, ~0ULL);
    }
    if (nchunks > MAX_FOLIO_CHUNKS)
        count(CNT_BIG_FOLIO_LOST_PAGES, (u64)(nchunks - MAX_FOLIO_CHUNKS) * 64);
}

RAW_TRACEPOINT_PROBE(mm_filemap_add_to_page_cache)
{
    folio_event((struct folio *)ctx->args[0], 1);
    return 0;
}

RAW_TRACEPOINT_PROBE(mm_filemap_delete_from_page_cache)
{
    folio_event((struct folio *)ctx->args[0], 0);
    return 0;
}

/* ------------------------------------------------------------ touched pages */
static __always_inline void touch(struct address_space *mapping, u64 first, u64 last)
{
    if (last < first || !is_shared_mapping(mapping))
        return;
#ifdef SELF_TGID
    if ((bpf_get_current_pid_tgid() >> 32) == SELF_TGID)
        return;
#endif
    /* the member: this thread's read(2), else the member its cgroup mapped */
    u64 tid = bpf_get_current_pid_tgid();
    struct member_ref *ref = read_member.lookup(&tid);
    if (!ref || ref->mapping != (u64)mapping) {
        struct cg_key ck = {.mapping = (u64)mapping, .cgid = bpf_get_current_cgroup_id()};
        ref = cg_member.lookup(&ck);
    }
    if (!ref) {
        count(CNT_TOUCH_NO_MEMBER, last - first + 1);
        return;
    }
    struct touch_key k = {.mapping = (u64)mapping, .dev = ref->dev, .ino = ref->ino};
    u64 c0 = first >> 6, c1 = last >> 6;
    for (u32 i = 0; i < MAX_TOUCH_CHUNKS; i++) {
        u64 c = c0 + i;
        if (c > c1)
            return;
        u64 lo = c == c0 ? (first & 63) : 0;
        u64 hi = c == c1 ? (last & 63) : 63;
        u64 mask = (hi - lo == 63) ? ~0ULL : (((1ULL << (hi - lo + 1)) - 1) << lo);
        k.chunk = c;
        u64 *v = touched.lookup(&k);
        if (v) {
            if ((*v & mask) != mask)
                __sync_fetch_and_or(v, mask);
        } else if (touched.insert(&k, &mask) != 0) {
            v = touched.lookup(&k);      /* lost a race, or full */
            if (v)
                __sync_fetch_and_or(v, mask);
            else
                count(CNT_TOUCH_UPDATE_FAILURES, __builtin_popcountll(mask));
        }
    }
    count(CNT_TOUCH_TRUNCATED_PAGES, last - ((c0 + MAX_TOUCH_CHUNKS) << 6) + 1);
}

RAW_TRACEPOINT_PROBE(mm_filemap_get_pages)
{
    /* (mapping, index, last_index): the pages one read(2) batch asks for */
    touch((struct address_space *)ctx->args[0], ctx->args[1], ctx->args[2]);
    return 0;
}

RAW_TRACEPOINT_PROBE(mm_filemap_map_pages)
{
    touch((struct address_space *)ctx->args[0], ctx->args[1], ctx->args[2]);
    return 0;
}


/* ------------------------------------------------------------ members, users */
static __always_inline void add_member(struct member_key *mk, struct inode *real)
{
    struct member_val mv = {};
    if (members.lookup(mk))
        return;
    READ_FIELD(mv.size, real, inode, i_size);
    mv.inode = (u64)real;
    u64 ik = (u64)real;
    if (members.update(mk, &mv) != 0 || real_inodes.update(&ik, mk) != 0)
        count(CNT_MEMBER_UPDATE_FAILURES, 1);
}

static __always_inline void inode_id(struct inode *inode, u32 *dev, u64 *ino)
{
    struct super_block *sb = NULL;
    READ_FIELD(*ino, inode, inode, i_ino);
    READ_FIELD(sb, inode, inode, i_sb);
    if (sb)
        READ_FIELD(*dev, sb, super_block, s_dev);
}

/* One filemap_fault() on an EROFS regular file (the tracepoint fires at its
 * start, for every call, retries included), into the read_log ring in order
 * with the reads: the replay runs the mmap readahead (do_sync_mmap_readahead,
 * do_async_mmap_readahead) on it.  The tracepoint carries no struct file: the
 * replay keeps one readahead state per mapping and cgroup.  A shared
 * mapping's fault is logged as the member its cgroup mapped (cg_member). */
static __always_inline void log_fault(struct address_space *mapping, u64 index)
{
    struct inode *host = NULL;
    struct super_block *sb = NULL;
    unsigned long magic = 0;
    struct read_rec r = {};
#ifdef SELF_TGID
    if ((bpf_get_current_pid_tgid() >> 32) == SELF_TGID)
        return;
#endif
    if (!mapping)
        return;
    READ_FIELD(host, mapping, address_space, host);
    if (!host)
        return;
    READ_FIELD(sb, host, inode, i_sb);
    if (!sb)
        return;
    READ_FIELD(magic, sb, super_block, s_magic);
    if ((u32)magic != EROFS_MAGIC)
        return;
    r.cgid = bpf_get_current_cgroup_id();
    if (is_pseudo_sb(sb)) {
        struct cg_key ck = {.mapping = (u64)mapping, .cgid = r.cgid};
        struct member_ref *ref = cg_member.lookup(&ck);
        if (!ref)
            return;
        r.mapping = (u64)mapping;
        r.dev = ref->dev;
        r.ino = ref->ino;
    } else {
        inode_id(host, &r.dev, &r.ino);
    }
    r.pos = (s64)(index << 12);
    r.prev_pos = -1;
    READ_FIELD(r.size, host, inode, i_size);
    r.kind = READ_FAULT;
    if (read_log.ringbuf_output(&r, sizeof(r), 0) != 0)
        count(CNT_READ_LOG_DROPS, 1);
}

RAW_TRACEPOINT_PROBE(mm_filemap_fault)
{
    /* without sharing, a miss here would read the ra window around the page
     * (do_sync_mmap_readahead): the member's own inode would hold all of it */
    u64 index = ctx->args[1];
    u64 first = index > FAULT_AROUND_PAGES / 2 ? index - FAULT_AROUND_PAGES / 2 : 0;
    touch((struct address_space *)ctx->args[0], first, first + FAULT_AROUND_PAGES - 1);
    log_fault((struct address_space *)ctx->args[0], index);
    return 0;
}

/* A task opened, read or mapped a shared-capable file: its cgroup uses the
 * shared mapping behind file->private_data (the realfile). */
static __always_inline void note_use(struct file *f, int what)
{
    struct file *rf = NULL;
    struct inode *oi = NULL, *si = NULL;
    struct address_space *m = NULL;
    if (!f)
        return;
#ifdef SELF_TGID
    /* erofs-top's own reads (ELF build-ids, digests) make it no user */
    if ((bpf_get_current_pid_tgid() >> 32) == SELF_TGID)
        return;
#endif
    READ_FIELD(rf, f, file, private_data);
    READ_FIELD(oi, f, file, f_inode);
    if (!rf || !oi)
        return;
    READ_FIELD(m, rf, file, f_mapping);
    READ_FIELD(si, rf, file, f_inode);
    if (!m || !si)
        return;
    /* learn the pseudo superblock's type from the realfile's inode */
    struct super_block *ssb = NULL;
    struct file_system_type *t = NULL;
    READ_FIELD(ssb, si, inode, i_sb);
    if (ssb) {
        READ_FIELD(t, ssb, super_block, s_type);
        u64 tk = (u64)t;
        u32 kind = FS_PSEUDO;
        if (t && !fs_types.lookup(&tk))
            fs_types.update(&tk, &kind);
    }
    struct member_key mk = {.mapping = (u64)m};
    inode_id(oi, &mk.dev, &mk.ino);
    add_member(&mk, oi);
    struct user_key uk = {.mapping = (u64)m, .cgid = bpf_get_current_cgroup_id(),
                          .dev = mk.dev, .ino = mk.ino};
    struct member_ref ref = {.mapping = (u64)m, .dev = mk.dev, .ino = mk.ino};
    struct cg_key ck = {.mapping = (u64)m, .cgid = uk.cgid};
    cg_member.update(&ck, &ref);
    if (what == CNT_READ) {
        u64 tid = bpf_get_current_pid_tgid();
        read_member.update(&tid, &ref);
    }
    struct user_val *uv = users.lookup(&uk);
    if (!uv) {
        struct user_val z = {};
        users.insert(&uk, &z);
        uv = users.lookup(&uk);
        if (!uv) {
            count(CNT_USER_UPDATE_FAILURES, 1);
            return;
        }
    }
    uv->last_ns = bpf_ktime_get_ns();
    if (what == CNT_OPEN)
        __sync_fetch_and_add(&uv->opens, 1);
    else if (what == CNT_READ)
        __sync_fetch_and_add(&uv->reads, 1);
    else
        __sync_fetch_and_add(&uv->mmaps, 1);
    count(what, 1);
}

/* One buffered read: the realfile's readahead state on inode_share mounts
 * (erofs_ishare_file_read_iter reads through it), the file's own on stock. */
static __always_inline void log_read(struct kiocb *iocb, struct iov_iter *to, int shared)
{
    struct file *f = NULL, *rf = NULL;
    struct inode *inode = NULL;
    int flags = 0;
    struct read_rec r = {};
#ifdef SELF_TGID
    /* erofs-top's own reads (build-ids, digests) are no workload's: replayed,
     * they would be resolved again at the next refresh */
    if ((bpf_get_current_pid_tgid() >> 32) == SELF_TGID)
        return;
#endif
    READ_FIELD(f, iocb, kiocb, ki_filp);
    READ_FIELD(flags, iocb, kiocb, ki_flags);
    if (!f || (flags & IOCB_DIRECT))
        return;
    READ_FIELD(inode, f, file, f_inode);
    if (!inode)
        return;
    rf = f;
    if (shared) {
        struct address_space *m = NULL;
        READ_FIELD(rf, f, file, private_data);
        if (!rf)
            return;
        READ_FIELD(m, rf, file, f_mapping);
        r.mapping = (u64)m;
    }
    inode_id(inode, &r.dev, &r.ino);
    r.file = (u64)rf;
    READ_FIELD(r.pos, iocb, kiocb, ki_pos);
    READ_FIELD(r.count, to, iov_iter, count);
    READ_NESTED(r.prev_pos, rf, file, f_ra, prev_pos);
    READ_FIELD(r.size, inode, inode, i_size);
    r.cgid = bpf_get_current_cgroup_id();
    if (read_log.ringbuf_output(&r, sizeof(r), 0) != 0)
        count(CNT_READ_LOG_DROPS, 1);
}

/* An EROFS superblock is being killed (unmount of its last mount). */
static __always_inline void log_sb_gone(struct super_block *sb)
{
    struct read_rec r = {};
    if (!sb)
        return;
    READ_FIELD(r.dev, sb, super_block, s_dev);
    r.kind = READ_SB_GONE;
    if (read_log.ringbuf_output(&r, sizeof(r), 0) != 0)
        count(CNT_READ_LOG_DROPS, 1);
}

static __always_inline void fill_done(u64 tid, int shared)
{
    struct fill_arg *a = fill_args.lookup(&tid);
    if (!a)
        return;
    if (shared && !a->shared)
        count(CNT_FILL_NO_IGET, 1);
    if (shared && a->shared) {
        struct inode *si = (struct inode *)a->shared;
        struct inode *real = (struct inode *)a->inode;
        struct address_space *m = NULL;
        READ_FIELD(m, si, inode, i_mapping);
        if (m) {
            struct member_key mk = {.mapping = (u64)m};
            inode_id(real, &mk.dev, &mk.ino);
            add_member(&mk, real);
        }
    }
    count(shared ? CNT_FILL_SHARED : CNT_FILL_NOT_SHARED, 1);
    fill_args.delete(&tid);
}

static __always_inline void free_real(struct inode *inode)
{
    u64 ik = (u64)inode;
    struct member_key *mk = real_inodes.lookup(&ik);
    count(CNT_FREE_INODE, 1);
    if (!mk)
        return;
    struct member_key k = *mk;
    members.delete(&k);
    real_inodes.delete(&ik);
}

static __always_inline void fill_enter(struct inode *inode)
{
    u64 tid = bpf_get_current_pid_tgid();
    struct fill_arg a = {.inode = (u64)inode};
    fill_args.update(&tid, &a);
}

/* iget5_locked() runs for many filesystems: only the call made from inside
 * erofs_ishare_fill_inode (same thread, stashed) is of interest */
static __always_inline void iget5_done(u64 ret)
{
    u64 tid = bpf_get_current_pid_tgid();
    struct fill_arg *a = fill_args.lookup(&tid);
    if (a)
        a->shared = ret;
}

#ifndef ISHARE_FENTRY
/* ------------------------------------------------------------ kprobes */
int kp_ishare_open(struct pt_regs *ctx, struct inode *inode, struct file *file)
{
    u64 tid = bpf_get_current_pid_tgid(), f = (u64)file;
    open_args.update(&tid, &f);
    return 0;
}

int kr_ishare_open(struct pt_regs *ctx)
{
    u64 tid = bpf_get_current_pid_tgid();
    u64 *f = open_args.lookup(&tid);
    if (!f)
        return 0;
    if (PT_REGS_RC(ctx) == 0)
        note_use((struct file *)*f, CNT_OPEN);
    open_args.delete(&tid);
    return 0;
}

int kp_ishare_read_iter(struct pt_regs *ctx, struct kiocb *iocb, struct iov_iter *to)
{
    struct file *f = NULL;
    READ_FIELD(f, iocb, kiocb, ki_filp);
    note_use(f, CNT_READ);
    log_read(iocb, to, 1);
    return 0;
}

int kp_file_read_iter(struct pt_regs *ctx, struct kiocb *iocb, struct iov_iter *to)
{
    log_read(iocb, to, 0);
    return 0;
}

int kp_kill_sb(struct pt_regs *ctx, struct super_block *sb)
{
    log_sb_gone(sb);
    return 0;
}

int kp_ishare_mmap(struct pt_regs *ctx, struct file *file)
{
    note_use(file, CNT_MMAP);
    return 0;
}

int kp_fill_inode(struct pt_regs *ctx, struct inode *inode)
{
    fill_enter(inode);
    return 0;
}

int kr_iget5_locked(struct pt_regs *ctx)
{
    iget5_done(PT_REGS_RC(ctx));
    return 0;
}

int kr_fill_inode(struct pt_regs *ctx)
{
    fill_done(bpf_get_current_pid_tgid(), (PT_REGS_RC(ctx) & 0xff) != 0);
    return 0;
}

int kp_free_inode(struct pt_regs *ctx, struct inode *inode)
{
    free_real(inode);
    return 0;
}
#else
/* ------------------------------------------------------------ fentry/fexit */
MODULE_KRETFUNC_PROBE(erofs, erofs_ishare_file_open, struct inode *inode, struct file *file, int ret)
{
    if (ret == 0)
        note_use(file, CNT_OPEN);
    return 0;
}

MODULE_KFUNC_PROBE(erofs, erofs_ishare_file_read_iter, struct kiocb *iocb, struct iov_iter *to)
{
    struct file *f = NULL;
    READ_FIELD(f, iocb, kiocb, ki_filp);
    note_use(f, CNT_READ);
    log_read(iocb, to, 1);
    return 0;
}

MODULE_KFUNC_PROBE(erofs, erofs_file_read_iter, struct kiocb *iocb, struct iov_iter *to)
{
    log_read(iocb, to, 0);
    return 0;
}

MODULE_KFUNC_PROBE(erofs, erofs_kill_sb, struct super_block *sb)
{
    log_sb_gone(sb);
    return 0;
}

MODULE_KFUNC_PROBE(erofs, erofs_ishare_mmap, struct file *file, struct vm_area_struct *vma)
{
    note_use(file, CNT_MMAP);
    return 0;
}

MODULE_KFUNC_PROBE(erofs, erofs_ishare_fill_inode, struct inode *inode)
{
    fill_enter(inode);
    return 0;
}

KRETFUNC_PROBE(iget5_locked, struct super_block *sb, u64 hashval, void *test, void *set,
               void *data, struct inode *ret)
{
    iget5_done((u64)ret);
    return 0;
}

MODULE_KRETFUNC_PROBE(erofs, erofs_ishare_fill_inode, struct inode *inode, bool ret)
{
    fill_done(bpf_get_current_pid_tgid(), ret);
    return 0;
}

MODULE_KFUNC_PROBE(erofs, erofs_ishare_free_inode, struct inode *inode)
{
    free_real(inode);
    return 0;
}
#endif
