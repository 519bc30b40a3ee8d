#!/usr/bin/env python3
"""Build the erofs-top exporter's OCI image from a Debian system: no registry,
no base image, no network.  Standard library only.

    sudo python3 scripts/build-image.py [--rootfs /] [--out erofs-top.oci.tar]
    ctr -n k8s.io image import erofs-top.oci.tar      # on each node (or push it)
    sudo python3 scripts/build-image.py --out - | ctr -n k8s.io image import -   # no archive

Two layers:
  runtime    the files of the Debian packages erofs-top needs (python3,
             python3-bpfcc with its LLVM, click, prometheus-client, pyelftools,
             yaml) and everything they depend on, taken from ``--rootfs`` (a
             Debian system that has them installed: this host, or a chroot such
             as the qemu lab's rootfs), without docs, man pages and locales
  erofs-top  this checkout's erofs_top/ and probes/ in /opt/erofs-top, and
             /usr/local/bin/erofs-top
The image is named ``docker.io/library/erofs-top:<version>`` (what
exporters/deploy/daemonset.yaml's ``erofs-top:<version>`` means); its
entrypoint is ``erofs-top``, its default arguments ``exporter --listen=:9655``.
Layers are uncompressed tars with normalised owners and mtimes: the same inputs
give the same digests.  BCC needs a kernel header tree at run time: the
DaemonSet mounts the node's /lib/modules and /usr/src.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import stat
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PACKAGES = ("python3", "python3-bpfcc", "python3-click", "python3-prometheus-client",
            "python3-pyelftools", "python3-yaml")
SKIP_PREFIXES = ("/usr/share/doc/", "/usr/share/man/", "/usr/share/locale/", "/usr/share/info/",
                 "/usr/share/lintian/", "/usr/share/bug/")
EXTRA_FILES = ("/etc/ld.so.cache", "/etc/passwd", "/etc/group", "/etc/nsswitch.conf")
MTIME = 1700000000
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"


def _version() -> str:
    text = open(os.path.join(REPO, "erofs_top", "__init__.py")).read()
    return re.search(r'__version__ = "([^"]+)"', text).group(1)


# ---------------------------------------------------------------- packages
def _status(rootfs: str) -> dict[str, dict]:
    pkgs: dict[str, dict] = {}
    text = open(os.path.join(rootfs, "var/lib/dpkg/status"), encoding="utf-8").read()
    for block in text.split("\n\n"):
        fields = dict(re.findall(r"^([A-Za-z-]+): ?(.*)$", block, re.M))
        name = fields.get("Package")
        if not name or "installed" not in fields.get("Status", "").split():
            continue
        pkgs[name] = fields
    return pkgs


def _deps(field: str) -> list[list[str]]:
    """"a (>= 1) | b, c:any" -> [["a", "b"], ["c"]]"""
    out = []
    for alt in (x for x in field.split(",") if x.strip()):
        out.append([re.split(r"[\s(:]", a.strip(), maxsplit=1)[0] for a in alt.split("|")])
    return out


def closure(pkgs: dict[str, dict], roots: tuple[str, ...]) -> list[str]:
    provides: dict[str, str] = {}
    for name, f in pkgs.items():
        for alts in _deps(f.get("Provides", "")):
            provides.setdefault(alts[0], name)
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        p = todo.pop()
        p = p if p in pkgs else provides.get(p, p)
        if p in seen:
            continue
        if p not in pkgs:
            raise SystemExit(f"build-image: package {p} is not installed in the rootfs "
                             f"(apt-get install {' '.join(PACKAGES)})")
        seen.add(p)
        for field in ("Pre-Depends", "Depends"):
            for alts in _deps(pkgs[p].get(field, "")):
                pick = next((a for a in alts if a in pkgs or a in provides), None)
                if pick:
                    todo.append(pick)
    return sorted(seen)


def package_paths(rootfs: str, pkgs: dict[str, dict], names: list[str]) -> list[str]:
    paths: set[str] = set()
    for n in names:
        arch = pkgs[n].get("Architecture", "")
        for cand in (f"{n}:{arch}.list", f"{n}.list"):
            lst = os.path.join(rootfs, "var/lib/dpkg/info", cand)
            if os.path.exists(lst):
                with open(lst, encoding="utf-8", errors="surrogateescape") as f:
                    paths.update(line.rstrip("\n") for line in f if line.strip() not in ("", "/."))
                break
    paths.update(p for p in EXTRA_FILES if os.path.lexists(rootfs.rstrip("/") + p))
    return sorted(p for p in paths if not p.startswith(SKIP_PREFIXES))


# ---------------------------------------------------------------- layers
class _HashingFile:
    """A write-only file that also hashes what goes through it."""

    def __init__(self, f):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, b) -> int:
        self.sha.update(b)
        self.size += len(b)
        return self.f.write(b)


class LayerWriter:
    """An uncompressed tar layer streamed to a file: parents before children,
    top-level /usr-merge links (bin -> usr/bin) kept as links."""

    def __init__(self, path: str, rootfs: str = "/"):
        self.rootfs = rootfs.rstrip("/")
        self.file = open(path, "wb")
        self.out = _HashingFile(self.file)
        self.tar = tarfile.open(fileobj=self.out, mode="w|", format=tarfile.PAX_FORMAT)
        self.done: set[str] = set()
        self.aliases: dict[str, str] = {}       # "bin" -> "usr/bin" (merged /usr)
        for top in ("bin", "sbin", "lib", "lib64", "lib32", "libx32"):
            p = f"{self.rootfs}/{top}"
            if os.path.islink(p) and not os.readlink(p).startswith("/"):
                self.aliases[top] = os.path.normpath(os.readlink(p))

    def _name(self, path: str) -> str:
        name = path.strip("/")
        head, _, rest = name.partition("/")
        if head in self.aliases and rest:
            name = f"{self.aliases[head]}/{rest}"
        return name

    def _info(self, name: str, st) -> tarfile.TarInfo:
        ti = tarfile.TarInfo(name)
        ti.mode = stat.S_IMODE(st.st_mode)
        ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = MTIME, 0, 0, "root", "root"
        return ti

    def _parents(self, name: str) -> None:
        """Every missing parent directory of name: the rootfs's mode, else 0755."""
        parent = os.path.dirname(name)
        if parent and parent not in self.done:
            self._parents(parent)
            src = f"{self.rootfs}/{parent}"
            if os.path.isdir(src) and not os.path.islink(src):
                self._add(parent, src)
            else:
                ti = tarfile.TarInfo(parent)
                ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, MTIME
                self.done.add(parent)
                self.tar.addfile(ti)

    def _add(self, name: str, src: str) -> None:
        st = os.lstat(src)
        ti = self._info(name, st)
        self.done.add(name)
        if stat.S_ISDIR(st.st_mode):
            ti.type = tarfile.DIRTYPE
            self.tar.addfile(ti)
        elif stat.S_ISLNK(st.st_mode):
            ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(src)
            self.tar.addfile(ti)
        elif stat.S_ISREG(st.st_mode):
            ti.size = st.st_size
            with open(src, "rb") as f:
                self.tar.addfile(ti, f)

    def add_path(self, path: str) -> None:
        """A path of the rootfs (its own mode, link or content) at the same place."""
        name = self._name(path)
        if not name or name in self.done or name in self.aliases:
            return
        src = f"{self.rootfs}/{name}"
        if not os.path.lexists(src):
            return
        self._parents(name)
        self._add(name, src)

    def add_tree(self, src_dir: str, dest: str, keep=lambda p: True) -> None:
        for d, dirs, files in os.walk(src_dir):
            dirs[:] = sorted(x for x in dirs if x != "__pycache__")
            rel = os.path.relpath(d, src_dir)
            base = dest.strip("/") if rel == "." else f"{dest.strip('/')}/{rel}"
            self._parents(base + "/x")
            for n in sorted(files):
                p = os.path.join(d, n)
                if keep(p) and os.path.isfile(p) and f"{base}/{n}" not in self.done:
                    self.done.add(f"{base}/{n}")
                    st = os.stat(p)
                    ti = self._info(f"{base}/{n}", st)
                    ti.size = st.st_size
                    with open(p, "rb") as f:
                        self.tar.addfile(ti, f)

    def add_bytes(self, name: str, data: bytes, mode: int = 0o644) -> None:
        import io
        self._parents(name)
        ti = tarfile.TarInfo(name)
        ti.mode, ti.size, ti.mtime = mode, len(data), MTIME
        self.done.add(name)
        self.tar.addfile(ti, io.BytesIO(data))

    def close(self) -> tuple[str, int]:
        self.tar.close()
        self.file.close()
        return "sha256:" + self.out.sha.hexdigest(), self.out.size


def _blob(data: bytes) -> tuple[str, bytes]:
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def _json(o) -> bytes:
    return json.dumps(o, sort_keys=True, separators=(",", ":")).encode()


ENTRYPOINT = b"""#!/usr/bin/python3
import sys
from erofs_top.cli import main
sys.argv[0] = "erofs-top"
main()
"""


def build(rootfs: str, out: str, name: str, source: str = REPO) -> dict:
    pkgs = _status(rootfs)
    names = closure(pkgs, PACKAGES)
    tmp = tempfile.mkdtemp(prefix="erofs-top-image-",
                           dir=None if out == "-" else os.path.dirname(os.path.abspath(out)))
    try:
        runtime = LayerWriter(f"{tmp}/runtime.tar", rootfs)
        for p in package_paths(rootfs, pkgs, names):
            runtime.add_path(p)
        for top, target in sorted(runtime.aliases.items()):
            runtime.tar.addfile(_link(top, target))
        layers = [runtime.close()]
        app = LayerWriter(f"{tmp}/erofs-top.tar", rootfs)
        app.add_tree(f"{source}/erofs_top", "opt/erofs-top/erofs_top",
                     lambda p: p.endswith((".py", ".tcss")))
        app.add_tree(f"{source}/probes", "opt/erofs-top/probes", lambda p: p.endswith((".c", ".h")))
        app.add_bytes("usr/local/bin/erofs-top", ENTRYPOINT, 0o755)
        layers.append(app.close())
        return _write_archive(out, name, layers, [f"{tmp}/runtime.tar", f"{tmp}/erofs-top.tar"],
                              names)
    finally:
        for f in os.listdir(tmp):
            os.unlink(os.path.join(tmp, f))
        os.rmdir(tmp)


def _link(name: str, target: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.linkname, ti.mode, ti.mtime = tarfile.SYMTYPE, target, 0o777, MTIME
    return ti


def _write_archive(out: str, name: str, layers: list[tuple[str, int]], files: list[str],
                   packages: list[str]) -> dict:
    config_d, config = _blob(_json({
        "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": ["/usr/local/bin/erofs-top"],
                   "Cmd": ["exporter", "--listen=:9655"],
                   "Env": ["PATH=/usr/local/bin:/usr/bin:/bin", "PYTHONPATH=/opt/erofs-top",
                           "PYTHONDONTWRITEBYTECODE=1"],
                   "ExposedPorts": {"9655/tcp": {}},
                   "Labels": {"org.opencontainers.image.title": "erofs-top",
                              "org.opencontainers.image.version": name.rsplit(":", 1)[1],
                              "io.erofs-top.debian-packages": " ".join(packages)}},
        "rootfs": {"type": "layers", "diff_ids": [d for d, _ in layers]}}))
    manifest_d, manifest = _blob(_json({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_d, "size": len(config)},
        "layers": [{"mediaType": LAYER_TYPE, "digest": d, "size": n} for d, n in layers]}))
    index = _json({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "digest": manifest_d, "size": len(manifest),
                                  "platform": {"architecture": "amd64", "os": "linux"},
                                  "annotations": {"io.containerd.image.name": name,
                                                  "org.opencontainers.image.ref.name":
                                                      name.rsplit(":", 1)[1]}}]})
    import io
    if out == "-":      # a stream (e.g. into `ctr image import -`): no archive on disk
        tar = tarfile.open(fileobj=sys.stdout.buffer, mode="w|", format=tarfile.PAX_FORMAT)
    else:
        tar = tarfile.open(out, "w", format=tarfile.PAX_FORMAT)
    with tar:
        for fname, data in (("oci-layout", b'{"imageLayoutVersion":"1.0.0"}'), ("index.json", index),
                            (f"blobs/sha256/{config_d[7:]}", config),
                            (f"blobs/sha256/{manifest_d[7:]}", manifest)):
            ti = tarfile.TarInfo(fname)
            ti.size, ti.mtime = len(data), MTIME
            tar.addfile(ti, io.BytesIO(data))
        for (digest, size), path in zip(layers, files):
            ti = tarfile.TarInfo(f"blobs/sha256/{digest[7:]}")
            ti.size, ti.mtime = size, MTIME
            with open(path, "rb") as f:
                tar.addfile(ti, f)
    return {"name": name, "manifest": manifest_d, "config": config_d,
            "layers": [d for d, _ in layers], "bytes": sum(n for _, n in layers),
            "packages": len(packages)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rootfs", default="/", help="the Debian system to take the packages from")
    ap.add_argument("--out", default="erofs-top.oci.tar",
                    help="the OCI archive to write; - writes it to stdout (the summary then "
                         "goes to stderr)")
    ap.add_argument("--name", default=f"docker.io/library/erofs-top:{_version()}")
    args = ap.parse_args()
    if not os.path.exists(os.path.join(args.rootfs, "var/lib/dpkg/status")):
        sys.exit(f"build-image: {args.rootfs} is not a Debian system (no var/lib/dpkg/status)")
    summary = build(args.rootfs, args.out, args.name)
    print(json.dumps(summary, indent=1), file=sys.stderr if args.out == "-" else sys.stdout)


if __name__ == "__main__":
    main()
