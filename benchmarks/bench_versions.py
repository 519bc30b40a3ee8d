"""Two versions of the aggregator on the same synthetic node, in the same run:
the full recompute at scale, a steady refresh after it, and the memory the
aggregator keeps.

Each --tree (a checkout or `git archive` of some commit; default: this
checkout) is measured in a child process of its own (its erofs_top and its
benchmarks/synthetic_node.py), in interleaved rounds (A B, B A, ...:
benchlib.interleaved), so a drift of the machine hits every version alike.
Per child: `aggregate()` from scratch on SyntheticNode(--files,
--containers) (CPU seconds of the process, and wall), then a kept Aggregator
(full pass, then --steps refreshes each after --churn of the chunk entries
changed): the median CPU of those steady refreshes, and the RSS the kept
aggregator adds (VmRSS after minus before, the node and its Readings
alive in both).  Every Readings names what changed (changed_files,
io_by_key/changed_io), the first one too, as a source with a dirty set
hands them over from its first read: a steady refresh then costs what
changed, not a switch of the I/O sums to keyed rows (a full pass over
every FileIO row, once).  CPU time, not wall time: other helpers and lab VMs share
this machine's two cores, and a process waiting for a core is not slower.

--per-image N: N containers mount each image (a content group of ~N copies).

Run:  .venv/bin/python benchmarks/bench_versions.py --tree base=/tmp/base --tree new=. \\
          --files 250000 --containers 1000 --rounds 2
"""
from __future__ import annotations

import sys

import benchlib

CHILD = r"""
import gc, json, sys, time
tree, n_files, n_ctr, churn = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
steps, per_image, aged, node_tree = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7]), sys.argv[8]
sys.path[:0] = [tree, (node_tree or tree) + "/benchmarks"]
import synthetic_node
from synthetic_node import SyntheticNode
if per_image:
    synthetic_node.CONTAINERS_PER_IMAGE = per_image
from erofs_top.aggregate import Aggregator, aggregate

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

node = SyntheticNode(n_files, n_ctr, rereads=True) if aged else SyntheticNode(n_files, n_ctr)
if aged:
    node.age(aged)
res = node.resolvers()
readings = node.readings(by_file=True, hint=True)
gc.collect()
c, w = time.process_time(), time.perf_counter()
aggregate(readings, *res, tier="tracepoint", started_at=0.0)
full_cpu, full_wall = time.process_time() - c, time.perf_counter() - w
gc.collect()
before = rss_mb()
agg = Aggregator(recheck_slices=0)
agg.update(readings, *res, tier="tracepoint", started_at=0.0)
rss_kept = rss_mb() - before
del readings
steady = []
for _ in range(steps):
    node.churn(churn)
    r = node.readings(by_file=True, hint=True)
    gc.collect()
    c = time.process_time()
    agg.update(r, *res, tier="tracepoint", started_at=0.0)
    steady.append(time.process_time() - c)
steady_cpu = sorted(steady)[len(steady) // 2]
gc.collect()
print(json.dumps({"full_cpu_s": full_cpu, "full_wall_s": full_wall, "steady_cpu_s": steady_cpu,
                  "kept_rss_mb": rss_kept, "kept_rss_after_mb": rss_mb() - before,
                  "chunks": node.chunk_count()}))
"""

KEYS = ("full_cpu_s", "full_wall_s", "steady_cpu_s", "kept_rss_mb", "kept_rss_after_mb")


def _add_args(ap) -> None:
    benchlib.add_tree_args(ap)
    ap.add_argument("--files", type=int, default=250_000)
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--churn", type=float, default=0.01, help="share of chunk entries changed "
                    "before each steady refresh")
    ap.add_argument("--steps", type=int, default=3, help="steady refreshes per child (median)")
    ap.add_argument("--aged", type=int, default=0, metavar="N",
                    help="N churns of 1 %% (re-reads: the node's files stay a fixed set) "
                    "before the first read (synthetic_node.py SyntheticNode.age: a node that "
                    "has run a while; its objects made again as a first read decodes them); "
                    "needs a tree whose synthetic_node.py has it: --node-from")
    ap.add_argument("--node-from", default="", metavar="TREE",
                    help="the synthetic node of this checkout for every --tree (default: each "
                    "tree's own benchmarks/synthetic_node.py)")
    ap.add_argument("--per-image", type=int, default=0,
                    help="containers per image (0: synthetic_node's default, 4): a content "
                    "group holds ~N copies")


def _body(args):
    trees = benchlib.trees_of(args)
    print(f"{args.files} files x {args.containers} containers "
          f"({args.per_image or 'default'} per image), steady after "
          f"{args.churn * 100:g} % churn (median of {args.steps}); "
          f"{f'aged {args.aged} churns; ' if args.aged else ''}{args.rounds} interleaved "
          f"rounds of {list(trees)}")

    def measure(name, rnd):
        v = benchlib.child_json(CHILD, trees[name], args.files, args.containers, args.churn,
                                args.steps, args.per_image, args.aged, args.node_from)
        print(f"  round {rnd} {name:>8}: full {v['full_cpu_s']:.2f} s CPU "
              f"({v['full_wall_s']:.2f} s wall), steady {v['steady_cpu_s'] * 1e3:.0f} ms CPU, "
              f"kept aggregator {v['kept_rss_mb']:.0f} MB after the full pass, "
              f"{v['kept_rss_after_mb']:.0f} MB after the steady ones "
              f"({v['chunks']} chunk entries)",
              flush=True)
        return v
    values = benchlib.interleaved(trees, args.rounds, measure)
    return benchlib.summarize_keys(values, KEYS)


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
