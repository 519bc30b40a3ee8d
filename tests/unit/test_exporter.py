"""Exporter: metric families and labels from fixture Models, cardinality,
counter monotonicity, health, HTTP endpoints, listen parsing, capabilities."""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from erofs_top.model import (TIER_SNAPSHOT, TIER_TRACEPOINT, Container, File, Health, MapUsage,
                             Model, Mount, Totals)
from erofs_top.exporter import privileges
from erofs_top.exporter.cli import exporter_command
from erofs_top.exporter.metrics import (CONTAINER_LABELS, FAMILIES, OTHER_ID, PREFIX, UNRESOLVED_ID,
                                 FamilyBuilder, ModelMetrics, MonotonicCounters)
from erofs_top.exporter.podnames import KubeletLogNames
from erofs_top.exporter.listen import ListenError, bind, parse_listen
from erofs_top.exporter.server import Exporter, serve

from fixture_sources import ScriptedProbeSource, fixture_collector

REPO = Path(__file__).resolve().parents[2]
MiB = 1 << 20


def make_model(n_containers=2, n_mounts=2, tier=TIER_TRACEPOINT, **kw) -> Model:
    containers = [Container(cgroup_id=1000 + i, cgroup=f"/kubepods/pod{i}/ctr{i}",
                            runtime="containerd", container_id=f"{i:064x}", pod_uid=f"uid-{i}",
                            resident_bytes=(i + 1) * MiB, duplicate_bytes=i * 4096,
                            shared_bytes=0, fair_bytes=(i + 1) * MiB, inserted_bytes=(i + 2) * MiB,
                            evicted_bytes=MiB, readahead_bytes=i * 8192, read_folio_count=i,
                            files_count=3, mounts=[f"0:{40 + j}" for j in range(n_mounts)])
                  for i in range(n_containers)]
    mounts = [Mount(dev=f"0:{40 + j}", mountpoint=f"/var/lib/ctr/m{j}", source=f"/img/app{j}.erofs",
                    backing="file", backing_file=f"/img/app{j}.erofs", image_id=f"img{j}",
                    uuid=f"uuid{j}", volume_name=f"app{j}", inode_share=(j == 0),
                    resident_bytes=2 * MiB, duplicate_bytes=MiB, backing_resident_bytes=MiB,
                    containers_count=n_containers)
              for j in range(n_mounts)]
    files = [File(dev="0:40", ino=42, path="/var/lib/ctr/m0/usr/lib/libsecret.so",
                  content_id="c0ffee", size=MiB, resident_bytes=MiB, duplicate_bytes=0, copies=1,
                  cgroups=[1000])]
    health = Health(maps=[MapUsage("chunks", 10, 65536, 0)], probes_attached=tier != TIER_SNAPSHOT,
                    bpf_run_time_ns={"add": 2_000_000_000}, bpf_run_count={"add": 7})
    m = Model(tier=tier, started_at=1.0, ended_at=2.0, page_size=4096, containers=containers,
              mounts=mounts, files=files, health=health, kernel="6.18.0",
              totals=Totals(resident_bytes=sum(c.resident_bytes for c in containers),
                            inserted_bytes=5 * MiB, evicted_bytes=MiB))
    for k, v in kw.items():
        setattr(m, k, v)
    return m


def scrape(builder: FamilyBuilder, model: Model) -> dict:
    """Build, encode, parse: {family name: [(sample name, labels, value)]}."""
    col = ModelMetrics()
    col.publish(builder.build(model))
    reg = CollectorRegistry(auto_describe=False)
    reg.register(col)
    text = generate_latest(reg).decode()
    out = {}
    for fam in text_string_to_metric_families(text):
        out[fam.name] = [(s.name, s.labels, s.value) for s in fam.samples]
    return out


def value(fams, sample_name, **labels):
    for fam in fams.values():
        for name, lab, v in fam:
            if name == sample_name and all(lab.get(k) == w for k, w in labels.items()):
                return v
    raise KeyError(sample_name, labels)


# ---------------------------------------------------------------- families
def test_families_names_and_labels():
    fams = scrape(FamilyBuilder(), make_model())
    spec = {f.name: f for f in FAMILIES}
    spec.update({f.exposed: f for f in FAMILIES if f.kind == "info"})   # text format: a gauge
    for name, samples in fams.items():
        assert name in spec, f"undeclared family {name}"
        assert name.startswith(PREFIX)
        for sample, labels, _ in samples:
            if spec[name].kind != "info":
                assert set(labels) == set(spec[name].labels), (sample, labels)
    c = dict(id="/kubepods/pod1/ctr1")
    assert value(fams, "erofs_top_container_resident_bytes", **c) == 2 * MiB
    assert value(fams, "erofs_top_container_duplicate_bytes", **c) == 4096
    assert value(fams, "erofs_top_container_fair_share_bytes", **c) == 2 * MiB
    assert value(fams, "erofs_top_container_inserted_bytes_total", **c) == 3 * MiB
    assert value(fams, "erofs_top_container_read_folio_misses_total", **c) == 1
    assert value(fams, "erofs_top_container_info", id="/kubepods/pod1/ctr1",
                 runtime="containerd", pod_uid="uid-1") == 1
    assert value(fams, "erofs_top_mount_resident_bytes", dev="0:40", image_id="img0") == 2 * MiB
    assert value(fams, "erofs_top_mount_info", dev="0:40", inode_share="true") == 1
    assert value(fams, "erofs_top_mount_info", dev="0:41", inode_share="false") == 1
    assert value(fams, "erofs_top_node_resident_bytes") == 3 * MiB
    assert value(fams, "erofs_top_node_inserted_bytes_total") == 5 * MiB
    assert value(fams, "erofs_top_bpf_program_run_seconds_total", program="add") == 2.0
    assert value(fams, "erofs_top_bpf_program_runs_total", program="add") == 7
    assert value(fams, "erofs_top_bpf_map_capacity_entries", map="chunks") == 65536
    assert value(fams, "erofs_top_build_info", tier="tracepoint", kernel="6.18.0") == 1
    assert value(fams, "erofs_top_probes_attached") == 1


def test_one_quantity_per_family_and_base_units():
    for f in FAMILIES:
        if f.kind == "counter":
            assert not f.name.endswith("_total"), "the _total suffix is added at exposition"
        if "bytes" in f.name:
            assert f.name.endswith("_bytes"), f.name
        assert not re.search(r"_(kib|mib|gib|ms|milliseconds|pages)\b", f.name), f.name


def test_no_path_inode_pid_or_fingerprint_in_labels():
    model = make_model()
    fams = scrape(FamilyBuilder(), model)
    forbidden = {m.mountpoint for m in model.mounts} | {m.backing_file for m in model.mounts} \
        | {f.path for f in model.files} | {"42", "c0ffee"}
    for samples in fams.values():
        for _, labels, _ in samples:
            for k, v in labels.items():
                assert v not in forbidden, (k, v)
                assert k not in ("path", "file", "ino", "inode", "pid", "fingerprint", "mountpoint")


def test_snapshot_tier_has_no_event_counters():
    fams = scrape(FamilyBuilder(), make_model(tier=TIER_SNAPSHOT))
    assert "erofs_top_container_inserted_bytes" not in fams
    assert "erofs_top_node_inserted_bytes" not in fams
    assert "erofs_top_lost_events" not in fams
    assert value(fams, "erofs_top_container_resident_bytes", id="/kubepods/pod0/ctr0") == MiB


def test_vanished_container_drops_its_series():
    b = FamilyBuilder()
    m = make_model(3)
    assert value(scrape(b, m), "erofs_top_container_resident_bytes", id="/kubepods/pod2/ctr2")
    m.containers = m.containers[:2]
    fams = scrape(b, m)
    ids = {lab["id"] for _, lab, _ in fams["erofs_top_container_resident_bytes"]}
    assert ids == {"/kubepods/pod0/ctr0", "/kubepods/pod1/ctr1"}
    ids = {lab["id"] for _, lab, _ in fams["erofs_top_container_inserted_bytes"]}
    assert "/kubepods/pod2/ctr2" not in ids


def test_unresolved_cgroups_summed_into_one_series():
    m = make_model(4)
    for c in m.containers[2:]:
        c.cgroup = UNRESOLVED_ID
    fams = scrape(FamilyBuilder(), m)
    assert value(fams, "erofs_top_container_resident_bytes", id="?") == 3 * MiB + 4 * MiB
    assert value(fams, "erofs_top_container_inserted_bytes_total", id="?") == 4 * MiB + 5 * MiB
    assert len(fams["erofs_top_container_resident_bytes"]) == 3


# ---------------------------------------------------------------- cardinality
@pytest.mark.parametrize("n,cap", [(10, 2000), (300, 100)])
def test_cardinality_bounded(n, cap):
    m = make_model(n, 20)
    fams = scrape(FamilyBuilder(max_containers=cap), m)
    per_container = [f for f in FAMILIES if f.labels[:4] == CONTAINER_LABELS]
    exported = min(n, cap) + (1 if n > cap else 0)
    for f in per_container:
        assert len(fams[f.exposed if f.kind == "info" else f.name]) <= exported, f.name
    assert len(fams["erofs_top_mount_resident_bytes"]) == 20
    total = sum(len(s) for s in fams.values())
    assert total <= len(per_container) * exported + 5 * 20 + 40
    if n > cap:
        assert value(fams, "erofs_top_exporter_containers_aggregated") == n - cap
        # the largest ones keep their series; the sum still adds up
        got = sum(v for _, _, v in fams["erofs_top_container_resident_bytes"])
        assert got == sum(c.resident_bytes for c in m.containers)
        assert value(fams, "erofs_top_container_resident_bytes", id=OTHER_ID) > 0
        assert value(fams, "erofs_top_container_resident_bytes", id=f"/kubepods/pod{n - 1}/ctr{n - 1}")


# ---------------------------------------------------------------- monotonicity
def test_counter_survives_cgroup_recreated_with_same_path():
    b = FamilyBuilder()
    m = make_model(1)
    c = m.containers[0]
    c.inserted_bytes = 10 * MiB
    assert value(scrape(b, m), "erofs_top_container_inserted_bytes_total", id=c.cgroup) == 10 * MiB
    # the container restarts: same cgroup path, new cgroup id, counters from 0
    c.cgroup_id, c.inserted_bytes = 5555, 1 * MiB
    assert value(scrape(b, m), "erofs_top_container_inserted_bytes_total", id=c.cgroup) == 11 * MiB


def test_counter_when_cgroup_id_is_reused_by_another_path():
    b = FamilyBuilder()
    m = make_model(1)
    c = m.containers[0]
    c.inserted_bytes = 10 * MiB
    scrape(b, m)
    # id 1000 now names another cgroup; the aggregator kept its counters: only growth is new
    old = c.cgroup
    c.cgroup, c.inserted_bytes = "/other/ctr", 12 * MiB
    fams = scrape(b, m)
    assert value(fams, "erofs_top_container_inserted_bytes_total", id="/other/ctr") == 2 * MiB
    # and when the old path comes back with a new id it continues from 10 MiB
    m.containers.append(Container(cgroup_id=7777, cgroup=old, inserted_bytes=MiB))
    fams = scrape(b, m)
    assert value(fams, "erofs_top_container_inserted_bytes_total", id=old) == 11 * MiB


def test_node_counter_never_decreases_on_source_reset():
    b = FamilyBuilder()
    m = make_model(1)
    m.totals.inserted_bytes = 100
    scrape(b, m)
    m.totals.inserted_bytes = 30           # e.g. the aggregator restarted its run
    assert value(scrape(b, m), "erofs_top_node_inserted_bytes_total") == 130


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.tuples(st.integers(0, 5),              # cgroup id
                                   st.sampled_from(["/a", "/b", "/c", "?"]),
                                   st.integers(0, 1000)),            # raw inserted bytes
                         max_size=6), min_size=1, max_size=12))
def test_counters_never_go_backwards(rounds):
    b = FamilyBuilder(max_containers=2)
    seen: dict[str, float] = {}
    for rnd in rounds:
        by_id = {}
        for cid, path, raw in rnd:          # one row per cgroup id per Model
            by_id[cid] = (path, raw)
        m = make_model(0)
        m.containers = [Container(cgroup_id=cid, cgroup=p, inserted_bytes=raw, resident_bytes=raw)
                        for cid, (p, raw) in by_id.items()]
        fams = scrape(b, m)
        for _, lab, v in fams.get("erofs_top_container_inserted_bytes", []):
            assert v >= seen.get(lab["id"], 0), (lab, v, seen)
            seen[lab["id"]] = v


def test_monotonic_counters_state_is_bounded():
    mc = MonotonicCounters(1, keep=50)
    for i in range(1000):
        mc.add(("s", i), i, (i,))
    assert len(mc._sources) == 50 and len(mc._totals) == 50


# ---------------------------------------------------------------- pod names
def test_kubelet_log_names(tmp_path):
    pods, ctrs = tmp_path / "pods", tmp_path / "containers"
    uid = "0b0f6e3c-1111-2222-3333-444455556666"
    cid = "ab" * 32
    (pods / f"shop_web-7d9f_{uid}" / "nginx").mkdir(parents=True)
    ctrs.mkdir()
    (ctrs / f"web-7d9f_shop_nginx-{cid}.log").symlink_to(pods / "x")
    names = KubeletLogNames(str(pods), str(ctrs))
    c = Container(cgroup_id=1, cgroup="/kubepods.slice/x", pod_uid=uid.replace("-", "_"),
                  container_id=cid)
    names.refresh()
    assert names.lookup(c) == ("shop", "web-7d9f", "nginx")
    b = FamilyBuilder(names)
    m = make_model(0)
    m.containers = [c]
    fams = scrape(b, m)
    assert value(fams, "erofs_top_container_resident_bytes", namespace="shop", pod="web-7d9f",
                 container="nginx", id="/kubepods.slice/x") == 0
    # a pod that appears later is found on the next refresh
    uid2 = "99999999-1111-2222-3333-444455556666"
    c2 = Container(cgroup_id=2, cgroup="/kubepods.slice/y", pod_uid=uid2)
    assert names.lookup(c2) == ("", "", "")
    (pods / f"db_pg-0_{uid2}").mkdir()
    names.refresh()
    assert names.lookup(c2) == ("db", "pg-0", "")


# ---------------------------------------------------------------- health + HTTP
def test_health_states():
    probe = ScriptedProbeSource()
    src = fixture_collector(probe)
    ex = Exporter(src, interval=1.0, stale_after=3, log=lambda m: None)
    ok, why = ex.health()
    assert not ok and "no successful refresh" in why
    assert ex.refresh_once()
    assert ex.health()[0]
    probe.attached = False
    assert ex.refresh_once()
    ok, why = ex.health()
    assert not ok and "probes detached" in why
    probe.attached = True
    ex.refresh_once()
    ex.status.last_refresh_timestamp -= 10
    probe.fail = True
    assert not ex.refresh_once()
    ok, why = ex.health()
    assert not ok and "stale" in why and "map read failed" in why and "\n" not in why
    assert ex.status.refresh_failures == 1
    # the snapshot tier has no probes to detach
    snap = Exporter(fixture_collector(ScriptedProbeSource(tier=TIER_SNAPSHOT)), interval=1.0,
                    log=lambda m: None)
    snap.refresh_once()
    assert snap.health()[0]


def _get(url):
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_http_endpoints():
    probe = ScriptedProbeSource()
    src = fixture_collector(probe)
    ex = Exporter(src, interval=0.2, log=lambda m: None)
    server = bind("127.0.0.1", 0)
    port = server.server_address[1]
    try:
        ex.refresh_once()
        serve(server, ex)
        ex.start()
        code, text = _get(f"http://127.0.0.1:{port}/metrics")
        assert code == 200 and "erofs_top_container_resident_bytes{" in text
        code, text = _get(f"http://127.0.0.1:{port}/healthz")
        assert code == 200 and text.startswith("ok")
        assert _get(f"http://127.0.0.1:{port}/nope")[0] == 404
        probe.attached = False
        deadline = time.time() + 10
        while "erofs_top_probes_attached 0.0" not in (text := _get(f"http://127.0.0.1:{port}/metrics")[1]):
            assert time.time() < deadline, "the refresh thread never published the new Model"
            time.sleep(0.1)
        code, why = _get(f"http://127.0.0.1:{port}/healthz")
        assert code == 503 and "probes detached" in why
        assert re.search(r"erofs_top_exporter_scrape_duration_seconds [0-9.e-]+", text)
    finally:
        ex.stop()
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("text,expect", [
    (":9655", ("0.0.0.0", 9655)), ("127.0.0.1:1234", ("127.0.0.1", 1234)),
    ("[::1]:80", ("::1", 80)), ("localhost", ("localhost", 9655)), ("[::]", ("::", 9655))])
def test_parse_listen(text, expect):
    assert parse_listen(text, 9655) == expect


@pytest.mark.parametrize("text", ["1.2.3.4:0", "1.2.3.4:70000", "::1:80", "[::1", "host:abc",
                                  "no-such-host.invalid:80"])
def test_parse_listen_bad(text):
    with pytest.raises(ListenError):
        parse_listen(text, 9655)


def test_cli_bad_listen_is_one_line():
    r = CliRunner().invoke(exporter_command, ["--listen", "1.2.3.4:99999"])
    assert r.exit_code == 2
    assert r.output.count("\n") == 1 and "bad listen port" in r.output


def test_cli_port_in_use_is_one_line():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    port = s.getsockname()[1]
    try:
        r = CliRunner().invoke(exporter_command, ["--listen", f"127.0.0.1:{port}"])
    finally:
        s.close()
    assert r.exit_code == 1
    assert r.output.count("\n") == 1 and "Address already in use" in r.output


def test_cli_bad_cap_name():
    r = CliRunner().invoke(exporter_command, ["--keep-caps", "sys_admin,cap_nope"])
    assert r.exit_code == 2 and "unknown capability 'cap_nope'" in r.output


# ---------------------------------------------------------------- capabilities
def test_parse_caps():
    assert privileges.parse_caps("CAP_DAC_READ_SEARCH, sys_admin,") == ("dac_read_search", "sys_admin")
    assert privileges.parse_caps("") == ()


def test_drop_capabilities_in_child():
    code = ("import json; from erofs_top.exporter import privileges; "
            "kept = privileges.drop_capabilities(('dac_read_search',)); "
            "print(json.dumps([kept, privileges.current_caps()]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    kept, now = json.loads(out)
    allowed = 1 << privileges.CAPS["dac_read_search"]
    assert now["CapEff"] & ~allowed == 0 and now["CapPrm"] & ~allowed == 0
    assert now["CapAmb"] == 0 and now["CapInh"] == 0
    if os.geteuid() == 0:
        assert kept == ["dac_read_search"]
        assert now["CapBnd"] == allowed


def test_drop_capabilities_refuses_with_threads():
    code = ("import threading, time; from erofs_top.exporter import privileges\n"
            "threading.Thread(target=time.sleep, args=(2,), daemon=True).start()\n"
            "try:\n    privileges.drop_capabilities(())\nexcept privileges.CapsError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True).stdout
    assert "2 threads running" in out


# ---------------------------------------------------------------- docs
def test_every_family_documented():
    doc = (REPO / "docs" / "metrics.md").read_text()
    for f in FAMILIES:
        assert f"`{f.exposed}`" in doc, f"{f.exposed} missing from docs/metrics.md"


def test_idle_empty_container_drops_series_and_resumes():
    """A removed cgroup the Model still names (nothing resident, no I/O) goes after
    IDLE_REFRESHES builds; when it shows activity again its counter continues."""
    from erofs_top.exporter.metrics import IDLE_REFRESHES
    b = FamilyBuilder()
    m = make_model(2)
    gone = m.containers[1]
    gone.inserted_bytes = 8 * MiB
    scrape(b, m)
    for attr in ("resident_bytes", "duplicate_bytes", "fair_bytes", "files_count"):
        setattr(gone, attr, 0)
    for _ in range(IDLE_REFRESHES - 1):     # the 1st build after the change counts 1
        assert value(scrape(b, m), "erofs_top_container_inserted_bytes_total", id=gone.cgroup) == 8 * MiB
    fams = scrape(b, m)
    assert gone.cgroup not in {lab["id"] for _, lab, _ in fams["erofs_top_container_resident_bytes"]}
    assert gone.cgroup not in {lab["id"] for _, lab, _ in fams["erofs_top_container_inserted_bytes"]}
    gone.inserted_bytes = 9 * MiB
    assert value(scrape(b, m), "erofs_top_container_inserted_bytes_total", id=gone.cgroup) == 9 * MiB


def test_metrics_encoded_once_per_model_and_format():
    import gzip
    probe = ScriptedProbeSource()
    ex = Exporter(fixture_collector(probe), interval=3600, log=lambda m: None)
    ex.refresh_once()
    calls = []
    real = ex.registry.collect

    def counting_collect():
        calls.append(1)
        return real()
    ex.registry.collect = counting_collect

    def call(accept="", encoding=""):
        got = {}
        body = b"".join(ex({"PATH_INFO": "/metrics", "HTTP_ACCEPT": accept,
                            "HTTP_ACCEPT_ENCODING": encoding},
                           lambda status, headers: got.update(status=status, headers=dict(headers))))
        return got, body
    h1, b1 = call()
    h2, b2 = call()
    assert b1 == b2 and len(calls) == 1 and h1["status"] == "200 OK"
    assert h1["headers"]["Content-Type"].startswith("text/plain; version=0.0.4")
    h3, b3 = call("application/openmetrics-text;version=1.0.0", "gzip")
    assert h3["headers"]["Content-Encoding"] == "gzip" and len(calls) == 2
    text = gzip.decompress(b3).decode()
    assert text.endswith("# EOF\n") and "erofs_top_container_resident_bytes{" in text
    probe.containers = 3
    ex.refresh_once()        # a new Model: the refresh thread encodes both formats asked before
    assert len(calls) == 4 and len(ex._cache) == 2
    _, b4 = call()
    h5, b5 = call("application/openmetrics-text;version=1.0.0", "gzip")
    assert len(calls) == 4, "a scrape after a refresh must not encode"
    assert b"/kubepods/pod2/ctr2" in b4 and b"/kubepods/pod2/ctr2" not in b1
    assert b"/kubepods/pod2/ctr2" in gzip.decompress(b5)


def test_default_keep_by_tier_and_kernel():
    assert privileges.default_keep("tracepoint", (6, 18)) == ("dac_read_search",)
    assert privileges.default_keep("full", (7, 0)) == ("dac_read_search",)
    assert privileges.default_keep("tracepoint", (6, 1)) == ("dac_read_search", "bpf")
    assert privileges.default_keep("tracepoint", (5, 4)) == ("dac_read_search", "sys_admin")
    assert "sys_admin" in privileges.default_keep("snapshot", (6, 18))


def test_cli_no_permission_is_one_line():
    """A privileged port as an unprivileged user: one line, exit 1, before any BPF."""
    if int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text()) <= 80:
        pytest.skip("this host lets unprivileged users bind port 80")
    cmd = [sys.executable, "-m", "erofs_top.cli", "exporter", "--listen", "127.0.0.1:80"]
    if os.geteuid() == 0:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
               "--bounding-set=-all", *cmd]
    r = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1, r
    assert r.stderr.count("\n") == 1 and "permission denied" in r.stderr, r.stderr


def test_bpf_stats_only_when_counted():
    m = make_model()
    m.health.bpf_run_time_ns = {"add": 0, "delete": 0}      # kernel.bpf_stats_enabled=0
    m.health.bpf_run_count = {"add": 0, "delete": 0}
    fams = scrape(FamilyBuilder(), m)
    assert "erofs_top_bpf_program_runs" not in fams and "erofs_top_bpf_program_run_seconds" not in fams
    m.health.bpf_run_count = {"add": 3, "delete": 0}
    m.health.bpf_run_time_ns = {"add": 1500, "delete": 0}
    fams = scrape(FamilyBuilder(), m)
    assert value(fams, "erofs_top_bpf_program_runs_total", program="delete") == 0
    assert value(fams, "erofs_top_bpf_program_run_seconds_total", program="add") == 1.5e-6
