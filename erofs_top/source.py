"""Sources: what differs per tier.  A Source reads the page-cache state once
(``read() -> Readings``) and lets go of what it holds (``close()``); the
Collector (collector.py) puts resolvers and the aggregator around it.

The sources, one per tier:

- ``SnapshotSource`` (here): ground truth from cachestat/mincore + kpagecgroup,
  no BPF;
- ``TracepointSource`` and ``FullSource`` (kernel/probes.py): BPF maps, the
  full tier with the page-cache sharing probes;
- ``Replayer`` (record/replay.py): a recording at any moment.

Tests pass a ``ReadingsSource`` (a list of Readings, one per read) to run the
real refresh on data they wrote.
"""
from __future__ import annotations

import copy
from typing import Iterable, Protocol

from .model import TIER_SNAPSHOT
from .pagecache import PAGE_SIZE
from .readings import Readings
from .snapshot import snapshot_readings


class Source(Protocol):
    tier: str
    page_size: int

    def read(self) -> Readings: ...

    def close(self) -> None: ...


class SnapshotSource:
    """Lowest tier: ground truth for every mount ``mounts`` knows, no BPF."""
    tier = TIER_SNAPSHOT
    page_size = PAGE_SIZE

    def __init__(self, mounts, cgroups):
        self.mounts = mounts
        self.cgroups = cgroups

    def read(self) -> Readings:
        return snapshot_readings(self.mounts, self.cgroups)

    def close(self) -> None:
        pass


class ReadingsSource:
    """Readings a test or benchmark wrote, one per read; the last one repeats
    (a copy each time: a refresh adds its warnings to what it read)."""

    def __init__(self, readings: Iterable[Readings], *, tier: str, page_size: int = PAGE_SIZE):
        self.pending = list(readings)
        if not self.pending:
            raise ValueError("ReadingsSource needs at least one Readings")
        self.tier = tier
        self.page_size = page_size
        self.reads = 0

    def read(self) -> Readings:
        self.reads += 1
        if len(self.pending) > 1:
            return self.pending.pop(0)
        return copy.deepcopy(self.pending[0])

    def close(self) -> None:
        pass


__all__ = ["Source", "SnapshotSource", "ReadingsSource"]
