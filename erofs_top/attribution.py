"""Per-cgroup, per-mount and node accumulators, kept between refreshes.

Each live entry contributes a ``Contribution`` (what it adds to every
accumulator); a refresh subtracts the old contribution of each entry that
changed and adds its new one, so the sums stay equal to a walk over all
entries.  Everything is an integer (fair shares of shared pages are exact
fractions): a sum kept by deltas equals a sum made from scratch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
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
    __slots__ = ("per_cg", "is_shared", "users", "shared_pages", "devs", "refs", "mount_dev",
                 "mount_cgroups", "resident", "dup", "seeded", "rank", "caches")

    def __init__(self, e: Entry):
        resident = e.resident_pages()
        dup = sum(m.bit_count() for m in e.dup.values())
        per_cg: dict[int, list[int]] = {}       # cg -> [resident, dup, seeded]
        seeded = 0
        for c, owners in e.chunks.items():
            dmask = e.dup.get(c, 0)
            smask = e.seeded.get(c, 0)
            for cg, m in owners.items():
                v = per_cg.get(cg)
                if v is None:
                    v = per_cg[cg] = [0, 0, 0]
                v[0] += m.bit_count()
                v[1] += (m & dmask).bit_count()
                v[2] += (m & smask).bit_count()
            if smask:
                seeded += (smask & e.union.get(c, 0)).bit_count()
        owners_of_file = set(per_cg)
        self.per_cg = per_cg
        self.is_shared = bool(e.shared_mapping)
        self.users: tuple[int, ...] = ()
        self.shared_pages = 0
        if e.shared_mapping:
            self.users = tuple(sorted(set(e.users) or owners_of_file))
            self.shared_pages = resident
        dev_str = e.mount.dev_str if e.mount else None
        self.devs = {(cg, dev_str) for cg in owners_of_file | set(self.users)} \
            if dev_str is not None else set()
        self.refs = owners_of_file | set(self.users)
        self.mount_dev = e.mount.dev if e.mount else None
        self.mount_cgroups = owners_of_file | set(e.users)
        self.resident, self.dup, self.seeded = resident, dup, seeded
        self.rank = (-resident, -dup, e.dev, e.ino, e.shared_mapping)
        # the caches it reads through and the cgroups reading them (savings)
        self.caches: list[tuple] = []
        img = image_key(e.mount)
        if img:
            self.caches.append(img)
        if e.dev and not e.shared_mapping:
            self.caches.append(managed_key(e.dev))


@dataclass
class CgroupAcc:
    """One cgroup's sums (pages)."""
    resident: int = 0
    dup: int = 0
    shared: int = 0
    fair_pages: int = 0             # pages it alone holds (non-shared entries)
    fair_shared: Fraction = Fraction(0)   # its equal share of shared pages
    seeded: int = 0
    files: int = 0
    refs: int = 0                   # live entries it owns pages of or uses
    devs: dict[str, int] = field(default_factory=dict)   # dev_str -> entries

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
    """Sums over the live entries' contributions."""

    def __init__(self):
        self.cg: dict[int, CgroupAcc] = {}
        self.mount_resident: dict[int, int] = {}
        self.mount_dup: dict[int, int] = {}
        self.mount_cgroups: dict[int, dict[int, int]] = {}    # dev -> cg -> entries
        self.holders: dict[tuple[int, int], list[int]] = {}   # (dev, cg) -> [res, dup]
        self.readers: dict[tuple, dict[int, int]] = {}        # cache -> cg -> entries
        self.resident = self.dup = self.seeded = self.shared = 0

    def apply(self, c: Contribution, sign: int) -> None:
        cgs = self.cg
        for cg in c.refs:
            a = cgs.get(cg)
            if a is None:
                a = cgs[cg] = CgroupAcc()
            a.refs += sign
        for cg, (res, dup, seeded) in c.per_cg.items():
            a = cgs[cg]
            a.resident += sign * res
            a.dup += sign * dup
            a.seeded += sign * seeded
            a.files += sign
            if not c.is_shared:     # its pages are its own: the fair share is all of them
                a.fair_pages += sign * res
        if c.users:
            share = Fraction(c.shared_pages, len(c.users))
            for cg in c.users:
                a = cgs[cg]
                a.shared += sign * c.shared_pages
                a.fair_shared += sign * share
        for cg, dev_str in c.devs:
            _count(cgs[cg].devs, dev_str, sign)
        for cg in c.refs:
            if cgs[cg].refs == 0:
                del cgs[cg]
        self._apply_mount(c, sign)
        self.resident += sign * c.resident
        self.dup += sign * c.dup
        self.seeded += sign * c.seeded
        self.shared += sign * c.shared_pages

    def _apply_mount(self, c: Contribution, sign: int) -> None:
        for key in c.caches:
            rd = self.readers.setdefault(key, {})
            for cg in c.per_cg:
                _count(rd, cg, sign)
            if not rd:
                del self.readers[key]
        dev = c.mount_dev
        if dev is None:
            return
        self.mount_resident[dev] = self.mount_resident.get(dev, 0) + sign * c.resident
        self.mount_dup[dev] = self.mount_dup.get(dev, 0) + sign * c.dup
        mc = self.mount_cgroups.setdefault(dev, {})
        for cg in c.mount_cgroups:
            _count(mc, cg, sign)
        for cg, (res, dup, _) in c.per_cg.items():
            h = self.holders.setdefault((dev, cg), [0, 0])
            h[0] += sign * res
            h[1] += sign * dup
            if h == [0, 0]:
                del self.holders[(dev, cg)]
