"""Unit tests: no test leaves the process-wide GC freeze on (aggregate.FREEZE,
set by the exporter and the TUI): what a test froze is collectable again."""
from __future__ import annotations

import gc

import pytest


@pytest.fixture(autouse=True)
def _gc_freeze_off():
    yield
    from erofs_top.aggregate import FREEZE
    if FREEZE["mode"]:
        FREEZE["mode"] = ""
    gc.unfreeze()
