"""savings.image_candidates walks a group's copies by (image, page map)
class: the mounts of one image (one mount per container) read the same
pages, so what a file page gives one of them it gives each.  Checked here
against the per-copy walk it replaced (the reference below, kept as the
oracle), on random groups: copies of several images, several files of an
image in one group (different maps), mounts sharing a map object, maps
that overlap (a shared block), pages charged to readers and to others,
both modes (resident / not resident)."""
from __future__ import annotations

import random
from collections import defaultdict

import pytest

from erofs_top.resolve.superblock import RunPageMap
from erofs_top.savings import Copy, _file_holders, image_candidates, mapped_pages


def _reference_image_candidates(members, owned, readers, *, resident):
    """The per-copy walk (every copy, every file page): the oracle."""
    mapped = [m for m in members if m.image and m.page_map is not None]
    cand, kept = defaultdict(dict), defaultdict(set)
    for m in mapped:
        if m.inode_page >= 0:
            kept[m.image].add(m.inode_page)
    if len(mapped) < 2:
        for m in mapped:
            kept[m.image].update(mapped_pages(m.page_map))
        return cand, kept
    def held(m):
        pages, rd = owned.get(m.image, {}), readers.get(m.image, ())
        return sum(1 for p in mapped_pages(m.page_map) if pages.get(p) in rd)
    keeper = mapped[max(range(len(mapped)), key=lambda i: (held(mapped[i]), -i))]
    by_image = defaultdict(set)
    for m in mapped:
        by_image[m.image] |= _file_holders(m)
    for fpage in set().union(*(m.page_map.keys() for m in mapped)):
        holders, read_through = [], False
        for m in mapped:
            pages = owned.get(m.image, {})
            mine = by_image[m.image] & readers.get(m.image, set())
            ps = m.page_map.get(fpage, ())
            if resident:
                hit = [p for p in ps if pages.get(p) in mine]
            else:
                hit = [p for p in ps if p not in pages]
                read_through |= len(hit) < len(ps)
            if hit:
                holders.append((m, hit, pages))
            else:
                kept[m.image].update(ps)
        if not holders:
            continue
        keep = None if read_through else next((h for h in holders if h[0] is keeper), holders[0])
        for m, hit, pages in holders:
            if keep is not None and m is keep[0]:
                kept[m.image].update(hit)
                continue
            for p in hit:
                cand[m.image][p] = (pages.get(p, 0), m.key[0])
    return cand, kept


def _random_group(rng: random.Random):
    """(members, owned, readers) of one content group on a random node."""
    images = [(7, 100 + i) for i in range(rng.randint(1, 3))]
    maps = {}
    for img in images:
        for ino in range(rng.randint(1, 3)):
            base, n = rng.randrange(0, 40), rng.randint(1, 6)
            maps[(img, ino)] = RunPageMap(0, n, base) if rng.random() < 0.5 else \
                {f: tuple(rng.sample(range(50), rng.randint(1, 2))) for f in range(n)}
    cgroups = list(range(1, 9))
    owned = {img: {p: rng.choice(cgroups + [0]) for p in range(50) if rng.random() < 0.6}
             for img in images}
    readers = {img: set(rng.sample(cgroups, rng.randint(0, 6))) for img in images}
    members = []
    for dev in range(rng.randint(1, 12)):
        img, ino = rng.choice(list(maps))
        owner = rng.choice(cgroups)
        members.append(Copy((dev, ino, False), {0: 1}, None, img, maps[(img, ino)], False,
                            inode_page=rng.choice([-1, rng.randrange(50)]), owner=owner))
    return members, owned, readers


@pytest.mark.parametrize("resident", [True, False])
def test_classes_of_one_map_give_what_each_copy_gives(resident):
    rng = random.Random(11 if resident else 12)
    shared = 0
    for _ in range(3000):
        members, owned, readers = _random_group(rng)
        got = image_candidates(members, owned, readers, resident=resident)
        want = _reference_image_candidates(members, owned, readers, resident=resident)
        assert (dict(got[0]), dict(got[1])) == (dict(want[0]), dict(want[1]))
        # (the insertion order of each image's candidates, too)
        assert {k: list(v) for k, v in got[0].items()} == {k: list(v) for k, v in want[0].items()}
        shared += len({id(m.page_map) for m in members}) < len(members)
    assert shared > 1000        # most groups had mounts sharing a map


def test_mounts_of_one_image_one_keeps_the_rest_give_up():
    """25 mounts of one image, the file read by each container: one copy
    keeps the image pages, and the candidates name the last mount's dev."""
    pm = RunPageMap(0, 4, 10)
    img = (7, 100)
    members = [Copy((dev, 5, False), {0: 15}, None, img, pm, False, owner=100 + dev)
               for dev in range(25)]
    owned = {img: {10: 103, 11: 103, 12: 103, 13: 103}}
    readers = {img: {100 + dev for dev in range(25)}}
    cand, kept = image_candidates(members, owned, readers, resident=True)
    assert kept[img] == {10, 11, 12, 13}
    assert cand[img] == {p: (103, 24) for p in (10, 11, 12, 13)}
