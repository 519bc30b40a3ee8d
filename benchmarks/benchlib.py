"""Shared helpers of the erofs-top benchmarks (not a test module).

- BPF run-time statistics: enabled through BPF_ENABLE_STATS (an fd that keeps
  them on until it is closed, so an interrupted benchmark never leaves
  kernel.bpf_stats_enabled switched on), falling back to the sysctl (restored
  on exit) on kernels without that command (< 5.8).
- Per-program run_time_ns / run_cnt from /proc/self/fdinfo.
- An "empty" BPF program on the same tracepoints: the per-event baseline.
"""
from __future__ import annotations

import contextlib
import ctypes
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MiB = 1 << 20
BPF_ENABLE_STATS = 32           # enum bpf_cmd
BPF_STATS_RUN_TIME = 0
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361,
            "s390x": 351}.get(platform.machine())
SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")

# An empty program per tracepoint: what the kernel pays to run any BPF program
# there (dispatch + the run-time accounting itself).  The probe's cost is
# reported as a ratio to this, measured on the same events in the same run.
EMPTY_SRC = """
#include <uapi/linux/ptrace.h>
typedef u64 erofs_nid_t;     /* named by the erofs tracepoint formats */
typedef u64 erofs_off_t;
typedef u64 erofs_blk_t;
TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache) { return 0; }
TRACEPOINT_PROBE(filemap, mm_filemap_delete_from_page_cache) { return 0; }
#ifdef HAVE_EROFS_READAHEAD
TRACEPOINT_PROBE(erofs, erofs_readahead) { return 0; }
#endif
#ifdef HAVE_EROFS_READ_FOLIO
TRACEPOINT_PROBE(erofs, erofs_read_folio) { return 0; }
#endif
"""


def need_root() -> None:
    if os.geteuid() != 0:
        sys.exit("this benchmark needs root (it loads BPF programs, mounts images "
                 "and makes cgroups)")


@contextlib.contextmanager
def bpf_stats():
    """Keep BPF run-time statistics on for the duration of the block."""
    fd = -1
    if _SYS_BPF is not None:
        libc = ctypes.CDLL(None, use_errno=True)
        attr = (ctypes.c_uint32 * 2)(BPF_STATS_RUN_TIME, 0)
        fd = libc.syscall(_SYS_BPF, BPF_ENABLE_STATS, ctypes.byref(attr),
                          ctypes.sizeof(attr))
    if fd >= 0:
        try:
            yield "BPF_ENABLE_STATS"
        finally:
            os.close(fd)
        return
    old = SYSCTL.read_text().strip()
    SYSCTL.write_text("1")
    try:
        yield "sysctl kernel.bpf_stats_enabled"
    finally:
        SYSCTL.write_text(old)


def prog_stats(bpf) -> dict[str, tuple[int, int]]:
    """{tracepoint name: (run_time_ns, run_cnt)} of the programs a BCC object loaded."""
    out: dict[str, tuple[int, int]] = {}
    for name, fn in getattr(bpf, "funcs", {}).items():
        short = (name.decode() if isinstance(name, bytes) else name).split("__")[-1]
        try:
            text = Path(f"/proc/self/fdinfo/{fn.fd}").read_text()
        except OSError:
            continue
        vals = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if "run_time_ns" in vals:
            out[short] = (int(vals["run_time_ns"]), int(vals["run_cnt"]))
    return out


def stats_delta(after: dict, before: dict) -> dict[str, tuple[int, int]]:
    return {k: (v[0] - before.get(k, (0, 0))[0], v[1] - before.get(k, (0, 0))[1])
            for k, v in after.items()}


def load_empty(events: dict[str, bool]):
    """BCC object with empty programs on the tracepoints the probe uses."""
    from bcc import BPF
    cflags = []
    if events.get("erofs:erofs_readahead"):
        cflags.append("-DHAVE_EROFS_READAHEAD")
    if events.get("erofs:erofs_read_folio"):
        cflags.append("-DHAVE_EROFS_READ_FOLIO")
    return BPF(text=EMPTY_SRC, cflags=cflags)


# Not timed: counts add/delete events per s_dev, so a phase can say which
# share of the events were its own (other processes on the machine add theirs).
MIX_SRC = """
BPF_HASH(adds, u32, u64, 1024);
BPF_HASH(dels, u32, u64, 1024);
TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache) {
    u32 dev = args->s_dev;
    adds.increment(dev);
    return 0;
}
TRACEPOINT_PROBE(filemap, mm_filemap_delete_from_page_cache) {
    u32 dev = args->s_dev;
    dels.increment(dev);
    return 0;
}
"""


def load_mix():
    from bcc import BPF
    return BPF(text=MIX_SRC)


def read_mix(bpf) -> dict[str, dict[int, int]]:
    return {name: {k.value: v.value for k, v in bpf[name].items()} for name in ("adds", "dels")}


def run(main) -> int:
    """Run a benchmark's main(): one line instead of a traceback for the
    expected failures and for Ctrl-C (the Stack has unwound by then)."""
    from erofs_top.errors import CollectorError
    from erofs_top.workload import WorkloadError
    try:
        return main()
    except KeyboardInterrupt:
        print("\ninterrupted: mounts, loop devices and cgroups it made are removed",
              file=sys.stderr)
        return 130
    except (WorkloadError, CollectorError, OSError) as e:
        print(f"benchmark failed: {e}", file=sys.stderr)
        return 1


def drop_cache(paths) -> None:
    """POSIX_FADV_DONTNEED on every path (EROFS files, image files)."""
    from erofs_top.workload import drop_file_cache
    for p in paths:
        drop_file_cache(str(p))


def rss_mib() -> float:
    """This process's resident set (VmRSS), MiB."""
    with open("/proc/self/status") as f:
        return next(int(ln.split()[1]) for ln in f if ln.startswith("VmRSS:")) / 1024


def median_cpu_ms(fn, rounds: int) -> float:
    """Median CPU (ms, this process) of ``rounds`` calls of fn()."""
    runs = []
    for _ in range(rounds):
        t = time.process_time()
        fn()
        runs.append((time.process_time() - t) * 1e3)
    return statistics.median(runs)


def median(xs):
    return statistics.median(xs)


def median_ci(xs, conf: float = 0.95) -> tuple[float, float, float, float]:
    """(median, low, high, coverage): a distribution-free confidence interval
    for the median from order statistics.  With n values sorted, [x_(k),
    x_(n+1-k)] holds the true median with probability 1 - 2 P(Bin(n, 1/2) < k);
    k is the largest with that probability >= ``conf``; coverage is that
    probability.  Under 6 values no k >= 1 reaches 95 %: (min, max) and its
    coverage, smaller than asked."""
    import math
    xs = sorted(xs)
    n = len(xs)
    if n == 0:
        raise ValueError("no values")
    tail, k = 0.0, 0
    while k < n // 2:
        nxt = tail + math.comb(n, k) / 2 ** n      # P(Bin < k + 1)
        if 1 - 2 * nxt < conf:
            break
        tail, k = nxt, k + 1
    k = max(k, 1)
    tail = sum(math.comb(n, i) for i in range(k)) / 2 ** n
    return statistics.median(xs), xs[k - 1], xs[n - k], 1 - 2 * tail


def fmt_ms(s: float) -> str:
    return f"{s * 1000:.1f} ms"


# ---------------------------------------------------------------- the driver
def bench_main(doc: str, add_args, body, *, root: bool, full_doc: bool = False) -> int:
    """What every benchmark's main() does: parse its options (``add_args(ap)``),
    check root, make SIGTERM unwind like Ctrl-C (mounts and cgroups removed),
    run ``body(args) -> dict`` through run(), print the figures as JSON with
    --json.  --help shows the docstring's first line, or all of it with
    ``full_doc``.  Returns the exit status."""
    import argparse
    import json
    import signal
    if full_doc:
        ap = argparse.ArgumentParser(description=doc,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    else:
        ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    add_args(ap)
    ap.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = ap.parse_args()
    if root:
        need_root()
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    figures: dict = {}

    def main() -> int:
        figures.update(body(args) or {})
        return 0
    status = run(main)
    if status == 0 and args.json:
        print(json.dumps(figures, indent=1))
    return status


def interleaved(cases, rounds: int, measure, *, rotate: bool = False) -> dict[str, list]:
    """``measure(case, round) -> value`` for every case in every round, the
    order reversed every other round (ABC, CBA, ...), or rotated with
    ``rotate`` (ABC, BCA, CAB), so that a drift of the machine hits every
    case alike.  Returns case -> values."""
    cases = list(cases)
    values: dict[str, list] = {c: [] for c in cases}
    for rnd in range(rounds):
        if rotate:
            order = cases[rnd % len(cases):] + cases[:rnd % len(cases)]
        else:
            order = cases if rnd % 2 == 0 else cases[::-1]
        for case in order:
            values[case].append(measure(case, rnd))
    return values


def ratios(values: dict[str, list[float]], baseline: str) -> dict[str, dict[str, float]]:
    """Per case: median and best-of (the least disturbed run on a shared
    machine) as ratios to the baseline case measured in the same rounds."""
    base_med, base_best = median(values[baseline]), min(values[baseline])
    return {c: {"median_ratio": median(v) / base_med, "best_of_ratio": min(v) / base_best}
            for c, v in values.items() if c != baseline}


class GcPauses:
    """Collections of the cyclic GC (any thread) and how long each held the GIL."""

    def __init__(self):
        import gc
        self.gc, self.t0, self.by_gen = gc, 0.0, {0: [], 1: [], 2: []}
        gc.callbacks.append(self._cb)

    def _cb(self, phase, info):
        if phase == "start":
            self.t0 = time.perf_counter()
        else:
            self.by_gen[info["generation"]].append(time.perf_counter() - self.t0)

    def close(self):
        if self._cb in self.gc.callbacks:
            self.gc.callbacks.remove(self._cb)

    def summary(self) -> str:
        return ", ".join(f"gen{g}: {len(v)} x, max {max(v, default=0) * 1e3:.0f} ms, "
                         f"sum {sum(v) * 1e3:.0f} ms" for g, v in self.by_gen.items())


def thaw_and_collect() -> tuple[int, float]:
    """Unfreeze (aggregate.FREEZE) and run one full collection: the unreachable
    objects it finds (cyclic garbage the run left, frozen or not) and its time."""
    import gc
    t = time.perf_counter()
    gc.unfreeze()
    found = gc.collect()
    return found, time.perf_counter() - t


# ------------------------------------------------------------ checkouts side by side
def add_tree_args(ap) -> None:
    """--tree NAME=PATH (repeatable) and --rounds, for benchmarks that run
    each checkout in a child process of its own."""
    ap.add_argument("--tree", action="append", default=[],
                    help="NAME=PATH of a checkout (repeat; the first is the baseline); "
                         "default: this checkout only")
    ap.add_argument("--rounds", type=int, default=2)


def trees_of(args) -> dict[str, str]:
    trees = dict(t.split("=", 1) for t in args.tree) or {"this": str(REPO)}
    return {k: os.path.abspath(v) for k, v in trees.items()}


def child_json(child: str, *argv) -> dict:
    """Run ``child`` (Python source) in a fresh interpreter with ``argv`` and
    return the JSON object it prints: one checkout measured in a process of
    its own (no state or warm caches shared with the others)."""
    out = subprocess.run([sys.executable, "-c", child, *map(str, argv)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def print_alloc_sites(stats, limit: int, per: int = 0) -> None:
    """The first ``limit`` tracemalloc StatisticDiffs: MiB (and B per one of
    ``per`` things: files), blocks, and where (the last two path parts:line)."""
    for s in stats[:limit]:
        fr = s.traceback[0]
        each = f" {s.size_diff / per:6.1f} B/file" if per else ""
        print(f"  {s.size_diff / 2**20:7.1f} MiB{each} {s.count_diff:>9} blocks  "
              f"{'/'.join(fr.filename.rsplit('/', 2)[-2:])}:{fr.lineno}")


def summarize_keys(values: dict[str, list[dict]], keys) -> dict:
    """Per key: the median of each tree's rounds and the ratios against the
    first tree; printed one line per key."""
    base = next(iter(values))
    result = {}
    for key in keys:
        per = {name: [v[key] for v in vs] for name, vs in values.items()}
        result[key] = {"median": {n: median(x) for n, x in per.items()},
                       "ratios": ratios(per, base) if len(per) > 1 else {}}
        meds = ", ".join(f"{n} {m:.3g}" for n, m in result[key]["median"].items())
        rat = ", ".join(f"{n}/{base} {r['median_ratio']:.3f} (best-of {r['best_of_ratio']:.3f})"
                        for n, r in result[key]["ratios"].items())
        print(f"  {key}: median {meds}" + (f"; {rat}" if rat else ""))
    return result



def wrap_timed(owner, name: str, label: str, spent: dict) -> None:
    """Replace owner.name by a wrapper that adds its process CPU seconds to
    spent[label] (the phase scripts: refresh_phases.py, exporter_phases.py)."""
    import functools
    fn = getattr(owner, name)

    @functools.wraps(fn)
    def timed(*a, **k):
        t = time.process_time()
        try:
            return fn(*a, **k)
        finally:
            spent[label] = spent.get(label, 0.0) + time.process_time() - t
    setattr(owner, name, timed)


def add_phase_args(ap, steps: int) -> None:
    """The phase scripts' node and churn options."""
    ap.add_argument("--files", type=int, default=250_000)
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--churn", type=float, default=1.0, help="percent of chunk entries changed")
    ap.add_argument("--steps", type=int, default=steps, help="timed refreshes")


def add_age_args(ap) -> None:
    """The options of a synthetic node that has run a while (synthetic_node.py:
    SyntheticNode rereads, age); aged_node() makes it."""
    ap.add_argument("--rereads", action="store_true",
                    help="churn's first reads are of files evicted whole before (the node's "
                    "files stay a fixed set), not new files (synthetic_node.py)")
    ap.add_argument("--aged", type=int, default=0, metavar="N",
                    help="N churns made before the first refresh (SyntheticNode.age)")


def aged_node(args, **kwargs):
    """SyntheticNode(--files, --containers) with add_age_args' options applied
    (aged at --churn %)."""
    from synthetic_node import SyntheticNode     # (it imports this module)
    node = SyntheticNode(args.files, args.containers, rereads=args.rereads, **kwargs)
    node.age(args.aged, args.churn / 100)
    return node


def print_tree_ratios(values: dict[str, list[float]], trees: dict[str, str],
                      digits: int = 3) -> dict[str, dict[str, float]]:
    """ratios() of every tree to the first (the baseline), printed a line each."""
    base = next(iter(trees))
    ratio = ratios(values, base)
    for tree, r in ratio.items():
        print(f"  {tree} / {base}: median {r['median_ratio']:.{digits}f}, "
              f"best-of {r['best_of_ratio']:.{digits}f}", flush=True)
    return ratio


# a child's cached_pages(paths): each file's or device's cached pages by
# cachestat(2), through the checkout's own pagecache module (every tree has it)
CACHED_PAGES_SRC = r"""
def cached_pages(paths):
    out = []
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            out.append(pagecache.cachestat(fd, 0, 0)["nr_cache"])
        finally:
            os.close(fd)
    return out
"""


def steady_refreshes(node, agg, steps: int, churn_pct: float, spent: dict,
                     before_step=None) -> tuple[float, int]:
    """The phase scripts' run: a full pass and one refresh to settle
    (untimed), then ``steps`` refreshes each after ``churn_pct`` % churn,
    ``spent`` cleared before the first timed one; ``before_step(step)`` is
    called after each churn.  Returns (CPU seconds of the timed refreshes,
    files changed over them)."""
    import gc
    total, changed = 0.0, 0
    r = None
    for step in range(steps + 2):
        if step:
            node.churn(churn_pct / 100)
        if before_step is not None:
            before_step(step)
        # The previous Readings stay alive until the update is timed: the
        # synthetic node's are whole copies (a list of every chunk, dicts of
        # every file and io row: ~6 ms to free at 250,000 files), which the
        # aggregator lets go of in the update; the probe source's are views
        # of its kept state (maps.Snapshots), freed in proportion to what
        # changed (docs/performance.md, "The synthetic Readings' copies").
        prev, r = r, node.readings(by_file=True, hint=True)
        changed += len(r.changed_files) if step >= 2 else 0
        gc.collect()
        if step == 2:
            spent.clear()
        t = time.process_time()
        agg.update(r, *node.resolvers(), tier="tracepoint", started_at=0.0)
        total += time.process_time() - t if step >= 2 else 0.0
        del prev
    return total, changed
