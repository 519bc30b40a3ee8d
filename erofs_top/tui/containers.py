"""Containers view: one row per container cgroup (the default view)."""
from __future__ import annotations

from typing import Any, Hashable

from .history import CONTAINERS, Rates
from ..units import (BYTES_WIDTH, COUNT_RATE_WIDTH, RATE_WIDTH, UNKNOWN, fmt_bytes,
                     fmt_count_rate, fmt_rate)
from .common import ViewContext, bytes_total, count_total, container_match_text, container_name, sparkline
from .table import Column, RowTable

KIND = CONTAINERS
TITLE = "Containers"
TREND_WIDTH = 12
SORT_KEYS = ("name", "runtime", "resident", "duplicate", "shared", "fair",
             "insert", "evict", "readahead", "misses")


def columns(ctx: ViewContext) -> list[Column]:
    h = ctx.history

    def name_text(key: Hashable, c: Any) -> str:
        return container_name(c) + (" (gone)" if h.is_gone(KIND, key) else "")

    def full_only(attr: str):
        # shared / fair need the full tier; elsewhere they are not measured, not zero.
        def text(key, c):
            return fmt_bytes(getattr(c, attr)) if ctx.full else UNKNOWN

        def value(key, c):
            return getattr(c, attr) if ctx.full else None

        def total(keys, rows):
            return bytes_total(attr)(keys, rows) if ctx.full else UNKNOWN
        return text, value, total

    def rate(field: str, fmt):
        index = Rates._fields.index(field)

        def value(key, c):
            if not ctx.live_rates:
                return None
            return h.rates(KIND, key)[index]

        def text(key, c):
            return fmt(value(key, c))

        def total(keys, rows):
            if not ctx.live_rates:
                return UNKNOWN
            known = [r[index] for r in map(h.all_rates().get, keys)
                     if r is not None and r[index] is not None]
            return fmt(sum(known)) if known else UNKNOWN
        return text, value, total

    def trend(key, c):
        s = h.series(KIND, key)
        return sparkline(s.resident_bytes.values(), TREND_WIDTH) if s else ""

    shared_t, shared_v, shared_tot = full_only("shared_bytes")
    fair_t, fair_v, fair_tot = full_only("fair_bytes")
    ins = rate("insert_bytes_per_s", fmt_rate)
    ev = rate("evict_bytes_per_s", fmt_rate)
    ra = rate("readahead_bytes_per_s", fmt_rate)
    miss = rate("read_folio_per_s", fmt_count_rate)
    return [
        Column("name", "CONTAINER", name_text, lambda k, c: container_name(c), width=24,
               align="left", flex=1, max_width=64, shorten="path", descending=False,
               total=count_total),
        Column("runtime", "RUNTIME", lambda k, c: c.runtime or "-", lambda k, c: c.runtime,
               width=10, align="left", priority=7, descending=False),
        Column("resident", "RESIDENT", lambda k, c: fmt_bytes(c.resident_bytes),
               lambda k, c: c.resident_bytes, attr="resident_bytes", width=BYTES_WIDTH + 1,
               total=bytes_total("resident_bytes")),
        Column("duplicate", "DUPLICATE", lambda k, c: fmt_bytes(c.duplicate_bytes),
               lambda k, c: c.duplicate_bytes, attr="duplicate_bytes", width=BYTES_WIDTH + 2,
               total=bytes_total("duplicate_bytes")),
        Column("shared", "SHARED", shared_t, shared_v, width=BYTES_WIDTH + 1, priority=5,
               total=shared_tot, available=lambda: ctx.full),
        Column("fair", "FAIR", fair_t, fair_v, width=BYTES_WIDTH + 1, priority=6, total=fair_tot,
               available=lambda: ctx.full),
        Column("insert", "INSERT/s", ins[0], ins[1], width=RATE_WIDTH, priority=1, total=ins[2],
               available=lambda: ctx.live_rates),
        Column("evict", "EVICT/s", ev[0], ev[1], width=RATE_WIDTH, priority=2, total=ev[2],
               available=lambda: ctx.live_rates),
        Column("readahead", "RDAHEAD/s", ra[0], ra[1], width=RATE_WIDTH, priority=4,
               total=ra[2], available=lambda: ctx.live_rates),
        Column("misses", "MISSES/s", miss[0], miss[1], width=COUNT_RATE_WIDTH + 2, priority=3,
               total=miss[2], available=lambda: ctx.live_rates),
        Column("trend", "RESIDENT TREND", trend, None, width=TREND_WIDTH + 2, align="left",
               priority=3),
    ]


def make_table(ctx: ViewContext, sort_key: str | None = None) -> RowTable:
    return RowTable(columns(ctx), sort_key=sort_key or "resident", match=container_match_text,
                    empty_text="no container has EROFS pages in the page cache (yet)",
                    id="table-containers")


def rows(ctx: ViewContext) -> tuple[dict[Hashable, Any], dict[Hashable, float]]:
    h = ctx.history
    out = dict(h.rows(KIND))
    fades = {}
    for key, (c, _since) in h.gone_rows(KIND).items():
        out[key] = c
        fades[key] = max(h.fade(KIND, key), 1e-6)
    return out, fades
