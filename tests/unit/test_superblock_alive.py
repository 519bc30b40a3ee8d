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


# ---------------------------------------------------------------- /sys/fs/erofs
# Where ustat(2) is missing (arm64, riscv) the superblocks alive are told
# from /sys/fs/erofs: one name per live EROFS superblock.  Its names on real
# kernels: "loop3" (a loop or disk mount: its block device), "0:31" (a
# file-backed mount on 7.x), "erofs-10262" (file-backed on 6.x: the private
# bdi's name, no dev in it), "fsid" or "domain,fsid" (fscache).

def _kd(major: int, minor: int) -> int:
    return major << 20 | minor


def test_sysfs_names_give_their_dev_where_they_have_one(tmp_path):
    blk = tmp_path / "block"
    (blk / "loop3").mkdir(parents=True)
    (blk / "loop3" / "dev").write_text("7:3\n")
    assert host.sysfs_name_dev("loop3", str(blk)) == _kd(7, 3)
    assert host.sysfs_name_dev("0:31", str(blk)) == _kd(0, 31)
    assert host.sysfs_name_dev("259:1048575", str(blk)) == _kd(259, 0xFFFFF)
    for name in ("erofs-10262", "domain,fsid", "loop4", "..", "0:31x"):
        assert host.sysfs_name_dev(name, str(blk)) is None, name


def test_sysfs_names_are_every_entry_but_features(tmp_path):
    for n in ("features", "loop0", "erofs-7"):
        (tmp_path / n).mkdir()
    assert sorted(host.erofs_sysfs_names(str(tmp_path))) == ["erofs-7", "loop0"]
    assert host.erofs_sysfs_names(str(tmp_path / "none")) is None


def test_a_named_dev_lives_and_unnamed_ones_are_counted():
    mounted = {_kd(0, 40), _kd(7, 1)}
    devs = [_kd(0, 41), _kd(7, 2)]
    # every unnamed superblock is a mount erofs-top sees: the others are dead
    assert host.superblocks_alive_by_sysfs(devs, mounted, [None, _kd(7, 1)]) == {
        _kd(0, 41): False, _kd(7, 2): False}
    # a named one lives, mounted or not
    assert host.superblocks_alive_by_sysfs(devs, mounted, [None, _kd(7, 1), _kd(7, 2)]) == {
        _kd(0, 41): False, _kd(7, 2): True}
    # one unnamed superblock more than the mounts explain: a dev no name
    # gives cannot be told (which of them it is, no name says)
    assert host.superblocks_alive_by_sysfs(devs, mounted, [None, None, _kd(7, 1), _kd(7, 2)]) == {
        _kd(0, 41): None, _kd(7, 2): True}
    # fewer: a mount went between the reads; nothing is told dead
    assert host.superblocks_alive_by_sysfs(devs, mounted | {_kd(0, 42)}, [None]) == {
        _kd(0, 41): None, _kd(7, 2): None}
    # a mounted dev a name gives is not counted among the unnamed
    assert host.superblocks_alive_by_sysfs([_kd(0, 41)], {_kd(0, 31)}, [_kd(0, 31)]) == {
        _kd(0, 41): False}


def test_without_ustat_a_dev_is_dead_only_at_two_reads_in_a_row():
    names = [[None]]
    live = host.SuperblockLiveness(ustat=lambda dev: None, sysfs_names=lambda: names[0],
                                   name_dev=lambda n: n)
    dev, mounted = _kd(0, 41), {_kd(0, 40)}
    # the first read that finds it dead keeps it (the mounts may be older than the names)
    assert live([dev], mounted) == {dev: True} and live.guessed == set()
    assert live([dev], mounted) == {dev: False} and live.guessed == set()
    # uncertain (a superblock more than the mounts explain): kept, and it
    # takes two dead reads again
    names[0] = [None, None]
    assert live([dev], mounted) == {dev: True} and live.guessed == {dev}
    names[0] = [None]
    assert live([dev], mounted) == {dev: True}
    assert live([dev], mounted) == {dev: False}


def test_ustat_answers_first_and_nothing_tells_without_it_or_sysfs():
    asked = []
    live = host.SuperblockLiveness(ustat=lambda dev: dev == 1,
                                   sysfs_names=lambda: asked.append(1) or [])
    assert live([1, 2], set()) == {1: True, 2: False} and not asked
    live = host.SuperblockLiveness(ustat=lambda dev: None, sysfs_names=lambda: None)
    assert live([1, 2], set()) == {1: None, 2: None} and live.guessed == set()


def test_doctor_says_how_a_detached_superblock_is_told(tmp_path, monkeypatch):
    ok, detail, fix = host.superblock_liveness_method(str(tmp_path))
    if platform.machine() == "x86_64":
        assert ok and "ustat(2)" in detail and not fix
    monkeypatch.setattr(platform, "machine", lambda: "aarch64")
    ok, detail, fix = host.superblock_liveness_method(str(tmp_path))
    assert ok and str(tmp_path) in detail and "aarch64" in detail and not fix
    ok, detail, fix = host.superblock_liveness_method(str(tmp_path / "none"))
    assert not ok and "unwatched at its unmount" in fix
