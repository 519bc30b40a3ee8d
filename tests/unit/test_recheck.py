"""The recheck slices repair what the deltas cannot see (Aggregator._recheck).

Each refresh re-derives one slice of the entries from their input, resolution
included; after ``recheck_slices`` refreshes every entry was, so a wrong
entry cannot survive: here a source that changed a file's PageChunk in place
and did not name the file changed (its bug), and a file whose info (path)
changed while its mount's signature did not.  Both Models must equal
aggregate() of the same
Readings once every slice had its turn; an Aggregator without slices, fed
the same, must still be wrong (else the test proves nothing)."""
from __future__ import annotations

import dataclasses

from test_refresh_churn import PAGE, _image, _mount

from erofs_top.aggregate import Aggregator, aggregate
from erofs_top.readings import PageChunk, Readings
from erofs_top.resolve.base import AOPS_FILEIO, FileInfo, StaticCgroups, StaticContent, StaticMounts

SLICES = 4
CG_A, CG_B = 1001, 1002


def _world():
    """Two mounts of two images holding the same 3 files (one cgroup each);
    (mounts, cgroups, content, {file: [PageChunk]})."""
    mounts = [_mount(n, "file", _image(n, fingerprints=True)) for n in range(2)]
    files, content, by_file = {}, {}, {}
    for m, cg in zip(mounts, (CG_A, CG_B)):
        for ino in (1, 2, 3):
            files[(m.dev, ino)] = FileInfo(ino, f"{m.mountpoint}/f{ino}", 128 * PAGE, True,
                                           AOPS_FILEIO)
            content[(m.dev, ino)] = f"{ino:064x}"
            by_file[(m.dev, ino)] = [PageChunk(m.dev, ino, c, {cg: (1 << 64) - 1})
                                     for c in (0, 1)]
    return (StaticMounts(mounts), StaticCgroups({CG_A: "/pods/a", CG_B: "/pods/b"}),
            StaticContent(files=files, content=content), by_file)


def _readings(by_file: dict, changed: set, t: float) -> Readings:
    return Readings(taken_at=t, page_size=PAGE, chunks=[pc for v in by_file.values() for pc in v],
                    chunks_by_file=by_file, changed_files=changed)


def _after_every_slice(agg, by_file, resolvers) -> list:
    """The Models of SLICES refreshes in which the source names nothing changed."""
    return [agg.update(_readings(by_file, set(), 1.0 + i), *resolvers, tier="tracepoint",
                       started_at=0.0) for i in range(SLICES)]


def _fresh(by_file, resolvers):
    return aggregate(_readings(by_file, set(), 1.0 + SLICES - 1), *resolvers, tier="tracepoint",
                     started_at=0.0)


def _two(by_file, resolvers) -> tuple[Aggregator, Aggregator]:
    """An Aggregator with slices and one without, after the same first read."""
    aggs = Aggregator(recheck_slices=SLICES), Aggregator(recheck_slices=0)
    for agg in aggs:
        agg.update(_readings(by_file, set(by_file), 0.0), *resolvers, tier="tracepoint",
                   started_at=0.0)
    return aggs


def _repaired(change):
    """``change`` (mounts, content, by_file) made after the first read and
    named to neither Aggregator: the one with slices equals aggregate() once
    every slice had its turn, the one without stays wrong.  The Model wanted."""
    mounts, cgroups, content, by_file = _world()
    resolvers = (mounts, cgroups, content)
    agg, deltas_only = _two(by_file, resolvers)
    change(mounts, content, by_file)
    want = _fresh(by_file, resolvers)
    assert _after_every_slice(deltas_only, by_file, resolvers)[-1] != want
    assert _after_every_slice(agg, by_file, resolvers)[-1] == want
    assert agg.rechecks_differed == 1
    return want


def test_a_file_changed_in_place_is_re_derived_within_the_slices():
    def change(mounts, content, by_file):
        # the source's bug: the same list, a PageChunk changed in it, not named changed
        by_file[(mounts.items[0].dev, 2)][1].owners = {CG_A: 0xFF}
    _repaired(change)


def test_a_file_whose_info_changed_is_resolved_again_within_the_slices():
    def change(mounts, content, by_file):
        key = (mounts.items[1].dev, 3)
        content.files[key] = dataclasses.replace(content.files[key], path="/run/m1/renamed")
    assert "/run/m1/renamed" in {f.path for f in _repaired(change).files}


def test_a_recheck_of_unchanged_entries_rebuilds_nothing():
    """Every entry re-derived equal: no entry replaced, no group touched."""
    mounts, cgroups, content, by_file = _world()
    resolvers = (mounts, cgroups, content)
    agg = Aggregator(recheck_slices=SLICES)
    first = agg.update(_readings(by_file, set(by_file), 0.0), *resolvers, tier="tracepoint",
                       started_at=0.0)
    entries = dict(agg.entries)
    models = _after_every_slice(agg, by_file, resolvers)
    assert all(agg.entries[k] is e for k, e in entries.items())
    assert agg.rechecks_differed == 0
    assert [dataclasses.replace(m, ended_at=0.0) for m in models] == \
        [dataclasses.replace(first, ended_at=0.0)] * SLICES
