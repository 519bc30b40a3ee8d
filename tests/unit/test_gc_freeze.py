"""aggregate.FREEZE: long-running faces freeze what is alive after a refresh
(the exporter after every one, the TUI after a full pass only), so the
cyclic GC does not walk a node's entries; off by default."""
from __future__ import annotations

import gc
import random

import pytest
from test_refresh_churn import Node

from erofs_top.aggregate import FREEZE, Aggregator


def _refresh(agg, node, t):
    return agg.update(node.readings(t), node.mounts, node.cgroups, node.content,
                      tier="full", started_at=0.0)


@pytest.mark.parametrize("mode, frozen_after", [("", (False, False, False)),
                                                ("every", (True, True, True)),
                                                ("full", (True, False, True))])
def test_freeze_modes(mode, frozen_after):
    """Refreshes: the first (a full pass), a small change (incremental), then
    a change of most entries (the aggregator starts afresh: a full pass)."""
    node = Node(random.Random(3))
    node.churn(60)
    agg = Aggregator(recheck_slices=0)
    FREEZE["mode"] = mode
    got = []
    for step, ops in enumerate((0, 1, 0)):
        gc.unfreeze()
        if step == 2:
            node.chunks = {}            # everything gone, then all new
            node.churn(60)
        else:
            node.churn(ops)
        _refresh(agg, node, float(step))
        got.append(gc.get_freeze_count() > 0)
    assert tuple(got) == frozen_after


# ---------------------------------------------------------------- the exporter
class _ModelSource:
    """A source handing a fixed Model (test_exporter.make_model), or raising."""
    tier = "tracepoint"

    def __init__(self, model):
        self.model, self.fail = model, False

    def refresh(self):
        if self.fail:
            raise RuntimeError("map read failed")
        return self.model


def _exporter(n: int):
    from test_exporter import make_model

    from erofs_top.exporter.server import Exporter
    src = _ModelSource(make_model(n_containers=n, n_mounts=n))
    ex = Exporter(src, interval=10.0, log=lambda m: None)
    # scraped once in OpenMetrics + gzip: each refresh also pre-encodes that
    b"".join(ex({"PATH_INFO": "/metrics", "HTTP_ACCEPT_ENCODING": "gzip",
                 "HTTP_ACCEPT": "application/openmetrics-text;version=1.0.0"}, lambda *a: None))
    return ex, src


def test_exporter_refresh_runs_without_collections_then_freezes():
    """The exporter's whole refresh (Model, families, bodies: ~10,000 new
    objects here) runs with the cyclic GC off and freezes what is alive
    after it; the GC is on again after it, and no garbage cycle was frozen."""
    ex, _ = _exporter(300)
    collections = []
    cb = lambda phase, info: collections.append(info["generation"]) if phase == "start" else None
    gc.unfreeze()
    gc.collect()
    gc.callbacks.append(cb)
    try:
        assert gc.isenabled()
        assert ex.refresh_once()
        assert gc.isenabled()
    finally:
        gc.callbacks.remove(cb)
    assert collections == []
    assert gc.get_freeze_count() > 0
    gc.unfreeze()
    assert gc.collect() == 0        # nothing unreachable was frozen


def test_exporter_refresh_leaves_the_gc_as_it_found_it():
    """Off before: off after (the refresh does not turn it on); a failed
    refresh freezes nothing (its garbage is left to the collector)."""
    ex, src = _exporter(3)
    gc.unfreeze()
    gc.disable()
    try:
        assert ex.refresh_once()
        assert not gc.isenabled()
    finally:
        gc.enable()
    gc.unfreeze()
    src.fail = True
    assert not ex.refresh_once()
    assert gc.isenabled() and gc.get_freeze_count() == 0
