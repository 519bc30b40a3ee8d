"""A superblock unmounted lazily lives on while something holds it (an open
file, a process's cwd, a container's mount namespace): its pages stay cached
and charged, and go when it dies (generic_shutdown_super evicts every inode).
On a node this is every container's layer that containerd or a shim
unmounts with MNT_DETACH while a task still runs from it.

erofs-top unwatched a dev as soon as its mount left mountinfo, so the
evictions of a detached superblock, its last pages at its death included,
were never counted: their entries stayed resident for ever (the lab carried
128 MiB of a dead containerd layer into every later test).  Now a dev stays
watched while ustat(2) finds its superblock, and the entries left on one
found dead are purged (kernel/probes.py _sync_mounts, _purge_dead).

Real BPF, a real file-backed EROFS mount, real lazy unmounts on this kernel.
"""
from __future__ import annotations

import ctypes as ct
import os
import subprocess

import pytest

from erofs_top.kernel import host
from erofs_top.workload import MNT_DETACH, _libc, build_image, make_tree, read_file

pytestmark = pytest.mark.root
KiB = 1 << 10
PAGE = os.sysconf("SC_PAGE_SIZE")
FILES = {"held.bin": 512 * KiB, "other.bin": 768 * KiB}


def _collector():
    from erofs_top.tiers import open_collector
    return open_collector(seed=False, sharing=False)


def _pages_on(col, dev: int, inos=None) -> dict[int, int]:
    """One refresh; resident pages of each file erofs-top holds on dev (of
    those in ``inos``: the root directory's page is there too), by inode."""
    col.refresh()
    return {key[1]: e.resident_pages() for key, e in col.aggregator.entries.items()
            if e.dev == dev and (inos is None or key[1] in inos)}


def _detached(stack, name: str) -> tuple[int, int, dict[str, int]]:
    """A mount of its own image, both files read, then unmounted lazily while
    held.bin stays open.  Returns (its kernel dev, the open fd, ino by name)."""
    src = make_tree(stack.dir / f"src-{name}", FILES, seed=len(name))
    m = stack.mount(build_image(src, stack.dir / f"{name}.erofs"), name)
    inos = {f: os.stat(m.path(f)).st_ino for f in FILES}
    for f in FILES:
        read_file(m.path(f))
    fd = os.open(m.path("held.bin"), os.O_RDONLY)
    return m.dev, fd, inos


def _umount_lazily(mountpoint: str) -> None:
    assert _libc.umount2(os.fsencode(mountpoint), MNT_DETACH) == 0, ct.get_errno()


def test_a_detached_superblock_stays_watched_until_it_dies(stack):
    col = _collector()
    fd = -1
    try:
        dev, fd, inos = _detached(stack, "lazy")
        want = {inos[f]: size // PAGE for f, size in FILES.items()}
        files = set(want)
        assert _pages_on(col, dev, files) == want
        _umount_lazily(str(stack.dir / "mnt" / "lazy"))
        assert host.erofs_superblock_alive(dev) is True
        # unmounted, alive: its pages are still cached (the kernel's own count
        # through the open file) and still erofs-top's
        assert os.path.exists(f"/proc/self/fd/{fd}")
        assert _pages_on(col, dev, files) == want
        # an eviction on the detached superblock is counted
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert _pages_on(col, dev, files) == {inos["other.bin"]: want[inos["other.bin"]]}
        # its death evicts the rest, and nothing stays resident on its dev
        os.close(fd)
        fd = -1
        assert host.erofs_superblock_alive(dev) is False
        assert _pages_on(col, dev) == {}
        assert col.source.purged_entries == 0       # every eviction was seen
        assert dev not in col.source.watched
    finally:
        if fd >= 0:
            os.close(fd)
        col.close()


def test_entries_of_a_superblock_that_died_unseen_are_purged(stack):
    """Evictions the probe did not see (here: its filter told to skip the dev
    before the superblock died, as it was before this change): the entries
    left are purged once the superblock is found dead."""
    col = _collector()
    fd = -1
    try:
        dev, fd, inos = _detached(stack, "unseen")
        assert sum(_pages_on(col, dev, set(inos.values())).values()) == sum(FILES.values()) // PAGE
        _umount_lazily(str(stack.dir / "mnt" / "unseen"))
        src = col.source
        del src.bpf[b"watched_devs"][ct.c_uint32(dev)]
        gen = src.bpf[b"watched_gen"]
        gen[ct.c_int(1)] = ct.c_uint64(gen[ct.c_int(1)].value + 1)    # GEN_USER
        os.close(fd)
        fd = -1
        assert host.erofs_superblock_alive(dev) is False
        assert _pages_on(col, dev) == {}
        assert src.purged_entries > 0
        assert not any(k.dev == dev for k in src.bpf[b"chunks"].keys())
    finally:
        if fd >= 0:
            os.close(fd)
        col.close()


def _take_dev(stack, dev: int) -> str:
    """A tmpfs mounted on the anonymous dev a dead superblock left (the
    kernel hands out the lowest free one: mount until one gets it; the
    others are unmounted).  Returns its mount point."""
    tries = []
    try:
        for i in range(64):
            mp = stack.dir / f"tmpfs{i}"
            mp.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mp)], check=True)
            st = os.stat(mp)
            if (os.major(st.st_dev) << 20 | os.minor(st.st_dev)) == dev:
                return str(mp)
            tries.append(mp)
        raise AssertionError(f"no tmpfs got dev {dev >> 20}:{dev & 0xFFFFF} in 64 mounts")
    finally:
        for mp in tries:
            subprocess.run(["umount", str(mp)], check=True)


def _in_filter(col, dev: int) -> bool:
    return dev in {k.value for k in col.source.bpf[b"watched_devs"].keys()}


@pytest.mark.parametrize("seen_mounted", [True, False], ids=["seen-mounted", "kernel-added-only"])
def test_a_dev_another_filesystem_takes_again_is_not_watched_as_erofs(stack, seen_mounted):
    """The superblock dies and a tmpfs takes its dev before erofs-top's next
    read.  ``kernel-added-only``: erofs-top never read while it was mounted
    (mounted and unmounted between two refreshes): only the probe's
    erofs_fill_inode put its dev in the filter."""
    col = _collector()
    fd, taken = -1, None
    try:
        dev, fd, inos = _detached(stack, "reused")
        if seen_mounted:
            assert _pages_on(col, dev, set(inos.values()))
        _umount_lazily(str(stack.dir / "mnt" / "reused"))
        assert _pages_on(col, dev, set(inos.values()))
        assert _in_filter(col, dev)                 # detached, alive: watched on
        assert (dev in col.source.watched) is seen_mounted
        os.close(fd)
        fd = -1
        taken = _take_dev(stack, dev)               # before erofs-top's next read
        assert host.erofs_superblock_alive(dev) is False
        assert _pages_on(col, dev) == {}
        assert not _in_filter(col, dev)
        # the tmpfs's own page cache on that dev is not traced as EROFS pages
        with open(f"{taken}/x.bin", "wb") as f:
            f.write(os.urandom(256 * KiB))
        assert _pages_on(col, dev) == {}
    finally:
        if fd >= 0:
            os.close(fd)
        if taken:
            subprocess.run(["umount", taken], check=False)
        col.close()


@pytest.mark.parametrize("mode", ["file", "loop"])
def test_without_ustat_sys_fs_erofs_keeps_a_detached_superblock_watched(stack, mode):
    """As on arm64 (no ustat(2): the only mock here, the syscall's answer),
    the superblocks alive are told from /sys/fs/erofs.  A loop mount's name
    there is its block device (its dev); a file-backed one's names no dev on
    6.x ("erofs-N") and is counted.  The detached superblock stays watched
    (its eviction counted), and once it dies its dev leaves the filter."""
    col = _collector()
    src = col.source
    src.liveness = host.SuperblockLiveness(ustat=lambda dev: None)
    fd = -1
    try:
        src_dir = make_tree(stack.dir / f"src-{mode}", FILES, seed=3)
        m = stack.mount(build_image(src_dir, stack.dir / f"{mode}.erofs"), mode, mode=mode)
        dev, inos = m.dev, {f: os.stat(m.path(f)).st_ino for f in FILES}
        for f in FILES:
            read_file(m.path(f))
        fd = os.open(m.path("held.bin"), os.O_RDONLY)
        want = {inos[f]: size // PAGE for f, size in FILES.items()}
        assert _pages_on(col, dev, set(want)) == want
        _umount_lazily(str(stack.dir / "mnt" / mode))
        assert _pages_on(col, dev, set(want)) == want
        assert _in_filter(col, dev) and dev in src.detached
        # a loop mount's name gives its dev: alive for sure; an unnamed one
        # (file-backed on 6.x) is kept as one that cannot be ruled out
        named = dev in {host.sysfs_name_dev(n) for n in host.erofs_sysfs_names()}
        assert named or mode == "file"
        assert (dev in src.liveness.guessed) is not named
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        assert _pages_on(col, dev, set(want)) == {inos["other.bin"]: want[inos["other.bin"]]}
        os.close(fd)
        fd = -1
        assert _pages_on(col, dev) == {}            # its death's evictions were seen
        _pages_on(col, dev)                         # (dead at two reads in a row)
        assert not _in_filter(col, dev) and dev not in src.watched
        assert src.unknown_devs == set() and src.liveness.guessed == set()
    finally:
        if fd >= 0:
            os.close(fd)
        col.close()
