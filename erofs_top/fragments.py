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
it.  The packed inode is itself compressed: reading one of its pages
decompresses its extent and fills every page that starts inside that extent
(``z_erofs_pcluster_readmore`` on a read_folio), so those pages are needed
too.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from .readings import CHUNK_PAGES

PAGE = 4096

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
    first, last = start // PAGE, (start + length - 1) // PAGE
    return any(first <= p <= last for p in _pages(chunks))


def needed_pages(ranges: Iterable[tuple[int, int]],
                 extents: Sequence[tuple[int, int]] | None) -> set[int]:
    """Packed-inode pages that reading the packed byte ranges ``ranges``
    ((offset, length) each) caches.  ``extents``: the packed inode's
    decompression extents as (start, end) bytes, sorted; None when it is not
    compressed (a read caches the pages it touches, no more)."""
    out: set[int] = set()
    spans = sorted((o, o + n) for o, n in ranges if n > 0)
    for a, b in spans:
        out.update(range(a // PAGE, (b - 1) // PAGE + 1))
    if not extents or not spans:
        return out
    i = 0
    for s, e in extents:                # both sorted: one pass
        while i < len(spans) and spans[i][1] <= s:
            i += 1
        if i == len(spans):
            break
        if spans[i][0] < e:             # a needed range overlaps this extent
            out.update(range(-(-s // PAGE), (e - 1) // PAGE + 1))
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
