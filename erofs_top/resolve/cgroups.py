"""cgroup id -> path and container identity, plus memcg inode -> cgroup v2 id.

A cgroup v2 id (``bpf_get_current_cgroup_id()``) is the kernfs node id of the
cgroup directory, which on 64-bit kernels is also its inode number (st_ino).
Kernfs ids are allocated increasing and never reused, which makes caching easy:
an id not found by a walk but lower than the highest id that walk saw belongs to
a cgroup that is gone for good (a permanent negative); a higher id is newer than
the walk, so a miss on it triggers a re-walk (at most one per ``rewalk_interval_s``).

Hybrid hosts (memory controller on cgroup v1, like this lab machine) charge page
cache to a *v1* memory cgroup, whose inode /proc/kpagecgroup reports.
``memcg_cgroup_id`` maps that to the v2 cgroup with the same relative path (what
systemd and our test workloads create), else to the v2 cgroup of its tasks, or 0.
"""
from __future__ import annotations

import os
import time
from collections import OrderedDict

from .. import names as bytenames
from .base import CgroupInfo
from .containers import identify
from .mounts import parse_mountinfo

DEFAULT_REWALK_INTERVAL_S = 1.0
REVALIDATE_AFTER_S = 2.0        # re-stat a cached path this long after the last check
DELETED_KEEP = 4096             # last known paths of removed cgroups kept for naming


def find_cgroup_mounts(mountinfo_text: str) -> tuple[str | None, str | None]:
    """(cgroup2 mount point, cgroup v1 hierarchy holding the memory controller)."""
    v2 = v1mem = None
    for e in parse_mountinfo(mountinfo_text):
        if e.fstype == "cgroup2" and v2 is None and e.root == "/":
            v2 = e.mountpoint
        elif e.fstype == "cgroup" and "memory" in e.super_options and v1mem is None \
                and e.root == "/":
            v1mem = e.mountpoint
    return v2, v1mem


def memory_on_v1(proc_cgroups_text: str) -> bool:
    """/proc/cgroups: the memory controller sits on a v1 hierarchy (hierarchy id > 0)."""
    for line in proc_cgroups_text.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == "memory":
            return f[1] != "0" and f[3] == "1"
    return False


def _walk_dirs(root: str):
    """(relative path, inode) of every directory under ``root``, root included."""
    try:
        yield "/", os.stat(root).st_ino
    except OSError:
        return
    stack = [(root, "")]
    while stack:
        d, rel = stack.pop()
        try:
            it = os.scandir(d)
        except OSError:
            continue            # removed while walking
        with it:
            for ent in it:
                try:
                    if not ent.is_dir(follow_symlinks=False):
                        continue
                    ino = ent.inode()
                except OSError:
                    continue
                sub = f"{rel}/{ent.name}"
                yield sub, ino
                stack.append((ent.path, sub))


class _Tree:
    """id <-> path of one cgroup hierarchy, walked lazily, re-walked on misses."""

    def __init__(self, root: str, rewalk_interval_s: float, clock, monotonic_ids: bool = True):
        self.root = root
        self.monotonic_ids = monotonic_ids
        self.rewalk_interval_s = rewalk_interval_s
        self.clock = clock
        self.by_id: dict[int, tuple[str, float]] = {}     # id -> (path, checked_at)
        self.by_path: dict[str, int] = {}
        self.max_id = -1
        self.walked_at: float | None = None
        self.walks = 0
        self.gone: OrderedDict[int, str] = OrderedDict()  # removed: id -> last path

    def walk(self) -> None:
        now = self.clock()
        self.by_id.clear()
        self.by_path.clear()
        for rel, ino in _walk_dirs(self.root):
            self.by_id[ino] = (rel, now)
            self.by_path[rel] = ino
            self.max_id = max(self.max_id, ino)
        self.walked_at = now
        self.walks += 1

    def _forget(self, cid: int, path: str) -> None:
        self.by_id.pop(cid, None)
        if self.by_path.get(path) == cid:
            del self.by_path[path]
        self.gone[cid] = path
        while len(self.gone) > DELETED_KEEP:
            self.gone.popitem(last=False)

    def path_of(self, cid: int) -> str | None:
        hit = self.by_id.get(cid)
        now = self.clock()
        if hit is not None:
            path, checked = hit
            if now - checked < REVALIDATE_AFTER_S:
                return path
            try:
                same = os.stat(self.root + (path if path != "/" else "")).st_ino == cid
            except OSError:
                same = False
            if same:
                self.by_id[cid] = (path, now)
                return path
            self._forget(cid, path)
            return None
        if cid in self.gone:
            return None
        if self.monotonic_ids and self.walked_at is not None and 0 <= cid <= self.max_id:
            return None          # ids are never reused: gone, or never a cgroup here
        if self.walked_at is None or now - self.walked_at >= self.rewalk_interval_s:
            self.walk()
            hit = self.by_id.get(cid)
            return hit[0] if hit else None
        return None             # newer than the last walk; rate limit says wait

    def id_of(self, path: str) -> int | None:
        path = "/" + path.strip("/") if path.strip("/") else "/"
        cid = self.by_path.get(path)
        if cid is not None:
            return cid
        try:
            cid = os.stat(self.root + (path if path != "/" else "")).st_ino
        except OSError:
            return None
        self.by_id[cid] = (path, self.clock())
        self.by_path[path] = cid
        return cid


class SysCgroups:
    """CgroupResolver over the host's cgroup2 mount (``root`` overrides it)."""

    def __init__(self, root: str | None = None, *, memory_v1_root: str | None = None,
                 mountinfo_path: str = "/proc/self/mountinfo",
                 proc_cgroups_path: str = "/proc/cgroups",
                 rewalk_interval_s: float = DEFAULT_REWALK_INTERVAL_S, clock=time.monotonic,
                 monotonic_ids: bool = True, names=None):
        """``monotonic_ids``: ids only grow (true for cgroupfs/kernfs); tests on plain
        directories, whose inode numbers do not, pass False.  ``names``: a
        resolve.names.RuntimeNames (containerd state, kubelet dirs) or None."""
        self.error = ""
        self.names = names
        v2 = v1mem = None
        try:
            v2, v1mem = find_cgroup_mounts(bytenames.read_text(mountinfo_path))
        except OSError as e:
            self.error = f"{mountinfo_path}: {e.strerror}"
        try:
            with open(proc_cgroups_path) as f:
                on_v1 = memory_on_v1(f.read())
        except OSError:
            on_v1 = v1mem is not None
        self.root = root or v2
        if self.root is None and not self.error:
            self.error = "no cgroup2 mount found (cgroup ids cannot be named)"
        self.memory_v1_root = memory_v1_root or (v1mem if on_v1 else None)
        self._v2 = (_Tree(self.root, rewalk_interval_s, clock, monotonic_ids)
                    if self.root else None)
        self._v1mem = (_Tree(self.memory_v1_root, rewalk_interval_s, clock, monotonic_ids)
                       if self.memory_v1_root else None)
        self.unmapped_memcgs: dict[int, str] = {}   # v1 memcg ino -> path without v2 twin
        self._memcg_cache: dict[int, tuple[str | None, float]] = {}

    @property
    def hybrid(self) -> bool:
        return self._v1mem is not None

    def path_of(self, cgroup_id: int) -> str | None:
        return self._v2.path_of(cgroup_id) if self._v2 else None

    def id_of(self, path: str) -> int | None:
        """cgroup v2 id of a path relative to the root ("/a/b")."""
        return self._v2.id_of(path) if self._v2 else None

    def resolve(self, cgroup_id: int) -> CgroupInfo:
        path = self.path_of(cgroup_id)
        if path is None:
            last = self._v2.gone.get(cgroup_id) if self._v2 else None
            if last is None:
                return CgroupInfo(cgroup_id, "?", resolved=False)
            ident = identify(last)
            return self._named(CgroupInfo(cgroup_id, last, ident.runtime, ident.container_id,
                                          ident.pod_uid, resolved=True, deleted=True))
        ident = identify(path)
        return self._named(CgroupInfo(cgroup_id, path, ident.runtime, ident.container_id,
                                      ident.pod_uid))

    def _named(self, info: CgroupInfo) -> CgroupInfo:
        return self.names.name_cgroup(info) if self.names is not None else info

    # ---------------------------------------------------------------- memcg
    def memcg_path(self, memcg_ino: int) -> str | None:
        """cgroup v2 path of the memory cgroup whose inode /proc/kpagecgroup gave.

        Pure v2: the inode is the v2 cgroup id.  Hybrid: it is a directory of the
        v1 memory hierarchy.  It maps to (1) the v2 cgroup with the same relative
        path (systemd and our workloads create such twins), else (2) the v2 cgroup
        its tasks are in (/proc/PID/cgroup "0::"), which is the cgroup
        bpf_get_current_cgroup_id() reports for them.  None when neither exists
        (an empty v1-only memcg); those are kept in ``unmapped_memcgs``.
        """
        if memcg_ino == 0:
            return None
        if self._v1mem is None:
            return self.path_of(memcg_ino)
        now = self._v1mem.clock()
        hit = self._memcg_cache.get(memcg_ino)
        if hit is not None and now - hit[1] < REVALIDATE_AFTER_S:
            return hit[0]
        v1 = self._v1mem.path_of(memcg_ino)
        result = None
        if v1 is not None:
            if self.id_of(v1) is not None:
                result = v1
            else:
                result = self._v2_path_of_tasks(v1)
                if result is None and len(self.unmapped_memcgs) < 1024:
                    self.unmapped_memcgs[memcg_ino] = v1
        self._memcg_cache[memcg_ino] = (result, now)
        return result

    def _v2_path_of_tasks(self, v1_path: str) -> str | None:
        """The v2 cgroup of the tasks in a v1 memory cgroup (the first task's,
        checked against a few more; None if empty or they disagree)."""
        d = self.memory_v1_root + (v1_path if v1_path != "/" else "")
        try:
            pids = bytenames.read_text(d + "/cgroup.procs").split()[:8]
        except OSError:
            return None
        seen = set()
        for pid in pids:
            try:
                for line in bytenames.read_text(f"/proc/{pid}/cgroup").split("\n"):
                    if line.startswith("0::"):
                        seen.add(line[3:])
                        break
            except OSError:
                continue
        if len(seen) != 1:
            return None
        path = seen.pop()
        return path if self.id_of(path) is not None else None

    def memcg_cgroup_id(self, memcg_ino: int) -> int:
        """cgroup v2 id charged for a page whose memcg inode is ``memcg_ino`` (0 unknown)."""
        if memcg_ino == 0:
            return 0
        if self._v1mem is None:
            return memcg_ino        # pure v2: the memcg inode is the cgroup id
        path = self.memcg_path(memcg_ino)
        if path is None:
            return 0
        return self.id_of(path) or 0
