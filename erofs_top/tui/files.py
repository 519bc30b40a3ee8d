"""Files view: top files by resident or duplicate bytes, with ELF build-id and sections."""
from __future__ import annotations

from typing import Any, Hashable

from .history import FILES
from ..model import File
from ..units import BYTES_WIDTH, UNKNOWN, fmt_bytes
from .common import ViewContext, bytes_total, count_total
from .table import Column, RowTable

KIND = FILES
TITLE = "Files"
SORT_KEYS = ("path", "resident", "duplicate", "copies", "content", "size")
PENDING = "…"


def file_name(key: Hashable, f: File) -> str:
    return f.path or f"ino {f.ino} on {f.dev} (unnamed)"


def match_text(key: Hashable, f: File) -> str:
    return f"{file_name(key, f)} {f.content_id}"


def columns(ctx: ViewContext) -> list[Column]:
    h = ctx.history

    def path_text(key, f):
        return file_name(key, f) + (" (gone)" if h.is_gone(KIND, key) else "")

    def elf(f: File):
        if ctx.elf is None or not f.path:
            return None
        return ctx.elf.get(f.path, f.size, f.resident_bytes)

    def build_id_text(key, f):
        info = elf(f)
        if info is None:
            return PENDING if f.path and ctx.elf is not None else UNKNOWN
        return info.build_id[:12] if info.build_id else UNKNOWN

    def sections_text(key, f):
        info = elf(f)
        if info is None:
            return PENDING if f.path and ctx.elf is not None else UNKNOWN
        return info.summary()

    def shared_text(key, f):
        if not ctx.full:
            return UNKNOWN
        return "yes" if f.shared else "no"

    return [
        Column("path", "FILE", path_text, lambda k, f: file_name(k, f), width=20, align="left",
               flex=2, max_width=100, shorten="path", descending=False,
               total=count_total),
        Column("resident", "RESIDENT", lambda k, f: fmt_bytes(f.resident_bytes),
               lambda k, f: f.resident_bytes, attr="resident_bytes", width=BYTES_WIDTH + 1,
               total=bytes_total("resident_bytes")),
        Column("duplicate", "DUPLICATE", lambda k, f: fmt_bytes(f.duplicate_bytes),
               lambda k, f: f.duplicate_bytes, attr="duplicate_bytes", width=BYTES_WIDTH + 2,
               total=bytes_total("duplicate_bytes")),
        Column("copies", "COPIES", lambda k, f: f"{f.copies}x", lambda k, f: f.copies, attr="copies", width=7),
        Column("size", "SIZE", lambda k, f: fmt_bytes(f.size), lambda k, f: f.size,
               attr="size", width=BYTES_WIDTH + 1, priority=4),
        Column("content", "CONTENT", lambda k, f: f.content_id[:8] or UNKNOWN,
               lambda k, f: f.content_id, width=9, align="left", priority=2, descending=False),
        Column("shared", "SHARED", shared_text, None, width=6, align="left", priority=5,
               available=lambda: ctx.full),
        Column("build_id", "BUILD-ID", build_id_text, None, width=12, align="left", priority=3),
        Column("sections", "RESIDENT IN SECTIONS", sections_text, None, width=24, align="left",
               flex=2, max_width=60, priority=1),
    ]


def make_table(ctx: ViewContext, sort_key: str | None = None) -> RowTable:
    return RowTable(columns(ctx), sort_key=sort_key or "resident", match=match_text,
                    empty_text="no EROFS file has resident pages", id="table-files")


def rows(ctx: ViewContext) -> tuple[dict[Hashable, Any], dict[Hashable, float]]:
    h = ctx.history
    gone = h.gone_rows(KIND)
    if not gone:
        return h.rows(KIND), {}
    out = dict(h.rows(KIND))
    fades = {}
    for key, (f, _since) in gone.items():
        out[key] = f
        fades[key] = max(h.fade(KIND, key), 1e-6)
    return out, fades


def elf_wanted(ctx: ViewContext, table: RowTable) -> list[tuple[str, int, int]]:
    """(path, size, resident) of the files on screen (and the selected one) lacking ELF info."""
    if ctx.elf is None:
        return []
    keys = list(table.visible_keys())
    if table.cursor_key is not None:
        keys.append(table.cursor_key)
    out = []
    for key in keys:
        f = table.rows.get(key)
        if f is None or not f.path:
            continue
        if ctx.elf.get(f.path, f.size, f.resident_bytes) is None:
            out.append((f.path, f.size, f.resident_bytes))
    return out
