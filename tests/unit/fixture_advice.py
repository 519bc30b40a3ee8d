"""A node for the Advice view's tests: the real Collector and its real refresh()
around Readings written here (mock of the probe source: the BPF sources need
root), with static resolvers of four file-backed mounts.

- ``/run/ctr-1/rootfs`` and ``/run/ctr-2/rootfs``: images WITH fingerprints
  (``mkfs.erofs --xattr-inode-digest``), each caching all 256 pages (1 MiB) of
  the same libapp.so: inode_share in one domain would save 1 MiB now.
- ``/run/ctr-3/rootfs`` and ``/run/ctr-4/rootfs``: images WITHOUT
  fingerprints, each caching the first 128 pages (512 KiB) of another common
  libbase.so: a rebuild of image 4 with digests would save 512 KiB.

``set_scenario()`` changes what the next refresh sees: ``"actions"`` (the
above), ``"sharing"`` (full tier: only the two fingerprinted images are
mounted, both with inode_share, and libapp.so sits in one shared inode that
both containers use), ``"domains"`` (like ``"sharing"``, but the two mounts
are in different domains: two shared inodes of libapp.so, all of it and its
first half), ``"unique"`` (each mount caches content no other has).
"""
from __future__ import annotations

import time

from erofs_top.collector import Collector
from erofs_top.model import TIER_FULL, TIER_TRACEPOINT
from erofs_top.readings import PageChunk, Readings, SharedInode, kdev
from erofs_top.resolve.base import (AOPS_FILEIO, FileInfo, ImageInfo, MountInfo, StaticCgroups,
                                    StaticContent, StaticMounts)

PAGE = 4096
HOST_DEV = kdev(254, 1)
LIB_INO = 40
LIB_PAGES = 256                 # libapp.so on the fingerprinted images
BASE_PAGES = 128                # libbase.so cached on the others
FIRST_CGROUP = 2000
ALL = (1 << 64) - 1             # a whole 64-page chunk
COMPAT_ISHARE_XATTRS = 0x20


def mountpoint(n: int) -> str:
    return f"/run/ctr-{n}/rootfs"


def image_file(n: int) -> str:
    return f"/var/lib/img/app-{n}.erofs"


def fingerprinted(n: int) -> bool:
    return n in (1, 2)


def _mount(n: int, inode_share: bool) -> MountInfo:
    fp = fingerprinted(n)
    image = ImageInfo(uuid=f"{n:08d}-0000-0000-0000-00000000000{n}", volume_name="",
                      feature_compat=COMPAT_ISHARE_XATTRS if fp else 0, feature_incompat=0,
                      block_size=PAGE, image_id=f"{n:08d}:feedface", ishare_xattrs=fp,
                      compressed=False)
    opts = {"ro", "inode_share"} if inode_share else {"ro"}
    return MountInfo(kdev(0, 40 + n), f"0:{40 + n}", mountpoint(n), image_file(n), "file",
                     backing_file=image_file(n), backing_dev=HOST_DEV, backing_ino=10 + n,
                     options=frozenset(opts), inode_share=inode_share, image=image)


class AdviceNode:
    """The mounts, files, cgroups and page cache of the node; ``source`` is its
    scripted probe source (read() -> Readings of the current scenario)."""
    page_size = PAGE

    def __init__(self, scenario: str = "actions"):
        self.mounts = StaticMounts([_mount(n, False) for n in range(1, 5)])
        self.content = StaticContent()
        self.scenario = ""
        self.set_scenario(scenario)

    def set_scenario(self, scenario: str) -> None:
        if scenario not in ("actions", "sharing", "domains", "unique"):
            raise ValueError(scenario)
        self.scenario = scenario
        shares = scenario in ("sharing", "domains")
        self.tier = TIER_FULL if shares else TIER_TRACEPOINT
        self.mounts.items[:] = ([_mount(n, True) for n in (1, 2)] if shares
                                else [_mount(n, False) for n in range(1, 5)])
        for i, m in enumerate(self.mounts.items):
            n = i + 1
            name, pages = ("libapp.so", LIB_PAGES) if fingerprinted(n) else ("libbase.so",
                                                                           BASE_PAGES)
            self.content.files[(m.dev, LIB_INO)] = FileInfo(
                LIB_INO, f"{m.mountpoint}/usr/lib/{name}", pages * PAGE, True, AOPS_FILEIO)
            digest = ("ab" if fingerprinted(n) else "cd") * 32
            if scenario == "unique":
                digest = f"{n:02d}" * 32
            self.content.content[(m.dev, LIB_INO)] = digest
            if fingerprinted(n):
                self.content.fingerprints[(m.dev, LIB_INO)] = digest

    # ---- the probe source
    def read(self) -> Readings:
        if self.scenario == "sharing":
            a, b = (m.dev for m in self.mounts.items)
            shared = SharedInode(0xFFFF888012345678, {c: {FIRST_CGROUP: ALL}
                                                      for c in range(LIB_PAGES // 64)},
                                 members={(a, LIB_INO), (b, LIB_INO)},
                                 users={FIRST_CGROUP: {(a, LIB_INO)},
                                        FIRST_CGROUP + 1: {(b, LIB_INO)}},
                                 size=LIB_PAGES * PAGE)
            return Readings(taken_at=time.time(), page_size=PAGE, shared=[shared],
                            probes_attached=True, maps={"chunks": (4, 65536, 0)})
        if self.scenario == "domains":
            shared = [SharedInode(0xFFFF888012340000 + i, {c: {FIRST_CGROUP + i: ALL}
                                                          for c in range(pages // 64)},
                                  members={(m.dev, LIB_INO)},
                                  users={FIRST_CGROUP + i: {(m.dev, LIB_INO)}},
                                  size=LIB_PAGES * PAGE)
                      for i, (m, pages) in enumerate(zip(self.mounts.items,
                                                         (LIB_PAGES, LIB_PAGES // 2)))]
            return Readings(taken_at=time.time(), page_size=PAGE, shared=shared,
                            probes_attached=True, maps={"chunks": (6, 65536, 0)})
        chunks = []
        for i, m in enumerate(self.mounts.items):
            pages = LIB_PAGES if fingerprinted(i + 1) else BASE_PAGES
            chunks += [PageChunk(m.dev, LIB_INO, c, {FIRST_CGROUP + i: ALL})
                       for c in range(pages // 64)]
        return Readings(taken_at=time.time(), page_size=PAGE, chunks=chunks,
                        probes_attached=True, maps={"chunks": (len(chunks), 65536, 0)})

    def close(self) -> None:
        pass


def advice_collector(node: AdviceNode) -> Collector:
    """The real Collector on the node's scripted source and static resolvers."""
    cgroups = StaticCgroups({FIRST_CGROUP + i: f"/kubepods/pod{i}/ctr{i}" for i in range(4)})
    return Collector(node, mounts=node.mounts, cgroups=cgroups, content=node.content,
                     kernel="7.2.0", started_at=1_700_000_000.0)
