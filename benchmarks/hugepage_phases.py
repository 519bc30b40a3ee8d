"""A steady refresh's phases with the heap on 2 MiB pages or not (an experiment, issue 11).

The steady refresh's per-changed-file cost is mostly touching kept objects
that are cold by then (entries, groups' kept parts, old PageChunks: ~3x a
hot-cache timeit of the same code), and many of those touches also miss the
TLB (a 1 GiB heap of 4 KiB pages).  This runs refresh_phases.py's node
(a kept Aggregator, re-derivation slices off, a full pass and one refresh to
settle, then --steps refreshes at --churn %) and, with --collapse, after the
full pass asks the kernel to back the process's anonymous read-write
mappings with transparent huge pages: madvise(MADV_HUGEPAGE), then
madvise(MADV_COLLAPSE) (Linux >= 6.1; synchronous, copies every 2 MiB range
into a huge page; THP "madvise" or "always").  Nothing else differs: run
it without and with --collapse, interleaved, and compare the phases (CPU,
time.process_time per phase call).  RSS before and after the collapse is
printed (a collapse makes a range's untouched pages resident).

Run:  .venv/bin/python benchmarks/hugepage_phases.py --files 250000 --containers 10 [--collapse]
"""
from __future__ import annotations

import ctypes
import resource
import sys
import time

import benchlib
from synthetic_node import SyntheticNode

import erofs_top.aggregate as agg_mod
import erofs_top.attribution as attribution

PHASES = [(agg_mod.Aggregator, m, m) for m in (
    "_read_entries", "_resolve", "_content_keys", "_duplicates", "_attribute", "_savings")] + [
    (attribution.IoSums, "update", "io sums"), (agg_mod, "build_model", "build_model")]
MADV_HUGEPAGE, MADV_COLLAPSE = 14, 25
HUGE_BYTES = 2 << 20


def _anon_rw_ranges() -> list[tuple[int, int]]:
    """The 2 MiB-aligned parts of the process's anonymous read-write mappings."""
    out = []
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            path = fields[5] if len(fields) > 5 else ""
            if fields[1].startswith("rw") and path in ("", "[heap]"):
                lo, hi = (int(x, 16) for x in fields[0].split("-"))
                lo = (lo + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1)
                hi &= ~(HUGE_BYTES - 1)
                if hi > lo:
                    out.append((lo, hi))
    return out


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def collapse_heap() -> dict:
    """MADV_HUGEPAGE then MADV_COLLAPSE over _anon_rw_ranges(); what it cost."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    rss_before, t = _rss_mb(), time.perf_counter()
    cpu = time.process_time()
    ranges = _anon_rw_ranges()
    failed = 0
    for lo, hi in ranges:
        libc.madvise(lo, hi - lo, MADV_HUGEPAGE)
        failed += libc.madvise(lo, hi - lo, MADV_COLLAPSE) != 0
    return {"huge_pages_asked": sum(hi - lo for lo, hi in ranges) // HUGE_BYTES,
            "ranges_failed": failed, "collapse_s": time.perf_counter() - t,
            "collapse_cpu_s": time.process_time() - cpu,
            "rss_mb_before": rss_before, "rss_mb_after": _rss_mb()}


def _body(args) -> dict:
    spent: dict[str, float] = {}
    for owner, name, label in PHASES:
        benchlib.wrap_timed(owner, name, label, spent)
    node = SyntheticNode(args.files, args.containers)
    agg = agg_mod.Aggregator(recheck_slices=0)
    collapsed: dict = {}

    def after_full_pass(step: int) -> None:
        if step == 1 and args.collapse:
            collapsed.update(collapse_heap())
    total, _ = benchlib.steady_refreshes(node, agg, args.steps, args.churn, spent,
                                         after_full_pass)
    n = args.steps
    print(f"{args.files} files x {args.containers} containers, {args.churn:g} % churn, "
          f"collapse {'on' if args.collapse else 'off'}: {total / n * 1e3:.1f} ms CPU per "
          f"refresh (means of {n}); RSS {_rss_mb():.0f} MB")
    if collapsed:
        print("  " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                               for k, v in collapsed.items()))
    for _, _, label in PHASES:
        print(f"  {label:20} {spent.get(label, 0.0) / n * 1e3:7.1f} ms")
    return {"refresh_ms": total / n * 1e3, "collapse": collapsed,
            "phases_ms": {k: v / n * 1e3 for k, v in spent.items()}}


def main() -> int:
    def add_args(ap) -> None:
        benchlib.add_phase_args(ap, 6)
        ap.add_argument("--collapse", action="store_true",
                        help="after the full pass: MADV_HUGEPAGE + MADV_COLLAPSE the heap")
    return benchlib.bench_main(__doc__, add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
