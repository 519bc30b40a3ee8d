"""A synthetic node for the refresh benchmarks (not a test module): Readings
+ fixture resolvers (erofs_top/resolve/base.py), and churn between refreshes.

Shape: one mount per container (half file-backed, half loop), containers share
images (4 containers per image: the same image mounted in several containers
gives exact duplicates); files hold 1-4 chunks of 64 pages (2.5 on average:
250,000 files are ~625,000 chunk entries); 10 % of chunks have a second owner.

Churn (``SyntheticNode.churn(fraction)``): about ``fraction`` of the chunk
entries change between two reads, as on a busy node: 50 % page evictions or
inserts in resident chunks, 25 % files read for the first time (new
entries), 25 % files evicted completely.  Unchanged entries are the same
PageChunk objects as at the previous read, as the tracepoint source
delivers them (erofs_top/kernel/probes.py reuses what its map did not change),
and with ``readings(by_file=True)`` the same per-file lists; with
``hint=True`` also what changed since the previous readings()
(``Readings.changed_files``, ``io_by_key``/``changed_io``), as a source with
a dirty set kept by the probe would hand over.

The default churn's first reads are new files of new contents, so the node
grows and drifts (after 80 refreshes at 1 %: +3.8 % files, +27 % content
groups).  ``rereads=True``: a first read is of a file evicted whole before
(a node's fixed set of image files), so the node keeps its files.  Either
way churn ages a fresh node (files partly evicted, copies holding different
pages, objects made anywhere in the heap) for ~100+ refreshes, and a
refresh's cost climbs with it; ``age(N)`` runs N churns before the first
read (benchmarks/README.md, "A fresh node flatters every figure").

Owners under churn: a page evicted or inserted is always the first owner's
bit flipped.  On a chunk with a second owner (10 % of chunks) that bit is
half the time one the second owner holds: the default churn then gives the
page to both owners (a page charged to two cgroups, which a real node never
has: a page keeps the cgroup that inserted it until it is evicted), and a
later flip of it "evicts" it from the first owner only (still resident).
``exclusive_owners=True`` (exporter_phases.py --exclusive-owners): a flipped
page that is resident is evicted from the owner that holds it, one that is
not is inserted by the first owner; the same random draws otherwise.
"""
from __future__ import annotations

import random

import benchlib  # noqa: F401  (sets sys.path)

from erofs_top.readings import FileIO, PageChunk, Readings, kdev
from erofs_top.resolve.base import (AOPS_BLOCK, AOPS_FILEIO, FileInfo, ImageInfo, LazyPathFileInfo,
                                    MountInfo, StaticCgroups, StaticContent, StaticMounts)

PAGE = 4096
CONTAINERS_PER_IMAGE = 4
FULL_MASK = (1 << 64) - 1


class SyntheticNode:
    def __init__(self, n_files: int, n_containers: int, events_factor: int = 1, seed: int = 1,
                 exclusive_owners: bool = False, rereads: bool = False):
        self.rng = random.Random(seed)
        # churn's first reads: files evicted whole read again (a node's fixed
        # set of image files), not new files of new contents (see churn())
        self.rereads = rereads
        self.evicted: list[tuple[int, int]] = []        # (rereads) (container, ino) evicted whole
        self.resident: list[tuple[int, int]] = []       # (rereads) resident files, and
        self.resident_at: dict[tuple[int, int], int] = {}   # each one's place in the list
        # churn: a page evicted leaves the cgroup that inserted it (see churn())
        self.exclusive_owners = exclusive_owners
        self.n_containers = n_containers
        self.events_factor = events_factor
        self.n_images = max(1, n_containers // CONTAINERS_PER_IMAGE)
        images = [ImageInfo(uuid=f"{i:08x}-0000-0000-0000-000000000000", volume_name="",
                            feature_compat=0, feature_incompat=0, block_size=4096,
                            image_id=f"img-{i}", ishare_xattrs=False, compressed=False)
                  for i in range(self.n_images)]
        self.mount_list, cg_paths = [], {}
        for c in range(n_containers):
            dev = kdev(0, 100 + c) if c % 2 == 0 else kdev(7, c)
            self.mount_list.append(MountInfo(
                dev=dev, dev_str=f"{dev >> 20}:{dev & 0xFFFFF}", mountpoint=f"/run/ctr/{c}/rootfs",
                source=f"/img/{c % self.n_images}", backing="file" if c % 2 == 0 else "loop",
                image=images[c % self.n_images]))
            cg_paths[1000 + c] = f"/kubepods.slice/kubepods-besteffort.slice/" \
                                 f"cri-containerd-{c:064x}.scope"
        self.mounts = StaticMounts(self.mount_list)
        self.container_of = {m.dev: c for c, m in enumerate(self.mount_list)}
        self.cgroups = StaticCgroups(cg_paths)
        self.content = StaticContent()
        self.files: dict[tuple[int, int], list[PageChunk]] = {}
        # files whose list changed since the last readings() (a dirty set)
        self.changed: set[tuple[int, int]] = set()
        self.io_by_key: dict[tuple[int, int, int], FileIO] = {}    # the io rows by key
        self.changed_io: set[tuple[int, int, int]] = set()
        self.io: dict[tuple[int, int], FileIO] = {}
        self.per_mount = max(1, n_files // n_containers)
        self.next_ino = [100] * n_containers
        made = 0
        for c in range(n_containers):
            count = self.per_mount if c < n_containers - 1 else n_files - made
            for _ in range(count):
                self.add_file(c)
            made += count

    def add_file(self, c: int) -> int:
        """A new file of container c's mount read for the first time: its chunk entries."""
        m = self.mount_list[c]
        ino = self.next_ino[c]
        self.next_ino[c] += 1
        self.content.files[(m.dev, ino)] = file_info(m, c, ino, self.n_images, self.per_mount)
        self.content.content[(m.dev, ino)] = file_digest(c, ino, self.n_images)
        return self._read_whole(c, ino)

    def _read_whole(self, c: int, ino: int) -> int:
        """File ``ino`` of container c's mount read whole by c (some pages by
        a second cgroup): its chunk entries and io row; returns its chunks."""
        m = self.mount_list[c]
        cg = 1000 + c
        nchunks = 1 + ((ino - 100) % 4)
        chunks = []
        for k in range(nchunks):
            owners = {cg: FULL_MASK}
            if self.rng.random() < 0.1:    # a second cgroup inserted some pages
                other = 1000 + self.rng.randrange(self.n_containers)
                owners = {cg: (1 << 32) - 1, other: ((1 << 32) - 1) << 32}
            chunks.append(PageChunk(m.dev, ino, k, owners))
        key = (m.dev, ino)
        self.files[key] = chunks
        self.changed.add(key)
        if self.rereads:
            self.resident_at[key] = len(self.resident)
            self.resident.append(key)
        pages = nchunks * 64 * self.events_factor
        self._set_io(key, FileIO(m.dev, ino, cg, inserted_pages=pages,
                                 evicted_pages=pages // 2, readahead_pages=pages,
                                 read_folio_count=nchunks * self.events_factor))
        return nchunks

    def chunk_count(self) -> int:
        return sum(len(v) for v in self.files.values())

    def churn(self, fraction: float, chunks: int | None = None) -> int:
        """Change about ``fraction`` of the chunk entries (of ``chunks``, when
        the caller knows their count); returns how many changed."""
        target = max(1, int((self.chunk_count() if chunks is None else chunks) * fraction))
        keys = list(self.files) if fraction > 0.05 else None
        done = 0
        while done < target:
            r = self.rng.random()
            if r < 0.25:
                if self.rereads:        # (none evicted yet: draw again)
                    if self.evicted:
                        done += self._read_whole(*_take(self.evicted, self.rng))
                else:
                    done += self.add_file(self.rng.randrange(self.n_containers))
                continue
            if self.rereads:
                key = self.rng.choice(self.resident)
            else:
                key = self.rng.choice(keys) if keys else self._random_key()
            chunks = self.files.get(key)
            if not chunks:
                continue
            self.changed.add(key)
            if r < 0.5:
                del self.files[key]
                self._set_io(key, None)
                if self.rereads:
                    self._evicted_whole(key)
                done += len(chunks)
                continue
            i = self.rng.randrange(len(chunks))
            pc = chunks[i]
            flip = 1 << self.rng.randrange(64)
            owners = dict(pc.owners)
            cg = next(iter(owners))
            if self.exclusive_owners:           # the page's own owner, if resident
                cg = next((k for k, v in owners.items() if v & flip), cg)
            owners[cg] ^= flip                  # a page evicted or inserted
            chunks = list(chunks)
            chunks[i] = PageChunk(pc.dev, pc.ino, pc.chunk, {k: v for k, v in owners.items() if v})
            self.files[key] = chunks
            old = self.io[key]
            self._set_io(key, FileIO(old.dev, old.ino, old.cgroup_id, old.inserted_pages + 1,
                                     old.evicted_pages + 1, old.readahead_pages,
                                     old.read_folio_count + 1))
            done += 1
        return done

    def age(self, rounds: int, fraction: float = 0.01) -> None:
        """``rounds`` churns made before the first read (none of them named
        as changed): a node that has run a while.  Churn moves a fresh node
        toward a steady mix of files read whole, partly evicted and gone
        (more distinct unions, owners and groups; ~100+ rounds at 1 %), and
        a refresh's cost with it: measured on a fresh node, the steady cost
        seems to climb refresh by refresh."""
        chunks = self.chunk_count()         # (about the same all along: churn keeps it)
        for _ in range(rounds):
            self.churn(fraction, chunks)
        self.changed, self.changed_io = set(), set()
        if rounds:
            self.decode_afresh()

    def decode_afresh(self, shuffle_seed: int | None = None) -> None:
        """Every file's PageChunks and io row made again, in the files'
        order: what a source's first read of the maps gives (objects made
        one after the other as it decodes them), not the churn's objects
        scattered over the heap, which a real first read never hands over.
        ``shuffle_seed``: the files put in a random order first (a map's
        hash order, unrelated to the order the node made them in)."""
        items = list(self.files.items())
        if shuffle_seed is not None:
            random.Random(shuffle_seed).shuffle(items)
        self.files = {key: [PageChunk(pc.dev, pc.ino, pc.chunk, dict(pc.owners), pc.seeded_mask)
                            for pc in chunks] for key, chunks in items}
        self.io = {key: FileIO(f.dev, f.ino, f.cgroup_id, f.inserted_pages, f.evicted_pages,
                               f.readahead_pages, f.read_folio_count)
                   for key, f in self.io.items()}
        self.io_by_key = {(f.dev, f.ino, f.cgroup_id): f for f in self.io.values()}

    def _evicted_whole(self, key: tuple[int, int]) -> None:
        """(rereads) ``key`` leaves the resident list (the last one takes its
        place) for the evicted one, as (its container, ino)."""
        i = self.resident_at.pop(key)
        last = self.resident.pop()
        if last != key:
            self.resident[i] = last
            self.resident_at[last] = i
        self.evicted.append((self.container_of[key[0]], key[1]))

    def _set_io(self, key: tuple[int, int], f: FileIO | None) -> None:
        old = self.io.pop(key, None)
        if old is not None:
            k = (old.dev, old.ino, old.cgroup_id)
            del self.io_by_key[k]
            self.changed_io.add(k)
        if f is not None:
            self.io[key] = f
            k = (f.dev, f.ino, f.cgroup_id)
            self.io_by_key[k] = f
            self.changed_io.add(k)

    def _random_key(self) -> tuple[int, int]:
        c = self.rng.randrange(self.n_containers)
        ino = 100 + self.rng.randrange(max(1, self.next_ino[c] - 100))
        return (self.mount_list[c].dev, ino)

    def readings(self, taken_at: float = 1.0, by_file: bool = False,
                 hint: bool = False) -> Readings:
        """``by_file``: also chunks_by_file, an unchanged file's list being
        the same object as at the previous read (what the tracepoint source
        does).  ``hint`` (with by_file): also changed_files, the files whose
        list changed since the previous readings(), and io_by_key with
        changed_io, the FileIO rows by key and the keys changed (what a
        source with a dirty set written by the probe hands over)."""
        r = Readings(taken_at=taken_at, page_size=PAGE)
        for chunks in self.files.values():
            r.chunks.extend(chunks)
        if by_file:
            r.chunks_by_file = dict(self.files)
            if hint:
                r.changed_files = self.changed
                r.io_by_key, r.changed_io = dict(self.io_by_key), self.changed_io
        self.changed, self.changed_io = set(), set()
        r.io = list(self.io.values())
        r.maps = {"chunks": (len(r.chunks), 1 << 20, 0), "io": (len(r.io), 1 << 20, 0)}
        return r

    def resolvers(self):
        return self.mounts, self.cgroups, self.content


def file_info(m: MountInfo, c: int, ino: int, n_images: int, per_mount: int) -> FileInfo:
    """The FileInfo of file ``ino`` of container c's mount ``m``."""
    j = ino - 100
    nchunks = 1 + (j % 4)
    # same nid -> same size within an image; sizes differ across images
    size = (nchunks * 64 - 3) * PAGE + (c % n_images) * per_mount + j
    aops = AOPS_FILEIO if m.backing == "file" else AOPS_BLOCK
    return FileInfo(ino, f"{m.mountpoint}/usr/lib/f{j}.so", size, True, aops)


def file_digest(c: int, ino: int, n_images: int) -> str:
    """The content digest of file ``ino`` of container c's mount: one per
    (image, nid)."""
    return f"{(c % n_images) * 10_000_000 + ino - 100:064x}"


class DerivedFileInfo(LazyPathFileInfo):
    """file_info()'s FileInfo with its path made when asked, from its mount
    (``_namer``; as ImageContent's IndexedFileInfo makes it from the image's
    names): no path string kept per resident file."""

    __slots__ = ()

    @property
    def path(self) -> str:
        return f"{self._namer.mountpoint}/usr/lib/f{self.ino - 100}.so"


class DerivedContent(StaticContent):
    """A SyntheticNode's StaticContent answers, derived from (dev, ino) when
    asked (file_info, file_digest) instead of kept per file: a resolver that
    reads an image's inode when asked, as ImageContent does, so the process
    that uses it holds no per-file state but what erofs-top keeps of it
    (node_process.py: the exporter's RSS).  Any (dev, ino) of a known mount
    has an answer; the aggregator asks only of files the readings hold."""

    def __init__(self, mount_list: list[MountInfo], n_images: int, per_mount: int):
        super().__init__()
        self.mount_at = {m.dev: c for c, m in enumerate(mount_list)}
        self.n_images, self.per_mount = n_images, per_mount

    def file_info(self, mount, ino):
        c = self.mount_at.get(mount.dev)
        if c is None:
            return None
        f = file_info(mount, c, ino, self.n_images, self.per_mount)
        return DerivedFileInfo(mount, ino, f.size, f.regular, f.aops)

    def digest(self, mount, ino):
        self.digest_calls += 1
        c = self.mount_at.get(mount.dev)
        return None if c is None else file_digest(c, ino, self.n_images)


def _take(items: list, rng: random.Random):
    """A random item removed from ``items`` (the last one takes its place)."""
    i = rng.randrange(len(items))
    items[i], items[-1] = items[-1], items[i]
    return items.pop()
