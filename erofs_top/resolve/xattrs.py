"""An inode's extended attributes read from the EROFS image itself (the
on-disk format of fs/erofs/xattr.c): no path walk and no getxattr through
the mount, so no page enters the image's or its device's cache (the image
bytes come through ImageContent's O_DIRECT reader).

Layout: the inode's inline xattr area (``xattr_size`` bytes right after the
inode) starts with erofs_xattr_ibody_header (name filter u32, shared count
u8, 7 reserved bytes), then that many u32 ids of shared entries (each at
xattr_blkaddr * block size + 4 * id), then inline entries.  An entry is
erofs_xattr_entry (name_len u8, name_index u8, value_size le16), the name
suffix, the value, padded to 4 bytes.  A name index is a short prefix
("user.", "trusted.", ...) or, with bit 0x80, a long prefix: an entry of
the superblock's long prefix table (base short index + infix), which
mkfs.erofs >= 1.7 uses for long names such as --xattr-inode-digest's.

Pure: the caller hands in a reader ``read(offset, length)`` of the image.
"""
from __future__ import annotations

import struct

from .superblock import (COMPAT_PLAIN_XATTR_PFX, COMPAT_SHARED_EA_IN_METABOX, INCOMPAT_METABOX,
                         DiskInode, Superblock)

# erofs_xattr_prefix(): the short name prefixes by index (5, Lustre's, is not exposed)
SHORT_PREFIXES = {1: b"user.", 2: b"system.posix_acl_access", 3: b"system.posix_acl_default",
                  4: b"trusted.", 6: b"security."}
LONG_PREFIX = 0x80
IBODY_HEADER = 12
ENTRY_HEADER = 4


class XattrsUnreadable(Exception):
    """The image keeps what the look-up needs where this reader does not go
    (a metabox, a long prefix table in the packed inode): ask the mount."""


def long_prefixes(sb: Superblock, read) -> list[bytes | None]:
    """The full names (short prefix + infix) of the long prefix table, in id
    order (None: an unknown short base).  Raises XattrsUnreadable where the
    table is not in the plain metadata area (erofs_xattr_prefixes_init)."""
    if not sb.xattr_prefix_count:
        return []
    plain = sb.feature_compat & COMPAT_PLAIN_XATTR_PFX or not (
        sb.packed_nid or sb.feature_incompat & INCOMPAT_METABOX)
    if not plain:
        raise XattrsUnreadable("long xattr prefixes in the packed inode or metabox")
    pos, out = sb.xattr_prefix_start * 4, []
    for _ in range(sb.xattr_prefix_count):
        pos = -(-pos // 4) * 4          # erofs_read_metadata: each item 4-byte aligned
        length = struct.unpack("<H", read(pos, 2))[0]
        item = read(pos + 2, length)
        if len(item) != length or not length:
            raise XattrsUnreadable("truncated long xattr prefix table")
        short = SHORT_PREFIXES.get(item[0])
        out.append(None if short is None else short + item[1:])
        pos += 2 + length
    return out


def _full_name(index: int, suffix: bytes, prefixes: list[bytes | None]) -> bytes | None:
    if index & LONG_PREFIX:
        i = index & ~LONG_PREFIX
        if i >= len(prefixes):
            raise XattrsUnreadable(f"long xattr prefix {i} not in the table")
        prefix = prefixes[i]
    else:
        prefix = SHORT_PREFIXES.get(index)
    return None if prefix is None else prefix + suffix


def find_xattr(sb: Superblock, rec: DiskInode, inode_at: int, read, name: bytes,
               prefixes: list[bytes | None]) -> bytes | None:
    """The value of xattr ``name`` of inode ``rec`` (at image offset
    ``inode_at``), None when it has none.  ``prefixes``: long_prefixes()."""
    if rec.xattr_icount == 0:
        return None
    if sb.feature_compat & COMPAT_SHARED_EA_IN_METABOX:
        raise XattrsUnreadable("shared xattrs in the metabox")
    area = read(inode_at + rec.inode_size, rec.xattr_size)
    if len(area) < IBODY_HEADER:
        raise XattrsUnreadable("truncated inline xattr area")
    shared = area[4]
    ids = struct.unpack_from(f"<{shared}I", area, IBODY_HEADER)
    pos = IBODY_HEADER + 4 * shared
    while pos + ENTRY_HEADER <= len(area):
        name_len, index, value_size = struct.unpack_from("<BBH", area, pos)
        body = area[pos + ENTRY_HEADER:pos + ENTRY_HEADER + name_len + value_size]
        if _full_name(index, body[:name_len], prefixes) == name:
            return body[name_len:]
        pos += -(-(ENTRY_HEADER + name_len + value_size) // 4) * 4
    for xid in ids:
        at = sb.xattr_blkaddr * sb.block_size + 4 * xid
        name_len, index, value_size = struct.unpack("<BBH", read(at, ENTRY_HEADER))
        body = read(at + ENTRY_HEADER, name_len + value_size)
        if _full_name(index, body[:name_len], prefixes) == name:
            return body[name_len:]
    return None
