"""A full pass's one-loop paths make what the general code makes.

A refresh that begins with nothing kept (a full pass: aggregate(), an
Aggregator's first refresh, a restart after much churn) takes paths of its
own (Aggregator.fast_full): the entries put in one loop, resolution and size
groups in one loop over the entries, the usual file's Contribution made
without a call each, the sums counted by (mount, row).  With fast_full off
the same refresh goes through the general (incremental) code, entry by
entry.  Both must leave the same Model and the same kept state, and refresh
alike afterwards.  The churn tests (test_refresh_churn.py) cannot see a
wrong full pass: there aggregate() is the full pass on both sides."""
from __future__ import annotations

import copy
import dataclasses
import random
from collections import Counter

import pytest
from test_group_part import _mount, _plain_group, _plainer, owners_copy
from test_refresh_churn import Node, _assert_same, _refresh

from erofs_top.aggregate import Aggregator
from erofs_top.attribution import (Accumulators, Contribution, OwnerContribution,
                                  contribution, new_contributions)
import erofs_top.entries as entries_mod
from erofs_top.entries import (SharedEntry, chunk_entry, duplicate_group_part, full_image_group,
                               size_group_keys,
                               full_group_part)
from erofs_top.readings import PageChunk, Readings, kdev
from erofs_top.resolve.base import (AOPS_BLOCK, FileInfo, ImageInfo, MountInfo, StaticCgroups,
                                    StaticContent, StaticMounts)


def _contrib_state(c) -> tuple | None:
    if c is None:
        return None
    # (an OwnerContribution keeps no dev, ino: the entry's key is the file)
    return (type(c).__name__, c.cg_sums, id(c.mount), c.resident, c.dup, c.seeded,
            getattr(c, "dev", None), getattr(c, "ino", None), c.users, c.member_users,
            c.shared_pages, c.mapping)


def _entry_state(e) -> tuple:
    return (type(e).__name__, e.dev, e.ino, e.chunks, dict(e.seeded), id(e.mount), e.info,
            e.content_key, e.union, dict(e.dup), e.dup is e.union, e.in_group, e.owner,
            e.size_idx, e.ckey_idx, _contrib_state(e.contrib), e.shared_mapping,
            dict(e.users), e.used_members, e.touched, _input(e.input))


def _input(inp) -> object:
    # a list made per read (group_chunks): its PageChunks, the same objects
    return tuple(map(id, inp)) if isinstance(inp, list) else id(inp)


def _groups(d: dict) -> dict:
    return {k: v if type(v) is tuple else frozenset(v) for k, v in d.items()}


def _members(d: dict) -> dict:
    """_groups without the order of a tuple's keys (the content groups'
    members are sorted at each use; a content key met in two size groups
    has its keys in the order of the groups, not the entries')."""
    return {k: (type(v), frozenset(v)) for k, v in d.items()}


def _acc_state(acc: Accumulators) -> dict:
    return {
        "cg": acc.cg, "mount_resident": acc.mount_resident, "mount_dup": acc.mount_dup,
        "mounts": {d: id(m) for d, m in acc.mounts.items()}, "holders": acc.holders,
        "user_devs": acc.user_devs, "member_users": acc.member_users,
        "totals": (acc.resident, acc.dup, acc.seeded, acc.shared),
        "holder_cgs": acc.holder_cgs, "cg_devs": acc.cg_devs, "shared_only": acc.shared_only,
        "member_only": acc.member_only, "dirty_pairs": acc.dirty_pairs,
        "dirty_cgs": acc.dirty_cgs, "readers": acc.readers(),
    }


def _state(agg: Aggregator) -> dict:
    return {
        "entries": {k: _entry_state(e) for k, e in agg.entries.items()},
        "order": list(agg.entries), "files_live": agg.files_live,
        "dev_keys": agg.dev_keys, "mount_sigs": agg.mount_sigs,
        "unresolved": agg.unresolved_devs, "slices": agg.slices,
        "size_keys": _groups(agg.size_keys), "pending": agg.pending_sizes,
        "ckey_keys": _members(agg.ckey_keys), "redundant": agg.redundant,
        "mergeable": {ck: [[(e.dev, e.ino, e.shared_mapping) for e in g] for g in gs]
                      for ck, gs in agg.mergeable.items()},
        "shared_keys": agg.shared_keys, "special": agg.special,
        "groups": sorted(agg.group_cache.groups), "acc": _acc_state(agg.acc),
        "group_cache": _cache_state(agg.group_cache), "dirty_groups": agg.dirty_groups,
        "new_ckeys": agg.new_ckeys,
    }


def _cache_state(cache) -> dict:
    """A GroupCache's kept groups (each tuple: order, copies per stage,
    file parts, maps, unmapped, devs) and its sums, by value."""
    return {"groups": cache.groups, "dev_count": cache.dev_count, "unmapped": cache.unmapped,
            "with_maps": cache.with_maps,
            "file_part": {stage: (s.file_pages, s.image_pages, s.compressed_pages,
                                  s.now_file_pages, dict(s.by_cgroup), dict(s.by_dev))
                          for stage, s in cache.file_part.items()}}


def _assert_same_state(fast: Aggregator, slow: Aggregator, step: int) -> None:
    a, b = _state(fast), _state(slow)
    diff = sorted(k for k in b if a[k] != b[k])
    assert not diff, f"step {step}: the full pass's paths differ from the general code in {diff}"


def _pair(recheck: int) -> tuple[Aggregator, Aggregator]:
    fast, slow = Aggregator(recheck_slices=recheck), Aggregator(recheck_slices=recheck)
    slow.fast_full = False
    return fast, slow


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("recheck", [0, 4])
@pytest.mark.parametrize("hint", [False, True], ids=["no-hint", "changed-files"])
def test_full_pass_equals_the_general_path(seed, recheck, hint):
    """A full pass, then refreshes (some large enough to start anew): the
    fast and the general Aggregator give the same Models and kept state."""
    rng = random.Random(seed)
    node = Node(rng, hint=hint)
    node.content.step = seed % 3 * 4        # some identities pending
    node.churn(80)
    fast, slow = _pair(recheck)
    anew = 0
    for step in range(12):
        r = node.readings(float(step))
        got, want = _refresh(fast, node, r, 10), _refresh(slow, node, r, 10)
        assert not slow.built_anew
        anew += fast.built_anew
        _assert_same(got, want, step)
        _assert_same_state(fast, slow, step)
        node.churn(rng.choice([2, 10, 60]))
    assert anew, "no full pass took the fast paths: the test sees nothing"


@pytest.mark.parametrize("seed", range(3))
def test_full_pass_after_every_file_went(seed):
    """A kept Aggregator whose files all went (nothing kept but its
    bookkeeping) builds anew like a fresh one, and like the general code."""
    rng = random.Random(seed)
    node = Node(rng)
    node.content.step = 100
    node.churn(60)
    fast, slow = _pair(0)
    for agg in (fast, slow):
        _refresh(agg, node, node.readings(0.0), 10)
    saved, node.chunks, node.shared = (node.chunks, node.shared), {}, {}
    r = node.readings(1.0)
    _assert_same(_refresh(fast, node, r, 10), _refresh(slow, node, r, 10), 1)
    node.chunks, node.shared = saved
    r = node.readings(2.0)
    got, want = _refresh(fast, node, r, 10), _refresh(slow, node, r, 10)
    assert fast.built_anew and fast.files_live
    _assert_same(got, want, 2)
    _assert_same_state(fast, slow, 2)


def _acc_after(contribs: list, bulk: bool) -> dict:
    acc = Accumulators()
    if bulk:
        acc.add_new(contribs)
    else:
        for c in contribs:
            acc.apply(c, +1)
    return _acc_state(acc)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("two_mounts", [False, True], ids=["one-mount-a-dev", "two-mounts-a-dev"])
def test_add_new_equals_one_apply_each(seed, two_mounts):
    """Accumulators.add_new (rows counted by mount) against apply() of each
    contribution in turn; with two mount objects of one dev among them
    (never in a full pass) the order decides which is kept, as in apply()."""
    rng = random.Random(seed)
    node = Node(rng)
    node.content.step = 100
    node.churn(120)
    agg = Aggregator(recheck_slices=0)
    _refresh(agg, node, node.readings(0.0), 10)
    # (the aggregator's own, changed below: it is not used again)
    contribs = [e.contrib for e in agg.entries.values() if e.contrib is not None]
    contribs += contribs[::3]       # repeated rows
    rng.shuffle(contribs)
    assert sum(type(c) is OwnerContribution for c in contribs) > 10
    if two_mounts:
        for c in contribs[::4]:
            if c.mount is not None:
                c.mount = dataclasses.replace(c.mount)
    assert _acc_after(contribs, True) == _acc_after(contribs, False)
    # the same given apart (a full pass's add_new_parts); two mounts of a
    # dev: refused, nothing added (the caller then takes add_new)
    acc = Accumulators()
    owners = [c for c in contribs if type(c) is OwnerContribution]
    done = acc.add_new_parts(owners, [c for c in contribs if type(c) is not OwnerContribution])
    assert done is not two_mounts
    assert _acc_state(acc) == (_acc_state(Accumulators()) if two_mounts
                               else _acc_after(contribs, False))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("maps", [True, False], ids=["maps", "no-maps"])
def test_full_pass_groups_equal_the_general_path(seed, maps):
    """The full pass's content groups (fetched and sorted once by
    _content_keys_all, _duplicates_all) and its GroupCache (put_new: the
    counted parts summed in one go) against the general code, on
    test_group_part's plainer node, where most content groups are one
    mergeable group of stock copies (their parts counted with the masks):
    the same Models, kept groups and sums."""
    rng = random.Random(seed * 5 + 3)
    node = _plainer(Node(rng, hint=seed % 2 == 0, maps=maps))
    node.content.step = 100
    node.churn(80)
    fast, slow = _pair(4)
    parts = split = single = 0
    for step in range(6):
        r = node.readings(float(step))
        got, want = _refresh(fast, node, r, 10), _refresh(slow, node, r, 10)
        if fast.built_anew:
            g = fast.group_cache
            parts += sum(1 for v in g.groups.values() if v[1] is None)
            single += sum(1 for ks in fast.ckey_keys.values() if len(ks) == 1)
            split += sum(1 for ks in fast.size_keys.values()
                         if len({fast.entries[k].content_key for k in ks} - {""}) > 1)
        _assert_same(got, want, step)
        _assert_same_state(fast, slow, step)
        node.churn(rng.choice([5, 60]))
    # the paths were taken: counted parts kept without copies (no maps),
    # size groups of several contents, contents of one file
    assert (parts or maps) and split and single, (parts, split, single)


def _one_image_world(sizes: list[int], same_pages: bool = False):
    """Mounts of one image (no fingerprints), one file (nid 5) on each, its
    size per mount ``sizes``: copies of one nid of one image in size groups
    of their own, each keyed "img:" (the same key in every group);
    ``same_pages``: the same pages in each copy (a full pass's usual size
    groups, entries.full_image_group's)."""
    img = ImageInfo(uuid="0-0", volume_name="", feature_compat=0, feature_incompat=0,
                    block_size=4096, image_id="img-x", ishare_xattrs=False, compressed=False)
    mounts, files, chunks = [], {}, []
    for n, size in enumerate(sizes):
        dev = kdev(7, 40 + n)
        mounts.append(MountInfo(dev=dev, dev_str=f"7:{40 + n}", mountpoint=f"/m{n}",
                                source="/img/x", backing="loop", image=img))
        files[(dev, 5)] = FileInfo(5, f"/m{n}/f", size, True, AOPS_BLOCK)
        chunks.append(PageChunk(dev, 5, 0, {1001 + n: (1 << (8 + (0 if same_pages else n))) - 1}))
    r = Readings(taken_at=1.0, page_size=4096, chunks=chunks)
    return r, StaticMounts(mounts), StaticCgroups({1001 + n: f"/c{n}" for n in range(len(sizes))}),\
        StaticContent(files=files)


@pytest.mark.parametrize("same_pages", [False, True], ids=["own-pages", "same-pages"])
@pytest.mark.parametrize("sizes", [[8192, 8192, 12288, 12288], [8192, 12288, 8192, 12288, 8192]])
def test_one_content_key_in_two_size_groups(sizes, same_pages):
    """A content key made in two size groups (_add_content_group merges
    them: the general code keys one content group by its key) gives the
    general path's one content group, Model and kept state."""
    fast, slow = _pair(0)
    r, mounts, cgroups, content = _one_image_world(sizes, same_pages)
    got = fast.update(r, mounts, cgroups, content, tier="full", started_at=0.0)
    want = slow.update(r, mounts, cgroups, content, tier="full", started_at=0.0)
    assert fast.built_anew and len(fast.ckey_keys) == 1 and len(fast.size_keys) == 2
    assert len(next(iter(fast.mergeable.values()))[0]) == len(sizes)
    _assert_same(got, want, 0)
    _assert_same_state(fast, slow, 0)


def _contrib_entries(rng: random.Random) -> list:
    """Entries of every kind Contribution(e) tells apart but the owner's:
    pages of 1-4 cgroups a chunk (a chunks dict), no page, every resident
    page or some duplicated, seeded pages, one owner with some duplicated."""
    mount = MountInfo(dev=kdev(7, 40), dev_str="7:40", mountpoint="/m", source="/img/x",
                      backing="loop", image=None)
    es = []
    for ino in range(1, 400):
        pcs = []
        for c in range(rng.randint(1, 3)):
            cgs = rng.sample(range(1001, 1006), rng.choice([1, 2, 2, 3, 4]))
            seeded = rng.getrandbits(64) if rng.random() < 0.1 else 0
            pcs.append(PageChunk(mount.dev, ino, c, {cg: rng.getrandbits(64) | 1 for cg in cgs},
                                 seeded))
        e = chunk_entry(mount.dev, ino, pcs, keep=False)
        e.mount = mount
        kind = rng.random()
        if kind < 0.3:
            e.dup = e.union
        elif kind < 0.45:
            e.dup = {c: m & 0xff for c, m in e.union.items()}
        es.append(e)
    return es


@pytest.mark.parametrize("seed", range(4))
def test_new_contributions_equal_contribution(seed):
    """attribution.new_contributions (a full pass's contributions that are
    not an owner's; the usual of them, pages of several cgroups, made
    without Contribution's calls) against Contribution(e) of each entry:
    the same kinds and sums, kept in e.contrib, in order."""
    rng = random.Random(seed)
    es = [e for e in _contrib_entries(rng) if type(Contribution(e)) is not OwnerContribution]
    want = [_contrib_state(Contribution(e)) for e in es]
    got = new_contributions(es)
    assert [_contrib_state(c) for c in got] == want
    assert all(e.contrib is c for e, c in zip(es, got))
    # the inline path's cases were met: 2 and more cgroups, with and
    # without duplicates (dup the union), beside the general ones
    inline = Counter((min(len(c.cg_sums) // 4, 3), c.dup > 0) for c, e in zip(got, es)
                     if not (e.seeded or type(e.chunks) is int or (e.dup and e.dup is not e.union)))
    assert {(2, False), (2, True), (3, False), (3, True)} <= inline.keys(), inline
    assert len(es) - sum(inline.values()) > 20


ODD_MEMBERS = [None, "no_mount", "equal_union", "other_pages", "fingerprinted", "inode_share",
               "shared", "other_class"]


def _one_union_group(rng: random.Random, odd: str | None) -> list:
    """test_group_part's plain group of the same pages in each copy, every
    copy's union one object (shared_union's usual file), and one member
    of some other kind (``odd``)."""
    group = _plain_group(rng, same=True)
    while group[0].mount is None:           # (a group of unmounted copies: "no_mount")
        group = _plain_group(rng, same=True)
    union = group[0].union
    for e in group:
        e.union = union
    e = group[rng.randrange(len(group))]
    if odd == "no_mount":
        e.mount = e.info = None
    elif odd == "equal_union":
        e.union = dict(union)
    elif odd == "other_pages":
        e.union = {c: m >> 1 or 1 for c, m in union.items()}
    elif odd == "shared":
        s = SharedEntry(e.dev, e.ino, chunks=owners_copy(e), shared_mapping=0xffff0001,
                        mount=e.mount, info=e.info)
        s.union = union
        group[group.index(e)] = s
    elif odd == "other_class":
        e.mount, e.info = _mount(e.dev, backing="loop"), None
    elif odd:
        e.mount = _mount(e.dev, **{odd: True})
    return group


def _part_state(result: tuple, group: list) -> tuple:
    redundant, groups, part = result
    # members by their place in the group (entries compare by identity)
    return redundant, [[group.index(e) for e in members] for members in groups], part, [
        (e.in_group, e.dup, e.dup is e.union, e.union, e.union is group[0].union) for e in group]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("odd", ODD_MEMBERS, ids=str)
def test_full_group_part_equals_duplicate_group_part(seed, odd, monkeypatch):
    """entries.full_group_part (a full pass's content group: the usual one
    made in one walk) against duplicate_group_part on a copy of the same
    entries; the usual group never reaches duplicate_group_part."""
    rng = random.Random(seed)
    group = _one_union_group(rng, odd)
    copies = [copy.copy(e) for e in group]
    want = _part_state(duplicate_group_part(copies), copies)
    if odd is None:
        monkeypatch.setattr(entries_mod, "duplicate_group_part", None)
    assert _part_state(full_group_part(group), group) == want


IMAGE_ODD_MEMBERS = ODD_MEMBERS + ["other_ino", "other_image", "no_image"]


def _keyed_state(group: list) -> list:
    return [(e.content_key, e.ckey_idx, e.in_group, e.dup, e.dup is e.union) for e in group]


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("odd", IMAGE_ODD_MEMBERS, ids=str)
def test_full_image_group_equals_keys_then_group_part(seed, odd):
    """entries.full_image_group (a full pass's usual size group: copies of
    one file of one image, keyed and counted in one walk) against
    size_group_keys, then full_group_part, on a copy of the same entries;
    any other group is left as it was (None), for the general path."""
    rng = random.Random(seed)
    group = _one_union_group(rng, odd if odd in ODD_MEMBERS else None)
    known = next(c.info for c in group if c.info)
    for e in group:         # (in a size group every copy has its file info, of its class)
        e.info = e.info or dataclasses.replace(known, aops=entries_mod.aops(e))
    e = group[rng.randrange(len(group))]
    if odd == "other_ino":
        e.ino += 1
    elif odd == "other_image":
        e.mount = dataclasses.replace(e.mount, image=dataclasses.replace(e.mount.image,
                                                                          image_id="img-9"))
    elif odd == "no_image":
        e.mount = dataclasses.replace(e.mount, image=None)
    copies = [copy.copy(e) for e in group]
    before = _keyed_state(group)
    pending, ck = size_group_keys(copies, StaticContent())
    want = None
    if ck:
        for c in copies:
            c.ckey_idx = ck
        want = _part_state(full_group_part(copies), copies)
    made = full_image_group(group)
    # the usual group takes the one walk, a group with any odd member not
    assert (made is None) == (odd is not None), made
    if made is None:
        assert _keyed_state(group) == before
        return
    assert made[0] == ck and pending == 0
    assert _part_state(made[1], group) == want
    assert _keyed_state(group) == _keyed_state(copies)


@pytest.mark.parametrize("seed", range(4))
def test_contribution_equals_contribution_class(seed):
    """attribution.contribution (a steady refresh's new contribution: the
    usual file's OwnerContribution without Contribution's calls) against
    Contribution(e) of each entry: the same kind and sums, the owner's the
    same object (one per mount and row)."""
    rng = random.Random(seed)
    es = _contrib_entries(rng)
    kinds = Counter()
    for e in es:
        want, got = Contribution(e), contribution(e)
        assert type(got) is type(want) and _contrib_state(got) == _contrib_state(want)
        if type(want) is OwnerContribution:
            assert got is want
        kinds[type(want).__name__, bool(want.dup)] += 1
    assert {("OwnerContribution", False), ("OwnerContribution", True), ("Contribution", True),
            ("Contribution", False), ("SeededContribution", False)} <= kinds.keys(), kinds
