"""benchmarks/bench_verifier.py loads a tree as its own collector would:
the gather programs' -D flags from that tree's gather.py (no root)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_verifier  # noqa: E402


def _tree(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "erofs_top/kernel"
    d.mkdir(parents=True)
    (d / "gather.py").write_text(text)
    return tmp_path


def test_a_tree_gets_its_own_batch_and_max(tmp_path):
    tree = _tree(tmp_path, "x = 1\nGATHER_MAX = 4096       # keys a round\n"
                           "GATHER_BATCH = 256      # keys a run\n")
    assert bench_verifier.tree_gather_cflags(tree) == ["-DGATHER_MAX=4096", "-DGATHER_BATCH=256"]


def test_a_tree_without_gather_py_gets_this_process_flags(tmp_path):
    assert bench_verifier.tree_gather_cflags(tmp_path) == ["-DGATHER_MAX=8192",
                                                          "-DGATHER_BATCH=128"]
