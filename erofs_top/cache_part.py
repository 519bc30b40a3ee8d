"""The cache part (image files, compressed-data caches) of the potential
savings, kept between refreshes: savings.potential()'s image_pages and
compressed_pages and their by_cgroup / by_dev counts, redone for what changed
only.  Pure: node_savings keeps one per GroupCache.

What one group's image_candidates() reads: its copies (new ones whenever
GroupCache.put re-makes the group), ``owned`` and ``readers`` of the caches
its copies read through.  What one cache's count reads: the candidates and
kept pages of the groups reading through it, in the groups' canonical order
(``cand.update`` is last-writer-wins: the owner's dev is the last group's),
and ``other_kept`` of that cache.  So a group is redone when it was re-made
or the owners / readers of one of its caches changed, a cache's count when
one of its groups was redone or its other_kept changed; the totals are the
sum of the caches' counts (a few dozen caches)."""
from __future__ import annotations

from itertools import chain
from typing import Callable, Iterable

from .savings import Copy, _as_managed, _fingerprinted_first, image_candidates

STAGES = ("rebuild", "now", "domains")


def _cache_keys(copies: list[Copy]) -> tuple:
    """The caches a group's copies read through (image files, compressed caches)."""
    keys = {c.image for c in copies if c.image}
    keys.update(c.managed[0] for c in copies if c.managed is not None and c.managed[0])
    return tuple(keys)


def _candidates(copies: list[Copy], owned, readers) -> tuple:
    """image_candidates() of one group's stage through both caches, as
    potential() calls it (fingerprinted copies first), kept compact (a
    group's dicts and sets would be ~2 KiB, this ~0.5): per cache (image
    files and compressed caches have distinct keys) a (cache, (page, owner
    cgroup, copy's dev, page, ...) candidates, kept pages) triple."""
    if not copies:
        return _NOTHING
    members = sorted(copies, key=_fingerprinted_first)
    cand, kept = image_candidates(members, owned, readers, resident=True)
    # through the compressed caches only where a copy has one (most groups:
    # none, and image_candidates of copies without a cache finds nothing)
    if any(c.managed is not None and c.managed[0] and c.managed[1] is not None
           for c in members):
        mcand, mkept = image_candidates([_as_managed(c) for c in members], owned, readers,
                                        resident=True)
        cand.update(mcand)
        kept.update(mkept)
    return tuple((key, tuple(chain.from_iterable((p, cg, dev) for p, (cg, dev)
                                                 in cand.get(key, {}).items())),
                  tuple(kept.get(key, ())))
                 for key in cand.keys() | kept.keys())


_NOTHING: tuple = ()


def _same_copies(a: list[Copy], b: list[Copy]) -> bool:
    """The same copy objects in the same order (GroupCache makes each once)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _same(a, b) -> bool:
    return a is b or a == b


class CachePart:
    """Per group its candidates per stage, per cache its count per stage;
    update() redoes what its inputs' changes reach (see the module doc)."""

    def __init__(self):
        self.results: dict[tuple, tuple] = {}   # gid -> per stage (STAGES order): _candidates()
        self.group_keys: dict[tuple, tuple] = {}        # gid -> caches it reads through
        self.key_gids: dict[tuple, set[tuple]] = {}         # cache -> gids reading through it
        self.inputs: dict[tuple, tuple] = {}    # cache -> (owned, readers, other_kept) last seen
        # stage -> cache -> (pages, {cg: pages}, {dev: pages}) counted
        self.counts: dict[str, dict[tuple, tuple]] = {s: {} for s in STAGES}
        # stage -> (image pages, compressed pages, by_cgroup, by_dev)
        self.totals: dict[str, tuple] = {s: (0, 0, {}, {}) for s in STAGES}
        self.done: set[tuple] = set()           # gids left out last time

    def update(self, groups: dict[tuple, tuple], with_maps: set[tuple], changed: set[tuple],
               done: set[tuple], owned: dict, readers: dict, other_kept: dict
               ) -> dict[str, tuple]:
        """stage -> (image pages, compressed pages, by_cgroup, by_dev) of the
        groups ``with_maps`` less ``done``.  ``groups``: GroupCache.groups
        (gid -> (order, stages, ...)); ``changed``: the gids GroupCache
        re-made or dropped since the last update."""
        redo = set(changed)
        if done != self.done:
            redo |= done ^ self.done
            self.done = set(done)
        recount: set[tuple] = set()
        for key, gids in self.key_gids.items():
            seen = self.inputs.get(key)
            now = (owned.get(key), readers.get(key), other_kept.get(key))
            if seen is not None and _same(seen[0], now[0]) and _same(seen[1], now[1]):
                if not _same(seen[2], now[2]):
                    recount.add(key)
                continue
            redo |= gids
            recount.add(key)
        for gid in redo:
            recount |= self._redo(gid, groups, gid in with_maps and gid not in done,
                                  owned, readers)
        for key in recount:
            self.inputs[key] = (owned.get(key), readers.get(key), other_kept.get(key))
            self._recount(key, groups, other_kept)
        for key in [k for k in recount if k not in self.key_gids]:
            del self.inputs[key]
        if recount:
            for stage in STAGES:
                self.totals[stage] = _sum(self.counts[stage])
        return self.totals

    def _redo(self, gid: tuple, groups: dict, included: bool, owned, readers) -> set[tuple]:
        """Group gid's candidates again (or dropped); returns the caches to recount."""
        keys = self.group_keys.pop(gid, ())
        self.results.pop(gid, None)
        for key in keys:
            gids = self.key_gids[key]
            gids.discard(gid)
            if not gids:
                del self.key_gids[key]
        g = groups.get(gid) if included else None
        if g is None or g[1] is None:
            return set(keys)
        stages = g[1]
        new = _cache_keys(stages["rebuild"])    # (the other stages hold some of its copies)
        results: list[tuple] = []
        for i, stage in enumerate(STAGES):
            copies = stages[stage]
            if not copies:
                results.append(_NOTHING)
                continue
            for j in range(i):      # stages often hold the same copies: computed once
                if _same_copies(stages[STAGES[j]], copies):
                    results.append(results[j])
                    break
            else:
                results.append(_candidates(copies, owned, readers))
        self.results[gid] = tuple(results)
        self.group_keys[gid] = new
        for key in new:
            self.key_gids.setdefault(key, set()).add(gid)
        return {*keys, *new}

    def _recount(self, key: tuple, groups: dict, other_kept: dict) -> None:
        """Cache ``key``'s count per stage from its groups' candidates, in
        the groups' canonical order (savings._cache_pages, _count_images)."""
        gids = sorted(self.key_gids.get(key, ()), key=lambda gid: groups[gid][0])
        other = other_kept.get(key) or ()
        for i in range(len(STAGES)):
            cand: dict[int, tuple] = {}     # page -> (cg, dev): the last group's
            kept: set[int] = set()
            for gid in gids:
                for k, flat, pages in self.results[gid][i]:
                    if k != key:
                        continue
                    it = iter(flat)
                    for p, cg, dev in zip(it, it, it):
                        cand[p] = (cg, dev)
                    kept.update(pages)
            n = 0
            by_cgroup: dict[int, int] = {}
            by_dev: dict[int, int] = {}
            for p, (cg, dev) in cand.items():
                if p not in kept and p not in other:
                    n += 1
                    by_cgroup[cg] = by_cgroup.get(cg, 0) + 1
                    by_dev[dev] = by_dev.get(dev, 0) + 1
            counts = self.counts[STAGES[i]]
            if n:
                counts[key] = (n, by_cgroup, by_dev)
            else:
                counts.pop(key, None)


def _sum(counts: dict[tuple, tuple]) -> tuple:
    """(image pages, compressed pages, by_cgroup, by_dev) over the caches'
    counts (compressed caches: keys ("managed", dev))."""
    image = compressed = 0
    by_cgroup: dict[int, int] = {}
    by_dev: dict[int, int] = {}
    for key, (n, cgs, devs) in counts.items():
        if key[0] == "managed":
            compressed += n
        else:
            image += n
        for mine, theirs in ((by_cgroup, cgs), (by_dev, devs)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v
    return image, compressed, by_cgroup, by_dev


class OtherKept:
    """node_savings._other_kept of the non-group entries on a set of devs,
    kept per dev: redone for the devs whose entries changed (or that
    joined the set), the caches they hold pages of merged again."""

    def __init__(self):
        self.by_dev: dict[int, dict[tuple, set[int]]] = {}
        self.key_devs: dict[tuple, set[int]] = {}
        self.kept: dict[tuple, set[int]] = {}

    def update(self, devs: set[int], changed_devs: Iterable[int] | None,
               kept_on: Callable[[int], dict[tuple, set[int]]]) -> dict[tuple, set[int]]:
        """cache -> pages the non-group entries on ``devs`` need.
        ``changed_devs``: the devs whose entries (or their group membership)
        may have changed since the last update (None: any); ``kept_on(dev)``:
        that dev's part."""
        have = self.by_dev.keys()
        if changed_devs is None:
            redo = devs | have
        else:
            redo = (devs & set(changed_devs)) | (devs ^ have)
        dirty: set[tuple] = set()
        for dev in redo:
            old = self.by_dev.pop(dev, None)
            for key in old or ():
                self.key_devs[key].discard(dev)
                dirty.add(key)
            if dev in devs:
                new = self.by_dev[dev] = kept_on(dev)
                for key in new:
                    self.key_devs.setdefault(key, set()).add(dev)
                    dirty.add(key)
        kept = self.kept
        for key in dirty:
            ds = self.key_devs.get(key)
            if not ds:
                self.key_devs.pop(key, None)
                kept.pop(key, None)
            elif len(ds) == 1:
                kept[key] = self.by_dev[next(iter(ds))][key]    # (never changed in place)
            else:
                kept[key] = set().union(*(self.by_dev[d][key] for d in ds))
        return kept
