"""Where a full pass's CPU goes, phase by phase, in several versions.

Each --tree (a checkout or `git archive` of some commit; default: this
checkout) runs in a child process of its own, in interleaved rounds
(benchlib.interleaved): SyntheticNode(--files, --containers), Readings that
name what changed (as bench_versions.py), then one full pass: `aggregate()`
(an Aggregator with nothing kept, re-derivation slices on, as the exporter's
first refresh) with each phase method of the Aggregator wrapped in a timer
(time.process_time; six wrapped calls, a few us in all).  Only the phases
are wrapped: a timer around a function called per file (chunk_entry,
Contribution) costs ~0.5 s of its own at 250,000 files (what
refresh_phases.py's parts do).  Figures: CPU seconds of the process; the
pass's user and system time apart too (getrusage): a fresh process's pass
pays ~54,000 first-touch page faults at 250,000 files, whose system time
varies 0.08-0.57 s from run to run on a shared machine (performance.md,
"A full pass, round 4"), so user time is the steadier comparison.

Run:  .venv/bin/python benchmarks/full_phases.py --tree base=/tmp/base --tree new=. \\
          --files 250000 --containers 1000 --rounds 3
"""
from __future__ import annotations

import sys

import benchlib

CHILD = r"""
import gc, json, resource, sys, time
tree, n_files, n_ctr, aged, shuffled = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                        int(sys.argv[4]), sys.argv[5] == "1")
node_tree = sys.argv[6] or tree
sys.path[:0] = [tree, node_tree + "/benchmarks"]
import benchlib
from synthetic_node import SyntheticNode
import erofs_top.aggregate as agg_mod
PHASES = ("_read_entries", "_resolve", "_content_keys", "_duplicates", "_attribute",
          "_savings")
spent = {}
for name in PHASES:
    benchlib.wrap_timed(agg_mod.Aggregator, name, name, spent)
node = SyntheticNode(n_files, n_ctr, rereads=True) if aged else SyntheticNode(n_files, n_ctr)
if aged:
    node.age(aged)
if shuffled:        # the files in another order, their objects made in it (a map's order)
    node.decode_afresh(shuffle_seed=5)
readings = node.readings(by_file=True, hint=True)
gc.collect()
u = resource.getrusage(resource.RUSAGE_SELF)
c = time.process_time()
agg_mod.aggregate(readings, *node.resolvers(), tier="tracepoint", started_at=0.0)
full = time.process_time() - c
u1 = resource.getrusage(resource.RUSAGE_SELF)
out = {"full_cpu_s": full, "user_s": u1.ru_utime - u.ru_utime, "sys_s": u1.ru_stime - u.ru_stime,
       **{p: spent.get(p, 0.0) for p in PHASES}}
out["rest"] = full - sum(spent.get(p, 0.0) for p in PHASES)
print(json.dumps(out))
"""

KEYS = ("full_cpu_s", "user_s", "sys_s", "_read_entries", "_resolve", "_content_keys", "_duplicates", "_attribute",
        "_savings", "rest")


def _add_args(ap) -> None:
    benchlib.add_tree_args(ap)
    ap.add_argument("--files", type=int, default=250_000)
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--aged", type=int, default=0, metavar="N",
                    help="N churns of 1 %% (re-reads) before the pass (SyntheticNode.age); "
                    "needs a synthetic_node.py that has it: --node-from")
    ap.add_argument("--shuffled", action="store_true",
                    help="the files handed over in a random order, their objects made in it "
                    "(as a map's hash order), not in the order the node made them")
    ap.add_argument("--node-from", default="", metavar="TREE",
                    help="the synthetic node of this checkout for every --tree")


def _body(args):
    trees = benchlib.trees_of(args)
    print(f"{args.files} files x {args.containers} containers, one full pass per child; "
          f"{args.rounds} interleaved rounds of {list(trees)} (CPU ms; rest: build_model, "
          f"I/O sums, the update's own work)")

    def measure(name, rnd):
        v = benchlib.child_json(CHILD, trees[name], args.files, args.containers, args.aged,
                                int(args.shuffled), args.node_from)
        print(f"  round {rnd} {name:>8}: " + ", ".join(
            f"{k.lstrip('_')} {v[k] * 1e3:.0f}" for k in KEYS), flush=True)
        return v
    values = benchlib.interleaved(trees, args.rounds, measure)
    return benchlib.summarize_keys(values, KEYS)


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
