"""cgroup path -> container identity, table driven."""
from __future__ import annotations

import pytest

from erofs_top.resolve.containers import Identity, identify

ID = "0123456789abcdef" * 4
UID = "1f2e3d4c-5b6a-4798-8a7b-6c5d4e3f2a1b"
UIDU = UID.replace("-", "_")

CASES = [
    ("/docker/" + ID, Identity("docker", ID, kind="container")),
    ("/system.slice/docker-" + ID + ".scope", Identity("docker", ID, kind="container")),
    (f"/system.slice/containerd.service/kubepods-burstable-pod{UIDU}.slice:cri-containerd:{ID}",
     Identity()),   # containerd's own sub-cgroup name form is not a scope: unknown
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UIDU}.slice/"
     f"cri-containerd-{ID}.scope", Identity("containerd", ID, UID, "burstable", "container")),
    (f"/kubepods.slice/kubepods-pod{UIDU}.slice/cri-containerd-{ID}.scope",
     Identity("containerd", ID, UID, "guaranteed", "container")),
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UIDU}.slice/"
     f"crio-{ID}.scope", Identity("cri-o", ID, UID, "besteffort", "container")),
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod{UIDU}.slice/"
     f"crio-conmon-{ID}.scope", Identity("cri-o", ID, UID, "besteffort", "conmon")),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UIDU}.slice/"
     f"docker-{ID}.scope", Identity("docker", ID, UID, "burstable", "container")),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{UIDU}.slice",
     Identity("kubepods", "", UID, "burstable", "pod")),
    (f"/kubepods/burstable/pod{UID}/{ID}", Identity("kubepods", ID, UID, "burstable", "container")),
    (f"/kubepods/pod{UID}/{ID}", Identity("kubepods", ID, UID, "guaranteed", "container")),
    (f"/kubepods/besteffort/pod{UID}", Identity("kubepods", "", UID, "besteffort", "pod")),
    (f"/machine.slice/libpod-{ID}.scope", Identity("podman", ID, kind="container")),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-conmon-{ID}.scope",
     Identity("podman", ID, kind="conmon")),
    ("/lxc.payload.web1", Identity("lxc", "web1", kind="container")),
    ("/lxc/web2/init.scope", Identity("lxc", "web2", kind="container")),
    ("/system.slice/nginx.service", Identity("systemd", "nginx.service", kind="unit")),
    ("/acc/ctrA", Identity()),
    ("/", Identity()),
    ("?", Identity()),
    ("", Identity()),
    ("/docker/notanid", Identity()),
    (f"/pod{UID}/{ID}", Identity()),            # pod dir not under kubepods/qos
    ("/system.slice/docker-" + ID[:-1] + ".scope", Identity("systemd",
     "docker-" + ID[:-1] + ".scope", kind="unit")),   # 63 hex: not a container id
]


@pytest.mark.parametrize("path,want", CASES, ids=[c[0][-40:] or "empty" for c in CASES])
def test_identify(path, want):
    assert identify(path) == want


def test_short_id():
    assert identify("/docker/" + ID).short_id == ID[:12]
