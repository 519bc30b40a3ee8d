"""Mounts of one image share the names read from it (resolve/content.py
ImageNames): each mount's paths are its own mount point's, the names object
is one, another image's is another, and it goes once no mount of its image
is indexed.  Oracles: os.walk / os.stat through each mount."""
from __future__ import annotations

import gc
import hashlib
import os
import stat
import weakref

import pytest

from erofs_top.resolve.base import FileInfo
from erofs_top.resolve.content import ImageContent
from erofs_top.resolve.mounts import SysMounts
from erofs_top.workload import build_image, make_tree

pytestmark = pytest.mark.root

# names with bytes a kernel path may hold (any but NUL and "/")
ODD = [b"plain.txt", b"new\nline", b"lat1-\xe9", b"bad-utf8-\xff\xfe", b" lead space"]


def _tree(root, seed: int):
    files = {f"d{i % 5}/f{i:03d}.bin": 100 + i * seed for i in range(60)}
    src = make_tree(root, files, seed=seed)
    odd = os.path.join(os.fsencode(src), b"odd")
    os.mkdir(odd)
    for name in ODD:
        with open(os.path.join(odd, name), "wb") as f:
            f.write(name * seed)
    return src


def _walked(mountpoint: str) -> dict[int, str]:
    """ino -> path of everything below a mount, through the mount (bytes kept)."""
    top = os.fsencode(mountpoint)
    out = {os.stat(top).st_ino: mountpoint}
    for d, dirs, names in os.walk(top):
        for n in dirs + names:
            p = os.path.join(d, n)
            out[os.stat(p).st_ino] = os.fsdecode(p)
    return out


def test_mounts_of_one_image_share_its_names(stack):
    img_a = build_image(_tree(stack.dir / "a", 1), stack.dir / "a.erofs")
    img_b = build_image(_tree(stack.dir / "b", 2), stack.dir / "b.erofs")
    mounts = [stack.mount(img_a, "a1"), stack.mount(img_a, "a2", mode="loop"),
              stack.mount(img_a, "a3"), stack.mount(img_b, "b1")]
    sm = SysMounts()
    sm.refresh()
    infos = [sm.by_dev(m.dev) for m in mounts]
    assert len({mi.image_id for mi in infos}) == 2      # a1..a3 one image, b1 another
    ic = ImageContent()
    indexes = [ic._index_of(mi) for mi in infos]
    for m, mi, idx in zip(mounts, infos, indexes):
        assert ic.names_source(mi) == "image"
        walked = _walked(str(m.mountpoint))
        assert len(walked) == 1 + 5 + 60 + 1 + len(ODD)
        assert sorted(idx.inos()) == sorted(walked)
        for ino, path in walked.items():
            assert ic.path_of(mi, ino) == path
            assert idx.nid_of(path) == ino
        for ino, path in walked.items():
            # the path is made from the shared names when asked (no string kept per file)
            info = ic.file_info(mi, ino)
            st = os.stat(path, follow_symlinks=False)
            assert info == FileInfo(ino, path, st.st_size, stat.S_ISREG(st.st_mode), info.aops)
            assert path not in [r for r in gc.get_referents(info) if isinstance(r, str)]
    assert indexes[0].names is indexes[1].names is indexes[2].names
    # a forgotten mount's index and FileInfos go by reference counting (no
    # cycle: the exporter freezes the cyclic GC's generations)
    gc.disable()
    try:
        gone = weakref.ref(indexes[3])
        asked = ic.file_info(infos[3], max(ic._index_of(infos[3]).inos()))
        assert asked is not None
        del asked
        ic.forget(infos[3])
        indexes[3] = idx = None             # (the loop's last index is this one)
        assert gone() is None
    finally:
        gc.enable()
    indexes[3] = idx = ic._index_of(infos[3])
    assert indexes[3].names is not indexes[0].names
    assert ic.path_of(infos[0], 10 ** 9) == "" and indexes[0].nid_of("/elsewhere") is None
    # the names stay while an index of their image does, and go with the last
    del indexes, idx
    for mi in infos[:2]:
        ic.forget(mi)
    gc.collect()
    assert len(ic._names) == 2          # a3's index keeps image a's names
    ic.forget(infos[2])
    gc.collect()
    assert len(ic._names) == 1 and ic._index_of(infos[3]).names is not None


def _image_keys(ic, image_id: str) -> int:
    """The files of one image whose facts the resolver keeps."""
    return sum(len(files) for key, files in ic._files.items() if key == image_id)


def test_an_images_file_facts_go_with_its_last_mount(stack):
    """Inodes, page maps, build-ids, digests of an image's files stay while a
    mount of it is known and go with the last one (a node that pulls and
    removes images for weeks keeps none of the removed ones'); another
    image's stay; mounted again, its answers are the same."""
    img_a = build_image(_tree(stack.dir / "a", 1), stack.dir / "a.erofs")
    img_b = build_image(_tree(stack.dir / "b", 2), stack.dir / "b.erofs")
    mounts = [stack.mount(img_a, "a1"), stack.mount(img_a, "a2"), stack.mount(img_b, "b1")]
    sm = SysMounts()
    sm.refresh()
    infos = [sm.by_dev(m.dev) for m in mounts]
    ic = ImageContent(digest_budget_bytes_per_s=None)
    asked = {}
    for m, mi in zip(mounts, infos):
        for ino in list(_walked(str(m.mountpoint)))[:20]:
            info = ic.file_info(mi, ino)
            if info is not None and info.regular:
                asked[(mi.dev, ino)] = (ic.digest(mi, ino), ic.physical_pages(mi, ino))
                with open(ic.path_of(mi, ino), "rb") as f:     # oracle: the bytes through the mount
                    assert asked[(mi.dev, ino)][0] == hashlib.sha256(f.read()).hexdigest()
    a_id, b_id = infos[0].image_id, infos[2].image_id
    assert _image_keys(ic, a_id) > 0 and _image_keys(ic, b_id) > 0
    ic.forget(infos[0])
    assert _image_keys(ic, a_id) > 0          # a2 still mounted
    ic.forget(infos[1])
    assert _image_keys(ic, a_id) == 0 and a_id not in ic._image_mounts
    assert _image_keys(ic, b_id) > 0
    # asked again through a2 (as if mounted again): the same answers
    for (dev, ino), (digest, pages) in asked.items():
        if dev == infos[1].dev:
            assert (ic.digest(infos[1], ino), ic.physical_pages(infos[1], ino)) == (digest, pages)
    assert _image_keys(ic, a_id) > 0
