"""Readings + resolvers -> Model.  The only place that computes an attribution.

Pure: no bcc, no /proc; all I/O goes through the resolvers passed in.

Definitions (docs/json.md has them for users):
- resident: a page is resident; it belongs to the cgroup that inserted it (the
  memcg the kernel charged).  Shared (inode_share) pages too: the kernel charges
  the first reader, later readers pay nothing.
- duplicate: a resident page (file content C, page index i) such that page i of
  content C is also resident in another inode.
- redundant: for each (C, i) resident k >= 2 times, k - 1 pages.
- potential savings: the part of redundant that inode_share could remove under
  the kernel's rules: regular files of equal size (implied by equal content),
  same address_space operations (plain file-backed / plain loop-or-block /
  compressed), i.e. redundant computed within those classes only.
- shared (full tier): resident pages of a shared inode count in shared_bytes of
  every cgroup that uses it (opened, read or mapped one of its members); fair
  share splits each such page equally among the users; sharing saved counts,
  per shared page, the copies the kernel did not have to cache: distinct member
  inodes in use - 1 (each would have held its own copy without sharing).
"""
from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field

from .imageview import image_view
from .model import (Container, File, Health, MapUsage, Model, Mount, MountHolder, Totals)
from .readings import CHUNK_PAGES, Readings, UNKNOWN_CGROUP, kdev_str
from .savings import (Copy, Savings, potential, realized_cache_pages, realized_file_pages,
                      touched_copies)
from .resolve.base import (AOPS_BLOCK, AOPS_COMPRESSED, AOPS_FILEIO, ContentResolver,
                           CgroupResolver, FileInfo, MountInfo, MountResolver)

UNKNOWN_CGROUP_PATH = "(unknown)"
CONTENT_ID_HEX = 16        # content_id shows 64 bits of the digest


@dataclass
class _Entry:
    """One cached copy of file content: an EROFS inode, or a shared inode."""
    dev: int
    ino: int
    chunks: dict[int, dict[int, int]] = field(default_factory=dict)  # chunk -> cg -> mask
    seeded: dict[int, int] = field(default_factory=dict)             # chunk -> mask
    mount: MountInfo | None = None
    info: FileInfo | None = None
    shared_mapping: int = 0           # != 0: a shared inode (full tier)
    users: dict[int, int] = field(default_factory=dict)   # cg -> member inodes it used
    used_members: int = 0
    content_key: str = ""
    union: dict[int, int] = field(default_factory=dict)   # chunk -> mask of resident pages
    dup: dict[int, int] = field(default_factory=dict)     # chunk -> mask of duplicate pages
    touched: dict[tuple[int, int], dict[int, int]] | None = None   # shared: member -> chunks

    def resident_pages(self) -> int:
        return sum(m.bit_count() for m in self.union.values())


def _popcount_map(masks: dict[int, int]) -> int:
    return sum(m.bit_count() for m in masks.values())


def _content_id(key: str) -> str:
    """"sha256:<64 hex>:<size>" or "img:<64 hex>" -> "sha256:<16 hex>" / "img:<16 hex>"."""
    if not key:
        return ""
    scheme, digest = key.split(":")[:2]
    return f"{scheme}:{digest[:CONTENT_ID_HEX]}"


def _content_keys(entries: list[_Entry], content: ContentResolver) -> int:
    """Give entries that could share content a content key; returns how many
    identities are still pending (digest rate limit)."""
    pending = 0
    by_size: dict[int, list[_Entry]] = defaultdict(list)
    for e in entries:
        if e.info and e.info.regular and e.info.size > 0:
            by_size[e.info.size].append(e)
    for size, group in by_size.items():
        if len(group) < 2:
            continue
        images = {(e.mount.image_id if e.mount else "", e.ino) for e in group}
        if len(images) == 1 and next(iter(images))[0]:
            # the same image (mounted twice): same nid is the same content, no hashing
            img, nid = next(iter(images))
            key = "img:" + hashlib.sha256(f"{img}:{nid}".encode()).hexdigest()
            for e in group:
                e.content_key = key
            continue
        # ELF build-ids: a cheap first check; different build-ids are different content
        build_ids = {}
        for e in group:
            build_ids[id(e)] = content.build_id(e.mount, e.ino) if e.mount else None
        counts: dict[str, int] = defaultdict(int)
        for b in build_ids.values():
            if b:
                counts[b] += 1
        for e in group:
            b = build_ids[id(e)]
            if b and counts[b] == 1 and all(x for x in build_ids.values()):
                e.content_key = ""          # unique build-id among ELF peers: unique content
                continue
            if e.mount is None:
                continue
            fp = content.fingerprint(e.mount, e.ino)
            digest = fp or content.digest(e.mount, e.ino)
            if digest is None:
                pending += 1
                continue
            e.content_key = f"sha256:{digest}:{size}"
    return pending


def _aops(e: _Entry) -> str:
    if e.info:
        return e.info.aops
    if e.mount is None:
        return "?"
    return AOPS_FILEIO if e.mount.backing == "file" else AOPS_BLOCK


def _duplicates(entries: list[_Entry]) -> tuple[int, list[list[_Entry]]]:
    """Fill e.dup for entries sharing a content key.  Returns (redundant pages,
    the groups inode_share could merge: same content, same aops class; shared
    inodes of one content in several groups sit in different domains)."""
    redundant = 0
    mergeable: list[list[_Entry]] = []
    by_key: dict[str, list[_Entry]] = defaultdict(list)
    for e in entries:
        if e.content_key:
            by_key[e.content_key].append(e)
    for group in by_key.values():
        if len(group) < 2:
            continue
        chunk_ids = set().union(*(e.union.keys() for e in group))
        for c in chunk_ids:
            masks = [e.union.get(c, 0) for e in group]
            any_mask = once = twice = 0
            for m in masks:
                any_mask |= m
                twice |= once & m      # page resident in >= 2 entries
                once |= m
            redundant += sum(m.bit_count() for m in masks) - any_mask.bit_count()
            if twice:
                for e, m in zip(group, masks):
                    d = m & twice
                    if d:
                        e.dup[c] = d
        by_class: dict[str, list[_Entry]] = defaultdict(list)
        for e in group:
            # an inode_share mount's own-inode pages are private (splice
            # readers): no remount merges them
            if e.shared_mapping or not (e.mount and e.mount.inode_share):
                by_class[_aops(e)].append(e)
        mergeable += [members for members in by_class.values() if len(members) >= 2]
    return redundant, mergeable


def _image_key(m: MountInfo | None) -> tuple[int, int] | None:
    """The image file whose host page cache a file-backed or loop mount reads."""
    if m is None or m.backing not in ("file", "loop") or not m.backing_ino:
        return None
    return (m.backing_dev, m.backing_ino)


def _page_map(content: ContentResolver, mount: MountInfo | None, ino: int):
    fn = getattr(content, "image_pages", None)      # resolvers without it: unknown
    return fn(mount, ino) if (fn is not None and mount is not None) else None


@dataclass
class _StageGroups:
    """Copies per mergeable group for each stage of the prediction: ``now``
    (a: stock mounts of images with fingerprints join one shared inode),
    ``domains`` (a + c: the shared inodes of one content in different domains
    merge too), ``rebuild`` (a + b + c: images without fingerprints rebuilt).
    Shared inodes come first, largest first: they keep their pages."""
    now: list[list[Copy]]
    domains: list[list[Copy]]
    rebuild: list[list[Copy]]


def _stage_groups(mergeable: list[list[_Entry]], copy) -> _StageGroups:
    out = _StageGroups([], [], [])
    for members in mergeable:
        shared = sorted((e for e in members if e.shared_mapping),
                        key=lambda e: (-e.resident_pages(), e.shared_mapping))
        stock = [e for e in members if not e.shared_mapping]
        copies = {id(e): copy(e) for e in shared + stock}
        ready = [copies[id(e)] for e in stock if copies[id(e)].fingerprinted]
        first = [copies[id(e)] for e in shared]
        out.now.append(first[:1] + ready)
        out.domains.append(first + ready)
        out.rebuild.append(first + [copies[id(e)] for e in stock])
    return out


@dataclass
class _Saved:
    potential: Savings
    potential_now: Savings
    potential_domains: Savings          # stages a + c (see _StageGroups)
    realized_file_pages: int = 0
    realized_image_pages: int = 0
    realized_compressed_pages: int = 0


MANAGED_CACHE_INO = 0     # a mount's compressed-data cache: new_inode(sb), i_ino 0


def _managed_key(dev: int) -> tuple:
    return ("managed", dev)


def _managed_map(content: ContentResolver, mount: MountInfo | None, ino: int):
    fn = getattr(content, "managed_pages", None)
    return fn(mount, ino) if (fn is not None and mount is not None) else None


def _cache_owners(live: list[_Entry], readings: Readings):
    """Who paid for each page of each cache a copy reads through: image files
    (ground truth) and compressed-data caches (the probes' own entries, ino 0);
    and which cgroups read each cache (own EROFS pages of its mounts)."""
    owned: dict[tuple, dict[int, int]] = dict(readings.image_cache_owners)
    readers: dict[tuple, set[int]] = defaultdict(set)
    for e in live:
        cgs = set().union(*e.chunks.values()) if e.chunks else set()
        img = _image_key(e.mount)
        if img:
            readers[img] |= cgs
        if e.dev and not e.shared_mapping:
            readers[_managed_key(e.dev)] |= cgs
        if e.ino == MANAGED_CACHE_INO and not e.shared_mapping:
            pages = owned.setdefault(_managed_key(e.dev), {})
            for c, owners in e.chunks.items():
                for cg, mask in owners.items():
                    for p in range(CHUNK_PAGES):
                        if mask >> p & 1:
                            pages[c * CHUNK_PAGES + p] = cg
    return owned, readers


def _savings(live: list[_Entry], mergeable: list[list[_Entry]], readings: Readings,
             mounts: MountResolver, content: ContentResolver, health: Health) -> _Saved:
    """Potential (stock mounts) and realized (inode_share) savings: savings.py."""
    owned, readers = _cache_owners(live, readings)

    def copy(e: _Entry) -> Copy:
        img = _image_key(e.mount)
        mm = _managed_map(content, e.mount, e.ino)
        return Copy(key=(e.dev, e.ino, e.shared_mapping), union=e.union, owners=e.chunks,
                    image=img, page_map=_page_map(content, e.mount, e.ino) if img else None,
                    fingerprinted=bool(e.mount and e.mount.image and e.mount.image.ishare_xattrs),
                    managed=None if mm is None else (_managed_key(e.dev), mm))

    stage_groups = _stage_groups(mergeable, copy)
    groups = stage_groups.rebuild
    grouped = {id(e) for members in mergeable for e in members}
    shared = [e for e in live if e.shared_mapping]
    # cache pages other resident files need: they stay whatever sharing does
    other_kept: dict[tuple, set[int]] = defaultdict(set)
    devs = {c.key[0] for g in groups for c in g} | {d for e in shared for d, _ in (e.touched or {})}
    for e in live:
        if e.dev not in devs or id(e) in grouped or e.shared_mapping:
            continue
        for key, pm in ((_image_key(e.mount), _page_map(content, e.mount, e.ino)),
                        (_managed_key(e.dev), _managed_map(content, e.mount, e.ino))):
            for ps in (pm or {}).values() if key else ():
                other_kept[key].update(ps)
    out = _Saved(potential(groups, owned, readers, other_kept),
                 potential(stage_groups.now, owned, readers, other_kept),
                 potential(stage_groups.domains, owned, readers, other_kept))
    realized_groups = []
    for e in shared:
        if e.touched is None:       # no per-member pages: every member in use holds all
            out.realized_file_pages += e.resident_pages() * max(0, e.used_members - 1)
            continue
        out.realized_file_pages += realized_file_pages(e.union, e.touched)

        def managed_of(mem):
            mm = _managed_map(content, mounts.by_dev(mem[0]), mem[1])
            return None if mm is None else (_managed_key(mem[0]), mm)
        realized_groups.append(touched_copies(
            e.union, e.touched, lambda mem: _image_key(mounts.by_dev(mem[0])),
            lambda mem: _page_map(content, mounts.by_dev(mem[0]), mem[1]), managed_of))
    out.realized_image_pages, out.realized_compressed_pages = realized_cache_pages(
        realized_groups, owned, readers, other_kept)
    unmapped = sum(1 for g in groups for c in g if c.managed is not None and c.managed[1] is None)
    if unmapped:
        health.warnings.append(f"{unmapped} compressed file copies could not be mapped to their "
                               f"compressed clusters (dump.erofs missing?): their compressed-data "
                               f"cache is not in the savings")
    return out


_NAME_FIELDS = ("namespace", "image", "image_digest", "snapshot_key", "pod_namespace",
                "pod_name", "container_name")


def _runtime_names(ci) -> dict[str, str]:
    """Runtime names a cgroup resolver gave (CgroupInfo fields; "" when absent)."""
    return {k: getattr(ci, k, "") or "" for k in _NAME_FIELDS} if ci is not None else {}


def aggregate(readings: Readings, mounts: MountResolver, cgroups: CgroupResolver,
              content: ContentResolver, *, tier: str, started_at: float,
              files_cap: int = 200, kernel: str = "") -> Model:
    page = readings.page_size
    health = Health(
        maps=[MapUsage(name, used, cap, fails) for name, (used, cap, fails)
              in sorted(readings.maps.items())],
        lost_events=readings.lost_events,
        owner_overflow_pages=readings.owner_overflow_pages,
        probes_attached=readings.probes_attached,
        bpf_run_time_ns=dict(readings.bpf_run_time_ns),
        bpf_run_count=dict(readings.bpf_run_count),
        warnings=list(readings.warnings),
        files_cap=files_cap,
    )
    health.update_failures = sum(f for _, _, f in readings.maps.values())

    # ---- entries: one per cached copy
    entries: dict[tuple, _Entry] = {}
    for pc in readings.chunks:
        e = entries.get((pc.dev, pc.ino))
        if e is None:
            e = entries[(pc.dev, pc.ino)] = _Entry(pc.dev, pc.ino)
        owners = e.chunks.setdefault(pc.chunk, {})
        for cg, mask in pc.owners.items():
            if mask:
                owners[cg] = owners.get(cg, 0) | mask
        if pc.seeded_mask:
            e.seeded[pc.chunk] = e.seeded.get(pc.chunk, 0) | pc.seeded_mask
    for si in readings.shared:
        # shared pages live on the pseudo_erofs superblock: key by mapping, name by a member
        members = sorted(si.members)
        dev, ino = members[0] if members else (0, 0)
        e = entries[("shared", si.mapping)] = _Entry(dev, ino, shared_mapping=si.mapping)
        for c, owners in si.chunks.items():
            e.chunks[c] = {cg: m for cg, m in owners.items() if m}
        used = set()
        for cg, ms in si.users.items():
            e.users[cg] = len(ms)
            used |= ms
        e.used_members = len(used)
        e.touched = si.touched

    unresolved_devs = set()
    for e in entries.values():
        for c, owners in e.chunks.items():
            u = 0
            for m in owners.values():
                u |= m
            if u:
                e.union[c] = u
        e.mount = mounts.by_dev(e.dev) if e.dev else None
        if e.mount is None:
            if e.dev:
                unresolved_devs.add(e.dev)
        else:
            e.info = content.file_info(e.mount, e.ino)
    live = [e for e in entries.values() if e.union]
    health.unresolved_mounts = len(unresolved_devs)

    pending = _content_keys(live, content)
    if pending:
        health.warnings.append(f"{pending} file(s) not yet identified by content "
                               f"(hashing is rate-limited); their duplicates show later")
    redundant_pages, mergeable = _duplicates(live)
    saved = _savings(live, mergeable, readings, mounts, content, health)

    # ---- per cgroup
    @dataclass
    class Acc:
        resident: int = 0
        dup: int = 0
        shared: int = 0
        fair: float = 0.0
        seeded: int = 0
        files: int = 0
        devs: set = field(default_factory=set)
        inserted: int = 0
        evicted: int = 0
        readahead: int = 0
        read_folio: int = 0

    acc: dict[int, Acc] = defaultdict(Acc)
    totals = Totals()
    shared_pages_total = 0
    mount_resident: dict[int, int] = defaultdict(int)
    mount_dup: dict[int, int] = defaultdict(int)
    mount_cgroups: dict[int, set] = defaultdict(set)
    # (mount dev, cgroup) -> [resident pages, duplicate pages] it inserted there
    mount_holder: dict[tuple[int, int], list[int]] = defaultdict(lambda: [0, 0])
    files: list[File] = []
    file_rank: list[tuple] = []
    seeded_pages_total = 0

    for e in live:
        resident_pages = e.resident_pages()
        dup_pages = _popcount_map(e.dup)
        owners_of_file = set()
        for c, owners in e.chunks.items():
            dmask = e.dup.get(c, 0)
            smask = e.seeded.get(c, 0)
            for cg, m in owners.items():
                a = acc[cg]
                res, dup = m.bit_count(), (m & dmask).bit_count()
                a.resident += res
                a.dup += dup
                a.seeded += (m & smask).bit_count()
                owners_of_file.add(cg)
                if e.mount:
                    h = mount_holder[(e.mount.dev, cg)]
                    h[0] += res
                    h[1] += dup
            seeded_pages_total += (smask & e.union.get(c, 0)).bit_count()
        for cg in owners_of_file:
            acc[cg].files += 1
            if e.mount:
                acc[cg].devs.add(e.mount.dev_str)
        if e.shared_mapping:
            users = set(e.users) or owners_of_file
            for cg in users:
                acc[cg].shared += resident_pages
                acc[cg].fair += resident_pages / len(users)
                if e.mount:
                    acc[cg].devs.add(e.mount.dev_str)
            shared_pages_total += resident_pages
        if e.mount:
            mount_resident[e.mount.dev] += resident_pages
            mount_dup[e.mount.dev] += dup_pages
            mount_cgroups[e.mount.dev] |= owners_of_file | set(e.users)
        totals.resident_bytes += resident_pages * page
        totals.duplicate_bytes += dup_pages * page
        file_rank.append((-resident_pages, -dup_pages, e.dev, e.ino, e,
                          owners_of_file | set(e.users)))
    # rows only for the files listed (a node may have 100k resident files)
    key_count: dict[str, int] = defaultdict(int)
    for e in live:
        if e.content_key:
            key_count[e.content_key] += 1
    file_rank.sort(key=lambda x: x[:4])
    for neg_res, neg_dup, dev, ino, e, users in file_rank[:files_cap]:
        if e.shared_mapping:
            copies = max(1, e.used_members)    # inodes served by the one shared copy
        else:
            copies = key_count.get(e.content_key, 1) if e.content_key else 1
        files.append(File(
            dev=kdev_str(dev), ino=ino, path=e.info.path if e.info else "",
            content_id=_content_id(e.content_key), size=e.info.size if e.info else 0,
            resident_bytes=-neg_res * page, duplicate_bytes=-neg_dup * page,
            copies=copies, cgroups=sorted(users), shared=bool(e.shared_mapping)))

    # non-shared pages: fair share is the page itself (one user: its owner)
    for e in live:
        if e.shared_mapping:
            continue
        for owners in e.chunks.values():
            for cg, m in owners.items():
                acc[cg].fair += m.bit_count()

    for fio in readings.io:
        a = acc[fio.cgroup_id]
        a.inserted += fio.inserted_pages
        a.evicted += fio.evicted_pages
        a.readahead += fio.readahead_pages
        a.read_folio += fio.read_folio_count

    containers: list[Container] = []
    for cg, a in acc.items():
        ci = None
        if cg == UNKNOWN_CGROUP:
            info_path, runtime, cid, pod, resolved = UNKNOWN_CGROUP_PATH, "", "", "", True
        else:
            ci = cgroups.resolve(cg)
            info_path, runtime, cid, pod, resolved = (ci.path, ci.runtime, ci.container_id,
                                                     ci.pod_uid, ci.resolved)
        if not resolved:
            health.unresolved_cgroups += 1
        containers.append(Container(
            cgroup_id=cg, cgroup=info_path, runtime=runtime, container_id=cid, pod_uid=pod,
            resident_bytes=a.resident * page, duplicate_bytes=a.dup * page,
            shared_bytes=a.shared * page, fair_bytes=round(a.fair * page),
            inserted_bytes=a.inserted * page, evicted_bytes=a.evicted * page,
            readahead_bytes=a.readahead * page, read_folio_count=a.read_folio,
            seeded_bytes=a.seeded * page, files_count=a.files, mounts=sorted(a.devs),
            potential_savings_bytes=saved.potential.by_cgroup.get(cg, 0) * page,
            **_runtime_names(ci)))
        totals.inserted_bytes += a.inserted * page
        totals.evicted_bytes += a.evicted * page
    containers.sort(key=lambda c: (-c.resident_bytes, c.cgroup))

    holders_of: dict[int, list[MountHolder]] = defaultdict(list)
    for (dev, cg), (res, dup) in mount_holder.items():
        if res:
            holders_of[dev].append(MountHolder(cg, res * page, dup * page))
    for hs in holders_of.values():
        hs.sort(key=lambda x: (-x.resident_bytes, x.cgroup_id))
    mount_rows: list[Mount] = []
    for m in mounts.mounts():
        img = m.image
        backing_pages = readings.backing_pages.get((m.backing_dev, m.backing_ino), 0) \
            if m.backing_ino else 0
        mount_rows.append(Mount(
            dev=m.dev_str, mountpoint=m.mountpoint, source=m.source, backing=m.backing,
            backing_file=m.backing_file, image_id=m.image_id,
            uuid=img.uuid if img else "", volume_name=img.volume_name if img else "",
            inode_share=m.inode_share, directio=m.directio,
            ishare_xattrs=img.ishare_xattrs if img else False,
            compressed=img.compressed if img else False,
            resident_bytes=mount_resident.get(m.dev, 0) * page,
            duplicate_bytes=mount_dup.get(m.dev, 0) * page,
            backing_resident_bytes=max(0, backing_pages) * page,
            containers_count=len(mount_cgroups.get(m.dev, ())),
            potential_savings_bytes=saved.potential.by_dev.get(m.dev, 0) * page,
            potential_savings_now_bytes=saved.potential_now.by_dev.get(m.dev, 0) * page,
            potential_savings_domains_bytes=max(
                0, saved.potential_domains.by_dev.get(m.dev, 0)
                - saved.potential_now.by_dev.get(m.dev, 0)) * page,
            holders=holders_of.get(m.dev, []),
            layer_digest=getattr(m, "layer_digest", ""),
            snapshot_id=getattr(m, "snapshot_id", ""),
            images=list(getattr(m, "images", ()))))
        totals.backing_resident_bytes += max(0, backing_pages) * page

    health.files_total = len(file_rank)
    health.seeded_bytes = seeded_pages_total * page
    totals.redundant_bytes = redundant_pages * page
    totals.potential_savings_bytes = saved.potential.pages * page
    totals.potential_savings_file_bytes = saved.potential.file_pages * page
    totals.potential_savings_image_cache_bytes = saved.potential.image_pages * page
    totals.potential_savings_compressed_cache_bytes = saved.potential.compressed_pages * page
    totals.potential_savings_now_bytes = saved.potential_now.pages * page
    totals.potential_savings_domains_bytes = (saved.potential_domains.pages
                                              - saved.potential_now.pages) * page
    totals.potential_savings_rebuild_bytes = (saved.potential.pages
                                              - saved.potential_domains.pages) * page
    totals.shared_bytes = shared_pages_total * page
    totals.sharing_saved_bytes = (saved.realized_file_pages + saved.realized_image_pages
                                  + saved.realized_compressed_pages) * page
    totals.sharing_saved_compressed_cache_bytes = saved.realized_compressed_pages * page
    totals.sharing_saved_file_bytes = saved.realized_file_pages * page
    totals.sharing_saved_image_cache_bytes = saved.realized_image_pages * page
    totals.page_cache_bytes = readings.page_cache_bytes
    if health.unresolved_mounts:
        health.warnings.append(f"{health.unresolved_mounts} device(s) with resident pages "
                               f"match no current EROFS mount (unmounted?)")
    if health.update_failures:
        health.warnings.append(f"BPF maps refused {health.update_failures} update(s): "
                               f"maps full, numbers are low")

    return Model(tier=tier, started_at=started_at, ended_at=readings.taken_at, page_size=page,
                 containers=containers, mounts=mount_rows, files=files,
                 totals=totals, health=health, kernel=kernel,
                 images=image_view(containers, mount_rows))


__all__ = ["aggregate", "UNKNOWN_CGROUP_PATH", "AOPS_BLOCK", "AOPS_COMPRESSED", "AOPS_FILEIO"]
