"""erofs_top.tui.history: rates from counter differences, series, fading rows."""
import pytest

from erofs_top.tui.history import (CONTAINERS, FILES, MOUNTS, NO_RATES, History, Ring, row_key)
from erofs_top.model import TIER_TRACEPOINT

from tui_fixtures import MiB, model


def test_ring_keeps_the_last_capacity_samples():
    r = Ring(3)
    assert r.values() == [] and r.last() is None
    for v in range(1, 6):
        r.append(v)
    assert r.values() == [3, 4, 5]
    assert r.last() == 5
    assert len(r) == 3
    with pytest.raises(ValueError):
        Ring(0)


def test_row_keys():
    m = model(0)
    assert row_key(CONTAINERS, m.containers[0]) == 101
    assert row_key(MOUNTS, m.mounts[0]) == "7:3"
    assert row_key(FILES, m.files[0]) == ("7:3", 36)
    with pytest.raises(ValueError):
        row_key("pods", m.containers[0])


def test_rates_are_counter_differences_over_model_time():
    h = History()
    h.push(model(0))
    assert h.rates(CONTAINERS, 101) is NO_RATES          # one sample: unknown, not zero
    h.push(model(1))                                      # 2 s later
    r = h.rates(CONTAINERS, 101)
    assert r.insert_bytes_per_s == pytest.approx(4 * MiB / 2)
    assert r.evict_bytes_per_s == pytest.approx(1 * MiB / 2)
    assert r.readahead_bytes_per_s == pytest.approx(2 * MiB / 2)
    assert r.read_folio_per_s == pytest.approx(10 / 2)
    assert h.rates(CONTAINERS, 102).insert_bytes_per_s == 0
    assert h.node_rates()["insert_bytes_per_s"] == pytest.approx(5 * MiB / 2)
    # bpf_run_time_ns grows 1.2 ms per 2 s step -> 0.6 ms of CPU per second
    assert h.bpf_cost() == pytest.approx(0.0006)
    assert h.lost_events_delta() == 0


def test_counter_reset_gives_unknown_rate_not_negative():
    h = History()
    h.push(model(3))
    later = model(0, t0=model(3).ended_at + 2 - 0)       # counters back at step 0, time moves on
    h.push(later)
    assert h.rates(CONTAINERS, 101).insert_bytes_per_s is None


def test_series_are_bounded_and_per_row():
    h = History(capacity=4)
    for step in range(10):
        h.push(model(step))
    s = h.series(CONTAINERS, 101)
    assert s.resident_bytes.values() == [13 * MiB] * 4
    assert h.series(MOUNTS, "7:4").duplicate_bytes.values() == [9 * MiB] * 4
    assert h.series(FILES, ("7:3", 36)) is None           # files keep no series
    assert len(h.times) == 4 and h.samples_count == 10


def test_vanished_row_fades_then_goes_after_grace():
    h = History(grace_s=5)
    h.push(model(0))
    h.push(model(1, drop_cgroups=(103,)))                 # t = 2: 103 vanished
    assert 103 not in h.rows(CONTAINERS)
    assert 103 in h.gone_rows(CONTAINERS)
    assert h.fade(CONTAINERS, 103) == 0.0                 # just gone
    h.push(model(2, drop_cgroups=(103,)))                 # t = 4
    assert h.fade(CONTAINERS, 103) == pytest.approx(2 / 5)
    assert h.series(CONTAINERS, 103) is not None
    h.push(model(4, drop_cgroups=(103,)))                 # t = 8 > 2 + 5
    assert 103 not in h.gone_rows(CONTAINERS)
    assert h.series(CONTAINERS, 103) is None
    assert [k for k, _, _ in h.iter_rows(CONTAINERS)] == [101, 102]


def test_row_that_comes_back_is_live_again():
    h = History(grace_s=30)
    h.push(model(0))
    h.push(model(1, drop_cgroups=(103,)))
    h.push(model(2))
    assert 103 in h.rows(CONTAINERS) and 103 not in h.gone_rows(CONTAINERS)
    assert h.fade(CONTAINERS, 103) == 0.0
    assert len(h.series(CONTAINERS, 103).resident_bytes) == 2


def test_time_going_backwards_resets():
    h = History()
    h.push(model(5))
    h.push(model(6))
    h.push(model(1))                                      # replay seeked back
    assert h.samples_count == 1 and h.previous is None
    assert h.rates(CONTAINERS, 101) is NO_RATES


def test_bad_parameters():
    with pytest.raises(ValueError):
        History(capacity=1)
    with pytest.raises(ValueError):
        History(grace_s=-1)


def test_tier_does_not_matter_to_history():
    h = History()
    h.push(model(0, tier=TIER_TRACEPOINT))
    assert h.latest.tier == TIER_TRACEPOINT


def test_series_keep_order_when_the_ring_wraps():
    h = History(capacity=3)
    for step in range(5):
        m = model(step)
        m.containers[0].resident_bytes = step * MiB
        m.containers[0].duplicate_bytes = step
        h.push(m)
    s = h.series(CONTAINERS, 101)
    assert s.resident_bytes.values() == [2 * MiB, 3 * MiB, 4 * MiB]
    assert s.duplicate_bytes.values() == [2, 3, 4]
    assert s.resident_bytes.last() == 4 * MiB and len(s.duplicate_bytes) == 3


def test_push_returns_what_it_let_go_of():
    h = History()
    first = model(0)
    assert h.push(first)[0] is None
    retired = h.push(model(1))
    assert retired[0] is first           # a UI may free it in another thread


def test_files_are_indexed_lazily_and_not_faded():
    h = History(grace_s=30)
    h.push(model(0))
    assert ("7:3", 36) in h.rows(FILES)
    m = model(1)
    m.files = m.files[1:]                 # a file left the (capped) list
    h.push(m)
    assert ("7:3", 36) not in h.rows(FILES)
    assert not h.gone_rows(FILES)
