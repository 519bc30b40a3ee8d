"""The aggregator's shortcuts for the usual cases (copies holding the same
pages, entries whose every page is duplicated, single owners) against a
page-by-page count made here from the same inputs: resident, duplicate,
redundant and the file part of the potential savings, per cgroup and per
mount, on seeded random groups that hit the shortcuts and groups that miss
them."""
from __future__ import annotations

import random

import pytest

from erofs_top.attribution import Contribution
from erofs_top.entries import (NONE, Entry, _fill_union, _one_owner, duplicate_group_part,
                              owners_by_chunk)
from erofs_top.readings import CHUNK_PAGES
from erofs_top.savings import Copy, group_file_savings

CGS = (11, 22, 33)


def _owners(rng: random.Random, chunk_ids) -> dict[int, dict[int, int]]:
    """chunk -> cgroup -> mask: one owner (most chunks) or pages split among several."""
    out = {}
    for c in chunk_ids:
        mask = rng.getrandbits(CHUNK_PAGES) | 1
        if rng.random() < 0.6:
            out[c] = {rng.choice(CGS): mask}
            continue
        parts: dict[int, int] = {}
        for p in range(CHUNK_PAGES):
            if mask >> p & 1:
                cg = rng.choice(CGS)
                parts[cg] = parts.get(cg, 0) | 1 << p
        out[c] = parts
    return out


def _group(rng: random.Random, n: int, same: bool) -> list[Entry]:
    chunk_ids = rng.sample(range(6), rng.randint(1, 4))
    first = _owners(rng, chunk_ids)
    group = []
    for i in range(n):
        chunks = first if same else _owners(rng, rng.sample(range(6), rng.randint(1, 4)))
        # same pages, possibly other owners: shuffle which cgroup holds them
        if same and i:
            chunks = {c: {rng.choice(CGS): m for m in [_union(o)]} for c, o in first.items()}
        e = Entry(dev=100 + i, ino=7, chunks=chunks)
        _fill_union(e)
        owner = _one_owner(chunks)
        if owner is not None and rng.random() < 0.7:    # as chunk_entry keeps it (most)
            e.owner = owner                          # (kept in e.chunks)
        group.append(e)
    return group


def _union(owners: dict[int, int]) -> int:
    u = 0
    for m in owners.values():
        u |= m
    return u


def _pages(e: Entry) -> set[tuple[int, int]]:
    return {(c, p) for c, m in e.union.items() for p in range(CHUNK_PAGES) if m >> p & 1}


def _owner_of(e: Entry, page: tuple[int, int]) -> int:
    c, p = page
    return next(cg for cg, m in owners_by_chunk(e)[c].items() if m >> p & 1)


@pytest.mark.parametrize("seed", range(40))
def test_duplicates_and_contributions_match_a_page_count(seed):
    rng = random.Random(seed)
    group = _group(rng, rng.randint(2, 5), same=seed % 2 == 0)
    redundant, _, _ = duplicate_group_part(group)
    pages = [_pages(e) for e in group]
    holders: dict[tuple[int, int], int] = {}
    for ps in pages:
        for pg in ps:
            holders[pg] = holders.get(pg, 0) + 1
    assert redundant == sum(k - 1 for k in holders.values())
    for e, ps in zip(group, pages):
        dup_pages = {pg for pg in ps if holders[pg] >= 2}
        got = {(c, p) for c, m in e.dup.items() for p in range(CHUNK_PAGES) if m >> p & 1}
        assert got == dup_pages
        contrib = Contribution(e)
        per_cg = {cg: (r, d, s) for cg, r, d, s in contrib.per_cg()}
        assert contrib.resident == len(ps) and contrib.dup == len(dup_pages)
        assert set(per_cg) == {_owner_of(e, pg) for pg in ps}
        for cg in per_cg:
            mine = {pg for pg in ps if _owner_of(e, pg) == cg}
            assert per_cg[cg] == (len(mine), len(mine & dup_pages), 0)


def _counted_savings(group, copies):
    """What a group saves, counted page by page: the fingerprinted copies
    first (stable), the first holder of a page keeps it.  Returns (file
    pages, now file pages, by dev, by cgroup)."""
    order = sorted(range(len(copies)), key=lambda i: not copies[i].fingerprinted)
    held: set = set()
    held_fp: set = set()
    file_pages = now = 0
    by_dev: dict[int, int] = {}
    by_cg: dict[int, int] = {}
    for i in order:
        ps = _pages(group[i])
        gone = ps & held
        held |= ps
        if copies[i].fingerprinted:
            now += len(ps & held_fp)
            held_fp |= ps
        file_pages += len(gone)
        if gone:
            by_dev[group[i].dev] = by_dev.get(group[i].dev, 0) + len(gone)
        for pg in gone:
            cg = _owner_of(group[i], pg)
            by_cg[cg] = by_cg.get(cg, 0) + 1
    return file_pages, now, by_dev, by_cg


@pytest.mark.parametrize("seed", range(40))
def test_group_file_savings_match_a_page_count(seed):
    rng = random.Random(1000 + seed)
    group = _group(rng, rng.randint(2, 5), same=seed % 2 == 0)
    copies = [Copy(key=(e.dev, e.ino, 0), union=e.union, owners=owners_by_chunk(e), image=None,
                   page_map=None, fingerprinted=rng.random() < 0.5) for e in group]
    s = group_file_savings(copies)
    file_pages, now, by_dev, by_cg = _counted_savings(group, copies)
    assert (s.file_pages, s.now_file_pages) == (file_pages, now)
    assert {k: v for k, v in s.by_dev.items() if v} == by_dev
    assert {k: v for k, v in s.by_cgroup.items() if v} == by_cg


def test_empty_mapping_equals_only_empty_mappings():
    assert NONE == {} and {} == NONE and NONE == NONE
    assert NONE != {1: 1} and {1: 1} != NONE


def test_a_group_whose_mounts_changed_in_place_is_recomputed():
    """The kept group savings are skipped only for groups of the same entries,
    none rebuilt or re-resolved: here the same two entries, re-resolved
    because their images gained fingerprints (new MountInfo, same devs)."""
    import dataclasses

    from erofs_top.aggregate import Aggregator, aggregate
    from erofs_top.readings import PageChunk, Readings, kdev
    from erofs_top.resolve.base import (AOPS_FILEIO, FileInfo, ImageInfo, MountInfo,
                                        StaticCgroups, StaticContent, StaticMounts)
    plain = ImageInfo(uuid="0001", volume_name="", feature_compat=0, feature_incompat=0,
                      block_size=4096, image_id="img-1", ishare_xattrs=False, compressed=False)
    mounts = StaticMounts([MountInfo(dev=kdev(0, 300 + n), dev_str=f"0:{300 + n}",
                                     mountpoint=f"/run/m{n}", source="/img/1", backing="file",
                                     image=plain, backing_dev=kdev(8, 1), backing_ino=5000 + n)
                           for n in (1, 2)])
    content = StaticContent()
    chunks = []
    for n, m in enumerate(mounts.items):
        content.files[(m.dev, 7)] = FileInfo(7, f"{m.mountpoint}/lib.so", 64 * 4096, True,
                                             AOPS_FILEIO)
        chunks.append(PageChunk(m.dev, 7, 0, {1001 + n: (1 << 64) - 1}))
    r = Readings(taken_at=1.0, page_size=4096, chunks=chunks)
    cgroups = StaticCgroups({1001: "/a", 1002: "/b"})
    args = dict(tier="tracepoint", started_at=0.0)
    agg = Aggregator(recheck_slices=0)
    before = agg.update(r, mounts, cgroups, content, **args)
    assert before.totals.potential_savings_now_bytes == 0
    fingerprinted = dataclasses.replace(plain, ishare_xattrs=True)
    mounts.items = [dataclasses.replace(m, image=fingerprinted) for m in mounts.items]
    got = agg.update(r, mounts, cgroups, content, **args)
    want = aggregate(r, mounts, cgroups, content, **args)
    assert want.totals.potential_savings_now_bytes == 64 * 4096
    assert got == want


@pytest.mark.parametrize("seed", range(20))
def test_group_file_part_matches_a_page_count(seed):
    """The flat part GroupCache keeps (savings.group_file_part): the group's
    savings counted page by page, zero counts left out."""
    from erofs_top.savings import group_file_part
    rng = random.Random(2000 + seed)
    group = _group(rng, rng.randint(2, 5), same=seed % 2 == 0)
    copies = [Copy(key=(e.dev, e.ino, 0), union=e.union, owners=owners_by_chunk(e), image=None,
                   page_map=None, fingerprinted=rng.random() < 0.5) for e in group]
    file_pages, now, by_dev, by_cg = _counted_savings(group, copies)
    fp, img, comp, now_fp, cgs, devs = group_file_part(copies)
    assert (fp, img, comp, now_fp) == (file_pages, 0, 0, now)
    assert dict(zip(cgs[::2], cgs[1::2])) == by_cg
    assert dict(zip(devs[::2], devs[1::2])) == by_dev
    assert 0 not in cgs[1::2] and 0 not in devs[1::2]
