"""RecordingWriter: appends self-checking blocks to a recording file.

Pure file I/O (no kernel): the recorder loop (recorder.py) feeds it events and
metadata.  Each block is flushed to the OS as soon as it is written, so a crash
loses at most the events still buffered in memory (about one second).
``max_size_bytes`` bounds the file: a block that would cross the bound is not
written (events are split to fill the space left), ``full`` turns true, and
the END block, for which room is always kept, says so.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Any

from . import format as fmt
from .format import EventBatch

# Room always kept for the END block (a few hundred bytes of JSON).
END_RESERVE_BYTES = 4096
# Events buffered before a block is cut even if a second has not passed.
EVENTS_PER_BLOCK = 65536


class RecordingWriter:
    def __init__(self, path: str, *, codec: int | None = None, level: int | None = None,
                 max_size_bytes: int | None = None):
        self.path = path
        self.codec = fmt.default_codec() if codec is None else codec
        self._comp = fmt.Compressor(self.codec, level)
        if max_size_bytes is not None and max_size_bytes < 64 * 1024:
            raise fmt.RecordingError("--max-size must be at least 64 KiB")
        self.max_size_bytes = max_size_bytes
        try:
            # unbuffered: a failed write is known at once, and cut back (below)
            self._f = open(path, "wb", buffering=0)
        except OSError as e:
            raise fmt.RecordingError(f"cannot write {path}: {e.strerror}") from None
        self._lock = threading.Lock()
        self.bytes_written = 0
        self.full = False              # --max-size reached: nothing but END is written
        self.events_written = 0
        self.events_unwritten = 0      # dropped at the --max-size bound (reported in END)
        self.blocks_written = 0
        self.closed = False
        self.error = ""                # why writing failed (a full disk): the recording ends
        self._pending = EventBatch.empty()
        self._write_raw(fmt.pack_file_header(self.codec))

    # ------------------------------------------------------------ low level
    def _write_raw(self, data: bytes) -> None:
        try:
            view = memoryview(data)
            while view:
                n = self._f.write(view)
                if not n:
                    raise OSError(28, os.strerror(28))
                view = view[n:]
        except OSError as e:
            # a full disk ends the recording like --max-size: what is written stays
            # readable, and the torn block is cut off so the END block may still fit
            self.full = True
            with contextlib.suppress(OSError, ValueError):
                os.ftruncate(self._f.fileno(), self.bytes_written)
                os.lseek(self._f.fileno(), self.bytes_written, os.SEEK_SET)
            self.error = self.error or f"writing {self.path} failed: {e.strerror or e}"
            raise fmt.RecordingError(self.error) from None
        self.bytes_written += len(data)

    def _room(self, reserve: int) -> int | None:
        if self.max_size_bytes is None:
            return None
        return self.max_size_bytes - self.bytes_written - reserve

    def _put(self, btype: int, raw: bytes, *, reserve: int = END_RESERVE_BYTES) -> bool:
        """Write one block if it fits; False (and ``full``) if it does not."""
        if self.closed:
            return False
        if self.full and btype != fmt.BLOCK_END:
            return False
        block = fmt.pack_block(btype, raw, self._comp)
        room = self._room(reserve)
        if room is not None and len(block) > room:
            self.full = True
            return False
        self._write_raw(block)
        self.blocks_written += 1
        return True

    def write_json(self, btype: int, obj: Any) -> bool:
        with self._lock:
            return self._put(btype, fmt.json_bytes(obj))

    # ------------------------------------------------------------ events
    def add_events(self, events) -> None:
        """Buffer PageEvent-like objects; cuts a block every EVENTS_PER_BLOCK events.
        Never raises (it runs in the ring buffer callback): a write error is kept
        in ``error`` and ends the recording (``full``)."""
        with self._lock:
            if self.full:
                self.events_unwritten += len(events)
                return
            self._pending.extend_events(events)
            if len(self._pending) >= EVENTS_PER_BLOCK:
                with contextlib.suppress(fmt.RecordingError):
                    self._flush_locked()

    def add_batch(self, batch: EventBatch) -> None:
        with self._lock:
            if self.full:
                self.events_unwritten += len(batch)
                return
            for f in fmt._FIELDS:
                getattr(self._pending, f).extend(getattr(batch, f))
            if len(self._pending) >= EVENTS_PER_BLOCK:
                with contextlib.suppress(fmt.RecordingError):
                    self._flush_locked()

    def flush_events(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        batch, self._pending = self._pending, EventBatch.empty()
        if not len(batch):
            return
        if self.full:
            self.events_unwritten += len(batch)
            return
        self._write_events(batch)

    def _write_events(self, batch: EventBatch) -> None:
        try:
            ok = self._put(fmt.BLOCK_EVENTS, batch.encode())
        except fmt.RecordingError:
            self.events_unwritten += len(batch)       # lost to the write error: counted
            raise
        if ok:
            self.events_written += len(batch)
            return
        # does not fit under --max-size: write the biggest head that does (halving)
        self.full = False
        n = len(batch) // 2
        while n >= 1:
            if self._put(fmt.BLOCK_EVENTS, batch.slice(0, n).encode()):
                self.events_written += n
                break
            self.full = False
            n //= 2
        self.full = True
        self.events_unwritten += len(batch) - max(n, 0)

    # ------------------------------------------------------------ end
    def close(self, end: dict[str, Any]) -> None:
        """Flush buffered events, write the END block (with writer totals), fsync, close."""
        with self._lock:
            if self.closed:
                return
            self._flush_locked()
            end = dict(end)
            end.setdefault("max_size_reached", self.full)
            end["events_written"] = self.events_written
            end["events_unwritten"] = self.events_unwritten
            if self.error:
                end.setdefault("write_error", self.error)
            try:
                self._put(fmt.BLOCK_END, fmt.json_bytes(end), reserve=0)
                os.fsync(self._f.fileno())
            except (OSError, fmt.RecordingError):
                pass    # the blocks before END stay readable; the reader warns "no end block"
            finally:
                self.closed = True
                self._f.close()

    def abort(self) -> None:
        """Close without an END block (tests: simulate a crash)."""
        with self._lock:
            self.closed = True
            self._f.close()
