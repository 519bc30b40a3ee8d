"""erofs_top.zmap against the lab's dump.erofs (erofs-utils 1.9.x) on what only
a newer mkfs.erofs builds: every compression algorithm it offers (lz4hc,
lzma, deflate, zstd), two algorithms in one image, ztailpacking, fragments,
all-fragments, dedupe, big pclusters, full indexes with fragments, 48-bit
encoded extents.  Real files: django's ``db`` package from the headline data,
the guest's ``ls`` binary, and copies of it (whole and a prefix) for dedupe.
Every compressed file's extents, fragments included, must equal
``dump.erofs -e``.  The host suite covers what erofs-utils 1.5 builds
(tests/unit/test_zmap.py)."""
from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess

import pytest

from . import labkit as lk
from .conftest import REPORT

DJANGO_DB = "/opt/lab-data/python3-django/*/usr/lib/python3/dist-packages/django/db"
MAX_TEXT_FILES = 80
_EXT = re.compile(rb"^\s*\d+:\s*(\d+)\.\.\s*(\d+)\s*\|\s*(\d+)\s*:\s*(\d+)\.\.\s*(\d+)\s*\|\s*(\d+)")


def _offered() -> set[str]:
    out = subprocess.run(["mkfs.erofs", "--help"], capture_output=True, text=True).stdout
    offered = set(re.findall(r"^ {25}([a-z0-9]+)$", out, re.M))
    assert "lz4hc" in offered, f"could not read the compressors from mkfs.erofs --help: {out}"
    return offered


@pytest.fixture(scope="module")
def tree(lab):
    src_db = sorted(glob.glob(DJANGO_DB))
    assert src_db, f"headline data missing: {DJANGO_DB}"
    d = lk.workdir("zmap")
    src = os.path.join(d, "src")
    n = 0
    for root, _, files in sorted(os.walk(src_db[0])):
        for name in sorted(files):
            if n >= MAX_TEXT_FILES or name.endswith(".pyc"):
                continue
            rel = os.path.relpath(os.path.join(root, name), src_db[0])
            os.makedirs(os.path.dirname(os.path.join(src, "db", rel)), exist_ok=True)
            shutil.copy(os.path.join(root, name), os.path.join(src, "db", rel))
            n += 1
    binary = open(shutil.which("ls"), "rb").read()
    for name, data in (("ls", binary), ("ls-copy", binary), ("ls-head", binary[:70_000])):
        with open(os.path.join(src, name), "wb") as f:
            f.write(data)
    try:
        yield d, src
    finally:
        lk.rmtree(d)


def _dump(img: str, rel: str) -> tuple[int, list[tuple[int, int, int, int]]]:
    out = subprocess.run(["dump.erofs", "-e", f"--path=/{rel}", img], capture_output=True,
                         check=True).stdout
    nid = int(re.search(rb"NID:\s*(\d+)", out).group(1))
    ext = []
    for line in out.splitlines():
        m = _EXT.match(line)
        if m:
            lo, _e, llen, pa, _pe, plen = (int(x) for x in m.groups())
            ext.append((lo, llen, pa, plen))
    return nid, ext


def _compare(img: str, src: str) -> dict:
    from erofs_top.resolve.superblock import read_image, read_inode, read_superblock
    from erofs_top import zmap
    sb, _ = read_superblock(img)
    seen = {"files": 0, "kinds": set(), "algorithms": set(), "big": 0, "partial": 0,
            "encoded": 0}
    for root, _, files in os.walk(src):
        for name in files:
            rel = os.path.relpath(os.path.join(root, name), src)
            nid, want = _dump(img, rel)
            ino = read_inode(img, sb, nid)
            if not ino.compressed:
                continue
            ext = zmap.compressed_extents(sb, ino, lambda off, n: read_image(img, off, n))
            got = [(e.logical_offset, e.logical_length,
                    0 if e.kind == zmap.KIND_FRAGMENT else e.physical_offset, e.physical_length)
                   for e in ext]
            assert got == want, (rel, nid)
            seen["files"] += 1
            seen["kinds"].update(e.kind for e in ext)
            seen["algorithms"].update(e.algorithm for e in ext if e.algorithm is not None)
            seen["big"] += sum(e.physical_length > sb.block_size for e in ext)
            seen["partial"] += sum(e.partial_ref for e in ext)
            hdr_at = -(-(sb.inode_offset(nid) + ino.inode_size + ino.xattr_size) // 8) * 8
            hdr = zmap.parse_map_header(read_image(img, hdr_at, 8), sb.blkszbits, ino.layout)
            seen["encoded"] += bool(hdr.extents)
    return seen


# case -> (algorithms it needs, mkfs options, what the walk must have met)
CASES = {
    "lz4hc big pclusters": ({"lz4hc"}, ("-zlz4hc", "-C65536"), {"big"}),
    "lzma": ({"lzma"}, ("-zlzma,level=0", "-C65536"), {"alg1"}),
    "deflate": ({"deflate"}, ("-zdeflate", "-C16384"), {"alg2"}),
    "zstd": ({"zstd"}, ("-zzstd", "-C16384"), {"alg3"}),
    "lz4hc and lzma": ({"lz4hc", "lzma"}, ("-zlz4hc:lzma,level=0", "-C65536",
                                           "--compress-hints=HINTS"), {"alg0", "alg1"}),
    "ztailpacking": ({"lz4hc"}, ("-zlz4hc", "-Eztailpacking"), {"inline"}),
    "fragments dedupe": ({"lz4hc"}, ("-zlz4hc", "-C65536", "-Efragments,dedupe"), {"fragment"}),
    "all-fragments": ({"lz4hc"}, ("-zlz4hc", "-Eall-fragments"), {"fragment"}),
    "full indexes fragments": ({"lz4hc"}, ("-zlz4hc", "-Elegacy-compress,fragments"),
                               {"fragment"}),
    "48-bit encoded extents": ({"lz4hc"}, ("-zlz4hc", "-E48bit"), {"encoded"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_extents_equal_dump_erofs(tree, case):
    needs, opts, must_see = CASES[case]
    missing = needs - _offered()
    if missing:
        pytest.skip(f"this mkfs.erofs does not offer {sorted(missing)}")
    d, src = tree
    hints = os.path.join(d, "hints")
    with open(hints, "w") as f:
        f.write("65536 1 .*\\.py$\n")          # .py files with the second algorithm
    img = os.path.join(d, re.sub(r"\W+", "-", case) + ".erofs")
    args = [o.replace("HINTS", hints) for o in opts]
    r = subprocess.run(["mkfs.erofs", *args, img, src], capture_output=True, text=True,
                       errors="replace")
    if r.returncode and any(a.startswith("--compress-hints") for a in args):
        # erofs-utils 1.9.3 reads the hints' algorithm column before it sets the
        # algorithm table (lib/compress_hints.c vs mkfs/main.c): seen failing in the lab
        REPORT.append(f"zmap {case}: not checked, mkfs.erofs {' '.join(args)} exit "
                      f"{r.returncode}: {(r.stderr or r.stdout).strip()[-300:]}")
        pytest.xfail(f"mkfs.erofs refuses {args}: exit {r.returncode} {r.stderr.strip()[-300:]}")
    assert r.returncode == 0, (args, r.stderr[-2000:])
    seen = _compare(img, src)
    assert seen["files"] >= 20, seen
    for want in must_see:
        if want in ("big", "encoded"):
            assert seen[want], seen
        elif want.startswith("alg"):
            assert int(want[3:]) in seen["algorithms"], seen
        else:
            assert want in seen["kinds"], seen
    REPORT.append(f"zmap {case}: {seen['files']} compressed files equal dump.erofs -e "
                  f"(kinds {sorted(seen['kinds'])}, algorithms {sorted(seen['algorithms'])}, "
                  f"{seen['big']} big pclusters, {seen['partial']} partial refs, "
                  f"{seen['encoded']} encoded-extent files)")
