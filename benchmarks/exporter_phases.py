"""Where an exporter's steady refresh goes: bench_exporter.py's node part
(`--parts node --map-state --scraped`) with a timer on each phase.

A synthetic node of --files files x --containers containers
(benchmarks/synthetic_node.py) behind the probe source's kept state
(bench_exporter.MapStateSource: ChunkState, IoState), the real Collector and
Exporter, one OpenMetrics + gzip scrape so that each refresh pre-encodes that
format; then --steps refreshes, each after --churn % of the chunk entries
changed (making the churn is timed and left out, as in bench_exporter.py),
after --settle untimed ones.  --scrape-every S: scrapes every S s of virtual
time between the refreshes (--interval apart in virtual time; the exporter's
clock is the virtual one), their CPU reported apart and with the refreshes'.
Each phase below is wrapped in a timer (time.process_time); the figures are
per refresh, the timers' own cost included.  Also: how many container and
mount rows of the Model changed from one refresh to the next (what caching
rows or their encoded lines could save).

Run:  .venv/bin/python benchmarks/exporter_phases.py --files 250000 --containers 1000 --churn 1
"""
from __future__ import annotations

import sys
import time

import benchlib

import erofs_top.aggregate as agg_mod
import erofs_top.attribution as attribution
import erofs_top.exporter.encode as encode
import erofs_top.exporter.metrics as metrics
import erofs_top.exporter.server as server
import erofs_top.kernel.maps as maps
import erofs_top.node_savings as node_savings
import erofs_top.rows as rows

OM = "application/openmetrics-text;version=1.0.0"

TIMED = [(maps.ChunkState, "patch", "source: ChunkState.patch"),
         (maps.IoState, "patch", "source: IoState.patch"),
         (agg_mod.Aggregator, "update", "Aggregator.update")] + [
    (agg_mod.Aggregator, m, "  " + m) for m in (
        "_read_entries", "_resolve", "_content_keys", "_duplicates", "_attribute", "_savings")] + [
    (attribution.IoSums, "update", "  IoSums.update"),
    (node_savings.GroupCache, "put", "    GroupCache.put (in _savings)"),
    (agg_mod, "build_model", "  build_model"),
    (rows, "container_rows", "    container_rows"), (rows, "mount_rows", "    mount_rows"),
    (metrics.FamilyBuilder, "build", "FamilyBuilder.build"),
    # the body's pieces, then gzip from them (str -> bytes included; before
    # 2026-12-05 06:00, LineCache.__call__ with that step and gzip.compress).
    # Since 5c3e473 a piece is made as gzip takes it: the encode is timed per
    # metric, inside gzip's time (before, LineCache.chunks, apart from it)
    (encode.LineCache, "_metric", "LineCache (encode, per metric)"),
    (server, "gzip_chunks", "gzip (the encode above included)")]


def _rows(model) -> tuple[dict, dict]:
    return ({c.cgroup_id: (c.resident_bytes, c.duplicate_bytes, c.fair_bytes, c.files_count,
                           c.inserted_bytes, c.evicted_bytes) for c in model.containers},
            {m.dev: (m.resident_bytes, m.duplicate_bytes, m.containers_count,
                     m.backing_resident_bytes) for m in model.mounts})


def _body(args) -> dict:
    from bench_exporter import MapStateSource
    from erofs_top.collector import Collector
    from erofs_top.exporter.server import Exporter
    spent: dict[str, float] = {}
    node = benchlib.aged_node(args, exclusive_owners=args.exclusive_owners)
    src = MapStateSource(node, args.churn / 100)
    src.mark_every_chunk = args.mark_every_chunk
    col = Collector(src, mounts=node.mounts, cgroups=node.cgroups, content=node.content)
    ex = Exporter(col, interval=args.interval, log=lambda m: None,
                  lean_models=True)     # as the exporter command
    clock = _VirtualClock()
    ex._clock = clock           # (an exporter without it ignores it: every refresh encodes)
    ex.refresh_once()
    scrapes = _Scrapes(ex, clock, args.scrape_every, args.interval)
    scrapes.scrape()            # at 0: the format each later refresh may pre-encode
    scrapes.n, scrapes.cpu_s = 0, 0.0
    clock.t = -args.interval / 2        # refreshes at interval / 2 + k * interval
    for _ in range(args.settle):        # untimed (the cost climbs over the first ones)
        scrapes.until(clock.t + args.interval)
        ex.refresh_once()
    for owner, name, label in TIMED:
        benchlib.wrap_timed(owner, name, label, spent)
    total, moved, each = 0.0, [0, 0], []
    before = _rows(ex.model)
    for _ in range(args.steps):
        scrapes.until(clock.t + args.interval)      # the scrapes before the next refresh
        churn0, t = src.churn_s, time.process_time()
        ex.refresh_once()
        each.append(time.process_time() - t - (src.churn_s - churn0))
        total += each[-1]
        now = _rows(ex.model)
        for i in (0, 1):
            moved[i] += sum(1 for k, v in now[i].items() if before[i].get(k) != v)
        before = now
    n = args.steps
    print(f"{args.files} files x {args.containers} containers, {args.churn:g} % churn: "
          f"{total / n * 1e3:.1f} ms CPU per exporter refresh (timers included; churn left "
          f"out); rows changed per refresh: {moved[0] / n:.0f} of {len(before[0])} containers, "
          f"{moved[1] / n:.0f} of {len(before[1])} mounts")
    print(f"  each refresh in order (after {args.settle} untimed): "
          f"{', '.join(f'{c * 1e3:.0f}' for c in each)} ms")
    if args.scrape_every:
        print(f"  scraped (OpenMetrics + gzip) every {args.scrape_every:g} s of virtual time, "
              f"a refresh every {args.interval:g} s: {scrapes.n} scrapes, "
              f"{scrapes.cpu_s / n * 1e3:.1f} ms CPU per refresh interval; refresh + scrapes "
              f"{(total + scrapes.cpu_s) / n * 1e3:.1f} ms per interval; bodies encoded by "
              f"refreshes {getattr(ex, 'prerenders', '?')}, left out "
              f"{getattr(ex, 'prerenders_skipped', '?')}, by scrapes "
              f"{getattr(ex, 'renders_on_demand', '?')} (counted since the start)")
    for _, _, label in TIMED:
        print(f"  {label:40} {spent.get(label, 0.0) / n * 1e3:7.1f} ms")
    return {"refresh_ms": total / n * 1e3, "phases_ms": {k: v / n * 1e3 for k, v in spent.items()},
            "containers_changed": moved[0] / n, "mounts_changed": moved[1] / n,
            "refresh_ms_in_order": [round(c * 1e3, 1) for c in each], "settle": args.settle,
            "scrape_every_s": args.scrape_every, "scrapes": scrapes.n,
            "scrape_ms_per_interval": scrapes.cpu_s / n * 1e3,
            "refresh_and_scrapes_ms_per_interval": (total + scrapes.cpu_s) / n * 1e3}


class _VirtualClock:
    """The exporter's monotonic clock in virtual time (--scrape-every): the
    benchmark refreshes back to back, as if --interval apart."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


class _Scrapes:
    """OpenMetrics + gzip scrapes every ``every`` s of virtual time (0: none
    here), each timed (process CPU) into ``cpu_s``."""

    def __init__(self, ex, clock, every: float, interval: float):
        self.ex, self.clock, self.every = ex, clock, every
        self.next = every           # (the first at 0: scrape() before the refreshes)
        self.n, self.cpu_s = 0, 0.0
        clock.t = 0.0

    def scrape(self) -> None:
        t = time.process_time()
        b"".join(self.ex({"PATH_INFO": "/metrics", "HTTP_ACCEPT_ENCODING": "gzip",
                          "HTTP_ACCEPT": OM}, lambda *a: None))
        self.cpu_s += time.process_time() - t
        self.n += 1

    def until(self, t_refresh: float) -> None:
        """The scrapes due before a refresh at t_refresh, then the clock there."""
        while self.every and self.next < t_refresh:
            self.clock.t = self.next
            self.scrape()
            self.next += self.every
        self.clock.t = t_refresh


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=False)


def _add_args(ap) -> None:
    benchlib.add_phase_args(ap, 5)
    ap.add_argument("--interval", type=float, default=10.0, help="refresh interval (virtual s)")
    ap.add_argument("--scrape-every", type=float, default=0.0,
                    help="also scrape (OpenMetrics + gzip) every this many virtual seconds, "
                         "timed apart (0: the one scrape before the timed refreshes only)")
    ap.add_argument("--exclusive-owners", action="store_true",
                    help="churn evicts a resident page from the cgroup that holds it (a page "
                         "is never two cgroups'; synthetic_node.py: the default churn may "
                         "give a page to two owners)")
    ap.add_argument("--mark-every-chunk", action="store_true",
                    help="mark every chunk entry of a changed file dirty (before 2026-12-05 "
                         "13:45), not only those whose value changed (as the probe does)")
    benchlib.add_age_args(ap)
    ap.add_argument("--settle", type=int, default=1,
                    help="steady refreshes left untimed first (on a fresh node the cost climbs "
                         "for ~100 as churn ages it: --aged; docs/performance.md)")


if __name__ == "__main__":
    sys.exit(main())
