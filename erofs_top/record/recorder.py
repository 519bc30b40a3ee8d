"""The recording loop: kernel events + metadata + periodic Models -> a recording file.

One thread.  The main loop polls the ring buffer every POLL_MS; once a second
(a tick) it cuts an events block, writes the loss counters, and stores the
metadata of what appeared since the last tick (cgroups, files, mounts); every
``model_interval_s`` it asks the live collector for a Model (stored as a
cross-check and so the content identities the aggregator asked for get
recorded).  The ring buffer absorbs events while a tick or a Model runs; what
it cannot hold the kernel counts as lost, and the report shows it per second.

The collector's resolvers are wrapped (Logging*) so that every answer they
give the live aggregator is stored: offline, the same questions get the same
answers from static resolvers (Static*).  Digests only: resolve/content.py never hands out a raw
fingerprint xattr, and meta.safe_digest drops anything that is not a digest.
"""
from __future__ import annotations

import hashlib
import os
import platform
import socket
import subprocess
import threading
import time
from typing import Any, Callable

from .. import __version__
from ..units import fmt_bytes
from ..readings import EventKind
from . import format as fmt
from .meta import (file_to_json, mount_to_json, readings_to_json, safe_digest,
                   shared_to_json)
from .writer import RecordingWriter

POLL_MS = 100
TICK_S = 1.0


def monotonic_ns() -> int:
    """CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


class LoggingContent:
    """Wraps a ContentResolver; remembers every answer, per (dev, ino)."""

    def __init__(self, inner):
        self.inner = inner
        self._lock = threading.Lock()
        self.known: dict[tuple[int, int], dict[str, Any]] = {}
        self.dirty: set[tuple[int, int]] = set()

    def _note(self, mount, ino, name, value):
        if mount is None:
            return
        if name in ("fingerprint", "digest") and value is not None and not safe_digest(value):
            # not a plain digest (a raw xattr value would carry the domain_id): keep
            # only a hash of it, which still tells equal values from different ones
            raw = value.encode("utf-8", "surrogateescape") if isinstance(value, str) else value
            value = "xattr:" + hashlib.sha256(bytes(raw)).hexdigest()
        key = (mount.dev, ino)
        with self._lock:
            d = self.known.setdefault(key, {})
            if value is not None and d.get(name) != value:
                d[name] = value
                self.dirty.add(key)

    def file_info(self, mount, ino):
        v = self.inner.file_info(mount, ino)
        self._note(mount, ino, "info", v)
        return v

    def fingerprint(self, mount, ino):
        v = self.inner.fingerprint(mount, ino)
        self._note(mount, ino, "fingerprint", v)
        return v

    def build_id(self, mount, ino):
        v = self.inner.build_id(mount, ino)
        self._note(mount, ino, "build_id", v)
        return v

    def digest(self, mount, ino):
        v = self.inner.digest(mount, ino)
        self._note(mount, ino, "digest", v)
        return v

    def __getattr__(self, name):          # digest_pending, forget, ... of the real resolver
        return getattr(self.inner, name)

    def drain(self) -> list[dict[str, Any]]:
        with self._lock:
            keys, self.dirty = self.dirty, set()
            out = []
            for dev, ino in sorted(keys):
                d = self.known[(dev, ino)]
                out.append(file_to_json(dev, ino, d.get("info"), d.get("digest"),
                                        d.get("fingerprint"), d.get("build_id")))
            return out


class LoggingCgroups:
    def __init__(self, inner):
        self.inner = inner
        self.known: dict[int, str] = {}
        self.dirty: dict[int, str] = {}

    def resolve(self, cgroup_id):
        ci = self.inner.resolve(cgroup_id)
        if ci.resolved and ci.path and ci.path != "?" and self.known.get(cgroup_id) != ci.path:
            self.known[cgroup_id] = ci.path
            self.dirty[cgroup_id] = ci.path
        return ci

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def drain(self) -> dict[str, str]:
        d, self.dirty = self.dirty, {}
        return {str(k): v for k, v in d.items()}


def _events_lost(source) -> int:
    """Kernel-side ring buffer drops (BPF counter) + perf-buffer drops seen in user space."""
    public = getattr(source, "events_lost", None)
    if callable(public):
        try:
            return int(public())
        except Exception:   # a counter read must never end a recording
            return int(getattr(source, "lost_events", 0) or 0)
    return int(getattr(source, "lost_events", 0) or 0)


def _page_cache_bytes() -> int:
    try:
        from ..pagecache import meminfo_cached_bytes
        return int(meminfo_cached_bytes())
    except Exception:
        return 0


class Recorder:
    """Drives one recording.  ``col``: a Collector whose source is a
    TracepointSource(record=True) (or any source with poll_events/events_lost).
    ``status`` gets a one-line progress note once a second."""

    def __init__(self, col, writer: RecordingWriter, *, model_interval_s: float = 5.0,
                 command: list[str] | None = None, max_size_bytes: int | None = None,
                 status: Callable[[str], None] | None = None):
        self.col = col
        if hasattr(col.source, "event_decoder"):
            # bulk-decode raw probe records: half the recorder's CPU per event
            col.source.event_decoder = fmt.EventBatch.from_probe_records
        self.w = writer
        self.model_interval_s = model_interval_s
        self.command = list(command or [])
        self.max_size_bytes = max_size_bytes
        self.status = status or (lambda msg: None)
        self.content = col.content = LoggingContent(col.content)
        self.cgroups = col.cgroups = LoggingCgroups(col.cgroups)
        self.events_total = 0
        self.last_event_ns = 0          # the last event's time (CLOCK_MONOTONIC)
        self.polls = 0
        self._new_files: set[tuple[int, int]] = set()
        self._new_cgroups: set[int] = set()
        self._seen_files: set[tuple[int, int]] = set()
        self._seen_cgroups: set[int] = set()
        self._mounts_written: dict[int, dict] = {}
        self.stop_reason: str | None = None
        self.lost_events = 0            # kernel drops, as of the last tick / the end
        # what the probes keep in maps and do not stream (shared inodes, the
        # image files' cache): stored from each live refresh's read (wrapping
        # read() sees it without a second read)
        self._last_readings = None
        self._last_read_ns = 0
        self._shared_written = False
        inner_read = col.read

        def read_and_keep():
            self._last_read_ns = monotonic_ns()
            r = inner_read()
            self._last_readings = r
            return r
        col.read = read_and_keep

    # ------------------------------------------------------------ start
    def start(self) -> None:
        col = self.col
        self.mono_start_ns = monotonic_ns()
        self.started_at = time.time()
        col.mounts.refresh()
        start = {
            "erofs_top": __version__,
            "started_at": self.started_at,
            "mono_start_ns": self.mono_start_ns,
            "hostname": socket.gethostname(),
            "kernel": platform.release(),
            "tier": col.tier,
            "page_size": col.page_size,
            "files_cap": getattr(col, "files_cap", 200),
            "command": self.command,
            "max_size_bytes": self.max_size_bytes,
            "model_interval_s": self.model_interval_s,
            "pid": os.getpid(),
            "mounts": [],
            "cgroups": {},
            "files": [],
        }
        for m in col.mounts.mounts():
            j = mount_to_json(m)
            self._mounts_written[m.dev] = j
            start["mounts"].append(j)
        self.w.write_json(fmt.BLOCK_META, start)
        # the seed: everything resident now, with owners (the collector seeded its
        # maps from ground truth at attach; events since then are in the ring buffer)
        seed_ts = monotonic_ns()
        seed = col.read()
        self.w.write_json(fmt.BLOCK_SEED, {"ts_ns": seed_ts, "readings": readings_to_json(seed)})
        self._shared_written = bool(seed.shared)
        for pc in seed.chunks:
            self._note_file(pc.dev, pc.ino)
            for cg in pc.owners:
                self._note_cgroup(cg)
        for x in seed.io:
            self._note_cgroup(x.cgroup_id)
        self._meta_update()

    def _note_file(self, dev, ino):
        k = (dev, ino)
        if k not in self._seen_files:
            self._seen_files.add(k)
            self._new_files.add(k)

    def _note_cgroup(self, cg):
        if cg and cg not in self._seen_cgroups:
            self._seen_cgroups.add(cg)
            self._new_cgroups.add(cg)

    # ------------------------------------------------------------ events
    def _drain(self, end_ts: int) -> None:
        """The events made up to ``end_ts``: the ring buffer read until a
        read comes back short (it was empty) or has passed end_ts (it is
        time-ordered), so a flood that goes on after the stop does not
        keep the recording open (each read takes POLL_EVENTS_MAX at most)."""
        poll = self.col.source.poll_events
        while poll(self.on_events, 0) and self.last_event_ns < end_ts:
            pass

    def on_events(self, events) -> None:
        """A list of PageEvent, or an EventBatch (bulk-decoded probe records)."""
        seen_f, seen_c = self._seen_files, self._seen_cgroups
        if len(events):
            self.last_event_ns = events.ts_ns[-1] if isinstance(events, fmt.EventBatch) \
                else events[-1].ts_ns
        if isinstance(events, fmt.EventBatch):
            self.w.add_batch(events)
            self.events_total += len(events)
            last_file_kind = EventKind.READ_FOLIO     # a local: no Enum lookup per event
            for kind, dev, ino in zip(events.kind, events.dev, events.ino):
                if kind <= last_file_kind and (dev, ino) not in seen_f:
                    self._note_file(dev, ino)
            for cg in set(events.cgroup_id) - seen_c:
                self._note_cgroup(cg)
            return
        self.w.add_events(events)
        self.events_total += len(events)
        for e in events:
            if e.kind <= EventKind.READ_FOLIO:
                if (e.dev, e.ino) not in seen_f:
                    self._note_file(e.dev, e.ino)
            if e.cgroup_id not in seen_c:
                self._note_cgroup(e.cgroup_id)

    # ------------------------------------------------------------ metadata
    def _meta_update(self) -> None:
        col = self.col
        upd: dict[str, Any] = {}
        mounts = []
        for m in col.mounts.mounts():
            j = mount_to_json(m)
            if self._mounts_written.get(m.dev) != j:
                self._mounts_written[m.dev] = j
                mounts.append(j)
        if mounts:
            upd["mounts"] = mounts
        for cg in sorted(self._new_cgroups):
            try:
                self.cgroups.resolve(cg)
            except Exception:
                pass
        self._new_cgroups.clear()
        for dev, ino in sorted(self._new_files):
            m = col.mounts.by_dev(dev)
            if m is None:
                continue
            try:
                self.content.file_info(m, ino)
            except Exception:   # a vanished file: the aggregator would see the same
                pass
        self._new_files.clear()
        cgs = self.cgroups.drain()
        if cgs:
            upd["cgroups"] = cgs
        files = self.content.drain()
        if files:
            upd["files"] = files
        if upd:
            self.w.write_json(fmt.BLOCK_META, upd)

    def _sync_mounts(self) -> None:
        col = self.col
        sync = getattr(col.source, "sync_mounts", None)     # keep the kernel filter current
        if callable(sync):
            sync()
        else:
            col.mounts.refresh()

    def tick(self, now_ns: int) -> None:
        self.w.flush_events()
        self._sync_mounts()
        self._meta_update()
        lost = self.lost_events = _events_lost(self.col.source)
        self.w.write_json(fmt.BLOCK_TICK, {
            "ts_ns": now_ns, "wall": time.time(), "events_total": self.events_total,
            "lost_events_total": lost, "bytes_written": self.w.bytes_written,
            "page_cache_bytes": _page_cache_bytes()})
        self.status(f"{(now_ns - self.mono_start_ns) / 1e9:.0f} s, {self.events_total} events, "
                    f"{lost} lost, {fmt_bytes(self.w.bytes_written)} written")

    def snapshot_model(self) -> None:
        ts = monotonic_ns()
        self._last_readings = None
        model = self.col.refresh()
        # read_ts_ns: when the maps were read (the refresh first resolves mounts):
        # the moment the replay must be compared at
        self.w.write_json(fmt.BLOCK_MODEL, {"ts_ns": ts, "read_ts_ns": self._last_read_ns or ts,
                                            "model": model.to_dict()})
        r = self._last_readings
        if r is not None:
            state = {"ts_ns": self._last_read_ns or ts,
                     "backing_pages": [[d, i, n] for (d, i), n in r.backing_pages.items()]}
            if r.shared or self._shared_written:
                state["shared"] = shared_to_json(r.shared)
                self._shared_written = True
            self.w.write_json(fmt.BLOCK_STATE, state)
        self._meta_update()     # what the aggregator just asked (digests, build-ids)

    # ------------------------------------------------------------ loop
    def run(self, *, duration_s: float | None = None, proc: subprocess.Popen | None = None,
            should_stop: Callable[[], bool] = lambda: False) -> str:
        """Record until duration, CMD exit, --max-size, or should_stop().  Returns the reason."""
        col = self.col
        t0 = time.monotonic()
        next_tick = t0 + TICK_S
        next_model = t0 + self.model_interval_s if self.model_interval_s > 0 else None
        reason = None
        try:
            while reason is None:
                col.source.poll_events(self.on_events, POLL_MS)
                self.polls += 1
                now = time.monotonic()
                if now >= next_tick:
                    self.tick(monotonic_ns())
                    next_tick = max(next_tick + TICK_S, now)
                if next_model is not None and now >= next_model:
                    self.snapshot_model()
                    next_model = max(next_model + self.model_interval_s, time.monotonic())
                if self.w.error:
                    raise fmt.RecordingError(self.w.error)   # a full disk, met in a callback
                if self.w.full:
                    reason = "max-size"
                elif duration_s is not None and now - t0 >= duration_s:
                    reason = "duration"
                elif proc is not None and proc.poll() is not None:
                    reason = "command exited"
                elif should_stop():
                    reason = "interrupted"
        except KeyboardInterrupt:
            reason = "interrupted"
        except fmt.RecordingError:
            reason = "write error"
            raise
        finally:
            self.stop_reason = reason or "error"
        return self.stop_reason

    def finish(self) -> None:
        """A last Model, then drain the ring buffer and write END: every event up
        to the END time is in the file (and the last Model's read before it)."""
        col = self.col
        try:
            if not self.w.full:
                self.snapshot_model()
        except KeyboardInterrupt:
            pass        # a third Ctrl-C: still drain and write the END block below
        except fmt.RecordingError:
            pass
        end_ts = monotonic_ns()
        try:
            if not self.w.full:
                self._drain(end_ts)
                self.w.flush_events()
        except KeyboardInterrupt:
            pass
        except fmt.RecordingError:
            pass
        lost = self.lost_events = _events_lost(col.source)
        try:
            self.w.write_json(fmt.BLOCK_TICK, {
                "ts_ns": end_ts, "wall": time.time(), "events_total": self.events_total,
                "lost_events_total": lost, "bytes_written": self.w.bytes_written,
                "page_cache_bytes": _page_cache_bytes()})
        except fmt.RecordingError:
            pass
        self.w.close({"ts_ns": end_ts, "ended_at": time.time(), "reason": self.stop_reason,
                      "events_total": self.events_total, "lost_events_total": lost})
