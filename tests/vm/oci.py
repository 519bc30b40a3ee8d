"""OCI image archives built in the lab guest without network (standard library only).

``ctr image import`` takes an oci-layout tar.  The images here are made of
real software already in the guest:

  base layer   busybox-static (/bin/busybox and its applet links), the guest's
               glibc dynamic loader and libc, and coreutils ``dd`` (a dynamically
               linked binary: running it maps ld.so and libc.so.6 from the image)
  app layer    one version of a real Debian package unpacked in the guest at lab
               build time (/opt/lab-data/<pkg>/<version>/, e.g. redis-tools), plus
               the guest's copies of the libraries it needs (APP_LIBS): the same
               bytes in every version's app layer, as in real image versions

Two versions of one package give "two versions of a real application image
sharing a base layer": the base layer is byte-identical (same digest), so
containerd unpacks it once.  Tar entries are normalised (mtime, owner), so a
layer's digest depends only on its content.

    python3 -m tests.vm.oci OUTDIR NAME:TAG=DIR ...   # one archive per image
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

MTIME = 1700000000
GUEST_LIBS = ("/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
              "/usr/lib/x86_64-linux-gnu/libc.so.6")
DYNAMIC_DD = "/usr/bin/dd"          # coreutils, NEEDED libc.so.6 only
# what `apt-get install redis-tools` would add next to the package in its layer:
# libraries redis-cli needs that the guest has (same bytes in both versions' layers,
# as in two real image versions built on one base)
APP_LIBS = ("/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
            "/usr/lib/x86_64-linux-gnu/libssl.so.3",
            "/usr/lib/x86_64-linux-gnu/libsystemd.so.0",
            "/usr/lib/x86_64-linux-gnu/libstdc++.so.6")


def _info(name: str) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = MTIME
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = "root"
    return ti


class Layer:
    """A deterministic tar layer, entries added in order (parents first)."""

    def __init__(self):
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)
        self.dirs: set[str] = set()

    def dir(self, name: str, mode: int = 0o755) -> None:
        name = name.strip("/")
        parent = os.path.dirname(name)
        if parent and parent not in self.dirs:
            self.dir(parent)
        if name in self.dirs:
            return
        self.dirs.add(name)
        ti = _info(name)
        ti.type, ti.mode = tarfile.DIRTYPE, mode
        self.tar.addfile(ti)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        name = name.strip("/")
        if os.path.dirname(name):
            self.dir(os.path.dirname(name))
        ti = _info(name)
        ti.size, ti.mode = len(data), mode
        self.tar.addfile(ti, io.BytesIO(data))

    def symlink(self, name: str, target: str) -> None:
        name = name.strip("/")
        if os.path.dirname(name):
            self.dir(os.path.dirname(name))
        ti = _info(name)
        ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, target, 0o777
        self.tar.addfile(ti)

    def copy(self, src: str, name: str) -> None:
        st = os.lstat(src)
        with open(src, "rb") as f:
            self.file(name, f.read(), st.st_mode & 0o7777)

    def copy_resolved(self, src: str) -> None:
        """src at its own path; a symlink is copied as the link plus its target file."""
        if os.path.islink(src):
            real = os.path.realpath(src)
            self.copy(real, real)
            self.symlink(src, os.path.relpath(real, os.path.dirname(src)))
        else:
            self.copy(src, src)

    def tree(self, root: str, prefix: str = "") -> None:
        """Every directory, regular file and symlink under root, sorted."""
        for d, dirs, files in os.walk(root):
            dirs.sort()
            rel = os.path.relpath(d, root)
            base = prefix + ("" if rel == "." else rel)
            if base:
                self.dir(base, os.stat(d).st_mode & 0o7777)
            for n in sorted(files + [x for x in dirs if os.path.islink(os.path.join(d, x))]):
                p = os.path.join(d, n)
                name = f"{base}/{n}" if base else n
                if os.path.islink(p):
                    self.symlink(name, os.readlink(p))
                elif os.path.isfile(p):
                    self.copy(p, name)

    def bytes(self) -> bytes:
        self.tar.close()
        return self.buf.getvalue()


def base_layer(busybox: str = "/bin/busybox") -> bytes:
    layer = Layer()
    for d in ("bin", "dev", "etc", "proc", "root", "sys", "var", "data", "usr/bin", "lib64",
              "usr/lib/x86_64-linux-gnu"):
        layer.dir(d)
    layer.dir("tmp", 0o1777)
    layer.copy(busybox, "bin/busybox")
    applets = subprocess.run([busybox, "--list"], check=True, capture_output=True,
                             text=True).stdout.split()
    for a in sorted(set(applets) - {"busybox"}):
        layer.symlink(f"bin/{a}", "busybox")
    for lib in GUEST_LIBS:
        layer.copy(lib, lib)
    layer.symlink("lib64/ld-linux-x86-64.so.2", "../usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2")
    layer.copy(DYNAMIC_DD, "usr/bin/dd")
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    layer.file("etc/group", b"root:x:0:\n")
    return layer.bytes()


def tree_layer(root: str, extra: tuple[str, ...] = ()) -> bytes:
    """The tree under root, plus the guest files ``extra`` at their own paths."""
    layer = Layer()
    layer.tree(root)
    for path in extra:
        layer.copy_resolved(path)
    return layer.bytes()


def _sha(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _gz(raw: bytes) -> bytes:
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0, compresslevel=1) as g:
        g.write(raw)
    return out.getvalue()


def _json(o) -> bytes:
    return json.dumps(o, sort_keys=True, separators=(",", ":")).encode()


def write_image(name: str, layers_raw: list[bytes], out_path: str) -> dict:
    """An oci-layout tar of one image ``name`` ("docker.io/lab/x:1"); returns
    its manifest, config and layer digests (compressed) and diff ids."""
    blobs: dict[str, bytes] = {}
    descs, diff_ids = [], []
    for raw in layers_raw:
        comp = _gz(raw)
        blobs[_sha(comp)] = comp
        descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                      "digest": _sha(comp), "size": len(comp)})
        diff_ids.append(_sha(raw))
    config = _json({"architecture": "amd64", "os": "linux",
                    "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
                    "rootfs": {"type": "layers", "diff_ids": diff_ids}})
    blobs[_sha(config)] = config
    manifest = _json({"schemaVersion": 2,
                      "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                 "digest": _sha(config), "size": len(config)},
                      "layers": descs})
    blobs[_sha(manifest)] = manifest
    index = _json({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "digest": _sha(manifest), "size": len(manifest),
                                  "platform": {"architecture": "amd64", "os": "linux"},
                                  "annotations": {"io.containerd.image.name": name,
                                                  "org.opencontainers.image.ref.name":
                                                      name.rsplit(":", 1)[1]}}]})
    out = Layer()
    out.file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    out.file("index.json", index)
    for digest, data in sorted(blobs.items()):
        out.file("blobs/sha256/" + digest.split(":", 1)[1], data)
    with open(out_path, "wb") as f:
        f.write(out.bytes())
    return {"name": name, "manifest": _sha(manifest), "config": _sha(config),
            "layers": [d["digest"] for d in descs], "diff_ids": diff_ids}


def build(outdir: str, images: dict[str, str]) -> dict[str, dict]:
    """images: name -> app layer directory.  One archive per image in outdir."""
    os.makedirs(outdir, exist_ok=True)
    base = base_layer()
    out = {}
    for i, (name, tree) in enumerate(images.items()):
        path = os.path.join(outdir, f"image{i}.oci.tar")
        meta = write_image(name, [base, tree_layer(tree, APP_LIBS)], path)
        meta["archive"] = path
        out[name] = meta
    return out


if __name__ == "__main__":
    specs = dict(a.split("=", 1) for a in sys.argv[2:])
    json.dump(build(sys.argv[1], specs), sys.stdout, indent=1)
    print()
