"""RecordingSource: a recording as a ModelSource for the UI (erofs_top/tui/source.py).

Each ``refresh()`` moves the replay clock forward by the wall time since the
previous refresh times ``speed`` and returns the Model there.  A gap much
longer than the usual refresh interval means the UI was paused: it counts as
one usual interval, so resuming does not jump.  ``step``
moves by ``step_s`` recording seconds (back too), ``seek`` jumps to a unix
time.  At the end it keeps returning the last Model.
"""
from __future__ import annotations

import threading
import time

from ..model import Model
from .reader import Recording
from .replay import Replayer

MAX_ADVANCE_S = 2.0        # the first gap, before the usual interval is known
PAUSE_FACTOR = 3.0         # a gap this many usual intervals long was a pause


class RecordingSource:
    def __init__(self, rec: Recording, *, speed: float = 1.0, step_s: float = 1.0,
                 files_cap: int | None = None, clock=time.monotonic):
        self.rec = rec
        self.replayer = Replayer(rec, files_cap=files_cap)
        self.speed = speed
        self.step_s = step_s
        self.clock = clock
        self.offset_s = 0.0            # position: seconds since the recording started
        self._last_wall: float | None = None
        self._usual_gap_s: float | None = None
        self._cached: tuple[int, Model] | None = None
        # the UI calls refresh from its poll thread and step from a worker
        self._lock = threading.Lock()
        self.closed = False

    @property
    def tier(self) -> str:
        return self.replayer.tier

    @property
    def duration_s(self) -> float:
        return self.rec.duration_s

    @property
    def at_end(self) -> bool:
        return self.offset_s >= self.duration_s

    def _model(self) -> Model:
        self.offset_s = min(max(0.0, self.offset_s), self.duration_s)
        ts = self.rec.mono_start_ns + int(self.offset_s * 1e9)
        if self._cached is not None and self._cached[0] == ts:
            return self._cached[1]          # at the end, or not moved: no new aggregation
        model = self.replayer.model_at(ts)
        self._cached = (ts, model)
        return model

    def refresh(self) -> Model:
        with self._lock:
            now = self.clock()
            if self._last_wall is not None:
                gap = max(0.0, now - self._last_wall)
                usual = self._usual_gap_s
                if usual is None:
                    used = min(gap, MAX_ADVANCE_S)
                elif gap > PAUSE_FACTOR * usual:
                    used = usual
                else:
                    used = gap
                if usual is None or gap <= PAUSE_FACTOR * usual:
                    self._usual_gap_s = gap if gap > 0 else usual
                self.offset_s += used * self.speed
            self._last_wall = now
            return self._model()

    def step(self, n: int = 1) -> Model:
        with self._lock:
            self._last_wall = self.clock()
            self.offset_s += n * self.step_s
            return self._model()

    def seek(self, t: float) -> Model:
        """t: unix seconds (as Model.started_at/ended_at); values below 1e9 are taken
        as seconds since the start of the recording."""
        with self._lock:
            self._last_wall = self.clock()
            self.offset_s = t - self.rec.started_at if t >= 1e9 else t
            return self._model()

    def position(self) -> str:
        wall = time.strftime("%H:%M:%S", time.localtime(self.rec.started_at + self.offset_s))
        pct = 100.0 * self.offset_s / self.duration_s if self.duration_s > 0 else 100.0
        return f"{wall} (+{self.offset_s:.1f} s of {self.duration_s:.1f} s, {pct:.0f}%)"

    def close(self) -> None:
        self.closed = True
