"""RowTable: a virtual table keyed by stable row keys.

Why not DataTable: a refresh must update every row in place, re-sort and
re-filter 10,000 rows, and DataTable's per-cell updates and O(n) row removal
(Textual issue 5273) are too slow for that.  RowTable keeps a dict of rows by
key plus the sorted, filtered order of keys; only the lines on screen are
formatted (Line API), so a refresh costs one sort plus one screenful.

Layout: line 0 is the column header, the last line is the totals row, rows
scroll in between.  Columns never get cut: when the table is too narrow,
columns with the highest ``priority`` are hidden (and ``hidden_columns`` says
which); only flexible text columns (names, paths) are shortened, with "…".
"""
from __future__ import annotations

from dataclasses import dataclass
from operator import attrgetter
from typing import Any, Callable, ClassVar, Hashable

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from ..names import display

ELLIPSIS = "…"
SEP = " "


def shorten(text: str, width: int, how: str = "end") -> str:
    """Fit text in width cells: cut the end, the middle, or keep a path's tail."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    if how == "middle":
        head = (width - 1) // 2
        tail = width - 1 - head
        return text[:head] + ELLIPSIS + text[len(text) - tail:]
    if how == "path":
        # A third of the head (which mount / which cgroup subtree) and two thirds of
        # the tail (the file or container name): copies of one file differ in the head.
        head = (width - 1) // 3 if width >= 16 else 0
        tail = width - 1 - head
        return text[:head] + ELLIPSIS + text[len(text) - tail:]
    return text[:width - 1] + ELLIPSIS


@dataclass(frozen=True)
class Column:
    key: str                                    # used by --sort and the `s` key
    label: str
    text: Callable[[Hashable, Any], str]        # (key, row) -> cell text
    value: Callable[[Hashable, Any], Any] | None = None   # sort value; None: not sortable
    width: int = 8                              # cells (minimum, for flex columns)
    align: str = "right"                        # right | left
    priority: int = 0                           # 0 always shown; highest hidden first
    flex: int = 0                               # share of the spare width (text columns)
    max_width: int = 0                          # flex columns stop growing here (0: no cap)
    shorten: str = "end"                        # end | middle | path (flex columns only)
    descending: bool = True                     # first sort direction
    # (keys, rows by key) of the live rows shown -> totals-row text
    total: Callable[[list[Hashable], dict[Hashable, Any]], str] | None = None
    attr: str = ""      # sort value is this int attribute of the row: a C-speed sort path
    # False when the column means nothing now (e.g. shared bytes below the full tier):
    # left out of the layout, not listed as hidden for lack of width.
    available: Callable[[], bool] | None = None

    @property
    def sortable(self) -> bool:
        return self.value is not None


def _sort_value(v: Any) -> Any:
    # None (unknown rate) sorts below every number; strings compare case-blind.
    if v is None:
        return (0, 0)
    if isinstance(v, str):
        return (1, v.lower())
    return (1, v)


class RowTable(ScrollView, can_focus=True):
    """A sorted, filtered, virtual table of rows keyed by stable keys."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "rowtable--header", "rowtable--cursor", "rowtable--gone",
        "rowtable--total", "rowtable--empty",
    }
    DEFAULT_CSS = """
    RowTable {
        overflow-x: hidden;
        overflow-y: scroll;
        scrollbar-size-vertical: 1;
        height: 1fr;
    }
    RowTable > .rowtable--header { text-style: bold; background: $panel; }
    RowTable > .rowtable--cursor { background: $accent 40%; text-style: bold; }
    RowTable:focus > .rowtable--cursor { background: $accent; color: $text; text-style: bold reverse; }
    RowTable > .rowtable--gone { color: $text-disabled; text-style: dim italic; }
    RowTable > .rowtable--total { text-style: bold; background: $panel; }
    RowTable > .rowtable--empty { color: $text-muted; text-style: italic; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "cursor(-1)", "up", show=False),
        Binding("down", "cursor(1)", "down", show=False),
        Binding("pageup", "page(-1)", "page up", show=False),
        Binding("pagedown", "page(1)", "page down", show=False),
        Binding("home", "cursor_to(0)", "first", show=False),
        Binding("end", "cursor_to(-1)", "last", show=False),
        Binding("enter", "activate", "detail", show=False),
    ]

    class RowActivated(Message):
        """Enter (or a click on the selected row) on a row."""
        def __init__(self, table: "RowTable", key: Hashable) -> None:
            super().__init__()
            self.table = table
            self.key = key

        @property
        def control(self) -> "RowTable":
            return self.table

    class Changed(Message):
        """Order, sort, filter, cursor or scroll changed (status line, lazy work)."""
        def __init__(self, table: "RowTable") -> None:
            super().__init__()
            self.table = table

        @property
        def control(self) -> "RowTable":
            return self.table

    def __init__(self, columns: list[Column], *, sort_key: str | None = None,
                 match: Callable[[Hashable, Any], str] | None = None,
                 empty_text: str = "no rows", name: str | None = None,
                 id: str | None = None, classes: str | None = None):
        super().__init__(name=name, id=id, classes=classes)
        if not columns:
            raise ValueError("a table needs columns")
        self.columns = list(columns)
        self._by_key = {c.key: c for c in self.columns}
        first_sortable = next((c for c in self.columns if c.sortable), None)
        self.sort_column: Column | None = first_sortable
        self.sort_descending = first_sortable.descending if first_sortable else True
        if sort_key is not None:
            col = self.column(sort_key)
            if not col.sortable:
                raise ValueError(f"column {sort_key!r} is not sortable")
            self.sort_column, self.sort_descending = col, col.descending
        self.match = match
        self.filter_text = ""
        self.empty_text = empty_text
        self.rows: dict[Hashable, Any] = {}
        self.fades: dict[Hashable, float] = {}     # key -> 0..1 for vanished rows
        self.order: list[Hashable] = []           # keys after filter + sort
        self.gone_count = 0                         # fading rows in order
        self.cursor_key: Hashable | None = None
        self.cursor_index = 0
        self.layout_columns: list[tuple[Column, int]] = []   # (column, width) shown
        self.hidden_columns: list[Column] = []
        self._layout_width = -1
        self._layout_avail: tuple = ()
        self._line_cache: dict[tuple, Strip] = {}
        self._total_text: str | None = None
        self._total_sig: tuple = ()
        self._rows_version = 0

    # ------------------------------------------------------------ public API
    def column(self, key: str) -> Column:
        try:
            return self._by_key[key]
        except KeyError:
            raise ValueError(f"no column {key!r}; columns: "
                             + ", ".join(c.key for c in self.columns if c.sortable)) from None

    def set_sort(self, key: str, descending: bool | None = None) -> None:
        col = self.column(key)
        if not col.sortable:
            raise ValueError(f"column {key!r} is not sortable")
        self.sort_column = col
        self.sort_descending = col.descending if descending is None else descending
        self._reorder()

    def reverse_sort(self) -> None:
        self.sort_descending = not self.sort_descending
        self._reorder()

    def cycle_sort(self, step: int = 1) -> None:
        """Next sortable column that is on screen (all sortable ones if not laid out)."""
        shown = [c for c, _ in self.layout_columns] or self.columns
        cands = [c for c in shown if c.sortable]
        if not cands:
            return
        try:
            i = cands.index(self.sort_column)
        except ValueError:
            i = -step
        col = cands[(i + step) % len(cands)]
        self.sort_column = col
        self.sort_descending = col.descending
        self._reorder()

    def set_filter(self, text: str) -> None:
        self.filter_text = text
        self._reorder()

    def set_rows(self, rows: dict[Hashable, Any], fades: dict[Hashable, float] | None = None) -> None:
        """Replace the row data (same keys update in place; order is recomputed)."""
        self.rows = rows
        self.fades = fades or {}
        self._rows_version += 1
        self._reorder()

    def release(self) -> None:
        """Drop the rows of a hidden table (they pin a whole old Model in memory);
        sort, filter and the cursor's key stay for when it is shown again."""
        self.rows = {}
        self.fades = {}
        self.order = []
        self.gone_count = 0
        self._line_cache.clear()
        self._total_text = None

    @property
    def cursor_row(self) -> Any | None:
        return self.rows.get(self.cursor_key) if self.cursor_key is not None else None

    def visible_keys(self) -> list[Hashable]:
        top = int(self.scroll_y)
        return self.order[top:top + self._body_height()]

    def move_cursor_to_key(self, key: Hashable) -> bool:
        if key not in self.rows:
            return False
        try:
            self._set_cursor(self.order.index(key))
        except ValueError:
            return False
        return True

    # ------------------------------------------------------------ ordering
    def _matching_keys(self) -> list[Hashable]:
        if not self.filter_text or self.match is None:
            return list(self.rows)
        needle = self.filter_text.lower()
        m = self.match
        return [k for k, r in self.rows.items() if needle in m(k, r).lower()]

    def _reorder(self) -> None:
        keys = self._matching_keys()
        col = self.sort_column
        if col is not None:
            rows = self.rows
            # Sort positions by a list of values (no hashing of keys), then map back.
            # Python's sort is stable (also reversed): equal rows keep the Model's order,
            # so they do not jump around between refreshes.
            if col.attr:
                # keys == list(rows) when nothing is filtered: values(), no lookups
                source = rows.values() if len(keys) == len(rows) else map(rows.__getitem__, keys)
                values = list(map(attrgetter(col.attr), source))
            else:
                val = col.value
                values = [val(k, rows[k]) for k in keys]
                if any(v is None or isinstance(v, str) for v in values):
                    values = [_sort_value(v) for v in values]
            positions = sorted(range(len(keys)), key=values.__getitem__,
                               reverse=self.sort_descending)
            keys = list(map(keys.__getitem__, positions))
        self.order = keys
        if self.fades:
            shown = set(keys)
            self.gone_count = sum(1 for k in self.fades if k in shown)
        else:
            self.gone_count = 0
        self._line_cache.clear()
        # The cursor follows its row; if the row went away, it stays at the same index.
        if self.cursor_key is not None and self.cursor_key in self.rows:
            try:
                self.cursor_index = keys.index(self.cursor_key)
            except ValueError:
                pass
        self.cursor_index = max(0, min(self.cursor_index, len(keys) - 1))
        self.cursor_key = keys[self.cursor_index] if keys else None
        self._update_virtual_size()
        self._scroll_cursor_into_view()
        self.refresh()
        self.post_message(self.Changed(self))

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(max(1, self._content_width()), len(self.order) + 2)

    # ------------------------------------------------------------ cursor
    def _body_height(self) -> int:
        return max(1, self.size.height - 2)

    def _set_cursor(self, index: int) -> None:
        if not self.order:
            return
        index = max(0, min(index, len(self.order) - 1))
        if index != self.cursor_index or self.order[index] != self.cursor_key:
            self.cursor_index = index
            self.cursor_key = self.order[index]
            self._line_cache.clear()
            self.refresh()
        self._scroll_cursor_into_view()
        self.post_message(self.Changed(self))

    def _scroll_cursor_into_view(self) -> None:
        body = self._body_height()
        top = int(self.scroll_y)
        if self.cursor_index < top:
            top = self.cursor_index
        elif self.cursor_index >= top + body:
            top = self.cursor_index - body + 1
        top = max(0, min(top, max(0, len(self.order) - body)))
        if top != int(self.scroll_y):
            self.scroll_to(y=top, animate=False, force=True, immediate=True)

    def action_cursor(self, delta: int) -> None:
        self._set_cursor(self.cursor_index + delta)

    def action_page(self, direction: int) -> None:
        self._set_cursor(self.cursor_index + direction * self._body_height())

    def action_cursor_to(self, index: int) -> None:
        self._set_cursor(len(self.order) - 1 if index < 0 else index)

    def action_activate(self) -> None:
        if self.cursor_key is not None:
            self.post_message(self.RowActivated(self, self.cursor_key))

    # ------------------------------------------------------------ mouse
    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        if offset.y == 0:                        # header: sort by that column
            col = self._column_at(offset.x)
            if col is not None and col.sortable:
                if col is self.sort_column:
                    self.reverse_sort()
                else:
                    self.set_sort(col.key)
            return
        if offset.y >= self.size.height - 1:     # totals row
            return
        index = int(self.scroll_y) + offset.y - 1
        if 0 <= index < len(self.order):
            again = index == self.cursor_index
            self._set_cursor(index)
            if again or event.chain >= 2:
                self.action_activate()

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if round(old_value) != round(new_value):
            self.post_message(self.Changed(self))

    def _column_at(self, x: int) -> Column | None:
        pos = 0
        for col, width in self.layout_columns:
            if pos <= x < pos + width + len(SEP):
                return col
            pos += width + len(SEP)
        return None

    # ------------------------------------------------------------ layout
    def _content_width(self) -> int:
        return self.scrollable_content_region.width or self.size.width

    def _availability(self) -> tuple:
        return tuple(c.available() for c in self.columns if c.available is not None)

    def _layout(self, width: int) -> None:
        """Pick the columns that fit in width; give spare cells to flex columns."""
        avail = self._availability()
        if width == self._layout_width and avail == self._layout_avail:
            return
        self._layout_width = width
        self._layout_avail = avail
        self._line_cache.clear()
        self._total_text = None
        sep = len(SEP)
        by_priority = sorted(range(len(self.columns)), key=lambda i: self.columns[i].priority)
        chosen: set[int] = set()
        unavailable = {i for i, c in enumerate(self.columns)
                       if c.available is not None and not c.available()}
        used = 0
        full = False
        for i in by_priority:
            if i in unavailable:
                continue
            col = self.columns[i]
            need = col.width + (sep if chosen else 0)
            # Strict priority: once one column does not fit, no less important one is shown.
            if col.priority == 0 or (not full and used + need <= width):
                chosen.add(i)
                used += need
            else:
                full = True
        shown = [c for i, c in enumerate(self.columns) if i in chosen]
        self.hidden_columns = [c for i, c in enumerate(self.columns)
                               if i not in chosen and i not in unavailable]
        spare = max(0, width - used)
        widths = {id(c): c.width for c in shown}
        # Hand out spare cells by flex weight; capped columns give back what they cannot take.
        growing = [c for c in shown if c.flex]
        while spare > 0 and growing:
            weight = sum(c.flex for c in growing)
            handed = 0
            for c in list(growing):
                extra = max(1, spare * c.flex // weight)
                if c.max_width:
                    extra = min(extra, c.max_width - widths[id(c)])
                extra = min(extra, spare - handed)
                widths[id(c)] += extra
                handed += extra
                if c.max_width and widths[id(c)] >= c.max_width:
                    growing.remove(c)
                if handed >= spare:
                    break
            spare -= handed
            if handed == 0:
                break
        widths = [widths[id(c)] for c in shown]
        self.layout_columns = list(zip(shown, widths))

    def on_resize(self, event: events.Resize) -> None:
        self._layout(self._content_width())
        self._update_virtual_size()
        self._scroll_cursor_into_view()
        self.post_message(self.Changed(self))

    # ------------------------------------------------------------ rendering
    def _cells(self, texts: list[str]) -> str:
        out = []
        for (col, width), text in zip(self.layout_columns, texts):
            text = display(text)        # names are bytes: no escape reaches the terminal
            if len(text) > width:
                text = shorten(text, width, col.shorten)
            out.append(text.rjust(width) if col.align == "right" else text.ljust(width))
        return SEP.join(out)

    def _header_text(self) -> str:
        texts = []
        for col, width in self.layout_columns:
            label = col.label
            if col is self.sort_column:
                arrow = "▼" if self.sort_descending else "▲"
                label = arrow + label if col.align == "right" else label + arrow
            texts.append(label)
        return self._cells(texts)

    def live_keys(self) -> list[Hashable]:
        """Keys in order, without the fading rows."""
        if not self.gone_count:
            return self.order
        fades = self.fades
        return [k for k in self.order if k not in fades]

    def total_text(self) -> str:
        # Totals depend on the rows, the filter and the columns shown, not on the sort
        # order or the cursor: recomputed only when one of those changed.
        sig = (self._rows_version, self.filter_text, self._layout_width, self._layout_avail)
        if self._total_text is None or self._total_sig != sig:
            live = self.live_keys()
            texts = []
            for i, (col, _) in enumerate(self.layout_columns):
                if col.total is not None:
                    texts.append(col.total(live, self.rows))
                elif i == 0:
                    texts.append(f"TOTAL {len(live)} rows")
                else:
                    texts.append("")
            self._total_text = self._cells(texts)
            self._total_sig = sig
        return self._total_text

    def row_text(self, key: Hashable) -> str:
        row = self.rows[key]
        return self._cells([col.text(key, row) for col, _ in self.layout_columns])

    def render_line(self, y: int) -> Strip:
        width = self._content_width()
        self._layout(width)
        height = self.size.height
        base = self.rich_style
        if y == 0:
            style = base + self.get_component_rich_style("rowtable--header")
            return self._strip(self._header_text(), width, style)
        if y == height - 1 and height >= 3:
            style = base + self.get_component_rich_style("rowtable--total")
            return self._strip(self.total_text(), width, style)
        index = int(self.scroll_y) + y - 1
        if not self.order:
            if y == 1:
                style = base + self.get_component_rich_style("rowtable--empty")
                text = self.empty_text
                if self.filter_text and self.rows:
                    text = f"no rows match filter {self.filter_text!r} (Esc clears it)"
                return self._strip(text, width, style)
            return Strip.blank(width, base)
        if index >= len(self.order):
            return Strip.blank(width, base)
        key = self.order[index]
        selected = index == self.cursor_index
        fade = self.fades.get(key, 0.0)
        cache_key = (key, selected, fade > 0, width, self.has_focus)
        strip = self._line_cache.get(cache_key)
        if strip is None:
            style = base
            if fade > 0:
                style += self.get_component_rich_style("rowtable--gone")
            if selected:
                style += self.get_component_rich_style("rowtable--cursor")
            strip = self._strip(self.row_text(key), width, style)
            self._line_cache[cache_key] = strip
        return strip

    @staticmethod
    def _strip(text: str, width: int, style: Style) -> Strip:
        text = text[:width].ljust(width)
        return Strip([Segment(text, style)], width)

    def on_focus(self) -> None:
        self._line_cache.clear()
        self.refresh()

    def on_blur(self) -> None:
        self._line_cache.clear()
        self.refresh()
