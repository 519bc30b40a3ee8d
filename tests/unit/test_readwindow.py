"""The read window of a file in its image (readwindow.py) and the run helpers."""
from __future__ import annotations

import struct

from erofs_top import pagecache
from erofs_top.pagecache import page_runs
from erofs_top.resolve.readwindow import (inode_runs, meta_span, readahead_margin_pages,
                                          shared_xattr_spans)
from erofs_top.resolve.superblock import (CHUNK_BASED, COMPRESSED_FULL, FLAT_INLINE, FLAT_PLAIN,
                                          DiskInode, Superblock)

PS = 4096


def _sb(**kw) -> Superblock:
    base = dict(feature_compat=0, feature_incompat=0, blkszbits=12, sb_extslots=0, root_nid=36,
                inos=10, blocks=1000, meta_blkaddr=1, xattr_blkaddr=2, uuid=b"\0" * 16,
                volume_name="", checksum=0, packed_nid=0, metabox_nid=0, xattr_prefix_count=0,
                ishare_xattr_prefix_id=0)
    base.update(kw)
    return Superblock(**base)


def test_runs_helpers():
    assert list(page_runs([1, 2, 3, 7, 9, 10])) == [(1, 3), (7, 1), (9, 2)]
    assert list(page_runs([])) == []
    assert pagecache.coalesce_runs([(10, 2), (0, 3), (3, 1), (11, 5)]) == [(0, 4), (10, 6)]
    assert pagecache.coalesce_runs([(5, 1), (9, 2)], align_pages=4) == [(4, 8)]
    assert pagecache.coalesce_runs([(5, 0)]) == []
    assert pagecache._near_runs_merged([(1000, 2), (0, 3), (100, 1)]) == [(0, 101), (1000, 2)]
    gap = pagecache.NEAR_RUN_GAP_PAGES       # runs exactly that far apart stay two
    assert pagecache._near_runs_merged([(0, 1), (1 + gap, 1)]) == [(0, 1), (1 + gap, 1)]
    assert pagecache._near_runs_merged([(0, 1), (gap, 1)]) == [(0, gap + 1)]
    assert pagecache.coalesce_runs([(0, 2), (5, 1)], gap_pages=3) == [(0, 6)]
    assert pagecache.coalesce_runs([(0, 2), (6, 1)], gap_pages=3) == [(0, 2), (6, 1)]
    assert readahead_margin_pages(32) == 65


def test_meta_span_per_layout():
    sb = _sb()
    at = 4096 + 32 * 10
    flat = DiskInode(nid=10, extended=False, layout=FLAT_PLAIN, mode=0o100644, size=10 * PS)
    assert meta_span(sb, flat, at) == (at, at + 32)
    inline = DiskInode(nid=10, extended=True, layout=FLAT_INLINE, mode=0o100644, size=PS + 100,
                       xattr_icount=2)
    assert meta_span(sb, inline, at) == (at, at + 64 + 16 + 100)
    for layout in (COMPRESSED_FULL, CHUNK_BASED):     # an index of up to 8 bytes a block
        rec = DiskInode(nid=10, extended=False, layout=layout, mode=0o100644, size=100 * PS)
        lo, hi = meta_span(sb, rec, at)
        assert lo == at and hi >= at + 32 + 8 * 100 + PS


def test_inode_runs_data_margin_and_shared_xattrs():
    sb = _sb()
    rec = DiskInode(nid=10, extended=False, layout=FLAT_PLAIN, mode=0o100644, size=3 * PS,
                    xattr_icount=3)                 # ibody header + one shared id
    at = sb.inode_offset(10)
    xattr_at = 2 * PS + 4 * 1025                    # shared xattr id 1025
    image = bytearray(4 * PS + 8192)
    image[at + 32:at + 32 + 12] = struct.pack("<IB7x", 0, 1)
    image[at + 44:at + 48] = struct.pack("<I", 1025)
    image[xattr_at:xattr_at + 4] = struct.pack("<BBH", 9, 6, 40)

    def read(off, n):
        return bytes(image[off:off + n])
    assert shared_xattr_spans(sb, rec, at, read) == [(xattr_at, xattr_at + 4 + 9 + 40)]
    runs = inode_runs(sb, rec, 0, [50, 51, 52, 60], read, 65, PS, meta_margin=False)
    assert runs == [(1, 1), (3, 1), (50, 3 + 65), (60, 1 + 65)]
    loop = inode_runs(sb, rec, 0, [], read, 65, PS, meta_margin=True)
    assert loop == [(1, 66), (3, 66)]


def test_unseen_cached_finds_the_pages_mincore_does_not_show(monkeypatch):
    cached = {3, 4, 5, 9, 200}          # what cachestat counts; mincore shows 3 and 200
    def counted(fd, first=0, pages=0):
        return sum(first <= p < first + pages for p in cached)
    monkeypatch.setattr(pagecache, "_cached_count", counted)
    mask = (1 << 3) | (1 << 200)
    unseen = pagecache._unseen_cached(-1, 0, 256, mask, len(cached))
    assert pagecache.mask_pages(unseen) == [4, 5, 9]
    assert pagecache._unseen_cached(-1, 0, 256, mask | unseen, len(cached)) == 0
