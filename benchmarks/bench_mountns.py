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

import argparse
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


def main() -> int:
    benchlib.need_root()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--procs", default="50,200", help="namespaces to start, comma-separated")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{'namespaces':>10} {'processes':>9} {'tables':>6} {'baseline us':>11} "
          f"{'all ns us':>9} {'ratio':>6} {'us/process':>10}")
    for n in (int(x) for x in args.procs.split(",")):
        procs = _start(n)
        try:
            nprocs = len([p for p in os.listdir("/proc") if p.isdigit()])
            base = SysMounts("/proc/self/mountinfo")
            ns = MountNamespaces(scan_every_s=0)
            every = SysMounts(namespaces=ns)
            t_base = _time(base.refresh, args.repeat)
            t_all = _time(every.refresh, args.repeat)
            print(f"{n:>10} {nprocs:>9} {len(every.tables):>6} {t_base * 1e6:>11.0f} "
                  f"{t_all * 1e6:>9.0f} {t_all / t_base:>6.0f} {t_all / nprocs * 1e6:>10.1f}")
        finally:
            for p in procs:     # each in its own session: the group goes (sleeps too)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
            for p in procs:
                p.wait()
    return 0


if __name__ == "__main__":
    sys.exit(benchlib.run(main))
