"""The probe source's kept map state (erofs_top/kernel/maps.py ChunkState
and IoState) at node scale, without BPF: what an exporter or `top` keeps on
the source side besides the aggregator (bench_versions.py measures that one).

The chunks map of SyntheticNode(--files, --containers) as the batch read
decodes it ((dev, ino, chunk), CHUNK_VAL tuple: fresh ints per read, as
struct.iter_unpack makes them), fed to ChunkState.update(): the RSS the kept
state adds (VmRSS after minus before; the map's tuples are made one at a
time and dropped, as a read does), the CPU of that first read, and of a
second full read of the same map (what every FULL_READ_EVERY-th read costs;
the others patch only the marked keys); then the same for the io map (the
synthetic node's rows, decoded as a map read decodes them) into IoState, with
the held pages the chunk state handed over (older trees: ChunkState.held).  Each --tree (a checkout or `git
archive` of some commit; default: this checkout) in a child process of its
own, in interleaved rounds (benchlib.interleaved).  CPU time of the
process, not wall time (the machine is shared).

Run:  .venv/bin/python benchmarks/bench_chunk_state.py --tree base=/tmp/base --tree new=. \\
          --files 250000 --rounds 2
"""
from __future__ import annotations

import sys

import benchlib

CHILD = r"""
import gc, json, sys, time
tree, n_files, n_ctr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
sys.path[:0] = [tree, tree + "/benchmarks"]
from synthetic_node import SyntheticNode
from erofs_top.kernel import maps

def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024

node = SyntheticNode(n_files, n_ctr)
fresh = lambda x: int(str(x))     # a map read's int: a new object

def read():
    # one map read: fresh key and value tuples and ints, as iter_unpack makes them
    for (dev, ino), pcs in node.files.items():
        for pc in pcs:
            v = [0] * (2 * maps.MAX_OWNERS + 2)
            for s, (cg, m) in enumerate(pc.owners.items()):
                v[s], v[maps.MAX_OWNERS + s] = fresh(cg), fresh(m)
            yield (fresh(dev), fresh(ino), pc.chunk), tuple(v)

def read_io():
    # the io map as its read decodes it: the synthetic rows' counters
    for (dev, ino, cg), f in node.io_by_key.items():
        yield ((fresh(dev), fresh(ino), fresh(cg)),
               (fresh(f.evicted_pages), fresh(f.readahead_pages), fresh(f.read_folio_count), 0))

def held_arg(state):
    # this tree's IoState input: the held pages' changes (new) or sums (older trees)
    if hasattr(state, "held_delta"):
        d, state.held_delta = state.held_delta, {}
        return d
    return state.held

gc.collect()
gc.disable()
before = rss_mb()
state = maps.ChunkState()
c = time.process_time()
state.update(read())
first_cpu = time.process_time() - c
kept = rss_mb() - before
io_state = maps.IoState()
c = time.process_time()
io_state.update(read_io(), held_arg(state))
io_cpu = time.process_time() - c
kept_io = rss_mb() - before - kept
c = time.process_time()
changed = state.update(read())
again_cpu = time.process_time() - c
c = time.process_time()
io_state.update(read_io(), held_arg(state))
io_again_cpu = time.process_time() - c
assert not changed and state.n_chunks == node.chunk_count()
print(json.dumps({"kept_rss_mb": kept, "bytes_per_entry": kept * 2**20 / state.n_chunks,
                  "io_rss_mb": kept_io, "io_bytes_per_row": kept_io * 2**20 / len(io_state.out),
                  "source_rss_mb": kept + kept_io,
                  "first_read_cpu_s": first_cpu, "full_reread_cpu_s": again_cpu,
                  "io_first_cpu_s": io_cpu, "io_reread_cpu_s": io_again_cpu,
                  "chunks": state.n_chunks, "io_rows": len(io_state.out)}))
"""

KEYS = ("kept_rss_mb", "bytes_per_entry", "io_rss_mb", "io_bytes_per_row", "source_rss_mb",
        "first_read_cpu_s", "full_reread_cpu_s", "io_first_cpu_s", "io_reread_cpu_s")


def _add_args(ap) -> None:
    benchlib.add_tree_args(ap)
    ap.add_argument("--files", type=int, default=250_000)
    ap.add_argument("--containers", type=int, default=1000)


def _body(args):
    trees = benchlib.trees_of(args)
    print(f"ChunkState of {args.files} files x {args.containers} containers; "
          f"{args.rounds} interleaved rounds of {list(trees)}")

    def measure(name, rnd):
        v = benchlib.child_json(CHILD, trees[name], args.files, args.containers)
        print(f"  round {rnd} {name:>8}: chunks kept {v['kept_rss_mb']:.0f} MB "
              f"({v['bytes_per_entry']:.0f} B per chunk entry, {v['chunks']} entries), "
              f"first read {v['first_read_cpu_s']:.2f} s CPU, full re-read "
              f"{v['full_reread_cpu_s']:.2f} s CPU; io kept {v['io_rss_mb']:.0f} MB "
              f"({v['io_bytes_per_row']:.0f} B per row, {v['io_rows']} rows), "
              f"{v['io_first_cpu_s']:.2f} / {v['io_reread_cpu_s']:.2f} s CPU", flush=True)
        return v
    values = benchlib.interleaved(trees, args.rounds, measure)
    return benchlib.summarize_keys(values, KEYS)


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
