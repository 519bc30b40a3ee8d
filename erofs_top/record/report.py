"""`erofs-top report`: the Model at the end of a recording + timeline + recording facts.

JSON: the keys of ``Model.to_dict()`` (the same document `once --json` prints,
docs/json.md) plus two more top-level sections, ``timeline`` and
``recording`` (docs/recording.md), so tools that read `once --json` read a
report unchanged.
"""
from __future__ import annotations

from typing import Any

from ..model import Model
from ..units import fmt_bytes
from . import format as fmt
from . import timeline as tlmod
from .reader import Recording
from .replay import Replayer


def recording_json(rec: Recording, rp: Replayer | None = None) -> dict[str, Any]:
    end = rec.end or {}
    d = {
        "file": rec.path,
        "format": f"{rec.major}.{rec.minor}",
        "compression": fmt.CODEC_NAMES.get(rec.codec, str(rec.codec)),
        "file_bytes": rec.file_size,
        "complete": rec.complete,
        "end_reason": end.get("reason", "cut (no end block)"),
        "started_at": rec.started_at,
        "duration_s": round(rec.duration_s, 3),
        "hostname": rec.start.get("hostname", ""),
        "command": rec.start.get("command", []),
        "events_count": rec.events_count,
        "lost_events": rec.lost_events,
        "events_unwritten": rec.events_unwritten,
        "bytes_per_event": round(rec.file_size / rec.events_count, 2) if rec.events_count else None,
        "max_size_bytes": rec.start.get("max_size_bytes"),
        "live_models_count": len(rec.models),
        "warnings": list(rec.warnings),
    }
    if rp is not None:
        d["untracked_delete_pages"] = rp.untracked_delete_pages
        d["malformed_events"] = rp.bad_events
    return d


def live_check(rec: Recording, rp: Replayer) -> dict[str, Any] | None:
    """Replay vs the last Model the live collector stored: per-cgroup resident
    bytes, summed absolute difference as a share of the live total."""
    for snap in reversed(rec.models):
        try:
            live = Model.from_dict(snap["model"])
        except (KeyError, TypeError, ValueError):
            continue        # another schema, or damaged: try an older one
        ts = int(snap.get("read_ts_ns") or snap["ts_ns"])
        replay = rp.model_at(ts)
        a = {c.cgroup_id: c.resident_bytes for c in live.containers}
        b = {c.cgroup_id: c.resident_bytes for c in replay.containers}
        diff = sum(abs(a.get(k, 0) - b.get(k, 0)) for k in set(a) | set(b))
        total = max(1, live.totals.resident_bytes)
        return {"t_s": round((ts - rec.mono_start_ns) / 1e9, 3),
                "live_resident_bytes": live.totals.resident_bytes,
                "replay_resident_bytes": replay.totals.resident_bytes,
                "cgroup_difference_bytes": diff,
                "cgroup_difference_pct": round(100.0 * diff / total, 3)}
    return None


def build_report(rec: Recording, *, files_cap: int | None = None,
                 max_samples: int = tlmod.DEFAULT_MAX_SAMPLES,
                 at_s: float | None = None) -> tuple[Model, dict[str, Any]]:
    """(Model at the end, or at_s seconds after the start; report JSON document).
    The timeline always covers the whole recording."""
    rp = Replayer(rec, files_cap=files_cap)
    tl = tlmod.build(rec, rp, max_samples=max_samples)
    model = tl.samples[-1].model
    if at_s is not None:
        at_s = min(max(0.0, at_s), rec.duration_s)
        model = rp.model_at(rec.mono_start_ns + int(at_s * 1e9))
    doc = model.to_dict()
    doc["timeline"] = tlmod.to_json(rec, tl)
    doc["recording"] = recording_json(rec, rp)
    doc["recording"]["model_at_s"] = round(rec.duration_s if at_s is None else at_s, 3)
    doc["recording"]["live_check"] = live_check(rec, rp)
    return model, doc


def render_text(model: Model, doc: dict[str, Any], files: int = 10) -> str:
    """The `once` tables for the final Model, then the recording and its timeline."""
    from ..cli import render_text as once_text   # lazy: cli imports this package
    from ..names import display
    out = [once_text(model, files), ""]
    r = doc["recording"]
    state = "complete" if r["complete"] else "INCOMPLETE"
    if r["model_at_s"] < r["duration_s"]:
        out.append(f"(the tables above: {r['model_at_s']:.1f} s after the start, of "
                   f"{r['duration_s']:.1f} s)")
    out.append(f"recording: {display(r['file'])}  format {r['format']} ({r['compression']})  "
               f"{fmt_bytes(r['file_bytes'])}  {r['duration_s']:.1f} s  {state}, "
               f"ended: {r['end_reason']}")
    bpe = f", {r['bytes_per_event']:.1f} B/event" if r["bytes_per_event"] else ""
    out.append(f"events: {r['events_count']} recorded{bpe}; lost in the kernel: "
               f"{r['lost_events']}; not written (--max-size): {r['events_unwritten']}")
    lc = r.get("live_check")
    if lc:
        out.append(f"cross-check: at {lc['t_s']:.1f} s the live collector and the replay differ "
                   f"by {fmt_bytes(lc['cgroup_difference_bytes'])} per cgroup "
                   f"({lc['cgroup_difference_pct']:.2f} % of {fmt_bytes(lc['live_resident_bytes'])} "
                   f"resident)")
    tl = doc["timeline"]
    p = tl["peaks"]
    out.append("")
    out.append(f"timeline: {len(tl['samples'])} samples, every {tl['step_s']:.1f} s")
    if "resident" in p:
        pr = p["resident"]
        who = ", ".join(f"{display(c['cgroup'])} {fmt_bytes(c['resident_bytes'])}"
                        for c in pr["top"]) or "-"
        out.append(f"  peak resident  {fmt_bytes(pr['resident_bytes'])} at {pr['t_s']:.1f} s "
                   f"(duplicate {fmt_bytes(pr['duplicate_bytes'])}): {who}")
    if "duplicate" in p:
        pd = p["duplicate"]
        out.append(f"  peak duplicate {fmt_bytes(pd['duplicate_bytes'])} at {pd['t_s']:.1f} s "
                   f"(redundant {fmt_bytes(pd['redundant_bytes'])})")
    if "insert_rate" in p:
        pi = p["insert_rate"]
        who = ", ".join(f"{display(c['cgroup'])} {fmt_bytes(c['inserted_bytes'])}"
                        for c in pi["top_inserters"]) or "-"
        out.append(f"  peak inserts   {fmt_bytes(pi['inserted_bytes_per_s'])}/s from "
                   f"{pi['t_start_s']:.1f} s to {pi['t_end_s']:.1f} s; inserted most: {who}")
    losses = tl["losses"]["per_second"]
    if losses:
        shown = losses[:10]
        txt = ", ".join(f"{x['lost_events']} at {x['t_s']:.0f} s" for x in shown)
        more = f" (+{len(losses) - len(shown)} more seconds)" if len(losses) > len(shown) else ""
        out.append(f"  lost events per second: {txt}{more}")
    else:
        out.append("  no events lost")
    # the recording's own warnings are already in the Model's health.warnings (printed above)
    return "\n".join(out)
