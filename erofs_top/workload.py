"""Real workloads for tests, benchmarks and `erofs-top demo`.

Everything here makes real kernel objects (EROFS images via mkfs.erofs,
file-backed and loop mounts via mount(2), cgroup v2 children, reader
processes inside them) and removes them again, also on failure: every class
is a context manager and `Stack` unwinds whatever was made, in reverse.
Needs root.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from .names import read_text
from .readings import kdev, kdev_from_st_dev
from .resolve.mounts import parse_mountinfo

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p,
                        ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
MS_RDONLY = 1
MNT_DETACH = 2

# file-backed EROFS mounts need a backing fs with ->read_folio: not tmpfs
DEFAULT_WORK_PARENT = "/var/tmp"


class WorkloadError(Exception):
    pass


def _mountinfo_fs(fstype: str) -> list[str]:
    return [e.mountpoint for e in parse_mountinfo(read_text("/proc/self/mountinfo"), fstype)]


def cgroup2_root() -> str:
    roots = _mountinfo_fs("cgroup2")
    if not roots:
        raise WorkloadError("no cgroup2 filesystem mounted (mount -t cgroup2 none /sys/fs/cgroup)")
    return "/sys/fs/cgroup/unified" if "/sys/fs/cgroup/unified" in roots else roots[0]


def memory_v1_root() -> str | None:
    """The cgroup v1 memory hierarchy on hybrid hosts (where memcg charges go)."""
    for e in parse_mountinfo(read_text("/proc/self/mountinfo"), "cgroup"):
        if "memory" in e.super_options:
            return e.mountpoint
    return None


# ---------------------------------------------------------------- cgroups
class Cgroup:
    """A cgroup v2 child playing a container; on hybrid hosts also a v1 memory
    cgroup of the same relative path, so memcg charges (kpagecgroup) land in a
    cgroup with the same name."""

    def __init__(self, relpath: str):
        self.relpath = "/" + relpath.strip("/")
        self.root = cgroup2_root()
        self.dir = Path(self.root + self.relpath)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.id = os.stat(self.dir).st_ino     # == bpf_get_current_cgroup_id()
        self.mem_dir: Path | None = None
        mem_root = memory_v1_root()
        if mem_root:
            self.mem_dir = Path(mem_root + self.relpath)
            self.mem_dir.mkdir(parents=True, exist_ok=True)

    @property
    def path(self) -> str:
        return self.relpath

    def _enter(self) -> None:     # runs in the child between fork and exec
        with open(self.dir / "cgroup.procs", "w") as f:
            f.write("0")
        if self.mem_dir:
            with open(self.mem_dir / "cgroup.procs", "w") as f:
                f.write("0")

    def popen(self, argv, **kw) -> subprocess.Popen:
        return subprocess.Popen(argv, preexec_fn=self._enter, **kw)

    def run(self, argv, check=True, **kw) -> subprocess.CompletedProcess:
        return subprocess.run(argv, preexec_fn=self._enter, check=check, **kw)

    def pids(self) -> list[int]:
        try:
            return [int(p) for p in (self.dir / "cgroup.procs").read_text().split()]
        except FileNotFoundError:
            return []

    def remove(self) -> None:
        for _ in range(50):
            pids = self.pids()
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.02)
        for d in (self.dir, self.mem_dir):
            if d is not None:
                rmdir_cgroup(str(d))
        # remove empty parents we may have created (only our own prefix)
        for d in (self.dir.parent, self.mem_dir.parent if self.mem_dir else None):
            if d is not None and d.name.startswith("erofs-top-"):
                with contextlib.suppress(OSError):
                    d.rmdir()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


# ---------------------------------------------------------------- images
def make_tree(root: str | Path, files: dict[str, int | bytes], seed: int = 1) -> Path:
    """Files of random bytes (int = size) or given bytes, under root."""
    root = Path(root)
    rng = random.Random(seed)
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = content if isinstance(content, bytes) else rng.randbytes(content)
        p.write_bytes(data)
    return root


def build_image(src: str | Path, image: str | Path, *mkfs_args: str) -> Path:
    if not shutil.which("mkfs.erofs"):
        raise WorkloadError("mkfs.erofs not found: apt-get install erofs-utils")
    # fixed timestamps and uuid-free options keep images reproducible for tests
    r = subprocess.run(["mkfs.erofs", *mkfs_args, str(image), str(src)],
                       capture_output=True, text=True, errors="replace")   # it echoes names
    if r.returncode != 0:
        raise WorkloadError(f"mkfs.erofs failed: {r.stderr.strip() or r.stdout.strip()}")
    return Path(image)


def _mount(source: str, target: str, options: str) -> None:
    opts = options.encode() if options else None
    if _libc.mount(os.fsencode(source), os.fsencode(target), b"erofs", MS_RDONLY, opts) != 0:
        e = ctypes.get_errno()
        raise WorkloadError(f"mount -t erofs {source} {target} ({options or 'no options'}): "
                            f"{os.strerror(e)}")


class ErofsMount:
    """mode "file": mount(2) on the image file itself (file-backed, anonymous 0:N dev;
    util-linux mount may silently use a loop device instead, so we call mount(2)).
    mode "loop": losetup a loop device first (7:N dev)."""

    def __init__(self, image: str | Path, mountpoint: str | Path, mode: str = "file",
                 options: str = ""):
        self.image = str(image)
        self.mountpoint = str(mountpoint)
        self.mode = mode
        self.loopdev: str | None = None
        os.makedirs(self.mountpoint, exist_ok=True)
        source = self.image
        if mode == "loop":
            r = subprocess.run(["losetup", "-f", "--show", "-r", self.image],
                               capture_output=True, text=True, errors="surrogateescape")
            if r.returncode != 0:
                raise WorkloadError(f"losetup failed: {r.stderr.strip()}")
            self.loopdev = source = r.stdout.strip()
        elif mode != "file":
            raise ValueError(f"mode must be file or loop, not {mode!r}")
        try:
            _mount(source, self.mountpoint, options)
        except Exception:
            self._detach_loop()
            raise
        st = os.stat(self.mountpoint)
        self.dev = kdev_from_st_dev(st.st_dev)    # kernel dev_t, as tracepoints see it
        self.dev_str = f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}"

    def path(self, rel: str) -> str:
        return os.path.join(self.mountpoint, rel)

    def _detach_loop(self):
        if self.loopdev:
            subprocess.run(["losetup", "-d", self.loopdev], capture_output=True)
            self.loopdev = None

    def umount(self) -> None:
        if os.path.ismount(self.mountpoint):
            if _libc.umount2(os.fsencode(self.mountpoint), 0) != 0:
                _libc.umount2(os.fsencode(self.mountpoint), MNT_DETACH)
        self._detach_loop()
        with contextlib.suppress(OSError):
            os.rmdir(self.mountpoint)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.umount()


# ---------------------------------------------------------------- readers
_READER = r"""
import mmap, os, sys
mode, path, off, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDONLY)
size = os.fstat(fd).st_size
if length < 0: length = size - off
if mode == "read":
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_NORMAL)
    left = length; pos = off
    while left > 0:
        b = os.pread(fd, min(1 << 20, left), pos)
        if not b: break
        left -= len(b); pos += len(b)
else:
    m = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    ps = mmap.PAGESIZE
    s = 0
    for p in range(off - off % ps, min(off + length, size), ps):
        s += m[p]
    m.close()
"""


def read_file(path: str, cgroup: Cgroup | None = None, mode: str = "read",
              offset: int = 0, length: int = -1) -> None:
    """Read (pread) or fault in (mmap) a range of a file, inside a cgroup."""
    argv = [sys.executable, "-S", "-c", _READER, mode, path, str(offset), str(length)]
    if cgroup is None:
        subprocess.run(argv, check=True)
    else:
        cgroup.run(argv)


def drop_file_cache(path: str, offset: int = 0, length: int = 0) -> None:
    """Evict a file's clean cached pages in [offset, offset + length) (length
    0: to the end of the file)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, offset, length, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- stack
class Stack(contextlib.ExitStack):
    """ExitStack that also owns a scratch directory on a disk filesystem."""

    def __init__(self, prefix: str = "erofs-top-", parent: str = DEFAULT_WORK_PARENT):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
        self.callback(shutil.rmtree, self.dir, True)

    def cgroup(self, relpath: str) -> Cgroup:
        return self.enter_context(Cgroup(relpath))

    def mount(self, image, name: str, mode: str = "file", options: str = "") -> ErofsMount:
        return self.enter_context(ErofsMount(image, self.dir / "mnt" / name, mode, options))


# ---------------------------------------------------------------- demo
DEMO_FILES = {
    "usr/lib/libdemo.so.1": 6 << 20,
    "usr/bin/demo-server": 3 << 20,
    "usr/share/demo/data.bin": 4 << 20,
    "etc/demo.conf": 8 << 10,
}


class DemoScenario:
    """Two containers on EROFS images, the node shape erofs-top is for:

    - image v1 and image v2 (a "minor version": data.bin differs, the library
      and the binary are the same bytes);
    - container `ctr-a` runs image v1 (file-backed mount), `ctr-b` runs image
      v2 (loop mount); both read everything, so the library and the binary are
      cached twice (duplicate), while data.bin differs (unique).
    """

    def __init__(self, stack: Stack, cgroup_prefix: str | None = None):
        self.stack = stack
        prefix = cgroup_prefix or f"erofs-top-demo-{os.getpid()}"
        src1 = make_tree(stack.dir / "v1", DEMO_FILES, seed=1)
        src2 = make_tree(stack.dir / "v2", DEMO_FILES, seed=1)
        make_tree(src2, {"usr/share/demo/data.bin": 4 << 20}, seed=2)
        # same mtimes so only content differs
        for src in (src1, src2):
            for p in Path(src).rglob("*"):
                os.utime(p, (1_700_000_000, 1_700_000_000))
        self.image_v1 = build_image(src1, stack.dir / "app-v1.erofs", "-T0")
        self.image_v2 = build_image(src2, stack.dir / "app-v2.erofs", "-T0")
        self.mount_a = stack.mount(self.image_v1, "ctr-a", "file")
        self.mount_b = stack.mount(self.image_v2, "ctr-b", "file")
        self.ctr_a = stack.cgroup(f"{prefix}/ctr-a")
        self.ctr_b = stack.cgroup(f"{prefix}/ctr-b")

    def read_all(self) -> None:
        for ctr, mnt in ((self.ctr_a, self.mount_a), (self.ctr_b, self.mount_b)):
            for rel in DEMO_FILES:
                read_file(mnt.path(rel), ctr)

    def keep_reading(self, stop: threading.Event, every_s: float = 5.0) -> threading.Thread:
        """A thread that reads every file again each ``every_s`` until
        ``stop`` is set, as running services keep using their files: pages
        the kernel evicted meanwhile come back, charged to the same
        container (a cached page is not read again).  Join it before the
        mounts go."""
        def loop():
            while not stop.wait(every_s):
                try:
                    self.read_all()
                except (OSError, subprocess.SubprocessError):
                    return      # (the demo is being torn down)
        t = threading.Thread(target=loop, name="demo-readers", daemon=True)
        t.start()
        return t


# ---------------------------------------------------------------- leftovers
_DEMO_OWNER = re.compile(r"^erofs-top-demo-(\d+)(?:-|$)")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_owner(name: str) -> int | None:
    """The pid in a demo name (erofs-top-demo-<pid>[-...]) when that process is dead."""
    m = _DEMO_OWNER.match(name)
    if m is None:
        return None
    pid = int(m.group(1))
    return None if _pid_alive(pid) else pid


def demo_leftovers(parent: str = DEFAULT_WORK_PARENT) -> list[tuple[str, str]]:
    """What demos killed by SIGKILL (or a forced exit) left: (kind, path) of
    mounts, loop devices, cgroups and scratch directories whose recorded
    owner PID (in their name) is dead.  Mounts first, innermost first."""
    out: list[tuple[str, str]] = []
    try:
        entries = parse_mountinfo(read_text("/proc/self/mountinfo"))
    except OSError:
        entries = []
    pre = parent.rstrip("/") + "/"
    mps = [e.mountpoint for e in entries if e.mountpoint.startswith(pre)
           and _dead_owner(e.mountpoint[len(pre):].split("/", 1)[0]) is not None]
    out += [("mount", mp) for mp in sorted(set(mps), key=len, reverse=True)]
    with contextlib.suppress(OSError):
        for loop in sorted(os.listdir("/sys/block")):
            try:
                bf = read_text(f"/sys/block/{loop}/loop/backing_file").strip()
            except OSError:
                continue
            if bf.startswith(pre) and _dead_owner(bf[len(pre):].split("/", 1)[0]) is not None:
                out.append(("loop", f"/dev/{loop}"))
    roots = []
    with contextlib.suppress(WorkloadError, OSError):
        roots.append(cgroup2_root())
    with contextlib.suppress(OSError):
        v1 = memory_v1_root()
        if v1:
            roots.append(v1)
    for root in roots:
        with contextlib.suppress(OSError):
            for name in sorted(os.listdir(root)):
                if _dead_owner(name) is not None and os.path.isdir(os.path.join(root, name)):
                    out.append(("cgroup", os.path.join(root, name)))
    with contextlib.suppress(OSError):
        for name in sorted(os.listdir(parent)):
            if _dead_owner(name) is not None:
                out.append(("dir", os.path.join(parent, name)))
    return out


def rmdir_cgroup(d: str) -> None:
    """rmdir a cgroup whose last task just died: EBUSY until the kernel has
    reaped it, so retry for up to 2.5 s."""
    for _ in range(50):
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY:
                raise
            time.sleep(0.05)


def _remove_cgroup_tree(top: str) -> None:
    dirs = [top]
    for d, subs, _files in os.walk(top):
        dirs += [os.path.join(d, s) for s in subs]
    for d in sorted(dirs, key=len, reverse=True):       # children first
        with contextlib.suppress(OSError):
            for pid in read_text(os.path.join(d, "cgroup.procs")).split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
        rmdir_cgroup(d)


def reap_demo_leftovers(parent: str = DEFAULT_WORK_PARENT) -> tuple[list[str], list[str]]:
    """Remove what killed demos left (demo_leftovers).  Returns (removed, failed),
    one "kind path: reason" each; never raises."""
    removed, failed = [], []
    for kind, path in demo_leftovers(parent):
        try:
            if kind == "mount":
                if _libc.umount2(os.fsencode(path), 0) != 0 and \
                        _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
                    raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            elif kind == "loop":
                r = subprocess.run(["losetup", "-d", path], capture_output=True, text=True,
                                   errors="replace")
                if r.returncode != 0:
                    raise OSError(0, r.stderr.strip() or "losetup -d failed")
            elif kind == "cgroup":
                _remove_cgroup_tree(path)
            else:
                shutil.rmtree(path)
            removed.append(f"{kind} {path}")
        except OSError as e:
            failed.append(f"{kind} {path}: {e.strerror or e}")
    return removed, failed


__all__ = ["Cgroup", "ErofsMount", "Stack", "DemoScenario", "make_tree", "build_image",
           "read_file", "drop_file_cache", "cgroup2_root", "memory_v1_root", "kdev",
           "WorkloadError", "demo_leftovers", "reap_demo_leftovers"]
