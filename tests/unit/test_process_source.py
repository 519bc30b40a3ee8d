"""ProcessSource: the real Collector's refresh() in a child process, as
`erofs-top top` runs it (erofs_top/tui/process_source.py).  Real forks and
pipes; the probe source is the scripted one (BPF needs root)."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from erofs_top.errors import CollectorError
from erofs_top.tui.app import ErofsTopApp
from erofs_top.tui import process_source
from erofs_top.tui.process_source import ProcessSource

from fixture_sources import ScriptedProbeSource, cgroup_path, fixture_collector
from tui_fixtures import pause_until, run_async, screen_text


def _rows(model):
    """What the views show of a Model, without its times."""
    return ([(c.cgroup_id, c.cgroup, c.resident_bytes, c.duplicate_bytes, c.files_count)
             for c in model.containers],
            [(f.dev, f.ino, f.path, f.resident_bytes, f.duplicate_bytes, f.copies)
             for f in model.files],
            [(m.dev, m.mountpoint, m.resident_bytes, m.duplicate_bytes) for m in model.mounts],
            (model.totals.resident_bytes, model.totals.duplicate_bytes), model.tier)


class MarkedSource(ScriptedProbeSource):
    """The scripted probe source, leaving a file behind when closed (what the
    child did is seen from the parent) and failing the reads listed in
    ``fail_reads`` (1-based)."""

    def __init__(self, closed_mark: Path, fail_reads=(), containers: int = 3):
        super().__init__(containers=containers)
        self.closed_mark = closed_mark
        self.fail_reads = set(fail_reads)

    def read(self):
        self.fail = self.reads + 1 in self.fail_reads
        if self.fail:
            self.reads += 1
        return super().read()

    def close(self):
        self.closed_mark.write_text(f"{os.getpid()} {self.reads}")


def _wait_exit(src: ProcessSource, timeout_s: float = 30.0) -> int | None:
    # generous: join returns as soon as the child exits
    src._proc.join(timeout_s)
    return src._proc.exitcode


@pytest.mark.parametrize("piece_rows", [1, process_source.PIECE_ROWS])
def test_refresh_runs_the_real_collector_in_another_process(tmp_path, monkeypatch, piece_rows):
    # rows cross in pieces: one row a piece puts every list in several pieces
    monkeypatch.setattr(process_source, "PIECE_ROWS", piece_rows)
    mark = tmp_path / "closed"
    local_probe = MarkedSource(mark)
    with ProcessSource(lambda: fixture_collector(local_probe)) as src:
        assert src.pid not in (None, os.getpid())
        assert src.tier == local_probe.tier and src.page_size == local_probe.page_size
        models = [src.refresh(), src.refresh()]
    # the same script through the real Collector here gives the same rows
    here = fixture_collector(MarkedSource(tmp_path / "here"))
    expected = [here.refresh(), here.refresh()]
    assert [_rows(m) for m in models] == [_rows(m) for m in expected]
    assert [cgroup_path(i) for i in range(3)] == [c.cgroup for c in
                                                 sorted(models[1].containers,
                                                        key=lambda c: c.cgroup_id)]
    # this process's copy of the source was never read: the child's was, and closed
    assert local_probe.reads == 0
    child_pid, child_reads = mark.read_text().split()
    assert int(child_pid) != os.getpid() and int(child_reads) == 2
    assert _wait_exit(src) == 0


def test_a_failing_refresh_raises_here_and_the_next_one_works(tmp_path):
    src = ProcessSource(lambda: fixture_collector(MarkedSource(tmp_path / "c", fail_reads={2})))
    try:
        first = src.refresh()
        with pytest.raises(RuntimeError, match="map read failed"):
            src.refresh()
        third = src.refresh()
        assert _rows(third)[0] == _rows(first)[0]
    finally:
        src.close()
    assert (tmp_path / "c").exists()


class Unpicklable(Exception):
    def __init__(self, a, b):           # pickle calls Unpicklable(*args): one arg only
        super().__init__(f"{a} and {b}")


def test_open_errors_are_raised_here_with_their_type_or_text(tmp_path):
    def refuse():
        raise CollectorError("no probe loaded", ", or --no-bpf")
    with pytest.raises(CollectorError) as info:
        ProcessSource(refuse)
    assert str(info.value) == "no probe loaded, or --no-bpf"

    def odd():
        raise Unpicklable("first line\nsecond", "b")
    with pytest.raises(RuntimeError) as info:
        ProcessSource(odd)
    assert str(info.value) == "first line"


def test_the_child_closes_its_source_when_the_ui_process_goes(tmp_path):
    mark = tmp_path / "closed"
    src = ProcessSource(lambda: fixture_collector(MarkedSource(mark)))
    src.refresh()
    src._conn.close()              # what the UI process dying does to the pipe
    assert _wait_exit(src) == 0
    assert mark.read_text().split()[1] == "1"


@pytest.fixture(params=["interpreter", "erofs-top polling"])
def parent_signal_state(request):
    """The parent's stop handling when it forks the child: the interpreter's
    (SIGINT raises), or erofs-top's POLICY installed and polling, as `top`'s
    UI runs (and as a CLI test run in this process before leaves it)."""
    from erofs_top.signals import POLICY, STOP_SIGNALS
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    saved_raising = POLICY.raising
    if request.param == "erofs-top polling":
        POLICY.install()
        POLICY.raising = False
    yield request.param
    POLICY.raising = saved_raising
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def test_the_child_closes_its_source_on_a_stop_signal(tmp_path, parent_signal_state):
    mark = tmp_path / "closed"
    src = ProcessSource(lambda: fixture_collector(MarkedSource(mark)))
    src.refresh()
    os.kill(src.pid, signal.SIGINT)
    assert _wait_exit(src) is not None
    assert mark.exists()
    with pytest.raises(RuntimeError, match="collector process ended"):
        src.refresh()
    src.close()


def test_a_refresh_after_the_child_died_says_so(tmp_path):
    src = ProcessSource(lambda: fixture_collector(MarkedSource(tmp_path / "c")))
    os.kill(src.pid, signal.SIGKILL)
    assert _wait_exit(src) == -signal.SIGKILL
    with pytest.raises(RuntimeError, match=r"collector process ended \(exit status -9\)"):
        src.refresh()
    src.close()
    with pytest.raises(RuntimeError, match="closed"):
        src.refresh()


@run_async
async def test_the_ui_shows_what_the_child_process_refreshed(tmp_path):
    mark = tmp_path / "closed"
    src = ProcessSource(lambda: fixture_collector(MarkedSource(mark)))
    app = ErofsTopApp(src, elf=False, interval_s=0.05)
    async with app.run_test(size=(160, 30)) as pilot:
        await pause_until(pilot, lambda: app.models_seen >= 2)
        text = screen_text(app)
        await pilot.press("3")
        await pause_until(pilot, lambda: "libapp.so" in screen_text(app))
        files_text = screen_text(app)
    app.stop_collector()
    src.close()
    for i in range(3):
        assert cgroup_path(i) in text, text
    assert "12.0 KiB" in text           # the third cgroup: 3 pages of the library
    assert "/run/ctr-a/rootfs/usr/lib/libapp.so" in files_text, files_text
    assert mark.exists()                # close() waited for the child to close its source


def test_a_stop_signal_while_the_child_opens_stops_the_child(tmp_path, monkeypatch):
    """Ctrl-C during a long open (a BCC compile): the child is told to stop too,
    not waited for until the close timeout (longer than the open here)."""
    monkeypatch.setattr(process_source, "CLOSE_TIMEOUT_S", 120.0)
    mark = tmp_path / "open"

    def slow_open():
        # the child's own stop handling (POLICY in erofs-top): a signal raises
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            time.sleep(60)      # stands for a compile that takes long
        except KeyboardInterrupt:
            mark.write_text("stopped")
            raise
        mark.write_text("slept")

    def interrupt(*_):
        raise KeyboardInterrupt
    old = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            ProcessSource(slow_open)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert mark.read_text() == "stopped"


def test_top_refreshes_in_a_child_process_and_closes_it(tmp_path, monkeypatch):
    """The `top` command's wiring: its source is a ProcessSource around
    open_collector (here the real Collector on the scripted probe source; the
    UI replaced by one refresh, since only where it runs is checked here)."""
    from click.testing import CliRunner
    import erofs_top.tiers as tiers
    import erofs_top.tui.app as app_module
    from erofs_top.tui.cli import top_command
    mark = tmp_path / "closed"
    monkeypatch.setattr(tiers, "open_collector",
                        lambda **kw: fixture_collector(MarkedSource(mark)))
    seen = {}

    def one_refresh_instead_of_the_ui(source, **kw):
        seen["pid"] = source.pid
        seen["cgroups"] = sorted(c.cgroup for c in source.refresh().containers)
        source.close()
    monkeypatch.setattr(app_module, "run_app", one_refresh_instead_of_the_ui)
    monkeypatch.setenv("EROFS_TOP_FORCE_TUI", "1")
    res = CliRunner().invoke(top_command, ["--interval", "1"])
    assert res.exit_code == 0, res.output
    assert seen["pid"] != os.getpid()
    assert seen["cgroups"] == [cgroup_path(i) for i in range(3)]
    closed_by, reads = mark.read_text().split()
    assert int(closed_by) == seen["pid"] and reads == "1"


def _replay_in_child(tmp_path):
    """RecordingProcessSource on the synthetic demo recording; the child's
    replay clock moves 1 s per call (deterministic offsets)."""
    import itertools
    from erofs_top.record import synth
    from erofs_top.record.reader import Recording
    from erofs_top.record.source import RecordingSource
    from erofs_top.tui.process_source import RecordingProcessSource
    rec = Recording.open(synth.write(str(tmp_path / "demo.rec")))
    ticks = itertools.count()
    src = RecordingProcessSource(lambda: RecordingSource(rec, clock=lambda: float(next(ticks))))
    return src, rec, synth


def test_a_recording_steps_seeks_and_changes_speed_in_the_child(tmp_path):
    src, rec, synth = _replay_in_child(tmp_path)
    all_pages = 2 * (synth.LIB_PAGES + synth.DATA_PAGES)
    try:
        assert "+0.0 s of 6.0 s" in src.position() and src.speed == 1.0
        first = src.refresh()
        assert first.totals.resident_bytes == 8 * synth.PAGE        # the seed
        m = src.step(4)
        assert m.totals.resident_bytes == all_pages * synth.PAGE
        assert "+4.0 s of 6.0 s" in src.position()
        m = src.step(-1)                    # back: ctr-b has not read yet
        assert m.totals.resident_bytes == (synth.LIB_PAGES + synth.DATA_PAGES) * synth.PAGE
        m = src.seek(rec.started_at + 5.5)
        assert m.totals.resident_bytes == (all_pages - 64) * synth.PAGE
        assert "+5.5 s" in src.position()
        src.seek(1.0)
        src.speed = 0.5                     # reaches the child with the next call
        src.refresh()                       # 1 s of (child) clock at x0.5
        assert src.speed == 0.5 and "+1.5 s" in src.position()
    finally:
        src.close()


@run_async
async def test_the_replay_ui_steps_a_recording_in_the_child(tmp_path):
    src, _rec, _synth = _replay_in_child(tmp_path)
    app = ErofsTopApp(src, interval_s=0.05, elf=False, title="erofs-top replay demo.rec")
    async with app.run_test(size=(120, 30)) as pilot:
        await pause_until(pilot, lambda: app.models_seen >= 1)
        await pilot.press("p")
        seen = app.models_seen
        await pilot.press("n")              # one step (1 s) from where it is
        await pause_until(pilot, lambda: app.models_seen > seen)
        position = src.position()
        await pause_until(pilot, lambda: position in screen_text(app))
        text = screen_text(app)
        await pilot.press("greater_than_sign")
        speed = src.speed
    app.stop_collector()
    src.close()
    assert "replay" in text and position.split(" (")[1].split(",")[0] in text, (position, text)
    assert speed == 2.0
