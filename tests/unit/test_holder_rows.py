"""rows.MountHolders: a mount's holder rows kept sorted between refreshes
(an int key per row beside the rows), against the rows made from the same
sums and sorted from scratch, through random changes."""
from __future__ import annotations

import random

import pytest

from erofs_top.model import MountHolder
from erofs_top.rows import MountHolders

PAGE = 4096


def _from_scratch(sums: dict[int, list[int]]) -> list[MountHolder]:
    rows = [MountHolder(cg, r * PAGE, d * PAGE) for cg, (r, d) in sums.items() if r]
    rows.sort(key=lambda h: (-h.resident_bytes, h.cgroup_id))
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_kept_rows_equal_rows_sorted_from_scratch(seed):
    rng = random.Random(seed)
    hs = MountHolders()
    sums: dict[int, list[int]] = {}
    # cgroup ids as the kernel's u64, some near the top; ties in resident pages
    cgs = [rng.choice([rng.randrange(1, 50), rng.randrange(1 << 63, 1 << 64)]) for _ in range(40)]
    for step in range(300):
        cg = rng.choice(cgs)
        op = rng.random()
        if op < 0.2:
            sums.pop(cg, None)
            h = None
        else:
            r = rng.choice([0, 1, 2, 3, rng.randrange(1 << 40)])
            d = rng.choice([0, r, rng.randrange(r + 1)])
            if op < 0.35 and cg in sums:
                r = sums[cg][0]         # same resident, duplicate pages changed
            sums[cg] = h = [r, d]
        was = list(hs.listed)
        changed = hs.put(cg, h, PAGE)
        want = _from_scratch(sums)
        assert hs.listed == want, step
        assert changed == (was != want), step
        assert hs.rows == {h.cgroup_id: h for h in want}, step
        assert hs.keys == sorted(hs.keys) and len(hs.keys) == len(want), step
    assert sums, "the test ends with no row: it saw little"
