"""``open_collector()``: the best capability tier this host allows.

Its own module so that the tiers' modules (collector.py, kernel/probes.py) do
not import each other: this one imports both, nothing imports it back.
"""
from __future__ import annotations

from .collector import Collector, SnapshotCollector
from .errors import CollectorError, fail


def open_collector(*, no_bpf: bool = False, **kw) -> Collector:
    """The best tier this host allows; CollectorError with the reason otherwise."""
    if no_bpf:
        return SnapshotCollector(**kw)
    from .kernel.probes import TracepointCollector   # imports bcc lazily
    return TracepointCollector(**kw)


def open_or_fail(no_bpf: bool = False, **kw) -> Collector:
    """open_collector() for a command: when no tier starts, one line and exit 1."""
    try:
        return open_collector(no_bpf=no_bpf, **kw)
    except CollectorError as e:
        fail(str(e))
    except PermissionError as e:
        fail(f"permission denied: {e.filename or e} (run as root, or --no-bpf)")
