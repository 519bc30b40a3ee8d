"""The tracepoint tier against kernel ground truth, on this real kernel.

Oracles: mincore(2) page masks and cachestat(2) per file (erofs_top.pagecache),
and the snapshot tier (owners through /proc/kpagecgroup).  Every scenario
asserts per-cgroup resident and duplicate bytes within 1 %.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from erofs_top import pagecache
from erofs_top.tiers import open_collector
from erofs_top.workload import build_image, drop_file_cache, make_tree, read_file

pytestmark = pytest.mark.root
PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1 << 20


def pages(mask: int) -> int:
    return mask.bit_count()


def approx(x):
    return pytest.approx(x, rel=0.01, abs=2 * PAGE)


def resident_bytes(path) -> int:
    return pagecache.file_resident_pages(path) * PAGE


def test_same_image_twice_duplicates_exact(stack, cgroup_prefix, probes):
    src = make_tree(stack.dir / "src", {"lib.so": 4 * MiB, "data.bin": 1 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    m1, m2 = stack.mount(img, "m1"), stack.mount(img, "m2")
    a, b = stack.cgroup(f"{cgroup_prefix}/a"), stack.cgroup(f"{cgroup_prefix}/b")
    read_file(m1.path("lib.so"), a)
    read_file(m1.path("data.bin"), a)
    read_file(m2.path("lib.so"), b, offset=0, length=1 * MiB)

    model = probes.refresh()
    ca, cb = model.container(a.path), model.container(b.path)
    assert ca is not None and cb is not None, [c.cgroup for c in model.containers]
    mask_a = pagecache.resident_mask(m1.path("lib.so"))
    mask_b = pagecache.resident_mask(m2.path("lib.so"))
    dup_pages = pages(mask_a & mask_b)
    assert dup_pages > 0
    assert ca.resident_bytes == approx(resident_bytes(m1.path("lib.so"))
                                       + resident_bytes(m1.path("data.bin")))
    assert cb.resident_bytes == approx(pages(mask_b) * PAGE)
    assert ca.duplicate_bytes == approx(dup_pages * PAGE)
    assert cb.duplicate_bytes == approx(dup_pages * PAGE)
    # the node holds no other EROFS copies: the totals are this test's exactly;
    # one image file behind both mounts: no image-file saving
    assert model.totals.redundant_bytes == approx(dup_pages * PAGE)
    assert model.totals.potential_savings_bytes == approx(dup_pages * PAGE)
    assert model.totals.potential_savings_image_cache_bytes == 0
    for mnt in (m1, m2):
        row = next(x for x in model.mounts if x.dev == mnt.dev_str)
        assert row.duplicate_bytes == approx(dup_pages * PAGE)

    # the snapshot tier (kpagecgroup owners) agrees per cgroup
    snap = open_collector(no_bpf=True).refresh()
    sa, sb = snap.container(a.path), snap.container(b.path)
    assert sa is not None and sb is not None, [c.cgroup for c in snap.containers]
    assert ca.resident_bytes == approx(sa.resident_bytes)
    assert cb.resident_bytes == approx(sb.resident_bytes)
    assert ca.duplicate_bytes == approx(sa.duplicate_bytes)
    assert cb.duplicate_bytes == approx(sb.duplicate_bytes)


def test_two_images_identical_file_found_by_content(stack, cgroup_prefix, probes):
    common = os.urandom(2 * MiB)
    src1 = make_tree(stack.dir / "s1", {"a/first.bin": 1 * MiB, "shared.so": common}, seed=1)
    src2 = make_tree(stack.dir / "s2", {"b/other.bin": 3 * MiB, "x/y/shared.so": common}, seed=2)
    img1 = build_image(src1, stack.dir / "1.erofs")
    img2 = build_image(src2, stack.dir / "2.erofs")
    m1, m2 = stack.mount(img1, "m1"), stack.mount(img2, "m2")
    a, b = stack.cgroup(f"{cgroup_prefix}/a"), stack.cgroup(f"{cgroup_prefix}/b")
    for rel in ("a/first.bin", "shared.so"):
        read_file(m1.path(rel), a)
    for rel in ("b/other.bin", "x/y/shared.so"):
        read_file(m2.path(rel), b)

    model = probes.refresh()
    ca, cb = model.container(a.path), model.container(b.path)
    dup = pages(pagecache.resident_mask(m1.path("shared.so"))
                & pagecache.resident_mask(m2.path("x/y/shared.so"))) * PAGE
    assert dup == approx(2 * MiB)
    assert ca.duplicate_bytes == approx(dup) and cb.duplicate_bytes == approx(dup)
    f = next(f for f in model.files if f.path == m1.path("shared.so"))
    assert f.copies == 2 and f.content_id.startswith("sha256:")
    other = next(f for f in model.files if f.path == m2.path("b/other.bin"))
    assert other.duplicate_bytes == 0 and other.copies == 1


def test_partial_read_readahead_and_misses(stack, cgroup_prefix, probes):
    src = make_tree(stack.dir / "src", {"big.bin": 8 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    m = stack.mount(img, "m")
    a = stack.cgroup(f"{cgroup_prefix}/a")
    read_file(m.path("big.bin"), a, offset=2 * MiB, length=256 * 1024)
    model = probes.refresh()
    ca = model.container(a.path)
    truth_bytes = resident_bytes(m.path("big.bin"))
    assert 256 * 1024 <= truth_bytes < 8 * MiB          # partial, readahead included
    assert ca.resident_bytes == approx(truth_bytes)
    assert ca.inserted_bytes >= ca.resident_bytes
    assert ca.readahead_bytes > 0
    assert ca.duplicate_bytes == 0


def test_mmap_reads(stack, cgroup_prefix, probes):
    src = make_tree(stack.dir / "src", {"lib.so": 3 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    m = stack.mount(img, "m")
    a = stack.cgroup(f"{cgroup_prefix}/a")
    read_file(m.path("lib.so"), a, mode="mmap", offset=MiB, length=MiB)
    model = probes.refresh()
    ca = model.container(a.path)
    assert ca.resident_bytes >= MiB
    assert ca.resident_bytes == approx(resident_bytes(m.path("lib.so")))


def test_eviction_fadvise_and_unmount(stack, cgroup_prefix, probes):
    src = make_tree(stack.dir / "src", {"lib.so": 4 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    m1, m2 = stack.mount(img, "m1"), stack.mount(img, "m2")
    a, b = stack.cgroup(f"{cgroup_prefix}/a"), stack.cgroup(f"{cgroup_prefix}/b")
    read_file(m1.path("lib.so"), a)
    read_file(m2.path("lib.so"), b)
    before = probes.refresh()
    ra = before.container(a.path).resident_bytes
    assert ra == approx(4 * MiB) and before.container(a.path).duplicate_bytes == approx(4 * MiB)

    drop_file_cache(m1.path("lib.so"))
    after = probes.refresh()
    ca = after.container(a.path)
    assert ca.resident_bytes == approx(resident_bytes(m1.path("lib.so")))
    assert ca.resident_bytes < ra / 10
    assert ca.evicted_bytes >= ra - ca.resident_bytes - 2 * PAGE
    assert after.container(b.path).duplicate_bytes == approx(ca.resident_bytes)

    rb = after.container(b.path).resident_bytes
    m2.umount()
    gone = probes.refresh()
    cb = gone.container(b.path)
    assert cb is None or cb.resident_bytes == 0
    if cb is not None:
        assert cb.evicted_bytes >= rb


def test_backing_file_double_cache(stack, cgroup_prefix, probes):
    src = make_tree(stack.dir / "src", {"lib.so": 4 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    drop_file_cache(str(img))
    mf = stack.mount(img, "file", mode="file")
    a = stack.cgroup(f"{cgroup_prefix}/a")
    read_file(mf.path("lib.so"), a)
    model = probes.refresh()
    mrow = next(m for m in model.mounts if m.dev == mf.dev_str)
    assert mrow.backing == "file" and mrow.backing_file == str(img)
    # buffered file-backed mounts cache the data twice: erofs inode + image
    # file; util-linux fincore (mincore through its own mmap) is the oracle
    fincore = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(img)],
                             capture_output=True, text=True, check=True).stdout
    assert mrow.backing_resident_bytes == approx(int(fincore))
    assert mrow.backing_resident_bytes >= 4 * MiB * 0.9
    assert mrow.resident_bytes == approx(4 * MiB)


def test_cold_images_potential_counts_the_second_image_files_pages(stack, cgroup_prefix, probes):
    """Two images holding the same 4 MiB library, cold, each read by its own
    cgroup: sharing would save B's EROFS pages and B's image-file pages."""
    imgs = []
    lib = os.urandom(4 * MiB)
    for name in ("a", "b"):
        src = make_tree(stack.dir / f"src-{name}", {"lib.so": lib, f"{name}.txt": name.encode()})
        imgs.append(build_image(src, stack.dir / f"{name}.erofs"))
    ma, mb = stack.mount(imgs[0], "ma"), stack.mount(imgs[1], "mb")
    os.sync()           # mkfs's dirty pages stay charged to us otherwise (a warm image)
    for img in imgs:
        drop_file_cache(str(img))
    a, b = stack.cgroup(f"{cgroup_prefix}/a"), stack.cgroup(f"{cgroup_prefix}/b")
    read_file(ma.path("lib.so"), a)
    read_file(mb.path("lib.so"), b)
    model = probes.refresh()
    t = model.totals
    lib_pages = 4 * MiB // PAGE
    assert t.potential_savings_file_bytes == approx(lib_pages * PAGE)
    # B's image pages holding the library: everything fincore finds in b.erofs
    # but the superblock/metadata pages that mounting and lookups read
    fincore = subprocess.run(["fincore", "--noheadings", "--output", "PAGES",
                              str(imgs[1])], capture_output=True, text=True, check=True).stdout
    assert int(fincore) >= lib_pages
    assert t.potential_savings_image_cache_bytes == approx(lib_pages * PAGE)
    assert t.potential_savings_bytes == t.potential_savings_file_bytes + \
        t.potential_savings_image_cache_bytes
    # one of the two would stop paying for its copy: the containers sum to the node
    ca, cb = model.container(a.path), model.container(b.path)
    assert sorted([ca.potential_savings_bytes, cb.potential_savings_bytes]) == \
        [0, t.potential_savings_bytes]
    assert sum(c.potential_savings_bytes for c in model.containers) == t.potential_savings_bytes


def test_loop_mount_attributed(stack, cgroup_prefix, probes):
    src = make_tree(stack.dir / "src", {"lib.so": 2 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    ml = stack.mount(img, "loop", mode="loop")
    a = stack.cgroup(f"{cgroup_prefix}/a")
    read_file(ml.path("lib.so"), a)
    model = probes.refresh()
    mrow = next(m for m in model.mounts if m.dev == ml.dev_str)
    assert mrow.backing == "loop" and mrow.backing_file == str(img)
    assert model.container(a.path).resident_bytes == approx(resident_bytes(ml.path("lib.so")))


def test_pages_resident_before_start_are_seeded(stack, cgroup_prefix):
    src = make_tree(stack.dir / "src", {"lib.so": 2 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    m = stack.mount(img, "m")
    a = stack.cgroup(f"{cgroup_prefix}/a")
    read_file(m.path("lib.so"), a)
    col = open_collector()          # attaches after the read
    try:
        model = col.refresh()
    finally:
        col.close()
    ca = model.container(a.path)
    assert ca is not None, [c.cgroup for c in model.containers]
    assert ca.resident_bytes == approx(2 * MiB)
    assert ca.seeded_bytes == ca.resident_bytes
    assert ca.inserted_bytes == 0
    assert model.health.seeded_bytes >= ca.seeded_bytes


def _cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "erofs_top.cli", *args],
                          capture_output=True, text=True, timeout=120, **kw)


def test_cli_once_json_runs_cmd_and_passes_status(stack, cgroup_prefix):
    src = make_tree(stack.dir / "src", {"lib.so": 1 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    m = stack.mount(img, "m")
    r = _cli("once", "--json", "--", "sh", "-c", f"cat {m.path('lib.so')} >/dev/null; exit 3")
    assert r.returncode == 3, r.stderr
    doc = json.loads(r.stdout)
    assert doc["schema"] == 1 and doc["tier"] in ("tracepoint", "full")
    mrow = next(x for x in doc["mounts"] if x["dev"] == m.dev_str)
    # once's row against mincore after it: pages only leave the cache in
    # between (this host evicts a few even with free memory; 5 pages once
    # in CI), so the row holds at least what is left and at most what cat
    # read (the file, 256 pages) and the root directory's block
    left = resident_bytes(m.path("lib.so"))
    assert left - 2 * PAGE <= mrow["resident_bytes"] <= 1 * MiB + 2 * PAGE, (
        mrow["resident_bytes"], left)
    assert not any(" - erofs " in l and "bpf" in l for l in open("/proc/self/mountinfo"))


def test_cli_snapshot_json_and_doctor(stack):
    src = make_tree(stack.dir / "src", {"lib.so": 1 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    m = stack.mount(img, "m")
    read_file(m.path("lib.so"))
    r = _cli("snapshot", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["tier"] == "snapshot"
    f = next(x for x in doc["files"] if x["path"] == m.path("lib.so"))
    assert f["resident_bytes"] == approx(MiB)
    d = _cli("doctor")
    assert d.returncode == 0, d.stderr
    assert "tier: " in d.stdout and m.dev_str in d.stdout
    # the real probes started once, the start-up split by stage
    line = next(x for x in d.stdout.splitlines() if x.startswith("[ok  ] start-up: "))
    total = float(line.split("start-up: ")[1].split(" s to probes attached")[0])
    stages = re.findall(r"(python start \+ imports|compile \(clang, headers, maps\)|"
                        r"load \(verifier\)|attach) (\d+\.\d+) s", line)
    assert [n for n, _ in stages] == ["python start + imports", "compile (clang, headers, maps)",
                                      "load (verifier)", "attach"], line
    assert float(dict(stages)["compile (clang, headers, maps)"]) > 0.0
    assert sum(float(v) for _, v in stages) <= total + 0.05, line


def test_startup_stages_and_filter_generation(stack):
    """The collector's start-up stages add up to no more than the process's
    age; every change user space makes to watched_devs bumps watched_gen[1]
    (the probes' per-CPU filter caches drop their answers), no change none."""
    import ctypes as ct
    from erofs_top.kernel import startup
    from erofs_top.kernel.probes import GEN_USER
    col = open_collector(seed=False, sharing=False)
    src = col.source
    try:
        stages = src.startup.stages_s
        assert list(stages)[:5] == [startup.BEFORE, startup.HOST_CHECKS, startup.COMPILE,
                                    startup.LOAD, startup.ATTACH]
        assert stages[startup.COMPILE] > 0 and stages[startup.LOAD] > 0
        assert src.startup.total_s() <= startup.process_age_s() + 0.02

        def user_gen():
            return src.bpf[b"watched_gen"][ct.c_int(GEN_USER)].value

        gen0 = user_gen()
        src.sync_mounts()
        assert user_gen() == gen0                  # nothing changed
        tree = make_tree(stack.dir / "src", {"a.bin": 64 << 10})
        m = stack.mount(build_image(tree, stack.dir / "g.erofs"), "g")
        src.sync_mounts()
        assert user_gen() == gen0 + 1
        assert m.dev in src.watched
        m.umount()
        src.sync_mounts()
        assert user_gen() == gen0 + 2 and m.dev not in src.watched
    finally:
        col.close()


def test_full_map_is_counted_and_reported(stack, cgroup_prefix):
    src = make_tree(stack.dir / "src", {"big.bin": 8 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    col = open_collector(max_chunks=4, seed=False)    # 4 x 64 pages = 1 MiB of tracking
    try:
        m = stack.mount(img, "m")
        a = stack.cgroup(f"{cgroup_prefix}/a")
        read_file(m.path("big.bin"), a)
        model = col.refresh()
    finally:
        col.close()
    chunks = next(u for u in model.health.maps if u.name == "chunks")
    assert chunks.capacity == 4 and chunks.entries <= 4
    assert chunks.update_failures > 0 and model.health.update_failures >= chunks.update_failures
    assert any("full" in w for w in model.health.warnings)
    # what was tracked is right, what was not is reported, never silently dropped
    assert model.container(a.path).resident_bytes <= 1 * MiB


def test_cgroup_removed_mid_run_keeps_its_pages_visible(stack, cgroup_prefix, probes):
    from erofs_top.workload import Cgroup
    src = make_tree(stack.dir / "src", {"lib.so": 1 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    m = stack.mount(img, "m")
    cg = Cgroup(f"{cgroup_prefix}/gone")
    try:
        read_file(m.path("lib.so"), cg)
        first = probes.refresh()
        assert first.container(cg.path).resident_bytes == approx(MiB)
    finally:
        cg.remove()
    after = probes.refresh()
    row = next(c for c in after.containers if c.cgroup_id == cg.id)
    assert row.resident_bytes == approx(MiB)       # the pages are still charged somewhere


def test_mount_created_after_start_is_picked_up(stack, cgroup_prefix, probes):
    src = make_tree(stack.dir / "src", {"lib.so": 2 * MiB})
    img = build_image(src, stack.dir / "a.erofs")
    a = stack.cgroup(f"{cgroup_prefix}/a")
    before = probes.refresh()
    m = stack.mount(img, "late")              # after attach and a first refresh
    assert m.dev_str not in {x.dev for x in before.mounts}
    read_file(m.path("lib.so"), a)            # read at once, before any refresh
    after = probes.refresh()
    row = next(x for x in after.mounts if x.dev == m.dev_str)
    assert row.resident_bytes == approx(resident_bytes(m.path("lib.so")))
    assert after.container(a.path).inserted_bytes >= 2 * MiB * 0.99
