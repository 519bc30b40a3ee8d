"""The aggregator's entries -> the savings model (erofs_top/savings.py):
potential savings on stock mounts, realized ones on inode_share mounts."""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from itertools import chain
from operator import attrgetter, itemgetter
from typing import Callable, Iterable

from .attribution import image_key, managed_key
from .cache_part import CachePart, OtherKept
from . import fragments
from .entries import Entry, owners_by_chunk
from .model import Health
from .read_replay import Inode, ReadLog, ReplaySaved, World, chunk_pages, page_list, replay_savings
from .readings import CHUNK_PAGES, Readings
from .resolve.base import AOPS_COMPRESSED, ContentResolver, MountInfo, MountResolver
from .savings import (Copy, Savings, group_file_part, mapped_pages,
                      realized_cache_pages, realized_file_pages, touched_copies)

_dev_of = attrgetter("dev")

MANAGED_CACHE_INO = 0     # a mount's compressed-data cache: new_inode(sb), i_ino 0


@dataclass
class Saved:
    potential: Savings
    potential_now: Savings
    potential_domains: Savings          # stages a + c (see stage_groups)
    realized_file_pages: int = 0
    realized_image_pages: int = 0
    realized_compressed_pages: int = 0


def _page_map(content: ContentResolver, mount: MountInfo | None, ino: int):
    fn = getattr(content, "image_pages", None)      # resolvers without it: unknown
    return fn(mount, ino) if (fn is not None and mount is not None) else None


def _managed_map(content: ContentResolver, mount: MountInfo | None, ino: int):
    fn = getattr(content, "managed_pages", None)
    return fn(mount, ino) if (fn is not None and mount is not None) else None


def has_page_maps(content: ContentResolver) -> bool:
    """Whether the resolver can map file pages to cache pages at all."""
    return hasattr(content, "image_pages") or hasattr(content, "managed_pages")


def cache_owners(managed: Iterable[Entry], readings: Readings) -> dict[tuple, dict[int, int]]:
    """Who paid for each page of each cache a copy reads through: image files
    (ground truth) and compressed-data caches (the probes' own entries, ino 0,
    given in ``managed``)."""
    owned: dict[tuple, dict[int, int]] = dict(readings.image_cache_owners)
    for e in managed:
        pages = owned.setdefault(managed_key(e.dev), {})
        for c, owners in owners_by_chunk(e).items():
            for cg, mask in owners.items():
                for p in range(CHUNK_PAGES):
                    if mask >> p & 1:
                        pages[c * CHUNK_PAGES + p] = cg
    return owned


def _copy(e: Entry, image_pages, managed_pages, meta_pages) -> Copy:
    """``image_pages``/``managed_pages``/``meta_pages``: the content
    resolver's, or None (resolvers without them: unknown)."""
    m = e.mount
    if m is None:
        return Copy((e.dev, e.ino, e.shared_mapping), e.union, e.chunks, None, None, False,
                    None, -1, owner=e.owner)
    img = image_key(m)
    mm = managed_pages(m, e.ino) if managed_pages is not None else None
    pm = image_pages(m, e.ino) if (img and image_pages is not None) else None
    meta = meta_pages(m, e.ino) if (img and meta_pages is not None) else None
    image = m.image
    return Copy((e.dev, e.ino, e.shared_mapping), e.union, e.chunks, img, pm,
                bool(image and image.ishare_xattrs),
                None if mm is None else (managed_key(e.dev), mm),
                -1 if meta is None else meta.inode_page, owner=e.owner)


def _file_needs(e: Entry, content: ContentResolver) -> tuple:
    """((cache, pages), ...): the cache pages a resident file outside every
    group needs (they stay whatever sharing does): its page maps'."""
    out = []
    for key, pm in ((image_key(e.mount), _page_map(content, e.mount, e.ino)),
                    (managed_key(e.dev), _managed_map(content, e.mount, e.ino))):
        if key and pm:
            out.append((key, tuple(set(mapped_pages(pm)))))
    return tuple(out)


STAGES = ("rebuild", "now", "domains")


def _add_flat(mine: dict[int, int], flat: tuple, sign: int) -> None:
    """mine += sign * {k: n} of flat (k, n, k, n, ...); no zero count kept."""
    it = iter(flat)
    for k, v in zip(it, it):
        n = mine.get(k, 0) + sign * v
        if n:
            mine[k] = n
        else:
            mine.pop(k, None)


def _add_counts(mine: dict[int, int], delta: dict[int, int]) -> None:
    """mine += delta; no zero count kept."""
    for k, v in delta.items():
        if v:
            n = mine.get(k, 0) + v
            if n:
                mine[k] = n
            else:
                del mine[k]


def _add_part(total: Savings, part: tuple, sign: int) -> None:
    """Savings.add of a part (savings.group_file_part)."""
    total.file_pages += sign * part[0]
    total.image_pages += sign * part[1]
    total.compressed_pages += sign * part[2]
    total.now_file_pages += sign * part[3]
    _add_flat(total.by_cgroup, part[4], sign)
    _add_flat(total.by_dev, part[5], sign)


def _move_part(total: Savings, a: tuple, b: tuple) -> None:
    """_add_part(total, a, -1) then _add_part(total, b, +1): where the
    per-cgroup (per-dev) counts of both name the same keys in the same order
    (a group whose pages changed: the usual case) only the counts that differ
    move."""
    total.file_pages += b[0] - a[0]
    total.image_pages += b[1] - a[1]
    total.compressed_pages += b[2] - a[2]
    total.now_file_pages += b[3] - a[3]
    for mine, fa, fb in ((total.by_cgroup, a[4], b[4]), (total.by_dev, a[5], b[5])):
        if fa == fb:
            continue
        if len(fa) != len(fb) or fa[::2] != fb[::2]:
            _add_flat(mine, fa, -1)
            _add_flat(mine, fb, +1)
            continue
        for i in range(1, len(fb), 2):     # the same keys: each count that changed moves
            d = fb[i] - fa[i]
            if d:
                k = fb[i - 1]
                n = mine.get(k, 0) + d
                if n:
                    mine[k] = n
                else:
                    mine.pop(k, None)


def stage_groups(members: list[Entry], content: ContentResolver,
                 kept: dict[tuple, Copy] | None = None,
                 touched: set[tuple] | None = None) -> dict[str, list[Copy]]:
    """The copies of one mergeable group for each stage of the prediction:
    ``now`` (a: stock mounts of images with fingerprints join one shared
    inode), ``domains`` (a + c: the shared inodes of one content in different
    domains merge too), ``rebuild`` (a + b + c: images without fingerprints
    rebuilt).  Shared inodes come first, largest first: they keep their pages.
    ``kept``: the group's copies as last made, by key, and ``touched``: the
    entries changed since (the aggregator's): a stock copy of an entry not
    touched is taken as it was (see _kept_copy)."""
    image_pages, managed_pages, meta_pages = _map_fns(content)
    if not any(e.shared_mapping for e in members):      # the usual group: stock copies only
        if kept and touched is not None:
            copies = [_kept_copy(e, kept, touched) or _copy(e, image_pages, managed_pages,
                                                            meta_pages) for e in members]
        else:
            copies = [_copy(e, image_pages, managed_pages, meta_pages) for e in members]
        ready = [c for c in copies if c.fingerprinted]
        return {"rebuild": copies, "now": ready, "domains": list(ready)}
    shared = sorted((e for e in members if e.shared_mapping),
                    key=lambda e: (-e.resident_pages(), e.shared_mapping))
    first = [_copy(e, image_pages, managed_pages, meta_pages) for e in shared]
    stock_copies = [_copy(e, image_pages, managed_pages, meta_pages)
                    for e in members if not e.shared_mapping]
    ready = [c for c in stock_copies if c.fingerprinted]
    return {"rebuild": first + stock_copies, "now": first[:1] + ready, "domains": first + ready}


def _kept_copy(e: Entry, kept: dict[tuple, Copy], touched: set[tuple]) -> Copy | None:
    """The copy of stock entry ``e`` made last time, when it holds: the entry
    not touched since (its pages and owners the same) and its mount's image
    the same (a copy's page maps are the image's, fixed: EROFS is read-only).
    A group of 25 copies with one copy gone and one new (a container
    replaced) then makes one copy, not 25 with their page maps.  None: make it."""
    c = kept.get((e.dev, e.ino, 0))
    if c is None or (e.dev, e.ino) in touched:
        return None
    m = e.mount
    if m is None or c.image != image_key(m) or c.fingerprinted != bool(
            m.image and m.image.ishare_xattrs):
        return None
    return c


def _map_fns(content: ContentResolver) -> tuple:
    """The resolver's image_pages, managed_pages, meta_pages (None for each it lacks)."""
    return (getattr(content, "image_pages", None), getattr(content, "managed_pages", None),
            getattr(content, "meta_pages", None))


def _same_copies(a: list[Copy], b: list[Copy]) -> bool:
    """Two stages of one group hold the same copies (stage_groups makes each
    copy once: the same objects; no comparison of page maps by value)."""
    return len(a) == len(b) and all(x is y for x, y in zip(a, b))


def _stage_parts(stages: dict[str, list[Copy]]) -> tuple:
    """group_file_part() of each stage in STAGES order (None for an empty
    one); stages often hold the same copies: computed once each."""
    if not stages["now"] and not stages["domains"]:     # no shared inode, no fingerprint
        rebuild = stages["rebuild"]
        return (group_file_part(rebuild) if rebuild else None, None, None)
    parts: list = []
    for i, stage in enumerate(STAGES):
        copies = stages[stage]
        for j in range(i):
            if _same_copies(stages[STAGES[j]], copies):
                parts.append(parts[j])
                break
        else:
            parts.append(group_file_part(copies) if copies else None)
    return tuple(parts)


class GroupCache:
    """Per mergeable group (content key, aops class): its copies per stage
    and their EROFS-page savings, kept between refreshes; the sums over all
    groups are kept by deltas (integers: exact)."""

    def __init__(self):
        # gid -> (order, stages (None without maps), file parts (a
        # savings.group_file_part() or None per stage, in STAGES order), maps,
        # unmapped, copies' devs)
        self.groups: dict[tuple, tuple] = {}
        self.file_part = {stage: Savings() for stage in STAGES}
        self.dev_count: dict[int, int] = {}     # copies per dev
        self.unmapped = 0
        self.with_maps: set[tuple] = set()      # gids of the groups with cache page maps
        # since the last node_savings(): the gids of groups with cache page
        # maps re-made or dropped, and their copies' files, (dev, ino),
        # before and after (their group membership may have moved)
        self.changed: set[tuple] = set()
        self.changed_files: set[tuple] = set()
        self.cache_part = CachePart()           # the potential savings' cache part
        self.other = OtherKept()                # node_savings' other_kept
        # the entries changed since the last refresh's puts, while the
        # aggregator puts this refresh's groups (None: every copy made anew)
        self.touched: set[tuple] | None = None

    def put(self, gid: tuple, members: list[Entry] | None, content: ContentResolver,
            part: tuple | None = None, maps: bool | None = None) -> None:
        """Keep (members None: drop) group ``gid``.  ``part``: its "rebuild"
        file part when the caller counted it already (entries.duplicate_group_part:
        stock copies only, none fingerprinted, so the other stages are empty).
        ``maps``: has_page_maps(content), when the caller knows it (many puts)."""
        old = self.groups.pop(gid, None)
        left = None
        if old is not None and old[3]:
            self.with_maps.discard(gid)
            self.changed.add(gid)
            left = {(c.key[0], c.key[1]) for c in old[1]["rebuild"]}
        new = self._put(gid, old, members, content, part, maps)
        if new is not None and new[3]:
            self._mapped(gid, new, left)
        elif left:
            self.changed_files |= left

    def _put(self, gid: tuple, old: tuple | None, members: list[Entry] | None,
             content: ContentResolver, part: tuple | None, maps: bool | None) -> tuple | None:
        """put() but for with_maps and the changes: the group kept now, or None."""
        groups = self.groups
        if not members:
            if old is not None:
                self._account(old, -1)
            return None
        if part is not None and not (has_page_maps(content) if maps is None else maps):
            # no copy needed: no cache page map, no compressed copy left unmapped
            devs = tuple(map(_dev_of, members))
            if old is not None and old[1] is None and old[2][1] is None and old[2][2] is None:
                # a group that had only its rebuild part too (the usual one):
                # the part and the devs move, nothing else is kept
                was = old[2][0]
                first = members[0]
                groups[gid] = ((first.dev, first.ino, first.shared_mapping), None,
                               (part, None, None), False, 0, devs)
                self.unmapped -= old[4]
                if was is not part and was != part:
                    if was is None:
                        _add_part(self.file_part["rebuild"], part, +1)
                    else:
                        _move_part(self.file_part["rebuild"], was, part)
                if old[5] != devs:
                    self._count_devs(old[5], -1)
                    self._count_devs(devs, +1)
                return groups[gid]
            first = members[0]
            new = ((first.dev, first.ino, first.shared_mapping), None, (part, None, None),
                   False, 0, devs)
        else:
            first = members[0]
            kept = None
            if old is not None and old[1] is not None and self.touched is not None:
                kept = {c.key: c for c in old[1]["rebuild"]}
            new = self._made((first.dev, first.ino, first.shared_mapping),
                             stage_groups(members, content, kept, self.touched), part)
        groups[gid] = new
        if old is None:
            self._account(new, +1)
        else:
            self._reaccount(old, new)
        return new

    def _mapped(self, gid: tuple, new: tuple, left: set[tuple] | None = None) -> None:
        """A group with cache page maps made: with_maps and the changes follow.
        ``left``: the files of its copies before (a group re-made): only
        the files that joined or left it changed membership (a copy in both
        stays in a group; a changed entry is the aggregator's to name)."""
        self.with_maps.add(gid)
        self.changed.add(gid)
        files = {(c.key[0], c.key[1]) for c in new[1]["rebuild"]}
        self.changed_files |= files ^ left if left else files

    def move(self, gid: tuple, members: list[Entry], content: ContentResolver, delta,
             maps: bool) -> None:
        """put(gid, members, content, part) of a kept large group
        (large_groups.LargeGroup) whose rebuild part moved by ``delta``
        (large_groups.GroupDelta): the sums move by the delta's few counts,
        not by the ~2 x members of both parts (_move_part)."""
        old = self.groups.get(gid)
        state = delta.state
        general = (maps or old is None or old[1] is not None or old[2][0] is None
                   or old[2][1] is not None or old[2][2] is not None)
        # a kept part that is the state itself has moved already: the sums
        # follow here (put() then finds the same counts and moves nothing)
        if not general or (old is not None and old[2][0] is state):
            total = self.file_part["rebuild"]
            total.file_pages += delta.redundant
            _add_counts(total.by_cgroup, delta.by_cgroup)
            _add_counts(total.by_dev, delta.by_dev)
        if general:
            self.put(gid, members, content, state.flat_part(), maps)
            return
        devs = old[5]
        if delta.slots:         # the copies' devs in member order, moved where they moved
            devs = list(devs)
            for i, dev in delta.slots:
                if dev is None:
                    del devs[i]
                else:
                    devs.insert(i, dev)
            devs = tuple(devs)
            self._count_devs(delta.devs_out, -1)
            self._count_devs(delta.devs_in, +1)
        elif old[2][0] is state:
            return      # the kept tuple holds: the same copies' devs, first copy's key, state
        first = members[0]
        self.groups[gid] = ((first.dev, first.ino, first.shared_mapping), None,
                            (state, None, None), False, 0, devs)

    def put_new(self, groups: Iterable[tuple[tuple, list[Entry], tuple | None]],
                content: ContentResolver) -> None:
        """put(gid, members, content, part) of each (gid, members, part)
        into an empty cache (a full pass: no group kept, none dropped): the
        same kept tuples and sums, the counted parts' sums added up in one
        go (_add_parts) instead of one _account each."""
        assert not self.groups
        kept, maps = self.groups, has_page_maps(content)
        parts, devs = [], []
        for gid, members, part in groups:
            if not members:
                continue
            first = members[0]
            order = (first.dev, first.ino, first.shared_mapping)
            if part is not None and not maps:       # put()'s group without copies
                d = tuple(map(_dev_of, members))
                kept[gid] = (order, None, (part, None, None), False, 0, d)
                parts.append(part)
                devs.append(d)
                continue
            new = kept[gid] = self._made(order, stage_groups(members, content), part)
            self._account(new, +1)
            if new[3]:
                self._mapped(gid, new)
        self._add_parts(parts, devs)

    def _add_parts(self, parts: list[tuple], devs: list[tuple[int, ...]]) -> None:
        """_account(g, +1) of groups g with only a rebuild part (``parts``)
        and their copies' devs (``devs``): each sum once."""
        total = self.file_part["rebuild"]
        total.file_pages += sum(map(itemgetter(0), parts))
        total.image_pages += sum(map(itemgetter(1), parts))
        total.compressed_pages += sum(map(itemgetter(2), parts))
        total.now_file_pages += sum(map(itemgetter(3), parts))
        for mine, i in ((total.by_cgroup, 4), (total.by_dev, 5)):
            it = iter(chain.from_iterable(map(itemgetter(i), parts)))
            get = mine.get
            for k, v in zip(it, it):
                mine[k] = get(k, 0) + v
            for k in [k for k, v in mine.items() if not v]:     # _add_flat keeps no zero
                del mine[k]
        count = self.dev_count
        for dev, n in Counter(chain.from_iterable(devs)).items():
            n += count.get(dev, 0)
            if n:
                count[dev] = n
            else:
                count.pop(dev, None)

    @staticmethod
    def _made(order: tuple, stages: dict[str, list[Copy]], part: tuple | None) -> tuple:
        """A group's kept tuple from its copies per stage (``part``: the
        rebuild stage's file part, counted already; the other stages empty)."""
        rebuild = stages["rebuild"]
        maps = False
        unmapped = 0
        for c in rebuild:       # savings.has_cache_maps, and the copies without their map
            managed = c.managed
            if managed is not None:
                if managed[1] is None:
                    unmapped += 1
                elif managed[0]:
                    maps = True
            if c.image and c.page_map is not None:
                maps = True
        # the copies are kept only where potential() reads them (cache
        # page maps): most groups keep their parts and their copies' devs
        parts = _stage_parts(stages) if part is None else (part, None, None)
        return (order, stages if maps else None, parts, maps, unmapped,
                tuple([c.key[0] for c in rebuild]))

    def _account(self, g: tuple, sign: int) -> None:
        _, _, file_parts, _, unmapped, devs = g
        for stage, part in zip(STAGES, file_parts):
            if part is not None:
                _add_part(self.file_part[stage], part, sign)
        self.unmapped += sign * unmapped
        self._count_devs(devs, sign)

    def _count_devs(self, devs: tuple[int, ...], sign: int) -> None:
        for dev in devs:
            n = self.dev_count.get(dev, 0) + sign
            if n:
                self.dev_count[dev] = n
            else:
                del self.dev_count[dev]

    def _reaccount(self, old: tuple, new: tuple) -> None:
        """_account(old, -1) then _account(new, +1), skipping what is equal
        (a group recomputed after one member changed: most of its parts and
        all of its devs are): the same sums."""
        for stage, a, b in zip(STAGES, old[2], new[2]):
            if a is b or a == b:
                continue
            total = self.file_part[stage]
            if a is None or b is None:
                if a is not None:
                    _add_part(total, a, -1)
                if b is not None:
                    _add_part(total, b, +1)
            else:
                _move_part(total, a, b)
        self.unmapped += new[4] - old[4]
        if old[5] != new[5]:
            self._count_devs(old[5], -1)
            self._count_devs(new[5], +1)

    def file_part_without(self, stage: str, gids: set[tuple]) -> Savings:
        """file_part[stage] less the groups ``gids``."""
        if not gids:
            return self.file_part[stage]
        out = Savings()
        out.add(self.file_part[stage])
        i = STAGES.index(stage)
        for gid in gids:
            part = self.groups[gid][2][i]
            if part is not None:
                _add_part(out, part, -1)
        return out


def _copy_key(k: tuple) -> tuple:
    """A Copy's key (dev, ino, mapping) -> the replay's inode key."""
    return ("s", k[2]) if k[2] else (k[0], k[1])


def _replay_world(log: ReadLog, cache: GroupCache, shared: list[Entry],
                  entries_on: Callable[[int], Iterable[Entry]], mounts: MountResolver,
                  content: ContentResolver, readings: Readings,
                  owned: dict[tuple, dict[int, int]],
                  stages_of: Callable[[tuple], dict[str, list[Copy]]]
                  ) -> tuple[World, dict[tuple, set[int]]]:
    """The World read_replay needs: the logged reads, every resident copy on
    the logged mounts (and on the mounts their groups and shared inodes
    span), the groups per stage.  Also returns gid -> the group's mounts.
    ``stages_of(gid)``: the group's copies per stage (GroupCache keeps them
    only for groups with cache page maps)."""
    devs = {r.dev for r in log.records}
    mapping_devs: dict[int, set[int]] = defaultdict(set)
    for r in log.records:
        if r.mapping:
            mapping_devs[r.mapping].add(r.dev)
    inodes: dict[tuple, Inode] = {}
    for e in shared:
        e_devs = {e.dev} | {d for d, _ in (e.touched or {})} | mapping_devs.get(e.shared_mapping, set())
        if e_devs & devs:
            inodes[("s", e.shared_mapping)] = Inode(("s", e.shared_mapping), frozenset(e_devs),
                                                   chunk_pages(e.union))
    group_devs: dict[tuple, set[int]] = {}
    group_stages: dict[tuple, dict[str, list[Copy]]] = {}
    linked = devs | {e.dev for e in shared if ("s", e.shared_mapping) in inodes}
    for gid, g in cache.groups.items():
        if not linked.intersection(g[5]):     # the copies' devs: none logged
            continue
        stages = group_stages[gid] = stages_of(gid)
        copies = stages["rebuild"]
        g_devs = {d for c in copies for d in (inodes[_copy_key(c.key)].devs if
                                                _copy_key(c.key) in inodes else (c.key[0],))}
        if g_devs & devs:
            group_devs[gid] = g_devs
            for c in copies:
                inodes.setdefault(_copy_key(c.key), Inode(_copy_key(c.key), frozenset({c.key[0]}),
                                                          chunk_pages(c.union)))
    held = {(d, i) for e in shared for d, i in (e.touched or {})}
    for dev in devs:
        for e in entries_on(dev):
            held.add((e.dev, e.ino))
            if (not e.shared_mapping and e.union and (e.dev, e.ino) not in inodes
                    and e.ino != MANAGED_CACHE_INO):    # the managed cache: checked apart
                inodes[(e.dev, e.ino)] = Inode((e.dev, e.ino), frozenset({e.dev}),
                                               chunk_pages(e.union),
                                               regular=e.info is None or e.info.regular)
    empty = {(r.dev, r.ino) for r in log.records if r.size == 0}

    def image_map(dev: int, ino: int) -> list[int] | None:
        # only files that hold cache now (so already resolved): resolving
        # another (a path lookup, a first walk of a mount nothing was read
        # from yet) would cache directories before the workload reads them
        if (dev, ino) in empty:
            return []
        if (dev, ino) not in held:
            return None
        return _image_list(content, mounts.by_dev(dev), ino)

    return World(
        records=log.records, inodes=list(inodes.values()),
        candidate=lambda d: _replayable(mounts.by_dev(d), readings),
        image_of=lambda d: image_key(mounts.by_dev(d)),
        image_map=image_map,
        image_sizes=readings.image_sizes, image_owners=owned, overflowed=log.overflowed,
        groups={stage: [[_copy_key(c.key) for c in group_stages[gid][stage]]
                        for gid in sorted(group_devs)] for stage in STAGES},
        zfile=_held_lookup(content, mounts, held, "zfile"),
        meta_pages=_held_lookup(content, mounts, held, "meta_pages"),
        meta_readahead=lambda d: getattr(mounts.by_dev(d), "backing", "") == "loop",
    ), group_devs


def _held_lookup(content: ContentResolver, mounts: MountResolver, held: set[tuple[int, int]],
                 name: str) -> Callable[[int, int], object]:
    """(dev, ino) -> the resolver's ``name``(mount, ino) for files that hold
    cache now (resolved already); None for others or resolvers without it."""
    fn = getattr(content, name, None)

    def get(dev: int, ino: int):
        m = mounts.by_dev(dev)
        if fn is None or m is None or (dev, ino) not in held:
            return None
        return fn(m, ino)
    return get


def _replayable(m: MountInfo | None, readings: Readings) -> bool:
    """Plain file-backed and loop mounts with a known image size, and block
    devices (no image cache) of uncompressed images; compressed images on
    file-backed mounts only.  (A compressed file is replayed only where
    ``World.zfile`` knows its extents.)"""
    if m is None or m.image is None or (m.image.compressed and m.backing != "file"):
        return False
    return m.backing == "block" or (m.backing in ("file", "loop") and not m.image_offset and (
        (m.backing_dev, m.backing_ino) in readings.image_sizes))


def _image_list(content: ContentResolver, m: MountInfo | None, ino: int) -> list[int] | None:
    info = content.file_info(m, ino) if m is not None else None
    if info is None or info.aops == AOPS_COMPRESSED:
        return None
    return page_list(_page_map(content, m, ino), info.size)


def node_savings(cache: GroupCache, shared: list[Entry],
                 others_on: Callable[[set[int]], Iterable[Entry]],
                 owned: dict[tuple, dict[int, int]], readers: dict[tuple, set[int]],
                 mounts: MountResolver, content: ContentResolver, health: Health,
                 replay: ReplaySaved | None = None,
                 replay_groups: dict[tuple, set[int]] | None = None,
                 entries_on: Callable[[int], Iterable[Entry]] | None = None,
                 stages_of: Callable[[tuple], dict[str, list[Copy]]] | None = None,
                 changed_files: set[tuple] | None = None,
                 other_at: Callable[[int, int], Entry | None] | None = None) -> Saved:
    """Potential (stock mounts) and realized (inode_share) savings: savings.py,
    or read_replay.py for the mounts ``replay`` explains (``replay_groups``:
    gid -> its mounts).
    ``others_on(devs)``: the live non-shared entries on those devs outside
    every mergeable group; ``changed_files``: the files, (dev, ino), whose
    entries changed since the last call with this ``cache`` (None: any);
    ``other_at(dev, ino)``: that file's entry if it is one of others_on's
    (None: else; without it, a dev with a changed file is looked at whole)."""
    replay = replay or ReplaySaved()
    explained = replay.explained_devs
    done = {gid for gid, devs in (replay_groups or {}).items() if devs <= explained}
    shared_left = [e for e in shared if not _explained_shared(e, explained)]
    devs = set(cache.dev_count) | {d for e in shared for d, _ in (e.touched or {})}
    other_kept = _kept_others(cache, devs, changed_files, others_on, other_at, content)
    cache_parts = cache.cache_part.update(cache.groups, cache.with_maps, cache.changed, done,
                                          owned, readers, other_kept,
                                          cache.other.take_flipped())
    cache.changed = set()
    out = Saved(*(_potential(cache.file_part_without(stage, done), cache_parts[stage])
                  for stage in STAGES))
    for stage, part in zip(STAGES, (out.potential, out.potential_now, out.potential_domains)):
        if stage in replay.potential:
            part.add(replay.potential[stage])
    out.realized_file_pages = replay.realized_file_pages
    out.realized_image_pages = replay.realized_image_pages
    realized_groups = []
    for e in shared_left:
        if e.touched is None:       # no per-member pages: every member in use holds all
            out.realized_file_pages += e.resident_pages() * max(0, e.used_members - 1)
            continue
        out.realized_file_pages += realized_file_pages(e.union, e.touched)

        def managed_of(mem):
            mm = _managed_map(content, mounts.by_dev(mem[0]), mem[1])
            return None if mm is None else (managed_key(mem[0]), mm)
        realized_groups.append(touched_copies(
            e.union, e.touched, lambda mem: image_key(mounts.by_dev(mem[0])),
            lambda mem: _page_map(content, mounts.by_dev(mem[0]), mem[1]), managed_of))
    image, compressed = realized_cache_pages(realized_groups, owned, readers, other_kept)
    out.realized_image_pages += image
    out.realized_compressed_pages = replay.realized_compressed_pages + compressed
    if entries_on is not None and stages_of is not None:
        _add_packed(out, cache, shared, devs - explained, entries_on, stages_of, mounts, content)
    if cache.unmapped:
        health.warnings.append(f"{cache.unmapped} compressed file copies could not be mapped to "
                               f"their compressed clusters (unreadable or damaged index; "
                               f"dump.erofs missing for a layout erofs-top does not decode): "
                               f"their compressed-data cache is not in the savings")
    return out


def _kept_others(cache: GroupCache, devs: set[int], changed_files: set[tuple] | None,
                 others_on: Callable[[set[int]], Iterable[Entry]],
                 other_at: Callable[[int, int], Entry | None] | None,
                 content: ContentResolver) -> dict[tuple, dict[int, int]]:
    """The pages the files outside every group on ``devs`` need, per cache
    (OtherKept: looked at again for the files that changed, those given
    and the copies of the groups with maps re-made, only)."""
    changed: dict[int, set[int]] | None = None
    if changed_files is not None:
        changed = {}
        for dev, ino in chain(changed_files, cache.changed_files):
            changed.setdefault(dev, set()).add(ino)
    cache.changed_files = set()
    if not has_page_maps(content):
        return {}
    return cache.other.update(devs, changed, lambda dev: others_on({dev}),
                              lambda e: _file_needs(e, content), other_at)


def _potential(file_part: Savings, cache_part: tuple) -> Savings:
    """savings.potential() from its file part and its cache part
    (CachePart.update: image pages, compressed pages, by cgroup, by dev)."""
    out = Savings()
    out.add(file_part)
    out.image_pages, out.compressed_pages, by_cgroup, by_dev = cache_part
    for mine, theirs in ((out.by_cgroup, by_cgroup), (out.by_dev, by_dev)):
        for k, v in theirs.items():
            mine[k] += v
    return out


def _add_packed(out: Saved, cache: GroupCache, shared: list[Entry], devs: set[int],
                entries_on: Callable[[int], Iterable[Entry]],
                stages_of: Callable[[tuple], dict[str, list[Copy]]],
                mounts: MountResolver, content: ContentResolver) -> None:
    """The packed inodes' pages (fragments images) into the file part, their
    clusters in the compressed-data cache into the compressed part."""
    devs = devs | {e.dev for e in shared}
    packed = _packed_mounts(devs, mounts, content, entries_on)
    if not packed:
        return
    stock = {d: v for d, v in packed.items() if not v[0].inode_share}
    share = {d: v for d, v in packed.items() if v[0].inode_share}
    for stage, s in packed_potential(stock, cache, stages_of, content).items():
        {"rebuild": out.potential, "now": out.potential_now,
         "domains": out.potential_domains}[stage].add(s)
    pages, clusters = packed_realized(share, shared, content)
    out.realized_file_pages += pages
    out.realized_compressed_pages += clusters


def _explained_shared(e: Entry, explained: set[int]) -> bool:
    return bool(explained) and e.dev in explained and all(
        d in explained for d, _ in (e.touched or {}))


def replayed_savings(log: ReadLog, cache: GroupCache, shared: list[Entry],
                     entries_on: Callable[[int], Iterable[Entry]], mounts: MountResolver,
                     content: ContentResolver, readings: Readings,
                     owned: dict[tuple, dict[int, int]], health: Health,
                     stages_of: Callable[[tuple], dict[str, list[Copy]]]
                     ) -> tuple[ReplaySaved, dict[tuple, set[int]]]:
    """read_replay.replay_savings() of the read log (nothing without one)."""
    if log.warning:
        health.warnings.append(log.warning)
        log.warning = ""
    if not log.records:
        return ReplaySaved(), {}
    world, group_devs = _replay_world(log, cache, shared, entries_on, mounts, content,
                                      readings, owned, stages_of)
    if log.replays_of != log.generation:    # the same reads replay once
        log.replays, log.replays_of = {}, log.generation
    world.memo = log.replays
    return replay_savings(world), group_devs


def _packed_mounts(devs: Iterable[int], mounts: MountResolver, content: ContentResolver,
                   entries_on: Callable[[int], Iterable[Entry]]) -> dict[int, tuple]:
    """dev -> (mount, the packed inode's entry, the compressed-data cache's
    entry (each None when it holds no page), the dev's other file entries)
    for the mounts of images with fragments: inode_share ones, and stock ones
    whose packed inode holds pages."""
    fn = getattr(content, "packed_nid", None)
    out: dict[int, tuple] = {}
    if fn is None:          # a resolver that knows no packed inode (no mount looked up)
        return out
    for dev in devs:
        m = mounts.by_dev(dev)
        nid = fn(m) if (fn is not None and m is not None) else 0
        if not nid:
            continue
        packed = managed = None
        files = []
        for e in entries_on(dev):
            if e.shared_mapping or not e.union:
                continue
            if e.ino == nid:
                packed = e
            elif e.ino == MANAGED_CACHE_INO:
                managed = e
            else:
                files.append(e)
        # an inode_share mount may hold no packed page at all: every fragment
        # it read went through another member's packed inode
        if packed is not None or m.inode_share:
            out[dev] = (m, packed, managed, files)
    return out


def _packed_needed(m: MountInfo, reads: Iterable[tuple[int, dict[int, int]]],
                   content: ContentResolver) -> tuple[set[int], set[int]]:
    """The packed pages and the compressed-cache pages a mount needs for the
    fragments of the files it reads (``reads``: (ino, file pages read
    through this mount))."""
    ranges = []
    for ino, chunks in reads:
        frag = content.fragment(m, ino)
        if frag is not None and fragments.reads_fragment(chunks, frag):
            ranges.append((frag[1], frag[2]))
    extents = content.packed_extents(m)
    pages = fragments.needed_pages(ranges, extents)
    return pages, fragments.needed_clusters(pages, extents)


def _owners(e: Entry | None) -> dict[int, int]:
    """Resident page -> the cgroup it is charged to."""
    out: dict[int, int] = {}
    for c, per_cg in (owners_by_chunk(e) if e is not None else {}).items():
        for cg, mask in per_cg.items():
            for p in range(CHUNK_PAGES):
                if mask >> p & 1:
                    out[c * CHUNK_PAGES + p] = cg
    return out


def _kept_by_copy(gids: list[tuple], stage: str,
                  stages_of: Callable[[tuple], dict[str, list[Copy]]]) -> dict[tuple, dict]:
    """(dev, ino) -> the pages that copy keeps with sharing on (in stage)."""
    kept: dict[tuple, dict[int, int]] = {}
    for gid in gids:
        members = sorted(stages_of(gid)[stage], key=lambda c: not c.fingerprinted)
        for c, mine in zip(members, fragments.kept_pages([c.union for c in members])):
            kept[c.key[:2]] = mine
    return kept


def _count_saved(s: Savings, saved: dict[int, int], dev: int, compressed: bool) -> None:
    if compressed:
        s.compressed_pages += len(saved)
    else:
        s.file_pages += len(saved)
    for cg in saved.values():
        s.by_cgroup[cg] += 1
    if saved:
        s.by_dev[dev] += len(saved)


def packed_potential(stock: dict[int, tuple], cache: GroupCache,
                     stages_of: Callable[[tuple], dict[str, list[Copy]]],
                     content: ContentResolver) -> dict[str, Savings]:
    """Stock mounts: per stage, the packed pages (and their clusters in the
    compressed-data cache) that the fragments of the copies giving up all
    their pages needed and those the mount still reads itself do not."""
    out = {stage: Savings() for stage in STAGES}
    if not stock:
        return out
    gids = [gid for gid, g in cache.groups.items() if set(g[5]) & stock.keys()]
    for stage in STAGES:
        kept = _kept_by_copy(gids, stage, stages_of)
        for dev, (m, packed, managed, files) in stock.items():
            every = _packed_needed(m, ((e.ino, e.union) for e in files), content)
            still = _packed_needed(m, ((e.ino, kept.get((dev, e.ino), e.union)) for e in files),
                                   content)
            # only pages some resident file's fragment explains: the others stay
            saved = fragments.saved_pages(_owners(packed), still[0], every[0])
            saved_clusters = fragments.saved_pages(_owners(managed), still[1], every[1])
            _count_saved(out[stage], saved, dev, False)
            _count_saved(out[stage], saved_clusters, dev, True)
            if stage == "rebuild" and m.image and m.image.ishare_xattrs:
                out[stage].now_file_pages += len(saved)
    return out


def packed_realized(shared_mounts: dict[int, tuple], shared: list[Entry],
                    content: ContentResolver) -> tuple[int, int]:
    """inode_share mounts: the packed pages (and compressed-cache pages) each
    would hold without sharing (for the fragments of every file its readers
    touched, shared or not) that it does not hold."""
    pages = clusters = 0
    for dev, (m, packed, managed, files) in shared_mounts.items():
        reads = [(e.ino, e.union) for e in files]
        for e in shared:
            reads.extend((ino, chunks) for (d, ino), chunks in (e.touched or {}).items()
                         if d == dev)
        need_pages, need_clusters = _packed_needed(m, reads, content)
        pages += fragments.kept_out(_owners(packed), need_pages)
        clusters += fragments.kept_out(_owners(managed), need_clusters)
    return pages, clusters
