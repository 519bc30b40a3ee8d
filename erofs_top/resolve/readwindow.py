"""Which pages of an EROFS image file a read of one of its files can bring into
the image file's page cache: the window pagecache.preserve_residency watches
(a mincore of those pages, not of the whole image, before and after our read).

Opening and reading a file of a file-backed (or loop) mount reads, through the
image file's page cache (Linux 6.18, fs/erofs):

* for every directory on the path whose dentry is not cached: its data blocks
  (erofs_namei's binary search, through the directory's page cache and so the
  backing file) and the inode of the next component (erofs_read_metabuf);
* the file's inode, inline xattrs, shared xattr entries (ACL and xattr
  lookups), its compressed or chunk index and inline tail or inline pcluster:
  all in the metadata right after the inode, or (shared xattrs) in the xattr
  area;
* the file's data blocks or pclusters, with the backing file's readahead:
  a buffered read of the image through the mount's one struct file
  (page_cache_sync_ra / async_ra), which reads from the requested page on, at
  most ra_pages from it and, hitting a readahead mark, the next window of at
  most ra_pages after the current one: 2 x ra_pages after a run's last page
  bounds it.  Directory data goes the same way.

Pure: the caller hands in the inodes, their data pages and a reader.
"""
from __future__ import annotations

import struct

from ..pagecache import page_runs
from .superblock import FLAT_INLINE, FLAT_PLAIN, DiskInode, Superblock

XATTR_IBODY_HEADER = 12         # erofs_xattr_ibody_header: filter, shared count, reserved
XATTR_ENTRY_HEADER = 4          # erofs_xattr_entry: name_len, name_index, value_size
INDEX_SLACK_BYTES = 64          # map header (8), compacted-index alignment and padding


def readahead_margin_pages(ra_pages: int) -> int:
    """Pages after a run's last page that a buffered read of it can bring in
    (a sync window, then an async one: each at most ra_pages)."""
    return 2 * ra_pages + 1


def _page_span(start: int, end: int, page_size: int) -> tuple[int, int]:
    """(first page, count) of the bytes [start, end)."""
    first = start // page_size
    return first, max(1, -(-end // page_size) - first)


def meta_span(sb: Superblock, rec: DiskInode, inode_at: int) -> tuple[int, int]:
    """Bytes [inode_at, end) of an inode's metadata a read can touch: the inode,
    inline xattrs, the inline tail (flat inline) or, for other layouts, the
    index (at most 8 bytes per block: full compressed index, 8-byte chunk
    index) and an inline pcluster or tail of up to a block after it."""
    end = inode_at + rec.inode_size + rec.xattr_size
    if rec.layout == FLAT_INLINE:
        return inode_at, end + rec.size % sb.block_size
    if rec.layout == FLAT_PLAIN:
        return inode_at, end
    blocks = -(-rec.size // sb.block_size)
    return inode_at, end + INDEX_SLACK_BYTES + 8 * blocks + sb.block_size


def shared_xattr_spans(sb: Superblock, rec: DiskInode, inode_at: int,
                       read) -> list[tuple[int, int]]:
    """Bytes [start, end) of the inode's shared xattr entries (xattr area).
    ``read(offset, length)`` reads the image (image-relative)."""
    if rec.xattr_icount == 0:
        return []
    head = read(inode_at + rec.inode_size, XATTR_IBODY_HEADER)
    shared = head[4]
    if not shared:
        return []
    ids = struct.unpack(f"<{shared}I", read(inode_at + rec.inode_size + XATTR_IBODY_HEADER,
                                            4 * shared))
    spans = []
    for xid in ids:
        at = sb.xattr_blkaddr * sb.block_size + 4 * xid
        name_len, _, value_size = struct.unpack("<BBH", read(at, XATTR_ENTRY_HEADER))
        spans.append((at, at + XATTR_ENTRY_HEADER + name_len + value_size))
    return spans


def inode_runs(sb: Superblock, rec: DiskInode, image_base: int, data_pages, read,
               margin_pages: int, page_size: int, *, meta_margin: bool) -> list[tuple[int, int]]:
    """Page runs [(first, count)] of the backing file (``image_base``: the
    image's byte offset in it) that opening through and reading inode ``rec``
    can cache: its metadata and shared xattrs, and its data pages
    (``data_pages``: backing-file page indices) each run followed by
    ``margin_pages`` of readahead.  ``meta_margin``: metadata reads get the
    margin too (a loop device: the loop worker reads the image with readahead;
    file-backed mounts read metadata a page at a time, read_mapping_folio)."""
    inode_at = sb.inode_offset(rec.nid)
    spans = [meta_span(sb, rec, inode_at)] + shared_xattr_spans(sb, rec, inode_at, read)
    extra = margin_pages if meta_margin else 0
    runs = [(first, count + extra) for first, count in
            (_page_span(image_base + lo, image_base + hi, page_size) for lo, hi in spans)]
    for first, count in page_runs(sorted(set(data_pages))):
        runs.append((first, count + margin_pages))
    return runs

