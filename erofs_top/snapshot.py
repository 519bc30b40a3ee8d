"""The snapshot tier's source: ground-truth Readings for every EROFS mount
from the page-cache primitives (cachestat/mincore + kpagecgroup), no BPF.

Also the oracle of the integration tests, and what the tracepoint tier seeds
its maps with at attach.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass, field

from .pagecache import (PAGE_SIZE, cachestat_available, fd_resident_mask, fd_resident_pages,
                        file_resident_pages, kpagecgroup_readable, mask_pages,
                        meminfo_cached_bytes, page_owners)
from .readings import CHUNK_PAGES, UNKNOWN_CGROUP, PageChunk, Readings
from .resolve.mounts import walk_mount


def _regular_files(mount) -> tuple[list[tuple[str, int]], str]:
    """(path, ino) of every regular file of the mounted superblock; error text."""
    out: list[tuple[str, int]] = []
    seen: set[int] = set()
    try:
        for ent in walk_mount(mount.root_path):
            try:
                if not ent.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            ino = ent.inode()
            if ino not in seen:         # hard links: one entry per inode
                seen.add(ino)
                out.append((ent.path, ino))
    except OSError as e:
        return out, f"{mount.mountpoint}: {e.strerror}"
    return out, ""


@dataclass
class Snapshotter:
    """Ground-truth readings; keeps the file list of each mount between calls
    (EROFS is read-only, so a mounted superblock's files never change)."""
    owners: bool = True                         # look up page owners (kpagecgroup)
    _files: dict = field(default_factory=dict)  # (dev, mountpoint, image_id) -> files

    def files_of(self, mount) -> tuple[list[tuple[str, int]], str]:
        key = (mount.dev, mount.mountpoint, getattr(mount, "image_id", ""))
        hit = self._files.get(key)
        if hit is None:
            hit = self._files[key] = _regular_files(mount)
        return hit

    def snapshot(self, mounts, cgroups) -> Readings:
        r = Readings(taken_at=time.time(), page_size=PAGE_SIZE, probes_attached=False)
        r.page_cache_bytes = meminfo_cached_bytes()
        owners_ok = self.owners
        if owners_ok:
            owners_ok, reason = kpagecgroup_readable()
            if not owners_ok:
                r.warnings.append(f"{reason}: page owners unknown")
        memcg_to_id = getattr(cgroups, "memcg_cgroup_id", None)
        id_cache: dict[int, int] = {UNKNOWN_CGROUP: UNKNOWN_CGROUP}
        unmapped_pages = 0
        owner_errors = 0
        live = set()
        for m in mounts.mounts():
            live.add((m.dev, m.mountpoint, getattr(m, "image_id", "")))
            files, err = self.files_of(m)
            if err:
                r.warnings.append(f"mount {m.mountpoint} unreadable: {err}")
                continue
            for path, ino in files:
                try:
                    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                except OSError:
                    continue
                try:
                    if fd_resident_pages(fd) == 0:     # cheap: most files are cold
                        continue
                    mask = fd_resident_mask(fd)
                except OSError:
                    continue
                finally:
                    os.close(fd)
                pages = mask_pages(mask)
                by_page: dict[int, int] = {}
                if owners_ok and pages:
                    try:
                        by_page = page_owners(path, pages)
                    except OSError:
                        owner_errors += 1
                chunks: dict[int, dict[int, int]] = {}
                for p in pages:
                    memcg = by_page.get(p, 0)
                    cid = id_cache.get(memcg)
                    if cid is None:
                        cid = memcg_to_id(memcg) if memcg_to_id else memcg
                        id_cache[memcg] = cid
                    if cid == UNKNOWN_CGROUP and memcg:
                        unmapped_pages += 1
                    own = chunks.setdefault(p // CHUNK_PAGES, {})
                    own[cid] = own.get(cid, 0) | (1 << (p % CHUNK_PAGES))
                for c, own in sorted(chunks.items()):
                    r.chunks.append(PageChunk(dev=m.dev, ino=ino, chunk=c, owners=own))
            if m.backing_file and m.backing_ino:
                key = (m.backing_dev, m.backing_ino)
                if key in r.backing_pages:
                    continue
                try:
                    st = os.stat(m.local(m.backing_file))
                    if st.st_ino != m.backing_ino:
                        raise FileNotFoundError(errno.ENOENT, "replaced since mount")
                    r.backing_pages[key] = file_resident_pages(m.local(m.backing_file))
                except OSError as e:
                    r.warnings.append(f"backing file {m.backing_file} of {m.mountpoint}: "
                                      f"{e.strerror or e}")
        # forget file lists of superblocks that went away
        for k in [k for k in self._files if k not in live]:
            del self._files[k]
        if not cachestat_available():
            r.warnings.append("cachestat(2) missing (Linux < 6.5): counted with mincore")
        if owner_errors:
            r.warnings.append(f"page owners unreadable for {owner_errors} files")
        if unmapped_pages:
            examples = list(getattr(cgroups, "unmapped_memcgs", {}).values())[:3]
            r.warnings.append(
                f"{unmapped_pages} pages charged to cgroup-v1 memory cgroups with neither a "
                f"cgroup v2 twin nor tasks (owner unknown), e.g. {', '.join(examples) or '?'}")
        return r


_default_snapshotter = Snapshotter()


def snapshot_readings(mounts, cgroups, *, owners: bool = True) -> Readings:
    """Readings for every EROFS mount from cachestat/mincore + kpagecgroup.

    Per regular file: resident pages as 64-page chunks, each page attributed to the
    cgroup (v2 id) its memcg maps to, UNKNOWN_CGROUP (0) when that cannot be told;
    ``backing_pages`` from the image files of file-backed and loop mounts.
    """
    snap = _default_snapshotter if owners else Snapshotter(owners=False)
    return snap.snapshot(mounts, cgroups)
