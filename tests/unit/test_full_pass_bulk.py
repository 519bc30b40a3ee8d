"""A full pass's bulk steps against the step by step code they replace:
rows.new_holder_rows (a first refresh's holder rows sorted once) against
MountHolders.put of each pair, and aggregate._smallest_ranks (the ranking
made anew) against heapq.nsmallest of every rank."""
from __future__ import annotations

import heapq
import random
from types import SimpleNamespace

import pytest

from erofs_top.aggregate import _smallest_ranks
from erofs_top.rows import MountHolders, new_holder_rows

PAGE = 4096


def _pairs(rng: random.Random) -> dict[int, dict[int, list[int]]]:
    """dev -> cg -> [resident, dup, entries, shared entries], with ties,
    rows of no resident page, u64 cgroup ids, a dev with only empty rows."""
    holders: dict[int, dict[int, list[int]]] = {}
    for dev in range(1, 7):
        per = holders[dev] = {}
        for _ in range(rng.randrange(0, 40)):
            cg = rng.choice([rng.randrange(1, 30), rng.randrange(1 << 63, 1 << 64)])
            r = rng.choice([0, 1, 2, 5, rng.randrange(1 << 40)])
            per[cg] = [r, rng.randrange(r + 1), 1, 0]
    holders[7] = {3: [0, 0, 1, 1]}
    return holders


@pytest.mark.parametrize("seed", range(8))
def test_new_holder_rows_equal_rows_put_one_by_one(seed):
    rng = random.Random(seed)
    holders = _pairs(rng)
    # every pair changed but a few (rows put before: not made again here)
    dirty = {(dev, cg) for dev, per in holders.items() for cg in per if rng.random() < 0.9}
    dirty |= {(8, 1), (1, 999)}         # pairs that went (no sums): no row
    acc = SimpleNamespace(holders=holders, dirty_pairs=dirty)
    bulk = new_holder_rows(acc, PAGE)
    want: dict[int, MountHolders] = {}
    for dev, cg in sorted(dirty, key=lambda p: rng.random()):
        hs = want.setdefault(dev, MountHolders())
        hs.put(cg, holders.get(dev, {}).get(cg), PAGE)
    want = {dev: hs for dev, hs in want.items() if hs.listed}
    assert bulk.keys() == want.keys() and 7 not in bulk
    for dev, hs in want.items():
        b = bulk[dev]
        assert (b.listed, b.keys, b.rows) == (hs.listed, hs.keys, hs.rows), dev
    # rows kept from the bulk step take later changes as put() ones do
    dev = next(iter(want))
    for cg in list(holders[dev])[:5]:
        h = [rng.randrange(1, 9), 0, 1, 0]
        assert bulk[dev].put(cg, h, PAGE) == want[dev].put(cg, h, PAGE)
        assert (bulk[dev].listed, bulk[dev].keys) == (want[dev].listed, want[dev].keys)


class _C:
    """A contribution's rank: what _smallest_ranks reads of one."""
    def __init__(self, resident, dup, dev, ino, mapping=0):
        self.resident, self.dup, self.dev, self.ino, self.mapping = resident, dup, dev, ino, mapping

    @property
    def rank(self):
        return (-self.resident, -self.dup, self.dev, self.ino, self.mapping)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [1, 5, 50, 400])
def test_smallest_ranks_equal_nsmallest_of_every_rank(seed, n):
    rng = random.Random(seed)
    cs = [_C(rng.choice([1, 2, 3, rng.randrange(1000)]), rng.randrange(3), rng.randrange(4),
             ino, rng.choice([0, 0, ino])) for ino in range(rng.randrange(0, 300))]
    assert _smallest_ranks(n, iter(cs)) == heapq.nsmallest(n, (c.rank for c in cs))
