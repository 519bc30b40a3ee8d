"""Content reads watch a window of the image file, not all of it (issue 11, D16):
on real file-backed and loop mounts, hashing a file leaves no new page in the
image file's cache, nor (loop) in the loop device's own cache, where EROFS
reads inodes, xattrs and compressed indexes, even where the window matters: a
path walk through directories whose dentries are not cached, readahead past
the end of a file larger than the readahead window, a compressed image."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from erofs_top import pagecache
from erofs_top.resolve import content as content_mod
from erofs_top.resolve.content import ImageContent
from erofs_top.workload import build_image, make_tree, read_file

from image_reads import cold, mount_info

MiB = 1 << 20


def _window_pages(ic, mi, nid, path) -> int:
    runs = ic.read_window(mi, nid, path)
    assert runs is not None, "the window is known (not the whole-image fallback)"
    return sum(count for _, count in runs)


def _hash_unperturbed(ic, mi, nid, path, image, file_before: int | None = None,
                      device: str | None = None) -> None:
    """build_id and digest of ``path``: the image file's, the file's and
    (``device``: a loop mount's) the device's cached pages are the same
    before and after (mincore of the whole files).  ``file_before``: the
    file's cached pages, known without opening it (an open walks the path
    and caches what the test wants uncached)."""
    if file_before is None:
        file_before = pagecache.resident_mask(path)
    image_before = pagecache.resident_mask(str(image))
    device_before = pagecache.resident_mask(device) if device else 0
    ic.build_id(mi, nid)
    assert ic.digest(mi, nid) is not None
    assert pagecache.resident_mask(str(image)) == image_before
    assert pagecache.resident_mask(path) == file_before
    if device:
        assert ic.device_path(mi), "the loop device is found"
        assert pagecache.resident_mask(device) == device_before
    assert ic.window_misses == 0


@pytest.mark.parametrize("mode", ["file", "loop"])
def test_path_walk_through_uncached_directories(stack, mode):
    """A fresh mount: no dentry below the root is cached, so opening the file
    looks up d0, d1, d2 (their directory blocks and inodes) in the image."""
    files = {f"d0/d1/d2/{'n' * 60}-{i:04d}": b"y" * 100 for i in range(300)}
    files.update({f"d0/{'m' * 60}-{i:04d}": b"z" * 100 for i in range(300)})
    files.update({"d0/d1/d2/target.txt": b"target " * 100, "zz/filler.bin": 48 * MiB})
    img = build_image(make_tree(stack.dir / "src", files), stack.dir / f"walk-{mode}.erofs")
    cold(img)
    m = stack.mount(img, f"walk-{mode}", mode=mode)
    mi = mount_info(m)
    ic = ImageContent(digest_budget_bytes_per_s=None, data_from_image=False)  # the window, not filedata.py
    path = m.path("d0/d1/d2/target.txt")
    nid = ic._index_of(mi).nid_of(path)          # from the image: no lookup through the mount
    assert nid is not None
    assert _window_pages(ic, mi, nid, path) < os.path.getsize(img) // pagecache.PAGE_SIZE // 2
    _hash_unperturbed(ic, mi, nid, path, img, file_before=0, device=m.loopdev)  # a fresh mount
    # without preserving, the same read does cache image (and loop device)
    # pages: the checks above can fail
    m2 = stack.mount(img, f"walk2-{mode}", mode=mode)
    before = pagecache.resident_mask(str(img))
    device_before = pagecache.resident_mask(m2.loopdev) if m2.loopdev else 0
    read_file(m2.path("d0/d1/d2/target.txt"))
    assert pagecache.resident_mask(str(img)) & ~before
    if m2.loopdev:
        assert pagecache.resident_mask(m2.loopdev) & ~device_before


def test_readahead_past_a_file_larger_than_the_window(stack):
    """Hashing a file several readahead windows long reads it sequentially:
    the image file's readahead runs on past its last page into the next file."""
    img0 = stack.dir / "probe"
    img0.write_bytes(b"")
    ra_pages = pagecache.backing_readahead(str(img0))[0]
    big = 3 * ra_pages * pagecache.PAGE_SIZE + 5000
    files = {"a/big.bin": big, "b/after.bin": 6 * ra_pages * pagecache.PAGE_SIZE + 20 * MiB}
    img = build_image(make_tree(stack.dir / "src", files), stack.dir / "ra.erofs")
    cold(img)
    m = stack.mount(img, "ra")
    read_file(m.path("a/big.bin"), offset=0, length=64 << 10)      # the workload: its head
    mi = mount_info(m)
    ic = ImageContent(digest_budget_bytes_per_s=None, data_from_image=False)  # the window, not filedata.py
    path = m.path("a/big.bin")
    nid = ic._index_of(mi).nid_of(path)
    assert _window_pages(ic, mi, nid, path) < os.path.getsize(img) // pagecache.PAGE_SIZE
    _hash_unperturbed(ic, mi, nid, path, img)


@pytest.mark.parametrize("mode", ["file", "loop"])
def test_compressed_image(stack, mode):
    files = {f"etc/d{i % 5}/conf-{i:03d}.txt": (f"line {i} " * (3000 + 400 * i)).encode()
             for i in range(120)}
    files["zz/filler.bin"] = 40 * MiB
    img = build_image(make_tree(stack.dir / "src", files), stack.dir / f"z-{mode}.erofs",
                      "-zlz4hc")
    cold(img)
    m = stack.mount(img, f"z-{mode}", mode=mode)
    read_file(m.path("etc/d0/conf-000.txt"))
    mi = mount_info(m)
    ic = ImageContent(digest_budget_bytes_per_s=None, data_from_image=False)  # the window, not filedata.py
    for i in (7, 63, 119):
        path = m.path(f"etc/d{i % 5}/conf-{i:03d}.txt")
        nid = ic._index_of(mi).nid_of(path)
        assert ic.file_info(mi, nid).aops == "compressed"
        assert _window_pages(ic, mi, nid, path) < os.path.getsize(img) // pagecache.PAGE_SIZE
        _hash_unperturbed(ic, mi, nid, path, img, device=m.loopdev)


@pytest.mark.parametrize("mode", ["file", "loop"])
def test_fingerprints_from_the_image(stack, mode):
    """fingerprint() reads the xattr from the image (xattrs.py, O_DIRECT):
    on a fresh mount, where a getxattr would walk uncached directories and
    read the inode, no page enters the image's or the loop device's cache,
    and every value is the kernel's (getxattr through a second mount):
    inline entries and, for the content three files share, a shared one."""
    files = {f"d0/d1/{'n' * 60}-{i:04d}": b"y" * 100 for i in range(300)}
    files.update({f"d0/d1/t{i}.txt": f"text {i} ".encode() * 100 for i in range(4)})
    files.update({f"d0/d1/same{i}.txt": b"same " * 300 for i in range(3)})
    files["zz/filler.bin"] = 16 * MiB
    src = make_tree(stack.dir / "src", files)
    names = [f"d0/d1/t{i}.txt" for i in range(4)] + [f"d0/d1/same{i}.txt" for i in range(3)]
    for rel in names:
        digest = hashlib.sha256((src / rel).read_bytes()).digest()
        os.setxattr(src / rel, "trusted.erofs.fingerprint", b"sha256:" + digest)
    img = build_image(src, stack.dir / f"fp-{mode}.erofs")
    cold(img)
    m = stack.mount(img, f"fp-{mode}", mode=mode)
    mi = mount_info(m)
    ic = ImageContent(digest_budget_bytes_per_s=None)
    index = ic._index_of(mi)
    nids = [index.nid_of(m.path(rel)) for rel in names + ["zz/filler.bin"]]
    image_before = pagecache.resident_mask(str(img))
    device_before = pagecache.resident_mask(m.loopdev) if m.loopdev else 0
    got = [ic.fingerprint(mi, nid) for nid in nids]
    assert pagecache.resident_mask(str(img)) == image_before
    if m.loopdev:
        assert pagecache.resident_mask(m.loopdev) == device_before
    assert ic.xattrs_from_mount == 0
    m2 = stack.mount(img, f"fp2-{mode}", mode=mode)
    assert got[:-1] == [os.getxattr(m2.path(rel), "trusted.erofs.fingerprint")[7:].hex()
                        for rel in names]
    assert got[-1] is None              # no xattr
    assert len(set(got[4:7])) == 1
    # the exporter on a BPF tier drops CAP_SYS_ADMIN, after which getxattr of
    # trusted.* finds nothing: the image still gives the fingerprints
    assert _fingerprints_without_sys_admin(m.mountpoint, names) == got[:-1]
    # the same look-up through the mount, on a third fresh mount, does cache pages
    cold(img)          # (the second mount's getxattr cached the image's metadata)
    m3 = stack.mount(img, f"fp3-{mode}", mode=mode)
    watched = m3.loopdev or str(img)
    before = pagecache.resident_mask(watched)
    os.getxattr(m3.path("d0/d1/t0.txt"), "trusted.erofs.fingerprint")
    assert pagecache.resident_mask(watched) & ~before


def test_fingerprints_read_with_the_inode(stack, monkeypatch):
    """file_info() reads each inode's xattr area with it (the same metadata
    chunk); fingerprint() takes the value from there: after the metadata
    reader dropped every chunk (as 4 MiB of later inodes do on a node) no
    fingerprint reads the image again, and each is its own file's (files
    with the xattr inline, with it and a shared one, with only the shared
    one, with none).  Past the kept values' cap, the values are read again,
    the same."""
    files = {f"d{i % 3}/f{i:03d}": f"content {i} ".encode() * (50 + i) for i in range(120)}
    src = make_tree(stack.dir / "src", files)
    expected = {}
    for i, rel in enumerate(files):
        digest = hashlib.sha256((src / rel).read_bytes()).digest()
        if i % 4 != 3:
            os.setxattr(src / rel, "trusted.erofs.fingerprint", b"sha256:" + digest)
        if i % 2:
            os.setxattr(src / rel, "user.label", b"one label for many files")
        expected[rel] = digest.hex() if i % 4 != 3 else None
    img = build_image(src, stack.dir / "fpi.erofs")
    m = stack.mount(img, "fpi", mode="file")
    mi = mount_info(m)
    reads = []
    real_read = content_mod.read_image
    monkeypatch.setattr(content_mod, "read_image",
                        lambda *a: reads.append(a) or real_read(*a))
    for cap in (content_mod.FP_READ_MAX, 16):
        monkeypatch.setattr(content_mod, "FP_READ_MAX", cap)
        ic = ImageContent(digest_budget_bytes_per_s=None)
        index = ic._index_of(mi)
        nids = {rel: index.nid_of(m.path(rel)) for rel in files}
        for nid in nids.values():
            assert ic.file_info(mi, nid).regular
        kept = len(ic._fp_read)
        ic._meta.forget(str(img))
        reads.clear()
        got = {rel: ic.fingerprint(mi, nid) for rel, nid in nids.items()}
        assert got == expected
        assert kept == min(cap, len(files))
        assert ic.xattrs_from_mount == 0 and not ic._fp_read
        assert (len(reads) == 0) == (cap >= len(files)), len(reads)
        assert ic._fp_shared[(str(img), 0)], "files of the shared entry looked it up"
        ic.forget(mi)           # (unmounted: the per-image look-ups go)
        assert not ic._fp_names and not ic._fp_shared


_WITHOUT_SYS_ADMIN = r"""
import json, os, sys
from erofs_top.exporter.privileges import KEEP_BPF_TIER, drop_capabilities
from erofs_top.resolve.content import ImageContent
from erofs_top.resolve.mounts import SysMounts
mountpoint, names = sys.argv[1], sys.argv[2:]
drop_capabilities(KEEP_BPF_TIER)
try:
    os.getxattr(os.path.join(mountpoint, names[0]), "trusted.erofs.fingerprint")
    print(json.dumps("getxattr still sees trusted.*"))
    sys.exit()
except OSError:
    pass
sm = SysMounts()
sm.refresh()
mi = next(m for m in sm.mounts() if m.mountpoint == mountpoint)
ic = ImageContent(digest_budget_bytes_per_s=None)
index = ic._index_of(mi)
print(json.dumps([ic.fingerprint(mi, index.nid_of(os.path.join(mountpoint, n))) for n in names]))
"""


def _fingerprints_without_sys_admin(mountpoint: str, names: list[str]):
    """fingerprint() of each file in a process holding only the exporter's
    BPF-tier capabilities (exporter/privileges.py KEEP_BPF_TIER)."""
    out = subprocess.run([sys.executable, "-c", _WITHOUT_SYS_ADMIN, mountpoint, *names],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)
