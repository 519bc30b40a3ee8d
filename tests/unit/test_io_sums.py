"""attribution.IoSums grouped by another FileIO field (the collector's
EROFS pages inserted per mount dev, the image cache's sign of change): after
random churn, by the changed keys (a source with keyed rows) and by object
identity (a source without), its sums equal a count made here row by row."""
from __future__ import annotations

import random

import pytest

from erofs_top.attribution import IoSums
from erofs_top.readings import FileIO, Readings


def _counted(rows) -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for f in rows:
        v = out.setdefault(f.dev, [0, 0, 0, 0, 0])
        v[0] += f.inserted_pages
        v[1] += f.evicted_pages
        v[2] += f.readahead_pages
        v[3] += f.read_folio_count
        v[4] += 1
    return out


def _churn(rng: random.Random, rows: dict, step: int) -> set:
    """Rows appear, change (some moving pages between counters only) and go."""
    changed = set()
    for _ in range(rng.randint(0, 40)):
        key = (rng.choice((1, 2, 3)), rng.randint(1, 60), rng.choice((7, 8)))
        changed.add(key)
        if key in rows and rng.random() < 0.3:
            del rows[key]
        else:
            rows[key] = FileIO(*key, inserted_pages=rng.randint(0, 9) + step,
                               evicted_pages=rng.randint(0, 5), readahead_pages=rng.randint(0, 3),
                               read_folio_count=rng.randint(0, 2))
    return changed


@pytest.mark.parametrize("keyed", [True, False])
def test_sums_by_dev_equal_a_count_after_churn(keyed):
    rng = random.Random(5)
    rows: dict = {}
    sums = IoSums("dev")
    for step in range(60):
        changed = _churn(rng, rows, step)
        r = Readings(taken_at=float(step), page_size=4096, io=list(rows.values()))
        if keyed:
            r.io_by_key, r.changed_io = dict(rows), changed if step else None
        sums.update(r)
        assert sums.by_group == _counted(rows.values()), step


def test_the_default_groups_by_cgroup():
    rows = [FileIO(1, 10, 7, inserted_pages=3), FileIO(2, 11, 7, inserted_pages=4),
            FileIO(2, 12, 8, evicted_pages=5)]
    sums = IoSums()
    sums.update(Readings(taken_at=0.0, page_size=4096, io=rows))
    assert sums.by_group == {7: [7, 0, 0, 0, 2], 8: [0, 5, 0, 0, 1]}
