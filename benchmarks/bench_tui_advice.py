"""Refresh cost of the TUI's Advice view on bench_tui.py's big synthetic Model.

The same Models as benchmarks/bench_tui.py (10,000 containers, 50,000 files,
500 mounts against a 100 / 500 / 5 baseline), with advice to give: every even
mount is a stock mount of an image with fingerprints that would save now
(one ``inode_share`` action whose commands remount half the mounts), every
odd one an image without fingerprints whose copies would save (one
``rebuild`` row per image).  One "refresh" is ``ingest()`` until Textual is
idle (headless, 200x50), CPU time of the process; the Advice view and the
Containers view are measured alternately in the same run, so the ratio
advice / containers is what the view adds (both include the header, which
runs ``advise()`` on every refresh anyway).

Run:  .venv/bin/python benchmarks/bench_tui_advice.py [--refreshes 8] [--json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_tui import synthetic_models  # noqa: E402

MiB = 1 << 20


def with_advice(models):
    """bench_tui's Models, with fingerprints and savings on their mounts."""
    for m in models:
        now = 0
        for j, mount in enumerate(m.mounts):
            mount.ishare_xattrs = j % 2 == 0
            mount.potential_savings_bytes = (j % 7 + 1) * MiB
            if mount.ishare_xattrs:
                mount.potential_savings_now_bytes = mount.potential_savings_bytes
                now += mount.potential_savings_now_bytes
        m.totals.potential_savings_now_bytes = now
        m.totals.potential_savings_bytes = sum(x.potential_savings_bytes for x in m.mounts)
        yield m


async def _measure(n_containers: int, n_files: int, refreshes: int) -> dict:
    from erofs_top.tui.app import ErofsTopApp, tune_gc
    tune_gc()
    app = ErofsTopApp(None, elf=False)
    app.defer_free = True
    cpu: dict[str, list[float]] = {"containers": [], "advice": []}
    rows = 0
    async with app.run_test(size=(200, 50)) as pilot:
        models = with_advice(synthetic_models(n_containers, n_files, refreshes))
        for i, m in enumerate(models):
            view = "advice" if i % 2 else "containers"
            await pilot.press("4" if view == "advice" else "1")     # not timed
            await pilot.pause()
            c = time.process_time()
            app.ingest(m)
            await pilot.pause()
            cpu[view].append(time.process_time() - c)
            if view == "advice":
                rows = len(app.table().rows)
            del m
            app.dispose_retired()
    return {"containers": n_containers, "files": n_files, "advice_rows": rows,
            "containers_cpu_ms": statistics.median(cpu["containers"][1:]) * 1000,
            "advice_cpu_ms": statistics.median(cpu["advice"][1:]) * 1000}


def _run(containers: int, files: int, refreshes: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", "--containers", str(containers),
                          "--files", str(files), "--refreshes", str(refreshes)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _add_args(ap) -> None:
    ap.add_argument("--refreshes", type=int, default=8)
    ap.add_argument("--containers", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)


def _body(args) -> dict:
    if args.child:
        print(json.dumps(asyncio.run(_measure(args.containers, args.files, args.refreshes))))
        return {}
    base = _run(100, 500, args.refreshes)
    scale = _run(args.containers, args.files, args.refreshes)
    for name, r in (("baseline", base), ("scale", scale)):
        print(f"{name}: {r['containers']} containers, {r['files']} files, "
              f"{r['advice_rows']} advice rows: Containers view {r['containers_cpu_ms']:.1f} ms, "
              f"Advice view {r['advice_cpu_ms']:.1f} ms CPU per refresh "
              f"(advice/containers {r['advice_cpu_ms'] / r['containers_cpu_ms']:.2f} x)")
    ratio = scale["advice_cpu_ms"] / base["advice_cpu_ms"]
    print(f"scale/baseline, Advice view: {ratio:.1f} x")
    return {"baseline": base, "scale": scale, "advice_scale_ratio": ratio}


if __name__ == "__main__":
    from benchlib import bench_main
    sys.exit(bench_main(__doc__, _add_args, _body, root=False))
