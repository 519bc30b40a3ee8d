"""Savings from the kernel's own readahead, replayed on the logged reads.  Pure.

Random readers cache what the kernel's readahead decides from each inode's
cache history and each open file's readahead state (docs/sharing.md
"Random readers"): which pages another world (sharing on, or off) would
hold is not a function of the pages cached now.  The full tier logs every
buffered read of an EROFS regular file in order (probes/ishare.c
``read_log``, ``Readings.reads``); ``ReadLog`` keeps them, and
``replay_savings`` replays them through ``erofs_top.readahead`` three ways:

- the actual world (stock files on their own inode with large folios,
  inode_share files on their shared inode without; misses through the
  reader's image file, one readahead state per mount).  Where that replay
  reproduces what is cached now (every regular file's resident pages
  exactly; every replayed image page resident and charged to the cgroup
  whose read inserted it), the replay explains the mounts involved;
- sharing off (every member on its own inode): ``realized`` = that - actual;
- sharing on (the copies of each mergeable group on one inode, per stage):
  ``potential`` = actual - that.

Mounts are taken together (a component) when one group, shared inode or
image file spans them; a component is explained only if all its mounts are,
and only plain file-backed (or block) mounts can be.  Compressed files are
replayed where ``World.zfile`` knows their extents (lz4-class, see
erofs_top/readahead.py; inline pclusters too): their pclusters fill the
reader's mount's managed cache, which must then equal the one cached now
(pages and payers), and the compressed pages not in it are read through the
reader's image like any miss (cold images; a warm image's pages, charged to
no reader, count as cached before the reads).
Everything else keeps the rules of erofs_top/savings.py.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Iterable

from .attribution import managed_key
from .readahead import PAGE, MetaPages, Read, Replayed, ZFile, replay_reads
from .readings import CHUNK_PAGES, ReadRecord, Readings
from .savings import Savings

MAX_READS = 100_000             # records kept in all (about 100 bytes each; replay cost)
MAX_READS_PER_INODE = 65_536    # past it the inode's mount is not explained


class ReadLog:
    """The logged reads of the live mounts, in order, bounded.

    A mount that goes loses its reads: at its superblock's end in the log
    (an ``sb_gone`` record, exact even when a new mount gets the same dev
    before the next refresh), or when its identity (``sig_of``) differs at
    a refresh (kernels where erofs_kill_sb is not probed).  Past
    ``max_per_inode`` reads an inode's further reads are dropped and its
    mount is no longer explained; past ``max_reads``, or
    when the kernel's ring dropped records, every read is forgotten (the
    resident pages then differ from any replay: the old rules apply until
    they are evicted), with a warning."""

    def __init__(self, max_reads: int = MAX_READS, max_per_inode: int = MAX_READS_PER_INODE):
        self.max_reads, self.max_per_inode = max_reads, max_per_inode
        self.records: list[ReadRecord] = []
        self.per_inode: dict[tuple[int, int], int] = {}
        self.overflowed: set[tuple[int, int]] = set()
        self.dev_sigs: dict[int, object] = {}
        self.active = False             # a source ever logged reads
        self.generation = 0             # changes whenever the records do
        self.warning = ""
        self.replays: dict = {}         # replays of this generation (replay_savings' memo)
        self.replays_of = -1

    def clear(self, why: str) -> None:
        self.records, self.per_inode, self.overflowed, self.dev_sigs = [], {}, set(), {}
        self.generation += 1
        self.warning = why

    def _forget(self, devs: set[int]) -> None:
        self.records = [r for r in self.records if r.dev not in devs]
        self.per_inode = {k: n for k, n in self.per_inode.items() if k[0] not in devs}
        self.overflowed = {k for k in self.overflowed if k[0] not in devs}
        for d in devs:
            self.dev_sigs.pop(d, None)
        self.generation += 1

    def update(self, readings: Readings, sig_of: Callable[[int], object]) -> None:
        """Take the new reads; ``sig_of(dev)``: the mount's identity now."""
        stale = {d for d, s in self.dev_sigs.items() if sig_of(d) != s}
        if stale:
            self._forget(stale)
        if readings.reads_lost:
            self.clear(f"read log: the kernel dropped {readings.reads_lost} read records; "
                       f"savings of random readers follow the page rules until the cache turns over")
        for r in readings.reads:
            if r.sb_gone:
                if r.dev in self.dev_sigs:
                    self._forget({r.dev})
                continue
            self.active = True
            k = (r.dev, r.ino)
            n = self.per_inode.get(k, 0)
            if n >= self.max_per_inode:
                self.overflowed.add(k)
                continue
            if r.dev not in self.dev_sigs:
                self.dev_sigs[r.dev] = sig_of(r.dev)
            self.per_inode[k] = n + 1
            self.records.append(r)
        if any(not r.sb_gone for r in readings.reads):
            self.generation += 1
        if len(self.records) > self.max_reads:
            self.clear(f"read log: more than {self.max_reads} reads kept, forgotten; savings "
                       f"of random readers follow the page rules until the cache turns over")


@dataclass
class Inode:
    """What the replay needs of one resident copy."""
    key: tuple                  # (dev, ino) stock, ("s", mapping) a shared inode
    devs: frozenset[int]        # its mount(s): a shared inode's members' mounts
    pages: frozenset[int]       # resident now
    regular: bool = True        # directories and the like are not read by read_iter


@dataclass
class World:
    """The node as the replay sees it."""
    records: list[ReadRecord]
    inodes: list[Inode]                             # every resident copy on the logged mounts
    candidate: Callable[[int], bool]                # dev: plain file-backed/block, uncompressed
    image_of: Callable[[int], tuple | None]         # dev -> image file key (None: no image)
    image_map: Callable[[int, int], list[int] | None]   # (dev, ino) -> image page per file page
    image_sizes: dict[tuple, int]
    image_owners: dict[tuple, dict[int, int]]       # image key -> {resident page: cgroup}
    overflowed: set[tuple[int, int]] = field(default_factory=set)
    # stage -> groups, each the copy keys ((dev, ino) or ("s", mapping)) that would share
    groups: dict[str, list[list[tuple]]] = field(default_factory=dict)
    memo: dict | None = None        # replays of these records, kept by the caller
    # (dev, ino) -> a compressed file's extents (None: not compressed, or not replayable)
    zfile: Callable[[int, int], ZFile | None] = lambda dev, ino: None
    # (dev, ino) -> the image pages of its inode and inline tail (None: unknown)
    meta_pages: Callable[[int, int], MetaPages | None] = lambda dev, ino: None
    # dev -> its metadata is read through the image's readahead (loop devices)
    meta_readahead: Callable[[int], bool] = lambda dev: False


@dataclass
class ReplaySaved:
    explained_devs: set[int] = field(default_factory=set)
    potential: dict[str, Savings] = field(default_factory=dict)    # per stage
    realized_file_pages: int = 0
    realized_image_pages: int = 0
    realized_compressed_pages: int = 0


def page_list(page_map: dict[int, tuple[int, ...]] | None, size: int) -> list[int] | None:
    """savings.PageMap -> image page of each file page (-1: none, an inline
    tail); None when a file page spans several image pages (blocks smaller
    than a page: not modelled by the replay)."""
    if page_map is None:
        return None
    out = []
    for p in range(-(-size // PAGE)):
        ps = page_map.get(p, (-1,))
        if len(ps) != 1:
            return None
        out.append(ps[0])
    return out


def _replay(w: World, records: list[ReadRecord], key_of: Callable[[ReadRecord], tuple],
            memo_key: tuple) -> Replayed:
    """The replay of ``records`` with inodes keyed by ``key_of``; the same
    records and keys (``memo_key``) replay once per World.memo."""
    memo_key = (memo_key, len(records), len(w.records))
    if w.memo is not None and memo_key in w.memo:
        return w.memo[memo_key]
    out = _replay_now(w, records, key_of)
    if w.memo is not None:
        w.memo[memo_key] = out
    return out


def _replay_now(w: World, records: list[ReadRecord], key_of: Callable[[ReadRecord], tuple]
                ) -> Replayed:
    reads, sizes = [], {}
    opens: dict[tuple, int] = {}
    for r in records:
        k = key_of(r)
        sizes[k] = r.size
        if r.fault:             # no struct file: one readahead state per mapping and cgroup
            reads.append(Read(k, (r.dev, r.ino), ("fault", r.mapping or (r.dev, r.ino),
                                                  r.cgroup_id), r.pos, 0, None,
                              (r.cgroup_id, r.dev), fault=True))
            continue
        f = (r.file, r.mapping)
        if r.prev_pos < 0:      # a fresh open (struct files are reused): fresh f_ra
            opens[f] = opens.get(f, 0) + 1
        reads.append(Read(k, (r.dev, r.ino), (f, opens.get(f, 0)), r.pos, r.count,
                          r.prev_pos, (r.cgroup_id, r.dev)))
    return replay_reads(reads, sizes.get, large_folios=lambda k: k[0] != "s" and k[0] != "g",
                        image_map=lambda m: w.image_map(*m) if w.image_of(m[0]) else None,
                        image_of=w.image_of,
                        image_size=lambda img: w.image_sizes.get(img, 0),
                        zfile=lambda m: w.zfile(*m), image_seed=_warm_images(w, records),
                        meta_of=lambda m: w.meta_pages(*m), meta_readahead=w.meta_readahead,
                        shared=lambda k: k[0] == "s" or k[0] == "g")


def _warm_images(w: World, records: list[ReadRecord]) -> dict:
    """The image files compressed files are read through -> the pages cached
    now and charged to no reader (a warm image), taken as cached before the
    reads in every world.  Images of uncompressed files only are replayed
    from empty, as before."""
    readers = {r.cgroup_id for r in records}
    imgs = {w.image_of(r.dev) for r in records if w.zfile(r.dev, r.ino) is not None}
    return {img: {p for p, cg in w.image_owners.get(img, {}).items() if cg not in readers}
            for img in imgs if img is not None}


def actual_key(r: ReadRecord) -> tuple:
    return ("s", r.mapping) if r.mapping else (r.dev, r.ino)


def _failed_devs(w: World, actual: Replayed) -> set[int]:
    """Mounts whose cache the replay of the actual world does not reproduce."""
    bad = {d for d, _ in w.overflowed}
    bad |= {r.dev for r in w.records if not w.candidate(r.dev) or (
        w.image_of(r.dev) is not None and w.image_map(r.dev, r.ino) is None
        and w.zfile(r.dev, r.ino) is None)}
    bad |= _failed_managed(w, actual)
    # A fault on a shared inode: fault-around had mapped the pages the reader
    # touched that were cached, so the faults logged are this world's only;
    # on the member's own inode it would have faulted on others (not logged)
    bad |= {r.dev for r in w.records if r.fault and r.mapping}
    read_devs = {r.dev for r in w.records}
    for ino in w.inodes:
        if not ino.regular:
            continue
        if not ino.devs <= read_devs:   # a member's mount holds cache but logged no read
            bad |= ino.devs             # (mmap faults on a shared inode: invisible here)
        c = actual.inodes.get(ino.key)
        if (c.pages if c is not None else set()) != ino.pages:
            bad |= ino.devs
    resident = {ino.key for ino in w.inodes}
    gone = {k for k, c in actual.inodes.items() if c.pages and k not in resident}
    if gone:        # the replay holds pages of an inode with none cached now (evicted)
        bad |= {r.dev for r in w.records if actual_key(r) in gone}
    for img, cache in actual.images.items():
        owners, tags = w.image_owners.get(img, {}), actual.owners.get(("image", img), {})
        if any(owners.get(p) != tags[p][0] for p in tags):     # seeded pages: untagged
            bad |= _devs_of_image(w, img)
    return bad


def _failed_managed(w: World, actual: Replayed) -> set[int]:
    """Mounts whose managed cache the replay does not reproduce (pages and
    payers).  (The image pages compressed reads insert are checked with
    every other replayed image page.)"""
    bad = set()
    for dev in {r.dev for r in w.records}:
        owners = w.image_owners.get(managed_key(dev), {})
        tags = actual.owners.get(("managed", dev), {})
        if set(owners) != actual.managed.get(dev, set()) or any(
                owners[p] != tags[p][0] for p in tags):
            bad.add(dev)
    return bad


def _devs_of_image(w: World, img) -> set[int]:
    return {r.dev for r in w.records if w.image_of(r.dev) == img}


def components(w: World) -> dict[int, int]:
    """dev -> a representative dev of its component (union-find over the
    groups, shared inodes and image files that span mounts)."""
    parent: dict[int, int] = {}

    def find(d: int) -> int:
        parent.setdefault(d, d)
        while parent[d] != d:
            parent[d] = parent[parent[d]]
            d = parent[d]
        return d

    def join(devs: Iterable[int]) -> None:
        devs = list(devs)
        if devs:
            find(devs[0])
        for d in devs[1:]:
            parent[find(d)] = find(devs[0])
    by_key = {ino.key: ino.devs for ino in w.inodes}
    for ino in w.inodes:
        join(ino.devs)
    for r in w.records:
        join([r.dev] + list(by_key.get(actual_key(r), ())))
    images: dict[tuple, list[int]] = defaultdict(list)
    for d in {r.dev for r in w.records} | {d for ino in w.inodes for d in ino.devs}:
        if w.image_of(d) is not None:
            images[w.image_of(d)].append(d)
    for devs in images.values():
        join(devs)
    for groups in w.groups.values():
        for g in groups:
            join(d for k in g for d in by_key.get(k, ()))
    return {d: find(d) for d in list(parent)}


def _count(replayed: Replayed) -> tuple[int, int, int, dict[tuple, int]]:
    """(file pages, image pages, managed pages, pages per (cgroup, dev) tag)."""
    tags: dict[tuple, int] = defaultdict(int)
    for owners in replayed.owners.values():
        for tag in owners.values():
            tags[tag] += 1
    return (sum(len(c.pages) for c in replayed.inodes.values()),
            sum(len(c.pages) for c in replayed.images.values()),
            sum(len(m) for m in replayed.managed.values()), tags)


def replay_savings(w: World) -> ReplaySaved:
    """Savings of the explained components (see the module doc)."""
    out = ReplaySaved()
    if not w.records:
        return out
    maps: dict[tuple, list[int] | None] = {}
    image_map = w.image_map

    def memo(dev: int, ino: int) -> list[int] | None:
        if (dev, ino) not in maps:
            maps[dev, ino] = image_map(dev, ino)
        return maps[dev, ino]
    w.image_map = memo
    # a page map that arrives later changes the replays: part of their memo key
    known = sum(1 for r in w.records if w.image_of(r.dev) is not None and memo(r.dev, r.ino))
    # so do the warm image pages (owners change without new reads)
    warm = tuple(sorted((repr(img), len(pages), hash(frozenset(pages)))
                        for img, pages in _warm_images(w, w.records).items()))
    w.memo = None if w.memo is None else w.memo.setdefault((known, warm), {})
    actual = _replay(w, w.records, actual_key, ("actual",))
    bad = _failed_devs(w, actual)
    comp = components(w)
    bad_roots = {comp[d] for d in bad if d in comp}
    out.explained_devs = {d for d, root in comp.items() if root not in bad_roots}
    records = [r for r in w.records if r.dev in out.explained_devs]
    if not records:
        return out
    devs_key = tuple(sorted(out.explained_devs))
    if len(records) != len(w.records):
        actual = _replay(w, records, actual_key, ("actual", devs_key))
    a_counts = _count(actual)
    off = _replay(w, records, lambda r: (r.dev, r.ino), ("off", devs_key))
    o_file, o_image, o_managed, _ = _count(off)
    out.realized_file_pages, out.realized_image_pages = o_file - a_counts[0], o_image - a_counts[1]
    out.realized_compressed_pages = o_managed - a_counts[2]
    for stage, groups in w.groups.items():
        out.potential[stage] = _shared_world(w, records, groups, a_counts, devs_key)
    return out


def _shared_world(w: World, records: list[ReadRecord], groups: list[list[tuple]],
                  actual: tuple[int, int, int, dict], devs_key: tuple) -> Savings:
    """Savings of one stage: the actual world minus the world where each
    group's copies read through one inode."""
    group_of: dict[tuple, tuple] = {}
    for g in groups:
        for k in g:
            group_of[k] = ("g", g[0])

    def key(r: ReadRecord) -> tuple:
        k = actual_key(r)
        return group_of.get(k, k)
    on = _replay(w, records, key, ("on", devs_key, tuple(map(tuple, groups))))
    s_file, s_image, s_managed, s_tags = _count(on)
    a_file, a_image, a_managed, a_tags = actual
    out = Savings(file_pages=a_file - s_file, image_pages=a_image - s_image,
                  compressed_pages=a_managed - s_managed)
    for tag in set(a_tags) | set(s_tags):
        n = a_tags.get(tag, 0) - s_tags.get(tag, 0)
        if n:
            out.by_cgroup[tag[0]] += n
            out.by_dev[tag[1]] += n
    return out


def chunk_pages(union: dict[int, int]) -> frozenset[int]:
    return frozenset(c * CHUNK_PAGES + b for c, m in union.items()
                     for b in range(CHUNK_PAGES) if m >> b & 1)
