"""erofs-top's Model on the lab kernel: the collector (tracepoint + full tier)
and the aggregator, end to end, against what the kernel did.

Uses the session ``collector`` (one BCC compile of each probe set per boot).
"""
from __future__ import annotations

import pytest

from . import labkit as lk
from .conftest import FINGERPRINT_XATTR

SHARE = "inode_share,domain_id=model"
SIZE = 2 * lk.MiB
NPAGES = SIZE // lk.PAGE
DIGEST = f"--xattr-inode-digest={FINGERPRINT_XATTR}"


@pytest.fixture(scope="module")
def images(lab):
    d = lk.workdir("model")
    try:
        for side in ("a", "b"):
            lk.write_random(f"{d}/src-{side}/big.bin", SIZE, seed=21)
            lk.write_text(f"{d}/src-{side}/text.txt", SIZE, seed=4)
            lk.mkfs_erofs(f"{d}/{side}-dig.erofs", f"{d}/src-{side}", DIGEST)
            lk.mkfs_erofs(f"{d}/{side}-plain.erofs", f"{d}/src-{side}")
            lk.mkfs_erofs(f"{d}/{side}-lz4.erofs", f"{d}/src-{side}", DIGEST, "-zlz4")
        yield d
    finally:
        lk.rmtree(d)


def container(model, cg):
    return next((c for c in model.containers if c.cgroup_id == cg.id), None)


def test_tier_is_full(collector):
    assert collector.tier == "full"


@pytest.mark.parametrize("img_b", ["a-dig", "b-dig"], ids=["same-image-twice", "two-images"])
def test_inode_share_model(collector, images, img_b):
    """Same content mounted twice with inode_share: B inserts nothing, both
    use it, sharing saved = the file's resident bytes."""
    with lk.erofs_mount(f"{images}/a-dig.erofs", SHARE) as ma, \
            lk.erofs_mount(f"{images}/{img_b}.erofs", SHARE) as mb, \
            lk.Cgroup("md-a") as ca, lk.Cgroup("md-b") as cb:
        collector.refresh()
        ca.read(f"{ma}/big.bin")
        cb.read(f"{mb}/big.bin")
        m = collector.refresh()
        fa_file, fb_file = ca.file_bytes(), cb.file_bytes()
        truth = lk.mincore_pages(f"{mb}/big.bin") * lk.PAGE
        a, b = container(m, ca), container(m, cb)
        mounts = {x.mountpoint: x for x in m.mounts}
        assert mounts[ma].inode_share and mounts[mb].inode_share
    assert truth == SIZE
    assert a is not None and b is not None, m.containers
    # owner view = what memcg charged: A every shared page, B none (each also
    # holds its mount's root directory page, not shared; memcg also counts a
    # few pages of the backing image file, which are not EROFS pages)
    assert 0 <= fa_file - a.resident_bytes <= 16 * lk.PAGE, (a, fa_file)
    assert 0 <= fb_file - b.resident_bytes <= 16 * lk.PAGE, (b, fb_file)
    assert SIZE <= a.resident_bytes <= SIZE + 2 * lk.PAGE, a
    assert b.resident_bytes <= 2 * lk.PAGE, b
    # user view: both hold it; fair share splits it (+ their private pages)
    assert a.shared_bytes == b.shared_bytes == SIZE, (a, b)
    assert a.fair_bytes - (a.resident_bytes - SIZE) == SIZE // 2, a
    assert b.fair_bytes - b.resident_bytes == SIZE // 2, b
    assert m.totals.sharing_saved_bytes == SIZE, m.totals
    assert m.totals.shared_bytes == SIZE, m.totals
    shared_files = [f for f in m.files if f.shared]
    assert len(shared_files) == 1 and shared_files[0].resident_bytes == SIZE, shared_files


@pytest.mark.parametrize("case", ["no-digest", "two-domains", "plain-vs-lz4", "loop-vs-file", "no-share"])
def test_duplicates_not_sharing_where_the_kernel_did_not_share(collector, images, case):
    img_a, img_b = f"{images}/a-dig.erofs", f"{images}/b-dig.erofs"
    opt_a = opt_b = SHARE
    loop_b = False
    target = "big.bin"
    shareable = True        # could inode_share remove the second copy?
    if case == "no-digest":
        img_a, img_b = f"{images}/a-plain.erofs", f"{images}/b-plain.erofs"
    elif case == "two-domains":      # a trust boundary: stage c if the operator merges them
        opt_b, shareable = SHARE + "2", False
    elif case == "plain-vs-lz4":
        img_b, target, shareable = f"{images}/b-lz4.erofs", "text.txt", False
    elif case == "loop-vs-file":
        loop_b, shareable = True, False
    elif case == "no-share":
        opt_a = opt_b = ""
    with lk.erofs_mount(img_a, opt_a) as ma, lk.erofs_mount(img_b, opt_b, loop=loop_b) as mb, \
            lk.Cgroup("dp-a") as ca, lk.Cgroup("dp-b") as cb:
        collector.refresh()
        ca.read(f"{ma}/{target}")
        c0 = lk.cached_bytes()
        cb.read(f"{mb}/{target}")
        b_added = lk.cached_bytes() - c0
        m = collector.refresh()
        a, b = container(m, ca), container(m, cb)
        fa_file, fb_file = ca.file_bytes(), cb.file_bytes()
    assert b_added >= SIZE * 0.9, f"the kernel shared after all: B added {b_added} bytes"
    assert m.totals.sharing_saved_bytes == 0, m.totals
    # owner view: the file + the root directory page; memcg also charged a
    # few pages of the backing image file (not EROFS pages)
    assert SIZE <= a.resident_bytes <= SIZE + 2 * lk.PAGE, a
    assert 0 <= fa_file - a.resident_bytes <= 16 * lk.PAGE, (a, fa_file)
    # B: + compressed pclusters in its superblock's managed cache for lz4
    assert SIZE <= b.resident_bytes <= SIZE + (64 if case == "plain-vs-lz4" else 2) * lk.PAGE, b
    assert 0 <= fb_file - b.resident_bytes <= 16 * lk.PAGE, (b, fb_file)
    assert m.totals.redundant_bytes == SIZE, m.totals
    assert a.duplicate_bytes == b.duplicate_bytes == SIZE, (a, b)
    # two domains: what one domain would merge is savings stage c
    assert m.totals.potential_savings_bytes == (SIZE if shareable or case == "two-domains"
                                                else 0), m.totals
    assert m.totals.potential_savings_domains_bytes == (SIZE if case == "two-domains"
                                                        else 0), m.totals


def test_mmap_only_container_is_a_user_and_eviction_empties_the_model(collector, images):
    """B only maps the file (no read(2)): it still shares it.  Unmounting both
    evicts the real inodes, the kernel drops the shared inode and its pages,
    and the Model follows."""
    with lk.Cgroup("mv-a") as ca, lk.Cgroup("mv-b") as cb:
        with lk.erofs_mount(f"{images}/a-dig.erofs", SHARE) as ma, \
                lk.erofs_mount(f"{images}/b-dig.erofs", SHARE) as mb:
            collector.refresh()
            ca.read(f"{ma}/big.bin")
            cb.mmap_touch(f"{mb}/big.bin")
            m = collector.refresh()
            b = container(m, cb)
            assert b is not None and b.shared_bytes == SIZE, b
            assert m.totals.sharing_saved_bytes == SIZE, m.totals
        m = collector.refresh()
    assert m.totals.shared_bytes == 0 and m.totals.sharing_saved_bytes == 0, m.totals
    assert not [f for f in m.files if f.shared], m.files
    for cg in (ca, cb):
        c = container(m, cg)
        assert c is None or (c.resident_bytes == 0 and c.shared_bytes == 0), c
