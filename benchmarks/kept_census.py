"""What the aggregator keeps per file, by allocation site (tracemalloc).

SyntheticNode(--files, --containers) (benchmarks/synthetic_node.py), its
Readings made (naming what changed, as a dirty-set source hands them) and
collected before tracing starts; then one Aggregator.update() (recheck
slices on, as the exporter runs it), the Model dropped, and the bytes still
allocated since the start, per source line, divided by the number of files.
Not a timing: memory only (the node's own objects are made before tracing).

Run:  .venv/bin/python benchmarks/kept_census.py --files 50000 --containers 1000 --lines 25
"""
from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc

import benchlib  # (also sets sys.path)
from synthetic_node import SyntheticNode

from erofs_top.aggregate import Aggregator


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--lines", type=int, default=25, help="allocation sites shown")
    args = ap.parse_args()
    node = SyntheticNode(args.files, args.containers)
    res = node.resolvers()
    readings = node.readings(by_file=True, hint=True)
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    agg = Aggregator()
    model = agg.update(readings, *res, tier="tracepoint", started_at=0.0)
    del model
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    stats = after.compare_to(before, "lineno")
    n = args.files
    total = sum(s.size_diff for s in stats)
    print(f"{n} files x {args.containers} containers: the aggregator keeps "
          f"{total / n:.0f} B per file ({total / 2**20:.1f} MiB)")
    benchlib.print_alloc_sites(stats, args.lines, n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
