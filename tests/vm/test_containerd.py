"""Real containers: containerd 2.1 with its EROFS snapshotter, named by erofs-top.

containerd runs from a config this test writes (EROFS snapshotter and differ,
``--xattr-inode-digest`` in the differ's mkfs_options, CRI plugins off).  Two
versions of a real application image are built in the guest without network
(tests/vm/oci.py: redis-tools from two Debian suites on one busybox-static +
glibc base layer), imported with ``ctr image import --snapshotter erofs`` and
run with ``ctr run -d``: one container in ctr's own cgroup ``/default/<id>``,
one under a kubelet-style ``/kubepods/besteffort/pod<uid>/<id>``.  The readers
in the containers use read(2) (busybox dd), and execve + mmap (coreutils dd,
a dynamically linked binary from the image: the kernel maps it, ld.so maps
libc.so.6).

``erofs-top once --json -- <script that starts them>`` must name each container
(runtime, namespace, id, image name and digest) and each layer mount (layer
digest, snapshot id, images), and each container's resident bytes must match
memory.stat ``file`` of its cgroup.  The layer image files (``layer.erofs``) are
read by the test itself first, so their pages are resident and charged to the
test's cgroup, not the containers' (a file-backed mount otherwise also charges
the image-file pages to the first reader: docs/containerd.md).  A throw-away
container runs first, so that ``runc init``'s first faults of the runc binary
are not charged to the measured containers.

Everything made here (containers, tasks, images, snapshots, mounts, the
containerd process, cgroups) is removed at the end, also on failure.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from . import labkit as lk
from .conftest import FINGERPRINT_XATTR, REPORT

DATA = "/opt/lab-data/redis-tools"
# files with the same bytes in both redis-tools versions, in different layers:
# each container caches its own copy (busybox cat: sendfile(2))
SAME_FILES = ("usr/share/doc/redis-tools/copyright",
              "usr/share/doc/redis-tools/examples/lru/lfu-simulation.c",
              "usr/share/doc/redis-tools/examples/lru/test-lru.rb",
              "usr/share/doc/redis-tools/examples/redis-trib.rb")
ROOT = "/var/lib/containerd"
STATE = "/run/containerd"
SNAPSHOTS = f"{ROOT}/io.containerd.snapshotter.v1.erofs/snapshots"
IMAGE_A = "docker.io/lab/redis:a"
IMAGE_B = "docker.io/lab/redis:b"
POD_UID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
KUBE_ID = "6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0"
CONFIG = f"""version = 3
root = "{ROOT}"
state = "{STATE}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime",
                    "io.containerd.cri.v1.images",
                    "io.containerd.podsandbox.controller.v1.podsandbox"]
[plugins."io.containerd.service.v1.diff-service"]
  default = ["erofs", "walking"]
[plugins."io.containerd.transfer.v1.local"]
  [[plugins."io.containerd.transfer.v1.local".unpack_config]]
    platform = "linux/amd64"
    snapshotter = "erofs"
    differ = "erofs"
[plugins."io.containerd.differ.v1.erofs"]
  mkfs_options = ["--xattr-inode-digest={FINGERPRINT_XATTR}"]
"""


def ctr(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    r = subprocess.run(["ctr", *args], capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError(f"ctr {' '.join(args)}: rc {r.returncode}: {r.stderr.strip()}")
    return r


def _versions() -> list[str]:
    try:
        return sorted(v for v in os.listdir(DATA) if os.path.isdir(os.path.join(DATA, v)))
    except OSError:
        return []


def _erofs_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f
                if " - erofs " in line or " - overlay " in line
                if ROOT in line.split()[4] or STATE in line.split()[4]]


def _cleanup(proc: subprocess.Popen | None) -> None:
    """Tasks, containers, images, snapshots, containerd, mounts, cgroups."""
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(Exception):
            for cid in ctr("task", "ls", "-q", check=False).stdout.split():
                ctr("task", "kill", "-s", "KILL", cid, check=False)
            for cid in ctr("containers", "ls", "-q", check=False).stdout.split():
                for _ in range(50):
                    if ctr("task", "rm", "-f", cid, check=False).returncode == 0 or \
                            cid not in ctr("task", "ls", "-q", check=False).stdout.split():
                        break
                    time.sleep(0.2)
                ctr("containers", "rm", cid, check=False)
            ctr("images", "rm", "--sync", IMAGE_A, IMAGE_B, check=False)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for mp in sorted(_erofs_mounts(), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    for d in (f"/sys/fs/cgroup/kubepods/besteffort/pod{POD_UID}", "/sys/fs/cgroup/kubepods/besteffort",
              "/sys/fs/cgroup/kubepods", "/sys/fs/cgroup/default"):
        with contextlib.suppress(OSError):
            for sub in os.listdir(d):
                if os.path.isdir(os.path.join(d, sub)):
                    os.rmdir(os.path.join(d, sub))
        with contextlib.suppress(OSError):
            os.rmdir(d)
    shutil.rmtree(ROOT, ignore_errors=True)
    shutil.rmtree(STATE, ignore_errors=True)


@pytest.fixture(scope="module")
def containerd(lab):
    vers = _versions()
    if len(vers) != 2:
        pytest.skip(f"two versions of redis-tools in {DATA} needed (lab build data), got {vers}")
    subprocess.run(["modprobe", "overlay"], check=True)
    lk.enable_memory_controller()
    work = lk.workdir("containerd")
    proc = None
    t0 = time.monotonic()
    timings = {}
    try:
        from . import oci
        images = oci.build(f"{work}/oci", {IMAGE_A: f"{DATA}/{vers[0]}",
                                           IMAGE_B: f"{DATA}/{vers[1]}"})
        timings["build images"] = time.monotonic() - t0
        with open(f"{work}/config.toml", "w") as f:
            f.write(CONFIG)
        log = open(f"{work}/containerd.log", "w")
        proc = subprocess.Popen(["containerd", "--config", f"{work}/config.toml"],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        t1 = time.monotonic()
        for _ in range(300):
            if ctr("version", check=False, timeout=10).returncode == 0:
                break
            if proc.poll() is not None:
                raise RuntimeError(f"containerd exited: {open(f'{work}/containerd.log').read()[-2000:]}")
            time.sleep(0.2)
        timings["containerd up"] = time.monotonic() - t1
        t1 = time.monotonic()
        for meta in images.values():
            ctr("image", "import", "--snapshotter", "erofs", meta["archive"], timeout=300)
        timings["import 2 images"] = time.monotonic() - t1
        yield {"images": images, "work": work, "timings": timings, "versions": vers}
    finally:
        _cleanup(proc)
        lk.rmtree(work)
        leftover = _erofs_mounts()
        assert not leftover, f"mounts left behind: {leftover}"


RUN = """#!/bin/bash
# started under `erofs-top once`: two containers, each reads, then sleeps
set -e
wait_read() {{ for i in $(seq 600); do grep -q read-done "$1" 2>/dev/null && return 0; sleep 0.1; done
               echo "no read-done in $1" >&2; cat "$1" >&2; return 1; }}
READ='dd if=/usr/bin/redis-check-aof of=/dev/null bs=1M 2>/dev/null; \
/usr/bin/dd if=/usr/bin/redis-cli of=/dev/null bs=64k 2>/dev/null; \
cat {same} > /dev/null; echo read-done; exec sleep 100000'
ctr run -d --snapshotter erofs --log-uri file://{work}/a.log {image_a} lab-a sh -c "$READ"
wait_read {work}/a.log
ctr run -d --snapshotter erofs --cgroup /kubepods/besteffort/pod{pod}/{kid} \
    --log-uri file://{work}/k.log {image_b} {kid} sh -c "$READ"
wait_read {work}/k.log
sleep 1
"""


def _memcg_file(cgroup: str) -> int:
    with open(f"/sys/fs/cgroup{cgroup}/memory.stat") as f:
        for line in f:
            k, v = line.split()
            if k == "file":
                return int(v)
    raise LookupError(cgroup)


def erofs_top(*args: str) -> subprocess.CompletedProcess:
    code = ("import sys; from erofs_top.cli import main; "
            "sys.argv = ['erofs-top', *sys.argv[1:]]; main()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=900)


def test_containerd_containers_and_layers_named(containerd):
    images, work, timings = containerd["images"], containerd["work"], containerd["timings"]
    # warm-up: runc's first faults of its own binary land in the first container's memcg
    t1 = time.monotonic()
    ctr("run", "--rm", "--snapshotter", "erofs", IMAGE_A, "lab-warm", "true", timeout=300)
    timings["warm-up container"] = time.monotonic() - t1
    # the layer image files' pages: resident and charged here, not to the containers
    os.sync()
    for n in os.listdir(SNAPSHOTS):
        if os.path.exists(f"{SNAPSHOTS}/{n}/layer.erofs"):
            lk.read_file(f"{SNAPSHOTS}/{n}/layer.erofs")
    with open(f"{work}/run.sh", "w") as f:
        f.write(RUN.format(work=work, image_a=IMAGE_A, image_b=IMAGE_B, pod=POD_UID, kid=KUBE_ID,
                           same=" ".join("/" + p for p in SAME_FILES)))
    vers = containerd["versions"]
    same_pages = 0
    for p in SAME_FILES:
        with open(f"{DATA}/{vers[0]}/{p}", "rb") as fa, open(f"{DATA}/{vers[1]}/{p}", "rb") as fb:
            data = fa.read()
            assert data == fb.read(), p
        same_pages += lk.pages(len(data))
    # the kubelet's log directories name the kubelet-style container's pod
    pod_dir = f"/var/log/pods/shop_redis-7d9f_{POD_UID}"
    os.makedirs(f"{pod_dir}/redis", exist_ok=True)
    os.makedirs("/var/log/containers", exist_ok=True)
    ctr_log = f"/var/log/containers/redis-7d9f_shop_redis-{KUBE_ID}.log"
    open(ctr_log, "w").close()
    t1 = time.monotonic()
    try:
        r = erofs_top("once", "--json", "--", "bash", f"{work}/run.sh")
    finally:
        shutil.rmtree(pod_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            os.unlink(ctr_log)
    timings["erofs-top once (BCC compile + 2 containers)"] = time.monotonic() - t1
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    with contextlib.suppress(OSError):
        with open("/out/containerd-once.json", "w") as f:
            json.dump(doc, f, indent=1)
    cg_a, cg_k = "/default/lab-a", f"/kubepods/besteffort/pod{POD_UID}/{KUBE_ID}"
    truth = {cg_a: _memcg_file(cg_a), cg_k: _memcg_file(cg_k)}
    by_cg = {c["cgroup"]: c for c in doc["containers"]}
    a, k = by_cg.get(cg_a), by_cg.get(cg_k)
    assert a is not None and k is not None, [c["cgroup"] for c in doc["containers"]]

    # names
    assert (a["runtime"], a["namespace"], a["container_id"], a["image"], a["snapshot_key"]) == \
        ("containerd", "default", "lab-a", IMAGE_A, "lab-a"), a
    assert a["image_digest"] == images[IMAGE_A]["manifest"], a
    assert (k["runtime"], k["namespace"], k["container_id"], k["pod_uid"], k["image"]) == \
        ("containerd", "default", KUBE_ID, POD_UID, IMAGE_B), k
    assert k["image_digest"] == images[IMAGE_B]["manifest"], k
    assert (k["pod_namespace"], k["pod_name"], k["container_name"]) == ("shop", "redis-7d9f", "redis")
    layers = {m["layer_digest"]: m for m in doc["mounts"] if m["snapshot_id"]}
    base, app_a, app_b = (images[IMAGE_A]["layers"][0], images[IMAGE_A]["layers"][1],
                          images[IMAGE_B]["layers"][1])
    assert images[IMAGE_B]["layers"][0] == base
    assert set(layers) == {base, app_a, app_b}, [(m["mountpoint"], m["layer_digest"])
                                                 for m in doc["mounts"]]
    assert layers[base]["images"] == sorted([IMAGE_A, IMAGE_B])
    assert layers[app_a]["images"] == [IMAGE_A] and layers[app_b]["images"] == [IMAGE_B]
    for m in layers.values():
        assert m["mountpoint"] == f"{SNAPSHOTS}/{m['snapshot_id']}/fs", m
        assert m["backing"] == "file" and m["ishare_xattrs"], m

    # resident bytes against the kernel's charge (memory.stat file of each cgroup)
    rows = []
    for c in (a, k):
        want = truth[c["cgroup"]]
        rows.append(f"  {c['container_id'][:12]:12} {c['image']:24} resident "
                    f"{c['resident_bytes']:>9} memory.stat file {want:>9} "
                    f"({c['resident_bytes'] - want:+d})")
        assert want > 1 << 20, (c, want)
        assert abs(c["resident_bytes"] - want) <= max(0.01 * want, 8 * lk.PAGE), (c, want)
    # no sharing here: fair = resident, nothing shared
    for c in (a, k):
        assert c["fair_bytes"] == c["resident_bytes"] and c["shared_bytes"] == 0, c
    # every listed regular file's resident bytes = mincore(2) through an mmap of it
    # (files[] also lists directories whose pages overlay's lookups brought in)
    off = [(f["path"], f["resident_bytes"], lk.mincore_pages(f["path"]) * lk.PAGE)
           for f in doc["files"] if f["path"].startswith(SNAPSHOTS)
           and os.path.isfile(f["path"]) and not os.path.islink(f["path"])]
    assert off and all(res == mc for _, res, mc in off), [x for x in off if x[1] != x[2]]

    # the same files in both app layers: each container's copy is a duplicate
    assert a["duplicate_bytes"] == k["duplicate_bytes"] == same_pages * lk.PAGE, (a, k)
    copies = {f["path"].split("/fs/", 1)[1]: f["copies"] for f in doc["files"]
              if f["path"].split("/fs/", 1)[-1] in SAME_FILES}
    assert copies == {p: 2 for p in SAME_FILES}, copies
    assert doc["totals"]["potential_savings_bytes"] >= same_pages * lk.PAGE, doc["totals"]

    # the image view: two images on one shared base layer
    view = {i["name"]: i for i in doc["images"]}
    assert set(view) == {IMAGE_A, IMAGE_B}, view.keys()
    for name, c in ((IMAGE_A, a), (IMAGE_B, k)):
        im = view[name]
        assert [x["digest"] for x in im["layers"]] == images[name]["layers"], im
        assert im["layers"][0]["shared_with"] == [IMAGE_B if name == IMAGE_A else IMAGE_A]
        assert im["containers"] == [c["cgroup_id"]] and im["digest"] == images[name]["manifest"]
        assert im["unique_bytes"] == layers[images[name]["layers"][1]]["resident_bytes"]

    REPORT.append("  images: " + "; ".join(
        f"{i['name']} resident {i['resident_bytes']} unique {i['unique_bytes']} duplicate "
        f"{i['duplicate_bytes']} potential savings {i['potential_savings_bytes']}"
        for i in doc["images"]) + f"; node potential savings {doc['totals']['potential_savings_bytes']}")

    # exporter families from this Model: image and layer labels, container_info names
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from erofs_top.model import Model
    from erofs_top.exporter.metrics import FamilyBuilder
    fams = FamilyBuilder().build(Model.from_dict(doc))
    reg = CollectorRegistry()
    reg.register(type("C", (), {"collect": lambda self: fams})())
    text = generate_latest(reg).decode()
    assert f'erofs_top_layer_images{{layer_digest="{base}"}} 2.0' in text
    assert f'erofs_top_image_containers{{image="{IMAGE_A}"}} 1.0' in text
    assert any(line.startswith("erofs_top_container_info{") and f'image="{IMAGE_B}"' in line
               and f'container_id="{KUBE_ID}"' in line for line in text.splitlines())

    # doctor: what containerd state it read
    r = erofs_top("doctor")
    assert "[ok  ] containerd metadata:" in r.stdout and "2 image(s)" in r.stdout, r.stdout
    assert f"layer {layers[base]['dev']}: snapshot {layers[base]['snapshot_id']}, layer {base}" \
        in r.stdout, r.stdout
    with contextlib.suppress(OSError):
        with open("/out/containerd-doctor.txt", "w") as f:
            f.write(r.stdout)

    # the app layers were read only by their own container
    assert layers[app_a]["holders"][0]["cgroup_id"] == a["cgroup_id"]
    assert layers[app_b]["holders"][0]["cgroup_id"] == k["cgroup_id"]
    REPORT.append("containerd (EROFS snapshotter): resident bytes per container vs memory.stat file")
    REPORT.extend(rows)
    REPORT.append("  timings: " + ", ".join(f"{n} {s:.1f} s" for n, s in timings.items()))


def _layer_files() -> tuple[list[str], list[str]]:
    """(regular files under every layer mount, the layer image files)."""
    files, images = [], []
    for n in sorted(os.listdir(SNAPSHOTS)):
        img = f"{SNAPSHOTS}/{n}/layer.erofs"
        if not os.path.exists(img):
            continue
        images.append(img)
        for d, _, names in os.walk(f"{SNAPSHOTS}/{n}/fs"):
            files += [p for p in (os.path.join(d, x) for x in names)
                      if os.path.isfile(p) and not os.path.islink(p)]
    return files, images


def _evict(paths: list[str]) -> None:
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def test_file_backed_layers_charge_their_image_file_pages_too(containerd):
    """With the layers' image files not cached, a container's first reads bring in
    both the EROFS pages and the layer.erofs pages under them, and memcg charges
    both to the container: memory.stat ``file`` = erofs-top's resident bytes of
    the container + the image-file pages (``backing_resident_bytes`` of the
    mounts).  Only the layer files are evicted (fadvise DONTNEED; pages mapped by
    the running containers stay), not the runc binary."""
    work = containerd["work"]
    files, layer_images = _layer_files()
    _evict(files + layer_images)
    backing0 = sum(lk.mincore_pages(p) for p in layer_images) * lk.PAGE
    read = ("dd if=/usr/bin/redis-check-aof of=/dev/null bs=1M 2>/dev/null; "
            "cat /usr/bin/redis-check-rdb > /dev/null; echo read-done; exec sleep 100000")
    ctr("run", "-d", "--snapshotter", "erofs", "--log-uri", f"file://{work}/c.log",
        IMAGE_A, "lab-c", "sh", "-c", read)
    for _ in range(600):
        with contextlib.suppress(OSError):
            if "read-done" in open(f"{work}/c.log").read():
                break
        time.sleep(0.1)
    else:
        pytest.fail("lab-c never finished reading")
    charged = _memcg_file("/default/lab-c")
    backing = sum(lk.mincore_pages(p) for p in layer_images) * lk.PAGE - backing0
    r = erofs_top("snapshot", "--json")
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    c = next(x for x in doc["containers"] if x["cgroup"] == "/default/lab-c")
    reported_backing = sum(m["backing_resident_bytes"] for m in doc["mounts"] if m["snapshot_id"])
    REPORT.append(f"containerd, layer image files not cached: lab-c memory.stat file {charged}, "
                  f"erofs-top resident {c['resident_bytes']} + image-file pages {backing} "
                  f"(mincore; erofs-top backing_resident_bytes {reported_backing}) = "
                  f"{c['resident_bytes'] + backing} ({c['resident_bytes'] + backing - charged:+d})")
    assert c["image"] == IMAGE_A and c["runtime"] == "containerd"
    assert backing >= 0.5 * c["resident_bytes"], (backing, c)
    assert abs(c["resident_bytes"] + backing - charged) <= 0.01 * charged, (charged, backing, c)
    assert abs(reported_backing - backing - backing0) <= 0.01 * (backing + backing0) + 8 * lk.PAGE
