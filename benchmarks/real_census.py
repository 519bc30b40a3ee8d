"""What the real collector keeps per resident file (tracemalloc), after its
first refresh and 3 more, on bench_node_real.py's node: --images (20) EROFS
images of --files (2,500) small files, file-backed mounts, read by
--cgroups (50) cgroups; probes attached (tracepoint tier).  By module and
by line.  The synthetic benchmarks' resolvers are fixtures: this is the
real content resolver's share (names, inodes, page maps, digests) beside
the aggregator's.  Memory only, not a timing (tracemalloc slows it).

Run (root, ~2 min):
  flock /tmp/erofs-top-heavy.lock .venv/bin/python benchmarks/real_census.py
"""
from __future__ import annotations

import gc
import os
import sys
import tracemalloc

import benchlib
from bench_node_real import READER, make_images

from erofs_top.workload import Stack


def _add_args(ap) -> None:
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--files", type=int, default=2500, help="files per image")
    ap.add_argument("--cgroups", type=int, default=50)
    ap.add_argument("--lines", type=int, default=25, help="allocation sites shown")


def _census(col, lines: int) -> dict:
    gc.collect()
    tracemalloc.start(3)
    base = tracemalloc.take_snapshot()
    m = col.refresh()
    for _ in range(3):
        col.refresh()
    gc.collect()
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    files = max(1, m.health.files_total)
    diff = snap.compare_to(base, "filename")
    total = sum(s.size_diff for s in diff)
    print(f"{files} resident files: the collector keeps {total / 2**20:.1f} MiB "
          f"({total / files:.0f} B per file)")
    for s in diff[:14]:
        print(f"  {s.size_diff / 2**20:7.1f} MiB {s.count_diff:>8} blocks  "
              f"{'/'.join(s.traceback[0].filename.rsplit('/', 3)[-2:])}")
    print("by line:")
    benchlib.print_alloc_sites(snap.compare_to(base, "lineno"), lines, files)
    return {"files": files, "kept_mib": total / 2**20, "bytes_per_file": total / files}


def _body(args) -> dict:
    from erofs_top.tiers import open_collector
    prefix = f"erofs-top-census-{os.getpid()}"
    with Stack(prefix="erofs-top-census-") as stack:
        images = make_images(stack, args.images, args.files)
        mounts = [stack.mount(img, f"m{i}") for i, img in enumerate(images)]
        cgs = [stack.cgroup(f"{prefix}/c{c}") for c in range(args.cgroups)]
        for c, cg in enumerate(cgs):
            cg.run([sys.executable, "-S", "-c", READER, str(mounts[c % len(mounts)].path(""))])
        col = open_collector()
        try:
            return _census(col, args.lines)
        finally:
            col.close()


if __name__ == "__main__":
    sys.exit(benchlib.bench_main(__doc__, _add_args, _body, root=True))
