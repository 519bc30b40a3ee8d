"""Large folios (order > 6, several whole 64-page chunks) on a real EROFS
mount, real BPF: the delete program clears them one chunk per tail call
(probes/filemap.c delete_big_folio, installed by kernel/probes.py).

A reader in a cgroup maps a file with MADV_HUGEPAGE, so the kernel inserts
order-9 folios (512 pages, 8 chunks each); a small BPF program of the test's
own counts the folio orders the kernel really inserted (the tracepoint's
`order`), so the test cannot pass on small folios alone.  Ground truth: the
pages resident (mincore) before the eviction, and none after it.  Without
the tail call installed the evicted pages stay set in `chunks` and are
counted as lost: the test fails.
"""
from __future__ import annotations

import os
import sys

import pytest

from erofs_top import pagecache
from erofs_top.workload import build_image, drop_file_cache, make_tree

pytestmark = pytest.mark.root
MiB = 1 << 20

_READ_HUGE = r"""
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
mm.madvise(mmap.MADV_HUGEPAGE)
s = sum(mm[off] for off in range(0, len(mm), 4096))
"""

_ORDERS = r"""
BPF_HASH(orders, u32, u64, 64);
TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache)
{
    if (args->s_dev != DEV)
        return 0;
    u32 o = args->order;
    orders.increment(o);
    return 0;
}
"""


def _pages_of(r, dev, ino) -> dict[int, int]:
    """cgroup id -> pages the probe holds resident for (dev, ino)."""
    out: dict[int, int] = {}
    for c in (r.chunks_by_file or {}).get((dev, ino), []):
        for cg, mask in c.owners.items():
            out[cg] = out.get(cg, 0) + mask.bit_count()
    return out


@pytest.mark.parametrize("mode", ["file", "loop"])
def test_large_folios_inserted_and_evicted(stack, cgroup_prefix, mode):
    from bcc import BPF
    from erofs_top.tiers import open_collector
    src = make_tree(stack.dir / "src", {"big.bin": 16 * MiB}, seed=5)
    m = stack.mount(build_image(src, stack.dir / "img.erofs"), "big", mode)
    path = m.path("big.bin")
    ino = os.stat(path).st_ino
    drop_file_cache(path)
    cg = stack.cgroup(f"{cgroup_prefix}/reader")
    orders = BPF(text=_ORDERS.encode(), cflags=[f"-DDEV={m.dev}"])
    stack.callback(orders.cleanup)
    col = open_collector(seed=False, sharing=False)
    try:
        src = col.source
        src.read()
        cg.run([sys.executable, "-S", "-c", _READ_HUGE, str(path)])
        big = {k.value: v.value for k, v in orders[b"orders"].items() if k.value > 6}
        assert big, "the kernel inserted no folio of order > 6: nothing tested"
        resident = pagecache.file_resident_pages(str(path))
        assert resident >= sum((1 << o) * n for o, n in big.items())
        r = src.read()
        assert _pages_of(r, m.dev, ino) == {cg.id: resident}
        drop_file_cache(path)
        assert pagecache.file_resident_pages(str(path)) == 0
        r = src.read()
        assert _pages_of(r, m.dev, ino) == {}
        rows = {f.cgroup_id: f for f in r.io if (f.dev, f.ino) == (m.dev, ino)}
        assert (rows[cg.id].inserted_pages, rows[cg.id].evicted_pages) == (resident, resident)
        assert src._counters()["big_folio_lost_pages"] == 0
        assert src._counters()["delete_untracked_pages"] == 0
    finally:
        col.close()
