"""The headline check of page-cache sharing: predicted versus real savings.

The maintainers measured inode_share by reading every file of two minor
versions of the same images.  Here: two versions of real Debian packages
(fetched from two suites when the lab was built, in /opt/lab-data/PKG/VER),
one EROFS image per version with fingerprints, version 1 mounted for
container A and version 2 for container B, every file read by its container.

1. without inode_share: erofs-top's potential_savings_bytes is the prediction;
2. with inode_share,domain_id=...: the real saving is the drop in page cache
   the kernel charged to the two containers (memory.stat ``file`` of A + B:
   exact, the readers are the only tasks in them), and erofs-top's
   sharing_saved_bytes must report it.  /proc/meminfo Cached deltas are
   recorded beside it; they carry system-wide noise (a few MiB seen).

Prediction within 5 % of the real saving, sharing_saved_bytes within 1 %.
The table goes to the end of the pytest output and /out/headline.json.
"""
from __future__ import annotations

import json
import os
import time

import pytest

from erofs_top import pagecache

from . import labkit as lk
from .conftest import FINGERPRINT_XATTR, REPORT

DATA = "/opt/lab-data"
SHARE = "inode_share,domain_id=headline"
RESULTS: list[dict] = []


def _packages() -> list[tuple[str, str, str]]:
    if not os.path.isdir(DATA):
        return []
    out = []
    for pkg in sorted(os.listdir(DATA)):
        d = os.path.join(DATA, pkg)
        if not os.path.isdir(d):
            continue
        vers = sorted(v for v in os.listdir(d) if os.path.isdir(os.path.join(d, v)))
        if len(vers) == 2:
            out.append((pkg, vers[0], vers[1]))
    return out


PACKAGES = _packages()


@pytest.fixture(scope="module")
def images(lab):
    d = lk.workdir("headline")
    try:
        yield d
    finally:
        lk.rmtree(d)
        if RESULTS:
            _report()


# pairs that are also built compressed, as one more pair each (every pair is
# built plain).  django with -zlz4hc: a ~30 MiB saving, where the compressed-data
# cache's run-to-run wobble (35 pages seen with tzdata, docs/sharing.md) is
# 0.5 %; its ~12,000 compressed files are mapped by erofs_top/zmap.py, not one
# dump.erofs per file (247 s of first refresh under TCG before).
COMPRESSED: dict[str, tuple[str, tuple[str, ...]]] = {"python3-django": ("lz4hc", ("-zlz4hc",))}
PAIRS = [(pkg, v1, v2, "", ()) for pkg, v1, v2 in PACKAGES] + [
    (pkg, v1, v2, *COMPRESSED[pkg]) for pkg, v1, v2 in PACKAGES if pkg in COMPRESSED]


def _image(d: str, pkg: str, ver: str, variant: str, opts: tuple[str, ...]) -> str:
    img = f"{d}/{pkg}_{ver}{'_' + variant if variant else ''}.erofs"
    if not os.path.exists(img):
        lk.mkfs_erofs(img, f"{DATA}/{pkg}/{ver}", f"--xattr-inode-digest={FINGERPRINT_XATTR}",
                      *opts)
    return img


def _phase(collector, img1: str, img2: str, opts: str) -> dict:
    # every phase from an empty cache: what earlier tests left (containerd's
    # content, the exporter's image) is not evicted or recharged while A and B read
    lk.drop_caches()
    with lk.erofs_mount(img1, opts) as m1, lk.erofs_mount(img2, opts) as m2, \
            lk.Cgroup("hl-a") as ca, lk.Cgroup("hl-b") as cb:
        if opts:
            assert "inode_share" in lk.mount_options(m1).split(","), lk.mount_options(m1)
        # the refresh that picks up the new mounts must not cache anything of
        # the images itself: erofs-top must not warm what it measures (a walk
        # of these mounts cached the directories A and B were about to pay
        # for, through the image files).  Cached is recorded too: it also
        # counts erofs-top's own code pages faulted back in after drop_caches
        before = lk.cached_bytes_now()
        image_pages_before = [pagecache.file_resident_pages(i) for i in (img1, img2)]
        collector.refresh()                 # picks up the new mounts
        observer_image_pages = [pagecache.file_resident_pages(i) for i in (img1, img2)]
        observer_cached_bytes = lk.cached_bytes_now() - before
        assert observer_image_pages == image_pages_before, (observer_image_pages,
                                                            image_pages_before)
        c0 = lk.cached_bytes()
        ca.run(lk.read_tree, m1)
        c1 = lk.cached_bytes()
        cb.run(lk.read_tree, m2)
        c2 = lk.cached_bytes()
        t0 = time.monotonic()
        model = collector.refresh()
        refresh_s = time.monotonic() - t0
        a_file, b_file = ca.file_bytes(), cb.file_bytes()
    t = model.totals
    return {"observer_cached_bytes": observer_cached_bytes,
            "cached_bytes": c2 - c0, "cached_a_bytes": c1 - c0, "cached_b_bytes": c2 - c1,
            "memcg_file_a_bytes": a_file, "memcg_file_b_bytes": b_file,
            "resident_bytes": t.resident_bytes, "shared_bytes": t.shared_bytes,
            "redundant_bytes": t.redundant_bytes,
            "potential_savings_bytes": t.potential_savings_bytes,
            "sharing_saved_bytes": t.sharing_saved_bytes,
            "files_total": model.health.files_total, "refresh_seconds": round(refresh_s, 1),
            "warnings": model.health.warnings}


def test_every_data_pair_was_fetched():
    """A data set the lab could not fetch fails here instead of skipping: the
    headline table must come from the pairs tests/vm/lab.sh names."""
    missing = os.path.join(DATA, "MISSING")
    assert not os.path.exists(missing), f"lab build could not fetch: {open(missing).read().split()}"
    assert len(PACKAGES) >= 6, f"package pairs in {DATA}: {PACKAGES}"
    assert set(COMPRESSED) <= {p[0] for p in PACKAGES}, f"compressed pairs missing: {PACKAGES}"


@pytest.mark.parametrize("pkg,v1,v2,variant,opts", PAIRS,
                         ids=[p[0] + ("-" + p[3] if p[3] else "") for p in PAIRS])
def test_predicted_and_reported_savings_match_the_kernel(collector, images, pkg, v1, v2,
                                                         variant, opts):
    img1, img2 = _image(images, pkg, v1, variant, opts), _image(images, pkg, v2, variant, opts)
    plain = _phase(collector, img1, img2, "")
    shared = _phase(collector, img1, img2, SHARE)
    charged = {k: v["memcg_file_a_bytes"] + v["memcg_file_b_bytes"]
               for k, v in (("plain", plain), ("shared", shared))}
    real_saving = charged["plain"] - charged["shared"]
    row = {"package": pkg + (f" ({variant})" if variant else ""), "versions": [v1, v2], "without_sharing": plain, "with_sharing": shared,
           "charged_without_bytes": charged["plain"], "charged_with_bytes": charged["shared"],
           "real_saving_bytes": real_saving,
           "cached_saving_bytes": plain["cached_bytes"] - shared["cached_bytes"],
           "predicted_saving_bytes": plain["potential_savings_bytes"],
           "reported_saving_bytes": shared["sharing_saved_bytes"]}
    RESULTS.append(row)
    assert real_saving > 0, row
    # the refresh that first sees the new mounts cached no image page (in
    # _phase); Cached over it is recorded, not asserted: in some runs it grew
    # by 604 KiB on one phase of python3-django with no image page among
    # them (cause not traced: docs/sharing.md "The observer")
    # compressed files mapped by erofs_top/zmap.py, none through dump.erofs
    assert not [w for w in plain["warnings"] + shared["warnings"] if "dump.erofs" in w], row
    assert abs(plain["potential_savings_bytes"] - real_saving) <= 0.05 * real_saving, row
    assert abs(shared["sharing_saved_bytes"] - real_saving) <= 0.01 * real_saving, row


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def _report() -> None:
    REPORT.append("headline: every file of two versions read by two containers; page cache "
                  "charged to them (memory.stat file), Cached-delta saving, erofs-top's "
                  "prediction (no sharing) and report (sharing)")
    REPORT.append(f"{'package':22} {'versions':32} {'without':>10} {'with':>10} "
                  f"{'saving':>7} {'(Cached)':>8} {'predicted':>9} {'reported':>8}")
    for r in RESULTS:
        base = r["charged_without_bytes"] or 1
        REPORT.append(
            f"{r['package']:22} {' / '.join(r['versions']):32} "
            f"{_mib(r['charged_without_bytes']):>10} {_mib(r['charged_with_bytes']):>10} "
            f"{100 * r['real_saving_bytes'] / base:6.1f}% "
            f"{100 * r['cached_saving_bytes'] / base:7.1f}% "
            f"{100 * r['predicted_saving_bytes'] / base:8.1f}% "
            f"{100 * r['reported_saving_bytes'] / base:7.1f}%")
    try:
        with open("/out/headline.json", "w") as f:
            json.dump(RESULTS, f, indent=1)
    except OSError:
        pass
