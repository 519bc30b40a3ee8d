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
from dataclasses import dataclass

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


@dataclass(frozen=True)
class XattrName:
    """An xattr name as this image's entries can spell it: the (name index,
    suffix) pairs that mean it (a short prefix's, a long prefix's of the
    table) and the table's length (an entry naming a long prefix past it is
    not read here).  No pairs: no entry of the image can carry the name."""
    codes: frozenset
    prefix_count: int


def xattr_name(name: bytes, prefixes: list[bytes | None]) -> XattrName:
    """``name`` as entries spell it, given the image's long_prefixes()."""
    codes = {(index, name[len(prefix):]) for index, prefix in SHORT_PREFIXES.items()
             if name.startswith(prefix)}
    codes.update((LONG_PREFIX | i, name[len(prefix):]) for i, prefix in enumerate(prefixes)
                 if prefix is not None and name.startswith(prefix))
    return XattrName(frozenset(codes), len(prefixes))


_ENTRY = struct.Struct("<BBH")      # erofs_xattr_entry: name_len, name_index, value_size


def _matches(index: int, suffix: bytes, want: XattrName) -> bool:
    if index & LONG_PREFIX and index & ~LONG_PREFIX >= want.prefix_count:
        raise XattrsUnreadable(f"long xattr prefix {index & ~LONG_PREFIX} not in the table")
    return (index, suffix) in want.codes


def inline_value(area: bytes, want: XattrName) -> tuple[bytes | None, tuple[int, ...]]:
    """(the value of the inline entry named ``want``, None if none; the
    shared entries' ids) from an inode's xattr area (``xattr_size`` bytes
    after the inode)."""
    if len(area) < IBODY_HEADER:
        raise XattrsUnreadable("truncated inline xattr area")
    shared = area[4]
    ids = struct.unpack_from(f"<{shared}I", area, IBODY_HEADER) if shared else ()
    pos, end = IBODY_HEADER + 4 * shared, len(area)
    while pos + ENTRY_HEADER <= end:
        name_len, index, value_size = _ENTRY.unpack_from(area, pos)
        start = pos + ENTRY_HEADER
        if _matches(index, area[start:start + name_len], want):
            return area[start + name_len:start + name_len + value_size], ids
        pos += -(-(ENTRY_HEADER + name_len + value_size) // 4) * 4
    return None, ids


def shared_value(sb: Superblock, read, xid: int, want: XattrName) -> bytes | None:
    """The value of shared entry ``xid`` if it is named ``want``, else None."""
    if sb.feature_compat & COMPAT_SHARED_EA_IN_METABOX:
        raise XattrsUnreadable("shared xattrs in the metabox")
    at = sb.xattr_blkaddr * sb.block_size + 4 * xid
    name_len, index, value_size = _ENTRY.unpack(read(at, ENTRY_HEADER))
    body = read(at + ENTRY_HEADER, name_len + value_size)
    return body[name_len:] if _matches(index, body[:name_len], want) else None


def find_xattr(sb: Superblock, rec: DiskInode, inode_at: int, read, name: bytes,
               prefixes: list[bytes | None]) -> bytes | None:
    """The value of xattr ``name`` of inode ``rec`` (at image offset
    ``inode_at``), None when it has none.  ``prefixes``: long_prefixes()."""
    if rec.xattr_icount == 0:
        return None
    if sb.feature_compat & COMPAT_SHARED_EA_IN_METABOX:
        raise XattrsUnreadable("shared xattrs in the metabox")
    want = xattr_name(name, prefixes)
    value, ids = inline_value(read(inode_at + rec.inode_size, rec.xattr_size), want)
    for xid in ids if value is None else ():
        value = shared_value(sb, read, xid, want)
        if value is not None:
            break
    return value
