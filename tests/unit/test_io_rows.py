"""kernel/maps.py IoRows (IoState's rows kept per dev and ino, no key
tuple per row) against a plain dict of the same rows by (dev, ino, cg),
through random puts and drops (files of one and of several cgroups), and a
past read's view of it (DictSnapshot) against a copy taken then."""
from __future__ import annotations

import random

import pytest

from erofs_top.kernel.maps import _MISSING, IoRows, Snapshots
from erofs_top.readings import FileIO


def _same(rows: IoRows, want: dict) -> None:
    assert len(rows) == len(want)
    assert dict(rows.items()) == want
    assert sorted(rows) == sorted(want)
    assert sorted(map(id, rows.values())) == sorted(map(id, want.values()))
    for k, f in want.items():
        assert rows.get(k) is f and rows[k] is f and k in rows


@pytest.mark.parametrize("seed", range(6))
def test_rows_equal_a_dict_of_rows_by_key(seed):
    rng = random.Random(seed)
    rows, want = IoRows(), {}
    views = Snapshots(rows)
    kept = []
    for step in range(400):
        k = (rng.randrange(1, 4), rng.randrange(1, 6), rng.choice([0, 7, 8, 9, (1 << 64) - 1]))
        if k in want and rng.random() < 0.4:
            for old in views.olds():        # as IoState._patch does before a change
                old.setdefault(k, want[k])
            rows.drop(k)
            del want[k]
        else:
            for old in views.olds():
                if k not in old:
                    old[k] = want.get(k, _MISSING)
            want[k] = f = FileIO(*k, inserted_pages=step)
            rows.put(f)
        _same(rows, want)
        absent = (k[0], k[1], 12345)
        assert rows.get(absent) is None and absent not in rows
        with pytest.raises(KeyError):
            rows[absent]
        if step % 50 == 0:
            kept.append((views.take(), dict(want)))
    assert any(type(v) is tuple for per in rows.files.values() for v in per.values()), \
        "no file with rows of several cgroups: the test saw little"
    for view, then in kept:
        assert dict(view.items()) == then and len(view) == len(then)
        assert all(view.get(k) is f for k, f in then.items())
