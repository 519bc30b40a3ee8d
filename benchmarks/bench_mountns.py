"""What reading every mount namespace costs a refresh (resolve/mountns.py).

Starts N processes, each in a mount namespace of its own with one tmpfs mounted
in it (unshare -m), plus N processes sharing one namespace, then times
``SysMounts.refresh()`` with the namespace scan forced on every call
(scan_every_s=0: the worst case; the live default scans at most once a second)
against the baseline, a SysMounts over /proc/self/mountinfo only, in the same
run.  Root (unshare, mount).  Reports the median of --repeat runs of 20 calls.

    sudo .venv/bin/python benchmarks/bench_mountns.py [--procs 50,200]
"""
from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import time

import benchlib
from erofs_top.resolve.mounts import SysMounts
from erofs_top.resolve.mountns import MountNamespaces

CALLS = 20


def _time(fn, repeat: int) -> float:
    """Seconds per call: the median of repeat runs of CALLS calls."""
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        for _ in range(CALLS):
            fn()
        runs.append((time.perf_counter() - t) / CALLS)
    return statistics.median(runs)


def _start(n: int) -> list[subprocess.Popen]:
    procs = []
    for _ in range(n):      # own namespaces, one tmpfs each
        procs.append(subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             "mount -t tmpfs bench /mnt && exec sleep 600"], start_new_session=True))
    shared = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                               "for i in $(seq %d); do sleep 600 & done; wait" % n],
                              start_new_session=True)
    procs.append(shared)
    time.sleep(1.0)
    return procs


def _body(args) -> dict:
    figures = {}
    print(f"{'namespaces':>10} {'processes':>9} {'tables':>6} {'baseline us':>11} "
          f"{'all ns us':>9} {'ratio med':>9} {'ratio best':>10} {'us/process':>10}")
    for n in (int(x) for x in args.procs.split(",")):
        procs = _start(n)
        try:
            nprocs = len([p for p in os.listdir("/proc") if p.isdigit()])
            cases = {"baseline": SysMounts("/proc/self/mountinfo"),
                     "all-namespaces": SysMounts(namespaces=MountNamespaces(scan_every_s=0))}
            vals = benchlib.interleaved(list(cases), args.repeat,
                                        lambda case, _rnd: _time(cases[case].refresh, 1))
            r = benchlib.ratios(vals, "baseline")["all-namespaces"]
            t_base = benchlib.median(vals["baseline"])
            t_all = benchlib.median(vals["all-namespaces"])
            tables = len(cases["all-namespaces"].tables)
            print(f"{n:>10} {nprocs:>9} {tables:>6} {t_base * 1e6:>11.0f} {t_all * 1e6:>9.0f} "
                  f"{r['median_ratio']:>9.0f} {r['best_of_ratio']:>10.0f} "
                  f"{t_all / nprocs * 1e6:>10.1f}")
            figures[str(n)] = {"processes": nprocs, "tables": tables, "baseline_s": t_base,
                               "all_namespaces_s": t_all, **r}
        finally:
            for p in procs:     # each in its own session: the group goes (sleeps too)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            for p in procs:
                p.wait()
    return figures


def _args(ap) -> None:
    ap.add_argument("--procs", default="50,200", help="namespaces to start, comma-separated")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved rounds per case")


if __name__ == "__main__":
    sys.exit(benchlib.bench_main(__doc__, _args, _body, root=True))
