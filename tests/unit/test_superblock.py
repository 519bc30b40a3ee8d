"""EROFS superblock and inode parsing: real mkfs.erofs images + crafted bytes."""
from __future__ import annotations

import os
import random
import re
import shutil
import struct
import subprocess

import pytest

from erofs_top.resolve import superblock as sbm
from erofs_top.resolve.superblock import (ErofsFormatError, image_info, parse_inode,
                                          parse_superblock, read_inode, read_superblock)

UUID = "11111111-2222-3333-4444-555555555555"

pytestmark = pytest.mark.skipif(not shutil.which("mkfs.erofs"),
                                reason="mkfs.erofs missing (apt-get install erofs-utils)")


def mkfs(img, src, *args):
    subprocess.run(["mkfs.erofs", "--quiet", *args, str(img), str(src)], check=True,
                   capture_output=True)
    return str(img)


def nid_of(img, rel):
    """nid of a path, from dump.erofs (an independent reader of the format)."""
    out = subprocess.run(["dump.erofs", f"--path=/{rel}", str(img)], capture_output=True,
                         text=True, check=True).stdout
    return int(re.search(r"NID:\s*(\d+)", out).group(1))


@pytest.fixture
def tree(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "random.bin").write_bytes(random.Random(1).randbytes(300_000))
    (src / "text.txt").write_bytes(b"erofs-top " * 50_000)     # compresses well
    (src / "d" / "tiny").write_bytes(b"x")
    return src


def test_plain_image_superblock(tree, tmp_path):
    img = mkfs(tmp_path / "p.erofs", tree, f"-U{UUID}")
    sb, first = read_superblock(img)
    assert sb.block_size == 4096 and len(first) == 4096
    assert sb.uuid_str == UUID
    assert sb.image_size == os.path.getsize(img)
    assert not sb.compressed and not sb.ishare_xattrs
    assert "sb_csum" in sb.feature_names()
    root = read_inode(img, sb, sb.root_nid)
    assert root.mode & 0o170000 == 0o040000 and not root.regular
    info = image_info(img)
    assert info.uuid == UUID and info.block_size == 4096 and not info.compressed
    assert info.image_id.startswith("111111112222-")


def test_inodes_by_nid_match_dump_erofs(tree, tmp_path):
    img = mkfs(tmp_path / "z.erofs", tree, "-zlz4")
    sb, _ = read_superblock(img)
    assert sb.compressed            # the image-level hint: a compressing mkfs
    rnd = read_inode(img, sb, nid_of(img, "random.bin"))
    txt = read_inode(img, sb, nid_of(img, "text.txt"))
    tiny = read_inode(img, sb, nid_of(img, "d/tiny"))
    assert (rnd.size, txt.size, tiny.size) == (300_000, 500_000, 1)
    assert rnd.regular and txt.regular
    # per file: random bytes do not compress and stay plain; text is compressed
    assert not rnd.compressed and txt.compressed
    assert txt.layout_name.startswith("compressed")


def test_image_id_same_image_same_id_other_build_other_id(tree, tmp_path):
    a = mkfs(tmp_path / "a.erofs", tree)
    b = mkfs(tmp_path / "b.erofs", tree)             # same tree, new random uuid
    a2 = tmp_path / "a-copy.erofs"
    shutil.copy(a, a2)
    assert image_info(a).image_id == image_info(str(a2)).image_id
    assert image_info(a).image_id != image_info(b).image_id


def test_image_id_forced_uuid_and_time_differs_by_data(tmp_path):
    """-U and -T forced equal and identical metadata: only the data differs."""
    ids = []
    for seed in (1, 2):
        src = tmp_path / f"s{seed}"
        src.mkdir()
        (src / "f").write_bytes(random.Random(seed).randbytes(200_000))
        ids.append(image_info(mkfs(tmp_path / f"{seed}.erofs", src, f"-U{UUID}", "-T100")).image_id)
    assert ids[0] != ids[1]


@pytest.mark.parametrize("data,msg", [
    (b"", "too short"),
    (b"\0" * 128, "no EROFS magic"),
    (struct.pack("<I", sbm.EROFS_SUPER_MAGIC) + b"\0" * 20, "truncated EROFS superblock"),
    (struct.pack("<IIIB", sbm.EROFS_SUPER_MAGIC, 0, 0, 40) + b"\0" * 124, "block size"),
])
def test_bad_superblock_bytes(data, msg):
    with pytest.raises(ErofsFormatError, match=msg) as ei:
        parse_superblock(data)
    assert "\n" not in str(ei.value)


def test_48bit_superblock_fields():
    raw = bytearray(144)
    struct.pack_into("<IIIBBH", raw, 0, sbm.EROFS_SUPER_MAGIC, 0, 0x20, 12, 1, 3)
    struct.pack_into("<I", raw, 36, 5)                   # blocks_lo
    struct.pack_into("<I", raw, 80, sbm.INCOMPAT_48BIT)
    struct.pack_into("<Q", raw, 112, 1234)               # rootnid_8b
    raw[64:69] = b"label"
    sb = parse_superblock(bytes(raw))
    assert sb.blocks == (3 << 32) | 5 and sb.root_nid == 1234
    assert sb.ishare_xattrs and sb.volume_name == "label" and sb.sb_size == 144
    with pytest.raises(ErofsFormatError, match="48-bit"):
        parse_superblock(bytes(raw[:128]))
    # without the 8-byte root nid (mkfs.erofs 1.9.4 -E48bit, a small image:
    # checked in the lab, tests/vm/test_filedata_lab.py) the u16 is the root
    # nid and blocks_lo the count, as fs/erofs/super.c reads them
    struct.pack_into("<Q", raw, 112, 0)
    sb = parse_superblock(bytes(raw))
    assert sb.root_nid == 3 and sb.blocks == 5


def test_metabox_inodes_refused_clearly():
    raw = bytearray(144)
    struct.pack_into("<IIIB", raw, 0, sbm.EROFS_SUPER_MAGIC, 0, 0, 12)
    struct.pack_into("<I", raw, 80, sbm.INCOMPAT_METABOX)
    sb = parse_superblock(bytes(raw))
    with pytest.raises(ErofsFormatError, match="metabox"):
        sb.inode_offset(40)


def test_inode_parsing_compact_extended_and_bad():
    compact = struct.pack("<HHHHI", (sbm.COMPRESSED_COMPACT << 1), 0, 0o100644, 1, 777)
    ino = parse_inode(compact + bytes(32 - len(compact)), 7)
    assert (ino.extended, ino.compressed, ino.size, ino.regular) == (False, True, 777, True)
    ext = struct.pack("<HHHHQ", 1 | (sbm.FLAT_INLINE << 1), 0, 0o100600, 0, 5 << 32)
    ino = parse_inode(ext + bytes(64 - len(ext)))
    assert ino.extended and not ino.compressed and ino.size == 5 << 32
    with pytest.raises(ErofsFormatError, match="truncated extended"):
        parse_inode(ext + bytes(24))
    with pytest.raises(ErofsFormatError, match="unknown data layout"):
        parse_inode(struct.pack("<H", 6 << 1) + bytes(30))
    with pytest.raises(ErofsFormatError, match="truncated"):
        parse_inode(b"\0" * 10)


def test_not_an_image_files(tmp_path):
    small = tmp_path / "small"
    small.write_bytes(b"hello")
    with pytest.raises(ErofsFormatError, match="too short"):
        read_superblock(str(small))
    big = tmp_path / "big"
    big.write_bytes(b"\0" * 8192)
    with pytest.raises(ErofsFormatError, match="no EROFS magic"):
        image_info(str(big))
    with pytest.raises(OSError):
        read_superblock(str(tmp_path / "missing"))


from hypothesis import given, strategies as st  # noqa: E402


@given(st.binary(max_size=200))
def test_random_superblock_bytes_never_traceback(data):
    data = struct.pack("<I", sbm.EROFS_SUPER_MAGIC) + data
    try:
        sb = parse_superblock(data)
    except ErofsFormatError as e:
        assert "\n" not in str(e)
    else:
        assert 512 <= sb.block_size <= 65536


@given(st.binary(max_size=80))
def test_random_inode_bytes_never_traceback(data):
    try:
        ino = parse_inode(data)
    except ErofsFormatError:
        pass
    else:
        assert ino.layout <= sbm.CHUNK_BASED and ino.size >= 0


@pytest.mark.parametrize("extended,mode,nlink_1,want", [
    (False, 0o100644, True, 7),      # compact file, EROFS_I_NLINK_1_BIT: i_nb is startblk_hi
    (False, 0o100644, False, 0),     # compact file without it: i_nb is nlink
    (False, 0o040755, True, 0),      # a directory: the bit means "dot omitted"
    (True, 0o100644, False, 7),      # extended: i_nb is startblk_hi
])
def test_inode_startblk_hi_as_the_kernel_reads_it(extended, mode, nlink_1, want):
    """fs/erofs/inode.c erofs_read_inode; found by the lab's 48-bit image
    (tests/vm/test_filedata_lab.py), whose compact inodes hold nlink 1 there."""
    raw = bytearray(64)
    i_format = int(extended) | sbm.FLAT_PLAIN << 1 | int(nlink_1) << sbm.I_NLINK_1_BIT
    struct.pack_into("<HHHH", raw, 0, i_format, 0, mode, 7)
    assert parse_inode(bytes(raw), 1).startblk_hi == want
