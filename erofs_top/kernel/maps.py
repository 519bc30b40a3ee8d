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

from ..readings import FileIO as _FileIO, PageChunk as _PageChunk  # noqa: E402

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

    def __init__(self, table, lib, *, delete: bool = False, keep: bool = True):
        self.table = table
        self.lib = lib                  # bcc.libbcc.lib (probes.py imports bcc)
        # delete: BPF_MAP_LOOKUP_AND_DELETE_BATCH (drains the map)
        self.call = lib.bpf_lookup_and_delete_batch if delete else lib.bpf_lookup_batch
        self.count = table.max_entries
        self.key_size, self.value_size = _ct.sizeof(table.Key), _ct.sizeof(table.Leaf)
        # keep: the buffers are made once (a map read at every refresh), and
        # read() returns copies; else (the chunks and io maps, read whole
        # only now and then) made per read() and returned as views: a map of
        # 623,000 chunk entries fills 65 MB of them, which then go
        self.keys = self.values = None
        if keep:
            self.keys, self.values = self._buffers()

    def _buffers(self):
        return (self.table.Key * self.count)(), (self.table.Leaf * self.count)()

    def read(self) -> tuple[int, bytes, bytes] | None:
        keys, values = (self.keys, self.values) if self.keys is not None else self._buffers()
        batch = _ct.c_uint32(0)
        cnt = _ct.c_uint32(0)
        total = 0
        while True:
            cnt.value = self.count - total
            res = self.call(
                self.table.map_fd, _ct.byref(batch) if total else None, _ct.byref(batch),
                _ct.byref(keys, self.key_size * total),
                _ct.byref(values, self.value_size * total), _ct.byref(cnt))
            err = _ct.get_errno()
            total += cnt.value
            if res != 0 and err != _errno.ENOENT:
                if total == 0:
                    return None
                break
            if res != 0 or total == self.count or cnt.value == 0:
                break
        if self.keys is None:           # views of this read's own buffers
            return (total, memoryview(keys).cast("B")[:total * self.key_size],
                    memoryview(values).cast("B")[:total * self.value_size])
        return (total, _ct.string_at(keys, total * self.key_size),
                _ct.string_at(values, total * self.value_size))


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
        return self._split(n, kb, ended & 1)

    def _split(self, n: int, kb: bytes, odd: int):
        """(chunk keys, io keys) of n dirty keys ``kb``; deletes those of the
        generation that ended (parity ``odd``).  Slices of whole buffers, not
        a key at a time."""
        size = DIRTY_KEY.size
        tags = kb[4::size]                  # the tag's low byte, native order as k[4]
        keys = bytearray(kb)
        for i in range(4, 8):               # the map's key: pad 0 in place of the tag
            keys[i::size] = bytes(n)
        keys = bytes(keys)
        offs = range(0, n * size, size)
        chunk_keys = {keys[o:o + size] for o, t in zip(offs, tags) if not t & DIRTY_IO}
        io_keys = {keys[o:o + size] for o, t in zip(offs, tags) if t & DIRTY_IO}
        ended = bytes((t >> 1) & 1 == odd for t in range(256))
        if tags.translate(ended).count(1) == n:      # all of the ended generation: the usual
            self._delete_buf(kb, n)
        else:
            self._delete([kb[o:o + size] for o, t in zip(offs, tags) if ended[t]])
        return list(chunk_keys), list(io_keys)

    def _delete(self, keys) -> None:
        if keys:
            self._delete_buf(b"".join(keys), len(keys))

    def _delete_buf(self, buf: bytes, n: int) -> None:
        if not n:
            return
        cnt = _ct.c_uint32(n)
        if self.lib.bpf_delete_batch(self.table.map_fd, buf, _ct.byref(cnt)) == 0:
            return
        size = DIRTY_KEY.size           # a batch stopped early: the rest one by one
        for off in range(cnt.value * size, n * size, size):
            self.lib.bpf_delete_elem(self.table.map_fd, buf[off:off + size])

    def lookup(self, table, keys, key_fmt, val_fmt):
        """(found: [(key tuple, value tuple)], gone: [key tuple]) for raw keys:
        one syscall per key, the values into one buffer, decoded at once."""
        lookup, fd = self.lib.bpf_lookup_elem, table.map_fd
        size = _ct.sizeof(table.Leaf)
        buf = _ct.create_string_buffer(size * max(1, len(keys)))
        base, off = _ct.addressof(buf), 0
        hit, gone = [], []
        for k in keys:
            if lookup(fd, k, base + off) == 0:
                hit.append(k)
                off += size
            else:
                gone.append(key_fmt.unpack(k))
        raw = buf.raw[:off]
        values = val_fmt.iter_unpack(raw) if val_fmt.size == size else \
            (val_fmt.unpack_from(raw, o) for o in range(0, off, size))
        return list(zip(key_fmt.iter_unpack(b"".join(hit)), values)), gone


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
_OTHER_SLOTS = slice(MAX_OWNERS + 1, 2 * MAX_OWNERS + 1)   # bits of slots 1.. and other_bits
OWNERS_CACHE_MAX = 65536       # OwnersCache: dicts kept before a full read starts anew


class OwnersCache:
    """One owners dict object for the usual chunk values: one cgroup holding
    a full chunk, or pages 0..n-1 of one (a file's tail chunk): a one-key
    dict is ~220 B, most chunk entries of a node are such values (and the
    cgroup ids and full masks are one int object each: a map read makes
    fresh ints, ~60 B per owner kept otherwise).  The dicts are shared: read
    only, as every reader of PageChunk.owners treats them (entries.py
    borrows them and copies before merging).  A full read starts a new one
    once it holds OWNERS_CACHE_MAX ints and dicts (cgroups gone do not stay
    for ever; no cost per entry)."""
    __slots__ = ("ids", "full", "prefix")

    def __init__(self):
        self.ids: dict[int, int] = {}                       # cgroup id -> its int
        self.full: dict[int, dict] = {}                     # cg -> {cg: _FULL_MASK}
        self.prefix: dict[tuple, dict] = {}                 # (cg, mask) -> {cg: mask}

    def __len__(self) -> int:
        return len(self.ids) + len(self.full) + len(self.prefix)

    def owners(self, v: tuple) -> dict[int, int]:
        """owners_of(v), shared where it is a one-owner prefix mask."""
        bits = v[MAX_OWNERS]
        if bits and not any(v[_OTHER_SLOTS]):
            cg = v[0]
            if bits == _FULL_MASK:
                d = self.full.get(cg)
                if d is None:
                    cg = self.ids.setdefault(cg, cg)
                    d = self.full[cg] = {cg: _FULL_MASK}
                return d
            if not bits & (bits + 1):           # pages 0..n-1
                d = self.prefix.get((cg, bits))
                if d is None:
                    cg = self.ids.setdefault(cg, cg)
                    d = self.prefix[(cg, bits)] = {cg: bits}
                return d
            # another mask of one owner (pages evicted or read here and
            # there): its own dict, made at once (owners_of's loop is for several)
            return {self.ids.setdefault(cg, cg): bits}
        ids = self.ids
        out: dict[int, int] = {}
        for cg, mask in owners_of(v).items():
            out[ids.setdefault(cg, cg)] = _FULL_MASK if mask == _FULL_MASK else mask
        return out


class NoGC:
    """The cyclic GC off while a read builds hundreds of thousands of objects
    (it would walk all the kept ones many times over; none form cycles).
    Nested uses keep it off until the outermost one ends."""

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

    def olds(self) -> list[dict]:
        """The ``_old`` dicts of the live views, for an owner that changes
        keys one at a time and has each old value at hand: for each, ``if
        key not in old: old[key] = value`` (_MISSING: was not there) before
        the change (before_change without a second lookup of each key)."""
        out = []
        for r in self.views:
            view = r()
            if view is not None:
                out.append(view._old)
        return out

    def before_change(self, keys) -> None:
        """``keys`` of the base dict are about to change (a superset is fine)."""
        for r in self.views:
            view = r()
            if view is not None:
                view._keep(keys)


class _Seeded(tuple):
    """A packed file (ChunkState.packed) with seeded pages: (chunk, owners,
    seeded mask) per entry; a plain tuple is (chunk, owners) per entry."""
    __slots__ = ()


def _stride(t: tuple) -> int:
    return 3 if type(t) is _Seeded else 2


def _tuple_of(t) -> tuple:
    """A packed file in its tuple form: a file of chunk 0 alone, nothing
    seeded, is kept as its owners dict (pack())."""
    return (0, t) if type(t) is dict else t


def _count(t) -> int:
    """The entries of a packed file."""
    return 1 if type(t) is dict else len(t) // _stride(t)


def pack(flat: list):
    """A file's entries (chunk, owners, seeded mask, ... flat) as ChunkState
    keeps them: one tuple, 16 B an entry (24 with seeded pages), where a
    PageChunk in a list was ~88 B; a file of chunk 0 alone (a file of up to
    64 pages: most files of a node), nothing seeded, as its owners dict
    itself (the shared one, mostly: no object of its own, where a tuple is
    64 B)."""
    if len(flat) == 3 and flat[0] == 0 and not flat[2]:
        return flat[1]
    if any(flat[2::3]):
        return _Seeded(flat)
    out = [None] * (len(flat) // 3 * 2)
    out[0::2] = flat[0::3]
    out[1::2] = flat[1::3]
    return tuple(out)


def unpack(fk: tuple, t: tuple) -> list:
    """The PageChunks of a packed file ``t`` of key (dev, ino), new objects."""
    dev, ino = fk
    if type(t) is dict:
        return [_PageChunk(dev, ino, 0, t)]
    if type(t) is _Seeded:
        return [_PageChunk(dev, ino, t[i], t[i + 1], t[i + 2]) for i in range(0, len(t), 3)]
    return [_PageChunk(dev, ino, c, o) for c, o in zip(t[0::2], t[1::2])]


def _entries_of(t: tuple, start: int = 0):
    """(chunk, owners, seeded) of a packed file's entries from entry ``start`` on."""
    if type(t) is dict:
        return [] if start else [(0, t, 0)]
    if type(t) is _Seeded:
        return [(t[i], t[i + 1], t[i + 2]) for i in range(start * 3, len(t), 3)]
    return [(c, o, 0) for c, o in zip(t[start * 2::2], t[start * 2 + 1::2])]


class FileChunks(_abc.Mapping):
    """Readings.chunks_by_file of a probe source: (dev, ino) -> that file's
    PageChunks, a list built at each access from ChunkState's packed form
    (or a DictSnapshot of it): nothing per chunk is kept but the packed
    tuples, and only what a reader looks at is built.  The lists are new
    objects at each access (never compare them by identity: the aggregator
    does not, for a mapping with ``built_on_access``, nor keeps them)."""
    __slots__ = ("packed",)
    built_on_access = True

    def __init__(self, packed):
        self.packed = packed

    def __getitem__(self, fk):
        return unpack(fk, self.packed[fk])

    def get(self, fk, default=None):
        t = self.packed.get(fk)
        return default if t is None else unpack(fk, t)

    def __contains__(self, fk) -> bool:
        return fk in self.packed

    def __iter__(self):
        return iter(self.packed)

    def __len__(self) -> int:
        return len(self.packed)

    def values(self):
        return _abc.ValuesView(self)

    def __repr__(self) -> str:
        return f"FileChunks({len(self)} files)"


class ChunkState:
    """The chunks map, kept between reads in a packed form: one tuple per
    file (``packed``: (dev, ino) -> (chunk, owners, ...), see pack(); a file
    of chunk 0 alone, nothing seeded: its owners dict), the
    owners dicts shared through OwnersCache; a file none of whose entries
    changed keeps its tuple; the changes of the pages each (file, cgroup)
    holds that it inserted are summed in ``held_delta`` for IoState (which
    keeps the sums in its rows).  Readings get PageChunks only for the files
    they look at (FileChunks): no object per chunk entry is kept (~60 B per
    entry less than a PageChunk in a list per file).  Entries without pages
    are in ``empty``; dev ints are interned.

    ``update`` takes a whole map (a full read), ``patch`` only the entries the
    probe marked changed (DirtyReader); both return the files whose entries
    changed (Readings.changed_files)."""

    def __init__(self):
        self.packed: dict[tuple, tuple | dict] = {}
        self._views = Snapshots(self.packed)      # Readings.chunks_by_file of past reads
        # (dev, ino, cg) -> change of the inserted pages it holds since IoState took them
        self.held_delta: dict[tuple, int] = {}
        self.empty: set[tuple] = set()            # (dev, 0, ino, chunk): entries without pages
        self.n_chunks = 0                         # entries with pages (in packed)
        self.owners_cache = OwnersCache()         # shared owners dicts (renewed at full reads)
        self.devs: dict[int, int] = {}            # dev -> its one int object

    @property
    def n_entries(self) -> int:
        """Map entries: with pages (packed) and without (empty)."""
        return self.n_chunks + len(self.empty)

    @property
    def by_file(self) -> FileChunks:
        """(dev, ino) -> PageChunks as they are now (built at each access)."""
        return FileChunks(self.packed)

    @property
    def entries(self) -> "EntriesView":
        """(dev, ino, chunk) -> PageChunk, None for an entry without pages
        (a view found through packed, for tests and counts)."""
        return EntriesView(self)

    def update(self, items) -> set[tuple]:
        """items: ((dev, ino, chunk), CHUNK_VAL tuple) pairs of one read.
        Returns the files whose entries changed."""
        with NoGC():
            return self._update(items)

    def _update(self, items) -> set[tuple]:
        """One pass over the read, one key at a time (no value is kept past
        its key): a file's entries come in the map's order, the order its
        tuple was built in, so its old entries are met at a cursor (the
        new list's length); a file out of that order (an entry new, gone or
        without pages) has its old entries indexed by chunk from there."""
        cache = self.owners_cache
        if len(cache) > OWNERS_CACHE_MAX:       # cgroups gone do not stay for ever
            cache = OwnersCache()
        if len(self.devs) > OWNERS_CACHE_MAX:   # mounts gone do not stay for ever
            self.devs = {}
        prev, devs, delta = self.packed, self.devs, self.held_delta
        prev_get, owners_of_value = prev.get, cache.owners
        lists: dict[tuple, list] = {}            # file -> [chunk, owners, seeded, ...] of this read
        lists_get = lists.get
        by_chunk: dict[tuple, dict] = {}         # file out of order -> {chunk: (owners, seeded)}
        dirty: set[tuple] = set()
        empty: set[tuple] = set()
        for k, v in items:
            fk = (k[0], k[1])
            lst = lists_get(fk)
            if lst is None:                      # the key the file keeps if new: dev interned
                fk = (devs.setdefault(k[0], k[0]), k[1])
                lst = lists[fk] = []
            dev, ino, c = devs.get(fk[0], fk[0]), fk[1], k[2]
            old = prev_get(fk)
            was = None
            if old is not None:
                if type(old) is dict:
                    old = (0, old)
                at = by_chunk.get(fk) if by_chunk else None
                if at is None:
                    s = 3 if type(old) is _Seeded else 2
                    pos = len(lst) // 3 * s
                    if pos < len(old) and old[pos] == c:
                        was = (old[pos + 1], old[pos + 2] if s == 3 else 0)
                    else:
                        at = by_chunk[fk] = {e[0]: e[1:] for e in _entries_of(old, pos // s)}
                if at is not None:
                    was = at.pop(c, None)
                if was is not None and _same_value(was[0], was[1], v):
                    lst += (c, was[0], was[1])
                    continue
            owners = owners_of_value(v)
            if was is not None:                  # its pages changed
                _held_delta(delta, dev, ino, was[0], was[1], -1)
                dirty.add(fk)
                if not owners and fk not in by_chunk:     # not in the list: out of order
                    by_chunk[fk] = {e[0]: e[1:] for e in _entries_of(old, len(lst) // 3 + 1)}
            if owners:
                seeded = _FULL_MASK if v[-1] == _FULL_MASK else v[-1]
                _held_delta(delta, dev, ino, owners, seeded, +1)
                lst += (c, owners, seeded)
                dirty.add(fk)
            else:
                empty.add((dev, 0, ino, c))
        self.packed = self._files_after(prev, lists, by_chunk, dirty)
        self.empty, self.owners_cache = empty, cache
        self._views = Snapshots(self.packed)     # the old dict is not changed any more
        return dirty

    def _files_after(self, prev: dict, lists: dict, by_chunk: dict, dirty: set) -> dict:
        """packed after a full read: ``prev`` (copied) with the tuples of the
        files that changed, or are new or gone; the entries of the read no
        key met (gone from the map) leave the held pages; n_chunks."""
        if not prev:                             # the first read
            out = {fk: pack(lst) for fk, lst in lists.items() if lst}
            self.n_chunks = sum(len(lst) for lst in lists.values()) // 3
            dirty.update(out)
            return out
        out = prev.copy()
        n, prev_get, delta = self.n_chunks, prev.get, self.held_delta
        seen_old = 0
        for fk, lst in lists.items():
            old = prev_get(fk)
            if old is not None:
                seen_old += 1
                at = by_chunk.get(fk)
                gone = [(c,) + w for c, w in at.items()] if at is not None else \
                    _entries_of(old, len(lst) // 3)
                for _c, owners, seeded in gone:  # entries gone from the map
                    _held_delta(delta, fk[0], fk[1], owners, seeded, -1)
                    dirty.add(fk)
            if fk not in dirty:
                continue
            n += len(lst) // 3 - (_count(old) if old is not None else 0)
            if lst:
                out[fk] = pack(lst)
            elif old is not None:
                del out[fk]
        if seen_old < len(prev):                 # files gone from the map
            for fk in prev.keys() - lists.keys():
                for _c, owners, seeded in _entries_of(prev[fk]):
                    _held_delta(delta, fk[0], fk[1], owners, seeded, -1)
                n -= _count(prev[fk])
                del out[fk]
                dirty.add(fk)
        self.n_chunks = n
        return out

    def snapshot(self) -> FileChunks:
        """The files' PageChunks as they are now, for a Readings (later reads
        do not change it: a DictSnapshot of packed)."""
        return FileChunks(self._views.take())

    def patch(self, found, gone) -> set[tuple]:
        """found: ((dev, ino, chunk), CHUNK_VAL tuple) of the entries marked
        changed; gone: keys marked changed that are no longer in the map.
        Returns the files whose entries changed (others keep their tuple)."""
        with NoGC():
            return self._patch(found, gone)

    def _patch(self, found, gone) -> set[tuple]:
        # file -> its marked entry (key, value or None: gone), or a list of
        # them where several (no list per file for the usual one)
        per_file: dict[tuple, object] = {}
        get = per_file.get
        for kv in _it.chain(found, ((k, None) for k in gone)):
            k = kv[0]
            fk = (k[0], k[1])
            got = get(fk)
            if got is None:
                per_file[fk] = kv
            elif type(got) is list:
                got.append(kv)
            else:
                per_file[fk] = [got, kv]
        packed, olds = self.packed, self._views.olds()
        packed_get, file_changes, one = packed.get, self._file_changes, self._one_change
        changed = set()
        for fk, got in per_file.items():
            old = packed_get(fk)
            if type(got) is not list:
                if old is not None:             # the usual: one entry of the file
                    t = one(fk, old, got)
                    if t is not _SLOW:
                        if t is not None:
                            changed.add(fk)
                            for kept in olds:
                                if fk not in kept:
                                    kept[fk] = old
                            packed[fk] = t
                        continue
                got = [got]
            if old is not None and got[0][1] is None and self._file_gone(fk, old, got):
                changed.add(fk)                 # the usual gone: a file evicted whole
                for kept in olds:
                    if fk not in kept:
                        kept[fk] = old
                continue
            flat = self._new_file(fk, got) if old is None else None
            if flat is None:
                changes = file_changes(fk, old, got)
                if not changes:
                    continue
                flat = _with_changes(old, changes)
            if old is None:     # a new file: the key packed keeps is the one named changed
                fk = (self.devs.setdefault(fk[0], fk[0]), fk[1])
            changed.add(fk)
            for kept in olds:                   # Snapshots.before_change, one lookup less
                if fk not in kept:
                    kept[fk] = _MISSING if old is None else old
            self.n_chunks += len(flat) // 3 - (_count(old) if old is not None else 0)
            if flat:
                packed[fk] = pack(flat)
            elif old is not None:
                del packed[fk]
        return changed

    def _file_gone(self, fk, old, got: list) -> bool:
        """A file ``old`` every entry of which is marked gone (``got``: (key,
        None) pairs; a file evicted whole, the usual gone): dropped from
        packed, its held pages out of held_delta, with no list of changes.
        False (nothing done): not this case (a value, or not the file's
        entries exactly)."""
        t = _tuple_of(old)
        s = _stride(t)
        if len(got) != len(t) // s or any(kv[1] is not None for kv in got) or \
                {kv[0][2] for kv in got} != set(t[::s]):
            return False
        _held_entries(self.held_delta, self.devs.get(fk[0], fk[0]), fk[1], t[1::s],
                      t[2::s] if s == 3 else _it.repeat(0), -1)
        self.n_chunks -= len(t) // s
        del self.packed[fk]
        return True

    def _new_file(self, fk, got: list) -> list | None:
        """The flat entries (chunk, owners, seeded, ...) of a file not in
        packed whose marked entries ``got`` all have pages (a file read in,
        the usual new file), its held pages into held_delta, with no list
        of changes.  None (nothing done): not this case (an entry gone or
        without pages, or one of the entries without pages, ``empty``)."""
        dev, ino, empty = self.devs.get(fk[0], fk[0]), fk[1], self.empty
        owners_of_value = self.owners_cache.owners
        flat: list = []
        for k, v in got:
            if v is None or (empty and (dev, 0, ino, k[2]) in empty):
                return None
            owners = owners_of_value(v)
            if not owners:
                return None
            flat += (k[2], owners, _FULL_MASK if v[-1] == _FULL_MASK else v[-1])
        _held_entries(self.held_delta, dev, ino, flat[1::3], flat[2::3], +1)
        return flat

    def _one_change(self, fk, old: tuple, got: tuple):
        """The new packed tuple of a file ``old`` whose one marked entry
        ``got`` (key, value) is in it and has pages now: the old tuple with
        that entry's owners (and seeded mask) replaced (sliced in C: no list
        of the file's entries), the held pages' change into held_delta.
        None: the value did not change; _SLOW: not this case (gone, new, no
        pages now, or the file's form changes: seeded pages in a plain file,
        the last seeded pages of a _Seeded one gone)."""
        k, v = got
        if v is None:
            return _SLOW
        seeded = v[-1]
        if type(old) is dict:
            old = (0, old)
        if type(old) is not _Seeded:
            if seeded:
                return _SLOW
            try:
                pos = old.index(k[2])           # chunks at even positions, owners dicts between
            except ValueError:
                return _SLOW
            was_seeded = 0
        else:
            try:
                pos = old[::3].index(k[2]) * 3
            except ValueError:
                return _SLOW
            was_seeded = old[pos + 2]
            if was_seeded and not seeded and not (any(old[2:pos:3]) or any(old[pos + 5::3])):
                return _SLOW
        was = old[pos + 1]
        if seeded == was_seeded and len(was) == 1 and not any(v[_OTHER_SLOTS]):
            if v[MAX_OWNERS] and was.get(v[0]) == v[MAX_OWNERS]:    # _same_value's usual case
                return None
        elif _same_value(was, was_seeded, v):
            return None
        owners = self.owners_cache.owners(v)
        if not owners:
            return _SLOW
        dev, ino, delta = self.devs.get(fk[0], fk[0]), fk[1], self.held_delta
        cg = v[0]
        if len(was) == 1 and len(owners) == 1 and cg in was and cg in owners:
            key = (dev, ino, cg)                # the same one owner: one key, the net change
            if seeded or was_seeded:
                delta[key] = delta.get(key, 0) + (owners[cg] & ~seeded).bit_count() - \
                    (was[cg] & ~was_seeded).bit_count()
            else:
                delta[key] = delta.get(key, 0) + owners[cg].bit_count() - was[cg].bit_count()
        else:
            _held_delta(delta, dev, ino, was, was_seeded, -1)
            _held_delta(delta, dev, ino, owners, seeded, +1)
        if type(old) is _Seeded:
            return _Seeded(old[:pos + 1] + (owners, _FULL_MASK if seeded == _FULL_MASK else seeded)
                           + old[pos + 3:])
        if len(old) == 2 and not pos and not old[0]:
            return owners                       # pack()'s form of a file of chunk 0 alone
        return old[:pos + 1] + (owners,) + old[pos + 2:]

    def _file_changes(self, fk, old, got) -> list:
        """[(position in old or -1: new, new (chunk, owners, seeded) or None:
        no pages)] of a file's marked entries ``got`` ((key, value or None:
        gone) pairs) whose pages changed;
        the held pages' changes into held_delta, entries without pages into
        ``empty``."""
        if type(old) is dict:
            old = (0, old)
        s = 2 if old is None else _stride(old)
        if old is None:
            at: dict = _NO_INDEX
        elif len(got) == 1:                     # the usual: one change, found in C
            try:
                at = {got[0][0][2]: old[::s].index(got[0][0][2])}
            except ValueError:
                at = _NO_INDEX
        else:
            at = {c: i for i, c in enumerate(old[::s])}
        dev, ino = self.devs.get(fk[0], fk[0]), fk[1]
        empty, delta, owners_of_value = self.empty, self.held_delta, self.owners_cache.owners
        out = []
        for k, v in got:
            c = k[2]
            i = at.get(c, -1)
            was = (old[i * s + 1], old[i * s + 2] if s == 3 else 0) if i >= 0 else None
            was_empty = i < 0 and empty and (dev, 0, ino, c) in empty
            if v is None:                       # gone from the map
                if was_empty:
                    empty.discard((dev, 0, ino, c))
                elif was is not None:
                    _held_delta(delta, dev, ino, was[0], was[1], -1)
                    out.append((i, None))
                continue
            if (was is not None or was_empty) and \
                    _same_value(*(was if was is not None else (None, 0)), v):
                continue
            owners = owners_of_value(v)
            if was is not None:
                _held_delta(delta, dev, ino, was[0], was[1], -1)
            if owners:
                seeded = _FULL_MASK if v[-1] == _FULL_MASK else v[-1]
                new = (c, owners, seeded)
                _held_delta(delta, dev, ino, owners, seeded, +1)
                if was_empty:
                    empty.discard((dev, 0, ino, c))
            else:
                new = None
                empty.add((dev, 0, ino, c))
                if was is None:
                    continue                    # no pages before or now: nothing changes
            out.append((i, new))
        return out

    def forget(self, deleted) -> None:
        """Entries user space deleted (EmptyChunkGC: key fields (dev, 0, ino,
        chunk) of entries without pages): nothing packed changes."""
        for key in deleted:
            self.empty.discard(tuple(key))


class EntriesView(_abc.Mapping):
    """ChunkState's entries, (dev, ino, chunk) -> PageChunk (built) or None
    (no pages), found through its packed files and its set of empty entries."""
    __slots__ = ("state",)

    def __init__(self, state: ChunkState):
        self.state = state

    def __getitem__(self, k):
        t = self.state.packed.get((k[0], k[1]))
        if t is not None:
            for c, owners, seeded in _entries_of(t):
                if c == k[2]:
                    return _PageChunk(k[0], k[1], c, owners, seeded)
        if (k[0], 0, k[1], k[2]) in self.state.empty:
            return None
        raise KeyError(k)

    def __iter__(self):
        for (dev, ino), t in self.state.packed.items():
            for c in _tuple_of(t)[::_stride(t)]:
                yield (dev, ino, c)
        for dev, _pad, ino, c in self.state.empty:
            yield (dev, ino, c)

    def __len__(self) -> int:
        return self.state.n_entries


def _with_changes(old: tuple | None, changes: list) -> list:
    """A packed file ``old`` with ``changes`` ((position in old or -1, new
    (chunk, owners, seeded) or None) per changed entry) applied, as a new flat
    list [chunk, owners, seeded, ...] (the old tuple stays as it is: the
    Readings of past reads hold it): a changed entry takes its old one's
    place or is removed; new entries go at the end."""
    ents = _entries_of(old) if old else []
    for i, new in changes:
        if i < 0:
            ents.append(new)
        else:
            ents[i] = new
    return [x for e in ents if e is not None for x in e]


_SLOW = object()        # ChunkState._one_change: not its case (the general path)
_NO_INDEX: dict = {}    # ChunkState._file_changes: a file without entries (never written)


def _same_value(owners, seeded: int, v: tuple) -> bool:
    """A chunk value read again says what an entry's owners (None: no pages)
    and seeded mask already say.  Without building the owners dict for the
    usual value (one owner in slot 0)."""
    if owners is None:
        return not (v[MAX_OWNERS] or any(v[_OTHER_SLOTS]))
    if seeded != v[-1]:
        return False
    if len(owners) == 1 and not any(v[_OTHER_SLOTS]):
        return v[MAX_OWNERS] != 0 and owners.get(v[0]) == v[MAX_OWNERS]
    return owners == owners_of(v)


def _held_delta(delta: dict, dev: int, ino: int, owners: dict, seeded: int, sign: int) -> None:
    """Add an entry's inserted (not seeded) pages per (dev, ino, cg) to delta."""
    for cg, mask in owners.items():
        key = (dev, ino, cg)
        delta[key] = delta.get(key, 0) + sign * (mask & ~seeded if seeded else mask).bit_count()


def _held_entries(delta: dict, dev: int, ino: int, owners_seq, seeded_seq, sign: int) -> None:
    """_held_delta of several entries of one file (their owners dicts and
    seeded masks): summed per cgroup first, one key per cgroup."""
    per: dict[int, int] = {}
    for owners, seeded in zip(owners_seq, seeded_seq):
        for cg, mask in owners.items():
            per[cg] = per.get(cg, 0) + (mask & ~seeded if seeded else mask).bit_count()
    for cg, n in per.items():
        key = (dev, ino, cg)
        delta[key] = delta.get(key, 0) + sign * n


def _held_only(r, k, zero_entry: set) -> bool:
    """IoState: row r (IoRows.find: cg, inserted, evicted, readahead, folio)
    of key k has no io entry (pages held only): no counters, and not one of
    the io entries without any (``zero_entry``)."""
    return not (r[2] or r[3] or r[4]) and k not in zero_entry


ROWS_TUPLE_MAX = 8      # IoRows: a file's rows in one bytes up to this many, then a dict by cgroup
IO_ROW = _struct.Struct("=Q4q")     # IoRows: cgroup id, inserted, evicted, readahead, folio
_ROW_SIZE = IO_ROW.size
_row_pack, _row_unpack, _row_unpack_from, _row_iter = \
    IO_ROW.pack, IO_ROW.unpack, IO_ROW.unpack_from, IO_ROW.iter_unpack
_CG = _struct.Struct("=Q").unpack_from
_I64 = (-(1 << 63), (1 << 63) - 1)


# a file's one row, when its counters fit 32 bits (most): 24 B, a bytes
# object of 64 B, not 80 (its length tells the form: rows of several
# cgroups are always IO_ROW's)
IO_ROW1 = _struct.Struct("=Q4i")
_ROW1_SIZE = IO_ROW1.size
_row1_pack, _row1_unpack = IO_ROW1.pack, IO_ROW1.unpack


def _one_row(cg: int, ins: int, ev: int, ra: int, folio: int) -> bytes:
    """The bytes of a file's only row: IO_ROW1 where the counters fit it, else IO_ROW."""
    try:
        return _row1_pack(cg, ins, ev, ra, folio)
    except _struct.error:
        return _row_of(cg, ins, ev, ra, folio)


def _rows_of(v: bytes) -> bytes:
    """A file's rows' bytes in IO_ROW's form (to add a row to)."""
    return _row_pack(*_row1_unpack(v)) if len(v) == _ROW1_SIZE else v


def _row_of(cg: int, ins: int, ev: int, ra: int, folio: int) -> bytes:
    """IO_ROW of a row; a counter outside a signed 64-bit int (2^63 pages
    or more: only a corrupted map holds one) kept at the nearest bound, not
    raised: one bad entry must not stop every read."""
    try:
        return _row_pack(cg, ins, ev, ra, folio)
    except _struct.error:
        lo, hi = _I64
        return _row_pack(min(max(cg, 0), (1 << 64) - 1),
                         *(min(max(x, lo), hi) for x in (ins, ev, ra, folio)))


class IoRows(_abc.Mapping):
    """IoState's rows, (dev, ino, cg) -> FileIO, kept flat per dev then per
    ino (``files``: dev -> ino -> the file's rows packed in one bytes, IO_ROW
    each (cg, inserted, evicted, readahead, folio), up to ROWS_TUPLE_MAX of
    them (a file's only row: IO_ROW1 where it fits, 24 B),
    or {cg: one row's bytes} for a file read by more): no object per
    row (a FileIO was 88 B and its counters ints of their own, 312,000 rows
    at 250,000 files), no (dev, ino, cg) key tuple.  A mapping by the
    three-int key whose FileIOs are built at each access (new objects: never
    compare them by identity); ``find`` gives a row's ints without one."""
    __slots__ = ("files", "n")
    built_on_access = True

    def __init__(self):
        self.files: dict[int, dict[int, object]] = {}
        self.n = 0

    def find(self, k) -> tuple | None:
        """Key k's row (cg, inserted, evicted, readahead, folio), None if none."""
        per = self.files.get(k[0])
        if per is None:
            return None
        v = per.get(k[1])
        if v is None:
            return None
        if type(v) is dict:
            b = v.get(k[2])
            return None if b is None else _row_unpack(b)
        n = len(v)
        if n <= _ROW_SIZE:
            r = _row1_unpack(v) if n == _ROW1_SIZE else _row_unpack(v)
            return r if r[0] == k[2] else None
        cg = k[2]
        for r in _row_iter(v):
            if r[0] == cg:
                return r
        return None

    def get(self, k, default=None):
        r = self.find(k)
        return default if r is None else _FileIO(k[0], k[1], *r)

    def __getitem__(self, k):
        r = self.find(k)
        if r is None:
            raise KeyError(k)
        return _FileIO(k[0], k[1], *r)

    def __contains__(self, k) -> bool:
        return self.find(k) is not None

    def __len__(self) -> int:
        return self.n

    def rows(self):
        """(dev, ino, row) of every row (row: as find gives it)."""
        for dev, per in self.files.items():
            for ino, v in per.items():
                if type(v) is dict:
                    for b in v.values():
                        yield dev, ino, _row_unpack(b)
                elif len(v) == _ROW1_SIZE:
                    yield dev, ino, _row1_unpack(v)
                else:
                    for r in _row_iter(v):
                        yield dev, ino, r

    def __iter__(self):
        for dev, ino, r in self.rows():
            yield (dev, ino, r[0])

    def values(self) -> list:
        """The rows as FileIOs (a new list of new objects)."""
        return [_FileIO(dev, ino, *r) for dev, ino, r in self.rows()]

    def items(self) -> list:
        return [((dev, ino, r[0]), _FileIO(dev, ino, *r)) for dev, ino, r in self.rows()]

    def put(self, f) -> None:
        """Keep FileIO f's row (replacing the row of its key, if any)."""
        self.put_row(f.dev, f.ino, f.cgroup_id, f.inserted_pages, f.evicted_pages,
                     f.readahead_pages, f.read_folio_count)

    def put_row(self, dev: int, ino: int, cg: int, ins: int, ev: int = 0, ra: int = 0,
                folio: int = 0) -> None:
        """Keep the row of (dev, ino, cg) (replacing it, if any)."""
        files = self.files
        per = files.get(dev)
        if per is None:
            per = files[dev] = {}
        v = per.get(ino)
        if v is None:                   # the usual: a file's one row
            try:
                per[ino] = _row1_pack(cg, ins, ev, ra, folio)
            except _struct.error:
                per[ino] = _row_of(cg, ins, ev, ra, folio)
            self.n += 1
            return
        b = _row_of(cg, ins, ev, ra, folio)
        if type(v) is dict:
            if cg in v:
                v[cg] = b
                return
            v[cg] = b
        else:
            for i in range(0, len(v), _ROW_SIZE):
                if _CG(v, i)[0] == cg:
                    per[ino] = _one_row(cg, ins, ev, ra, folio) if len(v) <= _ROW_SIZE \
                        else v[:i] + b + v[i + _ROW_SIZE:]
                    return
            if len(v) < ROWS_TUPLE_MAX * _ROW_SIZE:
                per[ino] = _rows_of(v) + b
            else:
                rows = {_CG(v, i)[0]: v[i:i + _ROW_SIZE] for i in range(0, len(v), _ROW_SIZE)}
                rows[cg] = b
                per[ino] = rows
        self.n += 1

    def drop(self, k) -> None:
        """Forget the row of key k (there)."""
        per = self.files[k[0]]
        v = per[k[1]]
        if type(v) is dict:
            del v[k[2]]
            if len(v) <= ROWS_TUPLE_MAX:
                per[k[1]] = b"".join(v.values())
        else:
            for i in range(0, len(v), _ROW_SIZE):
                if _CG(v, i)[0] == k[2]:
                    break
            else:
                raise KeyError(k)
            rest = v[:i] + v[i + _ROW_SIZE:]
            if len(rest) == _ROW_SIZE:          # one row left: its own form
                per[k[1]] = _one_row(*_row_unpack(rest))
            elif rest:
                per[k[1]] = rest
            else:
                del per[k[1]]
                if not per:
                    del self.files[k[0]]
        self.n -= 1


def _keep_old(olds: list, k, r) -> None:
    """Snapshots.olds(): key k's row r (IoRows.find; None: none) as it was,
    for each view that has not kept it yet (one FileIO for all of them)."""
    f = None
    for kept in olds:
        if k not in kept:
            if f is None:
                f = _MISSING if r is None else _FileIO(k[0], k[1], *r)
            kept[k] = f


class IoState:
    """The io map as rows kept between reads (IoRows: flat, no object per
    row; Readings get FileIOs built for the rows they look at).

    inserted = pages held now that were not seeded + pages evicted that were
    inserted (not seeded): exact, and one map update per insert less.  The
    held pages are summed here from ChunkState.held_delta, and kept in the
    rows themselves: held = inserted - evicted + evicted seeded (the only
    part of a map value a row does not show, kept where not 0).
    ``update`` takes the whole map, ``patch`` the io entries marked changed;
    both the held pages' changes since the previous call."""

    def __init__(self):
        # (dev, ino, cg) -> its row: a row for every io entry and every key
        # holding pages (none for a key with neither); kept per dev and ino
        self.out = IoRows()
        self.ev_seeded: dict[tuple, int] = {}  # the value's evicted seeded pages, where not 0
        # rows without an io entry (pages held only) have no counters; the
        # io entries whose row has none either are the few keys in
        # zero_entry (no set of every held-only row: 5.8 MiB at 250,000
        # files, and a cold lookup per change); n_none counts the others
        self.zero_entry: set[tuple] = set()
        self.n_none = 0
        self._views = Snapshots(self.out)      # Readings.io_by_key of past reads
        self.ids: dict[int, int] = {}          # dev -> its one int object (the rows' dicts share it)
        # keys whose row is new, changed or gone since the previous read
        # (Readings.changed_io; a superset); None after a full read: compare all
        self.changed: set[tuple] | None = None

    @property
    def n_entries(self) -> int:
        """io map entries (rows with a value)."""
        return len(self.out) - self.n_none

    def no_entry(self) -> set[tuple]:
        """The keys of the rows without an io entry (pages held only)."""
        zero = self.zero_entry
        return {(dev, ino, r[0]) for dev, ino, r in self.out.rows()
                if _held_only(r, (dev, ino, r[0]), zero)}

    def held(self) -> dict[tuple, int]:
        """(dev, ino, cg) -> inserted pages held, where not 0."""
        ev = self.ev_seeded
        out = {(dev, ino, r[0]): r[1] - r[2] + ev.get((dev, ino, r[0]), 0)
               for dev, ino, r in self.out.rows()}
        return {k: h for k, h in out.items() if h}

    def update(self, items, held_delta: dict[tuple, int]) -> RowList:
        """items: ((dev, ino, cg), IO_VAL tuple) of the whole map.  Returns
        the rows (a view of them as they are now)."""
        with NoGC():
            self._update(items, held_delta)
        return RowList(self.snapshot())

    def _update(self, items, held_delta: dict[tuple, int]) -> None:
        if len(self.ids) > OWNERS_CACHE_MAX:    # devs gone do not stay for ever
            self.ids = {}
        ids = self.ids
        old, old_ev = self.out, self.ev_seeded
        new = IoRows()
        put = new.put_row
        ev: dict[tuple, int] = {}
        zero: set[tuple] = set()
        old_find, delta_get, old_ev_get = old.find, held_delta.get, old_ev.get
        # a row's ino: the int its file's PageChunks share (held_delta's
        # keys are theirs), not the read's own (~32 B a file less)
        inos = {k[1]: k[1] for k in held_delta} if not old else {}
        inos_get = inos.get
        for k, v in items:
            r = old_find(k)
            h = delta_get(k, 0)
            if r is not None:
                h += r[1] - r[2] + old_ev_get(k, 0)
            # keyed by the dev's one int and the file's ino (the read's key is let go)
            put(ids.setdefault(k[0], k[0]), inos_get(k[1], k[1]), k[2], h + v[0] - v[3],
                v[0], v[1], v[2])
            if v[3]:
                ev[k] = v[3]
            if not (v[0] or v[1] or v[2]):
                zero.add(k)
        n_none = 0
        new_find = new.find
        for dev, ino, r in old.rows():          # pages held, no io entry (any more)
            k = (dev, ino, r[0])
            if new_find(k) is not None:
                continue
            h = r[1] - r[2] + old_ev_get(k, 0) + delta_get(k, 0)
            if h:
                put(dev, ino, r[0], h)
                n_none += 1
        for k, h in held_delta.items():          # ... (yet)
            if h and new_find(k) is None and old_find(k) is None:
                put(ids.setdefault(k[0], k[0]), k[1], k[2], h)
                n_none += 1
        self.out, self.ev_seeded, self.zero_entry, self.n_none = new, ev, zero, n_none
        self._views = Snapshots(new)
        self.changed = None

    def patch(self, found, held_delta: dict[tuple, int]) -> RowList:
        """found: ((dev, ino, cg), IO_VAL tuple or None) of the entries marked
        changed.  Returns the rows (a view of them as they are now: no list
        of every row per read)."""
        with NoGC():
            self._patch(found, held_delta)
        return RowList(self.snapshot())

    def _patch(self, found, held_delta: dict[tuple, int]) -> None:
        marked = dict(found)
        self.changed = set()
        olds = self._views.olds()
        # the marked keys' held pages' changes taken out of held_delta (it is
        # IoState's once given): what stays there is _held_changed's alone,
        # with no look-up of each of its keys in marked
        pop = held_delta.pop
        deltas = [pop(k, 0) for k in marked] if held_delta else [0] * len(marked)
        self._held_changed(held_delta, olds)
        self._marked_all(marked, deltas, olds)

    def _held_changed(self, held_delta: dict, olds) -> None:
        """The keys whose held pages changed (by d, not 0) and whose io entry
        (if any) was not marked (those were taken out of held_delta): a row's
        inserted pages change by d, nothing else.  The usual row (alone in
        its file's bytes, or in its dict by cgroup) that stays is found and
        replaced in place (one lookup of its file); the others take
        IoRows.find/put_row/drop."""
        out, zero, changed, ids = self.out, self.zero_entry, self.changed, self.ids
        files, find, put = out.files, out.find, out.put_row
        unpack, size, FileIO = _row_unpack, _ROW_SIZE, _FileIO
        for k, d in held_delta.items():
            if not d:
                continue
            changed.add(k)
            per = files.get(k[0])
            v = per.get(k[1]) if per is not None else None
            t = type(v)
            r = None
            if t is dict:
                b = v.get(k[2])
                if b is not None:
                    r = unpack(b)
            elif v is not None and len(v) <= size:
                r = unpack(v) if len(v) == size else _row1_unpack(v)
                if r[0] != k[2]:
                    r, t = None, None
            else:
                r, t = find(k), None
            if olds:                            # Snapshots.before_change, one lookup less
                f = _MISSING if r is None else FileIO(k[0], k[1], *r)
                for kept in olds:
                    if k not in kept:
                        kept[k] = f
            if r is None:                       # pages held, no io entry
                put(ids.setdefault(k[0], k[0]), k[1], k[2], d)
                self.n_none += 1
            elif r[1] + d or r[2] or r[3] or r[4] or k in zero:
                if t is dict:
                    v[k[2]] = _row_of(r[0], r[1] + d, r[2], r[3], r[4])
                elif t is bytes:
                    per[k[1]] = _one_row(r[0], r[1] + d, r[2], r[3], r[4])
                else:
                    put(k[0], k[1], k[2], r[1] + d, r[2], r[3], r[4])
            else:                               # no pages held, no io entry: no row
                out.drop(k)
                self.n_none -= 1

    def _marked_all(self, marked: dict, deltas: list, olds) -> None:
        """The keys whose io entry was marked changed: marked[k] its value
        now (None: gone), deltas (in marked's order) the change of its held
        pages.  One loop, IoRows' usual forms inline (a file's only row: its
        bytes found and replaced with one look-up of the file; ~1 us a key
        less than a call of find and put_row each); a file of several rows
        takes IoRows.find/put_row/drop."""
        out, ev, zero, changed, ids = self.out, self.ev_seeded, self.zero_entry, \
            self.changed, self.ids
        files, find, n_none = out.files, out.find, self.n_none
        unpack, unpack1, size, size1 = _row_unpack, _row1_unpack, _ROW_SIZE, _ROW1_SIZE
        for (k, v), d in zip(marked.items(), deltas):
            dev, ino, cg = k
            per = files.get(dev)
            b = per.get(ino) if per is not None else None
            alone = False                   # k's row is its file's only row (b)
            if b is None:
                r = None
            elif type(b) is dict:
                r = b.get(cg)
                r = None if r is None else unpack(r)
            elif len(b) == size1 or len(b) == size:
                r = unpack1(b) if len(b) == size1 else unpack(b)
                if r[0] == cg:
                    alone = True
                else:
                    r = None
            else:
                r = find(k)
            if r is None:
                was, held = None, 0
            else:
                s = ev.get(k, 0) if ev else 0
                held = r[1] - r[2] + s
                # (_held_only inline)
                was = None if not (r[2] or r[3] or r[4]) and k not in zero else \
                    (r[2], r[3], r[4], s)
            h = held + d
            if r is not None and d == 0 and v == was:
                continue
            if v is None and r is None and not h:
                continue
            if olds:
                _keep_old(olds, k, r)
            changed.add(k)
            n_none -= r is not None and was is None
            if v is None:
                ev.pop(k, None)
                zero.discard(k)
                if h:
                    row = (h, 0, 0, 0)
                    n_none += 1
                elif alone:                 # IoRows.drop of a file's only row
                    del per[ino]
                    if not per:
                        del files[dev]
                    out.n -= 1
                    continue
                else:
                    out.drop(k)
                    continue
            else:
                row = (h + v[0] - v[3], v[0], v[1], v[2])
                if v[3]:
                    ev[k] = v[3]
                else:
                    ev.pop(k, None)
                if v[0] or v[1] or v[2]:
                    zero.discard(k)
                else:
                    zero.add(k)
            if alone:                       # IoRows.put_row of a file's only row
                per[ino] = _one_row(cg, *row)
            elif b is None and per is not None:
                per[ino] = _one_row(cg, *row)
                out.n += 1
            else:
                out.put_row(ids.setdefault(dev, dev), ino, cg, *row)
        self.n_none = n_none

    def snapshot(self) -> DictSnapshot:
        """out as it is now, for a Readings (later reads do not change it)."""
        return self._views.take()


class RowList(_abc.Sequence):
    """Readings.io of a probe source: the FileIO rows of a mapping (IoState.out
    or a DictSnapshot of it) as a sequence, a flat list built only when
    indexed (as ChunkList: no list of every row per read)."""
    __slots__ = ("by_key", "_flat")

    def __init__(self, by_key):
        self.by_key, self._flat = by_key, None

    def __len__(self) -> int:
        return len(self.by_key)

    def __iter__(self):
        return iter(self._flat) if self._flat is not None else iter(self.by_key.values())

    def __getitem__(self, i):
        if self._flat is None:
            self._flat = list(self.by_key.values())
        return self._flat[i]

    def __eq__(self, other) -> bool:
        return list(self) == list(other)

    def __repr__(self) -> str:
        return f"RowList({len(self)} FileIO rows)"


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
        return RawBatch(table, lib, keep=False)
    except Exception:
        return None
