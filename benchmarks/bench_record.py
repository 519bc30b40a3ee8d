"""The recorder: events/s it keeps up with, bytes per event, and the slowdown of
a cold read while `erofs-top record` runs.

Builds a real EROFS image (default 8 files, 128 MiB), mounts it file-backed,
and runs, all in the same run:

  offline     the pure-Python halves on 500k synthetic events: the writer
              (encode + compress + write) and the replay (file -> Readings)
  slowdown    one reader reads every file sequentially, its EROFS page cache
              dropped first (the image file stays cached: CPU-bound, the
              worst case for per-event costs): without erofs-top, with the
              probes attached but not recording (the live tiers' cost), and
              while `erofs-top record` runs (the real command, in its own
              process), interleaved, --rounds times; median wall-time ratios
  stress      2 reader processes doing 4 KiB random reads with readahead
              off (one order-0 page per read: the most events per byte), paced
              at rising rates (--stress-rates) for --stress-seconds each,
              recorded; the highest offered events/s with no event lost is
              the rate the recorder sustains; bytes per event

Run:  sudo .venv/bin/python benchmarks/bench_record.py [--rounds 3] [--json]
"""
from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

import benchlib  # noqa: F401  (sets sys.path)
from benchlib import MiB

SIZES_MIB = (8, 12, 16, 24, 32, 16, 12, 8)
CLI = [sys.executable, "-m", "erofs_top.cli"]

READER = r"""
import os, sys, time
t = time.perf_counter()
total = 0
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    while True:
        b = os.read(fd, 1 << 20)
        if not b:
            break
        total += len(b)
    os.close(fd)
print(time.perf_counter() - t, total)
"""

# 4 KiB preads in a shuffled order, readahead off, for argv[1] seconds at most
# argv[2] pages/s (0: as fast as it can); drops a file's cache whenever it has
# read all of it.  Prints pages read.
RANDOM_READER = r"""
import os, random, sys, time
secs, rate = float(sys.argv[1]), float(sys.argv[2])
paths = sys.argv[3:]
t0 = time.monotonic()
deadline = t0 + secs
rnd = random.Random(os.getpid())
pages = 0
while time.monotonic() < deadline:
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
        n = os.fstat(fd).st_size // 4096
        order = list(range(n)); rnd.shuffle(order)
        for i in order:
            os.pread(fd, 4096, i * 4096)
            pages += 1
            if pages % 256 == 0:
                now = time.monotonic()
                if now >= deadline:
                    break
                if rate and pages > rate * (now - t0):      # ahead of the pace: wait
                    time.sleep(pages / rate - (now - t0))
        os.close(fd)
        if time.monotonic() >= deadline:
            break
print(pages)
"""


class Recording:
    """`erofs-top record` in its own process, stopped with SIGINT (Ctrl-C).
    Waits for its "recording to" line (never pass -q: it silences that line)."""

    def __init__(self, out: str, *extra: str):
        self.out = out
        self.p = subprocess.Popen(CLI + ["record", "-o", out, *extra], stderr=subprocess.PIPE,
                                  stdout=subprocess.DEVNULL, text=True)
        line = self.p.stderr.readline()
        if "recording to" not in line:
            self.p.kill()
            sys.exit(f"erofs-top record did not start: {line}{self.p.stderr.read()}")

    def stop(self):
        self.p.send_signal(signal.SIGINT)
        try:
            _out, err = self.p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.communicate()
            sys.exit("erofs-top record did not stop within 120 s of SIGINT")
        from erofs_top.record.reader import Recording as R
        rec = R.open(self.out)
        return rec, err.strip()


def timed_read(cg, paths) -> float:
    r = cg.run([sys.executable, "-S", "-c", READER, *map(str, paths)],
               capture_output=True, text=True)
    return float(r.stdout.split()[0])


def offline(n_events: int, tmpdir: str) -> dict:
    from erofs_top.readings import PageEvent
    from erofs_top.record import format as fmt
    from erofs_top.record.reader import Recording as R
    from erofs_top.record.replay import Replayer
    from erofs_top.record.writer import RecordingWriter
    import random
    rnd = random.Random(5)
    evs = []
    t = 10**12
    for i in range(n_events):
        t += rnd.randrange(200, 4000)
        kind = 1 if i % 3 else 2
        evs.append(PageEvent(t, kind, 41 << 20 | 3, 40 + i % 50, (i * 4) % 60000,
                             rnd.choice((1, 1, 4, 16)), 1000 + i % 3, 2000 + i % 7))
    out = {}
    for codec in (fmt.CODEC_ZSTD, fmt.CODEC_ZLIB):
        if codec == fmt.CODEC_ZSTD and not fmt.zstd_available():
            continue
        path = os.path.join(tmpdir, f"off-{codec}.rec")
        t0 = time.perf_counter()
        w = RecordingWriter(path, codec=codec)
        w.write_json(fmt.BLOCK_META, {"started_at": time.time(), "mono_start_ns": 10**12,
                                      "page_size": 4096, "tier": "tracepoint"})
        for i in range(0, n_events, 4096):     # the recorder's poll batches
            w.add_events(evs[i:i + 4096])
        w.close({"ts_ns": t, "reason": "bench"})
        wt = time.perf_counter() - t0
        size = os.path.getsize(path)
        t0 = time.perf_counter()
        rec = R.open(path)
        rp = Replayer(rec)
        rp.advance_to(rec.end_ts_ns)
        rt = time.perf_counter() - t0
        name = fmt.CODEC_NAMES[codec]
        out[name] = {"writer_events_per_s": n_events / wt, "replay_events_per_s": n_events / rt,
                     "bytes_per_event": size / n_events}
        print(f"  {name:<5} writer {n_events / wt / 1e3:8.0f}k events/s   replay "
              f"{n_events / rt / 1e3:6.0f}k events/s   {size / n_events:5.2f} B/event")
    return out


def _add_args(ap) -> None:
    ap.add_argument("--rounds", type=int, default=7, help="rounds of each case (default 7)")
    ap.add_argument("--stress-seconds", type=float, default=4.0)
    ap.add_argument("--stress-rates", type=lambda t: [int(x) for x in t.split(",")],
                    default=[25_000, 50_000, 100_000, 200_000, 400_000],
                    help="offered 4 KiB page reads per second, in steps (comma list)")
    ap.add_argument("--offline-events", type=int, default=500_000)
    ap.add_argument("--scale", type=float, default=2.0,
                    help="multiply the file sizes (default 2: 256 MiB)")


def _slowdown(args, tmpdir: str, cg, paths: list, total_mib: float) -> dict:
    """Cold sequential read without erofs-top, with its probes, recording."""
    from erofs_top.tiers import open_collector
    print(f"\n[slowdown] {len(paths)} files, {total_mib:.0f} MiB, sequential cold "
          f"read (EROFS cache dropped, image cached), {args.rounds} rounds")
    rec_stats = []

    def measure(which: str, rnd: int) -> float:
        benchlib.drop_cache(paths)
        if which == "without":
            return timed_read(cg, paths)
        if which == "probes":
            col = open_collector()
            try:
                return timed_read(cg, paths)
            finally:
                col.close()
        r = Recording(os.path.join(tmpdir, f"slow{rnd}.rec"))
        try:
            return timed_read(cg, paths)
        finally:
            rec, _err = r.stop()
            rec_stats.append((rec.events_count, rec.lost_events, rec.file_size))
    times = benchlib.interleaved(("without", "probes", "recording"), args.rounds, measure)
    for which, ts in times.items():
        med = statistics.median(ts)
        print(f"  {which:<10} " + " ".join(f"{t:6.3f}" for t in ts)
              + f" s  median {med:.3f} s ({total_mib / med:.0f} MiB/s)")
    rat = benchlib.ratios(times, "without")
    print(f"  ratio probes/without: median {rat['probes']['median_ratio']:.3f}, best-of "
          f"{rat['probes']['best_of_ratio']:.3f}; recording/without: median "
          f"{rat['recording']['median_ratio']:.3f}, best-of "
          f"{rat['recording']['best_of_ratio']:.3f} (best-of: the least disturbed "
          f"runs on a shared machine)")
    ev = sum(s[0] for s in rec_stats)
    print(f"  {ev // len(rec_stats)} events per read pass, {sum(s[1] for s in rec_stats)} lost, "
          f"{sum(s[2] for s in rec_stats) / max(1, ev):.2f} B/event (file incl. metadata)")
    return {"times_s": times,
            "probes_ratio": rat["probes"]["median_ratio"],
            "recording_ratio": rat["recording"]["median_ratio"],
            "probes_ratio_best_of": rat["probes"]["best_of_ratio"],
            "recording_ratio_best_of": rat["recording"]["best_of_ratio"],
            "events_per_pass": ev / len(rec_stats),
            "lost_events": sum(s[1] for s in rec_stats)}


def _stress_step(args, tmpdir: str, cg, paths: list, rate: int) -> dict:
    r = Recording(os.path.join(tmpdir, f"stress{rate}.rec"))
    try:
        t0 = time.monotonic()
        procs = [cg.popen([sys.executable, "-S", "-c", RANDOM_READER,
                           str(args.stress_seconds), str(rate / 2), *paths[i::2]],
                          stdout=subprocess.PIPE, text=True) for i in range(2)]
        pages = sum(int(p.communicate()[0].strip() or 0) for p in procs)
        secs = time.monotonic() - t0
    finally:
        rec, _err = r.stop()
    offered = (rec.events_count + rec.lost_events) / secs
    bpe = rec.file_size / max(1, rec.events_count)
    print(f"  target {rate / 1e3:5.0f}k pages/s: read {pages / secs / 1e3:6.1f}k pages/s, "
          f"{offered / 1e3:6.1f}k events/s offered, {rec.events_count} recorded, "
          f"{rec.lost_events} lost, {bpe:.2f} B/event")
    return {"target_pages_per_s": rate, "pages_per_s": pages / secs,
            "offered_events_per_s": offered, "events": rec.events_count,
            "lost_events": rec.lost_events, "bytes_per_event": bpe}


def _stress(args, tmpdir: str, cg, paths: list) -> tuple[list, float | None]:
    """Offered load doubled until the kernel drops events."""
    print(f"\n[stress] 4 KiB random reads, readahead off, {args.stress_seconds:g} s per "
          f"step, recorded; offered load doubled until the kernel drops events")
    steps, best = [], None
    for rate in args.stress_rates:
        steps.append(_stress_step(args, tmpdir, cg, paths, rate))
        if steps[-1]["lost_events"]:
            break
        best = steps[-1]["offered_events_per_s"]
    if best is None:
        print("  lost events already at the lowest step")
    else:
        bound = "" if steps[-1]["lost_events"] else \
            "; no step lost events, so this is a lower bound: add --stress-rates"
        print(f"  sustained without loss: {best / 1e3:.0f}k events/s (highest step with "
              f"0 lost{bound})")
    return steps, best


def _body(args) -> dict:
    from erofs_top.workload import Stack, build_image, make_tree
    res: dict = {"rounds": args.rounds}
    tmpdir = tempfile.mkdtemp(prefix="erofs-top-bench-rec-", dir="/var/tmp")
    try:
        print(f"[offline] {args.offline_events} synthetic events")
        res["offline"] = offline(args.offline_events, tmpdir)
        files = {f"data/f{i:02d}.bin": max(1, int(s * args.scale * MiB))
                 for i, s in enumerate(SIZES_MIB)}
        with Stack(prefix="erofs-top-bench-") as st:
            src = make_tree(st.dir / "src", files, seed=12)
            img = build_image(src, st.dir / "rec.erofs", "-T0")
            for p in src.rglob("*"):
                if p.is_file():
                    p.unlink()
            mnt = st.mount(img, "rec", "file")
            cg = st.cgroup(f"erofs-top-bench-{os.getpid()}/reader")
            paths = [mnt.path(n) for n in files]
            timed_read(cg, paths)       # warm: image file cached, reader code paths
            res["slowdown"] = _slowdown(args, tmpdir, cg, paths, sum(files.values()) / MiB)
            res["stress"], res["sustained_events_per_s"] = _stress(args, tmpdir, cg, paths)
    finally:
        import shutil
        shutil.rmtree(tmpdir, ignore_errors=True)
    return res


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=True)


if __name__ == "__main__":
    sys.exit(main())
