"""Prometheus exporter face of erofs-top (``erofs-top exporter``).

- ``metrics``: the metric families built from a Model (pure, unit-tested);
- ``podnames``: optional namespace/pod/container names from kubelet log dirs;
- ``server``: background refresh thread, HTTP server (/metrics, /healthz);
- ``privileges``: drop Linux capabilities once the probes are attached;
- ``cli``: the click command ``exporter_command``.

The exporter never computes an attribution: it reads the Model that
``erofs_top.collector`` returns, and never imports bcc.
"""

DEFAULT_PORT = 9655     # "FREE" in the Prometheus default port allocations list (docs/exporter.md)
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
