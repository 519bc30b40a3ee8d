"""The probe source's packed chunk state (maps.ChunkState: one tuple per
file, Readings.chunks_by_file a FileChunks that builds a file's PageChunks at
each access) fed to the Aggregator through random map churn: each Model
equals aggregate() of Readings decoded from scratch from the same map (plain
lists, no by-file mapping: the independent path); no entry keeps its input
(the lists are not kept alive anywhere); and a file the source changed but
did not name (its bug) is repaired by the recheck from the current read, as
is a file gone without being named."""
from __future__ import annotations

import random

import pytest
from test_refresh_churn import PAGE, _image, _mount

from erofs_top.aggregate import Aggregator, aggregate
from erofs_top.kernel.maps import ChunkState, FileChunks, IoState, owners_of
from erofs_top.readings import PageChunk, Readings
from erofs_top.resolve.base import AOPS_FILEIO, FileInfo, StaticCgroups, StaticContent, StaticMounts

FULL = (1 << 64) - 1
CGS = [1001, 1002, 1003]
SLICES = 3


def _world():
    mounts = [_mount(n, "file", _image(n, fingerprints=True)) for n in range(2)]
    files, content = {}, {}
    for m in mounts:
        for ino in range(1, 13):
            files[(m.dev, ino)] = FileInfo(ino, f"{m.mountpoint}/f{ino}", 256 * PAGE, True,
                                           AOPS_FILEIO)
            content[(m.dev, ino)] = f"{ino % 5:064x}"      # copies of the same content
    return (StaticMounts(mounts), StaticCgroups({cg: f"/pods/{cg}" for cg in CGS}),
            StaticContent(files=files, content=content), [m.dev for m in mounts])


def _value(rng) -> tuple:
    cg = rng.choice(CGS)
    r = rng.random()
    if r < 0.6:
        bits = (FULL, 0, 0, 0)
    elif r < 0.8:
        bits = ((1 << rng.randrange(1, 64)) - 1, 0, 0, 0)
    else:
        bits = (rng.getrandbits(64), rng.getrandbits(64), 0, 0)
    seeded = rng.choice([0, 0, 0, bits[0] & 0xF0])
    return (cg, rng.choice(CGS), 0, 0) + bits + (rng.choice([0, 0, 0, 8]), seeded)


def _churn(rng, chunks: dict, devs: list, dirty: set) -> None:
    for _ in range(rng.randrange(1, 12)):
        key = (rng.choice(devs), rng.randrange(1, 13), rng.randrange(4))
        if rng.random() < 0.2:
            chunks.pop(key, None)
        else:
            chunks[key] = _value(rng)
        dirty.add(key)


def _read(cs: ChunkState, ios: IoState, chunks: dict, dirty: set, full: bool, t: float):
    """What TracepointSource._read_maps hands over (no io map: held pages only)."""
    if full:
        changed = cs.update(list(chunks.items()))
        rows = ios.update([], cs.held_delta)
    else:
        changed = cs.patch([(k, chunks[k]) for k in dirty if k in chunks],
                           [k for k in dirty if k not in chunks])
        rows = ios.patch([], cs.held_delta)
    cs.held_delta = {}
    r = Readings(taken_at=t, page_size=PAGE, io=rows, chunks_by_file=cs.snapshot(),
                 changed_files=changed, io_by_key=rows.by_key, changed_io=ios.changed)
    r.chunks = [pc for lst in r.chunks_by_file.values() for pc in lst]
    return r


def _from_scratch(chunks: dict, rows, t: float) -> Readings:
    """The same map decoded without ChunkState: plain PageChunks, no by-file view."""
    pcs = [PageChunk(k[0], k[1], k[2], owners_of(v), v[-1])
           for k, v in sorted(chunks.items()) if owners_of(v)]
    return Readings(taken_at=t, page_size=PAGE, chunks=pcs, io=list(rows))


@pytest.mark.parametrize("seed", range(5))
def test_a_packed_source_s_models_equal_a_decode_from_scratch(seed):
    rng = random.Random(seed)
    mounts, cgroups, content, devs = _world()
    resolvers = (mounts, cgroups, content)
    chunks: dict = {}
    cs, ios = ChunkState(), IoState()
    agg = Aggregator(recheck_slices=SLICES)
    for step in range(30):
        dirty: set = set()
        _churn(rng, chunks, devs, dirty)
        r = _read(cs, ios, chunks, dirty, full=step % 9 == 0, t=float(step))
        assert isinstance(r.chunks_by_file, FileChunks)
        got = agg.update(r, *resolvers, tier="tracepoint", started_at=0.0)
        want = aggregate(_from_scratch(chunks, r.io, float(step)), *resolvers,
                         tier="tracepoint", started_at=0.0)
        assert got == want, step
        assert agg.entries and all(e.input is None for e in agg.entries.values())
        # one key tuple per file across source and aggregator: an entry rebuilt
        # or new has the key ChunkState.packed keeps, not a read's own
        kept = {fk: fk for fk in cs.packed}
        assert all(kept[k] is k for k in agg.entries), step


@pytest.mark.parametrize("unnamed", ["changed", "gone"])
def test_a_file_the_source_did_not_name_is_re_derived_from_the_read(unnamed):
    """Each refresh re-derives a slice from this read's list of the file
    (the entries keep no input): within SLICES refreshes the Model equals
    aggregate() of the same map; without slices it stays wrong."""
    rng = random.Random(7)
    mounts, cgroups, content, devs = _world()
    resolvers = (mounts, cgroups, content)
    chunks = {(dev, ino, c): _value(rng) for dev in devs for ino in range(1, 13) for c in (0, 1)}
    aggs = []
    for slices in (SLICES, 0):
        cs, ios = ChunkState(), IoState()
        agg = Aggregator(recheck_slices=slices)
        agg.update(_read(cs, ios, chunks, set(), True, 0.0), *resolvers, tier="tracepoint",
                   started_at=0.0)
        aggs.append((agg, cs, ios))
    keys = [(devs[0], 5, 0), (devs[0], 5, 1)]
    after = dict(chunks)
    if unnamed == "changed":
        after[keys[0]] = (CGS[2], 0, 0, 0, 0xFF, 0, 0, 0, 0, 0)
    else:
        for k in keys:
            del after[k]
    models = []
    for agg, cs, ios in aggs:
        r = _read(cs, ios, after, set(keys), False, 1.0)
        assert (devs[0], 5) in r.changed_files
        r.changed_files = set()             # the source's bug: the file not named
        for i in range(SLICES):
            r.taken_at = 1.0 + i
            m = agg.update(r, *resolvers, tier="tracepoint", started_at=0.0)
        models.append(m)
    want = aggregate(_from_scratch(after, r.io, r.taken_at), *resolvers, tier="tracepoint",
                     started_at=0.0)
    assert models[1] != want
    assert models[0] == want and aggs[0][0].rechecks_differed == 1
