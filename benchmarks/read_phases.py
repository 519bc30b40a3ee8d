"""Where a steady incremental TracepointSource.read() goes, phase by phase
(root: real BPF maps filled from user space, as bench_refresh.py
--probe-read does).

The maps get --entries chunk entries (16 per file) and a quarter as many io
entries (at most the map's size); one full read, then --steps steady reads,
each after --churn % of the chunk entries changed from user space and were
marked dirty as the probe marks them (--seeded: every page of the fill
seeded, as pages resident before the probes attached are).  Each phase of
the read (methods of the source, its DirtyReader, ChunkState and IoState,
and a few functions) is wrapped in a timer (time.perf_counter); "rest" is the read's time not in
any timed phase (Readings, the wrappers, the with-blocks).  Medians per
read; the GC as in the exporter (objects alive after each read frozen).

Run:  sudo .venv/bin/python benchmarks/read_phases.py --entries 600000 --churn 1
"""
from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time

import benchlib  # noqa: F401  (sets sys.path)
import bench_refresh

from erofs_top.kernel import maps, probes

TIMED: dict[str, list[float]] = {}


def _wrap(owner, name: str, label: str) -> None:
    fn = getattr(owner, name)

    def timed(*a, **kw):
        t = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            TIMED.setdefault(label, [0.0])[-1] += time.perf_counter() - t
    setattr(owner, name, timed)


PHASES = [
    (probes.TracepointSource, "_sync_mounts", "sync mounts"),
    (maps.DirtyReader, "drain", "dirty drain (gen bump, batch read, split, delete)"),
    (maps.RawBatch, "read", "  [drain] batch read of the dirty map"),
    (maps.DirtyReader, "_split", "  [drain] split + delete"),
    (probes.TracepointSource, "_counters", "per-CPU counters (read twice)"),
    # the source's _lookup (gather programs or one syscall a key) where it has one
    (probes.TracepointSource, "_lookup", "value lookups (chunks, io)")
    if hasattr(probes.TracepointSource, "_lookup") else
    (maps.DirtyReader, "lookup", "value lookups (chunks, io)"),
    (maps.ChunkState, "patch", "ChunkState.patch"),
    (maps.IoState, "patch", "IoState.patch"),
    (maps.ChunkState, "snapshot", "ChunkState.snapshot"),
    (maps.EmptyChunkGC, "collect", "EmptyChunkGC.collect"),
    (probes.TracepointSource, "_prog_stats", "prog stats (fdinfo)"),
    (probes.pagecache, "meminfo_cached_bytes", "/proc/meminfo"),
    (gc, "freeze", "gc.freeze"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=600000)
    ap.add_argument("--churn", type=float, default=1.0, help="%% of chunk entries changed")
    ap.add_argument("--steps", type=int, default=7)
    ap.add_argument("--seeded", action="store_true",
                    help="every page seeded at the fill (resident before the probes attached); "
                         "the changes are not (their pages inserted again)")
    ap.add_argument("--no-gather", action="store_true",
                    help="value lookups one bpf_lookup_elem syscall a key, not by the "
                         "gather programs (kernel/gather.py): the same run's base")
    args = ap.parse_args()
    bench_refresh.benchlib.need_root()
    from erofs_top.aggregate import FREEZE
    from erofs_top.tiers import open_collector
    FREEZE["mode"] = "every"
    n = args.entries
    col = open_collector(seed=False, sharing=False, max_chunks=max(262144, n))
    src = col.source
    if args.no_gather and getattr(src, "_gatherer", None) is not None:
        src._gatherer.close()
        src._gatherer = None
    try:
        keys = _fill(src, n, args.seeded)
        src._reads_since_full = None
        src.read()
        gc.collect()
        freeze = gc.freeze
        freeze()
        for owner, name, label in PHASES:
            _wrap(owner, name, label)
        totals, kept = [], []
        for step in range(args.steps):
            bench_refresh._change(src, keys, n, args.churn / 100, step)
            for v in TIMED.values():
                v.append(0.0)
            t = time.perf_counter()
            r = src.read()
            totals.append(time.perf_counter() - t)
            assert not src.last_read_full
            gc.collect()
            kept[:] = [r]
            freeze()
    finally:
        gc.unfreeze()
        col.close()
    _report(n, args, totals)


def _fill(src, n: int, seeded: bool = False):
    chunks, io = src.bpf["chunks"], src.bpf["io"]
    n_io = min(n // 4, src.max_io)
    dev = bench_refresh.kdev(0, 0xFFFF0)
    keys, vals = (chunks.Key * n)(), (chunks.Leaf * n)()
    for i in range(n):
        keys[i].dev, keys[i].ino, keys[i].chunk = dev, 100 + i // 16, i % 16
        vals[i].cgid[0], vals[i].bits[0] = 1000 + i % 1000, (1 << 64) - 1
        if seeded:
            vals[i].seeded_bits = (1 << 64) - 1
    bench_refresh._update(chunks, keys, vals)
    ikeys, ivals = (io.Key * n_io)(), (io.Leaf * n_io)()
    for i in range(n_io):
        ikeys[i].dev, ikeys[i].ino, ikeys[i].cgid = dev, 100 + i, 1000 + i % 1000
        ivals[i].evicted_pages = 64
    bench_refresh._update(io, ikeys, ivals)
    return keys


def _report(n: int, args, totals) -> None:
    med = statistics.median
    total = med(totals)
    how = "syscall a key" if getattr(args, "no_gather", False) else "as the source does"
    print(f"TracepointSource.read() at {n} chunk entries{' (seeded)' if args.seeded else ''}, "
          f"value lookups {how}, "
          f"{args.churn} % changed, "
          f"median of {args.steps} reads: {total * 1000:.1f} ms")
    top = 0.0
    for _o, _n, label in PHASES:
        v = med(TIMED.get(label, [0.0]))
        if not label.startswith("  "):
            top += v
        print(f"  {label:<55} {v * 1000:7.2f} ms")
    print(f"  {'rest (not in a timed phase)':<55} {(total - top) * 1000:7.2f} ms")


if __name__ == "__main__":
    sys.exit(main())
