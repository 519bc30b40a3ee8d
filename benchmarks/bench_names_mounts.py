"""Names of an image mounted many times: what the content resolver keeps
(bench_names.py times one mount's names read from the image against a walk).

One EROFS image of --files files (in --dirs directories; names of ~40
bytes, as a distribution's /usr has them) built once, mounted --mounts times
(file-backed: one mount per container of one image, as composefs and
per-container mounts of one image have it).  Each --tree checkout, in a
process of its own: a fresh ImageContent asked file_info() of --asked files
of every mount (the files a refresh maps: the resident ones), then the
memory it holds (tracemalloc: the bytes allocated since it was made, after a
collection; RSS delta beside) and the CPU of the indexing.  Interleaved
--rounds times; ratios against the first tree.

Run (root, ~1 min):
  flock /tmp/erofs-top-heavy.lock .venv/bin/python benchmarks/bench_names_mounts.py \\
      --tree base=/tmp/base --tree new=.
"""
from __future__ import annotations

import os
import sys

import benchlib

from erofs_top.workload import Stack, build_image

CHILD = r"""
import gc, json, os, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
from erofs_top.resolve.content import ImageContent
from erofs_top.resolve.mounts import SysMounts
devs, asked = [int(d) for d in sys.argv[2].split(",")], int(sys.argv[3])
sm = SysMounts()
sm.refresh()
infos = [sm.by_dev(d) for d in devs]
inos = sorted(os.stat(os.path.join(infos[0].mountpoint, p)).st_ino for p in sys.argv[4:4 + asked])

def rss():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) * 1024

gc.collect()
rss0 = rss()
tracemalloc.start()
t0 = time.process_time()
ic = ImageContent(digest_budget_bytes_per_s=None)
for mi in infos:
    for ino in inos:
        assert ic.file_info(mi, ino) is not None
cpu = time.process_time() - t0
gc.collect()
kept = tracemalloc.get_traced_memory()[0]
tracemalloc.stop()
print(json.dumps({"kept_bytes": kept, "rss_delta_bytes": rss() - rss0, "cpu_s": cpu}))
"""


def _add_args(ap) -> None:
    benchlib.add_tree_args(ap)
    ap.add_argument("--files", type=int, default=5000)
    ap.add_argument("--dirs", type=int, default=50)
    ap.add_argument("--mounts", type=int, default=50)
    ap.add_argument("--asked", type=int, default=250,
                    help="files asked of each mount (file_info: as the files a refresh maps)")


def _image(stack: Stack, files: int, dirs: int):
    src = stack.dir / "src"
    names = []
    for j in range(files):
        rel = f"usr/lib/x86_64-linux-gnu/pkg{j % dirs:03d}/libexample-component-{j:06d}.so"
        p = src / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x" * (1 + j % 100))
        names.append(rel)
    return build_image(src, stack.dir / "names.erofs"), names


def _body(args) -> dict:
    trees = benchlib.trees_of(args)
    with Stack(prefix="erofs-top-bench-names-") as stack:
        img, names = _image(stack, args.files, args.dirs)
        mounts = [stack.mount(img, f"m{i}") for i in range(args.mounts)]
        devs = ",".join(str(m.dev) for m in mounts)
        asked = names[:: max(1, len(names) // args.asked)][: args.asked]
        print(f"{args.files} files in one image, {args.mounts} mounts of it, file_info of "
              f"{len(asked)} files asked of each mount; {os.uname().release}", flush=True)
        values = benchlib.interleaved(
            trees, args.rounds,
            lambda name, _round: benchlib.child_json(CHILD, trees[name], devs, len(asked), *asked))
    out = {}
    for name, runs in values.items():
        kept = [r["kept_bytes"] / 2**20 for r in runs]
        rss = [r["rss_delta_bytes"] / 2**20 for r in runs]
        cpu = [r["cpu_s"] for r in runs]
        out[name] = {"kept_mib": kept, "rss_delta_mib": rss, "cpu_s": cpu}
        print(f"  {name}: resolver keeps {benchlib.median(kept):.1f} MiB (tracemalloc; RSS "
              f"+{benchlib.median(rss):.1f} MiB), indexing + file_info "
              f"{benchlib.median(cpu) * 1e3:.0f} ms CPU (medians of {len(runs)})")
    out["kept_ratio"] = benchlib.print_tree_ratios(
        {k: v["kept_mib"] for k, v in out.items()}, trees)
    print("  CPU:")
    out["cpu_ratio"] = benchlib.print_tree_ratios(
        {k: v["cpu_s"] for k, v in out.items() if k in trees}, trees)
    return out


if __name__ == "__main__":
    sys.exit(benchlib.bench_main(__doc__, _add_args, _body, root=True))
