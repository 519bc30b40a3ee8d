"""Readings: the aggregator's input, one consistent read of the kernel state.

Produced by erofs_top.kernel (BPF maps), by erofs_top.snapshot (ground truth, no BPF)
and by the recorder's reader (offline).  Pure data; kernel dev_t values are in
the kernel encoding (major << 20 | minor), as the tracepoints report them.

Page residency is kept as 64-page chunks: ``PageChunk.owners`` maps the cgroup
id that inserted pages (0 = unknown) to a 64-bit mask of page indices
``chunk*64 .. chunk*64+63`` that are resident and were inserted by it.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

CHUNK_PAGES = 64
UNKNOWN_CGROUP = 0


def kdev(major: int, minor: int) -> int:
    """Kernel-internal dev_t (what tracepoints print as s_dev)."""
    return (major << 20) | minor


def kdev_split(dev: int) -> tuple[int, int]:
    return dev >> 20, dev & 0xFFFFF


def kdev_str(dev: int) -> str:
    major, minor = kdev_split(dev)
    return f"{major}:{minor}"


def kdev_from_st_dev(st_dev: int) -> int:
    """userspace st_dev (glibc new_encode_dev) -> kernel dev_t."""
    import os
    return kdev(os.major(st_dev), os.minor(st_dev))


@dataclass(slots=True)
class PageChunk:
    dev: int                    # kernel dev_t of the EROFS superblock
    ino: int
    chunk: int                  # page index // 64
    owners: dict[int, int]      # cgroup id -> bitmask of resident pages it inserted
    seeded_mask: int = 0        # pages that were already resident when tracing started


@dataclass(slots=True)
class FileIO:
    """Counters over the run for one (file, cgroup)."""
    dev: int
    ino: int
    cgroup_id: int
    inserted_pages: int = 0
    evicted_pages: int = 0      # attributed to the cgroup that had inserted them
    readahead_pages: int = 0
    read_folio_count: int = 0


@dataclass
class SharedInode:
    """Full tier: one shared (inode_share) inode on the pseudo_erofs superblock.

    Its pages are keyed by the address_space pointer, never by (dev, ino): every
    shared inode has i_ino 0.  ``members`` are the real inodes (dev, ino) that
    joined it; ``users`` maps a cgroup id to the members it opened/read/mapped.
    """
    mapping: int                            # kernel pointer, an opaque key only
    chunks: dict[int, dict[int, int]]       # chunk -> {inserting cgroup id -> mask}
    members: set[tuple[int, int]] = field(default_factory=set)
    users: dict[int, set[tuple[int, int]]] = field(default_factory=dict)
    size: int = 0
    # member (dev, ino) -> chunk -> mask of pages its readers asked for (read,
    # fault, map-around: mm_filemap_get_pages/map_pages/fault); None: not traced
    touched: dict[tuple[int, int], dict[int, int]] | None = None


@dataclass(frozen=True)
class ReadRecord:
    """Full tier: one buffered read(2)/pread(2) of an EROFS regular file, as
    the kernel's read_iter saw it (probes/ishare.c ``read_log``), in order.

    ``file``: the struct file whose readahead state the read uses (an opaque
    pointer; the realfile on inode_share mounts); ``mapping``: the shared
    inode's address_space pointer on inode_share mounts, 0 on stock files;
    ``prev_pos``: that file's f_ra.prev_pos before the read, -1 on a fresh
    open; ``size``: i_size.  ``sb_gone``: not a read but the end of the
    EROFS superblock ``dev`` (erofs_kill_sb, the last unmount): every read of
    ``dev`` before it is of a mount that no longer exists (a later mount may
    get the same dev); only ``dev`` is meaningful then.  ``fault``: not a
    read but one filemap_fault() of the page at ``pos`` through an mmap (the
    tracepoint has no struct file: ``file`` 0, ``count`` 0)."""
    dev: int                    # kernel dev_t of the member's EROFS superblock
    ino: int
    file: int
    mapping: int
    pos: int
    count: int
    prev_pos: int
    size: int
    cgroup_id: int
    sb_gone: bool = False
    fault: bool = False         # a filemap_fault of page pos // 4096 (mmap), not a read


@dataclass
class Readings:
    taken_at: float
    page_size: int
    chunks: list[PageChunk] = field(default_factory=list)
    io: list[FileIO] = field(default_factory=list)
    # optional, the same chunks by file (dev, ino): a source that keeps the
    # list of a file whose entries did not change since its previous read (the
    # same list object) lets the aggregator skip that file at once.  Or a
    # mapping that builds a file's list at each access (the probe source's
    # maps.FileChunks, ``built_on_access``: new objects each time, never
    # compared by identity; always with changed_files)
    chunks_by_file: Mapping[tuple[int, int], list[PageChunk]] | None = None
    # optional, with chunks_by_file: the files whose list may differ from the
    # previous read of the same source (new, changed or gone); None = unknown,
    # compare every file.  A source that knows what changed (a dirty set kept
    # by the probe) lets a refresh cost what changed, not what is resident.
    changed_files: set[tuple[int, int]] | None = None
    # optional, the same FileIO rows by (dev, ino, cgroup id), and the keys
    # whose row may differ from the previous read (new, changed or gone; a
    # superset is fine); both given, the io sums cost what changed (else every
    # row is compared).  The probe source's is a mapping that builds a FileIO
    # at each access (maps.IoRows, ``built_on_access``: compare by value)
    io_by_key: Mapping[tuple[int, int, int], FileIO] | None = None
    changed_io: set[tuple[int, int, int]] | None = None
    # (kernel dev_t of host fs, ino of image file) -> resident pages of the backing file
    backing_pages: dict[tuple[int, int], int] = field(default_factory=dict)
    # (host dev, image ino) -> {resident image-file page: cgroup id charged}
    image_cache_owners: dict[tuple[int, int], dict[int, int]] = field(default_factory=dict)
    shared: list[SharedInode] = field(default_factory=list)
    # optional (full tier): the reads since the previous Readings, in order;
    # other sources leave it empty.  ``reads_lost``: records the kernel's
    # ring dropped since then (the aggregator then forgets every read log)
    reads: list[ReadRecord] = field(default_factory=list)
    reads_lost: int = 0
    # (host dev, image ino) -> size of the image file in bytes (read logs replay to EOF)
    image_sizes: dict[tuple[int, int], int] = field(default_factory=dict)
    # kernel counters: map name -> (entries, capacity, update failures)
    maps: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    page_cache_bytes: int = 0       # /proc/meminfo Cached, for scale
    lost_events: int = 0
    owner_overflow_pages: int = 0
    probes_attached: bool = False
    bpf_run_time_ns: dict[str, int] = field(default_factory=dict)
    bpf_run_count: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class EventKind(IntEnum):
    """``PageEvent.kind``: what a record-mode event says happened.

    1-4 are probes/filemap.c ``enum event_kind`` (``EV_`` + the same name;
    tests/unit/test_probe_contracts.py checks it), one per hook.  The others no
    probe emits: 5/6 are in recordings of older versions (image-file pages, now
    read with cachestat(2) at each Model), 16+ are shared-inode (inode_share)
    events keyed by the shared mapping, an opaque 64-bit id (never a
    fingerprint or domain_id), for recordings and synthetic scripts.
    """
    ADD = 1             # pages [index, index+nr) inserted into an EROFS file's cache
    DELETE = 2          # ... removed from it
    READAHEAD = 3       # erofs_readahead: nr pages from index
    READ_FOLIO = 4      # erofs_read_folio: a miss on one folio
    BACKING_ADD = 5     # image-file pages inserted (older recordings)
    BACKING_DELETE = 6  # ... removed (older recordings)
    SHARE_OPEN = 16     # a cgroup opened real inode (dev, ino) backed by shared `mapping`
    SHARE_READ = 17     # ... read it
    SHARE_MMAP = 18     # ... mapped it
    SHARE_FILL = 19     # pages [index, index+nr) inserted into the shared mapping
    SHARE_FREE = 20     # pages removed from the shared mapping


@dataclass
class PageEvent:
    ts_ns: int          # bpf_ktime_get_ns (monotonic)
    kind: int           # EventKind
    dev: int            # kernel dev_t: the EROFS sb, or the host fs for backing kinds
    ino: int
    index: int          # page index (add/delete/read_folio) or readahead start
    nr_pages: int       # 1<<order for add/delete, nrpage for readahead, 1 for read_folio
    cgroup_id: int      # the current task's cgroup (for delete: not the owner)
    pid: int
