"""Start-up: from command start to probes attached, this checkout against a baseline.

Each measurement starts a fresh Python process that does what every erofs-top
command does before its first refresh: import erofs_top.cli, then
open_collector() (this host's resolvers, the tier choice, and the probes
compiled, loaded and attached; the sharing probes too where the kernel has
inode_share), without seeding.  The process
prints a line once the probes are attached; the wall time from spawning it to
that line is the start-up.  The same runner is used for this checkout and for
the baseline (`git archive REF`, unpacked into a scratch directory), rounds
interleaved in alternating order, in the same run.  This checkout's own
stage split (erofs_top/kernel/startup.py, what `erofs-top doctor` prints) is
shown as medians next to it.

--exporter: the `erofs-top exporter` command instead (its own imports, the
listen socket, the probes, its first refresh), until its "serving" line on
stderr; no stage split.

Run:  sudo .venv/bin/python benchmarks/bench_startup.py [--baseline REF] [--rounds 7]
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import benchlib  # noqa: F401  (sets sys.path)
from benchlib import REPO

RUNNER = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
import erofs_top.cli                                  # what every command imports
from erofs_top.tiers import open_collector
assert erofs_top.cli.__file__.startswith(sys.argv[1]), erofs_top.cli.__file__
col = open_collector(seed=False)                      # resolvers, tier choice, probes
print("attached", flush=True)
clock = getattr(getattr(col, "source", col), "startup", None)
print(json.dumps({"tier": col.tier, "stages_s": clock.stages_s if clock else {}}), flush=True)
col.close()
"""

# `erofs-top exporter` of the tree in argv[1] on port argv[2], refreshing hourly
# (only the first refresh, in the start-up); it runs until the benchmark's SIGTERM
EXPORTER_RUNNER = r"""
import sys
sys.path.insert(0, sys.argv[1])
import erofs_top.cli
assert erofs_top.cli.__file__.startswith(sys.argv[1]), erofs_top.cli.__file__
erofs_top.cli.main(["exporter", "--listen", "127.0.0.1:" + sys.argv[2], "--interval", "3600",
                    "--kube-names", "off", "--no-drop-caps"])
"""


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_exporter_start(root: Path) -> tuple[float, float, dict]:
    """(wall s to the exporter's "serving" line, CPU s of the process, {})."""
    import signal
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-c", EXPORTER_RUNNER, str(root), str(free_port())],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in p.stderr:
        seen.append(line)
        if "erofs-top exporter: serving" in line:
            break
    else:
        p.wait()
        sys.exit(f"exporter start-up failed in {root}: {seen[-1:]}")
    wall = time.monotonic() - t0
    p.send_signal(signal.SIGTERM)
    p.stderr.read()
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, {"tier": "", "stages_s": {}}


def one_start(root: Path) -> tuple[float, float, dict]:
    """(wall s to "attached", CPU s of the whole process, its report)."""
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-c", RUNNER, str(root)], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    wall = time.monotonic() - t0
    if line.strip() != "attached":
        p.wait()
        sys.exit(f"start-up failed in {root}: {p.stderr.read().strip().splitlines()[-1:]}")
    report = json.loads(p.stdout.readline())
    _, status, usage = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, usage.ru_utime + usage.ru_stime, report


def unpack(ref: str, into: Path) -> Path:
    """The tree of git REF (erofs_top/ and probes/) under into/."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "erofs_top", "probes"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


def _add_args(ap) -> None:
    ap.add_argument("--baseline", default="main",
                    help="git ref to compare with (default main)")
    ap.add_argument("--baseline-tree", metavar="DIR",
                    help="compare with this unpacked tree (erofs_top/ and probes/, e.g. "
                         "`git archive REF erofs_top probes | tar -x -C DIR`) instead of "
                         "--baseline: for the qemu lab, whose copy of the checkout has no .git")
    ap.add_argument("--rounds", type=int, default=7, help="starts per tree (default 7)")
    ap.add_argument("--exporter", action="store_true",
                    help="time `erofs-top exporter` to its \"serving\" line (after its first "
                         "refresh) instead of open_collector() to probes attached")


def _body(args):
    with tempfile.TemporaryDirectory(prefix="erofs-top-bench-startup-") as tmp:
        if args.baseline_tree:
            base_tree = Path(args.baseline_tree).resolve()
            trees = {f"baseline {base_tree}": base_tree, "this checkout": REPO}
        else:
            rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short",
                                  args.baseline], check=True, capture_output=True,
                                 text=True).stdout.strip()
            trees = {f"baseline {args.baseline} ({rev})": unpack(args.baseline, Path(tmp)),
                     "this checkout": REPO}
        walls = {k: [] for k in trees}
        cpus = {k: [] for k in trees}
        stages: dict[str, list[float]] = {}
        tier = ""
        start = one_exporter_start if args.exporter else one_start
        start(REPO)              # warm the page cache (headers, LLVM) for both
        for rnd in range(args.rounds):
            order = list(trees) if rnd % 2 == 0 else list(reversed(trees))
            for name in order:
                wall, cpu, rep = start(trees[name])
                walls[name].append(wall)
                cpus[name].append(cpu)
                if trees[name] == REPO:
                    tier = rep["tier"]
                    for stage, s in rep["stages_s"].items():
                        stages.setdefault(stage, []).append(s)
    what = ("`erofs-top exporter` to serving (its best tier)" if args.exporter
            else f"start-up to probes attached (tier {tier})")
    print(f"{what}, {args.rounds} starts per tree, "
          f"interleaved; kernel {os.uname().release}")
    base = next(iter(trees))
    med = {k: statistics.median(v) for k, v in walls.items()}
    for name in trees:
        print(f"  {name:<28} wall median {med[name]:.3f} s (min {min(walls[name]):.3f}, "
              f"max {max(walls[name]):.3f}); process CPU median "
              f"{statistics.median(cpus[name]):.3f} s")
    print(f"  ratio this checkout / baseline: {med['this checkout'] / med[base]:.2f}x wall")
    if stages:
        print("  this checkout by stage (medians; python start + imports has 10 ms steps):")
    for stage, v in stages.items():
        print(f"    {stage:<40} {statistics.median(v):.3f} s")
    return {"wall_s": walls, "process_cpu_s": cpus, "stages_s": stages}


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=True)


if __name__ == "__main__":
    sys.exit(main())
