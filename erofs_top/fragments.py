"""The packed inode's pages: what sharing saves there (pure; docs/sharing.md
rule 6, "Fragments").

Images built with ``mkfs.erofs -Efragments`` keep the tails of files (or whole
small files) in one special inode per image, the packed inode (superblock
``packed_nid``); ``dedupe`` lets files point at the same fragment bytes.
Reading a file's fragment copies it out of the packed inode's page cache
(fs/erofs/zdata.c ``z_erofs_read_fragment``: ``erofs_bread`` on
``EROFS_SB(sb)->packed_inode``, the superblock of the inode the read goes
through).  So the packed inode is per mount, and with inode_share a shared
file's fragment is read through the packed inode of the member the shared
inode reads through: the other mounts' packed inodes never cache it.

A packed page is needed by a mount when a fragment that mount reads lies on
it; the packed inode is itself compressed, and its read_folio fills some
pages around (needed_pages), and keeps the clusters it read in the mount's
compressed-data cache (needed_clusters).
"""
from __future__ import annotations

import bisect
from typing import Iterable, Sequence

from .readings import CHUNK_PAGES

PAGE_BYTES = 4096

Fragment = tuple[int, int, int]     # (file offset of the fragment, packed offset, length)


def _pages(chunks: dict[int, int]) -> Iterable[int]:
    for c, mask in chunks.items():
        while mask:
            low = mask & -mask
            yield c * CHUNK_PAGES + low.bit_length() - 1
            mask ^= low


def reads_fragment(chunks: dict[int, int], frag: Fragment) -> bool:
    """Whether a copy holding file pages ``chunks`` read its fragment: one of
    its pages overlaps the fragment's file bytes."""
    start, _, length = frag
    if length <= 0:
        return False
    first, last = start // PAGE_BYTES, (start + length - 1) // PAGE_BYTES
    return any(first <= p <= last for p in _pages(chunks))


# How z_erofs_map_blocks_iter maps an extent on a read (zmap.c):
MAP_TO_LCLUSTER = 0     # lz4, stored: up to the end of the lcluster asked for
MAP_WHOLE_IF_LONG = 1   # lzma, deflate, zstd: whole (EROFS_GET_BLOCKS_READMORE) when
                        # the mapped length reaches a block
MAP_WHOLE = 2           # encoded extents (z_erofs_map_blocks_ext): always whole

# (start, end) bytes of one decompression extent, the image pages of its
# compressed cluster, how a read maps it (MAP_*)
PackedExtent = tuple[int, int, tuple[int, ...], int]


def _containing(extents: Sequence[PackedExtent], starts: list[int], pos: int
                ) -> PackedExtent | None:
    i = bisect.bisect_right(starts, pos) - 1
    return extents[i] if i >= 0 and pos < extents[i][1] else None


def needed_pages(ranges: Iterable[tuple[int, int]],
                 extents: Sequence[PackedExtent] | None) -> set[int]:
    """Packed-inode pages that reading the packed byte ranges ``ranges``
    ((offset, length) each) caches: ``erofs_bread`` reads each page they
    touch (read_folio, no readahead); on a compressed packed inode
    (``extents``, sorted; None: not compressed) z_erofs_read_folio's
    readmore also fills the pages that start inside the extent holding the
    page's first byte, before it, and, where a read maps that extent whole
    (MAP_*), those after it up to the end of the extent holding its last
    byte."""
    out: set[int] = set()
    for o, n in ranges:
        if n > 0:
            out.update(range(o // PAGE_BYTES, (o + n - 1) // PAGE_BYTES + 1))
    if not extents:
        return out
    starts = [e[0] for e in extents]
    for p in list(out):
        head = _containing(extents, starts, p * PAGE_BYTES)
        if head is not None:
            out.update(range(-(-head[0] // PAGE_BYTES), p))
        # the map asked at the page's last byte runs from the extent's start
        # to the end of that page (lclusters of a page): a block long only
        # when the extent starts at or before the page
        tail = _containing(extents, starts, p * PAGE_BYTES + PAGE_BYTES - 1)
        if tail is not None and (tail[3] == MAP_WHOLE or (
                tail[3] == MAP_WHOLE_IF_LONG and tail[0] <= p * PAGE_BYTES)):
            out.update(range(p + 1, (tail[1] - 1) // PAGE_BYTES + 1))
    return out


def needed_clusters(pages: set[int], extents: Sequence[PackedExtent] | None) -> set[int]:
    """The compressed-data cache pages (the mount's managed cache, indexed by
    image page) that reading packed ``pages`` (needed_pages) caches: the
    cluster of every extent on those pages (the lab, 2026-12-04: every
    cluster of the packed inode read stayed cached there)."""
    out: set[int] = set()
    for s, e, clusters, _ in extents or ():
        if clusters and any(p in pages for p in range(s // PAGE_BYTES, (e - 1) // PAGE_BYTES + 1)):
            out.update(clusters)
    return out


def kept_pages(unions: list[dict[int, int]]) -> list[dict[int, int]]:
    """Per copy of one content, in keeping order (savings._file_pages: the
    first holder of a page keeps it), the pages it keeps with sharing on."""
    held: dict[int, int] = {}
    out = []
    for union in unions:
        mine = {}
        for c, mask in union.items():
            left = mask & ~held.get(c, 0)
            if left:
                mine[c] = left
            held[c] = held.get(c, 0) | mask
        out.append(mine)
    return out


def saved_pages(resident: dict[int, int], still: set[int], every: set[int]) -> dict[int, int]:
    """Stock mount: the resident packed pages (page -> owner cgroup) that the
    fragments its readers read need (``every``) but those it would still
    read with sharing on do not (``still``): page -> owner.  A resident page
    no fragment explains stays (read for a file no longer cached, say)."""
    return {p: cg for p, cg in resident.items() if p in every and p not in still}


def kept_out(resident: Iterable[int], needed: set[int]) -> int:
    """inode_share mount: the pages it would hold without sharing (``needed``)
    that it does not hold: the reads went through another member's packed
    inode."""
    return len(needed.difference(resident))
