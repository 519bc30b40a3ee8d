"""How a node's steady refresh changes as it runs: the exporter's refresh
CPU, the aggregator's and the synthetic node's sizes, and the heap, every
--every refreshes.

The real Collector and Exporter (as `erofs-top exporter` runs them: lean
models, the GC frozen after each refresh) on SyntheticNode(--files,
--containers) (benchmarks/synthetic_node.py), --churn % of the chunk
entries changed before each refresh (making the churn is left out of the
CPU, as in bench_exporter.py).  --rereads: churn's first reads are of files
evicted whole before (the node keeps its files); --aged N: N churns made
before the first refresh (SyntheticNode.age).  Each report line: the
refresh's CPU (median of the last --every), files and content groups, the
blocks Python has allocated (sys.getallocatedblocks after a full
collection: what stays alive, garbage excluded) and the process RSS.  A
cost that climbs while the node's sizes stay is the node ageing (more
distinct unions), or a leak if the blocks climb without end
(docs/performance.md, "A fresh synthetic node flatters the targets").
--round-trip: after each refreshed churn the node is put back as it was
after the full pass (every file's list and io row, named as changed) and
refreshed again: the kept state then returns to the same files each time,
so the blocks must level off (caches filling) instead of growing.

Run:  .venv/bin/python benchmarks/aging_census.py --refreshes 80 --every 20 [--rereads] [--aged 300]
      [--round-trip]
"""
from __future__ import annotations

import gc
import statistics
import sys
import time

import benchlib  # (also sets sys.path)
from bench_exporter import ChurnSource

from erofs_top.collector import Collector
from erofs_top.exporter.server import Exporter


def _heap_blocks() -> int:
    """Blocks alive after a full collection (the frozen generation included)."""
    gc.unfreeze()
    gc.collect()
    blocks = sys.getallocatedblocks()
    gc.freeze()
    return blocks


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def _sizes(agg, node) -> dict:
    return {"files": len(agg.entries), "size_groups": len(agg.size_keys),
            "content_groups": len(agg.ckey_keys), "node_files": len(node.files),
            "heap_blocks": _heap_blocks(), "rss_mb": round(_rss_mb())}


def _body(args) -> dict:
    node = benchlib.aged_node(args)
    src = ChurnSource(node, args.churn / 100)
    col = Collector(src, mounts=node.mounts, cgroups=node.cgroups, content=node.content)
    ex = Exporter(col, interval=10.0, log=lambda m: None, lean_models=True)
    ex.refresh_once()
    rows = [{"refresh": 0, "cpu_ms": None, **_sizes(col.aggregator, node)}]
    print(f"{args.files} files x {args.containers} containers, {args.churn:g} % churn, "
          f"{'re-reads' if args.rereads else 'new files'}, aged {args.aged} churns")
    print(f"  after the full pass: {rows[0]}")
    back = _Snapshot(node, src) if args.round_trip else None
    cpus = []
    for i in range(1, args.refreshes + 1):
        churn0, c0 = src.churn_s, time.process_time()
        ex.refresh_once()
        cpus.append(time.process_time() - c0 - (src.churn_s - churn0))
        if back is not None:
            back.restore()
            ex.refresh_once()
        if i % args.every == 0:
            row = {"refresh": i, "cpu_ms": round(statistics.median(cpus[-args.every:]) * 1e3),
                   **_sizes(col.aggregator, node)}
            rows.append(row)
            print(f"  refreshes {i - args.every + 1}-{i}: {row}", flush=True)
    return {"rows": rows}


class _Snapshot:
    """--round-trip: the node as it is now, to be put back (no churn before
    the read that follows a restore)."""

    def __init__(self, node, src):
        self.node, self.src = node, src
        self.files, self.io, self.io_by_key = dict(node.files), dict(node.io), dict(node.io_by_key)
        self.lists = (list(node.resident), list(node.evicted), dict(node.resident_at))

    def restore(self) -> None:
        node = self.node
        node.changed |= _differing(node.files, self.files)
        node.changed_io |= _differing(node.io_by_key, self.io_by_key)
        node.files, node.io, node.io_by_key = dict(self.files), dict(self.io), dict(self.io_by_key)
        resident, evicted, at = self.lists
        node.resident, node.evicted, node.resident_at = list(resident), list(evicted), dict(at)
        self.src.first = True       # (ChurnSource: no churn before its next read)


def _differing(now: dict, then: dict) -> set:
    return {k for k in now.keys() | then.keys() if now.get(k) is not then.get(k)}


def _add_args(ap) -> None:
    benchlib.add_phase_args(ap, 0)
    ap.add_argument("--refreshes", type=int, default=80)
    ap.add_argument("--every", type=int, default=20, help="refreshes per report line")
    benchlib.add_age_args(ap)
    ap.add_argument("--round-trip", action="store_true",
                    help="after each refresh, the node put back as it was after the full "
                    "pass and refreshed again (a leak check: the blocks must level off)")


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
