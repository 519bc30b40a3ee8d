"""Tracepoint tier: load probes/filemap.c with BCC, keep its filters current,
read its maps into Readings.  The only module (with sharing.py) that imports bcc.
"""
from __future__ import annotations

import ctypes as ct
import gc
import os
import time
from pathlib import Path

from .. import pagecache
from ..errors import CollectorError
from ..model import TIER_FULL, TIER_TRACEPOINT
from ..pagecache import PAGE_SIZE
from ..readings import PageEvent, Readings, kdev_str
from ..snapshot import snapshot_readings
from . import gather, host, maps, slots, startup
from .probe_files import ProbeFileMissing, probe_file
from .maps import MAX_OWNERS

KIND_EROFS = 1
GEN_KERNEL = 0      # probes/filemap.c watched_gen slot erofs_fill_inode bumps
GEN_USER = 1        # probes/filemap.c watched_gen slot user space bumps
COUNTERS = ("chunk_update_failures", "io_update_failures", "owner_overflow_pages",
            "big_folio_lost_pages", "delete_untracked_pages", "events_lost", "dirty_overflow")
# record mode: events one poll_events() hands over at most (~3 MiB of records)
POLL_EVENTS_MAX = 1 << 16
FULL_READ_EVERY = 600   # reads: a full read of the maps every N (the others read marked keys)


class TracepointSource:
    """The tracepoint tier: probes/filemap.c's maps read into Readings.

    ``mounts``/``cgroups``: the resolvers it keeps the kernel filter current
    with and seeds its maps from (what was resident before it attached).
    ``startup``: what each start-up stage cost (kernel/startup.py)."""
    tier = TIER_TRACEPOINT
    page_size = PAGE_SIZE

    def __init__(self, mounts, cgroups, *, record: bool = False, ringbuf_pages: int = 4096,
                 max_chunks: int = 262144, max_io: int = 65536, max_dirty: int = 65536,
                 seed: bool = True):
        self.startup = startup.StartupClock()     # process start -> probes attached
        host_checks = time.monotonic()
        self.mounts, self.cgroups = mounts, cgroups
        problem = host.bpf_problem()
        if problem:
            raise CollectorError(*problem)
        try:
            from bcc import BPF   # noqa: deferred: only this tier needs bcc
        except ImportError:
            raise CollectorError("the bcc Python module is missing: apt-get install python3-bpfcc "
                                 "(and use a venv with --system-site-packages)") from None
        self.degraded: list[str] = []
        loaded = host.ensure_erofs_loaded()
        if loaded and "failed" in loaded:
            self.degraded.append(loaded)
        self._events = host.tracepoints()
        missing = [e for e in ("filemap:mm_filemap_add_to_page_cache",
                               "filemap:mm_filemap_delete_from_page_cache")
                   if not self._events.get(e)]
        if missing:
            raise CollectorError(f"tracepoint {missing[0]} is missing on this kernel: "
                                 f"no tracepoint tier", " (use --no-bpf for the snapshot tier)")
        # erofs-top's own reads (content hashing) are counted like anyone's:
        # they did insert pages (dropped again right after, so not resident)
        try:
            probe = probe_file("filemap.c")
        except ProbeFileMissing as e:
            raise CollectorError(str(e)) from None
        # the per-CPU io slots need bpf(2) from here to be emptied before a read
        self._sys_bpf = slots.sys_bpf_number()
        cflags = [f"-DCHUNK_ENTRIES={max_chunks}", f"-DIO_ENTRIES={max_io}",
                  f"-DDIRTY_ENTRIES={max_dirty}",
                  f"-DIO_SLOTS={slots.IO_SLOTS if self._sys_bpf else 0}",
                  f"-DFLUSH_BATCH={slots.FLUSH_BATCH}",
                  *gather.cflags(bool(self._sys_bpf)),
                  f"-DIO_LOG={slots.IO_LOG}", f"-DLOG_CPUS={slots.possible_cpus()}",
                  f"-I{probe.parent}"]     # chunk_owners.h
        if self._events.get("erofs:erofs_fill_inode"):
            cflags.append("-DHAVE_EROFS_FILL_INODE")
        else:
            self.degraded.append("erofs:erofs_fill_inode missing: new mounts are watched "
                                 "from the next refresh on")
        if self._events.get("erofs:erofs_readahead"):
            cflags.append("-DHAVE_EROFS_READAHEAD")
        else:
            self.degraded.append("erofs:erofs_readahead missing: readahead_bytes stay 0")
        if self._events.get("erofs:erofs_read_folio"):
            cflags.append("-DHAVE_EROFS_READ_FOLIO")
        else:
            self.degraded.append("erofs:erofs_read_folio missing: read_folio_count stays 0")
        self.record = record
        if record:
            cflags += ["-DEROFS_TOP_RECORD", f"-DRINGBUF_PAGES={ringbuf_pages}"]
            if not host.has_ringbuf():
                cflags.append("-DUSE_PERF_BUFFER")
        self.max_chunks, self.max_io = max_chunks, max_io
        src = probe.read_bytes()
        self.startup.add(startup.HOST_CHECKS, time.monotonic() - host_checks)
        try:
            self.bpf = startup.compile_load_attach(self.startup, text=src, cflags=cflags)
        except Exception as e:   # bcc raises plain Exception with the compiler log
            msg = str(e).strip().splitlines()
            raise CollectorError(f"BPF programs failed to load: {msg[-1] if msg else e}"
                                 f" (run `erofs-top doctor`)") from None
        self._attached = True
        self._install_big_folio()
        self._flusher, self._gatherer = self._load_flusher(), self._load_gatherer()
        self.watched: set[int] = set()
        self._init_read_state()
        self.lost_events = 0
        self._ring_open = False
        self.sharing = None
        with self.startup.stage(startup.SHARING):
            self._start_sharing()
        self.mounts.refresh()
        self._sync_mounts()
        self.seeded_pages = self._seed() if seed else 0

    def _install_big_folio(self) -> None:
        """The delete program's tail call for large folios (probes/filemap.c
        delete_big_folio: one chunk per run), loaded now and installed before
        any mount is watched; until then such evictions count as lost pages."""
        from bcc import BPF     # noqa: deferred, as BPF above
        (fn,) = self._load_unattached((b"delete_big_folio",), BPF.TRACEPOINT)
        self.bpf[b"big_folio_progs"][ct.c_int(0)] = ct.c_int(fn.fd)

    def _load_flusher(self) -> slots.SlotFlusher | None:
        """The program that empties the per-CPU io slots (kernel/slots.py),
        loaded (verified) now, never attached; None when built without slots."""
        if not self._sys_bpf:
            return None
        from bcc import BPF     # noqa: deferred, as BPF above
        fn, log_fn = self._load_unattached((b"flush_io_slots", b"flush_io_log"),
                                           BPF.RAW_TRACEPOINT)
        return slots.SlotFlusher(fn.fd, self._sys_bpf, log_fn.fd)

    def _load_gatherer(self) -> gather.Gatherer | None:
        """The programs that copy the dirty keys' values (kernel/gather.py),
        loaded now, never attached; None when built without them."""
        if not self._sys_bpf:
            return None
        from bcc import BPF     # noqa: deferred, as BPF above
        fn, io_fn = self._load_unattached((b"gather_chunks", b"gather_io"), BPF.RAW_TRACEPOINT)
        try:
            return gather.Gatherer(self.bpf, self._sys_bpf, fn.fd, io_fn.fd)
        except OSError as e:        # arrays not mappable here: a lookup syscall per key
            self.degraded.append(f"gather arrays not mapped ({e}): value lookups one by one")
            return None

    def _lookup(self, name: bytes, keys, key_fmt, val_fmt):
        """(found, gone) of raw keys of map `name` (chunks or io)."""
        if self._gatherer is not None:
            prog = self._gatherer.prog_fds[name]
            return self._gatherer.lookup(prog, keys, key_fmt, val_fmt)
        return self._dirty.lookup(self.bpf[name], keys, key_fmt, val_fmt)

    def _load_unattached(self, names: tuple[bytes, ...], prog_type: int) -> list:
        """Programs of probes/filemap.c that are never attached (tail calls,
        flushes run from user space), loaded (verified) now; a failure stops
        the source with the verifier's last line."""
        t = time.monotonic()
        try:
            return [self.bpf.load_func(name, prog_type) for name in names]
        except Exception as e:
            self._attached = False
            self.bpf.cleanup()
            msg = str(e).strip().splitlines()
            what = ", ".join(n.decode() for n in names)
            raise CollectorError(f"BPF program{'s' if len(names) > 1 else ''} {what} failed to "
                                 f"load: {msg[-1] if msg else e} (run `erofs-top doctor`)") from None
        finally:
            self.startup.add(startup.LOAD, time.monotonic() - t)

    def _init_read_state(self) -> None:
        self._chunk_gc = maps.EmptyChunkGC(self.bpf[b"chunks"])
        try:
            from bcc.libbcc import lib as bcc_lib   # noqa: deferred, as BPF above
        except ImportError:
            bcc_lib = None
        self._chunk_raw = maps.raw_batch(self.bpf[b"chunks"], bcc_lib)
        self._io_raw = maps.raw_batch(self.bpf[b"io"], bcc_lib)
        self._chunk_state, self._io_state = maps.ChunkState(), maps.IoState()
        # incremental reads (keys the probe marked changed); None: full reads only
        self._dirty = maps.dirty_reader(self.bpf, bcc_lib)
        self.full_read_every = FULL_READ_EVERY
        self._reads_since_full = None       # None: the next read is a full one
        self._dirty_overflow = 0
        self.last_read_full = True
        # devs gone from mountinfo whose superblock still lives (watched on),
        # and those found dead since the last read (their entries purged)
        self.detached: set[int] = set()
        self.dead_devs: set[int] = set()
        self.purged_entries = 0
        self.unknown_devs: set[int] = set()     # unwatched, liveness unknown (told once)
        self.liveness = host.SuperblockLiveness()
        self.guessed_told: set[int] = set()     # kept watched, liveness uncertain (told once)
        # watched_devs' keys as last walked, and the kernel's generation then
        # (the walk is redone only when erofs_fill_inode added a dev since)
        self.in_filter: set[int] = set()
        self._kernel_gen: int | None = None

    # ---------------------------------------------------------- sharing (full tier)
    def _start_sharing(self) -> None:
        """The tracepoint tier has no sharing probes (FullSource does)."""

    # ---------------------------------------------------------- filters
    def _sync_mounts(self) -> None:
        """Keep watched_devs current: a dev is watched while an EROFS
        superblock with that dev lives.  The kernel adds new EROFS superblocks
        itself (erofs_fill_inode fires at mount time); user space adds the
        ones it finds in mountinfo.  Any other watched dev is asked of
        host.erofs_superblock_alive: one unmounted lazily and still held, or
        mounted in another namespace, stays (its pages are still cached,
        their evictions still to count, the last ones when it dies); a dead
        one, or one another filesystem took again, is unwatched and its
        entries purged (_purge_dead).  Without ustat(2) (arm64) /sys/fs/erofs
        tells (host.SuperblockLiveness; a dev it cannot rule out stays
        watched until it can).  Where nothing can tell, a dev user space saw
        mounted is unwatched when it leaves mountinfo (a warning says so)
        and one only the kernel added stays."""
        want = {m.dev for m in self.mounts.mounts()}
        wd = self.bpf[b"watched_devs"]
        self._walk_filter()
        verdict = self.liveness((self.in_filter | self.watched) - want, want)
        dead = {dev for dev, alive in verdict.items() if alive is False}
        self.dead_devs |= dead
        left = self.watched - want
        self.detached = {dev for dev in left if verdict.get(dev)}
        self.unknown_devs |= {dev for dev in left if verdict.get(dev, False) is None}
        want |= self.detached
        drop = (self.watched - want) | dead
        self.in_filter = (self.in_filter | want) - drop
        if want == self.watched and not drop:
            return
        for dev in want - self.watched:
            wd[ct.c_uint32(dev)] = ct.c_uint64(KIND_EROFS)
        for dev in drop:
            try:
                del wd[ct.c_uint32(dev)]
            except KeyError:
                pass
        self.watched = want
        # after the change: the probes' per-CPU filter caches drop their answers
        gen = self.bpf[b"watched_gen"]
        gen[ct.c_int(GEN_USER)] = ct.c_uint64(gen[ct.c_int(GEN_USER)].value + 1)

    def _walk_filter(self) -> None:
        """in_filter: watched_devs' keys, walked again (a syscall per key)
        only when the kernel's generation moved: erofs_fill_inode adds a
        dev, then bumps it, so a dev added after the generation is read
        here is found at the next read; user space's own changes are kept
        in in_filter as _sync_mounts makes them."""
        kgen = self.bpf[b"watched_gen"][ct.c_int(GEN_KERNEL)].value
        if kgen != self._kernel_gen:
            self._kernel_gen = kgen
            self.in_filter = {k.value for k in self.bpf[b"watched_devs"].keys()}

    def _purge_dead(self, state: maps.ChunkState) -> set[tuple]:
        """The chunk entries left on superblocks found dead (dead_devs),
        deleted from the map and the kept state: their pages are gone, but
        deletes the probe did not count (the superblock died unwatched, or
        its last pages went after its dev left the filter) would keep them
        resident for ever.  Returns the files whose entries went."""
        dead, self.dead_devs = self.dead_devs, set()
        if not dead:
            return set()
        table, by_file = self.bpf[b"chunks"], state.by_file
        files = [fk for fk in state.packed if fk[0] in dead]
        gone = [(fk[0], fk[1], pc.chunk) for fk in files for pc in by_file[fk]]
        for dev, ino, chunk in gone:
            try:
                del table[table.Key(dev, 0, ino, chunk)]
            except KeyError:
                pass
        self.purged_entries += len(gone)
        return state.patch([], gone) if gone else set()

    def _seed(self) -> int:
        """Pages resident before we attached: from ground truth, owners through
        /proc/kpagecgroup where readable, marked seeded.  Only chunks the kernel
        has not seen yet are written (an insert since attach is more exact)."""
        snap = snapshot_readings(self.mounts, self.cgroups)
        chunks = self.bpf[b"chunks"]
        seeded = 0
        for pc in snap.chunks:
            key = chunks.Key(pc.dev, 0, pc.ino, pc.chunk)
            if key in chunks:
                continue
            val = chunks.Leaf()
            slot = 0
            for cg, mask in sorted(pc.owners.items(), key=lambda x: -x[1].bit_count()):
                if not mask:
                    continue
                if slot < MAX_OWNERS and cg:
                    val.cgid[slot] = cg
                    val.bits[slot] = mask
                    slot += 1
                else:
                    val.other_bits |= mask
                val.seeded_bits |= mask
                seeded += mask.bit_count()
            chunks[key] = val
        self._seed_warnings = snap.warnings
        return seeded

    # ---------------------------------------------------------- reading
    def read(self) -> Readings:
        """One consistent read of the maps (and the image files' cache).  No
        cyclic GC inside: a collection would walk the source's and the
        aggregator's millions of kept objects, and a read allocates an object
        or more per changed key.  Where the aggregator freezes what is alive
        after every refresh (aggregate.FREEZE "every": the exporter, `top`'s
        collector process), what is alive after a read is frozen too, or the
        first collection after it (before the aggregator's freeze) would walk
        all the read made (a full one: ~20 ms after 6,000 changed chunk
        entries, bench_refresh.py --probe-read)."""
        from ..aggregate import FREEZE
        with maps.NoGC():
            r = self._read()
        if FREEZE["mode"] == "every":
            gc.freeze()         # O(1); frozen objects are still freed by reference counting
        return r

    def _read(self) -> Readings:
        if not self._attached:
            raise CollectorError("probes are detached")
        self._sync_mounts()
        r = Readings(taken_at=time.time(), page_size=self.page_size, probes_attached=True)
        n_chunks, n_io = self._read_maps(r)
        # the image files' own cache (file-backed/loop double caching): one
        # cachestat(2) per image, instead of tracing the host filesystem
        for m in self.mounts.mounts():
            if m.backing_ino and m.backing_file:
                try:
                    r.backing_pages[(m.backing_dev, m.backing_ino)] = \
                        pagecache.file_resident_pages(m.local(m.backing_file))
                    r.image_sizes[(m.backing_dev, m.backing_ino)] = \
                        os.stat(m.local(m.backing_file)).st_size
                except OSError:
                    pass
        counters = self._counters()
        r.maps = {
            "chunks": (n_chunks, self.max_chunks, counters["chunk_update_failures"]),
            "io": (n_io, self.max_io, counters["io_update_failures"]),
        }
        r.owner_overflow_pages = counters["owner_overflow_pages"]
        r.lost_events = (counters["big_folio_lost_pages"] + counters["events_lost"]
                         + self.lost_events)
        if self.sharing is not None:
            try:
                r.shared = self.sharing.read()
                r.reads, r.reads_lost = self.sharing.drain_reads()
                for name, usage in self.sharing.map_usage().items():
                    r.maps[f"ishare_{name}"] = usage
            except Exception as e:
                r.warnings.append(f"sharing probes unreadable: {e}")
        r.warnings += self.degraded
        self._dev_warnings(r)
        if self._flusher is not None and self._flusher.left:
            r.warnings.append("io counts of CPU(s) " + ", ".join(map(str, self._flusher.left))
                              + " not flushed from the probe's per-CPU slots: in a later read")
        if getattr(self, "_seed_warnings", None):
            r.warnings += self._seed_warnings
        r.bpf_run_time_ns, r.bpf_run_count = self._prog_stats()
        r.page_cache_bytes = pagecache.meminfo_cached_bytes()
        return r

    def _dev_warnings(self, r: Readings) -> None:
        """Unmounted devs whose superblock's life cannot be told (each told once)."""
        if self.unknown_devs:
            devs = ", ".join(map(kdev_str, sorted(self.unknown_devs)))
            r.warnings.append(f"unmounted EROFS dev(s) {devs} unwatched: whether their superblock "
                              f"still lives is unknown here (no ustat(2), no /sys/fs/erofs), so "
                              f"evictions after the unmount are not counted")
            self.unknown_devs = set()
        guessed = self.liveness.guessed - self.guessed_told
        if guessed:
            devs = ", ".join(map(kdev_str, sorted(guessed)))
            r.warnings.append(f"unmounted EROFS dev(s) {devs} kept watched: no ustat(2) here, and "
                              f"/sys/fs/erofs cannot tell yet whether their superblock lives "
                              f"(told once it can)")
            self.guessed_told |= guessed
        self.guessed_told &= self.liveness.guessed

    def _read_maps(self, r: Readings) -> tuple[int, int]:
        """chunks and io into r (chunks, chunks_by_file, changed_files, io,
        io_by_key, changed_io):
        only the keys the probe marked since the previous read, or all of
        them (first read, every full_read_every reads, a full dirty map, no
        batch delete here).  Unchanged entries keep their objects
        (maps.ChunkState/IoState): the aggregator skips them.  Returns the
        entry counts of chunks and io."""
        state, io_state = self._chunk_state, self._io_state
        # the counts pending in the probe's per-CPU io slots into `io` (and
        # marked dirty) first: the read below sees every event before this
        if self._flusher is not None:
            self._flusher.flush()
        # always drain (the map of the generation that ended must be emptied);
        # marks made from here on are in the other map, read next time
        drained = self._dirty.drain() if self._dirty is not None else None
        due = (self._reads_since_full is None
               or self._reads_since_full + 1 >= self.full_read_every)
        overflow = self._counters()["dirty_overflow"]     # read after the drain
        full = drained is None or due or overflow != self._dirty_overflow
        self._dirty_overflow = overflow
        if full:
            chunk_pairs, n_chunks = maps.chunk_items(self.bpf[b"chunks"], self._chunk_raw)
            changed = state.update(chunk_pairs)
            changed |= self._purge_dead(state)      # (before io_state takes held_delta)
            io_pairs, n_io = maps.io_items(self.bpf[b"io"], self._io_raw)
            r.io = io_state.update(io_pairs, state.held_delta)
            self._reads_since_full = 0
            self.last_read_full = True
        else:
            chunk_keys, io_keys = drained
            found, gone = self._lookup(b"chunks", chunk_keys, maps.CHUNK_KEY, maps.CHUNK_VAL)
            changed = state.patch(found, gone)
            changed |= self._purge_dead(state)
            io_found, io_gone = self._lookup(b"io", io_keys, maps.IO_KEY, maps.IO_VAL)
            r.io = io_state.patch(io_found + [(k, None) for k in io_gone], state.held_delta)
            n_chunks, n_io = state.n_entries, io_state.n_entries
            self._reads_since_full += 1
            self.last_read_full = False
        state.held_delta = {}                  # taken by io_state
        state.forget(self._chunk_gc.collect(state.empty))
        # views, not copies: the next read keeps what it changes for them
        r.chunks_by_file = state.snapshot()
        r.changed_files = changed
        r.chunks = maps.ChunkList(r.chunks_by_file, state.n_chunks)
        r.io_by_key, r.changed_io = r.io.by_key, io_state.changed   # r.io: a RowList view
        return n_chunks, n_io

    def _counters(self) -> dict[str, int]:
        return maps.percpu_counters(self.bpf[b"counters"], COUNTERS)

    def _prog_stats(self) -> tuple[dict[str, int], dict[str, int]]:
        """run_time_ns / run_cnt per program from /proc/self/fdinfo (needs
        kernel.bpf_stats_enabled=1; zeros otherwise)."""
        run_ns: dict[str, int] = {}
        run_cnt: dict[str, int] = {}
        for name, fn in getattr(self.bpf, "funcs", {}).items():
            short = (name.decode() if isinstance(name, bytes) else name).split("__")[-1]
            try:
                text = Path(f"/proc/self/fdinfo/{fn.fd}").read_text()
            except OSError:
                continue
            for line in text.splitlines():
                k, _, v = line.partition(":")
                if k == "run_time_ns":
                    run_ns[short] = int(v)
                elif k == "run_cnt":
                    run_cnt[short] = int(v)
        return run_ns, run_cnt

    # ---------------------------------------------------------- record mode
    # the recorder sets this to decode raw `struct page_event` records in bulk
    # (bytes -> batch): a ctypes decode per event costs more than the event
    event_decoder = None

    def poll_events(self, callback, timeout_ms: int = 100) -> bool:
        """Record mode: pass the pending events to callback, as a list of
        PageEvent, or as event_decoder(concatenated raw records) when set;
        POLL_EVENTS_MAX of them at most.  True when it stopped there (more
        may be waiting): under a flood the ring buffer never empties, and a
        read that took everything would never return (a stop request would
        wait for the readers to stop)."""
        if not self.record:
            raise RuntimeError("TracepointSource(record=True) needed for events")
        if not self._ring_open:
            self._batch: list = []
            table = self.bpf[b"events"]
            batch = self._batch

            def on_event(_ctx_or_cpu, data, size):
                if self.event_decoder is not None:
                    batch.append(ct.string_at(data, size))
                else:
                    ev = table.event(data)
                    batch.append(PageEvent(ev.ts_ns, ev.kind, ev.dev, ev.ino, ev.index,
                                           ev.nr_pages, ev.cgroup_id, ev.pid))
                # a negative return ends libbpf's read of the ring buffer (this
                # record taken); a perf buffer's reader ignores it
                return -1 if len(batch) >= POLL_EVENTS_MAX else 0

            def on_lost(n):
                self.lost_events += n

            if host.has_ringbuf():
                table.open_ring_buffer(on_event)
            else:
                table.open_perf_buffer(on_event, page_cnt=256, lost_cb=on_lost)
            self._ring_open = True
        if host.has_ringbuf():
            self.bpf.ring_buffer_poll(timeout_ms)
        else:
            self.bpf.perf_buffer_poll(timeout_ms)
        if not self._batch:
            return False
        items, self._batch[:] = list(self._batch), []
        if self.event_decoder is not None:
            callback(self.event_decoder(b"".join(items)))
        else:
            callback(items)
        return len(items) >= POLL_EVENTS_MAX

    def events_lost(self) -> int:
        """Record mode: events the ring buffer (kernel) or perf buffer (user
        space) dropped so far."""
        return self._counters()["events_lost"] + self.lost_events

    def sync_mounts(self) -> None:
        """Re-read mountinfo and update the kernel filter now (the recorder
        calls this between refreshes)."""
        self.mounts.refresh()
        self._sync_mounts()

    # ---------------------------------------------------------- teardown
    def close(self) -> None:
        if self.sharing is not None:
            try:
                self.sharing.close()
            except Exception:
                pass
            self.sharing = None
        if getattr(self, "_gatherer", None) is not None:
            self._gatherer.close()
            self._gatherer = None
        if self._attached:
            self._attached = False
            try:
                self.bpf.cleanup()
            except Exception:
                pass


class FullSource(TracepointSource):
    """The full tier: the tracepoint tier + the page-cache sharing probes
    (kernel/sharing.py, probes/ishare.c) on kernels with inode_share.  When
    those fail to load, it goes on as the tracepoint tier and says why."""
    tier = TIER_FULL

    def _start_sharing(self) -> None:
        try:
            from . import sharing as sharing_mod
            self.sharing = sharing_mod.SharingProbes()
            self.degraded += self.sharing.warnings
        except Exception as e:   # the tracepoint tier goes on without it
            self.tier = TIER_TRACEPOINT
            self.degraded.append(f"page-cache sharing probes failed: {str(e).splitlines()[-1]}")


def open_probe_source(mounts, cgroups, *, sharing: bool = True, **kw) -> TracepointSource:
    """The full tier where this kernel has page-cache sharing (and ``sharing``),
    the tracepoint tier otherwise; CollectorError when neither loads."""
    if not sharing:
        return TracepointSource(mounts, cgroups, **kw)
    ok, reason = host.sharing_supported()
    if ok:
        return FullSource(mounts, cgroups, **kw)
    source = TracepointSource(mounts, cgroups, **kw)
    source.degraded.append(f"page-cache sharing tier off: {reason}")
    return source


def try_load_bpf() -> str | None:
    """None when BCC can compile, load and attach a tracepoint program here."""
    try:
        from bcc import BPF
    except ImportError:
        return "the bcc Python module is missing (apt-get install python3-bpfcc)"
    try:
        b = BPF(text=b"TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache) { return 0; }")
        b.cleanup()
    except Exception as e:
        lines = str(e).strip().splitlines()
        return f"BPF load failed: {lines[-1] if lines else e}"
    return None
