"""The live UI, driven by Textual's Pilot on fixture Models (no root)."""
from __future__ import annotations

import os
import sys
import time

import pytest
from click.testing import CliRunner

from erofs_top.model import TIER_FULL, TIER_SNAPSHOT, File
from erofs_top.tui import containers as containers_view
from erofs_top.tui.app import MIN_HEIGHT, MIN_WIDTH, ErofsTopApp, HelpScreen, run_app
from erofs_top.tui.cli import top_command
from erofs_top.tui.detail import DetailScreen
from erofs_top.tui.source import ListSource

from fixture_sources import ScriptedProbeSource, cgroup_path, fixture_collector
from tui_fixtures import MiB, model, pause_until, run_async, screen_text

pytestmark = pytest.mark.timeout(60)


async def started(app, pilot, steps=(0, 1)):
    for step in steps:
        app.ingest(model(step))
    await pilot.pause()


def order(app):
    return list(app.table().order)


# ------------------------------------------------------------------ views and keys
@run_async
async def test_default_view_is_containers_sorted_by_resident():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        assert app.active_view == 0
        assert order(app) == [101, 102, 103]
        text = screen_text(app)
        assert "/erofs-top-demo/ctr-a" in text and "docker:0123456789ab" in text
        assert "EROFS resident 26.0 MiB of 2.0 GiB page cache" in text
        assert "inode_share could save 9.0 MiB" in text


@pytest.mark.parametrize("keys, view", [
    (["tab"], 1), (["tab", "tab"], 2), (["tab", "tab", "tab"], 3), (["tab"] * 4, 0),
    (["shift+tab"], 3), (["shift+tab"] * 2, 2), (["2"], 1), (["3"], 2), (["4"], 3),
    (["3", "1"], 0),
])
@run_async
async def test_view_switch_keys(keys, view):
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        for k in keys:
            await pilot.press(k)
        assert app.active_view == view
        assert app.table().has_focus
        heading = {0: "CONTAINER", 1: "MOUNT POINT", 2: "FILE", 3: "ACTION"}[view]
        assert heading in screen_text(app)


@run_async
async def test_cursor_keys_move_the_selection():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        t = app.table()
        assert t.cursor_key == 101
        await pilot.press("down")
        assert t.cursor_key == 102
        await pilot.press("end")
        assert t.cursor_key == 103
        await pilot.press("up")
        assert t.cursor_key == 102
        await pilot.press("home")
        assert t.cursor_key == 101
        await pilot.press("pagedown")
        assert t.cursor_key == 103
        await pilot.press("pageup")
        assert t.cursor_key == 101


@run_async
async def test_cursor_follows_its_row_when_the_order_changes():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("down")                       # on 102
        m = model(2)
        m.containers[1].resident_bytes = 100 * MiB      # 102 jumps to the top
        app.ingest(m)
        await pilot.pause()
        assert order(app)[0] == 102
        assert app.table().cursor_key == 102


@run_async
async def test_s_cycles_sort_column_and_r_reverses():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(200, 30)) as pilot:
        await started(app, pilot)
        t = app.table()
        assert t.sort_column.key == "resident" and t.sort_descending
        await pilot.press("s")
        assert t.sort_column.key == "duplicate"
        await pilot.press("S")
        assert t.sort_column.key == "resident"
        await pilot.press("r")
        assert not t.sort_descending
        assert order(app) == [103, 102, 101]
        assert "▲RESIDENT" in screen_text(app)


@pytest.mark.parametrize("column", containers_view.SORT_KEYS)
@run_async
async def test_sort_by_every_column_is_right(column):
    app = ErofsTopApp(None, elf=False, sort=column)
    async with app.run_test(size=(200, 30)) as pilot:
        await started(app, pilot, steps=(0, 1))
        t = app.table()
        assert t.sort_column.key == column
        col = t.column(column)
        vals = [col.value(k, t.rows[k]) for k in t.order]
        vals = [(-1 if v is None else v.lower() if isinstance(v, str) else v) for v in vals]
        assert vals == sorted(vals, reverse=t.sort_descending)
        t.reverse_sort()
        vals = [col.value(k, t.rows[k]) for k in t.order]
        vals = [(-1 if v is None else v.lower() if isinstance(v, str) else v) for v in vals]
        assert vals == sorted(vals, reverse=t.sort_descending)


@run_async
async def test_sort_by_rate_puts_the_inserting_container_first():
    app = ErofsTopApp(None, elf=False, sort="insert")
    async with app.run_test(size=(120, 30)) as pilot:
        await started(app, pilot)
        assert order(app) == [101, 103, 102]        # 2 MiB/s, 512 KiB/s, 0


@run_async
async def test_filter_key_types_live_enter_keeps_escape_clears():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("slash")
        assert app.focused.id == "filter"
        for ch in "ctr-b":
            await pilot.press(ch)
        assert order(app) == [102]
        await pilot.press("enter")
        assert app.table().has_focus
        assert order(app) == [102]
        text = screen_text(app)
        assert "filter 'ctr-b'" in text and "/erofs-top-demo/ctr-a" not in text
        await pilot.press("escape")
        assert order(app) == [101, 102, 103]


@run_async
async def test_filter_matches_runtime_and_ids_and_reports_no_match():
    app = ErofsTopApp(None, elf=False, filter_text="docker")
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        assert order(app) == [103]
        app.table().set_filter("no-such-thing")
        await pilot.pause()
        assert order(app) == []
        assert "no rows match filter 'no-such-thing'" in screen_text(app)


@run_async
async def test_filter_is_per_view():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("3", "slash", *"data", "enter")
        assert len(order(app)) == 2
        await pilot.press("1")
        assert order(app) == [101, 102, 103]


@run_async
async def test_pause_stops_taking_models_and_shows_it():
    src = ListSource([model(i) for i in range(50)])
    app = ErofsTopApp(src, elf=False, interval_s=0.05)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            if app.models_seen >= 2:
                break
            await pilot.pause(0.05)
        await pilot.press("p")
        assert app.paused and "PAUSED" in screen_text(app)
        await pilot.pause(0.2)
        seen = app.models_seen
        await pilot.pause(0.3)
        assert app.models_seen == seen
        await pilot.press("p")
        for _ in range(100):
            if app.models_seen > seen:
                break
            await pilot.pause(0.05)
        assert app.models_seen > seen
    app.stop_collector()


@run_async
async def test_plus_minus_change_the_interval():
    app = ErofsTopApp(None, elf=False, interval_s=2)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("plus")
        assert app.interval_s == 3.0
        await pilot.press("minus", "minus")
        assert app.interval_s == 1.0
        for _ in range(5):
            await pilot.press("minus")
        assert app.interval_s == 0.5
        assert "every 500 ms" in screen_text(app)


@run_async
async def test_interval_outside_the_ladder_stays_put_in_the_wrong_direction():
    app = ErofsTopApp(None, elf=False, interval_s=0.1)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("minus")
        assert app.interval_s == 0.1                     # "faster" never makes it slower
        await pilot.press("plus")
        assert app.interval_s == 0.5


@run_async
async def test_help_opens_and_closes():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "Filter" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("key", ["q", "ctrl+c"])
@run_async
async def test_quit_keys_exit(key):
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        await pilot.press("x")                           # not a key: keeps running
        assert app.is_running and app.return_code is None
        await pilot.press(key)
        await pilot.pause()
        assert app.return_code == 0 and not app.is_running
    assert app._stop.is_set()                            # the collector thread is told to stop


@run_async
async def test_enter_opens_detail_and_escape_goes_back():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await started(app, pilot)
        await pilot.press("enter")
        assert isinstance(app.screen, DetailScreen)
        text = screen_text(app)
        assert "Container /erofs-top-demo/ctr-a" in text
        assert "/run/erofs-top-demo/ctr-a" in text           # its mount
        assert "libdemo.so.1" in text                        # its top files
        assert "Resident (last 2 refreshes" in text          # its chart
        app.ingest(model(2))                                 # detail is live
        await pilot.pause()
        assert "Resident (last 3 refreshes" in screen_text(app)
        await pilot.press("escape")
        assert not isinstance(app.screen, DetailScreen)


@run_async
async def test_image_detail_lists_the_containers_holding_its_pages():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(100, 40)) as pilot:
        await started(app, pilot)
        await pilot.press("2")
        app.table().move_cursor_to_key("7:4")
        await pilot.press("enter")
        text = screen_text(app)
        assert "Image at /run/erofs-top-demo/ctr-b" in text
        assert "Containers holding its pages (2" in text
        assert "/erofs-top-demo/ctr-b" in text and "docker:0123456789ab" in text


@run_async
async def test_file_detail_shows_elf_build_id_and_sections():
    exe = os.path.realpath(sys.executable)
    m0, m1 = model(0), model(1)
    for m in (m0, m1):
        m.files = [File(dev="8:1", ino=7, path=exe, content_id="abc", size=os.path.getsize(exe),
                        resident_bytes=1 * MiB, duplicate_bytes=0, copies=1, cgroups=[101])]
    app = ErofsTopApp(None, elf=True)
    async with app.run_test(size=(120, 40)) as pilot:
        app.ingest(m0)
        app.ingest(m1)
        await pilot.press("3")
        await app.workers.wait_for_complete()
        await pilot.pause()
        info = app.ctx.elf.get(exe, m1.files[0].size, m1.files[0].resident_bytes)
        assert info is not None and info.is_elf, info
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = screen_text(app)
        assert "Resident pages by section" in text
        if info.build_id:
            assert info.build_id in text
        assert ".text" in text


@run_async
async def test_step_keys_drive_a_steppable_source():
    src = ListSource([model(i) for i in range(5)])
    app = ErofsTopApp(src, elf=False, interval_s=3600)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(100):
            if app.models_seen >= 1:
                break
            await pilot.pause(0.02)
        await pilot.press("n")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.paused and src.index == 1
        assert app.history.latest is src.models[1]
        await pilot.press("n", "n")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert src.index == 3
        await pilot.press("b")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert src.index == 2 and app.history.latest is src.models[2]
        await pilot.press("greater_than_sign")
        assert src.speed == 2.0
        assert "replay model 3/5 x2" in screen_text(app)
    app.stop_collector()


# ------------------------------------------------------------------ mouse
@run_async
async def test_mouse_click_header_sorts_row_selects_bar_switches():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        t = app.table()
        x_dup = sum(w + 1 for c, w in t.layout_columns[:2]) + 2     # inside DUPLICATE
        await pilot.click(t, offset=(x_dup, 0))
        assert t.sort_column.key == "duplicate"
        await pilot.click(t, offset=(x_dup, 0))
        assert not t.sort_descending                                 # second click reverses
        await pilot.click(t, offset=(3, 2))                           # second row
        assert t.cursor_index == 1
        await pilot.click(t, offset=(3, 2))                           # again: detail
        assert isinstance(app.screen, DetailScreen)
        await pilot.press("escape")
        bar = app.query_one("#viewbar")
        await pilot.click(bar, offset=(18, 0))                        # " 2 Images "
        assert app.active_view == 1


# ------------------------------------------------------------------ fading
@run_async
async def test_vanished_row_fades_and_goes_after_grace():
    app = ErofsTopApp(None, elf=False, grace_s=5)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot, steps=(0,))
        app.ingest(model(1, drop_cgroups=(103,)))                     # t=2: gone
        await pilot.pause()
        assert 103 in app.table().rows and app.table().fades[103] > 0
        assert "docker:0123456789ab (gone)" in screen_text(app)
        assert "+1 gone" in screen_text(app)
        # the totals row counts live rows only
        assert "TOTAL 2" in screen_text(app)
        app.ingest(model(2, drop_cgroups=(103,)))                     # t=4: still fading
        await pilot.pause()
        assert 103 in app.table().rows
        app.ingest(model(4, drop_cgroups=(103,)))                     # t=8 >= 2+5: dropped
        await pilot.pause()
        assert 103 not in app.table().rows
        assert "docker:0123456789ab" not in screen_text(app)


# ------------------------------------------------------------------ layout
def _number_cells_uncut(table):
    for key in table.order:
        row = table.rows[key]
        for col, width in table.layout_columns:
            if col.flex:
                continue
            text = col.text(key, row)
            assert len(text) <= width, (col.key, text, width)


@pytest.mark.parametrize("view", ["1", "2", "3"])
@run_async
async def test_80x24_has_no_cut_numbers(view):
    huge = model(1)
    for c in huge.containers:
        c.resident_bytes = c.duplicate_bytes = 1023 * (1 << 50)       # 1023 PiB
        c.inserted_bytes = c.evicted_bytes = c.readahead_bytes = 1 << 62
        c.read_folio_count = 10 ** 15
    for f in huge.files:
        f.resident_bytes = f.duplicate_bytes = f.size = 999 * (1 << 40)
        f.copies = 999
    for m in huge.mounts:
        m.resident_bytes = m.backing_resident_bytes = m.duplicate_bytes = 1000 * (1 << 30)
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        app.ingest(model(0))
        app.ingest(huge)
        await pilot.press(view)
        await pilot.pause()
        t = app.table()
        _number_cells_uncut(t)
        text = screen_text(app)
        for key in t.order:
            for col, _ in t.layout_columns:
                if not col.flex:
                    assert col.text(key, t.rows[key]) in text
        assert all(len(line) <= 80 for line in text.splitlines())


@run_async
async def test_300_columns_shows_every_column():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(300, 30)) as pilot:
        await started(app, pilot)
        for view in "123":
            await pilot.press(view)
            assert app.table().hidden_columns == []
        await pilot.press("1")
        assert "RESIDENT TREND" in screen_text(app)


@run_async
async def test_narrow_terminal_hides_columns_and_says_so():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        hidden = [c.key for c in app.table().hidden_columns]
        assert "trend" in hidden
        assert "cols hidden (all at" in screen_text(app)


@run_async
async def test_terminal_too_small_message_and_recovery():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(40, 10)) as pilot:
        await started(app, pilot)
        text = screen_text(app)
        assert "Terminal too small: 40x10" in text
        assert f"at least {MIN_WIDTH}x{MIN_HEIGHT}" in text
        await pilot.resize_terminal(80, 24)
        await pilot.pause()
        assert "Terminal too small" not in screen_text(app)
        assert "CONTAINER" in screen_text(app)


@run_async
async def test_no_color_still_shows_the_cursor(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await started(app, pilot)
        assert app.no_color
        strip = app.table().render_line(1)               # the cursor row
        assert any(seg.style and (seg.style.reverse or seg.style.bold) for seg in strip)


# ------------------------------------------------------------------ header and degraded states
@run_async
async def test_full_tier_shows_sharing_saved_and_snapshot_tier_warns():
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(120, 30)) as pilot:
        m = model(0, tier=TIER_FULL)
        m.totals.sharing_saved_bytes = 7 * MiB
        m.containers[0].shared_bytes = 5 * MiB
        app.ingest(m)
        await pilot.pause()
        text = screen_text(app)
        assert "sharing saved 7.0 MiB" in text and "could save" not in text
        assert "SHARED" in text and "5.0 MiB" in text     # SHARED column is measured
        app.ingest(model(1, tier=TIER_SNAPSHOT))
        await pilot.pause()
        text = screen_text(app)
        assert "! snapshot tier: no BPF" in text
        # no rates on this tier: the rate columns go away instead of showing made-up zeros
        assert "INSERT/s" not in text and "MISSES/s" not in text and "SHARED" not in text
        assert "cols hidden" not in text                # not hidden for lack of width


@run_async
async def test_warning_line_shows_degraded_health():
    m = model(1)
    m.health.unresolved_cgroups = 2
    m.health.lost_events = 1500
    m.health.maps[0].entries = 65000
    m.health.warnings.append("probe filemap_add detached")
    m.health.files_total = 5000
    app = ErofsTopApp(None, elf=False)
    async with app.run_test(size=(200, 30)) as pilot:
        app.ingest(model(0))
        app.ingest(m)
        await pilot.pause()
        text = screen_text(app)
        for phrase in ("2 cgroup(s) unresolved", "1.5k events lost", "map pages 99% full",
                       "probe filemap_add detached", "files: top 200 of 5.0k listed"):
            assert phrase in text, phrase


class FailingSource:
    tier = "tracepoint"

    def __init__(self):
        self.calls = 0
        self.closed = False

    def refresh(self):
        self.calls += 1
        if self.calls == 1:
            return model(0)
        raise OSError("bpf map read failed: No such device")

    def close(self):
        self.closed = True


@run_async
async def test_source_errors_show_in_the_header_and_the_ui_keeps_going():
    src = FailingSource()
    app = ErofsTopApp(src, elf=False, interval_s=0.05)
    async with app.run_test(size=(120, 30)) as pilot:
        await pause_until(pilot, lambda: src.calls >= 3)
        text = screen_text(app)
        assert "refresh failed: bpf map read failed: No such device" in text
        assert "/erofs-top-demo/ctr-a" in text              # last good data still shown
        await pilot.press("down")
        assert app.table().cursor_key == 102
    app.stop_collector()
    assert not app._thread.is_alive()


@run_async
async def test_the_ui_shows_what_the_real_refresh_made_of_a_scripted_source():
    probe = ScriptedProbeSource(containers=3)
    col = fixture_collector(probe)
    app = ErofsTopApp(col, elf=False, interval_s=0.05)
    async with app.run_test(size=(160, 30)) as pilot:
        await pause_until(pilot, lambda: probe.reads >= 2)
        text = screen_text(app)
    app.stop_collector()
    for i in range(3):
        assert cgroup_path(i) in text, text
    # the third cgroup holds 3 pages of the library: 12.0 KiB (4 KiB pages)
    assert "12.0 KiB" in text


def test_run_app_closes_the_source_even_when_the_app_fails(monkeypatch):
    src = ListSource([model(0)])

    def boom(self, *a, **kw):
        raise RuntimeError("terminal went away")
    monkeypatch.setattr(ErofsTopApp, "run", boom)
    with pytest.raises(RuntimeError):
        run_app(src)
    assert src.closed


# ------------------------------------------------------------------ command line
def test_top_command_help_lists_the_options():
    res = CliRunner().invoke(top_command, ["--help"])
    assert res.exit_code == 0
    for opt in ("--interval", "--cgroup-root", "--sort", "--filter", "--no-bpf", "--grace"):
        assert opt in res.output


@pytest.mark.parametrize("args, phrase", [
    (["--sort", "bogus"], "Invalid value for '--sort'"),
    (["--interval", "0"], "Invalid value for '--interval'"),
    (["--cgroup-root", "/no/such/dir"], "does not exist"),
])
def test_top_command_bad_input_is_one_line(args, phrase):
    res = CliRunner().invoke(top_command, args)
    assert res.exit_code == 2
    assert phrase in res.output
    assert "Traceback" not in res.output


def test_top_command_without_a_terminal_says_so():
    res = CliRunner().invoke(top_command, ["--no-bpf"])
    assert res.exit_code == 1
    assert "needs a terminal" in res.output
    assert "Traceback" not in res.output


class SlowSource(ListSource):
    def refresh(self):
        time.sleep(0.15)     # not a wait: this source is slow on purpose (longer than the interval)
        return super().refresh()


@run_async
async def test_a_refresh_slower_than_the_interval_is_reported():
    src = SlowSource([model(i) for i in range(20)])
    app = ErofsTopApp(src, elf=False, interval_s=0.1)
    async with app.run_test(size=(120, 30)) as pilot:
        await pause_until(pilot, lambda: app.models_seen >= 2)
        assert "longer than the 100 ms interval" in screen_text(app)
    app.stop_collector()


@pytest.mark.parametrize("exc, phrase", [
    (ImportError("No module named 'bcc'"), "BPF needs BCC"),
    (RuntimeError("Failed to load BPF program: Operation not permitted\nmore"),
     "cannot start collecting: Failed to load BPF program: Operation not permitted"),
])
def test_top_command_collector_failures_are_one_line(monkeypatch, exc, phrase):
    import erofs_top.tiers as tiers

    def failing_open(**kw):
        raise exc
    monkeypatch.setattr(tiers, "open_collector", failing_open)
    monkeypatch.setenv("EROFS_TOP_FORCE_TUI", "1")
    res = CliRunner().invoke(top_command, [])
    assert res.exit_code == 1
    assert phrase in res.output
    assert "Traceback" not in res.output and "more" not in res.output
