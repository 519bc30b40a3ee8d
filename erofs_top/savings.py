"""What page-cache sharing saves (inode_share mounts) or would save (stock
mounts), page by page, in the page cache the kernel charges.  Pure: called by
erofs_top.aggregate with its entries; docs/sharing.md has the rules and a
worked example each.

Rules (the kernel's, fs/erofs/ishare.c):
- Without sharing every EROFS inode caches the pages its readers touched; with
  it, one shared inode per content caches them once.  A page saves only where
  another resident copy of the same content page would otherwise be held:
  per content page, holders - 1 (intersection of page sets, not user counts).
- Readers through one mount use one inode, shared or not: no saving.
- splice/sendfile readers of an inode_share mount read the member inode's own
  cache (``.splice_read = filemap_splice_read``): they touch no shared page.
- Sharing needs the same data path (aops class) and, to happen now, images
  with fingerprints (``mkfs.erofs --xattr-inode-digest``); copies on images
  without them save only after a rebuild (stage "rebuild").
- File-backed and loop mounts read the image file through the host page cache,
  charged to the reader: with sharing, the shared inode reads through ONE
  member's image, so the other members' image pages for that content are not
  read.  Image pages that other resident files of the same image need, the
  page of each copy's own inode (its mount's lookup reads it, and with it an
  inline tail or pcluster beside it), and pages charged to cgroups that do
  not read the mount (a warm image), stay.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from itertools import chain
from typing import Callable, Iterable

from .readings import CHUNK_PAGES

PageMap = dict[int, tuple[int, ...]]      # file page -> image-file pages


@dataclass
class Savings:
    """Pages saved, split by where they sit.  ``by_cgroup``: the cgroups that
    would stop paying (potential) for the file pages and image pages counted."""
    file_pages: int = 0                 # EROFS inode pages
    image_pages: int = 0                # the image file's own cache
    compressed_pages: int = 0           # the mounts' compressed-data (managed) cache
    now_file_pages: int = 0             # of file_pages: images already carry fingerprints
    by_cgroup: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    by_dev: dict[int, int] = field(default_factory=lambda: defaultdict(int))   # copies' mounts

    @property
    def pages(self) -> int:
        return self.file_pages + self.image_pages + self.compressed_pages

    def add(self, other: "Savings", sign: int = 1) -> None:
        """Add (sign -1: subtract) another Savings; zero entries are dropped."""
        self.file_pages += sign * other.file_pages
        self.image_pages += sign * other.image_pages
        self.compressed_pages += sign * other.compressed_pages
        self.now_file_pages += sign * other.now_file_pages
        for mine, theirs in ((self.by_cgroup, other.by_cgroup), (self.by_dev, other.by_dev)):
            for k, v in theirs.items():
                n = mine.get(k, 0) + sign * v
                if n:
                    mine[k] = n
                else:
                    mine.pop(k, None)


@dataclass(slots=True)
class Copy:
    """One cached copy of some content, as the savings code needs it."""
    key: tuple                          # unique per copy (the aggregator's entry key)
    union: dict[int, int]               # chunk -> resident mask
    owners: dict[int, dict[int, int]] | None  # chunk -> cgroup -> mask (or an int: see owner)
    image: tuple[int, int] | None       # (host dev, image ino) of a file/loop mount
    page_map: PageMap | None            # file page -> image pages (None: unknown)
    fingerprinted: bool                 # its image carries --xattr-inode-digest xattrs
    # compressed files: (("managed", sb dev), file page -> compressed-cache pages)
    managed: tuple[tuple, PageMap | None] | None = None
    # the image page holding its on-disk inode (-1: unknown): the mount's
    # lookup reads it (erofs_read_inode) whatever sharing does
    inode_page: int = -1
    owner: int | None = None            # the one cgroup of every page (Entry.owner)


def _as_managed(c: Copy) -> Copy:
    """The copy seen through its mount's compressed-data cache instead of its
    image file: the same rules apply to both caches."""
    key, pm = c.managed or (None, None)
    return replace(c, image=key, page_map=pm, inode_page=-1)    # inodes are not in it


def _pages_of(mask: int, chunk: int) -> Iterable[int]:
    base = chunk * CHUNK_PAGES
    while mask:
        low = mask & -mask
        yield base + low.bit_length() - 1
        mask ^= low


def _file_pages(members: list[Copy], out: Savings,
                removed: dict[tuple, dict[int, int]] | None) -> None:
    """Per content page, every resident copy after the first is saved; the
    first holder in ``members`` order keeps it.  Fills ``removed`` (if given)."""
    file_pages, now_file_pages = _file_counts(members, out.by_cgroup, out.by_dev, removed)
    out.file_pages += file_pages
    out.now_file_pages += now_file_pages


def _file_counts(members: list[Copy], by_cgroup: dict[int, int], by_dev: dict[int, int],
                 removed: dict[tuple, dict[int, int]] | None) -> tuple[int, int]:
    """_file_pages into plain dicts: adds to ``by_cgroup``/``by_dev`` (never
    a zero count), returns (file pages, now file pages)."""
    rows = [(m.union, m.fingerprinted, m.key, m.owners, m.owner) for m in members]
    if members:
        first = rows[0][0]
        for r in rows:
            if r[0] is not first and r[0] != first:
                break
        else:
            return _same_pages(rows, by_cgroup, by_dev, removed)
    chunks = set().union(*(m.union.keys() for m in members))
    file_pages = now_file_pages = 0
    for c in chunks:
        held = 0
        held_fp = 0
        for union, fingerprinted, key, owners_of, owner in rows:
            mask = union.get(c, 0)
            gone = mask & held
            held |= mask
            if fingerprinted:
                now_file_pages += (mask & held_fp).bit_count()
                held_fp |= mask
            if not gone:
                continue
            if removed is not None:
                removed.setdefault(key, {})[c] = gone
            n = gone.bit_count()
            file_pages += n
            by_dev[key[0]] = by_dev.get(key[0], 0) + n
            if owner is not None:       # every page is its
                by_cgroup[owner] = by_cgroup.get(owner, 0) + n
                continue
            owners = owners_of.get(c)
            if owners is not None:
                gone_by_cgroup(owners, mask, gone, n, by_cgroup)
    return file_pages, now_file_pages


def gone_by_cgroup(owners: dict[int, int], mask: int, gone: int, n: int,
                   by_cgroup: dict[int, int]) -> None:
    """Add the pages ``gone`` (n of them) of a chunk whose resident pages are
    ``mask`` to the cgroups that inserted them (``owners``: cgroup -> mask)."""
    if len(owners) == 1:
        for cg, om in owners.items():
            n = n if om == mask else (om & gone).bit_count()
            if n:
                by_cgroup[cg] = by_cgroup.get(cg, 0) + n
        return
    for cg, om in owners.items():
        n = (om & gone).bit_count()
        if n:
            by_cgroup[cg] = by_cgroup.get(cg, 0) + n


def _same_pages(rows: list[tuple], by_cgroup: dict[int, int], by_dev: dict[int, int],
                removed: dict[tuple, dict[int, int]] | None) -> tuple[int, int]:
    """_file_counts where every copy holds the same pages (the usual case):
    every copy after the first gives up all of them."""
    pages = sum(m.bit_count() for m in rows[0][0].values())
    if not pages:
        return 0, 0
    fingerprinted = sum(1 for r in rows if r[1])
    for union, _, key, owners_of, owner in rows[1:]:
        if removed is not None:
            removed[key] = dict(union)
        by_dev[key[0]] = by_dev.get(key[0], 0) + pages
        if owner is not None:
            by_cgroup[owner] = by_cgroup.get(owner, 0) + pages
            continue
        for owners in owners_of.values():       # each owner's pages are within the union
            for cg, om in owners.items():
                if om:
                    by_cgroup[cg] = by_cgroup.get(cg, 0) + om.bit_count()
    return (len(rows) - 1) * pages, max(0, fingerprinted - 1) * pages


def mapped_pages(pm) -> Iterable[int]:
    """Every cache page a page map (file page -> pages) names, repeats
    included; a run of pages (resolve.superblock.RunPageMap: most files)
    as a range, not a tuple per page."""
    if pm.__class__ is dict:
        return chain.from_iterable(pm.values())
    run = getattr(pm, "page_run", None)
    return run() if run is not None else chain.from_iterable(pm.values())


def _held(image, page_map, owned, readers) -> int:
    """How many of a copy's image pages are charged to the image's readers."""
    pages = owned.get(image, {}) if image else {}
    rd = readers.get(image, ())
    return sum(1 for p in mapped_pages(page_map or {}) if pages.get(p) in rd)


def image_candidates(members: list[Copy], owned: dict[tuple, dict[int, int]],
                     readers: dict[tuple, set[int]], *, resident: bool
                     ) -> tuple[dict[tuple, dict[int, int]], dict[tuple, set[int]]]:
    """Image pages one content group would stop reading, and those it keeps.

    Per file page: the members whose image holds that page (``resident``:
    charged to a reader of that image; else: NOT resident, i.e. sharing kept it
    out) are its holders; one keeps it, the others' image pages are candidates.
    Returns ({image: {page: (owner cgroup, copy's dev)}}, {image: pages kept})."""
    mapped = [m for m in members if m.image and m.page_map is not None]
    cand: dict[tuple, dict[int, int]] = defaultdict(dict)
    kept: dict[tuple, set[int]] = defaultdict(set)
    for m in mapped:        # an inline pcluster or tail shares its inode's page
        if m.inode_page >= 0:
            kept[m.image].add(m.inode_page)
    if len(mapped) < 2:
        for m in mapped:
            kept[m.image].update(mapped_pages(m.page_map))
        return cand, kept
    # a cache page this content pulled in through an image is charged to a
    # cgroup holding pages of a copy read through that image: pages charged
    # to anyone else (the image's writer, a reader of other files only) stay
    # cached whatever sharing does
    by_image: dict[tuple, set[int]] = defaultdict(set)
    for m in mapped:
        by_image[m.image] |= _file_holders(m)
    classes = _same_map_classes(mapped, owned, by_image, readers)
    # the keeper, whose image the shared inode would read through: the copy
    # with the most of its image pages charged to the image's readers, the
    # first of those (a class's copies hold alike: its first copy)
    keeper_class = max(classes, key=lambda c: _held(c.image, c.page_map, owned, readers))
    for fpage in set().union(*(c.page_map.keys() for c in classes)):
        holders, read_through = [], False
        for c in classes:
            ps = c.page_map.get(fpage, ())
            if resident:
                hit = [p for p in ps if c.owned.get(p) in c.mine]
            else:
                hit = [p for p in ps if p not in c.owned]
                read_through |= len(hit) < len(ps)
            if hit:
                holders.append((c, hit))
            else:
                kept[c.image].update(ps)
        if holders:
            _hold(holders, None if read_through else keeper_class, cand, kept)
    return cand, kept


class _MapClass:
    """The copies of one group that read one page map through one image
    (mounts of the same image: every container of an image its own mount):
    what one file page gives one of them, it gives each; ``rows``: their
    indexes in the group's order."""
    __slots__ = ("image", "page_map", "owned", "mine", "rows", "copies")

    def __init__(self, image, page_map, owned, mine):
        self.image, self.page_map, self.owned, self.mine = image, page_map, owned, mine
        self.rows: list[int] = []
        self.copies: list[Copy] = []


def _same_map_classes(mapped: list[Copy], owned, by_image, readers) -> list[_MapClass]:
    """The copies grouped by (image, page map), in the order of their first
    copy; each with what the walk reads of its image, looked up once."""
    mine_of = {img: cgs & readers.get(img, set()) for img, cgs in by_image.items()}
    classes: dict[tuple, _MapClass] = {}
    for i, m in enumerate(mapped):
        key = (m.image, id(m.page_map))
        c = classes.get(key)
        if c is None:
            c = classes[key] = _MapClass(m.image, m.page_map, owned.get(m.image, {}),
                                         mine_of[m.image])
        c.rows.append(i)
        c.copies.append(m)
    return list(classes.values())


def _hold(holders: list[tuple[_MapClass, list[int]]], keeper: _MapClass | None,
          cand: dict, kept: dict) -> None:
    """One file page's holders (classes in order, the pages each holds):
    one copy keeps its pages (the keeper if it holds them, else the first
    holder; none when ``keeper`` is None: another image already served
    them), every other holding copy's pages are candidates, each page
    naming the dev of the last copy (in group order) that gave it up, as
    one copy at a time would leave it.  ``keeper``: the keeper's class."""
    keep_class = None
    if keeper is not None:      # (classes are in the order of their first copy)
        keep_class = next((c for c, _ in holders if c is keeper), holders[0][0])
    gives: list[tuple[int, int, _MapClass, list[int], int]] = []   # (first, last, class, hit, dev)
    for c, hit in holders:
        # the copies that give up: all but keep, which is its class's first
        # (a class's copies hold alike; the keeper is the first of the most)
        rows, lo = c.rows, 0
        if c is keep_class:
            kept[c.image].update(hit)
            lo = 1
        if lo < len(rows):
            gives.append((rows[lo], rows[-1], c, hit, c.copies[-1].key[0]))
    if len(gives) > 1:      # first writes in group order, the last writer's value wins
        gives.sort(key=lambda g: g[0])
        for _, _, c, hit, dev in gives:
            mine = cand[c.image]
            for p in hit:
                mine[p] = None
        gives.sort(key=lambda g: g[1])
    for _, _, c, hit, dev in gives:
        mine, owners = cand[c.image], c.owned
        for p in hit:
            mine[p] = (owners.get(p, 0), dev)


def _file_holders(m: Copy) -> set[int]:
    """The cgroups holding resident pages of this copy."""
    if m.owner is not None:
        return {m.owner}
    return {cg for per_cg in m.owners.values() for cg in per_cg}


def _fingerprinted_first(m: Copy) -> bool:
    return not m.fingerprinted


def group_file_savings(members: list[Copy]) -> Savings:
    """The EROFS-page part of potential() for one group (it depends on that
    group alone: the aggregator keeps it per group between refreshes)."""
    out = Savings()
    _file_pages(sorted(members, key=_fingerprinted_first), out, None)
    return out


def group_file_part(members: list[Copy]) -> tuple:
    """group_file_savings() as the flat tuple the aggregator keeps per group
    and stage (node_savings.GroupCache): (file pages, 0, 0, now file pages,
    (cg, pages, ...), (dev, pages, ...)), zero counts left out (_file_counts
    adds none)."""
    if any(m.fingerprinted for m in members):
        members = sorted(members, key=_fingerprinted_first)
    by_cgroup: dict[int, int] = {}
    by_dev: dict[int, int] = {}
    file_pages, now_file_pages = _file_counts(members, by_cgroup, by_dev, None)
    return (file_pages, 0, 0, now_file_pages, tuple(chain.from_iterable(by_cgroup.items())),
            tuple(chain.from_iterable(by_dev.items())))


def has_cache_maps(members: list[Copy]) -> bool:
    """Whether a group takes part in the cache (image / compressed) part of
    potential(): a member with a page map of either cache."""
    return any((m.image and m.page_map is not None)
               or (m.managed is not None and m.managed[0] and m.managed[1] is not None)
               for m in members)


def potential(groups: list[list[Copy]], owned: dict[tuple, dict[int, int]],
              readers: dict[tuple, set[int]], other_kept: dict[tuple, set[int]],
              file_part: Savings | None = None) -> Savings:
    """What inode_share would save on stock mounts.  ``groups``: copies of one
    content in one aops class (shared inodes excluded); ``owned``/``readers``/
    ``other_kept`` are keyed by cache: an image file (host dev, ino) or a
    mount's compressed-data cache ("managed", dev); ``other_kept``: pages that
    resident files outside every group need.  ``file_part``: the sum of
    group_file_savings() over all groups, when the caller kept it; ``groups``
    may then hold only the groups with has_cache_maps()."""
    out = Savings()
    # fingerprinted copies first: with sharing on, they are the ones that merge now
    groups = [sorted(members, key=_fingerprinted_first) for members in groups]
    if file_part is None:
        for members in groups:
            _file_pages(members, out, {})
    else:
        out.add(file_part)
    out.image_pages = _cache_pages(groups, owned, readers, other_kept, out, resident=True)
    out.compressed_pages = _cache_pages([[_as_managed(c) for c in g] for g in groups],
                                        owned, readers, other_kept, out, resident=True)
    return out


def _cache_pages(groups: list[list[Copy]], owned, readers, other_kept, out: Savings, *,
                 resident: bool) -> int:
    cand: dict[tuple, dict[int, int]] = defaultdict(dict)
    kept: dict[tuple, set[int]] = defaultdict(set, {k: set(v) for k, v in other_kept.items()})
    for members in groups:
        c, k = image_candidates(members, owned, readers, resident=resident)
        for img, pages in c.items():
            cand[img].update(pages)
        for img, pages in k.items():
            kept[img] |= pages
    return _count_images(cand, kept, out)


def _count_images(cand: dict[tuple, dict[int, int]], kept: dict[tuple, set[int]],
                  out: Savings) -> int:
    n = 0
    for img, pages in cand.items():
        keep = kept.get(img, set())
        for p, (cg, dev) in pages.items():
            if p not in keep:
                n += 1
                out.by_cgroup[cg] += 1
                out.by_dev[dev] += 1
    return n


RA_PAGES = 32         # VM_READAHEAD_PAGES: the default read_ahead_kb (128 KiB), 4 KiB pages


def init_ra_pages(req: int, max_pages: int = RA_PAGES) -> int:
    """mm/readahead.c get_init_ra_size(): the window a first read of ``req``
    pages at the start of a file reads."""
    size = 1 << max(0, (req - 1).bit_length())       # roundup_pow_of_two
    if size <= max_pages // 32:
        return size * 4
    if size <= max_pages // 4:
        return size * 2
    return max(max_pages, req)


def with_readahead(chunks: dict[int, int]) -> dict[int, int]:
    """What a member's own inode would have cached for the pages its readers
    touched: on the shared inode, a reader that finds pages cached triggers
    no readahead, on its own inode it would have.  Each run of touched pages
    is one read stream (mm/readahead.c): a short one gets the initial window
    (``get_init_ra_size``: 4x a 1-page read), a longer one one more async
    window (``ra_pages``) past its end."""
    touched = sorted(p for c, m in chunks.items() for p in _pages_of(m, c))
    out = dict(chunks)
    i = 0
    while i < len(touched):
        j = i
        while j + 1 < len(touched) and touched[j + 1] == touched[j] + 1:
            j += 1
        start, run = touched[i], j - i + 1
        if run >= RA_PAGES:
            end = start + run + RA_PAGES
        elif start == 0:
            end = init_ra_pages(run)
        else:
            end = start + run
        for p in range(start + run, end):
            out[p // CHUNK_PAGES] = out.get(p // CHUNK_PAGES, 0) | 1 << (p % CHUNK_PAGES)
        i = j + 1
    return out


def realized_file_pages(union: dict[int, int], touched: dict[tuple, dict[int, int]]) -> int:
    """Shared inode: per resident page, the members that touched it - 1."""
    saved = 0
    touched = {m: with_readahead(chunks) for m, chunks in touched.items()}
    for c, res in union.items():
        any_mask = 0
        total = 0
        for chunks in touched.values():
            m = chunks.get(c, 0) & res
            total += m.bit_count()
            any_mask |= m
        saved += total - any_mask.bit_count()
    return saved


def touched_copies(union: dict[int, int], touched: dict[tuple, dict[int, int]],
                   image_of: Callable[[tuple], tuple | None],
                   map_of: Callable[[tuple], PageMap | None],
                   managed_of: Callable[[tuple], tuple | None] = lambda m: None) -> list[Copy]:
    """The members of a shared inode as copies holding what they touched (for
    the image-file part of the realized saving)."""
    out = []
    for member, chunks in sorted(touched.items()):
        mine = {c: m & union.get(c, 0) for c, m in chunks.items() if m & union.get(c, 0)}
        if not mine:
            continue
        pages = {p for c, m in mine.items() for p in _pages_of(m, c)}

        def only_touched(pm):
            return None if pm is None else {p: v for p, v in pm.items() if p in pages}
        managed = managed_of(member)
        out.append(Copy(key=member, union=mine, owners={}, image=image_of(member),
                        page_map=only_touched(map_of(member)), fingerprinted=True,
                        managed=None if managed is None else
                        (managed[0], only_touched(managed[1]))))
    return out


def realized_cache_pages(groups: list[list[Copy]], owned: dict[tuple, dict[int, int]],
                         readers: dict[tuple, set[int]],
                         other_kept: dict[tuple, set[int]]) -> tuple[int, int]:
    """(image-file pages, compressed-cache pages) that sharing saves now.

    Image files: a buffered read always caches what it reads, so the other
    members' image pages for content pages they touched that are not resident
    are what sharing kept out (a resident one, warm or read another way,
    saved nothing).  The compressed-data cache keeps only some clusters
    (cache_strategy), so absence proves nothing there: each other member
    that touched a content page would have cached what the member read
    through holds for it."""
    out = Savings()
    image = _cache_pages(groups, owned, readers, other_kept, out, resident=False)
    return image, sum(_mirrored(g, owned, other_kept) for g in groups)


def _mirrored(members: list[Copy], owned: dict[tuple, dict[int, int]],
              other_kept: dict[tuple, set[int]]) -> int:
    managed = [_as_managed(c) for c in members]
    mapped = [m for m in managed if m.image and m.page_map is not None]
    if len(mapped) < 2:
        return 0
    saved: set[tuple] = set()
    for fpage in set().union(*(m.page_map.keys() for m in mapped)):
        held = [(m, [p for p in m.page_map.get(fpage, ()) if p in owned.get(m.image, {})])
                for m in mapped if fpage in m.page_map]
        through = next(((m, ps) for m, ps in held if ps), None)
        if through is None:
            continue
        for m, own in held:
            # its own clusters cached anyway, or needed by other files (dedupe,
            # fragments): no saving through this member
            if m is through[0] or own or any(
                    p in other_kept.get(m.image, ()) for p in m.page_map.get(fpage, ())):
                continue
            saved.update((m.key, p) for p in through[1])
    return len(saved)
