"""Helpers for the in-guest lab tests (tests/vm), on top of erofs_top.workload.

Images, file-backed or loop mounts and cgroup v2 children come from the
project's own workload module (erofs_top.workload), the same code the host
tests and `erofs-top demo` use.  Added here, for the lab only:
  - readers forked (not exec'd) into a cgroup: reading a package's thousands
    of files costs no interpreter start per file under TCG;
  - the kernel's ground truth: /proc/meminfo Cached, memory.stat ``file``,
    mincore(2) on an mmap and cachestat(2).
Everything made here is removed again by the context managers, also when a
test fails.
"""
from __future__ import annotations

import contextlib
import ctypes
import mmap
import os
import shutil
import subprocess
import tempfile

from erofs_top import pagecache, workload

PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1 << 20
# File-backed EROFS needs a backing filesystem with ->read_folio: the guest's
# /var/tmp is on the ext4 root (tmpfs would make mount(2) fail with ENOTBLK).
WORK = "/var/tmp/erofs-top-lab"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
SYS_cachestat = 451     # x86_64


def sh(*cmd: str) -> str:
    return subprocess.run(cmd, check=True, text=True, capture_output=True).stdout


def workdir(name: str) -> str:
    d = tempfile.mkdtemp(prefix=f"{name}-", dir=_ensure(WORK))
    return d


def _ensure(d: str) -> str:
    os.makedirs(d, exist_ok=True)
    return d


# ------------------------------------------------------------------ images
def mkfs_erofs(image: str, src: str, *opts: str) -> str:
    """mkfs.erofs IMAGE SRC with OPTS (e.g. "--xattr-inode-digest", "-zlz4")."""
    workload.build_image(src, image, "--quiet", *opts)
    return image


def write_random(path: str, size: int, seed: int | None = None) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = os.urandom(size) if seed is None else _seeded(size, seed)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _seeded(size: int, seed: int) -> bytes:
    import random
    return random.Random(seed).randbytes(size)


def write_text(path: str, size: int, seed: int = 1) -> str:
    """Compressible text (LZ4 has no entropy coder: it needs repeats)."""
    import random
    rnd = random.Random(seed)
    words = [f"w{i:02d}{'xyz' * (i % 5)}" for i in range(64)]
    out = bytearray()
    while len(out) < size:
        out += (" ".join(rnd.choices(words, k=12)) + "\n").encode()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(out[:size])
    return path


# ------------------------------------------------------------------ mounts
@contextlib.contextmanager
def erofs_mount(image: str, options: str = "", loop: bool = False):
    """Mount IMAGE read-only (workload.ErofsMount): file-backed through
    mount(2), or on a loop device with loop=True.  Yields the mount point.

    The backing image is read once first, so that its own page cache does not
    show up in Cached deltas taken later."""
    read_file(image)
    target = tempfile.mkdtemp(prefix="mnt-", dir=_ensure(WORK))
    try:
        with workload.ErofsMount(image, target, "loop" if loop else "file", options):
            yield target
    finally:
        with contextlib.suppress(OSError):
            os.rmdir(target)


def mount_options(path: str) -> str:
    """Super options of the mount at PATH (mountinfo field after " - erofs SRC")."""
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a, b = line.split(" - ", 1)
            if a.split()[4] == path:
                return b.split()[2]
    raise LookupError(path)


# ------------------------------------------------------------------ cgroups
ROOT_FLUSH_TOUCH_BYTES = 16 << 20


def flush_memcg_stats() -> None:
    """Make every cgroup's memory.stat exact now.

    A read of memory.stat flushes the kernel's per-CPU memcg counters only
    when that cgroup has more pending updates than a threshold
    (MEMCG_CHARGE_BATCH = 64 pages x online CPUs, mm/memcontrol.c); below it
    the file shows values up to that many pages old until the periodic flush,
    a deferrable work every 2 s.  Right after a container's reads memory.stat
    ``file`` was 128 KiB short of its pages once (CI, test_containerd).
    Touching fresh anonymous pages here counts thousands of updates on this
    process's cgroup and on every ancestor up to the root; reading the root's
    memory.stat then flushes the whole tree, synchronously (in the lab: a
    20 KiB read showed 0 before this, 20480 after)."""
    buf = mmap.mmap(-1, ROOT_FLUSH_TOUCH_BYTES)
    try:
        for off in range(0, ROOT_FLUSH_TOUCH_BYTES, mmap.PAGESIZE):
            buf[off] = 1
    finally:
        buf.close()
    with open(f"{workload.cgroup2_root()}/memory.stat") as f:
        f.read()


def memcg_stats(cgroup_dir: str) -> dict[str, int]:
    """memory.stat of the cgroup at cgroup_dir (bytes or counts), after
    flush_memcg_stats(): the kernel's exact figures, not stale ones."""
    flush_memcg_stats()
    with open(f"{cgroup_dir}/memory.stat") as f:
        return {k: int(v) for k, v in (line.split() for line in f)}


def memcg_stat(cgroup_dir: str, key: str) -> int:
    """One value of memcg_stats(cgroup_dir)."""
    stats = memcg_stats(cgroup_dir)
    if key not in stats:
        raise LookupError(f"{cgroup_dir}/memory.stat: no {key}")
    return stats[key]


def enable_memory_controller() -> None:
    """Turn on the memory and io controllers for the root's children, as runc
    and the kubelet do on a node.  memory.stat exists in children only with
    +memory; +io matters for loop mounts: the loop worker charges the backing
    file's page cache to the memcg of the blkcg that issued the bio, which is
    the root's (not the reader's) when io is off (docs/sharing.md)."""
    ctl = f"{workload.cgroup2_root()}/cgroup.subtree_control"
    with open(ctl) as f:
        on = f.read().split()
    for name in ("memory", "io"):
        if name not in on:
            with open(ctl, "w") as f:
                f.write(f"+{name}")


class Cgroup(workload.Cgroup):
    """A cgroup v2 child (a "container") with the memory controller on;
    removed on exit (its processes killed first)."""

    def __init__(self, name: str):
        enable_memory_controller()
        super().__init__(name)
        self.path_abs = str(self.dir)

    def file_bytes(self) -> int:
        """memory.stat ``file``: page cache charged to this cgroup, exact now."""
        return memcg_stat(self.path_abs, "file")

    def run(self, fn, *args) -> None:
        """Run fn(*args) in a forked child that first joins this cgroup."""
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with open(f"{self.path_abs}/cgroup.procs", "w") as f:
                    f.write(str(os.getpid()))
                fn(*args)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise RuntimeError(f"reader in {self.path_abs} failed (status {status})")

    def read(self, *paths: str) -> None:
        self.run(lambda: [read_file(p) for p in paths])

    def mmap_touch(self, *paths: str) -> None:
        self.run(lambda: [mmap_touch(p) for p in paths])


# ------------------------------------------------------------------ readers
def read_file(path: str) -> int:
    n = 0
    with open(path, "rb", buffering=0) as f:
        while b := f.read(MiB):
            n += len(b)
    return n


def mmap_touch(path: str) -> int:
    """Fault every page of PATH in through a shared read-only mmap (no read())."""
    size = os.path.getsize(path)
    s = 0
    with open(path, "rb") as f, mmap.mmap(f.fileno(), size, prot=mmap.PROT_READ) as m:
        for off in range(0, size, PAGE):
            s += m[off]
    return s


def read_tree(root: str) -> int:
    n = 0
    for d, _, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            if os.path.isfile(p) and not os.path.islink(p):
                n += read_file(p)
    return n


# ------------------------------------------------------------------ ground truth
def meminfo_kib(key: str = "Cached") -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise LookupError(key)


def cached_bytes() -> int:
    return meminfo_kib("Cached") * 1024


def cached_bytes_now() -> int:
    """Cached with every CPU's pending vmstat deltas folded in first
    (/proc/sys/vm/stat_refresh): exact to the page, where cached_bytes() may
    lag by the per-CPU thresholds (tens of pages)."""
    try:
        with open("/proc/sys/vm/stat_refresh", "w") as f:
            f.write("1\n")
    except OSError:         # a negative per-CPU counter is reported as EINVAL; folded anyway
        pass
    return cached_bytes()


def drop_caches() -> None:
    os.sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


DROP_TRIES = 5


def drop_caches_of(paths) -> tuple[int, int]:
    """drop_caches() until the pages cached of ``paths`` (files) stop
    falling: 0, or the same after another drop (pages the kernel holds, as
    a mount's superblock block).  Returns (drops, pages left).  One drop is
    not certain to empty them: a folio with a reference held elsewhere (a
    per-CPU LRU batch) is skipped, and a cold cell would then read it
    without a charge to its readers."""
    left = None
    for tries in range(1, DROP_TRIES + 1):
        drop_caches()
        now = sum(pagecache.file_resident_pages(p) for p in paths)
        if now == 0 or now == left:
            return tries, now
        left = now
    return DROP_TRIES, left


_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                       ctypes.c_int, ctypes.c_int, ctypes.c_long]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
_libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
_libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
MADV_RANDOM = 1     # no readahead on faults through the mapping


@contextlib.contextmanager
def mapped(path: str, advice: int | None = None):
    """PATH mapped shared read-only (madvise ADVICE if given): yields
    (address, resident flag per page from mincore(2)); nothing for an empty
    file.  For an inode_share file the mapping follows the shared inode
    (erofs_ishare_mmap points the vma at the shared realfile)."""
    size = os.path.getsize(path)
    if size == 0:
        yield 0, []
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = _libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), f"mmap {path}")
        try:
            if advice is not None:
                _libc.madvise(ctypes.c_void_p(addr), size, advice)
            vec = (ctypes.c_ubyte * ((size + PAGE - 1) // PAGE))()
            if _libc.mincore(ctypes.c_void_p(addr), size, vec) != 0:
                raise OSError(ctypes.get_errno(), f"mincore {path}")
            yield addr, [bool(v & 1) for v in vec]
        finally:
            _libc.munmap(ctypes.c_void_p(addr), size)
    finally:
        os.close(fd)


def resident_vector(path: str) -> list[bool]:
    """Resident or not, per page of PATH, as mincore(2) sees it through an mmap."""
    with mapped(path) as (_, resident):
        return resident


def mincore_pages(path: str) -> int:
    """Resident pages of PATH as mincore(2) sees them through an mmap
    (of the shared inode for an inode_share file)."""
    return sum(resident_vector(path))

class _CsRange(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]


class _Cs(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in
                ("nr_cache", "nr_dirty", "nr_writeback", "nr_evicted", "nr_recently_evicted")]


def cachestat_pages(path: str) -> int:
    """cachestat(2) on PATH's own mapping (0 for an inode_share file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        rng, cs = _CsRange(0, 0), _Cs()
        if _libc.syscall(SYS_cachestat, fd, ctypes.byref(rng), ctypes.byref(cs), 0):
            raise OSError(ctypes.get_errno(), f"cachestat {path}")
        return cs.nr_cache
    finally:
        os.close(fd)


def pages(nbytes: int) -> int:
    return (nbytes + PAGE - 1) // PAGE


def rmtree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


_PFN_MASK = (1 << 55) - 1
_PRESENT = 1 << 63


def memcg_owned_pages(paths, cgroup_dir: str) -> int:
    """Resident pages of the regular files PATHS that the kernel charged to
    the memory cgroup CGROUP_DIR (a /sys/fs/cgroup directory): the kernel's
    own per-page accounting, page by page, independent of erofs-top.

    Each resident page (mincore) is mapped by one read fault on an mmap with
    MADV_RANDOM (a fault on a cached page only maps it: no readahead, no new
    charge), its frame comes from /proc/self/pagemap and its memory cgroup's
    inode from /proc/kpagecgroup.  Directories cannot be mapped: they are not
    counted here."""
    want_ino = os.stat(cgroup_dir).st_ino
    owned = 0
    with open("/proc/self/pagemap", "rb", buffering=0) as pagemap, \
            open("/proc/kpagecgroup", "rb", buffering=0) as kpagecgroup:
        for path in paths:
            with mapped(path, MADV_RANDOM) as (addr, resident):
                for i in (i for i, r in enumerate(resident) if r):
                    ctypes.c_char.from_address(addr + i * PAGE).value   # map it: a read fault
                    entry = int.from_bytes(os.pread(pagemap.fileno(), 8,
                                                    (addr // PAGE + i) * 8), "little")
                    if entry & _PRESENT:
                        pfn = entry & _PFN_MASK
                        owned += int.from_bytes(os.pread(kpagecgroup.fileno(), 8, pfn * 8),
                                                "little") == want_ino
    return owned
