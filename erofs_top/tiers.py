"""``open_collector()``: the best capability tier this host allows, with this
host's resolvers.

Its own module so that the tiers' modules (source.py, kernel/probes.py) do not
import each other: this one imports them, nothing imports it back.
"""
from __future__ import annotations

from .collector import Collector
from .errors import CollectorError, fail

DEFAULT_FINGERPRINT_XATTR = "trusted.erofs.fingerprint"


def live_resolvers(*, cgroup_root: str | None = None,
                   fingerprint_xattr: str = DEFAULT_FINGERPRINT_XATTR) -> dict:
    """This host's resolvers, as Collector keywords: mountinfo, the cgroup tree,
    the images' content, runtime names (containerd, kubelet) and the image
    files' own cache."""
    from .image_cache import ImageCacheReader
    from .resolve.cgroups import SysCgroups
    from .resolve.content import ImageContent
    from .resolve.mounts import SysMounts
    from .resolve.names import RuntimeNames
    names = RuntimeNames()
    return {"mounts": SysMounts(), "names": names,
            "cgroups": SysCgroups(root=cgroup_root, names=names),
            "content": ImageContent(fingerprint_xattr=fingerprint_xattr),
            "image_cache": ImageCacheReader()}


def open_source(resolvers: dict, *, no_bpf: bool = False, **source_kw):
    """The tier's Source: snapshot with ``no_bpf``; else the full tier where
    this kernel has page-cache sharing, the tracepoint tier otherwise."""
    if no_bpf:
        from .source import SnapshotSource
        return SnapshotSource(resolvers["mounts"], resolvers["cgroups"])
    from .kernel.probes import open_probe_source   # imports bcc lazily
    return open_probe_source(resolvers["mounts"], resolvers["cgroups"], **source_kw)


def open_collector(*, no_bpf: bool = False, cgroup_root: str | None = None,
                   fingerprint_xattr: str = DEFAULT_FINGERPRINT_XATTR,
                   files_cap: int = 200, **source_kw) -> Collector:
    """The best tier this host allows; CollectorError with the reason otherwise.
    ``source_kw`` go to the probe sources (record, max_chunks, seed, sharing...)."""
    resolvers = live_resolvers(cgroup_root=cgroup_root, fingerprint_xattr=fingerprint_xattr)
    source = open_source(resolvers, no_bpf=no_bpf, **source_kw)
    return Collector(source, files_cap=files_cap, **resolvers)


def open_or_fail(no_bpf: bool = False, **kw) -> Collector:
    """open_collector() for a command: when no tier starts, one line and exit 1."""
    try:
        return open_collector(no_bpf=no_bpf, **kw)
    except CollectorError as e:
        fail(str(e))
    except PermissionError as e:
        fail(f"permission denied: {e.filename or e} (run as root, or --no-bpf)")
