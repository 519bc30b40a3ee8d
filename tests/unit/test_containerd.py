"""containerd names from real on-disk state captured in the lab
(tests/unit/fixtures/containerd-2.1.9/README.md): bbolt reader, meta.db,
bundles, content store, layer UUIDs, and the whole naming step."""
from __future__ import annotations

import gzip
import json
import os
import shutil
import struct

import pytest

from erofs_top.resolve import bolt
from erofs_top.resolve.base import CgroupInfo, ImageInfo, MountInfo
from erofs_top.resolve.containerd import (ContainerdState, ContentStore, cgroup_of, layer_uuid,
                                          parse_meta, read_tasks, snapshot_id_of)
from erofs_top.resolve.kubelet import KubeletLogs
from erofs_top.resolve.names import RuntimeNames

FIX = os.path.join(os.path.dirname(__file__), "fixtures", "containerd-2.1.9")
K1 = "6ab9f1eb8f7d3388f4f9d586f66e99fd54080df2c446f0e58668b09c08a16dd0"
POD = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
BASE = "sha256:cbc3b3677e0f8a159ae1174bbfee0957cb55c9fba169f4273accb9827d9f9636"
APP1 = "sha256:0ca4f5447386d380ef86adb9d8face3a9395b6b1c0d1984e4f0cfb2e34d69b15"
APP2 = "sha256:5e54218bbd80bd3874b2cc195d00055637c03fb2c892bfcbdf155e4b485af529"
UUIDS = {"1": "506cd943-f079-5374-9a68-518e362a3824", "2": "3e169276-053a-5d93-825b-122b788ef609",
         "3": "4fb91e17-31fe-52c7-baa6-ab915590a776"}
SNAP = "/var/lib/containerd/io.containerd.snapshotter.v1.erofs/snapshots"


@pytest.fixture()
def tree(tmp_path):
    """The captured root and state dirs, meta.db decompressed."""
    root, state = tmp_path / "root", tmp_path / "state"
    shutil.copytree(f"{FIX}/root", root)
    shutil.copytree(f"{FIX}/state", state)
    gz = root / "io.containerd.metadata.v1.bolt" / "meta.db.gz"
    with gzip.open(gz) as f:
        (gz.parent / "meta.db").write_bytes(f.read())
    gz.unlink()
    return str(root), str(state)


def _meta_bytes() -> bytes:
    with gzip.open(f"{FIX}/root/io.containerd.metadata.v1.bolt/meta.db.gz") as f:
        return f.read()


# ---------------------------------------------------------------- bbolt
def test_bolt_reads_containerd_meta_db():
    txid, root = bolt.parse(_meta_bytes())
    assert txid > 0
    ns = root.bucket("v1", "default")
    assert ns is not None
    assert set(ns.buckets) >= {b"containers", b"images", b"content", b"snapshots"}
    c1 = ns.bucket("containers", "c1")
    assert c1.text("image") == "docker.io/lab/redis:1"
    assert c1.text("snapshotKey") == "c1"
    assert c1.bucket("runtime").text("name") == "io.containerd.runc.v2"
    # inline buckets (small ones live inside their parent's leaf) read too
    assert ns.bucket("images", "docker.io/lab/redis:2", "target").text("digest") == \
        "sha256:7ccbe887bd4be32c4539c4384448d3a8933e1f4e5855ed58f7857c886f911998"


def test_bolt_falls_back_to_the_older_meta_page_when_the_newest_is_damaged():
    data = bytearray(_meta_bytes())
    metas = bolt._metas(bytes(data))
    newest_txid, psize, _ = metas[0]
    # damage the newest meta page's checksum: the other (older) one must be used
    for off in (0, psize):
        txid = struct.unpack_from("<Q", data, off + 16 + 48)[0]
        if txid == newest_txid:
            data[off + 16 + 56] ^= 0xFF
    txid, root = bolt.parse(bytes(data))
    assert txid == newest_txid - 1
    assert root.bucket("v1") is not None


def test_bolt_refuses_what_is_not_a_bolt_file():
    with pytest.raises(bolt.BoltError):
        bolt.parse(b"\0" * 8192)
    with pytest.raises(bolt.BoltError):
        bolt.parse(b"not a database")


# ---------------------------------------------------------------- pure parts
def test_parse_meta_lists_containers_and_images():
    _, root = bolt.parse(_meta_bytes())
    containers, images = parse_meta(root)
    by_id = {c.id: c for c in containers}
    assert set(by_id) == {"c1", K1}
    assert by_id[K1].image == "docker.io/lab/redis:2" and by_id[K1].snapshotter == "erofs"
    assert {i.name: i.digest[:15] for i in images} == {
        "docker.io/lab/redis:1": "sha256:b2e4dcc0", "docker.io/lab/redis:2": "sha256:7ccbe887"}


def test_layer_uuid_is_what_the_erofs_differ_gives_the_superblock():
    assert layer_uuid(BASE) == UUIDS["1"]
    assert layer_uuid(APP1) == UUIDS["2"]
    assert layer_uuid(APP2) == UUIDS["3"]


def test_snapshot_id_from_the_mount_point():
    assert snapshot_id_of(f"{SNAP}/12/fs") == "12"
    assert snapshot_id_of("/host" + f"{SNAP}/3/fs") == "3"
    assert snapshot_id_of(f"{SNAP}/12/fs/sub") == ""
    assert snapshot_id_of("/mnt/x") == ""


@pytest.mark.parametrize("spec,path", [
    ("/default/c1", "/default/c1"),
    ("/kubepods/besteffort/pod1/abc", "/kubepods/besteffort/pod1/abc"),
    ("kubepods-besteffort-pod1_2.slice:cri-containerd:abc",
     "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1_2.slice/"
     "cri-containerd-abc.scope"),
    ("system.slice:docker:abc", "/system.slice/docker-abc.scope"),
    ("", ""),
])
def test_cgroup_of_oci_cgroups_path(spec, path):
    assert cgroup_of(spec) == path


def test_read_tasks_from_bundles(tree):
    tasks, err = read_tasks(tree[1])
    assert err == ""
    by_id = {t.id: t for t in tasks}
    assert by_id["c1"].cgroup == "/default/c1" and by_id["c1"].namespace == "default"
    assert by_id["c1"].pid == 275
    assert by_id[K1].cgroup == f"/kubepods/besteffort/pod{POD}/{K1}"


def test_manifest_layers_from_the_content_store(tree):
    store = ContentStore(tree[0], ("linux", "amd64"))
    assert store.layers("sha256:b2e4dcc0c6277f2750b1f84f538ef7d228dc024e4a58c9c2bc42e64b72a5b03f") \
        == (BASE, APP1)
    assert store.layers("sha256:" + "0" * 64) == ()


def test_index_picks_this_platform(tmp_path):
    import hashlib
    import json
    blobs = tmp_path / "io.containerd.content.v1.content" / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(doc):
        raw = json.dumps(doc).encode()
        h = hashlib.sha256(raw).hexdigest()
        (blobs / h).write_bytes(raw)
        return "sha256:" + h
    amd = put({"layers": [{"digest": "sha256:" + "a" * 64}]})
    arm = put({"layers": [{"digest": "sha256:" + "b" * 64}]})
    idx = put({"manifests": [
        {"digest": arm, "platform": {"os": "linux", "architecture": "arm64"}},
        {"digest": amd, "platform": {"os": "linux", "architecture": "amd64"}}]})
    assert ContentStore(str(tmp_path), ("linux", "amd64")).layers(idx) == ("sha256:" + "a" * 64,)
    assert ContentStore(str(tmp_path), ("linux", "arm64")).layers(idx) == ("sha256:" + "b" * 64,)


# ---------------------------------------------------------------- the resolver
def _state(tree) -> ContainerdState:
    s = ContainerdState(tree[0], tree[1], plat=("linux", "amd64"))
    s.refresh(force=True)
    return s


def test_names_for_ctr_cgroup_and_kubelet_style_cgroup(tree):
    s = _state(tree)
    n = s.names_for("/default/c1")
    assert (n.runtime, n.namespace, n.container_id, n.image, n.snapshot_key) == \
        ("containerd", "default", "c1", "docker.io/lab/redis:1", "c1")
    assert n.image_digest.startswith("sha256:b2e4dcc0")
    k = s.names_for(f"/kubepods/besteffort/pod{POD}/{K1}", K1)
    assert (k.container_id, k.image) == (K1, "docker.io/lab/redis:2")
    assert s.names_for("/acc/ctrA") is None
    assert s.names_for("/") is None


def test_ctr_layout_is_named_from_meta_db_without_the_bundle_dir(tree):
    shutil.rmtree(os.path.join(tree[1], "io.containerd.runtime.v2.task"))
    s = _state(tree)
    n = s.names_for("/default/c1")
    assert n is not None and n.image == "docker.io/lab/redis:1"
    assert s.names_for("/default/nope") is None          # not a container there
    assert s.names_for(f"/kubepods/besteffort/pod{POD}/{K1}", K1).namespace == "default"


def test_layers_by_superblock_uuid(tree):
    s = _state(tree)
    base = s.layer(UUIDS["1"])
    assert base.digest == BASE and base.images == ("docker.io/lab/redis:1", "docker.io/lab/redis:2")
    assert s.layer(UUIDS["3"]).images == ("docker.io/lab/redis:2",)
    assert s.layer("00000000-0000-0000-0000-000000000000") is None
    assert s.image_layers()["docker.io/lab/redis:2"] == (BASE, APP2)


def test_unreadable_meta_db_costs_only_its_names(tree):
    os.unlink(os.path.join(tree[0], "io.containerd.metadata.v1.bolt", "meta.db"))
    s = _state(tree)
    n = s.names_for("/default/c1")            # the bundle still says it is a container
    assert (n.namespace, n.container_id, n.image) == ("default", "c1", "")
    assert s.layer(UUIDS["1"]) is None
    checks = {c[0]: c for c in s.checks()}
    assert not checks["containerd metadata"][1]
    assert "image name" in checks["containerd metadata"][3]
    assert checks["containerd tasks"][1]


def test_no_containerd_here(tmp_path):
    s = ContainerdState(str(tmp_path / "nothing"), str(tmp_path / "run"))
    s.refresh(force=True)
    assert s.names_for("/default/c1") is None
    [(name, ok, detail, cost)] = s.checks()
    assert ok and "no containerd" in detail


def test_meta_db_is_read_again_only_when_it_changed(tree, monkeypatch):
    s = _state(tree)
    calls = []
    real = bolt.read
    monkeypatch.setattr(bolt, "read", lambda p: calls.append(p) or real(p))
    s.refresh(force=True)
    assert calls == []
    os.utime(os.path.join(tree[0], "io.containerd.metadata.v1.bolt", "meta.db"), (1, 1))
    s.refresh(force=True)
    assert len(calls) == 1


# ---------------------------------------------------------------- naming step
def _mount(snap: str, uuid: str) -> MountInfo:
    img = ImageInfo(uuid=uuid, volume_name="", feature_compat=0, feature_incompat=0,
                    block_size=4096, image_id="x", ishare_xattrs=True, compressed=False)
    return MountInfo(dev=snap and int(snap), dev_str=f"0:{snap}", mountpoint=f"{SNAP}/{snap}/fs",
                     source=f"{SNAP}/{snap}/layer.erofs", backing="file", image=img)


def test_runtime_names_fill_cgroups_and_mounts(tree, tmp_path):
    names = RuntimeNames(_state(tree), KubeletLogs(str(tmp_path / "p"), str(tmp_path / "c")))
    c = names.name_cgroup(CgroupInfo(5, "/default/c1"))
    assert (c.runtime, c.namespace, c.container_id, c.image) == \
        ("containerd", "default", "c1", "docker.io/lab/redis:1")
    k = names.name_cgroup(CgroupInfo(6, f"/kubepods/besteffort/pod{POD}/{K1}", "kubepods", K1, POD))
    assert (k.runtime, k.pod_uid, k.image) == ("containerd", POD, "docker.io/lab/redis:2")
    plain = names.name_cgroup(CgroupInfo(7, "/acc/ctrA"))
    assert plain == CgroupInfo(7, "/acc/ctrA")
    ms = [_mount(n, u) for n, u in UUIDS.items()] + [_mount("9", "")]
    names.name_mounts(ms)
    assert [(m.snapshot_id, m.layer_digest[:15], len(m.images)) for m in ms] == [
        ("1", BASE[:15], 2), ("2", APP1[:15], 1), ("3", APP2[:15], 1), ("9", "", 0)]


def test_kubelet_dirs_name_pods(tree, tmp_path):
    pods, ctrs = tmp_path / "pods", tmp_path / "containers"
    (pods / f"shop_web-7d9_{POD}" / "redis").mkdir(parents=True)
    ctrs.mkdir()
    (ctrs / f"web-7d9_shop_redis-{K1}.log").touch()
    names = RuntimeNames(_state(tree), KubeletLogs(str(pods), str(ctrs)))
    k = names.name_cgroup(CgroupInfo(6, f"/kubepods/besteffort/pod{POD}/{K1}", "kubepods", K1, POD))
    assert (k.pod_namespace, k.pod_name, k.container_name) == ("shop", "web-7d9", "redis")
    assert k.image == "docker.io/lab/redis:2"


# ---------------------------------------------------------------- image view, text, JSON
def _lab_model():
    """`erofs-top once --json` from tests/vm/test_containerd.py (files left out)."""
    import json

    from erofs_top.model import Model
    with open(f"{FIX}/once.json") as f:
        return Model.from_dict(json.load(f))


def test_image_view_stacks_layers_and_counts_a_shared_layer_in_each_image():
    from erofs_top.imageview import image_view
    m = _lab_model()
    view = {i.name: i for i in image_view(m.containers, m.mounts)}
    assert set(view) == {"docker.io/lab/redis:a", "docker.io/lab/redis:b"}
    a, b = view["docker.io/lab/redis:a"], view["docker.io/lab/redis:b"]
    mounts = {x.layer_digest: x for x in m.mounts}
    # bottom first: the shared base layer, then the app layer
    assert [x.digest for x in a.layers][0] == [x.digest for x in b.layers][0]
    base = a.layers[0]
    assert base.shared_with == ["docker.io/lab/redis:b"] and a.layers[1].shared_with == []
    assert a.resident_bytes == sum(mounts[x.digest].resident_bytes for x in a.layers)
    assert a.unique_bytes == a.resident_bytes - base.resident_bytes
    by_cg = {c.cgroup_id: c for c in m.containers}
    assert [by_cg[i].container_id for i in a.containers] == ["lab-a"]
    assert a.digest == by_cg[a.containers[0]].image_digest != ""
    assert len(b.containers) == 1 and by_cg[b.containers[0]].pod_uid == POD


def test_model_with_names_round_trips_through_json():
    import json

    from erofs_top.imageview import image_view
    from erofs_top.model import Model
    m = _lab_model()
    m.images = image_view(m.containers, m.mounts)
    again = Model.from_dict(json.loads(json.dumps(m.to_dict())))
    assert again == m
    assert again.images[0].layers[0].digest.startswith("sha256:")


def test_text_tables_show_runtime_names():
    from erofs_top.cli import render_text
    out = render_text(_lab_model(), files=0)
    assert "CONTAINER" in out and "IMAGE" in out and "LAYER" in out
    assert "default/lab-a" in out and "docker.io/lab/redis:a" in out
    assert "sha256:cbc3b3677e0f" in out


def test_exporter_labels_image_and_layer_never_a_file():
    from prometheus_client import generate_latest
    from prometheus_client.registry import CollectorRegistry

    from erofs_top.imageview import image_view
    from erofs_top.exporter.metrics import FamilyBuilder
    m = _lab_model()
    m.images = image_view(m.containers, m.mounts)
    fams = FamilyBuilder().build(m)

    class _C:
        def collect(self):
            return fams
    reg = CollectorRegistry()
    reg.register(_C())
    text = generate_latest(reg).decode()
    assert 'erofs_top_image_resident_bytes{image="docker.io/lab/redis:a"}' in text
    assert f'erofs_top_layer_images{{layer_digest="{BASE}"}} 2.0' in text
    info = [line for line in text.splitlines() if line.startswith("erofs_top_container_info{")
            and 'container_id="lab-a"' in line]
    assert info and 'image="docker.io/lab/redis:a"' in info[0] and \
        'runtime="containerd"' in info[0] and 'runtime_namespace="default"' in info[0]
    assert "/usr/bin/" not in text and "snapshots/1/fs" not in text


def test_tui_names_containers_and_layers():
    from erofs_top.tui.common import container_match_text, container_name
    from erofs_top.tui.images import match_text
    m = _lab_model()
    by_id = {c.container_id: c for c in m.containers if c.container_id}
    assert container_name(by_id["lab-a"]) == "default/lab-a"
    assert container_name(by_id[K1]) == f"default/{K1[:12]}"
    assert "docker.io/lab/redis:b" in container_match_text(None, by_id[K1])
    k = by_id[K1]
    k.pod_namespace, k.pod_name, k.container_name = "shop", "redis-7d9f", "redis"
    assert container_name(k) == "shop/redis-7d9f/redis"
    base = next(x for x in m.mounts if x.snapshot_id == "1")
    assert BASE in match_text(None, base) and "docker.io/lab/redis:a" in match_text(None, base)


def test_docker_on_containerd_keeps_its_runtime(tree, tmp_path):
    # dockerd runs its containers as containerd tasks in namespace "moby", cgroup
    # "system.slice:docker:<id>" (runc's systemd form)
    import json
    did = "d" * 64
    d = os.path.join(tree[1], "io.containerd.runtime.v2.task", "moby", did)
    os.makedirs(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump({"linux": {"cgroupsPath": f"system.slice:docker:{did}"}}, f)
    names = RuntimeNames(_state(tree), KubeletLogs(str(tmp_path / "p"), str(tmp_path / "c")))
    c = names.name_cgroup(CgroupInfo(8, f"/system.slice/docker-{did}.scope", "docker", did))
    assert (c.runtime, c.namespace, c.container_id) == ("docker", "moby", did)


def test_kubelet_dirs_are_listed_again_after_a_miss_at_most_every_2_s(tmp_path):
    now = [100.0]
    pods, ctrs = tmp_path / "pods", tmp_path / "containers"
    pods.mkdir()
    ctrs.mkdir()
    k = KubeletLogs(str(pods), str(ctrs), clock=lambda: now[0])
    assert k.lookup(POD, K1) == ("", "", "")
    (pods / f"shop_web_{POD}").mkdir()
    (ctrs / f"web_shop_redis-{K1}.log").touch()
    for _ in range(100):
        assert k.lookup(POD, K1) == ("", "", "")      # a miss: no re-list within 2 s
    now[0] += 2.5
    assert k.lookup(POD, K1) == ("shop", "web", "redis")


def test_a_miss_that_lasts_stops_re_listing_the_kubelet_dirs(tmp_path, monkeypatch):
    # a pod's sandbox (the pause container) never has a log: the dirs are
    # re-listed for it only within MISS_RELIST_S of its first miss
    now = [100.0]
    pods, ctrs = tmp_path / "pods", tmp_path / "containers"
    pods.mkdir()
    ctrs.mkdir()
    (pods / f"shop_web_{POD}").mkdir()
    k = KubeletLogs(str(pods), str(ctrs), clock=lambda: now[0])
    listed = []
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: listed.append(p) or real(p))
    sandbox = "f" * 64
    for _ in range(20):                         # 20 refreshes, 2.5 s apart: 50 s
        assert k.lookup(POD, sandbox) == ("shop", "web", "")
        now[0] += 2.5
    relists = len(listed)
    assert 2 * 10 <= relists <= 2 * 14          # two dirs a listing, for ~30 s only
    k.lookup(POD, sandbox)
    now[0] += 2.5
    k.lookup(POD, sandbox)
    assert len(listed) == relists
    (ctrs / f"web_shop_redis-{K1}.log").touch()   # a new container: listed again at once
    assert k.lookup(POD, K1) == ("shop", "web", "")
    now[0] += 2.5
    assert k.lookup(POD, K1) == ("shop", "web", "redis")


# ---------------------------------------------------------------- at node scale
def _bundle(tree, cid: str) -> str:
    return os.path.join(tree[1], "io.containerd.runtime.v2.task", "default", cid)


def _set_cgroup(tree, cid: str, path: str, mtime_ns: int) -> None:
    cfg = os.path.join(_bundle(tree, cid), "config.json")
    with open(cfg) as f:
        spec = json.load(f)
    spec["linux"]["cgroupsPath"] = path
    with open(cfg, "w") as f:
        json.dump(spec, f)
    os.utime(cfg, ns=(mtime_ns, mtime_ns))


def test_a_bundle_is_parsed_again_only_when_its_config_json_changes(tree, monkeypatch):
    kept: dict = {}
    first, _ = read_tasks(tree[1], kept)
    parsed = []
    real = json.load
    monkeypatch.setattr(json, "load", lambda f: parsed.append(f.name) or real(f))
    again, _ = read_tasks(tree[1], kept)
    assert parsed == [] and again == first
    # rewritten in place, the same size (c1 -> c2): its mtime tells
    _set_cgroup(tree, "c1", "/default/c2", 1_000_000_000)
    parsed.clear()
    by_id = {t.id: t for t in read_tasks(tree[1], kept)[0]}
    assert by_id["c1"].cgroup == "/default/c2" and len(parsed) == 1
    assert by_id[K1].cgroup == f"/kubepods/besteffort/pod{POD}/{K1}"
    # a bundle gone is forgotten
    shutil.rmtree(_bundle(tree, K1))
    assert [t.id for t in read_tasks(tree[1], kept)[0]] == ["c1"]
    assert [k[1] for k in kept] == ["c1"]


def test_a_bundle_read_while_it_is_written_is_read_again(tree):
    kept: dict = {}
    d = _bundle(tree, "c3")
    os.mkdir(d)
    with open(os.path.join(d, "config.json"), "w") as f:
        f.write('{"linux": {"cgroupsPath": "/default/c')        # half written
    tasks = {t.id: t for t in read_tasks(tree[1], kept)[0]}
    assert tasks["c3"].cgroup == "" and tasks["c3"].pid == 0
    shutil.copy(os.path.join(_bundle(tree, "c1"), "config.json"), os.path.join(d, "config.json"))
    _set_cgroup(tree, "c3", "/default/c3", 2_000_000_000)
    tasks = {t.id: t for t in read_tasks(tree[1], kept)[0]}
    assert tasks["c3"].cgroup == "/default/c3" and tasks["c3"].pid == 0
    with open(os.path.join(d, "init.pid"), "w") as f:        # the task started
        f.write("4242")
    assert {t.id: t for t in read_tasks(tree[1], kept)[0]}["c3"].pid == 4242


def test_names_follow_tasks_that_come_and_go(tree):
    s = _state(tree)
    assert s.names_for("/default/c9") is None
    d = _bundle(tree, "c9")
    shutil.copytree(_bundle(tree, "c1"), d)
    _set_cgroup(tree, "c9", "/default/c9", 3_000_000_000)
    s.refresh(force=True)
    n = s.names_for("/default/c9")
    assert n is not None and (n.namespace, n.container_id) == ("default", "c9")
    shutil.rmtree(d)
    s.refresh(force=True)
    assert s.names_for("/default/c9") is None
    assert s.names_for("/default/c1").container_id == "c1"
