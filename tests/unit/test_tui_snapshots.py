"""SVG snapshots of each view on fixed data (pytest-textual-snapshot).

Update after an intended change with:
    .venv/bin/python -m pytest tests/unit/test_tui_snapshots.py --snapshot-update
"""
from __future__ import annotations

import pytest

from erofs_top.model import TIER_FULL
from erofs_top.tui.app import ErofsTopApp

from fixture_advice import AdviceNode, advice_collector
from tui_fixtures import model

pytestmark = pytest.mark.timeout(120)


def fed(steps=(0, 1, 2, 3), **kw):
    """run_before hook: push fixed Models (no collector thread, no ELF reads)."""
    async def run_before(pilot):
        for step in steps:
            pilot.app.ingest(model(step, **kw))
        await pilot.pause()
    return run_before


def app():
    return ErofsTopApp(None, elf=False)


def test_containers_80x24(snap_compare):
    assert snap_compare(app(), terminal_size=(80, 24), run_before=fed())


def test_images_80x24(snap_compare):
    assert snap_compare(app(), press=["2"], terminal_size=(80, 24), run_before=fed())


def test_files_80x24(snap_compare):
    assert snap_compare(app(), press=["3"], terminal_size=(80, 24), run_before=fed())


def test_containers_wide_full_tier(snap_compare):
    assert snap_compare(app(), terminal_size=(200, 24), run_before=fed(tier=TIER_FULL))


def test_container_detail(snap_compare):
    assert snap_compare(app(), press=["enter"], terminal_size=(100, 40), run_before=fed())


def test_image_detail(snap_compare):
    assert snap_compare(app(), press=["2", "enter"], terminal_size=(100, 30), run_before=fed())


def test_help(snap_compare):
    assert snap_compare(app(), press=["question_mark"], terminal_size=(100, 30),
                        run_before=fed())


def test_filter_and_gone_row(snap_compare):
    async def run_before(pilot):
        pilot.app.ingest(model(0))
        pilot.app.ingest(model(1, drop_cgroups=(103,)))
        await pilot.pause()
    assert snap_compare(app(), press=["slash", *"demo"], terminal_size=(80, 24),
                        run_before=run_before)


def test_too_small(snap_compare):
    assert snap_compare(app(), terminal_size=(50, 12), run_before=fed())


def test_no_color(snap_compare, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    assert snap_compare(app(), terminal_size=(80, 24), run_before=fed())


def refreshed(scenario: str):
    """run_before hook: one real refresh of the Advice fixture node (fixture_advice.py)."""
    async def run_before(pilot):
        node = AdviceNode(scenario)
        pilot.app.ingest(advice_collector(node).refresh())
        await pilot.pause()
    return run_before


def test_advice_80x24(snap_compare):
    assert snap_compare(app(), press=["4"], terminal_size=(80, 24),
                        run_before=refreshed("actions"))


def test_advice_detail(snap_compare):
    assert snap_compare(app(), press=["4", "enter"], terminal_size=(80, 30),
                        run_before=refreshed("actions"))


def test_advice_nothing_to_advise(snap_compare):
    assert snap_compare(app(), press=["4"], terminal_size=(80, 24),
                        run_before=refreshed("unique"))
