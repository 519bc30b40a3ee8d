"""Cold read of a few hundred MiB of EROFS files with and without erofs-top.

Builds a real EROFS image (default 15 files, 4-64 MiB, 335 MiB in all), mounts
it (file-backed by default), and times one reader process that reads every
file sequentially inside a cgroup, the page cache dropped before each read
(POSIX_FADV_DONTNEED on every EROFS file and on the image file).  Three variants,
interleaved (rotating order), --rounds times each, in the same run:
  without  nothing attached
  empty    empty BPF programs on the same tracepoints (the floor any
           tracepoint-based tool pays; not erofs-top)
  with     erofs-top: a fresh tracepoint-tier collector (probes attached,
           seeded, refreshed every --refresh-interval seconds in a thread, as
           the TUI does)
Two cases:
  cold       the image file dropped too: EROFS misses read the disk
  img-warm   the image file kept cached: the EROFS page cache is cold but
             the data comes from memory (CPU-bound, the probes' worst case)
Each measurement is --passes cold reads of all files (the cache dropped
before each pass, only the reads timed), to rise above scheduler noise.
Prints per-round times and the median wall-time ratios with/without
(target <= 1.02) and empty/without.  The reader times itself (no process start-up inside).

Run:  sudo .venv/bin/python benchmarks/bench_coldread.py [--rounds 5]
"""
from __future__ import annotations

import os
import statistics
import sys
import threading
import time

import benchlib  # noqa: F401  (sets sys.path)
from benchlib import MiB

from erofs_top import pagecache
from erofs_top.workload import Stack, build_image, make_tree

# all sizes differ: same-size files would make every fresh collector hash them
SIZES_MIB = (4, 6, 8, 12, 16, 20, 24, 32, 48, 64, 40, 28, 18, 10, 5)

# One process reads all files, --passes times, dropping the page cache of the
# files (and of the image file, when given) after each pass; only the reads
# are timed (prints the sums of their wall and CPU seconds; CPU time, user +
# system of the reader, includes the probes that run in its context and is far
# less sensitive to other load on the machine than wall time).
READER = r"""
import os, sys, time
passes, drop_image = int(sys.argv[1]), sys.argv[2]
paths = sys.argv[3:]
def drop(p):
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
elapsed = cpu = 0.0
for _ in range(passes):
    for p in paths:
        drop(p)
    if drop_image != "-":
        drop(drop_image)
    t, c = time.perf_counter(), time.process_time()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        while os.read(fd, 1 << 20):
            pass
        os.close(fd)
    elapsed += time.perf_counter() - t
    cpu += time.process_time() - c
print(elapsed, cpu)
"""


class Empty:
    """Empty programs on erofs-top's tracepoints."""

    def __init__(self):
        from erofs_top.kernel import host
        self.bpf = benchlib.load_empty(host.tracepoints())
        self.refreshes = 0

    def close(self):
        self.bpf.cleanup()


class Attached:
    """erofs-top attached: a collector, refreshed in a thread until closed."""

    def __init__(self, interval_s: float):
        from erofs_top.tiers import open_collector
        self.col = open_collector()
        self.refreshes = 0
        self.stop = threading.Event()
        self.thread = None
        if interval_s > 0:
            self.thread = threading.Thread(target=self._loop, args=(interval_s,), daemon=True)
            self.thread.start()

    def _loop(self, interval_s):
        # refresh at once, then every interval: every measurement pays >= 1
        while True:
            self.model = self.col.refresh()
            self.refreshes += 1
            if self.stop.wait(interval_s):
                return

    def close(self):
        self.stop.set()
        if self.thread:
            self.thread.join()
        self.col.close()


def timed_read(cg, paths, passes: int = 1, drop_image: str = "-") -> tuple[float, float]:
    """(wall s, CPU s) of the reads."""
    r = cg.run([sys.executable, "-S", "-c", READER, str(passes), drop_image,
                *map(str, paths)], capture_output=True, text=True)
    wall, cpu = r.stdout.split()
    return float(wall), float(cpu)


def _add_args(ap) -> None:
    ap.add_argument("--rounds", type=int, default=6,
                    help="measurements per variant and case (default 6)")
    ap.add_argument("--passes", type=int, default=8,
                    help="cold reads of all files per measurement (default 8)")
    ap.add_argument("--mode", choices=("file", "loop"), default="file",
                    help="mount the image file-backed (default) or via a loop device")
    ap.add_argument("--refresh-interval", type=float, default=1.0, metavar="SECONDS",
                    help="model refresh period while attached (default 1 s; the first refresh runs at once, so every measurement pays at least one; the TUI uses 2 s; 0: none)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the file sizes (e.g. 0.25 for a quick run)")


def _attach(which: str, refresh_interval: float):
    from erofs_top.errors import CollectorError
    try:
        if which == "with":
            return Attached(refresh_interval)
        if which == "empty":
            return Empty()
    except CollectorError as e:
        sys.exit(f"erofs-top could not attach: {e}")
    except Exception as e:     # bcc: the compiler log
        sys.exit(f"BPF load failed: {str(e).splitlines()[-1]}")
    return None


def _case(args, cg, paths: list, drop_image: str) -> tuple[dict, dict, int]:
    """Every variant (without erofs-top, an empty BPF program, erofs-top
    attached) ``args.rounds`` times, rotating the order: (wall, CPU) times."""
    refreshes = 0

    def measure(which: str, _rnd: int):
        nonlocal refreshes
        att = _attach(which, args.refresh_interval)
        try:
            return timed_read(cg, paths, args.passes, drop_image)
        finally:
            if att:
                refreshes += att.refreshes
                att.close()
    both = benchlib.interleaved(("without", "empty", "with"), args.rounds, measure, rotate=True)
    times = {k: [w for w, _ in v] for k, v in both.items()}
    cpus = {k: [c for _, c in v] for k, v in both.items()}
    return times, cpus, refreshes


def _report(case: str, times: dict, cpus: dict, refreshes: int, args, total_mib: float) -> dict:
    med = {k: statistics.median(v) for k, v in times.items()}
    best = {k: min(v) for k, v in times.items()}
    ratio = med["with"] / med["without"]
    ratio_empty = med["empty"] / med["without"]
    paired = statistics.median(w / o for w, o in zip(times["with"], times["without"]))
    cmed = {k: statistics.median(v) for k, v in cpus.items()}
    print(f"\n[{case}]  (image file {'dropped' if case == 'cold' else 'cached'})")
    for which, ts in times.items():
        print(f"  {which:<8} " + " ".join(f"{t:6.3f}" for t in ts)
              + f"  s   median {med[which]:.3f} s "
              f"({args.passes * total_mib / med[which]:.0f} MiB/s); "
              f"reader CPU median {cmed[which]:.3f} s")
    print(f"  median ratio with/without: {ratio:.3f} (target <= 1.02); "
          f"empty/without: {ratio_empty:.3f}; median of per-round with/without "
          f"{paired:.3f}; {refreshes} refreshes while attached")
    print(f"  reader CPU-time ratio with/without: {cmed['with'] / cmed['without']:.3f}; "
          f"empty/without: {cmed['empty'] / cmed['without']:.3f}")
    print(f"  fastest-run ratio (least disturbed by other load) with/without: "
          f"{best['with'] / best['without']:.3f}; empty/without: "
          f"{best['empty'] / best['without']:.3f}")
    return {**{f"{k}_s": v for k, v in times.items()},
            "median_ratio": ratio, "empty_median_ratio": ratio_empty,
            "paired_median_ratio": paired,
            **{f"{k}_cpu_s": v for k, v in cpus.items()},
            "cpu_median_ratio": cmed["with"] / cmed["without"],
            "min_ratio": best["with"] / best["without"]}


def _body(args) -> dict:
    files = {f"data/f{i:02d}.bin": max(1, int(s * args.scale * MiB))
             for i, s in enumerate(SIZES_MIB)}
    out = {"rounds": args.rounds, "mode": args.mode, "files": len(files),
           "total_mib": sum(files.values()) / MiB, "cases": {}}
    with Stack(prefix="erofs-top-bench-") as st:
        t0 = time.monotonic()
        src = make_tree(st.dir / "src", files, seed=11)
        img = build_image(src, st.dir / "cold.erofs", "-T0")
        for p in src.rglob("*"):
            if p.is_file():
                p.unlink()        # the source tree is not needed: free its cache
        os.sync()                 # dirty image pages cannot be dropped
        mnt = st.mount(img, "cold", args.mode)
        cg = st.cgroup(f"erofs-top-bench-{os.getpid()}/reader")
        paths = [mnt.path(n) for n in files]
        print(f"{len(files)} files, {out['total_mib']:.0f} MiB, image mounted {args.mode}; "
              f"{args.rounds} rounds per case of {args.passes} cold passes each; refresh every "
              f"{args.refresh_interval:g} s while attached (set-up {time.monotonic() - t0:.1f} s)")
        benchlib.drop_cache(paths + [img])
        left = sum(pagecache.file_resident_pages(p) for p in paths + [str(img)])
        if left:
            print(f"warning: {left} pages stay cached after POSIX_FADV_DONTNEED")
        for case in ("cold", "img-warm"):
            if case == "img-warm":
                timed_read(cg, paths)       # brings the image into the cache
            times, cpus, refreshes = _case(args, cg, paths,
                                           str(img) if case == "cold" else "-")
            out["cases"][case] = _report(case, times, cpus, refreshes, args, out["total_mib"])
    return out


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=True)


if __name__ == "__main__":
    sys.exit(main())
