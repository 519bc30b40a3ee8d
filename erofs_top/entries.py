"""Entries: one per cached copy of file content (an EROFS inode, or a shared
inode), built from Readings.  The aggregator keeps them between refreshes and
rebuilds only those whose input changed (erofs_top/aggregate.py)."""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import chain
from operator import attrgetter

from .readings import PageChunk, SharedInode
from .resolve.base import AOPS_BLOCK, AOPS_FILEIO, ContentResolver, FileInfo, MountInfo
from .savings import gone_by_cgroup


class _Empty(Mapping):
    """A shared, read-only empty mapping (hashable, so a dataclass default)."""

    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0

    def __eq__(self, other) -> bool:      # Mapping's would copy both sides into dicts
        return self is other or (isinstance(other, Mapping) and not other)

    __hash__ = object.__hash__


NONE: Mapping = _Empty()


@dataclass(eq=False, slots=True)
class Entry:
    """One cached copy of file content: an EROFS inode, or a shared inode.
    Mappings that are mostly empty share NONE (read-only) until they are not;
    ``chunks`` may hold a PageChunk's own owners dict (never modified);
    ``union`` is never modified after it is filled: the copies of a content
    that hold the same pages share one, which is also their ``dup``, and
    entries of the usual pages (full chunks, a tail's first pages) share
    one across files (shared_union).
    ``owner``: when every resident page was inserted by one cgroup (most
    files) chunk_entry keeps only it, in ``chunks`` (an int there, not a
    dict: a dict per file less, and no slot of its own); ``owner`` reads it
    (None when ``chunks`` is a mapping); owners_by_chunk() gives the mapping
    either way.
    ``input`` (what it was built from: its PageChunks, or the SharedInode)
    is a slot of an InputEntry, SeededInputEntry or SharedEntry only: the
    entries of a source that builds its lists at each access (the probe
    source: Aggregator.lean_input) keep none, Entry.input is None (a class
    value).  12 slots: 128 B with pymalloc's rounding, not 144."""
    dev: int
    ino: int
    # chunk -> cg -> mask; or the one cgroup of every page (an int: ``owner``)
    chunks: dict[int, dict[int, int]] | int | None = field(default_factory=dict)
    # seeded (chunk -> mask of seeded pages): NONE, a class value; a file
    # with seeded pages (few) is a SeededEntry (a slot less in every other
    # entry: 144 B, not 160, with pymalloc's rounding)
    mount: MountInfo | None = None
    info: FileInfo | None = None
    content_key: str = ""
    union: dict[int, int] = field(default_factory=dict)   # chunk -> mask of resident pages
    dup: Mapping[int, int] = NONE     # chunk -> mask of duplicate pages
    in_group: bool = False            # in a mergeable group (savings)
    # the aggregator's per-file state, in the entry instead of dicts keyed by
    # the file (~40 B a key each at 250,000 files): what the aggregator's
    # indexes and sums count for its key (handed on to the entry that
    # replaces it: Aggregator._put): its size group, content group and
    # Contribution
    size_idx: int | None = None
    ckey_idx: str = ""
    contrib: object = None

    def resident_pages(self) -> int:
        return sum(m.bit_count() for m in self.union.values())

    @property
    def order(self) -> tuple[int, int, int]:
        """The canonical order of entries (groups, savings): never the map's order."""
        return (self.dev, self.ino, self.shared_mapping)

    @property
    def owner(self) -> int | None:
        """The one cgroup of every resident page (kept in ``chunks``), or None."""
        c = self.chunks
        return c if c.__class__ is int else None

    @owner.setter
    def owner(self, cg: int | None) -> None:
        if cg is not None:
            self.chunks = cg
        elif self.chunks.__class__ is int:
            self.chunks = None


# what only a shared inode's entry has (SharedEntry's slots): class values of
# every other entry (5 slots, 40 B, less in each of 250,000 entries); seeded
# masks: SeededEntry's slot
_SHARED_DEFAULTS = {"shared_mapping": 0, "users": NONE, "used_members": 0, "touched": None,
                    "input": None, "seeded": NONE}
for _name, _value in _SHARED_DEFAULTS.items():
    setattr(Entry, _name, _value)


@dataclass(eq=False, slots=True)
class SharedEntry(Entry):
    """The entry of a shared inode (full tier): an Entry and what only it has."""
    shared_mapping: int = 0           # != 0: a shared inode (full tier)
    users: Mapping[int, int] = NONE   # cg -> member inodes it used
    used_members: int = 0
    touched: dict[tuple[int, int], dict[int, int]] | None = None   # shared: member -> chunks
    input: SharedInode | None = None  # what it was built from (_read_shared compares it)


@dataclass(eq=False, slots=True)
class InputEntry(Entry):
    """A chunk entry and its input: the list of PageChunks it was built from
    (a source that keeps its lists: not lean_input)."""
    input: list[PageChunk] | None = None


@dataclass(eq=False, slots=True)
class SeededEntry(Entry):
    """The entry of a file some of whose pages are seeded (_any_chunk_entry)."""
    seeded: Mapping[int, int] = NONE                                 # chunk -> mask


@dataclass(eq=False, slots=True)
class SeededInputEntry(SeededEntry):
    """A SeededEntry and its input (InputEntry's)."""
    input: list[PageChunk] | None = None


# what chunk_entry / shared_entry derive of an entry's input, beside Entry's
# and SharedEntry's fields (a recheck compares them: aggregate._derived)
DERIVED_CLASS_VALUES = ("seeded",)


# the canonical order of entries (Entry.order), in C: sorts and bisects of groups
ORDER = attrgetter("dev", "ino", "shared_mapping")

def owners_by_chunk(e: Entry) -> dict[int, dict[int, int]]:
    """chunk -> cgroup -> mask of an entry, made from its union when it keeps
    only its one owner."""
    owner = e.chunks
    if owner.__class__ is not int:
        return owner
    return {c: {owner: m} for c, m in e.union.items()}


UNIONS_MAX = 4096          # shared_union: dicts kept before it starts anew
UNION_CHUNKS_MAX = 16      # shared_union: unions of more chunks are not shared
_UNIONS: dict[tuple, dict[int, int]] = {}


def shared_union(u: dict[int, int]) -> dict[int, int]:
    """One dict object for equal unions of the usual kind: every chunk's
    mask full or pages 0..n-1 (a file read whole, its tail chunk partly):
    most files of a node, whose unions then differ only by their chunks'
    number and the tail's pages.  A one-chunk union is a dict of ~220 B per
    file otherwise.  An entry's union is read only once filled (Entry's
    rule), so copies may share one; a union of any other masks is returned
    as it is.  The table starts anew once it holds UNIONS_MAX unions (no
    cost per entry; the unions entries hold stay theirs)."""
    if not u or len(u) > UNION_CHUNKS_MAX:
        return u
    key = tuple(u.items())
    got = _UNIONS.get(key)
    if got is not None:
        return got
    for m in u.values():
        if m & (m + 1):             # not pages 0..n-1 of its chunk (nor all 64)
            return u
    if len(_UNIONS) >= UNIONS_MAX:
        _UNIONS.clear()
    _UNIONS[key] = u
    return u


def _one_owner(chunks: dict[int, dict[int, int]]) -> int | None:
    """The cgroup that inserted every page of chunks (each chunk's single
    owner, the same one, a page or more each), else None."""
    owner = None
    for owners in chunks.values():
        if len(owners) != 1:
            return None
        for cg, m in owners.items():
            if not m or (owner is not None and cg != owner):
                return None
            owner = cg
    return owner


def group_chunks(chunks: list[PageChunk]) -> dict[tuple, list[PageChunk]]:
    """PageChunks by file (dev, ino), in the order read."""
    by_file: dict[tuple, list[PageChunk]] = {}
    for pc in chunks:
        k = (pc.dev, pc.ino)
        lst = by_file.get(k)
        if lst is None:
            by_file[k] = [pc]
        else:
            lst.append(pc)
    return by_file


_chunk_of = attrgetter("chunk")     # a PageChunk's chunk (in C: sorts, maps)


def same_input(old: list[PageChunk] | None, new: list[PageChunk]) -> bool:
    """The same PageChunks as last time (objects a source reuses, or equal
    ones), in any order (a map's order is arbitrary)."""
    if old is None or len(old) != len(new):
        return False
    for a, b in zip(old, new):
        if a is not b and a != b:
            break
    else:
        return True
    if len(new) == 1:
        return False
    if a.chunk == b.chunk:
        # (a changed file, the usual case) the pairs before a and b are
        # equal, so a and b are each list's next PageChunk of that chunk:
        # sorted (stable), they would face each other, or the chunks differ;
        # not the same either way, the other old PageChunks (cold) not read
        return False
    return sorted(old, key=_chunk_of) == sorted(new, key=_chunk_of)


def chunk_entry(dev: int, ino: int, pcs: list[PageChunk], keep: bool = True) -> Entry:
    """The entry of one file from its PageChunks; ``keep``: the list kept as
    its ``input`` (an InputEntry or SeededInputEntry; else an Entry or
    SeededEntry: the aggregator's rule for a lean_input source)."""
    e = _one_owner_entry(dev, ino, pcs, keep)
    if e is None:
        e = _many_owner_entry(dev, ino, pcs, keep)
        if e is None:
            return _any_chunk_entry(dev, ino, pcs, keep)
    return e


def _any_chunk_entry(dev: int, ino: int, pcs: list[PageChunk], keep: bool = True) -> Entry:
    """chunk_entry of any file: several cgroups, seeded pages, a chunk in
    more than one PageChunk (tests/unit/test_one_owner.py compares the two)."""
    chunks: dict[int, dict[int, int]] = {}
    seeded: dict[int, int] = {}
    borrowed: set[int] = set()      # chunks that hold a PageChunk's own owners dict
    for pc in pcs:
        c = pc.chunk
        owners = chunks.get(c)
        if owners is None and 0 not in pc.owners.values():
            chunks[c] = pc.owners        # read only from here on: most chunks
            borrowed.add(c)
        else:
            if owners is None:
                owners = chunks[c] = {}
            elif c in borrowed:          # a second PageChunk for this chunk: merge in a copy
                owners = chunks[c] = dict(owners)
                borrowed.discard(c)
            for cg, mask in pc.owners.items():
                if mask:
                    owners[cg] = owners.get(cg, 0) | mask
        if pc.seeded_mask:
            seeded[c] = seeded.get(c, 0) | pc.seeded_mask
    if keep:
        e = (SeededInputEntry(dev, ino, chunks, seeded=seeded, input=pcs) if seeded
             else InputEntry(dev, ino, chunks, input=pcs))
    else:
        e = SeededEntry(dev, ino, chunks, seeded=seeded) if seeded else Entry(dev, ino, chunks)
    _fill_union(e)
    if seeded and seeded == e.union:
        # every resident page seeded (a file read before the probes were
        # attached: most files of a node at start): the union itself, read
        # only as the union is, not a dict per file (~150 B each)
        e.seeded = e.union
    owner = _one_owner(chunks)
    if owner is not None:
        e.chunks = owner                # (e.owner)
    return e


def _one_owner_entry(dev: int, ino: int, pcs: list[PageChunk], keep: bool = True
                     ) -> Entry | None:
    """chunk_entry of most files, in one pass: one PageChunk per chunk, each
    inserted by the same one cgroup (pages in each), nothing seeded.  None
    for any other file (chunk_entry's general path)."""
    owner = None
    items: list[tuple[int, int]] = []
    for pc in pcs:
        owners = pc.owners
        if len(owners) != 1 or pc.seeded_mask:
            return None
        (cg, m), = owners.items()
        if not m or (owner is not None and cg != owner):
            return None
        owner = cg
        items.append((pc.chunk, m))
    if owner is None:
        return None
    # shared_union's table looked up by the items (the usual union: no dict
    # made; its keys are distinct chunks, so a chunk in two PageChunks misses)
    union = _UNIONS.get(tuple(items))
    if union is None:
        union = dict(items)
        if len(union) != len(items):        # a chunk in two PageChunks
            return None
        union = shared_union(union)
    if keep:                                # chunks: the owner
        return InputEntry(dev, ino, owner, union=union, input=pcs)
    return Entry(dev, ino, owner, union=union)


def _many_owner_entry(dev: int, ino: int, pcs: list[PageChunk], keep: bool = True
                      ) -> Entry | None:
    """chunk_entry of a file _one_owner_entry did not take, in one pass,
    when each chunk is in one PageChunk, nothing is seeded and no mask is
    empty (pages of several cgroups: 23 % of a synthetic node's files): its
    chunks are the PageChunks' own owners dicts.  (Its owner stays None:
    one owner of every page is _one_owner_entry's.)  None for any other
    file (_any_chunk_entry; tests/unit/test_one_owner.py compares them)."""
    chunks: dict[int, dict[int, int]] = {}
    union: dict[int, int] = {}
    for pc in pcs:
        owners, c = pc.owners, pc.chunk
        if pc.seeded_mask or c in chunks or 0 in owners.values():
            return None
        chunks[c] = owners
        if len(owners) == 1:        # the owner's mask itself, no new int
            for u in owners.values():
                union[c] = u
        elif owners:
            u = 0
            for m in owners.values():
                u |= m
            union[c] = u
    if keep:
        return InputEntry(dev, ino, chunks, union=shared_union(union), input=pcs)
    return Entry(dev, ino, chunks, union=shared_union(union))


def shared_entry(si: SharedInode) -> Entry:
    """Shared pages live on the pseudo_erofs superblock: keyed by mapping,
    named by a member."""
    members = sorted(si.members)
    dev, ino = members[0] if members else (0, 0)
    e = SharedEntry(dev, ino, shared_mapping=si.mapping)
    e.input = si
    for c, owners in si.chunks.items():
        e.chunks[c] = {cg: m for cg, m in owners.items() if m}
    used = set()
    e.users = {cg: len(ms) for cg, ms in si.users.items()}
    for ms in si.users.values():
        used |= ms
    e.used_members = len(used)
    e.touched = si.touched
    _fill_union(e)
    return e


def _fill_union(e: Entry) -> None:
    union = e.union
    for c, owners in e.chunks.items():
        if len(owners) == 1:        # most chunks: the owner's mask itself, no new int
            for u in owners.values():
                if u:
                    union[c] = u
            continue
        u = 0
        for m in owners.values():
            u |= m
        if u:
            union[c] = u
    e.union = shared_union(union)


IMG_KEY_HEX = 24       # an "img:" key's hex digits: 96 bits (a str of 80 B, not 128)


def image_file_key(img: str, nid: int) -> str:
    """The content key of file ``nid`` of image ``img`` (every mount of one
    image: the same content, no hashing of the file): "img:" and the first
    IMG_KEY_HEX hex digits of sha256("img:nid").  Kept once per content
    group (63,709 at 250,000 files); 96 bits keep it unique among many
    millions of keys, and its content_id (rows.py, the first 16 hex digits)
    is the full digest's."""
    return "img:" + hashlib.sha256(f"{img}:{nid}".encode()).hexdigest()[:IMG_KEY_HEX]


def content_group_keys(group: list[Entry], content: ContentResolver) -> int:
    """Content keys for the live entries of one file size (the only ones that
    could share content); returns how many identities are still pending
    (digest rate limit).  ``group`` in canonical order."""
    return size_group_keys(group, content)[0]


def one_image_file(group: list[Entry]) -> tuple[str, int] | None:
    """(image id, nid) when every member is the same file of one image
    (mounted more than once: the same content, no identity to read)."""
    images = {(e.mount.image_id if e.mount else "", e.ino) for e in group}
    if len(images) == 1:
        img, nid = next(iter(images))
        if img:
            return img, nid
    return None


def elf_build_id_counts(build_ids) -> dict[str, int] | None:
    """Each build-id's count when every member of a size group is an ELF
    file with one: then one counted once is unique content, keyed by none
    (size_group_keys); None as soon as a member has none (every member is
    keyed by its digest)."""
    counts: dict[str, int] = {}
    for b in build_ids:
        if not b:
            return None
        counts[b] = counts.get(b, 0) + 1
    return counts


def size_group_keys(group: list[Entry], content: ContentResolver) -> tuple[int, str]:
    """content_group_keys(), and the content key every member got when
    they all got the same one ("" otherwise: some member without a key, or
    several contents)."""
    for e in group:
        e.content_key = ""
    if len(group) < 2:
        return 0, ""
    size = group[0].info.size
    same = one_image_file(group)
    if same is not None:
        # the same image (mounted twice): same nid is the same content, no hashing
        key = image_file_key(*same)
        for e in group:
            e.content_key = key
        return 0, key
    # ELF build-ids: a cheap first check; different build-ids are different content
    build_ids = [content.build_id(e.mount, e.ino) if e.mount else None for e in group]
    counts = elf_build_id_counts(build_ids)
    pending = keyed = 0
    keys: dict[str, str] = {}
    for e, b in zip(group, build_ids):
        if counts is not None and counts[b] == 1:
            continue                    # unique build-id among ELF peers: unique content
        if e.mount is None:
            continue
        fp = content.fingerprint(e.mount, e.ino)
        digest = fp or content.digest(e.mount, e.ino)
        if digest is None:
            pending += 1
            continue
        key = f"sha256:{digest}:{size}"
        e.content_key = keys.setdefault(key, key)     # one string per content, not per copy
        keyed += 1
    if len(keys) == 1 and keyed == len(group):
        return pending, next(iter(keys.values()))
    return pending, ""


def aops(e: Entry) -> str:
    if e.info:
        return e.info.aops
    if e.mount is None:
        return "?"
    return AOPS_FILEIO if e.mount.backing == "file" else AOPS_BLOCK


def duplicate_group_part(group: list[Entry]) -> tuple[int, list[list[Entry]], tuple | None]:
    """Fill e.dup for the entries of one content key (canonical order).
    Returns (redundant pages, the groups inode_share could merge: same
    content, same aops class; shared inodes of one content in several groups
    sit in different domains), and in the same pass over the pages the "rebuild"
    file part of the potential savings (savings.group_file_part() of the
    group's copies, in its flat form) when the content group is one
    mergeable group of stock copies none of which is fingerprinted (the
    usual group: its "now" and "domains" stages are empty); else None (the
    caller makes the copies: node_savings.stage_groups)."""
    if len(group) < 2:
        for e in group:
            e.dup = NONE
            e.in_group = False
        return 0, [], None
    by_class: dict[str, list[Entry]] = {}
    plain = True            # every member stock, unfingerprinted, mergeable
    for e in group:
        e.in_group = False
        m = e.mount
        # an inode_share mount's own-inode pages are private (splice
        # readers): no remount merges them
        if e.shared_mapping or not (m and m.inode_share):
            if e.shared_mapping or (m is not None and m.image is not None
                                    and m.image.ishare_xattrs):
                plain = False
            info = e.info
            cls = info.aops if info else aops(e)
            members = by_class.get(cls)
            if members is None:
                by_class[cls] = [e]
            else:
                members.append(e)
        else:
            plain = False
    mergeable = [members for members in by_class.values() if len(members) >= 2]
    for members in mergeable:
        for e in members:
            e.in_group = True
    counts = ({}, {}) if plain and len(by_class) == 1 else None
    redundant = _group_dups(group, counts)
    if counts is None:
        return redundant, mergeable, None
    return redundant, mergeable, (redundant, 0, 0, 0, tuple(chain.from_iterable(counts[0].items())),
                                  tuple(chain.from_iterable(counts[1].items())))


def usual_group_part(group: list[Entry], joined: list[Entry] | tuple, cls: str
                     ) -> tuple[int, list[list[Entry]], tuple] | None:
    """duplicate_group_part(group) of >= 2 copies in a steady refresh when
    the usual group (stock copies, none shared, fingerprinted or on an
    inode_share mount, of one aops class: one mergeable group, its part
    counted) and every member but ``joined`` known to be of class ``cls``
    (a kept mergeable group's unchanged copies: their FileInfo, a cold line
    each, not read again); the group list itself is the mergeable group.
    None, nothing changed, for any other group (the caller then calls
    duplicate_group_part; tests/unit/test_steady_paths.py compares them)."""
    if len(group) < 2:
        return None
    for e in group:
        m = e.mount
        if e.shared_mapping or (m is not None and (m.inode_share or (
                m.image is not None and m.image.ishare_xattrs))):
            return None
    for e in joined:
        info = e.info
        if (info.aops if info else aops(e)) != cls:
            return None
    for e in group:
        e.in_group = True
    by_cgroup: dict[int, int] = {}
    by_dev: dict[int, int] = {}
    redundant = _group_dups(group, (by_cgroup, by_dev))
    return redundant, [group], (redundant, 0, 0, 0, tuple(chain.from_iterable(by_cgroup.items())),
                                tuple(chain.from_iterable(by_dev.items())))


def _group_dups(group: list[Entry], counts: tuple | None) -> int:
    """duplicate_group_part's masks (e.dup) of >= 2 copies and, ``counts``
    (by_cgroup, by_dev) given, their savings counts; returns the redundant
    pages."""
    first = group[0].union
    for e in group:
        u = e.union
        if u is not first and u != first:
            for e in group:
                e.dup = NONE
            return _partial_duplicates(group, counts)
    # the same pages resident in every copy (a library every container
    # read whole): each page is duplicated in all of them
    for e in group:         # one dict for all (read only): a node holds many such copies
        e.union = e.dup = first
    pages = sum(m.bit_count() for m in first.values())
    if counts is not None and pages:
        _same_counts(group, pages, *counts)
    return (len(group) - 1) * pages


def full_group_part(group: list[Entry]) -> tuple[int, list[list[Entry]], tuple | None]:
    """duplicate_group_part(group) of >= 2 copies in a full pass: the usual content
    group (stock copies, none on an inode_share mount, of one aops class,
    every one with the same union object: a file every container read
    whole) made here in one walk, without by_class or the per-copy union
    test; any other by duplicate_group_part (tests/unit/test_full_pass.py
    compares the two)."""
    e = group[0]
    first = e.union
    info = e.info
    cls = info.aops if info else aops(e)
    for e in group:
        m = e.mount
        if (e.union is not first or e.shared_mapping or m is None or m.inode_share
                or (m.image is not None and m.image.ishare_xattrs)):
            return duplicate_group_part(group)
        info = e.info
        if (info.aops if info else aops(e)) != cls:
            return duplicate_group_part(group)
    return _usual_part(group, first)


def full_image_group(group: list[Entry]) -> tuple[str, tuple] | None:
    """size_group_keys(group), then full_group_part(group), of a full
    pass's usual size group in one walk: >= 2 copies of one file (nid) of
    one image, stock copies (none shared, on an inode_share mount or
    fingerprinted), of one aops class, every one with the same union
    object.  Returns (its content key, full_group_part's result), each
    copy's content_key, ckey_idx, dup and in_group set; None, nothing
    changed, for any other group (tests/unit/test_full_pass.py compares
    the two)."""
    e = group[0]
    m = e.mount
    if m is None or m.image is None or len(group) < 2:
        return None
    img, ino, first, info = m.image.image_id, e.ino, e.union, e.info
    cls = info.aops if info else aops(e)
    if not img:
        return None
    for e in group:
        m = e.mount
        image = None if m is None else m.image
        if (image is None or e.ino != ino or image.image_id != img or e.union is not first
                or e.shared_mapping or m.inode_share or image.ishare_xattrs):
            return None
        info = e.info
        if (info.aops if info else aops(e)) != cls:
            return None
    key = image_file_key(img, ino)
    for e in group:
        e.content_key = e.ckey_idx = key
    return key, _usual_part(group, first)


def _usual_part(group: list[Entry], first: dict[int, int]
                ) -> tuple[int, list[list[Entry]], tuple]:
    """full_group_part's result of the usual group (its tests passed):
    every copy in the mergeable group, its dup the union ``first``."""
    for e in group:
        e.in_group = True
        e.dup = first
    pages = sum(map(_bit_count, first.values()))
    redundant = (len(group) - 1) * pages
    by_cgroup: dict[int, int] = {}
    by_dev: dict[int, int] = {}
    if pages:
        _same_counts(group, pages, by_cgroup, by_dev)
    return redundant, [list(group)], (redundant, 0, 0, 0,
                                      tuple(chain.from_iterable(by_cgroup.items())),
                                      tuple(chain.from_iterable(by_dev.items())))


_bit_count = int.bit_count


def _same_counts(group: list[Entry], pages: int, by_cgroup: dict[int, int],
                 by_dev: dict[int, int]) -> None:
    """savings._same_pages' counts of a group of stock copies (every copy
    after the first gives up all of its pages)."""
    for e in group[1:]:
        by_dev[e.dev] = by_dev.get(e.dev, 0) + pages
        owner = e.chunks            # the one owner (an int: Entry.owner), or a dict
        if owner.__class__ is int:
            by_cgroup[owner] = by_cgroup.get(owner, 0) + pages
            continue
        for owners in owner.values():        # each owner's pages are within the union
            for cg, om in owners.items():
                if om:
                    by_cgroup[cg] = by_cgroup.get(cg, 0) + om.bit_count()


def _partial_duplicates(group: list[Entry], counts: tuple | None = None) -> int:
    """duplicate_group_part's masks where the copies hold different pages;
    returns the redundant pages.  ``counts`` (by_cgroup, by_dev): also the
    pages each copy gives up to an earlier one (savings._file_counts of the
    group's copies in this order), counted into them."""
    redundant = 0
    by_cgroup, by_dev = counts if counts is not None else (None, None)
    chunk_ids = set().union(*(e.union.keys() for e in group))
    n_copies = len(group)
    for c in chunk_ids:
        masks = [e.union.get(c, 0) for e in group]
        m = masks[0]
        if m and masks.count(m) == n_copies:
            # the same pages of this chunk in every copy (most chunks of a
            # churned group): the loop below's result without its per-copy ops
            redundant += _same_chunk(group, c, m, counts)
            continue
        once = twice = 0
        for m in masks:
            if m:
                twice |= once & m      # page resident in >= 2 entries
                once |= m
                redundant += m.bit_count()
        redundant -= once.bit_count()
        if twice:
            held = 0
            for e, m in zip(group, masks):
                d = m & twice
                if d:
                    if e.dup is NONE:
                        e.dup = {}
                    e.dup[c] = m if d == m else d
                    if counts is not None:
                        gone = m & held
                        held |= m
                        if not gone:
                            continue
                        owner = e.chunks    # (Entry.owner without the property call)
                        if owner.__class__ is not int:
                            _count_gone(e, c, m, gone, by_cgroup, by_dev)
                            continue
                        n = gone.bit_count()        # _count_gone of most copies
                        by_dev[e.dev] = by_dev.get(e.dev, 0) + n
                        by_cgroup[owner] = by_cgroup.get(owner, 0) + n
    for e in group:
        if e.dup is not NONE and e.dup == e.union:
            e.dup = e.union         # every resident page duplicated: one dict
    return redundant


def _same_chunk(group: list[Entry], c: int, mask: int, counts: tuple | None) -> int:
    """_partial_duplicates of chunk c where every copy holds the same pages
    ``mask`` (>= 2 copies): each copy's are duplicates, each copy after the
    first gives up all of them; returns the redundant pages."""
    n = mask.bit_count()
    for e in group:
        d = e.dup
        if d is NONE:
            e.dup = {c: mask}
        else:
            d[c] = mask
    if counts is not None:
        by_cgroup, by_dev = counts
        for e in group[1:]:
            owner = e.chunks            # (Entry.owner without the property call)
            if owner.__class__ is not int:
                _count_gone(e, c, mask, mask, by_cgroup, by_dev)
                continue
            by_dev[e.dev] = by_dev.get(e.dev, 0) + n
            by_cgroup[owner] = by_cgroup.get(owner, 0) + n
    return (len(group) - 1) * n


def _count_gone(e: Entry, c: int, mask: int, gone: int, by_cgroup: dict[int, int],
                by_dev: dict[int, int]) -> None:
    """savings._file_counts' counts of the pages ``gone`` of chunk c of a copy."""
    n = gone.bit_count()
    by_dev[e.dev] = by_dev.get(e.dev, 0) + n
    owner = e.chunks            # the one owner (an int: Entry.owner), or a dict
    if owner.__class__ is int:  # every page is its
        by_cgroup[owner] = by_cgroup.get(owner, 0) + n
        return
    owners = owner.get(c)
    if owners is not None:
        gone_by_cgroup(owners, mask, gone, n, by_cgroup)
