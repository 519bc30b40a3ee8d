"""A mount's names (inode -> path index): read from the image file against
walking the mount, on a fresh mount of one image with many small files.

Per round and case the image is mounted anew (file-backed) with its file's
cache dropped, then erofs-top's content resolver builds the mount's index
once: "image" (resolve/dirtree.py, O_DIRECT reads of the image's
directories) or "walk" (the mount walked with scandir + stat, as before, and
as erofs-top still does where it cannot read the image).  Reported: time to
build the index, and the page cache it left behind (the image file's pages
by cachestat, and /proc/meminfo Cached: EROFS directory pages included).

Run (root, ~1 min with the defaults):
  flock /tmp/erofs-top-heavy.lock .venv/bin/python benchmarks/bench_names.py --files 50000
"""
from __future__ import annotations

import os
import time

import benchlib

from erofs_top import pagecache
from erofs_top.resolve.content import ImageContent
from erofs_top.resolve.mounts import SysMounts
from erofs_top.workload import ErofsMount, Stack, build_image, drop_file_cache


class WalkingContent(ImageContent):
    """The baseline: the resolver as it was, walking the mount for names."""

    def _image_tree(self, mount):
        return None


def _cached_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("Cached:"):
                return int(line.split()[1]) * 1024
    raise LookupError("Cached")


def _image(st: Stack, files: int, per_dir: int) -> str:
    src = st.dir / "src"
    for i in range(files):
        d = src / f"d{i // per_dir:04d}"
        if i % per_dir == 0:
            d.mkdir(parents=True)
        (d / f"module_{i:06d}.py").write_bytes(b"#" * (200 + i % 3000))
    return str(build_image(src, st.dir / "names.erofs"))


def _measure(st: Stack, img: str, case: str, rnd: int) -> dict:
    with ErofsMount(img, st.dir / "mnt" / f"{case}-{rnd}") as m:
        sm = SysMounts()
        sm.refresh()
        mi = sm.by_dev(m.dev)
        drop_file_cache(img)
        root_ino = os.stat(m.mountpoint).st_ino
        cached0, image0 = _cached_bytes(), pagecache.file_resident_pages(img)
        resolver = ImageContent() if case == "image" else WalkingContent()
        t0 = time.perf_counter()
        resolver.path_of(mi, root_ino)
        took_s = time.perf_counter() - t0
        assert resolver.names_source(mi) == ("image" if case == "image" else "mount")
        return {"s": took_s, "image_cache_bytes": (pagecache.file_resident_pages(img) - image0)
                * pagecache.PAGE_SIZE, "cached_bytes": _cached_bytes() - cached0}


def body(args) -> dict:
    with Stack(prefix="erofs-top-bench-names-") as st:
        img = _image(st, args.files, args.per_dir)
        values = benchlib.interleaved(["walk", "image"], args.rounds,
                                      lambda case, rnd: _measure(st, img, case, rnd))
    out = {}
    for case, vals in values.items():
        out[case] = {"median_ms": benchlib.median([v["s"] for v in vals]) * 1e3,
                     "image_cache_kib": benchlib.median([v["image_cache_bytes"] for v in vals]) / 1024,
                     "cached_kib": benchlib.median([v["cached_bytes"] for v in vals]) / 1024}
    print(f"{args.files:,} files in {args.files // args.per_dir:,} directories, "
          f"median of {args.rounds} rounds (a fresh mount each):")
    for case, f in out.items():
        print(f"  {case:6} {f['median_ms']:8.1f} ms   image-file cache +{f['image_cache_kib']:,.0f} KiB"
              f"   Cached +{f['cached_kib']:,.0f} KiB")
    out["ratio_image_to_walk"] = out["image"]["median_ms"] / out["walk"]["median_ms"]
    print(f"  image / walk time: {out['ratio_image_to_walk']:.2f}x")
    return out


def add_args(ap) -> None:
    ap.add_argument("--files", type=int, default=50_000, help="files in the image (default 50,000)")
    ap.add_argument("--per-dir", type=int, default=100, help="files per directory (default 100)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds, each case once (default 3)")


if __name__ == "__main__":
    raise SystemExit(benchlib.bench_main(__doc__, add_args, body, root=True))
