"""Where a file's data blocks sit in the image (superblock.data_extents and
file_page_map), checked against the source bytes on real mkfs.erofs images:
the image bytes at the mapped offsets must be the file's own bytes."""
from __future__ import annotations

import os
import random

import pytest

from erofs_top.resolve.superblock import (CHUNK_BASED, FLAT_INLINE, FLAT_PLAIN,
                                          compressed_page_map, data_extents, dump_extents,
                                          file_page_map, metadata_offsets, parse_dump_extents,
                                          parse_inode, read_image, read_inode, read_superblock)

from test_superblock import mkfs, nid_of

PAGE = 4096


@pytest.fixture
def src(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    rng = random.Random(7)
    for name, size in (("a.bin", 300_000), ("b.bin", 8192), ("odd.bin", 12_345),
                       ("big.bin", 1 << 20), ("tiny", 3)):
        (d / name).write_bytes(rng.randbytes(size))
    return d


CASES = {
    "inline tails": (FLAT_INLINE, ()),
    "no inline data": (FLAT_PLAIN, ("-Enoinline_data",)),
    "chunks 4 KiB indexes": (CHUNK_BASED, ("--chunksize=4096",)),
    "chunks 64 KiB": (CHUNK_BASED, ("--chunksize=65536",)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_mapped_image_bytes_are_the_file_bytes(src, tmp_path, case):
    layout, opts = CASES[case]
    img = mkfs(tmp_path / "i.erofs", src, *opts)
    sb, _ = read_superblock(img)
    layouts = set()
    for f in sorted(src.iterdir()):
        data = f.read_bytes()
        ino = read_inode(img, sb, nid_of(img, f.name))
        layouts.add(ino.layout)
        ext = data_extents(sb, ino, lambda off, n: read_image(img, off, n))
        assert ext is not None, f.name
        covered = 0
        for foff, length, ioff in ext:
            assert read_image(img, ioff, length) == data[foff:foff + length], (case, f.name)
            covered += length
        # everything but an inline tail sits in data blocks
        tail = len(data) % sb.block_size if ino.layout == FLAT_INLINE else 0
        assert covered == len(data) - tail, (case, f.name, covered, len(data))
        pages = file_page_map(ext, 0, PAGE)
        for fpage, img_pages in pages.items():
            start = fpage * PAGE
            in_blocks = data[start:min(start + PAGE, len(data) - tail)]
            blob = b"".join(read_image(img, p * PAGE, PAGE) for p in img_pages)
            assert in_blocks and in_blocks in blob, (case, f.name, fpage)
    assert layout in layouts, (case, layouts)


def test_compressed_files_are_not_mapped(src, tmp_path):
    (src / "text.txt").write_bytes(b"erofs-top " * 50_000)     # compresses well
    img = mkfs(tmp_path / "z.erofs", src, "-zlz4hc")
    sb, _ = read_superblock(img)
    ino = read_inode(img, sb, nid_of(img, "text.txt"))
    assert ino.compressed
    assert data_extents(sb, ino, lambda off, n: read_image(img, off, n)) is None


def test_file_page_map_with_small_blocks_and_a_loop_offset():
    # 1 KiB blocks: file bytes 0..4095 in two runs; image at offset 512 in its file
    ext = [(0, 2048, 10 * 1024), (2048, 2048, 20 * 1024)]
    assert file_page_map(ext, 512, 4096) == {0: (2, 3, 5)}


def test_dump_erofs_extent_lines():
    # dump.erofs 1.9 -e output: a compressed cluster, a plain extent, a fragment
    out = b"""
 Ext:   logical offset   |  length :     physical offset    |  length
   0:        0..  500000 |  500000 :     303104..    307200 |    4096
   1:   500000..  503000 |    3000 :          0..         0 |       0
"""
    ext = parse_dump_extents(out)
    assert ext == [(0, 500000, 303104, 4096)]
    pm = compressed_page_map(ext, 4096)
    assert pm[0] == pm[122] == (74,) and 123 not in pm


def test_dump_extents_of_a_real_compressed_file(src, tmp_path):
    (src / "text.txt").write_bytes(b"erofs-top " * 50_000)
    img = mkfs(tmp_path / "z.erofs", src, "-zlz4hc")
    ext = dump_extents(img, nid_of(img, "text.txt"))
    assert ext and sum(llen for _, llen, _, _ in ext) == 500_000
    assert all(0 < pa < os.path.getsize(img) for _, _, pa, _ in ext)


@pytest.mark.parametrize("case", ["inline tails", "no inline data"])
def test_metadata_offsets_hold_the_inode_and_the_inline_tail(src, tmp_path, case):
    # the bytes at the inode offset are that inode (its size), and those at
    # the tail offset the file's last size % block_size bytes
    layout, opts = CASES[case]
    img = mkfs(tmp_path / "i.erofs", src, *opts)
    sb, _ = read_superblock(img)
    tails = 0
    for f in sorted(src.iterdir()):
        data = f.read_bytes()
        nid = nid_of(img, f.name)
        ino = read_inode(img, sb, nid)
        inode_at, tail_at = metadata_offsets(sb, ino)
        assert parse_inode(read_image(img, inode_at, 64), nid).size == len(data)
        tail = len(data) % sb.block_size if layout == FLAT_INLINE else 0
        if tail:
            tails += 1
            assert read_image(img, tail_at, tail) == data[-tail:], f.name
        else:
            assert tail_at == -1, f.name
    # a.bin (300,000 % 4096 = 992), odd.bin (57) and tiny (3) end in a tail
    assert tails == (3 if layout == FLAT_INLINE else 0)


def test_one_run_is_kept_as_three_ints():
    """A file whose pages are one run of image pages, one each (most plain
    files): a RunPageMap, equal to the dict it stands for in every use."""
    from erofs_top.resolve.superblock import RunPageMap
    # 3 pages of data at image offset 40960, then a partial 4th page
    pm = file_page_map([(0, 3 * 4096 + 100, 40960)], 0, 4096)
    as_dict = {0: (10,), 1: (11,), 2: (12,), 3: (13,)}
    assert isinstance(pm, RunPageMap) and pm == as_dict and as_dict == pm
    assert dict(pm.items()) == as_dict and list(pm.values()) == list(as_dict.values())
    assert pm.get(3) == (13,) and pm.get(4, ()) == () and pm.get(-1) is None
    assert 2 in pm and 4 not in pm and "2" not in pm and 2.0 not in pm and len(pm) == 4
    assert set().union(*(pm.keys(), {7})) == {0, 1, 2, 3, 7}
    from erofs_top.savings import mapped_pages
    assert list(mapped_pages(pm)) == [10, 11, 12, 13]
    # not one run: kept as the dict (a gap in the image, a page over two image pages)
    gap = file_page_map([(0, 4096, 0), (4096, 4096, 3 * 4096)], 0, 4096)
    assert type(gap) is dict and gap == {0: (0,), 1: (3,)}
    assert list(mapped_pages(gap)) == [0, 3]
    assert list(mapped_pages(file_page_map([(0, 4096, 512)], 0, 4096))) == [0, 1]
    assert type(file_page_map([(0, 4096, 512)], 0, 4096)) is dict


def test_direct_reads_through_the_kept_buffer_equal_the_file(tmp_path, monkeypatch):
    """O_DIRECT reads go through a buffer kept between reads (grown, and a
    mapping of its own past DIRECT_BUFFER_MAX): every read, in any order of
    sizes, equals the file's bytes, short at its end."""
    from erofs_top.resolve import superblock
    monkeypatch.setattr(superblock, "DIRECT_BUFFER_MAX", 256 << 10)
    monkeypatch.setattr(superblock, "_direct", superblock.threading.local())
    path = tmp_path / "data.bin"
    data = random.Random(3).randbytes(700_001)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        cases = [(0, 10), (5, 70_000), (123_456, 200_000), (4096, 4096), (1, 300_000),
                 (650_000, 100_000), (0, 700_001), (699_999, 10), (8191, 1), (3, 65_536)]
        for offset, length in cases:
            got = superblock.read_direct(fd, offset, length)
            assert got == data[offset:offset + length], (offset, length)
        assert len(superblock._direct.buf) <= 256 << 10     # the cap: larger reads not kept
    finally:
        os.close(fd)
