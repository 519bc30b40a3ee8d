"""Chrome trace-event JSON (opens in ui.perfetto.dev and chrome://tracing).

One process track per container (named by its cgroup path) with counters
resident_bytes / duplicate_bytes / inserted_bytes_per_s, a "node" process with
the totals and the event losses, and instant events (plus a slice spanning it)
for each insert burst.  Timestamps are microseconds since the recording start.
Everything comes from the timeline's Models (built by aggregate).
"""
from __future__ import annotations

from typing import Any

from . import timeline as tlmod
from .reader import Recording

NODE_PID = 1
FIRST_CONTAINER_PID = 100
DEFAULT_BURST_MIN_RATE = 1 << 20    # 1 MiB/s inserted by one container


def _us(t_s: float) -> float:
    return round(t_s * 1e6, 3)


def _container_pids(tl: tlmod.Timeline) -> tuple[dict[int, int], dict[int, str]]:
    """A trace process per cgroup seen in the timeline, in order of appearance."""
    pids: dict[int, int] = {}
    names: dict[int, str] = {}
    for s in tl.samples:
        for c in s.model.containers:
            if c.cgroup_id not in pids:
                pids[c.cgroup_id] = FIRST_CONTAINER_PID + len(pids)
                names[c.cgroup_id] = c.cgroup
    return pids, names


def _burst_events(bursts: list[dict[str, Any]], pids: dict[int, int]) -> list[dict[str, Any]]:
    """An instant and a span per insert burst, on its cgroup's track."""
    ev = []
    for b in bursts:
        pid = pids.get(b["cgroup_id"])
        if pid is None:
            continue
        args = {"inserted_bytes": b["inserted_bytes"],
                "inserted_bytes_per_s": b["inserted_bytes_per_s"],
                "duration_s": round(b["t_end_s"] - b["t_start_s"], 3)}
        ev.append({"ph": "i", "pid": pid, "tid": 1, "s": "p", "ts": _us(b["t_start_s"]),
                   "name": "insert burst", "args": args})
        ev.append({"ph": "X", "pid": pid, "tid": 1, "ts": _us(b["t_start_s"]),
                   "dur": _us(b["t_end_s"] - b["t_start_s"]), "name": "insert burst",
                   "args": args})
    return ev


def trace(rec: Recording, tl: tlmod.Timeline, *,
          burst_min_rate_bytes_per_s: float = DEFAULT_BURST_MIN_RATE) -> dict[str, Any]:
    ev: list[dict[str, Any]] = []

    def meta(pid, name, tid=None, thread=None):
        ev.append({"ph": "M", "pid": pid, "tid": 0, "name": "process_name",
                   "args": {"name": name}})
        if tid is not None:
            ev.append({"ph": "M", "pid": pid, "tid": tid, "name": "thread_name",
                       "args": {"name": thread}})

    def counter(pid, name, t_s, value):
        ev.append({"ph": "C", "pid": pid, "tid": 0, "name": name, "ts": _us(t_s),
                   "args": {name: value}})

    host = rec.start.get("hostname", "")
    meta(NODE_PID, f"node {host}".strip() + " (EROFS page cache)", 1, "events")
    pids, names = _container_pids(tl)
    for cg, pid in pids.items():
        meta(pid, f"{names[cg]} (cgroup {cg})", 1, "bursts")

    prev = None
    for s in tl.samples:
        t = s.model.totals
        counter(NODE_PID, "resident_bytes", s.t_s, t.resident_bytes)
        counter(NODE_PID, "duplicate_bytes", s.t_s, t.duplicate_bytes)
        counter(NODE_PID, "redundant_bytes", s.t_s, t.redundant_bytes)
        counter(NODE_PID, "backing_resident_bytes", s.t_s, t.backing_resident_bytes)
        by = {c.cgroup_id: c for c in s.model.containers}
        pby = {c.cgroup_id: c for c in prev.model.containers} if prev else {}
        dt = s.t_s - prev.t_s if prev else 0.0
        for cg, pid in pids.items():
            c = by.get(cg)
            counter(pid, "resident_bytes", s.t_s, c.resident_bytes if c else 0)
            counter(pid, "duplicate_bytes", s.t_s, c.duplicate_bytes if c else 0)
            if prev is not None and dt > 0:
                before = pby.get(cg)
                d = (c.inserted_bytes if c else 0) - (before.inserted_bytes if before else 0)
                # rate over the window that ends here, drawn from its start
                counter(pid, "inserted_bytes_per_s", prev.t_s, round(max(0, d) / dt))
        prev = s
    for cg, pid in pids.items():
        if prev is not None:
            counter(pid, "inserted_bytes_per_s", prev.t_s, 0)

    # losses: a counter per tick and an instant event where events were lost
    for t_s, n in rec.losses_per_second():
        counter(NODE_PID, "lost_events", t_s, n)
        ev.append({"ph": "i", "pid": NODE_PID, "tid": 1, "s": "p", "ts": _us(t_s),
                   "name": f"{n} events lost", "args": {"lost_events": n}})

    bursts = tlmod.bursts(tl, burst_min_rate_bytes_per_s)
    ev += _burst_events(bursts, pids)
    end = rec.end or {}
    ev.append({"ph": "i", "pid": NODE_PID, "tid": 1, "s": "g", "ts": _us(tl.duration_s),
               "name": f"recording end: {end.get('reason', 'cut (no end block)')}", "args": {}})
    return {
        "traceEvents": ev,
        "displayTimeUnit": "ms",
        "otherData": {
            "tool": "erofs-top",
            "recording": rec.path,
            "format": f"{rec.major}.{rec.minor}",
            "started_at_unix_s": rec.started_at,
            "kernel": rec.start.get("kernel", ""),
            "tier": rec.start.get("tier", ""),
            "step_s": tl.step_s,
            "burst_min_rate_bytes_per_s": burst_min_rate_bytes_per_s,
            "bursts_count": len(bursts),
            "lost_events": rec.lost_events,
            "warnings": list(rec.warnings),
        },
    }
