"""Standard output that can fail: /dev/full, a closed pipe, a full disk.

``echo_out`` writes and flushes, turning a write error into ``OutputError``
(one line, exit 1) or, for a reader that went away (EPIPE), ``OutputClosed``,
which `entry()` ends quietly with status 141 (128 + SIGPIPE), as `cat` or
`yes` killed by SIGPIPE do.  (Neither is an OSError: click would turn an
EPIPE OSError into exit 1.)  ``quiet_stdout`` points fd 1 at /dev/null so
the interpreter's own flush at exit cannot fail a second time.
"""
from __future__ import annotations

import errno
import os
import sys

import click

EXIT_PIPE = 141


class OutputError(Exception):
    """Standard output could not be written (not EPIPE)."""


class OutputClosed(Exception):
    """The reader of standard output went away (EPIPE)."""


def _raise(e: OSError):
    if isinstance(e, BrokenPipeError) or e.errno == errno.EPIPE:
        raise OutputClosed() from None
    raise OutputError(f"cannot write to standard output: "
                      f"{e.strerror or e}") from None


def echo_out(text: str = "", nl: bool = True) -> None:
    try:
        click.echo(text, nl=nl)
        sys.stdout.flush()
    except OSError as e:
        _raise(e)


def flush_stdout() -> None:
    """Flush what is buffered (the last chance to report a failed write)."""
    try:
        sys.stdout.flush()
    except OSError as e:
        _raise(e)
    except ValueError:         # closed
        pass


def quiet_stdout() -> None:
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
        os.close(fd)
    except (OSError, ValueError):
        pass
