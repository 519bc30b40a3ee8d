"""Plain files' bytes read from the image (erofs_top/resolve/filedata.py)
against the source, on what erofs-utils 1.9.x writes and the host's 1.5
cannot: chunk-based files whose zero chunks are holes, 48-bit images (whose
superblock keeps the 2-byte root nid when the 8-byte one is unset), a
separate metadata zone, aligned data, blocks of 512 and 2048 bytes, and a
layer tar converted as containerd's EROFS differ converts it.  Each image is also mounted and one
file's digest from the image equals the one read through the mount."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess

import pytest

from erofs_top.resolve.content import ImageContent
from erofs_top.resolve.dirtree import image_paths
from erofs_top.resolve.filedata import file_data
from erofs_top.resolve.mounts import SysMounts
from erofs_top.resolve.superblock import INCOMPAT_48BIT, parse_inode, read_superblock

from . import labkit as lk
from .conftest import REPORT

BUILDS = {"inline": (), "chunked": ("--chunksize=4096",), "chunk64k": ("--chunksize=65536",),
          "48bit": ("-E48bit",), "metadata zone": ("--MZ",), "dsunit": ("--dsunit=4",),
          # blocks smaller than a page (block addresses and inline tails in 512 B units)
          "blocks 512": ("-b", "512"), "blocks 2048": ("-b", "2048"),
          # containerd's EROFS differ: a layer tar converted whole, data where the
          # tar had it (the image's source is the tar, not the directory)
          "tar layer": ("--tar=f", "--aufs", "-Enoinline_data")}


@pytest.fixture(scope="module")
def src(lab):
    d = lk.workdir("filedata")
    root = os.path.join(d, "src")
    lk.write_random(os.path.join(root, "tail"), 9426, seed=1)
    lk.write_random(os.path.join(root, "big"), 3 * (1 << 20) + 77, seed=2)
    lk.write_random(os.path.join(root, "d", "blocks"), 12288, seed=3)
    with open(os.path.join(root, "small"), "wb") as f:
        f.write(b"tiny\n")
    with open(os.path.join(root, "sparse"), "wb") as f:     # zero chunks: holes
        f.write(b"head" * 1024)
        f.seek(40 * 4096)
        f.write(b"tail" * 100)
    shutil.copy(shutil.which("ls"), os.path.join(root, "d", "elf"))
    open(os.path.join(root, "empty"), "wb").close()
    try:
        yield d
    finally:
        lk.rmtree(d)


def _files_from_image(img: str, root: str) -> tuple[int, int, object]:
    """(files read, bytes in holes) of every regular file, each checked
    against its source; and the superblock."""
    sb = read_superblock(img)[0]
    fd = os.open(img, os.O_RDONLY)
    try:
        def read(off: int, n: int) -> bytes:
            return os.pread(fd, n, off)
        files = holes = 0
        for nid, path in image_paths(sb, read, sb.root_nid, b"").items():
            ino = parse_inode(read(sb.inode_offset(nid), 64), nid)
            if not ino.regular:
                continue
            data = file_data(sb, ino, read, read)
            assert data is not None, path
            want = open(os.path.join(root, path.decode().lstrip("/")), "rb").read()
            assert b"".join(data.pieces(1 << 20)) == want, path
            tail = ino.size - data.tail_from if data.tail_at >= 0 else 0
            holes += ino.size - tail - sum(n for _, n, _ in data.extents)
            files += 1
        return files, holes, sb
    finally:
        os.close(fd)


@pytest.mark.parametrize("build", list(BUILDS))
def test_plain_files_read_from_the_image_equal_their_source(src, build):
    root = os.path.join(src, "src")
    source = root
    if build == "tar layer":
        source = os.path.join(src, "layer.tar")
        subprocess.run(["tar", "-C", root, "-cf", source, "."], check=True)
    img = lk.mkfs_erofs(os.path.join(src, f"{build.replace(' ', '-')}.erofs"), source,
                        *BUILDS[build])
    files, holes, sb = _files_from_image(img, root)
    assert files == 7
    if build.startswith("chunk"):
        # the sparse file's zero chunks (a whole 64 KiB one at least) are holes
        assert holes >= 65536, holes
    if build == "48bit":
        assert sb.feature_incompat & INCOMPAT_48BIT
    if build.startswith("blocks"):
        assert sb.block_size == int(build.split()[1])
    assert sb.blocks * sb.block_size <= os.path.getsize(img)
    with lk.erofs_mount(img) as mnt:
        sm = SysMounts()
        sm.refresh()
        mi = next(m for m in sm.mounts() if m.mountpoint == mnt)
        ic = ImageContent(digest_budget_bytes_per_s=None)
        nid = ic._index_of(mi).nid_of(os.path.join(mnt, "big"))
        want = hashlib.sha256(open(os.path.join(mnt, "big"), "rb").read()).hexdigest()
        assert ic.digest(mi, nid) == want
        assert ic.data_reads_from_image == 1
    REPORT.append(f"file data from the image ({build}): {files} files equal their source, "
                  f"{holes} B in holes; the digest from the image equals the mount's")
