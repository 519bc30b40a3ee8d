"""Human units for every face: bytes as KiB/MiB/GiB (powers of 1024), rates as /s.

Pure and tiny on purpose.  Widths are bounded so tables can size columns
once and never cut a number: ``fmt_bytes`` is at most ``BYTES_WIDTH`` cells,
``fmt_rate`` at most ``RATE_WIDTH``, ``fmt_count_rate`` at most
``COUNT_RATE_WIDTH``.  ``None`` (unknown, e.g. a rate with one sample) is "-".
"""
from __future__ import annotations

UNKNOWN = "-"
_BYTE_UNITS = ("KiB", "MiB", "GiB", "TiB", "PiB", "EiB")

BYTES_WIDTH = 8          # "1023 MiB", "12.3 GiB", "1023 B"
RATE_WIDTH = 10          # "1023 MiB/s"
COUNT_RATE_WIDTH = 7     # "1023/s", "12.3k/s", "999M/s"


def _scaled(value: float, base: float, units: tuple[str, ...]) -> tuple[str, str]:
    """(number text, unit) with 3 significant digits at most, value >= base."""
    unit_index = -1
    while abs(value) >= base and unit_index < len(units) - 1:
        value /= base
        unit_index += 1
    # 1 decimal below 100, none above; promote when rounding reaches the base.
    if abs(round(value, 1)) < 100:
        text = f"{value:.1f}"
    elif abs(round(value)) < base or unit_index == len(units) - 1:
        text = f"{value:.0f}"
    else:
        value /= base
        unit_index += 1
        text = f"{value:.1f}"
    return text, units[unit_index]


def fmt_bytes(n: int | float | None) -> str:
    """Bytes for humans: 512 -> "512 B", 12_900_000 -> "12.3 MiB"."""
    if n is None:
        return UNKNOWN
    if abs(round(n)) < 1024:
        return f"{n:.0f} B"
    text, unit = _scaled(float(n), 1024.0, _BYTE_UNITS)
    return f"{text} {unit}"


def fmt_rate(bytes_per_s: float | None) -> str:
    """Byte rate: 1.5 * 2**20 -> "1.5 MiB/s"; None -> "-"."""
    if bytes_per_s is None:
        return UNKNOWN
    return fmt_bytes(bytes_per_s) + "/s"


def fmt_count(n: int | float | None) -> str:
    """Plain counts, SI-scaled: 950 -> "950", 12_300 -> "12.3k"."""
    if n is None:
        return UNKNOWN
    if float(n).is_integer() and abs(n) < 1000:
        return f"{n:.0f}"
    if abs(round(n, 1)) < 100:
        return f"{n:.1f}"
    if abs(round(n)) < 1000:
        return f"{n:.0f}"
    text, unit = _scaled(float(n), 1000.0, ("k", "M", "G", "T", "P", "E"))
    return f"{text}{unit}"


def fmt_count_rate(per_s: float | None) -> str:
    """Event rate: 3.25 -> "3.2/s", 12_300 -> "12.3k/s"; None -> "-"."""
    if per_s is None:
        return UNKNOWN
    if abs(round(per_s, 1)) < 100:
        return f"{per_s:.1f}/s"
    if abs(round(per_s)) < 1000:
        return f"{per_s:.0f}/s"
    return fmt_count(per_s) + "/s"


def fmt_pct(part: float, whole: float) -> str:
    """Share of a whole: (1, 3) -> "33%"; "-" when the whole is 0."""
    if not whole:
        return UNKNOWN
    pct = 100.0 * part / whole
    if 0 < pct < 1:
        return "<1%"
    return f"{pct:.0f}%"


def fmt_seconds(seconds: float | None) -> str:
    """Durations: 0.5 -> "500 ms", 2 -> "2.0 s", 90 -> "1m30s"."""
    if seconds is None:
        return UNKNOWN
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


__all__ = ["fmt_bytes", "fmt_rate", "fmt_count", "fmt_count_rate", "fmt_pct",
           "fmt_seconds", "BYTES_WIDTH", "RATE_WIDTH", "COUNT_RATE_WIDTH", "UNKNOWN"]
