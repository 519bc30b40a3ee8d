"""Per-event cost of the tracepoint-tier probes against an empty program.

Loads erofs-top's probes (TracepointSource) and, at the same time, an empty BPF
program on every tracepoint they use; runs real page-cache traffic; reads the
kernel's BPF run-time statistics (run_time_ns / run_cnt per program) and
prints ns/event per program and the ratio to the empty program on the same
events.  Targets (issue 11): every EROFS hook <= 3x, on first reads as well
as re-reads; non-EROFS traffic <= 1.3x.

Phases (each a delta of the statistics):
  other-unwatched  reads of plain files on a filesystem no EROFS image lives
                   on (a scratch ext4 on a direct-I/O loop device): the
                   filter's cost on the bulk of a node's traffic
  erofs-cold       cold reads of real EROFS images, mounted file-backed and
                   via loop, from a cgroup; the cache is dropped between
                   rounds (POSIX_FADV_DONTNEED on every file and the image),
                   so both insertions and deletions are measured; the first
                   read (which creates the map entries) apart from re-reads
  other-backing-fs reads of plain files on the filesystem that holds the
                   image files (watched as a backing fs: a second lookup)
  The non-EROFS phases drop the files' cache once more at their end: their
  deletions are those of the pages read (~3,400 events for 64 MiB), not
  only of the large folios the files were written in (~32; before
  2026-12-05 13:45 the delete ratio was measured on those alone: noise).

Run:  sudo .venv/bin/python benchmarks/bench_probes.py [--rounds 3]
      [--candidate a.c --candidate b.c]   also measure candidate probe sources,
      loaded next to the real one (same events, filters copied from it)
Other processes' page-cache events on the node are counted too (same events
for both programs, so the ratio stays fair; the mix is noted).
"""
from __future__ import annotations

import ctypes as ct
import os
import subprocess
import sys
import time
from pathlib import Path

import benchlib  # noqa: E402  (sets sys.path)
from benchlib import MiB

from erofs_top.kernel import host
from erofs_top.readings import kdev_from_st_dev
from erofs_top.workload import Stack, build_image, make_tree, read_file

EROFS_FILES = {f"big/f{i}.bin": s for i, s in enumerate((4 * MiB, 8 * MiB, 16 * MiB, 24 * MiB))}
EROFS_FILES.update({f"small/s{i:03d}": 16 << 10 for i in range(200)})
OTHER_FILES = {f"o{i}.bin": 16 * MiB for i in range(4)}
PROGS = ("mm_filemap_add_to_page_cache", "mm_filemap_delete_from_page_cache",
         "erofs_readahead", "erofs_read_folio")
SHORT = {"mm_filemap_add_to_page_cache": "add_to_page_cache",
         "mm_filemap_delete_from_page_cache": "delete_from_page_cache",
         "erofs_readahead": "erofs_readahead", "erofs_read_folio": "erofs_read_folio"}


def snap(sets: dict) -> dict:
    return {name: benchlib.prog_stats(bpf) for name, bpf in sets.items()}


def report(phase: str, before: dict, after: dict, results: dict, mix=None) -> None:
    """ns/event per program of every loaded set, and the ratio to "empty".
    mix: (before, after, {label: set of devs}) from the event counter."""
    delta = {n: benchlib.stats_delta(after[n], before[n]) for n in after if n != "mix"}
    names = [n for n in delta if n != "empty"]
    print(f"\n[{phase}]")
    print(f"  {'program':<24} {'events':>9} {'empty ns/ev':>12}"
          + "".join(f" {n + ' ns/ev':>16} {'ratio':>6}" for n in names))
    for prog in PROGS:
        ens, ecnt = delta["empty"].get(prog, (0, 0))
        if prog not in delta["empty"]:
            continue
        if not ecnt:
            print(f"  {SHORT[prog]:<24} {0:>9} {'-':>12}")
            continue
        e = ens / ecnt
        line = f"  {SHORT[prog]:<24} {ecnt:>9} {e:>12.1f}"
        for n in names:
            pns, pcnt = delta[n].get(prog, (0, 0))
            if not pcnt:
                line += f" {'-':>16} {'-':>6}"
                continue
            p = pns / pcnt
            results[(n, phase, prog)] = (pcnt, p, e)
            line += f" {p:>16.1f} {p / e:>5.2f}x"
        print(line)
    if mix:
        m0, m1, classes = mix
        for kind in ("adds", "dels"):
            d = {dev: n - m0[kind].get(dev, 0) for dev, n in m1[kind].items()}
            total = sum(d.values()) or 1
            parts = []
            for label, devs in classes.items():
                n = sum(v for dev, v in d.items() if dev in devs)
                parts.append(f"{label} {100 * n / total:.0f}%")
            n_other = total - sum(v for dev, v in d.items()
                                  if any(dev in devs for devs in classes.values()))
            parts.append(f"other processes {100 * n_other / total:.0f}%")
            print(f"  {kind[:-1]} event mix: " + ", ".join(parts))


def load_candidate(path: Path, col, st):
    """A candidate source with the cflags the collector uses (its default map
    sizes); cleaned up by the stack."""
    from bcc import BPF
    events = host.tracepoints()
    from erofs_top.kernel import slots
    cflags = [f"-I{path.resolve().parent}",     # its headers (chunk_owners.h) next to it
              f"-DLOG_CPUS={slots.possible_cpus()}"]
    for ev, flag in (("erofs:erofs_fill_inode", "HAVE_EROFS_FILL_INODE"),
                     ("erofs:erofs_readahead", "HAVE_EROFS_READAHEAD"),
                     ("erofs:erofs_read_folio", "HAVE_EROFS_READ_FOLIO")):
        if events.get(ev):
            cflags.append(f"-D{flag}")
    try:
        bpf = BPF(text=path.read_text(), cflags=cflags)
    except Exception as e:
        sys.exit(f"candidate {path} failed to load: {str(e).strip().splitlines()[-1]}")
    st.callback(bpf.cleanup)
    print(f"candidate {path.stem}: {path}")
    return bpf


def candidate_read(bpf) -> None:
    """What a collector's read does to a candidate's maps, so its dirty
    marks and io slots cost what the real probe's cost: its per-CPU io slots
    emptied (flush_io_slots, kernel/slots.py), the read generation bumped and
    the dirty keys dropped."""
    from bcc import BPF
    from erofs_top.kernel import slots
    flusher = getattr(bpf, "_bench_flusher", None)
    if flusher is None and slots.sys_bpf_number():
        try:
            fn = bpf.load_func(b"flush_io_slots", BPF.RAW_TRACEPOINT)
            try:
                log_fd = bpf.load_func(b"flush_io_log", BPF.RAW_TRACEPOINT).fd
            except Exception:
                log_fd = None       # a candidate without io_log
            flusher = slots.SlotFlusher(fn.fd, slots.sys_bpf_number(), log_fd)
        except Exception:
            flusher = False
        bpf._bench_flusher = flusher
    if flusher:
        flusher.flush()
    try:
        gen, dirty = bpf["read_gen"], bpf["dirty"]
    except KeyError:
        return
    gen[ct.c_int(0)] = ct.c_uint64(gen[ct.c_int(0)].value + 1)
    dirty.clear()


def copy_filters(col, bpf) -> None:
    """Make a candidate's watched_devs/backing equal to the collector's."""
    for name in ("watched_devs", "backing"):     # `backing`: older probe sources
        try:
            src, dst = col.source.bpf[name], bpf[name]
        except KeyError:
            continue
        for k, v in src.items():
            dst[k] = v
    try:    # a candidate with a generation-checked filter cache: drop its answers
        gen = bpf["watched_gen"]
        if gen.max_entries > 1:
            gen[ct.c_int(1)] = ct.c_uint64(gen[ct.c_int(1)].value + 1)
    except KeyError:
        pass
    try:    # a candidate with a direct-mapped filter (slot = (dev ^ dev >> 20) % size)
        fast = bpf["watched_fast"]
    except KeyError:
        return
    size = fast.max_entries
    for k, v in col.source.bpf["watched_devs"].items():
        slot = fast[ct.c_uint32((k.value ^ (k.value >> 20)) % size)]
        slot.dev, slot.kind = k.value, v.value
        fast[ct.c_uint32((k.value ^ (k.value >> 20)) % size)] = slot


def scratch_ext4(st, size_mib: int) -> Path:
    """An ext4 on a direct-I/O loop device (its backing file is not cached
    twice), mounted in the stack's dir; unmounted and detached by the stack."""
    backing = st.dir / "ext4.img"
    with open(backing, "wb") as f:
        f.truncate(size_mib * MiB)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(backing)], check=True)
    loop = subprocess.run(["losetup", "-f", "--show", "--direct-io=on", str(backing)],
                          check=True, capture_output=True, text=True).stdout.strip()
    st.callback(subprocess.run, ["losetup", "-d", loop], capture_output=True)
    mnt = st.dir / "ext4"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "ext4", loop, str(mnt)], check=True)
    st.callback(subprocess.run, ["umount", str(mnt)], capture_output=True)
    return mnt


def read_all(paths, cgroup=None) -> None:
    for p in paths:
        read_file(str(p), cgroup)


def _add_args(ap) -> None:
    ap.add_argument("--rounds", type=int, default=3, help="cold-read rounds per phase (default 3)")
    ap.add_argument("--candidate", type=Path, action="append", default=[],
                    help="a candidate probe source (same maps as probes/filemap.c) to "
                    "measure next to it; repeatable")
    ap.add_argument("--candidates-first", action="store_true",
                    help="attach the candidates before the real probe (programs on a "
                    "tracepoint run in attach order; swap to see the position effect)")


class _Workload:
    """The files each phase reads: an EROFS image (mounted file-backed and
    via loop), plain files on the fs that holds the images, plain files on a
    scratch ext4 that nothing watches."""

    def __init__(self, st, args):
        t0 = time.monotonic()
        src = make_tree(st.dir / "src", EROFS_FILES, seed=7)
        self.img = build_image(src, st.dir / "bench.erofs", "-T0")
        self.img_loop = build_image(src, st.dir / "bench-loop.erofs", "-T0")
        other_watched = make_tree(st.dir / "other", OTHER_FILES, seed=8)
        self.other_watched_paths = [other_watched / n for n in OTHER_FILES]
        self.other = make_tree(scratch_ext4(st, 2 * sum(OTHER_FILES.values()) // MiB),
                               OTHER_FILES, seed=9)
        self.other_paths = [self.other / n for n in OTHER_FILES]
        os.sync()
        print(f"workload: EROFS image {os.path.getsize(self.img) / MiB:.0f} MiB "
              f"({len(EROFS_FILES)} files), mounted file-backed and via loop; "
              f"plain files {sum(OTHER_FILES.values()) / MiB:.0f} MiB on a scratch ext4 and "
              f"on {st.dir}; "
              f"{args.rounds} round(s) per phase (built in {time.monotonic() - t0:.1f} s)")
        self.cg = st.cgroup(f"erofs-top-bench-{os.getpid()}/reader")
        self.host_dev = kdev_from_st_dev(os.stat(st.dir).st_dev)
        self.ext4_dev = kdev_from_st_dev(os.stat(self.other).st_dev)


def _load(st, args, events):
    """The empty programs, the real probe, the candidates and the event
    mixer, in attach order: -> (sets by name, the collector, the mixer)."""
    from erofs_top.errors import CollectorError
    from erofs_top.tiers import open_collector
    # the empty programs first: they run first on every event, so they pay
    # any cold-cache cost of the tracepoint, not the probe
    empty = benchlib.load_empty(events)
    st.callback(empty.cleanup)
    sets = {"empty": empty}
    cand = {}
    for c in args.candidate if args.candidates_first else ():
        cand[c.stem] = load_candidate(c, None, st)
    try:
        col = open_collector(seed=False, sharing=False)
    except CollectorError as e:
        sys.exit(f"probes failed to load: {e}")
    st.callback(col.close)
    sets["probe"] = col.source.bpf
    for c in () if args.candidates_first else args.candidate:
        cand[c.stem] = load_candidate(c, col, st)
    sets.update(cand)
    mixer = benchlib.load_mix()       # last: counts events, not timed
    st.callback(mixer.cleanup)
    order = ["empty"] + (list(cand) + ["probe"] if args.candidates_first
                         else ["probe"] + list(cand))
    print("attach order (programs on one tracepoint run in this order): "
          + ", ".join(n if n != "probe" else "probe (probes/filemap.c)" for n in order))
    return sets, col, mixer


class _Phases:
    def __init__(self, st, args, wl: _Workload, sets, col, mixer, results: dict):
        self.st, self.args, self.wl = st, args, wl
        self.sets, self.col, self.mixer, self.results = sets, col, mixer, results
        self.candidates = [b for n, b in sets.items() if n not in ("empty", "probe")]

    def sync(self) -> None:
        self.col.read()      # user space adds the backing-file filters
        for b in self.candidates:
            copy_filters(self.col, b)

    def watched_kind(self, dev: int) -> int:
        for k, v in self.col.source.bpf["watched_devs"].items():
            if k.value == dev:
                return v.value
        return 0

    def measure(self, label: str, rounds: int, paths: list, classes: dict, cg=None,
                drop: list | None = None, drop_after: bool = False) -> None:
        """``rounds`` of: a read of the maps, the cache of ``drop`` (default
        ``paths``) dropped, ``paths`` read.  drop_after: dropped once more at
        the end, so that the pages read are deleted within the phase (the
        first drop deletes what was cached before: for files just written,
        a few large folios, ~32 delete events for 64 MiB; the pages read
        come in ~3,400 smaller ones)."""
        before, m0 = snap(self.sets), benchlib.read_mix(self.mixer)
        for _ in range(rounds):
            # a read per round, as a collector refreshes between rounds: the
            # probe's dirty marks start a new generation (every entry touched
            # in the round is marked again, the worst case of a steady read)
            self.col.read()
            for b in self.candidates:
                candidate_read(b)
            benchlib.drop_cache(drop or paths)
            read_all(paths, cg)
        if drop_after:
            benchlib.drop_cache(drop or paths)
        report(label, before, snap(self.sets), self.results,
               (m0, benchlib.read_mix(self.mixer), classes))

    def other_unwatched(self) -> None:
        """Plain files on a fs that is not watched."""
        self.sync()
        kind = self.watched_kind(self.wl.ext4_dev)
        label = "other-unwatched" if not kind else f"other-watched(kind={kind})"
        self.measure(label, self.args.rounds, self.wl.other_paths,
                     {"scratch ext4": {self.wl.ext4_dev}}, drop_after=True)

    def erofs_cold(self) -> None:
        """EROFS cold reads, file-backed + loop.  The first round creates the
        map entries (one per 64 pages and one per file and cgroup); later
        rounds find them (evicted, not deleted)."""
        wl = self.wl
        m_file = self.st.mount(wl.img, "file", "file")
        m_loop = self.st.mount(wl.img_loop, "loop", "loop")
        self.sync()
        paths = [m.path(n) for m in (m_file, m_loop) for n in EROFS_FILES]
        classes = {"EROFS": {m_file.dev, m_loop.dev}, "images' fs": {wl.host_dev}}
        for label, rounds in (("erofs-cold first read (map entries created)", 1),
                              ("erofs-cold re-reads (entries exist)", self.args.rounds)):
            self.measure(label + ", file-backed + loop", rounds, paths, classes, wl.cg,
                         drop=paths + [wl.img, wl.img_loop])
        r = self.col.read()
        resident = sum(sum(m.bit_count() for m in c.owners.values()) for c in r.chunks)
        print(f"  probe sees {resident * r.page_size / MiB:.1f} MiB resident in "
              f"{len(r.chunks)} chunks, {len(r.io)} io entries; counters "
              f"update_fail={sum(v[2] for v in r.maps.values())} lost={r.lost_events}")
        stats = benchlib.prog_stats(self.col.source.bpf)
        for name in ("flush_io_slots", "flush_io_log"):    # kernel/slots.py, at each read
            flush = stats.get(name)
            if flush and flush[1]:
                print(f"  {name} (user space, before each read): {flush[1]} runs, "
                      f"{flush[0] / flush[1]:.0f} ns per run, {flush[0] / 1e6:.2f} ms in all")

    def other_backing_fs(self) -> None:
        """Plain files on the fs holding the images."""
        self.sync()
        label = f"other-backing-fs(kind={self.watched_kind(self.wl.host_dev)})"
        self.measure(label, self.args.rounds, self.wl.other_watched_paths,
                     {"images' fs": {self.wl.host_dev}}, drop_after=True)


def _targets(names, results: dict) -> dict:
    worst_of = {}
    for name in names:
        for what, target, is_erofs in (("EROFS phases", 3.0, True),
                                       ("non-EROFS phases", 1.3, False)):
            worst = max((p / e for (n, phase, _), (_, p, e) in results.items()
                         if n == name and phase.startswith("erofs") == is_erofs), default=0)
            worst_of[f"{name} {what}"] = worst
            print(f"{name}: worst ratio to the empty program, {what}: {worst:.2f}x "
                  f"(target <= {target:.1f}x)")
    return worst_of


def _body(args) -> dict:
    for c in args.candidate:
        if not c.is_file():
            sys.exit(f"--candidate {c}: no such file")
    events = host.tracepoints()
    results: dict = {}
    with Stack(prefix="erofs-top-bench-") as st:
        wl = _Workload(st, args)
        with benchlib.bpf_stats() as how:
            print(f"BPF statistics via {how}")
            sets, col, mixer = _load(st, args, events)
            phases = _Phases(st, args, wl, sets, col, mixer, results)
            phases.other_unwatched()
            phases.erofs_cold()
            phases.other_backing_fs()
    worst = _targets([n for n in sets if n != "empty"], results)
    return {"ns_per_event": {f"{n} | {phase} | {prog}": {"probe": p, "empty": e}
                             for (n, phase, prog), (_, p, e) in results.items()},
            "worst_ratio": worst}


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=True)


if __name__ == "__main__":
    sys.exit(main())
