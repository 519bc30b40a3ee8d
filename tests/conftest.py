"""Fixtures for every test directory."""
from __future__ import annotations

import signal

import pytest

from erofs_top.signals import POLICY, STOP_SIGNALS


@pytest.fixture(autouse=True)
def _stop_signals_restored():
    """A CLI test run in pytest's own process installs erofs-top's stop
    policy (signals.POLICY) there, and one that sends signals leaves it
    counting: later Ctrl-Cs to the suite were only counted (or forced an
    exit past the fixtures' clean-up), leaving mounts and cgroups behind.
    pytest's handlers and a fresh policy are put back after each test."""
    saved = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)
    POLICY.reset()
