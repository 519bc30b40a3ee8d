"""Every issue 11 (node scale) target's benchmark in one run, this checkout
against a base tree, each command's output kept in a directory.

The targets (docs/performance.md, "Refresh cost vs keys"): refresh at 20,000
entries and at 250,000 files (0.1 % and 1 % changed, full recompute, one
image in 100 pods), fresh and aged 300 churns; the exporter's CPU, RSS and
scrape p99; the TUI's key to repaint; the probes per event; the cold read;
start-up; the real node (50,000 files, once vs snapshot, refresh times,
image reads) and its collector's memory.  A run takes about 35-45 minutes on
2 cores; run nothing else heavy beside it.

The base is a tree (``git archive REF | tar -x -C DIR``): the commands
marked "base" run there too, with its own benchmarks and erofs_top (they
put their tree first on sys.path), in the same run.  ``--only`` picks
commands by name, ``--list`` prints them.  Each command's output goes to
OUT/NAME.log; OUT/index.log has the start, end and exit of each; the lines
that carry the figures are printed as they come (``--quiet``: not).

    sudo .venv/bin/python benchmarks/issue11_targets.py --base /tmp/base --out /tmp/t11
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NODE = "--files 250000 --containers 1000"
SLICES = "--no-full --fractions 0.1,1 --containers 10,1000 --steps 5 --recheck-slices 512"
AGED = "--rereads --aged 300"

# (name, runs in the base too, benchmark and its arguments, the lines that carry the figures)
COMMANDS: list[tuple[str, bool, str, str]] = [
    ("refresh_fresh", True, f"bench_refresh.py --files 10000,250000 {SLICES}",
     r"files|ms"),
    ("refresh_aged", False, f"bench_refresh.py --files 20000,250000 {SLICES} {AGED}",
     r"files|ms"),
    ("per_image", True, f"refresh_phases.py {NODE} --churn 1 --steps 4 --per-image 100",
     r"CPU per refresh"),
    ("per_image_aged", False,
     f"refresh_phases.py {NODE} --churn 1 --steps 4 --per-image 100 {AGED}",
     r"CPU per refresh"),
    ("zero_one_aged", False, f"refresh_phases.py {NODE} --churn 0.1 --steps 6 {AGED}",
     r"CPU per refresh|build_model|_rows"),
    ("versions", False, "bench_versions.py --tree base={base} --tree new={repo} "
     "--node-from {repo} --files 250000 --rounds 1", r"full|steady|/ base|median"),
    ("versions_aged", False, "bench_versions.py --tree base={base} --tree new={repo} "
     "--node-from {repo} --files 250000 --rounds 1 --aged 300", r"full|steady|/ base|median"),
    ("exporter", True, "bench_exporter.py --parts node --scraped", r"CPU|RSS|p99|refresh"),
    ("exporter_map_state", False, "bench_exporter.py --parts node --scraped --map-state",
     r"CPU|RSS|p99"),
    ("exporter_process", True, "bench_exporter.py --parts node --scraped --node-process",
     r"CPU|RSS|p99"),
    ("exporter_aged", False, "bench_exporter.py --parts node --scraped --rereads "
     "--node-aged 300 --node-refreshes 10", r"CPU|RSS|p99"),
    ("tui", False, "bench_tui.py --node-files 250000 --presses 20 --rounds 1",
     r"max|repaint|ms"),
    ("tui_aged", False, "bench_tui.py --node-files 250000 --presses 20 --rounds 1 "
     "--node-aged 300", r"max|repaint|ms"),
    ("probes", False, "bench_probes.py --rounds 1", r"x\b|ratio|erofs|other"),
    ("coldread", False, "bench_coldread.py", r"with/|met|missed|unresolved"),
    ("startup", False, "bench_startup.py --baseline-tree {base} --rounds 3",
     r"start|median|compile|verifier"),
    ("node_real", True, "bench_node_real.py", r"within|first|unchanged|more image|RSS"),
    ("node_real_reads", False, "bench_node_real.py --count-reads --steady 1",
     r"metadata reads|MiB  |first"),
    ("node_real_passes", False, "bench_node_real.py --time-passes --exporter-heap --steady 1",
     r"resolver passes|first|RSS"),
    ("node_real_mounts", True, "bench_node_real.py --images 2 --mounts-per-image 25",
     r"within|first|unchanged|more image"),
    # a few files of every image read between refreshes (the base's bench_node_real.py
    # has no --scattered before 9ac89f2: copy this one into the base tree to compare)
    ("node_real_scattered", False, "bench_node_real.py --scattered 10 --exporter-heap",
     r"within|first|unchanged|files of each|more image|RSS"),
    # pods replaced on a node of one mount per container (the base's bench_node_real.py
    # has no --replace before it came: copy this one into the base tree to compare)
    ("node_real_replace", False, "bench_node_real.py --images 2 --mounts-per-image 25 "
     "--replace 3 --steady 1", r"within|first|unchanged|more image|replaced"),
    ("real_census", True, "real_census.py", r"keeps"),
    ("readings_release", False, "readings_release.py --files 250000 --churn 0.1",
     r"ms"),
]


def _run(name: str, tree: Path, argv: list[str], out: Path, pattern: str, quiet: bool) -> int:
    """One benchmark from ``tree`` (its own benchmarks/ and erofs_top), its
    output to OUT/NAME.log; returns its exit status."""
    index = out / "index.log"
    line = f"=== {time.strftime('%T')} {name} ({tree}): {' '.join(argv)}"
    with open(index, "a") as f:
        f.write(line + "\n")
    print(line, flush=True)
    with open(out / f"{name}.log", "w") as log:
        proc = subprocess.run([sys.executable, *argv], cwd=tree, stdout=log,
                              stderr=subprocess.STDOUT)
    end = f"    exit {proc.returncode} at {time.strftime('%T')}"
    with open(index, "a") as f:
        f.write(end + "\n")
    if not quiet:
        rx = re.compile(pattern)
        for text in (out / f"{name}.log").read_text(errors="replace").splitlines():
            if rx.search(text):
                print("    " + text[:200])
    print(end, flush=True)
    return proc.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog=__doc__.split("\n\n", 1)[1],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", type=Path, required=False,
                    help="the base tree (git archive of a ref, unpacked); needed by the "
                         "commands that compare (bench_versions, start-up) and the base runs")
    ap.add_argument("--out", type=Path, default=Path("/tmp/issue11-targets"),
                    help="directory for the logs (default %(default)s)")
    ap.add_argument("--only", default="", help="comma-separated command names (see --list)")
    ap.add_argument("--list", action="store_true", help="print the commands and exit")
    ap.add_argument("--quiet", action="store_true", help="do not print the figures' lines")
    args = ap.parse_args()
    only = {n for n in args.only.split(",") if n}
    unknown = only - {c[0] for c in COMMANDS}
    if unknown:
        ap.error(f"unknown command name(s): {', '.join(sorted(unknown))} (see --list)")
    base = args.base.resolve() if args.base else None
    if base is not None and not (base / "benchmarks" / "benchlib.py").is_file():
        ap.error(f"--base {base}: not a tree of this project (no benchmarks/benchlib.py)")
    todo = [c for c in COMMANDS if not only or c[0] in only]
    if args.list:
        for name, in_base, cmd, _ in todo:
            print(f"{name:20} {'main+base' if in_base else 'main':10} {cmd}")
        return 0
    needs_base = [c[0] for c in todo if c[1] or "{base}" in c[2]]
    if needs_base and base is None:
        ap.error(f"--base is needed by: {', '.join(needs_base)}")
    if os.geteuid() != 0:
        ap.error("run as root: the probes, the real node and the cold read need it")
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name, in_base, cmd, pattern in todo:
        argv = ["benchmarks/" + a if i == 0 else a for i, a in
                enumerate(cmd.format(base=base, repo=REPO).split())]
        if _run(name, REPO, argv, args.out, pattern, args.quiet):
            failed.append(name)
        if in_base and _run(name + "_base", base, argv, args.out, pattern, args.quiet):
            failed.append(name + "_base")
    print(f"logs in {args.out}" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
