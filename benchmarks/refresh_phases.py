"""Where a steady refresh's CPU goes: the aggregator's phases, timed one by one.

A kept Aggregator (re-derivation slices off) on SyntheticNode(--files,
--containers) (benchmarks/synthetic_node.py), a full pass, one refresh to
settle, then --steps refreshes each after --churn % of the chunk entries
changed, the Readings naming what changed (a dirty-set source).  Each phase
method of the Aggregator, and some of the functions they call, is wrapped
in a timer (time.process_time); the figures are per refresh, the timers'
own cost included (a few ms at 1 %: the total is above bench_refresh.py's).
Indented lines are parts of a phase (named in brackets) or of build_model.
--per-image N: N containers mount each image (synthetic_node's
CONTAINERS_PER_IMAGE, 4 by default): a content group holds ~N copies, so a
dirty group costs ~N members' work (docs/performance.md, issue 11).

Run:  .venv/bin/python benchmarks/refresh_phases.py --files 250000 --containers 1000 --churn 1
"""
from __future__ import annotations

import sys

import benchlib
import synthetic_node

import erofs_top.aggregate as agg_mod
import erofs_top.attribution as attribution
import erofs_top.large_groups as large_groups
import erofs_top.node_savings as node_savings
import erofs_top.rows as rows

PHASES = [(agg_mod.Aggregator, m, m) for m in (
    "_read_entries", "_resolve", "_content_keys", "_duplicates", "_attribute", "_savings")]
PARTS = [(agg_mod, "build_model", "build_model"), (rows, "container_rows", "  container_rows"),
         (rows, "mount_rows", "  mount_rows"), (attribution.IoSums, "update", "io sums"),
         (node_savings.GroupCache, "put", "  GroupCache.put (in _savings)"),
         (node_savings.GroupCache, "move", "  GroupCache.move (in _savings)"),
         (large_groups, "move", "  large_groups.move (in _duplicates)"),
         (agg_mod, "duplicate_group_part", "  duplicate_group_part (in _duplicates)"),
         (agg_mod, "contribution", "  contribution() (in _attribute)"),
         (agg_mod, "chunk_entry", "  chunk_entry (in _read_entries)")]


def _body(args) -> dict:
    spent: dict[str, float] = {}
    for owner, name, label in PHASES + PARTS:
        benchlib.wrap_timed(owner, name, label, spent)
    if args.per_image:
        synthetic_node.CONTAINERS_PER_IMAGE = args.per_image
    node = benchlib.aged_node(args)
    agg = agg_mod.Aggregator(recheck_slices=0)
    total, changed = benchlib.steady_refreshes(node, agg, args.steps, args.churn, spent)
    n = args.steps
    print(f"{args.files} files x {args.containers} containers "
          f"({synthetic_node.CONTAINERS_PER_IMAGE} per image), {args.churn:g} % churn"
          f"{f', aged {args.aged} churns' if args.aged else ''}: "
          f"{total / n * 1e3:.1f} ms CPU per refresh (timers included), "
          f"{changed / n:.0f} files changed per refresh (means of {n} refreshes)")
    for _, _, label in PHASES + PARTS:
        print(f"  {label:40} {spent.get(label, 0.0) / n * 1e3:7.1f} ms")
    return {"refresh_ms": total / n * 1e3, "files_changed": changed / n,
            "phases_ms": {k: v / n * 1e3 for k, v in spent.items()}}


def main() -> int:
    def add_args(ap) -> None:
        benchlib.add_phase_args(ap, 6)
        ap.add_argument("--per-image", type=int, default=0,
                        help="containers per image (0: synthetic_node's default, 4)")
        benchlib.add_age_args(ap)
    return benchlib.bench_main(__doc__, add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
