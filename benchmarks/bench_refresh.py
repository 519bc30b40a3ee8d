"""Time of one model refresh as a function of keys (resident files,
containers) and of how much changed since the previous refresh.

Part 1 (no root): a refresh from scratch, `erofs_top.aggregate.aggregate` on
synthetic Readings (benchmarks/synthetic_node.py) with the fixture resolvers,
for 1k/10k/50k/250k resident files x 10/100/1000 containers; cases up to 10k
files also with the counters of 10 x the events on the same keys (Readings
hold map state, not events: the two must cost the same).

Part 2 (no root): the incremental refresh a collector does
(`Aggregator.update`, kept between refreshes) after 0.1 %, 1 %, 10 % and
100 % of the chunk entries changed (realistic churn: evictions, inserts, files
appearing and disappearing), per size; "per changed" divides by the chunk
entries changed, the ratio compares with the full recompute of the same size.
The Readings name the files changed (Readings.changed_files, as a source
with a dirty set does) unless --no-hint.

Part 3 (root, --probe-read): TracepointSource.read() (map reading, the
kernel side of a refresh) with the real BPF maps filled from user space with
10k/50k/200k/600k chunk entries and 1/4 as many io entries: full reads (every
entry) and the steady incremental reads (only the keys in the dirty map)
after 0.1 % / 1 % of the entries changed from user space and were marked
dirty as the probe marks them, in the same run.  The cyclic GC runs as in the
exporter (aggregate.FREEZE "every": what is alive after a refresh is frozen;
the benchmark freezes after each read in the aggregator's place), and a
"+gc" line gives the collections inside each read plus a full collection
right after it (what the GC walks of what a read made before the refresh
freezes it; 0 where the read freezes it itself).

Run:  .venv/bin/python benchmarks/bench_refresh.py [--repeat 3] [--quick]
      sudo .venv/bin/python benchmarks/bench_refresh.py --probe-read --no-aggregate
"""
from __future__ import annotations

import gc
import statistics
import sys
import time

import benchlib  # noqa: F401  (sets sys.path)
from synthetic_node import SyntheticNode

from erofs_top.aggregate import RECHECK_SLICES, Aggregator, aggregate
from erofs_top.readings import kdev

FRACTIONS = (0.001, 0.01, 0.1, 1.0)


def synthetic_node(n_files: int, n_containers: int, events_factor: int = 1, seed: int = 1):
    """(readings, mounts, cgroups, content) for a node of this shape."""
    node = SyntheticNode(n_files, n_containers, events_factor, seed)
    return (node.readings(), *node.resolvers())


def time_refresh(node, repeat: int) -> float:
    readings, mounts, cgroups, content = node
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        aggregate(readings, mounts, cgroups, content, tier="tracepoint", started_at=0.0)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def part_full(files_list, repeat: int) -> dict:
    print(f"Full recompute: aggregate() from scratch on synthetic Readings (median of "
          f"{repeat} runs, 9 below 20k chunks)")
    print(f"  {'files':>7} {'containers':>10} {'chunks':>7} {'refresh':>10} "
          f"{'10x events':>11} {'us/chunk':>9}")
    out = {}
    for n_files in files_list:
        for n_ctr in (10, 100, 1000):
            node = synthetic_node(n_files, n_ctr)
            nchunks = len(node[0].chunks)
            reps = repeat if nchunks > 20000 else max(repeat, 9)
            reps = 1 if nchunks > 300000 else reps
            t1 = time_refresh(node, reps)
            t10 = ""
            if n_files <= 10000:
                t10 = f"{time_refresh(synthetic_node(n_files, n_ctr, 10), reps) / t1:>10.2f}x"
            out[(n_files, n_ctr)] = t1
            print(f"  {n_files:>7} {n_ctr:>10} {nchunks:>7} {t1 * 1000:>8.1f} ms "
                  f"{t10:>11} {t1 / nchunks * 1e6:>8.1f}", flush=True)
    return out


def part_incremental(files_list, full: dict, steps: int, hint: bool = True,
                     fractions=FRACTIONS, containers=(10, 100, 1000), recheck: int = 0,
                     rereads: bool = False, aged: int = 0) -> None:
    slices = f"re-derivation slices {recheck} (as the tools run)" if recheck else \
        "re-derivation slices off"
    print(f"\nIncremental refresh (Aggregator kept between refreshes, {slices}), "
          f"median of {steps} successive refreshes per churn level; "
          + ("Readings.changed_files given (a dirty-set source)" if hint else
             "no changed_files (every file's list compared by identity)"))
    print(f"  {'files':>7} {'containers':>10} {'chunks':>7} {'changed':>8} {'entries':>8} "
          f"{'refresh':>10} {'us/changed':>11} {'vs full':>8}")
    for n_files in files_list:
        for n_ctr in containers:
            node = SyntheticNode(n_files, n_ctr, rereads=rereads)
            node.age(aged)
            agg = Aggregator(recheck_slices=recheck)
            agg.update(node.readings(by_file=True), *node.resolvers(), tier="tracepoint",
                       started_at=0.0)
            r = None
            for frac in fractions:
                times, changed = [], []
                for _ in range(steps):
                    changed.append(node.churn(frac))
                    # the previous Readings stay alive until the update is
                    # timed (benchlib.steady_refreshes says why)
                    prev, r = r, node.readings(by_file=True, hint=hint)
                    gc.collect()
                    t = time.perf_counter()
                    agg.update(r, *node.resolvers(), tier="tracepoint", started_at=0.0)
                    times.append(time.perf_counter() - t)
                    del prev
                t_med, n_changed = statistics.median(times), statistics.median(changed)
                ref = full.get((n_files, n_ctr))
                vs = f"{t_med / ref:>7.3f}x" if ref else ""
                print(f"  {n_files:>7} {n_ctr:>10} {len(r.chunks):>7} {frac * 100:>7.1f}% "
                      f"{int(n_changed):>8} {t_med * 1000:>8.1f} ms "
                      f"{t_med / n_changed * 1e6:>10.1f} {vs:>8}", flush=True)


def part_probe_read(sizes, steps: int = 3) -> None:
    benchlib.need_root()
    print("\nTracepointSource.read() with the real maps filled from user space")
    print("  full: every entry read (the first read, all new; the same maps again; after 1 %"
          " changed); steady: incremental reads after 0.1 % / 1 % of the chunk entries")
    print("  changed FROM USER SPACE, marked in the dirty map as the probe would (same run);")
    print("  medians; the GC as in the exporter (alive objects frozen after each read); the +gc")
    print("  line: collections inside the read plus a full collection right after it")
    print(f"  {'chunks':>7} {'io':>6} {'fill':>9} {'first':>10} {'full same':>10} "
          f"{'full 1%':>10} {'inc 0.1%':>10} {'inc 1%':>10} {'inc none':>10}")
    from erofs_top.aggregate import FREEZE
    mode, FREEZE["mode"] = FREEZE["mode"], "every"     # as the exporter runs (server.py)
    try:
        for n in sizes:
            _probe_read_size(n, steps)
    finally:
        FREEZE["mode"] = mode


def _probe_read_size(n: int, steps: int) -> None:
    from erofs_top.errors import CollectorError
    from erofs_top.tiers import open_collector
    try:
        col = open_collector(seed=False, sharing=False, max_chunks=max(262144, n))
    except CollectorError as e:
        sys.exit(f"probes failed to load: {e}")
    try:
        _probe_read_case(col.source, n, steps)
    finally:
        col.close()


def _probe_read_case(src, n: int, steps: int) -> None:
    """Fill the maps with n chunk entries, then time full and steady reads.
    The cyclic GC as in the exporter: objects alive after each read are
    frozen (aggregate.FREEZE "every" does it after each refresh); any
    collection inside a read is timed (gc.callbacks) and, after each read,
    a full collection of what it left young (the most the GC can walk of
    it before the refresh freezes it) is timed apart ("+gc")."""
    chunks, io = src.bpf["chunks"], src.bpf["io"]
    n_io = min(n // 4, src.max_io)
    dev = kdev(0, 0xFFFF0)        # no such mount: nothing else reads these keys
    t = time.perf_counter()
    keys = (chunks.Key * n)()
    vals = (chunks.Leaf * n)()
    for i in range(n):
        keys[i].dev, keys[i].ino, keys[i].chunk = dev, 100 + i // 16, i % 16
        vals[i].cgid[0], vals[i].bits[0] = 1000 + i % 1000, (1 << 64) - 1
    _update(chunks, keys, vals)
    ikeys = (io.Key * n_io)()
    ivals = (io.Leaf * n_io)()
    for i in range(n_io):
        ikeys[i].dev, ikeys[i].ino, ikeys[i].cgid = dev, 100 + i, 1000 + i % 1000
        ivals[i].evicted_pages = 64
    _update(io, ikeys, ivals)
    fill = time.perf_counter() - t
    step = [0]
    inside = _GcTimer()
    kept = []

    def timed_read(full: bool, frac: float = 0.0) -> tuple[float, float]:
        if frac:
            _change(src, keys, n, frac, step[0])
            step[0] += 1
        if full:
            src._reads_since_full = None        # the next read reads everything
        inside.total = 0.0
        t = time.perf_counter()
        r = src.read()
        dt, in_read = time.perf_counter() - t, inside.total
        assert src.last_read_full == full and len(r.chunks) >= n, (full, len(r.chunks), n)
        t = time.perf_counter()
        gc.collect()
        after = time.perf_counter() - t
        kept[:] = [r]           # alive through the next read (its views keep old values)
        gc.freeze()
        return dt, in_read + after

    def med(full: bool, frac: float, reps: int) -> tuple[float, float]:
        got = [timed_read(full, frac) for _ in range(reps)]
        return statistics.median(g[0] for g in got), statistics.median(g[1] for g in got)
    try:
        first = timed_read(True)
        same = med(True, 0.0, 2)
        full_1 = med(True, 0.01, 2)
        inc_01 = med(False, 0.001, steps)
        inc_1 = med(False, 0.01, steps)
        inc_0 = med(False, 0.0, steps)
    finally:
        inside.close()
        gc.unfreeze()
    ms = lambda x: f"{x[0] * 1000:>7.1f} ms"    # noqa: E731
    print(f"  {n:>7} {n_io:>6} {fill:>7.2f} s {ms(first)} {ms(same)} {ms(full_1)} "
          f"{ms(inc_01)} {ms(inc_1)} {ms(inc_0)}   full 1% / inc 1%: {full_1[0] / inc_1[0]:.0f}x",
          flush=True)
    print(f"  {'+gc':>7} {'':>6} {'':>9} " + " ".join(f"{x[1] * 1000:>7.1f} ms" for x in
                                                    (first, same, full_1, inc_01, inc_1, inc_0)),
          flush=True)


class _GcTimer:
    """Time spent in cyclic GC collections while installed (gc.callbacks)."""

    def __init__(self):
        self.total, self.t0 = 0.0, 0.0
        gc.callbacks.append(self._cb)

    def _cb(self, phase, info) -> None:
        if phase == "start":
            self.t0 = time.perf_counter()
        else:
            self.total += time.perf_counter() - self.t0

    def close(self) -> None:
        gc.callbacks.remove(self._cb)


def _change(src, keys, n: int, frac: float, step: int) -> None:
    """frac of the chunk entries get another page mask, FROM USER SPACE, and
    their keys go into the dirty map with the current generation's parity,
    as probes/filemap.c marks what it changes."""
    chunks, dirty = src.bpf["chunks"], src.bpf["dirty"]
    m = max(1, int(n * frac))
    ck, cv = (chunks.Key * m)(), (chunks.Leaf * m)()
    dk, dv = (dirty.Key * m)(), (dirty.Leaf * m)()
    parity = (src._dirty.gen & 1) << 1
    for j in range(m):
        i = (j * 97 + step * 7919) % n
        ck[j] = keys[i]
        cv[j].cgid[0], cv[j].bits[0] = 1000 + i % 1000, ((1 << 64) - 1) >> (step % 60 + 1)
        dk[j].dev, dk[j].pad, dk[j].ino, dk[j].chunk = keys[i].dev, parity, keys[i].ino, \
            keys[i].chunk
        dv[j] = 1
    _update(chunks, ck, cv)
    _update(dirty, dk, dv)


def _update(table, keys, vals) -> None:
    try:
        table.items_update_batch(keys, vals)
    except Exception:     # kernels/BCC without batch ops
        for k, v in zip(keys, vals):
            table[k] = v


def _add_args(ap) -> None:
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per full case (median)")
    ap.add_argument("--steps", type=int, default=3, help="refreshes per churn level (median)")
    ap.add_argument("--quick", action="store_true", help="only the 1k and 10k-file cases")
    ap.add_argument("--files", default="", help="comma-separated file counts (default "
                    "1000,10000,50000,250000)")
    ap.add_argument("--probe-read", action="store_true",
                    help="also time TracepointSource.read() on filled BPF maps (root)")
    ap.add_argument("--no-aggregate", action="store_true", help="skip parts 1 and 2")
    ap.add_argument("--no-hint", action="store_true", help="part 2 without "
                    "Readings.changed_files (a source that does not know what changed)")
    ap.add_argument("--no-full", action="store_true", help="skip part 1 (no 'vs full' column)")
    ap.add_argument("--fractions", default="", help="part 2's shares changed, comma-separated "
                    "percentages (default 0.1,1,10,100)")
    ap.add_argument("--containers", default="10,100,1000", help="part 2's container counts")
    ap.add_argument("--recheck-slices", type=int, default=0, metavar="N",
                    help="part 2: the Aggregator's re-derivation slices (default 0: off, "
                    "deltas only; the collector runs %d: each refresh also re-derives "
                    "1/N of the entries)" % RECHECK_SLICES)
    ap.add_argument("--rereads", action="store_true",
                    help="part 2: churn's first reads are of files evicted whole before (the "
                    "node's files stay a fixed set; synthetic_node.py), not new files")
    ap.add_argument("--aged", type=int, default=0, metavar="N",
                    help="part 2: N churns of 1 %% made before the first refresh "
                    "(SyntheticNode.age: a node that has run a while; a fresh node's steady "
                    "cost climbs for ~100 refreshes as churn ages it)")
    ap.add_argument("--probe-steps", type=int, default=5,
                    help="steady reads per churn level in --probe-read (median)")
    ap.add_argument("--probe-sizes", default="10000,50000,200000,600000",
                    help="chunk entries of the --probe-read cases")


def _body(args):
    files_list = [int(x) for x in args.files.split(",")] if args.files else \
        ((1000, 10000) if args.quick else (1000, 10000, 50000, 250000))
    if not args.no_aggregate:
        full = {} if args.no_full else part_full(files_list, args.repeat)
        fractions = tuple(float(x) / 100 for x in args.fractions.split(",")) \
            if args.fractions else FRACTIONS
        part_incremental(files_list, full, args.steps, hint=not args.no_hint,
                         fractions=fractions,
                         containers=tuple(int(x) for x in args.containers.split(",")),
                         recheck=args.recheck_slices, rereads=args.rereads, aged=args.aged)
    if args.probe_read:
        part_probe_read(tuple(int(x) for x in args.probe_sizes.split(",")), args.probe_steps)
    return {}


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
