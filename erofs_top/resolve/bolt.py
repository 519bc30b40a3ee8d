"""A read-only reader of bbolt (etcd-io/bbolt) database files, pure Python.

containerd keeps its metadata (namespaces, images, containers, snapshot keys,
leases) in a bbolt file, ``/var/lib/containerd/io.containerd.metadata.v1.bolt/
meta.db``.  erofs-top reads it without taking bbolt's file lock (containerd
holds it exclusively) and without writing anything.

Format (bbolt 1.3/1.4, ``page.go``, little-endian):
  page header   id u64, flags u16, count u16, overflow u32        (16 bytes)
                flags: 0x01 branch, 0x02 leaf, 0x04 meta, 0x10 freelist
  meta          (pages 0 and 1, after the header) magic 0xED0CDAED u32,
                version 2 u32, page_size u32, flags u32, root bucket
                (root pgid u64, sequence u64), freelist u64, pgid u64,
                txid u64, checksum u64 (FNV-1a 64 of the 56 bytes before it)
  branch elem   pos u32, ksize u32, pgid u64                      (16 bytes)
  leaf elem     flags u32, pos u32, ksize u32, vsize u32          (16 bytes)
                flags 0x01: the value is a bucket header (root pgid u64,
                sequence u64); root 0 means an inline bucket whose page follows
                the header inside the value.
  ``pos`` counts from the element itself.

Consistency without the lock: bbolt is copy-on-write.  The tree reachable from
the newest valid meta page is only overwritten two commits later (pages freed by
a commit are reused by a later one).  ``read()`` reads the meta pages, then only
the pages of the newest tree (pread, not the whole mostly-free file), then the
meta pages again: if the txid moved by more than one commit meanwhile it
retries (``BoltError`` after 3 attempts).  A damaged newest meta page (checksum)
makes it use the older one.
"""
from __future__ import annotations

import os
import struct

MAGIC = 0xED0CDAED
PAGE_HEADER = struct.Struct("<QHHI")
META = struct.Struct("<IIIIQQQQQQ")
BRANCH_ELEM = struct.Struct("<IIQ")
LEAF_ELEM = struct.Struct("<IIII")
BUCKET_HEADER = struct.Struct("<QQ")
FLAG_BRANCH, FLAG_LEAF, FLAG_META = 0x01, 0x02, 0x04
LEAF_BUCKET = 0x01
MAX_DEPTH = 64


class BoltError(ValueError):
    """Not a bbolt file, a damaged one, or one that changed too fast to read."""


def _fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h ^= b
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Bucket:
    """One bucket: ``keys`` (name -> bytes value) and ``buckets`` (name -> Bucket)."""
    __slots__ = ("keys", "buckets")

    def __init__(self):
        self.keys: dict[bytes, bytes] = {}
        self.buckets: dict[bytes, Bucket] = {}

    def bucket(self, *path: str | bytes) -> "Bucket | None":
        b: Bucket | None = self
        for p in path:
            if b is None:
                return None
            b = b.buckets.get(p.encode() if isinstance(p, str) else p)
        return b

    def get(self, key: str | bytes) -> bytes | None:
        return self.keys.get(key.encode() if isinstance(key, str) else key)

    def text(self, key: str | bytes) -> str:
        v = self.get(key)
        return v.decode("utf-8", "replace") if v is not None else ""

    def to_tree(self) -> dict:
        """Nested dict (keys decoded; values as text when UTF-8, else hex): debugging."""
        out: dict = {}
        for k, v in self.keys.items():
            try:
                out[k.decode()] = v.decode()
            except UnicodeDecodeError:
                out[k.decode("utf-8", "replace")] = "0x" + v.hex()
        for k, b in self.buckets.items():
            out[k.decode("utf-8", "replace") + "/"] = b.to_tree()
        return out


def _metas(data: bytes) -> list[tuple[int, int, int]]:
    """Valid meta pages: (txid, page_size, root pgid), newest first."""
    out = []
    page_size = None
    for i in range(2):
        off = 0 if i == 0 else (page_size or 4096)
        if off + PAGE_HEADER.size + META.size > len(data):
            continue
        _pid, flags, _c, _o = PAGE_HEADER.unpack_from(data, off)
        raw = data[off + PAGE_HEADER.size: off + PAGE_HEADER.size + META.size]
        (magic, version, psize, _fl, root, _seq, _free, _pgid, txid, csum) = META.unpack(raw)
        if magic != MAGIC or version != 2 or not flags & FLAG_META:
            continue
        if _fnv1a64(raw[:56]) != csum:
            continue
        if i == 0:
            page_size = psize
        out.append((txid, psize, root))
    out.sort(reverse=True)
    return out


class _Parser:
    """Walks the tree page by page through ``read_at(offset, size) -> bytes``:
    only the pages of live data are read, not the whole (mostly free) file."""

    def __init__(self, read_at, page_size: int):
        self.read_at = read_at
        self.page_size = page_size

    def _page(self, pgid: int) -> tuple[bytes, int, int]:
        """(bytes of page pgid with its overflow pages, flags, count)."""
        off = pgid * self.page_size
        head = self.read_at(off, PAGE_HEADER.size) if pgid >= 2 else b""
        if len(head) < PAGE_HEADER.size:
            raise BoltError(f"page {pgid} outside the file")
        pid, flags, count, overflow = PAGE_HEADER.unpack(head)
        if pid != pgid or overflow > (1 << 20):
            raise BoltError(f"page {pgid} has id {pid} (file changed while read?)")
        buf = self.read_at(off, (overflow + 1) * self.page_size)
        return buf, flags, count

    def bucket_at(self, pgid: int, depth: int = 0) -> Bucket:
        b = Bucket()
        buf, flags, count = self._page(pgid)
        self._walk(buf, flags, count, b, depth)
        return b

    def _inline(self, value: bytes, depth: int) -> Bucket:
        root, _seq = BUCKET_HEADER.unpack_from(value, 0)
        if root:
            return self.bucket_at(root, depth + 1)
        page = value[BUCKET_HEADER.size:]
        b = Bucket()
        if len(page) >= PAGE_HEADER.size:
            _pid, flags, count, _o = PAGE_HEADER.unpack_from(page, 0)
            self._walk(page, flags, count, b, depth + 1)
        return b

    def _walk(self, buf: bytes, flags: int, count: int, into: Bucket, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise BoltError("tree too deep (damaged file?)")
        base = PAGE_HEADER.size
        if flags & FLAG_BRANCH:
            for i in range(count):
                _pos, _ksize, child = BRANCH_ELEM.unpack_from(buf, base + i * BRANCH_ELEM.size)
                cbuf, cflags, ccount = self._page(child)
                self._walk(cbuf, cflags, ccount, into, depth + 1)
        elif flags & FLAG_LEAF:
            for i in range(count):
                e = base + i * LEAF_ELEM.size
                lflags, pos, ksize, vsize = LEAF_ELEM.unpack_from(buf, e)
                k0 = e + pos
                key = bytes(buf[k0:k0 + ksize])
                value = bytes(buf[k0 + ksize:k0 + ksize + vsize])
                if len(key) != ksize or len(value) != vsize:
                    raise BoltError("leaf element outside its page")
                if lflags & LEAF_BUCKET:
                    into.buckets[key] = self._inline(value, depth)
                else:
                    into.keys[key] = value
        else:
            raise BoltError(f"page flags {flags:#x} where a branch or leaf was expected")


def _parse(read_at, head: bytes) -> tuple[int, Bucket]:
    metas = _metas(head)
    if not metas:
        raise BoltError("no valid bbolt meta page (not a bbolt file?)")
    last: Exception | None = None
    for txid, psize, root in metas:      # newest first; the older one if it is damaged
        try:
            return txid, _Parser(read_at, psize).bucket_at(root)
        except (BoltError, struct.error) as e:
            last = e
    raise BoltError(str(last))


def parse(data: bytes) -> tuple[int, Bucket]:
    """(txid, root bucket) of a bbolt file's bytes."""
    return _parse(lambda off, size: data[off:off + size], data[:2 * 65536])


def read(path: str, attempts: int = 3) -> tuple[int, Bucket]:
    """(txid, root bucket) of the bbolt file at path, read without locking
    (pread of the meta pages and of the tree's pages only)."""
    last: Exception | None = None
    for _ in range(attempts):
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            def read_at(off: int, size: int) -> bytes:
                return os.pread(fd, size, off)
            head = read_at(0, 4096)
            metas = _metas(head)
            if metas:
                head = read_at(0, 2 * metas[0][1])
            try:
                txid, root = _parse(read_at, head)
            except BoltError as e:
                last = e
                continue
            metas = _metas(read_at(0, 2 * metas[0][1]) if metas else b"")
        finally:
            os.close(fd)
        now = metas[0][0] if metas else txid
        if now - txid <= 1:
            return txid, root
        last = BoltError(f"changed while read (txid {txid} -> {now})")
    raise BoltError(f"{path}: {last}")
