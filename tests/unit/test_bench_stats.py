"""The cold-read benchmark's statistics (benchmarks/benchlib.median_ci, the
paired ratios and the verdict of bench_coldread): pure functions, no root."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_coldread  # noqa: E402
import benchlib  # noqa: E402


@pytest.mark.parametrize("n, k, coverage", [
    # k of the order-statistics interval [x_(k), x_(n+1-k)] for the median at
    # >= 95 % (tables, e.g. Conover, Practical Nonparametric Statistics) and
    # 1 - 2 P(Bin(n, 1/2) < k) written out
    (6, 1, 1 - 2 * 1 / 64),
    (10, 2, 1 - 2 * 11 / 1024),
    (20, 6, 1 - 2 * 21700 / 2 ** 20),
    (40, 14, 1 - 2 * sum(math.comb(40, i) for i in range(14)) / 2 ** 40),
])
def test_median_ci_order_statistics(n, k, coverage):
    xs = [10.0 * i for i in range(n, 0, -1)]          # given unsorted
    med, lo, hi, cov = benchlib.median_ci(xs)
    assert (lo, hi) == (10.0 * k, 10.0 * (n + 1 - k))
    assert med == pytest.approx(10.0 * (n + 1) / 2)
    assert cov == pytest.approx(coverage)


def test_median_ci_few_values_says_its_coverage():
    med, lo, hi, cov = benchlib.median_ci([3.0, 1.0, 2.0])
    assert (med, lo, hi) == (2.0, 1.0, 3.0)
    assert cov == pytest.approx(0.75)
    with pytest.raises(ValueError):
        benchlib.median_ci([])


def test_paired_ratios_pair_rounds_not_sorted_values():
    runs = {"without": [{"cpu": 2.0}, {"cpu": 4.0}], "with": [{"cpu": 3.0}, {"cpu": 4.4}]}
    assert bench_coldread.paired(runs, "cpu", "with") == pytest.approx([1.5, 1.1])


@pytest.mark.parametrize("lo, hi, cov, word", [
    (0.99, 1.019, 0.96, "met"),
    (1.021, 1.05, 0.96, "missed"),
    (1.01, 1.03, 0.96, "unresolved"),
    (0.99, 1.01, 0.75, "no verdict"),
])
def test_verdict(lo, hi, cov, word):
    assert bench_coldread.verdict(lo, hi, cov).startswith(word)


def test_stats_fields_add_program_and_both_flushes():
    delta = {"mm_filemap_add_to_page_cache": (3_500_000, 9_795),
             "mm_filemap_delete_from_page_cache": (700, 7),
             "flush_io_slots": (12_000, 32), "flush_io_log": (3_000, 2)}
    assert bench_coldread.stats_fields(delta) == {
        "add_ns": 3_500_000.0, "add_runs": 9_795.0, "flush_ns": 15_000.0, "flush_runs": 34.0}
    assert bench_coldread.stats_fields({})["add_runs"] == 0.0


def test_chunk_ablations_apply_to_the_probe():
    """Every ablation of make_chunk_ablations matches probes/filemap.c as it is
    now (each replacement once) and changes it, except the identical copy."""
    import make_chunk_ablations as m
    src = (m.PROBES / "filemap.c").read_text()
    for name in m.VARIANTS:
        out = m.make(name, src)
        assert (out == src) == (name == "same"), name
    assert "chunks, 2048, 0);" in m.make("nocreate2k", src)
    assert "chunks.insert" not in m.make("nocreate", src)
