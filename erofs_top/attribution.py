"""Per-cgroup, per-mount and node accumulators, kept between refreshes.

Each live entry contributes a ``Contribution`` (what it adds to every
accumulator); a refresh subtracts the old contribution of each entry that
changed and adds its new one, so the sums stay equal to a walk over all
entries.  Everything is an integer (fair shares of shared pages are exact
fractions): a sum kept by deltas equals a sum made from scratch.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from itertools import compress, repeat
from operator import attrgetter, rshift
from weakref import WeakValueDictionary

from .entries import Entry, owners_by_chunk


def image_key(m) -> tuple[int, int] | None:
    """The image file whose host page cache a file-backed or loop mount reads."""
    if m is None or m.backing not in ("file", "loop") or not m.backing_ino:
        return None
    return (m.backing_dev, m.backing_ino)


def managed_key(dev: int) -> tuple:
    """A mount's compressed-data cache, as a cache key."""
    return ("managed", dev)


def _cg_sums(per_cg: dict[int, tuple[int, int, int]]) -> tuple[int, ...]:
    """{cg: (resident, dup, seeded)} -> the flat tuple a Contribution keeps."""
    flat: list[int] = []
    for cg, v in per_cg.items():
        flat.append(cg)
        flat.extend(v)
    return tuple(flat)


def _plain_sums(chunks: dict[int, dict[int, int]]) -> tuple[int, dict[int, int]]:
    """(resident pages, {cg: pages it inserted}) of an entry's chunks."""
    per: dict[int, int] = {}
    resident = 0
    for owners in chunks.values():
        if len(owners) == 1:
            for cg, m in owners.items():
                r = m.bit_count()
                resident += r
                per[cg] = per.get(cg, 0) + r
            continue
        union = 0
        for cg, m in owners.items():
            union |= m
            per[cg] = per.get(cg, 0) + m.bit_count()
        resident += union.bit_count()
    return resident, per


_bit_count = int.bit_count
_SUMS: dict[tuple, tuple] = {}     # cg_sums tuples interned (equal ones: one object)
_SUMS_MAX = 1 << 16                 # then started anew: cgroups come and go


def _interned(sums: tuple) -> tuple:
    """One object for equal cg_sums (files of one cgroup with the same
    page counts: most small files; ~80 B each kept otherwise)."""
    if len(_SUMS) >= _SUMS_MAX:
        _SUMS.clear()
    return _SUMS.setdefault(sums, sums)


def rank_of(key: tuple, c) -> tuple:
    """The order of the largest files (smallest rank first) of the file
    whose entry is under ``key`` with contribution ``c``: (-resident, -dup,
    dev, ino, mapping).  A file's key is its (dev, ino) (a contribution
    keeps neither: equal OwnerContributions are one object); a shared
    inode's (key ("shared", mapping)) are its SharedContribution's."""
    if c.mapping:
        return (-c.resident, -c.dup, c.dev, c.ino, c.mapping)
    return (-c.resident, -c.dup, key[0], key[1], 0)


class _Sums:
    """What every kind of Contribution reads alike (no slots of its own)."""
    __slots__ = ()
    users: tuple[int, ...] = ()            # shared inode: cgroups that use it
    member_users: tuple[int, ...] = ()
    shared_pages = 0
    mapping = 0

    def cgroups(self) -> tuple[int, ...]:
        """The cgroups that inserted its pages."""
        return self.cg_sums[::4]

    def per_cg(self):
        """(cg, resident, dup, seeded) for each cgroup that inserted its pages."""
        s = self.cg_sums
        if len(s) == 4:             # one cgroup (most files): the tuple is its row
            return (s,)
        return zip(s[::4], s[1::4], s[2::4], s[3::4])



class Contribution(_Sums):
    """What one live entry adds to the accumulators.  Kept for every live
    entry (250,000 on a busy node), so compact: the per-cgroup sums are one
    flat tuple ``cg_sums`` = (cg, resident, dup, seeded, cg, ...) (interned),
    the rank is made when asked for (rank_of: the file is the entry's key);
    what only shared inodes have is in SharedContribution (Contribution(e)
    of a shared entry makes one), the seeded pages of an entry with seeded
    masks in SeededContribution (others read 0), and the usual file's is
    an OwnerContribution (its sums are its one row): 4 slots, 64 B."""
    __slots__ = ("cg_sums", "mount", "resident", "dup")
    seeded = 0

    def __new__(cls, e: Entry):
        if e.shared_mapping:
            return object.__new__(SharedContribution)
        if e.seeded:
            return object.__new__(SeededContribution)
        dups = e.dup
        if e.chunks.__class__ is int and (not dups or dups is e.union):     # (e.owner)
            return OwnerContribution(e)     # (not a Contribution: no __init__ after)
        return object.__new__(cls)

    def __init__(self, e: Entry):
        resident = dup = seeded = 0
        seeded_masks = e.seeded
        dups = e.dup
        if not seeded_masks and (not dups or dups is e.union):
            # nothing seeded, and no page duplicated or every resident page
            # duplicated (dup is the union itself), several cgroups (one: an
            # OwnerContribution)
            resident, per = _plain_sums(e.chunks)
            if dups:
                dup = resident
                sums = tuple(x for cg, r in per.items() for x in (cg, r, r, 0))
            elif len(per) == 1:
                for cg, r in per.items():
                    sums = (cg, r, 0, 0)
            else:
                sums = tuple(x for cg, r in per.items() for x in (cg, r, 0, 0))
            self.cg_sums = _interned(sums)
        else:
            per_cg: dict[int, tuple[int, int, int]] = {}     # cg -> (resident, dup, seeded)
            for c, owners in owners_by_chunk(e).items():
                dmask = dups.get(c, 0) if dups else 0
                smask = seeded_masks.get(c, 0) if seeded_masks else 0
                union = 0
                for cg, m in owners.items():
                    union |= m
                    v = per_cg.get(cg)
                    r = m.bit_count()
                    d = (m & dmask).bit_count() if dmask else 0
                    s = (m & smask).bit_count() if smask else 0
                    per_cg[cg] = (r, d, s) if v is None else (v[0] + r, v[1] + d, v[2] + s)
                resident += union.bit_count()
                if dmask:
                    dup += dmask.bit_count()
                if smask:
                    seeded += (smask & union).bit_count()
            self.cg_sums = _cg_sums(per_cg)
        if e.shared_mapping:
            self.users = tuple(sorted(set(e.users) or set(self.cgroups())))
            self.member_users = tuple(sorted(e.users))
            self.shared_pages = resident
            self.mapping = e.shared_mapping
            self.dev, self.ino = e.dev, e.ino
        self.mount = e.mount
        self.resident, self.dup = resident, dup
        if seeded_masks or e.shared_mapping:     # (a SeededContribution or SharedContribution)
            self.seeded = seeded



# (id(mount), cg, resident, dup) -> the one live OwnerContribution: gone
# with its last file (a weak value; the object holds the mount, so its id
# is not another's meanwhile), not kept until a cap as rows come and go
_OWNERS: WeakValueDictionary = WeakValueDictionary()
_OWNER_REFS = _OWNERS.data


class OwnerContribution(_Sums):
    """The Contribution of the usual file (77 % of a synthetic node's): one
    cgroup inserted every page, nothing seeded, no page or every resident
    page duplicated.  Its resident and duplicate pages are its one row of
    cg_sums.  It keeps no file (dev, ino: the entry's key, rank_of), so
    equal ones are one object (owner_contribution: 4,062 for 193,487 files
    at 250,000 x 1,000 containers): never changed in place, a file whose
    row moves takes another (Aggregator._attribute)."""
    __slots__ = ("cg_sums", "mount", "__weakref__")
    seeded = 0

    def __new__(cls, e: Entry):
        r = sum(map(_bit_count, e.union.values()))
        return owner_contribution(e.mount, e.chunks, r, r if e.dup else 0)   # (e.owner)

    def renewed_row(self, e: Entry) -> tuple | None:
        """The cg_sums OwnerContribution(e) would have, when the file's new
        entry ``e`` makes one (the usual kind still) on the same mount
        object, of the same cgroup: the caller then takes the one of this
        mount and row (owner_contribution; Accumulators.move_row moves the
        sums).  None for any other entry."""
        union, d, row = e.union, e.dup, self.cg_sums
        # e.chunks: the one owner (e.owner) as an int, or a dict (never equal)
        if (e.chunks != row[0] or e.mount is not self.mount or self.mount is None or e.seeded
                or e.shared_mapping or not union or (d and d is not union)):
            return None
        r = sum(map(_bit_count, union.values()))
        if r == row[1] and (r if d else 0) == row[2]:
            return row
        return (row[0], r, r if d else 0, 0)

    @property
    def resident(self) -> int:
        return self.cg_sums[1]

    @property
    def dup(self) -> int:
        return self.cg_sums[2]


def owner_contribution(mount, cg: int, resident: int, dup: int) -> OwnerContribution:
    """The one OwnerContribution of a file on ``mount`` (the object: its
    id is a key while the kept one holds it) whose pages cgroup ``cg``
    inserted, ``resident`` of them, ``dup`` duplicated (0 or resident)."""
    k = (id(mount), cg, resident, dup)
    ref = _OWNER_REFS.get(k)        # (its dict of weak references: no Python call)
    c = ref() if ref is not None else None
    if c is None:
        c = object.__new__(OwnerContribution)
        c.cg_sums, c.mount = (cg, resident, dup, 0), mount
        _OWNERS[k] = c
    return c


def contribution(e: Entry):
    """Contribution(e) of an entry with pages: the usual file's (one owner,
    nothing seeded, not shared, no page or every resident page duplicated)
    OwnerContribution found without Contribution.__new__'s and
    OwnerContribution.__new__'s calls (a steady refresh's new files)."""
    d = e.dup
    if (e.chunks.__class__ is int and not e.seeded and not e.shared_mapping
            and (not d or d is e.union)):
        r = sum(map(_bit_count, e.union.values()))
        return owner_contribution(e.mount, e.chunks, r, r if d else 0)     # (e.owner)
    return Contribution(e)


def owner_contributions(pairs, special: set, special_ino: int
                        ) -> tuple[list[OwnerContribution], list[Entry]]:
    """A full pass's walk of the live entries of ``pairs`` ((key, entry or
    None), in order): the usual file's OwnerContribution (one owner,
    nothing seeded, not shared, no page or every resident page duplicated:
    what Contribution(e) makes one of) kept in e.contrib, the same object
    found without a call but for a new one; the keys of shared inodes and
    of ino ``special_ino`` put in ``special``.  Returns (the
    OwnerContributions, the other live entries: new_contributions'), each
    in order."""
    out: list[OwnerContribution] = []
    others: list[Entry] = []
    add, add_other, add_special = out.append, others.append, special.add
    bc, get = _bit_count, _OWNER_REFS.get     # (the weak references' dict: no call each)
    # a union's resident pages by its id: most files share their union with
    # many (entries.shared_union), alive in the entries while this runs
    pages: dict[int, int] = {}
    for key, e in pairs:
        if e is None:
            continue
        u = e.union
        if not u:
            continue
        if e.shared_mapping or e.ino == special_ino:
            add_special(key)
        d = e.dup
        owner = e.chunks        # (e.owner, an int, in the usual file)
        if (owner.__class__ is not int or e.seeded or e.shared_mapping
                or (d and d is not u)):
            add_other(e)
            continue
        r = pages.get(id(u))
        if r is None:
            r = pages[id(u)] = sum(map(bc, u.values()))
        m = e.mount
        ref = get((id(m), owner, r, r if d else 0))
        c = ref() if ref is not None else None
        if c is None:
            c = owner_contribution(m, owner, r, r if d else 0)
        e.contrib = c
        add(c)
    return out, others


def new_contributions(es: list[Entry]) -> list[Contribution]:
    """Contribution(e) of each of many entries that make no
    OwnerContribution (owner_contributions' make one), kept in e.contrib,
    in order.  The usual one of them (pages of several cgroups, nothing
    seeded, not shared, no page or every resident page duplicated:
    Contribution.__init__'s first branch) is made here, without a call
    but _plain_sums (~1 us less each, 56,513 at 250,000 files); any other
    by Contribution(e) (tests/unit/test_full_pass.py compares the two)."""
    out: list[Contribution] = []
    add, new, interned = out.append, object.__new__, _interned
    for e in es:
        dups = e.dup
        if (e.shared_mapping or e.seeded or e.chunks.__class__ is int
                or (dups and dups is not e.union)):
            c = e.contrib = Contribution(e)
            add(c)
            continue
        resident, per = _plain_sums(e.chunks)
        if len(per) == 2:
            (a, ra), (b, rb) = per.items()
            sums = (a, ra, ra, 0, b, rb, rb, 0) if dups else (a, ra, 0, 0, b, rb, 0, 0)
        elif dups:
            sums = tuple(x for cg, r in per.items() for x in (cg, r, r, 0))
        else:
            sums = tuple(x for cg, r in per.items() for x in (cg, r, 0, 0))
        c = e.contrib = new(Contribution)
        c.cg_sums = interned(sums)
        c.mount = e.mount
        c.resident, c.dup = resident, (resident if dups else 0)
        add(c)
    return out


class SeededContribution(Contribution):
    """The Contribution of an entry with seeded masks (not shared): also its
    seeded pages."""
    __slots__ = ("seeded",)


class SharedContribution(Contribution):
    """A shared inode's Contribution: also the cgroups that use it, its
    seeded pages and its (dev, ino) (rank_of: its key is its mapping)."""
    __slots__ = ("users", "member_users", "shared_pages", "mapping", "seeded", "dev", "ino")


@dataclass(slots=True)
class CgroupAcc:
    """One cgroup's sums (pages)."""
    resident: int = 0
    dup: int = 0
    shared: int = 0
    fair_pages: int = 0             # pages it alone holds (non-shared entries)
    fair_shared: Fraction | int = 0   # its equal share of shared pages
    seeded: int = 0
    files: int = 0                  # live entries it owns pages of
    uses: int = 0                   # live shared entries it uses

    @property
    def fair(self):
        return self.fair_pages + self.fair_shared


def _count(d: dict, k, sign: int) -> bool:
    """Add sign to a count (gone at 0); True if k appeared or went."""
    n = d.get(k, 0) + sign
    if n:
        d[k] = n
        return n == sign
    del d[k]
    return True


class Accumulators:
    """Sums over the live entries' contributions.  Per (mount, cgroup) the
    ``holders`` sums also give each cgroup's mounts, each mount's cgroups and
    the cgroups reading each cache (``readers()``): kept as the pairs appear
    and go, so a refresh costs the pairs it changed, not all of them."""

    def __init__(self):
        self.cg: dict[int, CgroupAcc] = {}
        self.mount_resident: dict[int, int] = {}
        self.mount_dup: dict[int, int] = {}
        self.mounts: dict[int, object] = {}                  # dev -> MountInfo seen
        # dev -> cg -> [resident, dup, entries, of which shared entries]: per
        # dev, not by a (dev, cg) tuple per pair (64 B, 123,000 pairs at
        # 250,000 files); a dev without pairs has no dict (pair())
        self.holders: dict[int, dict[int, list[int]]] = {}
        self.user_devs: dict[tuple[int, int], int] = {}      # (dev, cg) -> shared users there
        self.member_users: dict[tuple[int, int], int] = {}   # (dev, cg) -> e.users there
        self.resident = self.dup = self.seeded = self.shared = 0
        self.holder_cgs: dict[int, set[int]] = {}   # dev -> cgs with a holders pair
        self.cg_devs: dict[int, set[int]] = {}      # cg -> devs: holders | user_devs pairs
        # the usual case is kept once, in holder_cgs (a set member is ~28 B per
        # (mount, cgroup) pair: 123,000 pairs at 250,000 files): the cgroups of
        # a mount holding pages of non-shared entries are holder_cgs less
        # ``shared_only``, its cgroups (mount_cgroups) holder_cgs and ``member_only``
        self.shared_only: dict[int, set[int]] = {}  # dev -> cgs: pairs of shared entries only
        self.member_only: dict[int, set[int]] = {}  # dev -> cgs: member_users pairs, no holders
        self.dirty_pairs: set[tuple[int, int]] = set()   # holders changed since taken (rows)
        self.dirty_cgs: set[int] = set()            # cg_devs changed since taken (rows)
        self._readers_dirty: set[int] = set()       # devs whose holder_cgs / shared_only changed
        self._readers: dict[tuple, set[int]] = {}
        self._img_of: dict[int, tuple | None] = {}  # dev -> image key counted in _readers
        self._img_devs: dict[tuple, set[int]] = {}

    def apply(self, c: Contribution, sign: int) -> None:
        if type(c) is OwnerContribution:
            self._apply_owner(c, sign)
            return
        cgs = self.cg
        is_shared = c.shared_pages > 0
        for cg, res, dup, seeded in c.per_cg():
            a = cgs.get(cg)
            if a is None:
                a = cgs[cg] = CgroupAcc()
            a.resident += sign * res
            a.dup += sign * dup
            a.seeded += sign * seeded
            a.files += sign
            if not is_shared:       # its pages are its own: the fair share is all of them
                a.fair_pages += sign * res
        if c.users:
            share = Fraction(c.shared_pages, len(c.users))
            for cg in c.users:
                a = cgs.get(cg)
                if a is None:
                    a = cgs[cg] = CgroupAcc()
                a.shared += sign * c.shared_pages
                a.fair_shared += sign * share
                a.uses += sign
        if sign < 0:                # only a subtraction empties a cgroup's sums
            for cg in set(c.cgroups()) | set(c.users):
                a = cgs[cg]
                if a.files == 0 and a.uses == 0:
                    del cgs[cg]
        if c.mount is not None:
            self._apply_mount(c, sign, is_shared)
        self.resident += sign * c.resident
        self.dup += sign * c.dup
        self.seeded += sign * c.seeded
        self.shared += sign * c.shared_pages

    def _apply_owner(self, c: OwnerContribution, sign: int) -> None:
        """apply() of the usual file's contribution: one cgroup (its one
        row of cg_sums), nothing seeded, no shared page, no user."""
        cg, res, dup, _ = c.cg_sums
        cgs = self.cg
        a = cgs.get(cg)
        if a is None:
            a = cgs[cg] = CgroupAcc()
        a.resident += sign * res
        a.dup += sign * dup
        a.files += sign
        a.fair_pages += sign * res
        if sign < 0 and a.files == 0 and a.uses == 0:
            del cgs[cg]
        m = c.mount
        if m is not None:
            self._apply_owner_mount(m, cg, sign * res, sign * dup, sign)
        self.resident += sign * res
        self.dup += sign * dup

    def _apply_owner_mount(self, m, cg: int, dr: int, dd: int, sign: int) -> None:
        """_apply_mount of an OwnerContribution on mount ``m`` (its row:
        cgroup ``cg``, resident and duplicate pages moving by dr, dd): one
        pair, of a non-shared entry (h[3] stays), no user or member user."""
        dev = m.dev
        if sign > 0 and self.mounts.get(dev) is not m:
            self.mounts[dev] = m
            self._readers_dirty.add(dev)
        res, dups = self.mount_resident, self.mount_dup
        res[dev] = res.get(dev, 0) + dr
        dups[dev] = dups.get(dev, 0) + dd
        holders = self.holders
        per = holders.get(dev)
        if per is None:
            per = holders[dev] = {}
        h = per.get(cg)
        if h is None:
            h = per[cg] = [0, 0, 0, 0]
        n = h[2]
        h[0] += dr
        h[1] += dd
        h[2] = n + sign
        self.dirty_pairs.add((dev, cg))
        if n + sign == 0:
            del per[cg]
            if not per:
                del holders[dev]
            self._sync(dev, cg)
        elif n == 0 or n == h[3] or n + sign == h[3]:   # new pair, or own caches flip
            self._sync(dev, cg)

    def move_row(self, m, cg: int, dr: int, dd: int) -> None:
        """replace(old, new) of two OwnerContributions of one file on mount
        ``m`` (both), of cgroup ``cg`` (both), whose resident pages moved by
        ``dr`` and duplicate pages by ``dd``: what replace() does for them."""
        dev = m.dev
        if self.mounts.get(dev) is not m:       # (_see_mount inline: every call of a refresh)
            self.mounts[dev] = m
            self._readers_dirty.add(dev)
        if not (dr or dd):
            return
        a = self.cg[cg]
        a.resident += dr
        a.dup += dd
        a.fair_pages += dr
        h = self.holders[dev][cg]
        h[0] += dr
        h[1] += dd
        self.dirty_pairs.add((dev, cg))
        self._move_mount(dev, dr, dd)       # (a call only for a row whose pages moved)

    def _see_mount(self, dev: int, m) -> None:
        """Mount m is dev's (now): readers recounted if it is a new object."""
        if self.mounts.get(dev) is not m:
            self.mounts[dev] = m
            self._readers_dirty.add(dev)

    def _move_mount(self, dev: int, dr: int, dd: int) -> None:
        """Mount dev's and the node's resident and duplicate pages move by dr, dd."""
        if dr:
            self.mount_resident[dev] += dr
            self.resident += dr
        if dd:
            self.mount_dup[dev] += dd
            self.dup += dd

    def replace(self, old: Contribution, new: Contribution) -> None:
        """apply(old, -1) then apply(new, +1).  The usual case (a file's
        pages changed, on the same mount, inserted by the same cgroups) in
        one pass: only the page counts move, no cgroup, pair or set comes
        or goes; anything else through apply()."""
        m = new.mount
        os_, ns = old.cg_sums, new.cg_sums
        if (m is None or old.mount is not m or new.mapping or old.mapping
                or (os_ is not ns and (len(os_) != len(ns) or os_[::4] != ns[::4]))):
            self.apply(old, -1)
            self.apply(new, +1)
            return
        dev = m.dev
        self._see_mount(dev, m)
        if os_ is not ns:
            cgs, holders = self.cg, self.holders
            for i in range(0, len(ns), 4):
                dr, dd, ds = ns[i + 1] - os_[i + 1], ns[i + 2] - os_[i + 2], ns[i + 3] - os_[i + 3]
                if not (dr or dd or ds):
                    continue
                cg = ns[i]
                a = cgs[cg]
                a.resident += dr
                a.dup += dd
                a.seeded += ds
                a.fair_pages += dr
                h = holders[dev][cg]
                h[0] += dr
                h[1] += dd
                self.dirty_pairs.add((dev, cg))
        self._move_mount(dev, new.resident - old.resident, new.dup - old.dup)
        self.seeded += new.seeded - old.seeded

    def add_new(self, contribs: list[Contribution]) -> None:
        """apply(c, +1) for each of many new contributions (a full pass):
        the sums per cgroup, mount and (mount, cgroup) pair are made in
        local lists first and added once each, the sets derived from a pair
        synced once per pair.  The same sums as one apply() per
        contribution (integers); shared inodes (few) go through apply().
        The usual file's (an OwnerContribution: one row) are counted by
        (mount, row) in C first, each distinct one added once times its
        count: a mount's files of one cgroup have a few distinct rows."""
        counted = _counted_rows(contribs)
        if counted is None:
            self._add_new(None, contribs)
        else:
            self._add_new(counted, [c for c in contribs if type(c) is not OwnerContribution])

    def add_new_parts(self, owners: list, others: list) -> bool:
        """add_new(contribs) given apart what it finds in them: ``owners``
        the OwnerContributions, ``others`` the rest, each in the order of
        ``contribs`` (a full pass makes them apart: no type test per
        contribution, no list of all).  False, and nothing added, when one
        dev has two mount objects among them (add_new then: the order
        decides which is kept)."""
        counts = Counter(owners)
        counted = _rows_of(counts, list(map(_mount_of, counts)) + list(map(_mount_of, others)))
        if counted is None:
            return False
        self._add_new(counted, others)
        return True

    def _add_new(self, counted: list | None, rest: list) -> None:
        """add_new's sums: of ``counted`` (_counted_rows: None when the
        contributions' order counts, ``rest`` then all of them) and of
        ``rest``, the contributions that are not OwnerContributions."""
        per_cg: dict[int, list[int]] = {}        # cg -> [resident, dup, seeded, files]
        per_dev: dict[int, list[int]] = {}       # dev -> [resident, dup]
        pairs: dict[tuple[int, int], list[int]] = {}     # (dev, cg) -> [resident, dup, entries]
        # no (mount, cgroup) pair yet (a full pass): the pairs are all new,
        # added without a _sync each; shared inodes' (apply()) after them
        # (the order does not count: one mount object per dev, _counted_rows)
        fresh = counted is not None and not (self.holders or self.user_devs
                                             or self.member_users)
        if counted is None:
            sums = (0, 0, 0)
        else:
            sums = self._add_counted(counted, per_cg, per_dev, pairs)
        shared = [c for c in rest if c.mapping] if fresh else []
        if shared:
            rest = [c for c in rest if not c.mapping]
        resident, dup, seeded = self._add_each(rest, per_cg, per_dev, pairs)
        self._fold(per_cg, per_dev, pairs, fresh)
        self.resident += resident + sums[0]
        self.dup += dup + sums[1]
        self.seeded += seeded + sums[2]
        for c in shared:
            self.apply(c, +1)

    def _add_counted(self, counted: list, per_cg: dict, per_dev: dict, pairs: dict
                     ) -> tuple[int, int, int]:
        """add_new's sums of (mount, row, count) (_counted_rows)."""
        mounts, readers_dirty = self.mounts, self._readers_dirty
        resident = dup = seeded = 0
        for m, (cg, res, dp, sd), n in counted:
            res, dp, sd = res * n, dp * n, sd * n
            v = per_cg.get(cg)
            if v is None:
                per_cg[cg] = [res, dp, sd, n]
            else:
                v[0] += res
                v[1] += dp
                v[2] += sd
                v[3] += n
            if m is not None:
                dev = m.dev
                if mounts.get(dev) is not m:
                    mounts[dev] = m
                    readers_dirty.add(dev)
                d = per_dev.get(dev)
                if d is None:
                    per_dev[dev] = [res, dp]
                else:
                    d[0] += res
                    d[1] += dp
                h = pairs.get((dev, cg))
                if h is None:
                    pairs[(dev, cg)] = [res, dp, n]
                else:
                    h[0] += res
                    h[1] += dp
                    h[2] += n
            resident += res
            dup += dp
            seeded += sd
        return resident, dup, seeded

    def _add_each(self, contribs: list, per_cg: dict, per_dev: dict, pairs: dict
                  ) -> tuple[int, int, int]:
        """add_new's sums of contributions one by one."""
        mounts, readers_dirty = self.mounts, self._readers_dirty
        resident = dup = seeded = 0
        for c in contribs:
            if c.mapping:
                self.apply(c, +1)
                continue
            m = c.mount
            dev = None if m is None else m.dev
            if m is not None:
                if mounts.get(dev) is not m:
                    mounts[dev] = m
                    readers_dirty.add(dev)
                d = per_dev.get(dev)
                if d is None:
                    per_dev[dev] = [c.resident, c.dup]
                else:
                    d[0] += c.resident
                    d[1] += c.dup
            it = iter(c.cg_sums)        # (c.per_cg() without its call and slices)
            for cg, res, dp, sd in zip(it, it, it, it):
                v = per_cg.get(cg)
                if v is None:
                    per_cg[cg] = [res, dp, sd, 1]
                else:
                    v[0] += res
                    v[1] += dp
                    v[2] += sd
                    v[3] += 1
                if m is not None:
                    h = pairs.get((dev, cg))
                    if h is None:
                        pairs[(dev, cg)] = [res, dp, 1]
                    else:
                        h[0] += res
                        h[1] += dp
                        h[2] += 1
            resident += c.resident
            dup += c.dup
            seeded += c.seeded
        return resident, dup, seeded

    def _fold(self, per_cg: dict, per_dev: dict, pairs: dict, fresh: bool) -> None:
        """add_new's local sums into the kept ones (non-shared entries);
        ``fresh``: no pair kept yet."""
        cgs = self.cg
        for cg, (res, dp, sd, n) in per_cg.items():
            a = cgs.get(cg)
            if a is None:
                a = cgs[cg] = CgroupAcc()
            a.resident += res
            a.dup += dp
            a.seeded += sd
            a.files += n
            a.fair_pages += res
        for dev, (res, dp) in per_dev.items():
            self.mount_resident[dev] = self.mount_resident.get(dev, 0) + res
            self.mount_dup[dev] = self.mount_dup.get(dev, 0) + dp
        if fresh:
            self._new_pairs(pairs)
            return
        holders = self.holders
        for key, (res, dp, n) in pairs.items():
            per = holders.get(key[0])
            if per is None:
                per = holders[key[0]] = {}
            h = per.get(key[1])
            if h is None:
                h = per[key[1]] = [0, 0, 0, 0]
            h[0] += res
            h[1] += dp
            h[2] += n
            self.dirty_pairs.add(key)
            self._sync(*key)        # from the pair's state: once is enough

    def _new_pairs(self, pairs: dict) -> None:
        """_fold's pairs when none is kept (nor a user or member pair): what
        _sync makes of a new pair of non-shared entries (entries >= 1, none
        shared): in holder_cgs and cg_devs, neither shared_only nor
        member_only."""
        holders, holder_cgs, cg_devs = self.holders, self.holder_cgs, self.cg_devs
        for (dev, cg), (res, dp, n) in pairs.items():
            per = holders.get(dev)
            if per is None:
                per = holders[dev] = {}
            per[cg] = [res, dp, n, 0]
            add_to_set(holder_cgs, dev, cg)
            add_to_set(cg_devs, cg, dev)
        self.dirty_pairs.update(pairs)
        self._readers_dirty.update(holder_cgs)
        self.dirty_cgs.update(cg_devs)

    def _apply_mount(self, c: Contribution, sign: int, is_shared: bool) -> None:
        dev = c.mount.dev
        if sign > 0 and self.mounts.get(dev) is not c.mount:
            self.mounts[dev] = c.mount
            self._readers_dirty.add(dev)
        self.mount_resident[dev] = self.mount_resident.get(dev, 0) + sign * c.resident
        self.mount_dup[dev] = self.mount_dup.get(dev, 0) + sign * c.dup
        per = self.holders.get(dev)
        if per is None:
            per = self.holders[dev] = {}
        for cg, res, dup, _ in c.per_cg():
            h = per.get(cg)
            if h is None:
                h = per[cg] = [0, 0, 0, 0]
            own = h[2] > h[3]
            h[0] += sign * res
            h[1] += sign * dup
            h[2] += sign
            if is_shared:
                h[3] += sign
            self.dirty_pairs.add((dev, cg))
            if h[2] == 0:
                del per[cg]
                self._sync(dev, cg)
            elif h[2] == sign or own != (h[2] > h[3]):     # new pair, or own caches flip
                self._sync(dev, cg)
        if not per:
            del self.holders[dev]
        for cg in c.users:
            if _count(self.user_devs, (dev, cg), sign):
                self._sync(dev, cg)
        for cg in c.member_users:
            if _count(self.member_users, (dev, cg), sign):
                self._sync(dev, cg)

    def pair(self, dev: int, cg: int) -> list[int] | None:
        """The holders sums of a (mount, cgroup) pair: [resident, dup,
        entries, of which shared entries]; None: no such pair."""
        per = self.holders.get(dev)
        return None if per is None else per.get(cg)

    def _sync(self, dev: int, cg: int) -> None:
        """A (mount, cgroup) pair appeared, went or changed kind: the sets
        derived from the pairs follow."""
        key = (dev, cg)
        h = self.pair(dev, cg)
        if _member(self.holder_cgs, dev, cg, h is not None):
            self._readers_dirty.add(dev)
        if _member(self.shared_only, dev, cg, h is not None and h[2] == h[3]):
            self._readers_dirty.add(dev)
        if _member(self.cg_devs, cg, dev, h is not None or key in self.user_devs):
            self.dirty_cgs.add(cg)
        _member(self.member_only, dev, cg, h is None and key in self.member_users)

    # ---------------------------------------------------------- derived (read only)
    def cgroup_devs(self) -> dict[int, set[int]]:
        """cg -> devs of the mounts it holds pages of or uses shared inodes on."""
        return self.cg_devs

    def mount_cgroups(self) -> dict[int, set[int]]:
        """dev -> cgroups holding pages there, or users of its shared inodes."""
        extra = self.member_only
        if not extra:
            return self.holder_cgs
        out = dict(self.holder_cgs)
        for dev, cgs in extra.items():
            have = out.get(dev)
            out[dev] = cgs if have is None else have | cgs
        return out

    def _own(self, dev: int) -> set[int]:
        """The cgroups holding pages of non-shared entries on dev (a new set)."""
        cgs = self.holder_cgs.get(dev)
        if not cgs:
            return set()
        shared = self.shared_only.get(dev)
        return cgs - shared if shared else set(cgs)

    def readers(self) -> dict[tuple, set[int]]:
        """cache -> cgroups holding pages of files that read through it: the
        image file of file-backed/loop mounts, a mount's compressed-data cache.
        Updated for the mounts whose pairs changed (and every mount's image
        key re-read: SysMounts updates a MountInfo in place)."""
        out, img_of, img_devs = self._readers, self._img_of, self._img_devs
        dirty_imgs = set()
        for dev in self._readers_dirty:
            if dev:
                own = self._own(dev)
                if own:
                    out[managed_key(dev)] = own
                else:
                    out.pop(managed_key(dev), None)
            dirty_imgs.add(img_of.get(dev))
        self._readers_dirty = set()
        for dev in self.holder_cgs.keys() | img_of.keys():
            img = image_key(self.mounts.get(dev)) if dev in self.holder_cgs else None
            old = img_of.get(dev)
            if img != old:
                dirty_imgs.update((img, old))
                if old is not None:
                    img_devs[old].discard(dev)
                if img is None:
                    del img_of[dev]
                else:
                    img_of[dev] = img
                    img_devs.setdefault(img, set()).add(dev)
        dirty_imgs.discard(None)
        for img in dirty_imgs:
            cgs = set().union(*(self.holder_cgs[d] for d in img_devs.get(img, ())))
            if cgs:
                out[img] = cgs
            else:
                out.pop(img, None)
                img_devs.pop(img, None)
        return out


_mount_of = attrgetter("mount")


def _counted_rows(contribs: list) -> list[tuple] | None:
    """(mount, row, count) of the OwnerContributions among contribs, in C
    but for one step per distinct (mount, row).  None when one dev has two
    mount objects among them all: apply() keeps the last one seen, so the
    order counts (not in a full pass: one resolution per dev)."""
    # equal OwnerContributions are one object (owner_contribution; were
    # two, counted apart, their sums are added alike)
    counts = Counter(c for c in contribs if type(c) is OwnerContribution)
    return _rows_of(counts, list(map(_mount_of, contribs)))


def _rows_of(counts: Counter, ms: list) -> list[tuple] | None:
    """_counted_rows of OwnerContributions ``counts`` (object -> count)
    among contributions whose mounts are ``ms`` (each contribution's, or
    at least one of each distinct mount object)."""
    distinct = dict(zip(map(id, ms), ms))
    devs = {m.dev for m in distinct.values() if m is not None}
    if len(devs) != len(distinct) - (id(None) in distinct):
        return None
    return [(c.mount, c.cg_sums, n) for c, n in counts.items()]


def add_to_set(sets: dict, k, v) -> None:
    """sets[k].add(v), a new set if none (no set made for nothing, as setdefault does)."""
    s = sets.get(k)
    if s is None:
        sets[k] = {v}
    else:
        s.add(v)


def _member(sets: dict, k, v, present: bool) -> bool:
    """Make v in sets[k] be ``present`` (empty sets go); True if it changed."""
    s = sets.get(k)
    if present:
        if s is None:
            sets[k] = {v}
            return True
        if v in s:
            return False
        s.add(v)
        return True
    if s is None or v not in s:
        return False
    s.discard(v)
    if not s:
        del sets[k]
    return True


class IoSums:
    """Per cgroup (or per another FileIO field, ``group_by``: the collector
    sums per mount dev): inserted, evicted, readahead pages and read_folio
    calls over the run, summed over the FileIO rows, with the rows count.
    ``by_group``: group -> [inserted, evicted, readahead, folio, rows].  With the
    source's keyed rows and changed keys (``Readings.io_by_key`` and
    ``changed_io``) only those are looked at; else rows that are the same
    objects as at the previous refresh are skipped (set operations on ids;
    the previous rows are kept alive, so ids are unique).  Keyed rows are
    the Readings' own mapping, kept until the next one (a Readings is never
    changed after it is handed over): not a copy of every row (~10 MB at
    312,000 rows)."""

    def __init__(self, group_by: str = "cgroup_id"):
        self.rows: dict = {}        # id >> 4 -> FileIO, or (dev, ino, cg) -> FileIO if keyed
        self.keyed = False
        self.group_of = attrgetter(group_by)
        self.by_group: dict[int, list[int]] = {}    # group -> [inserted, evicted, readahead, folio, rows]

    def update(self, readings) -> None:
        by_key, changed = readings.io_by_key, readings.changed_io
        if by_key is not None and changed is not None and self.keyed:
            self._update_changed(by_key, changed)
            self.rows = by_key      # equal to the old rows with the changed keys put in
        elif by_key is not None:
            self.rows, self.keyed, self.by_group = by_key, True, {}   # a dict or a view
            for f in by_key.values():
                self._add(f, +1)
        else:
            if self.keyed:
                self.rows, self.keyed, self.by_group = {}, False, {}
            self._update_by_id(readings.io)

    def _update_changed(self, by_key, changed) -> None:
        """The keyed rows: only the changed keys' (old, new) pairs, fetched
        in C; a row that moved within its group moves the group's counts by
        the difference (_add(old, -1), _add(new, +1))."""
        groups, group_of = self.by_group, self.group_of
        keys = list(changed)
        olds, news = map(self.rows.get, keys), map(by_key.get, keys)
        for old, new in zip(olds, news):
            if old is new:
                continue
            if old is not None and new is not None:
                g = group_of(new)
                if group_of(old) == g:
                    v = groups[g]
                    v[0] += new.inserted_pages - old.inserted_pages
                    v[1] += new.evicted_pages - old.evicted_pages
                    v[2] += new.readahead_pages - old.readahead_pages
                    v[3] += new.read_folio_count - old.read_folio_count
                    continue
            if old is not None:
                self._add(old, -1)
            if new is not None:
                self._add(new, +1)

    def _update_by_id(self, io: list) -> None:
        # ids of live objects are unique and 16-aligned: id >> 4 hashes evenly
        # (whole ids crowd a set's slots); all of it in C but the changed rows
        ids = list(map(rshift, map(id, io), repeat(4)))
        now = set(ids)
        old = self.rows
        for i in old.keys() - now:
            self._add(old.pop(i), -1)
        new = now - old.keys()
        if new:
            for i, f in zip(compress(ids, map(new.__contains__, ids)),
                            compress(io, map(new.__contains__, ids))):
                old[i] = f
                self._add(f, +1)

    def _add(self, f, sign: int) -> None:
        group = self.group_of(f)
        v = self.by_group.get(group)
        if v is None:
            v = self.by_group[group] = [0, 0, 0, 0, 0]
        v[0] += sign * f.inserted_pages
        v[1] += sign * f.evicted_pages
        v[2] += sign * f.readahead_pages
        v[3] += sign * f.read_folio_count
        v[4] += sign
        if v[4] == 0:
            del self.by_group[group]
