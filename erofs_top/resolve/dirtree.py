"""inode -> path of a whole EROFS image, read from the image file, not the mount.

Walking a mount to learn its names (scandir + stat of every entry) makes the
kernel read every directory and every inode of the image: on a file-backed
or loop mount those are the image file's pages, charged to erofs-top, and the
EROFS directory pages it caches are the very cache erofs-top measures.
Reading the directories straight from the image (O_DIRECT, through
content.MetadataReader) costs no page cache.

On-disk directory format (fs/erofs/erofs_fs.h, dir.c): a directory's data is
a run of blocks; each block starts with ``struct erofs_dirent`` records
(le64 nid, le16 nameoff, u8 file_type, u8 reserved; 12 bytes), the first
record's ``nameoff`` / 12 is the record count, and names are packed after the
records: name k runs from nameoff[k] to nameoff[k+1], the last one to the end
of the block with trailing NULs cut.  The last block may be an inline tail
(FLAT_INLINE) right after the inode and its xattrs.
"""
from __future__ import annotations

import struct
from typing import Callable

from .superblock import (FLAT_INLINE, DiskInode, ErofsFormatError, Superblock, data_extents,
                         parse_inode)

DIRENT_SIZE = 12
_DIRENT = struct.Struct("<QHBx")          # nid, nameoff, file_type, reserved
FT_DIR = 2                      # EROFS_FT_DIR
MAX_NAME_BYTES = 255            # EROFS_NAME_LEN

Reader = Callable[[int, int], bytes]        # (image offset, length) -> bytes


def parse_dir_block(block: bytes) -> list[tuple[bytes, int, int]]:
    """(name, nid, file_type) of every record in one directory block, "." and
    ".." included.  Raises ErofsFormatError on a damaged block."""
    if len(block) < DIRENT_SIZE:
        raise ErofsFormatError(f"directory block of {len(block)} bytes")
    first_nameoff = struct.unpack_from("<H", block, 8)[0]
    count = first_nameoff // DIRENT_SIZE
    if count == 0 or first_nameoff % DIRENT_SIZE or first_nameoff > len(block):
        raise ErofsFormatError(f"directory block: first name offset {first_nameoff}")
    records = list(_DIRENT.iter_unpack(block[:first_nameoff]))
    out = []
    for k, (nid, nameoff, ftype) in enumerate(records):
        end = records[k + 1][1] if k + 1 < count else len(block)
        name = block[nameoff:end]
        if k + 1 == count:
            name = name.split(b"\0", 1)[0]      # the last name is NUL-padded
        if not name or end < nameoff or len(name) > MAX_NAME_BYTES or b"/" in name:
            raise ErofsFormatError(f"directory block: bad name at record {k}")
        out.append((name, nid, ftype))
    return out


def dir_content(sb: Superblock, ino: DiskInode, read: Reader) -> bytes | None:
    """A directory's whole data, or None for a layout read only by the kernel
    here (compressed directories)."""
    extents = data_extents(sb, ino, read)
    if extents is None:
        return None
    data = bytearray(ino.size)
    for file_off, length, image_off in extents:
        data[file_off:file_off + length] = read(image_off, length)
    full = ino.size // sb.block_size * sb.block_size
    if ino.layout == FLAT_INLINE and ino.size > full:
        tail = sb.inode_offset(ino.nid) + ino.inode_size + ino.xattr_size
        data[full:] = read(tail, ino.size - full)
    return bytes(data)


def dir_entries(sb: Superblock, ino: DiskInode, read: Reader) -> list[tuple[bytes, int, int]] | None:
    """(name, nid, file_type) of a directory, "." and ".." left out; None when
    its layout is not read here."""
    data = dir_content(sb, ino, read)
    if data is None:
        return None
    bs = sb.block_size
    out = []
    for start in range(0, len(data), bs):
        out += [e for e in parse_dir_block(data[start:start + bs]) if e[0] not in (b".", b"..")]
    return out


def image_paths(sb: Superblock, read: Reader, root_nid: int, root_path: bytes,
                max_entries: int = 10_000_000) -> dict[int, bytes]:
    """nid -> path (bytes) of every inode below directory ``root_nid`` (the
    mount's root, which need not be the image's), ``root_path`` its path.
    Hard links keep the first name met (directories in sorted order, each
    directory's entries before its subdirectories').  Raises ErofsFormatError
    where a directory cannot be read from the image (a compressed directory,
    damage, a loop in the tree): the caller walks the mount instead."""
    paths = {root_nid: root_path}
    stack = [(root_nid, root_path)]
    seen_dirs = {root_nid}
    while stack:
        nid, path = stack.pop()
        ino = parse_inode(read(sb.inode_offset(nid), 64), nid)
        entries = dir_entries(sb, ino, read)
        if entries is None:
            raise ErofsFormatError(f"directory {nid}: layout {ino.layout_name} not read here")
        subdirs = []
        for name, child, ftype in sorted(entries):
            child_path = path.rstrip(b"/") + b"/" + name
            paths.setdefault(child, child_path)
            if ftype == FT_DIR:
                if child in seen_dirs:
                    raise ErofsFormatError(f"directory {child} reached twice")
                seen_dirs.add(child)
                subdirs.append((child, child_path))
        stack += reversed(subdirs)          # popped in sorted order
        if len(paths) > max_entries:
            raise ErofsFormatError(f"more than {max_entries} entries")
    return paths
