"""Runtime names for cgroups and mounts: containerd's state + kubelet log dirs.

One object per collector.  ``refresh()`` once per Model (rate-limited inside);
``name_cgroup(info)`` fills a CgroupInfo's runtime names; ``name_mounts(mounts)``
fills each MountInfo's layer identity (layer digest, snapshot id, images).
"""
from __future__ import annotations

import os
from dataclasses import replace

from .base import CgroupInfo, MountInfo
from .containerd import DEFAULT_ROOT, DEFAULT_STATE, ContainerdState, snapshot_id_of
from .kubelet import KubeletLogs


class RuntimeNames:
    def __init__(self, containerd: ContainerdState | None = None,
                 kubelet: KubeletLogs | None = None):
        self.containerd = containerd or ContainerdState(
            os.environ.get("EROFS_TOP_CONTAINERD_ROOT", DEFAULT_ROOT),
            os.environ.get("EROFS_TOP_CONTAINERD_STATE", DEFAULT_STATE))
        self.kubelet = kubelet or KubeletLogs()

    def refresh(self) -> None:
        self.containerd.refresh()

    def name_cgroup(self, info: CgroupInfo) -> CgroupInfo:
        if not info.resolved or info.path in ("?", ""):
            return info
        n = self.containerd.names_for(info.path, info.container_id)
        if n is not None:
            # Docker and others run on containerd too (namespace "moby"): a runtime the
            # cgroup path already names stays; containerd replaces "" and "kubepods"
            runtime = n.runtime if info.runtime in ("", "kubepods", n.runtime) else info.runtime
            info = replace(info, runtime=runtime, container_id=n.container_id,
                           namespace=n.namespace, image=n.image, image_digest=n.image_digest,
                           snapshot_key=n.snapshot_key, pod_namespace=n.pod_namespace,
                           pod_name=n.pod_name, container_name=n.container_name)
        if info.pod_uid and not (info.pod_name and info.container_name):
            ns, pod, ctr = self.kubelet.lookup(info.pod_uid, info.container_id)
            info = replace(info, pod_namespace=info.pod_namespace or ns,
                           pod_name=info.pod_name or pod,
                           container_name=info.container_name or ctr)
        return info

    def name_mounts(self, mounts: list[MountInfo]) -> None:
        for m in mounts:
            m.snapshot_id = snapshot_id_of(m.mountpoint)
            layer = self.containerd.layer(m.image.uuid if m.image else "")
            if layer is not None:
                m.layer_digest, m.images = layer.digest, layer.images
            else:
                m.layer_digest, m.images = "", ()

    def warnings(self) -> list[str]:
        """One line per containerd store that exists but could not be read."""
        return [f"containerd: {detail} ({cost})"
                for name, ok, detail, cost in self.containerd.checks(refresh=False) if not ok]

    def checks(self) -> list[tuple[str, bool, str, str]]:
        out = self.containerd.checks()
        if self.kubelet.available():
            out.append(("kubelet log dirs", True, f"{self.kubelet.pods_dir}: pod and "
                        "container names for kubepods cgroups", ""))
        return out
