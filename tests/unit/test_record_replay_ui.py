"""`erofs-top replay`: the live UI on a small synthetic recording, driven by Pilot."""
from __future__ import annotations

import pytest

from erofs_top.record import synth
from erofs_top.record.reader import Recording
from erofs_top.record.source import RecordingSource
from erofs_top.tui.app import ErofsTopApp

from tui_fixtures import run_async, screen_text

pytestmark = pytest.mark.timeout(60)
PAGE = synth.PAGE
ALL_PAGES = 2 * (synth.LIB_PAGES + synth.DATA_PAGES)


async def until(pilot, cond, timeout_s=10.0):
    for _ in range(int(timeout_s / 0.05)):
        if cond():
            return
        await pilot.pause(0.05)
    raise AssertionError("condition not reached")


@run_async
async def test_replay_pause_step_speed_seek(tmp_path):
    rec = Recording.open(synth.write(str(tmp_path / "demo.rec")))
    now = [0.0]
    src = RecordingSource(rec, clock=lambda: now[0])
    app = ErofsTopApp(src, interval_s=0.5, elf=False, title="erofs-top replay demo.rec")
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.models_seen >= 1)
        # the first Model is the seed: 8 pages of ctr-a's library were resident
        assert app.history.latest.totals.resident_bytes == 8 * PAGE
        assert "replay" in screen_text(app) and "+0.0 s of 6.0 s" in screen_text(app)

        await pilot.press("p")                       # pause: the clock stops mattering
        assert app.paused
        seen = app.models_seen
        now[0] += 100.0
        await pilot.pause(0.8)
        assert app.models_seen == seen

        for _ in range(4):                           # n: one step (1 s) forward each
            await pilot.press("n")
            await until(pilot, lambda: app.models_seen > seen)
            seen = app.models_seen
        await until(pilot, lambda: src.offset_s == pytest.approx(4.0))
        await until(pilot, lambda: app.history.latest.totals.resident_bytes == ALL_PAGES * PAGE)
        text = screen_text(app)
        assert "/kubepods/ctr-a" in text and "/kubepods/ctr-b" in text
        assert "+4.0 s of 6.0 s" in text

        await pilot.press("b")                       # b: back one step: ctr-b not read yet
        await until(pilot, lambda: src.offset_s == pytest.approx(3.0))
        await until(pilot, lambda: app.history.latest.totals.resident_bytes
                    == (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE)

        await pilot.press("greater_than_sign")       # >: faster replay
        assert src.speed == 2.0
        await pilot.press("less_than_sign", "less_than_sign")
        assert src.speed == 0.5
        assert "x0.5" in screen_text(app)

        m = src.seek(rec.started_at + 5.5)           # jump to a time (unix seconds)
        assert m.totals.resident_bytes == (ALL_PAGES - 64) * PAGE

        await pilot.press("p")                       # resume: the clock moves the replay
        before = src.offset_s
        now[0] += 0.5
        await until(pilot, lambda: src.offset_s > before)
        await pilot.press("q")
