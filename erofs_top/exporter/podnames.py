"""Optional namespace/pod/container names for the container labels, for
containers whose Model row has none (the aggregator fills them where the
runtime names are known): the kubelet's log directories, read by
erofs_top.resolve.kubelet (the DaemonSet mounts /var/log/pods and
/var/log/containers).  Without the directories every name stays ""
(docs/exporter.md).
"""
from __future__ import annotations

from ..model import Container
from ..resolve.kubelet import KubeletLogs


class KubeletLogNames:
    def __init__(self, pods_dir: str = "/var/log/pods",
                 containers_dir: str = "/var/log/containers"):
        self.pods_dir = pods_dir
        self._logs = KubeletLogs(pods_dir, containers_dir)

    def available(self) -> bool:
        return self._logs.available()

    def refresh(self) -> None:
        """Once per scrape build: re-list if a lookup missed since the last list."""
        self._logs.refresh(force=True)

    def lookup(self, c: Container) -> tuple[str, str, str]:
        return self._logs.lookup(c.pod_uid, c.container_id)
