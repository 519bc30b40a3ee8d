"""Exporter cost: scrape latency, refresh CPU, idle CPU, 50 concurrent scrapes.

All HTTP is on 127.0.0.1.  Parts (each prints its numbers and ratios):

  scrape   a synthetic Model of --containers x --mounts (default 1,000 x 20)
           served by the real Exporter/HTTP server; --scrapes sequential GETs
           of /metrics; baseline in the same run: the same server with an
           empty Model (pure HTTP + self metrics).  Ratio large/empty.
  refresh  CPU seconds to build the metric families from that Model (what
           every refresh pays on top of collection), baseline: empty Model;
           and the CPU share at --interval.
  idle     (root) the real `erofs-top exporter` (tracepoint tier) for
           --idle-seconds after start-up, scraped every 15 s like Prometheus:
           its CPU seconds from /proc/PID/stat; baseline: an idle Python
           process sleeping in 10 s steps over the same window.  Twice:
           "quiet", in a private mount namespace with every EROFS mount
           detached (no EROFS activity in view, even on a shared machine),
           and "node", seeing every EROFS mount of the machine.
  node     (no root) the whole refresh of a node at scale: the real Collector
           and aggregator on a synthetic node of --node-files (250,000)
           resident files and --containers (1,000) containers
           (benchmarks/synthetic_node.py), --node-churn (1 %) of the chunk
           entries changed before every refresh, the Exporter building and
           encoding families on top: CPU per refresh and its share of one CPU
           at --interval (generating the churn is timed and left out), the
           process RSS, and /metrics p50/p99 (plain and gzip, scraped from
           another process as Prometheus does) while refreshes run back to
           back, with the cyclic GC's pauses.  The Readings name what changed
           (--no-hint: they do not); the GC freeze is the exporter's
           (--no-gc-freeze: off).  --scraped: one OpenMetrics + gzip scrape
           before the timed refreshes, so that each of them also pre-encodes
           /metrics in that format, as a scraped exporter's refreshes do
           (without it the steady figure leaves the encoding out).  No map reading (bench_refresh.py
           --probe-read measures it).  --map-state: the probe source's kept
           state (ChunkState, IoState) between the node and the aggregator,
           fed the changed keys as a map read decodes them (the first read
           from packed buffers, unpacked while the source reads them, as
           maps.chunk_items does with a RawBatch; later, the chunk
           entries whose value changed, as the probe marks them;
           --mark-every-chunk: every entry of a changed file, as before
           2026-12-05 13:45): its work is in
           the refresh CPU and its objects in the RSS, printed also without
           the node's own RSS (the node stands for the kernel's maps).
           --node-process: --map-state with the node in another process
           (benchmarks/node_process.py), the reads over a pipe: the RSS is
           the exporter's process, nothing subtracted (the subtraction
           moves with the node's own heap as churn grows it).
           --malloc-default: without the exporter's fixed glibc thresholds.
  storm    --clients (50) concurrent clients scraping /metrics of the
           1,000 x 20 Model in a loop for --storm-seconds (60): every scrape
           must answer 200; the server's RSS sampled every second must stay
           flat (last 10 s vs first 10 s after warm-up).

Run:  sudo .venv/bin/python benchmarks/bench_exporter.py [--parts scrape,refresh,idle,storm]
"""
from __future__ import annotations

import gc
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

import benchlib  # noqa: F401  (sets sys.path)

from erofs_top.model import (TIER_TRACEPOINT, Container, File, Health, MapUsage, Model, Mount,
                             Totals)
from erofs_top.exporter.listen import bind
from erofs_top.exporter.server import Exporter, serve

MiB = 1 << 20
TICK = os.sysconf("SC_CLK_TCK")


def synthetic_model(n_containers: int, n_mounts: int, files: int = 200) -> Model:
    mounts = [Mount(dev=f"0:{100 + j}", mountpoint=f"/run/ctr/snap/{j}/fs", source=f"/img/{j}.erofs",
                    backing="file", backing_file=f"/img/{j}.erofs", image_id=f"{j:012x}-{j:016x}-1",
                    volume_name=f"image-{j}", resident_bytes=(j + 1) * 64 * MiB,
                    duplicate_bytes=j * MiB, backing_resident_bytes=j * 2 * MiB,
                    containers_count=n_containers // max(n_mounts, 1))
              for j in range(n_mounts)]
    containers = []
    for i in range(n_containers):
        uid = f"{i:08x}-0000-4000-8000-{i:012x}"
        cid = f"{i:064x}"
        containers.append(Container(
            cgroup_id=10_000 + i,
            cgroup=f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{uid.replace('-', '_')}"
                   f".slice/cri-containerd-{cid}.scope",
            runtime="containerd", container_id=cid, pod_uid=uid,
            resident_bytes=(i % 97 + 1) * MiB, duplicate_bytes=(i % 13) * MiB, fair_bytes=(i % 97) * MiB,
            inserted_bytes=(i % 101 + 1) * 3 * MiB, evicted_bytes=(i % 7) * MiB,
            readahead_bytes=(i % 11) * MiB, read_folio_count=i % 50, files_count=i % 40,
            mounts=[m.dev for m in mounts]))
    fl = [File(dev="0:100", ino=40 + k, path=f"/run/ctr/snap/0/fs/usr/lib/lib{k}.so",
               content_id=f"{k:016x}", size=MiB, resident_bytes=MiB, duplicate_bytes=0, copies=1)
          for k in range(files)]
    return Model(tier=TIER_TRACEPOINT, started_at=time.time(), ended_at=time.time(), page_size=4096,
                 containers=containers, mounts=mounts, files=fl, kernel=os.uname().release,
                 totals=Totals(resident_bytes=sum(c.resident_bytes for c in containers)),
                 health=Health(maps=[MapUsage("chunks", 1000, 262144), MapUsage("io", 100, 65536)],
                               probes_attached=True,
                               bpf_run_time_ns={"add": 1, "delete": 1}, bpf_run_count={"add": 1, "delete": 1}))


class StaticSource:
    """Stands in for the collector (the benchmark measures the exporter, not BPF)."""

    def __init__(self, model):
        self.model, self.tier = model, model.tier

    def refresh(self):
        return self.model


def get(url: str, timeout: float = 30.0) -> tuple[int, int]:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, len(r.read())


def start_exporter(model: Model, interval: float = 3600.0):
    ex = Exporter(StaticSource(model), interval=interval, log=lambda m: None)
    server = bind("127.0.0.1", 0)
    ex.refresh_once()
    serve(server, ex)
    ex.start()
    return ex, server, f"http://127.0.0.1:{server.server_address[1]}"


def stop_exporter(ex, server):
    ex.stop()
    server.shutdown()
    server.server_close()


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


# ---------------------------------------------------------------- parts
def part_scrape(args) -> dict:
    out = {}
    for label, model in (("empty", synthetic_model(0, 0, 0)),
                         ("large", synthetic_model(args.containers, args.mounts))):
        ex, server, base = start_exporter(model)
        try:
            _, size = get(f"{base}/metrics")
            lat, first = [], []
            for _ in range(args.scrapes):
                t0 = time.perf_counter()
                get(f"{base}/metrics")
                lat.append(time.perf_counter() - t0)
            # the first scrape after a refresh encodes; as Prometheus asks (OpenMetrics, gzip)
            for _ in range(max(5, args.scrapes // 5)):
                ex.refresh_once()
                req = urllib.request.Request(f"{base}/metrics", headers={
                    "Accept": "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5",
                    "Accept-Encoding": "gzip"})
                t0 = time.perf_counter()
                with urllib.request.urlopen(req, timeout=30) as r:
                    gz_size = len(r.read())
                first.append(time.perf_counter() - t0)
        finally:
            stop_exporter(ex, server)
        out[label] = {"bytes": size, "gzip_bytes": gz_size, "p50_ms": statistics.median(lat) * 1e3,
                      "p99_ms": pct(lat, 0.99) * 1e3, "max_ms": max(lat) * 1e3,
                      "first_p50_ms": statistics.median(first) * 1e3, "first_max_ms": max(first) * 1e3}
        o = out[label]
        print(f"scrape {label:5}: {size / 1024:7.1f} KiB ({gz_size / 1024:.1f} KiB gzip); cached "
              f"p50 {o['p50_ms']:5.1f} ms p99 {o['p99_ms']:5.1f} ms ({args.scrapes} sequential); "
              f"first after a refresh (encode OpenMetrics + gzip) p50 {o['first_p50_ms']:5.1f} ms "
              f"max {o['first_max_ms']:5.1f} ms ({len(first)})")
    out["ratio_p50_large_over_empty"] = out["large"]["p50_ms"] / out["empty"]["p50_ms"]
    out["ratio_first_large_over_empty"] = out["large"]["first_p50_ms"] / out["empty"]["first_p50_ms"]
    print(f"scrape ratio large/empty: cached {out['ratio_p50_large_over_empty']:.1f}x, first after "
          f"refresh {out['ratio_first_large_over_empty']:.0f}x; target: large well under 100 ms")
    return out


def part_refresh(args) -> dict:
    """CPU of one refresh on top of collection: build the families, and encode them
    in the format Prometheus asks for (OpenMetrics + gzip), as the refresh thread does."""
    out = {}
    for label, model in (("empty", synthetic_model(0, 0, 0)),
                         ("large", synthetic_model(args.containers, args.mounts))):
        ex = Exporter(StaticSource(model), interval=args.interval, log=lambda m: None)
        ex.refresh_once()
        b"".join(ex({"PATH_INFO": "/metrics", "HTTP_ACCEPT_ENCODING": "gzip",
                     "HTTP_ACCEPT": "application/openmetrics-text;version=1.0.0"}, lambda *a: None))
        reps = 10 if label == "large" else 200
        t0 = time.process_time()
        for _ in range(reps):
            ex.builder.build(model, ex.status)
        build = (time.process_time() - t0) / reps
        t0 = time.process_time()
        for _ in range(reps):
            ex.refresh_once()
        out[label] = {"build_cpu_s": build, "refresh_cpu_s": (time.process_time() - t0) / reps}
    large, empty = out["large"], out["empty"]
    out["ratio_large_over_empty"] = large["refresh_cpu_s"] / empty["refresh_cpu_s"]
    out["cpu_share_at_interval"] = large["refresh_cpu_s"] / args.interval
    print(f"refresh CPU (families + OpenMetrics/gzip encode, no collection): empty "
          f"{empty['refresh_cpu_s'] * 1e3:.2f} ms, large {large['refresh_cpu_s'] * 1e3:.0f} ms "
          f"(of which building families {large['build_cpu_s'] * 1e3:.0f} ms; "
          f"{out['ratio_large_over_empty']:.0f}x empty); at --interval {args.interval:g} s: "
          f"{out['cpu_share_at_interval'] * 100:.2f} % of one CPU")
    return out


class ChurnSource:
    """A Source over a synthetic node that changes before every read; the
    time spent making the change is the benchmark's, kept in ``churn_s``."""

    def __init__(self, node, fraction: float):
        self.node, self.fraction = node, fraction
        self.tier, self.page_size = TIER_TRACEPOINT, 4096
        self.churn_s = 0.0
        self.first = True
        self.hint = True        # hand over what changed (Readings.changed_files, changed_io)

    def read(self):
        t0 = time.process_time()
        if not self.first:
            self.node.churn(self.fraction)
        self.first = False
        r = self.node.readings(by_file=True, hint=self.hint)
        self.churn_s += time.process_time() - t0
        return r

    def close(self):
        pass


class MapStateSource(ChurnSource):
    """--map-state: the probe source's kept state (erofs_top/kernel/maps.py
    ChunkState, IoState) between the synthetic node and the aggregator, fed
    as TracepointSource._read_maps feeds it: the first read the whole maps,
    later ones the keys the probe marks (every chunk of a file that changed,
    the io rows that changed), each decoded as a map read decodes it (fresh
    ints; that decoding is the benchmark's time, ``churn_s``).  The
    aggregator's input is then the source's PageChunks and FileIO rows, as
    in a real exporter, and the node's own objects stand for the kernel's
    maps only (``node_rss_mb``: the process's RSS once the node is made)."""

    # the probe marks a chunk entry dirty when its value changes (filemap.c
    # mark_dirty); True: every chunk entry of a file that changed, as this
    # source did before 2026-12-05 13:45 (1 % churn at 250,000 files: 6,666
    # entries found a refresh, not 4,084; 2,133 gone either way)
    mark_every_chunk = False

    def __init__(self, node, fraction: float):
        super().__init__(node, fraction)
        from erofs_top.kernel import maps
        self.maps, self.chunks, self.io = maps, maps.ChunkState(), maps.IoState()

    def read(self):
        t0 = time.process_time()
        node, first = self.node, self.first
        if not first:
            node.churn(self.fraction)
        self.first = False
        if first:
            # as a batch read hands the maps over (maps.chunk_items with a
            # RawBatch): packed buffers, unpacked entry by entry while the
            # source reads them (no list of every decoded pair alive at once)
            found = _packed_pairs(node.files)
            io_found = _packed_io(node.io_by_key)
        else:
            found, gone = [], []
            for fk in node.changed:
                now = node.files.get(fk, ())
                was = {pc.chunk: pc for pc in self.chunks.by_file.get(fk, ())}
                found += _chunk_pairs({fk: now if self.mark_every_chunk else
                                       marked_chunks(now, was)})
                have = {pc.chunk for pc in now}
                gone += [_fresh((fk[0], fk[1], c)) for c in was if c not in have]
            io_found = [(_fresh(k), _io_value(node.io_by_key.get(k))) for k in node.changed_io]
        node.changed, node.changed_io = set(), set()
        self.churn_s += time.process_time() - t0
        return self._readings(first, found, [] if first else gone, io_found)

    def _readings(self, first: bool, found, gone, io_found):
        from erofs_top.aggregate import FREEZE
        from erofs_top.readings import Readings
        maps, cs, ios = self.maps, self.chunks, self.io
        with maps.NoGC():
            if first:
                changed = cs.update(found)
                rows = ios.update(io_found, cs.held_delta)
            else:
                changed = cs.patch(found, gone)
                rows = ios.patch(io_found, cs.held_delta)
            cs.held_delta = {}
            r = Readings(taken_at=1.0, page_size=4096)
            r.chunks_by_file, r.changed_files = cs.snapshot(), None if first else changed
            r.chunks = maps.ChunkList(r.chunks_by_file, cs.n_chunks)
            r.io, r.io_by_key, r.changed_io = rows, rows.by_key, ios.changed
            r.maps = {"chunks": (len(cs.entries), 1 << 20, 0), "io": (ios.n_entries, 1 << 20, 0)}
        if FREEZE["mode"] == "every":       # as TracepointSource.read()
            gc.freeze()
        return r


class NodeProcessSource(MapStateSource):
    """--node-process: MapStateSource with the node in another process
    (benchmarks/node_process.py): the reads come over a pipe, the first as
    packed buffers unpacked while the source reads them, the later ones as
    the dirty keys' tuples (unpickling them: the decoding, ``churn_s``), so
    this process holds no object of the node and its RSS is the exporter's."""

    def read(self):
        from erofs_top.kernel.maps import NoGC
        t0 = time.process_time()
        first, self.first = self.first, False
        with NoGC():            # as a map read: no collection while the pairs arrive
            got = self.node.read(churn=not first)
        if first:
            (kb, vb), (io_kb, io_vb) = got
            found, gone, io_found = unpack_chunks(kb, vb), [], unpack_io(io_kb, io_vb)
        else:
            found, gone, io_found = got
        self.churn_s += time.process_time() - t0
        return self._readings(first, found, gone, io_found)

    def close(self):
        self.node.close()


def marked_chunks(now, was: dict) -> list:
    """The PageChunks of ``now`` (a file's chunks) that the probe would have
    marked dirty: new, or with other owners or seeded pages than the entry
    ``was`` (chunk -> the PageChunk the source keeps) says."""
    out = []
    for pc in now:
        old = was.get(pc.chunk)
        if old is None or old.seeded_mask != pc.seeded_mask or \
                old.owners != {cg: m for cg, m in pc.owners.items() if m}:
            out.append(pc)
    return out


def _fresh(key: tuple) -> tuple:
    """A key as a map read decodes it: new int objects."""
    return tuple(int(str(x)) for x in key)


def _chunk_pairs(files: dict) -> list:
    """((dev, ino, chunk), CHUNK_VAL tuple) of the files' PageChunks."""
    from erofs_top.kernel.maps import MAX_OWNERS
    out = []
    for (dev, ino), pcs in files.items():
        for pc in pcs:
            v = [0] * (2 * MAX_OWNERS + 2)
            for slot, (cg, mask) in enumerate(pc.owners.items()):
                v[slot], v[MAX_OWNERS + slot] = int(str(cg)), int(str(mask))
            v[-1] = pc.seeded_mask
            out.append((_fresh((dev, ino, pc.chunk)), tuple(v)))
    return out


def _packed_pairs(files: dict):
    """_chunk_pairs of every file as a RawBatch read returns them: two packed
    buffers (packed here: the benchmark's time), unpacked lazily (the
    source's time, as in maps.chunk_items)."""
    return unpack_chunks(*pack_chunks(files))


def pack_chunks(files: dict) -> tuple[bytes, bytes]:
    """The keys and values of every file's chunk entries, packed as a batch
    map read returns them."""
    from erofs_top.kernel.maps import CHUNK_KEY, CHUNK_VAL
    kb, vb = bytearray(), bytearray()
    for fk, pcs in files.items():
        for (dev, ino, chunk), v in _chunk_pairs({fk: pcs}):
            kb += CHUNK_KEY.pack(dev, ino, chunk)
            vb += CHUNK_VAL.pack(*v)
    return bytes(kb), bytes(vb)


def unpack_chunks(kb: bytes, vb: bytes):
    """pack_chunks' pairs, unpacked as they are read (maps.chunk_items)."""
    from erofs_top.kernel.maps import CHUNK_KEY, CHUNK_VAL
    return zip(CHUNK_KEY.iter_unpack(kb), CHUNK_VAL.iter_unpack(vb))


def _packed_io(io_by_key: dict):
    """The io rows as _packed_pairs packs the chunks (maps.io_items)."""
    return unpack_io(*pack_io(io_by_key))


def pack_io(io_by_key: dict) -> tuple[bytes, bytes]:
    from erofs_top.kernel.maps import IO_KEY, IO_VAL
    kb, vb = bytearray(), bytearray()
    for k, f in io_by_key.items():
        kb += IO_KEY.pack(*k)
        vb += IO_VAL.pack(*_io_value(f))
    return bytes(kb), bytes(vb)


def unpack_io(kb: bytes, vb: bytes):
    from erofs_top.kernel.maps import IO_KEY, IO_VAL
    return zip(IO_KEY.iter_unpack(kb), IO_VAL.iter_unpack(vb))


def _io_value(f) -> tuple | None:
    """An io row's IO_VAL tuple (evicted, readahead, read_folio, evicted seeded)."""
    if f is None:
        return None
    return (int(str(f.evicted_pages)), int(str(f.readahead_pages)),
            int(str(f.read_folio_count)), 0)


def _node_header(args, node, made_s: float, node_rss: float) -> None:
    print(f"node: {args.node_files} files, {args.containers} containers, "
          f"{node.chunk_count()} chunk entries (made in {made_s:.0f} s, RSS then "
          f"{node_rss:.0f} MB)" + ("; the source's map state (ChunkState, IoState) between "
                                   "it and the aggregator" if args.map_state or args.node_process else "")
          + ("; the node in another process" if args.node_process else ""))


def _scrape_while_refreshing(ex, scrapes: int) -> tuple[list, list, object]:
    """/metrics latencies (plain, gzip) from another process while the exporter
    refreshes back to back, and the cyclic GC's pauses meanwhile."""
    server = bind("127.0.0.1", 0)
    serve(server, ex)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    stop = threading.Event()

    def refresh_loop():
        while not stop.is_set():
            ex.refresh_once()
    pauses = benchlib.GcPauses()
    th = threading.Thread(target=refresh_loop, daemon=True)
    th.start()
    lat, lat_gz = [], []
    try:
        # the scraper is another process, as Prometheus is: a client thread in
        # this one would wait for the GIL at every recv() of the body
        for gz, into in ((False, lat), (True, lat_gz)):
            out = subprocess.run([sys.executable, "-c", SCRAPER_CLIENT, f"{base}/metrics",
                                  str(scrapes), "gzip" if gz else "identity"],
                                 capture_output=True, text=True, check=True)
            into.extend(json.loads(out.stdout))
    finally:
        stop.set()
        th.join()
        server.shutdown()
        server.server_close()
        pauses.close()
    return lat, lat_gz, pauses


def part_node(args) -> dict:
    from synthetic_node import SyntheticNode
    from erofs_top.collector import Collector
    t0 = time.perf_counter()
    if args.node_process:
        from node_process import NodeProcess
        node = NodeProcess(args.node_files, args.containers, rereads=args.rereads,
                           aged=args.node_aged, fraction=args.node_churn,
                           mark_every_chunk=args.mark_every_chunk)
        src = NodeProcessSource(node, args.node_churn)
    else:
        node = SyntheticNode(args.node_files, args.containers, rereads=args.rereads)
        node.age(args.node_aged)
        src = (MapStateSource if args.map_state else ChurnSource)(node, args.node_churn)
    node_rss = benchlib.rss_mib()        # (--node-process: the interpreter and the resolvers only)
    src.mark_every_chunk = args.mark_every_chunk
    col = Collector(src, mounts=node.mounts, cgroups=node.cgroups, content=node.content)
    if args.malloc_default:     # the exporter fixes glibc's thresholds: compare without it
        from erofs_top import heap
        heap.fixed_thresholds = lambda *a: False
    ex = Exporter(col, interval=args.interval, log=lambda m: None, lean_models=True)  # as the exporter command
    if args.no_gc_freeze:       # the exporter's default is on: compare without it
        from erofs_top.aggregate import FREEZE
        FREEZE["mode"] = ""
    src.hint = not args.no_hint
    _node_header(args, node, time.perf_counter() - t0, node_rss)
    c0, w0 = time.process_time(), time.perf_counter()
    ex.refresh_once()
    first_cpu = time.process_time() - c0 - src.churn_s
    if args.scraped:        # the format Prometheus asks for: each refresh pre-encodes it
        b"".join(ex({"PATH_INFO": "/metrics", "HTTP_ACCEPT_ENCODING": "gzip",
                     "HTTP_ACCEPT": "application/openmetrics-text;version=1.0.0"},
                    lambda *a: None))
    print(f"  first refresh (full recompute + families): {first_cpu:.2f} s CPU, "
          f"{time.perf_counter() - w0:.2f} s wall")
    for _ in range(args.node_settle):      # untimed: the cost climbs over the first ones
        ex.refresh_once()
    cpus = []
    for _ in range(args.node_refreshes):
        churn0, c0 = src.churn_s, time.process_time()
        ex.refresh_once()
        cpus.append(time.process_time() - c0 - (src.churn_s - churn0))
    cpu = statistics.median(cpus)
    rss = benchlib.rss_mib()
    lat, lat_gz, pauses = _scrape_while_refreshing(ex, args.scrapes)
    cyclic, full_gc_s = benchlib.thaw_and_collect()
    out = {"gc_pauses": pauses.summary(), "cyclic_garbage_left": cyclic,
           "full_gc_ms": full_gc_s * 1e3, "first_cpu_s": first_cpu, "refresh_cpu_s": cpu,
           "cpu_share": cpu / args.interval, "node_rss_mb": node_rss,
           "rss_mb": max(rss, benchlib.rss_mib()), "scrape_p50_ms": statistics.median(lat) * 1e3,
           "scrape_p99_ms": pct(lat, 0.99) * 1e3, "refreshes": len(cpus),
           "scrape_gzip_p50_ms": statistics.median(lat_gz) * 1e3,
           "scrape_gzip_p99_ms": pct(lat_gz, 0.99) * 1e3,
           "refresh_cpu_ms_in_order": [round(c * 1e3, 1) for c in cpus],
           "settle_refreshes": args.node_settle}
    print(f"  steady refresh ({args.node_churn * 100:g} % churn, median of {len(cpus)}"
          f"{', pre-encoding /metrics' if args.scraped else ''}): "
          f"{cpu * 1e3:.0f} ms CPU = {out['cpu_share'] * 100:.1f} % of one CPU at --interval "
          f"{args.interval:g} s (target <= 2 %)")
    print(f"  each steady refresh in order (after {args.node_settle} untimed; the cost climbs "
          f"while churn ages a fresh node, ~100 refreshes; --node-aged: docs/performance.md): "
          f"{', '.join(f'{c * 1e3:.0f}' for c in cpus)} ms")
    if args.node_process:
        src.close()
        print(f"  RSS of the exporter's process (the node in another one): {out['rss_mb']:.0f} MB "
              f"(target <= 300 MB), of which {node_rss:.0f} MB before the first refresh "
              f"(interpreter, imports, the fixture resolvers' state); "
              f"{out['rss_mb'] - node_rss:.0f} MB since")
    elif args.map_state:
        print(f"  RSS without the synthetic node (its RSS once made: it stands for the kernel's "
              f"maps): {out['rss_mb'] - node_rss:.0f} MB (target <= 300 MB)")
    print(f"  RSS {out['rss_mb']:.0f} MB (target <= 300 MB); /metrics while refreshing back to "
          f"back: p50 {out['scrape_p50_ms']:.1f} ms, p99 {out['scrape_p99_ms']:.1f} ms "
          f"({len(lat)} scrapes from another process; target p99 <= 100 ms); with gzip "
          f"(as Prometheus asks): p50 {out['scrape_gzip_p50_ms']:.1f} ms, "
          f"p99 {out['scrape_gzip_p99_ms']:.1f} ms")
    print(f"  cyclic GC while scraping: {out['gc_pauses']}")
    print(f"  at the end: unfreeze + one full collection {out['full_gc_ms']:.0f} ms, "
          f"{cyclic} unreachable objects found (cyclic garbage the run left)")
    return out


def proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


# "quiet": the exporter in a private mount namespace where every EROFS mount is
# lazily detached, so other agents' EROFS work on a shared machine is out of its
# view: what an exporter costs on a node with no EROFS activity.
QUIET = r"""
awk -F' - ' '{split($2, r, " "); split($1, l, " "); if (r[1] == "erofs") print l[5]}' \
    /proc/self/mountinfo | while read -r m; do umount -l "$m" 2>/dev/null; done
exec "$@"
"""


def _idle_run(args, quiet: bool) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "erofs_top.cli", "exporter", f"--listen=127.0.0.1:{port}",
           "--interval=10", "--kube-names=off"]
    if quiet:
        cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c", QUIET, "quiet", *cmd]
    exp = subprocess.Popen(cmd, cwd=benchlib.REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = subprocess.Popen([sys.executable, "-c", "import time\nwhile True: time.sleep(10)"])
    try:
        deadline = time.time() + 120
        while True:
            try:
                if get(f"http://127.0.0.1:{port}/healthz", 2)[0] == 200:
                    break
            except OSError:
                pass
            if exp.poll() is not None or time.time() > deadline:
                raise SystemExit(f"exporter did not start: {exp.stderr.read().decode()[-500:]}")
            time.sleep(0.5)
        startup_cpu = proc_cpu_s(exp.pid)
        rss_kib = int(next(ln.split()[1] for ln in open(f"/proc/{exp.pid}/status")
                           if ln.startswith("VmHWM")))
        e0, b0, t0 = proc_cpu_s(exp.pid), proc_cpu_s(base.pid), time.time()
        context = []     # what the exporter saw of the node
        while time.time() - t0 < args.idle_seconds:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as r:
                text = r.read().decode()
            vals = dict(ln.rsplit(" ", 1) for ln in text.splitlines()
                        if ln.startswith(("erofs_top_exporter_refresh_duration_seconds ",
                                          "erofs_top_node_resident_bytes ",
                                          "erofs_top_node_inserted_bytes_total ")))
            context.append({k.split()[0]: float(v) for k, v in vals.items()}
                           | {"mounts": text.count("\nerofs_top_mount_resident_bytes{")})
            time.sleep(min(15, max(0, args.idle_seconds - (time.time() - t0))))
        wall = time.time() - t0
        e1, b1 = proc_cpu_s(exp.pid), proc_cpu_s(base.pid)
    finally:
        for p in (exp, base):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
    inserted = [c.get("erofs_top_node_inserted_bytes_total", 0) for c in context]
    out = {"startup_cpu_s": startup_cpu, "peak_rss_mib": rss_kib / 1024, "wall_s": wall,
           "exporter_cpu_s": e1 - e0, "baseline_cpu_s": b1 - b0,
           "exporter_cpu_pct": (e1 - e0) / wall * 100,
           "erofs_mounts_seen": max(c["mounts"] for c in context),
           "resident_mib_seen": max(c.get("erofs_top_node_resident_bytes", 0) for c in context) / MiB,
           "inserted_mib_during": (inserted[-1] - inserted[0]) / MiB,
           "refresh_duration_s_max": max(c.get("erofs_top_exporter_refresh_duration_seconds", 0)
                                         for c in context)}
    label = "quiet (no EROFS mounts in view)" if quiet else "node (all EROFS mounts in view)"
    print(f"idle {label}: start-up (BCC compile + attach + seed) {startup_cpu:.2f} CPU s, peak "
          f"RSS {out['peak_rss_mib']:.0f} MiB; then {wall:.0f} s at --interval 10, a scrape every "
          f"15 s: exporter {out['exporter_cpu_s']:.2f} CPU s ({out['exporter_cpu_pct']:.2f} % of one "
          f"CPU), idle-python baseline {out['baseline_cpu_s']:.2f} CPU s (clock tick "
          f"{1 / TICK * 1e3:.0f} ms); it saw {out['erofs_mounts_seen']} EROFS mounts, "
          f"{out['resident_mib_seen']:.0f} MiB resident, {out['inserted_mib_during']:.0f} MiB "
          f"inserted during the window, refresh up to {out['refresh_duration_s_max'] * 1e3:.0f} ms")
    return out


def part_idle(args) -> dict:
    if os.geteuid() != 0:
        print("idle: skipped (needs root for the BPF tier)")
        return {"skipped": "not root"}
    return {"quiet": _idle_run(args, True), "node": _idle_run(args, False)}


SCRAPER_CLIENT = r"""
import json, sys, time, urllib.request
url, n, enc = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lat = []
for i in range(n + 1):          # the first asks for the format: one encode, not timed
    t0 = time.perf_counter()
    req = urllib.request.Request(url, headers={"Accept-Encoding": enc})
    with urllib.request.urlopen(req, timeout=60) as r:
        r.read()
    if i:
        lat.append(time.perf_counter() - t0)
print(json.dumps(lat))
"""


STORM_CLIENT = r"""
import json, sys, threading, time, urllib.request
url, clients, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
ok = fail = 0; lat = []; errors = {}
lock = threading.Lock()
stop_at = time.time() + seconds
def run():
    global ok, fail
    while time.time() < stop_at:
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                body = r.read()
                good = r.status == 200 and body.endswith(b"\n") and b"erofs_top_build_info" in body
        except Exception as e:
            good = False
            with lock: errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
        with lock:
            if good: ok += 1; lat.append(time.perf_counter() - t0)
            else: fail += 1
ts = [threading.Thread(target=run) for _ in range(clients)]
for t in ts: t.start()
for t in ts: t.join()
lat.sort()
print(json.dumps({"ok": ok, "fail": fail, "errors": errors,
                  "p50_ms": lat[len(lat) // 2] * 1e3 if lat else None,
                  "p99_ms": lat[int(len(lat) * 0.99)] * 1e3 if lat else None,
                  "max_ms": lat[-1] * 1e3 if lat else None}))
"""


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return int(next(ln.split()[1] for ln in f if ln.startswith("VmRSS")))


def part_storm(args) -> dict:
    model = synthetic_model(args.containers, args.mounts)
    # refresh every 2 s during the storm: families are rebuilt while scrapes run
    ex, server, base = start_exporter(model, interval=2.0)
    samples = []
    stop = threading.Event()

    def sample():
        while not stop.wait(1.0):
            samples.append(rss_kib())
    t = threading.Thread(target=sample, daemon=True)
    try:
        rss_before = rss_kib()
        t.start()
        r = subprocess.run([sys.executable, "-c", STORM_CLIENT, f"{base}/metrics", str(args.clients),
                            str(args.storm_seconds)], capture_output=True, text=True,
                           timeout=args.storm_seconds + 180)
        stop.set()
        t.join()
        if r.returncode != 0:
            raise SystemExit(f"storm client failed: {r.stderr[-800:]}")
        res = json.loads(r.stdout)
    finally:
        stop_exporter(ex, server)
    warm = samples[10:] if len(samples) > 30 else samples
    first, last = statistics.mean(warm[:10]), statistics.mean(warm[-10:])
    res.update(rss_before_mib=rss_before / 1024, rss_first10_mib=first / 1024,
               rss_last10_mib=last / 1024, rss_max_mib=max(samples) / 1024,
               rss_growth_ratio=last / first, scrapes_per_s=res["ok"] / args.storm_seconds)
    print(f"storm: {args.clients} concurrent clients x {args.storm_seconds:g} s on "
          f"{args.containers} x {args.mounts}: {res['ok']} scrapes answered 200, {res['fail']} failed "
          f"{res['errors'] or ''}; {res['scrapes_per_s']:.1f} scrapes/s, latency p50 "
          f"{res['p50_ms']:.0f} ms p99 {res['p99_ms']:.0f} ms max {res['max_ms']:.0f} ms; RSS "
          f"{res['rss_before_mib']:.0f} MiB before, {first / 1024:.0f} -> {last / 1024:.0f} MiB "
          f"(first vs last 10 s after warm-up: {res['rss_growth_ratio']:.3f}x), max "
          f"{res['rss_max_mib']:.0f} MiB")
    return res


def _add_args(ap) -> None:
    ap.add_argument("--parts", default="scrape,refresh,idle,storm")
    ap.add_argument("--containers", type=int, default=1000)
    ap.add_argument("--mounts", type=int, default=20)
    ap.add_argument("--scrapes", type=int, default=100)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--idle-seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--storm-seconds", type=float, default=60.0)
    ap.add_argument("--node-files", type=int, default=250_000)
    ap.add_argument("--node-churn", type=float, default=0.01)
    ap.add_argument("--node-refreshes", type=int, default=5)
    ap.add_argument("--node-settle", type=int, default=0,
                    help="node: steady refreshes left untimed before the timed ones (the "
                         "steady cost climbs while churn ages a fresh node: --node-aged)")
    ap.add_argument("--malloc-default", action="store_true",
                    help="node: leave glibc's malloc thresholds as they are (the exporter "
                         "fixes them: erofs_top/heap.py)")
    ap.add_argument("--no-gc-freeze", action="store_true",
                    help="node: aggregate.FREEZE off (the exporter's is \"every\")")
    ap.add_argument("--mark-every-chunk", action="store_true",
                    help="--map-state: mark every chunk entry of a changed file dirty (this "
                         "benchmark before 2026-12-05 13:45), not only the entries whose "
                         "value changed (as the probe marks them)")
    ap.add_argument("--map-state", action="store_true",
                    help="node: the probe source's ChunkState/IoState between the node and the "
                         "aggregator (a real exporter's source; RSS also without the node)")
    ap.add_argument("--node-process", action="store_true",
                    help="node: --map-state with the synthetic node in another process "
                         "(benchmarks/node_process.py), the reads handed over a pipe: the RSS "
                         "printed is then the exporter's process, nothing subtracted")
    ap.add_argument("--no-hint", action="store_true",
                    help="node: Readings without changed_files / changed_io")
    ap.add_argument("--node-aged", type=int, default=0, metavar="N",
                    help="node: N churns made before the first refresh (synthetic_node.py "
                         "SyntheticNode.age: a node that has run a while; a fresh node's "
                         "steady cost climbs for ~100 refreshes as churn ages it)")
    ap.add_argument("--rereads", action="store_true",
                    help="node: the churn's first reads are of files evicted whole before "
                         "(a node's fixed set of image files: the node stays as it is), not "
                         "of new files with new contents (the node drifts: more files, more "
                         "content groups, at every refresh)")
    ap.add_argument("--scraped", action="store_true",
                    help="node: scraped once (OpenMetrics + gzip) before the timed refreshes: "
                         "they pre-encode /metrics as a scraped exporter's do")


def _body(args):
    parts = {"scrape": part_scrape, "refresh": part_refresh, "idle": part_idle, "storm": part_storm,
             "node": part_node}
    results = {}
    print(f"host: {os.uname().release}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    for name in args.parts.split(","):
        results[name] = parts[name](args)
    return results


def main() -> int:
    return benchlib.bench_main(__doc__, _add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
