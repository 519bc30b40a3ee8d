"""Exporter._prerender: a refresh encodes a scraped format only when a scrape
of it is due before the next refresh; every body served is the encoder's
for the Model of that moment, encoded ahead or by the scrape itself."""
from __future__ import annotations

import gzip

from fixture_sources import ScriptedProbeSource, fixture_collector
from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_latest

from erofs_top.exporter.server import Exporter

OM = "application/openmetrics-text;version=1.0.0"
SCRAPE_SECONDS = b"erofs_top_exporter_scrape_duration_seconds "


class _ManualClock:
    """A stand-in for time.monotonic that the test moves (no waiting)."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _exporter(interval: float = 10.0):
    probe = ScriptedProbeSource(containers=2)
    ex = Exporter(fixture_collector(probe), interval=interval, log=lambda m: None)
    clock = ex._clock = _ManualClock()
    return ex, probe, clock


def _scrape_checked(ex, om_gzip: bool) -> bytes:
    """One scrape; its body must be what prometheus-client encodes of the
    Model published now (not one kept from an older Model)."""
    env = {"PATH_INFO": "/metrics"}
    if om_gzip:
        env.update(HTTP_ACCEPT=OM, HTTP_ACCEPT_ENCODING="gzip")
    body = b"".join(ex(env, lambda *a: None))
    if om_gzip:
        assert _steady(gzip.decompress(body)) == _steady(om_latest(ex.registry))
    else:
        assert _steady(body) == _steady(generate_latest(ex.registry))
    return body


def _steady(body: bytes) -> bytes:
    """A body less the time its previous encode took (the one sample an
    encode changes: exporter_scrape_duration_seconds)."""
    lines = body.split(b"\n")
    assert sum(ln.startswith(SCRAPE_SECONDS) for ln in lines) == 1
    return b"\n".join(ln for ln in lines if not ln.startswith(SCRAPE_SECONDS))


def _run(ex, probe, clock, *, scrape_every: float, until: float, om_gzip: bool = True,
         refresh_every: float = 10.0, first_refresh: float = 5.0) -> list[bytes]:
    """Refreshes at first_refresh + k * refresh_every (each with one more
    container: every Model's body differs), scrapes at 0 + k * scrape_every."""
    events = sorted([(k * scrape_every, "scrape") for k in range(int(until / scrape_every) + 1)]
                    + [(first_refresh + k * refresh_every, "refresh")
                       for k in range(int((until - first_refresh) / refresh_every) + 1)])
    bodies = []
    for t, what in events:
        clock.t = t
        if what == "refresh":
            probe.containers += 1
            assert ex.refresh_once()
        else:
            bodies.append(_scrape_checked(ex, om_gzip))
    return bodies


def test_scrapes_slower_than_refreshes_skip_the_bodies_nobody_fetches():
    """30 s scrapes, 10 s refreshes: after the first two scrapes (the period
    known), one refresh of three encodes, and no scrape waits for an encode."""
    ex, probe, clock = _exporter()
    assert ex.refresh_once()
    bodies = _run(ex, probe, clock, scrape_every=30.0, until=300.0)
    assert len(set(bodies)) == len(bodies) == 11        # every scrape a newer Model
    assert ex.renders_on_demand == 1    # the first scrape only (a format not asked for before)
    # refreshes at 5, 15, 25: one scrape seen (period unknown), each encodes;
    # then 35 ... 295 (27): only the last before each scrape (55, 85, ... 295: 9)
    assert ex.prerenders == 3 + 9 and ex.prerenders_skipped == 18


def test_scrapes_faster_than_refreshes_get_every_body_encoded_ahead():
    ex, probe, clock = _exporter()
    assert ex.refresh_once()
    _run(ex, probe, clock, scrape_every=4.0, until=100.0, om_gzip=False)
    assert ex.renders_on_demand == 1 and ex.prerenders_skipped == 0 and ex.prerenders == 10


def test_one_scrape_seen_every_refresh_encodes_as_before():
    ex, probe, clock = _exporter()
    assert ex.refresh_once()
    _scrape_checked(ex, True)
    for t in range(10, 200, 10):
        clock.t = float(t)
        probe.containers += 1
        assert ex.refresh_once()
    assert ex.prerenders == 19 and ex.prerenders_skipped == 0
    assert ex.renders_on_demand == 1
    _scrape_checked(ex, True)
    assert ex.renders_on_demand == 1


def test_a_scrape_that_comes_early_encodes_the_current_model_itself():
    """A period of 60 s learnt, then a scrape 12 s after the last one: the
    refresh between skipped the body; the scrape encodes it, and it is the
    encoder's for the Model published then."""
    ex, probe, clock = _exporter()
    assert ex.refresh_once()
    _run(ex, probe, clock, scrape_every=60.0, until=60.0)     # scrapes at 0, 60; refreshes 5..55
    clock.t = 65.0
    probe.containers += 1
    assert ex.refresh_once()
    assert ex.prerenders_skipped >= 1 and not ex._cache      # next scrape due at 120
    before = ex.renders_on_demand
    clock.t = 72.0
    body = _scrape_checked(ex, True)
    assert ex.renders_on_demand == before + 1
    assert b"".join(ex({"PATH_INFO": "/metrics", "HTTP_ACCEPT": OM, "HTTP_ACCEPT_ENCODING": "gzip"},
                       lambda *a: None)) == body    # kept for the rest of this Model
    assert ex.renders_on_demand == before + 1


def test_scrape_periods_missed_meanwhile_still_predict_the_next_one():
    """A 30 s period learnt, then scrapes stop for a while (a Prometheus
    restart): the refreshes before each expected time still encode."""
    ex, probe, clock = _exporter()
    assert ex.refresh_once()
    _run(ex, probe, clock, scrape_every=30.0, until=30.0)      # scrapes at 0 and 30
    due = []
    for t in (95.0, 105.0, 115.0, 125.0):   # expected at 60, 90 (missed), then 120, 150
        clock.t = t
        probe.containers += 1
        n = ex.prerenders
        assert ex.refresh_once()
        due.append(ex.prerenders > n)
    # 95: next 120 > 95 + 10 + 3 (margin); 105: 120 > 118; 115: 120 <= 128;
    # 125: 120 is 5 s behind (past the margin): missed too, and 150 > 138
    assert due == [False, False, True, False]


def test_a_scraper_gone_for_a_week_still_predicts_its_next_scrape():
    """The next expected scrape after a long gap is found by arithmetic
    (not one step per missed period: a week at 30 s is 20,160 steps in every
    refresh while the scraper stays away)."""
    ex, probe, clock = _exporter()
    assert ex.refresh_once()
    _run(ex, probe, clock, scrape_every=30.0, until=30.0)      # scrapes at 0 and 30
    week = 7 * 24 * 3600.0
    due = []
    for t in (30.0 + week + 5.0, 30.0 + week + 20.0):   # expected at 30 + week, + 30
        clock.t = t
        probe.containers += 1
        n = ex.prerenders
        assert ex.refresh_once()
        due.append(ex.prerenders > n)
    # +5: 30 + week is 5 s behind (past the 3 s margin), the next at +30 > +5 + 13;
    # +20: +30 <= +20 + 13
    assert due == [False, True]
