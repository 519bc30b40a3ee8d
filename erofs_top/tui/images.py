"""Images view: one row per EROFS mount (superblock) / image."""
from __future__ import annotations

from typing import Any, Hashable

from .history import MOUNTS
from ..model import Mount
from ..units import BYTES_WIDTH, fmt_bytes
from .common import ViewContext, bytes_total, count_total, sparkline
from .table import Column, RowTable

KIND = MOUNTS
TITLE = "Images"
TREND_WIDTH = 12
SORT_KEYS = ("mountpoint", "source", "backing", "share", "resident", "backing_resident",
             "duplicate", "containers")


def backing_text(m: Mount) -> str:
    return m.backing + ("+dio" if m.directio else "")


def share_text(m: Mount) -> str:
    return "on" if m.inode_share else "off"


def match_text(key: Hashable, m: Mount) -> str:
    return " ".join((m.mountpoint, m.source, m.backing_file, m.dev, m.volume_name, m.image_id,
                     getattr(m, "layer_digest", ""), " ".join(getattr(m, "images", ()))))


def columns(ctx: ViewContext) -> list[Column]:
    h = ctx.history

    def mp_text(key, m):
        gone = m.gone or h.is_gone(KIND, key)
        return m.mountpoint + (" (gone)" if gone else "")

    def trend(key, m):
        s = h.series(KIND, key)
        return sparkline(s.resident_bytes.values(), TREND_WIDTH) if s else ""

    return [
        Column("mountpoint", "MOUNT POINT", mp_text, lambda k, m: m.mountpoint, width=14,
               align="left", flex=2, max_width=60, shorten="path", descending=False,
               total=count_total),
        Column("source", "SOURCE", lambda k, m: m.backing_file or m.source,
               lambda k, m: m.backing_file or m.source, width=12, align="left", flex=1,
               max_width=60, shorten="path", priority=3, descending=False),
        Column("backing", "BACKING", lambda k, m: backing_text(m), lambda k, m: backing_text(m),
               width=9, align="left", priority=4, descending=False),
        Column("share", "SHARE", lambda k, m: share_text(m), lambda k, m: m.inode_share,
               width=6, align="left", priority=2),
        Column("resident", "RESIDENT", lambda k, m: fmt_bytes(m.resident_bytes),
               lambda k, m: m.resident_bytes, attr="resident_bytes", width=BYTES_WIDTH + 1,
               total=bytes_total("resident_bytes")),
        Column("backing_resident", "BACKING$", lambda k, m: fmt_bytes(m.backing_resident_bytes)
               if m.backing in ("file", "loop") else "-",
               lambda k, m: m.backing_resident_bytes, attr="backing_resident_bytes", width=BYTES_WIDTH + 1, priority=1,
               total=bytes_total("backing_resident_bytes")),
        Column("duplicate", "DUPLICATE", lambda k, m: fmt_bytes(m.duplicate_bytes),
               lambda k, m: m.duplicate_bytes, attr="duplicate_bytes", width=BYTES_WIDTH + 2,
               total=bytes_total("duplicate_bytes")),
        Column("containers", "CTRS", lambda k, m: str(m.containers_count),
               lambda k, m: m.containers_count, attr="containers_count", width=5, priority=1),
        Column("trend", "RESIDENT TREND", trend, None, width=TREND_WIDTH + 2, align="left",
               priority=5),
    ]


def make_table(ctx: ViewContext, sort_key: str | None = None) -> RowTable:
    return RowTable(columns(ctx), sort_key=sort_key or "resident", match=match_text,
                    empty_text="no EROFS mounts on this node", id="table-images")


def rows(ctx: ViewContext) -> tuple[dict[Hashable, Any], dict[Hashable, float]]:
    h = ctx.history
    out = dict(h.rows(KIND))
    fades = {}
    for key, (m, _since) in h.gone_rows(KIND).items():
        out[key] = m
        fades[key] = max(h.fade(KIND, key), 1e-6)
    return out, fades
