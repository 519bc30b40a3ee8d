"""Mapping compressed files to their clusters: zmap (in process) vs one dump.erofs per file.

Builds a real compressed EROFS image (mkfs.erofs -zlz4hc, default: this
Python's standard library, ~1,400 real files) and times what the first refresh
after reads pays per resident compressed file: ``ImageContent.physical_pages``
of every compressed file, with a fresh ImageContent each time (nothing cached):
  dump   the fallback path (what erofs-top did for every compressed file before
         zmap): the decoder refused, one ``dump.erofs -e --nid`` process per file
  zmap   the compressed index decoded in process (erofs_top/zmap.py)
Both give the same page maps (checked here once; tests/unit/test_zmap.py
compares the decoder with dump.erofs extent for extent).  Interleaved rounds,
median and best-of ratios zmap/dump.  No root.

Run:  .venv/bin/python benchmarks/bench_zmap.py [--rounds 5] [--src DIR] [--mkfs-opts '-zlz4hc']
"""
from __future__ import annotations

import os
import re
import shlex
import statistics
import subprocess
import tempfile
import time

import benchlib
from benchlib import interleaved, ratios

from erofs_top.resolve import content as content_mod
from erofs_top.resolve.base import MountInfo
from erofs_top.resolve.superblock import image_info, read_inode, read_superblock
from erofs_top.zmap import UnsupportedZmap


def _compressed_nids(img: str, src: str) -> list[int]:
    sb, _ = read_superblock(img)
    nids = []
    for root, _, files in os.walk(src):
        for name in files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                continue
            rel = os.path.relpath(path, src)
            out = subprocess.run(["dump.erofs", f"--path=/{rel}", img], capture_output=True,
                                 text=True).stdout
            m = re.search(r"NID:\s*(\d+)", out)
            if m and read_inode(img, sb, int(m.group(1))).compressed:
                nids.append(int(m.group(1)))
    return sorted(nids)


def _refused(*_a):
    raise UnsupportedZmap("benchmark: the dump.erofs path")


def _map_all(mount: MountInfo, nids: list[int], case: str) -> tuple[float, list]:
    ic = content_mod.ImageContent()
    real = content_mod.compressed_extents
    if case == "dump":
        content_mod.compressed_extents = _refused
    try:
        t0 = time.perf_counter()
        maps = [ic.physical_pages(mount, nid) for nid in nids]
        return time.perf_counter() - t0, maps
    finally:
        content_mod.compressed_extents = real


def body(args) -> dict:
    src = args.src or os.path.dirname(os.__file__)
    with tempfile.TemporaryDirectory(prefix="erofs-top-bench-zmap-") as d:
        img = os.path.join(d, "z.erofs")
        subprocess.run(["mkfs.erofs", "--quiet", *shlex.split(args.mkfs_opts), img, src],
                       check=True, capture_output=True)
        nids = _compressed_nids(img, src)
        mount = MountInfo(dev=1, dev_str="0:1", mountpoint=d, source=img, backing="file",
                          backing_file=img, image=image_info(img), image_path=img)
        _, want = _map_all(mount, nids, "dump")
        _, got = _map_all(mount, nids, "zmap")
        assert got == want, "zmap and dump.erofs page maps differ"
        values = interleaved(("dump", "zmap"), args.rounds,
                             lambda case, _rnd: _map_all(mount, nids, case)[0])
    r = ratios(values, "dump")["zmap"]
    per_file_ms = {c: statistics.median(v) / len(nids) * 1e3 for c, v in values.items()}
    print(f"{len(nids)} compressed files of {src} ({args.mkfs_opts}), {args.rounds} rounds")
    for case, v in values.items():
        print(f"  {case:5s} median {statistics.median(v):.3f} s  "
              f"({per_file_ms[case]:.3f} ms per file)  best {min(v):.3f} s")
    print(f"  zmap/dump: median ratio {r['median_ratio']:.4f}, best-of {r['best_of_ratio']:.4f}")
    return {"files": len(nids), "seconds": values, "per_file_ms": per_file_ms, "zmap_vs_dump": r}


def add_args(ap) -> None:
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--src", default="", help="tree to build the image from (default: the stdlib)")
    ap.add_argument("--mkfs-opts", default="-zlz4hc")


if __name__ == "__main__":
    raise SystemExit(benchlib.bench_main(__doc__, add_args, body, root=False))
