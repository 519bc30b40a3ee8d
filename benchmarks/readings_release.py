"""What a steady update pays to let go of the previous Readings, by source.

The aggregator keeps parts of each Readings (its io rows by key, its chunks
by file) until the next update replaces them, so whatever the previous
Readings held is freed inside the next timed update.  Two sources on the
same SyntheticNode(--files, --containers), --churn % of the chunk entries
changed before each refresh, a kept Aggregator (re-derivation slices off):

  synthetic  node.readings(by_file=True, hint=True): whole copies (a list of
             every chunk, dicts of every file and io row), as the synthetic
             benchmarks feed the aggregator;
  map-state  bench_exporter.MapStateSource: the probe source's kept state
             (maps.ChunkState, IoState) fed the changed keys; its Readings
             are views of that state, as TracepointSource's.

Refreshes alternate (after --settle untimed): "freed", the harness drops its
reference to the previous Readings before the update (the aggregator frees
what it held of them inside it); "kept", the harness holds them until the
update is timed.  The difference is the release's cost in the update.
Medians of --steps each, CPU ms (time.process_time).

Run:  .venv/bin/python benchmarks/readings_release.py --files 250000 --churn 0.1
"""
from __future__ import annotations

import gc
import statistics
import sys
import time

import benchlib


def _one_source(name: str, node, args) -> dict:
    from bench_exporter import MapStateSource

    from erofs_top.aggregate import Aggregator
    if name == "map-state":
        src = MapStateSource(node, args.churn / 100)
        read = src.read
    else:
        def read():
            node.churn(args.churn / 100)
            return node.readings(by_file=True, hint=True)
    agg = Aggregator(recheck_slices=0)
    agg.update(node.readings(by_file=True, hint=True) if name != "map-state" else read(),
               *node.resolvers(), tier="tracepoint", started_at=0.0)
    times: dict[str, list[float]] = {"freed": [], "kept": []}
    r = None
    for step in range(args.settle + 2 * args.steps):
        prev, r = r, read()
        how = "kept" if step % 2 else "freed"
        if how == "freed":
            prev = None
        gc.collect()
        t = time.process_time()
        agg.update(r, *node.resolvers(), tier="tracepoint", started_at=0.0)
        spent = time.process_time() - t
        del prev
        if step >= args.settle:
            times[how].append(spent * 1e3)
    out = {how: statistics.median(v) for how, v in times.items()}
    print(f"  {name:10} freed {out['freed']:6.1f} ms   kept {out['kept']:6.1f} ms   "
          f"release {out['freed'] - out['kept']:+5.1f} ms   "
          f"(each: freed {', '.join(f'{x:.1f}' for x in times['freed'])}; "
          f"kept {', '.join(f'{x:.1f}' for x in times['kept'])})")
    return {**out, "each": times}


def _body(args) -> dict:
    print(f"{args.files} files x {args.containers} containers, {args.churn:g} % churn, "
          f"medians of {args.steps} updates each (CPU)")
    out = {}
    for name in ("synthetic", "map-state"):
        node = benchlib.aged_node(args)         # a node of its own per source
        out[name] = _one_source(name, node, args)
        del node
        gc.collect()
    return out


def _add_args(ap) -> None:
    benchlib.add_phase_args(ap, 5)
    ap.add_argument("--settle", type=int, default=2, help="untimed updates first")
    benchlib.add_age_args(ap)


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
