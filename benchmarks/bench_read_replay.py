"""What the read log's replay costs a refresh (erofs_top/read_replay.py).

A synthetic, seeded world (named so: no kernel behind it): 1,000 files of
64 pages on two mounts (block devices: no image cache), pairs of equal
content across the mounts, N random 4 KiB preads (fresh opens).  Each case
is one replay_savings() of that world:
  cached   the reads did not change since the previous refresh: the replays
           come from the memo, only the check against the resident pages runs
  new      new reads arrived: the actual world, sharing off and sharing on
           are replayed (three replays of N reads)
Interleaved rounds; the ratio new/cached and seconds per 100,000 reads.
No root.

Run:  .venv/bin/python benchmarks/bench_read_replay.py [--reads 100000] [--rounds 3]
"""
from __future__ import annotations

import random
import time

import benchlib
from benchlib import interleaved, ratios

from erofs_top.read_replay import Inode, World, replay_savings
from erofs_top.readings import ReadRecord

PAGE = 4096
FILES = 1000


def synthetic_world(n_reads: int, seed: int = 1) -> World:
    rng = random.Random(seed)
    recs = []
    for _ in range(n_reads):
        f = rng.randrange(FILES)
        dev = 1 + f % 2
        recs.append(ReadRecord(dev=dev, ino=f, file=f, mapping=0, pos=rng.randrange(64 * PAGE),
                               count=PAGE, prev_pos=-1, size=64 * PAGE, cgroup_id=dev))
    w = World(records=recs, inodes=[], candidate=lambda d: True, image_of=lambda d: None,
              image_map=lambda d, i: None, image_sizes={}, image_owners={},
              groups={"rebuild": [[(1, f + 1), (2, f)] for f in range(0, FILES, 2)]})
    out = replay_savings(w)         # what is cached now: the replay's own pages
    assert out.explained_devs == {1, 2}
    return w


def body(args) -> dict:
    world = synthetic_world(args.reads)
    from erofs_top.read_replay import _replay_now
    actual = _replay_now(world, world.records, lambda r: (r.dev, r.ino))
    world.inodes = [Inode(k, frozenset({k[0]}), frozenset(c.pages))
                    for k, c in actual.inodes.items()]
    memo: dict = {}
    world.memo = memo
    replay_savings(world)           # fills the memo

    def measure(case, _rnd):
        world.memo = memo if case == "cached" else {}
        t = time.perf_counter()
        out = replay_savings(world)
        dt = time.perf_counter() - t
        assert out.explained_devs == {1, 2}
        return dt
    values = interleaved(["cached", "new"], args.rounds, measure)
    r = ratios(values, "cached")
    per_100k = min(values["new"]) * 100_000 / args.reads
    print(f"{args.reads} reads on {FILES} files: new/cached median {r['new']['median_ratio']:.1f}x, "
          f"best-of {r['new']['best_of_ratio']:.1f}x; new reads: {per_100k:.2f} s per 100,000 "
          f"reads (best of {args.rounds}); cached: {min(values['cached']):.3f} s")
    return {"reads": args.reads, "ratios": r, "new_s_per_100k_reads": per_100k,
            "cached_s": min(values["cached"])}


def add_args(ap) -> None:
    ap.add_argument("--reads", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)


def main() -> int:
    return benchlib.bench_main(__doc__, add_args, body, root=False)


if __name__ == "__main__":
    raise SystemExit(main())
