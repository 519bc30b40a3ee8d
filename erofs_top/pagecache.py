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

import ctypes
import errno
import mmap
import os
import struct
from contextlib import contextmanager

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
    """A read-only shared mapping of a whole file, by raw address (ctypes)."""

    def __init__(self, fd: int, size: int):
        self.size = size
        self.length = (size + PAGE_SIZE - 1) // PAGE_SIZE * PAGE_SIZE
        addr = _libc.mmap(None, self.length, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
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


def fd_resident_mask(fd: int) -> int:
    size = os.fstat(fd).st_size
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


def _runs(pages: list[int]):
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
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return {}
        with _Mapping(fd, size) as m:
            vec = m.mincore()
            want = range(m.pages) if pages is None else pages
            resident = sorted(p for p in want if 0 <= p < m.pages and vec[p] & 1)
            if not resident:
                return {}
            _libc.madvise(m.addr, m.length, MADV_RANDOM)
            owners: dict[int, int] = {}
            try:
                pm = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise PageCacheError(e.errno, f"/proc/self/pagemap: {e.strerror}") from None
            try:
                kpc = os.open("/proc/kpagecgroup", os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                os.close(pm)
                raise PageCacheError(e.errno, f"/proc/kpagecgroup: {e.strerror}") from None
            try:
                vpage0 = m.addr // PAGE_SIZE
                pfns: list[tuple[int, int]] = []          # (pfn, page index)
                for first, count in _runs(resident):
                    addr = m.addr + first * PAGE_SIZE
                    if _libc.madvise(addr, count * PAGE_SIZE, MADV_POPULATE_READ) != 0:
                        continue    # I/O error or EINVAL on old kernels: owners unknown
                    raw = os.pread(pm, 8 * count, 8 * (vpage0 + first))
                    for i, ent in enumerate(struct.unpack(f"<{len(raw) // 8}Q", raw)):
                        pfn = ent & PAGEMAP_PFN_MASK
                        if ent & PAGEMAP_PRESENT and pfn:   # else PFN hidden (no CAP_SYS_ADMIN)
                            pfns.append((pfn, first + i))
                # one kpagecgroup read per run of consecutive PFNs (large folios)
                pfns.sort()
                i = 0
                while i < len(pfns):
                    j = i + 1
                    while j < len(pfns) and pfns[j][0] == pfns[j - 1][0] + 1:
                        j += 1
                    raw = os.pread(kpc, 8 * (j - i), 8 * pfns[i][0])
                    vals = struct.unpack(f"<{len(raw) // 8}Q", raw)
                    for k, memcg in enumerate(vals):
                        owners[pfns[i + k][1]] = memcg
                    i = j
            finally:
                os.close(pm)
                os.close(kpc)
            return owners
    finally:
        os.close(fd)


# ---------------------------------------------------------------- not perturbing
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
    """
    before: dict[str, int | None] = {}
    for p in paths:
        if not p:
            continue
        try:
            before[p] = resident_mask(p)
        except OSError:
            before[p] = None
    try:
        yield
    finally:
        for p, old in before.items():
            if old is None:
                continue
            try:
                drop_new_pages(p, old)
            except OSError:
                pass


def drop_new_pages(path: str, old_mask: int) -> int:
    """posix_fadvise(DONTNEED) the pages resident now but not in ``old_mask``."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        new = fd_resident_mask(fd) & ~old_mask
        dropped = 0
        for first, count in _runs(mask_pages(new)):
            os.posix_fadvise(fd, first * PAGE_SIZE, count * PAGE_SIZE,
                             os.POSIX_FADV_DONTNEED)
            dropped += count
        return dropped
    finally:
        os.close(fd)


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
