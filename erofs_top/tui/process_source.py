"""ProcessSource: a ModelSource whose refresh() runs in a child process.

Why: at 250,000 files a live refresh takes most of a second of pure Python
and allocates hundreds of thousands of objects.  In a thread of the UI's
process it shares the GIL with the UI (every hand-back waits up to the 5 ms
switch interval, a long C call such as a big sort none at all) and its new
objects feed the cyclic GC, whose collections (up to a second here, holding
the GIL) land in whichever thread allocates next: key presses waited for
them (docs/performance.md, "TUI at 250,000 files").  In a child process the
collector has its own GIL and its own GC; the UI process only unpickles the
Model, which is capped (``files_cap`` files, one row per container and
mount): about 1 MB and 20-30 ms at 1,000 containers, however many files the
node has.

The child is forked before the UI starts (no threads yet) and opens the
source itself (``open_source()``, e.g. ``open_collector``): the probes
belong to it, and it detaches them when told to close, when the UI's end of
the pipe closes (the UI process died), or on its first stop signal.  An
error of ``open_source()`` or ``refresh()`` is raised again in the UI
process as the same exception (or a RuntimeError with its text when it
cannot be pickled).
"""
from __future__ import annotations

import contextlib
import copy
import gc
import multiprocessing
import os
import pickle
import signal
import threading
from typing import Any, Callable

from ..model import Model

CLOSE_TIMEOUT_S = 30.0       # detaching every probe takes a few seconds at most
# The child has no UI objects: its long-lived state can be frozen after every
# refresh, as the exporter does (aggregate.FREEZE).
CHILD_GC_THRESHOLDS = (50_000, 20, 100)
# A Model crosses in pieces of this many rows, each unpickled apart: one
# pickle.loads of a whole Model (20-30 ms at 1,000 containers and mounts)
# holds the GIL throughout, a piece ~2 ms; the UI thread gets the GIL between.
PIECE_ROWS = 100
ROW_LISTS = ("containers", "mounts", "files", "images")
CALLS = {"refresh": "refresh", "step": "step", "seek": "seek"}    # what the UI may call


class ProcessSource:
    """``refresh()`` / ``close()`` of the source ``open_source()`` returns, in a
    child process.  ``tier`` and ``page_size`` are the child source's."""

    def __init__(self, open_source: Callable[[], Any], *, name: str = "erofs-top-collector"):
        ctx = multiprocessing.get_context("fork")
        self._conn, child_end = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(open_source, child_end, self._conn),
                                 name=name, daemon=True)
        self._lock = threading.Lock()
        self._closed = False
        self._speed_sent = True
        self._proc.start()
        child_end.close()
        try:
            info = self._reply()
        except _ChildError as exc:              # opening failed in the child
            self._closed = True
            self._reap(CLOSE_TIMEOUT_S)
            raise exc.error from None
        except BaseException:                   # a stop signal here: the child stops too
            self._closed = True
            with contextlib.suppress(OSError):
                os.kill(self._proc.pid, signal.SIGTERM)
            self._reap(CLOSE_TIMEOUT_S)
            raise
        self.tier: str = info["tier"]
        self.page_size: int | None = info["page_size"]     # None: the source has none
        self._speed: float | None = info["speed"]
        self._position: str | None = info["position"]

    @property
    def pid(self) -> int | None:
        return self._proc.pid

    def refresh(self) -> Model:
        return self._call("refresh", ())

    def _call(self, op: str, args: tuple) -> Model:
        """``source.<op>(*args)`` in the child; its Model (or exception) here."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the collector process was closed")
            try:
                self._conn.send_bytes(pickle.dumps((op, args, self._settings())))
            except OSError:
                raise RuntimeError(self._gone()) from None
            try:
                return self._reply()
            except _ChildError as exc:
                raise exc.error from None

    def _settings(self) -> dict:
        """What the child's source must be told before the next call."""
        return {}

    def _reply(self) -> Any:
        """The child's answer; its exception raised here."""
        try:
            # the bytes first (the read releases the GIL), then one loads
            data = self._conn.recv_bytes()
        except (EOFError, OSError):
            raise RuntimeError(self._gone()) from None
        kind, value = pickle.loads(data)
        if kind == "raise":
            raise _ChildError(value)
        if kind == "model":
            return self._model(*value)
        return value

    def _model(self, shell: Model, pieces: dict[str, int], position: str | None) -> Model:
        """The Model's row lists, piece by piece (see PIECE_ROWS)."""
        self._position = position
        try:
            for name, count in pieces.items():
                rows: list = []
                for _ in range(count):
                    rows.extend(pickle.loads(self._conn.recv_bytes()))
                setattr(shell, name, rows)
        except (EOFError, OSError):
            raise RuntimeError(self._gone()) from None
        return shell

    def _gone(self) -> str:
        self._proc.join(1.0)
        code = self._proc.exitcode
        return ("the collector process ended"
                + (f" (exit status {code})" if code is not None else ""))

    def close(self) -> None:
        """Tell the child to close its source (detach probes) and wait for it."""
        if self._closed:
            return
        self._closed = True
        # a refresh in flight ends first; one that does not end in time is cut short
        if self._lock.acquire(timeout=CLOSE_TIMEOUT_S):
            try:
                with contextlib.suppress(OSError):
                    self._conn.send_bytes(b"close")
            finally:
                self._lock.release()
        self._reap(CLOSE_TIMEOUT_S)

    def _reap(self, timeout_s: float) -> None:
        self._proc.join(timeout_s)
        if self._proc.exitcode is None:          # stuck: its stop signal closes the source
            self._proc.terminate()
            self._proc.join(timeout_s)
        if self._proc.exitcode is None:
            self._proc.kill()
            self._proc.join()
        self._conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class RecordingProcessSource(ProcessSource):
    """A ProcessSource around a steppable source (erofs_top/record/source.py's
    RecordingSource): ``step``, ``seek`` and ``speed`` reach the child's source;
    ``position()`` is the one the child sent with the last Model (the UI asks
    for it on every header update: no call into a child that may be busy)."""

    def step(self, n: int = 1) -> Model:
        return self._call("step", (n,))

    def seek(self, t: float) -> Model:
        return self._call("seek", (t,))

    def position(self) -> str:
        return self._position or ""

    @property
    def speed(self) -> float:
        return self._speed

    @speed.setter
    def speed(self, value: float) -> None:
        self._speed = value             # sent with the next call
        self._speed_sent = False

    def _settings(self) -> dict:
        if self._speed_sent:
            return {}
        self._speed_sent = True
        return {"speed": self._speed}


class _ChildError(Exception):
    """The child's exception, on its way to the caller."""

    def __init__(self, error: BaseException):
        super().__init__(str(error))
        self.error = error


def _picklable(exc: BaseException) -> BaseException:
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        text = str(exc).strip().splitlines()
        return RuntimeError(text[0] if text else type(exc).__name__)


def _send(conn, kind: str, value: Any) -> None:
    conn.send_bytes(pickle.dumps((kind, value), protocol=pickle.HIGHEST_PROTOCOL))


def _position(source) -> str | None:
    return source.position() if callable(getattr(source, "position", None)) else None


def _send_model(conn, model: Model, position: str | None) -> None:
    """The Model without its row lists, then the rows in pieces."""
    shell = copy.copy(model)
    pieces = {}
    for name in ROW_LISTS:
        setattr(shell, name, [])
        pieces[name] = -(-len(getattr(model, name)) // PIECE_ROWS)
    _send(conn, "model", (shell, pieces, position))
    for name in ROW_LISTS:
        rows = getattr(model, name)
        for start in range(0, len(rows), PIECE_ROWS):
            conn.send_bytes(pickle.dumps(rows[start:start + PIECE_ROWS],
                                         protocol=pickle.HIGHEST_PROTOCOL))


def _quiet() -> None:
    """Nothing the child prints may reach the UI's terminal (BCC prints from C)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.dup2(null, 2)
    os.close(null)


def _serve(open_source: Callable[[], Any], conn, ui_end) -> None:
    """The child: open the source, answer refresh requests until told to stop."""
    from ..aggregate import FREEZE
    from ..signals import POLICY
    ui_end.close()
    # its own stop policy, not the parent's state copied by fork (in polling
    # mode, with a count, with callbacks for the parent's children): the
    # first stop signal raises here and the source is closed
    POLICY.reset()
    POLICY.install()
    gc.set_threshold(*CHILD_GC_THRESHOLDS)
    FREEZE["mode"] = "every"
    source = None
    try:
        source = open_source()
        _send(conn, "ok", {"tier": source.tier, "page_size": getattr(source, "page_size", None),
                           "speed": getattr(source, "speed", None),
                           "position": _position(source)})
        _quiet()
        while True:
            try:
                request = conn.recv_bytes()
            except (EOFError, OSError):         # the UI process is gone
                break
            if request == b"close":
                break
            op, args, settings = pickle.loads(request)
            for name, value in settings.items():
                setattr(source, name, value)
            try:
                model = getattr(source, CALLS[op])(*args)
            except Exception as exc:            # the UI shows it and retries
                _send(conn, "raise", _picklable(exc))
            else:
                _send_model(conn, model, _position(source))
                del model
    except BaseException as exc:                # open failed, or a stop signal
        with contextlib.suppress(Exception):
            _send(conn, "raise", _picklable(exc))
    finally:
        if source is not None:
            with POLICY.cleanup():
                source.close()
        conn.close()


__all__ = ["ProcessSource", "RecordingProcessSource"]
