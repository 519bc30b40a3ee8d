"""Refresh cost and memory of the live UI on a big synthetic Model.

One "refresh render" is what the UI thread does when a Model arrives:
History.push (all rows of all kinds), re-sort/re-filter of the active view,
and repainting the screen, measured from ``ingest()`` until Textual is idle
again (headless, 200x50), as CPU time of the process (the target) and as wall
time (which also holds Textual's frame timer, ~20 ms of waiting even with
nothing to do).  Building the synthetic Models is not counted (the collector
thread does that).  Memory is the peak RSS of a fresh process per
scale: it includes the interpreter, Textual, the Model the UI shows and the
next Model being built (as with a live collector); the size of one Model is
measured in a separate process and subtracted to give the UI's own share.

Targets (issue 4): 10,000 containers and 50,000 files render in < 100 ms and
stay < 150 MB.  Ratios are against a 100-container / 500-file baseline run
the same way in the same invocation.

With --node-files N (e.g. 250000): interactivity while a collector refreshes
at 1 s, as `erofs-top top --interval 1` does: the real Collector and
aggregator on a synthetic node (benchmarks/synthetic_node.py, N files x
--node-containers, 1 % churn per refresh), its Models ingested as they come;
a key (view switch) is pressed every 0.3 s and timed until the frame showing
the new view is handed to the driver (KeyToFrame).  The collector runs in a
thread of the UI's process (as before) and in its own process (ProcessSource,
as `top` runs it now), each in a fresh process, --rounds times, the order
reversed every other round.  Baseline in the same process: the same keys
with the collector paused.

Run:  .venv/bin/python benchmarks/bench_tui.py [--refreshes 8] [--containers 10000]
      [--files 50000] [--baseline-containers 100] [--baseline-files 500]
      .venv/bin/python benchmarks/bench_tui.py --node-files 250000 [--node-containers 1000]
          [--collector thread|process|both] [--rounds 1]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import benchlib  # noqa: E402  (the shared driver)

MiB = 1 << 20


def synthetic_models(n_containers: int, n_files: int, refreshes: int, seed: int = 7):
    """Models like a busy node, one per refresh, built lazily (like a collector would):
    every counter moves, ~1% of cgroups vanish and come back."""
    from erofs_top.model import (Container, File, Health, MapUsage, Model, Mount, Totals,
                                 TIER_TRACEPOINT)
    rnd = random.Random(seed)
    n_mounts = max(1, n_containers // 20)
    base_res = [rnd.randrange(1, 2000) * 64 * 1024 for _ in range(n_containers)]
    file_res = [rnd.randrange(1, 500) * 4096 for _ in range(n_files)]
    t0 = 1_700_000_000.0
    for step in range(refreshes):
        containers = []
        for i in range(n_containers):
            if (i + step) % 97 == 0:
                continue
            res = base_res[i] + rnd.randrange(0, 64) * 4096
            containers.append(Container(
                cgroup_id=10_000 + i,
                cgroup=f"/kubepods.slice/kubepods-burstable.slice/pod{i:08x}/cri-containerd-{i:016x}.scope",
                runtime="containerd", container_id=f"{i:064x}", pod_uid=f"{i:08x}-0000",
                resident_bytes=res, duplicate_bytes=res // 3,
                inserted_bytes=res + step * rnd.randrange(0, 1 << 20),
                evicted_bytes=step * rnd.randrange(0, 1 << 19),
                readahead_bytes=res // 2 + step * 4096, read_folio_count=step * 10 + i % 7,
                files_count=5, mounts=[f"7:{i % n_mounts}"]))
        mounts = [Mount(dev=f"7:{j}", mountpoint=f"/run/containerd/io.containerd.runtime.v2.task/k8s.io/{j:064x}/rootfs",
                        source=f"/dev/loop{j}", backing="loop",
                        backing_file=f"/var/lib/images/{j:016x}.erofs",
                        resident_bytes=rnd.randrange(1, 1 << 30), duplicate_bytes=1 << 20,
                        containers_count=20) for j in range(n_mounts)]
        files = [File(dev=f"7:{k % n_mounts}", ino=1000 + k,
                      path=f"/run/containerd/rootfs/{k % n_mounts}/usr/lib/lib{k}.so",
                      content_id=f"{k:016x}", size=file_res[k] * 2,
                      resident_bytes=file_res[k] + (step % 3) * 4096,
                      duplicate_bytes=file_res[k] // 2, copies=1 + k % 4,
                      cgroups=[10_000 + k % n_containers])
                 for k in range(n_files)]
        total_res = sum(c.resident_bytes for c in containers)
        yield Model(
            tier=TIER_TRACEPOINT, started_at=t0, ended_at=t0 + 2.0 * (step + 1), page_size=4096,
            containers=containers, mounts=mounts, files=files,
            totals=Totals(resident_bytes=total_res, duplicate_bytes=total_res // 3,
                          inserted_bytes=total_res + step * MiB, page_cache_bytes=64 << 30),
            health=Health(maps=[MapUsage("pages", 50_000, 262_144)],
                          bpf_run_time_ns={"insert": 1_000_000 * step}, files_total=n_files,
                          files_cap=n_files),
            kernel="synthetic")


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MiB


async def _measure(n_containers: int, n_files: int, refreshes: int) -> dict:
    from erofs_top.tui.app import ErofsTopApp, tune_gc
    tune_gc()                       # as run_app() does
    app = ErofsTopApp(None, elf=False)
    app.defer_free = True           # as with a collector thread: old Models are freed there
    wall: dict[str, list[float]] = {"containers": [], "files": []}
    cpu: dict[str, list[float]] = {"containers": [], "files": []}
    rss_before = _rss_mb()
    async with app.run_test(size=(200, 50)) as pilot:
        for i, m in enumerate(synthetic_models(n_containers, n_files, refreshes)):
            view = "files" if i % 2 else "containers"
            await pilot.press("3" if view == "files" else "1")   # switching is not timed
            await pilot.pause()
            t, c = time.perf_counter(), time.process_time()
            app.ingest(m)
            await pilot.pause()                                   # until repainted and idle
            cpu[view].append(time.process_time() - c)
            wall[view].append(time.perf_counter() - t)
            del m
            app.dispose_retired()     # what the collector thread does between refreshes
        assert len(app.table().rows) > 0
    return {
        "containers": n_containers, "files": n_files,
        # the first refresh of a view builds its rows; the rest is the steady state
        "first_ms": wall["containers"][0] * 1000,
        "containers_cpu_ms": statistics.median(cpu["containers"][1:]) * 1000,
        "files_cpu_ms": statistics.median(cpu["files"][1:]) * 1000,
        "containers_wall_ms": statistics.median(wall["containers"][1:]) * 1000,
        "files_wall_ms": statistics.median(wall["files"][1:]) * 1000,
        "max_ms": max(wall["containers"] + wall["files"]) * 1000,
        "rss_start_mb": rss_before,
        "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def _percentiles(seconds: list[float]) -> dict:
    s = sorted(seconds)
    return {"p50_ms": statistics.median(s) * 1e3, "p90_ms": s[int(0.9 * (len(s) - 1))] * 1e3,
            "max_ms": s[-1] * 1e3}


class KeyToFrame:
    """Key -> the first frame that shows its effect, as a terminal would get it.

    The key goes in as Pilot sends it (a Key event through the driver), but
    it is not timed with Pilot: ``pilot.press`` + ``pause`` wait until the
    *process* has been idle for 20 ms three times (textual._wait.wait_for_idle
    compares process CPU time with wall time), so with a collector thread
    busy they wait for its refresh to end, whatever the UI did.  Here the
    clock stops when the app hands the frame that shows the new view to the
    driver (``App._display``; headless skips the terminal encoding, so it is
    done here: ``render_segments``, what the real driver writes)."""

    def __init__(self, app):
        from textual.app import App
        self.app, self.want, self.shown_at = app, -1, 0.0
        self.done = asyncio.Event()
        display = App._display

        def timed_display(screen, renderable):
            display(app, screen, renderable)
            if renderable is None or self.want < 0 or app.active_view != self.want:
                return
            if hasattr(renderable, "render_segments"):
                renderable.render_segments(app.console)
            self.shown_at = time.perf_counter()
            self.want = -1
            self.done.set()
        app._display = timed_display

    async def press(self, view: int) -> tuple[float, float]:
        """Switch to ``view`` (keys 1-4): (key -> frame, key -> Pilot's idle) in seconds."""
        from textual import events
        from textual._wait import wait_for_idle
        key = str(view + 1)
        self.done.clear()
        self.want = view
        event = events.Key(key, key)
        event.set_sender(self.app)
        t = time.perf_counter()
        self.app._driver.send_message(event)
        await asyncio.wait_for(self.done.wait(), 30)
        await wait_for_idle(0)
        await self.app._animator.wait_until_complete()
        await wait_for_idle(0)
        return self.shown_at - t, time.perf_counter() - t


class Churn:        # a Source: 1 % of the chunk entries change before each read
    def __init__(self, node):
        from erofs_top.model import TIER_TRACEPOINT
        self.node, self.first = node, True
        self.tier, self.page_size = TIER_TRACEPOINT, 4096

    def read(self):
        if not self.first:
            self.node.churn(0.01)
        self.first = False
        return self.node.readings(by_file=True, hint=True)      # what changed, too

    def close(self):
        pass


NODE_AGED = [0]     # --node-aged (set before the collector opens)


def open_node_collector(n_files: int, n_containers: int, aged: int = 0):
    """The real Collector on a synthetic node of n_files x n_containers
    (``aged``: that many churns made first, files re-read: SyntheticNode.age)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from synthetic_node import SyntheticNode
    from erofs_top.collector import Collector
    node = SyntheticNode(n_files, n_containers, rereads=bool(aged))
    node.age(aged)
    return Collector(Churn(node), mounts=node.mounts, cgroups=node.cgroups, content=node.content)


async def _keys_while_refreshing(n_files: int, n_containers: int, presses: int,
                                 gc_freeze: str = "", collector: str = "thread") -> dict:
    """Key -> repaint wall time, with and without a collector refreshing at 1 s
    (``collector``: "thread", in the UI's process, or "process", a
    ProcessSource as `erofs-top top` runs it)."""
    import threading
    from erofs_top.tui.app import ErofsTopApp, tune_gc
    from erofs_top.tui.process_source import ProcessSource

    tune_gc()                   # as run_app() does, before the first refresh
    if gc_freeze:               # compare with tune_gc()'s choice ("full")
        from erofs_top.aggregate import FREEZE
        FREEZE["mode"] = "" if gc_freeze == "off" else gc_freeze
    if collector == "process":
        col = ProcessSource(lambda: open_node_collector(n_files, n_containers, NODE_AGED[0]))
    else:
        col = open_node_collector(n_files, n_containers, NODE_AGED[0])
    latest: list = [col.refresh()]
    refresh_s: list[float] = []
    running, stop = threading.Event(), threading.Event()

    def collector_thread():
        while not stop.is_set():
            if not running.wait(0.1):
                continue
            t = time.perf_counter()
            latest.append(col.refresh())
            refresh_s.append(time.perf_counter() - t)
            stop.wait(max(0.0, 1.0 - (time.perf_counter() - t)))
    th = threading.Thread(target=collector_thread, daemon=True)
    th.start()
    pauses = benchlib.GcPauses()
    app = ErofsTopApp(None, elf=False)
    app.defer_free = True
    out = {}
    try:
        async with app.run_test(size=(200, 50)) as pilot:
            frames = KeyToFrame(app)
            app.ingest(latest[-1])
            await pilot.pause()
            for label, on in (("idle", False), ("refreshing", True)):
                (running.set if on else running.clear)()
                lat, idle, ingest_s = [], [], []
                for i in range(presses):
                    if len(latest) > 1:          # a new Model arrived: show it (apart)
                        t = time.perf_counter()
                        app.ingest(latest[-1])
                        ingest_s.append(time.perf_counter() - t)
                        del latest[:-1]
                        await pilot.pause()
                        app.dispose_retired()
                    frame_s, idle_s = await frames.press(i % 2 and 2 or 0)
                    lat.append(frame_s)
                    idle.append(idle_s)
                    await asyncio.sleep(0.3)
                out[label] = _percentiles(lat)
                out[label + "_pilot_idle"] = _percentiles(idle)
                if ingest_s:        # what a key pressed meanwhile also waits for
                    out[label + "_ingest"] = _percentiles(ingest_s)
    finally:
        stop.set()
        running.set()
        th.join()
        col.close()
    pauses.close()
    out["gc"] = pauses.summary()
    out["cyclic_garbage_left"], full_gc_s = benchlib.thaw_and_collect()
    out["full_gc_ms"] = full_gc_s * 1e3
    out["refresh_s"] = statistics.median(refresh_s) if refresh_s else 0.0
    out["refreshes"] = len(refresh_s)
    return out


def _child(args) -> None:
    if args.model_size:
        # What one Model of this scale costs, without any UI (a fresh process).
        before = _rss_mb()
        model = next(synthetic_models(args.containers, args.files, 1))
        print(json.dumps({"model_mb": _rss_mb() - before, "rows": len(model.files)}))
        return
    res = asyncio.run(_measure(args.containers, args.files, args.refreshes))
    print(json.dumps(res))


def _run_scale(containers: int, files: int, refreshes: int, *extra: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", "--containers", str(containers),
                          "--files", str(files), "--refreshes", str(refreshes), *extra],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        sys.exit(f"bench_tui: the {containers}/{files} run failed:\n{out.stderr.strip()[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _node_keys(args) -> dict:
    """--node-files: key -> frame per collector variant, each in a fresh process."""
    if args.collector == "both":
        def measure(variant: str, _round: int) -> dict:
            run = subprocess.run(
                [sys.executable, __file__, "--node-files", str(args.node_files),
                 "--node-containers", str(args.node_containers), "--presses",
                 str(args.presses), "--collector", variant, "--json",
                 "--node-aged", str(args.node_aged)]
                + (["--gc-freeze", args.gc_freeze] if args.gc_freeze else []),
                capture_output=True, text=True, check=False)
            if run.returncode != 0:
                sys.exit(f"bench_tui: the {variant} run failed:\n{run.stderr.strip()[-2000:]}")
            text = run.stdout
            print(text[:text.index("\n{")] if "\n{" in text else text, flush=True)
            return json.loads(text[text.index("\n{") + 1:])
        # thread, process, then process, thread, ...: a drift of the machine hits both
        return benchlib.interleaved(("thread", "process"), args.rounds, measure)
    res = asyncio.run(_keys_while_refreshing(args.node_files, args.node_containers,
                                             args.presses, args.gc_freeze, args.collector))
    where = "in a thread" if args.collector == "thread" else "in its own process"
    print(f"key -> frame (view switch), {args.node_files} files x {args.node_containers} "
          f"containers, collector at 1 s {where} (refresh median "
          f"{res['refresh_s'] * 1e3:.0f} ms, {res['refreshes']} refreshes):")
    for label in ("idle", "refreshing"):
        r, p = res[label], res[label + "_pilot_idle"]
        print(f"  {label:>10}: p50 {r['p50_ms']:6.1f} ms  p90 {r['p90_ms']:6.1f} ms  "
              f"max {r['max_ms']:6.1f} ms  (target <= 100 ms); until Pilot's idle: "
              f"p50 {p['p50_ms']:.0f} ms, max {p['max_ms']:.0f} ms")
    if "refreshing_ingest" in res:
        r = res["refreshing_ingest"]
        print(f"  UI thread's ingest() of each new Model: p50 {r['p50_ms']:.1f} ms, "
              f"max {r['max_ms']:.1f} ms")
    print(f"  cyclic GC of the UI's process: {res['gc']}")
    print(f"  at the end: unfreeze + one full collection {res['full_gc_ms']:.0f} ms, "
          f"{res['cyclic_garbage_left']} unreachable objects found (cyclic garbage left)")
    return res


def _add_args(ap) -> None:
    ap.add_argument("--refreshes", type=int, default=8)
    ap.add_argument("--containers", type=int, default=10_000)
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--baseline-containers", type=int, default=100)
    ap.add_argument("--baseline-files", type=int, default=500)
    ap.add_argument("--node-files", type=int, default=0,
                    help="measure key -> repaint while a collector refreshes at 1 s")
    ap.add_argument("--node-containers", type=int, default=1000)
    ap.add_argument("--node-aged", type=int, default=0, metavar="N",
                    help="--node-files: N churns made first, files re-read (synthetic_node.py "
                         "SyntheticNode.age: a node that has run a while)")
    ap.add_argument("--presses", type=int, default=30)
    ap.add_argument("--gc-freeze", choices=("off", "full", "every"), default="",
                    help="--node-files, collector thread: aggregate.FREEZE mode instead of "
                         "tune_gc()'s (the collector process freezes after every refresh)")
    ap.add_argument("--collector", choices=("thread", "process", "both"), default="both",
                    help="--node-files: the collector in a thread of the UI's process (as "
                         "before), in its own process (as `top` runs it), or both, one after "
                         "the other in fresh processes of this run (default)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="--node-files with --collector both: rounds of both variants, "
                         "the order reversed every other round")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--model-size", action="store_true", help=argparse.SUPPRESS)


def _body(args) -> dict:
    if args.refreshes < 4:
        sys.exit("bench_tui.py: --refreshes must be at least 4 (two per view)")
    if args.child:
        _child(args)
        return {}
    if args.node_files:
        NODE_AGED[0] = args.node_aged
        return _node_keys(args)
    base = _run_scale(args.baseline_containers, args.baseline_files, args.refreshes)
    big = _run_scale(args.containers, args.files, args.refreshes)
    for res, n_c, n_f in ((base, args.baseline_containers, args.baseline_files),
                          (big, args.containers, args.files)):
        one = _run_scale(n_c, n_f, args.refreshes, "--model-size")["model_mb"]
        res["two_models_mb"] = 2 * one
        res["ui_own_mb"] = res["rss_peak_mb"] - res["rss_start_mb"] - 2 * one
    rows = [("refresh CPU, Containers view (ms)", "containers_cpu_ms", 100.0),
            ("refresh CPU, Files view (ms)", "files_cpu_ms", 100.0),
            ("refresh wall, Containers view (ms)", "containers_wall_ms", None),
            ("refresh wall, Files view (ms)", "files_wall_ms", None),
            ("first refresh, wall (ms)", "first_ms", None),
            ("slowest refresh, wall (ms)", "max_ms", None),
            ("RSS before the first Model (MB)", "rss_start_mb", None),
            ("peak RSS, whole process (MB)", "rss_peak_mb", 150.0),
            ("  of which 2 Models: shown + next (MB)", "two_models_mb", None),
            ("  of which the UI's own state (MB)", "ui_own_mb", None)]
    print(f"erofs-top TUI benchmark: {args.refreshes} refreshes, headless 200x50, "
          f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"{'':40} {'baseline':>10} {'scale':>10} {'ratio':>7}  target")
    print(f"{'rows (containers / files)':40} {base['containers']:>5}/{base['files']:<5}"
          f"{big['containers']:>5}/{big['files']:<5}")
    for label, key, target in rows:
        ratio = big[key] / base[key] if base[key] else float("nan")
        verdict = ""
        if target is not None:
            verdict = f"< {target:g}  {'ok' if big[key] < target else 'OVER'}"
        print(f"{label:40} {base[key]:>10.1f} {big[key]:>10.1f} {ratio:>6.1f}x  {verdict}")
    return {"baseline": base, "scale": big}


def main() -> int:
    return benchlib.bench_main(__doc__.split("\n\n")[0], _add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
