"""Reading BCC maps: shared by the tracepoint tier (probes.py) and the sharing
tier (sharing.py), whose chunk maps hold the same owner slots
(probes/chunk_owners.h)."""
from __future__ import annotations

MAX_OWNERS = 4      # probes/chunk_owners.h


def items(table) -> list:
    """All (key, value) pairs, in one batch syscall where the kernel and BCC
    have them (5.6+), else one lookup per key."""
    try:
        return list(table.items_lookup_batch())
    except Exception:
        return list(table.items())


def percpu_counters(table, names) -> dict[str, int]:
    """A BPF_PERCPU_ARRAY of counters, summed over CPUs: {name: total} with
    names in index order (missing slots read 0)."""
    import ctypes as ct
    out = {}
    for i, name in enumerate(names):
        try:
            out[name] = int(sum(table[ct.c_int(i)]))
        except (KeyError, TypeError):
            out[name] = 0
    return out


def chunk_owners(v) -> dict[int, int]:
    """A chunk value's owner slots -> {cgroup id: page mask}; pages whose owner
    did not fit in a slot go to cgroup 0 (unknown)."""
    owners: dict[int, int] = {}
    for s in range(MAX_OWNERS):
        if v.bits[s]:
            owners[v.cgid[s]] = owners.get(v.cgid[s], 0) | v.bits[s]
    if v.other_bits:
        owners[0] = owners.get(0, 0) | v.other_bits
    return owners


class EmptyChunkGC:
    """Deletes chunk entries that were empty at two reads in a row: an insert
    racing the delete of its entry would be lost, so give it one interval."""

    def __init__(self, table):
        self.table = table
        self.last: set = set()

    def collect(self, empty_keys: set) -> list:
        """empty_keys: tuples of key fields whose entry had no resident page.
        Returns the key fields of the entries deleted."""
        t = self.table
        deleted = []
        for fields in empty_keys & self.last:
            key = t.Key(*fields)
            try:
                v = t[key]
                if not any(v.bits) and not v.other_bits:
                    del t[key]
                    deleted.append(fields)
            except KeyError:
                pass
        self.last = set(empty_keys)
        return deleted


# ---------------------------------------------------------------- batch reads
import collections.abc as _abc  # noqa: E402
import ctypes as _ct      # noqa: E402
import itertools as _it   # noqa: E402
import errno as _errno    # noqa: E402
import struct as _struct  # noqa: E402
import weakref as _weakref  # noqa: E402

# probes/filemap.c struct chunk_key / chunk_val, io_key / io_val (native order);
# the values' last field, dirty_gen, is the probe's own (skipped: "8x")
CHUNK_KEY = _struct.Struct("=I4xQQ")                       # dev, ino, chunk
CHUNK_VAL = _struct.Struct(f"={2 * MAX_OWNERS + 2}Q8x")    # cgid[4], bits[4], other, seeded
IO_KEY = _struct.Struct("=I4xQQ")                          # dev, ino, cgid
IO_VAL = _struct.Struct("=4Q8x")                           # evicted, readahead, folio, ev.seeded
DIRTY_KEY = _struct.Struct("=IIQQ")     # dev, tag, ino, chunk (DIRTY_CHUNK) or cgid (DIRTY_IO)
DIRTY_CHUNK, DIRTY_IO = 0, 1            # probes/filemap.c; tag = kind | 2 * (generation & 1)


class RawBatch:
    """A whole BPF hash map in BPF_MAP_LOOKUP_BATCH calls into two flat
    buffers (allocated once, map-sized): (entries, key bytes, value bytes),
    without a Python object per entry.  None where the kernel or BCC has no
    batch lookup (before 5.6): the caller falls back to items()."""

    def __init__(self, table, lib, *, delete: bool = False):
        self.table = table
        self.lib = lib                  # bcc.libbcc.lib (probes.py imports bcc)
        # delete: BPF_MAP_LOOKUP_AND_DELETE_BATCH (drains the map)
        self.call = lib.bpf_lookup_and_delete_batch if delete else lib.bpf_lookup_batch
        self.count = table.max_entries
        self.keys = (table.Key * self.count)()
        self.values = (table.Leaf * self.count)()
        self.key_size, self.value_size = _ct.sizeof(table.Key), _ct.sizeof(table.Leaf)

    def read(self) -> tuple[int, bytes, bytes] | None:
        batch = _ct.c_uint32(0)
        cnt = _ct.c_uint32(0)
        total = 0
        while True:
            cnt.value = self.count - total
            res = self.call(
                self.table.map_fd, _ct.byref(batch) if total else None, _ct.byref(batch),
                _ct.byref(self.keys, self.key_size * total),
                _ct.byref(self.values, self.value_size * total), _ct.byref(cnt))
            err = _ct.get_errno()
            total += cnt.value
            if res != 0 and err != _errno.ENOENT:
                if total == 0:
                    return None
                break
            if res != 0 or total == self.count or cnt.value == 0:
                break
        return (total, _ct.string_at(self.keys, total * self.key_size),
                _ct.string_at(self.values, total * self.value_size))


class DirtyReader:
    """The keys probes/filemap.c marked changed since the previous read
    (map `dirty`, generation `read_gen`): ``drain()`` bumps the generation
    (marks carry the new parity from then on), reads the map in
    BPF_MAP_LOOKUP_BATCH calls and deletes the keys of the generation that
    ended.  A mark made by a probe that read the old generation after the
    delete stays for the drain after next: later, never lost.  Keys of the
    new generation are returned too (looked up twice: harmless).
    ``lookup()`` reads the current values of keys, one syscall each."""

    def __init__(self, bpf, lib):
        self.table = bpf[b"dirty"]
        self.raw = RawBatch(self.table, lib)
        self.gen_table = bpf[b"read_gen"]
        self.lib = lib
        self.gen = 0                    # the probe's generation until the first drain

    def drain(self):
        """(chunk keys, io keys) marked since the previous drain (key bytes as
        the probe's struct chunk_key / io_key); None when the kernel cannot
        batch."""
        ended = self.gen
        self.gen += 1
        self.gen_table[_ct.c_int(0)] = _ct.c_uint64(self.gen)
        got = self.raw.read()
        if got is None:
            return None
        n, kb, _ = got
        size, odd = DIRTY_KEY.size, ended & 1
        chunk_keys, io_keys, done = set(), set(), []
        for off in range(0, n * size, size):
            k = kb[off:off + size]
            tag = k[4]
            if (tag >> 1) & 1 == odd:
                done.append(k)
            # the map's key without the tag: pad 0 as in chunk_key / io_key
            (io_keys if tag & DIRTY_IO else chunk_keys).add(k[:4] + bytes(4) + k[8:])
        self._delete(done)
        return list(chunk_keys), list(io_keys)

    def _delete(self, keys) -> None:
        if not keys:
            return
        buf = b"".join(keys)
        cnt = _ct.c_uint32(len(keys))
        if self.lib.bpf_delete_batch(self.table.map_fd, buf, _ct.byref(cnt)) == 0:
            return
        for k in keys[cnt.value:]:      # a batch stopped early: the rest one by one
            self.lib.bpf_delete_elem(self.table.map_fd, k)

    def lookup(self, table, keys, key_fmt, val_fmt):
        """(found: [(key tuple, value tuple)], gone: [key tuple]) for raw keys."""
        lookup, fd = self.lib.bpf_lookup_elem, table.map_fd
        buf = _ct.create_string_buffer(_ct.sizeof(table.Leaf))
        unpack_key, unpack_val = key_fmt.unpack, val_fmt.unpack_from
        found, gone = [], []
        for k in keys:
            if lookup(fd, k, buf) == 0:
                found.append((unpack_key(k), unpack_val(buf)))
            else:
                gone.append(unpack_key(k))
        return found, gone


def owners_of(v: tuple) -> dict[int, int]:
    """chunk_owners() of a CHUNK_VAL tuple."""
    owners: dict[int, int] = {}
    for s in range(MAX_OWNERS):
        bits = v[MAX_OWNERS + s]
        if bits:
            owners[v[s]] = owners.get(v[s], 0) | bits
    if v[2 * MAX_OWNERS]:
        owners[0] = owners.get(0, 0) | v[2 * MAX_OWNERS]
    return owners


_FULL_MASK = (1 << 64) - 1     # a chunk's 64 pages all set (CHUNK_PAGES)


def _interned_owners(v: tuple, ids: dict[int, int]) -> dict[int, int]:
    """owners_of(v), its cgroup ids and full masks one int object each (a
    map read makes fresh ints: ~60 B per owner kept otherwise); ``ids``:
    the interned cgroup ids."""
    owners = owners_of(v)
    out: dict[int, int] = {}
    for cg, mask in owners.items():
        out[ids.setdefault(cg, cg)] = _FULL_MASK if mask == _FULL_MASK else mask
    return out


class _NoGC:
    """The cyclic GC off while a read builds hundreds of thousands of objects
    (it would walk all the kept ones many times over; none form cycles)."""

    def __enter__(self):
        import gc
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc):
        import gc
        if self.was:
            gc.enable()
        return False


class ChunkList(_abc.Sequence):
    """Readings.chunks of a probe source: the PageChunks of chunks_by_file in
    one sequence, a flat list built only when indexed (iterating and len()
    cost nothing up front: a flat list of 600,000 entries per read would be
    a cost in proportion to what is resident, not to what changed)."""
    __slots__ = ("_by_file", "_n", "_flat")

    def __init__(self, by_file: dict, n: int):
        self._by_file, self._n, self._flat = by_file, n, None

    def __len__(self) -> int:
        return self._n

    def __iter__(self):
        if self._flat is not None:
            return iter(self._flat)
        return _it.chain.from_iterable(self._by_file.values())

    def __getitem__(self, i):
        if self._flat is None:
            self._flat = list(_it.chain.from_iterable(self._by_file.values()))
        return self._flat[i]

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def __repr__(self) -> str:
        return f"ChunkList({len(self)} PageChunks)"


_MISSING = object()      # DictSnapshot: the key was not in the dict when the view was taken
_UNSEEN = object()


class DictSnapshot(_abc.Mapping):
    """A read-only view of a dict as it was when the view was taken, without
    copying it (a Readings is a snapshot the next read must not change; a
    copy of 250,000 files' lists per read cost ~10 ms and as much again to
    free).  The dict's owner changes it in place and calls
    ``Snapshots.before_change(keys)`` first: every view still alive keeps
    those keys' values of its time (``_old``; _MISSING: not there then).
    While nothing changed since it was taken, reads go to the dict itself."""
    __slots__ = ("_base", "_old", "_len", "__weakref__")

    def __init__(self, base: dict):
        self._base, self._old, self._len = base, {}, len(base)

    def __getitem__(self, key):
        v = self._old.get(key, _UNSEEN) if self._old else _UNSEEN
        if v is _UNSEEN:
            return self._base[key]
        if v is _MISSING:
            raise KeyError(key)
        return v

    def get(self, key, default=None):
        v = self._old.get(key, _UNSEEN) if self._old else _UNSEEN
        if v is _UNSEEN:
            return self._base.get(key, default)
        return default if v is _MISSING else v

    def __contains__(self, key) -> bool:
        return self.get(key, _MISSING) is not _MISSING

    def __len__(self) -> int:
        return self._len

    def __iter__(self):
        old, base = self._old, self._base
        if not old:
            return iter(base)
        return _it.chain((k for k in base if old.get(k, _UNSEEN) is _UNSEEN),
                         (k for k, v in old.items() if v is not _MISSING))

    def items(self):
        if not self._old:
            return self._base.items()
        return _abc.ItemsView(self)

    def values(self):
        if not self._old:
            return self._base.values()
        return _abc.ValuesView(self)

    def copy(self) -> dict:
        return dict(self._base) if not self._old else dict(self.items())

    def _keep(self, keys) -> None:
        old, base = self._old, self._base
        for k in keys:
            if k not in old:
                old[k] = base.get(k, _MISSING)

    def __repr__(self) -> str:
        return f"DictSnapshot({len(self)} keys)"


class Snapshots:
    """The live DictSnapshots of one dict (weak: a Readings let go costs
    nothing at the next change)."""
    __slots__ = ("base", "views")

    def __init__(self, base: dict):
        self.base, self.views = base, []

    def take(self) -> DictSnapshot:
        view = DictSnapshot(self.base)
        self.views = [r for r in self.views if r() is not None]
        self.views.append(_weakref.ref(view))
        return view

    def before_change(self, keys) -> None:
        """``keys`` of the base dict are about to change (a superset is fine)."""
        for r in self.views:
            view = r()
            if view is not None:
                view._keep(keys)


class ChunkState:
    """The chunks map as PageChunks, kept between reads: an entry whose value
    did not change keeps its PageChunk object, a file none of whose entries
    changed keeps its list (what lets the aggregator skip it), and the pages
    each (file, cgroup) holds that it inserted are summed by deltas.

    ``update`` takes a whole map (a full read), ``patch`` only the entries the
    probe marked changed (DirtyReader); both return the files whose list may
    have changed (Readings.changed_files)."""

    def __init__(self):
        # (dev, ino, chunk) -> its PageChunk, None for an entry without pages;
        # the map's value is not kept: a value read again is compared with
        # the PageChunk it made (owners and seeded pages), ~320 B less per entry
        self.entries: dict[tuple, object] = {}
        self.by_file: dict[tuple, list] = {}
        self._views = Snapshots(self.by_file)     # Readings.chunks_by_file of past reads
        self.held: dict[tuple, int] = {}          # (dev, ino, cg) -> inserted pages held
        self.held_changed: set[tuple] = set()     # held keys changed since IoState took them
        self.empty: set[tuple] = set()            # (dev, 0, ino, chunk): entries without pages
        self.n_chunks = 0                         # PageChunks in by_file
        self.ids: dict[int, int] = {}             # cgroup ids interned (renewed at full reads)

    def update(self, items) -> set[tuple]:
        """items: ((dev, ino, chunk), CHUNK_VAL tuple) pairs of one read.
        Returns the files whose list changed."""
        with _NoGC():
            return self._update(items)

    def _update(self, items) -> set[tuple]:
        from ..readings import PageChunk
        old = self.entries
        new: dict[tuple, PageChunk | None] = {}
        dirty: set[tuple] = set()
        lists: dict[tuple, list] = {}
        empty: set[tuple] = set()
        old_get, lists_get = old.get, lists.get
        added = 0
        ids = self.ids = {}     # the cgroup ids of a full read (so that none stay for ever)
        for k, v in items:
            pc = old_get(k, _ABSENT)        # PageChunk, None (no pages) or absent
            if pc is _ABSENT or not _same_value(pc, v):
                if pc is not _ABSENT:
                    self._held(pc, -1)
                else:
                    added += 1
                owners = _interned_owners(v, ids)
                pc = (PageChunk(k[0], k[1], k[2], owners,
                                _FULL_MASK if v[-1] == _FULL_MASK else v[-1])
                      if owners else None)
                self._held(pc, +1)
                dirty.add((k[0], k[1]))
            new[k] = pc
            if pc is None:
                empty.add((k[0], 0, k[1], k[2]))
                continue
            fk = (k[0], k[1])
            lst = lists_get(fk)
            if lst is None:
                lists[fk] = [pc]
            else:
                lst.append(pc)
        # entries gone from the map: fewer old keys seen than old entries
        gone = old.keys() - new.keys() if len(old) > len(new) - added else ()
        for k in gone:
            self._held(old[k], -1)
            dirty.add((k[0], k[1]))
        self.entries = new
        self.empty = empty
        self.n_chunks = len(new) - len(empty)
        # a file none of whose entries changed keeps its list object (and key)
        prev = self.by_file
        for fk, lst in lists.items():
            if fk not in dirty:
                p = prev.get(fk)
                if p is not None and len(p) == len(lst):
                    lists[fk] = p
        self.by_file = lists
        self._views = Snapshots(lists)      # the old dict is not changed any more
        return dirty

    def snapshot(self) -> DictSnapshot:
        """by_file as it is now, for a Readings (later reads do not change it)."""
        return self._views.take()

    def patch(self, found, gone) -> set[tuple]:
        """found: ((dev, ino, chunk), CHUNK_VAL tuple) of the entries marked
        changed; gone: keys marked changed that are no longer in the map.
        Returns the files whose list changed (others keep their list)."""
        with _NoGC():
            return self._patch(found, gone)

    def _patch(self, found, gone) -> set[tuple]:
        from ..readings import PageChunk
        entries, empty = self.entries, self.empty
        per_file: dict[tuple, dict] = {}        # file -> {chunk: new PageChunk or None}
        delta: dict[tuple, int] = {}            # held pages, applied once per key below
        for k, v in found:
            old_pc = entries.get(k, _ABSENT)
            if old_pc is not _ABSENT and _same_value(old_pc, v):
                continue
            if old_pc is _ABSENT:
                old_pc = None
            _held_delta(delta, old_pc, -1)
            owners = _interned_owners(v, self.ids)
            fk = (k[0], k[1])
            pc = (PageChunk(k[0], k[1], k[2], owners, _FULL_MASK if v[-1] == _FULL_MASK else v[-1])
                  if owners else None)
            entries[k] = pc
            _held_delta(delta, pc, +1)
            if pc is None:
                empty.add((k[0], 0, k[1], k[2]))
            else:
                empty.discard((k[0], 0, k[1], k[2]))
            if pc is not None or old_pc is not None:
                per_file.setdefault(fk, {})[k[2]] = pc
        for k in gone:
            pc = entries.pop(k, _ABSENT)
            if pc is _ABSENT:
                continue
            empty.discard((k[0], 0, k[1], k[2]))
            if pc is not None:
                _held_delta(delta, pc, -1)
                per_file.setdefault((k[0], k[1]), {})[k[2]] = None
        held = self.held
        for key, d in delta.items():
            n = held.get(key, 0) + d
            if n:
                held[key] = n
            else:
                held.pop(key, None)
        self.held_changed.update(delta)
        by_file = self.by_file
        self._views.before_change(per_file)
        for fk, new_pcs in per_file.items():
            old = by_file.get(fk, ())
            lst = [pc for pc in old if pc.chunk not in new_pcs]
            lst += [pc for pc in new_pcs.values() if pc is not None]
            self.n_chunks += len(lst) - len(old)
            if lst:
                by_file[fk] = lst
            else:
                by_file.pop(fk, None)
        return set(per_file)

    def forget(self, deleted) -> None:
        """Entries user space deleted (EmptyChunkGC: key fields (dev, 0, ino,
        chunk) of entries without pages): no list changes."""
        for dev, _pad, ino, chunk in deleted:
            self.entries.pop((dev, ino, chunk), None)
            self.empty.discard((dev, 0, ino, chunk))

    def _held(self, pc, sign: int) -> None:
        if pc is None:
            return
        for cg, mask in pc.owners.items():
            key = (pc.dev, pc.ino, cg)
            n = self.held.get(key, 0) + sign * (mask & ~pc.seeded_mask).bit_count()
            if n:
                self.held[key] = n
            else:
                self.held.pop(key, None)
            self.held_changed.add(key)


_ABSENT = object()      # ChunkState.entries: no entry (None is an entry without pages)


_OTHER_SLOTS = slice(MAX_OWNERS + 1, 2 * MAX_OWNERS + 1)   # bits of slots 1.. and other_bits


def _same_value(pc, v: tuple) -> bool:
    """A chunk value read again says what its PageChunk (None: no pages)
    already says: the same owners' pages, the same seeded pages.  Without
    building the owners dict for the usual value (one owner in slot 0)."""
    if pc is None:
        return not (v[MAX_OWNERS] or any(v[_OTHER_SLOTS]))
    if pc.seeded_mask != v[-1]:
        return False
    owners = pc.owners
    if len(owners) == 1 and not any(v[_OTHER_SLOTS]):
        return v[MAX_OWNERS] != 0 and owners.get(v[0]) == v[MAX_OWNERS]
    return owners == owners_of(v)


def _held_delta(delta: dict, pc, sign: int) -> None:
    """Add a PageChunk's inserted (not seeded) pages per (dev, ino, cg) to delta."""
    if pc is None:
        return
    for cg, mask in pc.owners.items():
        key = (pc.dev, pc.ino, cg)
        delta[key] = delta.get(key, 0) + sign * (mask & ~pc.seeded_mask).bit_count()


class IoState:
    """The io map as FileIO rows, kept between reads: a row whose counters
    and held pages did not change keeps its FileIO object.

    inserted = pages held now that were not seeded + pages evicted that were
    inserted (not seeded): exact, and one map update per insert less.
    ``update`` takes the whole map, ``patch`` the io entries marked changed
    and the (file, cgroup) keys whose held pages changed."""

    def __init__(self):
        self.rows: dict[tuple, tuple] = {}     # (dev, ino, cg) -> (value|None, held, FileIO)
        self.out: dict[tuple, object] = {}     # (dev, ino, cg) -> FileIO (the rows' third item)
        self._views = Snapshots(self.out)      # Readings.io_by_key of past reads
        self.n_entries = 0                     # io map entries (rows with a value)
        # keys whose FileIO is new, another object or gone since the previous
        # read (Readings.changed_io); None after a full read: compare all
        self.changed: set[tuple] | None = None

    def update(self, items, held: dict[tuple, int]) -> list:
        with _NoGC():
            return self._update(items, held)

    def _update(self, items, held: dict[tuple, int]) -> list:
        from ..readings import FileIO
        old = self.rows
        new: dict[tuple, tuple] = {}
        for k, v in items:
            h = held.get(k, 0)
            hit = old.get(k)
            if hit is None or hit[0] != v or hit[1] != h:
                hit = (v, h, FileIO(k[0], k[1], k[2], h + v[0] - v[3], v[0], v[1], v[2]))
            new[k] = hit
        self.n_entries = len(new)
        for k in held.keys() - new.keys():     # pages held, no io entry (yet)
            h = held[k]
            hit = old.get(k)
            if hit is None or hit[0] is not None or hit[1] != h:
                hit = (None, h, FileIO(k[0], k[1], k[2], h))
            new[k] = hit
        self.rows = new
        self.out = {k: row[2] for k, row in new.items()}
        self._views = Snapshots(self.out)
        self.changed = None
        return list(self.out.values())

    def patch(self, found, held: dict[tuple, int], held_changed) -> list:
        """found: ((dev, ino, cg), IO_VAL tuple or None) of the entries marked
        changed; held_changed: keys whose held pages changed."""
        from ..readings import FileIO
        rows, out = self.rows, self.out
        marked = dict(found)
        changed = self.changed = set()
        keys = marked.keys() | held_changed
        self._views.before_change(keys)
        for k in keys:
            hit = rows.get(k)
            v = marked[k] if k in marked else (hit[0] if hit is not None else None)
            h = held.get(k, 0)
            if hit is not None and hit[0] == v and hit[1] == h:
                continue
            if hit is not None and hit[0] is not None:
                self.n_entries -= 1
            if v is None and not h:
                rows.pop(k, None)
                if out.pop(k, None) is not None:
                    changed.add(k)
                continue
            changed.add(k)
            if v is None:
                row = (None, h, FileIO(k[0], k[1], k[2], h))
            else:
                self.n_entries += 1
                row = (v, h, FileIO(k[0], k[1], k[2], h + v[0] - v[3], v[0], v[1], v[2]))
            rows[k] = row
            out[k] = row[2]
        return list(out.values())

    def snapshot(self) -> DictSnapshot:
        """out as it is now, for a Readings (later reads do not change it)."""
        return self._views.take()


def chunk_items(table, raw: RawBatch | None):
    """((dev, ino, chunk), CHUNK_VAL tuple) pairs and the entry count: from
    one raw batch read, else (old kernels) from BCC's per-entry objects."""
    got = raw.read() if raw is not None else None
    if got is not None:
        n, kb, vb = got
        return zip(CHUNK_KEY.iter_unpack(kb), CHUNK_VAL.iter_unpack(vb)), n
    pairs = items(table)
    return (((k.dev, k.ino, k.chunk), tuple(v.cgid) + tuple(v.bits) + (v.other_bits,
                                                                      v.seeded_bits))
            for k, v in pairs), len(pairs)


def io_items(table, raw: RawBatch | None):
    """((dev, ino, cg), IO_VAL tuple) pairs and the entry count (as chunk_items)."""
    got = raw.read() if raw is not None else None
    if got is not None:
        n, kb, vb = got
        return zip(IO_KEY.iter_unpack(kb), IO_VAL.iter_unpack(vb)), n
    pairs = items(table)
    return (((k.dev, k.ino, k.cgid), (v.evicted_pages, v.readahead_pages, v.read_folio_count,
                                      v.evicted_seeded_pages)) for k, v in pairs), len(pairs)


def dirty_reader(bpf, lib) -> DirtyReader | None:
    """A DirtyReader for probes/filemap.c, None if this BCC cannot batch."""
    if lib is None or not hasattr(lib, "bpf_lookup_batch") or not hasattr(lib, "bpf_delete_batch"):
        return None
    try:
        return DirtyReader(bpf, lib)
    except Exception:
        return None


def raw_batch(table, lib) -> RawBatch | None:
    """A RawBatch for a BCC hash table, None if this BCC cannot batch."""
    if lib is None or not hasattr(lib, "bpf_lookup_batch"):
        return None
    try:
        return RawBatch(table, lib)
    except Exception:
        return None
