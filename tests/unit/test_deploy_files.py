"""Deployment files: DaemonSet, ServiceMonitor, systemd unit, rules, dashboard.

YAML/JSON parse plus structural checks; promtool checks the rules when it is
installed (Debian's prometheus package), systemd-analyze the unit."""
from __future__ import annotations

import configparser
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from erofs_top.exporter import DEFAULT_PORT
from erofs_top.exporter.metrics import FAMILIES

REPO = Path(__file__).resolve().parents[2]
EXP = REPO / "exporters"
KNOWN = {f.exposed for f in FAMILIES} | {f.name for f in FAMILIES}
# capabilities the exporter needs to start, and the one it keeps (docs/exporter.md)
START_CAPS = {"BPF", "PERFMON", "SYS_RESOURCE", "SYS_ADMIN", "DAC_READ_SEARCH"}


def _docs():
    return list(yaml.safe_load_all((EXP / "deploy" / "daemonset.yaml").read_text()))


def _kind(kind):
    return [d for d in _docs() if d and d.get("kind") == kind]


def _metric_names(text: str) -> set[str]:
    return set(re.findall(r"\b(erofs_top_[a-z0-9_]+)", text))


def test_daemonset_structure():
    (ds,) = _kind("DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    (ctr,) = spec["containers"]
    assert spec["automountServiceAccountToken"] is False
    assert not spec.get("hostNetwork") and not spec.get("hostPID")
    assert {"operator": "Exists"} in spec["tolerations"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    # downward API node name
    env = {e["name"]: e for e in ctr["env"]}
    assert env["NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
    # port and scrape annotations agree with the default port
    assert ctr["ports"][0]["containerPort"] == DEFAULT_PORT
    ann = ds["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == str(DEFAULT_PORT)
    assert f"--listen=:{DEFAULT_PORT}" in ctr["args"] and ctr["args"][0] == "exporter"
    assert ctr["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert ctr["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert ctr["livenessProbe"]["initialDelaySeconds"] >= 30      # BCC compiles at start


def test_daemonset_security_context():
    (ds,) = _kind("DaemonSet")
    (ctr,) = ds["spec"]["template"]["spec"]["containers"]
    sc = ctr["securityContext"]
    assert sc["privileged"] is False and sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert set(sc["capabilities"]["add"]) == START_CAPS
    # a commented list: every added capability says why on its line
    text = (EXP / "deploy" / "daemonset.yaml").read_text()
    for cap in START_CAPS:
        line = next(ln for ln in text.splitlines() if re.match(rf"\s*- {cap}\b", ln))
        assert "#" in line and len(line.split("#", 1)[1].strip()) > 10, line


def test_daemonset_host_mounts_read_only():
    (ds,) = _kind("DaemonSet")
    spec = ds["spec"]["template"]["spec"]
    (ctr,) = spec["containers"]
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in ctr["volumeMounts"]}
    for path in ("/sys/fs/cgroup", "/sys/kernel/tracing", "/lib/modules", "/usr/src"):
        m = mounts[path]
        assert m.get("readOnly") is True, path
        assert vols[m["name"]]["hostPath"]["path"] == path
    host = mounts["/host"]
    assert host["readOnly"] and host["mountPropagation"] == "HostToContainer"
    assert vols[host["name"]]["hostPath"]["path"] == "/"
    # the only writable mount is a bounded in-memory /tmp
    writable = [p for p, m in mounts.items() if not m.get("readOnly")]
    assert writable == ["/tmp"]
    assert vols[mounts["/tmp"]["name"]]["emptyDir"]["medium"] == "Memory"


def _quantity_mib(q: str) -> float:
    units = {"Ki": 1 / 1024, "Mi": 1, "Gi": 1024}
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", q)
    assert m, q
    return int(m[1]) * units[m[2]]


def test_daemonset_resources_fit_bcc_compile():
    (ds,) = _kind("DaemonSet")
    (ctr,) = ds["spec"]["template"]["spec"]["containers"]
    res = ctr["resources"]
    # measured 180-230 MiB peak RSS while BCC compiles (docs/performance.md): headroom 2x
    assert _quantity_mib(res["limits"]["memory"]) >= 460
    assert _quantity_mib(res["requests"]["memory"]) >= 230
    assert res["limits"]["cpu"] in ("1", 1, "1000m")


def test_service_and_servicemonitor_match():
    (ds,) = _kind("DaemonSet")
    (svc,) = _kind("Service")
    labels = ds["spec"]["template"]["metadata"]["labels"]
    assert svc["spec"]["clusterIP"] == "None"
    assert svc["spec"]["selector"].items() <= labels.items()
    assert svc["spec"]["ports"][0]["port"] == DEFAULT_PORT
    sm = yaml.safe_load((EXP / "deploy" / "servicemonitor.yaml").read_text())
    assert sm["kind"] == "ServiceMonitor"
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    ep = sm["spec"]["endpoints"][0]
    assert ep["port"] == svc["spec"]["ports"][0]["name"] and ep["path"] == "/metrics"
    assert ep["honorLabels"] is True
    assert {"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"} in ep["relabelings"]


def test_systemd_unit():
    path = EXP / "deploy" / "erofs-top-exporter.service"
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(path.read_text())
    svc = cp["Service"]
    assert "exporter" in svc["ExecStart"] and f"--listen=:{DEFAULT_PORT}" in svc["ExecStart"]
    assert {c.removeprefix("CAP_") for c in svc["CapabilityBoundingSet"].split()} == START_CAPS
    assert svc["ProtectSystem"] == "strict" and svc["PrivateTmp"] == "yes"
    assert "ProtectKernelModules" not in svc      # would hide /lib/modules from BCC
    assert cp["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path):
    text = (EXP / "deploy" / "erofs-top-exporter.service").read_text()
    # verify everything but the binary path, which only exists once installed
    unit = tmp_path / "erofs-top-exporter.service"
    unit.write_text(re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", text, flags=re.M))
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True)
    problems = [ln for ln in (r.stdout + r.stderr).splitlines() if "erofs-top-exporter" in ln]
    assert not problems, problems


def _rules():
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((EXP / "rules").glob("*.yml"))}


def test_rules_structure():
    files = _rules()
    assert set(files) == {"erofs-top.rules.yml", "erofs-top.alerts.yml"}
    records, alerts = set(), set()
    for name, doc in files.items():
        for group in doc["groups"]:
            for rule in group["rules"]:
                assert ("record" in rule) != ("alert" in rule)
                (records if "record" in rule else alerts).add(rule.get("record") or rule["alert"])
                used = _metric_names(rule["expr"])
                unknown = {m for m in used if m not in KNOWN and m + "_total" not in KNOWN}
                assert not unknown, (rule, unknown)
                if "alert" in rule:
                    assert rule["annotations"]["summary"] and rule["labels"]["severity"]
    assert {"image:erofs_top_mount_duplicate_bytes:sum", "cluster:erofs_top_node_redundant_bytes:sum",
            "cluster:erofs_top_node_potential_savings_bytes:sum"} <= records
    assert {"ErofsTopExporterDown", "ErofsTopProbesDetached", "ErofsTopBpfMapFull"} <= alerts


@pytest.mark.skipif(not shutil.which("promtool"), reason="promtool not installed (apt-get install prometheus)")
def test_promtool_check_and_test_rules():
    files = [str(p) for p in sorted((EXP / "rules").glob("*.yml"))]
    r = subprocess.run(["promtool", "check", "rules", *files], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run(["promtool", "test", "rules", str(EXP / "rules" / "tests" / "erofs-top.test.yml")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_grafana_dashboard():
    dash = json.loads((EXP / "grafana" / "erofs-top.json").read_text())
    names = [v["name"] for v in dash["templating"]["list"]]
    assert names == ["datasource", "node", "namespace", "pod"]
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    titles = " | ".join(p["title"] for p in panels)
    for want in ("Node summary", "per pod", "Top images", "container_memory_cache", "Exporter health",
                 "insertions per pod"):
        assert want in titles, want
    exprs = [t["expr"] for p in panels for t in p.get("targets", [])]
    assert any("container_memory_cache" in e for e in exprs)
    for e in exprs:
        unknown = {m for m in _metric_names(e) if m not in KNOWN}
        assert not unknown, (e, unknown)
        if "erofs_top_" in e and "up{" not in e:
            assert "$node" in e, e           # every panel follows the node variable
    for p in panels:
        for t in p.get("targets", []):
            assert t["datasource"]["uid"] == "${datasource}"
