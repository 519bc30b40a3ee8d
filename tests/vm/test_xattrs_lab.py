"""Fingerprints read from the image (erofs_top/resolve/xattrs.py) against the
kernel's getxattr on what erofs-utils 1.9.x writes: ``--xattr-inode-digest``
stores the fingerprint under a long name prefix (the superblock's prefix
table, plain_xattr_pfx), which the host's mkfs.erofs 1.5 cannot build (the
host suite covers short prefixes and shared entries:
tests/integration/test_read_window_root.py, tests/unit/test_xattrs.py).
Every regular file of each image: the same value, none asked of the mount."""
from __future__ import annotations

import errno
import glob
import os
import shutil

import pytest

from erofs_top.resolve.content import ImageContent
from erofs_top.resolve.mounts import SysMounts

from . import labkit as lk
from .conftest import FINGERPRINT_XATTR, REPORT

DJANGO_DB = "/opt/lab-data/python3-django/*/usr/lib/python3/dist-packages/django/db"
# build -> (mkfs options, whether the image gives every fingerprint): with
# fragments mkfs.erofs 1.9.4 puts the prefix table in the (compressed) packed
# inode, not in the metadata area (no plain_xattr_pfx): getxattr is asked then
BUILDS = {"plain": ((), True), "lz4hc, fragments": (("-zlz4hc", "-Efragments,dedupe"), False),
          "ztailpacking": (("-zlz4", "-Eztailpacking"), True)}


@pytest.fixture(scope="module")
def src(lab):
    found = sorted(glob.glob(DJANGO_DB))
    assert found, f"headline data missing: {DJANGO_DB}"
    d = lk.workdir("xattrs")
    shutil.copytree(found[0], os.path.join(d, "src", "db"))
    binary = open(shutil.which("ls"), "rb").read()
    for name in ("ls", "ls-copy"):          # the same content twice
        with open(os.path.join(d, "src", name), "wb") as f:
            f.write(binary)
    try:
        yield d
    finally:
        lk.rmtree(d)


def _regular_files(root: str):
    for d, _, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p


@pytest.mark.parametrize("build", list(BUILDS))
def test_fingerprints_equal_getxattr(src, build):
    img = lk.mkfs_erofs(os.path.join(src, f"{build.replace(', ', '-')}.erofs"),
                        os.path.join(src, "src"), f"--xattr-inode-digest={FINGERPRINT_XATTR}",
                        *BUILDS[build][0])
    with lk.erofs_mount(img) as mnt:
        sm = SysMounts()
        sm.refresh()
        mi = next(m for m in sm.mounts() if m.mountpoint == mnt)
        assert mi.image is not None and mi.image.ishare_xattrs
        ic = ImageContent(digest_budget_bytes_per_s=None)
        index = ic._index_of(mi)
        checked = files = 0
        for path in _regular_files(mnt):
            try:
                want = os.getxattr(path, FINGERPRINT_XATTR)[len(b"sha256:"):].hex()
            except OSError as e:
                assert e.errno == errno.ENODATA, (path, e)
                want = None         # (no digest recorded: an empty file)
            assert ic.fingerprint(mi, index.nid_of(path)) == want, path
            checked += want is not None
            files += 1
        assert checked > 50
        from_image = BUILDS[build][1]
        # where the image cannot say, the mount is asked: of each file with
        # xattrs (here the fingerprinted ones), not of those without any
        assert ic.xattrs_from_mount == (0 if from_image else checked), (ic.xattrs_from_mount,
                                                                         checked, files)
    REPORT.append(f"fingerprints ({build}): {files} files, {checked} with one, all equal to "
                  f"getxattr; {ic.xattrs_from_mount} files asked of the mount")
