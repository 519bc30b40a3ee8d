"""Where ustat(2) is missing (arm64, riscv), erofs-top tells whether an
unmounted EROFS superblock still lives from /sys/fs/erofs
(kernel/host.py SuperblockLiveness).  Its names differ by kernel: on the
lab's 7.x a file-backed superblock is named by its dev ("0:31"), on the
host's 6.18 by its private bdi ("erofs-N", no dev: counted instead,
tests/integration/test_detached_superblock_root.py); a loop mount by its
block device everywhere.  Here, on the lab kernel, the verdicts from
/sys/fs/erofs are checked against ustat(2)'s (this guest has it), for a
superblock mounted, unmounted lazily while a file holds it, and dead.
No BPF: the filter that follows these verdicts is tested on the host."""
from __future__ import annotations

import ctypes
import os

import pytest

from erofs_top import workload
from erofs_top.kernel import host

from . import labkit as lk


def _sysfs_verdict(live: host.SuperblockLiveness, dev: int, mounted: set[int]) -> bool | None:
    """Two reads in a row (a dev is dead only at the second)."""
    live([dev], mounted)
    return live([dev], mounted)[dev]


@pytest.mark.parametrize("mode", ["file", "loop"])
def test_sys_fs_erofs_agrees_with_ustat(lab, mode):
    d = lk.workdir(f"liveness-{mode}")
    lk.write_random(f"{d}/src/a.bin", 256 * 1024, seed=9)
    image = lk.mkfs_erofs(f"{d}/a.erofs", f"{d}/src")
    live = host.SuperblockLiveness(ustat=lambda dev: None)      # as without ustat(2)
    fd = -1
    try:
        with workload.ErofsMount(image, f"{d}/mnt", mode) as m:
            dev = m.dev
            # named by its dev on this kernel, whichever the backing
            assert dev in {host.sysfs_name_dev(n) for n in host.erofs_sysfs_names()}, \
                os.listdir("/sys/fs/erofs")
            fd = os.open(m.path("a.bin"), os.O_RDONLY)
            assert host.erofs_superblock_alive(dev) is True
            assert _sysfs_verdict(live, dev, {dev}) is True
            assert workload._libc.umount2(os.fsencode(m.mountpoint), workload.MNT_DETACH) == 0, \
                ctypes.get_errno()
            # detached, held by the open file: alive to both, and not a guess
            assert host.erofs_superblock_alive(dev) is True
            assert _sysfs_verdict(live, dev, set()) is True and live.guessed == set()
            os.close(fd)
            fd = -1
            assert host.erofs_superblock_alive(dev) is False
            assert _sysfs_verdict(live, dev, set()) is False
    finally:
        if fd >= 0:
            os.close(fd)
        lk.rmtree(d)
