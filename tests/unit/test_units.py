"""erofs_top.units: human units, bounded widths."""
import pytest
from hypothesis import given, strategies as st

from erofs_top.units import (BYTES_WIDTH, COUNT_RATE_WIDTH, RATE_WIDTH, fmt_bytes, fmt_count,
                             fmt_count_rate, fmt_pct, fmt_rate, fmt_seconds)

KiB, MiB, GiB = 1 << 10, 1 << 20, 1 << 30


@pytest.mark.parametrize("n, text", [
    (0, "0 B"), (1, "1 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (99.94 * KiB, "99.9 KiB"), (99.96 * KiB, "100 KiB"), (1023 * KiB, "1023 KiB"),
    (1023.6 * KiB, "1.0 MiB"), (int(12.3 * MiB), "12.3 MiB"), (5 * GiB, "5.0 GiB"),
    (3 << 40, "3.0 TiB"), (None, "-"),
])
def test_fmt_bytes(n, text):
    assert fmt_bytes(n) == text


def test_fmt_rate_and_counts():
    assert fmt_rate(1.5 * MiB) == "1.5 MiB/s"
    assert fmt_rate(0) == "0 B/s"
    assert fmt_rate(None) == "-"
    assert fmt_count_rate(3.25) == "3.2/s"
    assert fmt_count_rate(999.6) == "1.0k/s"
    assert fmt_count_rate(12_300) == "12.3k/s"
    assert fmt_count_rate(None) == "-"
    assert fmt_count(950) == "950"
    assert fmt_count(12_300) == "12.3k"
    assert fmt_count(2.5) == "2.5"


def test_fmt_pct_and_seconds():
    assert fmt_pct(1, 3) == "33%"
    assert fmt_pct(1, 1000) == "<1%"
    assert fmt_pct(5, 0) == "-"
    assert fmt_seconds(0.5) == "500 ms"
    assert fmt_seconds(2) == "2.0 s"
    assert fmt_seconds(90) == "1m30s"
    assert fmt_seconds(7260) == "2h01m"


@given(st.integers(min_value=0, max_value=(1 << 70)))
def test_bytes_width_bound(n):
    text = fmt_bytes(n)
    assert len(text) <= BYTES_WIDTH, text
    assert text.endswith("B")


@given(st.floats(min_value=0, max_value=float(1 << 69), allow_nan=False))
def test_rate_width_bounds(x):
    assert len(fmt_rate(x)) <= RATE_WIDTH
    if x < 1e15:
        assert len(fmt_count_rate(x)) <= COUNT_RATE_WIDTH


@given(st.integers(min_value=1024, max_value=1 << 60))
def test_bytes_value_is_close(n):
    # The shown number, scaled back, is within rounding of the real value (3 digits).
    num, unit = fmt_bytes(n).split()
    scale = {"KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": 1 << 40, "PiB": 1 << 50,
             "EiB": 1 << 60}[unit]
    assert abs(float(num) * scale - n) <= 0.006 * n + 0.05 * scale
