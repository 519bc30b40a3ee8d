"""Content identities on real file-backed mounts without BPF (issue 11, D16):
a fresh ImageContent's file_info + build_id + digest of every file of the
mounts, timed per checkout (--tree NAME=PATH, the first the baseline),
interleaved, each in a process of its own.  Every build_id and digest watches
the page cache of the file and of its image file (preserve_residency): the
whole image file (base) or a window of it (D16), so a bigger image costs the
base more per file.

--mode loop: the mounts are loop devices; the change of the devices' own
cached pages (cachestat) is reported too (must be 0: EROFS reads metadata
through a loop device's cache).

Cases: "node": bench_node_real's images (--images x --files files of 4-16 KiB,
half shared with the neighbour image), read by --cgroups cgroups; "big": one
image of --files such files plus a --filler-mib filler file, read by one cgroup.
The image files' cached pages (mincore, untimed) before and after each run:
pages gained (the run left them: must be 0) and lost (evicted meanwhile:
this VM's DAMON pageout evicts cold pages, whatever the run does).

Run (root, under the shared lock):
  flock /tmp/erofs-top-heavy.lock .venv/bin/python benchmarks/bench_content_window.py \\
      --tree base=/tmp/base1b1 --tree new=. --rounds 2
"""
from __future__ import annotations

import os
import random
import statistics
import sys
import time

import benchlib
from bench_node_real import READER, make_images

from erofs_top.workload import Stack, build_image

CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from erofs_top import pagecache
""" + benchlib.CACHED_PAGES_SRC + r"""
from erofs_top.resolve.content import ImageContent
from erofs_top.resolve.mounts import SysMounts
mountpoints, images = sys.argv[2].split(","), sys.argv[3].split(",")
devices = [d for d in sys.argv[4].split(",") if d]
sm = SysMounts()
sm.refresh()
mounts = [m for m in sm.mounts() if m.mountpoint in mountpoints]
masks = lambda: [pagecache.resident_mask(i) for i in images]     # untimed


before, devices_before = masks(), cached_pages(devices)
ic = ImageContent(digest_budget_bytes_per_s=None)
t = time.perf_counter()
files = 0
for m in mounts:
    for ino in list(ic._index_of(m).paths):
        info = ic.file_info(m, ino)
        if info is None or not info.regular:
            continue
        ic.build_id(m, ino)
        ic.digest(m, ino)
        files += 1
spent = time.perf_counter() - t
after = masks()
print(json.dumps({"s": spent, "files": files,
                  "device_delta": [a - b for a, b in zip(cached_pages(devices), devices_before)],
                  "cached_before": [bin(m).count("1") for m in before],
                  "gained": [bin(a & ~b).count("1") for a, b in zip(after, before)],
                  "lost": [bin(b & ~a).count("1") for a, b in zip(after, before)]}))
"""


def _big_image(stack: Stack, files: int, filler_mib: int):
    src = stack.dir / "bigsrc"
    rng = random.Random(7)
    for j in range(files):
        p = src / f"d{j % 50}" / f"f{j}.bin"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rng.randbytes(rng.randrange(4096, 16384)))
    with open(src / "zz-filler.bin", "wb") as f:
        for _ in range(filler_mib):
            f.write(os.urandom(1 << 20))
    return build_image(src, stack.dir / "big.erofs")


def _setup(stack: Stack, args, case: str):
    prefix = f"erofs-top-bench-window-{os.getpid()}-{case}"
    if case == "node":
        images = make_images(stack, args.images, args.files)
        n_cg = args.cgroups
    else:
        images = [_big_image(stack, args.files, args.filler_mib)]
        n_cg = 1
    mounts = [stack.mount(img, f"{case}{i}", mode=args.mode) for i, img in enumerate(images)]
    for c in range(n_cg):
        cg = stack.cgroup(f"{prefix}/c{c}")
        cg.run([sys.executable, "-S", "-c", READER, str(mounts[c % len(mounts)].path(""))])
    return images, mounts


def _add_args(ap) -> None:
    benchlib.add_tree_args(ap)
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--files", type=int, default=2500, help="files per image")
    ap.add_argument("--cgroups", type=int, default=10)
    ap.add_argument("--filler-mib", type=int, default=512)
    ap.add_argument("--cases", default="node,big")
    ap.add_argument("--mode", choices=("file", "loop"), default="file",
                    help="file-backed mounts, or loop devices (whose own cache holds the "
                         "metadata EROFS reads: its cached pages' change is reported)")


def _body(args):
    trees = benchlib.trees_of(args)
    out = {}
    for case in args.cases.split(","):
        with Stack(prefix="erofs-top-bench-window-") as stack:
            t = time.perf_counter()
            images, mounts = _setup(stack, args, case)
            sizes = [os.path.getsize(i) >> 20 for i in images]
            print(f"{case}: {len(images)} image(s) of {sizes} MiB, read "
                  f"({time.perf_counter() - t:.0f} s to build, mount and read)", flush=True)
            mps = ",".join(m.mountpoint for m in mounts)
            imgs = ",".join(str(i) for i in images)
            devs = ",".join(m.loopdev for m in mounts if m.loopdev)
            runs = benchlib.interleaved(
                trees, args.rounds,
                lambda tree, _: benchlib.child_json(CHILD, trees[tree], mps, imgs, devs))
            for tree, rows in runs.items():
                each = ", ".join(f"{r['s']:.2f}" for r in rows)
                gained = [sum(r["gained"]) for r in rows]
                lost = [sum(r["lost"]) for r in rows]
                print(f"  {tree:>6}: {statistics.median(r['s'] for r in rows):7.2f} s median "
                      f"({each}), {rows[0]['files']} files; image pages cached before "
                      f"{rows[0]['cached_before']}, gained {gained}, lost {lost} (per run)"
                      + (f"; loop devices' cached pages changed by "
                         f"{[sum(r['device_delta']) for r in rows]}" if devs else ""),
                      flush=True)
            secs = {k: [r["s"] for r in v] for k, v in runs.items()}
            ratio = benchlib.print_tree_ratios(secs, trees, 3)
            out[case] = {"seconds": secs, "ratios": ratio}
    return out


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=True)


if __name__ == "__main__":
    sys.exit(main())
