"""Aggregator.exported_rows_only: the exporter's Models leave out the rows no
metric family reads (Mount.holders, Container.mounts, Model.files) and keep
no state for them; everything else, and every /metrics body, is the same as
a full Model's, refresh after refresh on test_refresh_churn's random node."""
from __future__ import annotations

import dataclasses
import random

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_latest
from test_refresh_churn import Node, _refresh

from erofs_top.aggregate import Aggregator
from erofs_top.collector import Collector
from erofs_top.exporter.metrics import FamilyBuilder, ModelMetrics
from erofs_top.exporter.server import Exporter


def _without_unexported(model):
    """The Model as the exporter's: no holders, no mounts per container, no files."""
    return dataclasses.replace(
        model, files=[],
        containers=[dataclasses.replace(c, mounts=[]) for c in model.containers],
        mounts=[dataclasses.replace(m, holders=[]) for m in model.mounts])


class _Face:
    """FamilyBuilder + prometheus-client's own encoders (not the LineCache)."""

    def __init__(self):
        self.builder, self.col = FamilyBuilder(), ModelMetrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.col)

    def bodies(self, model) -> tuple[bytes, bytes]:
        self.col.publish(self.builder.build(model))
        return generate_latest(self.registry), om_latest(self.registry)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("ops_per_refresh", [2, 30])
def test_exported_rows_only_models_and_bodies(seed, ops_per_refresh):
    rng = random.Random(seed * 100 + ops_per_refresh)
    node = Node(rng)
    full, lean = Aggregator(recheck_slices=4), Aggregator(recheck_slices=4)
    lean.exported_rows_only = True
    face_full, face_lean = _Face(), _Face()
    listed = 0
    for step in range(25):
        node.churn(ops_per_refresh)
        r = node.readings(float(step))
        want = _refresh(full, node, r, 10)
        got = _refresh(lean, node, r, 10)
        listed += len(want.files) + sum(len(m.holders) for m in want.mounts)
        g, w = got.to_dict(), _without_unexported(want).to_dict()
        assert {k: g[k] for k in g if g[k] != w[k]} == {k: w[k] for k in g if g[k] != w[k]}, step
        assert not got.files and all(not m.holders for m in got.mounts)
        assert all(not c.mounts for c in got.containers)
        # no kept state for the rows it leaves out, none pending
        assert not lean.holder_rows and not lean.cgroup_mounts
        assert not lean.acc.dirty_pairs and not lean.acc.dirty_cgs
        assert face_lean.bodies(got) == face_full.bodies(want), step
    assert listed > 0       # the full Models did list what the lean ones leave out


def _node_collector(seed: int):
    node = Node(random.Random(seed))
    return node, Collector(_NodeSource(node), mounts=node.mounts, cgroups=node.cgroups,
                           content=node.content)


def test_the_exporter_asks_its_collector_for_exported_rows_only():
    node, col = _node_collector(1)
    assert not col.aggregator.exported_rows_only
    ex = Exporter(col, interval=10.0, log=lambda m: None, lean_models=True)
    assert col.aggregator.exported_rows_only
    node.churn(20)
    assert ex.refresh_once()
    assert ex.model.containers and not ex.model.files
    assert all(not m.holders for m in ex.model.mounts)


class _NodeSource:
    """test_refresh_churn's Node as a Source (its readings at each read)."""
    tier, page_size = "full", 4096

    def __init__(self, node):
        self.node, self.t = node, 0.0

    def read(self):
        self.t += 1
        return self.node.readings(self.t)

    def close(self):
        pass


def test_a_collector_shared_with_other_faces_keeps_its_rows():
    """An Exporter around a collector it does not own (lean_models off: a
    test's session collector, a face beside it) leaves its Models whole."""
    node, col = _node_collector(2)
    ex = Exporter(col, interval=10.0, log=lambda m: None)
    assert not col.aggregator.exported_rows_only
    node.churn(20)
    assert ex.refresh_once()
    assert ex.model.files
    assert any(m.holders for m in ex.model.mounts)
