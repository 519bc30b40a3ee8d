"""Time of one model refresh as a function of keys (resident files, containers).

Part 1 (no root): `erofs_top.aggregate.aggregate` on synthetic Readings with the
fixture resolvers of erofs_top/resolve/base.py (as tests/unit/test_aggregate.py),
for 1k/10k/50k resident files x 10/100/1000 containers.  A synthetic node:
one mount per container, containers share images (4 containers per image), so
the same image mounted in several containers gives exact duplicates; files
hold 1-4 chunks of 64 pages, 10 % of chunks have a second owner.
Each case runs twice: with the counters of N events and of 10 x N events on
the same keys.  Readings hold map *state*, not events, so the two must cost the
same: the refresh grows with keys, not with events.

Part 2 (root, --probe-read): TracepointSource.read() (map reading, the
kernel side of a refresh) with the real BPF maps filled from user space with
10k/50k/200k chunk entries and 1/4 as many io entries.

Run:  .venv/bin/python benchmarks/bench_refresh.py [--repeat 3] [--quick]
      sudo .venv/bin/python benchmarks/bench_refresh.py --probe-read
"""
from __future__ import annotations

import argparse
import ctypes as ct
import gc
import os
import random
import statistics
import sys
import time

import benchlib  # noqa: F401  (sets sys.path)

from erofs_top.aggregate import aggregate
from erofs_top.readings import FileIO, PageChunk, Readings, kdev
from erofs_top.resolve.base import (AOPS_BLOCK, AOPS_FILEIO, FileInfo, StaticCgroups,
                                    StaticContent, StaticMounts, ImageInfo, MountInfo)

PAGE = 4096
CONTAINERS_PER_IMAGE = 4


def synthetic_node(n_files: int, n_containers: int, events_factor: int = 1, seed: int = 1):
    """(readings, mounts, cgroups, content) for a node of this shape."""
    rng = random.Random(seed)
    n_images = max(1, n_containers // CONTAINERS_PER_IMAGE)
    images = [ImageInfo(uuid=f"{i:08x}-0000-0000-0000-000000000000", volume_name="",
                        feature_compat=0, feature_incompat=0, block_size=4096,
                        image_id=f"img-{i}", ishare_xattrs=False, compressed=False)
              for i in range(n_images)]
    mounts, cg_paths = [], {}
    for c in range(n_containers):
        dev = kdev(0, 100 + c) if c % 2 == 0 else kdev(7, c)
        mounts.append(MountInfo(dev=dev, dev_str=f"{dev >> 20}:{dev & 0xFFFFF}",
                                mountpoint=f"/run/ctr/{c}/rootfs", source=f"/img/{c % n_images}",
                                backing="file" if c % 2 == 0 else "loop",
                                image=images[c % n_images]))
        cg_paths[1000 + c] = f"/kubepods.slice/kubepods-besteffort.slice/" \
                             f"cri-containerd-{c:064x}.scope"
    files, content = {}, {}
    r = Readings(taken_at=1.0, page_size=PAGE)
    per_mount = max(1, n_files // n_containers)
    made = 0
    for c, m in enumerate(mounts):
        cg = 1000 + c
        count = per_mount if c < n_containers - 1 else n_files - made
        for j in range(count):
            ino = 100 + j
            nchunks = 1 + (j % 4)
            # same nid -> same size within an image; sizes differ across images
            size = (nchunks * 64 - 3) * PAGE + (c % n_images) * per_mount + j
            aops = AOPS_FILEIO if m.backing == "file" else AOPS_BLOCK
            files[(m.dev, ino)] = FileInfo(ino, f"{m.mountpoint}/usr/lib/f{j}.so", size,
                                           True, aops)
            content[(m.dev, ino)] = f"{(c % n_images) * 1_000_000 + j:064x}"
            inserted = 0
            for k in range(nchunks):
                owners = {cg: (1 << 64) - 1}
                if rng.random() < 0.1:    # a second cgroup inserted some pages
                    other = 1000 + rng.randrange(n_containers)
                    owners = {cg: (1 << 32) - 1, other: ((1 << 32) - 1) << 32}
                r.chunks.append(PageChunk(m.dev, ino, k, owners))
                inserted += 64
            r.io.append(FileIO(m.dev, ino, cg, inserted_pages=inserted * events_factor,
                               evicted_pages=(inserted // 2) * events_factor,
                               readahead_pages=inserted * events_factor,
                               read_folio_count=nchunks * events_factor))
        made += count
    r.maps = {"chunks": (len(r.chunks), 262144, 0), "io": (len(r.io), 65536, 0)}
    return (r, StaticMounts(mounts), StaticCgroups(cg_paths),
            StaticContent(files=files, content=content))


def time_refresh(node, repeat: int) -> float:
    readings, mounts, cgroups, content = node
    times = []
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        aggregate(readings, mounts, cgroups, content, tier="tracepoint", started_at=0.0)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def part_aggregate(repeat: int, quick: bool) -> None:
    files_list = (1000, 10000) if quick else (1000, 10000, 50000)
    print(f"aggregate() on synthetic Readings (median of {repeat} runs, 9 below 20k chunks; "
          "a live refresh adds map reading, part 2)")
    print(f"  {'files':>6} {'containers':>10} {'chunks':>7} {'refresh':>10} "
          f"{'10x events':>11} {'ratio':>6} {'us/chunk':>9}")
    for n_files in files_list:
        for n_ctr in (10, 100, 1000):
            node = synthetic_node(n_files, n_ctr)
            node10 = synthetic_node(n_files, n_ctr, events_factor=10)
            # small cases take milliseconds: more runs keep the median steady
            reps = repeat if len(node[0].chunks) > 20000 else max(repeat, 9)
            t1 = time_refresh(node, reps)
            t10 = time_refresh(node10, reps)
            nchunks = len(node[0].chunks)
            print(f"  {n_files:>6} {n_ctr:>10} {nchunks:>7} {t1 * 1000:>8.1f} ms "
                  f"{t10 * 1000:>8.1f} ms {t10 / t1:>5.2f}x {t1 / nchunks * 1e6:>8.1f}")


def part_probe_read(sizes) -> None:
    benchlib.need_root()
    from erofs_top.errors import CollectorError
    from erofs_top.tiers import open_collector
    print("\nTracepointSource.read() with the real maps filled from user space")
    print(f"  {'chunks':>7} {'io':>6} {'fill':>9} {'read()':>10} {'us/entry':>9}")
    for n in sizes:
        try:
            col = open_collector(seed=False, sharing=False, max_chunks=max(262144, n))
        except CollectorError as e:
            sys.exit(f"probes failed to load: {e}")
        try:
            chunks, io = col.source.bpf["chunks"], col.source.bpf["io"]
            n_io = min(n // 4, col.source.max_io)
            dev = kdev(0, 0xFFFF0)        # no such mount: nothing else reads these keys
            t = time.perf_counter()
            keys = (chunks.Key * n)()
            vals = (chunks.Leaf * n)()
            for i in range(n):
                keys[i].dev, keys[i].ino, keys[i].chunk = dev, 100 + i // 16, i % 16
                vals[i].cgid[0], vals[i].bits[0] = 1000 + i % 1000, (1 << 64) - 1
            _update(chunks, keys, vals)
            ikeys = (io.Key * n_io)()
            ivals = (io.Leaf * n_io)()
            for i in range(n_io):
                ikeys[i].dev, ikeys[i].ino, ikeys[i].cgid = dev, 100 + i, 1000 + i % 1000
                ivals[i].inserted_pages = 64
            _update(io, ikeys, ivals)
            fill = time.perf_counter() - t
            times = []
            for _ in range(3):
                t = time.perf_counter()
                r = col.read()
                times.append(time.perf_counter() - t)
            assert len(r.chunks) >= n, (len(r.chunks), n)
            t_read = statistics.median(times)
            print(f"  {n:>7} {n_io:>6} {fill:>7.2f} s {t_read * 1000:>7.1f} ms "
                  f"{t_read / (n + n_io) * 1e6:>8.2f}")
        finally:
            col.close()


def _update(table, keys, vals) -> None:
    try:
        table.items_update_batch(keys, vals)
    except Exception:     # kernels/BCC without batch ops
        for k, v in zip(keys, vals):
            table[k] = v


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per case (median)")
    ap.add_argument("--quick", action="store_true", help="skip the 50k-file cases")
    ap.add_argument("--probe-read", action="store_true",
                    help="also time TracepointSource.read() on filled BPF maps (root)")
    ap.add_argument("--no-aggregate", action="store_true", help="skip part 1")
    args = ap.parse_args()
    if not args.no_aggregate:
        part_aggregate(args.repeat, args.quick)
    if args.probe_read:
        part_probe_read((10000, 50000, 200000))
    return 0


if __name__ == "__main__":
    sys.exit(benchlib.run(main))
