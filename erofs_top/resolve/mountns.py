"""Which mount tables to read: erofs-top's own mount namespace, the host's, and
every other mount namespace on the node.

EROFS mounts live in the namespace that made them.  containerd mounts each layer
in the host namespace; a container holds only its overlay; a process can mount
an image in a namespace of its own.  erofs-top in a pod (exporters/deploy) runs
in its own mount namespace and sees the host's only through the DaemonSet's
``/host`` volume (host ``/``, HostToContainer propagation: mounts the host makes
later show up there too).

A ``MountTable`` is one namespace's mountinfo plus ``prefix``: where that
namespace's paths open from here.  The tables, in the order their names win when
one superblock is mounted in several namespaces:

  host   ``<host root>/proc/1/mountinfo`` (``EROFS_TOP_HOST_ROOT``, default
         ``/host``) when it is a namespace other than ours; prefix ``/host``
  pid 1  ``/proc/1/mountinfo`` when pid 1 is in another namespace (the host PID
         namespace is visible: a host-PID pod, or ``nsenter -m``); prefix
         ``/proc/1/root``
  self   ``/proc/self/mountinfo``; no prefix
  pid N  one process of every other mount namespace (from our /proc and the
         host's), prefix ``<proc>/N/root``: mounts that exist only there

Namespaces are told apart by ``/proc/PID/ns/mnt``.  Reading that link (and
opening ``/proc/PID/root``) needs ptrace access to the process: root with
CAP_SYS_PTRACE, or root over processes whose capabilities are a subset of
ours.  Where the link is unreadable, one process per cgroup stands for the
cgroup and its namespace is told apart by its mountinfo text (identical text:
the same mounts).  ``/proc/PID/mountinfo`` itself is readable without ptrace
access, so such mounts are still listed; their files are named only where
``/proc/PID/root`` opens.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from .. import names

HOST_ROOT_ENV = "EROFS_TOP_HOST_ROOT"
DEFAULT_HOST_ROOT = "/host"
SCAN_EVERY_S = 1.0          # at most this often other namespaces are looked for (a scan
                            # reads /proc: 14-27 us per process, docs/performance.md)


@dataclass(frozen=True)
class MountTable:
    label: str                  # "host", "pid 1", "self", "pid 1234"
    mountinfo_path: str
    prefix: str = ""            # prefix that opens this namespace's paths from here

    def local(self, path: str) -> str:
        return self.prefix + path if self.prefix else path


def _ns_link(proc: str, pid: str) -> str | None:
    try:
        return os.readlink(f"{proc}/{pid}/ns/mnt")
    except OSError:
        return None


def _text_key(path: str) -> str | None:
    try:
        return hashlib.sha256(names.encode(names.read_text(path))).hexdigest()
    except OSError:
        return None


def _pids(proc: str) -> list[str]:
    try:
        return sorted((p for p in os.listdir(proc) if p.isdigit()), key=int)
    except OSError:
        return []


class MountNamespaces:
    """The mount tables to read, re-scanned at most every ``scan_every_s``."""

    def __init__(self, proc_root: str = "/proc", host_root: str | None = None,
                 scan_every_s: float = SCAN_EVERY_S, clock=time.monotonic):
        self.proc_root = proc_root
        if host_root is None:
            host_root = os.environ.get(HOST_ROOT_ENV, DEFAULT_HOST_ROOT)
        self.host_root = host_root.rstrip("/")
        self.scan_every_s = scan_every_s
        self.clock = clock
        self._tables: list[MountTable] = []
        self._scanned_at: float | None = None
        self.notes: list[str] = []      # what could not be told apart (doctor)

    def tables(self) -> list[MountTable]:
        now = self.clock()
        if self._scanned_at is None or now - self._scanned_at >= self.scan_every_s \
                or not all(os.path.exists(t.mountinfo_path) for t in self._tables):
            self._tables = self._scan()
            self._scanned_at = now
        return list(self._tables)

    def _host_proc(self) -> str | None:
        if not self.host_root or self.host_root == "/":
            return None
        hp = f"{self.host_root}/proc"
        return hp if os.path.exists(f"{hp}/1/mountinfo") else None

    def _scan(self) -> list[MountTable]:
        proc = self.proc_root
        self_table = MountTable("self", f"{proc}/self/mountinfo")
        seen_ns = {_ns_link(proc, "self")}
        seen_text = {_text_key(self_table.mountinfo_path)}
        first: list[MountTable] = []
        others: list[MountTable] = []
        unknown = 0

        def new(p: str, pid: str, ns: str | None) -> bool:
            """Is pid (in /proc p; ``ns`` its namespace link, None: unreadable)
            in a mount namespace no table reads yet?  A readable link tells
            namespaces apart by itself: no table text is read here (mount
            ids differ between namespaces, so their texts never match
            anyway); only a process without one is compared by text."""
            nonlocal unknown
            if ns is not None:
                if ns in seen_ns:
                    return False
                seen_ns.add(ns)
                return True
            unknown += 1
            key = _text_key(f"{p}/{pid}/mountinfo")
            if key is None or key in seen_text:
                return False
            seen_text.add(key)
            return True

        host_proc = self._host_proc()
        if host_proc and new(host_proc, "1", _ns_link(host_proc, "1")):
            first.append(MountTable("host", f"{host_proc}/1/mountinfo", self.host_root))
        if new(proc, "1", _ns_link(proc, "1")):
            first.append(MountTable("pid 1", f"{proc}/1/mountinfo", f"{proc}/1/root"))
        procs = [proc] + ([host_proc] if host_proc else [])
        cgroups_seen: set[tuple[str, str]] = set()
        for p in procs:
            for pid in _pids(p):
                ns = _ns_link(p, pid)       # (read once: a readlink per process and scan)
                if ns is None:
                    # no ptrace access: one process per cgroup stands for its namespace
                    try:
                        cg = names.read_text(f"{p}/{pid}/cgroup")
                    except OSError:
                        continue
                    if (p, cg) in cgroups_seen:
                        continue
                    cgroups_seen.add((p, cg))
                if new(p, pid, ns):
                    label = f"pid {pid}" if p == proc else f"host pid {pid}"
                    others.append(MountTable(label, f"{p}/{pid}/mountinfo",
                                             f"{p}/{pid}/root"))
        self.notes = ([f"{unknown} process(es) whose mount namespace link is unreadable "
                       "(no ptrace access: CAP_SYS_PTRACE): told apart by cgroup and "
                       "mountinfo text"] if unknown else [])
        return first + [self_table] + others
