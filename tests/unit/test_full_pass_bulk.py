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
from erofs_top.readings import PageChunk, Readings
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
    """A contribution: what rank_of reads of one (a file's dev, ino are its
    key's; a shared inode's its own)."""
    def __init__(self, resident, dup, dev, ino, mapping=0):
        self.resident, self.dup, self.dev, self.ino, self.mapping = resident, dup, dev, ino, mapping

    @property
    def key(self):
        return ("shared", self.mapping) if self.mapping else (self.dev, self.ino)

    @property
    def rank(self):     # written out (rank_of's value)
        return (-self.resident, -self.dup, self.dev, self.ino, self.mapping)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("n", [1, 5, 50, 400])
def test_smallest_ranks_equal_nsmallest_of_every_rank(seed, n):
    rng = random.Random(seed)
    cs = [_C(rng.choice([1, 2, 3, rng.randrange(1000)]), rng.randrange(3), rng.randrange(4),
             ino, rng.choice([0, 0, ino])) for ino in range(rng.randrange(0, 300))]
    assert _smallest_ranks(n, [c.key for c in cs], cs) == heapq.nsmallest(
        n, (c.rank for c in cs))


def _digest_world(copies: dict[int, int]):
    """Mounts without an image (contents told by digest); on each, files
    of the sizes in ``copies`` (size -> how many mounts hold one), one
    content per size: size groups of 3 (a tuple) and of 10 (a set)."""
    from erofs_top.readings import PageChunk, Readings, kdev
    from erofs_top.resolve.base import (AOPS_BLOCK, FileInfo, MountInfo, StaticCgroups,
                                        StaticContent, StaticMounts)
    mounts, files, digests, chunks = [], {}, {}, []
    for n in range(max(copies.values())):
        dev = kdev(7, 40 + n)
        mounts.append(MountInfo(dev=dev, dev_str=f"7:{40 + n}", mountpoint=f"/m{n}",
                                source=f"/img/{n}", backing="loop"))
        for ino, (size, count) in enumerate(copies.items(), start=5):
            if n < count:
                files[(dev, ino)] = FileInfo(ino, f"/m{n}/f{ino}", size, True, AOPS_BLOCK)
                digests[(dev, ino)] = f"{size:064x}"
                chunks.append(PageChunk(dev, ino, 0, {1001 + n: 0b111}))
    return (Readings(taken_at=1.0, page_size=4096, chunks=chunks), StaticMounts(mounts),
            StaticCgroups({1001 + n: f"/c{n}" for n in range(len(mounts))}),
            StaticContent(files=files, content=digests))


def test_a_content_group_keeps_its_size_groups_tuple_never_its_set():
    """A full pass: a content group that is all of its size group keeps the
    size group's tuple (one object), never its set (mutable: the two
    groups part when a file of that size but another content comes); the
    steady refresh after one comes is the general code's."""
    from erofs_top.aggregate import Aggregator
    from erofs_top.resolve.base import AOPS_BLOCK, FileInfo
    from test_full_pass import _assert_same_state
    from test_refresh_churn import _assert_same
    fast, slow = Aggregator(recheck_slices=0), Aggregator(recheck_slices=0)
    slow.fast_full = False
    r, mounts, cgroups, content = _digest_world({8192: 3, 12288: 10})
    for agg in (fast, slow):
        agg.update(r, mounts, cgroups, content, tier="full", started_at=0.0)
    assert fast.built_anew
    ck = {s: fast.entries[next(iter(fast.size_keys[s]))].content_key for s in (8192, 12288)}
    assert type(fast.size_keys[8192]) is tuple and fast.ckey_keys[ck[8192]] is fast.size_keys[8192]
    assert type(fast.size_keys[12288]) is set
    assert fast.ckey_keys[ck[12288]] is not fast.size_keys[12288]
    # a new file of that size, another content: in the size group, not the content group
    dev = mounts.items[0].dev
    content.files[(dev, 9)] = FileInfo(9, "/m0/f9", 12288, True, AOPS_BLOCK)
    content.content[(dev, 9)] = "f" * 64
    r2 = Readings(taken_at=2.0, page_size=4096,
                  chunks=[*r.chunks, PageChunk(dev, 9, 0, {1001: 0b1})])
    got, want = (agg.update(r2, mounts, cgroups, content, tier="full", started_at=0.0)
                 for agg in (fast, slow))
    assert not fast.built_anew and (dev, 9) in fast.size_keys[12288]
    assert (dev, 9) not in fast.ckey_keys[ck[12288]]
    _assert_same(got, want, 1)
    _assert_same_state(fast, slow, 1)
