"""Timeline of a recording: Models at regular points, peaks, losses, bursts.

Every per-cgroup number here is read from Models that ``aggregate`` made (the
Replayer); this module only compares Models at different times (differences
of counters, maxima).  Pure given a Replayer.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..model import Model
from .reader import Recording
from .replay import Replayer

DEFAULT_MAX_SAMPLES = 300
TOP_N = 5


@dataclass
class Sample:
    t_s: float          # seconds since the recording started
    model: Model


@dataclass
class Timeline:
    duration_s: float
    step_s: float
    samples: list[Sample] = field(default_factory=list)


def choose_step(duration_s: float, max_samples: int = DEFAULT_MAX_SAMPLES,
                min_step_s: float = 1.0) -> float:
    """One sample a second, coarser for long recordings so at most max_samples are made."""
    if duration_s <= 0:
        return min_step_s
    return max(min_step_s, duration_s / max(1, max_samples - 1))


def build(rec: Recording, replayer: Replayer | None = None, *,
          max_samples: int = DEFAULT_MAX_SAMPLES, step_s: float | None = None) -> Timeline:
    rp = replayer or Replayer(rec)
    dur = rec.duration_s
    step = step_s or choose_step(dur, max_samples)
    times: list[float] = []
    t = 0.0
    while t < dur and len(times) < max_samples - 1:
        times.append(t)
        t += step
    times.append(dur)
    tl = Timeline(duration_s=dur, step_s=step)
    rp.reset()
    for ts in times:
        tl.samples.append(Sample(ts, rp.model_at(rec.mono_start_ns + int(ts * 1e9))))
    return tl


# ---------------------------------------------------------------- analysis
def _by_cgroup(m: Model) -> dict[int, Any]:
    return {c.cgroup_id: c for c in m.containers}


def insert_windows(tl: Timeline) -> list[dict[str, Any]]:
    """Per window between samples: seconds, total and per-cgroup inserted bytes."""
    out = []
    for a, b in zip(tl.samples, tl.samples[1:]):
        dt = b.t_s - a.t_s
        if dt <= 0:
            continue
        before = _by_cgroup(a.model)
        per = {}
        for cg, c in _by_cgroup(b.model).items():
            prev = before.get(cg)
            d = c.inserted_bytes - (prev.inserted_bytes if prev else 0)
            if d > 0:
                per[cg] = (c.cgroup, d)
        out.append({"t_start_s": a.t_s, "t_end_s": b.t_s, "dt_s": dt,
                    "inserted_bytes": max(0, b.model.totals.inserted_bytes
                                          - a.model.totals.inserted_bytes),
                    "per_cgroup": per})
    return out


def peaks(tl: Timeline) -> dict[str, Any]:
    res: dict[str, Any] = {}
    if not tl.samples:
        return res
    best = max(tl.samples, key=lambda s: (s.model.totals.resident_bytes, -s.t_s))
    res["resident"] = {
        "t_s": round(best.t_s, 3),
        "resident_bytes": best.model.totals.resident_bytes,
        "duplicate_bytes": best.model.totals.duplicate_bytes,
        "top": [{"cgroup_id": c.cgroup_id, "cgroup": c.cgroup, "resident_bytes": c.resident_bytes,
                 "duplicate_bytes": c.duplicate_bytes}
                for c in sorted(best.model.containers, key=lambda c: -c.resident_bytes)[:TOP_N]
                if c.resident_bytes],
    }
    dbest = max(tl.samples, key=lambda s: (s.model.totals.duplicate_bytes, -s.t_s))
    res["duplicate"] = {"t_s": round(dbest.t_s, 3),
                        "duplicate_bytes": dbest.model.totals.duplicate_bytes,
                        "redundant_bytes": dbest.model.totals.redundant_bytes}
    wins = insert_windows(tl)
    if wins:
        w = max(wins, key=lambda w: (w["inserted_bytes"] / w["dt_s"], -w["t_start_s"]))
        top = sorted(w["per_cgroup"].items(), key=lambda kv: -kv[1][1])[:TOP_N]
        res["insert_rate"] = {
            "t_start_s": round(w["t_start_s"], 3), "t_end_s": round(w["t_end_s"], 3),
            "inserted_bytes": w["inserted_bytes"],
            "inserted_bytes_per_s": round(w["inserted_bytes"] / w["dt_s"]),
            "top_inserters": [{"cgroup_id": cg, "cgroup": name, "inserted_bytes": d}
                              for cg, (name, d) in top],
        }
    return res


def bursts(tl: Timeline, min_rate_bytes_per_s: float) -> list[dict[str, Any]]:
    """Runs of windows where one cgroup inserted at >= min_rate: start, end, bytes."""
    open_: dict[int, dict[str, Any]] = {}
    out: list[dict[str, Any]] = []
    for w in insert_windows(tl):
        hot = {cg for cg, (_n, d) in w["per_cgroup"].items() if d / w["dt_s"] >= min_rate_bytes_per_s}
        for cg in list(open_):
            if cg not in hot:
                out.append(open_.pop(cg))
        for cg in hot:
            name, d = w["per_cgroup"][cg]
            b = open_.get(cg)
            if b is None:
                b = open_[cg] = {"cgroup_id": cg, "cgroup": name, "t_start_s": w["t_start_s"],
                                 "t_end_s": w["t_end_s"], "inserted_bytes": 0}
            b["t_end_s"] = w["t_end_s"]
            b["inserted_bytes"] += d
    out.extend(open_.values())
    for b in out:
        dur = b["t_end_s"] - b["t_start_s"]
        b["inserted_bytes_per_s"] = round(b["inserted_bytes"] / dur) if dur > 0 else 0
    out.sort(key=lambda b: (b["t_start_s"], b["cgroup"]))
    return out


def to_json(rec: Recording, tl: Timeline) -> dict[str, Any]:
    samples = []
    for s in tl.samples:
        t = s.model.totals
        samples.append({
            "t_s": round(s.t_s, 3),
            "resident_bytes": t.resident_bytes, "duplicate_bytes": t.duplicate_bytes,
            "redundant_bytes": t.redundant_bytes, "inserted_bytes": t.inserted_bytes,
            "evicted_bytes": t.evicted_bytes, "lost_events": s.model.health.lost_events,
            "containers": [{"cgroup_id": c.cgroup_id, "cgroup": c.cgroup,
                            "resident_bytes": c.resident_bytes,
                            "duplicate_bytes": c.duplicate_bytes,
                            "inserted_bytes": c.inserted_bytes} for c in s.model.containers],
        })
    return {
        "duration_s": round(tl.duration_s, 3),
        "step_s": round(tl.step_s, 3),
        "samples": samples,
        "peaks": peaks(tl),
        "losses": {
            "lost_events": rec.lost_events,
            "events_unwritten": rec.events_unwritten,
            "per_second": [{"t_s": round(t, 3), "lost_events": n}
                           for t, n in rec.losses_per_second()],
        },
    }
