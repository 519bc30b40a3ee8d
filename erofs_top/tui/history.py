"""Bounded history of Models: per-row rates, sparkline series, fading rows.

The one history object every face shares (TUI, exporter, recorder replay).
It only reads Models: rates are differences of the Model's cumulative
counters between two refreshes, divided by the time between them
(``Model.ended_at``, so a replayed recording gives the same rates as the
live run did).

Rows are keyed by stable keys (``row_key``): ``cgroup_id`` for containers,
``dev`` for mounts, ``(dev, ino)`` for files.  A container or mount that
vanishes from the Model is kept, marked gone, for ``grace_s`` seconds of
Model time and then dropped, so a face can fade it out instead of letting it
blink away.  Files are indexed lazily (on first read after a push) and not
faded: the files list is a capped top-N, so a file leaving it has not
vanished.

Memory is bounded: at most ``capacity`` samples per series, series only for
containers and mounts (files keep their last object only), one Model kept
(plus the previous Model's container counters, for rates).
"""
from __future__ import annotations

from array import array
from operator import attrgetter
from dataclasses import dataclass
from typing import Any, Hashable, Iterator, NamedTuple

from ..model import Container, File, Model, Mount

CONTAINERS = "containers"
MOUNTS = "mounts"
FILES = "files"
ROW_KINDS = (CONTAINERS, MOUNTS, FILES)
SERIES_KINDS = (CONTAINERS, MOUNTS)    # kinds that keep resident/duplicate series
# Kinds indexed only when someone reads them, and never faded: at 50,000 files,
# indexing every Model costs more than the rest of a refresh, most refreshes nobody
# looks at files, and a file leaving the capped top-N list has not vanished anyway.
LAZY_KINDS = (FILES,)

DEFAULT_CAPACITY = 180                  # 6 minutes at the default 2 s interval
DEFAULT_GRACE_S = 30.0


def row_key(kind: str, row: Any) -> Hashable:
    """Stable key of a Model row: cgroup_id, dev, or (dev, ino)."""
    if kind == CONTAINERS:
        return row.cgroup_id
    if kind == MOUNTS:
        return row.dev
    if kind == FILES:
        return (row.dev, row.ino)
    raise ValueError(f"unknown row kind {kind!r} (one of {', '.join(ROW_KINDS)})")


def _rows_of(model: Model, kind: str) -> list:
    if kind == CONTAINERS:
        return model.containers
    if kind == MOUNTS:
        return model.mounts
    if kind == FILES:
        return model.files
    raise ValueError(f"unknown row kind {kind!r}")


_KEY_GETTERS = {
    CONTAINERS: attrgetter("cgroup_id"),
    MOUNTS: attrgetter("dev"),
    FILES: attrgetter("dev", "ino"),          # a (dev, ino) tuple
}


class Ring:
    """Fixed-capacity ring of integers (array-backed: 8 bytes a sample)."""
    __slots__ = ("capacity", "_data", "_head")

    def __init__(self, capacity: int):
        if capacity < 1:
            raise ValueError("ring capacity must be at least 1")
        self.capacity = capacity
        self._data = array("q")
        self._head = 0          # index of the oldest sample once full

    def append(self, value: int) -> None:
        if len(self._data) < self.capacity:
            self._data.append(value)
        else:
            self._data[self._head] = value
            self._head = (self._head + 1) % self.capacity

    def values(self) -> list[int]:
        """Oldest first."""
        d = self._data
        return list(d[self._head:]) + list(d[:self._head])

    def last(self) -> int | None:
        if not self._data:
            return None
        return self._data[(self._head - 1) % len(self._data)]

    def __len__(self) -> int:
        return len(self._data)


class _SeriesView:
    """One field of a RowSeries, read like a Ring (values(), last(), len)."""
    __slots__ = ("_series", "_field")

    def __init__(self, series: "RowSeries", field: int):
        self._series, self._field = series, field

    def values(self) -> list[int]:
        """Oldest first."""
        s = self._series
        d = s._data[self._field::2]
        h = s._head
        return list(d[h:]) + list(d[:h])

    def last(self) -> int | None:
        v = self.values()
        return v[-1] if v else None

    def __len__(self) -> int:
        return len(self._series._data) // 2


class RowSeries:
    """Resident and duplicate bytes of one row, one sample per Model.

    One interleaved array per row (not two Rings): 10,000 rows of series are
    10,000 small objects, not 50,000."""
    __slots__ = ("capacity", "_data", "_head")

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._data = array("q")         # resident, duplicate, resident, duplicate, ...
        self._head = 0                  # sample index of the oldest once full

    def append(self, resident_bytes: int, duplicate_bytes: int) -> None:
        d = self._data
        if len(d) < 2 * self.capacity:
            d.append(resident_bytes)
            d.append(duplicate_bytes)
        else:
            i = 2 * self._head
            d[i] = resident_bytes
            d[i + 1] = duplicate_bytes
            self._head = (self._head + 1) % self.capacity

    @property
    def resident_bytes(self) -> _SeriesView:
        return _SeriesView(self, 0)

    @property
    def duplicate_bytes(self) -> _SeriesView:
        return _SeriesView(self, 1)


class Rates(NamedTuple):
    """Per-second rates of one container between the last two Models (None: unknown).

    A NamedTuple, not a dataclass: 10,000 of them are made per refresh."""
    insert_bytes_per_s: float | None = None
    evict_bytes_per_s: float | None = None
    readahead_bytes_per_s: float | None = None
    read_folio_per_s: float | None = None      # synchronous reads (misses) per second


NO_RATES = Rates()


def _rate(cur: int, prev: int, dt: float) -> float | None:
    # A counter that went down was reset (collector restarted): no honest rate.
    if dt <= 0 or cur < prev:
        return None
    return (cur - prev) / dt


_COUNTER_FIELDS = ("inserted_bytes", "evicted_bytes", "readahead_bytes", "read_folio_count")


def _counters(rows: dict[Hashable, Container]) -> tuple:
    """(key -> index, then one int64 array per cumulative counter): what rates need
    of the previous Model, in a few arrays instead of its 10,000 row objects."""
    if not rows:
        return ()
    index = dict(zip(rows, range(len(rows))))
    values = list(rows.values())
    return (index, *(array("q", map(attrgetter(f), values)) for f in _COUNTER_FIELDS))


class _KindState:
    __slots__ = ("current", "previous", "gone", "series", "rates", "pending")

    def __init__(self) -> None:
        self.current: dict[Hashable, Any] = {}      # key -> row object of the latest Model
        # containers only: the counters of the Model before (see _counters)
        self.previous: Any = {}
        self.gone: dict[Hashable, tuple[Any, float]] = {}  # key -> (last row, gone since)
        self.series: dict[Hashable, RowSeries] = {}
        self.rates: dict[Hashable, Rates] | None = None    # computed on first use per push
        self.pending: tuple[list, float] | None = None     # lazy kinds: (rows, Model time)


@dataclass(frozen=True)
class _NodeSample:
    """What node-wide rates need from the previous Model (not the Model itself)."""
    ended_at: float
    inserted_bytes: int
    evicted_bytes: int
    bpf_run_time_ns: int
    has_bpf_stats: bool
    lost_events: int


def _node_sample(m: Model) -> _NodeSample:
    return _NodeSample(m.ended_at, m.totals.inserted_bytes, m.totals.evicted_bytes,
                       sum(m.health.bpf_run_time_ns.values()), bool(m.health.bpf_run_time_ns),
                       m.health.lost_events)


class History:
    """Feed it every Model (``push``); ask it for rows, rates and series.

    Time runs on ``Model.ended_at``.  A Model older than the latest one (a
    replay seeking backwards) resets the history first.
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY, grace_s: float = DEFAULT_GRACE_S):
        if capacity < 2:
            raise ValueError("history capacity must be at least 2 samples")
        if grace_s < 0:
            raise ValueError("grace period must be >= 0 seconds")
        self.capacity = capacity
        self.grace_s = grace_s
        self.reset()

    def reset(self) -> None:
        self.latest: Model | None = None
        self.previous: _NodeSample | None = None    # node numbers of the Model before
        self.times = Ring(self.capacity)                # Model.ended_at, seconds * 1000
        self.node_series = RowSeries(self.capacity)     # Totals resident/duplicate
        self.samples_count = 0
        self._kinds = {kind: _KindState() for kind in ROW_KINDS}

    # ------------------------------------------------------------- feeding
    def push(self, model: Model) -> list:
        """Add the next Model.

        Returns what it let go of (the previous Model and its indexes).  Ignore
        it, or hand it to another thread to drop: freeing a big Model (a
        million objects at 50,000 files) takes tens of milliseconds that a UI
        thread need not spend.
        """
        now = model.ended_at
        retired: list = [self.latest]
        for st in self._kinds.values():
            retired.append((st.current, st.previous, st.rates, st.pending))
        if self.latest is not None and now < self.latest.ended_at:
            self.reset()
        self.previous = _node_sample(self.latest) if self.latest is not None else None
        self.latest = model
        self.samples_count += 1
        self.times.append(int(now * 1000))
        self.node_series.append(model.totals.resident_bytes, model.totals.duplicate_bytes)
        for kind in ROW_KINDS:
            if kind in LAZY_KINDS:
                st = self._kinds[kind]
                st.pending = (_rows_of(model, kind), now)
                st.current = {}         # do not pin the previous Model's rows
                st.gone.clear()
            else:
                self._push_kind(kind, _rows_of(model, kind), now)
        return retired

    def _state(self, kind: str) -> _KindState:
        """The kind's state; a lazy kind's latest rows are indexed on first read."""
        st = self._kinds[kind]
        if st.pending is not None:
            rows, now = st.pending
            st.pending = None
            self._push_kind(kind, rows, now)     # current is {}: nothing counts as gone
        return st

    def _push_kind(self, kind: str, rows: list, now: float) -> None:
        st = self._kinds[kind]
        # attrgetter builds the keys in C: 50,000 files add up.
        new = dict(zip(map(_KEY_GETTERS[kind], rows), rows))
        old = st.current
        # Rows that vanished now start their grace period; rows back are no longer gone.
        for key in old.keys() - new.keys():
            st.gone[key] = (old[key], now)
        if st.gone:
            for key in [k for k, (_, since) in st.gone.items()
                        if k in new or now - since >= self.grace_s]:
                del st.gone[key]
                if key not in new:
                    st.series.pop(key, None)
        # Containers keep their previous counters (not the objects, which would pin the
        # previous Model's rows) for rates.
        st.previous = _counters(old) if kind == CONTAINERS else {}
        st.current = new
        st.rates = None
        if kind in SERIES_KINDS:
            series = st.series
            cap = self.capacity
            get = series.get
            for key, r in new.items():
                s = get(key)
                if s is None:
                    s = series[key] = RowSeries(cap)
                s.append(r.resident_bytes, r.duplicate_bytes)

    # ------------------------------------------------------------- reading
    def rows(self, kind: str) -> dict[Hashable, Any]:
        """Rows of the latest Model, key -> row object."""
        return self._state(kind).current

    def gone_rows(self, kind: str) -> dict[Hashable, tuple[Any, float]]:
        """Vanished rows still in their grace period: key -> (last row, gone since)."""
        return self._state(kind).gone

    def iter_rows(self, kind: str) -> Iterator[tuple[Hashable, Any, float | None]]:
        """(key, row, gone_since or None) for live rows, then fading ones."""
        st = self._state(kind)
        for key, r in st.current.items():
            yield key, r, None
        for key, (r, since) in st.gone.items():
            yield key, r, since

    def is_gone(self, kind: str, key: Hashable) -> bool:
        """The row vanished from the latest Model and is in its grace period."""
        return key in self._state(kind).gone

    def fade(self, kind: str, key: Hashable) -> float:
        """0.0 for a live row, rising to 1.0 at the end of its grace period."""
        g = self._state(kind).gone.get(key)
        if g is None or self.latest is None:
            return 0.0
        if self.grace_s == 0:
            return 1.0
        return min(1.0, max(0.0, (self.latest.ended_at - g[1]) / self.grace_s))

    def series(self, kind: str, key: Hashable) -> RowSeries | None:
        return self._state(kind).series.get(key)

    def interval_s(self) -> float | None:
        """Model time between the last two refreshes."""
        if self.latest is None or self.previous is None:
            return None
        return self.latest.ended_at - self.previous.ended_at

    def rates(self, kind: str, key: Hashable) -> Rates:
        """Container rates between the last two Models; NO_RATES when unknown."""
        if kind != CONTAINERS:
            return NO_RATES
        return self.all_rates().get(key, NO_RATES)

    def all_rates(self) -> dict[Hashable, Rates]:
        """cgroup_id -> Rates for every container seen in the last two Models."""
        st = self._kinds[CONTAINERS]
        if st.rates is None:
            st.rates = self._container_rates(st)
        return st.rates

    def _container_rates(self, st: _KindState) -> dict[Hashable, Rates]:
        # All at once, once per push: sorting and totals ask for every row's rates.
        dt = self.interval_s()
        if dt is None or dt <= 0:
            return {}
        out = {}
        if not st.previous:
            return out
        index, ins, ev, ra, rf = st.previous
        for key, cur in st.current.items():
            i = index.get(key)
            if i is None:
                continue
            out[key] = Rates(_rate(cur.inserted_bytes, ins[i], dt),
                             _rate(cur.evicted_bytes, ev[i], dt),
                             _rate(cur.readahead_bytes, ra[i], dt),
                             _rate(cur.read_folio_count, rf[i], dt))
        return out

    def node_rates(self) -> dict[str, float | None]:
        """Node-wide insert/evict bytes per second from Totals."""
        dt = self.interval_s()
        if dt is None:
            return {"insert_bytes_per_s": None, "evict_bytes_per_s": None}
        cur, prev = self.latest.totals, self.previous
        return {"insert_bytes_per_s": _rate(cur.inserted_bytes, prev.inserted_bytes, dt),
                "evict_bytes_per_s": _rate(cur.evicted_bytes, prev.evicted_bytes, dt)}

    def bpf_cost(self) -> float | None:
        """CPU seconds the BPF programs ran per second of wall time (bpf_stats)."""
        dt = self.interval_s()
        if dt is None or dt <= 0:
            return None
        cur = sum(self.latest.health.bpf_run_time_ns.values())
        prev = self.previous.bpf_run_time_ns
        if not self.latest.health.bpf_run_time_ns or cur < prev:
            return None
        return (cur - prev) / 1e9 / dt

    def lost_events_delta(self) -> int | None:
        """Lost events since the previous Model (None with one Model)."""
        if self.previous is None:
            return None
        return max(0, self.latest.health.lost_events - self.previous.lost_events)


__all__ = ["History", "Rates", "NO_RATES", "Ring", "RowSeries", "row_key",
           "CONTAINERS", "MOUNTS", "FILES", "ROW_KINDS", "Container", "Mount", "File"]
