"""EROFS on-disk format: the superblock (image identity) and inodes (data layout).

Layout from ``fs/erofs/erofs_fs.h`` (Linux 6.6 .. 7.x), all little-endian.  The
superblock sits at byte 1024 of the image: 128 bytes, +16 per ``sb_extslots``.
Inodes live at ``meta_blkaddr * block_size + nid * 32`` (32-byte compact or
64-byte extended form); ``i_format`` bit 0 = extended, bits 1..3 = data layout.

Reads of a live image go through ``read_image`` which does not leave pages in the
host page cache that were not there before (see pagecache.preserve_residency), so
looking at a superblock never changes the backing-file numbers we report.
"""
from __future__ import annotations

import errno
import hashlib
import mmap
import os
import re
import struct
import subprocess
import threading
import uuid as uuidlib
from collections.abc import Mapping
from dataclasses import dataclass

from ..pagecache import preserve_residency, read_dropping_new
from .base import ImageInfo

EROFS_SUPER_OFFSET = 1024
EROFS_SUPER_MAGIC = 0xE0F5E1E2
SB_BASE_SIZE = 128
SB_EXTSLOT_SIZE = 16

COMPAT_SB_CHKSUM = 0x01
COMPAT_MTIME = 0x02
COMPAT_XATTR_FILTER = 0x04
COMPAT_SHARED_EA_IN_METABOX = 0x08
COMPAT_PLAIN_XATTR_PFX = 0x10
COMPAT_ISHARE_XATTRS = 0x20

INCOMPAT_ZERO_PADDING = 0x01        # a.k.a. LZ4_0PADDING: only set by compressing mkfs
INCOMPAT_COMPR_CFGS = 0x02          # == BIG_PCLUSTER
INCOMPAT_CHUNKED_FILE = 0x04
INCOMPAT_DEVICE_TABLE = 0x08        # == COMPR_HEAD2 (meaning depends on other bits)
INCOMPAT_ZTAILPACKING = 0x10
INCOMPAT_FRAGMENTS = 0x20           # == DEDUPE
INCOMPAT_XATTR_PREFIXES = 0x40
INCOMPAT_48BIT = 0x80
INCOMPAT_METABOX = 0x100
# Bits that only a compressing mkfs sets.  (0x08 is also DEVICE_TABLE, so it is not
# a compression proof on its own; 0x01 ZERO_PADDING is what every -z image has.)
INCOMPAT_COMPRESSION_BITS = (INCOMPAT_ZERO_PADDING | INCOMPAT_COMPR_CFGS
                             | INCOMPAT_ZTAILPACKING | INCOMPAT_FRAGMENTS)

COMPAT_NAMES = {COMPAT_SB_CHKSUM: "sb_csum", COMPAT_MTIME: "mtime",
                COMPAT_XATTR_FILTER: "xattr_filter",
                COMPAT_SHARED_EA_IN_METABOX: "shared_ea_in_metabox",
                COMPAT_PLAIN_XATTR_PFX: "plain_xattr_pfx",
                COMPAT_ISHARE_XATTRS: "ishare_xattrs"}
INCOMPAT_NAMES = {INCOMPAT_ZERO_PADDING: "0padding", INCOMPAT_COMPR_CFGS: "compr_cfgs",
                  INCOMPAT_CHUNKED_FILE: "chunked_file",
                  INCOMPAT_DEVICE_TABLE: "device_table",
                  INCOMPAT_ZTAILPACKING: "ztailpacking", INCOMPAT_FRAGMENTS: "fragments",
                  INCOMPAT_XATTR_PREFIXES: "xattr_prefixes", INCOMPAT_48BIT: "48bit",
                  INCOMPAT_METABOX: "metabox"}

# inode data layouts (i_format bits 1..3)
FLAT_PLAIN = 0
COMPRESSED_FULL = 1
FLAT_INLINE = 2
COMPRESSED_COMPACT = 3
CHUNK_BASED = 4
LAYOUT_NAMES = {FLAT_PLAIN: "flat_plain", COMPRESSED_FULL: "compressed_full",
                FLAT_INLINE: "flat_inline", COMPRESSED_COMPACT: "compressed_compact",
                CHUNK_BASED: "chunk_based"}
ISLOT_SIZE = 32
NID_METABOX_BIT = 1 << 63


class ErofsFormatError(ValueError):
    """Not an EROFS image, or a damaged one; str() is a one-line reason."""


@dataclass(frozen=True)
class Superblock:
    feature_compat: int
    feature_incompat: int
    blkszbits: int
    sb_extslots: int
    root_nid: int
    inos: int
    blocks: int
    meta_blkaddr: int
    xattr_blkaddr: int
    uuid: bytes
    volume_name: str
    checksum: int
    packed_nid: int
    metabox_nid: int
    xattr_prefix_count: int
    ishare_xattr_prefix_id: int
    xattr_prefix_start: int = 0     # the long xattr name prefixes' table, in 4-byte units
    extra_devices: int = 0          # blob devices beside the image (a device table)

    @property
    def block_size(self) -> int:
        return 1 << self.blkszbits

    @property
    def sb_size(self) -> int:
        return SB_BASE_SIZE + self.sb_extslots * SB_EXTSLOT_SIZE

    @property
    def image_size(self) -> int:
        """Bytes the filesystem occupies (blocks x block size), independent of
        whether it sits in a file, a loop device or a larger partition."""
        return self.blocks << self.blkszbits

    @property
    def uuid_str(self) -> str:
        return "" if not any(self.uuid) else str(uuidlib.UUID(bytes=self.uuid))

    @property
    def ishare_xattrs(self) -> bool:
        return bool(self.feature_compat & COMPAT_ISHARE_XATTRS)

    @property
    def compressed(self) -> bool:
        return bool(self.feature_incompat & INCOMPAT_COMPRESSION_BITS)

    def feature_names(self) -> list[str]:
        names = [n for b, n in COMPAT_NAMES.items() if self.feature_compat & b]
        names += [n for b, n in INCOMPAT_NAMES.items() if self.feature_incompat & b]
        return names

    def inode_offset(self, nid: int) -> int:
        """Byte offset of inode ``nid`` in the image (not for metabox inodes)."""
        if nid & NID_METABOX_BIT or self.feature_incompat & INCOMPAT_METABOX:
            raise ErofsFormatError("inode is in a metabox (compressed metadata): not parsed")
        return self.meta_blkaddr * self.block_size + nid * ISLOT_SIZE


def parse_superblock(sb_bytes: bytes) -> Superblock:
    """Parse the superblock from the bytes starting at image offset 1024.

    ``sb_bytes`` needs 128 bytes (144 for 48-bit/metabox images); shorter or
    invalid input raises ErofsFormatError with a one-line reason.
    """
    if len(sb_bytes) < 4:
        raise ErofsFormatError(f"too short for an EROFS superblock ({len(sb_bytes)} bytes)")
    magic = struct.unpack_from("<I", sb_bytes, 0)[0]
    if magic != EROFS_SUPER_MAGIC:
        raise ErofsFormatError(f"no EROFS magic at offset 1024 (found 0x{magic:08x})")
    if len(sb_bytes) < SB_BASE_SIZE:
        raise ErofsFormatError(f"truncated EROFS superblock ({len(sb_bytes)} of 128 bytes)")
    (checksum, compat, blkszbits, extslots, rootnid_2b, inos, _epoch, _nsec, blocks_lo,
     meta_blkaddr, xattr_blkaddr) = struct.unpack_from("<IIBBHQQIIII", sb_bytes, 4)
    uuid = bytes(sb_bytes[48:64])
    volume_name = bytes(sb_bytes[64:80]).split(b"\0", 1)[0].decode("utf-8", "replace")
    incompat = struct.unpack_from("<I", sb_bytes, 80)[0]
    # as fs/erofs/super.c erofs_scan_devices reads it: only with the table's bit
    extra_devices = (struct.unpack_from("<H", sb_bytes, 86)[0]
                     if incompat & INCOMPAT_DEVICE_TABLE else 0)
    xattr_prefix_count = sb_bytes[91]
    xattr_prefix_start = struct.unpack_from("<I", sb_bytes, 92)[0]
    packed_nid = struct.unpack_from("<Q", sb_bytes, 96)[0]
    ishare_prefix_id = sb_bytes[105]
    if not 9 <= blkszbits <= 16:
        raise ErofsFormatError(f"implausible EROFS block size 2^{blkszbits}")
    root_nid, blocks, metabox_nid = rootnid_2b, blocks_lo, 0
    if incompat & (INCOMPAT_48BIT | INCOMPAT_METABOX):
        if len(sb_bytes) < 144:
            raise ErofsFormatError("truncated 48-bit EROFS superblock (needs 144 bytes)")
    rootnid_8b = struct.unpack_from("<Q", sb_bytes, 112)[0] if incompat & INCOMPAT_48BIT else 0
    if rootnid_8b:
        # fs/erofs/super.c erofs_read_superblock: a 48-bit image with the
        # 8-byte root nid set; the u16 is then blocks_hi.  Without it (what
        # mkfs.erofs 1.9.4 -E48bit writes for a small image) the u16 stays
        # the root nid and blocks_lo the block count.
        blocks = blocks_lo | rootnid_2b << 32
        root_nid = rootnid_8b
    if incompat & INCOMPAT_METABOX:
        metabox_nid = struct.unpack_from("<Q", sb_bytes, 128)[0]
    return Superblock(
        feature_compat=compat, feature_incompat=incompat, blkszbits=blkszbits,
        sb_extslots=extslots, root_nid=root_nid, inos=inos, blocks=blocks,
        meta_blkaddr=meta_blkaddr, xattr_blkaddr=xattr_blkaddr, uuid=uuid,
        volume_name=volume_name, checksum=checksum, packed_nid=packed_nid,
        metabox_nid=metabox_nid, xattr_prefix_count=xattr_prefix_count,
        ishare_xattr_prefix_id=ishare_prefix_id, xattr_prefix_start=xattr_prefix_start,
        extra_devices=extra_devices)


I_NLINK_1_BIT = 4               # i_format: a compact non-directory inode's nlink is 1,
                                # i_nb its startblk_hi (48-bit images)


@dataclass(frozen=True, slots=True)     # one per file asked of, per image: no __dict__ each
class DiskInode:
    nid: int
    extended: bool
    layout: int                 # FLAT_PLAIN .. CHUNK_BASED
    mode: int
    size: int
    xattr_icount: int = 0
    i_u: int = 0                # raw_blkaddr (flat), chunk format (chunk-based), ...
    startblk_hi: int = 0        # high 16 bits of raw_blkaddr on 48-bit images

    @property
    def compressed(self) -> bool:
        return self.layout in (COMPRESSED_FULL, COMPRESSED_COMPACT)

    @property
    def regular(self) -> bool:
        return (self.mode & 0o170000) == 0o100000

    @property
    def layout_name(self) -> str:
        return LAYOUT_NAMES.get(self.layout, f"layout{self.layout}")

    @property
    def inode_size(self) -> int:
        return 64 if self.extended else ISLOT_SIZE

    @property
    def xattr_size(self) -> int:
        # erofs_xattr_ibody_header (12 bytes) + (icount - 1) 4-byte slots
        return 0 if self.xattr_icount == 0 else 12 + (self.xattr_icount - 1) * 4


def parse_inode(raw: bytes, nid: int = 0) -> DiskInode:
    """Parse a 32- or 64-byte on-disk inode (``raw`` from the inode's offset)."""
    if len(raw) < ISLOT_SIZE:
        raise ErofsFormatError(f"truncated EROFS inode {nid} ({len(raw)} bytes)")
    i_format, xattr_icount, mode, i_nb = struct.unpack_from("<HHHH", raw, 0)
    extended = bool(i_format & 1)
    layout = (i_format >> 1) & 7
    if layout > CHUNK_BASED:
        raise ErofsFormatError(f"EROFS inode {nid}: unknown data layout {layout}")
    if extended:
        if len(raw) < 64:
            raise ErofsFormatError(f"truncated extended EROFS inode {nid}")
        size = struct.unpack_from("<Q", raw, 8)[0]
    else:
        size = struct.unpack_from("<I", raw, 8)[0]
    i_u = struct.unpack_from("<I", raw, 16)[0]
    # fs/erofs/inode.c erofs_read_inode: i_nb holds startblk_hi in an extended
    # inode, and in a compact one only with EROFS_I_NLINK_1_BIT (bit 4; not
    # for directories, where the bit means "dot omitted"); else it is nlink
    nlink_1 = bool(i_format >> I_NLINK_1_BIT & 1) and (mode & 0o170000) != 0o040000
    return DiskInode(nid=nid, extended=extended, layout=layout, mode=mode, size=size,
                     xattr_icount=xattr_icount, i_u=i_u,
                     startblk_hi=i_nb if extended or nlink_1 else 0)


# ---------------------------------------------------------------- data maps
NULL_ADDR = 0xFFFFFFFF          # EROFS_NULL_ADDR: a hole (no blocks)
CHUNK_FORMAT_BLKBITS_MASK = 0x001F
CHUNK_FORMAT_INDEXES = 0x0020   # 8-byte chunk indexes instead of 4-byte block addresses
CHUNK_INDEX_SIZE = 8
BLOCK_MAP_ENTRY_SIZE = 4


def data_extents(sb: Superblock, ino: DiskInode, read) -> list[tuple[int, int, int]] | None:
    """Where an uncompressed file's data blocks sit in the image.

    ``read(offset, length) -> bytes`` reads the image (image-relative offsets).
    Returns (file offset, length, image offset) extents, in file order, for the
    parts held in data blocks; an inline tail (FLAT_INLINE) lives in the
    metadata block beside the inode and is left out (every mount reads its
    own metadata anyway).  None for layouts that are not mapped here:
    compressed files, metabox inodes, chunks on another device.
    """
    bs = sb.block_size
    if ino.layout in (FLAT_PLAIN, FLAT_INLINE):
        blkaddr = ino.i_u
        if sb.feature_incompat & INCOMPAT_48BIT:
            blkaddr |= ino.startblk_hi << 32
        full = ino.size if ino.layout == FLAT_PLAIN else ino.size // bs * bs
        if full == 0 or ino.i_u == NULL_ADDR:
            return []
        return [(0, full, blkaddr * bs)]
    if ino.layout != CHUNK_BASED:
        return None
    fmt = ino.i_u & 0xFFFF
    chunk_bytes = bs << (fmt & CHUNK_FORMAT_BLKBITS_MASK)
    nchunks = -(-ino.size // chunk_bytes)
    if nchunks == 0:
        return []
    base = sb.inode_offset(ino.nid) + ino.inode_size + ino.xattr_size
    if fmt & CHUNK_FORMAT_INDEXES:
        base = -(-base // CHUNK_INDEX_SIZE) * CHUNK_INDEX_SIZE
        raw = read(base, nchunks * CHUNK_INDEX_SIZE)
        entries = []
        for k in range(nchunks):
            hi, device_id, lo = struct.unpack_from("<HHI", raw, k * CHUNK_INDEX_SIZE)
            if device_id:
                return None                 # chunk in another blob device
            entries.append(NULL_ADDR if lo == NULL_ADDR else (lo | hi << 32))
    else:
        raw = read(base, nchunks * BLOCK_MAP_ENTRY_SIZE)
        entries = list(struct.unpack_from(f"<{nchunks}I", raw, 0))
    extents = []
    for k, blk in enumerate(entries):
        if blk == NULL_ADDR:
            continue
        length = min(chunk_bytes, ino.size - k * chunk_bytes)
        extents.append((k * chunk_bytes, length, blk * bs))
    return extents


def metadata_offsets(sb: Superblock, ino: DiskInode) -> tuple[int, int]:
    """(image offset of the on-disk inode, of its inline tail or -1): what
    the kernel reads through erofs_read_metabuf(), at the inode's lookup and
    when the tail's file page is read (fs/erofs/data.c erofs_map_blocks:
    the tail sits right after the inode and its inline xattrs).  Raises
    ErofsFormatError for metabox inodes."""
    at = sb.inode_offset(ino.nid)
    tail = -1
    if ino.layout == FLAT_INLINE and ino.size % sb.block_size:
        tail = at + ino.inode_size + ino.xattr_size
    return at, tail


class RunPageMap(Mapping):
    """file_page_map's answer where file pages ``first`` .. first + n - 1 are
    image pages ``base`` .. base + n - 1, one each (a plain file's data in
    one run, page-aligned: most files): three ints, not a dict of 1-tuples
    (~300 B per file; the resolver keeps one per file it was asked of).  A
    read-only Mapping: get, keys, values, items, ==, as the dict."""

    __slots__ = ("first", "n", "base")

    def __init__(self, first: int, n: int, base: int):
        self.first, self.n, self.base = first, n, base

    def __getitem__(self, fpage):
        i = fpage - self.first if fpage.__class__ is int else -1
        if 0 <= i < self.n:
            return (self.base + i,)
        raise KeyError(fpage)

    def __contains__(self, fpage) -> bool:
        return fpage.__class__ is int and 0 <= fpage - self.first < self.n

    def __iter__(self):
        return iter(range(self.first, self.first + self.n))

    def __len__(self) -> int:
        return self.n

    # get, values, items without Mapping's mixins (a __getitem__ call and a
    # KeyError per page: a group's copies are walked at every refresh of it)
    def get(self, fpage, default=None):
        i = fpage - self.first if fpage.__class__ is int else -1
        return (self.base + i,) if 0 <= i < self.n else default

    def values(self) -> list[tuple[int]]:
        return [(p,) for p in range(self.base, self.base + self.n)]

    def items(self) -> list[tuple[int, tuple[int]]]:
        return list(zip(range(self.first, self.first + self.n), self.values()))

    def __repr__(self) -> str:
        return f"RunPageMap(first={self.first}, n={self.n}, base={self.base})"

    def page_run(self) -> range:
        """The image pages it names (savings.mapped_pages)."""
        return range(self.base, self.base + self.n)


def _as_run(pages: dict[int, tuple[int, ...]]) -> Mapping[int, tuple[int, ...]]:
    """``pages`` as a RunPageMap when it is one run, else as it is."""
    if not pages:
        return pages
    first = min(pages)
    base_t = pages[first]
    if len(base_t) != 1:
        return pages
    base, n = base_t[0], len(pages)
    for i in range(n):
        got = pages.get(first + i)
        if got is None or len(got) != 1 or got[0] != base + i:
            return pages
    return RunPageMap(first, n, base)


def file_page_map(extents: list[tuple[int, int, int]], image_base: int,
                  page_size: int) -> Mapping[int, tuple[int, ...]]:
    """file page index -> the image-file pages holding its data blocks (a
    RunPageMap where that is one run).

    ``image_base`` is the image's offset in the backing file (loop offset).
    A block smaller than a page makes one file page span several image pages
    (and one image page hold several files' blocks)."""
    out: dict[int, set[int]] = {}
    for foff, length, ioff in extents:
        pos = 0
        while pos < length:
            fpage = (foff + pos) // page_size
            run = min(length - pos, (fpage + 1) * page_size - (foff + pos))
            first = (image_base + ioff + pos) // page_size
            last = (image_base + ioff + pos + run - 1) // page_size
            out.setdefault(fpage, set()).update(range(first, last + 1))
            pos += run
    return _as_run({p: tuple(sorted(v)) for p, v in out.items()})


_DUMP_EXTENT = re.compile(rb"^\s*\d+:\s*(\d+)\.\.\s*(\d+)\s*\|\s*(\d+)\s*:"
                          rb"\s*(\d+)\.\.\s*(\d+)\s*\|\s*(\d+)\s*$")
DUMP_TIMEOUT_S = 10


def parse_dump_extents(text: bytes) -> list[tuple[int, int, int, int]]:
    """``dump.erofs -e`` extent lines -> (logical offset, logical length,
    physical offset, physical length); extents without blocks (fragments,
    inline tails, holes: physical length 0) are left out."""
    out = []
    for line in text.splitlines():
        m = _DUMP_EXTENT.match(line)
        if m:
            lo, _hi, llen, pa, _pe, plen = (int(x) for x in m.groups())
            if plen:
                out.append((lo, llen, pa, plen))
    return out


def dump_extents(image: str, nid: int) -> list[tuple[int, int, int, int]]:
    """Physical extents of inode ``nid`` through erofs-utils' dump.erofs: the
    fallback for compressed layouts erofs_top/zmap.py refuses (a process per
    file).  Raises OSError when dump.erofs is missing or fails."""
    try:
        r = subprocess.run(["dump.erofs", "-e", f"--nid={nid}", image], capture_output=True,
                           timeout=DUMP_TIMEOUT_S)
    except (subprocess.TimeoutExpired, FileNotFoundError) as e:
        raise OSError(f"dump.erofs: {e}") from None
    if r.returncode != 0:
        raise OSError(f"dump.erofs -e --nid={nid} {image}: exit {r.returncode}")
    return parse_dump_extents(r.stdout)


def compressed_page_map(extents: list[tuple[int, int, int, int]],
                        page_size: int) -> dict[int, tuple[int, ...]]:
    """file page -> image pages of the compressed cluster(s) it decompresses
    from: a cluster is read whole for any page of its logical range."""
    out: dict[int, set[int]] = {}
    for lo, llen, pa, plen in extents:
        phys = range(pa // page_size, (pa + plen - 1) // page_size + 1)
        for fpage in range(lo // page_size, (lo + llen - 1) // page_size + 1):
            out.setdefault(fpage, set()).update(phys)
    return {p: tuple(sorted(v)) for p, v in out.items()}


# ---------------------------------------------------------------- reading images
# O_DIRECT reads go through one page-aligned buffer per thread, kept between
# reads: a new mapping per read paid its creation, a fault and zeroing per
# page and the unmap (~0.1 ms per 256 KiB read, ~0.7 s of a 50,000-file
# node's first refresh).  Reads longer than DIRECT_BUFFER_MAX get a mapping
# of their own, freed after it.
DIRECT_BUFFER_MAX = 1 << 20
_direct = threading.local()


def _aligned_buffer(size: int) -> tuple[mmap.mmap, bool]:
    """(a page-aligned buffer of at least ``size`` bytes, whether it is kept)."""
    if size > DIRECT_BUFFER_MAX:
        return mmap.mmap(-1, size), False
    buf = getattr(_direct, "buf", None)
    if buf is None or len(buf) < size:
        if buf is not None:
            buf.close()
        # grown to a power of two: a few sizes over a run, not one per read
        buf = _direct.buf = mmap.mmap(-1, max(1 << (size - 1).bit_length(), 1 << 16))
    return buf, True


def _read_direct(fd: int, offset: int, length: int) -> bytes | None:
    """Aligned O_DIRECT pread; None when the file or fs refuses O_DIRECT."""
    bs = 4096
    start = offset // bs * bs
    end = (offset + length + bs - 1) // bs * bs
    buf, kept = _aligned_buffer(end - start)
    try:
        with memoryview(buf) as view:
            try:
                n = os.preadv(fd, [view[:end - start]], start)
            except OSError:
                return None
            return bytes(view[offset - start:min(n, offset - start + length)])
    finally:
        if not kept:
            buf.close()


def read_direct(fd: int, offset: int, length: int) -> bytes:
    """Bytes [offset, offset + length) of ``fd`` (opened with O_DIRECT),
    short at its end; raises OSError where the file or its filesystem
    refuses the read (no buffered fallback: the caller has another way)."""
    data = _read_direct(fd, offset, length)
    if data is None:
        raise OSError(errno.EINVAL, "O_DIRECT read refused")
    return data


def read_image(path: str, offset: int, length: int) -> bytes:
    """Read bytes of an image file or block device without polluting the cache.

    O_DIRECT first (no page-cache insertions at all); where that is refused
    (tmpfs before 6.6, some FUSE), a buffered read whose new pages are dropped
    again (pagecache.preserve_residency).  Raises OSError.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECT)
    except OSError:
        fd = None
    if fd is not None:
        try:
            # a filesystem may serve O_DIRECT through its cache: drop what it added
            data = read_dropping_new(fd, offset, length, lambda: _read_direct(fd, offset, length))
        finally:
            os.close(fd)
        if data is not None:
            return data
    with preserve_residency([path]):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)


def read_superblock(path: str, base: int = 0) -> tuple[Superblock, bytes]:
    """(superblock, bytes of the first block) of the image at ``path`` + ``base``."""
    head = read_image(path, base, 8192)
    if len(head) < EROFS_SUPER_OFFSET + 4:
        raise ErofsFormatError(f"{path}: {len(head)} bytes, too short for an EROFS image")
    sb = parse_superblock(head[EROFS_SUPER_OFFSET:EROFS_SUPER_OFFSET + 144])
    first = head[:max(sb.block_size, EROFS_SUPER_OFFSET + sb.sb_size)]
    return sb, first


IMAGE_ID_SAMPLES = 8             # data blocks sampled into the image id


def image_id_from(sb: Superblock, first_block: bytes, extra: bytes = b"") -> str:
    """Stable image id: uuid + digest(first block, ``extra``, size) + size.

    The same image file mounted twice (file-backed or via loop) gets the same id;
    two builds differ in uuid (random by default), build time or metadata.  Builds
    with a forced equal uuid (-U) and timestamp (-T) and identical metadata differ
    only in data, which ``extra`` covers by samples (see image_info); images that
    differ only outside the sampled blocks would share an id.
    """
    h = hashlib.sha256(first_block)
    h.update(extra)
    h.update(sb.image_size.to_bytes(8, "little"))
    uuid = sb.uuid.hex() if any(sb.uuid) else "nouuid"
    return f"{uuid[:12]}-{h.hexdigest()[:16]}-{sb.image_size}"


def image_info(path: str, base: int = 0) -> ImageInfo:
    """ImageInfo of the EROFS image at ``path`` (file or block device).

    Reads the superblock block, the root inode, and ``IMAGE_ID_SAMPLES`` evenly
    spaced blocks plus the last block for the id: about ten 4 KiB O_DIRECT reads.
    """
    sb, first = read_superblock(path, base)
    extra = bytearray()
    try:
        extra += read_image(path, base + sb.inode_offset(sb.root_nid), 64)
    except (OSError, ErofsFormatError):
        pass
    bs, blocks = sb.block_size, sb.blocks
    if blocks > 1:
        picks = sorted({blocks * k // IMAGE_ID_SAMPLES for k in range(1, IMAGE_ID_SAMPLES)}
                       | {blocks - 1})
        for b in picks:
            try:
                extra += read_image(path, base + b * bs, bs)
            except OSError:
                break
    return ImageInfo(
        uuid=sb.uuid_str, volume_name=sb.volume_name, feature_compat=sb.feature_compat,
        feature_incompat=sb.feature_incompat, block_size=sb.block_size,
        image_id=image_id_from(sb, first, bytes(extra)), ishare_xattrs=sb.ishare_xattrs,
        compressed=sb.compressed)


def read_inode(path: str, sb: Superblock, nid: int, base: int = 0) -> DiskInode:
    """The on-disk inode ``nid`` of the image at ``path`` (+ ``base`` for loop offsets)."""
    off = sb.inode_offset(nid)
    raw = read_image(path, base + off, 64)
    return parse_inode(raw, nid)
