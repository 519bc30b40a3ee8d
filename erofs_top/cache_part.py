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

from .savings import Copy, _as_managed, _fingerprinted_first, image_candidates, mapped_pages

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


class _Counted:
    """One cache's count in one stage, kept by deltas: per page the
    candidates naming it (a group's (order, owner cgroup, copy's dev), or a
    list of them: several groups) and how many groups keep it.  A page
    counts when it has a candidate, no group keeps it and no other file
    needs it (other_kept), for the candidate of the last group in the
    groups' canonical order (potential()'s cand.update)."""

    __slots__ = ("writers", "kept", "n", "by_cgroup", "by_dev")

    def __init__(self):
        self.writers: dict[int, tuple | list] = {}
        self.kept: dict[int, int] = {}
        self.n = 0
        self.by_cgroup: dict[int, int] = {}
        self.by_dev: dict[int, int] = {}

    def status(self, p: int, other) -> tuple | None:
        """The candidate page p counts for, None when it counts for none."""
        w = self.writers.get(p)
        if w is None or p in self.kept or p in other:
            return None
        return max(w) if w.__class__ is list else w

    def count(self, w: tuple, sign: int) -> None:
        self.n += sign
        for mine, k in ((self.by_cgroup, w[1]), (self.by_dev, w[2])):
            v = mine.get(k, 0) + sign
            if v:
                mine[k] = v
            else:
                del mine[k]

    def change(self, old: tuple | None, new: tuple | None, other) -> None:
        """One group's part here replaced: ``old`` and ``new`` are (order,
        flat candidates (page, cg, dev, ...), kept pages) or None."""
        affected: set[int] = set()
        for part in (old, new):
            if part is not None:
                affected.update(part[1][0::3])
                affected.update(part[2])
        status = self.status
        before = [(p, status(p, other)) for p in affected]
        if old is not None:
            self._put(old, -1)
        if new is not None:
            self._put(new, +1)
        for p, b in before:
            a = status(p, other)
            if a is not b and a != b:
                if b is not None:
                    self.count(b, -1)
                if a is not None:
                    self.count(a, +1)

    def _put(self, part: tuple, sign: int) -> None:
        order, flat, pages = part
        writers, kept = self.writers, self.kept
        it = iter(flat)
        for p, cg, dev in zip(it, it, it):
            w, got = (order, cg, dev), writers.get(p)
            if sign > 0:
                writers[p] = w if got is None else (
                    got + [w] if got.__class__ is list else [got, w])
            elif got.__class__ is list:
                got = list(got)
                got.remove(w)       # (one: two groups may name the same order)
                writers[p] = got[0] if len(got) == 1 else got
            else:
                del writers[p]
        for p in pages:
            v = kept.get(p, 0) + sign
            if v:
                kept[p] = v
            else:
                del kept[p]

    def flip(self, pages: Iterable[int], other) -> None:
        """The pages whose membership of ``other`` flipped since the last
        count: each counts (or not) as it now should."""
        for p in pages:
            base = self.status(p, ())
            if base is None:
                continue
            if p in other:      # (it was not: it counted)
                self.count(base, -1)
            else:
                self.count(base, +1)

    def recount(self, other) -> None:
        """Every page's count again (``other`` replaced)."""
        self.n = 0
        self.by_cgroup, self.by_dev = {}, {}
        status = self.status
        for p in self.writers:
            w = status(p, other)
            if w is not None:
                self.count(w, +1)


class CachePart:
    """Per group its candidates per stage, per cache its count per stage
    (_Counted); update() redoes what its inputs' changes reach (see the
    module doc): a group's candidates move its caches' counts by the pages
    they name (not a recount of every group reading through the cache)."""

    def __init__(self):
        self.results: dict[tuple, tuple] = {}   # gid -> per stage (STAGES order): _candidates()
        self.orders: dict[tuple, tuple] = {}    # gid -> its canonical order when counted
        # gid -> per cache of group_keys[gid] the pages of it its copies' page
        # maps name (what of ``owned`` its candidates read)
        self.deps: dict[tuple, tuple] = {}
        self.group_keys: dict[tuple, tuple] = {}        # gid -> caches it reads through
        self.key_gids: dict[tuple, set[tuple]] = {}         # cache -> gids reading through it
        self.inputs: dict[tuple, tuple] = {}    # cache -> (owned, readers, other_kept) last seen
        self.counted: dict[tuple, tuple] = {}   # cache -> a _Counted per stage
        # stage -> cache -> (pages, {cg: pages}, {dev: pages}) counted
        self.counts: dict[str, dict[tuple, tuple]] = {s: {} for s in STAGES}
        # stage -> (image pages, compressed pages, by_cgroup, by_dev)
        self.totals: dict[str, tuple] = {s: (0, 0, {}, {}) for s in STAGES}
        self.done: set[tuple] = set()           # gids left out last time

    def update(self, groups: dict[tuple, tuple], with_maps: set[tuple], changed: set[tuple],
               done: set[tuple], owned: dict, readers: dict, other_kept: dict,
               other_flipped: dict[tuple, Iterable[int]] | None = None) -> dict[str, tuple]:
        """stage -> (image pages, compressed pages, by_cgroup, by_dev) of the
        groups ``with_maps`` less ``done``.  ``groups``: GroupCache.groups
        (gid -> (order, stages, ...)); ``changed``: the gids GroupCache
        re-made or dropped since the last update; ``other_flipped``: cache
        -> pages that joined or left an other_kept set changed in place
        (OtherKept) since the last update (a set replaced is found here)."""
        redo = set(changed)
        if done != self.done:
            redo |= done ^ self.done
            self.done = set(done)
        moved: set[tuple] = set()
        for key in self.key_gids:
            seen = self.inputs.get(key)
            other = other_kept.get(key)
            if seen is None:
                redo |= self.key_gids[key]
            else:
                # the groups that read a page whose owner moved or whose
                # owner joined or left the readers
                pages = _moved_pages(seen, owned.get(key), readers.get(key))
                if pages:
                    redo.update(gid for gid in self.key_gids[key]
                                if not pages.isdisjoint(self._deps_at(gid, key)))
            if seen is not None and not _same(seen[2], other):
                for c in self.counted[key]:
                    c.recount(other or ())
                moved.add(key)
            elif other_flipped and key in other_flipped:
                for c in self.counted[key]:
                    c.flip(other_flipped[key], other or ())
                moved.add(key)
        for gid in redo:
            moved |= self._redo(gid, groups, gid in with_maps and gid not in done,
                                owned, readers, other_kept)
        for key in self.key_gids:   # (each compared again next time with what it read now)
            self.inputs[key] = (owned.get(key), readers.get(key), other_kept.get(key))
        for key in moved:
            if key not in self.key_gids:
                self.counted.pop(key, None)
                self.inputs.pop(key, None)
                for stage in STAGES:
                    self.counts[stage].pop(key, None)
                continue
            for stage, c in zip(STAGES, self.counted[key]):
                if c.n:
                    self.counts[stage][key] = (c.n, c.by_cgroup, c.by_dev)
                else:
                    self.counts[stage].pop(key, None)
        if moved:
            for stage in STAGES:
                self.totals[stage] = _sum(self.counts[stage])
        return self.totals

    def _deps_at(self, gid: tuple, key: tuple) -> tuple:
        """The pages of cache ``key`` group gid's candidates read."""
        keys = self.group_keys.get(gid, ())
        return self.deps[gid][keys.index(key)] if key in keys else ()

    def _redo(self, gid: tuple, groups: dict, included: bool, owned, readers,
              other_kept: dict) -> set[tuple]:
        """Group gid's candidates again (or dropped), its caches' counts
        moved by them; returns those caches."""
        keys = self.group_keys.pop(gid, ())
        old = self.results.pop(gid, None)
        old_order = self.orders.pop(gid, None)
        self.deps.pop(gid, None)
        for key in keys:
            gids = self.key_gids[key]
            gids.discard(gid)
            if not gids:
                del self.key_gids[key]
        g = groups.get(gid) if included else None
        new, results = (), None
        if g is not None and g[1] is not None:
            stages = g[1]
            new = _cache_keys(stages["rebuild"])    # (the other stages hold some of its copies)
            results = []
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
            results = tuple(results)
            self.results[gid] = results
            self.orders[gid] = g[0]
            deps = _page_deps(stages["rebuild"])
            self.deps[gid] = tuple(tuple(deps.get(key, ())) for key in new)
            self.group_keys[gid] = new
            for key in new:
                self.key_gids.setdefault(key, set()).add(gid)
        for key in {*keys, *new}:
            counted = self.counted.get(key)
            if counted is None:
                counted = self.counted[key] = tuple(_Counted() for _ in STAGES)
            other = other_kept.get(key) or ()
            for i, c in enumerate(counted):
                c.change(_part(old, i, key, old_order) if key in keys else None,
                         _part(results, i, key, g and g[0]) if key in new else None, other)
        return {*keys, *new}


def _moved_pages(seen: tuple, owned: dict[int, int] | None,
                 readers: set[int] | None) -> set[int]:
    """The pages of one cache whose candidates may differ from those of the
    inputs ``seen`` (owned, readers, other_kept as last read): the pages
    whose owner moved, and the pages owned by a cgroup that joined or left
    the readers.  image_candidates reads the readers only as "is this
    page's owner a reader" (the keeper, the pages a copy holds), so a new
    reader of an image that owns none of a group's pages leaves the group
    as it was: a new container of an image read by 25 others redoes the
    groups naming its own pages, not every group of the image."""
    before, was = seen[0], seen[1]
    pages: set[int] = set()
    if not _same(before, owned):
        pages = {p for p, _ in (before or {}).items() ^ (owned or {}).items()}
    if not _same(was, readers):
        flipped = set(was or ()) ^ set(readers or ())
        if flipped and owned:
            pages.update(p for p, cg in owned.items() if cg in flipped)
    return pages


def _page_deps(copies: list[Copy]) -> dict[tuple, set[int]]:
    """cache -> the pages of it the copies' page maps name (image files and
    compressed caches: image_candidates reads ``owned`` there only)."""
    deps: dict[tuple, set[int]] = {}
    seen: set[tuple] = set()    # (mounts of one image share the image's page map)
    for c in copies:
        for key, pm in ((c.image, c.page_map), c.managed or (None, None)):
            if key and pm and (key, id(pm)) not in seen:
                seen.add((key, id(pm)))
                deps.setdefault(key, set()).update(mapped_pages(pm))
    return deps


def _part(results: tuple | None, i: int, key: tuple, order) -> tuple | None:
    """(order, flat, kept pages) of a group's stage i at cache ``key``."""
    if results is None:
        return None
    for k, flat, pages in results[i]:
        if k == key:
            return order, flat, pages
    return None


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
    """node_savings' other_kept (cache -> pages the resident files outside
    every mergeable group need) kept between refreshes by file: per dev its
    such files and the pages each needs, per cache a count of the files
    needing each page.  A dev is looked at again only when its entries
    changed (or it joined the set), and there only the files that came or
    went have their page maps read: a refresh costs what changed, not the
    dev's files' page maps.  The sets it returns are those counts (a dict
    is a set of its keys to every reader), changed in place; the pages that
    joined or left one are in ``flipped`` until taken (take_flipped)."""

    def __init__(self):
        # dev (each of the set) -> ino -> (mount, ((cache, pages), ...)) of its files
        self.by_dev: dict[int, dict[int, tuple]] = {}
        self.kept: dict[tuple, dict[int, int]] = {}     # cache -> page -> files needing it
        self.flipped: dict[tuple, dict[int, bool]] = {}  # cache -> page -> needed before

    def update(self, devs: set[int], changed: dict[int, set[int]] | None,
               files_on: Callable[[int], Iterable], needs: Callable[[object], tuple],
               file_at: Callable[[int, int], object] | None = None
               ) -> dict[tuple, dict[int, int]]:
        """cache -> pages the files outside every group on ``devs`` need.
        ``changed``: dev -> the inos whose entries (or their group
        membership) may have changed since the last update (None: any);
        ``files_on(dev)``: those files' entries on a dev; ``file_at(dev,
        ino)``: that file's entry if it is one of them, else None (without
        it a dev with a changed file is looked at whole); ``needs(entry)``:
        ((cache, pages), ...) of one (its page maps)."""
        have = self.by_dev.keys()
        if changed is None:
            whole = devs | have
        else:
            whole = devs ^ have
            if file_at is None:
                whole |= devs & changed.keys()
            else:
                for dev in (devs & changed.keys()) - whole:
                    self._files(dev, changed[dev], file_at, needs)
        for dev in whole:
            if dev in devs:
                self._dev(dev, files_on(dev), needs)
            else:
                self._dev(dev, (), needs)
                del self.by_dev[dev]
        return self.kept

    def _dev(self, dev: int, files: Iterable, needs: Callable[[object], tuple]) -> None:
        """Dev ``dev``'s files outside every group are ``files`` now."""
        old = self.by_dev.pop(dev, {})
        now: dict[int, tuple] = {}
        for e in files:
            got = old.pop(e.ino, None)
            if got is None or got[0] is not e.mount:    # (another mount on the dev)
                if got is not None:
                    self._count(got[1], -1)
                got = (e.mount, needs(e))
                self._count(got[1], +1)
            now[e.ino] = got
        for _mount, need in old.values():
            self._count(need, -1)
        self.by_dev[dev] = now      # (kept empty too: a dev of grouped files is not looked at again)

    def _files(self, dev: int, inos: Iterable[int], file_at: Callable[[int, int], object],
               needs: Callable[[object], tuple]) -> None:
        """The files ``inos`` of dev ``dev`` looked at again, one by one."""
        mine = self.by_dev.setdefault(dev, {})
        for ino in inos:
            e = file_at(dev, ino)
            got = mine.get(ino)
            if got is not None and (e is None or got[0] is not e.mount):
                self._count(got[1], -1)
                del mine[ino]
                got = None
            if e is not None and got is None:
                got = mine[ino] = (e.mount, needs(e))
                self._count(got[1], +1)

    def _count(self, need: tuple, sign: int) -> None:
        kept, flipped = self.kept, self.flipped
        for key, pages in need:
            counts = kept.get(key)
            if counts is None:
                counts = kept[key] = {}
            for p in pages:
                n = counts.get(p, 0)
                if n == 0 or n + sign == 0:     # needed now, or no more
                    flipped.setdefault(key, {}).setdefault(p, n > 0)
                if n + sign:
                    counts[p] = n + sign
                else:
                    del counts[p]
            if not counts:
                del kept[key]

    def take_flipped(self) -> dict[tuple, set[int]]:
        """cache -> pages that joined or left its set since the last take."""
        out = {}
        for key, was in self.flipped.items():
            now = self.kept.get(key, ())
            pages = {p for p, before in was.items() if before != (p in now)}
            if pages:
                out[key] = pages
        self.flipped = {}
        return out
