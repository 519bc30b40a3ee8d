"""Reading a recording: validate blocks, merge metadata, iterate events.

``Recording.open(path)`` scans the whole file once: it checks every block's
CRC and decompresses it, keeps the small JSON blocks and the file offsets of
the event blocks (events are decoded again, lazily, by ``batches()``, so a
large recording never sits in memory whole).  A damaged or cut file is read up
to its last good block and ``warnings`` says where it stopped; errors that
leave nothing to read raise RecordingError (one line).  Never a traceback.
"""
from __future__ import annotations

import json
import os
import zlib
from dataclasses import dataclass, field
from typing import Any, Iterator

from . import format as fmt
from . import validate
from .format import EventBatch, RecordingError
from .meta import file_from_json, mount_from_json, readings_from_json, shared_from_json
from ..readings import EventKind, Readings, SharedInode
from ..resolve.base import FileInfo, MountInfo


@dataclass
class EventBlockRef:
    offset: int             # file offset of the block header
    count: int
    first_ts_ns: int
    last_ts_ns: int         # largest ts in the block


@dataclass
class Recording:
    path: str
    major: int
    minor: int
    codec: int
    file_size: int
    start: dict[str, Any]                   # the first META block
    seed: Readings | None = None
    seed_ts_ns: int = 0
    mounts: dict[int, MountInfo] = field(default_factory=dict)
    cgroups: dict[int, str] = field(default_factory=dict)
    files: dict[tuple[int, int], FileInfo] = field(default_factory=dict)
    digests: dict[tuple[int, int], str] = field(default_factory=dict)
    fingerprints: dict[tuple[int, int], str] = field(default_factory=dict)
    build_ids: dict[tuple[int, int], str] = field(default_factory=dict)
    event_blocks: list[EventBlockRef] = field(default_factory=list)
    ticks: list[dict[str, Any]] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)   # {"ts_ns", "model"}
    # state no event carries, as the live collector read it with each Model:
    # shared inodes (full tier) and image-file pages in the host page cache
    shared_snapshots: list[tuple[int, list[SharedInode]]] = field(default_factory=list)
    backing_snapshots: list[tuple[int, dict[tuple[int, int], int]]] = field(default_factory=list)
    shared_events_count: int = 0            # events of kinds >= 16
    backing_events_count: int = 0           # events of kinds 5 and 6
    end: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    good_bytes: int = 0                     # bytes up to the end of the last good block
    unknown_blocks: int = 0

    # ------------------------------------------------------------ derived
    @property
    def events_count(self) -> int:
        return sum(b.count for b in self.event_blocks)

    @property
    def complete(self) -> bool:
        return self.end is not None

    @property
    def mono_start_ns(self) -> int:
        return int(self.start.get("mono_start_ns", 0))

    @property
    def started_at(self) -> float:
        return float(self.start.get("started_at", 0.0))

    @property
    def end_ts_ns(self) -> int:
        """Monotonic time of the end (END block, else the last thing seen)."""
        if self.end and "ts_ns" in self.end:
            return int(self.end["ts_ns"])
        last = self.mono_start_ns
        if self.event_blocks:
            last = max(last, max(b.last_ts_ns for b in self.event_blocks))
        for t in self.ticks:
            last = max(last, int(t.get("ts_ns", 0)))
        for m in self.models:
            last = max(last, int(m.get("ts_ns", 0)))
        return last

    @property
    def duration_s(self) -> float:
        return max(0.0, (self.end_ts_ns - self.mono_start_ns) / 1e9)

    def wall(self, ts_ns: int) -> float:
        """Monotonic kernel time -> unix seconds."""
        return self.started_at + (ts_ns - self.mono_start_ns) / 1e9

    @property
    def lost_events(self) -> int:
        """Events the kernel could not hand over (ring buffer full), over the run."""
        if self.end and "lost_events_total" in self.end:
            return int(self.end["lost_events_total"])
        return max([int(t.get("lost_events_total", 0)) for t in self.ticks] or [0])

    @property
    def events_unwritten(self) -> int:
        return int(self.end.get("events_unwritten", 0)) if self.end else 0

    def losses_per_second(self) -> list[tuple[float, int]]:
        """[(seconds since start, events lost in that tick interval)] for intervals with losses."""
        out, prev = [], 0
        for t in self.ticks:
            tot = int(t.get("lost_events_total", 0))
            if tot > prev:
                out.append(((int(t["ts_ns"]) - self.mono_start_ns) / 1e9, tot - prev))
            prev = max(prev, tot)
        return out

    # ------------------------------------------------------------ events
    def batches(self) -> Iterator[EventBatch]:
        """Event blocks in file order (only the blocks that were validated by open)."""
        dec = fmt.Decompressor()
        with open(self.path, "rb") as f:
            for ref in self.event_blocks:
                f.seek(ref.offset)
                head = f.read(fmt.BLOCK_HEADER.size)
                _sync, _t, codec, _fl, stored_len, raw_len, _crc = fmt.BLOCK_HEADER.unpack(head)
                raw = dec.decompress(codec, f.read(stored_len), raw_len)
                yield EventBatch.decode(raw)

    # ------------------------------------------------------------ open
    @classmethod
    def open(cls, path: str) -> "Recording":
        try:
            f = open(path, "rb")
        except OSError as e:
            raise RecordingError(f"cannot read {path}: {e.strerror}") from None
        with f:
            try:
                size = os.fstat(f.fileno()).st_size
            except OSError as e:
                raise RecordingError(f"cannot read {path}: {e.strerror}") from None
            head = f.read(fmt.FILE_HEADER.size)
            try:
                hdr = fmt.unpack_file_header(head)
            except RecordingError as e:
                raise RecordingError(f"{path}: {e}") from None
            rec = None
            dec = fmt.Decompressor()
            offset = fmt.FILE_HEADER.size
            while True:
                problem, btype, raw, nxt = _read_block(f, offset, size, dec)
                if problem == "eof":
                    break
                if problem:
                    where = f"at byte {offset} of {size}"
                    if rec is None:
                        raise RecordingError(f"{path}: no usable data: first block {problem} ({where})")
                    rec.warnings.append(
                        f"recording damaged {where}: block {problem}; read up to the last good "
                        f"block ({_pct(offset, size)} of the file)")
                    break
                if rec is None:
                    if btype != fmt.BLOCK_META:
                        raise RecordingError(f"{path}: no usable data: first block is not metadata")
                    start = _json(raw)
                    if not isinstance(start, dict):
                        raise RecordingError(f"{path}: no usable data: metadata is not a JSON object")
                    rec = cls(path=path, major=hdr.major, minor=hdr.minor, codec=hdr.codec,
                              file_size=size, start=start)
                    try:
                        rec._merge_meta(start, first=True)
                    except (KeyError, TypeError, ValueError, AttributeError,
                            OverflowError) as e:
                        raise RecordingError(f"{path}: meta block at byte {offset} is "
                                             f"malformed ({_one_line(e)})") from None
                else:
                    try:
                        rec._take(btype, raw, offset)
                    except (KeyError, TypeError, ValueError, AttributeError, OverflowError,
                            IndexError) as e:
                        rec.warnings.append(
                            f"recording damaged at byte {offset} of {size}: "
                            f"{fmt.BLOCK_NAMES.get(btype, btype)} block unreadable "
                            f"({_one_line(e)}); read up to the last good block")
                        break
                rec.good_bytes = nxt
                offset = nxt
                if rec.end is not None:
                    if nxt < size:
                        rec.warnings.append(f"{size - nxt} bytes after the end block ignored")
                    break
            if rec is None:
                raise RecordingError(f"{path}: no data recorded (the file ends after its header)")
            if rec.end is None and not rec.warnings:
                rec.warnings.append("recording has no end block (cut by a crash, a kill or a "
                                    "full disk?): read up to its last good block")
            elif rec.end is None:
                rec.warnings.append("recording has no end block")
            if rec.unknown_blocks:
                rec.warnings.append(f"{rec.unknown_blocks} blocks of a newer minor format "
                                    f"version skipped (format {rec.major}.{rec.minor})")
            if rec.events_unwritten:
                rec.warnings.append(f"--max-size reached: the last {rec.events_unwritten} events "
                                    f"were not written")
            return rec

    def _take(self, btype: int, raw: bytes, offset: int) -> None:
        if btype == fmt.BLOCK_EVENTS:
            b = EventBatch.decode(raw)
            if len(b):
                self.event_blocks.append(EventBlockRef(offset, len(b), b.ts_ns[0], max(b.ts_ns)))
                if max(b.kind) >= EventKind.BACKING_ADD:
                    share, backing = EventKind.SHARE_OPEN, (EventKind.BACKING_ADD,
                                                            EventKind.BACKING_DELETE)
                    self.shared_events_count += sum(1 for k in b.kind if k >= share)
                    self.backing_events_count += sum(1 for k in b.kind if k in backing)
        elif btype == fmt.BLOCK_META:
            self._merge_meta(_json(raw))
        elif btype == fmt.BLOCK_SEED:
            d = _json(raw)
            validate.seed(d)
            if self.seed is None:
                seed = readings_from_json(d["readings"])
                validate.check_dataclass(seed, "readings")
                self.seed = seed
                self.seed_ts_ns = int(d.get("ts_ns", self.mono_start_ns))
        elif btype == fmt.BLOCK_TICK:
            d = _json(raw)
            validate.tick(d)
            self.ticks.append(d)
        elif btype == fmt.BLOCK_MODEL:
            d = _json(raw)
            validate.model_block(d)
            self.models.append(d)
        elif btype == fmt.BLOCK_STATE:
            d = _json(raw)
            validate.state(d)
            ts = int(d["ts_ns"])
            if "shared" in d:
                shared = shared_from_json(d["shared"])
                for i, sh in enumerate(shared):
                    validate.check_dataclass(sh, f"shared[{i}]")
                self.shared_snapshots.append((ts, shared))
            if "backing_pages" in d:
                self.backing_snapshots.append(
                    (ts, {(int(a), int(b)): int(n) for a, b, n in d["backing_pages"]}))
        elif btype == fmt.BLOCK_END:
            d = _json(raw)
            validate.end(d)
            self.end = d
        else:
            self.unknown_blocks += 1

    def _merge_meta(self, d: dict[str, Any], first: bool = False) -> None:
        validate.meta(d, first)
        for i, m in enumerate(d.get("mounts", [])):
            mi = mount_from_json(m)
            validate.check_dataclass(mi, f"mounts[{i}]")
            self.mounts[mi.dev] = mi
        for cg, path in d.get("cgroups", {}).items():
            self.cgroups[int(cg)] = str(path)
        for i, fj in enumerate(d.get("files", [])):
            dev, ino, info, digest, fp, bid = file_from_json(fj)
            if info is not None:
                validate.check_dataclass(info, f"files[{i}]")
            for k, v in (("digest", digest), ("fingerprint", fp), ("build_id", bid)):
                if v is not None and not isinstance(v, (str, bytes)):
                    raise validate.Invalid(f"files[{i}].{k} must be a string, not {v!r:.40}")
            if info is not None:
                self.files[(dev, ino)] = info
            if digest:
                self.digests[(dev, ino)] = digest
            if fp:
                self.fingerprints[(dev, ino)] = fp
            if bid:
                self.build_ids[(dev, ino)] = bid


def _one_line(e: Exception) -> str:
    text = " ".join(str(e).split())
    return text if isinstance(e, validate.Invalid) else f"{type(e).__name__}: {text}"


def _json(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ValueError(f"bad JSON: {e}") from None


def _pct(a: int, b: int) -> str:
    return f"{100.0 * a / b:.1f} %" if b else "0 %"


def _read_block(f, offset: int, size: int, dec: fmt.Decompressor):
    """(problem, type, raw payload, next offset); problem is None, 'eof' or a reason."""
    f.seek(offset)
    head = f.read(fmt.BLOCK_HEADER.size)
    if not head:
        return "eof", 0, b"", offset
    if len(head) < fmt.BLOCK_HEADER.size:
        return "cut inside its header", 0, b"", offset
    sync, btype, codec, _flags, stored_len, raw_len, crc = fmt.BLOCK_HEADER.unpack(head)
    if sync != fmt.BLOCK_SYNC:
        return "has no sync marker", 0, b"", offset
    if offset + fmt.BLOCK_HEADER.size + stored_len > size:
        return (f"cut short ({size - offset - fmt.BLOCK_HEADER.size} of {stored_len} "
                f"payload bytes present)"), 0, b"", offset
    stored = f.read(stored_len)
    if zlib.crc32(stored, zlib.crc32(head[4:16])) != crc:
        return "fails its checksum", 0, b"", offset
    if raw_len > fmt.MAX_BLOCK_RAW_BYTES or codec not in fmt.CODEC_NAMES:
        return "has an impossible size or codec", 0, b"", offset
    try:
        raw = dec.decompress(codec, stored, raw_len)
    except RecordingError:
        raise
    except Exception as e:     # any codec failure on a CRC-valid block is damage too
        return f"does not decompress ({e})", 0, b"", offset
    return None, btype, raw, offset + fmt.BLOCK_HEADER.size + stored_len
