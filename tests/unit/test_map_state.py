"""kernel/maps.py ChunkState and IoState: the chunks and io maps decoded into
PageChunks and FileIO rows, kept between reads.  Fed with the (key, value)
tuples the batch read decodes (the map itself needs root: the integration
tests read real maps); compared, read after read on random map states, with
a decode from scratch written like the per-entry loop it replaces."""
from __future__ import annotations

import random

import pytest

from erofs_top.kernel.maps import MAX_OWNERS, OWNERS_CACHE_MAX, ChunkList, ChunkState, IoState, owners_of
from erofs_top.readings import FileIO, PageChunk


def _decode_from_scratch(chunks: dict, io: dict):
    """The reference: one PageChunk per non-empty entry, FileIO with
    inserted = held not seeded + evicted - evicted seeded."""
    pcs = []
    for (dev, ino, chunk), v in chunks.items():
        owners = owners_of(v)
        if owners:
            pcs.append(PageChunk(dev, ino, chunk, owners, v[-1]))
    rows = {k: FileIO(*k, 0, v[0], v[1], v[2]) for k, v in io.items()}
    for pc in pcs:
        for cg, mask in pc.owners.items():
            k = (pc.dev, pc.ino, cg)
            rows.setdefault(k, FileIO(*k))
            rows[k].inserted_pages += (mask & ~pc.seeded_mask).bit_count()
    for k, f in rows.items():
        f.inserted_pages += f.evicted_pages - (io[k][3] if k in io else 0)
    return pcs, rows


def _held_from_scratch(chunks: dict) -> dict:
    """(dev, ino, cg) -> pages held that were not seeded, where not 0, counted
    page by page."""
    held: dict = {}
    for (dev, ino, _chunk), v in chunks.items():
        seeded = v[-1]
        for cg, mask in owners_of(v).items():
            n = sum(1 for p in range(64) if mask >> p & 1 and not seeded >> p & 1)
            if n:
                held[(dev, ino, cg)] = held.get((dev, ino, cg), 0) + n
    return held


def _value(rng):
    cg = [rng.choice([0, 0, 101, 102, 103, 104, 105]) for _ in range(MAX_OWNERS)]
    bits = [rng.getrandbits(64) if rng.random() < 0.5 else 0 for _ in range(MAX_OWNERS)]
    other = rng.getrandbits(64) if rng.random() < 0.1 else 0
    return tuple(cg) + tuple(bits) + (other, rng.getrandbits(64) if rng.random() < 0.2 else 0)


@pytest.mark.parametrize("shuffle", [True, False], ids=["reordered", "map-order"])
@pytest.mark.parametrize("seed", range(6))
def test_states_equal_a_decode_from_scratch_and_keep_unchanged_objects(seed, shuffle):
    """Reads in another order each time (a file's old entries found by
    chunk), and in the map's order (a dict's: entries new, changed, gone
    and without pages shift a file's entries; found at the cursor)."""
    rng = random.Random(seed)
    chunks: dict = {}
    io: dict = {}
    cs, ios = ChunkState(), IoState()
    for step in range(40):
        read_before = dict(chunks)      # the map at the previous read
        _churn(rng, chunks, io, set(), set())
        before_lists = dict(cs.packed)
        before = dict(cs.entries)
        items = list(chunks.items())
        if shuffle:
            rng.shuffle(items)          # a hash map's order
        changed = cs.update(items)
        empty = cs.empty
        got_io = ios.update(list(io.items()), cs.held_delta)
        cs.held_delta = {}
        want_pcs, want_rows = _decode_from_scratch(chunks, io)
        got_pcs = [pc for lst in cs.by_file.values() for pc in lst]
        key = lambda pc: (pc.dev, pc.ino, pc.chunk)   # noqa: E731
        assert sorted(got_pcs, key=key) == sorted(want_pcs, key=key)
        assert {(f.dev, f.ino, f.cgroup_id): f for f in got_io} == want_rows
        assert empty == {(k[0], 0, k[1], k[2]) for k, v in chunks.items() if not owners_of(v)}
        for k, pc in before.items():   # unchanged entries: the same owners dicts
            if chunks.get(k) == read_before[k] and pc is not None:
                assert cs.entries[k].owners is pc.owners
        for fk, t in cs.packed.items():     # a file with no change keeps its packed tuple
            was = {k: v for k, v in read_before.items() if k[:2] == fk}
            now = {k: v for k, v in chunks.items() if k[:2] == fk}
            if fk in before_lists and was == now:
                assert t is before_lists[fk]
        for fk in before_lists.keys() | cs.packed.keys():     # changed files: all new tuples
            if cs.packed.get(fk) is not before_lists.get(fk):
                assert fk in changed


def _churn(rng, chunks: dict, io: dict, dirty: set, dirty_io: set) -> None:
    """One interval of random map changes, marking what changed as the probe
    does (in dirty / dirty_io), also entries deleted (as EmptyChunkGC would)."""
    for _ in range(rng.randrange(0, 30)):
        key = (rng.choice([7 << 20, 8 << 20]), rng.randrange(20), rng.randrange(3))
        if rng.random() < 0.2:
            chunks.pop(key, None)
        else:
            chunks[key] = _value(rng)
        dirty.add(key)
        ik = (key[0], key[1], rng.choice([101, 102, 103]))
        if rng.random() < 0.3:
            ev = rng.randrange(100)
            io[ik] = (ev, rng.randrange(100), rng.randrange(9), rng.randrange(ev + 1))
            dirty_io.add(ik)
        elif rng.random() < 0.05 and io:        # an io entry deleted (the map was full)
            gone = rng.choice(sorted(io))
            del io[gone]
            dirty_io.add(gone)


@pytest.mark.parametrize("seed", range(6))
def test_patch_with_the_marked_keys_equals_a_full_update(seed):
    """ChunkState.patch / IoState.patch fed only the keys marked changed give
    the same content as update() of the whole map; every file whose list
    object changed is in the returned set, a file not in it keeps its list."""
    rng = random.Random(seed)
    chunks: dict = {}
    io: dict = {}
    full, full_io = ChunkState(), IoState()
    inc, inc_io = ChunkState(), IoState()
    for step in range(40):
        dirty: set = set()
        dirty_io: set = set()
        _churn(rng, chunks, io, dirty, dirty_io)
        full.update(list(chunks.items()))
        want_io = full_io.update(list(io.items()), full.held_delta)
        full.held_delta = {}
        before_lists = dict(inc.packed)
        before_io = dict(inc_io.out)
        marked = sorted(dirty)
        rng.shuffle(marked)
        changed = inc.patch([(k, chunks[k]) for k in marked if k in chunks],
                            [k for k in marked if k not in chunks])
        touched = dirty_io | {k for k, d in inc.held_delta.items() if d}
        got_io = inc_io.patch([(k, io.get(k)) for k in dirty_io], inc.held_delta)
        inc.held_delta = {}
        key = lambda pc: (pc.dev, pc.ino, pc.chunk)   # noqa: E731
        assert inc.by_file.keys() == full.by_file.keys()
        for fk, lst in inc.by_file.items():
            assert sorted(lst, key=key) == sorted(full.by_file[fk], key=key)
        assert inc_io.held() == full_io.held() == _held_from_scratch(chunks)
        lists = dict(inc.by_file)       # built once: each access builds new PageChunks
        flat = [pc for lst in lists.values() for pc in lst]
        assert inc.n_chunks == full.n_chunks == len(flat)
        view = ChunkList(lists, inc.n_chunks)
        assert len(view) == len(flat) and list(view) == flat and view == flat
        assert all(view[i] is pc for i, pc in enumerate(flat))
        assert inc.empty == full.empty
        assert sorted(got_io, key=lambda f: (f.dev, f.ino, f.cgroup_id)) == \
            sorted(want_io, key=lambda f: (f.dev, f.ino, f.cgroup_id))
        assert inc_io.n_entries == full_io.n_entries == len(io)
        for fk in before_lists.keys() | inc.packed.keys():
            if inc.packed.get(fk) is not before_lists.get(fk):
                assert fk in changed, (step, fk)
        assert changed <= {k[:2] for k in dirty}       # never a file nothing touched
        # Readings.changed_io: every row that differs or is gone, and only keys touched
        # (a row equal by value may be named: an io entry without counters that
        # was a held-only row, say)
        differ = {k for k in before_io.keys() | inc_io.out.keys()
                  if inc_io.out.get(k) != before_io.get(k)}
        assert differ <= inc_io.changed <= touched, step


def test_a_value_read_again_is_compared_with_its_pagechunk():
    """ChunkState keeps no map value: a value read again is compared with
    the PageChunk it made.  The same owners in other slots, or a cgroup
    slot without pages changing, is no change (same PageChunk, the file not
    named); other pages, a second owner or other seeded pages are."""
    full = (1 << 64) - 1
    key = (7 << 20, 5, 0)

    def value(cgs=(101, 0, 0, 0), bits=(full, 0, 0, 0), other=0, seeded=0):
        return tuple(cgs) + tuple(bits) + (other, seeded)
    cs = ChunkState()
    fk = key[:2]
    assert cs.update([(key, value())]) == {fk}
    pc, t = cs.entries[key], cs.packed[fk]
    assert pc.owners == {101: full} and pc.seeded_mask == 0
    same = [value(), value(cgs=(101, 102, 0, 0)), value(cgs=(0, 101, 0, 0), bits=(0, full, 0, 0))]
    for v in same:
        assert cs.update([(key, v)]) == set() and cs.packed[fk] is t
        assert cs.patch([(key, v)], []) == set() and cs.packed[fk] is t
        assert cs.entries[key] == pc
    changed = [value(bits=(full >> 1, 0, 0, 0)), value(cgs=(101, 102, 0, 0), bits=(1, 2, 0, 0)),
               value(other=4), value(seeded=1), value(cgs=(102, 0, 0, 0))]
    for v in changed:
        assert cs.update([(key, v)]) == {fk}
        assert cs.packed[fk] is not t and cs.entries[key].owners == owners_of(v)
        assert cs.entries[key].seeded_mask == v[-1]
        cs.update([(key, value())])
        t = cs.packed[fk]
    empty = value(bits=(0, 0, 0, 0), seeded=8)
    assert cs.update([(key, empty)]) == {(7 << 20, 5)} and cs.entries[key] is None
    assert cs.update([(key, value(bits=(0, 0, 0, 0)))]) == set() and cs.entries[key] is None
    assert cs.by_file == {} and cs.empty == {(7 << 20, 0, 5, 0)}


def _same_view(view, want: dict, by_value: bool = False) -> None:
    """A DictSnapshot shows exactly ``want`` (a copy taken when it was made),
    through every way of reading it, the same objects (``by_value``: equal
    ones, for IoRows, whose FileIOs are built at each access)."""
    assert len(view) == len(want)
    assert sorted(view) == sorted(want) and view.keys() == want.keys()
    for k, v in want.items():
        if by_value:
            assert view[k] == v and view.get(k) == v and k in view
        else:
            assert view[k] is v and view.get(k) is v and k in view
    assert dict(view.items()) == want
    if not by_value:
        assert sorted(map(id, view.values())) == sorted(map(id, want.values()))
    assert view.copy() == want and view == want
    gone = [(7 << 20, 999), (7 << 20, 999, 101)]        # never in either map
    for k in gone + [k for k in view._base if k not in want]:
        assert k not in view and view.get(k) is None
        with pytest.raises(KeyError):
            view[k]


@pytest.mark.parametrize("seed", range(6))
def test_snapshots_of_past_reads_stay_as_they_were(seed):
    """ChunkState.snapshot() / IoState.snapshot() (Readings.chunks_by_file
    and io_by_key, views instead of copies): every view kept from an
    earlier read, through patches and full reads after it, shows the dict
    as it was at its read; a view let go is not written to."""
    rng = random.Random(seed)
    chunks: dict = {}
    io: dict = {}
    cs, ios = ChunkState(), IoState()
    kept = []       # (view, copy at its read) of some past reads
    for step in range(40):
        dirty: set = set()
        dirty_io: set = set()
        _churn(rng, chunks, io, dirty, dirty_io)
        if step % 7 == 0:       # a full read now and then (new dicts)
            cs.update(list(chunks.items()))
            ios.update(list(io.items()), cs.held_delta)
        else:
            cs.patch([(k, chunks[k]) for k in dirty if k in chunks],
                     [k for k in dirty if k not in chunks])
            ios.patch([(k, io.get(k)) for k in dirty_io], cs.held_delta)
        cs.held_delta = {}
        views = (cs.snapshot(), ios.snapshot())
        _same_view(views[0].packed, cs.packed)
        if rng.random() < 0.5:
            kept.append((views, (dict(cs.packed), dict(ios.out)), dict(cs.by_file)))
        for (fv, iv), (fwant, iwant), lists in kept:
            _same_view(fv.packed, fwant)
            _same_view(iv, iwant, by_value=True)
            assert dict(fv) == lists and len(fv) == len(lists)    # the PageChunks built from it
    assert len(cs._views.views) <= 8 and len(ios._views.views) <= 8    # the dead ones dropped


def test_owners_cache_shares_one_owner_dicts_and_decodes_every_value():
    """OwnersCache: a one-cgroup value whose pages are all or the first n is
    one dict object per (cgroup, mask), equal to a fresh decode; any other
    value gets a dict of its own; the ints kept are the interned ones."""
    from erofs_top.kernel.maps import OwnersCache
    full = (1 << 64) - 1

    def value(cgs=(101, 0, 0, 0), bits=(full, 0, 0, 0), other=0):
        return tuple(cgs) + tuple(bits) + (other, 0)
    cache = OwnersCache()
    shared = [value(), value(bits=(0b111, 0, 0, 0)), value(cgs=(102, 0, 0, 0)),
              value(cgs=(101, 5, 0, 0))]       # a cgroup id in a slot without pages
    own = [value(bits=(0b101, 0, 0, 0)), value(cgs=(101, 102, 0, 0), bits=(1, 2, 0, 0)),
           value(other=8), value(bits=(0, 0, 0, 0))]
    for v in shared + own:
        got = cache.owners(v)
        assert got == owners_of(v), v
        again = cache.owners(tuple(int(str(x)) for x in v))     # fresh ints, as a read makes
        assert again == got and (again is got) == (v in shared), v
    assert cache.owners(value()) is cache.owners(value(cgs=(101, 5, 0, 0)))
    a, b = cache.owners(value(bits=(0b11, 0, 0, 0))), cache.owners(value(cgs=(102, 0, 0, 0)))
    assert a is not b and a != b


class _FakeBatchLib:
    """A mock of libbcc's batch delete (named so): records the keys deleted."""

    def __init__(self, stop_after=None):
        self.deleted: list[bytes] = []
        self.stop_after = stop_after

    def bpf_delete_batch(self, fd, buf, cnt):
        import ctypes
        n = ctypes.cast(cnt, ctypes.POINTER(ctypes.c_uint32)).contents
        keys = [bytes(buf[i:i + 24]) for i in range(0, n.value * 24, 24)]
        if self.stop_after is not None and len(keys) > self.stop_after:
            keys = keys[:self.stop_after]
            n.value = self.stop_after
            self.deleted += keys
            return -1
        self.deleted += keys
        return 0

    def bpf_delete_elem(self, fd, key):
        self.deleted.append(bytes(key))
        return 0


@pytest.mark.parametrize("stop_after", [None, 2])
def test_dirty_split_returns_map_keys_and_deletes_the_ended_generation(stop_after):
    """DirtyReader._split (the drain's decode, without BPF): every marked key
    comes back once as the map's key (pad 0 in place of the tag), chunk and
    io keys apart; exactly the keys of the generation that ended are
    deleted, with their tags (also when a batch delete stops early)."""
    import struct

    from erofs_top.kernel.maps import DIRTY_CHUNK, DIRTY_IO, DIRTY_KEY, DirtyReader
    reader = DirtyReader.__new__(DirtyReader)
    reader.lib = _FakeBatchLib(stop_after)
    reader.table = type("T", (), {"map_fd": 3})()
    rng = random.Random(5)
    marks = []
    for i in range(40):
        kind = rng.choice([DIRTY_CHUNK, DIRTY_IO])
        parity = rng.choice([0, 1])
        marks.append((7 << 20 | i % 3, kind | parity << 1, 100 + i % 11, i % 4))
    kb = b"".join(DIRTY_KEY.pack(*m) for m in marks)
    for odd in (0, 1):
        reader.lib.deleted = []
        chunk_keys, io_keys = reader._split(len(marks), kb, odd)
        want = {kind: {struct.pack("=I4xQQ", d, ino, x) for d, t, ino, x in marks
                       if t & 1 == kind} for kind in (DIRTY_CHUNK, DIRTY_IO)}
        assert sorted(chunk_keys) == sorted(want[DIRTY_CHUNK])
        assert sorted(io_keys) == sorted(want[DIRTY_IO])
        assert sorted(reader.lib.deleted) == sorted(DIRTY_KEY.pack(*m) for m in marks
                                                    if m[1] >> 1 == odd)
    same = [m for m in marks if m[1] >> 1 == 0]         # all of the ended generation
    reader.lib.deleted = []
    reader._split(len(same), b"".join(DIRTY_KEY.pack(*m) for m in same), 0)
    assert sorted(reader.lib.deleted) == sorted(DIRTY_KEY.pack(*m) for m in same)


def test_with_changes_replaces_by_position_and_leaves_the_old_tuple():
    """maps._with_changes: a changed chunk takes its old entry's place (by
    position), a removed one goes, a new one (-1) is appended; the old
    packed tuple stays as it was (past Readings hold it)."""
    from erofs_top.kernel.maps import _with_changes, pack
    flat = [x for c in range(4) for x in (c, {101: 1 << c}, 0)]
    t = pack(flat)
    assert type(t) is tuple and len(t) == 8         # no seeded pages: (chunk, owners) each
    new1, new4 = (1, {102: 2}, 0), (4, {101: 16}, 0)
    got = _with_changes(t, [(1, new1), (2, None), (-1, new4)])
    assert got == [*flat[0:3], *new1, *flat[9:12], *new4] and got[4] is new1[1]
    assert t == pack([x for c in range(4) for x in (c, {101: 1 << c}, 0)])    # as it was
    got = _with_changes(t, [(0, None), (3, new4)])
    assert got == [*flat[3:9], *new4]
    assert _with_changes(None, [(-1, new4)]) == list(new4)
    seeded = pack([*flat[:3], 5, {101: 32}, 32])    # a seeded page: (chunk, owners, seeded) each
    assert len(seeded) == 6 and _with_changes(seeded, [(0, None)]) == [5, {101: 32}, 32]


def test_patch_finds_the_changed_chunk_in_long_and_short_lists():
    """ChunkState.patch finds an entry in its file's list by chunk number
    (no dict of every entry): one change in a file (the scan), several (the
    index), a chunk after entries of other chunks, a gone entry and an
    entry without pages; the result equals update() of the same map."""
    full = (1 << 64) - 1

    def val(cg, bits, seeded=0):
        return (cg, 0, 0, 0, bits, 0, 0, 0, 0, seeded)
    dev = 7 << 20
    m = {(dev, ino, c): val(100 + c, full) for ino in (1, 2, 3) for c in range(12)}
    m[(dev, 4, 0)] = val(0, 0)                  # an entry without pages
    inc, ref = ChunkState(), ChunkState()
    inc.update(list(m.items()))
    before = {fk: list(lst) for fk, lst in inc.by_file.items()}
    before_t = dict(inc.packed)
    m[(dev, 1, 9)] = val(101, full >> 3)        # one change in file 1 (late in its list)
    m[(dev, 2, 0)], m[(dev, 2, 11)] = val(102, 1), val(103, 3)     # two in file 2
    gone = [(dev, 2, 5)]
    del m[(dev, 2, 5)]
    m[(dev, 4, 0)] = val(104, 1)               # file 4: its empty entry gets a page
    marked = [(dev, 1, 9), (dev, 2, 0), (dev, 2, 11), (dev, 4, 0)]
    changed = inc.patch([(k, m[k]) for k in marked], gone)
    ref.update(list(m.items()))
    assert changed == {(dev, 1), (dev, 2), (dev, 4)}
    key = lambda pc: pc.chunk   # noqa: E731
    for fk in ref.by_file:
        assert sorted(inc.by_file[fk], key=key) == sorted(ref.by_file[fk], key=key), fk
    assert inc.by_file[(dev, 3)] is not None and inc.by_file[(dev, 3)] == before[(dev, 3)]
    assert inc.entries[(dev, 1, 9)].owners == {101: full >> 3}
    assert inc.entries[(dev, 1, 8)].owners is before[(dev, 1)][8].owners     # unchanged
    assert inc.packed[(dev, 3)] is before_t[(dev, 3)]       # a file not marked: its tuple
    assert inc.empty == ref.empty == set() and inc.n_chunks == ref.n_chunks == 3 * 12
    assert inc.n_entries == len(m)


def test_the_io_state_s_interned_ids_are_bounded():
    """IoState shares one int per dev among its rows' dicts (the cgroup ids
    are in the rows' bytes); devs come and go on a node for months: the
    table starts anew past its bound (the rows stay equal)."""
    ios = IoState()
    n = OWNERS_CACHE_MAX + 10
    rows = [(((7 << 20) + d, 5, 1000), (1, 0, 0, 0)) for d in range(n)]
    ios.update(rows, {})
    assert len(ios.ids) == n                     # past the bound: the next full read starts anew
    got = ios.update([(k, (2, 0, 0, 0)) for k, _ in rows[:3]], {})    # rows made anew
    assert len(ios.ids) == 3
    assert sorted((f.dev, f.ino, f.cgroup_id, f.evicted_pages) for f in got) == \
        [((7 << 20) + d, 5, 1000, 2) for d in range(3)]


def _fresh(x: int) -> int:
    """An int object of its own, as a map read decodes one."""
    return int(str(x))


def test_a_new_file_s_key_named_changed_is_the_one_kept():
    """A file new in a patch is named changed (Readings.changed_files, the
    aggregator's key for it) by the very tuple ChunkState.packed keeps, its
    dev the state's one int: one key tuple per file across source and
    aggregator, not two."""
    dev, cg = 7 << 20, 1 << 40
    val = (cg, 0, 0, 0, 0b1011, 0, 0, 0, 0, 0)
    cs = ChunkState()
    cs.update([((_fresh(dev), _fresh(10**6), 0), val)])
    changed = cs.patch([((_fresh(dev), _fresh(10**6 + 1), 3), val)], [])
    assert changed == {(dev, 10**6 + 1)}
    named = next(iter(changed))
    kept = {k: k for k in cs.packed}
    assert kept[named] is named
    assert named[0] is next(k for k in kept if k[1] == 10**6)[0]


def test_a_first_read_s_io_rows_share_their_file_s_ino():
    """A new io row's ino is the int its file's PageChunks hold (one per
    file), not the read's own; rows of files without pages keep theirs."""
    dev, cg = 7 << 20, 1 << 40
    cs, ios = ChunkState(), IoState()
    chunk_val = (cg, 0, 0, 0, 0b1011, 0, 0, 0, 0, 0)
    cs.update([((_fresh(dev), _fresh(ino), 0), chunk_val) for ino in (10**6, 10**6 + 1)])
    rows = ios.update([((_fresh(dev), _fresh(ino), _fresh(cg)), (0, 1, 0, 0))
                       for ino in (10**6, 10**6 + 1, 10**6 + 2)], cs.held_delta)
    by_file = {k[1]: pcs[0] for k, pcs in cs.by_file.items()}
    got = {f.ino: f for f in rows}
    assert got.keys() == {10**6, 10**6 + 1, 10**6 + 2}
    for ino in (10**6, 10**6 + 1):
        assert got[ino].ino is by_file[ino].ino
        assert got[ino].inserted_pages == 3
    assert got[10**6 + 2].ino not in by_file


def _usual_value(rng):
    """A chunk value as most are: one cgroup in slot 0 with a full or
    prefix mask (sometimes seeded pages, another owner, or no pages)."""
    full = (1 << 64) - 1
    cg = 100 + rng.randrange(12)
    r = rng.random()
    if r < 0.08:
        return (0,) * (2 * MAX_OWNERS + 2)                       # no pages
    if r < 0.16:
        return (cg, cg + 1, 0, 0, 1, 2, 0, 0, 0, 0)              # two owners
    bits = full >> rng.randrange(0, 64, 8)
    seeded = bits if r < 0.24 else 0
    return (cg, 0, 0, 0, bits, 0, 0, 0, 0, seeded)


@pytest.mark.parametrize("seed", range(4))
def test_patch_of_usual_values_and_many_cgroups_equals_a_full_update(seed):
    """The patch's fast paths: one changed entry of a file without seeded
    pages (its tuple sliced, the held pages' net change under one key), the
    rows of a file read by more cgroups than fit a tuple (a dict by
    cgroup), held pages changing with no io event, and io entries whose
    counters are all 0 (rows, where a key holding pages without an entry
    is one only while it holds some): equal to update() of the same maps
    after every step, the io entry count and the held-only rows too."""
    rng = random.Random(seed)
    dev = 7 << 20
    chunks = {(dev, ino, c): _usual_value(rng) for ino in range(6) for c in range(4)}
    io = {(dev, ino, 100 + c): (0, 0, 0, 0) for ino in range(3) for c in range(12)}
    full, full_io = ChunkState(), IoState()
    inc, inc_io = ChunkState(), IoState()
    inc.update(list(chunks.items()))
    inc_io.update(list(io.items()), inc.held_delta)
    inc.held_delta = {}
    for step in range(60):
        dirty, dirty_io = set(), set()
        for _ in range(rng.randrange(1, 6)):
            k = (dev, rng.randrange(8), rng.randrange(5))
            if rng.random() < 0.1:
                chunks.pop(k, None)
            else:
                chunks[k] = _usual_value(rng)
            dirty.add(k)
        if rng.random() < 0.3:
            ik = (dev, rng.randrange(8), 100 + rng.randrange(12))
            r = rng.random()
            if r < 0.3:
                io.pop(ik, None)
            else:
                io[ik] = (0, 0, 0, 0) if r < 0.6 else (3, 1, 1, rng.randrange(2))
            dirty_io.add(ik)
        full.update(list(chunks.items()))
        want_io = full_io.update(list(io.items()), full.held_delta)
        full.held_delta = {}
        before_io = dict(inc_io.out)
        inc.patch([(k, chunks[k]) for k in dirty if k in chunks], [k for k in dirty if k not in chunks])
        touched = dirty_io | {k for k, d in inc.held_delta.items() if d}
        got_io = inc_io.patch([(k, io.get(k)) for k in dirty_io], inc.held_delta)
        inc.held_delta = {}
        key = lambda pc: pc.chunk   # noqa: E731
        assert inc.by_file.keys() == full.by_file.keys(), step
        for fk, lst in full.by_file.items():
            assert sorted(inc.by_file[fk], key=key) == sorted(lst, key=key), (step, fk)
        assert {fk: type(t) for fk, t in inc.packed.items()} == \
            {fk: type(t) for fk, t in full.packed.items()}, step
        row = lambda f: (f.dev, f.ino, f.cgroup_id)   # noqa: E731
        assert sorted(got_io, key=row) == sorted(want_io, key=row), step
        assert inc_io.held() == full_io.held() == _held_from_scratch(chunks), step
        assert inc_io.n_entries == full_io.n_entries == len(io), step
        assert inc_io.no_entry() == full_io.no_entry() == set(inc_io.out.keys()) - set(io), step
        # Readings.changed_io: every row that differs or is gone, and only keys touched
        # (a row equal by value may be named: an io entry without counters that
        # was a held-only row, say)
        differ = {k for k in before_io.keys() | inc_io.out.keys()
                  if inc_io.out.get(k) != before_io.get(k)}
        assert differ <= inc_io.changed <= touched, step
        assert dict(inc_io.out) == dict(full_io.out)
