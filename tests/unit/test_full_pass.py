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

import dataclasses
import random

import pytest
from test_refresh_churn import Node, _assert_same, _refresh

from erofs_top.aggregate import Aggregator
from erofs_top.attribution import Accumulators, OwnerContribution


def _contrib_state(c) -> tuple | None:
    if c is None:
        return None
    return (type(c).__name__, c.cg_sums, id(c.mount), c.resident, c.dup, c.seeded, c.dev,
            c.ino, c.users, c.member_users, c.shared_pages, c.mapping)


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
        "ckey_keys": _groups(agg.ckey_keys), "redundant": agg.redundant,
        "mergeable": {ck: [[(e.dev, e.ino, e.shared_mapping) for e in g] for g in gs]
                      for ck, gs in agg.mergeable.items()},
        "shared_keys": agg.shared_keys, "special": agg.special,
        "groups": sorted(agg.group_cache.groups), "acc": _acc_state(agg.acc),
    }


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
