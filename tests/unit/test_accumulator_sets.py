"""attribution.Accumulators' derived sets (readers(): each mount's own
cgroups; mount_cgroups(); cgroup_devs()) kept by deltas while contributions
come and go, shared inodes among them, equal the same sets made here from
the live contributions directly.  (The churn-equality tests compare an
Accumulators kept by deltas with one made in a full pass: a rule wrong in
both is not seen there.)"""
from __future__ import annotations

import random

import pytest

from erofs_top.attribution import Accumulators, Contribution, managed_key
from erofs_top.entries import Entry, SharedEntry
from erofs_top.resolve.base import MountInfo

MOUNTS = {dev: MountInfo(dev, f"0:{dev}", f"/m{dev}", "img", "block") for dev in (1, 2, 3)}
CGS = (10, 11, 12, 13)


def _contribution(rng: random.Random) -> Contribution:
    """A live entry's Contribution: a file with pages of 1-2 cgroups, or a
    shared inode (pages of one cgroup, used by some)."""
    dev = rng.choice(tuple(MOUNTS))
    shared = rng.random() < 0.35
    ino = rng.randint(1, 10**6)
    e = SharedEntry(dev, ino, shared_mapping=rng.randint(1, 10**9)) if shared else Entry(dev, ino)
    owners = {cg: rng.randint(1, 255) for cg in rng.sample(CGS, 1 if shared else rng.randint(1, 2))}
    e.chunks = {0: owners}
    e.union = {0: _or(owners.values())}
    if shared:
        e.users = {cg: rng.randint(1, 3) for cg in rng.sample(CGS, rng.randint(0, 3))}
    e.mount = MOUNTS[dev]
    return Contribution(e)


def _or(masks) -> int:
    u = 0
    for m in masks:
        u |= m
    return u


def _expected(live: list[Contribution]):
    """(own cgroups per managed cache, mount_cgroups, cgroup_devs) from the contributions."""
    own: dict = {}
    cgs_of: dict = {}
    devs_of: dict = {}
    for c in live:
        dev = c.mount.dev
        for cg in c.cgroups():
            cgs_of.setdefault(dev, set()).add(cg)
            devs_of.setdefault(cg, set()).add(dev)
            if not c.shared_pages:
                own.setdefault(managed_key(dev), set()).add(cg)
        for cg in c.member_users:
            cgs_of.setdefault(dev, set()).add(cg)
        for cg in c.users:
            devs_of.setdefault(cg, set()).add(dev)
    return own, cgs_of, devs_of


@pytest.mark.parametrize("seed", range(6))
def test_derived_sets_equal_a_count(seed):
    rng = random.Random(seed)
    acc = Accumulators()
    live: list[Contribution] = []
    for step in range(80):
        for _ in range(rng.randint(1, 6)):
            if live and rng.random() < 0.45:
                acc.apply(live.pop(rng.randrange(len(live))), -1)
            else:
                c = _contribution(rng)
                acc.apply(c, +1)
                live.append(c)
        own, cgs_of, devs_of = _expected(live)
        readers = acc.readers()
        assert {k: v for k, v in readers.items() if k in own or k[0] == "managed"} == own, step
        assert {d: set(s) for d, s in acc.mount_cgroups().items() if s} == cgs_of, step
        assert {cg: set(s) for cg, s in acc.cgroup_devs().items() if s} == devs_of, step


def _pairs(live: list[Contribution]) -> dict:
    """dev -> cg -> [resident, dup, entries, of which shared] from the contributions."""
    out: dict = {}
    for c in live:
        for cg, res, dup, _ in c.per_cg():
            h = out.setdefault(c.mount.dev, {}).setdefault(cg, [0, 0, 0, 0])
            h[0] += res
            h[1] += dup
            h[2] += 1
            h[3] += bool(c.shared_pages)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_holders_kept_per_dev_equal_a_count(seed):
    """Accumulators.holders (dev -> cg -> sums: no dict for a dev without
    pairs) and pair() equal the sums made from the live contributions, also
    through replace() of a file's pages (the usual steady change)."""
    rng = random.Random(seed)
    acc = Accumulators()
    live: list[Contribution] = []
    for step in range(80):
        for _ in range(rng.randint(1, 6)):
            op = rng.random()
            if live and op < 0.4:
                acc.apply(live.pop(rng.randrange(len(live))), -1)
            elif live and op < 0.6:
                i = rng.randrange(len(live))
                e = Entry(live[i].mount.dev, 1)     # (the file: Accumulators read no dev, ino)
                e.chunks = {0: {cg: rng.randint(1, 255) for cg in live[i].cgroups()}}
                e.union = {0: _or(e.chunks[0].values())}
                e.mount = live[i].mount
                if live[i].shared_pages:
                    continue
                new = Contribution(e)
                acc.replace(live[i], new)
                live[i] = new
            else:
                c = _contribution(rng)
                acc.apply(c, +1)
                live.append(c)
        want = _pairs(live)
        assert acc.holders == want, step
        for dev in MOUNTS:
            for cg in CGS:
                assert acc.pair(dev, cg) == want.get(dev, {}).get(cg), (step, dev, cg)
    assert live, "nothing live at the end: the test saw little"
