"""host.superblock_alive: ustat(2) finds a superblock by its dev among all
the kernel's, mounted or not (no root needed).  The lazily unmounted case,
which is what it is for, runs on a real mount in
tests/integration/test_detached_superblock_root.py."""
from __future__ import annotations

import os
import platform

import pytest

from erofs_top.kernel import host


def _kdev(st_dev: int) -> int:
    return os.major(st_dev) << 20 | os.minor(st_dev)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="ustat(2) numbers: x86_64 here")
def test_the_root_filesystem_is_alive_and_an_unused_dev_is_not():
    assert host.superblock_alive(_kdev(os.stat("/").st_dev)) is True
    assert host.superblock_alive(_kdev(os.stat("/proc").st_dev)) is True
    # the last anonymous minor: no superblock has it
    assert host.superblock_alive(0 << 20 | 0xFFFFF) is False


def test_an_architecture_without_ustat_cannot_tell(monkeypatch):
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    assert host.superblock_alive(_kdev(os.stat("/").st_dev)) is None
