"""One signal policy for every erofs-top command.

SIGINT, SIGTERM and SIGHUP:

1. the first starts an orderly stop: probes are detached, a recording gets
   its END block, the demo removes what it made, a child CMD of
   `once -- CMD` / `record -- CMD` gets the same signal and is waited for.
   By default it raises ``Interrupted`` (a KeyboardInterrupt, so a sleep, a
   wait or a BPF compile in progress ends at once); loops that poll instead
   (``record``, the TUI) turn raising off and check ``POLICY.stopping``.
2. a second one while stopping is absorbed, with one line saying erofs-top is
   still cleaning up;
3. only a third forces the exit (after killing a child CMD), leaving what was
   not removed yet: the next `demo` and `doctor` find a killed demo's leftovers.

The exit status is 128 + the first signal: 130 (INT), 143 (TERM), 129 (HUP).
"""
from __future__ import annotations

import contextlib
import os
import signal
from typing import Callable

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
FORCE_AFTER = 3


class Interrupted(KeyboardInterrupt):
    """The first stop signal; ``signum`` says which."""

    def __init__(self, signum: int = signal.SIGINT):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _say(text: str) -> None:
    # os.write: safe inside a signal handler, and unaffected by a broken stdout
    with contextlib.suppress(OSError):
        os.write(2, f"erofs-top: {text}\n".encode())


class Policy:
    def __init__(self):
        self.count = 0
        self.first: int | None = None
        self.raising = True
        self.on_first: list[Callable[[int], None]] = []   # e.g. forward to a child CMD
        self.on_force: list[Callable[[], None]] = []      # e.g. SIGKILL a child CMD
        self.installed = False

    # ------------------------------------------------------------ state
    @property
    def stopping(self) -> bool:
        return self.count > 0

    @property
    def exit_code(self) -> int:
        return 128 + int(self.first or signal.SIGINT)

    def reset(self) -> None:
        self.__init__()

    # ------------------------------------------------------------ handler
    def install(self) -> None:
        for sig in STOP_SIGNALS:
            signal.signal(sig, self._handle)
        self.installed = True

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count == 1:
            self.first = signum
            for cb in list(self.on_first):
                with contextlib.suppress(Exception):
                    cb(signum)
            if self.raising:
                raise Interrupted(signum)
            return
        if self.count < FORCE_AFTER:
            _say(f"{signal.Signals(signum).name}: still cleaning up "
                 f"(one more signal forces the exit and leaves what is not removed yet)")
            return
        _say(f"{signal.Signals(signum).name}: forced exit; not everything was cleaned up")
        for cb in list(self.on_force):
            with contextlib.suppress(Exception):
                cb()
        os._exit(self.exit_code)

    def ignore_rest(self) -> None:
        """Stop signals from now on are ignored, in every thread: for the
        interpreter's teardown after an orderly stop.  The teardown puts the
        default action back for each handler Python installed (not for an
        ignored signal), so a later signal would kill the process, exit
        status -signal instead of 128 + the first.  A mask would not do: it
        is the calling thread's, and the kernel gives a process's signal to
        any thread that does not block it (a daemon thread still alive)."""
        for sig in STOP_SIGNALS:
            with contextlib.suppress(ValueError, OSError):   # not the main thread
                signal.signal(sig, signal.SIG_IGN)

    # ------------------------------------------------------------ helpers
    @contextlib.contextmanager
    def polling(self):
        """Signals set ``stopping`` instead of raising (a loop checks it)."""
        prev, self.raising = self.raising, False
        try:
            yield self
        finally:
            self.raising = prev

    cleanup = polling       # cleanup code must not be cut by a first signal either

    def adopt(self, proc) -> tuple:
        """A child CMD gets the first stop signal too (at once if erofs-top is
        already stopping), and SIGKILL on a forced exit."""
        def forward(signum):
            if proc.poll() is None:
                proc.send_signal(signum)

        def kill():
            if proc.poll() is None:
                proc.kill()
        self.on_first.append(forward)
        self.on_force.append(kill)
        if self.first is not None:
            forward(self.first)
        return forward, kill

    @contextlib.contextmanager
    def child(self, proc):
        forward, kill = self.adopt(proc)
        try:
            yield proc
        finally:
            self.on_first.remove(forward)
            self.on_force.remove(kill)


POLICY = Policy()
