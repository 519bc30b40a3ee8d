"""The cache part of the potential savings (image files, compressed-data
caches: erofs_top/cache_part.py) kept between refreshes equals a recompute,
after churn that moves what it reads: the owners of image pages (charged to
cgroups that read the image, so candidates exist), the readers (cgroups
gaining and losing pages on the mounts), the copies (files joining and
leaving groups), the other resident files.  test_refresh_churn's world
rarely makes an image page a candidate (random owners): this one does, and
the tests count the refreshes where the cache part is not zero."""
from __future__ import annotations

import random

import pytest

from erofs_top.aggregate import Aggregator, aggregate
from erofs_top.readings import PageChunk
from erofs_top.savings import Copy

from test_refresh_churn import CGROUPS, FakePageMapContent, Node, _assert_same, _refresh


class ClusterContent(FakePageMapContent):
    """FakePageMapContent whose compressed files read distinct clusters
    (file ino's are ino * 4 .. ino * 4 + 3 of the mount's compressed cache)."""

    def managed_pages(self, mount, ino):
        pm = super().managed_pages(mount, ino)
        return None if pm is None else {p: (ino * 4 + c,) for p, (c,) in pm.items()}


class ImageNode(Node):
    """Node whose image-page owners are cgroups holding pages on a mount of
    that image, on the pages the fake page maps name; owner dicts kept as
    the same objects while unchanged (as ImageCacheReader does) or copied."""

    def __init__(self, rng: random.Random, hint: bool):
        super().__init__(rng, hint, maps=True)
        self.content.__class__ = ClusterContent

    def churn(self, n_ops: int) -> None:
        ops = [self.insert] * 8 + [self.evict] + [self.move_owners] * 3 + [
            self.drop_file, self.drop_cgroup, self.toggle_mount, self.share, self.remount,
            self.cluster_owner]
        for _ in range(n_ops):
            self.rng.choice(ops)()
        self.content.step += 1

    def _holders(self, devs: set[int], ino: int | None = None) -> list[int]:
        """The cgroups holding pages of file ``ino`` (None: any) on ``devs``."""
        return sorted({cg for (dev, i, _), pc in self.chunks.items()
                       if dev in devs and ino in (None, i)
                       for cg, m in pc.owners.items() if m}) or CGROUPS[1:]

    def move_owners(self):
        m = self.rng.choice(self.all_mounts)
        if m.backing == "block":
            return
        img = (m.backing_dev, m.backing_ino)
        devs = {x.dev for x in self.all_mounts if (x.backing_dev, x.backing_ino) == img}
        pages = dict(self.owners.get(img, {}))      # a new dict: the old one is never changed
        for _ in range(self.rng.randrange(1, 4)):
            ino = self.rng.randrange(1, 13)
            cgs = self._holders(devs, ino)
            for p in range(0, 48, 3):       # the fake page map's pages of that file
                page = ino * 64 + p + self.rng.randrange(2)
                if self.rng.random() < 0.1:
                    pages.pop(page, None)
                else:
                    pages[page] = self.rng.choice(cgs)
        self.owners[img] = pages
        self.backing[img] = len(pages)

    def cluster_owner(self):
        """A page of a mount's compressed-data cache (ino 0) charged to a
        cgroup holding pages of a compressed file there: the compressed
        part's owners."""
        m = self.rng.choice(self.all_mounts)
        ino = self.rng.choice((6, 12))      # the compressed files
        cg = self.rng.choice(self._holders({m.dev}, ino))
        old = self.chunks.get((m.dev, 0, 0))
        owners = dict(old.owners) if old else {}
        bits = 1 << (ino * 4 + self.rng.randrange(4))
        for o in owners:
            owners[o] &= ~bits
        owners[cg] = owners.get(cg, 0) | bits
        self.chunks[(m.dev, 0, 0)] = PageChunk(m.dev, 0, 0, owners, 0)

    def readings(self, t: float):
        r = super().readings(t)
        if self.rng.random() < 0.5:     # the reader's own dicts, unchanged ones kept
            r.image_cache_owners = dict(self.owners)
        return r


def _nonzero(model) -> tuple[bool, bool]:
    t = model.totals
    return (t.potential_savings_image_cache_bytes > 0,
            t.potential_savings_compressed_cache_bytes > 0)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ops_per_refresh", [1, 4, 20])
@pytest.mark.parametrize("hint", [False, True], ids=["no-hint", "changed-files"])
def test_cache_part_equals_full_recompute(seed, ops_per_refresh, hint):
    rng = random.Random(seed * 7919 + ops_per_refresh)
    node = ImageNode(rng, hint)
    node.content.step = 6                   # most identities known: groups form early
    agg = Aggregator(recheck_slices=rng.choice([0, 4]))
    for _ in range(150):
        node.insert()
    for step in range(30):
        node.churn(ops_per_refresh)
        r = node.readings(float(step))
        got = _refresh(agg, node, r, 200)
        want = aggregate(r, node.mounts, node.cgroups, node.content, tier="full",
                         started_at=0.0, files_cap=200)
        _assert_same(got, want, step)


def test_the_world_makes_cache_savings():
    """The worlds above reach the code: image and compressed candidates saved."""
    image = compressed = 0
    for seed in range(6):
        rng = random.Random(seed * 7919 + 4)
        node = ImageNode(rng, True)
        node.content.step = 6
        for _ in range(150):
            node.insert()
        for step in range(30):
            node.churn(4)
            i, c = _nonzero(aggregate(node.readings(float(step)), node.mounts, node.cgroups,
                                      node.content, tier="full", started_at=0.0, files_cap=200))
            image += i
            compressed += c
    assert image >= 15 and compressed >= 3, (image, compressed)


def test_unchanged_refresh_redoes_no_group(monkeypatch):
    """Nothing changed: no group's candidates and no other file's page maps
    are computed again (what makes the unchanged refresh cheap)."""
    from erofs_top import cache_part, node_savings
    rng = random.Random(0)     # (a seed whose world has a cache part by step 10)
    node = ImageNode(rng, True)
    node.content.step = 20
    for _ in range(150):
        node.insert()
    agg = Aggregator(recheck_slices=0)
    for step in range(40):
        node.churn(4)
        r = node.readings(float(step))
        r.image_cache_owners = dict(node.owners)
        first = _refresh(agg, node, r, 200)
        if any(_nonzero(first)):
            break
    assert any(_nonzero(first)), "no cache part: the test sees nothing"
    calls = []
    real_c, real_o = cache_part._candidates, node_savings._file_needs
    monkeypatch.setattr(cache_part, "_candidates", lambda *a: calls.append("c") or real_c(*a))
    monkeypatch.setattr(node_savings, "_file_needs", lambda *a: calls.append("o") or real_o(*a))
    r = node.readings(100.0)
    r.image_cache_owners = dict(node.owners)
    again = _refresh(agg, node, r, 200)
    assert calls == []
    assert again.totals == first.totals and again.containers == first.containers


# ------------------------------------------------------------ CachePart alone
# CachePart.update against savings.potential() of the same groups, on random
# changes of one input at a time: a group re-made or dropped, the owners or
# the readers of one cache, the other files' pages of one cache, the groups
# left out (done).  Image pages overlap across groups and with other_kept.

PAGES = 80


def _random_copy(rng, gid_n: int, i: int) -> Copy:
    dev = rng.randrange(1, 5)
    img = rng.choice([(9, 1), (9, 2), (9, 3)])
    pm = {p: tuple(rng.sample(range(PAGES), rng.randrange(1, 3))) for p in range(6)
          if rng.random() < 0.8}
    managed = (("managed", dev), {p: (rng.randrange(8),) for p in range(4)}) \
        if rng.random() < 0.5 else None
    return Copy((dev, 100 * gid_n + i, 0), {0: 0x3F}, None, img,
                pm if rng.random() < 0.9 else None, rng.random() < 0.5, managed,
                rng.choice([-1, rng.randrange(PAGES)]), owner=rng.choice([1, 2, 3, 4]))


def _random_group(rng, n: int) -> tuple:
    copies = [_random_copy(rng, n, i) for i in range(rng.randrange(1, 4))]
    ready = [c for c in copies if c.fingerprinted]
    return ((rng.random(), n), {"rebuild": copies, "now": ready, "domains": list(ready)})


def _caches():
    return [(9, 1), (9, 2), (9, 3)] + [("managed", d) for d in range(1, 5)]


@pytest.mark.parametrize("seed", range(10))
def test_cache_part_alone_equals_potential(seed):
    from erofs_top.cache_part import STAGES, CachePart
    from erofs_top.savings import Savings, potential
    rng = random.Random(seed)
    groups = {n: _random_group(rng, n) for n in range(8)}
    owned = {k: {p: rng.choice([1, 2, 3, 4, 5]) for p in range(PAGES) if rng.random() < 0.9}
             for k in _caches()}
    readers = {k: set(rng.sample([1, 2, 3, 4], 3)) for k in _caches()}
    other = {k: set(rng.sample(range(PAGES), 3)) for k in _caches()[:2]}
    done: set = set()
    part = CachePart()
    changed = set(groups)
    kinds = {"group": 0, "owned": 0, "readers": 0, "other": 0, "done": 0, "saved": 0}
    for step in range(60):
        got = part.update(groups, set(groups), changed, done, owned, readers, other)
        for stage in STAGES:
            mapped = [g[1][stage] for g in sorted((groups[n] for n in groups if n not in done),
                                                  key=lambda g: g[0])]
            want = potential(mapped, owned, readers, other, file_part=Savings())
            have = got[stage]
            assert (have[0], have[1], have[2], have[3]) == (
                want.image_pages, want.compressed_pages, dict(want.by_cgroup),
                dict(want.by_dev)), (step, stage)
            kinds["saved"] += bool(want.image_pages or want.compressed_pages)
        changed = set()
        kind = rng.choice(["group", "owned", "readers", "other", "done"])
        kinds[kind] += 1
        key = rng.choice(_caches())
        if kind == "group":
            n = rng.randrange(10)
            if n in groups and rng.random() < 0.3:
                del groups[n]
            else:
                groups[n] = _random_group(rng, n)
            changed.add(n)
        elif kind == "owned":       # a new dict (the collector's are never changed in place)
            owned[key] = {p: rng.choice([1, 2, 3, 4, 5]) for p in range(PAGES)
                          if rng.random() < 0.9}
        elif kind == "readers":
            readers[key] = set(rng.sample([1, 2, 3, 4], rng.randrange(0, 4)))
        elif kind == "other":
            other[key] = set(rng.sample(range(PAGES), rng.randrange(0, PAGES // 2)))
        else:
            done = set(rng.sample(sorted(groups), min(len(groups), rng.randrange(3))))
    assert kinds["saved"] > 10 and all(kinds.values()), kinds


def test_cache_part_last_writer_in_group_order():
    """A page that is a candidate of several groups counts once, for the
    dev of the last group in the groups' canonical order (potential()'s
    cand.update), not in the order the gids come in."""
    from erofs_top.cache_part import CachePart
    from erofs_top.savings import Copy, Savings, potential
    img, img2 = (9, 1), (9, 2)
    groups = {}
    for n in range(6):      # each: a copy on img keeps, one on img2 gives up page 7
        keep = Copy((10 + n, 1, 0), {0: 1}, None, img, {0: (n,)}, True, owner=1)
        give = Copy((20 + n, 1, 0), {0: 1}, None, img2, {0: (7,)}, True, owner=1)
        groups[n] = ((-n,), {"rebuild": [keep, give], "now": [keep, give],
                             "domains": [keep, give]})
    owned = {img: {n: 1 for n in range(6)}, img2: {7: 1}}
    readers = {img: {1}, img2: {1}}
    got = CachePart().update(groups, set(groups), set(groups), set(), owned, readers, {})
    want = potential([g[1]["rebuild"] for g in sorted(groups.values())], owned, readers, {},
                     file_part=Savings())
    assert dict(want.by_dev) == {20: 1}       # gid 0: the last in order
    assert got["rebuild"][:4] == (want.image_pages, 0, dict(want.by_cgroup), dict(want.by_dev))


def test_a_file_joining_a_group_leaves_the_other_files():
    """A resident file alone (its image pages among the other files' kept
    ones) gets a copy on another mount: it joins a group without changing
    its pages and gives up image pages to the new copy's: other_kept no
    longer holds them, as from scratch (its dev is redone: the aggregator
    touched its key, and GroupCache names the re-made group's devs; the
    test fails with neither)."""
    from erofs_top.readings import PageChunk
    node = ImageNode(random.Random(1), True)
    node.content.step = 100
    a, b = node.all_mounts[2], node.all_mounts[4]          # stock file-backed, two images
    img_a, img_b = ((m.backing_dev, m.backing_ino) for m in (a, b))
    node.chunks[(a.dev, 1, 0)] = PageChunk(a.dev, 1, 0, {1001: 0xFFFF}, 0)
    for m in (a, b):        # a group on both devs: their other files count
        node.chunks[(m.dev, 3, 0)] = PageChunk(m.dev, 3, 0, {1003: 0xFF}, 0)
    node.owners[img_a] = {64 + p: 1001 for p in range(0, 48, 6)}      # some of its pages
    node.owners[img_b] = {64 + p + k: 1002 for p in range(0, 48, 3) for k in (0, 1)}
    agg = Aggregator(recheck_slices=0)
    _refresh(agg, node, node.readings(0.0), 200)
    node.chunks[(b.dev, 1, 0)] = PageChunk(b.dev, 1, 0, {1002: 0xFFFF0000}, 0)
    r = node.readings(1.0)
    got = _refresh(agg, node, r, 200)
    want = aggregate(r, node.mounts, node.cgroups, node.content, tier="full",
                     started_at=0.0, files_cap=200)
    assert want.totals.potential_savings_image_cache_bytes > 0
    _assert_same(got, want, 1)


@pytest.mark.parametrize("seed", range(6))
def test_cache_part_other_changed_in_place(seed):
    """other_kept changed in place (OtherKept's counts) with the pages that
    flipped named: each cache's count moves by those pages and equals
    potential(); a group re-made moves its caches by its own pages, no
    cache counted again from scratch."""
    from erofs_top import cache_part
    from erofs_top.cache_part import STAGES, CachePart
    from erofs_top.savings import Savings, potential
    rng = random.Random(100 + seed)
    groups = {n: _random_group(rng, n) for n in range(8)}
    owned = {k: {p: rng.choice([1, 2, 3, 4, 5]) for p in range(PAGES) if rng.random() < 0.9}
             for k in _caches()}
    readers = {k: {1, 2, 3, 4, 5} for k in _caches()}        # (every owner: candidates)
    other = {k: dict.fromkeys(rng.sample(range(PAGES), 5), 1) for k in _caches()}
    part = CachePart()
    part.update(groups, set(groups), set(groups), set(), owned, readers, other)
    recounts = []
    real = cache_part._Counted.recount
    cache_part._Counted.recount = lambda self, o: recounts.append(1) or real(self, o)
    try:
        moved = 0
        for step in range(60):
            changed, flipped = set(), {}
            if rng.random() < 0.3:
                n = rng.randrange(8)
                groups[n] = _random_group(rng, n)
                changed.add(n)
            for key in rng.sample(_caches(), 2):
                pages = set(rng.sample(range(PAGES), rng.randrange(1, 6)))
                for p in pages:
                    if p in other[key]:
                        del other[key][p]
                    else:
                        other[key][p] = 1
                flipped[key] = pages
            got = part.update(groups, set(groups), changed, set(), owned, readers, other,
                              flipped)
            for stage in STAGES:
                want = potential([g[1][stage] for g in sorted(groups.values(),
                                                              key=lambda g: g[0])],
                                 owned, readers, other, file_part=Savings())
                assert got[stage][:4] == (want.image_pages, want.compressed_pages,
                                          dict(want.by_cgroup), dict(want.by_dev)), (step, stage)
                moved += bool(want.image_pages or want.compressed_pages)
    finally:
        cache_part._Counted.recount = real
    assert recounts == [] and moved > 30, moved


@pytest.mark.parametrize("by_file", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_other_kept_equals_union_and_names_flips(seed, by_file):
    """OtherKept after random changes of the files outside groups (some
    devs named changed, a dev leaving and joining): the pages per cache are
    the union of those files' needs, from scratch, and take_flipped names
    exactly the pages that joined or left since the last take; a dev not
    named changed has no page map read again, nor (``by_file``: the
    changed files named, file_at given) a file not named."""
    from types import SimpleNamespace

    from erofs_top.cache_part import OtherKept
    rng = random.Random(seed)
    mounts = {dev: object() for dev in range(1, 5)}

    def needs_of(dev, ino):
        r = random.Random(dev * 1000 + ino)
        return (((9, dev % 2), tuple(r.sample(range(40), 4))),
                (("managed", dev), tuple(r.sample(range(10), 2))))
    files = {dev: set(rng.sample(range(30), 8)) for dev in mounts}
    ok = OtherKept()
    read = []

    def needs(e):
        read.append((e.dev, e.ino))
        return needs_of(e.dev, e.ino)

    def files_on(dev):
        return [SimpleNamespace(dev=dev, ino=i, mount=mounts[dev]) for i in sorted(files[dev])]

    def file_at(dev, ino):
        return SimpleNamespace(dev=dev, ino=ino, mount=mounts[dev]) if ino in files[dev] else None
    devs = set(mounts)
    ok.update(devs, None, files_on, needs)
    before = {k: set(v) for k, v in ok.kept.items()}
    ok.take_flipped()
    for step in range(30):
        dev = rng.choice(sorted(mounts))
        inos = set()
        if rng.random() < 0.1:
            devs = devs ^ {dev}
        else:
            inos = set(rng.sample(range(30), rng.randrange(1, 4)))
            files[dev] ^= inos
        read.clear()
        kept = ok.update(devs, {dev: inos}, files_on, needs, file_at if by_file else None)
        want: dict = {}
        for d in devs:
            for i in files[d]:
                for key, pages in needs_of(d, i):
                    want.setdefault(key, set()).update(pages)
        assert {k: set(v) for k, v in kept.items()} == want, step
        assert all(d == dev for d, _ in read), step        # only the changed dev looked at
        if by_file and dev in devs and dev in ok.by_dev and inos:
            assert {i for _, i in read} <= inos, step       # only the changed files
        flips = ok.take_flipped()
        assert flips == {k: (want.get(k, set()) ^ before.get(k, set()))
                         for k in want.keys() | before.keys()
                         if want.get(k, set()) ^ before.get(k, set())}, step
        before = want


def _count_redone(monkeypatch) -> list:
    """cache_part._candidates wrapped: each group's copies it is called for
    appended to the list returned (the groups a CachePart.update redoes)."""
    from erofs_top import cache_part
    redone: list = []
    real = cache_part._candidates
    monkeypatch.setattr(cache_part, "_candidates",
                        lambda copies, o, r: redone.append(copies) or real(copies, o, r))
    return redone


def _assert_potential(got: dict, groups: dict, owned: dict, readers: dict, step: int) -> None:
    """CachePart.update's totals (``got``) equal potential() of every group
    (no other files' pages) in each stage."""
    from erofs_top.cache_part import STAGES
    from erofs_top.savings import Savings, potential
    for stage in STAGES:
        want = potential([g[1][stage] for g in sorted(groups.values(), key=lambda g: g[0])],
                         owned, readers, {}, file_part=Savings())
        assert got[stage][:4] == (want.image_pages, want.compressed_pages,
                                  dict(want.by_cgroup), dict(want.by_dev)), (step, stage)


@pytest.mark.parametrize("seed", range(6))
def test_cache_part_owner_moved_on_a_few_pages(seed, monkeypatch):
    """An image's owners changed on a few pages (a new dict, as
    ImageCacheReader hands over): only the groups whose copies' page maps
    name one of those pages are redone, and the counts equal potential()."""
    from erofs_top.cache_part import CachePart
    rng = random.Random(200 + seed)
    groups = {n: _random_group(rng, n) for n in range(12)}
    owned = {k: {p: rng.choice([1, 2, 3, 4, 5]) for p in range(PAGES) if rng.random() < 0.9}
             for k in _caches()}
    readers = {k: {1, 2, 3, 4, 5} for k in _caches()}
    part = CachePart()
    part.update(groups, set(groups), set(groups), set(), owned, readers, {})
    redone = _count_redone(monkeypatch)
    fewer = 0
    for step in range(30):
        key = rng.choice(_caches())
        pages = rng.sample(range(PAGES), 2)
        owned[key] = dict(owned[key])
        for p in pages:
            owned[key][p] = rng.choice([1, 2, 3, 4, 5])
        redone.clear()
        got = part.update(groups, set(groups), set(), set(), owned, readers, {})
        _assert_potential(got, groups, owned, readers, step)
        reading = [n for n, g in groups.items() if any(
            pm and p in {x for ps in pm.values() for x in ps}
            for c in g[1]["rebuild"]
            for k, pm in ((c.image, c.page_map), c.managed or (None, None)) if k == key
            for p in pages)]
        on_key = [n for n in groups if key in part.group_keys.get(n, ())]
        assert len({id(c) for c in redone}) <= 3 * len(reading), step
        fewer += len(reading) < len(on_key)
    assert fewer > 5, fewer


def _spread_group(rng, n: int) -> tuple:
    """A group of 2-3 copies, each through its own image (so one keeps a
    page and the others' are candidates), 4 file pages each, read by
    cgroup 1 or 2."""
    copies = []
    for i, img in enumerate(rng.sample([(9, 1), (9, 2), (9, 3)], rng.randrange(2, 4))):
        start = rng.randrange(PAGES - 4)
        copies.append(Copy((i + 1, 100 * n + i, 0), {0: 0xF}, None, img,
                           {f: (start + f,) for f in range(4)}, True,
                           owner=rng.choice([1, 2])))
    return ((rng.random(), n), {"rebuild": copies, "now": copies, "domains": copies})


@pytest.mark.parametrize("seed", range(6))
def test_cache_part_reader_joined_or_left(seed, monkeypatch):
    """A cgroup joins or leaves one image's readers (a new container of an
    image, the last reader's files gone): only the groups whose copies'
    page maps name a page that cgroup owns there are redone (none when it
    owns none: cgroup 7; 6 owns pages but holds no copy), and the counts
    equal potential()."""
    from erofs_top.cache_part import CachePart
    rng = random.Random(300 + seed)
    images = [(9, 1), (9, 2), (9, 3)]
    groups = {n: _spread_group(rng, n) for n in range(12)}
    owned = {k: {p: rng.choice([1, 2, 6]) for p in range(PAGES)} for k in images}
    readers = {k: {1, 2, 3, 4, 5, 6} for k in images}
    part = CachePart()
    part.update(groups, set(groups), set(groups), set(), owned, readers, {})
    redone = _count_redone(monkeypatch)
    fewer = moved = 0
    for step in range(40):
        key, cg = rng.choice(images), rng.choice([1, 2, 6, 7])
        before = part.update(groups, set(groups), set(), set(), owned, readers, {})
        before = {stage: (t[0], t[1], dict(t[2]), dict(t[3])) for stage, t in before.items()}
        readers[key] = readers[key] ^ {cg}         # (a new set, as Accumulator.readers)
        redone.clear()
        got = part.update(groups, set(groups), set(), set(), owned, readers, {})
        _assert_potential(got, groups, owned, readers, step)
        moved += got["rebuild"][:4] != before["rebuild"]
        mine = {p for p, owner in owned[key].items() if owner == cg}
        reading = [n for n, g in groups.items()
                   if any(c.image == key and not mine.isdisjoint(
                       x for ps in c.page_map.values() for x in ps) for c in g[1]["rebuild"])]
        on_key = [n for n in groups if key in part.group_keys.get(n, ())]
        if cg == 7:
            assert not redone, step
        assert len({id(c) for c in redone}) <= len(reading), step
        fewer += len(reading) < len(on_key)
    assert fewer > 5 and moved > 5, (fewer, moved)
