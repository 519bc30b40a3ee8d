"""``erofs-top exporter``: the click command (registered by erofs_top/cli.py)."""
from __future__ import annotations

import sys
import threading

import click

from ..errors import EXIT_FAIL, EXIT_USAGE, CollectorError, fail
from ..kernel.host import kernel_version
from ..kernel.startup import COMPILING
from . import DEFAULT_LISTEN, DEFAULT_MAX_CONTAINERS, DEFAULT_PORT
from ..params import DAY_S, Number, count, seconds
from ..signals import POLICY


def _fail(msg: str, code: int = EXIT_FAIL):
    fail(msg, code, who="erofs-top exporter")


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("erofs-top")
    except Exception:
        return "unknown"


@click.command("exporter", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--listen", default=DEFAULT_LISTEN, show_default=True, metavar="ADDR:PORT",
              help=f"Address to serve /metrics and /healthz on. ':PORT' listens on all IPv4 "
                   f"addresses, '[::]:PORT' on IPv6. {DEFAULT_PORT} is free in the Prometheus "
                   "default port allocations list.")
@click.option("--interval", default=10.0, show_default=True, metavar="SECONDS",
              type=seconds(0.2, DAY_S),
              help="Seconds between Model refreshes (a scrape serves the latest one).")
@click.option("--stale-after", default=3.0, show_default=True, metavar="N",
              type=Number(float, 1.0, 1e6),
              help="/healthz fails when the last successful refresh is older than N refresh "
                   "periods (--interval plus the time a refresh takes).")
@click.option("--no-bpf", is_flag=True,
              help="Snapshot tier: no BPF, resident/duplicate bytes from cachestat and "
                   "/proc/kpagecgroup only (no insert/evict counters).")
@click.option("--max-containers", default=DEFAULT_MAX_CONTAINERS, show_default=True,
              type=count(1, 1_000_000), metavar="N",
              help="Cgroups exported with their own series (largest resident first); the "
                   "rest are summed into id=\"(other)\" and counted in "
                   "erofs_top_exporter_containers_aggregated.")
@click.option("--kube-names", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True,
              help="Fill namespace/pod/container labels from the kubelet's /var/log/pods and "
                   "/var/log/containers names ('auto': when /var/log/pods exists).")
@click.option("--keep-caps", default=None, metavar="CAP,...",
              help="Capabilities kept after the probes are attached (default: dac_read_search; "
                   "plus sys_admin on the snapshot tier, bpf on kernels before 6.5). '' keeps none.")
@click.option("--no-drop-caps", is_flag=True, help="Keep every capability the process started with.")
def exporter_command(listen, interval, stale_after, no_bpf, max_containers, kube_names,
                     keep_caps, no_drop_caps):
    """Serve the erofs-top Model as Prometheus metrics.

    A background thread refreshes the Model every --interval seconds; a scrape
    only encodes the latest one (no BPF work).  /healthz answers 503 when the
    probes are detached or the refresh is stale.  Metrics: docs/metrics.md;
    deployment (DaemonSet, systemd unit, rules, dashboard): docs/exporter.md.
    """
    # imported here, not at the top: every command imports this module (its
    # click command); prometheus_client (metrics, server) comes while BPF compiles
    from . import privileges
    from .listen import ListenError, bind, parse_listen

    try:
        host, port = parse_listen(listen, DEFAULT_PORT)
    except ListenError as e:
        _fail(str(e), EXIT_USAGE)
    try:
        keep = privileges.parse_caps(keep_caps) if keep_caps is not None else None
    except privileges.CapsError as e:
        _fail(str(e), EXIT_USAGE)

    names = _pod_names(kube_names)

    # bind first: a busy port or a bad address fails before BPF compiles for seconds
    try:
        server = bind(host, port)
    except ListenError as e:
        _fail(str(e))

    importing = _import_in_background()
    source = _open_source(no_bpf, server)
    COMPILING.set()                         # no compile (the snapshot tier): import now
    importing.join()
    from .metrics import FamilyBuilder      # (imported by the thread: a dict look-up)
    from .server import Exporter, serve

    serving = False
    exporter = Exporter(source, interval=interval, stale_after=stale_after,
                        builder=FamilyBuilder(names, max_containers), version=_version(),
                        lean_models=True)
    try:
        if not exporter.refresh_once():
            _fail(f"first refresh failed: {exporter.last_error.removeprefix('refresh failed: ')}")
        model = exporter.model
        if model.tier != "snapshot" and not model.health.probes_attached:
            _fail(f"probes are not attached (tier {model.tier}); see `erofs-top doctor`")

        kept = "all (--no-drop-caps)" if no_drop_caps else _drop_privileges(keep, model.tier)

        # SIGTERM/SIGINT/SIGHUP: stop serving, detach (erofs_top/signals.py); before
        # this point the first one raises and ends the start-up with one line
        stop = threading.Event()
        POLICY.raising = False
        POLICY.on_first.append(lambda _sig: stop.set())
        if POLICY.stopping:
            stop.set()
        serve(server, exporter)
        serving = True
        exporter.start()
        shown = f"[{host}]" if ":" in host else host
        click.echo(f"erofs-top exporter: serving http://{shown}:{port}/metrics, tier "
                   f"{model.tier}, refresh every {interval:g} s, capabilities kept: {kept}",
                   err=True)
        while not stop.wait(1.0):
            pass
    finally:
        exporter.stop()
        if serving:
            server.shutdown()
        server.server_close()
        source.close()
    if POLICY.stopping:     # an orderly stop on a signal: 128 + the signal, like every command
        sys.exit(POLICY.exit_code)


def _import_in_background() -> threading.Thread:
    """The exporter's metrics and server modules (prometheus_client: ~20-30 ms
    of imports) imported by a thread while the main one compiles the probes:
    BCC's compile is a ctypes call, run without the GIL, so the imports leave
    the start-up's critical path.  The thread waits for the compile to start:
    before it, the main thread runs Python (resolvers, the bcc import) and
    the two would only take turns.  A failed import fails again, with its
    traceback, where the command imports the module after the join."""
    def run():
        COMPILING.wait()
        try:
            from . import metrics, server   # noqa: F401
        except Exception:
            pass
    t = threading.Thread(target=run, name="erofs-top-imports", daemon=True)
    t.start()
    return t


def _pod_names(kube_names: str):
    """Pod names from the kubelet's log directories (auto: when they are there);
    None: no names (FamilyBuilder's NoNames; metrics.py is not imported yet)."""
    from .podnames import KubeletLogNames
    if kube_names != "off":
        k = KubeletLogNames()
        if k.available():
            return k
        if kube_names == "on":
            _fail(f"--kube-names on: {k.pods_dir} is not a directory (mount it from the host)",
                  EXIT_USAGE)
    return None


def _open_source(no_bpf: bool, server):
    """The best tier's collector; the bound socket is closed when none starts."""
    from ..tiers import open_collector
    try:
        return open_collector(no_bpf=no_bpf)
    except CollectorError as e:
        server.server_close()
        _fail(f"cannot start collection: {e}")
    except Exception as e:     # bcc missing, no permission, ...: one line, not a traceback
        server.server_close()
        _fail(f"cannot start collection: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")


def _drop_privileges(keep: tuple[str, ...] | None, tier: str) -> str:
    """Drop every capability but ``keep`` (default: what the tier's refresh needs);
    the ones kept, for the start-up line."""
    from . import privileges
    if keep is None:
        keep = privileges.default_keep(tier, kernel_version())
    try:
        return ", ".join(privileges.drop_capabilities(keep)) or "none"
    except privileges.CapsError as e:
        _fail(f"{e} (--no-drop-caps runs without dropping)")
