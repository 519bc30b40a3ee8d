"""The steady refresh's short paths for the usual file and group (issue 11):
Accumulators.apply of an OwnerContribution (_apply_owner) against the
general apply of the same sums as a plain Contribution; move_row (a file's
row replaced in place) against replace(); a kept Aggregator that renews rows
in place and moves rebuild-only group parts against aggregate() of the same
Readings, with its kept contributions equal to those made anew; and
GroupCache.put's rebuild-only move against the general _reaccount."""
from __future__ import annotations

import random

import pytest

from erofs_top.aggregate import Aggregator, aggregate
from erofs_top.attribution import (Accumulators, Contribution, OwnerContribution,
                                   SharedContribution)
from erofs_top.node_savings import GroupCache
from erofs_top.readings import PageChunk
from erofs_top.resolve.base import MountInfo

from test_group_cache import _sums
from test_group_part import _plainer
from test_refresh_churn import FULL, Node, _assert_same, _refresh


def _mounts() -> list[MountInfo]:
    return [MountInfo(dev=d, dev_str=f"0:{d}", mountpoint=f"/m{d}", source="", backing="block")
            for d in (41, 42, 43)]


def _owner(rng: random.Random, mounts: list, ino: int) -> OwnerContribution:
    c = object.__new__(OwnerContribution)
    r = rng.randint(1, 64)
    c.cg_sums = (rng.choice((7, 8, 9)), r, r if rng.random() < 0.4 else 0, 0)
    c.mount = rng.choice(mounts + [None])
    return c


def _plain(c: OwnerContribution) -> Contribution:
    """The same sums as a Contribution: apply() takes its general path."""
    p = object.__new__(Contribution)
    p.cg_sums, p.mount = c.cg_sums, c.mount
    p.resident, p.dup = c.cg_sums[1], c.cg_sums[2]
    return p


def _state(acc: Accumulators) -> tuple:
    cg = {k: (a.resident, a.dup, a.shared, a.fair_pages, a.fair_shared, a.seeded, a.files,
              a.uses) for k, a in acc.cg.items()}
    return (cg, acc.mount_resident, acc.mount_dup, {d: dict(p) for d, p in acc.holders.items()},
            acc.resident, acc.dup, acc.seeded, acc.shared, acc.holder_cgs, acc.cg_devs,
            acc.shared_only, acc.member_only, acc.dirty_pairs, acc.dirty_cgs,
            acc._readers_dirty, {d: id(m) for d, m in acc.mounts.items()})


@pytest.mark.parametrize("seed", range(6))
def test_owner_apply_and_move_row_equal_the_general_paths(seed):
    """Random files come, change (their row replaced in place: move_row) and
    go; one Accumulators takes the short paths, the other the general apply
    and replace of the same sums; every sum and set equal at every step."""
    rng = random.Random(seed)
    mounts = _mounts()
    mounts.append(MountInfo(**vars(mounts[0])))     # dev 41 again, another object (remount)
    fast, general = Accumulators(), Accumulators()
    live: dict[int, OwnerContribution] = {}
    for step in range(400):
        fast._readers_dirty, general._readers_dirty = set(), set()   # (readers() takes them)
        ino = rng.randint(1, 40)
        c = live.get(ino)
        if c is None:
            c = live[ino] = _owner(rng, mounts, ino)
            fast.apply(c, +1)
            general.apply(_plain(c), +1)
        elif rng.random() < 0.3:
            del live[ino]
            fast.apply(c, -1)
            general.apply(_plain(c), -1)
        elif c.mount is not None:
            cg, r, _, _ = c.cg_sums
            new_r = rng.choice((r, rng.randint(1, 64)))
            row = (cg, new_r, new_r if rng.random() < 0.4 else 0, 0)
            was = _plain(c)
            fast.move_row(c.mount, cg, row[1] - c.cg_sums[1], row[2] - c.cg_sums[2])
            c.cg_sums = row
            general.replace(was, _plain(c))
        assert _state(fast) == _state(general), step
    assert fast.cg and fast.holders



def _shared(rng: random.Random, mounts: list) -> SharedContribution:
    """A shared inode's contribution on one of ``mounts``: a (mount, cgroup)
    pair of it counts among the pair's shared entries (h[3])."""
    c = object.__new__(SharedContribution)
    r = rng.randint(1, 64)
    c.cg_sums, c.mount = (rng.choice((7, 8)), r, 0, 0), rng.choice(mounts)
    c.resident, c.dup, c.seeded, c.shared_pages = r, 0, 0, r
    c.users = c.member_users = (rng.choice((7, 8, 9)),)
    c.mapping, c.dev, c.ino = 1, c.mount.dev, 0
    return c


@pytest.mark.parametrize("seed", range(8))
def test_owner_apply_beside_shared_entries_equals_the_general_path(seed):
    """_apply_owner's own mount path (not _apply_mount's) where a pair also
    counts shared entries (a pair's own caches flip as the usual files come
    and go) and pairs and mounts empty often (two mounts, few files): every
    sum and set equal to the general apply of the same sums at every step."""
    rng = random.Random(seed)
    mounts = _mounts()[:2]
    fast, general = Accumulators(), Accumulators()
    live: dict[int, Contribution] = {}
    emptied = flips = 0
    for step in range(600):
        ino = rng.randint(1, 12)
        c = live.pop(ino, None)
        sign = -1 if c is not None else +1
        if c is None:
            c = live[ino] = _shared(rng, mounts) if ino <= 3 else _owner(rng, mounts, ino)
        h = fast.pair(c.mount.dev, c.cg_sums[0]) if c.mount is not None else None
        own = h is not None and h[2] > h[3]
        fast.apply(c, sign)
        general.apply(c if c.mapping else _plain(c), sign)
        assert _state(fast) == _state(general), step
        h2 = fast.pair(c.mount.dev, c.cg_sums[0]) if c.mount is not None else None
        flips += h is not None and h2 is not None and own != (h2[2] > h2[3])
        emptied += c.mount is not None and c.mount.dev not in fast.holders
    assert emptied and flips

def _regrow(node: Node) -> None:
    """Pages of a chunk of one owner, nothing seeded, come and go (its owner
    the same): the usual change of a steady refresh."""
    keys = sorted(k for k, pc in node.chunks.items()
                  if len(pc.owners) == 1 and not pc.seeded_mask)
    if not keys:
        return
    key = node.rng.choice(keys)
    (cg, mask), = node.chunks[key].owners.items()
    mask ^= node.rng.getrandbits(64) & node.rng.choice([0xFF, FULL])
    node.chunks[key] = PageChunk(*key, {cg: mask or 1}, 0)


def _kept(c) -> tuple:
    """A contribution's kind and sums (a general one's cgroups in any order)."""
    return (type(c), sorted(c.per_cg()), c.resident, c.dup, c.seeded, c.mount,
            getattr(c, "dev", None), getattr(c, "ino", None))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("hint", [False, True], ids=["no-hint", "changed-files"])
def test_kept_aggregator_renews_rows_in_place(seed, hint, monkeypatch):
    """test_refresh_churn's random node (made plainer: groups with counted
    parts) through one kept Aggregator: its Model equals aggregate() at
    every refresh, its kept contributions equal the ones made anew (kind
    and sums), and both short paths were taken (rows moved in place,
    rebuild-only parts moved)."""
    rng = random.Random(seed * 13 + 5)
    node = _plainer(Node(rng, hint=hint, maps=False))
    agg = Aggregator(recheck_slices=0)
    moved, short = [0], [0]
    move_row, put = Accumulators.move_row, GroupCache.put

    def counting(acc, m, cg, dr, dd):
        moved[0] += bool(dr or dd)
        move_row(acc, m, cg, dr, dd)

    def counting_put(cache, gid, members, content, part=None, maps=None):
        old = cache.groups.get(gid)
        short[0] += bool(members) and part is not None and old is not None and old[1] is None \
            and old[2][1:] == (None, None)
        put(cache, gid, members, content, part, maps)
    monkeypatch.setattr(Accumulators, "move_row", counting)     # (counted, then the real one)
    monkeypatch.setattr(GroupCache, "put", counting_put)
    for step in range(40):
        node.churn(rng.choice([1, 5, 20]))
        for _ in range(rng.choice([0, 3, 10])):
            _regrow(node)
        r = node.readings(float(step))
        got = _refresh(agg, node, r, 200)
        fresh = Aggregator(recheck_slices=0)
        want = _refresh(fresh, node, r, 200)
        _assert_same(got, want, step)
        _assert_same(got, aggregate(r, node.mounts, node.cgroups, node.content, tier="full",
                                    started_at=0.0, files_cap=200), step)
        kept = {k: _kept(e.contrib)
                for k, e in agg.entries.items() if e.contrib is not None}
        made = {k: _kept(e.contrib)
                for k, e in fresh.entries.items() if e.contrib is not None}
        assert kept == made, step
        assert _sums(agg.group_cache) == _sums(fresh.group_cache), step
    assert moved[0] > 0 and short[0] > 0, (moved, short)


@pytest.mark.parametrize("seed", range(4))
def test_rebuild_only_put_equals_the_general_reaccount(seed):
    """GroupCache.put of groups with only a counted rebuild part, put again
    and again with changed parts and members (the short move), against
    the same groups dropped and put anew each time (_account -1, +1)."""
    from test_group_part import _plain_group
    from erofs_top.entries import duplicate_group_part
    from erofs_top.resolve.base import StaticContent
    rng = random.Random(seed)
    content = StaticContent()
    short, anew = GroupCache(), GroupCache()
    for step in range(120):
        gid = ("ck", rng.randint(0, 6))
        group = _plain_group(rng, rng.random() < 0.3)
        part = duplicate_group_part(group)[2]
        if rng.random() < 0.15:
            group, part = None, None
        short.put(gid, group, content, part, maps=False)
        anew.put(gid, None, content)
        anew.put(gid, group, content, part)
        assert _sums(short) == _sums(anew), step
        assert short.groups.keys() == anew.groups.keys()
    assert short.file_part["rebuild"].by_cgroup


def _churn_equals_aggregate(seeds: list[int], steps: int, hint: bool, recheck: int,
                            current: list, found_kept: bool | None = None) -> None:
    """Kept refreshes of test_refresh_churn's Node on random churn, each equal
    to aggregate() of the same readings; ``current[0]``: the Aggregator in
    use (for the caller's checks); found_kept False: its ``found`` is None
    after every refresh (not kept between refreshes)."""
    for seed in seeds:
        rng = random.Random(seed)
        node = Node(rng, hint=hint)
        current[0] = agg = Aggregator(recheck_slices=recheck)
        for step in range(steps):
            node.churn(rng.choice([1, 5, 20]))
            r = node.readings(float(step))
            got = _refresh(agg, node, r, 200)
            _assert_same(got, aggregate(r, node.mounts, node.cgroups, node.content,
                                        tier="full", started_at=0.0, files_cap=200), step)
            if found_kept is False:
                assert agg.found is None


@pytest.mark.parametrize("hint", [False, True], ids=["no-hint", "changed-files"])
def test_kept_members_from_the_kept_group_equal_the_lookups(hint, monkeypatch):
    """A dirty content group's unchanged members taken from its kept
    mergeable group (aggregate._kept_members: a member on a dev no changed
    key of the group names is not looked up) against the same group with
    every member's key tested, each kept member the entries' own; both
    outcomes counted: the kept list made, and None when the content group
    was several mergeable groups (several aops classes: test_refresh_churn's
    Node has them).  The refreshes equal aggregate()'s."""
    import erofs_top.aggregate as aggregate_mod
    used, fell_back = [0], [0]
    kept_members = aggregate_mod._kept_members

    def counting(old_groups, ck_keys, changed):
        kept = kept_members(old_groups, ck_keys, changed)
        if kept is None:
            fell_back[0] += 1
        else:
            used[0] += 1
            want = [e for e in old_groups[0] if aggregate_mod._key(e) not in changed]
            assert list(map(id, kept)) == list(map(id, want))
            assert all(agg[0].entries[aggregate_mod._key(e)] is e for e in kept)
        return kept
    monkeypatch.setattr(aggregate_mod, "_kept_members", counting)
    agg = [None]
    _churn_equals_aggregate([s * 7 + 3 for s in range(4)], 40, hint, 0, agg)
    assert used[0] > 0 and fell_back[0] > 0, (used, fell_back)


@pytest.mark.parametrize("node_kind", ["churn", "plainer"])
def test_usual_group_part_equals_duplicate_group_part(node_kind, monkeypatch):
    """entries.usual_group_part (a steady refresh's usual small group: the
    kept members' class not looked up again) against duplicate_group_part
    of the same group, at every call of kept refreshes: the same redundant
    pages, mergeable groups, savings part and members' dup and in_group;
    both outcomes counted (taken; None: a fingerprinted, shared or
    inode_share member, a joined member of another class).  The refreshes equal
    aggregate()'s."""
    import erofs_top.aggregate as aggregate_mod
    from erofs_top.entries import duplicate_group_part
    taken, declined = [0], [0]
    usual = aggregate_mod.usual_group_part

    def state(group):
        return [(dict(e.dup), e.in_group) for e in group]

    def comparing(group, joined, cls):
        want = duplicate_group_part(group)
        want_state = state(group)
        got = usual(group, joined, cls)
        if got is None:
            declined[0] += 1
            return None
        taken[0] += 1
        assert (got[0], got[2]) == (want[0], want[2])
        assert [list(map(id, g)) for g in got[1]] == [list(map(id, g)) for g in want[1]]
        assert state(group) == want_state
        return got
    monkeypatch.setattr(aggregate_mod, "usual_group_part", comparing)
    for seed in range(4):
        rng = random.Random(seed * 5 + 2)
        node = Node(rng, hint=seed % 2 == 0)
        if node_kind == "plainer":
            node = _plainer(node)
        agg = Aggregator(recheck_slices=0)
        for step in range(40):
            node.churn(rng.choice([1, 5, 20]))
            r = node.readings(float(step))
            _assert_same(_refresh(agg, node, r, 200),
                         aggregate(r, node.mounts, node.cgroups, node.content, tier="full",
                                   started_at=0.0, files_cap=200), step)
    # (the churn Node's groups are fingerprinted or span classes: declined;
    # the plainer one's usual groups taken)
    assert (taken if node_kind == "plainer" else declined)[0] > 0, (taken, declined)


@pytest.mark.parametrize("recheck", [0, 4])
@pytest.mark.parametrize("hint", [False, True], ids=["no-hint", "changed-files"])
def test_found_entries_equal_the_lookups(hint, recheck, monkeypatch):
    """Aggregator._pairs hands the phases each key's entry found once per
    refresh (``found``): at every call, the same keys as asked and each one's
    entry the entries' own now (None: gone), the refreshes equal to
    aggregate(); the found path counted (taken in steady refreshes)."""
    calls, from_found = [0], [0]
    pairs = Aggregator._pairs

    def checking(agg, keys):
        got = pairs(agg, keys)
        calls[0] += 1
        from_found[0] += type(got) is type({}.items())     # (found's own view)
        got = list(got)
        assert len(got) == len(keys) and {k for k, _ in got} == set(keys)
        assert all(e is agg.entries.get(k) for k, e in got)
        return got
    monkeypatch.setattr(Aggregator, "_pairs", checking)
    agg = [None]
    _churn_equals_aggregate([s * 11 + 1 for s in range(3)], 30, hint, recheck, agg,
                            found_kept=False)
    assert calls[0] > 0 and from_found[0] > 0, (calls, from_found)


def test_pairs_paths():
    """Aggregator._pairs' paths on made-up state: found filled for the keys
    it lacks; a found holding a key not asked for (never left by a refresh:
    a guard) not handed over; many keys (or no found) looked up."""
    from erofs_top.entries import Entry
    agg = Aggregator(recheck_slices=0)
    for ino in range(100):
        agg.entries[(1, ino)] = Entry(dev=1, ino=ino)
    want = {(1, 3): agg.entries[(1, 3)], (1, 4): agg.entries[(1, 4)], (1, 500): None}
    agg.found = {(1, 3): agg.entries[(1, 3)]}
    assert dict(agg._pairs(set(want))) == want and agg.found == want      # filled
    agg.found[(1, 7)] = agg.entries[(1, 7)]
    got = list(agg._pairs(set(want)))
    assert len(got) == 3 and dict(got) == want                 # (1, 7) not asked for
    many = {(1, i) for i in range(50)} | {(1, 500)}
    got = agg._pairs(many)
    assert dict(got) == {k: agg.entries.get(k) for k in many} and len(got) == len(many)
    agg.found = None
    assert dict(agg._pairs(set(want))) == want


@pytest.mark.parametrize("seed", range(4))
def test_move_part_equals_add_part_twice(seed):
    """node_savings._move_part (same keys in the same order: the counts that
    differ; other keys or order: _move_flat) against _add_part(-1) then
    _add_part(+1), on random parts: the same sums, the same keys (no zero)."""
    from erofs_top.node_savings import _add_part, _move_part
    from erofs_top.savings import Savings
    rng = random.Random(seed)

    def flat(keys):
        return tuple(x for k in keys for x in (k, rng.randint(1, 9)))

    def part():
        cgs = rng.sample(range(8), rng.randint(0, 5))
        devs = rng.sample(range(100, 106), rng.randint(0, 4))
        return (rng.randint(0, 50), 0, 0, rng.randint(0, 5), flat(cgs), flat(devs))
    moved, twice = Savings(), Savings()
    parts = [part() for _ in range(6)]
    for p in parts:
        _add_part(moved, p, +1)
        _add_part(twice, p, +1)
    kinds = set()
    for step in range(300):
        i = rng.randrange(len(parts))
        a = parts[i]
        r = rng.random()
        if r < 0.3:         # the same keys, other counts
            b = (a[0] + 1, 0, 0, a[3], flat(a[4][::2]), flat(a[5][::2]))
        elif r < 0.6:       # the same keys in another order
            b = (a[0], 0, 0, a[3], flat(rng.sample(a[4][::2], len(a[4]) // 2)),
                 flat(rng.sample(a[5][::2], len(a[5]) // 2)))
        else:
            b = part()
        kinds.add(a[4][::2] == b[4][::2])
        _move_part(moved, a, b)
        _add_part(twice, a, -1)
        _add_part(twice, b, +1)
        parts[i] = b
        assert (moved.file_pages, moved.now_file_pages, moved.by_cgroup, moved.by_dev) == (
            twice.file_pages, twice.now_file_pages, twice.by_cgroup, twice.by_dev), step
        assert 0 not in moved.by_cgroup.values() and 0 not in moved.by_dev.values()
    assert kinds == {True, False}


def test_add_and_drop_small_groups():
    """aggregate._add_small / _drop_small (a group a tuple up to SMALL_GROUP
    members, then a set) against a list of the members in the order they
    came: the same members, a tuple's in that order, none twice."""
    from erofs_top.aggregate import SMALL_GROUP, _add_small, _drop_small
    rng = random.Random(5)
    groups: dict = {}
    ref: dict = {}
    shapes = set()
    for step in range(3000):
        k = rng.randrange(4)
        v = (rng.randrange(3), rng.randrange(12))
        if rng.random() < 0.55:
            _add_small(groups, k, v)
            if v not in ref.setdefault(k, []):
                ref[k].append(v)
        elif k in groups:
            _drop_small(groups, k, v)
            if v in ref[k]:
                ref[k].remove(v)
        g = groups.get(k)
        if g is not None:
            shapes.add(type(g))
            if type(g) is tuple:
                assert list(g) == ref[k], step
            else:
                assert g == set(ref[k]) and len(ref[k]) > 0 or not g, step
    assert shapes == {tuple, set} and SMALL_GROUP < 12


@pytest.mark.parametrize("seed", range(30))
def test_put_in_order_equals_the_sort(seed):
    """aggregate._put_in_order (joined copies put into a kept group by dev,
    ORDER among one dev's copies) against sort(key=ORDER) of the same
    entries: copies on few devs (several on one), shared inodes among them."""
    import erofs_top.aggregate as aggregate_mod
    from erofs_top.entries import ORDER, Entry, SharedEntry
    rng = random.Random(seed)
    made, seen = [], set()
    for _ in range(rng.randint(1, 14)):
        dev, ino = rng.choice((5, 6, 7)), rng.randint(1, 9)
        mapping = rng.choice((0, 0, 0, rng.randint(1, 3)))
        if (dev, ino, mapping) in seen:
            continue
        seen.add((dev, ino, mapping))
        made.append(SharedEntry(dev, ino, shared_mapping=mapping) if mapping
                    else Entry(dev, ino))
    joined = rng.sample(made, rng.randint(0, len(made)))
    kept = sorted((e for e in made if e not in joined), key=ORDER)
    got = aggregate_mod._put_in_order(kept, joined)
    assert list(map(id, got)) == list(map(id, sorted(made, key=ORDER)))
