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
