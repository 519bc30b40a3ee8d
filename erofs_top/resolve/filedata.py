"""A plain file's data read straight from its EROFS image (issue 11: a real
node's first refresh).

Hashing a file through its mount opens it by path (the kernel reads its
directories and inodes) and reads its data (EROFS reads the image file or
the block device through their page cache): erofs-top must then watch the
image file's, the device's and the file's own cache around every read and
drop what it added (content.ImageContent._reading: a mincore bitmap and a
few cachestat calls per file and watched file, ~0.5 ms per small file, most
of a 50,000-file node's first refresh).  For an uncompressed file the image
says where its data is (superblock.data_extents: flat files, chunk-based
files on the image's own device; the inline tail beside the inode), so the
bytes can be read from the image with O_DIRECT: no page enters any cache,
nothing is watched, no path is walked.

Reads: ``read_data(image offset, length)`` reads data blocks (O_DIRECT,
raising OSError where refused), ``read_meta(image offset, length)`` the
inline tail (the metadata reader, which holds the inode's block already).
Holes (chunk-based files, flat files without blocks) read as zeros, as the
kernel maps them (fs/erofs/data.c erofs_map_blocks: unmapped).
"""
from __future__ import annotations

import io
from typing import Callable, Iterator

from .superblock import FLAT_INLINE, DiskInode, Superblock, data_extents

Reader = Callable[[int, int], bytes]        # (image offset, length) -> bytes


class FileData:
    """The data of one uncompressed file in its image: extents (file
    offset, length, image offset) merged where both offsets run on, and the
    inline tail's image offset (-1: none)."""
    __slots__ = ("size", "extents", "tail_at", "tail_from", "_read_data", "_read_meta", "_tail")

    def __init__(self, size: int, extents: list[tuple[int, int, int]], tail_at: int,
                 tail_from: int, read_data: Reader, read_meta: Reader):
        self.size = size
        self.extents = _merged(extents)
        self.tail_at = tail_at              # image offset of file byte ``tail_from``
        self.tail_from = tail_from
        self._read_data = read_data
        self._read_meta = read_meta
        self._tail: bytes | None = None     # the inline tail, once load_tail() read it

    @property
    def first_image_offset(self) -> int:
        """Where its bytes start in the image (its first block, else its
        tail; -1: none): the order to read many files' data in."""
        return self.extents[0][2] if self.extents else self.tail_at

    def load_tail(self) -> None:
        """Read the inline tail now and keep it (a pass in inode order reads
        every tail from the metadata pieces it reads anyway).  Raises OSError."""
        if self.tail_at >= 0 and self._tail is None:
            self._tail = self._tail_bytes(0, self.size - self.tail_from)

    def _tail_bytes(self, lo: int, n: int) -> bytes:
        """n bytes of the tail from its byte lo."""
        if self._tail is not None:
            return self._tail[lo:lo + n]
        got = self._read_meta(self.tail_at + lo, n)
        if len(got) != n:
            raise OSError("short read of the inline tail")
        return got

    def pread(self, offset: int, length: int) -> bytes:
        """Bytes [offset, offset + length) of the file, short at its end."""
        end = min(self.size, offset + length)
        if offset >= end:
            return b""
        out = bytearray(end - offset)             # holes stay zero
        for file_off, ext_len, image_off in self.extents:
            lo, hi = max(offset, file_off), min(end, file_off + ext_len)
            if lo < hi:
                got = self._read_data(image_off + lo - file_off, hi - lo)
                if len(got) != hi - lo:
                    raise OSError(f"short image read at {image_off + lo - file_off}: "
                                  f"{len(got)} of {hi - lo} bytes")
                out[lo - offset:hi - offset] = got
        if self.tail_at >= 0:
            lo, hi = max(offset, self.tail_from), end
            if lo < hi:
                out[lo - offset:hi - offset] = self._tail_bytes(lo - self.tail_from, hi - lo)
        return bytes(out)

    def pieces(self, piece_bytes: int) -> Iterator[bytes]:
        """The whole file in order, ``piece_bytes`` at a time."""
        for offset in range(0, self.size, piece_bytes):
            yield self.pread(offset, piece_bytes)


def _merged(extents: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Extents whose file and image offsets both continue the one before
    joined: a chunk-based file laid out in order is then one read."""
    out: list[tuple[int, int, int]] = []
    for file_off, length, image_off in extents:
        if out:
            f0, l0, i0 = out[-1]
            if f0 + l0 == file_off and i0 + l0 == image_off:
                out[-1] = (f0, l0 + length, i0)
                continue
        out.append((file_off, length, image_off))
    return out


def file_data(sb: Superblock, ino: DiskInode, read_meta: Reader, read_data: Reader,
              base: int = 0) -> FileData | None:
    """The FileData of ``ino`` (a regular, uncompressed file), or None where
    its data is not read here: compressed layouts, images with blob devices
    (a block address may lie on one: fs/erofs/data.c erofs_map_dev), metabox
    inodes, a flat inline file whose blocks are missing.
    ``base``: the image's offset in its file (added to every read)."""
    if not ino.regular or sb.extra_devices:
        return None

    def meta(off: int, n: int) -> bytes:
        return read_meta(base + off, n)
    extents = data_extents(sb, ino, meta)
    if extents is None:
        return None
    full = ino.size // sb.block_size * sb.block_size
    tail_at = -1
    if ino.layout == FLAT_INLINE:
        if full and not extents:
            return None                     # blocks before the tail, none mapped: not ours to guess
        if ino.size > full:
            tail_at = base + sb.inode_offset(ino.nid) + ino.inode_size + ino.xattr_size
    return FileData(ino.size, [(f, n, base + i) for f, n, i in extents], tail_at, full,
                    read_data, read_meta)


class FileDataStream(io.RawIOBase):
    """A FileData as a seekable binary stream (pyelftools reads ELF notes
    through one)."""

    def __init__(self, data: FileData):
        super().__init__()
        self._data = data
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        got = self._data.pread(self._pos, len(buf))
        buf[:len(got)] = got
        self._pos += len(got)
        return len(got)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._data.size}[whence]
        if base + offset < 0:
            raise OSError("negative seek position")
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos
