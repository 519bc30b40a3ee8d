"""A node and an erofs-top pod on it, on this machine (run by
test_mount_namespaces_root.py, as root, inside
``unshare --mount --pid --fork --mount-proc --propagation shared``).

That outer namespace is the node: its ``/`` is shared, as systemd makes it on
a Kubernetes node (this machine's own mounts are private), and this script is
its PID 1, so ``/host/proc/1`` in the pod is the node's init as on a node.

The pod (``unshare --mount --pid --fork --propagation slave``) gets the
DaemonSet's layout (exporters/deploy/daemonset.yaml): its own root (a tmpfs
with the image's directories bound read-only), the node's ``/`` at ``/host``
(rbind, rslave: HostToContainer), ``/sys/fs/cgroup``, tracefs, debugfs, a
tmpfs ``/tmp``, its own ``/proc`` (no host PID namespace), and the
DaemonSet's capabilities only (setpriv bounding set).  It runs
``erofs-top once --json -- CMD``; CMD says "ready" through a bound directory,
and only then the node makes its mounts, cgroups and readers, plus one mount
that exists only in a third mount namespace.  A host run (``erofs-top once``
in the node namespace) follows; both JSON documents go to stdout.

    python3 tests/integration/podlike.py WORKDIR
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, REPO)

from erofs_top.workload import Stack, build_image, make_tree, read_file  # noqa: E402

MiB = 1 << 20
CAPS = "-all,+bpf,+perfmon,+sys_resource,+sys_admin,+dac_read_search"   # the DaemonSet's
POD_SETUP = r"""
set -e
R=$1; SYNC=$2; shift 2
mount -t tmpfs -o mode=755 pod-root "$R"
mkdir -p "$R"/{host,usr,etc,proc,sys,dev,tmp,sync}
# the node's / at /host, mounts the node makes later propagate (HostToContainer)
mount --rbind / "$R/host"; mount --make-rslave "$R/host"
for d in bin lib lib64 sbin; do ln -s usr/$d "$R/$d"; done
mount -t tmpfs pod-tmp "$R/tmp"
# the "image": python, BCC, erofs-top (this checkout and its venv), read-only;
# after the pod's /tmp: a checkout under /tmp stays visible
for d in /usr /etc "$REPO"; do
    mkdir -p "$R$d"; mount --bind "$d" "$R$d"; mount -o remount,bind,ro "$R$d"
done
mount -t proc proc "$R/proc"
mount -t sysfs -o ro sysfs "$R/sys"
mount --rbind /sys/fs/cgroup "$R/sys/fs/cgroup"
mount --bind /sys/kernel/tracing "$R/sys/kernel/tracing"
mount --bind /sys/kernel/debug "$R/sys/kernel/debug"
mount -t tmpfs -o mode=755 pod-dev "$R/dev"
for n in null zero full random urandom; do touch "$R/dev/$n"; mount --bind /dev/$n "$R/dev/$n"; done
mount --bind "$SYNC" "$R/sync"
mount -o remount,ro,bind "$R"
cd /
exec chroot "$R" setpriv --bounding-set="$CAPS" --inh-caps=-all -- "$@"
"""
POD_CMD = ("echo ready > /sync/ready; i=0; "
           "while [ ! -e /sync/done ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i+1)); done")


def _erofs_top(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from erofs_top.cli import main; "
            "sys.argv = ['erofs-top', *sys.argv[1:]]; main()", *args]


def _wait(path: str, timeout_s: float, proc: subprocess.Popen | None = None) -> None:
    end = time.monotonic() + timeout_s
    while not os.path.exists(path):
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"exited {proc.returncode} before {path}: {proc.stderr.read()[-3000:]}")
        if time.monotonic() > end:
            raise TimeoutError(path)
        time.sleep(0.1)


def main(work: str) -> None:
    os.makedirs(work, exist_ok=True)
    sync, root = f"{work}/sync", f"{work}/pod-root"
    os.makedirs(sync, exist_ok=True)
    os.makedirs(root, exist_ok=True)
    env = dict(os.environ, REPO=REPO, CAPS=CAPS, PYTHONPATH=REPO, PYTHONDONTWRITEBYTECODE="1")
    pod = subprocess.Popen(
        ["unshare", "--mount", "--pid", "--fork", "--propagation", "slave", "--kill-child",
         "bash", "-c", POD_SETUP, "pod-setup", root, sync,
         *_erofs_top("once", "--json", "--", "sh", "-c", POD_CMD)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    other = None
    try:
        _wait(f"{sync}/ready", 300, pod)
        with Stack(prefix="erofs-top-podlike-", parent=work) as st:
            common = os.urandom(2 * MiB)
            s1 = make_tree(st.dir / "s1", {"lib/common.so": common, "a.bin": 1 * MiB}, seed=1)
            s2 = make_tree(st.dir / "s2", {"lib/common.so": common, "b.bin": 3 * MiB}, seed=2)
            s3 = make_tree(st.dir / "s3", {"c.bin": 1 * MiB}, seed=3)
            img1, img2 = build_image(s1, st.dir / "v1.erofs"), build_image(s2, st.dir / "v2.erofs")
            img3 = build_image(s3, st.dir / "v3.erofs")
            m1, m2 = st.mount(img1, "ctr-a"), st.mount(img2, "ctr-b")
            a, b, c = (st.cgroup(f"erofs-top-podlike-{os.getpid()}/{n}") for n in ("a", "b", "c"))
            for cg, m, own in ((a, m1, "a.bin"), (b, m2, "b.bin")):
                read_file(m.path("lib/common.so"), cg)
                read_file(m.path(own), cg)
            # a mount only in a third mount namespace (a process's private one)
            only = st.dir / "only-here"
            os.makedirs(only, exist_ok=True)
            other = c.popen(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                             f"mount -t erofs -o ro {img3} {only} && "
                             f"cat {only}/c.bin > /dev/null && touch {sync}/other && exec sleep 600"])
            _wait(f"{sync}/other", 60)
            host = subprocess.run(_erofs_top("once", "--json", "--duration", "1"),
                                  capture_output=True, text=True, env=env, timeout=600)
            open(f"{sync}/done", "w").close()
            out, err = pod.communicate(timeout=300)
            other.kill()
            other.wait()
            expect = {"mounts": {str(m1.mountpoint): m1.dev_str, str(m2.mountpoint): m2.dev_str},
                      "only_here": str(only), "cgroups": [a.path, b.path, c.path],
                      "other_pid": other.pid}
    finally:
        if other is not None and other.poll() is None:
            other.kill()
        if pod.poll() is None:
            pod.kill()
    json.dump({"pod": {"rc": pod.returncode, "stdout": out, "stderr": err[-5000:]},
               "host": {"rc": host.returncode, "stdout": host.stdout, "stderr": host.stderr[-5000:]},
               "expect": expect}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
