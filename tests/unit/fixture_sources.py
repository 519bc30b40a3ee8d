"""A scripted probe source for unit tests: the real Collector and its real
refresh() around Readings written here (the BPF sources need root; their
round trips are in tests/integration)."""
from __future__ import annotations

import time

from erofs_top.collector import Collector
from erofs_top.model import TIER_TRACEPOINT
from erofs_top.readings import PageChunk, Readings
from erofs_top.record import synth
from erofs_top.record.meta import file_from_json
from erofs_top.resolve.base import StaticCgroups, StaticContent, StaticMounts

FIRST_CGROUP = 1000


def cgroup_path(i: int) -> str:
    return f"/kubepods/pod{i}/ctr{i}"


class ScriptedProbeSource:
    """Mock of a probe source: ``containers`` cgroups, each holding the first
    i+1 pages of the shared library on one of the two demo mounts.  ``fail``
    makes read() raise (a map read that failed), ``attached`` is what the
    Readings say of the probes."""
    page_size = synth.PAGE

    def __init__(self, containers: int = 2, tier: str = TIER_TRACEPOINT):
        self.containers = containers
        self.tier = tier
        self.attached = tier != "snapshot"
        self.fail = False
        self.reads = 0

    def read(self) -> Readings:
        if self.fail:
            raise RuntimeError("map read failed\nsecond line")
        self.reads += 1
        chunks = [PageChunk(synth.DEV_A if i % 2 == 0 else synth.DEV_B, synth.LIB_INO, 0,
                            {FIRST_CGROUP + i: (1 << (i + 1)) - 1})
                  for i in range(self.containers)]
        return Readings(taken_at=time.time(), page_size=self.page_size, chunks=chunks,
                        probes_attached=self.attached,
                        maps={"chunks": (len(chunks), 65536, 0)})

    def close(self) -> None:
        pass


def fixture_collector(source, files_cap: int = 50) -> Collector:
    """The real Collector with static resolvers of the demo node (record/synth.py)."""
    files, content = {}, {}
    for j in synth.demo_files():
        dev, ino, info, digest, _fingerprint, _build_id = file_from_json(j)
        files[(dev, ino)] = info
        if digest:
            content[(dev, ino)] = digest
    paths = {FIRST_CGROUP + i: cgroup_path(i) for i in range(64)}
    return Collector(source, mounts=StaticMounts(synth.demo_mounts()),
                     cgroups=StaticCgroups(paths), files_cap=files_cap,
                     content=StaticContent(files=files, content=content))
