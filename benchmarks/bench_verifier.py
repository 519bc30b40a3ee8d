"""What the BPF verifier spends on each program of probes/filemap.c (start-up).

Compiles a probe source with the collector's cflags (default map sizes, the
io slots, the erofs tracepoints this kernel has), then loads each program
itself with log_level 4 (BPF_LOG_STATS: the verifier's own "verification
time", instructions processed, states), nothing attached.  Several trees can
be compared in the same run (--tree NAME=DIR, DIR/probes/filemap.c), each
loaded --rounds times, interleaved.

Run:  sudo .venv/bin/python benchmarks/bench_verifier.py [--tree base=/tmp/pbase] [--rounds 3]
"""
from __future__ import annotations

import ctypes as ct
import re
import statistics
import sys
import time
from pathlib import Path

import benchlib  # noqa: F401  (sets sys.path)
from benchlib import REPO

from erofs_top.kernel import gather, host, slots

BPF_LOG_STATS = 4
PROGS = (b"tracepoint__filemap__mm_filemap_add_to_page_cache",
         b"tracepoint__filemap__mm_filemap_delete_from_page_cache",
         b"tracepoint__erofs__erofs_fill_inode", b"tracepoint__erofs__erofs_readahead",
         b"tracepoint__erofs__erofs_read_folio", b"flush_io_slots", b"flush_io_log", b"delete_big_folio",
         b"gather_chunks", b"gather_io")
STATS = re.compile(rb"verification time (\d+) usec.*?processed (\d+) insns.*?"
                   rb"total_states (\d+) peak_states (\d+)", re.S)


def cflags_for(tree: Path) -> list[str]:
    """What TracepointSource passes (kernel/probes.py), default sizes."""
    events = host.tracepoints()
    out = ["-DCHUNK_ENTRIES=262144", "-DIO_ENTRIES=65536", "-DDIRTY_ENTRIES=65536", f"-DIO_SLOTS={slots.IO_SLOTS}",
           f"-DFLUSH_BATCH={slots.FLUSH_BATCH}",
           *tree_gather_cflags(tree),
           f"-DIO_LOG={slots.IO_LOG}", f"-DLOG_CPUS={slots.possible_cpus()}",
           f"-I{tree / 'probes'}"]
    for ev, flag in (("erofs:erofs_fill_inode", "HAVE_EROFS_FILL_INODE"),
                     ("erofs:erofs_readahead", "HAVE_EROFS_READAHEAD"),
                     ("erofs:erofs_read_folio", "HAVE_EROFS_READ_FOLIO")):
        if events.get(ev):
            out.append(f"-D{flag}")
    return out


def tree_gather_cflags(tree: Path) -> list[str]:
    """gather.cflags(True) with the tree's own GATHER_MAX / GATHER_BATCH (its
    erofs_top/kernel/gather.py; this process's where the tree has none): a
    base tree is loaded as its own collector would load it."""
    out = gather.cflags(True)
    src = tree / "erofs_top/kernel/gather.py"
    text = src.read_text() if src.exists() else ""
    for name in ("GATHER_MAX", "GATHER_BATCH"):
        m = re.search(rf"^{name} = (\d+)", text, re.M)
        if m:
            out = [f"-D{name}={m.group(1)}" if f.startswith(f"-D{name}=") else f for f in out]
    return out


def verify(tree: Path) -> dict[str, tuple[float, int, int, int, float]]:
    """Per program: (verifier's usec, insns processed, total states, peak
    states, wall s of the load) for one compile of tree's filemap.c."""
    from bcc import BPF
    from bcc.libbcc import lib

    class NoAutoload(BPF):
        def _trace_autoload(self):
            pass

    t = time.monotonic()
    b = NoAutoload(text=(tree / "probes/filemap.c").read_bytes(), cflags=cflags_for(tree))
    out = {"(compile)": (0.0, 0, 0, 0, time.monotonic() - t)}
    buf = ct.create_string_buffer(1 << 20)
    try:
        for name in PROGS:
            start = lib.bpf_function_start(b.module, name)
            if not start:
                continue
            ptype = BPF.RAW_TRACEPOINT if name.startswith((b"flush_", b"gather_")) else BPF.TRACEPOINT
            t = time.monotonic()
            fd = lib.bcc_func_load(b.module, ptype, name, start,
                                   lib.bpf_function_size(b.module, name),
                                   lib.bpf_module_license(b.module),
                                   lib.bpf_module_kern_version(b.module),
                                   BPF_LOG_STATS, buf, len(buf), None, -1)
            wall = time.monotonic() - t
            if fd < 0:
                sys.exit(f"{tree}: {name.decode()} failed to load: {buf.value[-300:]!r}")
            m = STATS.search(buf.value)
            out[name.decode().rsplit("__", 1)[-1]] = (
                (float(m.group(1)), int(m.group(2)), int(m.group(3)), int(m.group(4)), wall)
                if m else (0.0, 0, 0, 0, wall))
            import os
            os.close(fd)
    finally:
        b.cleanup()
    return out


def _add_args(ap) -> None:
    ap.add_argument("--tree", action="append", default=[],
                    help="NAME=DIR: also this tree's probes/filemap.c (repeatable)")
    ap.add_argument("--rounds", type=int, default=3)


def _body(args) -> dict:
    trees = {"this": REPO}
    for t in args.tree:
        name, _, d = t.partition("=")
        trees[name] = Path(d)
    runs: dict[str, list[dict]] = {n: [] for n in trees}
    for _ in range(args.rounds):
        for n, d in trees.items():
            runs[n].append(verify(d))
    result = {}
    for n, rs in runs.items():
        print(f"\n[{n}] {trees[n]}  (medians of {len(rs)}; verifier usec, insns processed, "
              "total states, peak states, load wall ms)")
        result[n] = {}
        for prog in rs[0]:
            cols = [statistics.median(r[prog][i] for r in rs) for i in range(5)]
            result[n][prog] = cols
            print(f"  {prog:<36} {cols[0]:>9.0f} {cols[1]:>9.0f} {cols[2]:>7.0f} "
                  f"{cols[3]:>6.0f} {cols[4] * 1e3:>8.1f}")
        print(f"  {'loads in all (wall ms)':<36} "
              f"{sum(v[4] for p, v in result[n].items() if p != '(compile)') * 1e3:>8.1f}")
    return result


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=True)


if __name__ == "__main__":
    sys.exit(main())
