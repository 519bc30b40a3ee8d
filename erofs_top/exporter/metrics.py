"""Metric families from a Model: names, labels, monotonic counters.

Pure: ``FamilyBuilder.build(model)`` turns one Model into prometheus-client
metric families; ``ModelMetrics`` serves the latest built list to scrapes,
so a scrape never touches BPF or the aggregator.  Every family is declared
once in ``FAMILIES`` (docs/metrics.md documents the same list; a unit test
keeps them in step).

Label rules (docs/metrics.md):
- containers carry ``namespace, pod, container, id`` like cAdvisor, ``id``
  being the cgroup path, so ``container_memory_cache`` joins without
  relabeling; runtime, container id and pod UID sit in ``*_container_info``;
- mounts carry ``dev, image_id, volume_name``; never a file path, inode, PID
  or fingerprint; container images carry ``image`` and image layers
  ``layer_digest`` (bounded by the images and layers on the node);
- unresolved cgroups are summed into one series with ``id="?"`` and
  containers beyond ``max_containers`` into ``id="(other)"`` (reported by
  ``erofs_top_exporter_containers_aggregated``), so node totals still add up.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Iterable

from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                    InfoMetricFamily, Metric)

from erofs_top.model import TIER_SNAPSHOT, Container, Model
from erofs_top.names import display

from . import DEFAULT_MAX_CONTAINERS
from .encode import Columns, Labels

PREFIX = "erofs_top_"
CONTAINER_LABELS = ("namespace", "pod", "container", "id")
MOUNT_LABELS = ("dev", "image_id", "volume_name")
IMAGE_LABELS = ("image",)
LAYER_LABELS = ("layer_digest",)
UNRESOLVED_ID = "?"
OTHER_ID = "(other)"
LABEL_CACHE_MAX = 20_000    # containers' label sets kept (FamilyBuilder._labels)
IDLE_REFRESHES = 3       # refreshes with nothing resident and no I/O before a cgroup's series go


@dataclass(frozen=True)
class FamilySpec:
    name: str               # exposition name without the "_total"/"_info" suffix
    kind: str               # gauge | counter | info
    help: str
    labels: tuple[str, ...] = ()

    @property
    def exposed(self) -> str:
        """The sample name a query uses."""
        return self.name + {"counter": "_total", "info": "_info"}.get(self.kind, "")


def _c(name, kind, help_, labels=CONTAINER_LABELS):
    return FamilySpec(PREFIX + name, kind, help_, labels)


FAMILIES: tuple[FamilySpec, ...] = (
    # ---- per container (one cgroup)
    _c("container", "info", "Container identity: runtime, container id, pod UID, image and "
       "runtime namespace of a cgroup (value 1).",
       CONTAINER_LABELS + ("runtime", "container_id", "pod_uid", "image", "runtime_namespace")),
    _c("container_resident_bytes", "gauge",
       "EROFS page-cache bytes resident now that this cgroup inserted (the memcg that pays)."),
    _c("container_duplicate_bytes", "gauge",
       "Part of resident bytes whose content is also resident in another EROFS inode."),
    _c("container_shared_bytes", "gauge",
       "Resident bytes in shared (inode_share) inodes this cgroup uses."),
    _c("container_fair_share_bytes", "gauge",
       "Resident bytes with each page split equally among the cgroups using it (like PSS)."),
    _c("container_resident_files", "gauge", "Files with resident pages inserted by this cgroup."),
    _c("container_inserted_bytes", "counter", "EROFS page-cache insertions by this cgroup."),
    _c("container_evicted_bytes", "counter",
       "Removals of EROFS page-cache pages this cgroup had inserted."),
    _c("container_readahead_bytes", "counter", "Bytes requested by erofs_readahead in this cgroup."),
    _c("container_read_folio_misses", "counter",
       "erofs_read_folio calls (synchronous page-cache misses) in this cgroup."),
    # ---- per EROFS mount (superblock)
    FamilySpec(PREFIX + "mount", "info", "EROFS mount identity, options and image layer (value 1).",
               MOUNT_LABELS + ("backing", "inode_share", "directio", "ishare_xattrs", "compressed",
                               "layer_digest", "snapshot_id")),
    FamilySpec(PREFIX + "mount_resident_bytes", "gauge",
               "EROFS page-cache bytes resident for this mount.", MOUNT_LABELS),
    FamilySpec(PREFIX + "mount_duplicate_bytes", "gauge",
               "Part of the mount's resident bytes whose content is also resident elsewhere.",
               MOUNT_LABELS),
    FamilySpec(PREFIX + "mount_backing_resident_bytes", "gauge",
               "Resident bytes of the image file behind a file-backed or loop mount "
               "(the second copy unless mounted with directio).", MOUNT_LABELS),
    FamilySpec(PREFIX + "mount_containers", "gauge",
               "Cgroups holding resident pages of this mount.", MOUNT_LABELS),
    # ---- per container image and layer (containerd's EROFS snapshotter)
    FamilySpec(PREFIX + "image_resident_bytes", "gauge",
               "EROFS page-cache bytes resident in the mounted layers of this image (a layer "
               "shared by several images counts in each).", IMAGE_LABELS),
    FamilySpec(PREFIX + "image_unique_bytes", "gauge",
               "Resident bytes in layers of this image that no other image uses.", IMAGE_LABELS),
    FamilySpec(PREFIX + "image_duplicate_bytes", "gauge",
               "Part of the image's resident bytes whose content is also resident elsewhere.",
               IMAGE_LABELS),
    FamilySpec(PREFIX + "image_potential_savings_bytes", "gauge",
               "Page cache inode_share would save on this image's layer mounts.", IMAGE_LABELS),
    FamilySpec(PREFIX + "image_containers", "gauge",
               "Containers (cgroups) running this image that hold or use EROFS page cache.",
               IMAGE_LABELS),
    FamilySpec(PREFIX + "layer_resident_bytes", "gauge",
               "EROFS page-cache bytes resident in this image layer (its mount; once per node).",
               LAYER_LABELS),
    FamilySpec(PREFIX + "layer_duplicate_bytes", "gauge",
               "Part of the layer's resident bytes whose content is also resident elsewhere.",
               LAYER_LABELS),
    FamilySpec(PREFIX + "layer_images", "gauge", "Images that use this layer.", LAYER_LABELS),
    # ---- node
    FamilySpec(PREFIX + "node_resident_bytes", "gauge", "EROFS page-cache bytes resident on the node."),
    FamilySpec(PREFIX + "node_duplicate_bytes", "gauge",
               "Resident EROFS bytes whose content is also resident in another inode."),
    FamilySpec(PREFIX + "node_redundant_bytes", "gauge",
               "For content resident k >= 2 times, (k - 1) copies' worth of bytes."),
    FamilySpec(PREFIX + "node_potential_savings_bytes", "gauge",
               "Page cache inode_share would save on the stock mounts (charged bytes: EROFS "
               "pages + image-file cache + compressed-data cache; docs/sharing.md)."),
    FamilySpec(PREFIX + "node_potential_savings_file_bytes", "gauge",
               "Part of the potential savings in EROFS file pages."),
    FamilySpec(PREFIX + "node_potential_savings_image_cache_bytes", "gauge",
               "Part of the potential savings in the image files' own cache (file-backed, loop)."),
    FamilySpec(PREFIX + "node_potential_savings_compressed_cache_bytes", "gauge",
               "Part of the potential savings in the mounts' compressed-data cache."),
    FamilySpec(PREFIX + "node_potential_savings_now_bytes", "gauge",
               "Potential savings with the images as they are (those with fingerprints)."),
    FamilySpec(PREFIX + "node_potential_savings_domains_bytes", "gauge",
               "Potential savings that putting inode_share mounts of one content in one "
               "domain adds."),
    FamilySpec(PREFIX + "node_potential_savings_rebuild_bytes", "gauge",
               "Potential savings that rebuilding images with --xattr-inode-digest adds."),
    FamilySpec(PREFIX + "node_shared_bytes", "gauge", "Resident bytes in shared (inode_share) inodes."),
    FamilySpec(PREFIX + "node_sharing_saved_bytes", "gauge",
               "Page cache inode_share saves now (per page: members that touched it - 1; "
               "EROFS pages + image-file cache + compressed-data cache)."),
    FamilySpec(PREFIX + "node_sharing_saved_file_bytes", "gauge",
               "Part of the sharing savings in EROFS file pages."),
    FamilySpec(PREFIX + "node_sharing_saved_image_cache_bytes", "gauge",
               "Part of the sharing savings in the image files' own cache."),
    FamilySpec(PREFIX + "node_sharing_saved_compressed_cache_bytes", "gauge",
               "Part of the sharing savings in the compressed-data cache."),
    FamilySpec(PREFIX + "advice_savings_bytes", "gauge",
               "What each `erofs-top advise` action would save now: action inode_share "
               "(image=\"\", the node's stock mounts with fingerprints), domain (image=\"\", "
               "inode_share mounts into one domain) or rebuild (one series per image without "
               "fingerprints that the one rebuild action names: its copies' part of the "
               "saving, 0 for an image whose copies stay cached).", ("action", "image")),
    FamilySpec(PREFIX + "node_backing_resident_bytes", "gauge",
               "Resident bytes of image files behind file-backed and loop mounts."),
    FamilySpec(PREFIX + "node_page_cache_bytes", "gauge",
               "All page cache on the node (/proc/meminfo Cached), for scale."),
    FamilySpec(PREFIX + "node_inserted_bytes", "counter", "EROFS page-cache insertions on the node."),
    FamilySpec(PREFIX + "node_evicted_bytes", "counter", "EROFS page-cache removals on the node."),
    # ---- self
    FamilySpec(PREFIX + "build", "info", "erofs-top version, kernel release and collection tier (value 1).",
               ("version", "kernel", "tier")),
    FamilySpec(PREFIX + "probes_attached", "gauge",
               "1 when the BPF probes are attached (always 0 on the snapshot tier)."),
    FamilySpec(PREFIX + "bpf_program_run_seconds", "counter",
               "Time spent in each BPF program (counted only while kernel.bpf_stats_enabled=1).", ("program",)),
    FamilySpec(PREFIX + "bpf_program_runs", "counter",
               "Runs of each BPF program (counted only while kernel.bpf_stats_enabled=1).", ("program",)),
    FamilySpec(PREFIX + "bpf_map_entries", "gauge", "Entries in each BPF map.", ("map",)),
    FamilySpec(PREFIX + "bpf_map_capacity_entries", "gauge", "Maximum entries of each BPF map.", ("map",)),
    FamilySpec(PREFIX + "bpf_map_update_failures", "counter",
               "Map updates the kernel refused (full map): events not counted.", ("map",)),
    FamilySpec(PREFIX + "lost_events", "counter",
               "Events not accounted (full maps, large folios beyond the loop bound)."),
    FamilySpec(PREFIX + "owner_overflow_bytes", "gauge",
               "Resident bytes whose chunk had too many owners; attributed to cgroup 0."),
    FamilySpec(PREFIX + "unresolved_cgroups", "gauge", "Cgroup ids that could not be named."),
    FamilySpec(PREFIX + "unresolved_mounts", "gauge", "Devices seen in the kernel that match no mount."),
    FamilySpec(PREFIX + "exporter_refresh_duration_seconds", "gauge",
               "Duration of the last Model refresh (reading maps, resolving, aggregating)."),
    FamilySpec(PREFIX + "exporter_last_refresh_timestamp_seconds", "gauge",
               "Unix time of the last successful refresh."),
    FamilySpec(PREFIX + "exporter_refreshes", "counter", "Successful Model refreshes."),
    FamilySpec(PREFIX + "exporter_refresh_failures", "counter", "Failed Model refreshes."),
    FamilySpec(PREFIX + "exporter_scrape_duration_seconds", "gauge",
               "Time the last encoding of /metrics took (once per refresh and format; "
               "other scrapes of the same Model are served from a cache)."),
    FamilySpec(PREFIX + "exporter_containers_aggregated", "gauge",
               'Cgroups folded into the id="(other)" series because of --max-containers.'),
)
SPEC = {f.name[len(PREFIX):]: f for f in FAMILIES}

# Model counter field -> family key, in the order MonotonicCounters stores them
CONTAINER_COUNTERS = (("inserted_bytes", "container_inserted_bytes"),
                      ("evicted_bytes", "container_evicted_bytes"),
                      ("readahead_bytes", "container_readahead_bytes"),
                      ("read_folio_count", "container_read_folio_misses"))
CONTAINER_GAUGES = (("resident_bytes", "container_resident_bytes"),
                    ("duplicate_bytes", "container_duplicate_bytes"),
                    ("shared_bytes", "container_shared_bytes"),
                    ("fair_bytes", "container_fair_share_bytes"),
                    ("files_count", "container_resident_files"))


MOUNT_GAUGES = (("mount_resident_bytes", "resident_bytes"),
                ("mount_duplicate_bytes", "duplicate_bytes"),
                ("mount_backing_resident_bytes", "backing_resident_bytes"),
                ("mount_containers", "containers_count"))
MOUNT_INFO_LABELS = SPEC["mount"].labels
_MOUNT_VALUES = attrgetter(*(attr for _, attr in MOUNT_GAUGES))
_COUNTER_VALUES = attrgetter(*(attr for attr, _ in CONTAINER_COUNTERS))
_GAUGE_VALUES = attrgetter(*(attr for attr, _ in CONTAINER_GAUGES))


def _family(key: str, labels: Iterable[str] | None = None) -> Metric:
    spec = SPEC[key]
    labels = list(spec.labels if labels is None else labels)
    if spec.kind == "counter":
        return CounterMetricFamily(spec.name, spec.help, labels=labels)
    if spec.kind == "info":
        # InfoMetricFamily takes the label names from each sample's dict
        return InfoMetricFamily(spec.name, spec.help)
    return GaugeMetricFamily(spec.name, spec.help, labels=labels)


# ---------------------------------------------------------------- counters
class MonotonicCounters:
    """Exported counters that never go backwards.

    The Model's counters are per cgroup id and "over the run"; the exported
    series are per label set.  A label set can be fed by several cgroup ids
    over time (a path re-created, the "?"/"(other)" sums) and a cgroup id can
    move between label sets (id reuse, crossing the container cap).  So each
    series accumulates the *growth* of its sources: growth = raw - last raw of
    that source id; a source whose raw value went down (its kernel counters
    were reset) counts its whole raw value as growth.  State for sources and
    series that vanished is kept (bounded, oldest dropped first) so a series
    that comes back continues where it stopped.
    """

    def __init__(self, width: int, keep: int = 100_000):
        self.width = width
        self.keep = keep
        self._sources: OrderedDict[object, tuple[object, tuple[int, ...]]] = OrderedDict()
        self._totals: OrderedDict[object, list[int]] = OrderedDict()

    def add(self, series, source, raw: tuple[int, ...]) -> None:
        prev = self._sources.pop(source, None)
        last = prev[1] if prev is not None else (0,) * self.width
        total = self._totals.pop(series, None) or [0] * self.width
        for i, value in enumerate(raw):
            growth = value - last[i]
            total[i] += value if growth < 0 else growth
        self._sources[source] = (series, tuple(raw))
        self._totals[series] = total          # re-insert: most recently used last
        self._trim()

    def value(self, series) -> list[int]:
        return list(self._totals.get(series) or [0] * self.width)

    def _trim(self) -> None:
        while len(self._sources) > self.keep:
            self._sources.popitem(last=False)
        while len(self._totals) > self.keep:
            self._totals.popitem(last=False)


# ---------------------------------------------------------------- names
class NoNames:
    """Pod and namespace names are not in the Model (cgroups give only the pod
    UID and the container id): without a lookup the labels stay empty."""

    def refresh(self) -> None:
        pass

    def lookup(self, container: Container) -> tuple[str, str, str]:
        return "", "", ""


@dataclass
class ExporterStatus:
    """What the refresh loop knows about itself, published with each Model."""
    version: str = ""
    refresh_duration_seconds: float = 0.0
    last_refresh_timestamp: float = 0.0
    refreshes: int = 0
    refresh_failures: int = 0


@dataclass
class _Row:
    labels: tuple[str, str, str, str]
    gauges: list[int] = field(default_factory=lambda: [0] * len(CONTAINER_GAUGES))


class FamilyBuilder:
    """Model -> list of metric families; keeps the counter state between Models."""

    def __init__(self, names=None, max_containers: int = DEFAULT_MAX_CONTAINERS,
                 idle_refreshes: int = IDLE_REFRESHES):
        self.names = names or NoNames()
        self.max_containers = max_containers
        self.idle_refreshes = idle_refreshes
        self._idle: dict[int, tuple[tuple[int, ...], int]] = {}   # cgroup id -> (counters, idle builds)
        self.container_counters = MonotonicCounters(len(CONTAINER_COUNTERS))
        self.scalar_counters = MonotonicCounters(1, keep=10_000)
        # names -> (label values, info labels): _labels
        self._label_cache: dict[tuple, tuple[tuple[str, str, str, str], dict[str, str]]] = {}
        # label values -> their Labels, the same object from one build to the
        # next (the encoder finds a series' line by it): _series_labels
        self._series: dict[tuple, Labels] = {}

    # -- helpers
    def _scalar(self, key: str, value: int) -> int:
        self.scalar_counters.add(key, key, (int(value),))
        return self.scalar_counters.value(key)[0]

    def _container_rows(self, model: Model) -> tuple[list[_Row], list[dict[str, str]], int]:
        ranked = sorted(model.containers, key=lambda c: (-c.resident_bytes, c.cgroup, c.cgroup_id))
        idle_before, self._idle = self._idle, {}
        rows: dict[tuple, _Row] = {}
        infos: list[dict[str, str]] = []
        aggregated = 0
        named = 0
        for c in ranked:
            counters = tuple(map(int, _COUNTER_VALUES(c)))
            gauges = _GAUGE_VALUES(c)
            last, idle = idle_before.get(c.cgroup_id, (None, 0))
            idle = idle + 1 if counters == last else 0
            self._idle[c.cgroup_id] = (counters, idle)
            if idle >= self.idle_refreshes and not any(gauges):
                # nothing resident and no I/O for a while (e.g. a removed cgroup the
                # Model still names): no series; its counter state is kept
                self.container_counters.add(("idle",), c.cgroup_id, counters)
                continue
            if c.cgroup == UNRESOLVED_ID or not c.cgroup:
                key = ("", "", "", UNRESOLVED_ID)
            elif named >= self.max_containers:
                key = ("", "", "", OTHER_ID)
                aggregated += 1
            else:
                named += 1
                namespace, pod, container = (
                    (c.pod_namespace, c.pod_name, c.container_name) if c.pod_name
                    else self.names.lookup(c))
                key, info = self._labels(c, namespace, pod, container)
                infos.append(info)
            row = rows.get(key)
            if row is None:
                rows[key] = _Row(key, list(map(int, gauges)))
            else:
                row.gauges = [a + int(b) for a, b in zip(row.gauges, gauges)]
            self.container_counters.add(key, c.cgroup_id, counters)
        return list(rows.values()), infos, aggregated

    def _labels(self, c: Container, namespace: str, pod: str, container: str
                ) -> tuple[tuple[str, str, str, str], dict[str, str]]:
        """A named container's label values and info labels, made once per
        distinct set of names (kept between Models: display() of ten names
        per container and refresh was a fifth of building the families)."""
        raw = (namespace, pod, container, c.cgroup, c.runtime, c.container_id, c.pod_uid,
               c.image, c.namespace)
        hit = self._label_cache.get(raw)
        if hit is None:
            if len(self._label_cache) >= LABEL_CACHE_MAX:
                self._label_cache = {}      # started anew: containers come and go
            # label values are printable: control and undecodable bytes escaped
            key = (display(namespace), display(pod), display(container), display(c.cgroup))
            hit = self._label_cache[raw] = (key, Labels(
                zip(CONTAINER_LABELS, key), runtime=display(c.runtime),
                container_id=display(c.container_id), pod_uid=display(c.pod_uid),
                image=display(c.image), runtime_namespace=display(c.namespace)))
        return hit

    def _series_labels(self, names: tuple[str, ...], values: tuple[str, ...]) -> Labels:
        """The Labels of one series, kept between builds (bounded as the
        label cache: started anew past LABEL_CACHE_MAX)."""
        key = (names, values)
        hit = self._series.get(key)
        if hit is None:
            if len(self._series) >= LABEL_CACHE_MAX:
                self._series = {}
            hit = self._series[key] = Labels(zip(names, values))
        return hit

    # -- the one entry point
    def build(self, model: Model, status: ExporterStatus | None = None) -> list[Metric]:
        status = status or ExporterStatus()
        self.names.refresh()
        events = model.tier != TIER_SNAPSHOT    # the snapshot tier sees no events
        out, aggregated = self._container_families(model, events)
        out += self._mount_families(model)
        out += self._image_families(model)
        out += self._node_families(model, events)
        out += self._advice_families(model)
        out += self._health_families(model, status, events, aggregated)
        return out

    def _container_families(self, model: Model, events: bool) -> tuple[list[Metric], int]:
        """Per container: info, gauges, counters (live tiers); and how many
        containers went into the (other) series."""
        out: list[Metric] = []
        rows, infos, aggregated = self._container_rows(model)
        info = _family("container")
        out.append(Columns(info, info.name + "_info", infos, [1] * len(infos)))
        # one kept Labels per row for all its samples; a family is two columns
        # (Columns: no Sample objects; the encoder keeps each series' line)
        labels = [self._series_labels(CONTAINER_LABELS, row.labels) for row in rows]
        gauges = list(zip(*[row.gauges for row in rows])) or [()] * len(CONTAINER_GAUGES)
        for (_, key), values in zip(CONTAINER_GAUGES, gauges):
            fam = _family(key)
            out.append(Columns(fam, fam.name, labels, values))
        if events:
            value = self.container_counters.value
            counts = (list(zip(*[value(row.labels) for row in rows]))
                      or [()] * len(CONTAINER_COUNTERS))
            for (_, key), values in zip(CONTAINER_COUNTERS, counts):
                fam = _family(key)
                out.append(Columns(fam, fam.name + "_total", labels, values))   # (CounterMetricFamily's)
        return out, aggregated

    def _mount_families(self, model: Model) -> list[Metric]:
        """Per mount: current ones only; a bind mount of one superblock is listed once."""
        mounts = [m for m in model.mounts if not m.gone]
        series, infos = self._series_labels, []
        labels = []
        for m in mounts:
            values = (m.dev, m.image_id, display(m.volume_name))
            infos.append(series(MOUNT_INFO_LABELS, (
                *values, m.backing, _bool(m.inode_share), _bool(m.directio),
                _bool(m.ishare_xattrs), _bool(m.compressed), m.layer_digest, m.snapshot_id)))
            labels.append(series(MOUNT_LABELS, values))
        minfo = _family("mount")
        out: list[Metric] = [Columns(minfo, minfo.name + "_info", infos, [1] * len(infos))]
        columns = list(zip(*map(_MOUNT_VALUES, mounts))) or [()] * len(MOUNT_GAUGES)
        for (key, _), values in zip(MOUNT_GAUGES, columns):
            fam = _family(key)
            out.append(Columns(fam, fam.name, labels, values))
        return out

    @staticmethod
    def _image_families(model: Model) -> list[Metric]:
        """Per image and per layer: one series per image name / layer digest,
        never per file."""
        out: list[Metric] = []
        mounts = [m for m in model.mounts if not m.gone]
        # images and layers: one series per image name / layer digest, never per file
        ifams = {k: _family(k) for k in ("image_resident_bytes", "image_unique_bytes",
                                         "image_duplicate_bytes", "image_potential_savings_bytes",
                                         "image_containers")}
        for im in model.images:
            name = [display(im.name)]
            ifams["image_resident_bytes"].add_metric(name, im.resident_bytes)
            ifams["image_unique_bytes"].add_metric(name, im.unique_bytes)
            ifams["image_duplicate_bytes"].add_metric(name, im.duplicate_bytes)
            ifams["image_potential_savings_bytes"].add_metric(name, im.potential_savings_bytes)
            ifams["image_containers"].add_metric(name, len(im.containers))
        out.extend(ifams.values())
        lfams = {k: _family(k) for k in ("layer_resident_bytes", "layer_duplicate_bytes",
                                         "layer_images")}
        layers: dict[str, list] = {}
        for m in mounts:
            if m.layer_digest:
                # one layer unpacked twice (e.g. two containerd namespaces): summed
                acc = layers.setdefault(m.layer_digest, [0, 0, set()])
                acc[0] += m.resident_bytes
                acc[1] += m.duplicate_bytes
                acc[2].update(m.images)
        for digest, (res, dup, names) in layers.items():
            lfams["layer_resident_bytes"].add_metric([digest], res)
            lfams["layer_duplicate_bytes"].add_metric([digest], dup)
            lfams["layer_images"].add_metric([digest], len(names))
        out.extend(lfams.values())
        return out

    @staticmethod
    def _advice_families(model: Model) -> list[Metric]:
        """`erofs-top advise` per action; bounded: one inode_share series, one
        rebuild series per image."""
        from ..advise import advise
        fam = _family("advice_savings_bytes")
        for a in advise(model):
            if a.kind == "rebuild":     # one action for all of them: a series per image
                for image_id, part in a.image_savings_bytes.items():
                    fam.add_metric([a.kind, display(image_id)], part)
            else:
                fam.add_metric([a.kind, ""], a.saves_bytes)
        return [fam]

    def _node_families(self, model: Model, events: bool) -> list[Metric]:
        """Node totals."""
        t = model.totals
        out = [_gauge(key, value) for key, value in (
            ("node_resident_bytes", t.resident_bytes),
            ("node_duplicate_bytes", t.duplicate_bytes),
            ("node_redundant_bytes", t.redundant_bytes),
            ("node_potential_savings_bytes", t.potential_savings_bytes),
            ("node_potential_savings_file_bytes", t.potential_savings_file_bytes),
            ("node_potential_savings_image_cache_bytes", t.potential_savings_image_cache_bytes),
            ("node_potential_savings_compressed_cache_bytes",
             t.potential_savings_compressed_cache_bytes),
            ("node_potential_savings_now_bytes", t.potential_savings_now_bytes),
            ("node_potential_savings_domains_bytes", t.potential_savings_domains_bytes),
            ("node_potential_savings_rebuild_bytes", t.potential_savings_rebuild_bytes),
            ("node_shared_bytes", t.shared_bytes),
            ("node_sharing_saved_bytes", t.sharing_saved_bytes),
            ("node_sharing_saved_file_bytes", t.sharing_saved_file_bytes),
            ("node_sharing_saved_image_cache_bytes", t.sharing_saved_image_cache_bytes),
            ("node_sharing_saved_compressed_cache_bytes", t.sharing_saved_compressed_cache_bytes),
            ("node_backing_resident_bytes", t.backing_resident_bytes),
            ("node_page_cache_bytes", t.page_cache_bytes))]
        if events:
            for key, value in (("node_inserted_bytes", t.inserted_bytes),
                               ("node_evicted_bytes", t.evicted_bytes)):
                out.append(_counter(key, self._scalar(key, value)))
        return out

    def _health_families(self, model: Model, status: ExporterStatus, events: bool,
                         aggregated: int) -> list[Metric]:
        """Build info, BPF programs and maps, losses, resolution and the exporter's own state."""
        h = model.health
        build = _family("build")
        build.add_metric([], {"version": status.version, "kernel": model.kernel, "tier": model.tier})
        out = [build, _gauge("probes_attached", 1 if h.probes_attached else 0)]
        # all-zero run counts: kernel.bpf_stats_enabled is off (or nothing ran): no series
        stats_on = any(h.bpf_run_count.values()) or any(h.bpf_run_time_ns.values())
        if h.bpf_run_time_ns and stats_on:
            fam = _family("bpf_program_run_seconds")
            for prog, ns in sorted(h.bpf_run_time_ns.items()):
                fam.add_metric([prog], self._scalar(("run_ns", prog), ns) / 1e9)
            out.append(fam)
        if h.bpf_run_count and stats_on:
            fam = _family("bpf_program_runs")
            for prog, n in sorted(h.bpf_run_count.items()):
                fam.add_metric([prog], self._scalar(("runs", prog), n))
            out.append(fam)
        if h.maps:
            fams = [_family(k) for k in ("bpf_map_entries", "bpf_map_capacity_entries",
                                         "bpf_map_update_failures")]
            for mu in sorted(h.maps, key=lambda m: m.name):
                fams[0].add_metric([mu.name], mu.entries)
                fams[1].add_metric([mu.name], mu.capacity)
                fams[2].add_metric([mu.name], self._scalar(("upd", mu.name), mu.update_failures))
            out.extend(fams)
        if events:
            out.append(_counter("lost_events", self._scalar("lost_events", h.lost_events)))
        out.append(_gauge("owner_overflow_bytes", h.owner_overflow_pages * model.page_size))
        out.append(_gauge("unresolved_cgroups", h.unresolved_cgroups))
        out.append(_gauge("unresolved_mounts", h.unresolved_mounts))
        out.append(_gauge("exporter_refresh_duration_seconds", status.refresh_duration_seconds))
        out.append(_gauge("exporter_last_refresh_timestamp_seconds", status.last_refresh_timestamp))
        out.append(_counter("exporter_refreshes", status.refreshes))
        out.append(_counter("exporter_refresh_failures", status.refresh_failures))
        out.append(_gauge("exporter_containers_aggregated", aggregated))
        return out


def _bool(v: bool) -> str:
    return "true" if v else "false"


def _gauge(key: str, value: float) -> Metric:
    fam = _family(key)
    fam.add_metric([], value)
    return fam


def _counter(key: str, value: float) -> Metric:
    fam = _family(key)
    fam.add_metric([], value)
    return fam


# ---------------------------------------------------------------- collector
class ModelMetrics:
    """prometheus-client custom collector: yields the families built from the
    latest Model (swapped in atomically by the refresh thread) plus the
    duration of the previous encoding.  A scrape never touches BPF."""

    def __init__(self):
        self._families: list[Metric] = []
        self._lock = threading.Lock()
        self.last_scrape_seconds = 0.0

    def publish(self, families: list[Metric]) -> None:
        with self._lock:
            self._families = families

    def describe(self):
        return []           # no collect() at registration time

    def collect(self):
        with self._lock:
            families = self._families
        yield from families
        yield _gauge("exporter_scrape_duration_seconds", self.last_scrape_seconds)

    def scrape_done(self, started: float) -> None:
        self.last_scrape_seconds = time.perf_counter() - started
