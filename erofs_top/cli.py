"""erofs-top command line (click).  Thin: every command asks a Collector for a
Model and hands it to a face.  Errors are one line on stderr, never a traceback.

Exit codes: 0 ok; 1 erofs-top could not do its job (reason on stderr);
2 usage error; 128 + the signal when stopped by one (130 SIGINT, 143 SIGTERM,
129 SIGHUP; erofs_top/signals.py); 141 stdout closed; with `once -- CMD`,
CMD's status. fail() and the codes:
erofs_top/errors.py.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import click

from . import __version__
from .errors import EXIT_NO_COMMAND, EXIT_USAGE, CollectorError, fail
from .model import Model
from .names import display
from .output import EXIT_PIPE, OutputClosed, OutputError, echo_out, flush_stdout, quiet_stdout
from .params import count, seconds
from .signals import POLICY
from .tiers import open_or_fail as _open
from .units import fmt_bytes


# ---------------------------------------------------------------- human tables
def _table(headers: list[str], rows: list[list[str]], right: set[int]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers)] + [line(r) for r in rows])


def container_name(c) -> str:
    """A short human name from runtime names: pod/container, else namespace/id."""
    if c.pod_name:
        return f"{c.pod_namespace}/{c.pod_name}/{c.container_name}".strip("/")
    if c.namespace:
        return f"{c.namespace}/{c.container_id[:12]}"
    return ""


def render_text(m: Model, files: int = 10) -> str:
    t = m.totals
    out = [f"erofs-top {__version__}  tier: {m.tier}  kernel: {m.kernel}  "
           f"window: {m.ended_at - m.started_at:.1f} s  page: {m.page_size} B",
           f"EROFS resident {fmt_bytes(t.resident_bytes)} of page cache "
           f"{fmt_bytes(t.page_cache_bytes)}; duplicate {fmt_bytes(t.duplicate_bytes)}, "
           f"redundant {fmt_bytes(t.redundant_bytes)}, potential savings "
           f"{fmt_bytes(t.potential_savings_bytes)}; shared {fmt_bytes(t.shared_bytes)}, "
           f"sharing saved {fmt_bytes(t.sharing_saved_bytes)}; image-file cache "
           f"{fmt_bytes(t.backing_resident_bytes)}", ""]
    rows = [[display(c.cgroup), c.runtime or "-", fmt_bytes(c.resident_bytes), fmt_bytes(c.duplicate_bytes),
             fmt_bytes(c.shared_bytes), fmt_bytes(c.fair_bytes), fmt_bytes(c.inserted_bytes),
             fmt_bytes(c.evicted_bytes), fmt_bytes(c.readahead_bytes), str(c.read_folio_count)]
            for c in m.containers]
    heads = ["CGROUP", "RUNTIME", "RESIDENT", "DUPLICATE", "SHARED", "FAIR",
             "INSERTED", "EVICTED", "READAHEAD", "MISSES"]
    if any(c.image or c.namespace or c.pod_name for c in m.containers):
        # runtime names (containerd, kubelet): only when some container has them
        heads += ["CONTAINER", "IMAGE"]
        for r, c in zip(rows, m.containers):
            r += [container_name(c) or "-", c.image or "-"]
    out.append(_table(heads, rows, set(range(2, 10))) if rows
               else "no container holds EROFS page cache")
    out.append("")
    rows = [[mt.dev, display(mt.mountpoint), mt.backing, "yes" if mt.inode_share else "no",
             fmt_bytes(mt.resident_bytes), fmt_bytes(mt.duplicate_bytes),
             fmt_bytes(mt.backing_resident_bytes), str(mt.containers_count)] for mt in m.mounts]
    heads = ["DEV", "MOUNTPOINT", "BACKING", "SHARE", "RESIDENT", "DUPLICATE",
             "IMAGE-CACHE", "CONTAINERS"]
    if any(mt.layer_digest or mt.snapshot_id for mt in m.mounts):
        heads += ["LAYER", "IMAGES"]
        for r, mt in zip(rows, m.mounts):
            r += [mt.layer_digest[:19] or "-", ",".join(mt.images) or "-"]
    out.append(_table(heads, rows, {4, 5, 6, 7}) if rows else "no EROFS mounts")
    if m.files and files:
        out.append("")
        shown = m.files[:files]
        rows = [[display(f.path) or f"{f.dev}/{f.ino}", fmt_bytes(f.resident_bytes),
                 fmt_bytes(f.duplicate_bytes), str(f.copies), f.content_id or "-"] for f in shown]
        out.append(_table(["FILE", "RESIDENT", "DUPLICATE", "COPIES", "CONTENT"], rows, {1, 2, 3}))
        if m.health.files_total > len(shown):
            out.append(f"({m.health.files_total - len(shown)} more files; --json lists "
                       f"{min(m.health.files_total, m.health.files_cap)})")
    h = m.health
    if h.warnings or h.update_failures or h.lost_events:
        out.append("")
        for w in h.warnings:
            out.append(f"warning: {display(w)}")
        if h.lost_events:
            out.append(f"warning: {h.lost_events} page events not accounted (see health)")
    return "\n".join(out)


def emit(model: Model, as_json: bool) -> None:
    if as_json:
        echo_out(json.dumps(model.to_dict(), indent=2, sort_keys=False))
    else:
        echo_out(render_text(model))


# ---------------------------------------------------------------- commands
class DefaultGroup(click.Group):
    """`erofs-top` with no subcommand runs `top`."""

    def parse_args(self, ctx, args):
        if not args or (args[0].startswith("-") and args[0] not in ("--help", "-h", "--version")):
            args = ["top", *args]
        return super().parse_args(ctx, args)


@click.group(cls=DefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="erofs-top")
def main():
    """How much memory EROFS page cache costs, which container holds it, how
    much of it is the same bytes cached twice, and what page-cache sharing
    (inode_share, Linux 7.0+) saves or would save.

    With no command, opens the live terminal UI (`top`).  Needs root for BPF;
    `--no-bpf` / `snapshot` work from kernel ground truth alone.
    """


common_opts = [
    click.option("--cgroup-root", type=click.Path(exists=True, file_okay=False), default=None,
                 help="cgroup v2 mount to resolve cgroup ids in (default: found in mountinfo)."),
    click.option("--files", "files_cap", type=count(1, 1_000_000), default=200,
                 show_default=True, help="At most this many files in files[] (the total is "
                                         "reported in health.files_total)."),
    click.option("--fingerprint-xattr", default="trusted.erofs.fingerprint", show_default=True,
                 help="xattr holding mkfs.erofs --xattr-inode-digest fingerprints."),
]


def with_common(f):
    for opt in reversed(common_opts):
        f = opt(f)
    return f


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the model as one JSON document "
                                                       "(schema: docs/json.md).")
@click.option("--duration", type=seconds(0), default=None,
              help="Seconds to watch (default 1, or until CMD ends).")
@click.option("--no-bpf", is_flag=True, help="Ground truth only (same as `snapshot`).")
@with_common
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def once(as_json, duration, no_bpf, cgroup_root, files_cap, fingerprint_xattr, cmd):
    """Attach, watch for --duration seconds or while `-- CMD ARGS...` runs,
    print the model, detach.  Exits with CMD's status when CMD is given.

    \b
    Examples:
      erofs-top once --json --duration 10
      erofs-top once --json -- ./start-my-pods.sh
    """
    if cmd and duration is not None:
        fail("give --duration or -- CMD, not both", EXIT_USAGE)
    col = _open(no_bpf, cgroup_root=cgroup_root, files_cap=files_cap,
                fingerprint_xattr=fingerprint_xattr)
    rc = 0
    try:
        if cmd:
            try:
                proc = subprocess.Popen(list(cmd))
            except OSError as e:
                fail(f"cannot run {cmd[0]}: {e.strerror}", EXIT_NO_COMMAND)
            # CMD gets the first stop signal too; erofs-top waits for it to end
            with POLICY.child(proc):
                try:
                    rc = proc.wait()
                except KeyboardInterrupt:
                    with POLICY.cleanup():
                        proc.wait()
                    raise
        else:
            time.sleep(1.0 if duration is None else duration)
        model = col.refresh()
    except KeyboardInterrupt:
        with POLICY.cleanup():
            col.close()
        fail("interrupted", POLICY.exit_code)
    except CollectorError as e:
        with POLICY.cleanup():
            col.close()
        fail(str(e))
    finally:
        with POLICY.cleanup():
            col.close()
    emit(model, as_json)
    sys.exit(rc if rc >= 0 else 128 - rc)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON document (docs/json.md).")
@with_common
def snapshot(as_json, cgroup_root, files_cap, fingerprint_xattr):
    """The same picture from kernel ground truth, without BPF: cachestat(2)/
    mincore(2) per file, page owners from /proc/self/pagemap + /proc/kpagecgroup.
    No live counters (inserted/evicted/readahead stay 0)."""
    col = _open(True, cgroup_root=cgroup_root, files_cap=files_cap,
                fingerprint_xattr=fingerprint_xattr)
    try:
        model = col.refresh()
    except KeyboardInterrupt:
        fail("interrupted", POLICY.exit_code)
    finally:
        with POLICY.cleanup():
            col.close()
    emit(model, as_json)


@main.command()
@click.option("--selftest", is_flag=True,
              help="Also run a known workload (a tiny EROFS image read in a scratch cgroup) "
                   "and check what the probes saw; exit 1 if a check fails.")
def doctor(selftest):
    """What this host can do: kernel, BTF, lockdown, BPF permission, each
    tracepoint, kprobes, the header tree BCC will use, EROFS mounts, page-cache
    sharing support, cgroup v2, kpagecgroup -> the tier that runs, and the fix
    for each missing piece.  Exits 1 when no tier can run."""
    from .kernel import host, startup
    from .resolve.mounts import SysMounts
    before_s = startup.process_age_s()      # python start + imports, as every command pays
    try:
        mounts = SysMounts()
        mounts.refresh()
    except Exception as e:   # doctor must report, not crash
        mounts = None
        echo_out(f"  mounts: unreadable ({display(str(e))})")
    rep = host.doctor(mounts)
    try:
        from .resolve.names import RuntimeNames
        names = RuntimeNames()
        names.refresh()
        for name, ok, detail, cost in names.checks():
            rep.add(name, ok, detail, "" if ok else f"without it: {cost}")
        if mounts is not None:
            ms = mounts.mounts()
            names.name_mounts(ms)
            for m in ms:
                if m.layer_digest or m.snapshot_id:
                    rep.add(f"layer {m.dev_str}", bool(m.layer_digest),
                            f"snapshot {m.snapshot_id or '-'}, layer "
                            f"{m.layer_digest or 'unknown'}, images "
                            f"{', '.join(m.images) or '-'}",
                            "" if m.layer_digest else
                            "no manifest in the content store lists a layer with this "
                            "superblock UUID (unpacked by another differ, or image removed)")
    except Exception as e:   # doctor must report, not crash
        rep.add("runtime names", False, f"could not be read ({display(str(e))})")
    _doctor_leftovers(rep)
    if rep.tier in ("tracepoint", "full") and not _doctor_startup(rep, before_s):
        rep.tier = "snapshot"
    for c in rep.checks:
        mark = ("ok  " if not c.fix else "warn") if c.ok else "MISS"
        echo_out(f"[{mark}] {c.name}: {display(c.detail)}")
        if c.fix:
            echo_out(f"       fix: {display(c.fix)}")
    if rep.tier:
        echo_out(f"\ntier: {rep.tier}")
    else:
        fail("no tier can run on this host (see the fixes above)")
    if selftest:
        _selftest(rep.tier)


def _selftest(tier: str) -> None:
    from . import selftest, workload
    if tier not in ("tracepoint", "full") or os.geteuid() != 0:
        fail(f"--selftest needs root and a BPF tier (this host: {tier or 'none'})")
    try:
        ran, results = selftest.run()
    except (CollectorError, workload.WorkloadError, OSError) as e:
        fail(f"selftest could not run: {display(str(e))}")
    echo_out("")
    for r in results:
        echo_out(f"[{'pass' if r.ok else 'FAIL'}] selftest {r.name} (tier {ran}): "
                 f"{display(r.detail)}")
    if not all(r.ok for r in results):
        fail("selftest failed (see above)")
    echo_out("selftest: pass")


def _doctor_startup(rep, before_s: float | None) -> bool:
    """Prove BPF works by starting the real probes once (no seeding), and say
    what each start-up stage cost.  False when they cannot start."""
    from .kernel import startup
    from .kernel.probes import try_load_bpf
    from .tiers import open_collector
    opened_at = time.monotonic()
    try:
        col = open_collector(seed=False)
    except Exception as e:   # doctor must report, not crash
        # is it BPF itself, or erofs-top's probes? a tiny program tells
        err = try_load_bpf()
        fix = "see the error; --no-bpf runs the snapshot tier"
        if err is not None:
            rep.add("BPF load", False, err, fix)
        else:
            rep.add("BPF load", True, "a tiny tracepoint program loads and attaches")
            lines = str(e).strip().splitlines()
            rep.add("start-up", False, "erofs-top's probes did not start: "
                    + (lines[-1] if lines else repr(e)), fix)
        return False
    try:
        rep.add("BPF load", True, f"the {col.tier} tier's probes compiled, loaded and attached")
        rep.tier = col.tier     # what really started (it loads the erofs module first)
        clock = col.source.startup
        # the clock's first stage counts doctor's own checks too: as a command
        # pays it, python start + imports, then resolvers and the tier choice
        clock.stages_s.pop(startup.BEFORE, None)
        clock.stages_s = {**({startup.PYTHON: before_s} if before_s is not None else {}),
                          startup.RESOLVERS: clock.created_at - opened_at, **clock.stages_s}
        sharing = getattr(col.source, "sharing", None)
        layout = getattr(sharing, "layout", "")
        rep.add("start-up", True, clock.summary() + (
            f"; sharing probes' struct layouts: {layout}" if layout else ""))
    finally:
        with POLICY.cleanup():
            col.close()
    return True


def _doctor_leftovers(rep) -> None:
    """Leftovers of killed demos (by their dead owner pid): removed as root."""
    from . import workload
    found = workload.demo_leftovers()
    if not found:
        rep.add("demo leftovers", True, "none")
        return
    if os.geteuid() != 0:
        rep.add("demo leftovers", False, f"{len(found)} left by killed demos: " +
                ", ".join(display(f"{k} {p}") for k, p in found[:4]),
                "run `erofs-top doctor` or `erofs-top demo` as root to remove them")
        return
    removed, failed = workload.reap_demo_leftovers()
    if failed:
        rep.add("demo leftovers", False, "cannot remove: " + "; ".join(map(display, failed)),
                "remove them by hand (umount, rmdir)")
    else:
        rep.add("demo leftovers", True, f"removed {len(removed)} left by killed demos: " +
                ", ".join(map(display, removed[:4])) + (" ..." if len(removed) > 4 else ""))


@main.command()
@click.option("--no-ui", is_flag=True, help="Print the result once instead of opening the UI "
                                            "(default when stdout is not a terminal).")
@click.option("--json", "as_json", is_flag=True, help="With --no-ui: print JSON.")
@click.option("--no-bpf", is_flag=True, help="Use the snapshot tier.")
@click.option("--hold", type=seconds(0), default=0,
              help="With --no-ui: keep the demo up this many seconds before printing.")
def demo(no_ui, as_json, no_bpf, hold):
    """Run erofs-top on a built-in workload: two small EROFS images (a "minor
    version" pair) mounted file-backed, readers in two cgroups
    `ctr-a` and `ctr-b` reading every file, and again every 5 s while it runs
    (pages the kernel evicted come back).  The library and binary are the same
    bytes in both images, so they show up as duplicate.  Everything the demo
    made (mounts, loop device, cgroups, images) is removed on exit or Ctrl-C."""
    from . import workload
    if os.geteuid() != 0:
        fail("the demo mounts images and makes cgroups: run it as root")
    # a demo killed by SIGKILL (or a forced exit) could not clean up: its
    # mounts, cgroups and images carry its pid; remove those of dead pids
    removed, failed = workload.reap_demo_leftovers()
    for what in removed:
        click.echo(f"erofs-top: removed what a killed demo left: {display(what)}", err=True)
    for what in failed:
        click.echo(f"erofs-top: warning: cannot remove a killed demo's {display(what)}", err=True)
    ui = not no_ui and sys.stdout.isatty()
    # SIGINT, SIGTERM and SIGHUP (terminal or tmux session closed) all run the
    # cleanup below (erofs_top/signals.py); a second one is absorbed meanwhile
    col = None
    stack = None
    readers, stop_reading = None, threading.Event()
    try:
        stack = workload.Stack(prefix=f"erofs-top-demo-{os.getpid()}-")
        try:
            col = _open(no_bpf)
            scen = workload.DemoScenario(stack)
            scen.read_all()
            # the containers keep using their files while it runs (pages the
            # host evicts come back), as a running service does
            readers = scen.keep_reading(stop_reading)
            if ui:
                from .tui.app import run_app
                run_app(col, title="erofs-top demo")
            else:
                time.sleep(hold)
                emit(col.refresh(), as_json)
        finally:
            with POLICY.cleanup():
                stop_reading.set()
                if readers:
                    readers.join()      # (a read in flight ends before the mounts go)
                if col:
                    col.close()
                stack.close()
    except KeyboardInterrupt:
        fail("interrupted; demo removed" if stack is not None else "interrupted",
             POLICY.exit_code)
    except workload.WorkloadError as e:
        fail(str(e))
    if POLICY.stopping:         # the UI ended on a signal
        fail("interrupted; demo removed", POLICY.exit_code)


def _register_faces() -> None:
    """Faces live in their own packages; a missing one must not break the rest."""
    import importlib
    faces = [("erofs_top.tui.cli", "top_command", "top"),
             ("erofs_top.exporter.cli", "exporter_command", "exporter"),
             ("erofs_top.record.cli", "record_command", "record"),
             ("erofs_top.record.cli", "report_command", "report"),
             ("erofs_top.record.cli", "replay_command", "replay"),
             ("erofs_top.record.cli", "export_command", "export"),
             ("erofs_top.advise", "advise_command", "advise")]
    for module, attr, name in faces:
        try:
            cmd = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
        main.add_command(cmd, name)


_register_faces()


def usage_line(e: click.exceptions.ClickException) -> str:
    """click's error as the one line the README promises (click prints four)."""
    msg = " ".join(e.format_message().split())
    ctx = getattr(e, "ctx", None)
    if isinstance(e, click.exceptions.UsageError) and ctx is not None:
        cmd = "erofs-top" + (f" {ctx.info_name}" if ctx.parent is not None else "")
        msg += f" (see {cmd} --help)"
    return display(msg)


def entry() -> None:
    """Console entry point: click's own Ctrl-C handling prints "Aborted!" and
    exits 1; erofs-top says what happened and exits 128 + the signal."""
    try:
        _entry()
    finally:
        POLICY.raising = False  # a signal during the interpreter's exit must not raise
        if POLICY.stopping:
            POLICY.ignore_rest()


def _entry() -> None:
    POLICY.install()        # SIGINT/SIGTERM/SIGHUP: erofs_top/signals.py
    try:
        rv = main.main(standalone_mode=False)
    except (KeyboardInterrupt, click.exceptions.Abort):
        POLICY.raising = False
        fail("interrupted", POLICY.exit_code)
    except click.exceptions.ClickException as e:
        click.echo(f"erofs-top: {usage_line(e)}", err=True)
        sys.exit(e.exit_code)
    except (OutputClosed, BrokenPipeError):
        # e.g. `erofs-top once --json | head`: the reader went away; end quietly
        # with the status a SIGPIPE gives (141), like cat or yes
        quiet_stdout()
        sys.exit(EXIT_PIPE)
    except OutputError as e:
        quiet_stdout()
        fail(str(e))
    except OSError as e:
        # a write click made itself (--help into /dev/full): one line
        quiet_stdout()
        fail(display(e.strerror or str(e)))
    try:
        flush_stdout()
    except OutputClosed:
        quiet_stdout()
        sys.exit(EXIT_PIPE)
    except OutputError as e:
        quiet_stdout()
        fail(str(e))
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    entry()
