"""Prometheus exporter face of erofs-top (``erofs-top exporter``).

- ``metrics``: the metric families built from a Model (pure, unit-tested);
- ``podnames``: optional namespace/pod/container names from kubelet log dirs;
- ``server``: background refresh thread, HTTP server (/metrics, /healthz);
- ``listen``: the --listen address and the bound socket (no prometheus_client);
- ``privileges``: drop Linux capabilities once the probes are attached;
- ``cli``: the click command ``exporter_command``.

The exporter never computes an attribution: it reads the Model that
``erofs_top.collector`` returns, and never imports bcc.
"""

DEFAULT_PORT = 9655     # "FREE" in the Prometheus default port allocations list (docs/exporter.md)
DEFAULT_LISTEN = f":{DEFAULT_PORT}"
# containers with their own series (the rest summed as "(other)"): metrics.py's
# default, here so that the command's options need not import prometheus_client
DEFAULT_MAX_CONTAINERS = 2000
