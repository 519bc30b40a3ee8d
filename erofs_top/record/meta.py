"""JSON forms of what a recording stores besides events: Readings, mounts, files.

Pure.  Content identities are hex digests only: a fingerprint that is not a
plain hex digest (for example a raw xattr blob, which carries the secret
domain_id) is dropped here, so it can never reach a file.
"""
from __future__ import annotations

import re
from dataclasses import asdict, fields
from typing import Any

from ..readings import FileIO, PageChunk, Readings, SharedInode
from ..resolve.base import FileInfo, ImageInfo, MountInfo

# plain hex, or "xattr:<hex>" (resolve/content.py: the sha256 OF a non-standard
# fingerprint value, never the value)
_HEX_DIGEST = re.compile(r"^(xattr:)?[0-9a-f]{16,128}$")


def safe_digest(value: str | None) -> str | None:
    """A lowercase hex digest, or None for anything else (never store raw blobs)."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower()
    return v if _HEX_DIGEST.match(v) else None


# ---------------------------------------------------------------- Readings
def readings_to_json(r: Readings) -> dict[str, Any]:
    return {
        "taken_at": r.taken_at,
        "page_size": r.page_size,
        # [dev, ino, chunk, seeded_mask, [[cgroup_id, mask], ...]]
        "chunks": [[c.dev, c.ino, c.chunk, c.seeded_mask,
                    [[cg, m] for cg, m in c.owners.items() if m]] for c in r.chunks],
        # rows in the order of io_fields (FileIO's fields, so new counters travel too)
        "io_fields": list(_IO_FIELDS),
        "io": [[getattr(x, f) for f in _IO_FIELDS] for x in r.io],
        "backing_pages": [[d, i, n] for (d, i), n in r.backing_pages.items()],
        "shared": shared_to_json(r.shared),
        "maps": {k: list(v) for k, v in r.maps.items()},
        "page_cache_bytes": getattr(r, "page_cache_bytes", 0),
        "lost_events": r.lost_events,
        "owner_overflow_pages": r.owner_overflow_pages,
        "probes_attached": r.probes_attached,
        "bpf_run_time_ns": dict(r.bpf_run_time_ns),
        "bpf_run_count": dict(r.bpf_run_count),
        "warnings": list(r.warnings),
    }


_IO_FIELDS = tuple(f.name for f in fields(FileIO))


def _io_from_json(d: dict[str, Any]) -> list[FileIO]:
    names = d.get("io_fields") or ["dev", "ino", "cgroup_id", "inserted_pages", "evicted_pages",
                                   "readahead_pages", "read_folio_count"]
    known = set(_IO_FIELDS)
    out = []
    for row in d.get("io", []):
        kw = {n: int(v) for n, v in zip(names, row) if n in known}   # newer fields: dropped
        out.append(FileIO(**kw))
    return out


def readings_from_json(d: dict[str, Any]) -> Readings:
    return Readings(
        taken_at=float(d.get("taken_at", 0.0)),
        page_size=int(d.get("page_size", 4096)),
        chunks=[PageChunk(int(dev), int(ino), int(ch), {int(cg): int(m) for cg, m in owners},
                          int(seeded)) for dev, ino, ch, seeded, owners in d.get("chunks", [])],
        io=_io_from_json(d),
        backing_pages={(int(a), int(b)): int(n) for a, b, n in d.get("backing_pages", [])},
        shared=shared_from_json(d.get("shared", [])),
        maps={k: tuple(v) for k, v in d.get("maps", {}).items()},
        page_cache_bytes=int(d.get("page_cache_bytes", 0)),
        lost_events=int(d.get("lost_events", 0)),
        owner_overflow_pages=int(d.get("owner_overflow_pages", 0)),
        probes_attached=bool(d.get("probes_attached", False)),
        bpf_run_time_ns=dict(d.get("bpf_run_time_ns", {})),
        bpf_run_count=dict(d.get("bpf_run_count", {})),
        warnings=list(d.get("warnings", [])),
    )


def shared_to_json(shared: list[SharedInode]) -> list[dict[str, Any]]:
    """Shared inodes; `mapping` is the kernel's opaque id, nothing else of the kernel."""
    return [{"mapping": s.mapping, "size": s.size,
             "chunks": [[ch, [[cg, m] for cg, m in own.items() if m]]
                        for ch, own in s.chunks.items()],
             "members": sorted([d, i] for d, i in s.members),
             "users": [[cg, sorted([d, i] for d, i in mem)] for cg, mem in s.users.items()]}
            for s in shared]


def shared_from_json(items: list[dict[str, Any]]) -> list[SharedInode]:
    return [SharedInode(mapping=int(s["mapping"]), size=int(s.get("size", 0)),
                        chunks={int(ch): {int(cg): int(m) for cg, m in own}
                                for ch, own in s.get("chunks", [])},
                        members={(int(a), int(b)) for a, b in s.get("members", [])},
                        users={int(cg): {(int(a), int(b)) for a, b in mem}
                               for cg, mem in s.get("users", [])})
            for s in items]


# ---------------------------------------------------------------- mounts
def mount_to_json(m: MountInfo) -> dict[str, Any]:
    d = asdict(m)
    d["options"] = sorted(m.options)
    return d


def mount_from_json(d: dict[str, Any]) -> MountInfo:
    d = dict(d)
    img = d.pop("image", None)
    d["options"] = frozenset(d.get("options", ()))
    known = set(MountInfo.__dataclass_fields__)
    m = MountInfo(**{k: v for k, v in d.items() if k in known})
    if img:
        ik = set(ImageInfo.__dataclass_fields__)
        m.image = ImageInfo(**{k: v for k, v in img.items() if k in ik})
    return m


# ---------------------------------------------------------------- files
def file_to_json(dev: int, ino: int, info: FileInfo | None, digest: str | None = None,
                 fingerprint: str | None = None, build_id: str | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {"dev": dev, "ino": ino}
    if info is not None:
        d.update(path=info.path, size=info.size, regular=info.regular,
                 aops=info.aops)
    dg, fp = safe_digest(digest), safe_digest(fingerprint)
    if dg:
        d["digest"] = dg
    if fp:
        d["fingerprint"] = fp
    bid = safe_digest(build_id)
    if bid:
        d["build_id"] = bid
    return d


def file_from_json(d: dict[str, Any]):
    """-> (dev, ino, FileInfo or None, digest, fingerprint, build_id)"""
    dev, ino = int(d["dev"]), int(d["ino"])
    info = None
    if "path" in d:
        info = FileInfo(ino=ino, path=str(d.get("path", "")), size=int(d.get("size", 0)),
                        regular=bool(d.get("regular", True)), aops=str(d.get("aops", "")))
    return (dev, ino, info, safe_digest(d.get("digest")), safe_digest(d.get("fingerprint")),
            safe_digest(d.get("build_id")))
