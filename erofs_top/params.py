"""Number options, validated before anything runs: one click ParamType for all.

``Number`` rejects NaN, infinity and anything outside [min, max] as a usage
error (exit 2, one line): click calls it while parsing the command line, so
no BPF is compiled and nothing is mounted before a bad value is refused.
Every number option has a finite upper bound too (``--duration 1e308`` would
overflow time.sleep, ``--interval inf`` would stop a refresh thread).
"""
from __future__ import annotations

import math

import click

DAY_S = 86400.0
YEAR_S = 365 * DAY_S


class Number(click.ParamType):
    """A finite float (or int) within [min, max]; open bounds with min_open/max_open."""

    def __init__(self, kind: type = float, min: float | None = None, max: float | None = None,
                 *, min_open: bool = False, max_open: bool = False, unit: str = ""):
        self.kind = kind
        self.min, self.max = min, max
        self.min_open, self.max_open = min_open, max_open
        self.unit = unit
        self.name = "INTEGER" if kind is int else "SECONDS" if unit == "s" else "NUMBER"

    def _range(self) -> str:
        u = f" {self.unit}" if self.unit else ""
        lo = "" if self.min is None else f"{'>' if self.min_open else '>='} {self.min:g}{u}"
        hi = "" if self.max is None else f"{'<' if self.max_open else '<='} {self.max:g}{u}"
        return " and ".join(p for p in (lo, hi) if p)

    def convert(self, value, param, ctx):
        if isinstance(value, bool):
            self.fail(f"{value!r} is not a number", param, ctx)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            v = value
        else:
            text = str(value).strip()
            try:
                v = int(text, 10) if self.kind is int else float(text)
            except ValueError:
                what = "an integer" if self.kind is int else "a number"
                self.fail(f"{value!r} is not {what}", param, ctx)
        if isinstance(v, float) and not math.isfinite(v):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        if self.kind is int and isinstance(v, float):
            if v != int(v):
                self.fail(f"{value!r} is not an integer", param, ctx)
            v = int(v)
        lo_bad = self.min is not None and (v <= self.min if self.min_open else v < self.min)
        hi_bad = self.max is not None and (v >= self.max if self.max_open else v > self.max)
        if lo_bad or hi_bad:
            self.fail(f"{value} is out of range (must be {self._range()})", param, ctx)
        return self.kind(v)

    def __repr__(self) -> str:
        return f"Number({self.kind.__name__}, {self._range()})"


def seconds(min: float = 0.0, max: float = YEAR_S, **kw) -> Number:
    """A duration or interval in seconds (finite, at most a year by default)."""
    return Number(float, min, max, unit="s", **kw)


def count(min: int = 0, max: int = 1_000_000) -> Number:
    return Number(int, min, max)
