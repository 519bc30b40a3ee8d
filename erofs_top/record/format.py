"""The recording file format (docs/recording.md): header, self-checking blocks, codecs.

Layout::

    file header (20 bytes)   magic "EROFSREC", major u16, minor u16, codec u8,
                             3 reserved bytes, CRC32 of the 16 bytes before it
    block*                   block header (20 bytes) + compressed payload

    block header             sync "EBLK", type u8, codec u8, flags u16,
                             stored_len u32 (payload bytes in the file),
                             raw_len u32 (payload bytes after decompression),
                             CRC32 over header bytes 4..16 + the stored payload

Every block is compressed on its own, so a file cut anywhere (crash, full disk)
reads up to its last complete block.  All integers are little-endian.
Pure: no kernel, no bcc.
"""
from __future__ import annotations

import json
import operator
import struct
import sys
import zlib
from array import array
from dataclasses import dataclass

MAGIC = b"EROFSREC"
FORMAT_MAJOR = 1        # bump: old readers must refuse (layout of existing blocks changed)
FORMAT_MINOR = 0        # bump: new block types / JSON keys that old readers may ignore

FILE_HEADER = struct.Struct("<8sHHB3sI")
BLOCK_SYNC = b"EBLK"
BLOCK_HEADER = struct.Struct("<4sBBHIII")

# Block types.  Readers skip types they do not know (minor-version additions).
BLOCK_META = 1      # JSON: start metadata (first block) or additions (mounts, cgroups, files)
BLOCK_SEED = 2      # JSON: Readings at the start (pages already resident, their owners)
BLOCK_EVENTS = 3    # binary, columnar: kernel events (see EventBatch)
BLOCK_TICK = 4      # JSON: once a second: event and loss counters
BLOCK_MODEL = 5     # JSON: a Model the live collector computed (periodic snapshot)
BLOCK_END = 6       # JSON: clean end: reason, totals
BLOCK_STATE = 7     # JSON: kernel state no event carries (shared inodes, image-file cache)
BLOCK_NAMES = {BLOCK_META: "meta", BLOCK_SEED: "seed", BLOCK_EVENTS: "events",
               BLOCK_TICK: "tick", BLOCK_MODEL: "model", BLOCK_END: "end",
               BLOCK_STATE: "state"}

CODEC_NONE = 0
CODEC_ZLIB = 1
CODEC_ZSTD = 2
CODEC_NAMES = {CODEC_NONE: "none", CODEC_ZLIB: "zlib", CODEC_ZSTD: "zstd"}

# A damaged length field must not make a reader allocate gigabytes.
MAX_BLOCK_RAW_BYTES = 256 << 20

class RecordingError(Exception):
    """A one-line, user-facing reason why a recording cannot be read or written."""


# ---------------------------------------------------------------- codecs
def zstd_available() -> bool:
    try:
        import zstandard  # noqa: F401
    except ImportError:
        return False
    return True


def default_codec() -> int:
    return CODEC_ZSTD if zstd_available() else CODEC_ZLIB


def codec_from_name(name: str) -> int:
    for k, v in CODEC_NAMES.items():
        if v == name:
            if k == CODEC_ZSTD and not zstd_available():
                raise RecordingError("zstd compression needs the 'zstandard' Python package "
                                     "(pip install zstandard), or use --compress zlib")
            return k
    raise RecordingError(f"unknown compression {name!r} (zstd, zlib or none)")


class Compressor:
    def __init__(self, codec: int, level: int | None = None):
        self.codec = codec
        if codec == CODEC_ZSTD:
            import zstandard
            self._z = zstandard.ZstdCompressor(level=3 if level is None else level)
        self.level = 6 if level is None else level

    def compress(self, raw: bytes) -> bytes:
        if self.codec == CODEC_ZSTD:
            return self._z.compress(raw)
        if self.codec == CODEC_ZLIB:
            return zlib.compress(raw, self.level)
        return raw


class Decompressor:
    def __init__(self):
        self._zstd = None

    def decompress(self, codec: int, stored: bytes, raw_len: int) -> bytes:
        if codec == CODEC_NONE:
            out = stored
        elif codec == CODEC_ZLIB:
            d = zlib.decompressobj()
            out = d.decompress(stored, raw_len + 1)
        elif codec == CODEC_ZSTD:
            if self._zstd is None:
                try:
                    import zstandard
                except ImportError:
                    raise RecordingError("this recording is zstd-compressed: install the "
                                         "'zstandard' Python package (pip install zstandard)")
                self._zstd = zstandard.ZstdDecompressor()
            out = self._zstd.decompress(stored, max_output_size=raw_len)
        else:
            raise ValueError(f"unknown codec {codec}")
        if len(out) != raw_len:
            raise ValueError(f"decompressed {len(out)} bytes, header says {raw_len}")
        return out


# ---------------------------------------------------------------- header / blocks
def pack_file_header(codec: int, major: int = FORMAT_MAJOR, minor: int = FORMAT_MINOR) -> bytes:
    body = FILE_HEADER.pack(MAGIC, major, minor, codec, b"\0\0\0", 0)[:16]
    return body + struct.pack("<I", zlib.crc32(body))


@dataclass
class FileHeader:
    major: int
    minor: int
    codec: int


def unpack_file_header(data: bytes) -> FileHeader:
    """Raises RecordingError with the reason (empty, not a recording, newer major, damaged)."""
    if len(data) == 0:
        raise RecordingError("empty file: not an erofs-top recording")
    if len(data) < FILE_HEADER.size or not data.startswith(MAGIC):
        if MAGIC.startswith(data[:len(MAGIC)]) and len(data) < FILE_HEADER.size:
            raise RecordingError("file cut inside its header: no data recorded")
        raise RecordingError("not an erofs-top recording (bad magic)")
    magic, major, minor, codec, _res, crc = FILE_HEADER.unpack(data[:FILE_HEADER.size])
    if zlib.crc32(data[:16]) != crc:
        raise RecordingError("recording header is damaged (checksum mismatch)")
    if major > FORMAT_MAJOR:
        raise RecordingError(f"recording format {major}.{minor} is newer than this erofs-top "
                             f"reads ({FORMAT_MAJOR}.x): upgrade erofs-top to read it")
    if major < 1:
        raise RecordingError(f"recording format {major}.{minor} is not supported")
    return FileHeader(major, minor, codec)


def pack_block(btype: int, raw: bytes, comp: Compressor, flags: int = 0) -> bytes:
    stored = comp.compress(raw)
    codec = comp.codec
    if len(stored) >= len(raw) and codec != CODEC_NONE:
        stored, codec = raw, CODEC_NONE     # incompressible: store as is
    head = BLOCK_HEADER.pack(BLOCK_SYNC, btype, codec, flags, len(stored), len(raw), 0)[:16]
    crc = zlib.crc32(stored, zlib.crc32(head[4:16]))
    return head + struct.pack("<I", crc) + stored


def json_bytes(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=False).encode()


# ---------------------------------------------------------------- events (columnar)
# One array per field keeps equal-width numbers together: zstd then squeezes the
# mostly-constant columns (dev, kind, pid, cgroup) to almost nothing.
_COLUMNS = (("kind", "B"), ("dev", "I"), ("ino", "Q"), ("index", "Q"),
            ("nr_pages", "I"), ("cgroup_id", "Q"), ("pid", "I"))
# probes/filemap.c `struct page_event`, field by field (name, struct code; the
# pad has no name); tests/unit/test_probe_contracts.py compares it with the C
PROBE_EVENT_FIELDS = (("ts_ns", "Q"), ("cgroup_id", "Q"), ("ino", "Q"), ("index", "Q"),
                      ("dev", "I"), ("nr_pages", "I"), ("pid", "I"), ("kind", "B"),
                      ("", "3x"))
PROBE_EVENT = struct.Struct("<" + "".join(code for _, code in PROBE_EVENT_FIELDS))
_PROBE_EVENT_NAMES = tuple(name for name, _ in PROBE_EVENT_FIELDS if name)
_HOT_COLUMNS = (("ts_ns", "Q"),) + _COLUMNS
_HOT_GETTERS = tuple((operator.attrgetter(name), code) for name, code in _HOT_COLUMNS)
_EV_HEAD = struct.Struct("<IHHQ")   # count, flags, reserved, first ts_ns
EV_FLAG_MAPPING = 1                 # a `mapping` column follows (shared-inode events)
_BIG_ENDIAN = sys.byteorder == "big"


def _le(a: array) -> bytes:
    if _BIG_ENDIAN:
        a = array(a.typecode, a)
        a.byteswap()
    return a.tobytes()


def _check_itemsizes() -> None:
    for code, size in (("B", 1), ("I", 4), ("Q", 8), ("q", 8)):
        if array(code).itemsize != size:
            raise RuntimeError(f"array typecode {code} is not {size} bytes here")


_check_itemsizes()


@dataclass
class EventBatch:
    """Events of one block, as columns (array.array), in arrival order."""
    ts_ns: array
    kind: array
    dev: array
    ino: array
    index: array
    nr_pages: array
    cgroup_id: array
    pid: array
    mapping: array

    @classmethod
    def empty(cls) -> "EventBatch":
        return cls(array("Q"), array("B"), array("I"), array("Q"), array("Q"),
                   array("I"), array("Q"), array("I"), array("Q"))

    def __len__(self) -> int:
        return len(self.ts_ns)

    def append(self, ts_ns, kind, dev, ino, index, nr_pages, cgroup_id, pid, mapping=0):
        self.ts_ns.append(ts_ns)
        self.kind.append(kind)
        self.dev.append(dev)
        self.ino.append(ino)
        self.index.append(index)
        self.nr_pages.append(nr_pages)
        self.cgroup_id.append(cgroup_id)
        self.pid.append(pid)
        self.mapping.append(mapping)

    def extend_events(self, events) -> None:
        """Append PageEvent-like objects (attributes ts_ns, kind, dev, ...; mapping optional)."""
        try:
            # column by column (the recorder's hot path): build every column first so
            # an out-of-range value changes nothing, then append them all
            cols = [array(code, list(map(get, events))) for get, code in _HOT_GETTERS]
            cols.append(array("Q", [getattr(e, "mapping", 0) for e in events]))
        except (OverflowError, TypeError):
            for e in events:        # values out of their field's range: wrap like C would
                self.append(e.ts_ns & 0xFFFFFFFFFFFFFFFF, e.kind & 0xFF, e.dev & 0xFFFFFFFF,
                            e.ino & 0xFFFFFFFFFFFFFFFF, e.index & 0xFFFFFFFFFFFFFFFF,
                            e.nr_pages & 0xFFFFFFFF, e.cgroup_id & 0xFFFFFFFFFFFFFFFF,
                            e.pid & 0xFFFFFFFF, getattr(e, "mapping", 0) & 0xFFFFFFFFFFFFFFFF)
            return
        for (name, _code), col in zip(_HOT_COLUMNS + (("mapping", "Q"),), cols):
            getattr(self, name).extend(col)

    @classmethod
    def from_probe_records(cls, buf: bytes) -> "EventBatch":
        """Decode concatenated `struct page_event` records (probes/filemap.c, 48
        bytes each, native little-endian) in bulk: no per-event Python object."""
        n = len(buf) // PROBE_EVENT.size
        if n == 0:
            return cls.empty()
        c = dict(zip(_PROBE_EVENT_NAMES, zip(*PROBE_EVENT.iter_unpack(
            memoryview(buf)[:n * PROBE_EVENT.size]))))
        return cls(array("Q", c["ts_ns"]), array("B", c["kind"]), array("I", c["dev"]),
                   array("Q", c["ino"]), array("Q", c["index"]), array("I", c["nr_pages"]),
                   array("Q", c["cgroup_id"]), array("I", c["pid"]), array("Q", bytes(8 * n)))

    def time_ordered(self) -> "EventBatch":
        """The events sorted by ts_ns (stable).  Ring buffer order is time order
        up to tiny inversions between CPUs; a perf buffer (older kernels) hands
        each CPU's events over in turn, so an insert and the removal of the same
        page on two CPUs could arrive swapped."""
        ts = self.ts_ns
        if all(a <= b for a, b in zip(ts, ts[1:])):
            return self
        order = sorted(range(len(ts)), key=ts.__getitem__)
        return EventBatch(*(array(getattr(self, f).typecode, [getattr(self, f)[i] for i in order])
                            for f in _FIELDS))

    def slice(self, start: int, stop: int) -> "EventBatch":
        return EventBatch(*(getattr(self, f)[start:stop] for f in _FIELDS))

    def rows(self):
        return zip(self.ts_ns, self.kind, self.dev, self.ino, self.index,
                   self.nr_pages, self.cgroup_id, self.pid, self.mapping)

    def encode(self) -> bytes:
        n = len(self.ts_ns)
        flags = EV_FLAG_MAPPING if any(self.mapping) else 0
        first = self.ts_ns[0] if n else 0
        # timestamps as deltas modulo 2**64: events from different CPUs may arrive
        # slightly out of order (a small negative delta is 0xffff..., still compresses)
        deltas = array("Q", [0] * n)
        prev = first
        for i, t in enumerate(self.ts_ns):
            deltas[i] = (t - prev) & 0xFFFFFFFFFFFFFFFF
            prev = t
        parts = [_EV_HEAD.pack(n, flags, 0, first), _le(deltas)]
        for name, _code in _COLUMNS:
            parts.append(_le(getattr(self, name)))
        if flags & EV_FLAG_MAPPING:
            parts.append(_le(self.mapping))
        return b"".join(parts)

    @classmethod
    def decode(cls, raw: bytes) -> "EventBatch":
        if len(raw) < _EV_HEAD.size:
            raise ValueError("events block shorter than its header")
        n, flags, _res, first = _EV_HEAD.unpack_from(raw, 0)
        widths = [8] + [array(c).itemsize for _n, c in _COLUMNS]
        if flags & EV_FLAG_MAPPING:
            widths.append(8)
        need = _EV_HEAD.size + n * sum(widths)
        if len(raw) != need:
            raise ValueError(f"events block holds {len(raw)} bytes, {n} events need {need}")
        off = _EV_HEAD.size

        def take(code):
            nonlocal off
            a = array(code)
            size = a.itemsize * n
            a.frombytes(raw[off:off + size])
            if _BIG_ENDIAN:
                a.byteswap()
            off += size
            return a

        deltas = take("Q")
        ts = array("Q", [0] * n)
        t = first
        for i, d in enumerate(deltas):
            t = (t + d) & 0xFFFFFFFFFFFFFFFF
            ts[i] = t
        cols = {name: take(code) for name, code in _COLUMNS}
        mapping = take("Q") if flags & EV_FLAG_MAPPING else array("Q", bytes(8 * n))
        return cls(ts_ns=ts, mapping=mapping, **cols)


_FIELDS = ("ts_ns", "kind", "dev", "ino", "index", "nr_pages", "cgroup_id", "pid", "mapping")
