"""erofs_top/heap.py: freed large blocks leave the RSS once glibc's
thresholds are fixed, and stay in it without (each in a fresh process: the
thresholds are process-wide)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from erofs_top import heap

REPO = Path(__file__).resolve().parents[2]

# the shape of a node's first read, then a full pass: a large block freed
# (glibc then raises its thresholds), then 1 MiB blocks made between small
# blocks that stay (> 512 B: malloc's, not pymalloc's), then freed
CHILD = r"""
import sys
sys.path.insert(0, sys.argv[1])
from erofs_top import heap
if sys.argv[2] == "fixed" and not heap.fixed_thresholds():
    raise SystemExit(3)

def rss_kib():
    with open("/proc/self/status") as f:
        return int(next(ln.split()[1] for ln in f if ln.startswith("VmRSS:")))

big = bytearray(16 << 20)
del big
start = rss_kib()
blocks, kept = [], []
for _ in range(64):
    blocks.append(bytearray(1 << 20))       # zero-filled: its pages are touched
    kept.append(bytes(600))
del blocks
if sys.argv[2] == "trim" and not heap.trim():
    raise SystemExit(4)
print(rss_kib() - start)
"""


def _run_child(code: str, mode: str) -> subprocess.CompletedProcess:
    out = subprocess.run([sys.executable, "-c", code, str(REPO), mode],
                         capture_output=True, text=True)
    if out.returncode == 3:
        pytest.skip("no glibc mallopt here")
    assert out.returncode == 0, out.stderr
    return out


def _growth_kib(mode: str) -> int:
    return int(_run_child(CHILD, mode).stdout)


def test_fixed_thresholds_give_freed_blocks_back():
    if heap._glibc() is None:
        pytest.skip("not glibc")
    assert _growth_kib("fixed") < 16 * 1024        # 64 MiB made and freed: given back


def test_default_thresholds_keep_them():
    """The case fixed_thresholds() is for (and what makes the test above able to fail)."""
    if heap._glibc() is None:
        pytest.skip("not glibc")
    assert _growth_kib("default") > 48 * 1024      # the freed 64 MiB stay resident


def test_trim_gives_back_the_holes_inside_the_heap():
    """heap.trim() (malloc_trim) with glibc's default thresholds: the freed
    1 MiB blocks between blocks that stay (the case above) leave the RSS."""
    if heap._glibc() is None:
        pytest.skip("not glibc")
    assert _growth_kib("trim") < 16 * 1024


# a thread's blocks: in an arena of its own by default, in the main one
# once fixed_thresholds() ran (glibc's malloc_stats() names each arena on stderr)
ARENA_CHILD = r"""
import ctypes, sys, threading
sys.path.insert(0, sys.argv[1])
from erofs_top import heap
if sys.argv[2] == "fixed" and not heap.fixed_thresholds():
    raise SystemExit(3)
kept = []
t = threading.Thread(target=lambda: kept.extend(bytes(2000 + i) for i in range(200)))
t.start()
t.join()
heap._glibc().malloc_stats()
"""


def _arenas(mode: str) -> int:
    out = _run_child(ARENA_CHILD, mode)
    return sum(1 for ln in out.stderr.splitlines() if ln.startswith("Arena "))


def test_fixed_thresholds_keep_threads_in_the_main_arena():
    if heap._glibc() is None:
        pytest.skip("not glibc")
    assert _arenas("fixed") == 1


def test_a_thread_has_its_own_arena_by_default():
    """The case ARENAS is for (and what makes the test above able to fail)."""
    if heap._glibc() is None:
        pytest.skip("not glibc")
    assert _arenas("default") >= 2


def test_the_exporter_trims_after_a_refresh_from_scratch(monkeypatch):
    """The exporter trims after its first refresh (the probes' compile and
    the full pass freed the most) and after a full pass, not after a
    steady refresh (a synthetic node, the real Collector and aggregator)."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    from bench_exporter import ChurnSource
    from synthetic_node import SyntheticNode

    from erofs_top.collector import Collector
    from erofs_top.exporter.server import Exporter
    trims = []
    monkeypatch.setattr(heap, "trim", lambda: trims.append(1) or True)
    node = SyntheticNode(400, 8)
    src = ChurnSource(node, 0.05)
    col = Collector(src, mounts=node.mounts, cgroups=node.cgroups, content=node.content)
    ex = Exporter(col, interval=10.0, log=lambda m: None)
    assert ex.refresh_once() and trims == [1]
    assert ex.refresh_once() and ex.refresh_once() and trims == [1]     # steady: kept state
    col.aggregator.__init__(col.aggregator.recheck_slices)                # state dropped
    assert ex.refresh_once() and trims == [1, 1]
