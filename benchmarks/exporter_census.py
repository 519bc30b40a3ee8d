"""What the whole exporter keeps, by allocation site (tracemalloc), after
its steady refreshes.

bench_exporter.py's node part, --map-state --scraped: SyntheticNode(--files,
--containers) made first (untraced: it stands for the kernel's maps; or in
another process, --node-process; --rereads, --aged N: benchlib.add_age_args), then
traced: the probe source's kept state (ChunkState, IoState) fed as a map
read feeds it, the real Collector, aggregator and Exporter, the first
refresh, one OpenMetrics + gzip scrape, --steps steady refreshes at --churn
% of the chunk entries; then the bytes still allocated per source line and
per file (module).  Memory only, not a timing (tracemalloc slows it ~3x).

Run:  .venv/bin/python benchmarks/exporter_census.py --files 250000 --lines 40
"""
from __future__ import annotations

import argparse
import gc
import tracemalloc

import benchlib  # (also sets sys.path)
from bench_exporter import MapStateSource, NodeProcessSource

from erofs_top.collector import Collector
from erofs_top.exporter.server import Exporter


def _scrape(ex) -> int:
    env = {"PATH_INFO": "/metrics", "HTTP_ACCEPT_ENCODING": "gzip",
           "HTTP_ACCEPT": "application/openmetrics-text;version=1.0.0"}
    return len(b"".join(ex(env, lambda *a: None)))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=250_000)
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--churn", type=float, default=1.0, help="%% of chunk entries per refresh")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--lines", type=int, default=40, help="allocation sites shown")
    ap.add_argument("--node-process", action="store_true",
                    help="the node in another process (node_process.py, as bench_exporter.py "
                         "--node-process): the files' FileInfo and digests derived when the "
                         "aggregator asks, so what it keeps of them is traced too")
    benchlib.add_age_args(ap)
    args = ap.parse_args()
    if args.node_process:
        from node_process import NodeProcess
        node = NodeProcess(args.files, args.containers, rereads=args.rereads, aged=args.aged,
                           fraction=args.churn / 100)
    else:
        node = benchlib.aged_node(args)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    src = (NodeProcessSource if args.node_process else MapStateSource)(node, args.churn / 100)
    col = Collector(src, mounts=node.mounts, cgroups=node.cgroups, content=node.content)
    ex = Exporter(col, interval=10.0, log=lambda m: None, lean_models=True)  # as the exporter command
    ex.refresh_once()
    _scrape(ex)
    for _ in range(args.steps):
        ex.refresh_once()
    gc.collect()
    snap = tracemalloc.take_snapshot()
    tracemalloc.stop()
    if args.node_process:
        node.close()
    n = args.files
    by_line = snap.compare_to(base, "lineno")
    total = sum(s.size_diff for s in by_line)
    print(f"{n} files x {args.containers} containers, {args.steps} steady refreshes at "
          f"{args.churn:g} %: the exporter keeps {total / 2**20:.1f} MiB "
          f"({total / n:.0f} B per file) beside the node")
    print("by file:")
    for s in snap.compare_to(base, "filename")[:15]:
        fr = s.traceback[0]
        print(f"  {s.size_diff / 2**20:7.1f} MiB {s.count_diff:>9} blocks  "
              f"{'/'.join(fr.filename.rsplit('/', 3)[-2:])}")
    print("by line:")
    benchlib.print_alloc_sites(by_line, args.lines, n)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
