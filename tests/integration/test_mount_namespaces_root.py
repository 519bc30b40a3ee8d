"""erofs-top in a pod-like mount and PID namespace names what a host run names
(issue 12 item 4).

tests/integration/podlike.py builds the node (a mount namespace with a shared
``/``, its own PID namespace) and, in it, a pod with the DaemonSet's volumes
(``/host`` with HostToContainer propagation), capabilities and no host PID
namespace, running ``erofs-top once --json``.  After the pod's erofs-top has
attached, the node mounts two images and reads them from two cgroups, and a
third process mounts an image in a mount namespace of its own.  Neither shows
in the pod's own mount table at its node path: the pod reads the node's through
``/host/proc/1/mountinfo`` and opens the files through ``/host``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.root
HERE = os.path.dirname(os.path.abspath(__file__))


def _doc(run: dict) -> dict:
    assert run["rc"] == 0, run["stderr"]
    return json.loads(run["stdout"])


def test_pod_like_namespace_names_the_same_mounts_files_and_containers(stack):
    r = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc",
                        "--propagation", "shared", "--kill-child",
                        sys.executable, f"{HERE}/podlike.py", str(stack.dir / "node")],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-5000:]
    res = json.loads(r.stdout)
    pod, host, want = _doc(res["pod"]), _doc(res["host"]), res["expect"]

    def mounts(doc):
        return {m["mountpoint"]: m["dev"] for m in doc["mounts"]}

    pm, hm = mounts(pod), mounts(host)
    for mp, dev in want["mounts"].items():
        assert pm.get(mp) == dev and hm.get(mp) == dev, (mp, dev, pm, hm)
    # the mount only in a third namespace: listed by both, under its name there
    only = want["only_here"]
    assert only in hm and only in pm, (hm, pm)
    assert hm[only] == pm[only] and hm[only] not in want["mounts"].values()

    def files(doc, devs):
        return {f["path"]: f["resident_bytes"] for f in doc["files"] if f["dev"] in devs}

    devs = set(want["mounts"].values())
    pf, hf = files(pod, devs), files(host, devs)
    # the host run attached after the reads: its seed (snapshot) lists regular files;
    # the pod traced the reads and also saw the directory pages the lookups brought in
    assert {p: pf.get(p) for p in hf} == hf, (pf, hf)
    names = {os.path.relpath(p, mp) for p in hf for mp in want["mounts"] if p.startswith(mp + "/")}
    assert {"lib/common.so", "a.bin", "b.bin"} <= names, hf
    # the host run also names the files of the third namespace's mount (through
    # /proc/PID/root); the pod cannot open that without CAP_SYS_PTRACE
    assert f"{only}/c.bin" in files(host, {hm[only]}), host["files"]

    def containers(doc):
        return {c["cgroup"]: c for c in doc["containers"]}

    pc, hc = containers(pod), containers(host)
    for cg in want["cgroups"]:
        assert cg in pc and cg in hc, (cg, list(pc), list(hc))
        for k in ("resident_bytes", "duplicate_bytes"):
            assert pc[cg][k] == pytest.approx(hc[cg][k], rel=0.01, abs=8192), (cg, k, pc[cg], hc[cg])
    a, b, c = want["cgroups"]
    # the reads were seen.  Pages the host evicted since count as evicted: a
    # host may reclaim idle page cache without memory pressure (this one runs
    # a DAMON pageout scheme: physical pages idle for ~60 s are paged out),
    # and a copy of lib/common.so that lost a page leaves a page of the other
    # copy without its duplicate
    assert pc[a]["resident_bytes"] + pc[a]["evicted_bytes"] >= 3 << 20
    assert pc[b]["resident_bytes"] + pc[b]["evicted_bytes"] >= 5 << 20
    assert (pc[a]["duplicate_bytes"] + pc[a]["evicted_bytes"]
            + pc[b]["evicted_bytes"]) >= 2 << 20       # lib/common.so in both images
    assert pc[c]["resident_bytes"] + pc[c]["evicted_bytes"] >= 1 << 20
