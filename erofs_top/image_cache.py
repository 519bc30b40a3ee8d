"""The image files' own page cache, page by page, with the cgroup each page is
charged to: the part of EROFS's cost that file-backed and loop mounts add.

A read through a file-backed (or loop) EROFS mount reads the image file
through the host page cache, charged to the reader's memcg.  What sharing
saves there depends on which image pages the readers pulled in: mincore(2)
on the image file gives the resident pages, /proc/kpagecgroup their owners.
Ground truth, no BPF; both live tiers and the snapshot tier call it.
"""
from __future__ import annotations

import time

from .readings import UNKNOWN_CGROUP
from .pagecache import (PageCacheError, PageOwners, file_resident_pages, kpagecgroup_readable,
                        page_owners_since)


FULL_READ_EVERY_S = 60.0       # owners can move without any count changing


class ImageCacheReader:
    """Reads an image file's pages and owners again only when something moved:
    its resident page count (one cachestat), or the EROFS pages inserted on its
    mounts (a dropped and re-read image has the same count, new owners); and
    then asks pagemap and kpagecgroup about every cached page of it
    (pagecache.page_owners_since: a page read again can have the same PFN
    and a new owner).  When no page's PFN or owner moved it hands back the
    same dict, so nothing downstream is redone.  Every FULL_READ_EVERY_S
    all images are read again anyway (an image page re-read without an
    EROFS insertion, e.g. metadata, and the count back where it was)."""

    def __init__(self, clock=time.monotonic):
        # image -> (signature, page -> owner cgroup id, what page_owners_since read)
        self._last: dict[tuple[int, int], tuple[tuple, dict[int, int], PageOwners | None]] = {}
        self.warning = ""
        self.clock = clock
        self._full_at = clock()

    def read(self, mounts, cgroups, inserted_by_dev: dict[int, int] | None = None
             ) -> dict[tuple[int, int], dict[int, int]]:
        """(backing dev, backing ino) -> {image page: owner cgroup id}.
        ``inserted_by_dev``: EROFS pages inserted so far per mount dev."""
        out: dict[tuple[int, int], dict[int, int]] = {}
        owners_ok, reason = kpagecgroup_readable()
        self.warning = "" if owners_ok else f"{reason}: image-file page owners unknown"
        memcg_to_id = getattr(cgroups, "memcg_cgroup_id", None)
        inserted: dict[tuple[int, int], int] = {}
        for m in mounts.mounts():
            k = (m.backing_dev, m.backing_ino)
            inserted[k] = inserted.get(k, 0) + (inserted_by_dev or {}).get(m.dev, 0)
        if self.clock() - self._full_at >= FULL_READ_EVERY_S:
            self._full_at = self.clock()
            self._last.clear()
        for m in mounts.mounts():
            key = (m.backing_dev, m.backing_ino)
            if not (m.backing_file and m.backing_ino) or key in out:
                continue
            try:
                count = file_resident_pages(m.local(m.backing_file))
                sig = (count, inserted.get(key, 0))
                last = self._last.get(key)
                if last is not None and last[0] == sig:
                    out[key] = last[1]
                    continue
                read = page_owners_since(m.local(m.backing_file), last and last[2]) \
                    if owners_ok and count else None
            except (OSError, PageCacheError):
                continue
            if last is not None and read is not None and last[2] is not None and not read.moved:
                owned = last[1]         # no page moved: the same dict (nothing to redo)
            else:
                owned = _owned(read, memcg_to_id)
            self._last[key] = (sig, owned, read)
            out[key] = owned
        for k in [k for k in self._last if k not in out]:
            del self._last[k]
        return out


def _owned(read: PageOwners | None, memcg_to_id) -> dict[int, int]:
    """page -> owner cgroup id of the pages ``read`` knows the memcg of
    (memcg 0: UNKNOWN_CGROUP)."""
    memcgs = read.owners() if read is not None else {}
    ids: dict[int, int] = {0: UNKNOWN_CGROUP}
    for memcg in set(memcgs.values()) - ids.keys():     # (a few: one per reader)
        ids[memcg] = memcg_to_id(memcg) if memcg_to_id else memcg
    return dict(zip(memcgs.keys(), map(ids.__getitem__, memcgs.values())))
