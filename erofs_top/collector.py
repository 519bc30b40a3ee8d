"""Collector: one Source (a tier's reader) + resolvers + the aggregator.

Every face uses it the same way::

    with open_collector(no_bpf=False) as col:     # erofs_top.tiers; raises CollectorError
        model = col.refresh()                     # a fresh Model, cheap (reads maps)

A Source is what differs per tier (erofs_top/source.py: the protocol and the
snapshot tier; kernel/probes.py: tracepoint and full; record/replay.py: a
recording).  The resolvers are passed in: the live ones of this host
(``tiers.live_resolvers``) or static ones (tests, recordings), and every one of
them gets the same ``refresh()``.  The faces (TUI, exporter, recorder, once)
never compute attributions: they read the Model that ``refresh()`` returns.
"""
from __future__ import annotations

import platform
import threading
import time

from . import aggregate
from .attribution import IoSums
from .model import Model
from .readings import Readings
from .source import Source


class Collector:
    def __init__(self, source: Source, *, mounts, cgroups, content, names=None,
                 image_cache=None, files_cap: int = 200, started_at: float | None = None,
                 kernel: str | None = None):
        """``mounts``, ``cgroups``, ``content``: the resolvers (resolve/base.py).
        ``names`` (resolve/names.py RuntimeNames) and ``image_cache``
        (image_cache.py) read this host: only live collectors have them.
        ``started_at``/``kernel``: the run's, when not now/here (a recording)."""
        self.source = source
        self.mounts = mounts
        self.cgroups = cgroups
        self.content = content
        self.names = names
        self.image_cache = image_cache
        self.files_cap = files_cap
        self.started_at = time.time() if started_at is None else started_at
        self.kernel = platform.release() if kernel is None else kernel
        self._lock = threading.Lock()
        self.last_model: Model | None = None
        # keeps entries and sums between refreshes: a refresh costs what changed
        self.aggregator = aggregate.Aggregator()
        # EROFS pages inserted per mount dev, by the io rows that changed (the
        # image cache's sign of change): not a walk over every row per refresh
        self._io_by_dev = IoSums("dev")

    @property
    def tier(self) -> str:
        return self.source.tier

    @property
    def page_size(self) -> int:
        return self.source.page_size

    def read(self) -> Readings:
        """One read of the source (the recorder wraps this to keep what it read)."""
        return self.source.read()

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
            self._resolver_warnings(readings)
            model = self.aggregator.update(
                readings, self.mounts, self.cgroups, self.content,
                tier=self.tier, started_at=self.started_at, files_cap=self.files_cap,
                kernel=self.kernel)
            self.last_model = model
            return model

    def _resolver_warnings(self, readings: Readings) -> None:
        for resolver in (self.mounts, self.cgroups):
            if getattr(resolver, "error", ""):
                readings.warnings.append(resolver.error)
        if getattr(self.content, "digest_errors", 0):
            readings.warnings.append(f"{self.content.digest_errors} file(s) could not be "
                                     f"read to identify their content")
        for name in ("zmap_warning", "names_warning"):   # counted during the previous refresh
            warning = getattr(self.content, name, None)
            if warning and warning():
                readings.warnings.append(warning())

    def _read_image_cache(self, readings: Readings) -> None:
        """The image files' cache, page by page with owners: what sharing saves there."""
        self._io_by_dev.update(readings)
        inserted = {dev: sums[0] for dev, sums in self._io_by_dev.by_group.items()}
        readings.image_cache_owners = self.image_cache.read(self.mounts, self.cgroups, inserted)
        if self.image_cache.warning:
            readings.warnings.append(self.image_cache.warning)

    def close(self) -> None:
        self.source.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


__all__ = ["Collector"]
