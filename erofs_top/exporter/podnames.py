"""Optional namespace/pod/container names for the container labels.

Cgroup paths carry only the pod UID and the container id, so the Model has no
pod or namespace names.  The kubelet, however, names its log directories
after them, on every node, without any API call:

    /var/log/pods/<namespace>_<pod>_<pod-uid>/<container>/0.log
    /var/log/containers/<pod>_<namespace>_<container>-<container-id>.log

``KubeletLogNames`` reads those two directories (read-only; the DaemonSet
mounts /var/log/pods and /var/log/containers) and fills ``namespace``, ``pod``
and ``container``.  Kubernetes names cannot contain "_", so the split is
unambiguous.  Without the directories every name stays "" (docs/exporter.md).
"""
from __future__ import annotations

import os
import re

from erofs_top.model import Container

_CONTAINER_LOG = re.compile(r"^(?P<pod>[^_]+)_(?P<ns>[^_]+)_(?P<ctr>.+)-(?P<id>[0-9a-f]{64})\.log$")


def _norm_uid(uid: str) -> str:
    # systemd cgroup driver spells the UID with "_" (kubepods-pod1234_5678.slice)
    return uid.replace("_", "-").lower()


class KubeletLogNames:
    def __init__(self, pods_dir: str = "/var/log/pods",
                 containers_dir: str = "/var/log/containers"):
        self.pods_dir = pods_dir
        self.containers_dir = containers_dir
        self._pods: dict[str, tuple[str, str]] = {}        # pod uid -> (namespace, pod)
        self._containers: dict[str, str] = {}               # container id -> container name
        self._stale = True

    def available(self) -> bool:
        return os.path.isdir(self.pods_dir)

    def refresh(self) -> None:
        # re-read lazily: only when a lookup missed since the last read
        if not self._stale:
            return
        self._stale = False
        pods: dict[str, tuple[str, str]] = {}
        try:
            for name in os.listdir(self.pods_dir):
                parts = name.split("_")
                if len(parts) == 3:
                    pods[_norm_uid(parts[2])] = (parts[0], parts[1])
        except OSError:
            pass
        containers: dict[str, str] = {}
        try:
            for name in os.listdir(self.containers_dir):
                m = _CONTAINER_LOG.match(name)
                if m:
                    containers[m["id"]] = m["ctr"]
        except OSError:
            pass
        self._pods, self._containers = pods, containers

    def lookup(self, c: Container) -> tuple[str, str, str]:
        if not c.pod_uid:
            return "", "", ""
        pod = self._pods.get(_norm_uid(c.pod_uid))
        container = self._containers.get(c.container_id.lower(), "") if c.container_id else ""
        if pod is None or (c.container_id and not container):
            self._stale = True          # a new pod or container: re-list next refresh
        namespace, pod_name = pod or ("", "")
        return namespace, pod_name, container
