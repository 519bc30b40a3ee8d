"""Click commands of the recorder face; erofs_top/cli.py registers them.

    record_command   erofs-top record -o FILE [--duration S | -- CMD ARGS...]
    report_command   erofs-top report FILE [--json]
    replay_command   erofs-top replay FILE
    export_command   erofs-top export FILE --format perfetto -o OUT.json
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import click

from ..errors import EXIT_FAIL, EXIT_NO_COMMAND, EXIT_USAGE, CollectorError, fail
from ..names import json_safe
from ..output import echo_out
from ..params import DAY_S, Number, count, seconds
from ..signals import POLICY
from ..units import fmt_bytes
from . import format as fmt


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)\s*$", re.I)


def parse_size(text: str) -> int:
    """'512K', '100M', '1.5GiB', '4096' -> bytes (powers of 1024)."""
    m = _SIZE.match(text or "")
    if not m:
        raise ValueError(f"not a size: {text!r} (examples: 4096, 512K, 100M, 2GiB)")
    n = float(m.group(1)) * 1024 ** " kmgt".index((m.group(2) or " ").lower())
    return int(n)


MIN_MAX_SIZE = 64 * 1024        # RecordingWriter's lower bound, checked before BPF
MAX_MAX_SIZE = 1 << 60


class SizeParam(click.ParamType):
    name = "SIZE"

    def convert(self, value, param, ctx):
        if isinstance(value, int):
            n = value
        else:
            try:
                n = parse_size(value)
            except ValueError as e:
                self.fail(str(e), param, ctx)
        if not MIN_MAX_SIZE <= n <= MAX_MAX_SIZE:
            self.fail(f"{value} is out of range (must be at least 64K and at most 1024P)",
                      param, ctx)
        return n


_CLOCK = re.compile(r"^(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d+)?))?$")


def parse_time(text: str, started_at: float, duration_s: float) -> float:
    """'90' / '12.5' (seconds since the start) or 'HH:MM[:SS]' (local wall clock
    during the recording) -> seconds since the start, within the recording."""
    import time as _time
    t = text.strip()
    try:
        off = float(t)
    except ValueError:
        m = _CLOCK.match(t)
        if not m:
            raise ValueError(f"not a time: {text!r} (seconds since the start, or HH:MM[:SS])")
        lt = _time.localtime(started_at)
        base = _time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
        off = base + int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3) or 0) \
            - started_at
        if off < -60:           # a recording across midnight: the time is on the next day
            off += 86400
    if not -1.0 <= off <= duration_s + 1.0:
        raise ValueError(f"--at {text}: outside the recording (0 to {duration_s:.1f} s)")
    return min(max(off, 0.0), duration_s)


def _open_recording(path: str):
    from .reader import Recording
    try:
        rec = Recording.open(path)
    except fmt.RecordingError as e:
        fail(str(e))
    for w in rec.warnings:
        click.echo(f"erofs-top: warning: {w}", err=True)
    return rec


# ---------------------------------------------------------------- record
@click.command("record", context_settings={"ignore_unknown_options": False})
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False),
              help="Recording file to write (overwritten).")
@click.option("--duration", type=seconds(0, min_open=True), default=None,
              help="Seconds to record (default: until CMD ends, or Ctrl-C).")
@click.option("--max-size", type=SizeParam(), default=None,
              help="Stop recording cleanly when the file would grow past SIZE "
                   "(e.g. 100M, 2GiB); the report says so.")
@click.option("--model-interval", type=seconds(0, DAY_S), default=5.0, show_default=True,
              help="Seconds between live Model snapshots stored alongside the events "
                   "(a cross-check; 0: only one at the end).")
@click.option("--compress", type=click.Choice(["auto", "zstd", "zlib", "none"]), default="auto",
              show_default=True, help="Block compression (auto: zstd if the zstandard "
                                      "package is installed, else zlib).")
@click.option("--ring-buffer-pages", type=count(1, 1 << 20), default=4096, show_default=True,
              help="BPF ring buffer size in pages (rounded up to a power of 2): more absorbs "
                   "longer bursts before events are lost.")
@click.option("--cgroup-root", type=click.Path(exists=True, file_okay=False), default=None,
              help="cgroup v2 mount to resolve cgroup ids in (default: found in mountinfo).")
@click.option("--files", "files_cap", type=count(1, 1_000_000), default=200,
              show_default=True, help="At most this many files in each Model's files[].")
@click.option("--fingerprint-xattr", default="trusted.erofs.fingerprint", show_default=True,
              help="xattr holding mkfs.erofs --xattr-inode-digest fingerprints.")
@click.option("-q", "--quiet", is_flag=True, help="No progress line on stderr.")
@click.argument("cmd", nargs=-1, type=click.UNPROCESSED)
def record_command(output, duration, max_size, model_interval, compress, ring_buffer_pages,
                   cgroup_root, files_cap, fingerprint_xattr, quiet, cmd):
    """Record EROFS page-cache events to FILE for later `report`, `replay` and
    `export`, on this or another machine, without root.

    Streams every page-cache insert and eviction on EROFS mounts (cgroup, dev,
    inode, page index, size, time), readahead and read_folio events, plus the
    metadata needed offline (mounts, images, cgroup paths, file names and
    content digests; never a raw fingerprint) and a Model every
    --model-interval seconds.  Ends after --duration, when `-- CMD ARGS...`
    exits (then exits with CMD's status), at --max-size, or on Ctrl-C; the file
    is complete in every case.  Events the kernel drops when the ring buffer is
    full are counted per second and shown by `report`.  Needs root (BPF).

    \b
    Examples:
      erofs-top record -o boot.rec --duration 60
      erofs-top record -o pods.rec --max-size 200M -- ./start-my-pods.sh
    """
    if cmd and duration is not None:
        fail("give --duration or -- CMD, not both", EXIT_USAGE)
    try:
        codec = fmt.default_codec() if compress == "auto" else fmt.codec_from_name(compress)
    except fmt.RecordingError as e:
        fail(str(e), EXIT_USAGE)
    col = _open_record_collector(ring_buffer_pages, cgroup_root=cgroup_root,
                                 files_cap=files_cap, fingerprint_xattr=fingerprint_xattr)
    # From here on a stop signal sets POLICY.stopping, which the loop checks (a
    # KeyboardInterrupt raised inside the ring buffer callback would be swallowed
    # by ctypes); a second is absorbed; a third forces the exit (the file is still
    # readable up to its last block).
    POLICY.raising = False
    state = {"rc": 0, "proc": None, "rec": None, "failed": False}
    try:
        _record(col, state, output, codec, max_size, model_interval, duration, quiet, cmd)
    except KeyboardInterrupt:
        rec = state["rec"]
        if rec is not None and not rec.w.closed:
            rec.stop_reason = "interrupted"
            rec.finish()
    except (CollectorError, OSError) as e:
        rec = state["rec"]
        if rec is None:
            col.close()
            fail(str(e))
        click.echo(f"erofs-top: {e}; the recording ends here", err=True)
        state["failed"] = True
        if not rec.w.closed:
            rec.stop_reason = "collector error"
            rec.finish()
    finally:
        col.close()
    rec, proc, rc = state["rec"], state["proc"], state["rc"]
    if rec is not None:
        _say_what_was_recorded(rec, output, max_size)
    if state["failed"]:
        sys.exit(EXIT_FAIL)
    if rec is not None and rec.stop_reason == "interrupted" and proc is None:
        sys.exit(POLICY.exit_code)
    sys.exit(rc if rc >= 0 else 128 - rc)


def _record(col, state: dict, output: str, codec: int, max_size, model_interval: float,
            duration, quiet: bool, cmd) -> None:
    """Write the recording until its end; ``state`` carries what the caller
    reports (the recorder, CMD and its status, a failure) even on an exception."""
    from .recorder import Recorder
    from .writer import RecordingWriter
    try:
        w = RecordingWriter(output, codec=codec, max_size_bytes=max_size)
    except fmt.RecordingError as e:
        fail(str(e))
    live = not quiet and sys.stderr.isatty()
    status = _progress_line if live else (lambda m: None)
    rec = state["rec"] = Recorder(col, w, model_interval_s=model_interval, command=list(cmd),
                                  max_size_bytes=max_size, status=status)
    rec.start()
    proc = None
    if cmd:
        try:
            proc = state["proc"] = subprocess.Popen(list(cmd))
        except OSError as e:
            rec.stop_reason = "command failed to start"
            rec.finish()
            fail(f"cannot run {cmd[0]}: {e.strerror}", EXIT_NO_COMMAND)
        POLICY.adopt(proc)      # CMD gets the first stop signal too
    if not quiet:
        _announce(output, cmd, duration, codec, col.tier)
    try:
        rec.run(duration_s=duration, proc=proc, should_stop=lambda: POLICY.stopping)
    except fmt.RecordingError as e:
        click.echo(f"erofs-top: {e}; the recording ends here", err=True)
        rec.stop_reason = "write error"
        state["failed"] = True
    rec.finish()
    if live:
        click.echo("", err=True)        # end the progress line
    if proc is not None:
        if proc.poll() is None and not quiet:
            click.echo(f"erofs-top: recording stopped ({rec.stop_reason}); waiting for "
                       f"{cmd[0]} to exit", err=True)
        state["rc"] = proc.wait()   # a stop signal reached CMD too; a third kills it


def _announce(output: str, cmd, duration: float | None, codec: int, tier: str) -> None:
    what = f"until {cmd[0]} exits" if cmd else (
        f"for {duration:g} s" if duration else "until Ctrl-C")
    click.echo(f"erofs-top: recording to {output} {what} "
               f"({fmt.CODEC_NAMES[codec]}, tier {tier})", err=True)


def _progress_line(m: str) -> None:
    """A progress line that rewrites itself (on a terminal only, not into logs)."""
    click.echo(f"\rerofs-top: recording: {m}\033[K", err=True, nl=False)


def _open_record_collector(ring_buffer_pages: int, **kw):
    """The tracepoint tier in record mode, or a one-line failure (no --no-bpf hint:
    a recording needs BPF)."""
    from ..tiers import open_collector
    pages = 1 << max(0, (ring_buffer_pages - 1).bit_length())
    try:
        return open_collector(record=True, ringbuf_pages=pages, **kw)
    except ImportError as e:
        fail(f"the tracepoint tier is not available in this install ({e})")
    except CollectorError as e:
        # its hint (--no-bpf) is for the live faces; a recording needs BPF
        fail(f"{e.reason} (recording needs the tracepoint tier)")
    except PermissionError as e:
        fail(f"permission denied: {e.filename or e} (recording needs root for BPF)")
    except KeyboardInterrupt:
        fail("interrupted before recording started", POLICY.exit_code)


def _say_what_was_recorded(rec, output: str, max_size: int | None) -> None:
    size = os.path.getsize(output) if os.path.exists(output) else 0
    bpe = f", {size / rec.events_total:.1f} B/event" if rec.events_total else ""
    lost = f"{rec.lost_events} lost in the kernel"
    unwritten = f", {rec.w.events_unwritten} not written" if rec.w.events_unwritten else ""
    click.echo(f"erofs-top: recorded {rec.events_total} events ({lost}{unwritten}) to "
               f"{output} ({fmt_bytes(size)}{bpe}); stopped: {rec.stop_reason}", err=True)
    if rec.stop_reason == "max-size":
        click.echo(f"erofs-top: --max-size {fmt_bytes(max_size)} reached: the recording "
                   f"ends early", err=True)


# ---------------------------------------------------------------- report
@click.command("report")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True,
              help="One JSON document: the `once --json` keys (docs/json.md) plus "
                   "`timeline` and `recording` (docs/recording.md).")
@click.option("--files", "files_cap", type=count(1, 1_000_000), default=None,
              help="At most this many files in files[] (default: as recorded).")
@click.option("--rows", "files_rows", type=count(0, 1_000_000), default=10, show_default=True,
              help="File rows in the text tables.")
@click.option("--samples", type=count(2, 100_000), default=300, show_default=True,
              help="At most this many timeline points (one a second, coarser for long "
                   "recordings).")
@click.option("--at", "at", default=None, metavar="TIME",
              help="The Model at TIME instead of the end: seconds since the recording "
                   "began (90, 12.5) or the wall-clock time HH:MM[:SS] it was recorded at.")
def report_command(file, as_json, files_rows, files_cap, samples, at):
    """The same Model and tables as `once`, computed offline from a recording
    (no root, any machine), plus a timeline: peaks of resident and duplicate
    bytes, the fastest insert window and who inserted most in it, and the
    events lost per second.  A recording cut by a crash is read up to its last
    good block, with a warning."""
    from .report import build_report, render_text
    rec = _open_recording(file)
    at_s = None
    if at is not None:
        try:
            at_s = parse_time(at, rec.started_at, rec.duration_s)
        except ValueError as e:
            fail(str(e), EXIT_USAGE)
    try:
        model, doc = build_report(rec, files_cap=files_cap, max_samples=samples, at_s=at_s)
    except fmt.RecordingError as e:
        fail(str(e))
    except KeyboardInterrupt:
        fail("interrupted", POLICY.exit_code)
    if as_json:
        echo_out(json.dumps(json_safe(doc), indent=2))
    else:
        echo_out(render_text(model, doc, files_rows))


# ---------------------------------------------------------------- replay
@click.command("replay")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--speed", type=Number(float, 0, 1e6, min_open=True), default=1.0, show_default=True,
              help="Recording seconds per wall-clock second (change live with < and >).")
@click.option("--step", "step_s", type=seconds(0, min_open=True), default=1.0,
              show_default=True, help="Seconds one step moves while paused.")
@click.option("--at", "at", default=None, metavar="TIME",
              help="Start at TIME: seconds since the recording began (90, 12.5) or the "
                   "wall-clock time HH:MM[:SS] it was recorded at.")
@click.option("--files", "files_cap", type=count(1, 1_000_000), default=None,
              help="At most this many files per Model (default: as recorded).")
def replay_command(file, speed, step_s, at, files_cap):
    """The live UI on a recording, no root needed.  Keys: p pause, n / b one
    step forward / back (pauses), > / < replay faster / slower, ? help; --at
    jumps to a time before it starts."""
    from .source import RecordingSource
    rec = _open_recording(file)
    start_offset = None
    if at is not None:
        try:
            start_offset = parse_time(at, rec.started_at, rec.duration_s)
        except ValueError as e:
            fail(str(e), EXIT_USAGE)
    if not sys.stdout.isatty():
        fail("replay needs a terminal; use `erofs-top report` for text or JSON")
    try:
        from ..tui.app import run_app
    except ImportError as e:
        fail(f"the terminal UI is not available in this install ({e})")
    from ..tui.process_source import RecordingProcessSource
    # the replay's refreshes (the aggregator) run in a child process: keys stay
    # quick while a big recording is replayed (tui/process_source.py)
    src = RecordingProcessSource(lambda: RecordingSource(rec, speed=speed, step_s=step_s,
                                                         files_cap=files_cap))
    if start_offset is not None:
        src.seek(start_offset)
    try:
        run_app(src, title=f"erofs-top replay {os.path.basename(file)}")
    except KeyboardInterrupt:
        pass
    finally:
        src.close()
    if POLICY.stopping:
        sys.exit(POLICY.exit_code)


# ---------------------------------------------------------------- export
@click.command("export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "format_", type=click.Choice(["perfetto"]), default="perfetto",
              show_default=True, help="perfetto: Chrome trace-event JSON for ui.perfetto.dev.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, allow_dash=True),
              help="Output file ('-': stdout).")
@click.option("--burst-min-rate", type=SizeParam(), default="1M", show_default=True,
              help="A container inserting at least SIZE per second is a burst "
                   "(instant event + slice on its track).")
@click.option("--samples", type=count(2, 100_000), default=300, show_default=True,
              help="At most this many counter points per track.")
def export_command(file, format_, output, burst_min_rate, samples):
    """Convert a recording to a trace for the Perfetto UI: one track per
    container with resident/duplicate bytes and insert rate counters, a node
    track with totals and lost events, instant events for insert bursts."""
    from . import perfetto, timeline
    from .replay import Replayer
    rec = _open_recording(file)
    try:
        tl = timeline.build(rec, Replayer(rec), max_samples=samples)
        doc = perfetto.trace(rec, tl, burst_min_rate_bytes_per_s=burst_min_rate)
    except KeyboardInterrupt:
        fail("interrupted", POLICY.exit_code)
    text = json.dumps(json_safe(doc))       # valid UTF-8 even for non-UTF-8 names
    if output == "-":
        echo_out(text)
        return
    try:
        with open(output, "w") as f:
            f.write(text)
    except OSError as e:
        fail(f"cannot write {output}: {e.strerror}")
    n = len(doc["traceEvents"])
    click.echo(f"erofs-top: wrote {output} ({n} trace events, {fmt_bytes(len(text))}); open it "
               f"in https://ui.perfetto.dev", err=True)
