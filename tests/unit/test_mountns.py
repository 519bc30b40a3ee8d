"""Mount tables of every mount namespace (resolve/mountns.py) and SysMounts over
them, on fixture /proc and /host trees.  The real thing (a pod-like namespace,
mounts made on the node after it started) is
tests/integration/test_mount_namespaces_root.py."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from erofs_top.readings import kdev
from erofs_top.resolve import mounts as mounts_mod
from erofs_top.resolve.mounts import SysMounts
from erofs_top.resolve.mountns import MountNamespaces

ROOTFS = "22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw\n"
LAYER = "R/snapshots/1/fs"       # R: containerd's erofs snapshotter root below


def _line(mid: int, dev: str, mp: str, src: str, opts: str = "ro") -> str:
    return f"{mid} 22 {dev} / {mp} ro,relatime - erofs {src} {opts}\n"


def _proc(tmp_path, pid: str, text: str, ns: str | None, cgroup: str = "0::/\n"):
    d = tmp_path / "proc" / pid
    (d / "ns").mkdir(parents=True, exist_ok=True)
    (d / "mountinfo").write_text(ROOTFS + text)
    (d / "cgroup").write_text(cgroup)
    if ns is not None:
        os.symlink(ns, d / "ns" / "mnt")
    return d


@pytest.fixture
def node(tmp_path):
    """A pod's view: its own table (the node's layer mount seen under /host), the
    node's through /host/proc/1, one process in a third namespace, and
    processes that share namespaces (by ns link, or by cgroup when the link is
    unreadable)."""
    if not shutil.which("mkfs.erofs"):
        pytest.skip("mkfs.erofs missing")
    host = tmp_path / "host"
    layer = host / "var/lib/containerd/snap/1"
    (layer / "fs").mkdir(parents=True)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"x" * 5000)
    subprocess.run(["mkfs.erofs", "--quiet", str(layer / "layer.erofs"), str(tmp_path / "src")],
                   check=True)
    mp, src = "/var/lib/containerd/snap/1/fs", "/var/lib/containerd/snap/1/layer.erofs"
    _proc(tmp_path, "self", _line(40, "0:40", "/host" + mp, "/host" + src), "mnt:[100]")
    _proc(tmp_path, "1", "", "mnt:[100]")                  # pid 1: our own (no host PID ns)
    _proc(host, "1", _line(30, "0:40", mp, src), None)     # the node's init
    _proc(host, "77", _line(31, "0:41", "/only/here", "/img/x.erofs"), None, "0::/pod-x\n")
    _proc(host, "78", _line(31, "0:41", "/only/here", "/img/x.erofs"), None, "0::/pod-x\n")
    _proc(host, "79", _line(30, "0:40", mp, src), None, "0::/system.slice\n")  # the node again
    return tmp_path, mp


def _opens_if_dir_exists(t, e):
    """Fake of mounts._opens (a unit test cannot mount): the mount point
    "opens from here" when the directory exists under the table's prefix."""
    return os.path.isdir(t.local(e.mountpoint))


def test_tables_host_first_then_self_then_other_namespaces(node):
    tmp, _ = node
    ns = MountNamespaces(proc_root=str(tmp / "proc"), host_root=str(tmp / "host"))
    tables = ns.tables()
    assert [t.label for t in tables] == ["host", "self", "host pid 77"]
    assert tables[0].prefix == str(tmp / "host") and tables[1].prefix == ""
    assert tables[2].prefix == f"{tmp}/host/proc/77/root"
    assert "unreadable" in ns.notes[0]
    # no /host: only our own namespace
    alone = MountNamespaces(proc_root=str(tmp / "proc"), host_root=str(tmp / "nohost"))
    assert [t.label for t in alone.tables()] == ["self"]


def test_node_mounts_named_as_on_the_node_and_opened_through_host(node, monkeypatch):
    tmp, mp = node
    monkeypatch.setattr(mounts_mod, "_opens", _opens_if_dir_exists)
    sm = SysMounts(namespaces=MountNamespaces(proc_root=str(tmp / "proc"),
                                              host_root=str(tmp / "host")),
                   sys_root=str(tmp / "sys"), dev_root=str(tmp / "dev"))
    by_dev = {m.dev: m for m in sm.mounts()}
    layer = by_dev[kdev(0, 40)]
    assert (layer.mountpoint, layer.mount_ns) == (mp, "host")
    assert layer.root_path == f"{tmp}/host{mp}"
    assert layer.backing_file == "/var/lib/containerd/snap/1/layer.erofs"      # the node's name
    assert layer.image_path == f"{tmp}/host/var/lib/containerd/snap/1/layer.erofs"
    assert layer.image is not None                      # superblock read through /host
    other = by_dev[kdev(0, 41)]
    assert (other.mountpoint, other.mount_ns) == ("/only/here", "host pid 77")
    assert other.image is None and any("not visible" in n for n in sm.notes[kdev(0, 41)])
    assert sm.refresh() == ([], [])                     # nothing changed


def test_explicit_mountinfo_path_reads_only_that_file(node):
    tmp, _ = node
    sm = SysMounts(str(tmp / "proc" / "self" / "mountinfo"), sys_root=str(tmp / "sys"))
    [m] = sm.mounts()
    assert m.mountpoint.startswith("/host/") and m.mount_ns == "" and m.ns_prefix == ""


def test_readable_namespace_links_are_not_compared_by_text(tmp_path, monkeypatch):
    """A process whose namespace link is readable is told apart by the link
    alone: its table is listed without reading it in the scan (one readlink
    per process, no text read and hashed per namespace), even when its text
    is the same as another's; a process in a namespace seen already adds none."""
    from erofs_top.resolve import mountns
    _proc(tmp_path, "self", "", "mnt:[100]")
    _proc(tmp_path, "1", "", "mnt:[100]")
    _proc(tmp_path, "50", _line(31, "0:41", "/a", "/img/a.erofs"), "mnt:[200]")
    _proc(tmp_path, "51", _line(31, "0:41", "/a", "/img/a.erofs"), "mnt:[200]")
    _proc(tmp_path, "60", _line(31, "0:41", "/a", "/img/a.erofs"), "mnt:[300]")
    read = []
    real = mountns._text_key
    monkeypatch.setattr(mountns, "_text_key", lambda path: read.append(path) or real(path))
    ns = MountNamespaces(proc_root=str(tmp_path / "proc"), host_root=str(tmp_path / "nohost"))
    assert [t.label for t in ns.tables()] == ["self", "pid 50", "pid 60"]
    assert read == [str(tmp_path / "proc" / "self" / "mountinfo")]
    assert ns.notes == []
