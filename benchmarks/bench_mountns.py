"""Mount tables of many mount namespaces: what a refresh pays to find and
read them (resolve/mountns.py, resolve/mounts.py SysMounts).

A node runs a mount namespace per container; erofs-top looks for EROFS
mounts in every one (an image may be mounted inside one).  This makes
--namespaces processes each in a new mount namespace of its own (`unshare
-m sleep`; their tables are copies of this one's, with their own mount ids),
then each --tree checkout, in a process of its own, times (CPU, median of
--repeat) MountNamespaces' scan of /proc, and SysMounts.refresh() with a
scan each time (as the exporter at its 10 s interval: the scan is due at
every refresh) and with the tables kept (nothing changed).  Interleaved
--rounds times; the sleepers are killed at the end, also on failure.

Run (root, ~10 s):
  .venv/bin/python benchmarks/bench_mountns.py --tree base=/tmp/base --tree new=.
"""
from __future__ import annotations

import subprocess
import sys
import time

import benchlib

CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
from erofs_top.resolve.mountns import MountNamespaces
from erofs_top.resolve.mounts import SysMounts
repeat = int(sys.argv[2])

def cpu_ms(fn):
    out = []
    for _ in range(repeat):
        t = time.process_time()
        fn()
        out.append((time.process_time() - t) * 1e3)
    return statistics.median(out)

ns = MountNamespaces(scan_every_s=0)
scanning = SysMounts(namespaces=MountNamespaces(scan_every_s=0))
kept = SysMounts(namespaces=MountNamespaces(scan_every_s=1e9))
scanning.refresh(), kept.refresh()
print(json.dumps({"tables": len(ns.tables()), "scan_ms": cpu_ms(ns.tables),
                  "refresh_scanning_ms": cpu_ms(scanning.refresh),
                  "refresh_kept_ms": cpu_ms(kept.refresh)}))
"""


def _add_args(ap) -> None:
    benchlib.add_tree_args(ap)
    ap.add_argument("--namespaces", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=9)


def _body(args) -> dict:
    trees = benchlib.trees_of(args)
    sleepers = []
    try:
        for _ in range(args.namespaces):
            sleepers.append(subprocess.Popen(
                ["unshare", "-m", "--propagation", "unchanged", "sleep", "3600"]))
        time.sleep(1.0)         # (each has made its namespace)
        print(f"{args.namespaces} extra mount namespaces (a process each); CPU per call, "
              f"median of {args.repeat}:", flush=True)
        values = benchlib.interleaved(
            trees, args.rounds,
            lambda name, _round: benchlib.child_json(CHILD, trees[name], args.repeat))
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
    out = {}
    for name, runs in values.items():
        out[name] = {k: [r[k] for r in runs] for k in runs[0]}
        med = {k: benchlib.median(v) for k, v in out[name].items()}
        print(f"  {name}: {med['tables']:.0f} tables; scan {med['scan_ms']:.1f} ms, refresh "
              f"with a scan {med['refresh_scanning_ms']:.1f} ms, refresh with the tables kept "
              f"{med['refresh_kept_ms']:.1f} ms")
    print("  refresh with a scan:")
    out["ratio"] = benchlib.print_tree_ratios(
        {k: v["refresh_scanning_ms"] for k, v in out.items()}, trees)
    return out


if __name__ == "__main__":
    sys.exit(benchlib.bench_main(__doc__, _add_args, _body, root=True))
