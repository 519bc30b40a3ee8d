"""One image run by a fleet of pods (issue 11: kept large content groups,
erofs_top/large_groups.py) on real BPF, real file-backed EROFS mounts and
real cgroups: POD_COUNT mounts of one image, more than LARGE_GROUP copies of
each file, each mount read by its own cgroup.  Then steps that change a few
pods: part of a file evicted, more of a file read, the canonical first copy
dropped and read again, a pod gone (its mount unmounted).

After each step the collector's kept Aggregator (what the exporter and the
TUI run) must give the Model a fresh aggregate() makes of the same Readings,
each mount's duplicate bytes must equal what mincore(2) says of the pods'
own files (an oracle apart from the probes: a page of a mount is a duplicate
when another mount holds the same page of the same file), and the kept
groups must have moved members (the path under test is taken).
"""
from __future__ import annotations

import os

import pytest

from erofs_top import large_groups
from erofs_top.aggregate import aggregate
from erofs_top.pagecache import PAGE_SIZE, resident_mask
from erofs_top.workload import build_image, drop_file_cache, make_tree, read_file

pytestmark = pytest.mark.root
KiB = 1 << 10
POD_COUNT = large_groups.LARGE_GROUP + 2
FILES = {"lib/libfleet.so": 600 * KiB, "bin/app": 200 * KiB, "data/table.bin": 1024 * KiB,
         "etc/small.conf": 12 * KiB}


@pytest.fixture
def fleet(stack, cgroup_prefix):
    src = make_tree(stack.dir / "src", FILES)
    img = build_image(src, stack.dir / "fleet.erofs")
    pods = []
    for p in range(POD_COUNT):
        m = stack.mount(img, f"pod{p:02d}")
        for rel in FILES:
            drop_file_cache(m.path(rel))
        pods.append((m, stack.cgroup(f"{cgroup_prefix}/pod{p:02d}")))
    return pods


def _dup_bytes_oracle(pods) -> dict[str, int]:
    """mount dev -> bytes of its files' resident pages that another mount
    of the fleet also holds (mincore of each pod's own path)."""
    masks = {m.dev_str: {rel: resident_mask(m.path(rel)) for rel in FILES}
             for m, _ in pods if os.path.ismount(m.mountpoint)}
    out = {}
    for dev, mine in masks.items():
        pages = 0
        for rel, mask in mine.items():
            others = 0
            for dev2, theirs in masks.items():
                if dev2 != dev:
                    others |= theirs[rel]
            pages += (mask & others).bit_count()
        out[dev] = pages * PAGE_SIZE
    return out


def _refresh(col):
    """The collector's refresh (Collector.refresh's steps, without the
    names) and a Model from scratch of the same Readings."""
    _added, removed = col.mounts.refresh()
    for m in removed:
        col.content.forget(m)
    r = col.read()
    kw = dict(tier=col.tier, started_at=col.started_at, files_cap=col.files_cap,
              kernel=col.kernel)
    got = col.aggregator.update(r, col.mounts, col.cgroups, col.content, **kw)
    return got, aggregate(r, col.mounts, col.cgroups, col.content, **kw)


def _same_as_fresh(col, step):
    """The kept refresh's Model, failing unless it equals aggregate()'s."""
    got, want = _refresh(col)
    if got != want:
        g, w = got.to_dict(), want.to_dict()
        pytest.fail(f"step {step}: kept refresh != from scratch in "
                    f"{sorted(k for k in w if g[k] != w[k])}")
    return got


def _check(col, pods, step):
    before = _dup_bytes_oracle(pods)
    got = _same_as_fresh(col, step)
    after = _dup_bytes_oracle(pods)
    if before == after:             # the cache did not change under the refresh
        dup = {mt.dev: mt.duplicate_bytes for mt in got.mounts if mt.dev in before}
        assert dup == before, f"step {step}"
    return got


def test_a_fleet_of_one_image_refreshes_as_from_scratch(fleet):
    from erofs_top.tiers import open_collector
    pods = fleet
    col = open_collector(seed=False, sharing=False)
    moved = large_groups.STATS["moved"]
    try:
        col.refresh()                                   # the first (full) pass
        for m, cg in pods:                              # every pod starts: its binary, libs
            for rel in ("lib/libfleet.so", "etc/small.conf", "bin/app"):
                read_file(m.path(rel), cg)
        for p, (m, _cg) in enumerate(pods):             # the binary's tail in pod 4 alone
            if p != 4:
                drop_file_cache(m.path("bin/app"), 128 * KiB, 0)
        model = _check(col, pods, "start")
        assert sum(mt.duplicate_bytes for mt in model.mounts) > POD_COUNT * 600 * KiB
        tails = [resident_mask(m.path("bin/app")) >> 32 for m, _ in pods]
        assert tails[4] and not any(tails[:4] + tails[5:]), "the tail: pod 4's pages alone"
        drop_file_cache(pods[2][0].path("lib/libfleet.so"), 64 * KiB, 128 * KiB)  # evicted
        drop_file_cache(pods[5][0].path("lib/libfleet.so"), 0, 64 * KiB)
        read_file(pods[9][0].path("data/table.bin"), pods[9][1], offset=256 * KiB,
                  length=256 * KiB)                     # a new file's pages, two pods
        read_file(pods[10][0].path("data/table.bin"), pods[10][1], length=384 * KiB)
        read_file(pods[7][0].path("bin/app"), pods[7][1])   # pod 4's tail: duplicates now
        _check(col, pods, "churn")
        drop_file_cache(pods[0][0].path("lib/libfleet.so"))        # the first copy leaves
        _check(col, pods, "first copy dropped")
        read_file(pods[0][0].path("lib/libfleet.so"), pods[0][1], length=300 * KiB)
        _check(col, pods, "first copy back, in part")
        drop_file_cache(pods[7][0].path("bin/app"), 128 * KiB, 0)  # pod 4's tail: its own
        _check(col, pods, "a tail held by one pod again")
        pods[-1][0].umount()                                        # a pod gone
        _check(col, pods[:-1], "a pod unmounted")
        for m, cg in pods[:-1]:                                     # the fleet reads on
            read_file(m.path("data/table.bin"), cg, length=128 * KiB)
        _check(col, pods[:-1], "every pod reads a new file")
    finally:
        col.close()
    assert large_groups.STATS["moved"] > moved, "no kept group moved: the path is not taken"


def test_pods_replaced_and_new_readers_refresh_as_from_scratch(stack, cgroup_prefix,
                                                               monkeypatch):
    """Two images that share one library byte for byte (its copies keyed by
    digest, not by one image file), a pod per mount: a new reader of a
    pod's cached files (a cache's readers change), part of one pod's copy
    evicted and read again by another cgroup (its group re-made, the other
    copies kept, that copy's holders changed), then pods replaced (a
    pod's cgroup removed and its mount unmounted, a new mount of the same
    image read by a new cgroup).  After each step the kept refresh equals
    aggregate() from scratch, and the paths under test are taken: a copy
    joins the library's digest-keyed size group with its own digest alone
    (aggregate._digest_join; after the first, walking none of its members:
    its witnesses), a re-made group keeps its untouched copies
    (node_savings._kept_copy)."""
    from erofs_top import aggregate as aggregate_mod
    from erofs_top import node_savings
    from erofs_top.tiers import open_collector
    lib = os.urandom(600 * KiB)
    src_a = make_tree(stack.dir / "a", {"lib/libfleet.so": lib, "bin/app": 200 * KiB}, seed=3)
    src_b = make_tree(stack.dir / "b", {"lib/libfleet.so": lib, "etc/b.conf": 12 * KiB}, seed=4)
    images = [build_image(src_a, stack.dir / "a.erofs"),
              build_image(src_b, stack.dir / "b.erofs")]
    taken = {"joins": 0, "kept": 0, "walks": 0}

    def counted(name, fn):
        def wrapper(*a):
            r = fn(*a)
            taken[name] += bool(r)
            return r
        return wrapper
    monkeypatch.setattr(aggregate_mod, "_digest_join",
                        counted("joins", aggregate_mod._digest_join))
    monkeypatch.setattr(node_savings, "_kept_copy", counted("kept", node_savings._kept_copy))
    walk = aggregate_mod._digest_members

    def walked(*a):
        taken["walks"] += 1
        return walk(*a)
    monkeypatch.setattr(aggregate_mod, "_digest_members", walked)

    def start(name, img):
        m = stack.mount(img, name)
        cg = stack.cgroup(f"{cgroup_prefix}/{name}")
        for rel in ("lib/libfleet.so", "bin/app", "etc/b.conf"):
            if os.path.exists(m.path(rel)):
                read_file(m.path(rel), cg)
        return m, cg

    col = open_collector(seed=False, sharing=False)
    try:
        col.refresh()
        pods = [start(f"a{i}", images[0]) for i in range(4)] + \
            [start(f"b{i}", images[1]) for i in range(2)]
        _check_fresh(col, "pods started")
        extra = stack.cgroup(f"{cgroup_prefix}/reader")
        read_file(pods[1][0].path("lib/libfleet.so"), extra)    # cached: a new reader only
        read_file(pods[1][0].path("bin/app"), extra)
        _check_fresh(col, "a new reader of a pod's files")
        drop_file_cache(pods[3][0].path("lib/libfleet.so"), 64 * KiB, 128 * KiB)
        read_file(pods[3][0].path("lib/libfleet.so"), extra, offset=64 * KiB, length=128 * KiB)
        _check_fresh(col, "part of one pod's library read again by another cgroup")
        for k, (i, img) in enumerate(((2, 0), (5, 1), (0, 0))):
            m, cg = pods[i]
            cg.remove()
            m.umount()
            pods[i] = start(f"r{k}", images[img])
            _check_fresh(col, f"pod {i} replaced")
    finally:
        col.close()
    assert taken["joins"] and taken["kept"], taken
    # a later join found the group's witnesses and walked none of it
    assert taken["walks"] < taken["joins"], taken


def _check_fresh(col, step):
    assert _same_as_fresh(col, step).totals.duplicate_bytes > 0, step
