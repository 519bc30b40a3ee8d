"""``open_collector()``: the best capability tier this host allows.

Its own module so that the tiers' modules (collector.py, kernel/probes.py) do
not import each other: this one imports both, nothing imports it back.
"""
from __future__ import annotations

from .collector import Collector, SnapshotCollector


def open_collector(*, no_bpf: bool = False, **kw) -> Collector:
    """The best tier this host allows; CollectorError with the reason otherwise."""
    if no_bpf:
        return SnapshotCollector(**kw)
    from .kernel.probes import TracepointCollector   # imports bcc lazily
    return TracepointCollector(**kw)
