"""A plain file's data read from its image (resolve/filedata.py), checked
byte for byte against the source tree, on real mkfs.erofs images of every
uncompressed layout (flat with an inline tail, flat without, chunk-based
with holes) and at an offset in a bigger file."""
from __future__ import annotations

import contextlib
import io
import os
import random
import shutil
import struct
import subprocess

import pytest

from erofs_top.resolve.content import build_id_of
from erofs_top.resolve.dirtree import image_paths
from erofs_top.resolve.filedata import FileDataStream, _merged, file_data
from erofs_top.resolve.superblock import (CHUNK_BASED, CHUNK_FORMAT_BLKBITS_MASK,
                                          CHUNK_FORMAT_INDEXES, FLAT_INLINE, FLAT_PLAIN, NULL_ADDR,
                                          parse_inode, read_superblock)

pytestmark = pytest.mark.skipif(not shutil.which("mkfs.erofs"),
                                reason="erofs-utils missing (apt-get install erofs-utils)")
BS = 4096
LAYOUTS = {"inline": (), "plain": ("-Enoinline_data",), "chunked": ("--chunksize=4096",)}


def _tree(src: str) -> dict[str, bytes]:
    rng = random.Random(7)
    files = {
        "empty": b"",
        "small": b"tiny file\n",
        "tail": rng.randbytes(2 * BS + 1234),          # blocks and an inline tail
        "blocks": rng.randbytes(3 * BS),              # whole blocks, no tail
        "big": rng.randbytes(5 * (1 << 20) + 77),      # several 1 MiB pieces
        "d/e/deep": rng.randbytes(BS - 1),
    }
    for rel, data in files.items():
        os.makedirs(os.path.dirname(f"{src}/{rel}") or src, exist_ok=True)
        with open(f"{src}/{rel}", "wb") as f:
            f.write(data)
    # a sparse file: chunk-based images map its all-zero chunks to no block
    with open(f"{src}/sparse", "wb") as f:
        f.write(b"head" * 1024)
        f.seek(40 * BS)
        f.write(b"tail" * 100)
    files["sparse"] = b"head" * 1024 + bytes(40 * BS - 4096) + b"tail" * 100
    shutil.copy("/bin/true", f"{src}/elf")
    with open("/bin/true", "rb") as f:
        files["elf"] = f.read()
    return files


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("filedata")
    files = _tree(str(d / "src"))
    out = {}
    for name, args in LAYOUTS.items():
        img = d / f"{name}.erofs"
        subprocess.run(["mkfs.erofs", *args, str(img), str(d / "src")], check=True,
                       capture_output=True)
        out[name] = str(img)
    # the inline image again, 3 blocks into a bigger file (an image at an offset)
    padded = d / "padded"
    with open(padded, "wb") as f:
        f.write(os.urandom(3 * BS))
        with open(out["inline"], "rb") as g:
            f.write(g.read())
    out["padded"] = str(padded)
    return files, out


@contextlib.contextmanager
def _opened(path: str, base: int):
    """(superblock, reader, path -> nid) of the image at ``path`` + ``base``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        sb = read_superblock(path, base)[0]

        def read(off: int, n: int) -> bytes:
            return os.pread(fd, n, off)

        def rel(off: int, n: int) -> bytes:
            return read(base + off, n)
        nids = {p.decode(): nid for nid, p in image_paths(sb, rel, sb.root_nid, b"").items()}
        yield sb, read, nids
    finally:
        os.close(fd)


def _inode(sb, read, nids, name: str, base: int = 0):
    nid = nids["/" + name]
    return parse_inode(read(base + sb.inode_offset(nid), 64), nid)


@pytest.mark.parametrize("layout,base", [("inline", 0), ("plain", 0), ("chunked", 0),
                                         ("padded", 3 * BS)])
def test_every_file_reads_as_its_source(images, layout, base):
    files, paths = images
    with _opened(paths[layout], base) as (sb, read, nids):
        seen = set()
        for rel, want in files.items():
            ino = _inode(sb, read, nids, rel, base)
            seen.add(ino.layout)
            data = file_data(sb, ino, read, read, base)
            assert data is not None, rel
            assert data.size == len(want)
            assert b"".join(data.pieces(1 << 20)) == want, rel
            # any range, also across extents, the tail and the end
            for lo, n in ((0, 1), (BS - 3, 10), (max(0, len(want) - 5), 100), (len(want) + 3, 4)):
                assert data.pread(lo, n) == want[lo:lo + n], (rel, lo, n)
        expect = {"inline": {FLAT_INLINE}, "padded": {FLAT_INLINE}, "plain": {FLAT_PLAIN},
                  "chunked": {CHUNK_BASED}}[layout]
        assert expect <= seen, seen


def test_chunk_holes_read_as_zeros_without_a_block(images, tmp_path):
    """A chunk mapped to no block (EROFS_NULL_ADDR: mkfs.erofs >= 1.6 writes
    one for a sparse file's zero chunks; here set in a copy of the image)
    reads as zeros, as the kernel maps it."""
    files, paths = images
    holed = tmp_path / "holed.erofs"
    shutil.copy(paths["chunked"], holed)
    with _opened(str(holed), 0) as (sb, read, nids):
        ino = _inode(sb, read, nids, "big")
        fmt = ino.i_u & 0xFFFF
        assert ino.layout == CHUNK_BASED and fmt & CHUNK_FORMAT_BLKBITS_MASK == 0, \
            "one chunk per block (--chunksize=4096)"
        index_at = sb.inode_offset(ino.nid) + ino.inode_size + ino.xattr_size
        if fmt & CHUNK_FORMAT_INDEXES:      # 8-byte indexes: (hi, device id, lo)
            index_at = -(-index_at // 8) * 8 + 8 * 5
            patch = struct.pack("<HHI", 0, 0, NULL_ADDR)
        else:                               # 4-byte block addresses
            index_at += 4 * 5
            patch = struct.pack("<I", NULL_ADDR)
        wfd = os.open(holed, os.O_WRONLY)
        os.pwrite(wfd, patch, index_at)
        os.close(wfd)
        data = file_data(sb, ino, read, read)
        assert sum(n for _, n, _ in data.extents) == ino.size - BS
        want = bytearray(files["big"])
        want[5 * BS:6 * BS] = bytes(BS)
        assert b"".join(data.pieces(1 << 20)) == bytes(want)


def test_elf_build_id_through_the_stream(images):
    files, paths = images
    with _opened(paths["plain"], 0) as (sb, read, nids):
        ino = _inode(sb, read, nids, "elf")
        data = file_data(sb, ino, read, read)
        want = build_id_of(io.BytesIO(files["elf"]))
        assert want, "/bin/true carries a build-id"
        assert build_id_of(io.BufferedReader(FileDataStream(data), 4096)) == want


def test_short_reads_raise(images):
    files, paths = images
    with _opened(paths["plain"], 0) as (sb, read, nids):
        ino = _inode(sb, read, nids, "blocks")
        data = file_data(sb, ino, read, lambda off, n: read(off, n)[:-1])
        with pytest.raises(OSError):
            data.pread(0, 10)


def test_extents_merge_only_where_both_offsets_run_on():
    assert _merged([(0, 4, 100), (4, 4, 104), (8, 4, 200), (16, 4, 204)]) == \
        [(0, 8, 100), (8, 4, 200), (16, 4, 204)]


def test_images_with_blob_devices_are_left_to_the_mount(images, tmp_path):
    """mkfs.erofs --blobdev puts the data on another device: a block address
    may lie there (erofs_map_dev), so nothing is read from the image."""
    files, _ = images
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(files["blocks"])
    img, blob = tmp_path / "main.erofs", tmp_path / "blob"
    subprocess.run(["mkfs.erofs", f"--blobdev={blob}", "--chunksize=4096", str(img), str(src)],
                   check=True, capture_output=True)
    with _opened(str(img), 0) as (sb, read, nids):
        assert sb.extra_devices == 1
        ino = _inode(sb, read, nids, "f")
        assert ino.regular and ino.size == len(files["blocks"])
        assert file_data(sb, ino, read, read) is None


def test_metadata_reader_reads_ahead_on_sequential_passes():
    """Two passes in image order at once (inodes low, data blocks high: a
    prefetch_identities batch) read 8 pieces a time each, not one per piece;
    every byte is the file's, up to its end."""
    from erofs_top.resolve.content import MetadataReader
    data = bytes(range(251)) * ((4 << 20) // 251)
    calls = []

    def read(path, off, n):
        calls.append((off, n))
        return data[off:off + n]
    mr = MetadataReader(read)
    cb = mr.CHUNK_BYTES
    for i in range(200):
        assert mr.read("img", i * 3000, 64) == data[i * 3000:i * 3000 + 64]
        hi = (2 << 20) + i * 5000
        assert mr.read("img", hi, 100) == data[hi:hi + 100]
    pieces = -(-200 * 3000 // cb) + -(-200 * 5000 // cb)        # 19 + 31
    assert mr.reads == len(calls) <= 2 + pieces // mr.SEQ_CHUNKS + 2, calls
    assert mr.read("img", len(data) - 10, 100) == data[-10:]


def test_metadata_reader_keeping_reads_each_piece_once():
    """Two passes over 8 MiB (twice MAX_CHUNKS' 4 MiB) one after the other:
    while ``keeping`` 16 MiB the second pass reads nothing; after it the
    kept pieces go back down to MAX_CHUNKS, the newest kept; without it
    the second pass reads the whole region again."""
    from erofs_top.resolve.content import KEPT_SEQ_CHUNKS, MetadataReader
    data = bytes(range(251)) * ((9 << 20) // 251)
    got = []

    def read(path, off, n):
        got.append(n)
        return data[off:off + n]

    def two_passes(mr):
        for _ in range(2):
            for off in range(0, 8 << 20, 4000):
                assert mr.read("img", off, 64) == data[off:off + 64]
    mr = MetadataReader(read)
    with mr.keeping(16 << 20):
        two_passes(mr)
        assert 8 << 20 <= sum(got) <= (8 << 20) + KEPT_SEQ_CHUNKS * mr.CHUNK_BYTES   # (read ahead)
    assert len(mr._chunks) == mr.MAX_CHUNKS
    assert all(type(piece) is bytes for piece in mr._chunks.values())     # no 1 MiB read held
    before = sum(got)
    off = (8 << 20) - 5000                     # the newest pieces stayed
    assert mr.read("img", off, 64) == data[off:off + 64] and sum(got) == before
    got.clear()
    two_passes(MetadataReader(read))
    assert sum(got) >= 2 * (8 << 20)
