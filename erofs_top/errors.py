"""How erofs-top fails: one line on stderr, never a traceback, and an exit code.

Exit codes: 0 ok; 1 erofs-top could not do its job (reason on stderr);
2 usage error; 130 interrupted (Ctrl-C); 127 a `-- CMD` that cannot run;
with `once/record -- CMD`, CMD's status.

A leaf module: it imports nothing of erofs-top.
"""
from __future__ import annotations

import sys
from typing import NoReturn

import click

EXIT_FAIL = 1
EXIT_USAGE = 2
EXIT_NO_COMMAND = 127
EXIT_INTERRUPTED = 130


class CollectorError(Exception):
    """A one-line, user-facing reason why collection cannot start or go on.

    ``reason`` says what is wrong; ``hint`` (may be empty) is the way around it
    that the live faces offer, with its own leading separator (", or --no-bpf").
    str() is both; a face that has no such way around (a recording needs BPF)
    prints ``reason`` alone.
    """

    def __init__(self, reason: str, hint: str = ""):
        super().__init__(reason + hint)
        self.reason = reason
        self.hint = hint


def fail(msg: str, code: int = EXIT_FAIL, *, who: str = "erofs-top") -> NoReturn:
    """Print ``who: msg`` on stderr and exit with ``code``."""
    click.echo(f"{who}: {msg}", err=True)
    sys.exit(code)
