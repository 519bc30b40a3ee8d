"""`erofs-top top`: the live terminal UI (also what `erofs-top` alone runs)."""
from __future__ import annotations

import os
import sys

import click

from ..errors import fail
from ..params import count, seconds
from ..signals import POLICY
from .intervals import DEFAULT_INTERVAL_S, INTERVALS_S


class SortKeyChoice(click.Choice):
    """--sort's choices, every view's sortable columns: they live in the view
    modules, which import Textual (~0.2 s), so they are looked up only when
    --sort is given or help is shown, not at every erofs-top start."""

    def __init__(self):
        super().__init__((), case_sensitive=False)

    @property
    def choices(self):
        from .app import sort_keys
        return tuple(sort_keys())

    @choices.setter
    def choices(self, _value):
        pass

@click.command("top", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--interval", "interval_s", type=seconds(0.1, 3600),
              default=DEFAULT_INTERVAL_S, show_default=True, metavar="SECONDS",
              help="Seconds between refreshes; + and - change it while running "
                   f"({', '.join(f'{i:g}' for i in INTERVALS_S)}).")
@click.option("--cgroup-root", type=click.Path(exists=True, file_okay=False), default=None,
              help="cgroup v2 mount to resolve cgroup ids in (default: found in mountinfo).")
@click.option("--sort", "sort", type=SortKeyChoice(),
              default=None, help="Column to sort by (numbers high to low, names A to Z; default: resident). "
                                 "Applies to every view that has the column; `s` and `r` "
                                 "change it while running.")
@click.option("--filter", "filter_text", default="", metavar="TEXT",
              help="Show only rows whose name, cgroup path, mount point or file path "
                   "contains TEXT (case-insensitive); `/` edits it while running.")
@click.option("--no-bpf", is_flag=True,
              help="No BPF: the snapshot tier (resident and duplicate bytes from "
                   "mincore/kpagecgroup; no insert/evict/miss rates).")
@click.option("--files", "files_cap", type=count(1, 1_000_000), default=200,
              show_default=True, help="At most this many files in the Files view (the header "
                                      "says when more have resident pages).")
@click.option("--grace", "grace_s", type=seconds(0), default=30.0,
              show_default=True, metavar="SECONDS",
              help="How long rows of vanished cgroups and mounts stay (dimmed, "
                   "marked (gone)) before they are dropped.")
def top_command(interval_s, cgroup_root, sort, filter_text, no_bpf, files_cap, grace_s):
    """Live view of EROFS page cache: per container, per image, per file.

    The header shows node totals (EROFS resident vs the node's page cache,
    duplicate and redundant bytes, what inode_share saves or could save), the
    capability tier, and erofs-top's own cost.  Keys: Tab/1-3 views, Enter
    detail, s/r sort, / filter, p pause, +/- interval, ? help, q quit.
    Needs root for BPF; --no-bpf works from kernel ground truth alone.
    """
    from ..errors import CollectorError
    from ..tiers import open_collector
    from .app import run_app
    from .process_source import ProcessSource

    if not sys.stdout.isatty() and not os.environ.get("EROFS_TOP_FORCE_TUI"):
        fail("the live UI needs a terminal; use `erofs-top once` or `erofs-top snapshot --json` "
              "for scripts")
    try:
        # the collector runs in its own process (GIL, GC): keys stay quick while
        # a refresh runs (tui/process_source.py); its errors are raised here
        source = ProcessSource(lambda: open_collector(no_bpf=no_bpf, cgroup_root=cgroup_root,
                                                      files_cap=files_cap))
    except CollectorError as exc:
        fail(str(exc))
    except PermissionError as exc:
        fail(f"permission denied: {exc.filename or exc} (run as root, or use --no-bpf)")
    except OSError as exc:
        fail(f"cannot start collecting: {exc.strerror or exc}")
    except ImportError as exc:
        fail(f"BPF needs BCC (python3-bpfcc), which cannot be imported ({exc}); "
              "use --no-bpf for the snapshot tier")
    except Exception as exc:        # one line, never a traceback
        text = str(exc).strip().splitlines()
        fail(f"cannot start collecting: {text[0] if text else type(exc).__name__}"
              " (--no-bpf runs without BPF)")
    try:
        run_app(source, interval_s=interval_s, sort=sort.lower() if sort else None,
                filter_text=filter_text, grace_s=grace_s)
    except KeyboardInterrupt:
        sys.exit(POLICY.exit_code)
    if POLICY.stopping:         # left on SIGTERM/SIGHUP: 128 + the signal
        sys.exit(POLICY.exit_code)


__all__ = ["top_command"]
