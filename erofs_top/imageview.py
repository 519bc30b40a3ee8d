"""The image view: container images as stacks of their mounted layers.

Pure, from the Model's own rows: a Mount with a ``layer_digest`` is one layer,
``Mount.images`` says which images list it (resolve/containerd.py), and
``Container.image`` which containers run an image.  A layer shared by several
images is one mount, counted once per node; each image row lists it (so image
rows do not add up to the node total) with the other images in
``shared_with``, and ``unique_bytes`` is what only that image holds.
"""
from __future__ import annotations

from .model import Container, Image, ImageLayer, Mount


def _snapshot_order(layer: ImageLayer) -> tuple:
    # the snapshotter numbers a parent before its children: bottom layer first
    return (int(layer.snapshot_id) if layer.snapshot_id.isdigit() else 1 << 62, layer.digest)


def image_view(containers: list[Container], mounts: list[Mount]) -> list[Image]:
    images: dict[str, Image] = {}
    for m in mounts:
        if not m.layer_digest or m.gone:
            continue
        for name in m.images:
            im = images.setdefault(name, Image(name))
            im.layers.append(ImageLayer(
                digest=m.layer_digest, dev=m.dev, snapshot_id=m.snapshot_id,
                resident_bytes=m.resident_bytes, duplicate_bytes=m.duplicate_bytes,
                backing_resident_bytes=m.backing_resident_bytes,
                shared_with=[n for n in m.images if n != name],
                potential_savings_bytes=getattr(m, "potential_savings_bytes", 0)))
    for c in containers:
        im = images.get(c.image) if c.image else None
        if im is not None:
            im.containers.append(c.cgroup_id)
            im.digest = im.digest or c.image_digest
    for im in images.values():
        im.layers.sort(key=_snapshot_order)
        im.resident_bytes = sum(x.resident_bytes for x in im.layers)
        im.duplicate_bytes = sum(x.duplicate_bytes for x in im.layers)
        im.unique_bytes = sum(x.resident_bytes for x in im.layers if not x.shared_with)
        im.potential_savings_bytes = sum(x.potential_savings_bytes for x in im.layers)
        im.containers.sort()
    return sorted(images.values(), key=lambda i: (-i.resident_bytes, i.name))
