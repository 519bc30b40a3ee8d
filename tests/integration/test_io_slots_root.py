"""The probe's per-CPU io write-combining slots (probes/filemap.c io_slots,
erofs_top/kernel/slots.py) on real BPF, a real EROFS mount and real cgroups.

Everything runs pinned to one CPU, so the readahead and eviction counts of
a file sit in one slot of that CPU from the insertion to the eviction (one
slot run) and only the flush before a read puts them into `io`.  Ground
truth: the pages of each file resident right before it is evicted
(cachestat/mincore), which must come back as evicted_pages and
inserted_pages of the cgroup that read it.  One test has more files than
slots, so part of the counts reach `io` from the probe (a slot taken by
another key) and the rest from the flush.
"""
from __future__ import annotations

import os
import sys

import pytest

from erofs_top import pagecache
from erofs_top.kernel import maps, slots
from erofs_top.workload import drop_file_cache

from readers import KiB, READ_ALL, mount_files

pytestmark = pytest.mark.root


def _read_then_evict(cgroup, paths, expect: dict) -> None:
    """Insert (a reader in cgroup) then evict (here) every file, adding the
    pages resident right before the eviction to expect[(ino, cgroup id)]."""
    cgroup.run([sys.executable, "-S", "-c", READ_ALL, *map(str, paths)])
    for p in paths:
        key = (os.stat(p).st_ino, cgroup.id)
        expect[key] = expect.get(key, 0) + pagecache.file_resident_pages(p)
        drop_file_cache(p)


def _io_map(source, dev) -> dict:
    """(ino, cgroup id) -> IO_VAL tuple of our mount, read from `io` as it is."""
    pairs, _ = maps.io_items(source.bpf[b"io"], None)
    return {(k[1], k[2]): v for k, v in pairs if k[0] == dev}


def _check(r, dev, expect: dict) -> None:
    rows = {(f.ino, f.cgroup_id): f for f in r.io if f.dev == dev}
    for key, pages in expect.items():
        assert pages > 0, key
        f = rows[key]
        assert (f.evicted_pages, f.inserted_pages) == (pages, pages), key
        assert f.readahead_pages + f.read_folio_count > 0, key
    assert not [fk for fk in r.chunks_by_file if fk[0] == dev]     # nothing resident


def _collector():
    from erofs_top.tiers import open_collector
    return open_collector(seed=False, sharing=False)


def _run(stack, cgroup_prefix, n_files: int, size: int) -> None:
    m, paths = mount_files(stack, "slots", n_files, size, 7)
    a, b = stack.cgroup(f"{cgroup_prefix}/a"), stack.cgroup(f"{cgroup_prefix}/b")
    col = _collector()
    try:
        src = col.source
        src.read()
        expect: dict = {}
        _read_then_evict(a, paths, expect)
        if src._flusher is not None:        # counts wait in the slots until the flush
            before = _io_map(src, m.dev)
            assert sum(v[0] for v in before.values()) < sum(expect.values())
        r = src.read()
        assert src._flusher is None or src._flusher.left == []
        _check(r, m.dev, expect)
        _read_then_evict(b, paths, expect)  # entries exist; another cgroup
        _read_then_evict(a, paths[::2], expect)
        r = src.read()
        _check(r, m.dev, expect)
        src.full_read_every = 1             # a full read says the same
        _check(src.read(), m.dev, expect)
    finally:
        col.close()


def test_insert_then_evict_in_one_slot_run(stack, cgroup_prefix, one_cpu):
    _run(stack, cgroup_prefix, 12, 96 * KiB)


def test_more_files_than_slots(stack, cgroup_prefix, one_cpu):
    _run(stack, cgroup_prefix, slots.IO_SLOTS + 150, 8 * KiB)
