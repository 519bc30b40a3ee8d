"""Background refresh + HTTP server (/metrics, /healthz).

The refresh thread calls ``collector.refresh()`` every ``interval`` seconds,
builds the metric families, publishes them to the ModelMetrics and encodes
them in every format scrapes asked for under the previous Model (text or
OpenMetrics, gzip or not).  /metrics serves those bytes: concurrent scrapes
cost a copy, not an encode; only a format never asked before pays one encode.  ``/healthz`` answers 503 with a
one-line reason when the probes are detached (BPF tiers) or the last
successful refresh is older than ``stale_after`` intervals.
"""
from __future__ import annotations

import gc
import math
import sys
import threading
import time

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from erofs_top import heap
from erofs_top.aggregate import FREEZE
from erofs_top.model import TIER_SNAPSHOT, Model

from .encode import LineCache, gzip_chunks
from .listen import _Server
from .metrics import ExporterStatus, FamilyBuilder, ModelMetrics


# gzip level of /metrics: 1 compresses a 3.7 MB body (1,000 containers x 1,000
# mounts) in 5.4 ms to 228 KB, level 6 (gzip's default) in 12.4 ms to 210 KB
# (docs/performance.md): the refresh pays it, the scrape gets 8 % more bytes
GZIP_LEVEL = 1
# a scrape is expected at its last one + its period, give or take this much
# (Prometheus spreads its targets' scrapes but keeps each one's period)
SCRAPE_MARGIN_S = 1.0
SCRAPE_MARGIN_SHARE = 0.1
# the GIL's switch interval in the exporter's process: a scrape thread that
# waits for the GIL (after each recv/send of the request and body) gets it
# from a busy refresh thread within this, not Python's default 5 ms.  At
# 250,000 files x 1,000 containers, scraped while refreshing back to back:
# /metrics p99 67-74 -> 16-18 ms plain, 60-69 -> 11-13 ms gzip, the refresh's
# CPU unchanged (docs/performance.md, "The scrape's wait for the GIL")
SWITCH_INTERVAL_S = 0.001


class Exporter:
    """Owns the refresh loop and the latest state; serves WSGI requests."""

    def __init__(self, source, *, interval: float, stale_after: float = 3.0,
                 builder: FamilyBuilder | None = None, version: str = "",
                 log=None, lean_models: bool = False):
        self.source = source            # object with .refresh() -> Model and .tier
        self.interval = interval
        self.stale_after = stale_after
        self.builder = builder or FamilyBuilder()
        self.collector = ModelMetrics()
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)
        self.status = ExporterStatus(version=version)
        self.model: Model | None = None
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.generation = 0             # bumps with every published Model
        self._cache: dict[tuple, bytes] = {}            # (generation, content type, gzip) -> body
        self._encoders: dict[str, object] = {}
        self._render_lock = threading.Lock()
        # per content type: its LineCache used by one thread at a time (a scrape
        # encoding a format the refresh skipped, the next refresh encoding it)
        self._encode_locks: dict[str, threading.Lock] = {}
        # (content type, gzip) -> the times of its last two scrapes (self._clock):
        # a refresh encodes a format only if a scrape is due before the next
        # refresh replaces the body (_scrape_due); every format ever scraped
        self._scraped_at: dict[tuple, list[float]] = {}
        self._clock = time.monotonic
        self.prerenders = 0             # bodies encoded by refreshes
        self.prerenders_skipped = 0     # ... left out: no scrape due before the next refresh
        self.renders_on_demand = 0      # bodies a scrape had to encode
        self.render_error = ""          # the last /metrics encode failed: healthz says so
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        FREEZE["mode"] = "every"        # a long-running process: see aggregate.FREEZE
        # lean_models: the Collector's Models without the rows no family reads
        # (holders per mount, mounts per container, top files; one-way:
        # aggregate.Aggregator).  Only for a collector the exporter owns (the
        # exporter command's): one shared with other faces keeps its rows.
        agg = getattr(source, "aggregator", None)
        if lean_models and agg is not None:
            agg.exported_rows_only = True
        heap.fixed_thresholds()         # freed large blocks go back (erofs_top/heap.py)
        sys.setswitchinterval(SWITCH_INTERVAL_S)

    # -- refresh
    def refresh_once(self) -> bool:
        """One refresh: a Model, its families, its bodies.  The cyclic GC stays
        off throughout (the aggregator turns it off for its own part): the
        families and bodies are ~50,000 new objects at 1,000 containers x
        1,000 mounts, which it walked ~25 times per refresh (~3 ms); after a
        refresh that published, what is alive goes to the permanent
        generation as the aggregator's state does (aggregate.FREEZE)."""
        gc_on = gc.isenabled()
        gc.disable()
        published = False
        try:
            published = self._refresh()
            return published
        finally:
            # a failed refresh may leave garbage cycles (a traceback's frames):
            # left to the collector, not frozen
            if published and FREEZE["mode"] == "every":
                gc.freeze()
            if gc_on:
                gc.enable()

    def _refresh(self) -> bool:
        started = time.perf_counter()
        try:
            model = self.source.refresh()
        except Exception as e:            # keep serving the last Model; healthz goes stale
            self.status.refresh_failures += 1
            msg = f"refresh failed: {e}".splitlines()[0]
            if msg != self.last_error:    # one line per distinct error, not per interval
                self._log(f"erofs-top exporter: {msg}")
            self.last_error = msg
            return False
        self.status.refresh_duration_seconds = time.perf_counter() - started
        self.status.last_refresh_timestamp = time.time()
        self.status.refreshes += 1
        self.collector.publish(self.builder.build(model, self.status))
        self.model = model
        self.last_error = ""
        self._prerender()
        self.render_error = ""
        agg = getattr(self.source, "aggregator", None)
        if self.status.refreshes == 1 or getattr(agg, "built_anew", False):
            heap.trim()     # the probes' compile and a full pass free much mid-heap
        return True

    def _prerender(self) -> None:
        """Encode the new Model in the formats scrapes asked for, here in the
        refresh thread, then swap: a scrape never waits for an encode.  A
        format whose scrapes come less often than refreshes is encoded only
        when its next scrape is due before the next refresh (_scrape_due): at
        a 30 s scrape and a 10 s refresh, two bodies of three were encoded
        for nobody.  A scrape that comes anyway encodes (_metrics)."""
        now = self._clock()
        with self._render_lock:
            wanted = [(f, self._scrape_due(f, now)) for f in self._scraped_at]
        fresh = {}
        for (content_type, gz), due in wanted:
            if not due:
                self.prerenders_skipped += 1
                continue
            fresh[(self.generation + 1, content_type, gz)] = self._render(content_type, gz)
            self.prerenders += 1
        with self._render_lock:
            self.generation += 1
            self._cache = fresh

    def _scrape_due(self, fmt: tuple, now: float) -> bool:
        """Whether a scrape of format ``fmt`` is due before the next refresh
        (now + interval), with a margin for jitter: its period is the time
        between its last two scrapes; with one scrape seen, always."""
        times = self._scraped_at[fmt]
        if len(times) < 2:
            return True
        last, period = times[-1], times[-1] - times[-2]
        if period <= self.interval:
            return True
        margin = max(SCRAPE_MARGIN_S, period * SCRAPE_MARGIN_SHARE)
        nxt = last + period
        if nxt < now - margin:      # scrapes missed meanwhile: the next one after now - margin
            nxt += math.ceil((now - margin - nxt) / period) * period
        return nxt <= now + self.interval + margin

    def _render(self, content_type: str, gz: bool) -> bytes:
        started = time.perf_counter()
        encode = self._encoders[content_type]
        with self._encode_locks[content_type]:
            if gz:          # compressed from the pieces: the plain body is never made
                body = gzip_chunks(encode.chunks(self.registry), GZIP_LEVEL)
            else:
                body = encode(self.registry)
        self.collector.scrape_done(started)
        return body

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh_once()
            except Exception as e:      # building or encoding failed: keep the thread alive
                self.status.refresh_failures += 1
                msg = " ".join(f"refresh failed: {type(e).__name__}: {e}".split())
                if msg != self.last_error:
                    self._log(f"erofs-top exporter: {msg}")
                self.last_error = msg
                self.render_error = msg

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="erofs-top-refresh", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.interval + 5)

    # -- health
    def health(self) -> tuple[bool, str]:
        if self._thread is not None and not self._thread.is_alive() and not self._stop.is_set():
            return False, "the refresh thread is not running"
        if self.render_error:
            return False, f"the last scrape failed to render: {self.render_error}"
        if self.model is None:
            return False, "no successful refresh yet" + (f": {self.last_error}" if self.last_error else "")
        age = time.time() - self.status.last_refresh_timestamp
        # the loop period is the wait plus the refresh itself
        limit = self.stale_after * (self.interval + self.status.refresh_duration_seconds)
        if age > limit:
            why = f": {self.last_error}" if self.last_error else ""
            return False, f"stale: last successful refresh {age:.0f} s ago (limit {limit:.0f} s){why}"
        if self.model.tier != TIER_SNAPSHOT and not self.model.health.probes_attached:
            return False, f"probes detached (tier {self.model.tier})"
        return True, f"ok: tier {self.model.tier}, last refresh {age:.1f} s ago"

    # -- WSGI
    def _metrics(self, environ, start_response):
        encoder, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        gz = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
        with self._render_lock:      # one encode per Model and format, however many scrapes
            if content_type not in self._encoders:
                self._encode_locks[content_type] = threading.Lock()
                self._encoders[content_type] = LineCache(encoder)
            times = self._scraped_at.setdefault((content_type, gz), [])
            times[:] = times[-1:] + [self._clock()]
            key = (self.generation, content_type, gz)
            body = self._cache.get(key)
            if body is None:         # a format not asked for before, or not encoded for this Model
                self.renders_on_demand += 1
                try:
                    body = self._render(content_type, gz)
                except Exception as e:
                    self.render_error = " ".join(f"{type(e).__name__}: {e}".split())
                    self._log(f"erofs-top exporter: /metrics failed to render: "
                              f"{self.render_error}")
                    start_response("500 Internal Server Error",
                                   [("Content-Type", "text/plain; charset=utf-8")])
                    return [f"metrics failed to render: {self.render_error}\n".encode()]
                self._cache[key] = body
                self.render_error = ""
        headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
        if gz:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    def __call__(self, environ, start_response):
        path = environ.get("PATH_INFO", "/")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/healthz":
            ok, text = self.health()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [(text + "\n").encode()]
        if path == "/":
            body = ("<html><head><title>erofs-top exporter</title></head><body>"
                    "<h1>erofs-top exporter</h1><p><a href='/metrics'>/metrics</a> "
                    "<a href='/healthz'>/healthz</a></p></body></html>")
            start_response("200 OK", [("Content-Type", "text/html; charset=utf-8")])
            return [body.encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /healthz\n"]


def serve(server: _Server, exporter: Exporter) -> threading.Thread:
    server.set_app(exporter)
    t = threading.Thread(target=server.serve_forever, name="erofs-top-http", daemon=True)
    t.start()
    return t
