"""A node's mount table parsed for its EROFS mounts: only the EROFS lines
against every line (what parse_mountinfo did before it skipped lines
without " - erofs ").

The table is made here, named so, in the kernel's mountinfo format with the
mounts a containerd node of ``--containers`` pods holds in the host
namespace: per pod a shm tmpfs, a service-account tmpfs and two projected
volumes, and its container's overlay rootfs; ``--layers`` EROFS layer
mounts of containerd's EROFS snapshotter (docs/containerd.md's layout).
SysMounts parses the tables again whenever one changed, and on such a node
one changes whenever a pod comes or goes.  Reported: CPU per parse, median
of ``--rounds``, both ways in the same run, and their ratio.

Run:  .venv/bin/python benchmarks/bench_mountinfo_parse.py [--containers 1000] [--layers 300]
"""
from __future__ import annotations

import argparse

import benchlib

from erofs_top.resolve.mounts import parse_mountinfo

SNAP = "/var/lib/containerd/io.containerd.snapshotter.v1.erofs/snapshots"


def node_table(containers: int, layers: int) -> str:
    lines, mid = [], 100
    for i in range(layers):
        mid += 1
        lines.append(f"{mid} 25 0:{200 + i} / {SNAP}/{i + 1}/fs ro,relatime shared:{mid} - erofs "
                     f"{SNAP}/{i + 1}/layer.erofs ro,user_xattr,acl,cache_strategy=readaround")
    for c in range(containers):
        pod = f"/var/lib/kubelet/pods/{c:08x}-aaaa-4bbb-8ccc-{c:012x}"
        cid = f"{c + 1:064x}"
        for vol, opts in (("kubernetes.io~projected/kube-api-access-x1", "size=1048576k"),
                          ("kubernetes.io~secret/token", "size=1048576k"),
                          ("kubernetes.io~configmap/conf", "size=65536k")):
            mid += 1
            lines.append(f"{mid} 25 0:{2000 + mid} / {pod}/volumes/{vol} rw,relatime "
                         f"shared:{mid} - tmpfs tmpfs rw,{opts},inode64,noswap")
        mid += 1
        lines.append(f"{mid} 25 0:{2000 + mid} / /run/containerd/io.containerd.grpc.v1.cri/"
                     f"sandboxes/{cid}/shm rw,nosuid,nodev,noexec,relatime shared:{mid} - tmpfs "
                     f"shm rw,size=65536k,inode64")
        mid += 1
        lowers = ":".join(f"{SNAP}/{(c + k) % layers + 1}/fs" for k in range(3))
        lines.append(f"{mid} 25 0:{2000 + mid} / /run/containerd/io.containerd.runtime.v2.task/"
                     f"k8s.io/{cid}/rootfs rw,relatime shared:{mid} - overlay overlay "
                     f"rw,lowerdir={lowers},upperdir={SNAP}/x{c}/fs,workdir={SNAP}/x{c}/work")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--containers", type=int, default=1000, help="pods on the node")
    ap.add_argument("--layers", type=int, default=300, help="EROFS layer mounts")
    ap.add_argument("--rounds", type=int, default=15, help="parses timed (median)")
    args = ap.parse_args()
    text = node_table(args.containers, args.layers)
    every = benchlib.median_cpu_ms(lambda: [e for e in parse_mountinfo(text) if e.fstype == "erofs"],
                   args.rounds)
    erofs_only = benchlib.median_cpu_ms(lambda: parse_mountinfo(text, "erofs"), args.rounds)
    got = parse_mountinfo(text, "erofs")
    assert got == [e for e in parse_mountinfo(text) if e.fstype == "erofs"]
    assert len(got) == args.layers
    print(f"{text.count(chr(10))} mountinfo lines ({len(text)} B), {args.layers} EROFS; "
          f"median CPU of {args.rounds} parses")
    print(f"  every line parsed (before): {every:.1f} ms")
    print(f"  EROFS lines only (now):     {erofs_only:.1f} ms ({erofs_only / every:.3f} of before)")


if __name__ == "__main__":
    main()
