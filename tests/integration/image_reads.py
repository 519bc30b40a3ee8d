"""Shared by the tests of erofs-top's own image reads (test_read_window_root,
test_file_data_root): a mount's MountInfo as erofs-top resolves it, and an
image file made cold."""
from __future__ import annotations

import os

from erofs_top.resolve.mounts import SysMounts
from erofs_top.workload import drop_file_cache


def mount_info(m):
    """The MountInfo of ErofsMount ``m`` (from /proc/self/mountinfo)."""
    sm = SysMounts()
    sm.refresh()
    return sm.by_dev(m.dev)


def cold(image) -> None:
    """The image file out of the page cache (written back first: mkfs just
    wrote it, and DONTNEED leaves dirty pages)."""
    fd = os.open(image, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    drop_file_cache(str(image))
