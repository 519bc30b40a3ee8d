"""Savings against the kernel's own accounting, beyond the friendliest setup.

Each cell runs a workload twice, on stock mounts and on inode_share mounts,
and takes the real saving from memory.stat ``file`` of the reader cgroups
(the kernel's charge: EROFS pages and, for file-backed mounts, the image
file's pages): erofs-top's ``potential_savings_bytes`` (stock) must be within
5 % of it, ``sharing_saved_bytes`` (inode_share) within 1 % of the charged
total.  Data: two versions of a real Debian package (/opt/lab-data), built
into images with fingerprints.

Cells: cold image files (their cache charged to the readers, as on a node);
one mount read by two containers (the kernel saves nothing); a container
that reads only the first half of every file.
"""
from __future__ import annotations

import contextlib
import os

import pytest

from . import labkit as lk
from .conftest import FINGERPRINT_XATTR, REPORT
from .test_headline import DATA, PACKAGES, SHARE

PKG = "redis-tools"     # small (14 MiB a version), ELF binaries + identical copies inside
PAIR = next((p for p in PACKAGES if p[0] == PKG), None)


def _read_half(root: str) -> None:
    """read(2) the first half of every regular file."""
    for d, _, files in os.walk(root):
        for name in files:
            p = os.path.join(d, name)
            if os.path.isfile(p) and not os.path.islink(p):
                size = os.path.getsize(p)
                with open(p, "rb", buffering=0) as f:
                    left = size // 2
                    while left > 0:
                        b = f.read(min(left, lk.MiB))
                        if not b:
                            break
                        left -= len(b)


@pytest.fixture(scope="module")
def images(lab):
    if PAIR is None:
        pytest.fail(f"{DATA}/{PKG} must hold two versions (tests/vm/lab.sh build fetches them)")
    d = lk.workdir("matrix")
    try:
        imgs = []
        for ver in PAIR[1:]:
            img = f"{d}/{PKG}_{ver}.erofs"
            lk.mkfs_erofs(img, f"{DATA}/{PKG}/{ver}", f"--xattr-inode-digest={FINGERPRINT_XATTR}")
            imgs.append(img)
        yield imgs
    finally:
        lk.rmtree(d)


def _run(collector, images: list[str], opts: str, plan, cold: bool) -> dict:
    """Mount ``images`` with ``opts``; plan: [(image index, reader fn)], one
    cgroup per reader.  Returns the readers' memcg charge and the totals."""
    with contextlib.ExitStack() as st:
        mnts = [st.enter_context(lk.erofs_mount(img, opts)) for img in images]
        cgs = [st.enter_context(lk.Cgroup(f"mx-{i}")) for i in range(len(plan))]
        collector.refresh()
        if cold:
            lk.drop_caches()     # the image files' cache goes to the readers
        for cg, (idx, fn) in zip(cgs, plan):
            cg.run(fn, mnts[idx])
        model = collector.refresh()
        charged = sum(cg.file_bytes() for cg in cgs)
    return {"charged": charged, "totals": model.totals}


CELLS = {
    # name: (images used, reader plan, cold image files)
    "cold-images": ([0, 1], [(0, lk.read_tree), (1, lk.read_tree)], True),
    "one-mount-two-readers": ([0], [(0, lk.read_tree), (0, lk.read_tree)], True),
    "half-reader": ([0, 1], [(0, lk.read_tree), (1, _read_half)], False),
}


@pytest.mark.parametrize("cell", list(CELLS))
def test_cell_matches_the_kernel(collector, images, cell):
    which, plan, cold = CELLS[cell]
    imgs = [images[i] for i in which]
    plain = _run(collector, imgs, "", plan, cold)
    shared = _run(collector, imgs, SHARE, plan, cold)
    real = plain["charged"] - shared["charged"]
    predicted = plain["totals"].potential_savings_bytes
    reported = shared["totals"].sharing_saved_bytes
    row = (f"{cell:24} charged {plain['charged'] / lk.MiB:7.2f} -> {shared['charged'] / lk.MiB:7.2f}"
           f" MiB, real saving {real / lk.MiB:6.2f} MiB, predicted {predicted / lk.MiB:6.2f}"
           f" (image {plain['totals'].potential_savings_image_cache_bytes / lk.MiB:.2f}),"
           f" reported {reported / lk.MiB:6.2f}"
           f" (image {shared['totals'].sharing_saved_image_cache_bytes / lk.MiB:.2f}) MiB")
    REPORT.append("matrix: " + row)
    base = plain["charged"]
    assert abs(predicted - real) <= max(0.05 * abs(real), 0.01 * base), row
    assert abs(reported - real) <= 0.01 * base, row
