"""The gather programs (erofs_top/kernel/gather.py, probes/filemap.c
gather_chunks / gather_io) on real BPF maps: the values they copy out for a
list of keys, present and absent, must equal what BCC's own per-key lookup
(a bpf_lookup_elem syscall through the table object) reads for each key,
over several program runs (more keys than GATHER_BATCH) and several rounds
(more keys than the arrays hold).

The entries are made from user space under a device number no EROFS mount
has (0:0xFFFF0, as benchmarks/bench_refresh.py does) and removed after.
"""
from __future__ import annotations

import ctypes as ct

import pytest

from erofs_top.kernel import gather, maps

pytestmark = pytest.mark.root
DEV = 0xFFFF0               # kernel encoding of 0:0xFFFF0
N = 3 * gather.GATHER_BATCH + 17


def _fill_chunks(table):
    keys = []
    for i in range(N):
        k = table.Key()
        k.dev, k.ino, k.chunk = DEV, 7000 + i // 3, i % 3
        v = table.Leaf()
        v.cgid[0], v.bits[0] = 100 + i, (1 << (i % 64)) | 1
        v.cgid[1], v.bits[1] = 5000 + i, 1 << 63
        v.other_bits, v.seeded_bits = i, (i * 31) % 1024
        table[k] = v
        keys.append(bytes(k))
    return keys


def _fill_io(table):
    keys = []
    for i in range(N):
        k = table.Key()
        k.dev, k.ino, k.cgid = DEV, 9000 + i, 100 + i % 7
        v = table.Leaf()
        v.evicted_pages, v.readahead_pages = i, 2 * i + 1
        v.read_folio_count, v.evicted_seeded_pages = i % 5, i // 2
        table[k] = v
        keys.append(bytes(k))
    return keys


def _oracle(table, keys, key_fmt, val_fmt):
    """{key tuple: value tuple} of the keys present, by BCC's table[key]."""
    want = {}
    for kb in keys:
        k = table.Key.from_buffer_copy(kb)
        try:
            v = table[k]
        except KeyError:
            continue
        want[key_fmt.unpack(kb)] = val_fmt.unpack(bytes(v)[:val_fmt.size])
    return want


@pytest.mark.parametrize("max_keys", [gather.GATHER_MAX, 300])
def test_gather_equals_a_lookup_per_key(probes, max_keys):
    src = probes.source
    g0 = src._gatherer
    assert g0 is not None, "no gather programs loaded (no bpf(2) number here?)"
    g = gather.Gatherer(src.bpf, src._sys_bpf, g0.prog_fds[b"chunks"], g0.prog_fds[b"io"],
                        max_keys=max_keys)
    cases = ((b"chunks", _fill_chunks, maps.CHUNK_KEY, maps.CHUNK_VAL, 7000),
             (b"io", _fill_io, maps.IO_KEY, maps.IO_VAL, 9000))
    try:
        for name, fill, key_fmt, val_fmt, ino0 in cases:
            table = src.bpf[name]
            keys = fill(table)
            never = [key_fmt.pack(DEV, ino0 + 100000 + i, i) for i in range(40)]
            deleted = keys[5::50]           # deleted after the fill: gone
            for kb in deleted:
                del table[table.Key.from_buffer_copy(kb)]
            absent = never + deleted
            mixed = [kb for pair in zip(keys, never) for kb in pair] + keys[len(never):]
            assert len(mixed) == len(set(mixed)) == N + 40
            found, gone = g.lookup(g.prog_fds[name], mixed, key_fmt, val_fmt)
            want = _oracle(table, mixed, key_fmt, val_fmt)
            assert len(want) == N - len(deleted)
            assert dict(found) == want
            assert len(found) == len(want)
            assert sorted(gone) == sorted(key_fmt.unpack(kb) for kb in absent)
            # the order of the keys given is kept (the patches do not care; the test does)
            order = [key_fmt.unpack(kb) for kb in mixed]
            assert [k for k, _ in found] == [k for k in order if k in want]
    finally:
        g.close()
        for name, _f, key_fmt, _v, _i in cases:
            table = src.bpf[name]
            for k in [k for k in table.keys() if k.dev == DEV]:
                del table[k]


def test_gather_with_all_keys_present_takes_the_batch_path(probes):
    """Every key found (split_found's one-unpack path), N keys in one round."""
    src = probes.source
    g = src._gatherer
    table = src.bpf[b"chunks"]
    try:
        keys = _fill_chunks(table)
        found, gone = g.lookup(g.prog_fds[b"chunks"], keys, maps.CHUNK_KEY, maps.CHUNK_VAL)
        assert gone == []
        assert dict(found) == _oracle(table, keys, maps.CHUNK_KEY, maps.CHUNK_VAL)
        assert len(found) == N
    finally:
        for k in [k for k in table.keys() if k.dev == DEV]:
            del table[k]
    assert ct.sizeof(table.Leaf) == maps.CHUNK_VAL.size
