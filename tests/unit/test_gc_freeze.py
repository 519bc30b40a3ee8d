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
