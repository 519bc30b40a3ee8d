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
the kernel's own charge: the layer files' pages whose memory cgroup
(/proc/kpagecgroup) is the container's, page by page, plus at most the layer
directories' cached pages, and never exceed memory.stat ``file`` of its cgroup
(which also holds the container's other file cache).  The layer image files (``layer.erofs``) are
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
            _stop_containers()
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
        pytest.fail(f"two versions of redis-tools in {DATA} needed (lab build data), got {vers}")
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


def _memcg_file(cgroup: str, key: str = "file") -> int:
    return lk.memcg_stat(f"/sys/fs/cgroup{cgroup}", key)


def erofs_top(*args: str) -> subprocess.CompletedProcess:
    code = ("import sys; from erofs_top.cli import main; "
            "sys.argv = ['erofs-top', *sys.argv[1:]]; main()")
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=900)


def _run_two_containers(containerd) -> tuple[dict, int]:
    """Run lab-a and the kubelet-style container under `erofs-top once --json`:
    its document and the pages of SAME_FILES (the same bytes in both app layers)."""
    work, timings = containerd["work"], containerd["timings"]
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
    return doc, same_pages


def _check_names(a: dict, k: dict, doc: dict, images: dict) -> dict[str, dict]:
    """Containers, pods and layer mounts named from containerd's metadata: the layer
    mounts by digest."""
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
    return layers


def _check_resident_against_kernel(a: dict, k: dict, doc: dict, truth: dict) -> list[str]:
    # resident bytes against the kernel's charge, page by page: the layer files'
    # resident pages whose memory cgroup (kpagecgroup) is the container's.
    # memory.stat ``file`` also holds the container's non-EROFS file cache (seen:
    # 12-35 pages some runs, none in others), so it bounds from above.
    rows = []
    layer_files, _ = _layer_files()
    dir_bytes = sum(lk.cachestat_pages(d) for d in _layer_dirs()) * lk.PAGE
    for c in (a, k):
        want = truth[c["cgroup"]]
        owned = lk.memcg_owned_pages(layer_files, f"/sys/fs/cgroup{c['cgroup']}") * lk.PAGE
        res = c["resident_bytes"]
        rows.append(f"  {c['container_id'][:12]:12} {c['image']:24} resident {res:>9} "
                    f"layer-file pages charged to it (kpagecgroup) {owned:>9} ({res - owned:+d}; "
                    f"layer directories cached {dir_bytes}); memory.stat file {want:>9} "
                    f"(other file cache {want - res:+d})")
        assert owned > 1 << 20, (c, owned)
        # regular files exactly (a page of slack for a page evicted in between),
        # directories' pages at most those cached on the layer mounts
        assert owned - lk.PAGE <= res <= owned + dir_bytes + lk.PAGE, (c, owned, dir_bytes)
        stats = lk.memcg_stats(f"/sys/fs/cgroup{c['cgroup']}")
        other = {k: stats[k] for k in ("shmem", "file_mapped", "file_dirty")}
        assert res <= want + lk.PAGE, (c, want, other)
    # no sharing here: fair = resident, nothing shared
    for c in (a, k):
        assert c["fair_bytes"] == c["resident_bytes"] and c["shared_bytes"] == 0, c
    # every listed regular file's resident bytes = mincore(2) through an mmap of it
    # (files[] also lists directories whose pages overlay's lookups brought in)
    off = [(f["path"], f["resident_bytes"], lk.mincore_pages(f["path"]) * lk.PAGE)
           for f in doc["files"] if f["path"].startswith(SNAPSHOTS)
           and os.path.isfile(f["path"]) and not os.path.islink(f["path"])]
    assert off and all(res == mc for _, res, mc in off), [x for x in off if x[1] != x[2]]
    return rows


def _check_duplicates_and_images(a: dict, k: dict, doc: dict, images: dict, layers: dict,
                                 same_pages: int) -> None:
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


def _check_exporter_and_doctor(doc: dict, images: dict, layers: dict) -> None:
    base = images[IMAGE_A]["layers"][0]
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


def test_containerd_containers_and_layers_named(containerd):
    images = containerd["images"]
    doc, same_pages = _run_two_containers(containerd)
    cg_a, cg_k = "/default/lab-a", f"/kubepods/besteffort/pod{POD_UID}/{KUBE_ID}"
    truth = {cg_a: _memcg_file(cg_a), cg_k: _memcg_file(cg_k)}
    by_cg = {c["cgroup"]: c for c in doc["containers"]}
    a, k = by_cg.get(cg_a), by_cg.get(cg_k)
    assert a is not None and k is not None, [c["cgroup"] for c in doc["containers"]]
    layers = _check_names(a, k, doc, images)
    rows = _check_resident_against_kernel(a, k, doc, truth)
    _check_duplicates_and_images(a, k, doc, images, layers, same_pages)
    _check_exporter_and_doctor(doc, images, layers)
    app_a, app_b = images[IMAGE_A]["layers"][1], images[IMAGE_B]["layers"][1]
    # the app layers were read only by their own container
    assert layers[app_a]["holders"][0]["cgroup_id"] == a["cgroup_id"]
    assert layers[app_b]["holders"][0]["cgroup_id"] == k["cgroup_id"]
    REPORT.append("containerd (EROFS snapshotter): resident bytes per container vs memory.stat file")
    REPORT.extend(rows)
    REPORT.append("  timings: " + ", ".join(f"{n} {s:.1f} s" for n, s in containerd["timings"].items()))


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


def _layer_dirs() -> list[str]:
    """Every directory under every layer mount (their pages are page cache too)."""
    dirs = []
    for n in sorted(os.listdir(SNAPSHOTS)):
        if os.path.exists(f"{SNAPSHOTS}/{n}/layer.erofs"):
            dirs += [d for d, _, _ in os.walk(f"{SNAPSHOTS}/{n}/fs")]
    return dirs


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
    pages0 = {p: lk.mincore_pages(p) for p in layer_images}
    backing0 = sum(pages0.values()) * lk.PAGE
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
    pages1 = {p: lk.mincore_pages(p) for p in layer_images}
    backing = sum(pages1.values()) * lk.PAGE - backing0
    # erofs-top sees the image files of mounted layers only: run alone (-k),
    # image B's layers are not mounted and their pages stay out of its sum
    mounted = [p for p, mp in _layer_mounts().items() if os.path.ismount(mp) and p in pages1]
    mounted_now = sum(pages1[p] for p in mounted) * lk.PAGE
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
    assert abs(reported_backing - mounted_now) <= 0.01 * mounted_now + 8 * lk.PAGE, \
        (reported_backing, mounted_now, backing + backing0)


# ---------------------------------------------------------------- item 5: inode_share
# The libraries both app layers carry (oci.APP_LIBS): the same bytes in two layers.
SHARE_READ = ("for f in {libs}; do dd if=$f of=/dev/null bs=1M 2>/dev/null; done; "
              "dd if=/usr/bin/redis-check-aof of=/dev/null bs=1M 2>/dev/null; "
              "echo read-done; exec sleep 100000")


def _stop_containers(keep: tuple[str, ...] = ()) -> None:
    """Every task killed and deleted, every container removed (images stay),
    but those in keep."""
    for cid in ctr("task", "ls", "-q", check=False).stdout.split():
        if cid not in keep:
            ctr("task", "kill", "-s", "KILL", cid, check=False)
    for cid in ctr("containers", "ls", "-q", check=False).stdout.split():
        if cid in keep:
            continue
        for _ in range(100):
            if ctr("task", "rm", "-f", cid, check=False).returncode == 0 or \
                    cid not in ctr("task", "ls", "-q", check=False).stdout.split():
                break
            time.sleep(0.1)
        ctr("containers", "rm", cid, check=False)


def _layer_mounts() -> dict[str, str]:
    """layer.erofs -> its fs/ mount point, for every committed layer."""
    return {f"{SNAPSHOTS}/{n}/layer.erofs": f"{SNAPSHOTS}/{n}/fs"
            for n in sorted(os.listdir(SNAPSHOTS)) if os.path.exists(f"{SNAPSHOTS}/{n}/layer.erofs")}


def _mount(src: str, mp: str, opts: str, busy_ok: bool = False) -> None:
    """src mounted on mp with opts, replacing what is there (unless it is busy
    and busy_ok: a running container's layer stays)."""
    if os.path.ismount(mp):
        r = subprocess.run(["umount", mp], capture_output=True, text=True)
        if r.returncode != 0:
            if busy_ok:
                return
            raise RuntimeError(f"umount {mp}: {r.stderr.strip()}")
    subprocess.run(["mount", "-t", "erofs", "-o", opts, src, mp], check=True)


def _run_pair(work: str, tag: str) -> dict[str, int]:
    """Container <tag>a (image A) then <tag>b (image B) read the same libraries
    and their own redis-check-aof, with every layer file cold (page cache of
    the layer mounts and of the layer.erofs files dropped): memory.stat file of
    each container's cgroup."""
    files, layer_images = _layer_files()
    os.sync()       # fresh from an import, layer.erofs pages can be dirty: DONTNEED keeps those
    _evict(files + layer_images)
    read = SHARE_READ.format(libs=" ".join(oci_app_libs()))
    out = {}
    for image, cid in ((IMAGE_A, f"{tag}a"), (IMAGE_B, f"{tag}b")):
        ctr("run", "-d", "--snapshotter", "erofs", "--log-uri", f"file://{work}/{cid}.log",
            image, cid, "sh", "-c", read)
        for _ in range(900):
            with contextlib.suppress(OSError):
                if "read-done" in open(f"{work}/{cid}.log").read():
                    break
            time.sleep(0.1)
        else:
            pytest.fail(f"{cid} never finished reading")
        out[cid] = _memcg_file(f"/default/{cid}")
    return out


def oci_app_libs() -> tuple[str, ...]:
    from . import oci
    return oci.APP_LIBS


def test_inode_share_on_containerd_layers_saves_what_erofs_top_predicted(containerd, collector):
    """Item 5.  containerd 2.1 mounts layers ``ro`` only but reuses an EROFS mount
    already on ``snapshots/<N>/fs``.  Phase N: the layers mounted as containerd
    mounts them, two containers (one per image version) read the libraries
    both app layers carry; erofs-top predicts the saving (``potential_savings``)
    and ``advise`` names the commands.  Phase S: the layers re-mounted with
    advise's commands (``inode_share,domain_id=``), the same two containers:
    the real saving is the drop of their memory.stat ``file``; erofs-top's
    predicted saving is within 5 % of it, its realized saving
    (``sharing_saved_bytes``) within 1 %."""
    work = containerd["work"]
    t0 = time.monotonic()
    _stop_containers()
    for src, mp in _layer_mounts().items():     # fresh superblocks: nothing cached
        _mount(src, mp, "ro")
    charged_n = _run_pair(work, "n")
    model_n = collector.refresh()
    r = erofs_top("advise", "--json", "--no-bpf", "--duration", "0")
    assert r.returncode == 0, r.stderr[-2000:]
    top = json.loads(r.stdout)["actions"][0]
    text = erofs_top("advise", "--no-bpf", "--duration", "0").stdout
    with contextlib.suppress(OSError):
        with open("/out/containerd-advise.txt", "w") as f:
            f.write(text)
    _stop_containers()
    # the operator's procedure: containers of these layers stopped, advise's commands
    assert top["kind"] == "inode_share", top
    # the two app layers (one image each; the base layer is both images'): the
    # copy that keeps the pages saves nothing itself but must share too
    app_mps = {m.mountpoint for m in model_n.mounts if m.snapshot_id and len(m.images) == 1}
    assert set(top["mounts"]) == app_mps and len(app_mps) == 2, (top, app_mps)
    for cmd in top["commands"]:
        argv = cmd.replace("<domain>", "lab-redis").split()
        assert argv[:4] == ["mount", "-t", "erofs", "-o"], cmd
        _mount(argv[5], argv[6], argv[4])
    charged_s = _run_pair(work, "s")
    model_s = collector.refresh()
    _stop_containers()
    for src, mp in _layer_mounts().items():     # back to what containerd made
        _mount(src, mp, "ro")

    real = sum(charged_n.values()) - sum(charged_s.values())
    predicted, realized = model_n.totals.potential_savings_bytes, model_s.totals.sharing_saved_bytes
    lib_bytes = sum(lk.pages(os.path.getsize(p)) for p in oci_app_libs()) * lk.PAGE
    REPORT.append(
        f"containerd + inode_share ({time.monotonic() - t0:.0f} s): charged stock {charged_n}, "
        f"shared {charged_s}; real saving {real} B ({real / lk.MiB:.2f} MiB, libraries "
        f"{lib_bytes}), predicted {predicted} ({predicted - real:+d}), advise {top['saves_bytes']}, "
        f"realized {realized} ({realized - real:+d})")
    assert real >= 0.9 * lib_bytes, (real, lib_bytes)
    assert charged_s["sb"] < 0.5 * charged_n["nb"], (charged_n, charged_s)
    assert abs(predicted - real) <= 0.05 * real, (predicted, real)
    assert abs(top["saves_bytes"] - real) <= 0.05 * real, (top["saves_bytes"], real)
    assert abs(realized - real) <= 0.01 * real, (realized, real)
    sa, sb = model_s.container("/default/sa"), model_s.container("/default/sb")
    assert sa.image == IMAGE_A and sb.image == IMAGE_B, (sa, sb)
    assert sb.shared_bytes >= 0.9 * lib_bytes, sb


# ---------------------------------------------------------------- item 6: exporter container
EXPORTER_IMAGE = "docker.io/library/erofs-top:0.1.0"
# ctr's default process capabilities (containerd oci.populateDefaultUnixSpec), all dropped
CTR_DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
                    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
                    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
# exporters/deploy/daemonset.yaml
DAEMONSET_CAPS = ("CAP_BPF", "CAP_PERFMON", "CAP_SYS_RESOURCE", "CAP_SYS_ADMIN",
                  "CAP_DAC_READ_SEARCH")
DAEMONSET_MOUNTS = ("type=bind,src=/,dst=/host,options=rbind:ro:rslave",
                    "type=bind,src=/sys/fs/cgroup,dst=/sys/fs/cgroup,options=rbind:ro",
                    "type=bind,src=/sys/kernel/tracing,dst=/sys/kernel/tracing,options=rbind:ro",
                    "type=bind,src=/sys/kernel/debug,dst=/sys/kernel/debug,options=rbind:ro",
                    "type=bind,src=/lib/modules,dst=/lib/modules,options=rbind:ro",
                    "type=bind,src=/usr/src,dst=/usr/src,options=rbind:ro",
                    "type=tmpfs,src=tmpfs,dst=/tmp,options=nosuid:nodev:size=65536k")
POD_UID_X = "1a2b3c4d-5e6f-7081-92a3-b4c5d6e7f809"
KUBE_ID_X = "7bc0f2a9e8d7c6b5a4938271605f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3"


def _loopback_up() -> None:
    """The guest has no iproute2: IFF_UP on lo through SIOCGIFFLAGS/SIOCSIFFLAGS."""
    import fcntl
    import socket
    import struct
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0))[:18])[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))


def _http(url: str, timeout: float = 5) -> tuple[int, str]:
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""
    except OSError as e:
        return 0, str(e)


def _wait(what: str, fn, timeout_s: float):
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        got = fn()
        if got:
            return got
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


def _prom_series(base: str, query: str) -> dict[tuple, float]:
    """job + the labels but job/instance -> value, for an instant query."""
    import urllib.parse
    code, body = _http(f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": query}))
    assert code == 200, body
    out = {}
    for r in json.loads(body)["data"]["result"]:
        labels = dict(r["metric"])
        job = labels.pop("job")
        labels.pop("instance", None)
        labels.pop("__name__", None)
        out[(job, tuple(sorted(labels.items())))] = float(r["value"][1])
    return out


def _by_job(series: dict[tuple, float]) -> dict[str, dict[tuple, float]]:
    out: dict[str, dict[tuple, float]] = {}
    for (job, labels), v in series.items():
        out.setdefault(job, {})[labels] = v
    return out


COMPARED = ("erofs_top_container_resident_bytes", "erofs_top_container_duplicate_bytes",
            "erofs_top_layer_resident_bytes", "erofs_top_image_resident_bytes",
            "erofs_top_mount_backing_resident_bytes")


def _agree(base: str, workload_cgroups: list[str]) -> tuple[bool, dict]:
    """Both jobs have every compared series of the workload, within 1 %."""
    report = {}
    for metric in COMPARED:
        jobs = _by_job(_prom_series(base, metric))
        c, h = jobs.get("container", {}), jobs.get("host", {})
        if metric.startswith("erofs_top_container"):
            c = {k: v for k, v in c.items() if dict(k).get("id") in workload_cgroups}
            h = {k: v for k, v in h.items() if dict(k).get("id") in workload_cgroups}
            if len(c) != len(workload_cgroups):
                return False, {metric: (c, h)}
        elif metric == "erofs_top_mount_backing_resident_bytes":
            # the exporter's own image layers are read by the exporter meanwhile
            c = {k: v for k, v in c.items() if "/snapshots/" in str(k)} or c
        if set(c) != set(h) or not c:
            return False, {metric: (c, h)}
        for k, v in c.items():
            if abs(v - h[k]) > max(0.01 * h[k], 2 * lk.PAGE):
                return False, {metric: (k, v, h[k])}
        report[metric] = c
    return True, report


def _build_exporter_image(work: str) -> dict:
    """scripts/build-image.py streamed into `ctr image import`: the lab's disk holds
    the content blob and its EROFS layer, not a third copy in an archive."""
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    build = subprocess.Popen([sys.executable, f"{repo}/scripts/build-image.py", "--rootfs", "/",
                              "--out", "-"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=dict(os.environ, TMPDIR=work))
    imp = subprocess.run(["ctr", "image", "import", "--snapshotter", "erofs", "-"],
                         stdin=build.stdout, capture_output=True, text=True, timeout=900)
    build.stdout.close()
    err = build.stderr.read().decode()
    assert build.wait() == 0, err[-3000:]
    assert imp.returncode == 0, imp.stderr[-3000:]
    return json.loads(err[err.index("{"):])


def _run_exporter_container(work: str) -> None:
    """The DaemonSet's capabilities and volumes, a read-only root, host network; then
    its own PID and mount namespaces, and only CAP_DAC_READ_SEARCH left after attach."""
    args = ["run", "-d", "--snapshotter", "erofs", "--read-only", "--net-host",
            "--log-uri", f"file://{work}/exporter.log",
            "--env", "EROFS_TOP_CONTAINERD_STATE=/host/run/containerd",
            "--env", "EROFS_TOP_CONTAINERD_ROOT=/host/var/lib/containerd"]
    for cap in CTR_DEFAULT_CAPS:
        args += ["--cap-drop", cap]
    for cap in DAEMONSET_CAPS:
        args += ["--cap-add", cap]
    for m in DAEMONSET_MOUNTS:
        args += ["--mount", m]
    ctr(*args, EXPORTER_IMAGE, "lab-exporter", "/usr/local/bin/erofs-top", "exporter",
        "--listen=127.0.0.1:9655", "--interval=2", "--kube-names=off")

    def healthy():
        if "lab-exporter" not in ctr("task", "ls", "-q", check=False).stdout.split():
            pytest.fail("exporter container exited: " + open(f"{work}/exporter.log").read()[-3000:])
        return _http("http://127.0.0.1:9655/healthz")[0] == 200
    _wait("the exporter container's /healthz", healthy, 400)
    pid = int(next(ln.split()[1] for ln in ctr("task", "ls").stdout.splitlines()[1:]
                   if ln.split()[0] == "lab-exporter"))
    assert os.readlink(f"/proc/{pid}/ns/pid") != os.readlink("/proc/self/ns/pid")
    assert os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
    root_opts = next(ln.split()[5] for ln in open(f"/proc/{pid}/mountinfo")
                     if ln.split()[4] == "/")
    assert root_opts.split(",")[0] == "ro", root_opts
    status = dict(ln.split(":", 1) for ln in open(f"/proc/{pid}/status") if ":" in ln)
    eff = int(status["CapEff"], 16)
    assert eff == 1 << 2, f"CapEff {eff:#x}: only CAP_DAC_READ_SEARCH kept after attach"


def _start_host_exporter_and_prometheus(collector, work: str, made: dict) -> str:
    """A host exporter (the same server over the session's collector) and a Prometheus
    scraping both; each is put in `made` as soon as it exists, for the clean-up."""
    from erofs_top.exporter.listen import bind
    from erofs_top.exporter.server import Exporter, serve
    made["server"] = server = bind("127.0.0.1", 9656)
    made["exp"] = exp = Exporter(collector, interval=2)
    assert exp.refresh_once()
    serve(server, exp)
    exp.start()
    cfg = f"{work}/prometheus.yml"
    with open(cfg, "w") as f:
        json.dump({"global": {"scrape_interval": "2s"}, "scrape_configs": [
            {"job_name": "container", "static_configs": [{"targets": ["127.0.0.1:9655"]}]},
            {"job_name": "host", "static_configs": [{"targets": ["127.0.0.1:9656"]}]}]}, f)
    made["prom"] = subprocess.Popen(["prometheus", f"--config.file={cfg}",
                                     f"--storage.tsdb.path={work}/prom",
                                     "--web.listen-address=127.0.0.1:9090"],
                                    stdout=open(f"{work}/prometheus.log", "w"),
                                    stderr=subprocess.STDOUT)
    base = "http://127.0.0.1:9090"
    _wait("prometheus ready", lambda: _http(f"{base}/-/ready")[0] == 200, 120)
    return base


def _read_in_two_new_containers(work: str) -> list[str]:
    """New layer superblocks, mounted only in the node's mount namespace now, and two
    containers that read: their cgroups."""
    for src, mp in _layer_mounts().items():
        _mount(src, mp, "ro", busy_ok=True)
    files, layer_images = _layer_files()
    os.sync()
    _evict(files + layer_images)
    read = SHARE_READ.format(libs=" ".join(oci_app_libs()))
    ctr("run", "-d", "--snapshotter", "erofs", "--log-uri", f"file://{work}/xa.log",
        IMAGE_A, "xa", "sh", "-c", read)
    ctr("run", "-d", "--snapshotter", "erofs", "--cgroup",
        f"/kubepods/besteffort/pod{POD_UID_X}/{KUBE_ID_X}", "--log-uri",
        f"file://{work}/xb.log", IMAGE_B, KUBE_ID_X, "sh", "-c", read)
    for log in ("xa", "xb"):
        _wait(f"{log} read", lambda: "read-done" in open(f"{work}/{log}.log").read(), 120)
    return ["/default/xa", f"/kubepods/besteffort/pod{POD_UID_X}/{KUBE_ID_X}"]


def _check_container_series(base: str, cgs: list[str], containerd) -> None:
    """Both exporters' series agree in Prometheus, and the container's carry the names."""
    timings = containerd["timings"]
    t1 = time.monotonic()
    last = {}

    def agree():
        ok, last["r"] = _agree(base, cgs)
        return ok
    try:
        _wait("both exporters' series to agree in Prometheus", agree, 60)
    except BaseException:
        pytest.fail(f"container vs host exporter: {last.get('r')}")
    timings["series agree"] = time.monotonic() - t1
    info = _by_job(_prom_series(base, "erofs_top_container_info"))["container"]
    named = {dict(k).get("id"): dict(k) for k in info}
    assert named[cgs[0]]["image"] == IMAGE_A and named[cgs[0]]["container_id"] == "xa"
    assert named[cgs[1]]["image"] == IMAGE_B and named[cgs[1]]["container_id"] == KUBE_ID_X
    assert named[cgs[1]]["pod_uid"] == POD_UID_X
    layers = _by_job(_prom_series(base, "erofs_top_layer_images"))["container"]
    assert {dict(k)["layer_digest"] for k in layers} >= set(containerd["images"][IMAGE_A]["layers"])
    # the exporter sees its own image too (its LLVM is EROFS page cache)
    images = _by_job(_prom_series(base, "erofs_top_image_resident_bytes"))["container"]
    assert any(dict(k).get("image") == EXPORTER_IMAGE for k in images), images


def _stop_host_side(made: dict) -> None:
    if made.get("prom") is not None:
        made["prom"].terminate()
        made["prom"].wait(timeout=30)
    if made.get("exp") is not None:
        made["exp"].stop()
    if made.get("server") is not None:
        made["server"].shutdown()
        made["server"].server_close()


def test_exporter_container_under_prometheus_matches_a_host_exporter(containerd, collector):
    """Item 6.  The exporter's image built from the guest's Debian packages
    (scripts/build-image.py, no registry), imported into containerd, run with the
    DaemonSet's capabilities, volumes (node / at /host with rslave propagation),
    a read-only root filesystem and no host PID namespace (host network: the lab
    has no CNI).  The node's / is made rshared first, as systemd does.  After it
    started, the layers are re-mounted (new superblocks, only in the node's
    mount namespace) and two containers read.  A real Prometheus scrapes it and
    a host exporter (the same code over the session's collector); their series
    agree within 1 %, and the container's carry image and container names."""
    work, timings = containerd["work"], containerd["timings"]
    t1 = time.monotonic()
    built = _build_exporter_image(work)
    timings["build + import exporter image"] = time.monotonic() - t1
    _loopback_up()
    subprocess.run(["mount", "--make-rshared", "/"], check=True)
    _stop_containers()
    made: dict = {}
    try:
        t1 = time.monotonic()
        _run_exporter_container(work)
        timings["exporter container up (BCC compile)"] = time.monotonic() - t1
        base = _start_host_exporter_and_prometheus(collector, work, made)
        cgs = _read_in_two_new_containers(work)
        _check_container_series(base, cgs, containerd)
        with contextlib.suppress(OSError):
            _, text = _http("http://127.0.0.1:9655/metrics")
            with open("/out/containerd-exporter-metrics.txt", "w") as f:
                f.write(text)
        REPORT.append(f"exporter container: image {built['bytes'] / lk.MiB:.0f} MiB "
                      f"({built['packages']} Debian packages); " + ", ".join(
                          f"{n} {s:.1f} s" for n, s in timings.items()
                          if "exporter" in n or n == "series agree"))
    finally:
        _stop_host_side(made)
        _stop_containers()
        subprocess.run(["mount", "--make-rprivate", "/"], check=False)
