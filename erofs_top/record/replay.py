"""Offline model: a recording's seed + events -> Readings at any moment -> Model.

``Replayer`` keeps the kernel state the probes keep (64-page chunks with the
cgroup that inserted each page, per-file I/O counters, backing-file pages,
shared inodes) and moves it forward through the events.  It is the replay
tier's Source (``read()``, erofs_top/source.py); the Model is then made by a
Collector around it with static resolvers (Static*) filled from the
recording's metadata: nothing here computes an attribution.

Events before the seed was read are applied to page bits (idempotent: setting
a bit twice, or clearing an absent one, changes nothing) but not to counters,
which the seed already contains.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..collector import Collector
from ..model import Model
from ..readings import CHUNK_PAGES, EventKind, FileIO, PageChunk, Readings, SharedInode
from ..resolve.base import StaticCgroups, StaticContent, StaticMounts
from . import format as fmt

# the event kinds as module globals: the per-event dispatch reads a global 3x
# faster than an Enum class attribute
_ADD = EventKind.ADD
_DELETE = EventKind.DELETE
_READAHEAD = EventKind.READAHEAD
_READ_FOLIO = EventKind.READ_FOLIO
_BACKING_ADD = EventKind.BACKING_ADD
_BACKING_DELETE = EventKind.BACKING_DELETE
_SHARE_OPEN = EventKind.SHARE_OPEN
_SHARE_READ = EventKind.SHARE_READ
_SHARE_MMAP = EventKind.SHARE_MMAP
_SHARE_FILL = EventKind.SHARE_FILL
_SHARE_FREE = EventKind.SHARE_FREE
from .reader import Recording

_ALL = (1 << CHUNK_PAGES) - 1


def page_ranges(index: int, nr_pages: int):
    """(chunk, mask) pieces of pages [index, index + nr_pages)."""
    end = index + max(0, nr_pages)
    while index < end:
        chunk, bit = divmod(index, CHUNK_PAGES)
        n = min(CHUNK_PAGES - bit, end - index)
        yield chunk, (_ALL if n == CHUNK_PAGES else ((1 << n) - 1) << bit)
        index += n


@dataclass
class RecordedContent(StaticContent):
    """StaticContent that also answers build-ids (stored in the recording)."""
    build_ids: dict = None

    def build_id(self, mount, ino):
        return (self.build_ids or {}).get((mount.dev, ino))


class Replayer:
    # folios larger than this are impossible (order > 20); a damaged or hostile
    # event must not make the replay loop for hours
    MAX_EVENT_PAGES = 1 << 20

    def __init__(self, rec: Recording, *, files_cap: int | None = None):
        self.rec = rec
        self.page_size = int(rec.start.get("page_size", 4096))
        self.files_cap = int(files_cap if files_cap is not None else rec.start.get("files_cap", 200))
        self.tier = str(rec.start.get("tier", "tracepoint"))
        self.kernel = str(rec.start.get("kernel", ""))
        self.mounts = StaticMounts(list(rec.mounts.values()))
        self.cgroups = StaticCgroups(dict(rec.cgroups))
        self.content = RecordedContent(files=dict(rec.files), content=dict(rec.digests),
                                       fingerprints=dict(rec.fingerprints),
                                       build_ids=dict(getattr(rec, "build_ids", {}) or {}))
        self.collector = Collector(self, mounts=self.mounts, cgroups=self.cgroups,
                                   content=self.content, files_cap=self.files_cap,
                                   started_at=rec.started_at, kernel=self.kernel)
        self.reset()

    # ------------------------------------------------------------ state
    def reset(self) -> None:
        rec = self.rec
        self.chunks: dict[tuple[int, int, int], dict[int, int]] = {}
        self.seeded: dict[tuple[int, int, int], int] = {}
        self.io: dict[tuple[int, int, int], list[int]] = {}
        self.backing: dict[tuple[int, int], int] = {}
        self.shared: dict[int, SharedInode] = {}
        self.untracked_delete_pages = 0
        self.bad_events = 0
        self.events_applied = 0
        seed = rec.seed
        if seed is not None:
            for pc in seed.chunks:
                owners = {cg: m for cg, m in pc.owners.items() if m}
                if owners:
                    self.chunks[(pc.dev, pc.ino, pc.chunk)] = owners
                if pc.seeded_mask:
                    self.seeded[(pc.dev, pc.ino, pc.chunk)] = pc.seeded_mask
            for x in seed.io:
                self.io[(x.dev, x.ino, x.cgroup_id)] = [x.inserted_pages, x.evicted_pages,
                                                        x.readahead_pages, x.read_folio_count]
            self.backing = dict(seed.backing_pages)
            for s in seed.shared:
                self.shared[s.mapping] = SharedInode(
                    s.mapping, {c: dict(o) for c, o in s.chunks.items()}, set(s.members),
                    {cg: set(m) for cg, m in s.users.items()}, s.size)
        self.counters_from_ns = rec.seed_ts_ns if seed is not None else 0
        self.pos_ns = rec.mono_start_ns
        self._batches = rec.batches()
        self._batch = None
        self._i = 0
        self._done = False

    def _next_batch(self) -> bool:
        try:
            self._batch = next(self._batches).time_ordered()
        except StopIteration:
            self._batch, self._done = None, True
            return False
        except (fmt.RecordingError, ValueError, OSError) as e:
            # the file changed or broke since it was opened: stop at what was read
            self.rec.warnings.append(f"events unreadable during replay ({e}); replay stops there")
            self._batch, self._done = None, True
            return False
        self._i = 0
        return True

    def advance_to(self, ts_ns: int) -> None:
        """Apply every event up to ts_ns (file order); going back replays from the seed."""
        if ts_ns < self.pos_ns:
            self.reset()
        while not self._done:
            if self._batch is None or self._i >= len(self._batch):
                if not self._next_batch():
                    break
                continue
            b = self._batch
            ts = b.ts_ns
            n = len(b)
            i = self._i
            apply = self._apply
            kind, dev, ino, index, nr, cg, mapping = (b.kind, b.dev, b.ino, b.index,
                                                     b.nr_pages, b.cgroup_id, b.mapping)
            while i < n:
                t = ts[i]
                if t > ts_ns:
                    break
                apply(t, kind[i], dev[i], ino[i], index[i], nr[i], cg[i], mapping[i])
                i += 1
            self.events_applied += i - self._i
            self._i = i
            if i < n:
                break
        self.pos_ns = max(self.pos_ns, ts_ns)

    def _io(self, dev, ino, cg) -> list[int]:
        v = self.io.get((dev, ino, cg))
        if v is None:
            v = self.io[(dev, ino, cg)] = [0, 0, 0, 0]
        return v

    def _apply(self, t, kind, dev, ino, index, nr, cg, mapping) -> None:
        if nr > self.MAX_EVENT_PAGES:
            self.bad_events += 1
            return
        counting = t >= self.counters_from_ns
        if kind == _ADD:
            self._set_bits(self.chunks, (dev, ino), index, nr, cg)
            if counting:
                self._io(dev, ino, cg)[0] += nr
        elif kind == _DELETE:
            for chunk, mask in page_ranges(index, nr):
                key = (dev, ino, chunk)
                owners = self.chunks.get(key)
                seen = 0
                if owners:
                    for o, m in list(owners.items()):
                        hit = m & mask
                        if hit:
                            seen |= hit
                            rest = m & ~hit
                            if rest:
                                owners[o] = rest
                            else:
                                del owners[o]
                            if counting:
                                self._io(dev, ino, o)[1] += hit.bit_count()
                    if not owners:
                        del self.chunks[key]
                s = self.seeded.get(key)
                if s and s & mask:
                    s &= ~mask
                    if s:
                        self.seeded[key] = s
                    else:
                        del self.seeded[key]
                self.untracked_delete_pages += (mask & ~seen).bit_count()
        elif kind == _READAHEAD:
            if counting:
                self._io(dev, ino, cg)[2] += nr
        elif kind == _READ_FOLIO:
            if counting:
                self._io(dev, ino, cg)[3] += 1
        elif kind in (_BACKING_ADD, _BACKING_DELETE):
            if counting:
                d = nr if kind == _BACKING_ADD else -nr
                self.backing[(dev, ino)] = self.backing.get((dev, ino), 0) + d
        elif kind >= _SHARE_OPEN:
            self._apply_shared(kind, dev, ino, index, nr, cg, mapping)
        else:
            self.bad_events += 1

    def _set_bits(self, table, key2, index, nr, cg) -> None:
        dev, ino = key2
        for chunk, mask in page_ranges(index, nr):
            key = (dev, ino, chunk)
            owners = table.get(key)
            if owners is None:
                table[key] = {cg: mask}
                continue
            # a page has one owner: an insert we see without its delete (a lost
            # event, or the seed's guess) moves the page to the inserting cgroup
            for o, m in list(owners.items()):
                if o != cg and m & mask:
                    rest = m & ~mask
                    if rest:
                        owners[o] = rest
                    else:
                        del owners[o]
            owners[cg] = owners.get(cg, 0) | mask

    def _apply_shared(self, kind, dev, ino, index, nr, cg, mapping) -> None:
        if not mapping:
            self.bad_events += 1
            return
        si = self.shared.get(mapping)
        if si is None:
            si = self.shared[mapping] = SharedInode(mapping, {})
        if kind in (_SHARE_OPEN, _SHARE_READ, _SHARE_MMAP):
            if dev or ino:
                si.members.add((dev, ino))
                si.users.setdefault(cg, set()).add((dev, ino))
        elif kind == _SHARE_FILL:
            for chunk, mask in page_ranges(index, nr):
                owners = si.chunks.setdefault(chunk, {})
                for o, m in list(owners.items()):
                    if o != cg and m & mask:
                        owners[o] = m & ~mask
                owners[cg] = owners.get(cg, 0) | mask
        elif kind == _SHARE_FREE:
            for chunk, mask in page_ranges(index, nr):
                owners = si.chunks.get(chunk)
                if not owners:
                    continue
                for o, m in list(owners.items()):
                    if m & mask:
                        owners[o] = m & ~mask
                si.chunks[chunk] = {o: m for o, m in owners.items() if m}
                if not si.chunks[chunk]:
                    del si.chunks[chunk]
        else:
            self.bad_events += 1    # a sharing kind newer than this reader

    def _shared_now(self) -> list[SharedInode]:
        """Shared inodes at the current position.  Streamed shared events win; a
        recording without them (the sharing probes only keep maps) carries
        snapshots taken with every live Model: the latest one not after now."""
        rec = self.rec
        if rec.shared_events_count or not rec.shared_snapshots:
            return list(self.shared.values())
        current = None
        for ts, inodes in rec.shared_snapshots:
            if ts <= self.pos_ns:
                current = inodes
        return list(self.shared.values()) if current is None else current

    def _backing_now(self) -> dict[tuple[int, int], int]:
        """Image-file pages in the host page cache.  Probes that stream backing
        events (kinds 5/6) give them exactly; otherwise (the collector asks
        cachestat at each refresh) the latest state snapshot not after now."""
        rec = self.rec
        if rec.backing_events_count or not rec.backing_snapshots:
            return dict(self.backing)
        current = None
        for ts, pages in rec.backing_snapshots:
            if ts <= self.pos_ns:
                current = pages
        return dict(self.backing if current is None else current)

    # ------------------------------------------------------------ output
    def lost_events_until(self, ts_ns: int) -> int:
        lost = 0
        for t in self.rec.ticks:
            if int(t.get("ts_ns", 0)) <= ts_ns:
                lost = max(lost, int(t.get("lost_events_total", 0)))
        if self.rec.end and ts_ns >= self.rec.end_ts_ns:
            lost = max(lost, self.rec.lost_events)
        return lost

    def readings(self) -> Readings:
        rec = self.rec
        seed = rec.seed
        r = Readings(taken_at=rec.wall(self.pos_ns), page_size=self.page_size,
                     probes_attached=True)
        for (dev, ino, chunk), owners in self.chunks.items():
            if owners:
                r.chunks.append(PageChunk(dev, ino, chunk, dict(owners),
                                          self.seeded.get((dev, ino, chunk), 0)))
        r.io = [FileIO(dev, ino, cg, *v) for (dev, ino, cg), v in self.io.items()]
        r.backing_pages = self._backing_now()
        r.shared = [SharedInode(s.mapping, {c: dict(o) for c, o in s.chunks.items()},
                                set(s.members), {cg: set(m) for cg, m in s.users.items()},
                                s.size) for s in self._shared_now()]
        if seed is not None:
            r.maps = dict(seed.maps)
            r.owner_overflow_pages = 0      # no owner slots offline: every owner is kept
            r.page_cache_bytes = getattr(seed, "page_cache_bytes", 0)
        for t in rec.ticks:
            if int(t.get("ts_ns", 0)) <= self.pos_ns and "page_cache_bytes" in t:
                r.page_cache_bytes = int(t["page_cache_bytes"])
        r.lost_events = self.lost_events_until(self.pos_ns)
        r.warnings = list(rec.warnings)     # losses: health.lost_events and the timeline
        if self.bad_events:
            r.warnings.append(f"{self.bad_events} malformed events skipped")
        return r

    # the Source protocol: the state at the replay clock
    read = readings

    def close(self) -> None:
        pass

    def model(self) -> Model:
        return self.collector.refresh()

    def model_at(self, ts_ns: int) -> Model:
        self.advance_to(ts_ns)
        return self.model()

    def final_model(self) -> Model:
        return self.model_at(self.rec.end_ts_ns)
