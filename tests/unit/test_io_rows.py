"""kernel/maps.py IoRows (IoState's rows kept flat per dev and ino: no
object, no key tuple per row) against a plain dict of the same rows by
(dev, ino, cg), through random puts and drops (files of one, of several and
of more than ROWS_TUPLE_MAX cgroups), and a past read's view of it
(DictSnapshot) against a copy taken then.  The rows' FileIOs are built at
each access: compared by value."""
from __future__ import annotations

import random

import pytest

from erofs_top.kernel.maps import _MISSING, IO_ROW, IO_ROW1, ROWS_TUPLE_MAX, IoRows, Snapshots
from erofs_top.readings import FileIO


def _same(rows: IoRows, want: dict) -> None:
    assert len(rows) == len(want)
    assert dict(rows.items()) == want
    assert sorted(rows) == sorted(want)
    assert sorted(rows.values(), key=_key) == sorted(want.values(), key=_key)
    for k, f in want.items():
        assert rows.get(k) == f and rows[k] == f and k in rows
        assert rows.find(k) == (f.cgroup_id, f.inserted_pages, f.evicted_pages,
                                f.readahead_pages, f.read_folio_count)


def _key(f: FileIO) -> tuple:
    return (f.dev, f.ino, f.cgroup_id)


CGS = [0, 7, 8, 9, (1 << 64) - 1]
# counters at and past the bounds of IO_ROW1 (a file's one row, 32-bit
# counters): a row changes form as its counters cross them
FOLIOS = [1 << 62, 0, 5, (1 << 31) - 1, 1 << 31, -(1 << 31), -(1 << 31) - 1]
MANY_CGS = CGS + list(range(100, 100 + ROWS_TUPLE_MAX))


@pytest.mark.parametrize("seed", range(6))
def test_rows_equal_a_dict_of_rows_by_key(seed):
    rng = random.Random(seed)
    cgs = MANY_CGS if seed % 2 else CGS
    rows, want = IoRows(), {}
    views = Snapshots(rows)
    kept = []
    lengths = set()         # of a file's rows' bytes, as seen
    for step in range(400):
        k = (rng.randrange(1, 4), rng.randrange(1, 6), rng.choice(cgs))
        if k in want and rng.random() < 0.4:
            for old in views.olds():        # as IoState._patch does before a change
                old.setdefault(k, want[k])
            rows.drop(k)
            del want[k]
        else:
            for old in views.olds():
                if k not in old:
                    old[k] = want.get(k, _MISSING)
            want[k] = f = FileIO(*k, inserted_pages=step - 200, evicted_pages=rng.choice([0, 3]),
                                 readahead_pages=step % 7,
                                 read_folio_count=rng.choice(FOLIOS) + step % 3)
            rows.put(f)
        v = rows.files.get(k[0], {}).get(k[1])
        if type(v) is bytes:
            lengths.add(len(v))
        _same(rows, want)
        absent = (k[0], k[1], 12345)
        assert rows.get(absent) is None and absent not in rows
        with pytest.raises(KeyError):
            rows[absent]
        if step % 50 == 0:
            kept.append((views.take(), dict(want)))
    forms = {type(v) is dict or len(v) // IO_ROW.size > 1
             for per in rows.files.values() for v in per.values()}
    assert True in forms, "no file with rows of several cgroups: the test saw little"
    assert lengths >= {IO_ROW.size, IO_ROW1.size}, \
        "not both forms of a file's one row: the test saw little"
    if cgs is MANY_CGS:
        assert any(type(v) is dict for per in rows.files.values() for v in per.values()), \
            "no file with rows of more than ROWS_TUPLE_MAX cgroups: the test saw little"
    for view, then in kept:
        assert dict(view.items()) == then and len(view) == len(then)
        assert all(view.get(k) == f for k, f in then.items())


def test_a_counter_past_a_signed_64_bit_int_is_kept_at_the_bound_not_raised():
    """A kernel counter is a u64; IO_ROW keeps counters signed (a row's
    inserted pages are derived and may dip below 0).  A value of 2^63 pages
    or more (only a corrupted map holds one) is kept at the bound: the read
    goes on, the other rows and counters of the row stay exact."""
    rows = IoRows()
    huge = (1 << 64) - 1
    rows.put(FileIO(5, 9, 7, inserted_pages=3, evicted_pages=huge, readahead_pages=4,
                    read_folio_count=-(1 << 70)))
    rows.put(FileIO(5, 9, 8, inserted_pages=2))
    assert rows.find((5, 9, 7)) == (7, 3, (1 << 63) - 1, 4, -(1 << 63))
    assert rows.find((5, 9, 8)) == (8, 2, 0, 0, 0)
