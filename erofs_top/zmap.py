"""EROFS compressed indexes: which image bytes (pclusters) hold each part of a
compressed file.  Pure functions over ``read(offset, length) -> bytes``.

On-disk format (erofs-utils ``include/erofs_fs.h``, Linux ``fs/erofs/erofs_fs.h``),
all little-endian.  After the inode and its inline xattrs, rounded up to 8,
sits the 8-byte ``z_erofs_map_header``:

  bytes 0..3  h_fragmentoff | (h_reserved1, h_idata_size) | h_extents_lo
  bytes 4..5  h_advise (Z_EROFS_ADVISE_*)
  byte  6     h_algorithmtype (bits 0-3: HEAD1 algorithm, 4-7: HEAD2)
  byte  7     h_clusterbits (bits 0-3: lcluster bits - block bits; bit 7: the
              whole file is a fragment of the packed inode, bytes 0..6 its offset)

The file is cut into logical clusters (lclusters) of ``1 << lclusterbits``
bytes, one index record each, of type PLAIN (stored uncompressed), HEAD1/HEAD2
(a compressed extent starts in it, at ``clusterofs``) or NONHEAD (inside an
extent: ``delta[0]`` back to its head, ``delta[1]`` ahead to the next head; the
first NONHEAD of a big pcluster holds the pcluster's block count, CBLKCNT).

  full (COMPRESSED_FULL)      8 bytes per lcluster, after the header + 8 bytes
  compact (COMPRESSED_COMPACT) packs of 2 (4B) or 16 (2B) lclusters: bit-packed
              (type, clusterofs or delta) plus one 32-bit block address per pack
  encoded extents (48-bit images, ADVISE_EXTENTS on a full inode): one 4..32
              byte record per extent (plen, pstart, lstart)

Extras: ztailpacking (the last pcluster inline, right after the indexes),
fragments (the tail, or the whole file, inside the packed inode), dedupe
(extents of several files pointing into one pcluster, PARTIAL_REF).

The walk follows what ``dump.erofs -e`` prints (erofs-utils ``lib/zmap.c``,
``z_erofs_map_blocks_iter`` with EROFS_GET_BLOCKS_FIEMAP, from offset 0, one
extent after the other), so the two can be compared extent for extent.  A
layout this module does not know raises UnsupportedZmap: the caller falls back
to dump.erofs for that file and says so; never a silent guess.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .resolve.superblock import (COMPRESSED_COMPACT, COMPRESSED_FULL, DiskInode, ErofsFormatError,
                                 Superblock)

MAP_HEADER_SIZE = 8
LCLUSTER_INDEX_SIZE = 8

TYPE_PLAIN, TYPE_HEAD1, TYPE_NONHEAD, TYPE_HEAD2 = 0, 1, 2, 3
LI_PARTIAL_REF = 1 << 15
LI_D0_CBLKCNT = 1 << 11

ADVISE_COMPACTED_2B = 0x0001       # compact inodes
ADVISE_EXTENTS = 0x0001            # full inodes: encoded extents
ADVISE_BIG_PCLUSTER_1 = 0x0002
ADVISE_BIG_PCLUSTER_2 = 0x0004
ADVISE_INLINE_PCLUSTER = 0x0008
ADVISE_INTERLACED_PCLUSTER = 0x0010
ADVISE_FRAGMENT_PCLUSTER = 0x0020
ADVISE_EXTRECSZ_BIT = 1
ADVISE_EXTRECSZ_MASK = 0x3
ADVISE_KNOWN = 0x003F | (ADVISE_EXTRECSZ_MASK << ADVISE_EXTRECSZ_BIT)
FRAGMENT_INODE_BIT = 7

EXTENT_PLEN_PARTIAL = 1 << 27
EXTENT_PLEN_FMT_BIT = 28
PCLUSTER_MAX_SIZE = 1 << 20
EXTENT_PLEN_MASK = (PCLUSTER_MAX_SIZE << 1) - 1
NULL_ADDR = 0xFFFFFFFF

KIND_COMPRESSED = "compressed"     # a pcluster in data blocks (or a PLAIN one)
KIND_INLINE = "inline"             # ztailpacking: the pcluster beside the inode
KIND_FRAGMENT = "fragment"         # inside the packed inode
KIND_HOLE = "hole"                 # encoded extents without data


class UnsupportedZmap(ErofsFormatError):
    """A compressed layout this decoder does not handle (fall back, say why)."""


@dataclass(frozen=True)
class ZExtent:
    """One extent: file bytes [logical_offset, +logical_length) decompress from
    image bytes [physical_offset, +physical_length).  For a fragment,
    ``physical_offset`` is the offset in the packed inode and the length 0
    (as dump.erofs prints); for an inline pcluster, the image offset of the
    inline data.  ``algorithm`` is the on-disk algorithm number (0 lz4,
    1 lzma, 2 deflate, 3 zstd), None for uncompressed (PLAIN) pclusters."""
    logical_offset: int
    logical_length: int
    physical_offset: int
    physical_length: int
    kind: str = KIND_COMPRESSED
    algorithm: int | None = 0
    partial_ref: bool = False


@dataclass(frozen=True)
class MapHeader:
    advise: int
    algorithms: tuple[int, int]
    lclusterbits: int
    fragment_offset: int            # h_fragmentoff, or the whole-file fragment offset
    idata_size: int                 # ztailpacking: bytes of the inline pcluster
    extents: int                    # encoded extents: their count
    whole_fragment: bool


def _round_up(x: int, a: int) -> int:
    return -(-x // a) * a


def parse_map_header(raw: bytes, blkszbits: int, layout: int) -> MapHeader:
    """The 8-byte z_erofs_map_header (``raw`` from its offset)."""
    if len(raw) < MAP_HEADER_SIZE:
        raise ErofsFormatError("truncated z_erofs_map_header")
    word = int.from_bytes(raw[:8], "little")
    lo32, advise, algtype, clusterbits = struct.unpack_from("<IHBB", raw, 0)
    if clusterbits >> FRAGMENT_INODE_BIT:
        return MapHeader(advise=ADVISE_FRAGMENT_PCLUSTER, algorithms=(0, 0),
                         lclusterbits=blkszbits, fragment_offset=word ^ (1 << 63),
                         idata_size=0, extents=0, whole_fragment=True)
    if advise & ~ADVISE_KNOWN:
        raise UnsupportedZmap(f"unknown compression advise bits 0x{advise:04x}")
    extents = 0
    if layout == COMPRESSED_FULL and advise & ADVISE_EXTENTS:
        extents = lo32 | (algtype | clusterbits << 8) << 32
    return MapHeader(
        advise=advise, algorithms=(algtype & 15, algtype >> 4),
        lclusterbits=blkszbits + (clusterbits & 15),
        fragment_offset=lo32 if advise & ADVISE_FRAGMENT_PCLUSTER else 0,
        idata_size=(lo32 >> 16) if (advise & ADVISE_INLINE_PCLUSTER
                                    and not advise & ADVISE_FRAGMENT_PCLUSTER) else 0,
        extents=extents, whole_fragment=False)


@dataclass
class _Lcluster:
    """One decoded lcluster index record (the C code's z_erofs_maprecorder)."""
    lcn: int
    type: int
    clusterofs: int = 0
    pblk: int = 0
    delta0: int = 0
    delta1: int = 0
    cblkcnt: int = 0               # compressed blocks (first NONHEAD of a big pcluster)
    partial_ref: bool = False
    nextpackoff: int = 0           # image offset after this record's pack


class _Index:
    """Records are decoded once per (lcn, lookahead): a walk loads most of
    them three or four times (the head, its next lcluster, the scan ahead)."""

    def load(self, lcn: int, lookahead: bool = False) -> _Lcluster:
        key = (lcn, lookahead)
        rec = self._seen.get(key)
        if rec is None:
            rec = self._seen[key] = self._load(lcn, lookahead)
        return rec


class _FullIndex(_Index):
    """8-byte lcluster records (COMPRESSED_FULL)."""

    def __init__(self, start: int, raw: bytes, hdr: MapHeader):
        self.start, self.raw, self.hdr = start, raw, hdr
        self._seen: dict[tuple[int, bool], _Lcluster] = {}

    def _load(self, lcn: int, lookahead: bool = False) -> _Lcluster:
        off = lcn * LCLUSTER_INDEX_SIZE
        if off + LCLUSTER_INDEX_SIZE > len(self.raw):
            raise ErofsFormatError(f"lcluster {lcn} beyond the index")
        advise, clusterofs, d0, d1 = struct.unpack_from("<HHHH", self.raw, off)
        rec = _Lcluster(lcn=lcn, type=advise & 3, nextpackoff=self.start + off + 8)
        if rec.type == TYPE_NONHEAD:
            rec.clusterofs = 1 << self.hdr.lclusterbits
            rec.delta0, rec.delta1 = d0, d1
            if d0 & LI_D0_CBLKCNT:
                if not self.hdr.advise & (ADVISE_BIG_PCLUSTER_1 | ADVISE_BIG_PCLUSTER_2):
                    raise ErofsFormatError("CBLKCNT without big pclusters")
                rec.cblkcnt, rec.delta0 = d0 & ~LI_D0_CBLKCNT, 1
        else:
            rec.partial_ref = bool(advise & LI_PARTIAL_REF)
            rec.clusterofs = clusterofs
            rec.pblk = d0 | d1 << 16
        return rec


class _CompactIndex(_Index):
    """Bit-packed lcluster records (COMPRESSED_COMPACT): an initial run of 4B
    packs up to 32-byte alignment, then 2B packs (16 lclusters in 32 bytes,
    when ADVISE_COMPACTED_2B), then 4B packs (2 lclusters in 8 bytes).  Each
    pack ends with the 32-bit block address its HEAD lclusters count from."""

    def __init__(self, ebase: int, raw: bytes, hdr: MapHeader, totalidx: int):
        self.ebase, self.raw, self.hdr, self.totalidx = ebase, raw, hdr, totalidx
        self.initial_4b = ((32 - ebase % 32) // 4) & 7
        self.compacted_2b = 0
        if hdr.advise & ADVISE_COMPACTED_2B and self.initial_4b < totalidx:
            self.compacted_2b = (totalidx - self.initial_4b) // 16 * 16
        self.lobits = max(hdr.lclusterbits, LI_D0_CBLKCNT.bit_length())
        self.big = bool(hdr.advise & ADVISE_BIG_PCLUSTER_1)
        self._seen: dict[tuple[int, bool], _Lcluster] = {}

    @staticmethod
    def region_end(ebase: int, advise: int, totalidx: int) -> int:
        """Image offset after the last pack (what to read)."""
        initial = ((32 - ebase % 32) // 4) & 7
        two = 0
        if advise & ADVISE_COMPACTED_2B and initial < totalidx:
            two = (totalidx - initial) // 16 * 16
        n4 = max(totalidx - two, 0)
        return _round_up(ebase + n4 * 4 + two * 2, 8)

    def _pos(self, lcn: int) -> tuple[int, int]:
        """(image offset of lcn's slot, amortized shift: 2 = 4B, 1 = 2B)."""
        pos, shift = self.ebase, 2
        if lcn >= self.initial_4b:
            pos += self.initial_4b * 4
            lcn -= self.initial_4b
            if lcn < self.compacted_2b:
                shift = 1
            else:
                pos += self.compacted_2b * 2
                lcn -= self.compacted_2b
        return pos + (lcn << shift), shift

    def _bits(self, pack: bytes, encodebits: int, i: int) -> tuple[int, int]:
        pos = encodebits * i
        v = int.from_bytes(pack[pos // 8:pos // 8 + 4], "little") >> (pos & 7)
        return v & ((1 << self.lobits) - 1), (v >> self.lobits) & 3

    def _load(self, lcn: int, lookahead: bool = False) -> _Lcluster:
        if lcn >= self.totalidx:
            raise ErofsFormatError(f"lcluster {lcn} beyond the index ({self.totalidx})")
        pos, shift = self._pos(lcn)
        vcnt = 2 if shift == 2 else 16
        if shift == 1 and self.hdr.lclusterbits > 12:
            raise UnsupportedZmap("compacted 2B indexes with lclusters over 4 KiB")
        packsize = vcnt << shift
        packstart = pos // packsize * packsize
        rel = packstart - self.ebase
        pack = self.raw[rel:rel + packsize]
        if len(pack) < packsize:
            raise ErofsFormatError(f"lcluster {lcn} beyond the index")
        encodebits = ((packsize - 4) * 8) // vcnt
        i = (pos - packstart) >> shift
        rec = _Lcluster(lcn=lcn, type=0, nextpackoff=packstart + packsize)
        lo, rec.type = self._bits(pack, encodebits, i)
        if rec.type == TYPE_NONHEAD:
            self._nonhead(rec, pack, encodebits, vcnt, i, lo, lookahead)
            return rec
        rec.clusterofs = lo
        nblk = self._blocks_before(pack, encodebits, i)
        rec.pblk = int.from_bytes(pack[packsize - 4:], "little") + nblk
        return rec

    def _nonhead(self, rec: _Lcluster, pack: bytes, encodebits: int, vcnt: int, i: int,
                 lo: int, lookahead: bool) -> None:
        rec.clusterofs = 1 << self.hdr.lclusterbits
        if lookahead:
            rec.delta1 = self._lookahead(pack, encodebits, vcnt, i)
        if lo & LI_D0_CBLKCNT:
            if not self.big:
                raise ErofsFormatError("CBLKCNT without big pclusters")
            rec.cblkcnt, rec.delta0 = lo & ~LI_D0_CBLKCNT, 1
        elif i + 1 != vcnt:
            rec.delta0 = lo
        else:
            # the pack's last slot holds delta[1]; delta[0] comes from the one before
            prev, ptype = self._bits(pack, encodebits, i - 1)
            if ptype != TYPE_NONHEAD:
                prev = 0
            elif prev & LI_D0_CBLKCNT:
                prev = 1
            rec.delta0 = prev + 1

    def _lookahead(self, pack: bytes, encodebits: int, vcnt: int, i: int) -> int:
        d1 = 0
        lo = 0
        while i < vcnt:
            lo, typ = self._bits(pack, encodebits, i)
            if typ != TYPE_NONHEAD:
                return d1
            d1 += 1
            i += 1
        if not lo & LI_D0_CBLKCNT:
            d1 += lo - 1
        return d1

    def _blocks_before(self, pack: bytes, encodebits: int, i: int) -> int:
        """Blocks of the pack's pclusters before slot ``i`` (+1 without big
        pclusters: the pack address is one block before its first)."""
        if not self.big:
            nblk = 1
            while i > 0:
                i -= 1
                lo, typ = self._bits(pack, encodebits, i)
                if typ == TYPE_NONHEAD:
                    i -= lo
                if i >= 0:
                    nblk += 1
            return nblk
        nblk = 0
        while i > 0:
            i -= 1
            lo, typ = self._bits(pack, encodebits, i)
            if typ == TYPE_NONHEAD:
                if lo & LI_D0_CBLKCNT:
                    i -= 1
                    nblk += lo & ~LI_D0_CBLKCNT
                    continue
                if lo <= 1:
                    raise ErofsFormatError("big pcluster with a plain delta[0] <= 1")
                i -= lo - 2
                continue
            nblk += 1
        return nblk


class _Mapper:
    """``z_erofs_map_blocks_fo`` over one inode's lcluster index, as erofs-utils
    runs it for dump.erofs (FIEMAP: each extent to the next HEAD)."""

    def __init__(self, index, hdr: MapHeader, size: int, blkszbits: int, layout: int):
        self.index, self.hdr, self.size = index, hdr, size
        self.bits, self.blkszbits, self.layout = hdr.lclusterbits, blkszbits, layout
        self.tail_headlcn = 0
        self.inline_offset = 0                  # ztailpacking: image offset of the inline data
        self.fragment_offset = hdr.fragment_offset
        if hdr.idata_size or hdr.advise & ADVISE_FRAGMENT_PCLUSTER:
            self._find_tail()

    def _find_tail(self) -> None:
        first = self.index.load((self.size - 1) >> self.bits)
        if self.hdr.idata_size:
            self.inline_offset = first.nextpackoff
        head = self._head(first, (self.size - 1) & ((1 << self.bits) - 1))
        self.tail_headlcn = head.lcn
        if self.hdr.advise & ADVISE_FRAGMENT_PCLUSTER and self.layout == COMPRESSED_FULL:
            self.fragment_offset |= head.pblk << 32

    def _lookback(self, rec: _Lcluster, distance: int) -> _Lcluster:
        while rec.lcn >= distance:
            rec = self.index.load(rec.lcn - distance)
            if rec.type != TYPE_NONHEAD:
                return rec
            distance = rec.delta0
            if not distance:
                break
        raise ErofsFormatError(f"bogus lookback distance {distance} at lcluster {rec.lcn}")

    def _head(self, rec: _Lcluster, endoff: int) -> _Lcluster:
        """The HEAD/PLAIN record of the extent holding byte ``endoff`` of ``rec``."""
        if rec.type != TYPE_NONHEAD:
            if endoff >= rec.clusterofs:
                return rec
            if not rec.lcn:
                raise ErofsFormatError("invalid logical cluster 0")
            return self._lookback(rec, 1)
        return self._lookback(rec, rec.delta0)

    def _compressed_blocks(self, head: _Lcluster) -> int:
        big1 = self.hdr.advise & ADVISE_BIG_PCLUSTER_1
        big2 = self.hdr.advise & ADVISE_BIG_PCLUSTER_2
        lcn = head.lcn + 1
        if ((head.type == TYPE_HEAD1 and not big1)
                or (head.type in (TYPE_PLAIN, TYPE_HEAD2) and not big2)
                or (lcn << self.bits) >= self.size):
            return 1
        nxt = self.index.load(lcn)
        if nxt.type != TYPE_NONHEAD:
            return 1
        if nxt.delta0 != 1 or not nxt.cblkcnt:
            raise ErofsFormatError(f"bogus CBLKCNT at lcluster {lcn}")
        return nxt.cblkcnt

    def _decompressed_end(self, head: _Lcluster) -> int:
        lcn = head.lcn
        while True:
            if (lcn << self.bits) >= self.size:
                return self.size
            rec = self.index.load(lcn, lookahead=True)
            if rec.type == TYPE_NONHEAD:
                step = rec.delta1 or 1          # pre-1.0 mkfs wrote delta[1] = 0
            elif lcn != head.lcn:
                return (lcn << self.bits) + rec.clusterofs
            else:
                step = 1
            lcn += step

    def map(self, la: int) -> ZExtent:
        if (self.hdr.advise & ADVISE_FRAGMENT_PCLUSTER) and not self.tail_headlcn:
            return ZExtent(0, self.size, self.fragment_offset, 0, KIND_FRAGMENT, None)
        first = self.index.load(la >> self.bits)
        head = self._head(first, la & ((1 << self.bits) - 1))
        start = (head.lcn << self.bits) | head.clusterofs
        end = self._decompressed_end(head)
        if head.type == TYPE_PLAIN:
            algorithm = None
        else:
            algorithm = self.hdr.algorithms[1 if head.type == TYPE_HEAD2 else 0]
        if self.hdr.idata_size and head.lcn == self.tail_headlcn:
            return ZExtent(start, end - start, self.inline_offset, self.hdr.idata_size,
                           KIND_INLINE, algorithm, head.partial_ref)
        if self.hdr.advise & ADVISE_FRAGMENT_PCLUSTER and head.lcn == self.tail_headlcn:
            return ZExtent(start, end - start, self.fragment_offset, 0, KIND_FRAGMENT, None)
        plen = self._compressed_blocks(head) << self.blkszbits
        return ZExtent(start, end - start, head.pblk << self.blkszbits, plen,
                       KIND_COMPRESSED, algorithm, head.partial_ref)


def _encoded_extents(sb: Superblock, hdr: MapHeader, start: int, size: int,
                     read) -> list[ZExtent]:
    """Encoded extents (ADVISE_EXTENTS, 48-bit images): records of ``recsz``
    bytes (4: plen, pstarts follow from one 8-byte start; 8: + pstart_lo,
    one per lcluster; 16/32: + pstart_hi, lstart: one per extent)."""
    recsz = 4 << ((hdr.advise >> ADVISE_EXTRECSZ_BIT) & ADVISE_EXTRECSZ_MASK)
    pos = _round_up(start + MAP_HEADER_SIZE, recsz)
    lsize = 1 << hdr.lclusterbits
    if recsz <= 8:
        count = -(-size // lsize)
        raw = read(pos, 8 * (recsz == 4) + count * recsz)
        recs, pa = [], None
        if recsz == 4:
            pa = struct.unpack_from("<Q", raw, 0)[0]
        for k in range(count):
            off = 8 * (recsz == 4) + k * recsz
            plen = struct.unpack_from("<I", raw, off)[0]
            if pa is None:
                recs.append((k * lsize, plen, struct.unpack_from("<I", raw, off + 4)[0]))
            else:
                recs.append((k * lsize, plen, pa))
                pa += plen & EXTENT_PLEN_MASK
    else:
        raw = read(pos, hdr.extents * recsz)
        recs = []
        for k in range(hdr.extents):
            plen, plo, phi, llo = struct.unpack_from("<IIII", raw, k * recsz)
            lhi = struct.unpack_from("<I", raw, k * recsz + 16)[0] if recsz > 16 else 0
            recs.append((llo | lhi << 32, plen, plo | phi << 32))
    return _extents_from_records(sb, hdr, recs, size, recsz)


def _extents_from_records(sb: Superblock, hdr: MapHeader, recs: list, size: int,
                          recsz: int) -> list[ZExtent]:
    out = []
    for k, (la, plen, pa) in enumerate(recs):
        end = recs[k + 1][0] if k + 1 < len(recs) else size
        end = min(end, size)
        if la >= end:
            continue
        last = k + 1 == len(recs)
        if last and hdr.advise & ADVISE_FRAGMENT_PCLUSTER:
            frag = plen | (pa << 32 if recsz > 4 else 0)
            out.append(ZExtent(la, end - la, frag, 0, KIND_FRAGMENT, None))
        elif plen & EXTENT_PLEN_MASK:
            fmt = plen >> EXTENT_PLEN_FMT_BIT
            length = plen & EXTENT_PLEN_MASK
            algorithm = fmt - 1 if fmt else None       # 0: stored (shifted/interlaced)
            out.append(ZExtent(la, end - la, pa, length, KIND_COMPRESSED, algorithm,
                               bool(plen & EXTENT_PLEN_PARTIAL)))
        else:
            out.append(ZExtent(la, end - la, pa, 0, KIND_HOLE, None))
    return out


def compressed_extents(sb: Superblock, ino: DiskInode, read) -> list[ZExtent]:
    """Every extent of compressed inode ``ino``, in file order.

    ``read(offset, length) -> bytes`` reads the image (image-relative).
    Raises UnsupportedZmap for layouts not decoded here (metabox inodes,
    compacted indexes with lclusters larger than a block) and
    ErofsFormatError for damaged indexes."""
    if ino.layout not in (COMPRESSED_FULL, COMPRESSED_COMPACT):
        raise ValueError(f"inode {ino.nid} is not compressed ({ino.layout_name})")
    if ino.size == 0:
        return []
    start = _round_up(sb.inode_offset(ino.nid) + ino.inode_size + ino.xattr_size, 8)
    hdr = parse_map_header(read(start, MAP_HEADER_SIZE), sb.blkszbits, ino.layout)
    if hdr.whole_fragment:
        return [ZExtent(0, ino.size, hdr.fragment_offset, 0, KIND_FRAGMENT, None)]
    if hdr.extents or (ino.layout == COMPRESSED_FULL and hdr.advise & ADVISE_EXTENTS):
        return _encoded_extents(sb, hdr, start, ino.size, read)
    if ino.layout == COMPRESSED_COMPACT:
        if (not hdr.advise & ADVISE_BIG_PCLUSTER_1) != (not hdr.advise & ADVISE_BIG_PCLUSTER_2):
            raise ErofsFormatError("compact indexes with inconsistent big pcluster bits")
        if hdr.lclusterbits != sb.blkszbits:
            raise UnsupportedZmap("compact indexes with lclusters larger than a block")
        ebase = start + MAP_HEADER_SIZE
        totalidx = -(-ino.size // sb.block_size)
        end = _CompactIndex.region_end(ebase, hdr.advise, totalidx)
        index = _CompactIndex(ebase, read(ebase, end - ebase), hdr, totalidx)
    else:
        first = start + MAP_HEADER_SIZE + 8
        count = -(-ino.size // (1 << hdr.lclusterbits))
        index = _FullIndex(first, read(first, count * LCLUSTER_INDEX_SIZE), hdr)
    mapper = _Mapper(index, hdr, ino.size, sb.blkszbits, ino.layout)
    out, la = [], 0
    while la < ino.size:
        ext = mapper.map(la)
        if ext.logical_length <= 0:
            raise ErofsFormatError(f"empty extent at {la} of inode {ino.nid}")
        out.append(ext)
        la = ext.logical_offset + ext.logical_length
    return out


def dump_tuples(extents: list[ZExtent]) -> list[tuple[int, int, int, int]]:
    """(logical offset, logical length, physical offset, physical length) of
    the extents that sit in image bytes, as superblock.parse_dump_extents
    gives them from ``dump.erofs -e`` (fragments and holes left out)."""
    return [(e.logical_offset, e.logical_length, e.physical_offset, e.physical_length)
            for e in extents if e.physical_length]
