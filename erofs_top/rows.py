"""The Model's rows from the aggregator's accumulators: containers, mounts,
the top files, totals.  Built fresh at every refresh (O(containers + mounts +
files listed)); the sums they show are kept by erofs_top/aggregate.py."""
from __future__ import annotations

from bisect import bisect_left
from operator import attrgetter

from .imageview import image_view
from .model import Container, File, Health, Model, Mount, MountHolder, Totals
from .readings import UNKNOWN_CGROUP, Readings, kdev_str

UNKNOWN_CGROUP_PATH = "(unknown)"
CONTENT_ID_HEX = 16        # content_id shows 64 bits of the digest

_NAME_FIELDS = ("namespace", "image", "image_digest", "snapshot_key", "pod_namespace",
                "pod_name", "container_name")


_NO_NAMES = ("",) * len(_NAME_FIELDS)
_names = attrgetter(*_NAME_FIELDS)
_NO_IO = (0, 0, 0, 0, 0)
_dev_str = attrgetter("dev_str")


def _runtime_names(ci) -> tuple[str, ...]:
    """Runtime names a cgroup resolver gave, in _NAME_FIELDS' order ("" when
    absent or None): a CgroupInfo's fields read in C, any other object's one
    by one."""
    if ci is None:
        return _NO_NAMES
    try:
        names = _names(ci)
    except AttributeError:
        return tuple(getattr(ci, k, "") or "" for k in _NAME_FIELDS)
    return names if None not in names else tuple(n or "" for n in names)


def content_id(key: str) -> str:
    """"sha256:<64 hex>:<size>" or "img:<24 hex>" (entries.image_file_key) -> "sha256:<16 hex>" / "img:<16 hex>"."""
    if not key:
        return ""
    scheme, digest = key.split(":")[:2]
    return f"{scheme}:{digest[:CONTENT_ID_HEX]}"


def container_rows(agg, readings: Readings, cgroups, saved, health: Health,
                   totals: Totals, page: int) -> list[Container]:
    """A row per cgroup with pages or I/O, largest first.  Every row is made
    anew (at 1 % churn nearly every one of 1,000 containers changed), so each
    costs little: Container's fields positional (tests/unit/test_container_rows.py
    checks their order against the dataclass), the names read in C, the
    totals' I/O summed once."""
    io = agg.io.by_group
    accs = agg.acc.cg
    mounts_of = _cgroup_mounts(agg)
    potential = saved.potential.by_cgroup
    containers: list[Container] = []
    add = containers.append
    inserted = evicted = 0
    unresolved = 0
    for cg in sorted(accs.keys() | io.keys()):
        a = accs.get(cg)
        ins, ev, ra, rf, _ = io.get(cg, _NO_IO)
        if cg == UNKNOWN_CGROUP:
            info_path, runtime, cid, pod, names = UNKNOWN_CGROUP_PATH, "", "", "", _NO_NAMES
        else:
            ci = cgroups.resolve(cg)
            info_path, runtime, cid, pod = ci.path, ci.runtime, ci.container_id, ci.pod_uid
            if not ci.resolved:
                unresolved += 1
            names = _runtime_names(ci)
        mounts = mounts_of.get(cg)
        if a is None:
            sums = (0, 0, 0, 0)
            seeded = files = 0
        else:
            sums = (a.resident * page, a.dup * page, a.shared * page, round(a.fair * page))
            seeded, files = a.seeded * page, a.files
        add(Container(cg, info_path, runtime, cid, pod, *sums, ins * page, ev * page,
                      ra * page, rf, seeded, files, list(mounts) if mounts else [], *names,
                      potential.get(cg, 0) * page))
        inserted += ins
        evicted += ev
    health.unresolved_cgroups += unresolved
    totals.inserted_bytes += inserted * page
    totals.evicted_bytes += evicted * page
    containers.sort(key=_container_order)
    return containers


def _container_order(c: Container) -> tuple:
    return (-c.resident_bytes, c.cgroup, c.cgroup_id)


def _holder_key(resident_bytes: int, cg: int) -> int:
    """A holder row's place among its mount's, as one int (largest first,
    then by cgroup id, a u64): -resident_bytes, cg in one, ordered in C."""
    return (-resident_bytes << 64) + cg


class MountHolders:
    """One mount's holder rows, largest first, kept between refreshes:
    a changed (mount, cgroup) pair moves its row, nothing else is sorted.
    ``keys`` (_holder_key of each row, ascending) beside ``listed`` (the
    rows in that order): an int per pair, not an (order, cgroup, row)
    tuple and a negated int (~56 B a pair less: 123,000 pairs at 250,000
    files)."""
    __slots__ = ("rows", "keys", "listed")

    def __init__(self):
        self.rows: dict[int, MountHolder] = {}      # cg -> its row
        self.keys: list[int] = []                   # _holder_key of listed's rows, sorted
        self.listed: list[MountHolder] = []

    def put(self, cg: int, h: list[int] | None, page: int) -> bool:
        """The row of cgroup cg from its sums ``h`` (None: gone); False if
        it stands as it was.  (_holder_key inline: a call less per key.)"""
        rows = self.rows
        old = rows.get(cg)
        keys, listed = self.keys, self.listed
        if old is not None:
            was = old.resident_bytes
            if h is not None and h[0] * page == was:
                dup = h[1] * page
                if dup == old.duplicate_bytes:
                    return False
                # the same place in the order: the row is replaced there
                at = bisect_left(keys, (-was << 64) + cg)
                listed[at] = rows[cg] = MountHolder(cg, was, dup)
                return True
            at = bisect_left(keys, (-was << 64) + cg)
            del rows[cg]
            del keys[at]
            del listed[at]
        if h is not None and h[0]:
            resident = h[0] * page
            rows[cg] = row = MountHolder(cg, resident, h[1] * page)
            k = (-resident << 64) + cg
            at = bisect_left(keys, k)
            keys.insert(at, k)
            listed.insert(at, row)
            return True
        return old is not None


def _cgroup_mounts(agg) -> dict[int, list[str]]:
    """cg -> the names of its mounts, sorted: rebuilt for the cgroups whose
    mounts changed since the previous refresh (a dev's name is its own);
    none kept for the exporter (Aggregator.exported_rows_only)."""
    acc = agg.acc
    if agg.exported_rows_only:
        acc.dirty_cgs = set()
        agg.cgroup_mounts = {}
        return agg.cgroup_mounts
    cache = agg.cgroup_mounts
    devs_of = acc.cgroup_devs()
    mount_of = acc.mounts.__getitem__
    for cg in acc.dirty_cgs:
        devs = devs_of.get(cg)
        if devs:        # (~60 mounts a cgroup at 250,000 files x 1,000: their names in C)
            cache[cg] = sorted(map(_dev_str, map(mount_of, devs)))
        else:
            cache.pop(cg, None)
    acc.dirty_cgs = set()
    return cache


def _holder_rows(agg, page: int) -> dict[int, list[MountHolder]]:
    """Per mount, its holders largest first: the (mount, cgroup) pairs
    changed since the previous refresh are updated, the rest kept; none
    for the exporter (Aggregator.exported_rows_only)."""
    acc = agg.acc
    if agg.exported_rows_only:
        acc.dirty_pairs = set()
        agg.holder_rows = {}
        return {}
    cache: dict[int, MountHolders] = agg.holder_rows
    if not cache:           # a first refresh (a full pass): every row new, made in bulk
        agg.holder_rows = cache = new_holder_rows(acc, page)
        acc.dirty_pairs = set()
        return {dev: list(hs.listed) for dev, hs in cache.items()}
    dirty = set()
    holders = acc.holders
    for dev, cg in acc.dirty_pairs:
        hs = cache.get(dev)
        if hs is None:
            hs = cache[dev] = MountHolders()
            dirty.add(dev)          # (dropped below if it stays empty)
        per = holders.get(dev)      # (acc.pair(dev, cg) inline)
        if hs.put(cg, None if per is None else per.get(cg), page):
            dirty.add(dev)
    acc.dirty_pairs = set()
    for dev in dirty:
        if not cache[dev].listed:
            del cache[dev]
    return {dev: list(hs.listed) for dev, hs in cache.items()}


def new_holder_rows(acc, page: int) -> dict[int, MountHolders]:
    """What MountHolders.put of every changed pair (``acc.dirty_pairs``)
    makes when no row is kept: each mount's rows sorted once, not
    inserted one by one (61,000 pairs at 250,000 files), the pairs walked
    in the sums' order (a changed pair that went has no row); a mount
    without a row with pages gets none."""
    dirty = acc.dirty_pairs
    cache: dict[int, MountHolders] = {}
    for dev, per in acc.holders.items():
        # (_holder_key(r * page, cg) inline, row): keys are unique in a mount (one per cgroup)
        rows = [((-r * page << 64) + cg, MountHolder(cg, r * page, h[1] * page))
                for cg, h in per.items() if (r := h[0]) and (dev, cg) in dirty]
        if rows:
            rows.sort()
            hs = cache[dev] = MountHolders()
            hs.keys = [k for k, _ in rows]
            hs.listed = [row for _, row in rows]
            hs.rows = {row.cgroup_id: row for row in hs.listed}
    return cache


def mount_rows(agg, readings: Readings, mounts, saved, totals: Totals,
               page: int) -> list[Mount]:
    """A row per mount (every one made anew: at 1 % churn nearly every one
    of 1,000 mounts changed), Mount's fields positional
    (tests/unit/test_container_rows.py checks them against field names)."""
    acc = agg.acc
    holders_of = _holder_rows(agg, page)
    rows: list[Mount] = []
    add = rows.append
    cgroups_of = acc.mount_cgroups()
    backing = readings.backing_pages
    resident, dup = acc.mount_resident, acc.mount_dup
    potential, now = saved.potential.by_dev, saved.potential_now.by_dev
    domains = saved.potential_domains.by_dev
    backing_total = 0
    for m in mounts.mounts():
        img = m.image
        dev = m.dev
        backing_pages = backing.get((m.backing_dev, m.backing_ino), 0) if m.backing_ino else 0
        backing_bytes = max(0, backing_pages) * page
        now_pages = now.get(dev, 0)
        image_fields = (img.uuid, img.volume_name) if img else ("", "")
        add(Mount(
            m.dev_str, m.mountpoint, m.source, m.backing, m.backing_file, m.image_id,
            *image_fields, m.inode_share, m.directio,
            img.ishare_xattrs if img else False, img.compressed if img else False,
            resident.get(dev, 0) * page, dup.get(dev, 0) * page, backing_bytes,
            len(cgroups_of.get(dev, ())), False, potential.get(dev, 0) * page,
            now_pages * page, max(0, domains.get(dev, 0) - now_pages) * page,
            holders_of.get(dev) or [], getattr(m, "layer_digest", ""),
            getattr(m, "snapshot_id", ""), list(getattr(m, "images", ()))))
        backing_total += backing_bytes
    totals.backing_resident_bytes += backing_total
    return rows


def file_rows(agg, top: list[tuple], page: int) -> list[File]:
    """Rows only for the files listed (a node may have 250k resident files)."""
    files = []
    for neg_res, neg_dup, dev, ino, mapping in top:
        key = ("shared", mapping) if mapping else (dev, ino)
        e = agg.entries[key]
        c = agg.contrib[key]
        if e.shared_mapping:
            copies = max(1, e.used_members)    # inodes served by the one shared copy
        else:
            copies = len(agg.ckey_keys.get(e.content_key, ())) or 1 if e.content_key else 1
        files.append(File(
            dev=kdev_str(dev), ino=ino, path=e.info.path if e.info else "",
            content_id=content_id(e.content_key), size=e.info.size if e.info else 0,
            resident_bytes=-neg_res * page, duplicate_bytes=-neg_dup * page,
            copies=copies, cgroups=sorted(set(c.cgroups()) | set(e.users)),
            shared=bool(e.shared_mapping)))
    return files


def _fill_totals(totals: Totals, agg, saved, readings: Readings, page: int) -> None:
    acc = agg.acc
    totals.resident_bytes = acc.resident * page
    totals.duplicate_bytes = acc.dup * page
    totals.redundant_bytes = agg.redundant_pages * page
    totals.potential_savings_bytes = saved.potential.pages * page
    totals.potential_savings_file_bytes = saved.potential.file_pages * page
    totals.potential_savings_image_cache_bytes = saved.potential.image_pages * page
    totals.potential_savings_compressed_cache_bytes = saved.potential.compressed_pages * page
    totals.potential_savings_now_bytes = saved.potential_now.pages * page
    totals.potential_savings_domains_bytes = (saved.potential_domains.pages
                                              - saved.potential_now.pages) * page
    totals.potential_savings_rebuild_bytes = (saved.potential.pages
                                              - saved.potential_domains.pages) * page
    totals.shared_bytes = acc.shared * page
    totals.sharing_saved_bytes = (saved.realized_file_pages + saved.realized_image_pages
                                  + saved.realized_compressed_pages) * page
    totals.sharing_saved_compressed_cache_bytes = saved.realized_compressed_pages * page
    totals.sharing_saved_file_bytes = saved.realized_file_pages * page
    totals.sharing_saved_image_cache_bytes = saved.realized_image_pages * page
    totals.page_cache_bytes = readings.page_cache_bytes


def build_model(agg, readings: Readings, mounts, cgroups, saved, health: Health, *,
                tier: str, started_at: float, kernel: str, top: list[tuple]) -> Model:
    page = readings.page_size
    totals = Totals()
    containers = container_rows(agg, readings, cgroups, saved, health, totals, page)
    mounts_out = mount_rows(agg, readings, mounts, saved, totals, page)
    files = file_rows(agg, top, page)
    _fill_totals(totals, agg, saved, readings, page)
    health.files_total = len(agg.contrib)
    health.seeded_bytes = agg.acc.seeded * page
    if health.unresolved_mounts:
        health.warnings.append(f"{health.unresolved_mounts} device(s) with resident pages "
                               f"match no current EROFS mount (unmounted?)")
    if health.update_failures:
        health.warnings.append(f"BPF maps refused {health.update_failures} update(s): "
                               f"maps full, numbers are low")
    return Model(tier=tier, started_at=started_at, ended_at=readings.taken_at, page_size=page,
                 containers=containers, mounts=mounts_out, files=files,
                 totals=totals, health=health, kernel=kernel,
                 images=image_view(containers, mounts_out))
