"""Ground truth of EROFS page-cache sharing on the lab kernel, without BPF.

These pin down the kernel behaviour erofs-top's full tier is built on; if a
kernel update changes it, these fail first.
"""
from __future__ import annotations

import pytest

from . import labkit as lk

DOMAIN = "erofstop"
SHARE = f"inode_share,domain_id={DOMAIN}"
SIZE = 4 * lk.MiB
NPAGES = SIZE // lk.PAGE


@pytest.fixture(scope="module")
def images(lab):
    """Two images of the same file (+ one differing file), with and without digests."""
    d = lk.workdir("kernel-sharing")
    try:
        for side in ("a", "b"):
            lk.write_random(f"{d}/src-{side}/big.bin", SIZE, seed=7)
            lk.write_random(f"{d}/src-{side}/uniq.bin", lk.MiB)
            lk.mkfs_erofs(f"{d}/{side}-dig.erofs", f"{d}/src-{side}", "--xattr-inode-digest")
            lk.mkfs_erofs(f"{d}/{side}-plain.erofs", f"{d}/src-{side}")
        yield d
    finally:
        lk.rmtree(d)


def _two_readers(img_a, img_b, opts_a, opts_b, target="big.bin"):
    """Cgroup A reads TARGET via mount A, then cgroup B via mount B.

    Returns Cached deltas (pages) and memory.stat file deltas (bytes)."""
    with lk.erofs_mount(img_a, opts_a) as ma, lk.erofs_mount(img_b, opts_b) as mb, \
            lk.Cgroup("lab-a") as ca, lk.Cgroup("lab-b") as cb:
        c0, fa0, fb0 = lk.cached_bytes(), ca.file_bytes(), cb.file_bytes()
        ca.read(f"{ma}/{target}")
        c1 = lk.cached_bytes()
        cb.read(f"{mb}/{target}")
        c2 = lk.cached_bytes()
        out = {
            "a_pages": (c1 - c0) // lk.PAGE, "b_pages": (c2 - c1) // lk.PAGE,
            "a_file": ca.file_bytes() - fa0, "b_file": cb.file_bytes() - fb0,
            "opts_a": lk.mount_options(ma),
            "cachestat_b": lk.cachestat_pages(f"{mb}/{target}"),
            "mincore_b": lk.mincore_pages(f"{mb}/{target}"),
        }
    return out


def test_without_inode_share_the_second_container_caches_again(images):
    r = _two_readers(f"{images}/a-dig.erofs", f"{images}/b-dig.erofs", "", "")
    assert r["a_pages"] >= NPAGES * 0.95, r
    assert r["b_pages"] >= NPAGES * 0.95, r
    assert r["cachestat_b"] == NPAGES, r                # a private mapping: cachestat sees it


def test_inode_share_second_container_adds_no_pages(images):
    r = _two_readers(f"{images}/a-dig.erofs", f"{images}/b-dig.erofs", SHARE, SHARE)
    assert "inode_share" in r["opts_a"].split(","), r
    assert "domain_id" not in r["opts_a"], "domain_id is a secret: mountinfo must not show it"
    assert r["a_pages"] >= NPAGES * 0.95, r
    assert r["b_pages"] <= NPAGES * 0.02, r             # shared: B reads for free
    # memcg charges the first toucher only
    assert r["a_file"] >= SIZE * 0.95, r
    assert r["b_file"] <= SIZE * 0.02, r
    # per-file tools are blind to sharing; mincore on an mmap is not
    assert r["cachestat_b"] == 0, r
    assert r["mincore_b"] == NPAGES, r


@pytest.mark.parametrize("case", ["no-digest", "two-domains"])
def test_kernel_refuses_to_share(images, case):
    if case == "no-digest":
        args = (f"{images}/a-plain.erofs", f"{images}/b-plain.erofs", SHARE, SHARE)
    else:
        args = (f"{images}/a-dig.erofs", f"{images}/b-dig.erofs", SHARE, SHARE + "2")
    r = _two_readers(*args)
    assert r["b_pages"] >= NPAGES * 0.95, r
    if case == "no-digest":
        assert "inode_share" not in r["opts_a"].split(","), "no fingerprints: the kernel turns sharing off"
