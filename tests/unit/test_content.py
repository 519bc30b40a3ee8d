"""Content identity: fingerprint xattr format, ELF build-ids, digest budget/cache,
and that hashing does not leave pages in the page cache.  A plain directory on a
disk filesystem stands in for the mount here (real EROFS mounts: integration)."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from erofs_top import pagecache
from erofs_top.readings import kdev_from_st_dev
from erofs_top.resolve.base import (AOPS_BLOCK, AOPS_COMPRESSED, AOPS_FILEIO, ImageInfo,
                                    MountInfo)
from erofs_top.resolve.content import ImageContent, build_id_of, fingerprint_hex

PS = pagecache.PAGE_SIZE


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.fixture
def tree():
    with tempfile.TemporaryDirectory(prefix="erofs-top-unit-", dir="/var/tmp") as d:
        os.makedirs(os.path.join(d, "sub"))
        for name, size in (("big", 3 << 20), ("sub/small", 5000), ("other", 3 << 20)):
            with open(os.path.join(d, name), "wb") as f:
                f.write(os.urandom(size))
                os.fsync(f.fileno())
        os.link(os.path.join(d, "big"), os.path.join(d, "big-hardlink"))
        yield d


def mount_of(d, backing="file", compressed=False, image_id="img-1"):
    st = os.stat(d)
    img = ImageInfo("", "", 0, 0, 4096, image_id, False, compressed) if image_id else None
    return MountInfo(dev=kdev_from_st_dev(st.st_dev), dev_str="x", mountpoint=d, source=d,
                     backing=backing, image=img)


def ino(path):
    return os.stat(path).st_ino


def test_fingerprint_hex_formats():
    digest = hashlib.sha256(b"abc").digest()
    assert fingerprint_hex(b"sha256:" + digest) == digest.hex()
    other = fingerprint_hex(b"blake3:whatever")
    assert other.startswith("xattr:") and "whatever" not in other
    assert fingerprint_hex(b"sha256:short").startswith("xattr:")


def test_file_info_paths_and_aops(tree):
    ic = ImageContent()
    m = mount_of(tree)
    fi = ic.file_info(m, ino(os.path.join(tree, "sub/small")))
    assert fi.path == os.path.join(tree, "sub/small") and fi.size == 5000 and fi.regular
    assert fi.aops == AOPS_FILEIO
    assert ic.file_info(m, ino(os.path.join(tree, "sub"))).regular is False
    assert ic.file_info(m, 999_999_999) is None
    # hard links: one inode, one (first found) name
    assert ic.path_of(m, ino(os.path.join(tree, "big"))) in (
        os.path.join(tree, "big"), os.path.join(tree, "big-hardlink"))
    assert ic.file_info(mount_of(tree, "loop", image_id="i2"),
                        ino(os.path.join(tree, "big"))).aops == AOPS_BLOCK
    # no readable on-disk inode here: the image's compression feature decides
    assert ic.file_info(mount_of(tree, "file", compressed=True, image_id="i3"),
                        ino(os.path.join(tree, "big"))).aops == AOPS_COMPRESSED


def test_fingerprint_from_xattr(tree):
    path = os.path.join(tree, "sub/small")
    want = hashlib.sha256(open(path, "rb").read()).digest()
    try:
        os.setxattr(path, "user.erofs-top.fp", b"sha256:" + want)
    except OSError as e:
        pytest.skip(f"no user xattrs on {tree}: {e}")
    ic = ImageContent(fingerprint_xattr="user.erofs-top.fp")
    m = mount_of(tree)
    assert ic.fingerprint(m, ino(path)) == want.hex()
    assert ic.fingerprint(m, ino(path)) == ic.digest(m, ino(path))   # comparable ids
    assert ic.fingerprint(m, ino(os.path.join(tree, "big"))) is None


def test_digest_budget_and_cache(tree):
    clock = Clock()
    ic = ImageContent(digest_budget_bytes_per_s=1 << 20, clock=clock)
    m = mount_of(tree)
    big, other = ino(os.path.join(tree, "big")), ino(os.path.join(tree, "other"))
    want = hashlib.sha256(open(os.path.join(tree, "big"), "rb").read()).hexdigest()
    assert ic.digest(m, big) == want           # overdraws the bucket: 1 MiB - 3 MiB
    assert ic.digest(m, other) is None and ic.digest_pending == 1
    clock.t += 1.0
    assert ic.digest(m, other) is None          # still in debt (-1 MiB)
    clock.t += 1.5
    assert ic.digest(m, other) is not None and ic.digest_pending == 0
    files = ic.digest_files_total
    assert ic.digest(m, big) == want and ic.digest_files_total == files    # cached
    # the same image mounted elsewhere: same (image_id, nid, size) -> not re-hashed
    m2 = mount_of(tree)
    m2.dev, m2.mountpoint = m.dev + 1, tree + "/."
    assert ic.digest(m2, big) == want and ic.digest_files_total == files
    assert ic.digest_bytes_total == 6 << 20


def test_digest_does_not_perturb_page_cache(tree):
    path = os.path.join(tree, "big")
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
    os.pread(fd, 1, 10 * PS)                   # the "workload" holds page 10
    os.close(fd)
    m = mount_of(tree)
    assert ImageContent(digest_budget_bytes_per_s=None).digest(m, ino(path))
    assert pagecache.resident_pages(path) == [10]
    # and the test can fail: without preservation the pages stay
    ImageContent(digest_budget_bytes_per_s=None, preserve_cache=False).digest(m, ino(path))
    assert pagecache.file_resident_pages(path) > 700


def readelf_build_id(path):
    out = subprocess.run(["readelf", "-n", path], capture_output=True, text=True).stdout
    for line in out.splitlines():
        if "Build ID:" in line:
            return line.split("Build ID:")[1].strip()
    return None


def test_build_id(tree, tmp_path):
    exe = os.path.realpath(sys.executable)
    if not shutil.which("readelf") or not readelf_build_id(exe):
        pytest.skip("readelf or a build-id'd python binary missing")
    dst = os.path.join(tree, "python-copy")
    shutil.copy(exe, dst)
    ic = ImageContent()
    m = mount_of(tree)
    assert ic.build_id(m, ino(dst)) == readelf_build_id(exe)
    assert ic.build_id(m, ino(os.path.join(tree, "big"))) is None        # not ELF
    broken = tmp_path / "broken"
    broken.write_bytes(b"\x7fELF" + b"\x02\x01\x01" + b"\0" * 20)
    with open(broken, "rb") as f:
        assert build_id_of(f) is None                                   # no traceback


def test_forget_mount_drops_index(tree):
    ic = ImageContent()
    m = mount_of(tree, image_id="")
    small = ino(os.path.join(tree, "sub/small"))
    assert ic.digest(m, small)
    ic.forget(m)
    assert ic._index == {} and ic._files == {}


def test_a_mount_without_a_readable_image_is_walked_and_says_so(tree):
    ic = ImageContent()
    m = mount_of(tree)                  # a plain directory: no EROFS image behind it
    assert ic.names_warning() == ""
    assert ic.path_of(m, ino(os.path.join(tree, "sub/small"))) == os.path.join(tree, "sub/small")
    assert ic.names_source(m) == "mount"
    assert ic.names_warning().startswith("1 mount(s) named by walking them")
    assert f"behind {tree}" in ic.names_warning()
    ic.forget(m)                        # the mount went away: the warning stays
    assert ic.names_warning().startswith("1 mount(s) named by walking them")


def test_an_inline_pcluster_maps_to_its_metadata_page_outside_the_managed_cache():
    # ztailpacking: the last pcluster sits in the metadata block at image
    # byte 8300 (page 2); a pcluster in data blocks at 12288 + 100 bytes
    # spanning 4100 bytes covers pages 3-4
    from erofs_top.readahead import ZExtentRa
    from erofs_top.resolve.content import _z_extent
    from erofs_top.zmap import ZExtent
    assert _z_extent(ZExtent(8192, 1000, 8300, 600), True) == ZExtentRa(8192, 9192, 2, 0)
    assert _z_extent(ZExtent(0, 8192, 12388, 4100), False) == ZExtentRa(0, 8192, 3, 2)


def test_zfile_keeps_a_ztailpacking_file_its_inline_pcluster_in_its_metadata_page(tmp_path):
    # a 16,238-byte lz4 text file with -Eztailpacking: dump.erofs (an
    # independent reader) gives its extents; the last one is inline, in the
    # metadata block holding the inode, which is where the replay reads it
    import random
    import re
    from erofs_top.resolve.superblock import read_superblock
    from test_superblock import nid_of
    src = tmp_path / "src"
    src.mkdir()
    rng = random.Random(3)
    (src / "a.txt").write_text(" ".join(rng.choice(["alpha", "beta", "gamma", "delta"])
                                        for _ in range(3000)))
    img = tmp_path / "z.erofs"
    subprocess.run(["mkfs.erofs", "--quiet", "-zlz4", "-Eztailpacking", str(img), str(src)],
                   check=True, capture_output=True)
    nid = nid_of(img, "a.txt")
    dump = subprocess.run(["dump.erofs", "--path=/a.txt", "-e", str(img)], check=True,
                          capture_output=True, text=True).stdout
    rows = [tuple(map(int, m)) for m in re.findall(
        r"^\s*\d+:\s*(\d+)\.\.\s*(\d+)\s*\|\s*\d+\s*:\s*(\d+)\.\.\s*(\d+)", dump, re.M)]
    sb, _ = read_superblock(str(img))
    m = MountInfo(dev=1, dev_str="0:1", mountpoint="/m", source=str(img), backing="file",
                  backing_file=str(img), image_path=str(img))
    z = ImageContent().zfile(m, nid)
    assert z is not None and len(z.extents) == len(rows) >= 2
    for e, (lo, hi, plo, _) in zip(z.extents, rows):
        assert (e.start, e.end, e.pcluster_page) == (lo, hi, plo // 4096)
    assert z.extents[-1].pcluster_pages == 0            # inline: no managed cache
    assert z.extents[-1].pcluster_page == sb.inode_offset(nid) // 4096
    assert all(e.pcluster_pages >= 1 for e in z.extents[:-1])
