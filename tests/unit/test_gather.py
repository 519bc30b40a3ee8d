"""gather.split_found (erofs_top/kernel/gather.py): the gather programs'
output records (a u64 found flag, then the value) back into (found, gone)
as DirtyReader.lookup returns them.  The records are built here field by
field with struct.pack_into, not with the format split_found uses."""
from __future__ import annotations

import struct

from erofs_top.kernel import gather, maps

KEYS = [maps.CHUNK_KEY.pack(3, 100 + i, i % 4) for i in range(6)]


def _records(stride: int, values: list[tuple | None]) -> bytes:
    buf = bytearray(stride * len(values) + 64)       # a mapped array is longer than n
    for i, v in enumerate(values):
        if v is not None:
            struct.pack_into("=Q", buf, i * stride, 1)
            for j, x in enumerate(v):
                struct.pack_into("=Q", buf, i * stride + 8 + 8 * j, x)
            struct.pack_into("=Q", buf, i * stride + 8 + 8 * len(v), 0xDEAD)   # dirty_gen
    return bytes(buf)


def _chunk_val(i: int) -> tuple:
    return tuple(1000 * i + j for j in range(2 * maps.MAX_OWNERS + 2))


def test_all_found():
    vals = [_chunk_val(i) for i in range(len(KEYS))]
    raw = _records(96, vals)
    found, gone = gather.split_found(raw, len(KEYS), 96, KEYS, maps.CHUNK_KEY, maps.CHUNK_VAL)
    assert gone == []
    assert found == [((3, 100 + i, i % 4), vals[i]) for i in range(len(KEYS))]


def test_some_gone_keep_their_order():
    vals = [None if i in (0, 3) else _chunk_val(i) for i in range(len(KEYS))]
    raw = _records(96, vals)
    found, gone = gather.split_found(raw, len(KEYS), 96, KEYS, maps.CHUNK_KEY, maps.CHUNK_VAL)
    assert gone == [(3, 100, 0), (3, 103, 3)]
    assert found == [((3, 100 + i, i % 4), vals[i]) for i in (1, 2, 4, 5)]


def test_io_records():
    vals = [(i, 2 * i, 3 * i, 4 * i) if i % 2 else None for i in range(len(KEYS))]
    raw = _records(48, vals)
    found, gone = gather.split_found(raw, len(KEYS), 48, KEYS, maps.IO_KEY, maps.IO_VAL)
    assert found == [((3, 100 + i, i % 4), (i, 2 * i, 3 * i, 4 * i)) for i in (1, 3, 5)]
    assert gone == [(3, 100 + i, i % 4) for i in (0, 2, 4)]


def test_none():
    assert gather.split_found(b"", 0, 96, [], maps.CHUNK_KEY, maps.CHUNK_VAL) == ([], [])
