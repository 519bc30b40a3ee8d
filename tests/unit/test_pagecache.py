"""Ground-truth primitives on real files of a disk filesystem (no root needed)."""
from __future__ import annotations

import os
import tempfile

import pytest

from erofs_top import pagecache, snapshot
from erofs_top.readings import CHUNK_PAGES, UNKNOWN_CGROUP, kdev_from_st_dev
from erofs_top.resolve.base import StaticCgroups, StaticMounts, MountInfo

PS = pagecache.PAGE_SIZE


def cold_file(dirpath, name, pages):
    """A file of ``pages`` pages on disk, none of them in the page cache."""
    p = os.path.join(dirpath, name)
    with open(p, "wb") as f:
        f.write(os.urandom(pages * PS))
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    return p


def read_pages(path, pages):
    """Read exactly these pages (POSIX_FADV_RANDOM: no readahead around them)."""
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    for p in pages:
        os.pread(fd, 1, p * PS)
    os.close(fd)


@pytest.fixture
def disk_dir():
    # a disk filesystem: DONTNEED really drops clean pages there (not on tmpfs)
    with tempfile.TemporaryDirectory(prefix="erofs-top-unit-", dir="/var/tmp") as d:
        yield d


def test_cachestat_and_mincore_agree_with_reads(disk_dir):
    p = cold_file(disk_dir, "f", 200)
    assert pagecache.file_resident_pages(p) == 0
    assert pagecache.resident_mask(p) == 0
    read_pages(p, [1, 2, 70, 199])
    fd = os.open(p, os.O_RDONLY)
    try:
        cs = pagecache.cachestat(fd)
        assert cs["nr_cache"] == 4 and cs["nr_dirty"] == 0
        assert pagecache.cachestat(fd, 64 * PS, 64 * PS)["nr_cache"] == 1     # a range
    finally:
        os.close(fd)
    assert pagecache.resident_pages(p) == [1, 2, 70, 199]
    assert pagecache.file_resident_pages(p) == 4


def test_mask_helpers():
    assert pagecache.mask_pages(0) == []
    assert pagecache.mask_pages((1 << 0) | (1 << 63) | (1 << 64) | (1 << 200)) == [0, 63, 64, 200]
    assert pagecache._mask_from_vec(bytes([1, 0, 1, 0x81, 0])) == 0b1101
    assert list(pagecache.page_runs([1, 2, 3, 7, 9, 10])) == [(1, 3), (7, 1), (9, 2)]
    assert list(pagecache.page_runs([])) == []


def test_empty_file(disk_dir):
    p = os.path.join(disk_dir, "empty")
    open(p, "wb").close()
    assert pagecache.resident_mask(p) == 0 and pagecache.file_resident_pages(p) == 0
    assert pagecache.page_owners(p) == {}


def test_preserve_residency_drops_only_new_pages(disk_dir):
    p = cold_file(disk_dir, "f", 64)
    read_pages(p, [5])
    with pagecache.preserve_residency([p, "", os.path.join(disk_dir, "missing")]):
        with open(p, "rb") as f:
            f.read()
        assert pagecache.file_resident_pages(p) == 64
    assert pagecache.resident_pages(p) == [5]            # ours gone, the workload's kept


def test_snapshot_readings_chunks(disk_dir):
    """A plain directory as the 'mount': the chunk layout and backing numbers."""
    sub = os.path.join(disk_dir, "tree", "d")
    os.makedirs(sub)
    a = cold_file(sub, "a", 150)
    b = cold_file(os.path.dirname(sub), "b", 3)
    backing = cold_file(disk_dir, "image", 10)
    read_pages(a, [0, 63, 64, 149])
    read_pages(backing, [2, 3])
    st = os.stat(os.path.dirname(sub))
    bst = os.stat(backing)
    m = MountInfo(dev=kdev_from_st_dev(st.st_dev), dev_str="x", mountpoint=os.path.dirname(sub),
                  source=backing, backing="file", backing_file=backing,
                  backing_dev=kdev_from_st_dev(bst.st_dev), backing_ino=bst.st_ino)
    r = snapshot.snapshot_readings(StaticMounts([m]), StaticCgroups(), owners=False)
    assert r.page_size == PS and not r.probes_attached and r.page_cache_bytes > 0
    got = {(c.ino, c.chunk): c.owners for c in r.chunks}
    ino_a = os.stat(a).st_ino
    assert got == {(ino_a, 0): {UNKNOWN_CGROUP: (1 << 0) | (1 << 63)},
                   (ino_a, 1): {UNKNOWN_CGROUP: 1},
                   (ino_a, 2): {UNKNOWN_CGROUP: 1 << (149 - 2 * CHUNK_PAGES)}}
    assert os.stat(b).st_ino not in {c.ino for c in r.chunks}      # cold file: no chunks
    assert r.backing_pages == {(m.backing_dev, m.backing_ino): 2}
    assert all(c.dev == m.dev for c in r.chunks)


def test_snapshot_reports_unreadable_mount():
    m = MountInfo(dev=1, dev_str="0:1", mountpoint="/nonexistent/erofs-top", source="",
                  backing="block")
    r = snapshot.snapshot_readings(StaticMounts([m]), StaticCgroups(), owners=False)
    assert r.chunks == [] and any("unreadable" in w for w in r.warnings)


def test_owners_need_privilege_or_work(disk_dir):
    p = cold_file(disk_dir, "f", 4)
    read_pages(p, [0, 1])
    ok, reason = pagecache.kpagecgroup_readable()
    if not ok:
        assert "kpagecgroup" in reason
        with pytest.raises(pagecache.PageCacheError):
            pagecache.page_owners(p)
    else:
        owners = pagecache.page_owners(p)
        assert set(owners) == {0, 1} and all(v > 0 for v in owners.values())
    assert pagecache.resident_pages(p) == [0, 1]       # looking did not load anything


def test_meminfo_cached_bytes():
    assert pagecache.meminfo_cached_bytes() > 0
