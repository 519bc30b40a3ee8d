"""Fingerprints per file: ImageContent.fingerprint() of every file of an
image whose files carry the --xattr-inode-digest xattr, timed per checkout
(--tree NAME=PATH, the first the baseline), interleaved, each in a process
of its own (fresh caches): getxattr(2) through the mount (main until
issue 11's fingerprints from the image), or the value read from the image
(resolve/xattrs.py: O_DIRECT metadata reads; since the fix, with the inode
in file_info, kept until fingerprint() asks).  --files files of 3,000
random bytes in 20 directories,
each with trusted.erofs.fingerprint = "sha256:" + its digest (set on the
source tree; the host's mkfs.erofs copies it), mounted file-backed and on a
loop device (--modes), read once by this process first (the caches warm, as
on a node: files with resident pages were opened by their workload).
The image files' and loop devices' cached pages before file_info and after
the fingerprints are compared (cachestat): what a run left behind.  --order: whether
file_info() of every file runs first (the aggregator's order: it reads
the inodes the image reader then parses), timed apart (``file_info``: a
tree that reads the xattr with the inode pays there), or not.

Run (root, under the shared lock):
  flock /tmp/erofs-top-heavy.lock .venv/bin/python benchmarks/bench_fingerprints.py \\
      --tree base=/tmp/basea1a --tree new=. --rounds 2
"""
from __future__ import annotations

import hashlib
import os
import statistics
import sys

import benchlib

from erofs_top.workload import Stack, build_image, make_tree, read_file

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from erofs_top import pagecache
""" + benchlib.CACHED_PAGES_SRC + r"""
from erofs_top.resolve.content import ImageContent
from erofs_top.resolve.mounts import SysMounts
mountpoint, watched = sys.argv[2], [p for p in sys.argv[4:] if p]


sm = SysMounts()
sm.refresh()
mi = next(m for m in sm.mounts() if m.mountpoint == mountpoint)
ic = ImageContent(digest_budget_bytes_per_s=None)
nids = list(ic._index_of(mi).paths)
before = cached_pages(watched)
t = time.perf_counter()
if sys.argv[3] == "after-file-info":     # as the aggregator asks: file_info first (timed apart)
    for nid in nids:
        ic.file_info(mi, nid)
info_spent = time.perf_counter() - t
t = time.perf_counter()
found = sum(1 for nid in nids if ic.fingerprint(mi, nid))
spent = time.perf_counter() - t
print(json.dumps({"us_per_file": spent / len(nids) * 1e6, "files": len(nids), "found": found,
                  "file_info_us_per_file": info_spent / len(nids) * 1e6,
                  "cached_delta": [a - b for a, b in zip(cached_pages(watched), before)]}))
"""


def _image(stack: Stack, n_files: int):
    files = {f"d{i % 20}/f{i:05d}": os.urandom(3000) for i in range(n_files)}
    src = make_tree(stack.dir / "src", files)
    for rel in files:
        digest = hashlib.sha256((src / rel).read_bytes()).digest()
        os.setxattr(src / rel, "trusted.erofs.fingerprint", b"sha256:" + digest)
    return build_image(src, stack.dir / "fp.erofs"), list(files)


def _add_args(ap) -> None:
    benchlib.add_tree_args(ap)
    ap.add_argument("--files", type=int, default=4000)
    ap.add_argument("--modes", default="file,loop", help="file-backed and/or loop mounts")
    ap.add_argument("--order", choices=("after-file-info", "alone"), default="after-file-info",
                    help="file_info of every file first, timed apart, as the aggregator asks "
                         "it before a fingerprint (it reads the inodes the image reader parses); "
                         "or fingerprint() alone")


def _body(args):
    trees = benchlib.trees_of(args)
    with Stack(prefix="erofs-top-bench-fp-") as stack:
        img, rels = _image(stack, args.files)
        return {mode: _one_mode(stack, img, rels, mode, trees, args)
                for mode in args.modes.split(",")}


def _one_mode(stack: Stack, img, rels: list[str], mode: str, trees: dict, args) -> dict:
    """Every tree's fingerprint() of every file of ``img`` mounted as ``mode``."""
    m = stack.mount(img, f"m-{mode}", mode=mode)
    for rel in rels:
        read_file(m.path(rel))
    runs = benchlib.interleaved(
        trees, args.rounds,
        lambda tree, _: benchlib.child_json(CHILD, trees[tree], m.mountpoint, args.order,
                                            str(img), m.loopdev or ""))
    print(f"{mode}: {args.files} files", flush=True)
    for tree, rows in runs.items():
        us = [r["us_per_file"] for r in rows]
        info_us = [r["file_info_us_per_file"] for r in rows]
        print(f"  {tree:>6}: {statistics.median(us):6.1f} us per file median "
              f"({', '.join(f'{u:.1f}' for u in us)}); file_info before it "
              f"{statistics.median(info_us):.1f} us ({', '.join(f'{u:.1f}' for u in info_us)}); "
              f"{rows[0]['found']} of "
              f"{rows[0]['files']} inodes with one; cached pages left (image"
              f"{', loop device' if m.loopdev else ''}) "
              f"{[r['cached_delta'] for r in rows]}", flush=True)
    us_per_file = {k: [r["us_per_file"] for r in v] for k, v in runs.items()}
    both_us = {k: [r["us_per_file"] + r["file_info_us_per_file"] for r in v]
               for k, v in runs.items()}
    print("  fingerprint():", flush=True)
    ratios = benchlib.print_tree_ratios(us_per_file, trees, 2)
    print("  file_info() + fingerprint():", flush=True)
    return {"us_per_file": us_per_file, "ratios": ratios, "file_info_and_fingerprint_us": both_us,
            "ratios_with_file_info": benchlib.print_tree_ratios(both_us, trees, 2)}


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=True)


if __name__ == "__main__":
    sys.exit(main())
