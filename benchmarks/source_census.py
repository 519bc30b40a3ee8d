"""What the probe source keeps (erofs_top/kernel/maps.py ChunkState and
IoState) per chunk entry and io row, by allocation site (tracemalloc).

SyntheticNode(--files, --containers)'s maps as a full read decodes them
(fresh ints, as struct.iter_unpack makes them: bench_chunk_state.py's
reader), fed to ChunkState.update() and IoState.update() with the held
pages handed over; the node is made before tracing starts, the held-page
deltas are dropped as a read drops them, then the bytes still allocated per
source line.  Memory only, not a timing.

Run:  .venv/bin/python benchmarks/source_census.py --files 250000 --lines 15
"""
from __future__ import annotations

import argparse
import gc
import tracemalloc

import benchlib  # (also sets sys.path)
from synthetic_node import SyntheticNode

from erofs_top.kernel import maps


def _fresh(x: int) -> int:
    return int(str(x))


def _read(node):
    for (dev, ino), pcs in node.files.items():
        for pc in pcs:
            v = [0] * (2 * maps.MAX_OWNERS + 2)
            for s, (cg, m) in enumerate(pc.owners.items()):
                v[s], v[maps.MAX_OWNERS + s] = _fresh(cg), _fresh(m)
            v[-1] = _fresh(pc.seeded_mask)
            yield (_fresh(dev), _fresh(ino), pc.chunk), tuple(v)


def _read_io(node):
    for (dev, ino, cg), f in node.io_by_key.items():
        yield ((_fresh(dev), _fresh(ino), _fresh(cg)),
               (_fresh(f.evicted_pages), _fresh(f.readahead_pages), _fresh(f.read_folio_count), 0))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=250_000)
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--lines", type=int, default=15, help="allocation sites shown")
    args = ap.parse_args()
    node = SyntheticNode(args.files, args.containers)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.take_snapshot()
    cs, ios = maps.ChunkState(), maps.IoState()
    cs.update(_read(node))
    ios.update(_read_io(node), cs.held_delta)
    cs.held_delta = {}
    gc.collect()
    snap = tracemalloc.take_snapshot()
    stats = snap.compare_to(base, "lineno")
    total = sum(s.size_diff for s in stats)
    n_chunks, n_rows = cs.n_chunks, len(ios.out)
    print(f"{args.files} files x {args.containers} containers: {n_chunks} chunk entries, "
          f"{len(cs.packed)} files, {n_rows} io rows; kept {total / 2**20:.1f} MiB "
          f"({total / n_chunks:.0f} B per chunk entry)")
    benchlib.print_alloc_sites(stats, args.lines)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
