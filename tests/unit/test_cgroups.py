"""cgroup id -> path resolution and memcg mapping, on directory trees.

Plain directories stand in for cgroupfs (a cgroup id is the directory's inode
number there too); the real cgroupfs is exercised in tests/integration.
"""
from __future__ import annotations

import os

import pytest

from erofs_top.resolve.cgroups import SysCgroups, find_cgroup_mounts, memory_on_v1

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
PROC_CGROUPS_HYBRID = "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t1\t1\t1\nmemory\t4\t15\t1\n"
PROC_CGROUPS_V2 = "#subsys_name\thierarchy\tnum_cgroups\tenabled\nmemory\t0\t80\t1\n"


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def test_find_mounts_and_memory_placement():
    assert find_cgroup_mounts(MOUNTINFO) == ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/memory")
    pure = "41 1 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert find_cgroup_mounts(pure) == ("/sys/fs/cgroup", None)
    assert memory_on_v1(PROC_CGROUPS_HYBRID) and not memory_on_v1(PROC_CGROUPS_V2)
    assert not memory_on_v1("")


def make(root, *rels):
    for r in rels:
        os.makedirs(os.path.join(root, r.strip("/")), exist_ok=True)
    return {r: os.stat(os.path.join(root, r.strip("/"))).st_ino for r in rels}


@pytest.fixture
def env(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text(MOUNTINFO)
    pc = tmp_path / "cgroups"
    pc.write_text(PROC_CGROUPS_V2)
    return tmp_path, str(mi), str(pc)


def test_resolve_paths_and_identity(env):
    tmp, mi, pc = env
    root = str(tmp / "v2")
    ids = make(root, "/", "/acc/ctrA", "/system.slice/docker-" + "ab" * 32 + ".scope")
    cg = SysCgroups(root, mountinfo_path=mi, proc_cgroups_path=pc, monotonic_ids=False)
    assert cg.root == root and not cg.hybrid
    assert cg.resolve(ids["/"]).path == "/"
    a = cg.resolve(ids["/acc/ctrA"])
    assert (a.path, a.resolved, a.runtime) == ("/acc/ctrA", True, "")
    d = cg.resolve(ids["/system.slice/docker-" + "ab" * 32 + ".scope"])
    assert d.runtime == "docker" and d.container_id == "ab" * 32
    u = cg.resolve(123456789012)
    assert (u.path, u.resolved) == ("?", False)
    assert cg.id_of("/acc/ctrA") == ids["/acc/ctrA"] and cg.id_of("/nope") is None


def test_rewalk_on_miss_is_rate_limited(env):
    tmp, mi, pc = env
    root = str(tmp / "v2")
    make(root, "/", "/a")
    clock = Clock()
    cg = SysCgroups(root, mountinfo_path=mi, proc_cgroups_path=pc, clock=clock,
                    rewalk_interval_s=1.0, monotonic_ids=False)
    cg.resolve(1)                       # first miss walks
    walks = cg._v2.walks
    new = make(root, "/b")["/b"]
    assert not cg.resolve(new).resolved  # within 1 s of the last walk: no re-walk
    assert cg._v2.walks == walks
    clock.t += 1.5
    assert cg.resolve(new).path == "/b"  # re-walk finds it
    assert cg._v2.walks == walks + 1
    for _ in range(5):
        cg.resolve(new)                  # hits: no walks
    assert cg._v2.walks == walks + 1


def test_monotonic_ids_cache_negatives_forever(env):
    tmp, mi, pc = env
    root = str(tmp / "v2")
    ids = make(root, "/", "/a", "/b")
    clock = Clock()
    cg = SysCgroups(root, mountinfo_path=mi, proc_cgroups_path=pc, clock=clock)
    cg.resolve(ids["/a"])
    walks = cg._v2.walks
    below = min(ids.values()) - 1       # never a directory here, below the max id seen
    clock.t += 10
    assert not cg.resolve(below).resolved
    assert cg._v2.walks == walks         # negative without walking


def test_deleted_cgroup_is_forgotten_but_named(env):
    tmp, mi, pc = env
    root = str(tmp / "v2")
    ids = make(root, "/", "/gone/ctr")
    clock = Clock()
    cg = SysCgroups(root, mountinfo_path=mi, proc_cgroups_path=pc, clock=clock,
                    monotonic_ids=False)
    assert cg.resolve(ids["/gone/ctr"]).path == "/gone/ctr"
    os.rmdir(os.path.join(root, "gone/ctr"))
    clock.t += 5                         # past the revalidation age
    info = cg.resolve(ids["/gone/ctr"])
    assert info.deleted and info.path == "/gone/ctr"
    assert ids["/gone/ctr"] not in cg._v2.by_id


def test_hybrid_memcg_maps_by_path(env):
    tmp, mi, pc = env
    (tmp / "cgroups").write_text(PROC_CGROUPS_HYBRID)
    v2, v1 = str(tmp / "v2"), str(tmp / "v1")
    ids2 = make(v2, "/", "/acc/ctrA")
    ids1 = make(v1, "/", "/acc/ctrA", "/process_api/x")
    cg = SysCgroups(v2, memory_v1_root=v1, mountinfo_path=mi, proc_cgroups_path=pc,
                    monotonic_ids=False)
    assert cg.hybrid
    assert cg.memcg_path(ids1["/acc/ctrA"]) == "/acc/ctrA"
    assert cg.memcg_cgroup_id(ids1["/acc/ctrA"]) == ids2["/acc/ctrA"]
    assert cg.memcg_cgroup_id(ids1["/process_api/x"]) == 0      # no v2 twin
    assert cg.unmapped_memcgs == {ids1["/process_api/x"]: "/process_api/x"}
    assert cg.memcg_cgroup_id(0) == 0


def test_pure_v2_memcg_is_the_cgroup_id(env):
    tmp, mi, pc = env
    v2 = str(tmp / "v2")
    ids = make(v2, "/", "/a")
    cg = SysCgroups(v2, mountinfo_path=mi, proc_cgroups_path=pc, monotonic_ids=False)
    assert cg.memcg_cgroup_id(ids["/a"]) == ids["/a"] and cg.memcg_path(ids["/a"]) == "/a"


def test_no_cgroup2_is_a_one_line_error(tmp_path):
    mi = tmp_path / "mi"
    mi.write_text("22 1 253:0 / / rw - ext4 /dev/vda rw\n")
    cg = SysCgroups(mountinfo_path=str(mi), proc_cgroups_path=str(tmp_path / "none"))
    assert cg.root is None and "no cgroup2" in cg.error
    assert not cg.resolve(5).resolved


def test_hybrid_memcg_without_twin_maps_through_its_tasks(env):
    tmp, mi, pc = env
    v2, v1 = str(tmp / "v2"), str(tmp / "v1")
    ids2 = make(v2, "/")
    ids1 = make(v1, "/", "/svc/job", "/svc/empty")
    # the job memcg holds this very process; its v2 cgroup comes from /proc/PID/cgroup
    (tmp / "v1/svc/job/cgroup.procs").write_text(f"{os.getpid()}\n")
    with open("/proc/self/cgroup") as f:
        mine = next(line[3:].strip() for line in f if line.startswith("0::"))
    make(v2, mine)
    cg = SysCgroups(v2, memory_v1_root=v1, mountinfo_path=mi, proc_cgroups_path=pc,
                    monotonic_ids=False)
    assert cg.memcg_path(ids1["/svc/job"]) == mine
    assert cg.memcg_cgroup_id(ids1["/svc/job"]) == cg.id_of(mine)
    assert cg.memcg_cgroup_id(ids1["/svc/empty"]) == 0       # no twin, no tasks
    assert ids2["/"] == cg.id_of("/")
