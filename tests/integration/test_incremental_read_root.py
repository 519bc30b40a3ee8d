"""Incremental map reads (issue 11) on real BPF, a real EROFS mount and real
cgroups: after each step of reads and evictions, TracepointSource.read()
(which looks up only the keys the probe marked changed) must equal a full
read of the same maps taken right after it, and Readings.changed_files must
name every file whose list changed (the others keep their list object).

The oracle reads the whole maps through BCC's own per-entry objects
(maps.chunk_items/io_items without the raw batch reader) into a fresh state;
only this test's mount is compared (other jobs may use EROFS meanwhile).
"""
from __future__ import annotations

import os

import pytest

from erofs_top.kernel import maps
from erofs_top.workload import build_image, drop_file_cache, make_tree, read_file

pytestmark = pytest.mark.root
KiB = 1 << 10
N_FILES = 24


@pytest.fixture
def mounted(stack):
    # sizes from 12 KiB to ~1.4 MiB: one to six 64-page chunks per file
    files = {f"f{i:02d}.bin": 12 * KiB + i * 60 * KiB for i in range(N_FILES)}
    src = make_tree(stack.dir / "src", files)
    img = build_image(src, stack.dir / "img.erofs")
    m = stack.mount(img, "inc")
    paths = [m.path(f"f{i:02d}.bin") for i in range(N_FILES)]
    for p in paths:
        drop_file_cache(p)
    return m, paths


def _source(**kw):
    from erofs_top.tiers import open_collector
    return open_collector(seed=False, sharing=False, **kw)


def _full_read(source, dev):
    """(chunks by file, io rows) of our mount from a full read of the maps now."""
    cs, ios = maps.ChunkState(), maps.IoState()
    pairs, _ = maps.chunk_items(source.bpf[b"chunks"], None)
    cs.update(pairs)
    io_pairs, _ = maps.io_items(source.bpf[b"io"], None)
    rows = ios.update(io_pairs, cs.held_delta)
    return _content(cs.by_file, dev), _io_rows(rows, dev)


def _content(by_file, dev):
    return {fk: sorted((pc.chunk, sorted(pc.owners.items()), pc.seeded_mask) for pc in lst)
            for fk, lst in by_file.items() if fk[0] == dev}


def _io_rows(rows, dev):
    return sorted((f.dev, f.ino, f.cgroup_id, f.inserted_pages, f.evicted_pages,
                   f.readahead_pages, f.read_folio_count) for f in rows if f.dev == dev)


def _check(source, prev, dev, touched_inos):
    """One incremental read against the oracle; returns its Readings.

    The kernel may change the cache between the read and the oracle's (a
    readahead folio dropped, reclaim: seen once in CI, two pages of a file
    just read).  A difference is then allowed only where the probe marked
    the change: the next incremental read names every differing file (and
    io row) as changed, and it must equal a new oracle."""
    r = source.read()
    assert not source.last_read_full
    for attempt in range(3):
        want_chunks, want_io = _full_read(source, dev)
        got_chunks, got_io = _content(r.chunks_by_file, dev), _io_rows(r.io, dev)
        if (got_chunks == want_chunks and got_io == want_io) or attempt == 2:
            break
        differ = {fk for fk in got_chunks.keys() | want_chunks.keys()
                  if got_chunks.get(fk) != want_chunks.get(fk)}
        differ_io = {row[:3] for row in set(got_io) ^ set(want_io)}
        prev, r = r, source.read()
        assert not source.last_read_full
        assert differ <= r.changed_files, (differ, "changed since, not marked by the probe")
        assert differ_io <= set(r.changed_io), (differ_io, "io changed since, not marked")
    assert got_chunks == want_chunks
    assert got_io == want_io
    assert r.changed_files is not None
    mine = {fk for fk in r.changed_files if fk[0] == dev}
    # a file's packed tuple (maps.ChunkState) is another object only if named
    now, before = r.chunks_by_file.packed, prev.chunks_by_file.packed
    for fk in (before.keys() | now.keys()):
        if fk[0] != dev:
            continue
        if now.get(fk) is not before.get(fk):
            assert fk in mine, fk
    # a file the step did not touch is named only where its pages changed
    # all the same: the kernel's own reclaim (seen once in CI: one file of
    # the step before named, a page of it gone), never a mark with no change
    touched = {(dev, ino) for ino in touched_inos}
    was, now_content = _content(prev.chunks_by_file, dev), _content(r.chunks_by_file, dev)
    unexplained = {fk for fk in mine - touched if was.get(fk) == now_content.get(fk)}
    assert not unexplained, (unexplained, "named changed with the same pages", r.warnings)
    # r.chunks is the same content as chunks_by_file (PageChunks built at each access)
    assert sorted((pc.dev, pc.ino, pc.chunk, sorted(pc.owners.items()), pc.seeded_mask)
                  for pc in r.chunks) == \
        sorted((pc.dev, pc.ino, pc.chunk, sorted(pc.owners.items()), pc.seeded_mask)
               for lst in r.chunks_by_file.values() for pc in lst)
    return r


def test_incremental_reads_equal_a_full_read(stack, cgroup_prefix, mounted):
    m, paths = mounted
    ino = [os.stat(p).st_ino for p in paths]
    a, b = stack.cgroup(f"{cgroup_prefix}/a"), stack.cgroup(f"{cgroup_prefix}/b")
    col = _source()
    try:
        src = col.source
        r = src.read()
        assert src.last_read_full and r.changed_files is not None
        for i in range(8):                                  # first reads, cgroup a
            read_file(paths[i], a)
        r = _check(src, r, m.dev, ino[:8])
        assert {(m.dev, i) for i in ino[:8]} <= r.changed_files
        for i in range(4, 14):                              # re-reads and new files, b
            read_file(paths[i], b, offset=0, length=200 * KiB)
        r = _check(src, r, m.dev, ino[4:14])
        for i in (0, 1, 2):                                 # whole files evicted
            drop_file_cache(paths[i])
        drop_file_cache(paths[5], 64 * KiB, 128 * KiB)               # part of a file
        read_file(paths[3], b, mode="mmap")                 # faults
        r = _check(src, r, m.dev, ino[:6])
        assert (m.dev, ino[0]) not in r.chunks_by_file      # its entries are empty now
        stable = r
        r = _check(src, r, m.dev, ())                       # nothing changed: the same tuples
        assert {fk for fk in r.changed_files if fk[0] == m.dev} == set()
        for fk, t in r.chunks_by_file.packed.items():
            if fk[0] == m.dev:
                assert t is stable.chunks_by_file.packed[fk]
        r = _check(src, r, m.dev, ())                       # empty entries deleted (GC)
        for i in range(N_FILES):                            # everything, both cgroups
            read_file(paths[i], a if i % 2 else b)
        r = _check(src, r, m.dev, ino)
        src.full_read_every = 1                             # the periodic full read
        r = src.read()
        assert src.last_read_full
        assert _content(r.chunks_by_file, m.dev) == _full_read(src, m.dev)[0]
    finally:
        col.close()


def test_dirty_map_overflow_falls_back_to_a_full_read(stack, cgroup_prefix, mounted):
    m, paths = mounted
    a = stack.cgroup(f"{cgroup_prefix}/a")
    col = _source(max_dirty=64)         # fewer marks than the ~100 chunks and io rows read below
    try:
        src = col.source
        src.read()
        for p in paths:
            read_file(p, a)
        r = src.read()
        assert src.last_read_full, "a full dirty map must force a full read"
        want_chunks, want_io = _full_read(src, m.dev)
        assert _content(r.chunks_by_file, m.dev) == want_chunks
        assert _io_rows(r.io, m.dev) == want_io
        assert len(want_chunks) == N_FILES
        drop_file_cache(paths[0])                           # a few marks: incremental again
        r = src.read()
        assert not src.last_read_full
        assert _content(r.chunks_by_file, m.dev) == _full_read(src, m.dev)[0]
    finally:
        col.close()
