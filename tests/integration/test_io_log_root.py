"""The probe's io_current line and io_log ring (probes/filemap.c, issue 11:
erofs_readahead and erofs_read_folio counted without touching a cold line)
on real BPF, a real EROFS mount and real cgroups.

Ground truth: a small BPF program of the test's own on the same two
tracepoints sums `nrpage` and counts calls per (dev, nid, cgroup id); after a
read (which empties the slots, the ring and the line into `io`) the probe's
readahead_pages and read_folio_count per (file, cgroup) must be equal to it.
The readers run pinned to one CPU, so the counts of every file but the last
wait in that CPU's ring (one test has more files than the ring holds: the
rest go through io_slots) and the last file's in io_current; `io` read
without the flush is missing them.  With flush_io_log not run the test fails.
"""
from __future__ import annotations

import os
import sys

import pytest

from erofs_top.kernel import maps, slots
from erofs_top.workload import drop_file_cache

from readers import KiB, READ_ALL, mount_files

pytestmark = pytest.mark.root

_TRUTH = rb"""
typedef u64 erofs_nid_t;    /* named by the erofs tracepoint formats */
typedef u64 erofs_off_t;
typedef u64 erofs_blk_t;
struct key { u32 dev; u32 pad; u64 nid; u64 cg; };
struct val { u64 pages; u64 calls; };
BPF_HASH(ra, struct key, struct val, 65536);
BPF_HASH(rf, struct key, struct val, 65536);
TRACEPOINT_PROBE(erofs, erofs_readahead)
{
    struct key k = {.dev = args->dev, .nid = args->nid, .cg = bpf_get_current_cgroup_id()};
    struct val z = {}, *v = ra.lookup_or_try_init(&k, &z);
    if (v) {
        __sync_fetch_and_add(&v->pages, args->nrpage);
        __sync_fetch_and_add(&v->calls, 1);
    }
    return 0;
}
TRACEPOINT_PROBE(erofs, erofs_read_folio)
{
    struct key k = {.dev = args->dev, .nid = args->nid, .cg = bpf_get_current_cgroup_id()};
    struct val z = {}, *v = rf.lookup_or_try_init(&k, &z);
    if (v)
        __sync_fetch_and_add(&v->calls, 1);
    return 0;
}
"""


def _truth(bpf, dev) -> dict:
    """(nid, cgroup id) -> (readahead pages, read_folio calls) seen by the tracepoints."""
    out: dict = {}
    for name, field in ((b"ra", 0), (b"rf", 1)):
        for k, v in bpf[name].items():
            if k.dev == dev:
                cur = list(out.get((k.nid, k.cg), (0, 0)))
                cur[field] += v.pages if field == 0 else v.calls
                out[(k.nid, k.cg)] = tuple(cur)
    return out


def _run(stack, cgroup_prefix, n_files: int, size: int) -> None:
    from bcc import BPF
    from erofs_top.tiers import open_collector
    events = {e: os.path.exists(f"/sys/kernel/tracing/events/erofs/{e}")
              for e in ("erofs_readahead", "erofs_read_folio")}
    # the tracepoint tier counts readahead with them: a host without is a failure here
    assert all(events.values()), f"erofs tracepoints missing: {events}"
    m, paths = mount_files(stack, "log", n_files, size, 5)
    a, b = stack.cgroup(f"{cgroup_prefix}/a"), stack.cgroup(f"{cgroup_prefix}/b")
    truth_bpf = BPF(text=_TRUTH)
    stack.callback(truth_bpf.cleanup)
    col = open_collector(seed=False, sharing=False)
    try:
        src = col.source
        src.read()
        for cg, part in ((a, paths), (b, paths[::3]), (a, paths[1::2])):
            for p in part:
                drop_file_cache(p)
            cg.run([sys.executable, "-S", "-c", READ_ALL, *map(str, part)])
            truth = _truth(truth_bpf, m.dev)
            assert sum(t[0] for t in truth.values()) > 0
            if src._flusher is not None:    # counts wait in the ring and the line
                pairs, _ = maps.io_items(src.bpf[b"io"], None)
                raw = sum(v[1] for k, v in pairs if k[0] == m.dev)
                assert raw < sum(t[0] for t in truth.values())
            r = src.read()
            assert src._flusher is None or src._flusher.left == []
            got = {(f.ino, f.cgroup_id): (f.readahead_pages, f.read_folio_count)
                   for f in r.io if f.dev == m.dev and (f.readahead_pages or f.read_folio_count)}
            assert got == truth
    finally:
        col.close()


def test_readahead_counts_through_the_ring(stack, cgroup_prefix, one_cpu):
    _run(stack, cgroup_prefix, 40, 64 * KiB)


def test_more_files_than_the_ring_holds(stack, cgroup_prefix, one_cpu):
    _run(stack, cgroup_prefix, slots.IO_LOG + 120, 8 * KiB)
