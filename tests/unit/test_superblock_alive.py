"""host.erofs_superblock_alive: ustat(2) finds a superblock by its dev among
all the kernel's, mounted or not, and its statfs says whether it is EROFS's
(no root needed).  The EROFS cases (mounted, unmounted lazily and held, dead,
its dev taken by a tmpfs) run on real mounts in
tests/integration/test_detached_superblock_root.py."""
from __future__ import annotations

import os
import platform

import pytest

from erofs_top.kernel import host


def _kdev(path: str) -> int:
    st_dev = os.stat(path).st_dev
    return os.major(st_dev) << 20 | os.minor(st_dev)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="ustat(2) numbers: x86_64 here")
def test_live_superblocks_of_other_filesystems_and_an_unused_dev_read_as_no_erofs():
    # alive, but not EROFS: a dev an EROFS superblock left, taken again, is dead to it
    assert host.erofs_superblock_alive(_kdev("/")) is False
    assert host.erofs_superblock_alive(_kdev("/proc")) is False
    # the last anonymous minor: no superblock has it
    assert host.erofs_superblock_alive(0 << 20 | 0xFFFFF) is False


def test_an_architecture_without_ustat_cannot_tell(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert host.erofs_superblock_alive(_kdev("/")) is None
