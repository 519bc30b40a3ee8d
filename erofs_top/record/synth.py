"""Synthetic recordings: a scripted node, written through the real writer.

For unit tests, the benchmark and trying the offline faces without root.  The
events are what the probes would emit for the script; nothing here reads the
kernel.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

from ..readings import EventKind, PageChunk, PageEvent, Readings, kdev
from ..resolve.base import AOPS_BLOCK, AOPS_FILEIO, FileInfo, ImageInfo, MountInfo
from . import format as fmt
from .meta import file_to_json, mount_to_json, readings_to_json, shared_to_json
from .writer import RecordingWriter

MONO0 = 1_000_000_000_000     # an arbitrary CLOCK_MONOTONIC start
SEC = 1_000_000_000
PAGE = 4096

DEV_A = kdev(0, 41)           # file-backed mount of image v1
DEV_B = kdev(7, 3)            # loop mount of image v2
HOST_DEV = kdev(254, 1)       # host fs holding the image files
CG_A = 1001
CG_B = 1002
CG_ROOT = 1
LIB_INO = 40                  # same content in both images
DATA_INO = 41                 # different content
LIB_PAGES = 256
DATA_PAGES = 128


def _image(uuid: str) -> ImageInfo:
    return ImageInfo(uuid=uuid, volume_name="", feature_compat=0, feature_incompat=0,
                     block_size=4096, image_id=f"{uuid}:deadbeef", ishare_xattrs=False,
                     compressed=False)


def demo_mounts() -> list[MountInfo]:
    return [
        MountInfo(DEV_A, "0:41", "/run/ctr-a/rootfs", "/var/lib/img/app-v1.erofs", "file",
                  backing_file="/var/lib/img/app-v1.erofs", backing_dev=HOST_DEV, backing_ino=7,
                  options=frozenset({"ro"}), image=_image("11111111-0000-0000-0000-000000000001")),
        MountInfo(DEV_B, "7:3", "/run/ctr-b/rootfs", "/dev/loop3", "loop",
                  backing_file="/var/lib/img/app-v2.erofs", backing_dev=HOST_DEV, backing_ino=8,
                  options=frozenset({"ro"}), image=_image("22222222-0000-0000-0000-000000000002")),
    ]


def demo_files() -> list[dict]:
    lib = "ab" * 32
    return [
        file_to_json(DEV_A, LIB_INO, FileInfo(LIB_INO, "/run/ctr-a/rootfs/usr/lib/libapp.so",
                                              LIB_PAGES * PAGE, True, AOPS_FILEIO), lib),
        file_to_json(DEV_B, LIB_INO, FileInfo(LIB_INO, "/run/ctr-b/rootfs/usr/lib/libapp.so",
                                              LIB_PAGES * PAGE, True, AOPS_BLOCK), lib),
        file_to_json(DEV_A, DATA_INO, FileInfo(DATA_INO, "/run/ctr-a/rootfs/data.bin",
                                               DATA_PAGES * PAGE, True, AOPS_FILEIO), "c1" * 32),
        file_to_json(DEV_B, DATA_INO, FileInfo(DATA_INO, "/run/ctr-b/rootfs/data.bin",
                                               DATA_PAGES * PAGE, True, AOPS_BLOCK), "c2" * 32),
    ]


@dataclass
class Script:
    """Events and ticks of a synthetic recording (times in seconds from the start)."""
    events: list[PageEvent] = field(default_factory=list)
    ticks: list[tuple[float, int]] = field(default_factory=list)   # (t_s, lost_events_total)
    seed_chunks: list[PageChunk] = field(default_factory=list)
    duration_s: float = 0.0

    def ev(self, t_s: float, kind: int, dev: int, ino: int, index: int, nr: int, cg: int,
           pid: int = 100, mapping: int = 0) -> None:
        e = PageEvent(MONO0 + int(t_s * SEC), kind, dev, ino, index, nr, cg, pid)
        if mapping:
            e.mapping = mapping     # shared-inode kinds (>= 16) carry the mapping id
        self.events.append(e)
        self.duration_s = max(self.duration_s, t_s)

    def read_file(self, t_s: float, dev: int, ino: int, pages: int, cg: int,
                  folio_pages: int = 4, spread_s: float = 0.5) -> None:
        """Insert a whole file in folios of folio_pages, spread over spread_s."""
        n = max(1, pages // folio_pages)
        for i in range(n):
            t = t_s + spread_s * i / n
            self.ev(t, EventKind.READAHEAD, dev, ino, i * folio_pages, folio_pages, cg)
            self.ev(t, EventKind.ADD, dev, ino, i * folio_pages, folio_pages, cg)


def demo_script() -> Script:
    """ctr-a reads libapp.so at 1 s and data.bin at 2 s, ctr-b the same files of
    image v2 at 3 s (the fastest window), then part of ctr-a's data.bin is evicted at 5 s; 7 events
    lost at 3 s; the recording lasts 6 s.  Page 0..7 of ctr-a's lib were already
    resident (seeded) before the recording."""
    s = Script()
    s.seed_chunks.append(PageChunk(DEV_A, LIB_INO, 0, {CG_A: 0xFF}, 0xFF))
    # (times off the whole seconds, where the report takes its samples)
    s.read_file(1.05, DEV_A, LIB_INO, LIB_PAGES, CG_A)
    s.read_file(2.05, DEV_A, DATA_INO, DATA_PAGES, CG_A)
    s.read_file(3.05, DEV_B, LIB_INO, LIB_PAGES, CG_B, folio_pages=16)
    s.read_file(3.15, DEV_B, DATA_INO, DATA_PAGES, CG_B, folio_pages=16)
    for i in range(0, 64, 4):        # reclaim: 64 pages of ctr-a's data.bin, by the root cgroup
        s.ev(5.05 + i / 1000, EventKind.DELETE, DEV_A, DATA_INO, i, 4, CG_ROOT)
    for t in range(1, 7):
        s.ticks.append((float(t), 0 if t < 3 else 7))
    s.ev(5.95, EventKind.READ_FOLIO, DEV_A, DATA_INO, 200, 1, CG_A)
    s.duration_s = 6.0
    return s


def write(path: str, script: Script | None = None, *, codec: int | None = None,
          max_size_bytes: int | None = None, end: bool = True,
          mounts: list[MountInfo] | None = None, files: list[dict] | None = None,
          cgroups: dict[int, str] | None = None, events_per_block: int | None = None,
          models: list[tuple[float, dict]] | None = None,
          shared: list[tuple[float, list]] | None = None,
          backing: list[tuple[float, dict]] | None = None) -> str:
    """Write a recording of `script` (default demo_script()) to path."""
    s = script or demo_script()
    w = RecordingWriter(path, codec=codec, max_size_bytes=max_size_bytes)
    cgs = cgroups if cgroups is not None else {CG_A: "/kubepods/ctr-a", CG_B: "/kubepods/ctr-b",
                                               CG_ROOT: "/"}
    w.write_json(fmt.BLOCK_META, {
        "erofs_top": "synthetic", "started_at": time.time() - s.duration_s,
        "mono_start_ns": MONO0, "hostname": "synthetic", "kernel": "6.18.0-synthetic",
        "tier": "tracepoint", "page_size": PAGE, "files_cap": 200, "command": [],
        "max_size_bytes": max_size_bytes,
        "mounts": [mount_to_json(m) for m in (mounts if mounts is not None else demo_mounts())],
        "cgroups": {str(k): v for k, v in cgs.items()},
        "files": files if files is not None else demo_files()})
    seed = Readings(taken_at=0.0, page_size=PAGE, chunks=list(s.seed_chunks), probes_attached=True,
                    backing_pages={(HOST_DEV, 7): 0, (HOST_DEV, 8): 0})
    w.write_json(fmt.BLOCK_SEED, {"ts_ns": MONO0, "readings": readings_to_json(seed)})
    ticks = sorted(s.ticks)
    evs = sorted(s.events, key=lambda e: e.ts_ns)
    per = events_per_block or 1 << 30
    ti = 0
    batch: list[PageEvent] = []
    total = 0

    def flush():
        nonlocal batch
        if batch:
            w.add_events(batch)
            w.flush_events()
            batch = []

    for e in evs:
        while ti < len(ticks) and MONO0 + int(ticks[ti][0] * SEC) < e.ts_ns:
            flush()
            w.write_json(fmt.BLOCK_TICK, {"ts_ns": MONO0 + int(ticks[ti][0] * SEC),
                                          "events_total": total, "lost_events_total": ticks[ti][1]})
            ti += 1
        batch.append(e)
        total += 1
        if len(batch) >= per:
            flush()
    flush()
    for t, lost in ticks[ti:]:
        w.write_json(fmt.BLOCK_TICK, {"ts_ns": MONO0 + int(t * SEC), "events_total": total,
                                      "lost_events_total": lost})
    for t, inodes in shared or []:     # shared-inode snapshots (list of SharedInode)
        w.write_json(fmt.BLOCK_STATE, {"ts_ns": MONO0 + int(t * SEC),
                                       "shared": shared_to_json(inodes)})
    for t, pages in backing or []:     # image-file cache snapshots {(dev, ino): pages}
        w.write_json(fmt.BLOCK_STATE, {"ts_ns": MONO0 + int(t * SEC),
                                       "backing_pages": [[d, i, n] for (d, i), n in pages.items()]})
    for t, model in models or []:      # live Models (Model.to_dict()) at t seconds
        w.write_json(fmt.BLOCK_MODEL, {"ts_ns": MONO0 + int(t * SEC), "model": model})
    if end:
        lost = ticks[-1][1] if ticks else 0
        w.close({"ts_ns": MONO0 + int(s.duration_s * SEC), "reason": "duration",
                 "events_total": total, "lost_events_total": lost})
    else:
        w.flush_events()
        w.abort()
    return path
