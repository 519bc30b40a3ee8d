"""Entries whose every page one cgroup inserted keep only that cgroup
(Entry.owner, no chunk -> owners dict): their contributions, duplicates and
group savings must equal those of the same entries with the full mapping."""
from __future__ import annotations

import random

import pytest

from erofs_top.attribution import Contribution
from erofs_top.entries import (Entry, SeededEntry, _fill_union, chunk_entry, duplicate_group_part,
                              owners_by_chunk)
from erofs_top.readings import CHUNK_PAGES, PageChunk
from erofs_top.savings import Copy, group_file_savings

CGS = (11, 22, 33)


def _chunks(rng: random.Random, dev: int, ino: int, same_pages: dict[int, int] | None):
    """PageChunks of one file: one owner (often), or pages split, or a chunk
    read twice (two PageChunks), seeded pages now and then."""
    owner = rng.choice(CGS)
    pages = same_pages or {c: rng.getrandbits(CHUNK_PAGES) | 1
                           for c in rng.sample(range(6), rng.randint(1, 4))}
    out = []
    for c, mask in pages.items():
        seeded = mask & rng.getrandbits(CHUNK_PAGES) if rng.random() < 0.2 else 0
        r = rng.random()
        if r < 0.6:
            out.append(PageChunk(dev, ino, c, {owner: mask}, seeded))
        elif r < 0.8:
            low = mask & 0xFFFFFFFF
            out.append(PageChunk(dev, ino, c, {owner: low or mask}, seeded))
            if low and mask & ~low:
                out.append(PageChunk(dev, ino, c, {owner: mask & ~low}))
        else:
            other = rng.choice([cg for cg in CGS if cg != owner])
            split = mask & rng.getrandbits(CHUNK_PAGES)
            out.append(PageChunk(dev, ino, c, {owner: mask & ~split, other: split}, seeded))
    return out, pages


def _full(e: Entry) -> Entry:
    """The same entry with the chunk -> owners mapping kept."""
    chunks = {c: dict(o) for c, o in owners_by_chunk(e).items()}
    f = SeededEntry(e.dev, e.ino, chunks, seeded=e.seeded) if e.seeded else Entry(e.dev, e.ino, chunks)
    _fill_union(f)
    return f


def _facts(group: list[Entry]) -> tuple:
    redundant, _, _ = duplicate_group_part(group)
    contribs = [Contribution(e) for e in group]
    copies = [Copy((e.dev, e.ino, 0), e.union, e.chunks, None, None, i % 2 == 0, owner=e.owner)
              for i, e in enumerate(group)]
    s = group_file_savings(copies)
    return (redundant,
            [(c.resident, c.dup, c.seeded, sorted(c.per_cg())) for c in contribs],
            (s.file_pages, s.now_file_pages, {k: v for k, v in s.by_cgroup.items() if v},
             {k: v for k, v in s.by_dev.items() if v}))


@pytest.mark.parametrize("seed", range(60))
def test_one_owner_entries_equal_the_full_mapping(seed):
    rng = random.Random(seed)
    group, compact_seen = [], 0
    pages = None
    for i in range(rng.randint(2, 5)):
        pcs, made = _chunks(rng, 100 + i, 7, pages if rng.random() < 0.5 else None)
        pages = pages or made
        e = chunk_entry(100 + i, 7, pcs)
        compact_seen += e.owner is not None
        if e.owner is not None:
            assert e.chunks is e.owner          # kept in chunks (no slot of its own)
            assert {(c, cg) for c, o in owners_by_chunk(e).items() for cg in o} == \
                {(pc.chunk, cg) for pc in pcs for cg, m in pc.owners.items() if m}
        group.append(e)
    full = [_full(e) for e in group]
    assert all(f.owner is None for f in full)
    assert _facts(group) == _facts(full)


def test_compact_entries_are_made():
    """The usual file (one cgroup read it) keeps no chunk mapping."""
    e = chunk_entry(1, 2, [PageChunk(1, 2, 0, {5: 0b1011}), PageChunk(1, 2, 3, {5: 1 << 63})])
    assert (e.owner, e.chunks) == (5, 5)          # the owner kept in chunks: no dict
    assert owners_by_chunk(e) == {0: {5: 0b1011}, 3: {5: 1 << 63}}
    two = chunk_entry(1, 2, [PageChunk(1, 2, 0, {5: 1}), PageChunk(1, 2, 1, {6: 1})])
    assert two.owner is None and two.chunks == {0: {5: 1}, 1: {6: 1}}


@pytest.mark.parametrize("seed", range(3))
def test_one_owner_fast_path_equals_the_general_one(seed):
    """chunk_entry's one-pass path for one-owner files (_one_owner_entry)
    builds what the general path (_any_chunk_entry) builds from the same
    PageChunks; files it does not take (several cgroups, seeded pages, a
    chunk in two PageChunks, an empty mask) are left to the general path."""
    from erofs_top.entries import _any_chunk_entry, _one_owner_entry
    rng = random.Random(seed)
    taken = left = 0
    for ino in range(300):
        pcs, _ = _chunks(rng, 7, ino, None)
        if rng.random() < 0.05:
            pcs.append(PageChunk(7, ino, 9, {rng.choice(CGS): 0}))
        fast = _one_owner_entry(7, ino, pcs)
        slow = _any_chunk_entry(7, ino, pcs)
        if fast is None:
            left += 1
            assert slow.owner is None or slow.seeded or len(pcs) != len(slow.union) \
                or any(0 in pc.owners.values() for pc in pcs)
            continue
        taken += 1
        assert (fast.owner, fast.chunks, fast.union, dict(fast.seeded), fast.input) == \
            (slow.owner, slow.chunks, slow.union, dict(slow.seeded), slow.input)
        assert list(fast.union) == list(slow.union)         # the same order
    assert taken > 50 and left > 50


@pytest.mark.parametrize("seed", range(3))
def test_many_owner_fast_path_equals_the_general_one(seed):
    """chunk_entry's one-pass path for the files _one_owner_entry leaves
    (_many_owner_entry: several cgroups, one PageChunk a chunk, nothing
    seeded, no empty mask) builds what _any_chunk_entry builds."""
    from erofs_top.entries import _any_chunk_entry, _many_owner_entry, _one_owner_entry
    rng = random.Random(seed)
    taken = left = 0
    for ino in range(400):
        pcs, _ = _chunks(rng, 7, ino, None)
        if rng.random() < 0.05:
            pcs.append(PageChunk(7, ino, 9, {rng.choice(CGS): 0} if rng.random() < 0.5 else {}))
        if _one_owner_entry(7, ino, pcs) is not None:
            continue
        fast = _many_owner_entry(7, ino, pcs)
        slow = _any_chunk_entry(7, ino, pcs)
        if fast is None:
            left += 1
            continue
        taken += 1
        assert (fast.owner, fast.chunks, fast.union, dict(fast.seeded), fast.input) == \
            (slow.owner, slow.chunks, slow.union, dict(slow.seeded), slow.input)
        assert list(fast.union) == list(slow.union) and list(fast.chunks) == list(slow.chunks)
        assert all(fast.chunks[c] is pc.owners for pc in pcs for c in [pc.chunk])
        assert chunk_entry(7, ino, pcs).chunks == slow.chunks
    assert taken > 30 and left > 30


def test_a_wholly_seeded_file_keeps_its_union_as_its_seeded_masks():
    """A file all of whose resident pages are seeded keeps no seeded dict of
    its own (its union is read only); a partly seeded one keeps its own,
    with the seeded pages only; the contribution's seeded pages are the same
    either way."""
    whole = [PageChunk(7, 1, 0, {11: 0b1111}, 0b1111), PageChunk(7, 1, 2, {22: 0b11}, 0b11)]
    part = [PageChunk(7, 2, 0, {11: 0b1111}, 0b0101), PageChunk(7, 2, 2, {22: 0b11}, 0)]
    e, p = chunk_entry(7, 1, whole), chunk_entry(7, 2, part)
    assert e.seeded is e.union and dict(e.union) == {0: 0b1111, 2: 0b11}
    assert p.seeded is not p.union and dict(p.seeded) == {0: 0b0101}
    assert Contribution(e).seeded == 6 and Contribution(p).seeded == 2
