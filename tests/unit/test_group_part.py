"""entries.duplicate_group_part counts a content group's "rebuild" file part
in the pass that makes its duplicate masks (GroupCache.put then makes no
copies for it): that part against a page-by-page count and against
savings.group_file_part() of node_savings.stage_groups()' copies, on seeded
random groups; the groups it must leave to the copies (fingerprinted,
inode_share, shared inodes, several aops classes); and a kept Aggregator
with the counted parts against one that makes every group's copies, on the
random churn of test_refresh_churn.py."""
from __future__ import annotations

import random

import pytest

import erofs_top.aggregate as aggregate_mod
from erofs_top.aggregate import Aggregator, aggregate
from erofs_top.entries import (Entry, SharedEntry, _fill_union, _one_owner, duplicate_group_part,
                               owners_by_chunk)
from erofs_top.node_savings import stage_groups
from erofs_top.readings import CHUNK_PAGES
from erofs_top.resolve.base import (AOPS_BLOCK, AOPS_COMPRESSED, AOPS_FILEIO, FileInfo, ImageInfo,
                                    MountInfo,
                                    StaticContent)
from erofs_top.savings import group_file_part

from test_compact_paths import _counted_savings, _owners
from test_group_cache import _sums
from test_refresh_churn import Node, _assert_same, _refresh

import dataclasses

CGS = (11, 22, 33)
AOPS = (AOPS_BLOCK, AOPS_COMPRESSED, AOPS_FILEIO)


def _mount(dev: int, *, fingerprinted: bool = False, inode_share: bool = False,
           backing: str = "file") -> MountInfo:
    image = ImageInfo(uuid="u", volume_name="", feature_compat=0, feature_incompat=0,
                      block_size=4096, image_id="img-1", ishare_xattrs=fingerprinted,
                      compressed=False)
    return MountInfo(dev=dev, dev_str=f"0:{dev}", mountpoint=f"/m{dev}", source="s",
                     backing=backing, image=image, inode_share=inode_share)


def _entry(rng: random.Random, dev: int, chunks: dict, mount: MountInfo | None) -> Entry:
    e = Entry(dev=dev, ino=7, chunks=chunks, mount=mount)
    if mount is not None:
        e.info = FileInfo(7, "/f", 4 * CHUNK_PAGES * 4096, True,
                          AOPS_FILEIO if mount.backing == "file" else AOPS_BLOCK)
    _fill_union(e)
    owner = _one_owner(chunks)
    if owner is not None and rng.random() < 0.7:    # as chunk_entry keeps it (most)
        e.owner = owner                              # (kept in e.chunks)
    return e


def _plain_group(rng: random.Random, same: bool) -> list[Entry]:
    """2-5 stock copies on unfingerprinted mounts of one class (or no mount):
    the same pages in each (other owners, maybe), or pages of their own."""
    first = _owners(rng, rng.sample(range(6), rng.randint(1, 4)))
    unmounted = rng.random() < 0.2      # no mount: class "?" (aops())
    group = []
    for i in range(rng.randint(2, 5)):
        chunks = first if same else _owners(rng, rng.sample(range(6), rng.randint(1, 4)))
        if same and i:
            chunks = {c: {rng.choice(CGS): _union_of(o)} for c, o in first.items()}
        dev = 100 + rng.choice([i, i, 0])          # two copies on one mount, sometimes
        group.append(_entry(rng, dev, chunks, None if unmounted else _mount(dev)))
    group.sort(key=lambda e: (e.dev, e.ino, e.shared_mapping, id(e)))
    return group


def _union_of(owners: dict[int, int]) -> int:
    u = 0
    for m in owners.values():
        u |= m
    return u


def _copies(group: list[Entry]) -> list:
    return stage_groups(group, StaticContent())["rebuild"]


@pytest.mark.parametrize("seed", range(60))
def test_counted_part_is_the_copies_part(seed):
    rng = random.Random(3000 + seed)
    group = _plain_group(rng, same=seed % 2 == 0)
    redundant, mergeable, part = duplicate_group_part(group)
    assert part is not None and len(mergeable) == 1 and mergeable[0] == group
    copies = _copies(group)
    assert part == group_file_part(copies)
    file_pages, now, by_dev, by_cg = _counted_savings(group, copies)
    fp, img, comp, now_fp, cgs, devs = part
    assert (fp, img, comp, now_fp) == (file_pages, 0, 0, now) == (redundant, 0, 0, 0)
    assert dict(zip(cgs[::2], cgs[1::2])) == by_cg
    assert dict(zip(devs[::2], devs[1::2])) == by_dev


@pytest.mark.parametrize("seed", range(20))
@pytest.mark.parametrize("odd", ["fingerprinted", "inode_share", "shared", "other_class"])
def test_groups_the_copies_count(seed, odd):
    """One member the counted part does not cover: no part, the same masks
    and groups as duplicate_group_part's usual answer."""
    rng = random.Random(4000 + seed)
    group = _plain_group(rng, same=seed % 2 == 0)
    e = group[rng.randrange(len(group))]
    if odd == "shared":
        s = SharedEntry(e.dev, e.ino, chunks=owners_copy(e), shared_mapping=0xffff0001,
                        mount=e.mount, info=e.info)
        _fill_union(s)
        group[group.index(e)] = s
    elif odd == "other_class":
        e.mount = _mount(e.dev, backing="loop")
        e.info = None
    else:
        e.mount = _mount(e.dev, **{odd: True})
    redundant, mergeable, part = duplicate_group_part(group)
    assert part is None
    assert redundant == sum(k - 1 for k in _holders(group).values())


def owners_copy(e: Entry) -> dict:
    from erofs_top.entries import owners_by_chunk
    return {c: dict(o) for c, o in owners_by_chunk(e).items()}


def _holders(group: list[Entry]) -> dict:
    out: dict = {}
    for e in group:
        for c, m in e.union.items():
            for p in range(CHUNK_PAGES):
                if m >> p & 1:
                    out[(c, p)] = out.get((c, p), 0) + 1
    return out


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("maps", [True, False], ids=["maps", "no-maps"])
def test_kept_aggregator_with_counted_parts_equals_one_with_copies(seed, maps, monkeypatch):
    """Two kept Aggregators on one random churn: one takes the parts
    _duplicates counted, the other (duplicate_group_part with its part
    dropped) makes every group's copies; their Models are equal at every
    refresh, so are the kept sums (GroupCache: savings parts, copies per
    dev), and the counted parts were used."""
    counted = duplicate_group_part
    used = [0]

    def without_part(group):
        redundant, mergeable, part = counted(group)
        return redundant, mergeable, None

    def counting(group):
        out = counted(group)
        used[0] += out[2] is not None
        return out
    rng = random.Random(seed * 7 + 1)
    node = _plainer(Node(rng, hint=seed % 2 == 0, maps=maps))
    fused, copies = Aggregator(recheck_slices=0), Aggregator(recheck_slices=0)
    for step in range(50):
        node.churn(rng.choice([1, 5, 40]))
        r = node.readings(float(step))
        monkeypatch.setattr(aggregate_mod, "duplicate_group_part", counting)
        got = _refresh(fused, node, r, 200)
        monkeypatch.setattr(aggregate_mod, "duplicate_group_part", without_part)
        want = _refresh(copies, node, r, 200)
        _assert_same(got, want, step)
        assert _sums(fused.group_cache) == _sums(copies.group_cache), step
        _assert_same(got, aggregate(r, node.mounts, node.cgroups, node.content, tier="full",
                                    started_at=0.0, files_cap=200), step)
    assert used[0] > 0, used


def _plainer(node: Node) -> Node:
    """test_refresh_churn's node with content groups the counted part
    covers: one content per aops class (its groups span no class), image
    img-2 without fingerprints (img-0 keeps them: groups the copies count
    stay, and the inode_share mounts 0 and 3: a remount turns no other
    one into an inode_share mount)."""
    remount = node.remount

    def plain_remount():
        remount()
        for i, m in enumerate(node.all_mounts):
            m.inode_share = m.inode_share and i in (0, 3)
    node.remount = plain_remount
    for m in node.all_mounts:
        if m.image.image_id == "img-2":
            m.image = dataclasses.replace(m.image, ishare_xattrs=False)
    for key, info in node.content.files.items():
        node.content.content[key] = node.content.content[key][:-8] + f"{sorted(AOPS).index(info.aops):08x}"
    return node


def _churned_group(rng: random.Random) -> list[Entry]:
    """_plain_group's same pages in every copy, then a churned node's
    shape: a page or a few evicted (or inserted) in one chunk of one or two
    copies, so most chunks are the same in every copy and a few differ
    (entries._same_chunk takes those; the per-copy loop the others)."""
    group = _plain_group(rng, same=True)
    for e in rng.sample(group, rng.randint(1, min(2, len(group)))):
        chunks = {c: dict(o) for c, o in owners_by_chunk(e).items()}
        c = rng.choice(sorted(chunks))
        cg = next(iter(chunks[c]))
        chunks[c][cg] ^= 1 << rng.randrange(CHUNK_PAGES)
        chunks[c] = {k: v for k, v in chunks[c].items() if v}
        if not chunks[c]:
            del chunks[c]
        e2 = _entry(rng, e.dev, chunks, e.mount)
        group[group.index(e)] = e2
    return group


def _expected_dups(group: list[Entry]) -> list[dict[int, int]]:
    """Page by page: each copy's resident pages also resident in another copy."""
    out = []
    for e in group:
        d = {}
        for c, m in e.union.items():
            others = 0
            for o in group:
                if o is not e:
                    others |= o.union.get(c, 0)
            if m & others:
                d[c] = m & others
        out.append(d)
    return out


@pytest.mark.parametrize("seed", range(60))
def test_churned_group_masks_and_part(seed):
    """A group whose copies differ in a chunk or two (the equal chunks'
    path, entries._same_chunk, and the per-copy loop in one group): the
    duplicate masks page by page, the redundant pages and the counted part
    against the copies' (savings.group_file_part)."""
    rng = random.Random(7000 + seed)
    group = _churned_group(rng)
    expected = _expected_dups(group)
    redundant, mergeable, part = duplicate_group_part(group)
    assert [dict(e.dup) for e in group] == expected
    pages: dict[tuple[int, int], int] = {}
    for e in group:
        for c, m in e.union.items():
            for i in range(CHUNK_PAGES):
                if m >> i & 1:
                    pages[(c, i)] = pages.get((c, i), 0) + 1
    assert redundant == sum(n - 1 for n in pages.values())
    assert part is not None and len(mergeable) == 1
    copies = _copies(group)
    assert part == group_file_part(copies)
    file_pages, now, by_dev, by_cg = _counted_savings(group, copies)
    assert dict(zip(part[4][::2], part[4][1::2])) == by_cg
    assert dict(zip(part[5][::2], part[5][1::2])) == by_dev
    assert part[0] == file_pages == redundant
