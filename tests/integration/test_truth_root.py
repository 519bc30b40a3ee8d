"""Ground truth and resolvers on real EROFS mounts, loop devices and cgroups.

Oracles are independent of the code under test where possible: os.stat, the
mountinfo text itself, losetup, dump.erofs, sha256 of the source files, and
what the test's own readers read.
"""
from __future__ import annotations

import hashlib
import os
import re
import stat
import subprocess
import time

import pytest

from erofs_top import pagecache, snapshot
from erofs_top.readings import CHUNK_PAGES, kdev_from_st_dev
from erofs_top.resolve.base import AOPS_BLOCK, AOPS_COMPRESSED, AOPS_FILEIO
from erofs_top.resolve.cgroups import SysCgroups
from erofs_top.resolve.content import ImageContent
from erofs_top.resolve.mounts import SysMounts
from erofs_top.workload import build_image, drop_file_cache, make_tree, read_file

pytestmark = pytest.mark.root
PAGE = pagecache.PAGE_SIZE
MiB = 1 << 20
UUID = "0e0f0e0f-1111-2222-3333-444455556666"


def mountinfo_line(mountpoint):
    with open("/proc/self/mountinfo") as f:
        for line in f:
            if line.split()[4] == mountpoint:
                return line.split()
    return None


def pages_of(readings, dev, ino):
    """{page index: owner cgroup id} of one file in a snapshot."""
    out = {}
    for c in readings.chunks:
        if (c.dev, c.ino) == (dev, ino):
            for cg, mask in c.owners.items():
                for p in pagecache.mask_pages(mask):
                    out[c.chunk * CHUNK_PAGES + p] = cg
    return out


@pytest.fixture
def image(stack):
    src = make_tree(stack.dir / "src", {"lib.so": 4 * MiB, "data/blob.bin": 2 * MiB,
                                        "small.txt": b"hello\n"})
    return build_image(src, stack.dir / "img.erofs", f"-U{UUID}")


def test_mounts_file_backed_and_loop_identity(stack, image):
    before = {m.dev for m in SysMounts().mounts()}
    mf = stack.mount(image, "file")
    ml = stack.mount(image, "loop", mode="loop")
    assert mountinfo_line(mf.mountpoint)[2].startswith("0:")       # really file-backed
    assert mountinfo_line(ml.mountpoint)[2].startswith("7:")
    sm = SysMounts()
    added, removed = sm.refresh()
    assert {m.dev for m in added} - before == {mf.dev, ml.dev} and removed == []
    st = os.stat(image)
    f, lo = sm.by_dev(mf.dev), sm.by_dev(ml.dev)
    assert (f.backing, f.mountpoint, f.source, f.dev_str) == ("file", mf.mountpoint,
                                                              str(image), mf.dev_str)
    assert lo.backing == "loop" and lo.source == ml.loopdev
    for m in (f, lo):
        assert m.backing_file == str(image)
        assert (m.backing_dev, m.backing_ino) == (kdev_from_st_dev(st.st_dev), st.st_ino)
        assert m.image.uuid == UUID and m.image.block_size == 4096
        assert not m.image.compressed and not m.inode_share
    assert f.image_id == lo.image_id                # one image, two superblocks
    # losetup's view of the loop device agrees with LOOP_GET_STATUS64 parsing
    out = subprocess.run(["losetup", "-l", "-n", "-O", "BACK-INO", ml.loopdev],
                         capture_output=True, text=True, check=True).stdout
    assert int(out.strip()) == st.st_ino
    ml.umount()
    added, removed = sm.refresh()
    assert added == [] and [m.dev for m in removed] == [lo.dev]


def test_snapshot_matches_reads_cachestat_and_owners(stack, image, cgroup_prefix):
    mf = stack.mount(image, "file")
    ml = stack.mount(image, "loop", mode="loop")
    a, b = stack.cgroup(f"{cgroup_prefix}/a"), stack.cgroup(f"{cgroup_prefix}/b")
    for p in (mf.path("lib.so"), ml.path("lib.so"), mf.path("data/blob.bin")):
        drop_file_cache(p)
    read_file(mf.path("lib.so"), a, offset=0, length=1 * MiB)            # read(2)
    read_file(ml.path("data/blob.bin"), b, mode="mmap", offset=MiB, length=256 << 10)

    sm, cg = SysMounts(), SysCgroups()
    t0 = time.perf_counter()
    r = snapshot.snapshot_readings(sm, cg)
    elapsed = time.perf_counter() - t0
    assert not r.probes_attached
    ino_lib, ino_blob = os.stat(mf.path("lib.so")).st_ino, os.stat(ml.path("data/blob.bin")).st_ino

    lib = pages_of(r, mf.dev, ino_lib)
    assert set(range(256)) <= set(lib)                                  # what was read
    assert len(lib) == pagecache.file_resident_pages(mf.path("lib.so"))     # == cachestat
    assert sorted(lib) == pagecache.resident_pages(mf.path("lib.so"))       # == mincore
    assert set(lib.values()) == {a.id}, r.warnings                      # charged to a

    blob = pages_of(r, ml.dev, ino_blob)
    assert set(range(256, 320)) <= set(blob)
    assert len(blob) == pagecache.file_resident_pages(ml.path("data/blob.bin"))
    assert set(blob.values()) == {b.id}, r.warnings
    assert cg.resolve(a.id).path == a.path and cg.resolve(b.id).path == b.path

    # the image file holds the file-backed mount's data a second time (and the loop's)
    st = os.stat(image)
    key = (kdev_from_st_dev(st.st_dev), st.st_ino)
    assert r.backing_pages[key] == pagecache.file_resident_pages(str(image))
    assert r.backing_pages[key] >= 256
    print(f"snapshot of 2 mounts: {elapsed * 1000:.1f} ms")


def dump_nid(img, rel):
    out = subprocess.run(["dump.erofs", f"--path=/{rel}", str(img)], capture_output=True,
                         text=True, check=True).stdout
    return int(re.search(r"NID:\s*(\d+)", out).group(1))


def test_content_on_real_mounts(stack):
    src = make_tree(stack.dir / "src", {"rand.bin": 1 * MiB, "text.txt": b"erofs " * 200_000})
    want = {n: hashlib.sha256((src / n).read_bytes()).digest() for n in ("rand.bin", "text.txt")}
    # the xattr erofs-utils >= 1.9 writes with --xattr-inode-digest, set by hand
    # (host mkfs.erofs 1.5 copies it into the image)
    os.setxattr(src / "text.txt", "trusted.erofs.fingerprint", b"sha256:" + want["text.txt"])
    img = build_image(src, stack.dir / "z.erofs", "-zlz4")
    mf = stack.mount(img, "zf")
    ml = stack.mount(img, "zl", mode="loop")
    sm = SysMounts()
    sm.refresh()
    f, lo = sm.by_dev(mf.dev), sm.by_dev(ml.dev)
    assert f.image.compressed
    ic = ImageContent()
    ino_text, ino_rand = os.stat(mf.path("text.txt")).st_ino, os.stat(mf.path("rand.bin")).st_ino
    assert ino_text == dump_nid(img, "text.txt")          # st_ino is the nid (6.18)
    assert ic.file_info(f, ino_text).aops == AOPS_COMPRESSED
    assert ic.file_info(lo, ino_text).aops == AOPS_COMPRESSED
    assert ic.file_info(f, ino_rand).aops == AOPS_FILEIO   # incompressible: stored plain
    assert ic.file_info(lo, ino_rand).aops == AOPS_BLOCK
    assert ic.file_info(f, ino_rand).path == mf.path("rand.bin")
    assert ic.fingerprint(f, ino_text) == want["text.txt"].hex()
    assert ic.fingerprint(f, ino_rand) is None

    # digests equal the source's sha256 and do not change what is cached
    for p in (mf.path("rand.bin"), ml.path("rand.bin")):
        drop_file_cache(p)
    read_file(mf.path("rand.bin"), None, offset=0, length=64 << 10)
    before = (pagecache.resident_mask(mf.path("rand.bin")), pagecache.file_resident_pages(str(img)),
              pagecache.file_resident_pages(ml.path("rand.bin")))
    assert ic.digest(f, ino_rand) == want["rand.bin"].hex()
    assert ic.digest(lo, ino_rand) == want["rand.bin"].hex()
    assert ic.digest_files_total == 1                      # same image: hashed once
    after = (pagecache.resident_mask(mf.path("rand.bin")), pagecache.file_resident_pages(str(img)),
             pagecache.file_resident_pages(ml.path("rand.bin")))
    assert after == before


def test_cgroups_on_real_cgroupfs(stack, cgroup_prefix):
    cg = SysCgroups(rewalk_interval_s=0)
    assert cg.resolve(1).path == "/"
    a = stack.cgroup(f"{cgroup_prefix}/late")        # created after the first walk
    info = cg.resolve(a.id)
    assert info.path == a.path and info.resolved
    if cg.hybrid:
        mem_ino = os.stat(a.mem_dir).st_ino
        assert cg.memcg_cgroup_id(mem_ino) == a.id
    a.remove()
    time.sleep(2.1)                                  # past the revalidation age
    gone = cg.resolve(a.id)
    assert gone.deleted and gone.path == a.path


def _resident(path: str) -> int:
    return pagecache.file_resident_pages(path)


@pytest.mark.parametrize("mode", ["file", "loop"])
def test_names_come_from_the_image_and_cache_nothing(stack, mode):
    """The index of a mount's names is read from the image file (O_DIRECT):
    no image-file page and, on loop, no block-device page gets cached.  A walk
    of the mount, the old way, finds the same names and does cache pages."""
    files = {f"d{i % 7}/sub{i % 3}/file-{i:04d}.txt": b"x" * (1 + i * 37 % 9000)
             for i in range(900)}
    img = build_image(make_tree(stack.dir / "src", files), stack.dir / f"names-{mode}.erofs")
    m = stack.mount(img, f"names-{mode}", mode=mode)
    leaf = os.stat(f"{m.mountpoint}/d3/sub1/file-0010.txt").st_ino
    sm = SysMounts()
    sm.refresh()
    mi = sm.by_dev(m.dev)
    caches = [str(img)] + ([m.loopdev] if mode == "loop" else [])
    for path in caches:
        drop_file_cache(path)
    before = [_resident(p) for p in caches]
    ic = ImageContent()
    assert ic.path_of(mi, leaf) == f"{m.mountpoint}/d3/sub1/file-0010.txt"
    assert ic.names_source(mi) == "image"
    infos = {ino: ic.file_info(mi, ino) for ino in ic._index_of(mi).inos()}
    assert [_resident(p) for p in caches] == before
    walked = {os.stat(os.path.join(d, n)).st_ino: os.path.join(d, n)
              for d, dirs, names in os.walk(m.mountpoint) for n in dirs + names}
    assert len(walked) == 900 + 7 + 21
    for ino, path in walked.items():
        st = os.stat(path)
        assert (infos[ino].path, infos[ino].size, infos[ino].regular) == \
            (path, st.st_size, stat.S_ISREG(st.st_mode)), path
    # and the old way costs page cache (the check above can fail)
    assert sum(_resident(p) for p in caches) > sum(before)
