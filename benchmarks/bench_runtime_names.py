"""Runtime names at node scale: what containerd's bundles cost per refresh.

Every Model refresh asks containerd's on-disk state again
(resolve/containerd.py ContainerdState.refresh, at most every 2 s): the task
bundles under <state>/io.containerd.runtime.v2.task are listed, and each
running task's config.json gives its cgroup.  A node runs ~1,000 tasks.

The bundles here are real files in a scratch directory, N of them, each a
copy of one spec: the config.json containerd 2.1.9 wrote in the lab
(tests/unit/fixtures/containerd-2.1.9, a `ctr run --cgroup` of a kubelet-like
path) grown to the size of a CRI container's spec (made here, named so: the
annotations the CRI plugin sets, 30 environment variables, 10 more mounts and
a seccomp section in the form of containerd's default profile allowing this
host's syscall names).  Measured, in this process, CPU per refresh:

- ``every bundle parsed``: read_tasks without kept parses (what every refresh
  did before "Runtime names at node scale");
- ``kept``: ContainerdState.refresh(force=True), steady: the bundles listed,
  each config.json stat'ed, none parsed again;
- ``names``: RuntimeNames.name_cgroup of each task's cgroup (what the rows
  of a refresh ask: CgroupResolver.resolve), the meta.db of the fixture,
  with containerd's answers kept between refreshes (now) and made anew at
  each (before).

Run:  .venv/bin/python benchmarks/bench_runtime_names.py [--tasks 1000] [--rounds 7]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import shutil
import tempfile

import benchlib
from benchlib import REPO

from erofs_top.resolve.base import CgroupInfo
from erofs_top.resolve.containerd import TASK_DIR, ContainerdState, read_tasks
from erofs_top.resolve.containers import identify
from erofs_top.resolve.kubelet import KubeletLogs
from erofs_top.resolve.names import RuntimeNames

FIX = REPO / "tests" / "unit" / "fixtures" / "containerd-2.1.9"
LAB_BUNDLE = (FIX / "state" / TASK_DIR / "default" /
              "6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0")
UNISTD = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"


def syscall_names() -> list[str]:
    """This host's syscall names (the kernel's uapi header), else made-up ones."""
    try:
        with open(UNISTD) as f:
            names = re.findall(r"#define __NR_(\w+)\s+\d+", f.read())
    except OSError:
        names = []
    return names or [f"syscall_{i}" for i in range(370)]


def cri_spec(pod_uid: str, cid: str) -> dict:
    """The lab's spec grown to a CRI container's (see the module doc)."""
    spec = json.loads((LAB_BUNDLE / "config.json").read_text())
    spec["linux"]["cgroupsPath"] = f"/kubepods/besteffort/pod{pod_uid}/{cid}"
    spec["annotations"] = {
        "io.kubernetes.cri.container-type": "container",
        "io.kubernetes.cri.container-name": "app",
        "io.kubernetes.cri.image-name": "registry.example/app:1.2.3",
        "io.kubernetes.cri.sandbox-id": "f" * 64,
        "io.kubernetes.cri.sandbox-name": "app-7d9c8b6f5-x2x4q",
        "io.kubernetes.cri.sandbox-namespace": "default",
        "io.kubernetes.cri.sandbox-uid": pod_uid}
    spec["process"]["env"] = spec["process"].get("env", []) + [
        f"SERVICE_{i}_PORT=tcp://10.96.{i}.1:8080" for i in range(30)]
    spec["mounts"] += [{"destination": f"/var/run/secrets/v{i}", "type": "bind",
                        "source": f"/var/lib/kubelet/pods/{pod_uid}/volumes/v{i}",
                        "options": ["rbind", "rprivate", "ro"]} for i in range(10)]
    spec["linux"]["seccomp"] = {
        "defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": syscall_names(), "action": "SCMP_ACT_ALLOW"},
                     {"names": ["personality"], "action": "SCMP_ACT_ALLOW",
                      "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}
    return spec


def make_state(root: str, tasks: int) -> tuple[list[str], int]:
    """N bundles under root (namespace k8s.io); returns their cgroup paths
    and the spec's size in bytes."""
    ns_dir = os.path.join(root, TASK_DIR, "k8s.io")
    os.makedirs(ns_dir)
    paths, size = [], 0
    for i in range(tasks):
        cid, pod = f"{i + 1:064x}", f"{i:08x}-0000-4000-8000-{i:012x}"
        d = os.path.join(ns_dir, cid)
        os.mkdir(d)
        body = json.dumps(cri_spec(pod, cid)).encode()
        size = len(body)
        with open(os.path.join(d, "config.json"), "wb") as f:
            f.write(body)
        with open(os.path.join(d, "init.pid"), "w") as f:
            f.write(str(10_000 + i))
        paths.append(f"/kubepods/besteffort/pod{pod}/{cid}")
    return paths, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=1000, help="running tasks (bundles)")
    ap.add_argument("--rounds", type=int, default=7, help="refreshes timed (median)")
    args = ap.parse_args()
    scratch = tempfile.mkdtemp(prefix="erofs-top-names-")
    try:
        root, state = os.path.join(scratch, "root"), os.path.join(scratch, "state")
        os.makedirs(os.path.join(root, "io.containerd.metadata.v1.bolt"))
        with gzip.open(FIX / "root" / "io.containerd.metadata.v1.bolt" / "meta.db.gz") as f:
            (open(os.path.join(root, "io.containerd.metadata.v1.bolt", "meta.db"), "wb")
             .write(f.read()))
        paths, size = make_state(state, args.tasks)
        run(args, root, state, paths, size)
    finally:
        shutil.rmtree(scratch)


def run(args, root: str, state: str, paths: list[str], size: int) -> None:
    print(f"{args.tasks} task bundles, config.json {size} B each (the lab's spec grown to a "
          f"CRI container's), {args.rounds} refreshes each, median CPU")
    every = benchlib.median_cpu_ms(lambda: read_tasks(state), args.rounds)
    s = ContainerdState(root, state, min_interval_s=0)
    s.refresh(force=True)
    first = s.tasks
    kept = benchlib.median_cpu_ms(lambda: s.refresh(force=True), args.rounds)
    assert s.tasks == first == read_tasks(state)[0], "kept parses differ from a fresh read"
    names = RuntimeNames(s, KubeletLogs(os.path.join(root, "no-kubelet")))
    infos = []
    for i, p in enumerate(paths):
        ident = identify(p)
        infos.append(CgroupInfo(i + 100, p, ident.runtime, ident.container_id, ident.pod_uid))
    named = benchlib.median_cpu_ms(lambda: [names.name_cgroup(ci) for ci in infos], args.rounds)

    def asked_anew():           # as before: every answer made again at every refresh
        s._named = {}
        return [names.name_cgroup(ci) for ci in infos]
    named_before = benchlib.median_cpu_ms(asked_anew, args.rounds)
    assert all(names.name_cgroup(ci).namespace == "k8s.io" for ci in infos)
    print(f"  every bundle parsed (before): {every:.1f} ms per refresh")
    print(f"  kept parses (now):            {kept:.1f} ms per refresh "
          f"({kept / every:.3f} of before)")
    print(f"  names of {len(infos)} cgroups, made anew (before): {named_before:.1f} ms per refresh")
    print(f"  names of {len(infos)} cgroups, kept (now):         {named:.1f} ms per refresh "
          f"({named / named_before:.3f} of before)")


if __name__ == "__main__":
    main()
