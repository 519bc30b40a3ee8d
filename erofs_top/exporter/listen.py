"""The exporter's listen socket: the --listen address parsed, the socket
bound (before the probes load, so that a busy port fails first) and its
server (a thread per connection, at most MAX_CONNECTIONS).

Apart from server.py, so that the command binds without importing
prometheus_client (exporter/cli.py imports that while BPF compiles).
"""
from __future__ import annotations

import ipaddress
import socket
import sys
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer


class ListenError(Exception):
    pass


def parse_listen(text: str, default_port: int) -> tuple[str, int]:
    """"ADDR:PORT", ":PORT", "[::1]:PORT", "ADDR" -> (host, port); ListenError if bad."""
    text = text.strip()
    host, port_text = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ListenError(f"bad listen address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1:]
        if rest and not rest.startswith(":"):
            raise ListenError(f"bad listen address {text!r}: expected [ADDR]:PORT")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    elif text.count(":") > 1:
        raise ListenError(f"bad listen address {text!r}: write IPv6 addresses as [ADDR]:PORT")
    if port_text:
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ListenError(f"bad listen port {port_text!r} in {text!r}: expected 1-65535")
        port = int(port_text)
    else:
        port = default_port
    if not host:
        host = "0.0.0.0"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as e:
            raise ListenError(f"bad listen address {host!r}: {e.strerror}") from None
    return host, port


IDLE_TIMEOUT_S = 10.0           # a connection that sends nothing for this long is closed
MAX_CONNECTIONS = 64            # connections served at once; more get a 503 and are closed
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
         b"Connection: close\r\nContent-Length: 38\r\n\r\ntoo many connections to the exporter\r\n")


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128       # 50+ concurrent scrapes must not be refused
    max_connections = MAX_CONNECTIONS

    def server_activate(self):
        super().server_activate()
        self._slots = None
        self.rejected_connections = 0

    def process_request(self, request, client_address):
        """One thread per connection, at most max_connections of them."""
        if self._slots is None:
            self._slots = threading.BoundedSemaphore(self.max_connections)
        if not self._slots.acquire(blocking=False):
            self.rejected_connections += 1
            try:
                request.settimeout(0.2)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        """A client that timed out or went away is not news; anything else is one line."""
        e = sys.exc_info()[1]
        if isinstance(e, OSError):
            return
        print(f"erofs-top exporter: request from {client_address[0]} failed: "
              f"{type(e).__name__}: {' '.join(str(e).split())}", file=sys.stderr, flush=True)


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = IDLE_TIMEOUT_S       # idle or slow clients: the socket times out, is closed

    def log_message(self, *args):
        pass                       # no per-request lines on stderr


def bind(host: str, port: int) -> _Server:
    """Bind the listen socket now (before probes load), so errors come first."""
    cls = _Server6 if ":" in host else _Server
    try:
        return cls((host, port), _QuietHandler, bind_and_activate=True)
    except PermissionError:
        raise ListenError(f"cannot listen on {host}:{port}: permission denied "
                          "(ports below 1024 need CAP_NET_BIND_SERVICE)") from None
    except OSError as e:
        raise ListenError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
