"""EROFS mounts from mountinfo (every mount namespace: mountns.py): device,
mount point, backing, image.

Backing modes (fs/erofs/super.c, erofs_fc_get_tree: a source that is not a block
device is opened as the image file when CONFIG_EROFS_FS_BACKED_BY_FILE):
  file  -- file-backed mount (Linux 6.12+): anonymous ``0:N`` dev, source = image path;
  loop  -- a loop device (``/sys/dev/block/M:m/loop`` exists; major 7 normally); the
           image is its backing file (LOOP_GET_STATUS64 gives its dev/inode exactly,
           even when the path was set up in another mount namespace);
  block -- any other block device.
One MountInfo per superblock: bind mounts of the same superblock are listed once
(the mount of the filesystem root wins, then the first in mountinfo order).
"""
from __future__ import annotations

import fcntl
import os
import re
import stat
import struct
from dataclasses import dataclass, field

from .. import names
from ..readings import kdev, kdev_from_st_dev, kdev_str
from .base import ImageInfo, MountInfo
from .mountns import MountNamespaces, MountTable
from .superblock import ErofsFormatError, image_info

LOOP_GET_STATUS64 = 0x4C05
_LOOP_INFO64 = struct.Struct("<QQQQQIIII64s64s32s16s")   # struct loop_info64, 232 bytes


def walk_mount(root: str):
    """Every directory entry below the mount point root (root excluded), not
    descending into filesystems mounted on top.  Unreadable directories are
    passed over.  Raises OSError when root itself cannot be stat'ed."""
    root_dev = os.stat(root).st_dev
    stack = [root]
    while stack:
        d = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue
        with it:
            for ent in it:
                try:
                    if ent.is_dir(follow_symlinks=False) and \
                            ent.stat(follow_symlinks=False).st_dev == root_dev:
                        stack.append(ent.path)
                except OSError:
                    continue
                yield ent


@dataclass
class MountinfoEntry:
    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str                   # path inside the filesystem that is mounted here
    mountpoint: str
    mount_options: frozenset[str]
    optional: list[str]
    fstype: str
    source: str
    super_options: frozenset[str]

    @property
    def dev(self) -> int:
        return kdev(self.major, self.minor)


_OCTAL = re.compile(rb"\\([0-7]{3})")


def unescape(s: str) -> str:
    r"""Undo mountinfo's octal escapes (``\040`` space, ``\011`` tab, ``\012``,
    ``\134``): each one is a byte of the name, like the unescaped bytes around
    it (names are bytes: ``s`` and the result are os.fsdecode'd, see names.py)."""
    if "\\" not in s:
        return s
    raw = _OCTAL.sub(lambda m: bytes([int(m.group(1), 8) & 0xFF]), names.encode(s))
    return names.decode(raw)


def parse_mountinfo_line(line: str) -> MountinfoEntry | None:
    """One mountinfo line -> entry; None for a malformed line (never raises).
    Fields are separated by single spaces (str.split() would also split names
    at U+0085, U+2028 or \\x1c, which the kernel does not escape)."""
    parts = [p for p in line.split(" ") if p]
    try:
        sep = parts.index("-", 6)
        mount_id, parent_id = int(parts[0]), int(parts[1])
        major_s, minor_s = parts[2].split(":")
        major, minor = int(major_s), int(minor_s)
        root, mountpoint, mopts = parts[3], parts[4], parts[5]
        optional = parts[6:sep]
        fstype = parts[sep + 1]
        source = parts[sep + 2] if len(parts) > sep + 2 else ""
        sopts = parts[sep + 3] if len(parts) > sep + 3 else ""
    except (ValueError, IndexError):
        return None
    return MountinfoEntry(
        mount_id=mount_id, parent_id=parent_id, major=major, minor=minor,
        root=unescape(root), mountpoint=unescape(mountpoint),
        mount_options=frozenset(o for o in mopts.split(",") if o),
        optional=optional, fstype=unescape(fstype), source=unescape(source),
        super_options=frozenset(unescape(o) for o in sopts.split(",") if o))


def parse_mountinfo(text: str, fstype: str | None = None) -> list[MountinfoEntry]:
    """All well-formed entries of a mountinfo text, optionally only of one
    fstype: then a line without " - <fstype> " is not parsed (a node's
    table has thousands of tmpfs and overlay lines and a few EROFS ones;
    mountinfo escapes a space in every field, so that text is only ever
    the separator and the fstype)."""
    out = []
    sep = None if fstype is None else f" - {fstype} "
    for line in text.split("\n"):      # not splitlines(): \\x0b, \\x1c, U+2028 are name bytes
        if sep is not None and sep not in line:
            continue
        if not line.strip():
            continue
        e = parse_mountinfo_line(line)
        if e is not None and (fstype is None or e.fstype == fstype):
            out.append(e)
    return out


def pick_per_superblock(entries: list[MountinfoEntry]) -> list[MountinfoEntry]:
    """One entry per dev: the first mount of the fs root, else the first bind mount."""
    chosen: dict[int, MountinfoEntry] = {}
    for e in entries:
        cur = chosen.get(e.dev)
        if cur is None or (cur.root != "/" and e.root == "/"):
            chosen[e.dev] = e
    return list(chosen.values())


# ---------------------------------------------------------------- backing
@dataclass
class Backing:
    mode: str                   # file | loop | block
    backing_file: str = ""
    backing_dev: int = 0        # kernel dev_t of the fs holding the image file
    backing_ino: int = 0
    image_path: str = ""        # where to read the image from (file or device)
    image_offset: int = 0       # loop offset
    notes: list[str] = field(default_factory=list)


def loop_status(dev_path: str) -> tuple[int, int, int] | None:
    """(kernel dev_t of the backing file's fs, its inode, loop offset) or None."""
    try:
        fd = os.open(dev_path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = fcntl.ioctl(fd, LOOP_GET_STATUS64, bytes(_LOOP_INFO64.size))
    except OSError:
        return None
    finally:
        os.close(fd)
    lo_device, lo_inode, _rdev, lo_offset = _LOOP_INFO64.unpack(raw)[:4]
    # lo_device is huge_encode_dev(): the same encoding as userspace st_dev
    return kdev_from_st_dev(lo_device), lo_inode, lo_offset


def _read_text(path: str) -> str | None:
    try:
        return names.read_text(path).rstrip("\n")
    except OSError:
        return None


def resolve_backing(e: MountinfoEntry, sys_root: str = "/sys",
                    dev_root: str = "/dev", prefix: str = "") -> Backing:
    """How the superblock of mountinfo entry ``e`` gets its bytes.  ``prefix``
    opens paths of the entry's mount namespace from here (resolve/mountns.py):
    the names (backing_file) stay the namespace's, image_path is local."""
    blk = f"{sys_root}/dev/block/{e.major}:{e.minor}"
    if e.major == 0:
        # anonymous dev: a file-backed mount (or a nodev/fscache one without a file)
        b = Backing("file")
        try:
            st = os.stat(prefix + e.source)
        except OSError:
            b.notes.append(f"file-backed source {e.source!r} not visible here")
            return b
        if stat.S_ISREG(st.st_mode):
            b.backing_file = e.source
            b.backing_dev, b.backing_ino = kdev_from_st_dev(st.st_dev), st.st_ino
            b.image_path = prefix + e.source
        else:
            b.notes.append(f"source {e.source!r} of anonymous dev {e.major}:{e.minor} "
                           "is not a regular file")
        return b
    dev_path = _dev_path(e, dev_root, prefix)
    bf = _read_text(f"{blk}/loop/backing_file")
    if bf is None and e.major == 7:
        # some kernels only expose /sys/block/loopN/loop
        bf = _read_text(f"{sys_root}/block/loop{e.minor}/loop/backing_file")
    if bf is not None:
        return _loop_backing(bf, dev_path, prefix)
    return Backing("block", image_path=dev_path)


def _dev_path(e: MountinfoEntry, dev_root: str, prefix: str) -> str:
    """The block device node: ours, else the mount namespace's (a pod has no
    /dev/block; the host's /dev is under /host)."""
    for root in (dev_root, prefix + "/dev") if prefix else (dev_root,):
        p = f"{root}/block/{e.major}:{e.minor}"
        if os.path.exists(p):
            return p
    if e.source.startswith("/dev/") and os.path.exists(e.source):
        return e.source
    if prefix and e.source.startswith("/dev/") and os.path.exists(prefix + e.source):
        return prefix + e.source
    return e.source if e.source.startswith("/dev/") else f"{dev_root}/block/{e.major}:{e.minor}"


def _loop_backing(bf: str, dev_path: str, prefix: str) -> Backing:
    b = Backing("loop", backing_file=bf.removesuffix(" (deleted)"))
    if bf.endswith(" (deleted)"):
        b.notes.append(f"loop backing file {b.backing_file!r} was deleted")
    status = loop_status(dev_path)
    local = prefix + b.backing_file
    if status is not None:
        b.backing_dev, b.backing_ino, b.image_offset = status
    else:
        try:
            st = os.stat(local)
            b.backing_dev, b.backing_ino = kdev_from_st_dev(st.st_dev), st.st_ino
        except OSError:
            b.notes.append(f"loop backing file {b.backing_file!r} not visible here")
    # read through the image file when we can see it (O_DIRECT works there),
    # else through the loop device itself
    if b.backing_ino and _same_file(local, b.backing_dev, b.backing_ino):
        b.image_path = local
    else:
        b.image_path, b.image_offset = dev_path, 0
    return b


def _opens(t: MountTable, e: MountinfoEntry) -> bool:
    """Does the mount point of e (in t's namespace) open from here as that mount?"""
    try:
        return kdev_from_st_dev(os.stat(t.local(e.mountpoint)).st_dev) == e.dev
    except OSError:
        return False


def _ns_label(t: MountTable) -> str:
    return "" if t.label in ("self", "") else t.label


def _same_file(path: str, dev: int, ino: int) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    return st.st_ino == ino and kdev_from_st_dev(st.st_dev) == dev


# ---------------------------------------------------------------- the resolver
class SysMounts:
    """MountResolver over the mountinfo of every mount namespace (EROFS entries only).

    By default it reads the tables ``resolve/mountns.py`` finds (the host's,
    erofs-top's own, every other namespace's); with ``mountinfo_path`` only that
    one file.  A superblock mounted in several namespaces is listed once, under
    the first table's name whose mount point opens from here (host first).
    ``refresh()`` re-reads the tables and returns (added, removed) so the kernel
    side can update its watched-device map; it costs one read per table and a
    string compare when nothing changed.  A mount is identified by (dev, source,
    backing dev, backing inode): anonymous devs are reused after umount, so a new
    image on an old dev number counts as removed + added.
    """

    def __init__(self, mountinfo_path: str | None = None,
                 sys_root: str = "/sys", dev_root: str = "/dev",
                 namespaces: MountNamespaces | None = None):
        self.mountinfo_path = mountinfo_path or "/proc/self/mountinfo"
        if namespaces is None and mountinfo_path is None:
            namespaces = MountNamespaces()
        self.namespaces = namespaces
        self.sys_root = sys_root
        self.dev_root = dev_root
        self._texts: tuple | None = None
        self._by_key: dict[tuple, MountInfo] = {}
        self._by_dev: dict[int, MountInfo] = {}
        self.notes: dict[int, list[str]] = {}     # dev -> what could not be resolved
        self.error = ""                            # why mountinfo could not be read
        self.tables: list[MountTable] = []         # the tables read last

    def _read_tables(self) -> list[tuple[MountTable, str]] | None:
        tables = (self.namespaces.tables() if self.namespaces
                  else [MountTable("", self.mountinfo_path)])
        out = []
        for t in tables:
            try:
                out.append((t, names.read_text(t.mountinfo_path)))
            except OSError as e:
                if t.label in ("self", ""):
                    self.error = f"{t.mountinfo_path}: {e.strerror}"
                    return None
        self.error = ""
        self.tables = [t for t, _ in out]
        return out

    def _entries(self, texts: list[tuple[MountTable, str]]) -> list[tuple[MountTable, MountinfoEntry]]:
        """One (table, entry) per superblock: the first table whose mount point
        of it opens from here (stat gives its dev), else the first table."""
        cands: dict[int, list[tuple[MountTable, MountinfoEntry]]] = {}
        for t, text in texts:
            if " - erofs " not in text:
                continue
            for e in pick_per_superblock(parse_mountinfo(text, "erofs")):
                cands.setdefault(e.dev, []).append((t, e))
        out = []
        for dev, cs in cands.items():
            out.append(next((c for c in cs if not c[0].prefix or _opens(c[0], c[1])), cs[0]))
        return out

    def refresh(self) -> tuple[list[MountInfo], list[MountInfo]]:
        texts = self._read_tables()
        if texts is None:
            return [], []
        sig = tuple((t, text) for t, text in texts)
        if sig == self._texts:
            return [], []
        self._texts = sig
        new_by_key: dict[tuple, MountInfo] = {}
        added: list[MountInfo] = []
        notes: dict[int, list[str]] = {}
        for t, e in self._entries(texts):
            b = resolve_backing(e, self.sys_root, self.dev_root, t.prefix)
            key = (e.dev, e.source, b.backing_dev, b.backing_ino)
            old = self._by_key.get(key)
            if old is not None:
                # same superblock: follow a moved mount point / remount options
                old.mountpoint = e.mountpoint
                old.mount_ns, old.ns_prefix = _ns_label(t), t.prefix
                old.options = e.super_options
                old.inode_share = "inode_share" in e.super_options
                old.directio = "directio" in e.super_options
                new_by_key[key] = old
                notes[e.dev] = self.notes.get(e.dev, [])
                continue
            m, n = self._build(e, b)
            m.mount_ns, m.ns_prefix = _ns_label(t), t.prefix
            new_by_key[key] = m
            notes[e.dev] = n
            added.append(m)
        removed = [m for k, m in self._by_key.items() if k not in new_by_key]
        self._by_key = new_by_key
        self._by_dev = {m.dev: m for m in new_by_key.values()}
        self.notes = notes
        return added, removed

    def _build(self, e: MountinfoEntry, b: Backing) -> tuple[MountInfo, list[str]]:
        notes = list(b.notes)
        image: ImageInfo | None = None
        if b.image_path:
            try:
                image = image_info(b.image_path, b.image_offset)
            except (OSError, ErofsFormatError) as err:
                notes.append(f"superblock unreadable: {err}")
        m = MountInfo(
            dev=e.dev, dev_str=kdev_str(e.dev), mountpoint=e.mountpoint, source=e.source,
            backing=b.mode, backing_file=b.backing_file, backing_dev=b.backing_dev,
            backing_ino=b.backing_ino, options=e.super_options,
            inode_share="inode_share" in e.super_options,
            directio="directio" in e.super_options, image=image,
            image_path=b.image_path, image_offset=b.image_offset)
        return m, notes

    def mounts(self) -> list[MountInfo]:
        if self._texts is None:
            self.refresh()
        return list(self._by_dev.values())

    def by_dev(self, dev: int) -> MountInfo | None:
        if self._texts is None:
            self.refresh()
        return self._by_dev.get(dev)
