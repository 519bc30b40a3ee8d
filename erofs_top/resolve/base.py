"""Resolver interfaces: ids from the kernel -> names and identities.

Each resolver has a live implementation (mounts.py, cgroups.py, content.py),
reading this host, and a static one (``Static*`` below) answering from fixed
tables: a recording's (replay, report) and unit tests'.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# inode_share only shares files whose address_space_operations are the same
# (7.0-rc2 "same aops only").  The three classes are what erofs_get_aops()
# (fs/erofs/internal.h) gives a data inode: z_erofs_aops for compressed
# layouts, erofs_fileio_aops on a file-backed superblock, erofs_aops otherwise.
AOPS_FILEIO = "fileio"          # plain file on a file-backed mount (erofs_fileio_aops)
AOPS_BLOCK = "block"            # plain file on a loop or block device (erofs_aops)
AOPS_COMPRESSED = "compressed"  # compressed file, any backing (z_erofs_aops)


@dataclass
class ImageInfo:
    """Identity of an EROFS image, from its on-disk superblock (offset 1024)."""
    uuid: str                   # "xxxxxxxx-xxxx-..." ("" if all zero)
    volume_name: str
    feature_compat: int
    feature_incompat: int
    block_size: int
    image_id: str               # uuid + digest of the superblock block + image size
    ishare_xattrs: bool         # COMPAT_ISHARE_XATTRS (0x20): per-inode fingerprints
    compressed: bool            # any compression feature bit


@dataclass
class MountInfo:
    dev: int                    # kernel dev_t (major << 20 | minor)
    dev_str: str                # "maj:min"
    mountpoint: str
    source: str
    backing: str                # file | loop | block
    backing_file: str = ""      # the image file (file-backed source, loop backing_file)
    backing_dev: int = 0        # kernel dev_t of the fs holding backing_file (0 if none)
    backing_ino: int = 0
    options: frozenset[str] = frozenset()   # super options from mountinfo
    inode_share: bool = False
    directio: bool = False
    image: ImageInfo | None = None
    image_path: str = ""        # where the image bytes can be read (file or device)
    image_offset: int = 0       # byte offset of the image there (loop offset)
    # the mount namespace it was found in (resolve/mountns.py): "" = erofs-top's own,
    # else "host", "pid 1", "pid N"; ns_prefix opens that namespace's paths from here
    mount_ns: str = ""
    ns_prefix: str = ""
    # container-runtime layer identity (resolve/containerd.py), set by the names step
    layer_digest: str = ""
    snapshot_id: str = ""
    images: tuple[str, ...] = ()

    @property
    def image_id(self) -> str:
        return self.image.image_id if self.image else ""

    def local(self, path: str) -> str:
        """Where erofs-top opens ``path`` (a name in the mount's namespace)."""
        return self.ns_prefix + path if self.ns_prefix else path

    @property
    def root_path(self) -> str:
        """Where erofs-top opens the mount point."""
        return self.local(self.mountpoint)


@dataclass
class CgroupInfo:
    cgroup_id: int
    path: str                   # relative to the cgroup2 root; "?" unresolved
    runtime: str = ""
    container_id: str = ""
    pod_uid: str = ""
    resolved: bool = True
    deleted: bool = False       # the cgroup was removed; path is the last one known
    # names from runtime state (resolve/containerd.py, resolve/kubelet.py)
    namespace: str = ""
    image: str = ""
    image_digest: str = ""
    snapshot_key: str = ""
    pod_namespace: str = ""
    pod_name: str = ""
    container_name: str = ""


@dataclass(slots=True)         # one per resident file (and mount): no __dict__ each
class FileInfo:
    ino: int
    path: str                   # absolute path through the mount point ("" unknown)
    size: int
    regular: bool
    aops: str                   # AOPS_* of this file on this mount


class LazyPathFileInfo(FileInfo):
    """A FileInfo whose ``path`` a subclass makes when asked from
    ``_namer`` (what names the file: shared by many files), so a resident
    file keeps no path string of its own.  Equal to the FileInfo with the
    same fields."""

    __slots__ = ("_namer",)

    def __init__(self, namer, ino: int, size: int, regular: bool, aops: str):
        self._namer = namer
        self.ino, self.size, self.regular, self.aops = ino, size, regular, aops

    def __eq__(self, other):
        if isinstance(other, FileInfo):
            return ((self.ino, self.path, self.size, self.regular, self.aops)
                    == (other.ino, other.path, other.size, other.regular, other.aops))
        return NotImplemented

    __hash__ = None     # as FileInfo's (a dataclass with eq)


class MountResolver(Protocol):
    def refresh(self) -> tuple[list[MountInfo], list[MountInfo]]: ...   # (added, removed)
    def mounts(self) -> list[MountInfo]: ...
    def by_dev(self, dev: int) -> MountInfo | None: ...


class CgroupResolver(Protocol):
    def resolve(self, cgroup_id: int) -> CgroupInfo: ...


class ContentResolver(Protocol):
    def file_info(self, mount: MountInfo, ino: int) -> FileInfo | None: ...
    # stored fingerprint (the sha256 of erofs-utils --xattr-inode-digest), hex, or None
    def fingerprint(self, mount: MountInfo, ino: int) -> str | None: ...
    def build_id(self, mount: MountInfo, ino: int) -> str | None: ...
    # sha256 of the content, hex; None when not computed (rate limit, unreadable)
    def digest(self, mount: MountInfo, ino: int) -> str | None: ...


# ---------------------------------------------------------------- static (recordings, tests)
@dataclass
class StaticMounts:
    """Mount resolver answering from a fixed list (recordings, unit tests)."""
    items: list[MountInfo] = field(default_factory=list)

    def refresh(self):
        return [], []

    def mounts(self):
        return list(self.items)

    def by_dev(self, dev):
        return next((m for m in self.items if m.dev == dev), None)


@dataclass
class StaticCgroups:
    paths: dict[int, str] = field(default_factory=dict)

    def resolve(self, cgroup_id):
        from .containers import identify   # path -> runtime/container/pod
        path = self.paths.get(cgroup_id)
        if path is None:
            return CgroupInfo(cgroup_id, "?", resolved=False)
        ident = identify(path)
        return CgroupInfo(cgroup_id, path, ident.runtime, ident.container_id, ident.pod_uid)


@dataclass
class StaticContent:
    """files: (dev, ino) -> FileInfo; content: (dev, ino) -> sha256 hex."""
    files: dict[tuple[int, int], FileInfo] = field(default_factory=dict)
    content: dict[tuple[int, int], str] = field(default_factory=dict)
    fingerprints: dict[tuple[int, int], str] = field(default_factory=dict)
    digest_calls: int = 0

    def file_info(self, mount, ino):
        return self.files.get((mount.dev, ino))

    def fingerprint(self, mount, ino):
        return self.fingerprints.get((mount.dev, ino))

    def build_id(self, mount, ino):
        return None

    def digest(self, mount, ino):
        self.digest_calls += 1
        return self.content.get((mount.dev, ino))
