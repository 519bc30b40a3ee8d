"""Collector: one data source (BPF probes or ground truth) + resolvers + aggregator.

Every face uses it the same way::

    with open_collector(no_bpf=False) as col:     # erofs_top.tiers; raises CollectorError
        model = col.refresh()                     # a fresh Model, cheap (reads maps)

The faces (TUI, exporter, recorder, once) never compute attributions: they
read the Model that ``refresh()`` returns.
"""
from __future__ import annotations

import os
import platform
import threading
import time

from . import aggregate
from .snapshot import snapshot_readings
from .model import TIER_SNAPSHOT, TIER_TRACEPOINT, Model
from .readings import Readings


class Collector:
    tier: str = TIER_SNAPSHOT

    def __init__(self, *, cgroup_root: str | None = None, files_cap: int = 200,
                 fingerprint_xattr: str = "trusted.erofs.fingerprint",
                 mounts=None, cgroups=None, content=None, names=None):
        """``mounts``, ``cgroups``, ``content``: the resolvers (resolve/base.py);
        by default the live ones of this host.  Tests and recordings pass
        Static* ones and get the same refresh()."""
        from .resolve.cgroups import SysCgroups
        from .resolve.content import ImageContent
        from .resolve.mounts import SysMounts
        from .resolve.names import RuntimeNames
        live = mounts is None
        self.mounts = SysMounts() if live else mounts
        # runtime names (containerd, kubelet) belong to this host's resolvers
        self.names = names if names is not None else (RuntimeNames() if live else None)
        self.cgroups = cgroups if cgroups is not None else \
            SysCgroups(root=cgroup_root, names=self.names)
        self.content = content if content is not None else \
            ImageContent(fingerprint_xattr=fingerprint_xattr)
        self.files_cap = files_cap
        self.started_at = time.time()
        self.page_size = os.sysconf("SC_PAGE_SIZE")
        self._lock = threading.Lock()
        self.last_model: Model | None = None
        from .image_cache import ImageCacheReader
        # the image files' own cache is read from this host, like the live resolvers
        self.image_cache = ImageCacheReader() if live else None

    # subclasses: read the source
    def read(self) -> Readings:
        raise NotImplementedError

    def refresh(self) -> Model:
        with self._lock:
            _added, removed = self.mounts.refresh()
            for m in removed:
                self.content.forget(m)      # its ino -> path index and caches
            readings = self.read()
            if self.image_cache is not None:
                self._read_image_cache(readings)
            if self.names is not None:
                self.names.refresh()
                self.names.name_mounts(self.mounts.mounts())
                readings.warnings.extend(self.names.warnings())
            for source in (self.mounts, self.cgroups):
                if getattr(source, "error", ""):
                    readings.warnings.append(source.error)
            if getattr(self.content, "digest_errors", 0):
                readings.warnings.append(f"{self.content.digest_errors} file(s) could not be "
                                         f"read to identify their content")
            model = aggregate.aggregate(
                readings, self.mounts, self.cgroups, self.content,
                tier=self.tier, started_at=self.started_at, files_cap=self.files_cap,
                kernel=platform.release())
            self.last_model = model
            return model

    def _read_image_cache(self, readings: Readings) -> None:
        """The image files' cache, page by page with owners: what sharing saves there."""
        inserted: dict[int, int] = {}
        for fio in readings.io:
            inserted[fio.dev] = inserted.get(fio.dev, 0) + fio.inserted_pages
        readings.image_cache_owners = self.image_cache.read(self.mounts, self.cgroups, inserted)
        if self.image_cache.warning:
            readings.warnings.append(self.image_cache.warning)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class SnapshotCollector(Collector):
    """Lowest tier: ground truth from cachestat/mincore + kpagecgroup, no BPF."""
    tier = TIER_SNAPSHOT

    def read(self) -> Readings:
        return snapshot_readings(self.mounts, self.cgroups)


__all__ = ["Collector", "SnapshotCollector", "TIER_SNAPSHOT", "TIER_TRACEPOINT"]
