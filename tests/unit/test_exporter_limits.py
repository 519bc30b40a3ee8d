"""The exporter against hostile clients and its own failures: idle
connections are closed after a timeout, concurrent connections are bounded,
and /healthz fails when the refresh thread is dead or the last scrape could
not be rendered.  Real sockets on 127.0.0.1."""
from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest

from erofs_top.model import TIER_SNAPSHOT, Model
from erofs_top.exporter import listen
from erofs_top.exporter.listen import bind
from erofs_top.exporter.server import Exporter, serve


class Source:
    tier = TIER_SNAPSHOT

    def refresh(self):
        return Model(tier=TIER_SNAPSHOT, started_at=0.0, ended_at=1.0, page_size=4096)

    def close(self):
        pass


@pytest.fixture
def running(monkeypatch):
    monkeypatch.setattr(listen._QuietHandler, "timeout", 0.5)
    ex = Exporter(Source(), interval=0.2, log=lambda m: None)
    assert ex.refresh_once()
    server = bind("127.0.0.1", 0)
    server.max_connections = 3
    serve(server, ex)
    ex.start()
    try:
        yield ex, server, server.server_address[1]
    finally:
        ex.stop()
        server.shutdown()
        server.server_close()


def get(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_idle_connection_closed_after_timeout(running, capfd):
    _ex, _server, port = running
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    t0 = time.monotonic()
    assert s.recv(100) == b""             # closed by the server, no request ever sent
    assert time.monotonic() - t0 < 3
    s.close()
    assert get(port, "/healthz")[0] == 200
    assert "Traceback" not in capfd.readouterr().err     # a timeout is not an error


def test_concurrent_connections_bounded(running):
    _ex, server, port = running
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        time.sleep(0.1)
        extra = socket.create_connection(("127.0.0.1", port))
        extra.settimeout(5)
        reply = extra.recv(200)
        assert reply.startswith(b"HTTP/1.0 503"), reply
        extra.close()
        assert server.rejected_connections >= 1
    finally:
        for s in idle:
            s.close()
    time.sleep(1.0)                        # the idle ones time out and free their slots
    assert get(port, "/metrics")[0] == 200


def test_healthz_fails_when_refresh_thread_dies(running):
    ex, _server, port = running
    assert get(port, "/healthz")[0] == 200
    ex._stop.set()                         # the loop ends as if it had crashed
    ex._thread.join(5)
    ex._stop.clear()
    code, text = get(port, "/healthz")
    assert code == 503 and "refresh thread" in text


def test_refresh_errors_do_not_kill_the_thread(running):
    ex, _server, port = running

    def boom(*a, **k):
        raise RuntimeError("encoder exploded")
    ex.builder.build = boom                # raises inside refresh_once, after source.refresh
    time.sleep(0.6)
    assert ex._thread.is_alive()
    code, text = get(port, "/healthz")
    assert code == 503 and "encoder exploded" in text


def test_healthz_fails_when_a_scrape_fails_to_render(running):
    ex, _server, port = running
    assert get(port, "/metrics")[0] == 200

    def bad_encoder(registry):
        raise ValueError("label value not encodable")
    for ct in list(ex._encoders):
        ex._encoders[ct] = bad_encoder
    with ex._render_lock:
        ex._cache.clear()
    code, text = get(port, "/metrics")
    assert code == 500 and "not encodable" in text
    code, text = get(port, "/healthz")
    assert code == 503 and "render" in text
