"""Reader CPU of a cold read of EROFS files with and without erofs-top (paired rounds).

Builds a real EROFS image (default 15 files, 4-64 MiB, 335 MiB in all), mounts
it (file-backed by default), and runs one reader process in a cgroup that
reads every file sequentially --passes times, the page cache of the files
dropped before each pass (POSIX_FADV_DONTNEED; in case `cold` the image
file's too).  Only the reads are counted: the reader's own CPU time (user +
system, CLOCK_PROCESS_CPUTIME_ID; the probes run in its context and are
charged there) and its wall time.

Each round measures four variants (five with --raw), back to back, in
rotating order:
  without    nothing attached
  without_b  nothing attached, again: the method's own noise floor
  empty      empty BPF programs on the same tracepoints (the floor any
             tracepoint-based tool pays; not erofs-top)
  raw        (--raw) the empty programs as raw tracepoint programs
  with       erofs-top: a fresh tracepoint-tier collector (probes attached,
             seeded, refreshed every --refresh-interval s in a thread, as the
             TUI does)
The benchmark process (the collector and its refresh thread) is pinned to
one CPU and the reader to another (--cpus), so refreshes do not take the
reader's CPU, and the reader runs SCHED_FIFO (--fifo), so other tasks do
not preempt it mid-read (their cache footprint was the largest noise).  The verdict uses per-round paired ratios (variant / without
of the same round): their median and a distribution-free 95 % confidence
interval (order statistics), printed with the noise floor (without_b /
without, empty / without).  Target: with/without reader CPU <= 1.02 in case
img-warm (the image file cached: the EROFS page cache is cold but the data
comes from memory: CPU-bound, the probes' worst case).  Case `cold` (the
image file dropped too: misses read the disk) with --cases cold,img-warm.
Before and after the rounds one untimed pass counts the folios inserted by
order (the probes pay per insertion: fewer large folios, more events).

Ablations: --candidate a.c (repeatable) adds a variant `cand:a`, a collector
like `with` whose probe is a.c instead of probes/filemap.c (same maps, so the
collector reads it; e.g. a copy with parts removed).  --bpf-stats keeps BPF
run-time statistics on and reports, per attached variant, the programs' run
time during the timed reads (per measurement: the add program's ns per event
and in all, the flush programs' runs and ns, which user space's refreshes run
in IPIs on both CPUs and which this kernel charges to the task they
interrupt); the statistics add their own clock reads to every variant with
programs.

Run:  sudo .venv/bin/python benchmarks/bench_coldread.py   (~2 min; under
      the heavy-work lock on a shared machine)
"""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import benchlib  # noqa: F401  (sets sys.path)
from benchlib import MiB

from erofs_top import pagecache
from erofs_top.workload import Stack, build_image, make_tree

# all sizes differ: same-size files would make every fresh collector hash them
SIZES_MIB = (4, 6, 8, 12, 16, 20, 24, 32, 48, 64, 40, 28, 18, 10, 5)
VARIANTS = ("without", "without_b", "empty", "with")
TARGET = 1.02

# One process pins itself to a CPU (argv[1], -1: no pinning), reads all files
# --passes times, dropping the page cache of the files (and of the image file,
# when given) before each pass; only the reads are counted.  Prints the sums of
# their wall, CPU (user + system), user and system seconds, and of the
# voluntary (it waited) and involuntary (it was preempted) context switches.
READER = r"""
import os, resource, sys, time
cpu_no, fifo, passes, drop_image = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
paths = sys.argv[5:]
if cpu_no >= 0:
    os.sched_setaffinity(0, {cpu_no})
if fifo:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(fifo))
def drop(p):
    fd = os.open(p, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
elapsed = cpu = user = system = vcsw = ivcsw = 0.0
for _ in range(passes):
    for p in paths:
        drop(p)
    if drop_image != "-":
        drop(drop_image)
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t, c = time.perf_counter(), time.process_time()
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        while os.read(fd, 1 << 20):
            pass
        os.close(fd)
    elapsed += time.perf_counter() - t
    cpu += time.process_time() - c
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    user += r1.ru_utime - r0.ru_utime
    system += r1.ru_stime - r0.ru_stime
    vcsw += r1.ru_nvcsw - r0.ru_nvcsw
    ivcsw += r1.ru_nivcsw - r0.ru_nivcsw
print(elapsed, cpu, user, system, vcsw, ivcsw)
"""


# --raw: the same empty programs as raw tracepoint programs (no trace record)
EMPTY_RAW_SRC = """
RAW_TRACEPOINT_PROBE(mm_filemap_add_to_page_cache) { return 0; }
RAW_TRACEPOINT_PROBE(mm_filemap_delete_from_page_cache) { return 0; }
#ifdef HAVE_EROFS_READAHEAD
RAW_TRACEPOINT_PROBE(erofs_readahead) { return 0; }
#endif
#ifdef HAVE_EROFS_READ_FOLIO
RAW_TRACEPOINT_PROBE(erofs_read_folio) { return 0; }
#endif
"""


class Empty:
    """Empty programs on erofs-top's tracepoints (raw tracepoint programs
    with ``raw``)."""

    def __init__(self, raw: bool = False):
        from erofs_top.kernel import host
        if raw:
            from bcc import BPF
            events = host.tracepoints()
            flags = [f"-DHAVE_EROFS_{n.upper()}" for n in ("readahead", "read_folio")
                     if events.get(f"erofs:erofs_{n}")]
            self.bpf = BPF(text=EMPTY_RAW_SRC, cflags=flags)
        else:
            self.bpf = benchlib.load_empty(host.tracepoints())
        self.refreshes = 0

    def close(self):
        self.bpf.cleanup()


class Attached:
    """erofs-top attached: a collector, refreshed in a thread until closed;
    with ``probe``, its probe source is that file instead of probes/filemap.c."""

    def __init__(self, interval_s: float, probe=None):
        from erofs_top.tiers import open_collector
        if probe is None:
            self.col = open_collector()
        else:
            from erofs_top.kernel import probes
            real = probes.probe_file
            probes.probe_file = lambda name: probe if name == "filemap.c" else real(name)
            try:
                self.col = open_collector()
            finally:
                probes.probe_file = real
        self.bpf = self.col.source.bpf
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


def timed_read(cg, paths, passes: int = 1, drop_image: str = "-",
               cpu_no: int = -1, fifo: int = 0) -> dict[str, float]:
    """The reader's wall, CPU, user and system seconds of the reads and its
    context switches meanwhile (voluntary, involuntary)."""
    r = cg.run([sys.executable, "-S", "-c", READER, str(cpu_no), str(fifo), str(passes), drop_image,
                *map(str, paths)], capture_output=True, text=True)
    wall, cpu, user, system, vcsw, ivcsw = map(float, r.stdout.split())
    return {"wall": wall, "cpu": cpu, "user": user, "sys": system,
            "vcsw": vcsw, "ivcsw": ivcsw}


def _add_args(ap) -> None:
    ap.add_argument("--rounds", type=int, default=40,
                    help="rounds per case; each measures every variant once, in "
                         "rotating order (default 30)")
    ap.add_argument("--passes", type=int, default=3,
                    help="cold reads of all files per measurement (default 3)")
    ap.add_argument("--cases", default="img-warm",
                    help="comma-separated: img-warm (image file cached; the target), "
                         "cold (image file dropped too) (default img-warm)")
    ap.add_argument("--cpus", default="0,1", metavar="COLLECTOR,READER",
                    help="CPU of this process (collector, refresh thread, BPF loads) and "
                         "of the reader (default 0,1; 'none': no pinning)")
    ap.add_argument("--fifo", type=int, default=1, metavar="PRIORITY",
                    help="run the reader SCHED_FIFO at this priority, so that other tasks "
                         "do not preempt it and evict its caches mid-read (default 1; 0: "
                         "SCHED_OTHER; the kernel's RT throttling still leaves 5 %% of the CPU "
                         "to others)")
    ap.add_argument("--raw", action="store_true",
                    help="a fifth variant, raw: the empty programs as raw tracepoint "
                         "programs (no trace record built)")
    ap.add_argument("--mode", choices=("file", "loop"), default="file",
                    help="mount the image file-backed (default) or via a loop device")
    ap.add_argument("--refresh-interval", type=float, default=1.0, metavar="SECONDS",
                    help="model refresh period while attached (default 1 s; the first refresh "
                         "runs at once, so every measurement pays at least one; the TUI uses "
                         "2 s; 0: none)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the file sizes (e.g. 0.25 for a quick run)")
    ap.add_argument("--candidate", type=Path, action="append", default=[],
                    help="a candidate probe source (same maps as probes/filemap.c, its "
                         "headers next to it): one more variant, cand:<name> (repeatable)")
    ap.add_argument("--with-r0", action="store_true",
                    help="one more variant, with_r0: erofs-top attached as in `with` but "
                         "never refreshed (no refresh thread: no read, no flush IPIs)")
    ap.add_argument("--bpf-stats", action="store_true",
                    help="BPF run-time statistics on; report the programs' run time "
                         "during the timed reads of the attached variants")


def _attach(which: str, args):
    from erofs_top.errors import CollectorError
    try:
        if which == "with":
            return Attached(args.refresh_interval)
        if which == "with_r0":
            return Attached(0)
        if which.startswith("cand:"):
            cand = {f"cand:{c.stem}": c for c in args.candidate}
            return Attached(args.refresh_interval, probe=cand[which].resolve())
        if which in ("empty", "raw"):
            return Empty(raw=which == "raw")
    except CollectorError as e:
        sys.exit(f"erofs-top could not attach: {e}")
    except Exception as e:     # bcc: the compiler log
        sys.exit(f"BPF load failed: {str(e).splitlines()[-1]}")
    return None


def _case(args, cg, paths: list, drop_image: str, reader_cpu: int) -> tuple[dict, int]:
    """Every variant ``args.rounds`` times, the order rotating each round:
    variant -> [timed_read() of each round]."""
    refreshes = 0

    def measure(which: str, _rnd: int):
        nonlocal refreshes
        att = _attach(which, args)
        try:
            before = benchlib.prog_stats(att.bpf) if att else {}
            out = timed_read(cg, paths, args.passes, drop_image, reader_cpu, args.fifo)
            if att and args.bpf_stats:
                out.update(stats_fields(benchlib.stats_delta(benchlib.prog_stats(att.bpf), before)))
            return out
        finally:
            if att:
                refreshes += att.refreshes
                att.close()
    variants = (VARIANTS + (("raw",) if args.raw else ()) + (("with_r0",) if args.with_r0 else ())
                + tuple(f"cand:{c.stem}" for c in args.candidate))
    return benchlib.interleaved(variants, args.rounds, measure, rotate=True), refreshes


def stats_fields(delta: dict[str, tuple[int, int]]) -> dict[str, float]:
    """A measurement's BPF statistics (benchlib.stats_delta of the timed reads):
    the add program's ns and runs, the flush programs' (kernel/slots.py)."""
    add = delta.get("mm_filemap_add_to_page_cache", (0, 0))
    flush = [v for k, v in delta.items() if k.startswith("flush_io")]
    return {"add_ns": float(add[0]), "add_runs": float(add[1]),
            "flush_ns": float(sum(v[0] for v in flush)),
            "flush_runs": float(sum(v[1] for v in flush))}


# Not timed: the folio orders one pass inserts on the EROFS device (the
# probes' cost is per insertion: fewer large folios, more events per MiB).
ORDERS_SRC = """
BPF_ARRAY(orders, u64, 16);
TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache) {
    if (args->s_dev != EROFS_DEV)
        return 0;
    u32 o = args->order < 15 ? args->order : 15;
    u64 *c = orders.lookup(&o);
    if (c)
        __sync_fetch_and_add(c, 1);
    return 0;
}
"""


def folio_orders(cg, paths, drop_image: str, cpu_no: int) -> dict[int, int]:
    """{order: insertions} of one untimed pass of the reader."""
    from bcc import BPF
    from erofs_top.readings import kdev_from_st_dev
    dev = kdev_from_st_dev(os.stat(paths[0]).st_dev)
    bpf = BPF(text=ORDERS_SRC.replace("EROFS_DEV", str(dev)))
    try:
        timed_read(cg, paths, 1, drop_image, cpu_no)
        return {k.value: v.value for k, v in bpf["orders"].items() if v.value}
    finally:
        bpf.cleanup()


def _orders_line(orders: dict[int, int]) -> str:
    return (f"{sum(orders.values())} EROFS insertions per pass ("
            + ", ".join(f"order {o}: {n}" for o, n in sorted(orders.items())) + ")")


def paired(runs: dict[str, list[dict]], key: str, num: str, den: str = "without") -> list[float]:
    """Per-round ratios num / den of one figure (rounds measured both)."""
    return [a[key] / b[key] for a, b in zip(runs[num], runs[den])]


def verdict(lo: float, hi: float, coverage: float, target: float = TARGET) -> str:
    if coverage < 0.95:
        return f"no verdict (a {coverage:.0%} interval: 6 rounds or more give 95 %)"
    if hi <= target:
        return "met"
    if lo > target:
        return f"missed (by {lo - 1:.1%} to {hi - 1:.1%} of reader CPU, target {target - 1:.0%})"
    return f"unresolved (the interval spans {target})"


def _report(case: str, runs: dict, refreshes: int, args, total_mib: float) -> dict:
    print(f"\n[{case}]  (image file {'dropped' if case == 'cold' else 'cached'}); "
          f"{args.rounds} rounds; per variant: median of its rounds")
    for which, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        print(f"  {which:<9} reader CPU {med['cpu']:.3f} s (user {med['user']:.3f}, sys "
              f"{med['sys']:.3f}), wall {med['wall']:.3f} s "
              f"({args.passes * total_mib / med['wall']:.0f} MiB/s); context switches "
              f"{med['vcsw']:.0f} voluntary, {med['ivcsw']:.0f} involuntary")
    out: dict = {"runs": runs, "refreshes": refreshes}
    _report_stats(runs)
    cands = tuple(w for w in runs if w.startswith("cand:"))
    print("  per-round paired ratios to `without` of the same round: median [95 % CI]")
    for key in ("cpu", "wall"):
        more = tuple(w for w in ("raw", "with_r0") if w in runs) + cands
        for num in ("with", "empty", "without_b") + more:
            med, lo, hi, cov = benchlib.median_ci(paired(runs, key, num))
            out[f"{key}_{num}_ratio"] = {"median": med, "ci": [lo, hi], "coverage": cov}
            label = {"cpu": "reader CPU", "wall": "wall"}[key]
            extra = f"  -> {verdict(lo, hi, cov)}" if (key, num) == ("cpu", "with") else ""
            print(f"    {label:<10} {num + '/without':<17} {med:.4f} [{lo:.4f}, {hi:.4f}] "
                  f"({cov:.1%}){extra}")
    med, lo, hi, cov = benchlib.median_ci(paired(runs, "cpu", "with", "empty"))
    out["cpu_with_over_empty"] = {"median": med, "ci": [lo, hi], "coverage": cov}
    print(f"    reader CPU with/empty         {med:.4f} [{lo:.4f}, {hi:.4f}] (erofs-top "
          f"beyond the empty programs); {refreshes} refreshes while attached")
    for c in cands + (("with_r0",) if "with_r0" in runs else ()):
        med, lo, hi, cov = benchlib.median_ci(paired(runs, "cpu", c, "with"))
        out[f"cpu_{c}_over_with"] = {"median": med, "ci": [lo, hi], "coverage": cov}
        print(f"    reader CPU {c}/with {med:.4f} [{lo:.4f}, {hi:.4f}] ({cov:.1%})")
    if "raw" in runs:
        med, lo, hi, cov = benchlib.median_ci(paired(runs, "cpu", "raw", "empty"))
        out["cpu_raw_over_empty"] = {"median": med, "ci": [lo, hi], "coverage": cov}
        print(f"    reader CPU raw/empty           {med:.4f} [{lo:.4f}, {hi:.4f}] (raw vs "
              f"ordinary tracepoint programs, both empty)")
    return out


def _report_stats(runs: dict) -> None:
    """--bpf-stats: per variant with programs, medians over its measurements."""
    for which, rs in runs.items():
        if "add_ns" not in rs[0]:
            continue
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0]}
        per = med["add_ns"] / med["add_runs"] if med["add_runs"] else 0.0
        print(f"  {which:<9} BPF stats in the timed reads: add {med['add_runs']:.0f} runs, "
              f"{per:.0f} ns/run, {med['add_ns'] / 1e6:.3f} ms ({med['add_ns'] / 1e7 / med['cpu']:.2f} "
              f"% of reader CPU); flush {med['flush_runs']:.0f} runs, "
              f"{med['flush_ns'] / 1e6:.3f} ms")


def _pin(spec: str) -> int:
    """(reader CPU, -1 for none) after pinning this process to the collector's CPU."""
    if spec == "none":
        return -1
    mine, reader = (int(c) for c in spec.split(","))
    os.sched_setaffinity(0, {mine})
    return reader


def _environment() -> str:
    try:
        import bcc
        bcc_v = getattr(bcc, "__version__", "?")
    except ImportError:
        bcc_v = "missing"
    commit = subprocess.run(["git", "-C", str(benchlib.REPO), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    return (f"kernel {platform.release()}, BCC {bcc_v}, Python {platform.python_version()}, "
            f"commit {commit}, {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}, "
            f"load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


def _body(args) -> dict:
    files = {f"data/f{i:02d}.bin": max(1, int(s * args.scale * MiB))
             for i, s in enumerate(SIZES_MIB)}
    out = {"rounds": args.rounds, "passes": args.passes, "mode": args.mode,
           "files": len(files), "total_mib": sum(files.values()) / MiB, "cases": {}}
    cases = args.cases.split(",")
    if set(cases) - {"cold", "img-warm"}:
        sys.exit(f"unknown case in {args.cases!r}: cold, img-warm")
    reader_cpu = _pin(args.cpus)
    print(_environment())
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
              f"{args.rounds} rounds per case of {args.passes} cold passes per variant; "
              f"CPUs (this process, reader): {args.cpus}; refresh every "
              f"{args.refresh_interval:g} s while attached (set-up {time.monotonic() - t0:.1f} s)")
        benchlib.drop_cache(paths + [img])
        left = sum(pagecache.file_resident_pages(p) for p in paths + [str(img)])
        if left:
            print(f"warning: {left} pages stay cached after POSIX_FADV_DONTNEED")
        for case in cases:
            if case == "img-warm":
                timed_read(cg, paths)       # brings the image into the cache
            drop_image = str(img) if case == "cold" else "-"
            before = folio_orders(cg, paths, drop_image, reader_cpu)
            with benchlib.bpf_stats() if args.bpf_stats else contextlib.nullcontext():
                runs, refreshes = _case(args, cg, paths, drop_image, reader_cpu)
            out["cases"][case] = _report(case, runs, refreshes, args, out["total_mib"])
            after = folio_orders(cg, paths, drop_image, reader_cpu)
            print(f"  before the rounds: {_orders_line(before)}\n"
                  f"  after the rounds:  {_orders_line(after)}")
            out["cases"][case]["folio_orders"] = {"before": before, "after": after}
    print(_environment())
    return out


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=True, full_doc=True)


if __name__ == "__main__":
    sys.exit(main())
