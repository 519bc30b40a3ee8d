"""benchmarks/bench_exporter.py MapStateSource (--map-state): marking only
the chunk entries whose value changed, as the probe marks them, keeps the
source's state and Readings what marking every chunk of a changed file
gives (no root: pure Python over a synthetic node)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from bench_exporter import MapStateSource, NodeProcessSource, marked_chunks  # noqa: E402
from node_process import NodeProcess  # noqa: E402
from synthetic_node import SyntheticNode  # noqa: E402

from erofs_top.readings import PageChunk  # noqa: E402


def _run(mark_every_chunk: bool, steps: int = 6, src=None):
    src = src or MapStateSource(SyntheticNode(2000, 20, seed=3), 0.05)
    src.mark_every_chunk = mark_every_chunk
    fed = [0]
    patch = src.chunks.patch

    def counted(found, gone):
        found = list(found)
        fed[0] += len(found)
        return patch(found, gone)
    src.chunks.patch = counted
    states = []
    for _ in range(steps):
        r = src.read()
        states.append(({fk: r.chunks_by_file[fk] for fk in r.chunks_by_file},
                       dict(r.io_by_key), r.changed_files))
    return states, fed[0]


def test_marking_only_changed_entries_gives_the_same_readings():
    every, fed_every = _run(True)
    marked, fed_marked = _run(False)
    assert len(every) == len(marked) == 6
    for a, b in zip(every, marked):
        assert a == b
    assert 0 < fed_marked < fed_every      # fewer entries fed, not none


def test_node_in_another_process_gives_the_same_readings():
    """--node-process: the node in a child, its reads over a pipe, hands the
    aggregator what the in-process node does (same seed, same churn)."""
    here, _ = _run(False)
    proc = NodeProcess(2000, 20, fraction=0.05, seed=3)
    try:
        there, fed = _run(False, src=NodeProcessSource(proc, 0.05))
        resolvers = SyntheticNode(2000, 20, seed=3).resolvers()
        assert proc.cgroups.paths == resolvers[1].paths
        assert [m.dev for m in proc.mounts.mounts()] == [m.dev for m in resolvers[0].mounts()]
    finally:
        proc.close()
    assert not proc.proc.is_alive()
    assert len(here) == len(there) == 6 and fed > 0
    for a, b in zip(here, there):
        assert a == b
    assert here[0][0] and here[-1][2]       # files held, and changes named


def test_marked_chunks():
    was = {0: PageChunk(1, 5, 0, {7: 0b11}), 1: PageChunk(1, 5, 1, {7: 0b1}, 0b1)}
    now = [PageChunk(1, 5, 0, {7: 0b11, 8: 0}),          # same owners (a 0 mask dropped)
           PageChunk(1, 5, 1, {7: 0b1}),                 # seeded mask changed
           PageChunk(1, 5, 2, {7: 0b1})]                 # new
    assert [pc.chunk for pc in marked_chunks(now, was)] == [1, 2]
    now[0] = PageChunk(1, 5, 0, {7: 0b10})              # owners changed
    assert [pc.chunk for pc in marked_chunks(now, was)] == [0, 1, 2]
