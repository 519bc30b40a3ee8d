"""Every number option refuses NaN, infinity and out-of-range values as a
usage error: exit 2, one line, before anything (BPF, mounts) happens."""
from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest

from erofs_top.params import Number, count, seconds

CLI = [sys.executable, "-m", "erofs_top.cli"]


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-inf", "Infinity", "1e308", "-1", "x", ""])
def test_seconds_rejects(bad):
    with pytest.raises(click.BadParameter):
        seconds(0).convert(bad, None, None)


def test_number_accepts_and_bounds():
    assert seconds(0).convert("1.5", None, None) == 1.5
    assert seconds(0, min_open=True).convert("0.001", None, None) == 0.001
    with pytest.raises(click.BadParameter):
        seconds(0, min_open=True).convert("0", None, None)
    assert count(1, 10).convert("10", None, None) == 10
    for bad in ("11", "0", "1.5", "1e3", "nan"):
        with pytest.raises(click.BadParameter):
            count(1, 10).convert(bad, None, None)
    assert Number(float, 1.0, 1e6).convert(3, None, None) == 3.0


CASES = [
    ["once", "--duration", "nan"], ["once", "--duration", "inf"], ["once", "--duration", "1e308"],
    ["once", "--files", "0"], ["snapshot", "--files", "nan"],
    ["demo", "--hold", "nan"], ["demo", "--hold", "-inf"],
    ["exporter", "--interval", "nan"], ["exporter", "--interval", "inf"],
    ["exporter", "--interval", "0.01"], ["exporter", "--stale-after", "nan"],
    ["exporter", "--max-containers", "1e9"],
    ["top", "--interval", "nan"], ["top", "--grace", "inf"],
    ["record", "-o", "/nonexistent/x.rec", "--duration", "inf"],
    ["record", "-o", "/nonexistent/x.rec", "--duration", "nan"],
    ["record", "-o", "/nonexistent/x.rec", "--max-size", "1K"],
    ["record", "-o", "/nonexistent/x.rec", "--model-interval", "nan"],
    ["record", "-o", "/nonexistent/x.rec", "--ring-buffer-pages", str(10 ** 30)],
    ["report", "/nonexistent.rec", "--samples", "1"],
    ["replay", "/nonexistent.rec", "--speed", "nan"],
    ["replay", "/nonexistent.rec", "--step", "inf"],
    ["once", "--no-such-option"], ["no-such-command"],
    ["snapshot", "--cgroup-root", "/nonexistent"], ["once", "--cgroup-root", "/nonexistent"],
    ["record", "-o", "/nonexistent/x.rec", "--cgroup-root", "/nonexistent"],
]


@pytest.mark.parametrize("args", CASES, ids=[" ".join(c) for c in CASES])
def test_cli_number_usage_errors_one_line_exit_2(args):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    r = subprocess.run(CLI + args, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("erofs-top: "), r.stderr
    assert "--help" in lines[0]
    assert r.stdout == ""
