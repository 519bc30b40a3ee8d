"""Per-cgroup, per-mount and node accumulators, kept between refreshes.

Each live entry contributes a ``Contribution`` (what it adds to every
accumulator); a refresh subtracts the old contribution of each entry that
changed and adds its new one, so the sums stay equal to a walk over all
entries.  Everything is an integer (fair shares of shared pages are exact
fractions): a sum kept by deltas equals a sum made from scratch.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from .entries import Entry


def image_key(m) -> tuple[int, int] | None:
    """The image file whose host page cache a file-backed or loop mount reads."""
    if m is None or m.backing not in ("file", "loop") or not m.backing_ino:
        return None
    return (m.backing_dev, m.backing_ino)


def managed_key(dev: int) -> tuple:
    """A mount's compressed-data cache, as a cache key."""
    return ("managed", dev)


class Contribution:
    """What one live entry adds to the accumulators."""
    __slots__ = ("per_cg", "users", "member_users", "shared_pages", "mount", "resident",
                 "dup", "seeded", "rank")

    def __init__(self, e: Entry):
        per_cg: dict[int, tuple[int, int, int]] = {}     # cg -> (resident, dup, seeded)
        resident = dup = seeded = 0
        seeded_masks = e.seeded
        dups = e.dup
        if not dups and not seeded_masks:       # most files: no duplicate, nothing seeded
            for owners in e.chunks.values():
                union = 0
                for cg, m in owners.items():
                    union |= m
                    v = per_cg.get(cg)
                    r = m.bit_count()
                    per_cg[cg] = (r, 0, 0) if v is None else (v[0] + r, 0, 0)
                resident += union.bit_count()
        for c, owners in e.chunks.items() if dups or seeded_masks else ():
            dmask = dups.get(c, 0) if dups else 0
            smask = seeded_masks.get(c, 0) if seeded_masks else 0
            union = 0
            for cg, m in owners.items():
                union |= m
                v = per_cg.get(cg)
                r, d, s = m.bit_count(), (m & dmask).bit_count(), (m & smask).bit_count()
                per_cg[cg] = (r, d, s) if v is None else (v[0] + r, v[1] + d, v[2] + s)
            resident += union.bit_count()
            dup += dmask.bit_count()
            if smask:
                seeded += (smask & union).bit_count()
        self.per_cg = per_cg
        self.users: tuple[int, ...] = ()        # shared inode: cgroups that use it
        self.member_users: tuple[int, ...] = ()
        self.shared_pages = 0
        if e.shared_mapping:
            self.users = tuple(sorted(set(e.users) or set(per_cg)))
            self.member_users = tuple(sorted(e.users))
            self.shared_pages = resident
        self.mount = e.mount
        self.resident, self.dup, self.seeded = resident, dup, seeded
        self.rank = (-resident, -dup, e.dev, e.ino, e.shared_mapping)


@dataclass
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


def _count(d: dict, k, sign: int) -> None:
    n = d.get(k, 0) + sign
    if n:
        d[k] = n
    else:
        del d[k]


class Accumulators:
    """Sums over the live entries' contributions.  Per (mount, cgroup) the
    ``holders`` sums also give each cgroup's mounts, each mount's cgroups and
    the cgroups reading each cache (derived in ``readers()``)."""

    def __init__(self):
        self.cg: dict[int, CgroupAcc] = {}
        self.mount_resident: dict[int, int] = {}
        self.mount_dup: dict[int, int] = {}
        self.mounts: dict[int, object] = {}                  # dev -> MountInfo seen
        # (dev, cg) -> [resident, dup, entries, of which shared entries]
        self.holders: dict[tuple[int, int], list[int]] = {}
        self.user_devs: dict[tuple[int, int], int] = {}      # (dev, cg) -> shared users there
        self.member_users: dict[tuple[int, int], int] = {}   # (dev, cg) -> e.users there
        self.resident = self.dup = self.seeded = self.shared = 0
        self.version = 0                # bumped when a (mount, cgroup) pair appears or goes
        self.dirty_devs: set[int] = set()   # devs whose holders changed since taken
        self._derived: dict[str, tuple[int, object]] = {}

    def apply(self, c: Contribution, sign: int) -> None:
        cgs = self.cg
        is_shared = c.shared_pages > 0
        for cg, (res, dup, seeded) in c.per_cg.items():
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
        for cg in set(c.per_cg) | set(c.users):
            a = cgs[cg]
            if a.files == 0 and a.uses == 0:
                del cgs[cg]
        if c.mount is not None:
            self._apply_mount(c, sign, is_shared)
        self.resident += sign * c.resident
        self.dup += sign * c.dup
        self.seeded += sign * c.seeded
        self.shared += sign * c.shared_pages

    def _apply_mount(self, c: Contribution, sign: int, is_shared: bool) -> None:
        dev = c.mount.dev
        if sign > 0 and self.mounts.get(dev) is not c.mount:
            self.mounts[dev] = c.mount
            self.version += 1
        self.dirty_devs.add(dev)
        self.mount_resident[dev] = self.mount_resident.get(dev, 0) + sign * c.resident
        self.mount_dup[dev] = self.mount_dup.get(dev, 0) + sign * c.dup
        holders = self.holders
        for cg, (res, dup, _) in c.per_cg.items():
            h = holders.get((dev, cg))
            if h is None:
                h = holders[(dev, cg)] = [0, 0, 0, 0]
                self.version += 1
            own = h[2] > h[3]
            h[0] += sign * res
            h[1] += sign * dup
            h[2] += sign
            if is_shared:
                h[3] += sign
            if own != (h[2] > h[3]):        # reads the mount's own caches or stops
                self.version += 1
            if h[2] == 0:
                del holders[(dev, cg)]
                self.version += 1
        for cg in c.users:
            _count(self.user_devs, (dev, cg), sign)
        for cg in c.member_users:
            _count(self.member_users, (dev, cg), sign)
        if c.users or c.member_users:
            self.version += 1

    def _cached(self, name: str, build):
        hit = self._derived.get(name)
        if hit is None or hit[0] != self.version:
            hit = self._derived[name] = (self.version, build())
        return hit[1]

    # ---------------------------------------------------------- derived per refresh
    def cgroup_devs(self) -> dict[int, set[int]]:
        """cg -> devs of the mounts it holds pages of or uses shared inodes on."""
        return self._cached("cgroup_devs", self._cgroup_devs)

    def _cgroup_devs(self) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for dev, cg in self.holders.keys() | self.user_devs.keys():
            out.setdefault(cg, set()).add(dev)
        return out

    def mount_cgroups(self) -> dict[int, set[int]]:
        """dev -> cgroups holding pages there, or users of its shared inodes."""
        return self._cached("mount_cgroups", self._mount_cgroups)

    def _mount_cgroups(self) -> dict[int, set[int]]:
        out: dict[int, set[int]] = {}
        for dev, cg in self.holders.keys() | self.member_users.keys():
            out.setdefault(dev, set()).add(cg)
        return out

    def readers(self) -> dict[tuple, set[int]]:
        """cache -> cgroups holding pages of files that read through it: the
        image file of file-backed/loop mounts, a mount's compressed-data cache."""
        return self._cached("readers", self._readers)

    def _readers(self) -> dict[tuple, set[int]]:
        out: dict[tuple, set[int]] = {}
        for (dev, cg), (_, _, n, n_shared) in self.holders.items():
            img = image_key(self.mounts.get(dev))
            if img:
                out.setdefault(img, set()).add(cg)
            if n > n_shared and dev:
                out.setdefault(managed_key(dev), set()).add(cg)
        return out


class IoSums:
    """Per cgroup: inserted, evicted, readahead pages and read_folio calls over
    the run, summed over the FileIO rows, with the rows count.  Rows that are
    the same objects as at the previous refresh are skipped (set operations
    on ids; the previous rows are kept alive, so ids are unique)."""

    def __init__(self):
        self.rows: dict[int, object] = {}      # id -> FileIO
        self.cg: dict[int, list[int]] = {}     # cg -> [inserted, evicted, readahead, folio, rows]

    def update(self, io: list) -> None:
        new = dict(zip(map(id, io), io))
        old = self.rows
        for i in old.keys() - new.keys():
            self._add(old[i], -1)
        for i in new.keys() - old.keys():
            self._add(new[i], +1)
        self.rows = new

    def _add(self, f, sign: int) -> None:
        v = self.cg.get(f.cgroup_id)
        if v is None:
            v = self.cg[f.cgroup_id] = [0, 0, 0, 0, 0]
        v[0] += sign * f.inserted_pages
        v[1] += sign * f.evicted_pages
        v[2] += sign * f.readahead_pages
        v[3] += sign * f.read_folio_count
        v[4] += sign
        if v[4] == 0:
            del self.cg[f.cgroup_id]
