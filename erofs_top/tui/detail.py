"""Detail pane (Enter): a container's mounts, top files and charts; an image's
containers; a file's ELF sections; an advised action's why and commands.
Live: rebuilt on every refresh."""
from __future__ import annotations

import textwrap
from typing import Hashable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Static

from .history import CONTAINERS, FILES, MOUNTS
from ..model import Container, File, Model, Mount
from ..units import fmt_bytes, fmt_count_rate, fmt_rate, UNKNOWN
from .common import ViewContext, chart, container_name
from .table import shorten
from ..names import display
from .header import pack
from .images import backing_text, share_text
from .advice import KIND as ADVICE, AdviceRow, current as current_advice

TOP_FILES = 10


def _kv(width: int, pairs: list[tuple[str, str]]) -> str:
    """'key value' items packed into lines of the screen width (never split mid-item)."""
    return "\n".join(pack([f"{k} {display(v)}" for k, v in pairs if v != ""], width, sep="   "))


def _para(text: str, width: int, indent: str = "  ") -> list[str]:
    return textwrap.wrap(text, width, initial_indent=indent, subsequent_indent=indent)


def _chart_block(title: str, values: list[int], width: int, height: int) -> list[str]:
    if not values:
        return [f"{title}: no samples yet"]
    top = max(values)
    lines = [f"{title} (last {len(values[-width:])} refreshes, top {fmt_bytes(top)}, "
             f"now {fmt_bytes(values[-1])})"]
    lines += ["│" + line for line in chart(values, width, height)]
    return lines


def _files_table(files: list[File], width: int) -> list[str]:
    if not files:
        return ["  (none in the Model's file list)"]
    w = max(20, width - 34)
    out = [f"  {'FILE':<{w}} {'RESIDENT':>9} {'DUPLICATE':>10} {'COPIES':>6}"]
    for f in files:
        path = display(f.path) or f"ino {f.ino} (unnamed)"
        if len(path) > w:
            path = shorten(path, w, "path")
        out.append(f"  {path:<{w}} {fmt_bytes(f.resident_bytes):>9} "
                   f"{fmt_bytes(f.duplicate_bytes):>10} {f.copies:>5}x")
    return out


def container_lines(ctx: ViewContext, key: Hashable, c: Container, width: int) -> list[str]:
    model: Model = ctx.model
    h = ctx.history
    r = h.rates(CONTAINERS, key)
    gone = " (gone)" if h.is_gone(CONTAINERS, key) else ""
    lines = [f"Container {container_name(c)}{gone}",
             _kv(width, [("cgroup", c.cgroup), ("id", str(c.cgroup_id)), ("runtime", c.runtime or "-")]),
             ]
    if c.container_id or c.pod_uid:
        lines.append(_kv(width, [("container", c.container_id), ("pod", c.pod_uid)]))
    if c.image or c.namespace:
        lines.append(_kv(width, [("namespace", c.namespace or "-"), ("image", c.image or "-"),
                                 ("digest", c.image_digest[:19] or "-")]))
    lines.append(_kv(width, [
        ("resident", fmt_bytes(c.resident_bytes)), ("duplicate", fmt_bytes(c.duplicate_bytes)),
        ("shared", fmt_bytes(c.shared_bytes) if ctx.full else UNKNOWN),
        ("fair", fmt_bytes(c.fair_bytes) if ctx.full else UNKNOWN),
        ("seeded", fmt_bytes(c.seeded_bytes)), ("files", str(c.files_count))]))
    if ctx.live_rates:
        lines.append(_kv(width, [("insert", fmt_rate(r.insert_bytes_per_s)),
                          ("evict", fmt_rate(r.evict_bytes_per_s)),
                          ("readahead", fmt_rate(r.readahead_bytes_per_s)),
                          ("misses", fmt_count_rate(r.read_folio_per_s))]))
    lines.append("")
    lines.append(f"Mounts it holds pages of ({len(c.mounts)}):")
    mounts = {m.dev: m for m in model.mounts} if model else {}
    for dev in c.mounts:
        m = mounts.get(dev)
        if m is None:
            lines.append(f"  {dev}  (no longer mounted)")
        else:
            lines.append(f"  {dev:<8} {display(m.mountpoint)}  {backing_text(m)}, inode_share "
                         f"{share_text(m)}, image resident {fmt_bytes(m.resident_bytes)}")
    mine = [f for f in (model.files if model else []) if c.cgroup_id in f.cgroups]
    mine.sort(key=lambda f: -f.resident_bytes)
    lines.append("")
    lines.append(f"Top files it inserted ({min(len(mine), TOP_FILES)} of {len(mine)} listed):")
    lines += _files_table(mine[:TOP_FILES], width)
    s = h.series(CONTAINERS, key)
    cw = max(10, width - 4)
    lines.append("")
    lines += _chart_block("Resident", s.resident_bytes.values() if s else [], cw, 6)
    lines += _chart_block("Duplicate", s.duplicate_bytes.values() if s else [], cw, 4)
    return lines


def mount_lines(ctx: ViewContext, key: Hashable, m: Mount, width: int) -> list[str]:
    model: Model = ctx.model
    h = ctx.history
    gone = " (gone)" if m.gone or h.is_gone(MOUNTS, key) else ""
    lines = [f"Image at {display(m.mountpoint)}{gone}",
             _kv(width, [("dev", m.dev), ("source", m.source), ("backing", backing_text(m)),
                  ("inode_share", share_text(m))]),
             _kv(width, [("image file", m.backing_file), ("image id", m.image_id[:16]),
                  ("uuid", m.uuid), ("volume", m.volume_name)]),
             _kv(width, [("compressed", "yes" if m.compressed else "no"),
                  ("fingerprints", "yes" if m.ishare_xattrs else "no")]),
             *([_kv(width, [("layer", m.layer_digest or "-"), ("snapshot", m.snapshot_id or "-"),
                            ("images", ", ".join(m.images) or "-")])]
               if m.layer_digest or m.snapshot_id else []),
             _kv(width, [("resident", fmt_bytes(m.resident_bytes)),
                  ("duplicate", fmt_bytes(m.duplicate_bytes)),
                  ("backing file resident", fmt_bytes(m.backing_resident_bytes))])]
    if m.backing in ("file", "loop") and m.backing_resident_bytes and not m.directio:
        lines += _para("the image file is cached too (double caching); "
                       "mount with directio to avoid it", width)
    names = {c.cgroup_id: container_name(c) for c in (model.containers if model else [])}
    lines.append("")
    lines.append(f"Containers holding its pages ({len(m.holders)}):")
    name_w = max(16, width - 44)
    for hd in m.holders:
        name = names.get(hd.cgroup_id, f"cgroup #{hd.cgroup_id}")
        if len(name) > name_w:
            name = shorten(name, name_w, "path")
        lines.append(f"  {name:<{name_w}} resident {fmt_bytes(hd.resident_bytes):>9}"
                     f"  duplicate {fmt_bytes(hd.duplicate_bytes):>9}")
    if not m.holders:
        lines.append("  (none)")
    files = [f for f in (model.files if model else []) if f.dev == m.dev]
    files.sort(key=lambda f: -f.resident_bytes)
    lines.append("")
    lines.append(f"Top files ({min(len(files), TOP_FILES)} of {len(files)} listed):")
    lines += _files_table(files[:TOP_FILES], width)
    s = h.series(MOUNTS, key)
    lines.append("")
    lines += _chart_block("Resident", s.resident_bytes.values() if s else [], max(10, width - 4), 6)
    return lines


def file_lines(ctx: ViewContext, key: Hashable, f: File, width: int) -> list[str]:
    model: Model = ctx.model
    names = {c.cgroup_id: container_name(c) for c in (model.containers if model else [])}
    gone = " (gone)" if ctx.history.is_gone(FILES, key) else ""
    lines = [f"File {display(f.path) or '(unnamed)'}{gone}",
             _kv(width, [("dev", f.dev), ("ino", str(f.ino)), ("size", fmt_bytes(f.size)),
                  ("content", f.content_id or "-"), ("copies", f"{f.copies}x"),
                  ("shared", ("yes" if f.shared else "no") if ctx.full else UNKNOWN)]),
             _kv(width, [("resident", fmt_bytes(f.resident_bytes)),
                  ("duplicate", fmt_bytes(f.duplicate_bytes))]),
             "", "Cgroups that inserted its pages:"]
    lines += [f"  {names.get(cg, f'cgroup #{cg}')}" for cg in f.cgroups] or ["  (none known)"]
    lines.append("")
    info = ctx.elf.get(f.path, f.size, f.resident_bytes) if ctx.elf and f.path else None
    if info is None:
        if not f.path:
            lines.append("ELF: the file has no path to read")
        elif ctx.elf is None:
            lines.append("ELF: not read (disabled)")
        else:
            lines.append("ELF: reading…")
    elif info.error:
        lines.append(f"ELF: {info.error}")
    else:
        lines.append(f"ELF build-id {info.build_id or '(none)'}")
        lines.append(f"Resident pages by section (mincore now: {fmt_bytes(info.resident_bytes)}):")
        for name, b in info.sections:
            lines.append(f"  {name:<24} {fmt_bytes(b):>9}")
    return lines


def shell_lines(command: str, width: int) -> list[str]:
    """A command in lines of at most width cells that a shell reads back as the same
    command: each line but the last ends in a backslash (line continuation), after a
    space where one is near, else mid-word (bash drops backslash-newline there too)."""
    width = max(8, width)
    out: list[str] = []
    rest = command
    while len(rest) > width:
        cut = rest.rfind(" ", 0, width - 1)
        if cut > 0:
            out.append(rest[:cut] + " \\")
            rest = rest[cut + 1:]
        else:
            out.append(rest[:width - 1] + "\\")
            rest = rest[width - 1:]
    out.append(rest)
    return out


def advice_lines(ctx: ViewContext, key: Hashable, r: AdviceRow, width: int) -> list[str]:
    a = r.action
    model: Model = ctx.model
    lines = [f"Advice #{r.rank}: {a.kind}, saves {fmt_bytes(a.saves_bytes)} of page cache now"]
    if a.image or a.image_id:
        lines.append(_kv(width, [("image", a.image), ("image id", a.image_id[:16])]))
    lines += ["", "Why:", *_para(display(a.why), width), ""]
    lines.append(f"Mounts it touches ({len(a.mounts)}):")
    by_mp = {m.mountpoint: m for m in (model.mounts if model else [])}
    for mp in a.mounts:
        m = by_mp.get(mp)
        if m is None:
            lines.append(f"  {display(mp)}  (no longer mounted)")
            continue
        lines.append(f"  {display(mp)}  {m.dev} {backing_text(m)}, inode_share "
                     f"{share_text(m)}, fingerprints {'yes' if m.ishare_xattrs else 'no'}")
        lines.append(f"    resident {fmt_bytes(m.resident_bytes)}, duplicate "
                     f"{fmt_bytes(m.duplicate_bytes)}")
    lines += ["", "Commands (as root; a line ending in \\ goes on to the next):"]
    for command in a.commands:
        lines += shell_lines(display(command), width - 2) + [""]
    lines += _para("The saving is erofs-top advise's: page cache the kernel charges now "
                   "(docs/sharing.md).", width, indent="")
    return lines


class DetailScreen(Screen):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "back"),
        Binding("enter", "app.pop_screen", "back", show=False),
        Binding("backspace", "app.pop_screen", "back", show=False),
    ]

    def __init__(self, ctx: ViewContext, kind: str, key: Hashable):
        super().__init__()
        self.ctx, self.kind, self.key = ctx, kind, key

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-scroll"):
            yield Static(id="detail-body")
        yield Static("Esc back   q quit", id="detail-keys")

    def on_mount(self) -> None:
        self.update_view()

    def on_resize(self) -> None:
        self.update_view()

    def _row(self):
        if self.kind == ADVICE:
            return current_advice(self.ctx).get(self.key)
        h = self.ctx.history
        row = h.rows(self.kind).get(self.key)
        if row is None:
            gone = h.gone_rows(self.kind).get(self.key)
            row = gone[0] if gone else None
        return row

    def update_view(self) -> None:
        width = max(40, self.size.width - 2)
        row = self._row()
        if row is None and self.kind == ADVICE:
            lines = ["This action is no longer advised (the latest refresh changed it). "
                     "Esc goes back."]
        elif row is None:
            lines = ["This row is gone (its grace period ended). Esc goes back."]
        elif self.kind == ADVICE:
            lines = advice_lines(self.ctx, self.key, row, width)
        elif self.kind == CONTAINERS:
            lines = container_lines(self.ctx, self.key, row, width)
        elif self.kind == MOUNTS:
            lines = mount_lines(self.ctx, self.key, row, width)
        else:
            lines = file_lines(self.ctx, self.key, row, width)
        text = Text("\n".join(lines), no_wrap=True, overflow="ellipsis")
        if lines:
            text.stylize("bold", 0, len(lines[0]))
        self.query_one("#detail-body", Static).update(text)
