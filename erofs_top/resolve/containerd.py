"""containerd's on-disk state -> container, image and layer names.

Read-only, no API socket, no gRPC dependency.  What is read (containerd 2.1,
default paths; docs/containerd.md):

  <root>/io.containerd.metadata.v1.bolt/meta.db     bbolt (resolve/bolt.py):
      v1/<ns>/containers/<id>/{image, snapshotter, snapshotKey, runtime/name, labels/}
      v1/<ns>/images/<name>/target/{digest, mediatype}
  <root>/io.containerd.content.v1.content/blobs/sha256/<hex>
      manifests and indexes (JSON) -> the layer digests of each image
  <state>/io.containerd.runtime.v2.task/<ns>/<id>/{config.json, init.pid}
      the bundle of each running task: linux.cgroupsPath names its cgroup
  <root>/io.containerd.snapshotter.v1.erofs/snapshots/<N>/fs
      the EROFS snapshotter's layer mounts: <N> is the snapshot id; the layer's
      superblock UUID is uuid5(NAMESPACE_URL, "erofs:blobs/" + layer digest)
      (the erofs differ passes it to mkfs.erofs -U), so a mount is matched to a
      layer by hashing the layer digests of the manifests in the content store.

Every reader degrades on its own: a missing permission costs only the names
that file gives (``status()`` says which; ``erofs-top doctor`` prints it).
"""
from __future__ import annotations

import json
import os
import platform
import re
import time
import uuid
from dataclasses import dataclass

from . import bolt

DEFAULT_ROOT = "/var/lib/containerd"
DEFAULT_STATE = "/run/containerd"
META_DB = "io.containerd.metadata.v1.bolt/meta.db"
CONTENT_BLOBS = "io.containerd.content.v1.content/blobs"
TASK_DIR = "io.containerd.runtime.v2.task"
EROFS_SNAPSHOTTER = "io.containerd.snapshotter.v1.erofs"
MAX_MANIFEST_BYTES = 4 << 20
RUNTIME_CONTAINERD = "containerd"
MAX_NAMED = 1 << 16         # names_for's kept answers
_UNNAMED = object()

_SNAPSHOT_MOUNT = re.compile(r"/io\.containerd\.snapshotter\.v1\.erofs/snapshots/(\d+)/fs/?$")
_DIGEST = re.compile(r"^(sha256):([0-9a-f]{64})$")

MEDIA_INDEX = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
         "s390x": "s390x", "riscv64": "riscv64"}

# CRI plugin labels on containers (kubelet names, no API call needed)
LABEL_POD_NAMESPACE = "io.kubernetes.pod.namespace"
LABEL_POD_NAME = "io.kubernetes.pod.name"
LABEL_CONTAINER_NAME = "io.kubernetes.container.name"


def snapshot_id_of(mountpoint: str) -> str:
    """"7" for .../io.containerd.snapshotter.v1.erofs/snapshots/7/fs, else ""."""
    m = _SNAPSHOT_MOUNT.search(mountpoint)
    return m.group(1) if m else ""


def layer_uuid(digest: str) -> str:
    """The superblock UUID containerd's erofs differ gives the layer ``digest``."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "erofs:blobs/" + digest))


def cgroup_of(cgroups_path: str) -> str:
    """An OCI ``linux.cgroupsPath`` -> the cgroup path relative to the v2 root.

    cgroupfs form "/a/b" stays; runc's systemd form "slice:prefix:name" becomes
    /<slice hierarchy>/<prefix>-<name>.scope ("a-b.slice" lives in a.slice)."""
    p = cgroups_path.strip()
    if not p:
        return ""
    if p.startswith("/") or p.count(":") != 2:
        return "/" + p.strip("/")
    slice_, prefix, name = p.split(":")
    parts = []
    if slice_ and slice_ != "-.slice":
        stem = slice_.removesuffix(".slice")
        acc = []
        for piece in stem.split("-"):
            acc.append(piece)
            parts.append("-".join(acc) + ".slice")
    unit = name if name.endswith((".scope", ".slice")) else \
        (f"{prefix}-{name}.scope" if prefix else f"{name}.scope")
    return "/" + "/".join(parts + [unit])


# ---------------------------------------------------------------- records
@dataclass(frozen=True)
class Task:
    """A bundle under <state>/io.containerd.runtime.v2.task/<ns>/<id>/."""
    namespace: str
    id: str
    cgroup: str                 # from config.json linux.cgroupsPath ("" unknown)
    pid: int = 0                # init.pid
    annotations: tuple = ()     # (key, value) pairs of config.json annotations


@dataclass(frozen=True)
class CtrContainer:
    namespace: str
    id: str
    image: str = ""
    snapshotter: str = ""
    snapshot_key: str = ""
    runtime: str = ""           # io.containerd.runc.v2
    labels: tuple = ()


@dataclass(frozen=True)
class CtrImage:
    namespace: str
    name: str
    digest: str                 # target digest (manifest or index)
    media_type: str = ""


@dataclass(frozen=True)
class Names:
    """What containerd's state says about one cgroup."""
    runtime: str = RUNTIME_CONTAINERD
    namespace: str = ""
    container_id: str = ""
    image: str = ""
    image_digest: str = ""
    snapshot_key: str = ""
    pod_namespace: str = ""
    pod_name: str = ""
    container_name: str = ""


@dataclass(frozen=True)
class Layer:
    digest: str
    images: tuple[str, ...]     # image names that list this layer, sorted


# ---------------------------------------------------------------- parsers (pure)
def read_tasks(state_dir: str, kept: dict | None = None) -> tuple[list[Task], str]:
    """Bundles of running tasks; (tasks, error or "").  ``kept``, given,
    carries each bundle's Task from one read to the next ((namespace, id)
    -> (its config.json's identity, Task)): a bundle whose config.json is
    the same file, unchanged (inode, size, mtime), is not parsed again, and
    its init.pid is read until it has one.  The bundles are listed at every
    refresh, and a node runs ~1,000 tasks of a 10-20 KB JSON spec each
    (docs/performance.md, "Runtime names at node scale")."""
    base = os.path.join(state_dir, TASK_DIR)
    out: list[Task] = []
    try:
        namespaces = sorted(os.listdir(base))
    except FileNotFoundError:
        return [], ""
    except OSError as e:
        return [], f"{base}: {e.strerror}"
    err = ""
    now: dict = {}
    for ns in namespaces:
        try:
            ids = sorted(os.listdir(os.path.join(base, ns)))
        except OSError as e:
            err = err or f"{base}/{ns}: {e.strerror}"
            continue
        for cid in ids:
            t, why = _read_task(os.path.join(base, ns, cid), ns, cid, kept, now)
            err = err or why
            out.append(t)
    if kept is not None:
        kept.clear()
        kept.update(now)        # (a bundle gone is forgotten)
    return out, err


def _read_task(d: str, ns: str, cid: str, kept: dict | None, now: dict) -> tuple[Task, str]:
    """One bundle's Task (read_tasks): ``kept``'s when its config.json is
    unchanged, put into ``now`` when its config.json parsed."""
    cfg = os.path.join(d, "config.json")
    try:
        s = os.stat(cfg)
        ident = (s.st_ino, s.st_size, s.st_mtime_ns)
    except OSError:
        ident = None
    hit = kept.get((ns, cid)) if kept is not None and ident is not None else None
    if hit is not None and hit[0] == ident:
        t = hit[1]
        if not t.pid:       # (init.pid is written once the task started)
            t = Task(ns, cid, t.cgroup, _init_pid(d), t.annotations)
        now[(ns, cid)] = (ident, t)
        return t, ""
    try:
        with open(cfg, "rb") as f:
            spec = json.load(f)
        cg = cgroup_of(str((spec.get("linux") or {}).get("cgroupsPath") or ""))
        ann = tuple(sorted((str(k), str(v)) for k, v in
                           (spec.get("annotations") or {}).items()))
    except (OSError, ValueError, AttributeError) as e:
        why = f"{d}/config.json: permission denied" if isinstance(e, PermissionError) else ""
        return Task(ns, cid, "", _init_pid(d), ()), why
    t = Task(ns, cid, cg, _init_pid(d), ann)
    if ident is not None:
        now[(ns, cid)] = (ident, t)
    return t, ""


def _init_pid(d: str) -> int:
    try:
        with open(os.path.join(d, "init.pid")) as f:
            return int(f.read().strip() or 0)
    except (OSError, ValueError):
        return 0


def parse_meta(root: bolt.Bucket) -> tuple[list[CtrContainer], list[CtrImage]]:
    """Containers and images of every namespace in containerd's meta.db tree."""
    containers: list[CtrContainer] = []
    images: list[CtrImage] = []
    v1 = root.bucket("v1")
    if v1 is None:
        return containers, images
    for ns_raw, ns in sorted(v1.buckets.items()):
        nsn = ns_raw.decode("utf-8", "replace")
        cs = ns.bucket("containers")
        for cid, c in sorted((cs.buckets if cs else {}).items()):
            labels = c.bucket("labels")
            rt = c.bucket("runtime")
            containers.append(CtrContainer(
                namespace=nsn, id=cid.decode("utf-8", "replace"), image=c.text("image"),
                snapshotter=c.text("snapshotter"), snapshot_key=c.text("snapshotKey"),
                runtime=rt.text("name") if rt else "",
                labels=tuple(sorted((k.decode("utf-8", "replace"),
                                     v.decode("utf-8", "replace"))
                                    for k, v in (labels.keys if labels else {}).items()))))
        ims = ns.bucket("images")
        for name, im in sorted((ims.buckets if ims else {}).items()):
            t = im.bucket("target")
            images.append(CtrImage(nsn, name.decode("utf-8", "replace"),
                                   t.text("digest") if t else "",
                                   t.text("mediatype") if t else ""))
    return containers, images


def host_platform() -> tuple[str, str]:
    m = platform.machine()
    return "linux", _ARCH.get(m, m)


class ContentStore:
    """Manifests and indexes from the content store (blobs are immutable: cached)."""

    def __init__(self, root: str, plat: tuple[str, str] | None = None):
        self.blobs = os.path.join(root, CONTENT_BLOBS)
        self.platform = plat or host_platform()
        self._layers: dict[str, tuple[str, ...]] = {}
        self.error = ""

    def _blob(self, digest: str) -> dict | None:
        m = _DIGEST.match(digest)
        if not m:
            return None
        path = os.path.join(self.blobs, m.group(1), m.group(2))
        try:
            if os.stat(path).st_size > MAX_MANIFEST_BYTES:
                return None
            with open(path, "rb") as f:
                return json.load(f)
        except PermissionError:
            self.error = f"{self.blobs}: permission denied"
            return None
        except (OSError, ValueError):
            return None

    def layers(self, digest: str, depth: int = 0) -> tuple[str, ...]:
        """Layer digests of the image whose target is ``digest`` (an index picks
        the manifests of this host's platform, or all when none matches)."""
        hit = self._layers.get(digest)
        if hit is not None:
            return hit
        doc = self._blob(digest)
        out: list[str] = []
        if isinstance(doc, dict):
            if isinstance(doc.get("manifests"), list) and depth < 3:
                mans = [m for m in doc["manifests"] if isinstance(m, dict)]
                mine = [m for m in mans if (m.get("platform") or {}).get("os") == self.platform[0]
                        and (m.get("platform") or {}).get("architecture") == self.platform[1]]
                for m in mine or mans:
                    for d in self.layers(str(m.get("digest", "")), depth + 1):
                        if d not in out:
                            out.append(d)
            elif isinstance(doc.get("layers"), list):
                out = [str(x.get("digest", "")) for x in doc["layers"]
                       if isinstance(x, dict) and x.get("digest")]
        result = tuple(out)
        if doc is not None:
            self._layers[digest] = result       # a missing blob may appear later
        return result


def layer_index(images: list[CtrImage], store: ContentStore) -> dict[str, Layer]:
    """superblock UUID -> Layer, over the layers of every image."""
    users: dict[str, set[str]] = {}
    for im in images:
        for d in store.layers(im.digest):
            users.setdefault(d, set()).add(im.name)
    return {layer_uuid(d): Layer(d, tuple(sorted(names))) for d, names in users.items()}


# ---------------------------------------------------------------- the resolver
@dataclass
class Status:
    """What was readable, for doctor and health warnings."""
    root: str = ""
    found: bool = False         # a containerd root or state dir exists here
    meta: str = ""              # "" ok / not read yet, else why meta.db could not be read
    meta_txid: int = 0
    tasks: str = ""
    content: str = ""
    containers: int = 0
    images: int = 0
    running: int = 0
    layers: int = 0
    checked: bool = False


class ContainerdState:
    """Names from containerd's on-disk state, refreshed at most every ``min_interval_s``.

    ``names_for(cgroup_path, container_id)`` and ``layer(uuid)`` are lookups in
    the last refresh; ``refresh()`` re-reads meta.db only when its size or mtime
    changed, and the bundle directory every time (a directory listing)."""

    def __init__(self, root: str = DEFAULT_ROOT, state: str = DEFAULT_STATE, *,
                 min_interval_s: float = 2.0, clock=time.monotonic,
                 plat: tuple[str, str] | None = None):
        self.root = root
        self.state = state
        self.min_interval_s = min_interval_s
        self.clock = clock
        self.store = ContentStore(root, plat)
        self.status = Status(root=root)
        self._meta_key: tuple | None = None
        self._refreshed_at: float | None = None
        self.containers: dict[tuple[str, str], CtrContainer] = {}
        self.images: dict[tuple[str, str], CtrImage] = {}
        self.tasks: list[Task] = []
        self._bundles: dict = {}        # read_tasks' kept parses
        self._by_cgroup: dict[str, Task] = {}
        self._by_id: dict[str, list[Task]] = {}
        self._by_ctr_id: dict[str, list[tuple[str, str]]] = {}
        self._named: dict[tuple[str, str], Names | None] = {}     # names_for's answers
        self._layers: dict[str, Layer] = {}

    # -- refresh
    def refresh(self, force: bool = False) -> None:
        now = self.clock()
        if not force and self._refreshed_at is not None and \
                now - self._refreshed_at < self.min_interval_s:
            return
        self._refreshed_at = now
        st = self.status
        st.checked = True
        st.found = os.path.isdir(self.root) or os.path.isdir(os.path.join(self.state, TASK_DIR))
        if not st.found:
            return
        meta_was = self._meta_key
        self._read_meta()
        tasks, st.tasks = read_tasks(self.state, self._bundles)
        if tasks != self.tasks or self._meta_key != meta_was:
            # (the same Task objects when no bundle changed: compared by identity)
            self.tasks, self._named = tasks, {}
            self._by_cgroup = {t.cgroup: t for t in tasks if t.cgroup}
            self._by_id = {}
            for t in tasks:
                self._by_id.setdefault(t.id, []).append(t)
        st.running = len(self.tasks)
        st.content = self.store.error

    def _read_meta(self) -> None:
        path = os.path.join(self.root, META_DB)
        st = self.status
        try:
            s = os.stat(path)
        except FileNotFoundError:
            st.meta = f"{path}: not found"
            return
        except OSError as e:
            st.meta = f"{path}: {e.strerror}"
            return
        key = (s.st_size, s.st_mtime_ns, s.st_ino)
        if key == self._meta_key and not st.meta:
            return
        try:
            txid, tree = bolt.read(path)
        except PermissionError:
            st.meta = f"{path}: permission denied"
            return
        except (OSError, bolt.BoltError) as e:
            st.meta = f"{path}: {e}"
            return
        containers, images = parse_meta(tree)
        self._meta_key = key
        self.containers = {(c.namespace, c.id): c for c in containers}
        # (namespace, id) keys by id: names_for's match by the id a cgroup path
        # gave, a dict look-up per cgroup, not a walk of every container
        self._by_ctr_id = {}
        for k in self.containers:
            self._by_ctr_id.setdefault(k[1], []).append(k)
        self.images = {(i.namespace, i.name): i for i in images}
        self._layers = layer_index(images, self.store)
        st.meta, st.meta_txid = "", txid
        st.containers, st.images, st.layers = len(containers), len(images), len(self._layers)

    # -- lookups
    def _task(self, cgroup_path: str, container_id: str) -> Task | None:
        t = self._by_cgroup.get(cgroup_path)
        if t is not None:
            return t
        if container_id:
            ts = self._by_id.get(container_id, [])
            if len(ts) == 1:
                return ts[0]
        return None

    def names_for(self, cgroup_path: str, container_id: str = "") -> Names | None:
        """containerd's names for a cgroup, or None when it is not a containerd task.

        Matched by the bundle's cgroupsPath, else by the container id the path
        gave (CRI layouts), else by ctr's own layout ``/<namespace>/<id>`` when
        meta.db knows that container (no bundle dir readable).  Kept until
        the tasks or meta.db change (every refresh asks again for every
        cgroup)."""
        key = (cgroup_path, container_id)
        named = self._named
        hit = named.get(key, _UNNAMED)
        if hit is _UNNAMED:
            if len(named) >= MAX_NAMED:     # (paths that come and go, nothing else changing)
                named.clear()
            hit = named[key] = self._names_now(cgroup_path, container_id)
        return hit

    def _names_now(self, cgroup_path: str, container_id: str) -> Names | None:
        t = self._task(cgroup_path, container_id)
        if t is not None:
            ns, cid = t.namespace, t.id
        else:
            comps = [c for c in cgroup_path.split("/") if c]
            if len(comps) == 2 and tuple(comps) in self.containers:
                ns, cid = comps
            elif container_id:
                hits = self._by_ctr_id.get(container_id, ())
                if len(hits) != 1:
                    return None
                ns, cid = hits[0]
            else:
                return None
        c = self.containers.get((ns, cid))
        image = c.image if c else ""
        im = self.images.get((ns, image)) if image else None
        labels = dict(c.labels) if c else {}
        if t is not None:
            labels = {**dict(t.annotations), **labels}
        return Names(namespace=ns, container_id=cid, image=image,
                     image_digest=im.digest if im else "",
                     snapshot_key=c.snapshot_key if c else "",
                     pod_namespace=labels.get(LABEL_POD_NAMESPACE, ""),
                     pod_name=labels.get(LABEL_POD_NAME, ""),
                     container_name=labels.get(LABEL_CONTAINER_NAME, ""))

    def layer(self, sb_uuid: str) -> Layer | None:
        return self._layers.get(sb_uuid) if sb_uuid else None

    def image_layers(self) -> dict[str, tuple[str, ...]]:
        """image name -> its layer digests (bottom first)."""
        return {im.name: self.store.layers(im.digest) for im in self.images.values()}

    # -- doctor
    def checks(self, refresh: bool = True) -> list[tuple[str, bool, str, str]]:
        """(name, ok, detail, cost-if-missing) lines for erofs-top doctor."""
        if not self.status.checked and refresh:
            self.refresh(force=True)
        st = self.status
        if not st.checked:
            return []
        if not st.found:
            return [("containerd", True, f"no containerd state under {self.root} "
                     f"or {self.state} (containers keep their cgroup-path names)", "")]
        out = []
        if st.meta:
            out.append(("containerd metadata", False, st.meta,
                        "containers get no image name or digest, layers no image list; "
                        "ctr's /<namespace>/<id> cgroups are named only through the bundle dir "
                        "(run as root, or mount /var/lib/containerd read-only)"))
        else:
            out.append(("containerd metadata", True,
                        f"{os.path.join(self.root, META_DB)} (txid {st.meta_txid}): "
                        f"{st.containers} container(s), {st.images} image(s), "
                        f"{st.layers} layer digest(s) from manifests", ""))
        if st.tasks:
            out.append(("containerd tasks", False, st.tasks,
                        "running containers are matched to cgroups only by id or "
                        "ctr's /<namespace>/<id> layout"))
        else:
            out.append(("containerd tasks", True,
                        f"{os.path.join(self.state, TASK_DIR)}: {st.running} bundle(s)", ""))
        if st.content:
            out.append(("containerd content store", False, st.content,
                        "EROFS layer mounts get no layer digest or image list"))
        return out


__all__ = ["ContainerdState", "ContentStore", "CtrContainer", "CtrImage", "Layer", "Names",
           "Task", "cgroup_of", "layer_index", "layer_uuid", "parse_meta", "read_tasks",
           "snapshot_id_of"]
