"""Page-cache primitives without BPF: what is in the page cache now, and who pays for it.

All read-only with respect to the page cache (see each one):

* ``cachestat(fd)``      -- cachestat(2), syscall 451 (Linux 6.5+): resident page count.
* ``resident_mask(path)`` -- mmap + mincore(2): which page indices are resident.
* ``page_owners(path, pages)`` -- the memory cgroup (inode number) that each resident
  page is charged to, through /proc/self/pagemap (PFN, needs CAP_SYS_ADMIN) and
  /proc/kpagecgroup.
* ``preserve_residency(paths)`` -- a context manager that drops, afterwards, the pages
  that reading inside it pulled into the page cache (used by the content resolver,
  whose hashing must not perturb what erofs-top measures).

``snapshot.snapshot_readings(mounts, cgroups)`` turns them into ``readings.Readings``
for every EROFS mount: the lowest capability tier, and the oracle of the integration
tests.  This module imports nothing of erofs-top: resolvers use it too.
"""
from __future__ import annotations

import array
import ctypes
import errno
import mmap
import os
import re
import stat
import sys
import time
from contextlib import contextmanager
from itertools import compress

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                       ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]

SYS_CACHESTAT = 451             # x86_64 and the generic table alike
MAP_FAILED = ctypes.c_void_p(-1).value
MADV_RANDOM = 1
MADV_POPULATE_READ = 22         # Linux 5.14+: fault pages in, errors instead of SIGBUS
PAGEMAP_PFN_MASK = (1 << 55) - 1
PAGEMAP_PRESENT = 1 << 63


class PageCacheError(OSError):
    """A ground-truth primitive failed; str() is a one-line reason."""


# ---------------------------------------------------------------- cachestat(2)
class _CachestatRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Cachestat(ctypes.Structure):
    _fields_ = [("nr_cache", ctypes.c_uint64), ("nr_dirty", ctypes.c_uint64),
                ("nr_writeback", ctypes.c_uint64), ("nr_evicted", ctypes.c_uint64),
                ("nr_recently_evicted", ctypes.c_uint64)]


_cachestat_missing = False


def cachestat_available() -> bool:
    return not _cachestat_missing


def cachestat(fd: int, offset: int = 0, length: int = 0) -> dict[str, int]:
    """cachestat(2) of ``fd`` over [offset, offset+length) (length 0 = to EOF).

    Counts are in pages.  Raises PageCacheError (errno ENOSYS when the kernel has no
    cachestat; callers then fall back to mincore).
    """
    global _cachestat_missing
    if _cachestat_missing:
        raise PageCacheError(errno.ENOSYS, "cachestat(2) not available on this kernel")
    rng = _CachestatRange(offset, length)
    out = _Cachestat()
    rc = _libc.syscall(SYS_CACHESTAT, ctypes.c_int(fd), ctypes.byref(rng),
                       ctypes.byref(out), ctypes.c_uint(0))
    if rc != 0:
        err = ctypes.get_errno()
        if err == errno.ENOSYS:
            _cachestat_missing = True
        raise PageCacheError(err, f"cachestat(2): {os.strerror(err)}")
    return {name: getattr(out, name) for name, _ in _Cachestat._fields_}


def file_resident_pages(path: str) -> int:
    """Resident pages of one file (cachestat, or mincore where cachestat is missing)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd_resident_pages(fd)
    finally:
        os.close(fd)


def fd_resident_pages(fd: int) -> int:
    if not _cachestat_missing:
        try:
            return cachestat(fd)["nr_cache"]
        except PageCacheError as e:
            if e.errno != errno.ENOSYS:
                raise
    return bin(fd_resident_mask(fd)).count("1")


# ---------------------------------------------------------------- mmap + mincore
class _Mapping:
    """A read-only shared mapping of a file (whole, or ``pages`` pages from
    page ``first_page``), by raw address (ctypes)."""

    def __init__(self, fd: int, size: int, first_page: int = 0, pages: int | None = None):
        self.size = size
        whole_length = (size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
        self.length = whole_length if pages is None else pages * PAGE_SIZE
        addr = _libc.mmap(None, self.length, mmap.PROT_READ, mmap.MAP_SHARED, fd,
                          first_page * PAGE_SIZE)
        if addr in (None, MAP_FAILED):
            err = ctypes.get_errno()
            raise PageCacheError(err, f"mmap: {os.strerror(err)}")
        self.addr = addr

    @property
    def pages(self) -> int:
        return self.length // PAGE_SIZE

    def mincore(self) -> bytes:
        vec = ctypes.create_string_buffer(self.pages)
        if _libc.mincore(self.addr, self.length, vec) != 0:
            err = ctypes.get_errno()
            raise PageCacheError(err, f"mincore: {os.strerror(err)}")
        return vec.raw

    def close(self) -> None:
        if self.addr is not None:
            _libc.munmap(self.addr, self.length)
            self.addr = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _mask_from_vec(vec: bytes) -> int:
    # mincore sets bit 0 of each byte for a resident page; build the bitmap in C speed
    bits = vec.translate(_BIT0).decode("ascii")[::-1]
    return int(bits, 2) if bits else 0


_BIT0 = bytes((0x31 if b & 1 else 0x30) for b in range(256))


def fd_size(fd: int) -> int:
    """The file's size in bytes; a block device's (whose st_size is 0) by seeking
    to its end."""
    st = os.fstat(fd)
    if stat.S_ISBLK(st.st_mode):
        return os.lseek(fd, 0, os.SEEK_END)
    return st.st_size


def fd_resident_mask(fd: int) -> int:
    size = fd_size(fd)
    if size == 0:
        return 0
    with _Mapping(fd, size) as m:
        return _mask_from_vec(m.mincore())


def resident_mask(path: str) -> int:
    """Bitmap (bit i = page index i) of the file's pages resident now (mincore).

    mincore reports page-cache residency of the mapped file without faulting
    anything in, so it does not perturb the cache.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return fd_resident_mask(fd)
    finally:
        os.close(fd)


def mask_pages(mask: int) -> list[int]:
    """Page indices set in a bitmap, ascending."""
    out = []
    base = 0
    while mask:
        low = mask & 0xFFFFFFFFFFFFFFFF
        while low:
            bit = low & -low
            out.append(base + bit.bit_length() - 1)
            low ^= bit
        mask >>= 64
        base += 64
    return out


def resident_pages(path: str) -> list[int]:
    return mask_pages(resident_mask(path))


# ---------------------------------------------------------------- owners
def kpagecgroup_readable() -> tuple[bool, str]:
    """(readable, reason). Page owners need /proc/kpagecgroup and real PFNs."""
    try:
        with open("/proc/kpagecgroup", "rb", buffering=0) as f:
            f.read(8)
    except OSError as e:
        return False, f"/proc/kpagecgroup not readable ({e.strerror}; needs root)"
    return True, ""


def page_runs(pages: list[int]):
    """Contiguous runs [(first, count)] of sorted page indices."""
    start = prev = None
    for p in pages:
        if start is None:
            start = prev = p
        elif p == prev + 1:
            prev = p
        else:
            yield start, prev - start + 1
            start = prev = p
    if start is not None:
        yield start, prev - start + 1


def page_owners(path: str, pages: list[int] | None = None) -> dict[int, int]:
    """{page index: memcg inode number} for resident pages of ``path``.

    ``pages``: indices to look at (default: all resident ones, from mincore).  Only
    pages mincore says are resident are touched, with MADV_POPULATE_READ on a
    MADV_RANDOM mapping: on a resident page that is a minor fault that maps the
    page and adds nothing to the cache (and MADV_RANDOM keeps a page marked for
    readahead from starting async readahead).  A page evicted between mincore and
    the touch would be read back in (one page); the window is microseconds.
    memcg inode 0 means the page has no memcg (or the kernel hid it).
    Raises PageCacheError when pagemap/kpagecgroup cannot give PFNs (not root).
    """
    return _read_owners(path, pages, None).owners()


class PageOwners:
    """What page_owners_since read of a file, per page of it (8 bytes a page
    each, no object per page): ``pfns`` its PFN (0: not resident, or the
    PFN hidden) and ``memcgs`` its memcg inode (NO_MEMCG: none known);
    ``moved``: whether any page's PFN or memcg differs from what the read
    it started from saw (True for a first read)."""

    __slots__ = ("pfns", "memcgs", "moved")

    def __init__(self, pfns: array.array, memcgs: array.array, moved: bool = True):
        self.pfns, self.memcgs, self.moved = pfns, memcgs, moved

    def owners(self) -> dict[int, int]:
        """page -> memcg inode of the pages with one known (page_owners)."""
        pages = list(compress(range(len(self.pfns)), self.pfns))
        memcgs = list(map(self.memcgs.__getitem__, pages))
        if NO_MEMCG in memcgs:
            return {p: m for p, m in zip(pages, memcgs) if m != NO_MEMCG}
        return dict(zip(pages, memcgs))


NO_MEMCG = (1 << 64) - 1


def _no_memcgs(n: int) -> array.array:
    return array.array("Q", b"\xff" * (8 * n))


def page_owners_since(path: str, before: PageOwners | None) -> PageOwners:
    """page_owners(path) of a whole file, every resident page's memcg read
    again, and ``moved`` False when no page's PFN or memcg differs from
    ``before``.  A PFN that did not move is no proof the page stayed: a
    page evicted and read again often gets the same PFN back (a CPU's free
    list hands out the last page freed first), charged to whoever read it
    this time; and kpagecgroup names a removed cgroup's pages with its
    parent."""
    return _read_owners(path, None, before)


def _read_owners(path: str, pages: list[int] | None, before: PageOwners | None
                 ) -> PageOwners:
    """page_owners (``pages``) or page_owners_since (``before``)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return PageOwners(array.array("Q"), array.array("Q"))
        with _Mapping(fd, size) as m:
            vec = m.mincore()
            if pages is None:       # the runs straight from the vector (a whole image)
                runs = [(r.start(), r.end() - r.start())
                        for r in _RESIDENT_RUN.finditer(vec.translate(_BIT0))]
            else:
                runs = list(page_runs(sorted(p for p in pages
                                             if 0 <= p < m.pages and vec[p] & 1)))
            if not runs and before is None:
                return PageOwners(array.array("Q", bytes(8 * m.pages)), _no_memcgs(m.pages))
            _libc.madvise(m.addr, m.length, MADV_RANDOM)
            with _PfnFiles() as (pm, kpc):
                pfns = _pfns_of_runs(m, runs, pm)
                memcgs = _memcgs_of(kpc, pfns)
                moved = before is None or pfns != before.pfns or memcgs != before.memcgs
                return PageOwners(pfns, memcgs, moved)
    finally:
        os.close(fd)


_RESIDENT_RUN = re.compile(b"1+")     # (in the vector translated by _BIT0)
_PFN_GAP = 32               # PFNs apart that one kpagecgroup read still covers


class _PfnFiles:
    """/proc/self/pagemap and /proc/kpagecgroup open (PageCacheError if not)."""

    def __enter__(self) -> tuple[int, int]:
        try:
            self.pm = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            raise PageCacheError(e.errno, f"/proc/self/pagemap: {e.strerror}") from None
        try:
            self.kpc = os.open("/proc/kpagecgroup", os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            os.close(self.pm)
            raise PageCacheError(e.errno, f"/proc/kpagecgroup: {e.strerror}") from None
        return self.pm, self.kpc

    def __exit__(self, *exc):
        os.close(self.pm)
        os.close(self.kpc)


def _pfns_of_runs(m: _Mapping, runs: list[tuple[int, int]], pm: int) -> array.array:
    """Per page of mapping ``m`` its PFN (0: none), the pages of ``runs``
    (first page, count) faulted in and read from pagemap, one read a run."""
    pfns = array.array("Q", bytes(8 * m.pages))
    vpage0 = m.addr // PAGE_SIZE
    for first, count in runs:
        if _libc.madvise(m.addr + first * PAGE_SIZE, count * PAGE_SIZE,
                         MADV_POPULATE_READ) != 0:
            continue    # I/O error or EINVAL on old kernels: owners unknown
        ents = array.array("Q", os.pread(pm, 8 * count, 8 * (vpage0 + first)))
        if sys.byteorder != "little":
            ents.byteswap()
        # (absent pages, PFN hidden without CAP_SYS_ADMIN: 0, no owner known)
        pfns[first:first + len(ents)] = array.array(
            "Q", [e & PAGEMAP_PFN_MASK if e & PAGEMAP_PRESENT else 0 for e in ents])
    return pfns


def _memcgs_of(kpc: int, pfns: array.array) -> array.array:
    """Per page its memcg inode (NO_MEMCG: no PFN, or past what kpagecgroup
    gives), the pages with a PFN in ``pfns`` read in PFN order: one
    kpagecgroup read per stretch of PFNs at most _PFN_GAP apart (scattered
    small folios: a read per page would cost a syscall each; the reads are
    most of the time, a C-loop variant was slower on short stretches)."""
    memcgs = _no_memcgs(len(pfns))
    order = sorted(compress(range(len(pfns)), pfns), key=pfns.__getitem__)
    i, n = 0, len(order)
    while i < n:
        lo = prev = pfns[order[i]]
        j = i + 1
        while j < n and pfns[order[j]] - prev <= _PFN_GAP:
            prev = pfns[order[j]]
            j += 1
        vals = array.array("Q", os.pread(kpc, 8 * (prev - lo + 1), 8 * lo))
        if sys.byteorder != "little":
            vals.byteswap()
        for p in order[i:j]:
            k = pfns[p] - lo
            memcgs[p] = vals[k] if k < len(vals) else NO_MEMCG
        i = j
    return memcgs


# ---------------------------------------------------------------- not perturbing
def coalesce_runs(runs, align_pages: int = 1, gap_pages: int = 0) -> list[tuple[int, int]]:
    """Page runs [(first, count)] sorted and merged, each widened to
    ``align_pages`` boundaries (a mapping whose smallest folio is larger than
    a page reads the aligned folio); overlapping and touching runs, and runs
    at most ``gap_pages`` apart, become one."""
    out: list[list[int]] = []
    for first, count in sorted(runs):
        if count <= 0:
            continue
        lo = first - first % align_pages
        hi = -(-(first + count) // align_pages) * align_pages
        if out and lo <= out[-1][1] + gap_pages:
            out[-1][1] = max(out[-1][1], hi)
        else:
            out.append([max(lo, 0), hi])
    return [(lo, hi - lo) for lo, hi in out]


def backing_readahead(path: str) -> tuple[int, int] | None:
    """(readahead pages, smallest folio in pages) of a file's filesystem: the
    read_ahead_kb of its backing device (/sys/class/bdi/MAJ:MIN; a struct
    file opened on it reads ahead at most that much) and st_blksize (a
    filesystem with blocks over a page caches whole blocks).  None where the
    device has no bdi entry (not known)."""
    try:
        st = os.stat(path)
        with open(f"/sys/class/bdi/{os.major(st.st_dev)}:{os.minor(st.st_dev)}/read_ahead_kb") as f:
            ra_kb = int(f.read())
    except (OSError, ValueError):
        return None
    return ra_kb * 1024 // PAGE_SIZE, max(1, st.st_blksize // PAGE_SIZE)


IN_FLIGHT_WAITS_S = (0.001, 0.002, 0.005, 0.01, 0.02)
NEAR_RUN_GAP_PAGES = 256        # runs closer than this share one mmap + mincore


def _cached_count(fd: int, first_page: int = 0, pages: int = 0) -> int:
    """cachestat's cached pages of [first_page, +pages) (0: to the end), -1
    where cachestat fails (missing on this kernel)."""
    try:
        return cachestat(fd, first_page * PAGE_SIZE, pages * PAGE_SIZE)["nr_cache"]
    except PageCacheError:
        return -1


def _unseen_cached(fd: int, first: int, count: int, mask: int, counted: int) -> int:
    """Bits (from ``first``) of the pages cachestat counts in [first, +count)
    (``counted`` of them) that mincore's ``mask`` does not show, by bisection:
    a few cachestat calls per such page."""
    if counted <= (mask & ((1 << count) - 1)).bit_count():
        return 0
    if count == 1:
        return 1
    half = count // 2
    low = _unseen_cached(fd, first, half, mask, _cached_count(fd, first, half))
    high = _unseen_cached(fd, first + half, count - half, mask >> half,
                          _cached_count(fd, first + half, count - half))
    return low | high << half


class _Watched:
    """One file preserve_residency watches: its whole page cache (``runs``
    None) or the page runs given.  Per run, before: a mincore bitmap, or
    nothing when cachestat says every page of it is cached (nothing there
    can be new).  With cachestat, counts of the whole file: for reads still
    in flight and (runs) pages appearing outside the runs."""

    def __init__(self, path: str, runs, check_outside: bool = True):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self.size = fd_size(self.fd)       # a loop or block device too
            file_pages = -(-self.size // PAGE_SIZE)
            # the whole file's count: cheap for one file, O(its cached pages) for an image;
            # without the check, a one-page count only tells that cachestat works
            self.count_before = (_cached_count(self.fd) if runs is None or check_outside
                                 else _cached_count(self.fd, 0, 1))
            self.whole = runs is None or self.count_before < 0     # runs need cachestat
            ranges = [(0, file_pages)] if self.whole else _near_runs_merged(runs)
            self.ranges = [(f, min(c, file_pages - f)) for f, c in ranges if f < file_pages]
            if not self.whole and not check_outside:
                self.count_before = -1
            self.unseen_before = 0
            self.before = [self._before(f, c) for f, c in self.ranges]
        except BaseException:
            os.close(self.fd)
            raise

    def _before(self, first: int, count: int) -> int | None:
        """The range's pages cached before: None when cachestat counts every
        page (nothing in it can be new), else mincore's bitmap plus the pages
        cachestat counts and mincore does not show (not uptodate: a large
        folio partly read, a read in flight; dropping them as new would evict
        what the workload read)."""
        counted = self.count_before if self.whole else _cached_count(self.fd, first, count)
        if counted >= count:
            return None
        mask = self._mask(first, count)
        if counted > mask.bit_count():
            unseen = _unseen_cached(self.fd, first, count, mask, counted)
            self.unseen_before += unseen.bit_count()
            mask |= unseen
        return mask

    def _mask(self, first: int, count: int) -> int:
        with _Mapping(self.fd, self.size, first, count) as m:
            return _mask_from_vec(m.mincore())

    def _masks_now(self) -> list[int | None]:
        return [None if old is None else self._mask(f, c)
                for (f, c), old in zip(self.ranges, self.before)]

    def _settled_masks(self) -> list[int | None]:
        """The masks once the reads in flight in the watched ranges finished:
        readahead we started completes after our read returns, and a page not
        uptodate yet is invisible to mincore and kept by DONTNEED.  cachestat
        counts it: wait (a few ms at most) while it counts more pages in the
        ranges than mincore sees."""
        now = self._masks_now()
        if not cachestat_available():
            return now
        for wait_s in IN_FLIGHT_WAITS_S:
            counted = sum(_cached_count(self.fd, f, c)
                          for (f, c), m in zip(self.ranges, now) if m is not None)
            if counted - sum(m.bit_count() for m in now if m is not None) <= self.unseen_before:
                break
            time.sleep(wait_s)
            now = self._masks_now()
        return now

    def restore(self) -> int:
        """Drop the watched pages that became resident; returns how many
        pages appeared outside the runs (by cachestat count), 0 when whole."""
        try:
            for (first, _), old, now in zip(self.ranges, self.before, self._settled_masks()):
                if old is None:
                    continue
                for run_first, count in page_runs(mask_pages(now & ~old)):
                    os.posix_fadvise(self.fd, (first + run_first) * PAGE_SIZE,
                                     count * PAGE_SIZE, os.POSIX_FADV_DONTNEED)
            if self.whole or self.count_before < 0:
                return 0
            return max(0, _cached_count(self.fd) - self.count_before)
        finally:
            os.close(self.fd)


def _near_runs_merged(runs) -> list[tuple[int, int]]:
    """Sorted runs with those less than NEAR_RUN_GAP_PAGES apart merged: a
    mincore of the pages between costs less than another mmap and mincore."""
    return coalesce_runs(runs, gap_pages=NEAR_RUN_GAP_PAGES - 1)


def read_dropping_new(fd: int, offset: int, length: int, read):
    """``read()``, which reads bytes [offset, +length) of ``fd``'s file by
    O_DIRECT, with the pages of that range it brought into the page cache
    dropped again: some filesystems serve O_DIRECT through their cache
    (btrfs compressed extents, ext4 with data=journal).  One cachestat of
    the range where it is cached whole or not at all and nothing changed;
    mincore bitmaps only where part of it was cached or pages appeared."""
    first = offset // PAGE_SIZE
    count = (offset + max(length, 1) - 1) // PAGE_SIZE - first + 1
    before = _cached_count(fd, first, count)
    if before >= count:
        return read()                       # cached whole: nothing can be new
    size = fd_size(fd)
    count = min(count, -(-size // PAGE_SIZE) - first)
    if count <= 0:
        return read()
    old = 0 if before == 0 else _range_mask(fd, size, first, count)
    data = read()
    if before >= 0 and _cached_count(fd, first, count) == before:
        return data
    new = _range_mask(fd, size, first, count) & ~old
    for run_first, n in page_runs(mask_pages(new)):
        os.posix_fadvise(fd, (first + run_first) * PAGE_SIZE, n * PAGE_SIZE,
                         os.POSIX_FADV_DONTNEED)
    return data


def _range_mask(fd: int, size: int, first: int, count: int) -> int:
    with _Mapping(fd, size, first, count) as m:
        return _mask_from_vec(m.mincore())


class Preserved:
    """What a preserve_residency block saw: ``outside_pages`` is path -> pages
    that became resident outside the runs watched for it (not dropped: not
    known which; a caller watches that file whole from then on)."""

    def __init__(self):
        self.outside_pages: dict[str, int] = {}


@contextmanager
def preserve_residency(paths):
    """Drop, on exit, pages of ``paths`` that became resident inside the block.

    For reads erofs-top does itself (content hashing, ELF notes, image metadata):
    it must not leave pages in the cache that the workload did not load.  We chose
    this over O_DIRECT because O_DIRECT does not cover our cases: EROFS rejects it
    on file-backed mounts (EINVAL, measured on 6.18), and on loop mounts the loop
    worker still reads the image file through the host page cache.  A page another
    task loads into the same range while we read is dropped too (it is re-read on
    its next access); the window is one digest.  Pages EROFS keeps in its internal
    managed cache for compressed clusters cannot be dropped from user space.

    Each item of ``paths`` is a path (its whole page cache is watched: a mincore
    bitmap of the whole file before and after) or ``(path, runs[, check])``:
    only the page runs [(first, count)] are watched (for a big image file of
    which a read can touch a known few pages); with ``check`` (the default) a
    cachestat(2) count of the whole file before and after tells whether pages
    appeared outside them: the block's value (Preserved) reports those.  A run
    cachestat finds wholly cached before needs no bitmap (nothing in it can be
    new).  Falsy paths and unreadable files are skipped.
    """
    seen = Preserved()
    watched: list[_Watched] = []
    try:
        for item in paths:
            path, runs, check = (item, None, True) if isinstance(item, str) else (*item, True)[:3]
            if not path:
                continue
            try:
                watched.append(_Watched(path, runs, check))
            except OSError:
                pass
        yield seen
    finally:
        for w in watched:
            try:
                outside = w.restore()
            except OSError:
                continue
            if outside:
                seen.outside_pages[w.path] = outside


def meminfo_cached_bytes() -> int:
    """``Cached:`` from /proc/meminfo, in bytes (0 if unreadable)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("Cached:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0
