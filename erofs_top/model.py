"""The Model: what every face (JSON, TUI, exporter, recorder) reads.

Plain dataclasses, no logic beyond (de)serialisation.  Only erofs_top.aggregate
creates a Model from kernel readings; faces never compute attributions.
Every quantity carries its unit in its name (``*_bytes``, ``*_count``).
JSON layout: docs/json.md ("schema": 1).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .names import model_names_from_json, model_names_to_json

SCHEMA_VERSION = 1

TIER_SNAPSHOT = "snapshot"      # /proc + cachestat/mincore only, no BPF
TIER_TRACEPOINT = "tracepoint"  # BPF tracepoint programs, no kernel struct reads
TIER_FULL = "full"              # + kprobes/struct reads: page-cache sharing (Linux 7.0+)
TIERS = (TIER_SNAPSHOT, TIER_TRACEPOINT, TIER_FULL)


@dataclass
class Container:
    """One cgroup (v2) that inserted or uses EROFS page-cache pages."""
    cgroup_id: int
    cgroup: str                 # path relative to the cgroup2 root, "/acc/ctrA"; "?" if unresolved
    runtime: str = ""           # docker | containerd | cri-o | kubepods | systemd | "" (plain cgroup)
    container_id: str = ""
    pod_uid: str = ""
    resident_bytes: int = 0     # resident pages this cgroup inserted (the memcg that pays)
    duplicate_bytes: int = 0    # part of resident_bytes whose content is also resident elsewhere
    shared_bytes: int = 0       # resident bytes in shared (inode_share) inodes this cgroup uses
    fair_bytes: int = 0         # each page split equally among its user cgroups (like PSS)
    inserted_bytes: int = 0     # page-cache insertions over the run
    evicted_bytes: int = 0      # removals of pages this cgroup had inserted, over the run
    readahead_bytes: int = 0    # erofs_readahead pages over the run
    read_folio_count: int = 0   # erofs_read_folio calls (synchronous reads, misses)
    seeded_bytes: int = 0       # part of resident_bytes found resident at start (not seen inserted)
    files_count: int = 0        # files with resident pages inserted by this cgroup
    mounts: list[str] = field(default_factory=list)   # devs ("maj:min") it holds pages of
    # names from the runtime's state (containerd meta.db and bundles, kubelet dirs)
    namespace: str = ""         # containerd namespace ("default", "k8s.io")
    image: str = ""             # image name ("docker.io/library/redis:8.0")
    image_digest: str = ""      # the image's target (manifest or index) digest
    snapshot_key: str = ""      # the container's rootfs snapshot key
    pod_namespace: str = ""     # kubernetes names, where labels or kubelet dirs give them
    pod_name: str = ""
    container_name: str = ""
    # page cache this cgroup would stop paying for if sharing were on (its part
    # of totals.potential_savings_bytes: EROFS pages + image-file pages)
    potential_savings_bytes: int = 0


@dataclass(slots=True)
class MountHolder:
    """One cgroup's pages on one mount (slots: one kept per (mount, cgroup)
    pair, 123,000 at 250,000 files; 56 B, not 96)."""
    cgroup_id: int
    resident_bytes: int
    duplicate_bytes: int


@dataclass
class Mount:
    """One EROFS superblock (a mount point; bind mounts of it are listed once)."""
    dev: str                    # "maj:min" as in mountinfo
    mountpoint: str
    source: str
    backing: str                # file | loop | block
    backing_file: str = ""      # image file behind a file-backed or loop mount
    image_id: str = ""          # stable id of the image (uuid + superblock digest)
    uuid: str = ""
    volume_name: str = ""
    inode_share: bool = False   # sharing active on this mount (mountinfo shows it)
    directio: bool = False
    ishare_xattrs: bool = False  # image carries per-inode fingerprints (COMPAT 0x20)
    compressed: bool = False    # image has compressed files (any compression feature)
    resident_bytes: int = 0
    duplicate_bytes: int = 0
    backing_resident_bytes: int = 0   # pages of the image file in the host page cache
    containers_count: int = 0
    gone: bool = False          # unmounted while we were watching
    # page cache sharing would save on this mount's copies (EROFS pages + the
    # caches they read through); _now: with the images as they are
    potential_savings_bytes: int = 0
    potential_savings_now_bytes: int = 0
    # stage c: its shared inodes merging with those of other domains
    potential_savings_domains_bytes: int = 0
    # per cgroup that inserted pages of this mount, largest first
    holders: list[MountHolder] = field(default_factory=list)
    # an image layer of a container runtime (containerd's EROFS snapshotter)
    layer_digest: str = ""      # the layer blob's digest (matched by superblock UUID)
    snapshot_id: str = ""       # the snapshotter's id (.../snapshots/<id>/fs)
    images: list[str] = field(default_factory=list)   # image names that use this layer


@dataclass
class File:
    dev: str
    ino: int
    path: str                   # "" when the inode could not be named
    content_id: str             # short digest; never the raw fingerprint xattr
    size: int
    resident_bytes: int
    duplicate_bytes: int
    copies: int                 # inodes (across mounts) resident with this content
    cgroups: list[int] = field(default_factory=list)  # cgroup ids owning its pages
    shared: bool = False        # pages live in a shared (inode_share) inode


@dataclass
class Totals:
    resident_bytes: int = 0
    duplicate_bytes: int = 0
    redundant_bytes: int = 0            # (k-1) copies of content resident k >= 2 times
    # page cache inode_share would save on stock mounts (docs/sharing.md):
    potential_savings_bytes: int = 0             # = file + image + compressed cache
    potential_savings_file_bytes: int = 0        # EROFS inode pages
    potential_savings_image_cache_bytes: int = 0  # image-file pages (file-backed, loop)
    potential_savings_compressed_cache_bytes: int = 0  # the mounts' compressed-data cache
    potential_savings_now_bytes: int = 0         # stage a: images that carry fingerprints
    potential_savings_domains_bytes: int = 0     # stage c: more with one domain for all
    potential_savings_rebuild_bytes: int = 0     # stage b: more after --xattr-inode-digest
    shared_bytes: int = 0
    # page cache inode_share saves now: per page, members that touched it - 1
    sharing_saved_bytes: int = 0                 # = file + image + compressed cache
    sharing_saved_file_bytes: int = 0
    sharing_saved_image_cache_bytes: int = 0
    sharing_saved_compressed_cache_bytes: int = 0
    backing_resident_bytes: int = 0
    inserted_bytes: int = 0
    evicted_bytes: int = 0
    page_cache_bytes: int = 0           # /proc/meminfo Cached, for scale


@dataclass
class ImageLayer:
    """One layer of an image, as mounted on this node (a Mount with a layer_digest)."""
    digest: str                 # layer digest
    dev: str                    # the layer mount's "maj:min"
    snapshot_id: str = ""
    resident_bytes: int = 0     # the layer mount's resident bytes (once per node)
    duplicate_bytes: int = 0
    backing_resident_bytes: int = 0
    shared_with: list[str] = field(default_factory=list)   # other images using this layer
    potential_savings_bytes: int = 0     # the layer mount's (Mount.potential_savings_bytes)


@dataclass
class Image:
    """A container image as a stack of its mounted layers (erofs_top/imageview.py)."""
    name: str
    digest: str = ""            # target digest, from a container of this image
    layers: list[ImageLayer] = field(default_factory=list)   # bottom first
    resident_bytes: int = 0     # sum over its layers (a shared layer counts in each image)
    duplicate_bytes: int = 0
    unique_bytes: int = 0       # resident bytes in layers no other image uses
    potential_savings_bytes: int = 0     # sum over its layers
    containers: list[int] = field(default_factory=list)      # cgroup ids running it


@dataclass
class MapUsage:
    name: str
    entries: int
    capacity: int
    update_failures: int = 0


@dataclass
class Health:
    maps: list[MapUsage] = field(default_factory=list)
    update_failures: int = 0        # map updates the kernel refused (full maps): counted, never silent
    lost_events: int = 0            # events not accounted (full map, big folios beyond the loop bound)
    owner_overflow_pages: int = 0   # pages whose chunk had too many owners; attributed to cgroup 0
    unresolved_cgroups: int = 0
    unresolved_mounts: int = 0      # devs seen in the kernel that match no current mount
    seeded_bytes: int = 0           # resident at start, attributed through the snapshot
    files_total: int = 0            # files with resident pages, before the cap
    files_cap: int = 0              # how many files[] lists at most
    probes_attached: bool = False
    bpf_run_time_ns: dict[str, int] = field(default_factory=dict)   # per program, bpf_stats
    bpf_run_count: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class Model:
    tier: str
    started_at: float               # unix seconds
    ended_at: float
    page_size: int
    containers: list[Container] = field(default_factory=list)
    mounts: list[Mount] = field(default_factory=list)
    files: list[File] = field(default_factory=list)
    totals: Totals = field(default_factory=Totals)
    health: Health = field(default_factory=Health)
    kernel: str = ""
    schema: int = SCHEMA_VERSION
    images: list[Image] = field(default_factory=list)

    # --- (de)serialisation: the JSON document of docs/json.md -------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        order = ["schema", "tier", "kernel", "started_at", "ended_at", "page_size",
                 "containers", "mounts", "images", "files", "totals", "health"]
        # names are bytes: valid UTF-8 text plus *_b64 where it cannot be exact
        return model_names_to_json({k: d[k] for k in order})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Model":
        if d.get("schema") != SCHEMA_VERSION:
            raise ValueError(f"unsupported erofs-top JSON schema {d.get('schema')!r} "
                             f"(this erofs-top reads schema {SCHEMA_VERSION})")
        d = model_names_from_json(d)
        h = dict(d.get("health", {}))
        h["maps"] = [MapUsage(**m) for m in h.get("maps", [])]
        return cls(
            schema=d["schema"], tier=d["tier"], kernel=d.get("kernel", ""),
            started_at=d["started_at"], ended_at=d["ended_at"], page_size=d["page_size"],
            containers=[Container(**c) for c in d.get("containers", [])],
            mounts=[Mount(**{**m, "holders": [MountHolder(**x) for x in m.get("holders", [])]})
                    for m in d.get("mounts", [])],
            files=[File(**f) for f in d.get("files", [])],
            images=[Image(**{**i, "layers": [ImageLayer(**x) for x in i.get("layers", [])]})
                    for i in d.get("images", [])],
            totals=Totals(**d.get("totals", {})),
            health=Health(**h),
        )

    def container(self, cgroup: str) -> Container | None:
        return next((c for c in self.containers if c.cgroup == cgroup), None)
