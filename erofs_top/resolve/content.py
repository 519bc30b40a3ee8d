"""Content identity of EROFS files: names, data path (aops), fingerprints, digests.

The aggregator asks, per resident (mount, inode):
  file_info    path through the mount point, size, regular?, aops class
  fingerprint  the erofs-utils ``--xattr-inode-digest`` xattr (sha256 of the content)
  build_id     ELF NT_GNU_BUILD_ID (cheap first check for binaries)
  digest       our own SHA-256 of the content, lazy and rate-limited

``fingerprint`` and ``digest`` return the same string for the same bytes (the hex
SHA-256 of the whole content), so an image with fingerprints and one without are
still matched.  The raw xattr value never leaves this module: the kernel appends
the secret domain_id to it for sharing, and only the digest is needed here.

Everything erofs-top reads itself (ELF notes, content for digests) goes through
pagecache.preserve_residency: pages that were not cached before are dropped again, so
the tool does not change the page cache it measures.
"""
from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
import struct
import time
import weakref

from contextlib import contextmanager
from itertools import islice

from ..pagecache import (backing_readahead, coalesce_runs, fd_resident_mask, fd_size,
                         file_resident_pages, preserve_residency)
from .. import heap
from ..names import decode
from .base import AOPS_BLOCK, AOPS_COMPRESSED, AOPS_FILEIO, FileInfo, LazyPathFileInfo, MountInfo
from .dirtree import image_paths
from .filedata import FileData, FileDataStream, file_data
from .readwindow import inode_runs, readahead_margin_pages
from .xattrs import (XattrName, XattrsUnreadable, inline_value, long_prefixes, shared_value,
                     xattr_name)
from .mounts import walk_mount
from .superblock import (COMPAT_SHARED_EA_IN_METABOX, COMPRESSED_FULL, INCOMPAT_FRAGMENTS,
                         DiskInode, ErofsFormatError, Superblock, compressed_page_map,
                         data_extents, dump_extents, file_page_map, metadata_offsets,
                         parse_inode, read_direct, read_image, read_superblock)
from ..fragments import MAP_TO_LCLUSTER, MAP_WHOLE, MAP_WHOLE_IF_LONG, PackedExtent
from ..readahead import MetaPages, ZExtentRa, ZFile
from ..zmap import (ADVISE_EXTENTS, ADVISE_FRAGMENT_PCLUSTER,
                    KIND_COMPRESSED, KIND_FRAGMENT, KIND_INLINE, MAP_HEADER_SIZE, UnsupportedZmap,
                    compressed_extents, dump_tuples, parse_map_header)

FINGERPRINT_PREFIX = b"sha256:"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
WHOLE_EXTENT_ALGORITHMS = (1, 2, 3)     # lzma, deflate, zstd: a read maps the whole extent
DEFAULT_DIGEST_BUDGET_BYTES_PER_S = 64 << 20
READ_CHUNK_BYTES = 1 << 20
WHOLE_READ_BYTES = 256 << 10    # image reads: a file up to this is read once, whole
ELF_BUFFER_BYTES = 64 << 10     # a bigger file's ELF notes: through a buffer this big
PREFETCH_BATCH = 2048           # files whose tails are kept at once (prefetch_identities)
IDENTITY_KEEP_BYTES = 32 << 20  # an image's pieces kept through its identity passes
KEPT_SEQ_CHUNKS = 32            # 1 MiB a sequential read while keeping (superblock.DIRECT_BUFFER_MAX)
FP_READ_MAX = 1 << 16      # fingerprint xattrs read with their inode, not asked for yet
SHARED_XATTRS_MAX = 4096    # shared xattr entries kept per image (their ids -> our value?)
MAX_WINDOWS = 4096          # read windows kept between a file's build_id and its digest
WINDOW_CHECK_FIRST = 16     # reads of an image checked for pages outside their window,
WINDOW_CHECK_EVERY = 64     # then one in this many (a model miss is systematic: seen early)
ELF_MAGIC = b"\x7fELF"


def fingerprint_hex(value: bytes) -> str:
    """Content id from a fingerprint xattr value.

    ``sha256:`` + 32 raw bytes (erofs-utils) -> the 64-hex digest, equal to our own
    digest of the same content.  Any other format -> ``xattr:`` + sha256 of the
    value: still a stable identity, never the raw blob.
    """
    if value.startswith(FINGERPRINT_PREFIX) and len(value) == len(FINGERPRINT_PREFIX) + 32:
        return value[len(FINGERPRINT_PREFIX):].hex()
    return "xattr:" + hashlib.sha256(value).hexdigest()


def build_id_of(stream) -> str | None:
    """Hex NT_GNU_BUILD_ID of an ELF stream, or None (not ELF, no note, damaged)."""
    try:
        from elftools.common.exceptions import ELFError
        from elftools.elf.elffile import ELFFile
        from elftools.elf.sections import NoteSection
    except ImportError:        # pyelftools is a dependency; degrade if it is missing
        return None
    head = stream.read(4)
    if head != ELF_MAGIC:
        return None
    stream.seek(0)
    try:
        elf = ELFFile(stream)
        for sec in elf.iter_sections():
            if isinstance(sec, NoteSection):
                for note in sec.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return note["n_desc"]
        for seg in elf.iter_segments():
            if seg["p_type"] == "PT_NOTE":
                for note in seg.iter_notes():
                    if note["n_type"] == "NT_GNU_BUILD_ID":
                        return note["n_desc"]
    except (ELFError, ValueError, OSError, KeyError, AttributeError, TypeError):
        return None
    return None


class ImageNames:
    """nid -> path below a mount's root ("" the root itself, "/etc/passwd"
    below it) of one image, read from the image once (dirtree.py) and kept
    while a mount of that image and root is indexed: every mount of the same
    image shares it (one mount per container of one image, as composefs and
    per-container mounts have it, would otherwise keep the same names once
    per container)."""

    __slots__ = ("rel", "_nids", "__weakref__")

    def __init__(self, rel: dict[int, str]):
        self.rel = rel
        self._nids: dict[str, int] | None = None

    def nid_of(self, rel_path: str) -> int | None:
        if self._nids is None:      # (built on first use: few indexes need it)
            self._nids = {p: nid for nid, p in self.rel.items()}
        return self._nids.get(rel_path)


class _MountIndex:
    """ino -> path below one mount.  EROFS is read-only, so it never goes
    stale while the superblock stays mounted.  Paths are where erofs-top
    opens the files (``mount.local()``: a mount of another mount namespace
    opens through /host or /proc/PID/root); FileInfo.path is the name in the
    mount's namespace.  Names read from the image are an ImageNames shared
    by the mounts of that image (``shared_names``: key -> ImageNames, weakly
    held); a walked mount keeps its own."""

    def __init__(self, mount: MountInfo, image_tree=None, shared_names=None):
        self.paths: dict[int, str] = {}     # (a walked mount) ino -> path
        self.names: ImageNames | None = None
        self.infos: dict[int, FileInfo | None] = {}
        self.error = ""
        self.walked = ""            # "image" (read from the image file) or "mount"
        self.image_error = ""       # why the image could not be read (walked the mount)
        self._nids: dict[str, int] | None = None
        self.root = root = mount.root_path
        self._prefix = root.rstrip("/")
        self.ns_strip = len(mount.ns_prefix)    # the path's part that is not the name
        self.namer: tuple | None = None         # (IndexedFileInfo) once names are read
        try:
            root_ino = os.stat(root).st_ino
            self.paths[root_ino] = root
            if image_tree is None:
                self.image_error = f"no readable EROFS image behind {mount.source or '?'}"
            elif self._from_image(mount, image_tree, root_ino, shared_names):
                return
            self.walked = "mount"
            for ent in walk_mount(root):
                self.paths.setdefault(ent.inode(), ent.path)   # hard links: first name
        except OSError as e:
            self.error = f"{root}: {e.strerror}"

    def _from_image(self, mount: MountInfo, image_tree, root_ino: int, shared_names) -> bool:
        """Names read from the image file (no page cache: dirtree.py), or
        those another mount of the same image and root read."""
        key = (mount.image_id, root_ino) if mount.image_id else None
        names = None if key is None or shared_names is None else shared_names.get(key)
        if names is None:
            try:
                tree = image_tree(root_ino, b"")
            except (OSError, ErofsFormatError, struct.error) as e:
                self.image_error = str(e)
                return False
            names = ImageNames({nid: decode(path) for nid, path in tree.items()})
            if key is not None and shared_names is not None:
                shared_names[key] = names
        self.names, self.paths = names, {}
        self.namer = (names, self._prefix, self.root, self.ns_strip)
        self.walked = "image"
        return True

    def path(self, ino: int) -> str:
        """ino's path ("" unknown)."""
        names = self.names
        if names is None:
            return self.paths.get(ino, "")
        rel = names.rel.get(ino)
        if rel is None:
            return ""
        return self._prefix + rel if rel else self.root

    def inos(self):
        """Every ino this index names."""
        return self.paths.keys() if self.names is None else self.names.rel.keys()

    def nid_of(self, path: str) -> int | None:
        """The inode number of a path of this index (built on first use)."""
        if self.names is not None:
            if path == self.root:
                return self.names.nid_of("")
            if not path.startswith(self._prefix + "/"):
                return None
            return self.names.nid_of(path[len(self._prefix):])
        if self._nids is None:
            self._nids = {p: nid for nid, p in self.paths.items()}
        return self._nids.get(path)


class MetadataReader:
    """Image metadata (inodes, compressed and chunk indexes; small files'
    data) read in aligned ``CHUNK_BYTES`` pieces and kept: a refresh maps
    thousands of files whose inodes and indexes sit in a few metadata
    blocks, in nid order, and one O_DIRECT read per piece instead of three
    per file is most of the cost under emulation.  A miss a few pieces past
    the end of one of the last ``STREAMS`` reads (a pass in image order,
    ImageContent.prefetch_*: inodes and data blocks, two regions) reads
    ``SEQ_CHUNKS`` pieces at once.  Images are read-only; at most
    ``MAX_CHUNKS`` pieces are kept (the oldest go first), more while
    ``keeping`` is entered.  A piece is a view of the read that brought
    it (no copy per piece)."""

    CHUNK_BYTES = 32 << 10
    MAX_CHUNKS = 128                        # 4 MiB
    SEQ_CHUNKS = 8                          # 256 KiB a read in a sequential pass
    STREAMS = 4                             # sequential passes followed at once

    def __init__(self, read=read_image):
        self._chunks: dict[tuple[str, int], bytes | memoryview] = {}
        self._read = read                   # (path, offset, length) -> bytes
        self._ends: list[tuple[str, int]] = []     # last piece of the last few reads
        self._max_chunks = self.MAX_CHUNKS
        self._seq_chunks = self.SEQ_CHUNKS
        self.reads = 0                      # image reads made (tests, benchmarks)

    @contextmanager
    def keeping(self, max_bytes: int):
        """Keep up to ``max_bytes`` of pieces while entered (passes over the
        same part of an image one after the other: each piece read once),
        then the oldest dropped down to ``MAX_CHUNKS`` again."""
        self._max_chunks = max(self.MAX_CHUNKS, max_bytes // self.CHUNK_BYTES)
        self._seq_chunks = KEPT_SEQ_CHUNKS      # (room for longer reads: fewer of them)
        try:
            yield self
        finally:
            self._max_chunks = self.MAX_CHUNKS
            self._seq_chunks = self.SEQ_CHUNKS
            chunks = self._chunks
            for key in list(islice(chunks, max(0, len(chunks) - self.MAX_CHUNKS))):
                del chunks[key]
            for key, piece in chunks.items():
                if type(piece) is memoryview:
                    # copied: a view keeps its whole 1 MiB read (~7 MiB of 4 kept)
                    chunks[key] = bytes(piece)

    def read(self, path: str, offset: int, length: int) -> bytes:
        """Bytes [offset, offset + length) of the file at ``path`` (short at EOF)."""
        cb = self.CHUNK_BYTES
        k, lo = divmod(offset, cb)
        if lo + length <= cb:       # one kept chunk: most reads (an inode, its xattrs)
            chunk = self._chunks.get((path, k))
            if chunk is not None:
                return bytes(chunk[lo:lo + length])
        out = bytearray()
        for k in range(offset // cb, (offset + length - 1) // cb + 1 if length else 0):
            chunk = self._chunks.get((path, k))
            if chunk is None:
                chunk = self._fill(path, k)
            lo = max(offset - k * cb, 0)
            out += chunk[lo:offset + length - k * cb]
            if len(chunk) < cb:
                break
        return bytes(out)

    def _fill(self, path: str, k: int) -> bytes:
        """Piece k of ``path`` read and kept, with the pieces after it when
        the miss closely follows a recent read's end; returns piece k."""
        cb, ends = self.CHUNK_BYTES, self._ends
        stream = next((i for i, (p, end) in enumerate(ends)
                       if p == path and 0 < k - end <= self._seq_chunks), None)
        n = 1 if stream is None else self._seq_chunks
        if stream is not None:
            del ends[stream]
        elif len(ends) >= self.STREAMS:
            del ends[0]
        data = self._read(path, k * cb, n * cb)
        self.reads += 1
        if n > 1:
            data = memoryview(data)
        first, last = None, k
        for i in range(n):
            piece = data[i * cb:(i + 1) * cb]
            if i and not piece:
                break
            if len(self._chunks) >= self._max_chunks:
                del self._chunks[next(iter(self._chunks))]
            self._chunks[(path, k + i)] = piece
            first = piece if first is None else first
            last = k + i
            if len(piece) < cb:
                break
        ends.append((path, last))
        return first

    def forget(self, path: str) -> None:
        for key in [key for key in self._chunks if key[0] == path]:
            del self._chunks[key]
        self._ends = [e for e in self._ends if e[0] != path]


_UNSET = object()       # a fact of a file not read yet (None is an answer: none, unreadable)


class _FileFacts:
    """What ImageContent read of one file of an image: its on-disk inode,
    page maps, fingerprint, build-id and digest (32 bytes; None until
    hashed), each _UNSET until asked.  One object per file where a dict
    entry per fact and a key tuple per file cost ~250 B more."""

    __slots__ = ("inode", "page_map", "zfile", "extents", "fp", "bid", "digest")

    def __init__(self):
        self.inode = self.page_map = self.zfile = self.extents = self.fp = self.bid = _UNSET
        self.digest: bytes | None = None


class IndexedFileInfo(LazyPathFileInfo):
    """A FileInfo whose path is made when asked (rows of the top files,
    records) from the image's names (ImageNames, once for every mount of
    it) and its mount's ``namer``: a resident file keeps no path string of
    its own (~100-150 B each with a container's mount point).  The namer
    is (names, mount prefix, mount root, length of the namespace prefix),
    one per mount, and holds nothing that holds this FileInfo: no cycle, so
    a mount's FileInfos go by reference counting (the exporter freezes the
    cyclic GC's generations)."""

    __slots__ = ()

    @property
    def path(self) -> str:
        names, prefix, root, strip = self._namer
        rel = names.rel.get(self.ino)
        if rel is None:
            return ""
        return (prefix + rel if rel else root)[strip:]


def _z_extent(e, inline: bool) -> ZExtentRa:
    """A zmap extent as the readahead replay maps it: its pcluster's image
    pages, or (an inline pcluster, ztailpacking) the one metadata page its
    data sits in, read through erofs_read_metabuf (no managed cache)."""
    whole = e.algorithm in WHOLE_EXTENT_ALGORITHMS
    if inline:
        return ZExtentRa(e.logical_offset, e.logical_offset + e.logical_length,
                         e.physical_offset // PAGE_SIZE, 0, whole)
    return ZExtentRa(e.logical_offset, e.logical_offset + e.logical_length,
                     e.physical_offset // PAGE_SIZE,
                     -(-(e.physical_offset % PAGE_SIZE + e.physical_length) // PAGE_SIZE), whole)


_RETRY = object()       # _mount_xattr: an unexpected error, not cached
_UNREAD = object()      # _image_xattr: not read with the inode


def _device_folio(device: str) -> tuple[int, int] | None:
    """(0, the device cache's smallest folio in pages: its block size) for
    _read_window; None if the device cannot be stat'ed."""
    try:
        return 0, max(1, os.stat(device).st_blksize // PAGE_SIZE)
    except OSError:
        return None


def _device_node(mount: MountInfo) -> str:
    """device_path's look-up: /dev/block/M:m (ours, else the mount
    namespace's), then the mount's source."""
    if mount.backing not in ("loop", "block"):
        return ""
    candidates = [f"/dev/block/{mount.dev_str}", mount.local(f"/dev/block/{mount.dev_str}")]
    if mount.source.startswith("/dev/"):
        candidates += [mount.source, mount.local(mount.source)]
    for path in candidates:
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (stat.S_ISBLK(st.st_mode)
                and f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}" == mount.dev_str):
            return path
    return ""


class ImageContent:
    """ContentResolver for real mounts."""

    def __init__(self, fingerprint_xattr: str = "trusted.erofs.fingerprint",
                 digest_budget_bytes_per_s: int | None = DEFAULT_DIGEST_BUDGET_BYTES_PER_S,
                 *, clock=time.monotonic, preserve_cache: bool = True,
                 data_from_image: bool = True):
        self.fingerprint_xattr = fingerprint_xattr
        # hash plain files' data read from the image (filedata.py), not through the mount
        self.data_from_image = data_from_image
        self._direct_ok: dict[str, bool] = {}      # image path -> O_DIRECT reads work
        self.data_reads_from_image = 0             # files build_id/digest read from the image
        self.digest_budget_bytes_per_s = digest_budget_bytes_per_s
        self.clock = clock
        self.preserve_cache = preserve_cache
        self._index: dict[tuple, _MountIndex] = {}
        # (image_id, root nid) -> the names every mount of it shares, while one is indexed
        self._names: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._sb: dict[tuple[str, int], Superblock | None] = {}
        self._meta = MetadataReader(self._read_image)
        # what was read of each file: _image_key -> nid -> _FileFacts (inode,
        # page maps, fingerprint, build-id, digest), kept while a mount of
        # the image is indexed
        self._files: dict[str | tuple, dict[int, _FileFacts]] = {}
        # image_id -> its mounts (_mount_key) indexed (every file_info asks through one)
        self._image_mounts: dict[str, set[tuple]] = {}
        self._pending: set[tuple] = set()          # _content_key of digests the budget defers
        self._tokens = float(digest_budget_bytes_per_s or 0)
        self._tokens_at = clock()
        # counters the aggregator can report (health)
        self.digest_bytes_total = 0
        self.digest_files_total = 0
        self.digest_errors = 0
        self.digest_deferred = 0     # calls answered None because of the budget
        # compressed files whose index layout zmap does not decode: mapped by
        # dump.erofs instead (slow: a process per file), reason -> files
        self.zmap_fallbacks: dict[str, int] = {}
        # image files watched whole by preserve_residency: their readahead is
        # not known, or pages appeared outside a file's read window there
        self._whole_images: set[str] = set()
        self._readahead: dict[str, tuple[int, int] | None] = {}
        self._windows: dict[tuple, list[tuple[int, int]] | None] = {}   # build_id, then digest
        self._window_reads: dict[str, int] = {}
        self._dir_windows: dict[tuple, list[tuple[int, int]] | None] = {}
        self._devices: dict[tuple, str] = {}        # mount -> its block device node
        # image -> the fingerprint xattr's name as its entries spell it (None:
        # its long prefix table is where xattrs.py does not read)
        self._fp_names: dict[tuple, XattrName | None] = {}
        # image -> {shared xattr id: its value if it is the fingerprint, else None}
        self._fp_shared: dict[tuple, dict[int, bytes | None]] = {}
        # content key -> the fingerprint xattr's value (None: none) read with
        # the inode, while its metadata chunk is held; fingerprint() takes it
        self._fp_read: dict[tuple, bytes | None] = {}
        self.window_misses = 0       # reads that cached image pages outside their window
        self.xattrs_from_mount = 0   # fingerprints the image could not give (getxattr instead)
        # mounts whose names came from walking them (no readable image)
        self.names_walked = 0
        self.names_walk_reason = ""

    # ---------------------------------------------------------------- keys
    @staticmethod
    def _mount_key(mount: MountInfo) -> tuple:
        return (mount.dev, mount.mountpoint, mount.image_id)

    @staticmethod
    def _image_key(mount: MountInfo) -> str | tuple:
        """The image a mount shows: the same image mounted twice (same
        image_id, the key) has the same files; a mount without an image id
        its own ((dev, mount point): no tuple made for the usual mount)."""
        return mount.image_id or (mount.dev, mount.mountpoint)

    def _content_key(self, mount: MountInfo, ino: int) -> tuple:
        """A file of an image (for the few keyed sets: digests pending,
        fingerprints read with the inode)."""
        return (self._image_key(mount), ino)

    def _facts(self, mount: MountInfo, ino: int) -> _FileFacts:
        """What was read of file ``ino`` of the mount's image (made empty)."""
        ik = self._image_key(mount)
        per = self._files.get(ik)
        if per is None:
            per = self._files[ik] = {}
        facts = per.get(ino)
        if facts is None:
            facts = per[ino] = _FileFacts()
        return facts

    @property
    def digest_pending(self) -> int:
        """Files asked for a digest that the budget has not allowed yet."""
        return len(self._pending)

    def forget(self, mount: MountInfo) -> None:
        """Drop what is cached for a mount that went away (the index, mostly)."""
        self._index.pop(self._mount_key(mount), None)
        self._devices.pop(self._mount_key(mount), None)
        for cache in (self._windows, self._dir_windows):
            for key in [key for key in cache if key[0] == self._mount_key(mount)]:
                del cache[key]
        if mount.image_path:
            self._meta.forget(mount.image_path)
            self._direct_ok.pop(mount.image_path, None)
            self._fp_names.pop((mount.image_path, mount.image_offset), None)
            self._fp_shared.pop((mount.image_path, mount.image_offset), None)
        if not mount.image_id:
            self._drop_files(self._image_key(mount))
            return
        mounts = self._image_mounts.get(mount.image_id)
        if mounts is not None:
            mounts.discard(self._mount_key(mount))
            if not mounts:
                # the image's last indexed mount went: its files' facts go too
                # (kept, a node that pulls and removes images for weeks would
                # keep every image's); mounted again, it is read again
                del self._image_mounts[mount.image_id]
                self._drop_files(self._image_key(mount))

    def _drop_files(self, image_key: str | tuple) -> None:
        """Drop what was read of the files of one image (_image_key)."""
        self._files.pop(image_key, None)
        for key in [key for key in self._fp_read if key[0] == image_key]:
            del self._fp_read[key]
        self._pending = {p for p in self._pending if p[0] != image_key}

    # ---------------------------------------------------------------- names
    def _index_of(self, mount: MountInfo) -> _MountIndex:
        k = self._mount_key(mount)
        idx = self._index.get(k)
        if idx is None:
            idx = self._index[k] = _MountIndex(mount, self._image_tree(mount), self._names)
            if mount.image_id:
                self._image_mounts.setdefault(mount.image_id, set()).add(k)
            if idx.walked == "mount":       # counted for good: the mount may be gone next refresh
                self.names_walked += 1
                self.names_walk_reason = idx.image_error
        return idx

    def _image_tree(self, mount: MountInfo):
        """(root nid, root path) -> {nid: path} read from the mount's image, or
        None where the image cannot be read (the mount is walked instead)."""
        sb = self._superblock(mount)
        if sb is None:
            return None

        def read(off: int, n: int) -> bytes:
            return self._meta.read(mount.image_path, mount.image_offset + off, n)
        return lambda root_nid, root_path: image_paths(sb, read, root_nid, root_path)

    def path_of(self, mount: MountInfo, ino: int) -> str:
        return self._index_of(mount).path(ino)

    def names_source(self, mount: MountInfo) -> str:
        """Where the mount's names came from: "image" (read from the image
        file, no page cache), "mount" (walked; the reason in image_error), or
        "" (its root could not be read)."""
        return self._index_of(mount).walked

    def _superblock(self, mount: MountInfo) -> Superblock | None:
        if not mount.image_path:
            return None
        sk = (mount.image_path, mount.image_offset)
        if sk not in self._sb:
            try:
                self._sb[sk] = read_superblock(mount.image_path, mount.image_offset)[0]
            except (OSError, ErofsFormatError):
                self._sb[sk] = None
        return self._sb[sk]

    def _disk_inode(self, mount: MountInfo, ino: int) -> tuple[Superblock, DiskInode] | None:
        """The on-disk inode (and its superblock), read once per image and nid:
        the data layout and the data map both come from it."""
        facts = self._facts(mount, ino)
        rec = facts.inode
        if rec is not _UNSET:       # (maybe read through another mount of the image)
            sb = None if rec is None else self._superblock(mount)
            return None if sb is None else (sb, rec)
        result = None
        sb = self._superblock(mount)
        if sb is not None:
            try:
                raw = self._meta.read(mount.image_path, mount.image_offset + sb.inode_offset(ino), 64)
                result = sb, parse_inode(raw, ino)
            except (OSError, ErofsFormatError):
                result = None
        facts.inode = None if result is None else result[1]
        if result is not None and result[1].xattr_icount and result[1].regular:
            self._fingerprint_with_inode(mount, self._content_key(mount, ino), *result)
        return result

    def _fingerprint_with_inode(self, mount: MountInfo, key: tuple, sb: Superblock,
                                rec: DiskInode) -> None:
        """Keep the fingerprint xattr's value (None: none) of inode ``rec``,
        read now: its xattr area follows the inode in the metadata chunk
        just read, which is gone (4 MiB later) by the time the content keys
        ask fingerprint(); a second read then is an O_DIRECT read per file.
        Nothing kept where fingerprint() will not find it in the image."""
        if not self.fingerprint_xattr:
            return
        try:
            value = self._image_xattr_of(mount, sb, rec)
        except XattrsUnreadable:
            return
        if len(self._fp_read) >= FP_READ_MAX:
            del self._fp_read[next(iter(self._fp_read))]        # the oldest
        self._fp_read[key] = value

    def physical_pages(self, mount: MountInfo, ino: int) -> dict[int, tuple[int, ...]] | None:
        """file page -> image pages (image-relative) holding its data: the data
        blocks of a plain file, the compressed clusters of a compressed one
        (decoded by zmap; dump.erofs for layouts it does not know).  None where
        that is not known (unreadable, damaged).  Cached: images are read-only."""
        facts = self._facts(mount, ino)
        if facts.page_map is not _UNSET:
            return facts.page_map
        result = None
        hit = self._disk_inode(mount, ino)
        if hit is not None:
            sb, ino_rec = hit
            base = mount.image_offset

            def read(off: int, n: int) -> bytes:
                return self._meta.read(mount.image_path, base + off, n)
            try:
                ext = data_extents(sb, ino_rec, read)
                if ext is not None:
                    result = file_page_map(ext, 0, PAGE_SIZE)
                elif ino_rec.compressed:
                    result = compressed_page_map(self._compressed_extents(mount, sb, ino_rec, read),
                                                 PAGE_SIZE)
            except (OSError, ErofsFormatError, struct.error, ValueError):
                result = None
        facts.page_map = result
        return result

    def _compressed_extents(self, mount: MountInfo, sb: Superblock, ino_rec: DiskInode,
                            read) -> list[tuple[int, int, int, int]]:
        """(logical, length, physical, length) of a compressed file's clusters:
        decoded here, or through dump.erofs (counted in ``zmap_fallbacks``) for
        a layout zmap refuses.  Raises OSError/ErofsFormatError."""
        try:
            return dump_tuples(compressed_extents(sb, ino_rec, read))
        except UnsupportedZmap as e:
            reason = str(e)
        self.zmap_fallbacks[reason] = self.zmap_fallbacks.get(reason, 0) + 1
        if mount.image_offset:
            raise OSError("dump.erofs cannot read an image at an offset")
        return dump_extents(mount.image_path, ino_rec.nid)

    def zfile(self, mount: MountInfo, ino: int) -> ZFile | None:
        """A compressed file's extents as erofs_top.readahead replays them:
        lz4, lzma, deflate, zstd (or stored) pclusters in data blocks (the
        last three mapped whole on readmore: ``ZExtentRa.whole``), 4 KiB
        blocks and lclusters, decoded by zmap, an inline last pcluster
        (ztailpacking) read from its metadata page; None for anything else
        (fragments live in the packed inode: not replayed)."""
        facts = self._facts(mount, ino)
        if facts.zfile is not _UNSET:
            return facts.zfile
        result, hit = None, self._disk_inode(mount, ino)
        if hit is not None and hit[1].compressed and hit[0].blkszbits == 12:
            sb, rec = hit

            def read(off: int, n: int) -> bytes:
                return self._meta.read(mount.image_path, mount.image_offset + off, n)
            try:
                start = -(-(sb.inode_offset(rec.nid) + rec.inode_size + rec.xattr_size) // 8) * 8
                hdr = parse_map_header(read(start, MAP_HEADER_SIZE), sb.blkszbits, rec.layout)
                ext = compressed_extents(sb, rec, read)
            except (OSError, ErofsFormatError, struct.error, ValueError):
                ext, hdr = [], None
            if (hdr is not None and hdr.lclusterbits == 12 and not hdr.advise &
                    ADVISE_FRAGMENT_PCLUSTER and ext and all(
                    e.kind in (KIND_COMPRESSED, KIND_INLINE)
                    and e.algorithm in (0, None) + WHOLE_EXTENT_ALGORITHMS for e in ext)):
                result = ZFile([_z_extent(e, e.kind == KIND_INLINE) for e in ext])
        facts.zfile = result
        return result

    def names_warning(self) -> str:
        """One line on mounts whose names came from walking them, or ''."""
        if not self.names_walked:
            return ""
        return (f"{self.names_walked} mount(s) named by walking them, which caches their "
                f"directories (image not read: {self.names_walk_reason})")

    def packed_nid(self, mount: MountInfo) -> int:
        """The nid (= inode number) of the mount's packed inode, which holds the
        fragments of a ``-Efragments`` image; 0 for none (the kernel's rule)."""
        sb = self._superblock(mount)
        if sb is None or not sb.feature_incompat & INCOMPAT_FRAGMENTS:
            return 0
        return sb.packed_nid

    def _extents_of(self, mount: MountInfo, ino: int) -> list | None:
        """zmap's extents of a compressed inode, None where not decoded."""
        facts = self._facts(mount, ino)
        if facts.extents is _UNSET:
            result, hit = None, self._disk_inode(mount, ino)
            if hit is not None and hit[1].compressed:
                def read(off: int, n: int) -> bytes:
                    return self._meta.read(mount.image_path, mount.image_offset + off, n)
                try:
                    result = compressed_extents(hit[0], hit[1], read)
                except (OSError, ErofsFormatError, struct.error, ValueError):
                    result = None
            facts.extents = result
        return facts.extents

    def fragment(self, mount: MountInfo, ino: int) -> tuple[int, int, int] | None:
        """A file's fragment: (file offset, offset in the packed inode, length),
        None for a file without one (or not decoded)."""
        ext = self._extents_of(mount, ino) or ()
        return next(((e.logical_offset, e.physical_offset, e.logical_length)
                     for e in ext if e.kind == KIND_FRAGMENT), None)

    def packed_extents(self, mount: MountInfo) -> list[PackedExtent] | None:
        """The packed inode's decompression extents (fragments.PackedExtent):
        (start, end) bytes, the image pages of its compressed cluster, how a
        read maps it; None when it is not compressed (or not decoded)."""
        nid = self.packed_nid(mount)
        ext = self._extents_of(mount, nid) if nid else None
        if not ext:
            return None
        encoded = self._encoded_extents(mount, nid)
        return [(e.logical_offset, e.logical_offset + e.logical_length,
                 tuple(range(e.physical_offset // PAGE_SIZE,
                             -(-(e.physical_offset + e.physical_length) // PAGE_SIZE)))
                 if e.kind == KIND_COMPRESSED else (),
                 MAP_WHOLE if encoded else MAP_WHOLE_IF_LONG
                 if e.algorithm in WHOLE_EXTENT_ALGORITHMS else MAP_TO_LCLUSTER)
                for e in ext]

    def _encoded_extents(self, mount: MountInfo, nid: int) -> bool:
        """Whether a compressed inode's index is encoded extents (zmap.c
        z_erofs_map_blocks_ext maps each extent whole, whatever the flags)."""
        sb, rec = self._disk_inode(mount, nid)
        start = -(-(sb.inode_offset(rec.nid) + rec.inode_size + rec.xattr_size) // 8) * 8
        try:
            hdr = parse_map_header(self._meta.read(mount.image_path, mount.image_offset + start,
                                                   MAP_HEADER_SIZE), sb.blkszbits, rec.layout)
        except (OSError, ErofsFormatError, struct.error, ValueError):
            return False
        return bool(hdr.extents or (rec.layout == COMPRESSED_FULL
                                    and hdr.advise & ADVISE_EXTENTS))

    def zmap_warning(self) -> str:
        """One line on files mapped through dump.erofs instead of zmap, or ''."""
        if not self.zmap_fallbacks:
            return ""
        n = sum(self.zmap_fallbacks.values())
        reasons = "; ".join(sorted(self.zmap_fallbacks)[:3])
        return (f"{n} compressed file(s) have an index layout erofs-top does not decode "
                f"({reasons}): mapped through dump.erofs, one process per file")

    def image_pages(self, mount: MountInfo, ino: int) -> dict[int, tuple[int, ...]] | None:
        """file page -> pages of the backing image file (file-backed and loop
        mounts) that a read of it goes through; None where not known."""
        if not mount.backing_file:
            return None
        phys = self.physical_pages(mount, ino)
        if phys is None or mount.image_offset % PAGE_SIZE:
            return None
        shift = mount.image_offset // PAGE_SIZE
        return phys if not shift else {p: tuple(x + shift for x in v) for p, v in phys.items()}

    def meta_pages(self, mount: MountInfo, ino: int) -> MetaPages | None:
        """The backing file's pages a mount reads a file's inode, inline
        tail and (inode_share lookups) inline xattrs from (one page each, no
        readahead); None where not known."""
        hit = self._disk_inode(mount, ino) if mount.backing_file else None
        if hit is None or mount.image_offset % PAGE_SIZE:
            return None
        try:
            inode_at, tail_at = metadata_offsets(*hit)
        except ErofsFormatError:
            return None
        base = mount.image_offset
        sb, ino_ = hit
        xattrs = ino_.inode_size + ino_.xattr_size
        return MetaPages((base + inode_at) // PAGE_SIZE,
                         (base + tail_at) // PAGE_SIZE if tail_at >= 0 else -1,
                         (base + inode_at + xattrs - 1) // PAGE_SIZE if ino_.xattr_size else -1)

    def managed_pages(self, mount: MountInfo, ino: int) -> dict[int, tuple[int, ...]] | None:
        """Compressed files: file page -> pages of the mount's compressed-data
        cache (indexed by physical address) that decompressing it reads."""
        info = self.file_info(mount, ino)
        if info is None or info.aops != AOPS_COMPRESSED:
            return None
        return self.physical_pages(mount, ino)

    def file_info(self, mount: MountInfo, ino: int) -> FileInfo | None:
        """Cached per mount: EROFS is read-only, a mounted file never changes."""
        idx = self._index_of(mount)
        hit = idx.infos.get(ino)
        if hit is None:
            hit = idx.infos[ino] = self._file_info(mount, ino)
        return hit

    def _file_info(self, mount: MountInfo, ino: int) -> FileInfo | None:
        path = self.path_of(mount, ino)
        if not path:
            return None
        disk = self._disk_inode(mount, ino)
        if disk is not None:        # size and type from the image: no lookup through the mount
            size, mode, compressed = disk[1].size, disk[1].mode, disk[1].compressed
        else:                       # inode unreadable: stat, and the image's features
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                return None
            size, mode = st.st_size, st.st_mode
            compressed = bool(mount.image and mount.image.compressed)
        if compressed:
            aops = AOPS_COMPRESSED
        elif mount.backing == "file":
            aops = AOPS_FILEIO
        else:
            aops = AOPS_BLOCK
        namer = self._index_of(mount).namer
        if namer is None:           # a walked mount: its paths are its own anyway
            return FileInfo(ino=ino, path=path[len(mount.ns_prefix):], size=size,
                            regular=stat.S_ISREG(mode), aops=aops)
        return IndexedFileInfo(namer, ino, size, stat.S_ISREG(mode), aops)

    # ---------------------------------------------------------------- identities
    def fingerprint(self, mount: MountInfo, ino: int) -> str | None:
        facts = self._facts(mount, ino)
        if facts.fp is not _UNSET:
            return facts.fp
        result = None
        if self.fingerprint_xattr:
            try:
                value = self._image_xattr(mount, ino, self._content_key(mount, ino))
            except XattrsUnreadable:
                self.xattrs_from_mount += 1
                value = self._mount_xattr(mount, ino)
                if value is _RETRY:
                    return None     # unexpected: do not cache, try again later
            result = None if value is None else fingerprint_hex(value)
        facts.fp = result
        return result

    def _image_xattr(self, mount: MountInfo, ino: int, key: tuple) -> bytes | None:
        """The fingerprint xattr of inode ``ino`` (content key ``key``) read
        from the image (xattrs.py: no page enters a cache, no path needed):
        as read with the inode, else read now.  Raises XattrsUnreadable
        where the image cannot say (not readable, a layout xattrs.py leaves
        to the kernel)."""
        value = self._fp_read.pop(key, _UNREAD)
        if value is not _UNREAD:
            return value
        hit = self._disk_inode(mount, ino)      # (a first read keeps the value: taken here)
        if hit is None:
            raise XattrsUnreadable("inode not readable from the image")
        value = self._fp_read.pop(key, _UNREAD)
        return self._image_xattr_of(mount, *hit) if value is _UNREAD else value

    def _image_xattr_of(self, mount: MountInfo, sb: Superblock, rec: DiskInode) -> bytes | None:
        """_image_xattr of the on-disk inode ``rec``."""
        if rec.xattr_icount == 0:
            return None
        path, base = mount.image_path, mount.image_offset

        def read(offset: int, length: int) -> bytes:
            return self._meta.read(path, base + offset, length)
        try:
            pk = (path, base)
            want = self._fp_names.get(pk) or self._fp_name(pk, sb, read)
            if not want.codes:
                return None         # no entry of this image can carry the name
            if sb.feature_compat & COMPAT_SHARED_EA_IN_METABOX:
                raise XattrsUnreadable("shared xattrs in the metabox")
            value, ids = inline_value(read(sb.inode_offset(rec.nid) + rec.inode_size,
                                           rec.xattr_size), want)
            if value is None and ids:
                value = self._shared_xattr(pk, sb, read, ids, want)
            return value
        except (OSError, ErofsFormatError, struct.error) as e:
            raise XattrsUnreadable(str(e)) from e

    def _shared_xattr(self, pk: tuple, sb: Superblock, read, ids: tuple[int, ...],
                      want: XattrName) -> bytes | None:
        """The value of the first of shared entries ``ids`` named ``want``:
        each entry read once per image (SHARED_XATTRS_MAX of them kept)."""
        shared = self._fp_shared.setdefault(pk, {})
        for xid in ids:
            if xid in shared:
                value = shared[xid]
            else:
                value = shared_value(sb, read, xid, want)
                if len(shared) < SHARED_XATTRS_MAX:
                    shared[xid] = value
            if value is not None:
                return value
        return None

    def _fp_name(self, pk: tuple, sb: Superblock, read) -> XattrName:
        """The fingerprint xattr's name as image ``pk``'s entries spell it,
        worked out once per image.  Raises XattrsUnreadable where its long
        prefix table is where xattrs.py does not read."""
        if pk not in self._fp_names:
            try:
                prefixes = long_prefixes(sb, read)
            except XattrsUnreadable:
                self._fp_names[pk] = None
                raise
            self._fp_names[pk] = xattr_name(os.fsencode(self.fingerprint_xattr), prefixes)
        want = self._fp_names[pk]
        if want is None:
            raise XattrsUnreadable("long xattr prefixes in the packed inode or metabox")
        return want

    def _mount_xattr(self, mount: MountInfo, ino: int):
        """getxattr through the mount (the kernel's answer, for what the image
        reader leaves to it); None for no xattr, _RETRY for an unexpected error."""
        path = self.path_of(mount, ino)
        if not path:
            return None
        try:
            return os.getxattr(path, self.fingerprint_xattr, follow_symlinks=False)
        except OSError as e:
            if e.errno in (errno.ENODATA, errno.EOPNOTSUPP, errno.ENOENT,
                           errno.EACCES, errno.EPERM, errno.ERANGE):
                return None
            return _RETRY

    @contextmanager
    def _reading(self, mount: MountInfo, ino: int, path: str):
        """Our reads of ``path`` leave no new page in its cache, its image
        file's or its block device's.  The image and the device first:
        opening ``path`` may read directories and inodes."""
        if not self.preserve_cache:
            yield
            return
        image = mount.local(mount.backing_file) if mount.backing_file else ""
        device = self.device_path(mount)
        watch = [self._watch_item(image, self.read_window(mount, ino, path) if image else None),
                 self._watch_item(device, self.device_window(mount, ino, path) if device else None,
                                  whole_ok=mount.backing == "loop"),
                 path]
        with preserve_residency(watch) as seen:
            yield
        for name in (image, device):
            if name and seen.outside_pages.get(name):
                self.window_misses += 1     # a read the window did not cover: watch it whole
                self._whole_images.add(name)

    def device_path(self, mount: MountInfo) -> str:
        """The block device node of a loop or block mount, where erofs-top can
        open it (its st_rdev is the mount's dev); "" for a file-backed mount
        or where none is visible.  Kept per mount."""
        key = self._mount_key(mount)
        found = self._devices.get(key)
        if found is None:
            found = self._devices[key] = _device_node(mount)
        return found

    def _watch_item(self, name: str, runs: list[tuple[int, int]] | None, whole_ok: bool = True):
        """preserve_residency's item for an image file or device: its window
        (``runs``), else the whole file ("" where that is not ``whole_ok``: a
        block device's whole cache is too big a bitmap for every read)."""
        if not name or runs is None:
            return name if whole_ok else ""
        return (name, runs, self._check_due(name))

    def _check_due(self, name: str) -> bool:
        """Whether this read of image file or device ``name`` counts the whole
        file's cached pages around it (O(them)): its first WINDOW_CHECK_FIRST
        reads, then one in WINDOW_CHECK_EVERY (a model miss is systematic)."""
        n = self._window_reads[name] = self._window_reads.get(name, 0) + 1
        return n <= WINDOW_CHECK_FIRST or n % WINDOW_CHECK_EVERY == 0

    def read_window(self, mount: MountInfo, ino: int, path: str) -> list[tuple[int, int]] | None:
        """Page runs of the backing image file that opening ``path`` (inode
        ``ino``) and reading it can bring into the image file's cache
        (readwindow.py): every inode on the path and the file's data with its
        readahead; None where not known (the whole image is watched then)."""
        image = mount.local(mount.backing_file)
        return self._window(mount, ino, path, image, False)

    def device_window(self, mount: MountInfo, ino: int, path: str) -> list[tuple[int, int]] | None:
        """Page runs of the mount's block device (loop or block mounts) that
        opening and reading ``path`` can bring into the device's own cache:
        EROFS reads metadata (inodes, xattrs, compressed and chunk indexes)
        through it (erofs_init_metabuf: sb->s_bdev's mapping, one folio at a
        time, no readahead); file data goes to the file's cache.  None where
        not known."""
        return self._window(mount, ino, path, self.device_path(mount), True)

    def _window(self, mount: MountInfo, ino: int, path: str, name: str,
                device: bool) -> list[tuple[int, int]] | None:
        key = (self._mount_key(mount), ino, path, device)
        if key not in self._windows:
            if len(self._windows) >= MAX_WINDOWS:
                self._windows.clear()
            self._windows[key] = (self._read_window(mount, ino, path, _device_folio(name), True)
                                  if device else self._image_window(mount, ino, path, name))
        return None if name in self._whole_images else self._windows[key]

    def _image_window(self, mount: MountInfo, ino: int, path: str,
                      image: str) -> list[tuple[int, int]] | None:
        ra = self._readahead.get(image, 0)
        if ra == 0:
            ra = self._readahead[image] = backing_readahead(image)
        if ra is None or mount.image_offset % PAGE_SIZE:
            return None
        return self._read_window(mount, ino, path, ra, False)

    def _read_window(self, mount: MountInfo, ino: int, path: str,
                     ra: tuple[int, int] | None, device: bool) -> list[tuple[int, int]] | None:
        """The window of the image file (``ra``: its readahead and smallest
        folio, in pages) or, ``device``, of the block device (``ra``: (0, its
        smallest folio))."""
        if ra is None or self.packed_nid(mount):      # fragments: data in the packed inode
            return None
        own = self._inode_runs(mount, ino, ra[0], device)
        above = self._dir_runs(mount, os.path.dirname(path), ra[0], device)
        if own is None or above is None:
            return None
        return coalesce_runs(own + above, ra[1])

    def _inode_runs(self, mount: MountInfo, nid: int, ra_pages: int,
                    device: bool) -> list[tuple[int, int]] | None:
        """readwindow.inode_runs of one inode of the mount, None if not known;
        ``device``: of the block device (its metadata only, image-relative:
        the device holds the image from its start)."""
        hit = self._disk_inode(mount, nid)
        if device:
            base, data, margin = 0, (), 0
        else:
            pages = self.image_pages(mount, nid)
            if pages is None:
                return None
            base, margin = mount.image_offset, readahead_margin_pages(ra_pages)
            data = (p for v in pages.values() for p in v)
        if hit is None:
            return None
        try:
            return inode_runs(hit[0], hit[1], base, data,
                              lambda off, n: self._meta.read(mount.image_path,
                                                             mount.image_offset + off, n),
                              margin, PAGE_SIZE,
                              meta_margin=mount.backing == "loop" and not device)
        except (OSError, ErofsFormatError, struct.error, IndexError):
            return None

    def _dir_runs(self, mount: MountInfo, dir_path: str, ra_pages: int,
                  device: bool) -> list[tuple[int, int]] | None:
        """The runs of a directory and of every directory above it up to the
        mount root (a path walk may look each of them up), kept per directory:
        the files of one directory share them.  None if not known."""
        key = (self._mount_key(mount), dir_path, device)
        if key in self._dir_windows:
            return self._dir_windows[key]
        root = mount.root_path
        nid = self._index_of(mount).nid_of(dir_path)
        result = None
        inside = dir_path == root or dir_path.startswith(root.rstrip("/") + "/")
        if nid is not None and inside:
            result = self._inode_runs(mount, nid, ra_pages, device)
            if result is not None and dir_path != root:
                above = self._dir_runs(mount, os.path.dirname(dir_path), ra_pages, device)
                result = None if above is None else coalesce_runs(result + above)
        self._dir_windows[key] = result
        return result

    def build_id(self, mount: MountInfo, ino: int, data: FileData | None = None) -> str | None:
        """The file's ELF build-id, or None (not ELF, none, unreadable);
        ``data``: its FileData, made already (prefetch_identities)."""
        facts = self._facts(mount, ino)
        if facts.bid is not _UNSET:
            return facts.bid
        result = None
        data = data or self.file_data(mount, ino)
        if data is not None:
            try:
                result = self._build_id_from_image(mount, ino, data)
                facts.bid = result
                return result
            except OSError:
                self._direct_ok[mount.image_path] = False   # through the mount from now on
        path = self.path_of(mount, ino)
        if path:
            try:
                with self._reading(mount, ino, path), open(path, "rb") as f:
                    result = build_id_of(f)     # checks the ELF magic first
                    if result is None:
                        self._digest_ahead(mount, ino, lambda: _fd_pieces(f.fileno()))
            except OSError:
                result = None
        facts.bid = result
        return result

    def prefetch_inodes(self, pairs) -> None:
        """The on-disk inodes of ``pairs`` ((mount, ino) about to be resolved)
        read in image order: the aggregator resolves in its map's (hash)
        order, in which every inode was a metadata reader miss, a read per
        file; in order one read serves all the inodes of its pieces."""
        for mount, ino in _image_order(pairs):
            self._disk_inode(mount, ino)

    def prefetch_identities(self, pairs) -> None:
        """build_id (and, where it has none, the digest: _digest_ahead) of
        ``pairs`` ((mount, ino) whose identities the content keys phase is
        about to ask for), read from the images in passes of
        PREFETCH_BATCH files: their inline tails in nid order (beside the
        inodes), then their data in block order (mkfs.erofs places data in
        another order than inodes), each a sequential pass over the image's
        pieces instead of a read or two per file.  An image's passes keep
        up to IDENTITY_KEEP_BYTES of its pieces (MetadataReader.keeping):
        small files' tails and data share pieces, which the data pass
        would read again (and the next batch of the image too)."""
        for image_pairs in _by_image(_image_order(pairs)):
            with self._meta.keeping(IDENTITY_KEEP_BYTES):
                for start in range(0, len(image_pairs), PREFETCH_BATCH):
                    self._prefetch_batch(image_pairs[start:start + PREFETCH_BATCH])
        # the kept pieces (up to IDENTITY_KEEP_BYTES, heap blocks once glibc's
        # mmap threshold has risen) freed: given back, not left as the heap's
        # free room in a TUI's or once's RSS (the exporter trims anyway)
        heap.trim()

    def _prefetch_batch(self, pairs) -> None:
        """prefetch_identities of up to PREFETCH_BATCH files of one image."""
        batch = []
        for mount, ino in pairs:
            data = None
            if self._facts(mount, ino).bid is _UNSET:
                data = self.file_data(mount, ino)
                try:
                    if data is not None:
                        data.load_tail()
                except OSError:
                    data = None         # build_id reads it again, or through the mount
            batch.append((-1 if data is None else data.first_image_offset, mount, ino, data))
        batch.sort(key=lambda t: t[0])     # (one image: its data in block order)
        for _, mount, ino, data in batch:
            self.build_id(mount, ino, data)

    def file_data(self, mount: MountInfo, ino: int) -> FileData | None:
        """The file's data as its image holds it (filedata.py: a plain file
        on an image O_DIRECT can read), or None: read it through the mount."""
        image = mount.image_path
        if not self.data_from_image or not image:
            return None
        ok = self._direct_ok.get(image)
        if ok is None:
            # not known while the image is cached whole: harmless then (a read
            # of cached pages adds none), and _read_data's checks see a change
            ok = _direct_bypasses_cache(image, mount.image_offset) is not False
            self._direct_ok[image] = ok
        hit = self._disk_inode(mount, ino) if ok else None
        if hit is None:
            return None

        def meta(off: int, n: int) -> bytes:
            return self._meta.read(image, off, n)

        def data(off: int, n: int) -> bytes:
            # small reads through the chunk cache: a pass in image order reads
            # each piece of the image once, inodes, tails and data together
            if n <= WHOLE_READ_BYTES:
                return self._meta.read(image, off, n)
            return self._read_image(image, off, n)
        try:
            return file_data(hit[0], hit[1], meta, data, mount.image_offset)
        except (OSError, ErofsFormatError, struct.error):
            return None

    def _read_image(self, image: str, offset: int, length: int) -> bytes:
        """read_image (O_DIRECT; pages its filesystem still cached in the range
        dropped), and on the window checks' schedule (an image's first
        WINDOW_CHECK_FIRST reads, then one in WINDOW_CHECK_EVERY) a count of
        the whole file's cached pages around it: pages cached elsewhere (a
        buffered fallback's readahead) send the image's file data back to
        reads through the mount, in windows.  Raises OSError."""
        if not self._check_due(image):
            return read_image(image, offset, length)
        before = file_resident_pages(image)
        data = read_image(image, offset, length)
        if file_resident_pages(image) > before:
            self._direct_ok[image] = False
            self.window_misses += 1
        return data

    def _build_id_from_image(self, mount: MountInfo, ino: int, data: FileData) -> str | None:
        """build_id from the image's bytes (and, for a file without one, its
        digest from the same bytes: _digest_ahead).  A small file is read
        once, whole; a bigger one through a buffered stream.  Raises OSError."""
        self.data_reads_from_image += 1
        if data.size <= WHOLE_READ_BYTES:
            blob = data.pread(0, data.size)
            result = build_id_of(io.BytesIO(blob))
            if result is None:
                self._digest_ahead(mount, ino, lambda: iter((blob,)), raise_errors=True,
                                   read_already=True)
            return result
        result = build_id_of(io.BufferedReader(FileDataStream(data), ELF_BUFFER_BYTES))
        if result is None:
            self._digest_ahead(mount, ino, lambda: data.pieces(READ_CHUNK_BYTES),
                               raise_errors=True)
        return result

    def _refill(self) -> None:
        rate = self.digest_budget_bytes_per_s
        now = self.clock()
        if rate:
            self._tokens = min(float(rate), self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now

    def digest(self, mount: MountInfo, ino: int) -> str | None:
        """SHA-256 (hex) of the file's content, or None (budget spent, unreadable).

        Cached by file (image, nid): the same image mounted twice is hashed once.
        Budget: a token bucket of ``digest_budget_bytes_per_s`` (1 s deep).  A file
        may overdraw it, so big files get hashed too; later calls then wait until the
        bucket is positive again.  Requests the budget defers count in
        ``digest_pending`` until done.
        """
        info = self.file_info(mount, ino)
        if info is None or not info.regular:
            return None
        facts = self._facts(mount, ino)
        if facts.digest is not None:
            return facts.digest.hex()
        key = self._content_key(mount, ino)
        if not self._budget_left():
            self._pending.add(key)
            self.digest_deferred += 1
            return None
        data = self.file_data(mount, ino)
        if data is not None:
            try:
                self.data_reads_from_image += 1
                return self._hash_pieces(facts, key, data.pieces(READ_CHUNK_BYTES))
            except OSError:
                self._direct_ok[mount.image_path] = False   # through the mount from now on
        try:
            path = self.path_of(mount, ino)     # where it opens (info.path is the name)
            with self._reading(mount, ino, path):
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    return self._hash_pieces(facts, key, _fd_pieces(fd))
                finally:
                    os.close(fd)
        except OSError:
            self.digest_errors += 1
            self._pending.discard(key)
            return None

    def _budget_left(self) -> bool:
        if not self.digest_budget_bytes_per_s:
            return True
        self._refill()
        return self._tokens > 0

    def _hash_pieces(self, facts: _FileFacts, key: tuple, pieces) -> str:
        """The digest of the file whose bytes ``pieces`` yields, counted and
        kept (nothing counted when reading it raises)."""
        h = hashlib.sha256()
        n = 0
        for chunk in pieces:
            h.update(chunk)
            n += len(chunk)
        if self.digest_budget_bytes_per_s:
            self._tokens -= n
        self.digest_bytes_total += n
        self.digest_files_total += 1
        self._pending.discard(key)
        facts.digest = h.digest()
        return h.hexdigest()

    def _digest_ahead(self, mount: MountInfo, ino: int, pieces, raise_errors: bool = False,
                      read_already: bool = False) -> None:
        """In build_id's read window, the digest of a file without a build-id
        (not ELF, mostly) nor a fingerprint: entries.size_group_keys asks for
        it next (no build-id tells such files apart), and one window costs
        half of two.  ``pieces()`` yields the file's bytes; ``raise_errors``:
        a read error is raised (an image read: the caller turns to the
        mount), else left to digest().
        Not when the budget is spent (digest() defers it then), unless the
        bytes are in memory already (``read_already``: a small file build_id
        read whole from the image): hashing them costs no read, and a
        deferred digest is a read of its own later; they are charged all
        the same (the bucket goes below zero, later reads wait)."""
        info = self.file_info(mount, ino)
        if info is None or not info.regular or self.fingerprint(mount, ino):
            return
        facts = self._facts(mount, ino)
        if facts.digest is not None or not (read_already or self._budget_left()):
            return
        try:
            self._hash_pieces(facts, self._content_key(mount, ino), pieces())
        except OSError:
            if raise_errors:
                raise
            # digest() tries again (and counts the error)


def _direct_bypasses_cache(image: str, offset: int) -> bool | None:
    """Whether O_DIRECT reads of ``image`` leave its page cache alone: one
    read of a page not cached, with the whole file watched (its new pages
    dropped again); None (not known) while every page is cached.  Some
    filesystems serve O_DIRECT through the cache (ext4 with data=journal,
    btrfs compressed extents)."""
    try:
        fd = os.open(image, os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECT)
    except OSError:
        return False
    try:
        pages = -(-fd_size(fd) // PAGE_SIZE)
        first = offset // PAGE_SIZE
        mask_before = fd_resident_mask(fd)
        uncached = ~mask_before >> first & ((1 << max(0, pages - first)) - 1)
        if not uncached:
            return None
        page = first + (uncached & -uncached).bit_length() - 1
        with preserve_residency([image]):
            read_direct(fd, page * PAGE_SIZE, PAGE_SIZE)
            return not (fd_resident_mask(fd) >> page) & 1
    except OSError:
        return False
    finally:
        os.close(fd)


def _image_order(pairs) -> list[tuple[MountInfo, int]]:
    """The (mount, ino) pairs of readable images sorted by image and nid
    (where the inodes and, mostly, the data sit in the image)."""
    return sorted(((m, ino) for m, ino in pairs if m.image_path),
                  key=lambda p: (p[0].image_path, p[0].image_offset, p[1]))


def _by_image(ordered: list[tuple[MountInfo, int]]):
    """_image_order's pairs in runs of one image file each."""
    start = 0
    for i in range(1, len(ordered) + 1):
        if i == len(ordered) or ordered[i][0].image_path != ordered[start][0].image_path:
            yield ordered[start:i]
            start = i


def _fd_pieces(fd: int):
    """An open file's bytes from its start, READ_CHUNK_BYTES at a time."""
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        chunk = os.read(fd, READ_CHUNK_BYTES)
        if not chunk:
            return
        yield chunk

