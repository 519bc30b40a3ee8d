"""Names of an EROFS image read from the image file (resolve/dirtree.py),
checked against the source tree and against erofs-utils' own dump.erofs."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess

import pytest

from erofs_top.resolve.dirtree import image_paths, parse_dir_block
from erofs_top.resolve.superblock import ErofsFormatError, read_superblock

pytestmark = pytest.mark.skipif(not (shutil.which("mkfs.erofs") and shutil.which("dump.erofs")),
                                reason="erofs-utils missing (apt-get install erofs-utils)")
ODD = b"n\xffm \t\x01"                 # any byte but NUL and '/'


def _tree(src: str) -> None:
    os.makedirs(f"{src}/a/b/deep/er", exist_ok=True)
    os.makedirs(f"{src}/empty")
    os.makedirs(f"{src}/many")
    with open(f"{src}/a/x", "w") as f:
        f.write("hi")
    os.link(f"{src}/a/x", f"{src}/many/hard")
    with open(f"{src}/big", "wb") as f:
        f.write(b"z" * 9000)                  # two blocks and an inline tail
    for i in range(400):                      # a directory of several blocks
        with open(f"{src}/many/file_with_a_rather_long_name_{i:04d}", "w") as f:
            f.write(str(i))
    with open(os.path.join(os.fsencode(src), b"a/b/" + ODD), "wb") as f:
        f.write(b"q")
    os.symlink("../big", f"{src}/a/link")


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    d = tmp_path_factory.mktemp("dirtree")
    src, img = d / "src", d / "img"
    _tree(str(src))
    subprocess.run(["mkfs.erofs", "--quiet", str(img), str(src)], check=True,
                   stdout=subprocess.DEVNULL)
    sb = read_superblock(str(img))[0]
    fd = os.open(img, os.O_RDONLY)

    def read(off: int, n: int) -> bytes:
        return os.pread(fd, n, off)
    yield sb, read, str(img), str(src)
    os.close(fd)


def _dump_ls(img: str, path: bytes) -> dict[bytes, int]:
    """name -> nid of one directory, as dump.erofs --ls prints it."""
    out = subprocess.run([b"dump.erofs", b"--ls", b"--path=" + path, img.encode()],
                         check=True, capture_output=True).stdout
    rows = {}
    for line in out.split(b"\n"):
        m = re.match(rb"^\s*(\d+)\s+(\d+)\s+(.+)$", line)
        if m and m.group(3) not in (b".", b".."):
            rows[m.group(3)] = int(m.group(1))
    return rows


def test_every_source_path_is_named_once(image):
    sb, read, _, src = image
    paths = image_paths(sb, read, sb.root_nid, b"/mnt")
    want = {b"/mnt"}
    for d, dirs, files in os.walk(os.fsencode(src)):
        rel = os.path.relpath(d, os.fsencode(src))
        base = b"/mnt" if rel == b"." else b"/mnt/" + rel
        want |= {base + b"/" + n for n in dirs + files}
    want.discard(b"/mnt/many/hard")           # a hard link keeps its first name
    assert set(paths.values()) == want
    assert len(paths) == len(want)


def test_nids_equal_what_dump_erofs_lists(image):
    sb, read, img, _ = image
    paths = image_paths(sb, read, sb.root_nid, b"")
    by_path = {p: nid for nid, p in paths.items()}
    by_path[b"/many/hard"] = by_path[b"/a/x"]
    for d in (b"/", b"/a", b"/a/b", b"/many", b"/empty"):
        for name, nid in _dump_ls(img, d).items():
            assert by_path[d.rstrip(b"/") + b"/" + name] == nid, (d, name)
    assert len(_dump_ls(img, b"/many")) == 401


def test_a_subdirectory_as_the_mount_root(image):
    sb, read, img, _ = image
    a_nid = _dump_ls(img, b"/")[b"a"]
    paths = image_paths(sb, read, a_nid, b"/bind")
    assert sorted(paths.values()) == [b"/bind", b"/bind/b", b"/bind/b/deep", b"/bind/b/deep/er",
                                      b"/bind/b/" + ODD, b"/bind/link", b"/bind/x"]


def _block(entries: list[tuple[int, bytes]], size: int = 64) -> bytes:
    head = len(entries) * 12
    recs, names, off = b"", b"", head
    for nid, name in entries:
        recs += struct.pack("<QHBB", nid, off, 1, 0)
        names += name
        off += len(name)
    return (recs + names).ljust(size, b"\0")


def test_a_hand_built_block_and_its_nul_padded_last_name():
    blk = _block([(5, b"."), (3, b".."), (9, b"ab"), (12, b"xyz")])
    assert parse_dir_block(blk) == [(b".", 5, 1), (b"..", 3, 1), (b"ab", 9, 1), (b"xyz", 12, 1)]


@pytest.mark.parametrize("damage", ["nameoff not a record multiple", "name offset past the block",
                                    "empty name", "slash in a name"])
def test_damaged_blocks_are_refused(damage):
    blk = bytearray(_block([(5, b"."), (3, b".."), (9, b"ab")]))
    if damage == "nameoff not a record multiple":
        struct.pack_into("<H", blk, 8, 13)
    elif damage == "name offset past the block":
        struct.pack_into("<H", blk, 8, 1200)
    elif damage == "empty name":
        struct.pack_into("<H", blk, 12 + 8, struct.unpack_from("<H", blk, 24 + 8)[0])
    else:
        blk[36 + 3] = ord("/")                # the third name, "ab" -> "/b"
    with pytest.raises(ErofsFormatError):
        parse_dir_block(bytes(blk))
