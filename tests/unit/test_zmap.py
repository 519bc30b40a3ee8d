"""erofs_top.zmap against dump.erofs (erofs-utils' own reader of the format):
images built by the host's real mkfs.erofs from real files (pieces of this
Python's standard library and its executable), every compressed file's
extents from the decoder compared with ``dump.erofs -e`` of the same file.
What only a newer mkfs.erofs builds (lzma, deflate, zstd, fragments, dedupe,
48-bit encoded extents) is checked in the lab: tests/vm/test_zmap_lab.py."""
from __future__ import annotations

import email
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from erofs_top.resolve.superblock import (COMPRESSED_COMPACT, COMPRESSED_FULL, parse_dump_extents,
                                          read_image, read_inode, read_superblock)
from erofs_top.zmap import (ADVISE_EXTENTS, KIND_INLINE, UnsupportedZmap, compressed_extents,
                            dump_tuples, parse_map_header)

from test_superblock import mkfs

pytestmark = pytest.mark.skipif(not shutil.which("mkfs.erofs") or not shutil.which("dump.erofs"),
                                reason="erofs-utils not installed")


@pytest.fixture(scope="module")
def real_tree(tmp_path_factory):
    """Real files: two stdlib packages (text, many sizes) and the Python
    executable (an ELF binary, big enough for big pclusters)."""
    src = tmp_path_factory.mktemp("zsrc")
    for mod in (json, email):
        shutil.copytree(os.path.dirname(mod.__file__), src / mod.__name__,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(os.path.realpath(sys.executable), src / "python3")
    return src


def compare_with_dump(img: str, src) -> dict:
    """Every compressed file: decoder == dump.erofs -e.  Returns what was
    seen (layouts, extent kinds, big pclusters, uncompressed pclusters)."""
    sb, _ = read_superblock(img)
    seen = {"files": 0, "layouts": set(), "kinds": set(), "big": 0, "plain": 0}
    for root, _, files in os.walk(src):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), src)
            out = subprocess.run(["dump.erofs", "-e", f"--path=/{rel}", img],
                                 capture_output=True, check=True).stdout
            nid = int(re.search(rb"NID:\s*(\d+)", out).group(1))
            ino = read_inode(img, sb, nid)
            if not ino.compressed:
                continue
            ext = compressed_extents(sb, ino, lambda off, n: read_image(img, off, n))
            assert dump_tuples(ext) == parse_dump_extents(out), rel
            seen["files"] += 1
            seen["layouts"].add(ino.layout)
            seen["kinds"].update(e.kind for e in ext)
            seen["big"] += sum(e.physical_length > sb.block_size for e in ext)
            seen["plain"] += sum(e.algorithm is None for e in ext)
    return seen


CASES = {
    "lz4 compact": ("-zlz4",),
    "lz4hc big pclusters": ("-zlz4hc", "-C65536"),
    "lz4hc full indexes": ("-zlz4hc", "-Elegacy-compress"),
    "lz4 ztailpacking": ("-zlz4", "-Eztailpacking"),
    "lz4hc full big ztailpacking": ("-zlz4hc", "-C131072", "-Elegacy-compress",
                                    "-Eztailpacking"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_extents_equal_dump_erofs(real_tree, tmp_path, case):
    opts = CASES[case]
    seen = compare_with_dump(mkfs(tmp_path / "z.erofs", real_tree, *opts), real_tree)
    assert seen["files"] >= 20, seen
    want_layout = COMPRESSED_FULL if "-Elegacy-compress" in opts else COMPRESSED_COMPACT
    assert seen["layouts"] == {want_layout}, seen
    if any(o.startswith("-C") for o in opts):
        assert seen["big"], f"no pcluster over one block: {seen}"
    if "-Eztailpacking" in opts:
        assert KIND_INLINE in seen["kinds"], seen


def test_map_header_fields():
    # h_idata_size 100, advise INLINE|BIG1|BIG2|COMPACTED_2B, HEAD1 lz4 / HEAD2 lzma, +2 bits
    raw = (100 << 16).to_bytes(4, "little") + (0x000F).to_bytes(2, "little") + bytes([0x10, 2])
    hdr = parse_map_header(raw, 12, COMPRESSED_COMPACT)
    assert (hdr.idata_size, hdr.algorithms, hdr.lclusterbits) == (100, (0, 1), 14)
    assert not hdr.whole_fragment and hdr.extents == 0
    # whole file in the packed inode: bit 63 set, the rest its offset there
    frag = ((1 << 63) | 123456).to_bytes(8, "little")
    hdr = parse_map_header(frag, 12, COMPRESSED_FULL)
    assert hdr.whole_fragment and hdr.fragment_offset == 123456
    # encoded extents: the count in h_extents_lo/hi
    ext = (7).to_bytes(4, "little") + ADVISE_EXTENTS.to_bytes(2, "little") + (1).to_bytes(2, "little")
    assert parse_map_header(ext, 12, COMPRESSED_FULL).extents == 7 | 1 << 32


def test_unknown_advise_bits_are_refused_not_guessed():
    raw = bytes(4) + (0x0100).to_bytes(2, "little") + bytes(2)
    with pytest.raises(UnsupportedZmap):
        parse_map_header(raw, 12, COMPRESSED_COMPACT)


def test_image_content_maps_compressed_files_without_dump_erofs(real_tree, tmp_path, monkeypatch):
    """ImageContent.physical_pages: the decoder's page map equals the one
    from dump.erofs, also for an image at a 64 KiB offset inside its file
    (a loop offset, which dump.erofs cannot read), and runs no process."""
    from erofs_top.resolve import content as content_mod
    from erofs_top.resolve.base import MountInfo
    from erofs_top.resolve.superblock import compressed_page_map, dump_extents, image_info

    img = mkfs(tmp_path / "z.erofs", real_tree, "-zlz4hc", "-C65536", "-Eztailpacking")
    shifted = tmp_path / "shifted.img"
    shifted.write_bytes(bytes(65536) + open(img, "rb").read())
    sb, _ = read_superblock(img)
    names = [os.path.relpath(os.path.join(r, f), real_tree)
             for r, _, fs in os.walk(real_tree) for f in fs]
    nids = {}
    for rel in sorted(names):
        out = subprocess.run(["dump.erofs", f"--path=/{rel}", img], capture_output=True,
                             text=True, check=True).stdout
        nid = int(re.search(r"NID:\s*(\d+)", out).group(1))
        if read_inode(img, sb, nid).compressed:
            nids[rel] = nid
    want = {rel: compressed_page_map(dump_extents(img, nid), content_mod.PAGE_SIZE)
            for rel, nid in nids.items()}

    def no_process(*a, **k):
        raise AssertionError(f"a process was started: {a}")
    monkeypatch.setattr(subprocess, "run", no_process)
    for path, offset in ((img, 0), (str(shifted), 65536)):
        mount = MountInfo(dev=1, dev_str="0:1", mountpoint=str(tmp_path), source=path,
                          backing="file", backing_file=path, image=image_info(path, offset),
                          image_path=path, image_offset=offset)
        ic = content_mod.ImageContent()
        got = {rel: ic.physical_pages(mount, nid) for rel, nid in nids.items()}
        assert got == want, path
        assert ic.zmap_fallbacks == {} and ic.zmap_warning() == ""
    assert len(nids) >= 20


def test_a_layout_zmap_refuses_goes_through_dump_erofs_with_a_warning(real_tree, tmp_path,
                                                                       monkeypatch):
    """No 1.5-built image has a layout zmap refuses, so the refusal is faked
    (fake_refusal); the fallback itself (dump.erofs, the warning) is real."""
    from erofs_top.resolve import content as content_mod
    from erofs_top.resolve.base import MountInfo
    from erofs_top.resolve.superblock import compressed_page_map, dump_extents, image_info

    img = mkfs(tmp_path / "z.erofs", real_tree, "-zlz4hc")
    out = subprocess.run(["dump.erofs", "--path=/python3", img], capture_output=True,
                         text=True, check=True).stdout
    nid = int(re.search(r"NID:\s*(\d+)", out).group(1))

    def fake_refusal(*a):
        raise UnsupportedZmap("fake: a layout from the future")
    monkeypatch.setattr(content_mod, "compressed_extents", fake_refusal)
    mount = MountInfo(dev=1, dev_str="0:1", mountpoint=str(tmp_path), source=img,
                      backing="file", backing_file=img, image=image_info(img), image_path=img)
    ic = content_mod.ImageContent()
    pages = ic.physical_pages(mount, nid)
    assert pages and pages == compressed_page_map(dump_extents(img, nid), content_mod.PAGE_SIZE)
    assert ic.zmap_fallbacks == {"fake: a layout from the future": 1}
    assert "1 compressed file(s)" in ic.zmap_warning() and "dump.erofs" in ic.zmap_warning()
