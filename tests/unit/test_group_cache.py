"""node_savings.GroupCache keeps the savings sums over all mergeable groups
by deltas: a group put again (one of its copies changed) takes its old part
out and its new one in, skipping what is equal.  After any sequence of puts
the sums equal those of a cache given only the final groups, once each."""
from __future__ import annotations

import random

import pytest

from erofs_top.entries import Entry
from erofs_top.node_savings import STAGES, GroupCache
from erofs_top.resolve.base import ImageInfo, MountInfo, StaticContent


def _mount(dev: int, fingerprinted: bool) -> MountInfo:
    image = ImageInfo(uuid="u", volume_name="", feature_compat=0, feature_incompat=0,
                      block_size=4096, image_id=f"img-{dev}", ishare_xattrs=fingerprinted,
                      compressed=False)
    return MountInfo(dev=dev, dev_str=f"0:{dev}", mountpoint=f"/m{dev}", source="s",
                     backing="file", image=image)


def _entry(rng, dev: int, ino: int, mounts: dict) -> Entry:
    """A copy with random pages in chunks 0-2: one owner, or several per chunk."""
    union = {c: rng.choice([1, 3, 0xF0, (1 << 64) - 1, rng.getrandbits(64) | 1])
             for c in range(3) if rng.random() < 0.7} or {0: 1}
    e = Entry(dev, ino, mount=mounts[dev])
    if rng.random() < 0.6:
        e.chunks, e.owner, e.union = None, rng.choice([101, 102, 103]), union
    else:
        e.chunks = {c: {101: m, rng.choice([102, 103]): m & rng.getrandbits(64)}
                    for c, m in union.items()}
        e.union = {c: o[101] | max(o.values()) for c, o in e.chunks.items()}
    return e


def _sums(cache: GroupCache) -> tuple:
    parts = tuple((s.file_pages, s.image_pages, s.compressed_pages, s.now_file_pages,
                   {k: v for k, v in s.by_cgroup.items() if v},
                   {k: v for k, v in s.by_dev.items() if v})
                  for s in (cache.file_part[stage] for stage in STAGES))
    return parts, dict(cache.dev_count), cache.unmapped, set(cache.with_maps)


@pytest.mark.parametrize("seed", range(8))
def test_sums_kept_by_deltas_equal_the_final_groups_put_once(seed):
    rng = random.Random(seed)
    content = StaticContent()
    mounts = {dev: _mount(dev, rng.random() < 0.5) for dev in range(1, 7)}
    cache = GroupCache()
    groups: dict[tuple, list[Entry]] = {}
    for _ in range(300):
        gid = (f"c{rng.randrange(12)}", rng.randrange(2))
        if gid in groups and rng.random() < 0.2:
            del groups[gid]
            cache.put(gid, None, content)
            continue
        members = groups.get(gid) or [_entry(rng, dev, 10 + int(gid[0][1:]), mounts)
                                      for dev in rng.sample(range(1, 7), rng.randrange(2, 5))]
        members = list(members)
        if rng.random() < 0.8:      # one copy changed (its pages, or its cgroups)
            i = rng.randrange(len(members))
            members[i] = _entry(rng, members[i].dev, members[i].ino, mounts)
        elif rng.random() < 0.5 and len(members) > 2:      # one copy gone
            members.pop(rng.randrange(len(members)))
        else:                       # a copy on another mount
            free = [d for d in range(1, 7) if d not in {e.dev for e in members}]
            if free:
                members.append(_entry(rng, rng.choice(free), members[0].ino, mounts))
        members.sort(key=lambda e: e.order)
        groups[gid] = members
        cache.put(gid, members, content)
    fresh = GroupCache()
    for gid, members in groups.items():
        fresh.put(gid, members, content)
    assert _sums(cache) == _sums(fresh)
    assert _sums(fresh)[0][0][0] > 0 and _sums(fresh)[1]       # something to compare


class _MappedContent(StaticContent):
    """StaticContent with image page maps (a file-backed mount's), counting
    the maps asked for."""

    def __init__(self):
        super().__init__()
        self.asked = 0

    def image_pages(self, mount, ino):
        self.asked += 1
        return {0: (ino * 4,), 1: (ino * 4 + 1,)}


def _image_mount(dev: int) -> MountInfo:
    m = _mount(dev, False)
    m.backing_dev, m.backing_ino = 99, 1000 + dev % 3      # three image files
    return m


def test_a_group_put_again_keeps_its_untouched_copies_and_names_moved_files():
    """A mapped group put again with one copy gone and one new (a container
    replaced), the aggregator's touched set given: the untouched copies are
    the objects made before (no page map asked again), the touched and new
    ones made anew; changed_files names the files that left or joined (not
    every copy's); without touched every copy is made anew.  Sums equal a
    fresh cache's."""
    rng = random.Random(5)
    content = _MappedContent()
    mounts = {dev: _image_mount(dev) for dev in range(1, 9)}
    members = [_entry(rng, dev, 10, mounts) for dev in range(1, 7)]
    cache = GroupCache()
    cache.put(("c", 0), members, content)
    before = {c.key: c for c in cache.groups[("c", 0)][1]["rebuild"]}
    cache.changed_files = set()
    changed = _entry(rng, 3, 10, mounts)           # dev 3's copy changed
    now = [e for e in members if e.dev not in (2, 3)] + [changed, _entry(rng, 7, 10, mounts)]
    now.sort(key=lambda e: e.order)
    content.asked = 0
    cache.touched = {(3, 10), (7, 10), (2, 10)}
    cache.put(("c", 0), now, content)
    cache.touched = None
    after = {c.key: c for c in cache.groups[("c", 0)][1]["rebuild"]}
    assert content.asked == 2                       # dev 3 and dev 7: made
    for dev in (1, 4, 5, 6):
        assert after[(dev, 10, 0)] is before[(dev, 10, 0)]
    assert after[(3, 10, 0)] is not before[(3, 10, 0)] and after[(3, 10, 0)].union == changed.union
    assert cache.changed_files == {(2, 10), (7, 10)}
    fresh = GroupCache()
    fresh.put(("c", 0), now, content)
    assert _sums(cache) == _sums(fresh)
    # no touched set (put outside a refresh): every copy made again
    content.asked = 0
    cache.put(("c", 0), now, content)
    assert content.asked == len(now)
    # the group dropped: every file of it named
    cache.changed_files = set()
    cache.put(("c", 0), None, content)
    assert cache.changed_files == {(e.dev, 10) for e in now}
