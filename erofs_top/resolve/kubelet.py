"""Kubernetes names (namespace, pod, container) from the kubelet's log directories.

Cgroup paths give only the pod UID and the container id; the kubelet names its
log directories after the names, on every node, without an API call:

    /var/log/pods/<namespace>_<pod>_<pod-uid>/<container>/0.log
    /var/log/containers/<pod>_<namespace>_<container>-<container-id>.log

Kubernetes names cannot contain "_", so the split is unambiguous.  Read-only;
re-listed lazily (only after a lookup missed, for MISS_RELIST_S after its
first miss).  Missing directories: "" names.
"""
from __future__ import annotations

import os
import re
import time

MISS_RELIST_S = 30.0        # a miss re-lists for this long (kubelet makes a log at start)
MAX_MISSED = 1 << 16
_CONTAINER_LOG = re.compile(r"^(?P<pod>[^_]+)_(?P<ns>[^_]+)_(?P<ctr>.+)-(?P<id>[0-9a-f]{64})\.log$")


def norm_uid(uid: str) -> str:
    # the systemd cgroup driver spells the UID with "_" (kubepods-pod1234_5678.slice)
    return uid.replace("_", "-").lower()


class KubeletLogs:
    def __init__(self, pods_dir: str = "/var/log/pods",
                 containers_dir: str = "/var/log/containers", *,
                 min_interval_s: float = 2.0, clock=time.monotonic):
        self.pods_dir = pods_dir
        self.containers_dir = containers_dir
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._listed_at: float | None = None
        self._pods: dict[str, tuple[str, str]] = {}        # pod uid -> (namespace, pod)
        self._containers: dict[str, str] = {}               # container id -> container name
        self._stale = True
        self._missed: dict[tuple[str, str], float] = {}    # (pod uid, id) -> first missed at

    def _missed_now(self, pod_uid: str, container_id: str) -> None:
        """A lookup missed: a new pod or container, re-listed next time, for
        MISS_RELIST_S after its first miss.  A miss that lasts longer has no
        log to find (a pod's sandbox: the pause container logs nothing), and
        re-listing for it at every refresh cost ~4 ms per 1,000 pods."""
        missed = self._missed
        if len(missed) >= MAX_MISSED:
            missed.clear()
        now = self.clock()
        if now - missed.setdefault((pod_uid, container_id), now) < MISS_RELIST_S:
            self._stale = True

    def available(self) -> bool:
        return os.path.isdir(self.pods_dir)

    def refresh(self, force: bool = False) -> None:
        """Re-list after a miss, at most every ``min_interval_s`` (``force``: now)."""
        now = self.clock()
        if not self._stale or (not force and self._listed_at is not None
                               and now - self._listed_at < self.min_interval_s):
            return
        self._stale = False
        self._listed_at = now
        pods: dict[str, tuple[str, str]] = {}
        try:
            for name in os.listdir(self.pods_dir):
                parts = name.split("_")
                if len(parts) == 3:
                    pods[norm_uid(parts[2])] = (parts[0], parts[1])
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

    def lookup(self, pod_uid: str, container_id: str = "") -> tuple[str, str, str]:
        """(namespace, pod, container) names; "" where unknown."""
        if not pod_uid:
            return "", "", ""
        self.refresh()
        pod = self._pods.get(norm_uid(pod_uid))
        container = self._containers.get(container_id.lower(), "") if container_id else ""
        if pod is None or (container_id and not container):
            self._missed_now(pod_uid, container_id)
        namespace, pod_name = pod or ("", "")
        return namespace, pod_name, container
