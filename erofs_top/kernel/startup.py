"""Start-up cost of the BPF tiers, by stage: from process start to probes attached.

A ``StartupClock`` is created first thing in the tracepoint source; it
knows how long the process ran before that (interpreter start, imports,
open_collector()'s resolvers and tier choice: ``/proc/self/stat`` start
time, 10 ms resolution) and records each stage after it.  ``compile_load_attach()`` splits BCC's one constructor into its
compile (clang, the header tree, LLVM), load (map creation is part of the
compile; the verifier is here) and attach stages.  `erofs-top doctor` prints
the result; benchmarks/bench_startup.py measures it from outside.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

# stage names, in the order they run
BEFORE = "python start, imports, resolvers"   # until the probe source starts
PYTHON = "python start + imports"             # what doctor splits BEFORE into
RESOLVERS = "resolvers, tier choice"
HOST_CHECKS = "host checks, bcc import"
COMPILE = "compile (clang, headers, maps)"
LOAD = "load (verifier)"
ATTACH = "attach"
SHARING = "sharing probes (compile, load, attach)"

# set when the probes' compile starts: clang runs in C, without the GIL, for
# ~0.6 s, which the exporter's own imports wait for (exporter/cli.py)
COMPILING = threading.Event()


def process_age_s() -> float | None:
    """Seconds since this process started (clock ticks: 10 ms steps), None if unknown."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/uptime") as f:
            uptime_s = float(f.read().split()[0])
        start_ticks = int(fields[19])           # field 22 of stat(5)
    except (OSError, ValueError, IndexError):
        return None
    return max(0.0, uptime_s - start_ticks / os.sysconf("SC_CLK_TCK"))


class StartupClock:
    """Seconds per stage, in the order recorded (a stage recorded twice adds up)."""

    def __init__(self):
        self.created_at = time.monotonic()
        self.stages_s: dict[str, float] = {}
        age = process_age_s()
        if age is not None:
            self.stages_s[BEFORE] = age

    def add(self, name: str, seconds: float) -> None:
        self.stages_s[name] = self.stages_s.get(name, 0.0) + seconds

    @contextmanager
    def stage(self, name: str):
        t = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - t)

    def total_s(self) -> float:
        return sum(self.stages_s.values())

    def summary(self) -> str:
        """One line: the total and every stage."""
        parts = ", ".join(f"{name} {s:.2f} s" for name, s in self.stages_s.items())
        return f"{self.total_s():.2f} s to probes attached ({parts})"


def compile_load_attach(clock: StartupClock, **bpf_kw):
    """bcc.BPF(**bpf_kw), its compile, load and attach stages added to clock.
    BCC compiles (and creates the maps) in the constructor, then loads and
    attaches every TRACEPOINT_PROBE and KFUNC_PROBE it found."""
    from bcc import BPF

    spent = {LOAD: 0.0, ATTACH: 0.0}

    class TimedBPF(BPF):
        def load_func(self, *a, **kw):
            t = time.monotonic()
            try:
                return super().load_func(*a, **kw)
            finally:
                spent[LOAD] += time.monotonic() - t

        def attach_tracepoint(self, *a, **kw):
            t = time.monotonic()
            try:
                return super().attach_tracepoint(*a, **kw)
            finally:
                spent[ATTACH] += time.monotonic() - t

    t = time.monotonic()
    COMPILING.set()
    try:
        return TimedBPF(**bpf_kw)
    finally:
        total = time.monotonic() - t
        clock.add(COMPILE, total - spent[LOAD] - spent[ATTACH])
        clock.add(LOAD, spent[LOAD])
        clock.add(ATTACH, spent[ATTACH])
