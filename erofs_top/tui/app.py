"""The erofs-top live UI: header, four views, detail pane, help.

Threads: one collector thread calls ``source.refresh()`` every interval and
posts the Model to the UI thread (``ModelReady``); the UI thread only pushes
it into the History and re-renders.  For `erofs-top top` the source is a
ProcessSource (process_source.py): the refresh itself runs in a child
process, this thread only waits for the Model and unpickles it.  ELF section splits for the Files view
run in short worker threads for the rows on screen only.
"""
from __future__ import annotations

import gc
import threading
import time
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.message import Message
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import ContentSwitcher, Input, Static

from .history import DEFAULT_GRACE_S, History
from .intervals import DEFAULT_INTERVAL_S, INTERVALS_S
from ..model import Model
from ..units import fmt_seconds
from . import advice, containers, files, images
from .common import ViewContext
from .detail import DetailScreen
from .elfinfo import ElfCache
from .header import NodeHeader
from .source import can_step
from .table import RowTable

VIEWS = (containers, images, files, advice)
MIN_WIDTH, MIN_HEIGHT = 60, 15

HELP = """\
erofs-top: EROFS page cache per container, duplicates, sharing

  Views       Tab / Shift+Tab, 1 Containers, 2 Images, 3 Files, 4 Advice
              (or click the bar)
  Advice      `erofs-top advise`, ranked: what each change saves now, the mounts
              it touches, its commands (Enter: why, and the commands in full)
  Move        Up Down PgUp PgDn Home End, mouse wheel, click a row
  Detail      Enter (or click the selected row); Esc goes back
  Sort        s next column, S previous, r reverse (or click a column header)
  Filter      / then type (matches names, paths, ids); Enter keeps it, Esc clears it
  Refresh     p pause/resume, + slower, - faster ({intervals})
  Recording   n step forward, b step back (paused), < > replay speed
  Quit        q or Ctrl+C (detaches every probe)

Units: bytes in KiB/MiB/GiB (1024-based), rates per second over the last
interval. "-" means not measured on this tier (shared/fair need the full tier,
rates need BPF), not zero. Rows of vanished cgroups and mounts stay dimmed
with "(gone)" for {grace} before they are dropped.
"""


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


class ModelReady(Message):
    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model


class SourceFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class ViewBar(Widget):
    """1 Containers  2 Images  3 Files  4 Advice: the active one reversed; clickable."""

    def __init__(self, *, id: str | None = None):
        super().__init__(id=id)
        self.active = 0
        self._spans: list[tuple[int, int]] = []

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        self._spans = []
        for i, view in enumerate(VIEWS):
            label = f" {i + 1} {view.TITLE} "
            start = len(text)
            text.append(label, style="bold reverse" if i == self.active else "")
            self._spans.append((start, len(text)))
            text.append(" ")
        return text

    def on_click(self, event: events.Click) -> None:
        for i, (a, b) in enumerate(self._spans):
            if a <= event.x < b:
                self.app.action_view(i)
                return


class KeysLine(Static):
    ITEMS = ("q quit", "? help", "Tab view", "/ filter", "s sort", "r reverse",
             "p pause", "+/- interval", "Enter detail")

    def render(self) -> Text:
        width = self.size.width or 80
        out = ""
        for item in self.ITEMS:
            cand = f"{out}  {item}" if out else item
            if len(cand) > width:
                break
            out = cand
        return Text(out, no_wrap=True)


class HelpScreen(ModalScreen):
    BINDINGS = [Binding("escape,question_mark,enter,h", "app.pop_screen", "close")]

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        yield Static(self.text, id="help-body")


class ErofsTopApp(App):
    """The live UI; ``source`` may be None (tests push Models with ``ingest``)."""

    CSS_PATH = "erofs_top.tcss"
    TITLE = "erofs-top"
    ENABLE_COMMAND_PALETTE = False
    BINDINGS = [
        Binding("q", "quit", "quit"),
        Binding("ctrl+c", "quit", "quit", priority=True, show=False),
        Binding("tab", "next_view", "next view", priority=True, show=False),
        Binding("shift+tab", "prev_view", "previous view", priority=True, show=False),
        Binding("1", "view(0)", "containers", show=False),
        Binding("2", "view(1)", "images", show=False),
        Binding("3", "view(2)", "files", show=False),
        Binding("4", "view(3)", "advice", show=False),
        Binding("s", "sort(1)", "sort", show=False),
        Binding("S", "sort(-1)", "sort back", show=False),
        Binding("r", "reverse", "reverse", show=False),
        Binding("slash", "filter", "filter", show=False),
        Binding("escape", "clear_filter", "clear filter", show=False),
        Binding("p", "pause", "pause", show=False),
        Binding("plus,equals_sign", "interval(1)", "slower", show=False),
        Binding("minus", "interval(-1)", "faster", show=False),
        Binding("question_mark", "help", "help", show=False),
        Binding("n", "step(1)", "step", show=False),
        Binding("b", "step(-1)", "step back", show=False),
        Binding("greater_than_sign", "speed(2.0)", "faster replay", show=False),
        Binding("less_than_sign", "speed(0.5)", "slower replay", show=False),
    ]

    def __init__(self, source: Any = None, *, interval_s: float = DEFAULT_INTERVAL_S,
                 sort: str | None = None, filter_text: str = "", history: History | None = None,
                 grace_s: float = DEFAULT_GRACE_S, elf: bool = True, start_view: int = 0,
                 title: str = "erofs-top"):
        super().__init__()
        self.title = title
        if interval_s <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.source = source
        self.interval_s = float(interval_s)
        self.paused = False
        self.history = history or History(grace_s=grace_s)
        self.ctx = ViewContext(self.history, elf=ElfCache() if elf else None)
        self.initial_sort = sort
        self.initial_filter = filter_text
        self.active_view = start_view
        self.source_error = ""
        self.models_seen = 0
        self._dirty = [False] * len(VIEWS)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._elf_inflight: set[tuple] = set()
        self._retired: list = []            # old Models for the collector thread to free
        self.defer_free = False             # set when a collector thread runs
        self.last_refresh_s = 0.0           # how long the source's last refresh() took
        self._retired_lock = threading.Lock()
        self._tables: list[RowTable] | None = None

    # ------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Vertical(id="main"):
            yield NodeHeader(self.history, id="header", title=self.title)
            yield ViewBar(id="viewbar")
            with ContentSwitcher(initial=f"table-{VIEWS[self.active_view].__name__.rsplit('.', 1)[-1]}",
                                 id="views"):
                for view in VIEWS:
                    sort = self.initial_sort if self.initial_sort in view.SORT_KEYS else None
                    table = view.make_table(self.ctx, sort_key=sort)
                    table.filter_text = self.initial_filter
                    yield table
            yield Input(placeholder="filter (Enter keeps, Esc clears)", id="filter")
            yield Static(id="status")
            yield KeysLine(id="keys")
        yield Static(id="too-small")

    def tables(self) -> list[RowTable]:
        """The views' tables, in VIEWS order (looked up once)."""
        if self._tables is None:
            self._tables = [self.query_one(f"#table-{v.__name__.rsplit('.', 1)[-1]}", RowTable)
                            for v in VIEWS]
        return self._tables

    def table(self, index: int | None = None) -> RowTable:
        return self.tables()[self.active_view if index is None else index]

    def on_mount(self) -> None:
        self.query_one(ViewBar).active = self.active_view
        self.table().focus()
        self._update_header()
        self._update_status()
        self._check_size(self.size.width, self.size.height)

    def on_ready(self) -> None:
        # Only once the screen is composed and painted: Models may then arrive at any time.
        if self.source is not None and self._thread is None:
            self._thread = threading.Thread(target=self._poll, name="erofs-top-collector",
                                            daemon=True)
            self.defer_free = True
            self._thread.start()

    # ------------------------------------------------------------ collector thread
    def dispose_retired(self) -> None:
        """Drop the old Models ingest() set aside (collector thread)."""
        with self._retired_lock:
            retired, self._retired = self._retired, []
        del retired

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.dispose_retired()
            started = time.monotonic()
            if not self.paused:
                try:
                    model = self.source.refresh()
                except Exception as exc:       # the UI keeps going; the header says why
                    self.post_message(SourceFailed(f"refresh failed: {one_line(exc)}"))
                else:
                    self.post_message(ModelReady(model))
            # The interval runs from the start of a refresh, so a slow one does not
            # stretch it; a refresh longer than the interval is followed by a full
            # interval of rest (erofs-top never spends more than half its time refreshing).
            elapsed = time.monotonic() - started
            self.last_refresh_s = elapsed
            rest = self.interval_s - elapsed if elapsed < self.interval_s else self.interval_s
            self._wake.wait(rest)
            self._wake.clear()

    def stop_collector(self, timeout_s: float = 10.0) -> None:
        """Stop the collector thread and wait for a refresh in flight to end."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    def on_unmount(self) -> None:
        self._stop.set()
        self._wake.set()

    def on_model_ready(self, message: ModelReady) -> None:
        try:
            self.ingest(message.model)
        except NoMatches:       # shutting down: the widgets are already gone
            pass

    def on_source_failed(self, message: SourceFailed) -> None:
        self.source_error = message.error + f" (retrying every {fmt_seconds(self.interval_s)})"
        try:
            self._update_header()
        except NoMatches:
            pass

    # ------------------------------------------------------------ rendering
    def ingest(self, model: Model) -> None:
        """One refresh: push the Model into the history, update views in place."""
        tables = self.tables()
        retired = [self.history.push(model), [t.rows for t in tables]]
        self.models_seen += 1
        self.source_error = ""
        self._dirty = [True] * len(VIEWS)
        for index, table in enumerate(tables):
            if index != self.active_view:
                table.release()
        self._render_view(self.active_view)
        if self.defer_free:
            # The collector thread frees the old Model between refreshes, not the UI
            # thread now (tens of ms at 50,000 files).
            with self._retired_lock:
                self._retired.append(retired)
        del retired
        self._update_header()
        if isinstance(self.screen, DetailScreen):
            self.screen.update_view()

    def _render_view(self, index: int) -> None:
        if not self._dirty[index] or self.history.latest is None:
            return
        self._dirty[index] = False
        view = VIEWS[index]
        rows, fades = view.rows(self.ctx)
        if hasattr(view, "empty_text"):     # a view that says why it is empty
            self.table(index).empty_text = view.empty_text(self.ctx)
        self.table(index).set_rows(rows, fades)

    def _update_header(self) -> None:
        note = ""
        if self.source is not None and hasattr(self.source, "position"):
            try:
                note = f"replay {self.source.position()}"
                speed = getattr(self.source, "speed", None)
                if speed:
                    note += f" x{speed:g}"
            except Exception:
                note = ""
        error = self.source_error
        if not error and self.last_refresh_s > self.interval_s:
            error = (f"a refresh takes {fmt_seconds(self.last_refresh_s)}, longer than the "
                     f"{fmt_seconds(self.interval_s)} interval (+ makes it longer)")
        self.query_one(NodeHeader).update_state(
            interval_s=self.interval_s, paused=self.paused, source_error=error,
            replay_note=note)

    def _update_status(self) -> None:
        table = self.table()
        view = VIEWS[self.active_view]
        parts = [view.TITLE]
        if table.sort_column is not None:
            parts.append(f"sort {table.sort_column.key} "
                         + ("▼" if table.sort_descending else "▲"))
        if table.filter_text:
            parts.append(f"filter {table.filter_text!r}")
        gone = table.gone_count
        live = len(table.order) - gone
        shown = f"{live}/{len(table.rows) - len(table.fades)} rows"
        if gone:
            shown += f" +{gone} gone"
        parts.append(shown)
        if table.order:
            parts.append(f"row {table.cursor_index + 1}")
        if table.hidden_columns:
            need = sum(c.width + 1 for c in table.columns) + 1
            parts.append(f"{len(table.hidden_columns)} cols hidden (all at {need} wide: "
                         + " ".join(c.key for c in table.hidden_columns) + ")")
        self.query_one("#status", Static).update(Text(" · ".join(parts), no_wrap=True,
                                                      overflow="ellipsis"))

    def on_row_table_changed(self, message: RowTable.Changed) -> None:
        if message.table is self.table():
            self._update_status()
            if VIEWS[self.active_view] is files:
                self._want_elf(message.table)

    def on_row_table_row_activated(self, message: RowTable.RowActivated) -> None:
        index = self.tables().index(message.table)
        self.push_screen(DetailScreen(self.ctx, VIEWS[index].KIND, message.key))
        if VIEWS[index] is files and message.key is not None:
            f = message.table.rows.get(message.key)
            if f is not None and f.path and self.ctx.elf is not None:
                self._compute_elf([(f.path, f.size, f.resident_bytes)])

    # ------------------------------------------------------------ ELF (files view)
    def _want_elf(self, table: RowTable) -> None:
        wanted = [w for w in files.elf_wanted(self.ctx, table) if w not in self._elf_inflight]
        if wanted:
            self._compute_elf(wanted)

    def _compute_elf(self, wanted: list[tuple[str, int, int]]) -> None:
        self._elf_inflight.update(wanted)
        self._elf_worker(wanted)

    @work(thread=True, group="elf")
    def _elf_worker(self, wanted: list[tuple[str, int, int]]) -> None:
        for path, size, resident in wanted:
            if self._stop.is_set():
                return
            self.ctx.elf.compute(path, size, resident)
        try:
            self.call_from_thread(self._elf_done, wanted)
        except RuntimeError:        # the app ended meanwhile
            pass

    def _elf_done(self, wanted: list[tuple[str, int, int]]) -> None:
        self._elf_inflight.difference_update(wanted)
        t = self.table(VIEWS.index(files))
        t._line_cache.clear()
        t.refresh()
        if isinstance(self.screen, DetailScreen):
            self.screen.update_view()

    # ------------------------------------------------------------ size
    def on_resize(self, event: events.Resize) -> None:
        self._check_size(event.size.width, event.size.height)

    def _check_size(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        screen = self.screen
        if not hasattr(screen, "query_one"):
            return
        try:
            msg = self.query_one("#too-small", Static)
        except Exception:
            return
        msg.update(f"Terminal too small: {width}x{height}.\n"
                   f"erofs-top needs at least {MIN_WIDTH}x{MIN_HEIGHT}.\n"
                   "Enlarge the window, or press q to quit.")
        self.screen_stack[0].set_class(small, "too-small")

    # ------------------------------------------------------------ actions
    def action_view(self, index: int) -> None:
        index %= len(VIEWS)
        if isinstance(self.screen, (DetailScreen, HelpScreen)):
            return
        self.active_view = index
        self.query_one(ViewBar).active = index
        self.query_one(ViewBar).refresh()
        table = self.table()
        self.query_one(ContentSwitcher).current = table.id
        self._render_view(index)
        self._hide_filter()
        table.focus()
        self._update_status()
        if VIEWS[index] is files:
            self.call_after_refresh(self._want_elf, table)

    def action_next_view(self) -> None:
        self.action_view(self.active_view + 1)

    def action_prev_view(self) -> None:
        self.action_view(self.active_view - 1)

    def action_sort(self, step: int) -> None:
        self.table().cycle_sort(step)

    def action_reverse(self) -> None:
        self.table().reverse_sort()

    def action_filter(self) -> None:
        box = self.query_one("#filter", Input)
        box.value = self.table().filter_text
        box.add_class("active")
        box.focus()

    def _hide_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("active"):
            box.remove_class("active")
            self.table().focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "filter" and event.input.has_class("active"):
            self.table().set_filter(event.value)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "filter":
            self._hide_filter()

    def action_clear_filter(self) -> None:
        box = self.query_one("#filter", Input)
        if box.has_class("active") or self.table().filter_text:
            box.value = ""
            self.table().set_filter("")
            self._hide_filter()

    def action_pause(self) -> None:
        self.paused = not self.paused
        if not self.paused:
            self._wake.set()            # resume with a fresh refresh now
        self._update_header()

    def action_interval(self, step: int) -> None:
        cur = self.interval_s
        # Next step of the ladder; outside it (--interval 0.1 or 600) stay put.
        if step > 0:
            bigger = [i for i in INTERVALS_S if i > cur]
            self.interval_s = bigger[0] if bigger else cur
        else:
            smaller = [i for i in INTERVALS_S if i < cur]
            self.interval_s = smaller[-1] if smaller else cur
        self._wake.set()
        self._update_header()

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            self.pop_screen()
            return
        self.push_screen(HelpScreen(HELP.format(
            intervals=f"{INTERVALS_S[0]:g} s to {INTERVALS_S[-1]:g} s",
            grace=fmt_seconds(self.history.grace_s))))

    def action_step(self, n: int) -> None:
        if not can_step(self.source):
            self.notify("stepping needs a recording (erofs-top replay)", timeout=3)
            return
        if not self.paused:
            self.paused = True
            self._update_header()
        self._step_worker(n)

    @work(thread=True, group="step", exclusive=True)
    def _step_worker(self, n: int) -> None:
        try:
            model = self.source.step(n)
        except Exception as exc:
            self.post_message(SourceFailed(f"step failed: {one_line(exc)}"))
        else:
            self.post_message(ModelReady(model))

    def action_speed(self, factor: float) -> None:
        if self.source is None or not hasattr(self.source, "speed"):
            self.notify("replay speed needs a recording (erofs-top replay)", timeout=3)
            return
        self.source.speed = max(1 / 64, min(64.0, self.source.speed * factor))
        self._update_header()

    async def action_quit(self) -> None:
        self._stop.set()
        self._wake.set()
        self.exit()


GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc() -> None:
    """Fewer, larger garbage collections.

    The UI process holds a whole Model (at scale: 10,000 containers and 50,000
    files, about a million objects) and gets a new one every refresh.  With the
    default thresholds a full collection walks all of them every other refresh
    (+80 ms); the Models are freed by reference counting anyway (no cycles).
    A live collector's aggregator freezes its long-lived state (aggregate.FREEZE).
    """
    from ..aggregate import FREEZE
    gc.set_threshold(*GC_THRESHOLDS)
    FREEZE["mode"] = "full"


def run_app(source: Any, *, interval_s: float = DEFAULT_INTERVAL_S, sort: str | None = None,
            filter_text: str = "", history: History | None = None,
            grace_s: float = DEFAULT_GRACE_S, elf: bool = True, title: str = "erofs-top") -> int:
    """Run the UI on a ModelSource until q / Ctrl-C; always closes the source.

    Returns the exit status (0).  Used by ``erofs-top top`` and ``erofs-top replay``.
    """
    from ..signals import POLICY
    app = ErofsTopApp(source, interval_s=interval_s, sort=sort, filter_text=filter_text,
                      history=history, grace_s=grace_s, elf=elf, title=title)
    tune_gc()
    # SIGTERM/SIGHUP (Ctrl-C is a key here): leave the UI like q does, then clean up
    quit_ = lambda _sig: app.exit()            # noqa: E731
    POLICY.on_first.append(quit_)
    try:
        with POLICY.polling():
            if not POLICY.stopping:
                app.run()
    finally:
        POLICY.on_first.remove(quit_)
        with POLICY.cleanup():
            app.stop_collector()
            if source is not None:
                source.close()      # detaches every probe
    return app.return_code or 0


def sort_keys() -> list[str]:
    """Every column name --sort accepts (any view's sortable column)."""
    out: list[str] = []
    for view in VIEWS:
        for key in view.SORT_KEYS:
            if key not in out:
                out.append(key)
    return out


__all__ = ["ErofsTopApp", "run_app", "tune_gc", "sort_keys", "VIEWS", "MIN_WIDTH", "MIN_HEIGHT"]
