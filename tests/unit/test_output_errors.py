"""stdout that fails: /dev/full is one line and exit 1, a reader that went
away (EPIPE) ends quietly with 141 (128 + SIGPIPE); never a traceback.
Also non-UTF-8 cgroup names in a recording: report/export JSON stays valid."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from erofs_top.record import synth

CLI = [sys.executable, "-m", "erofs_top.cli"]
ENV = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}


@pytest.fixture(scope="module")
def rec(tmp_path_factory):
    d = tmp_path_factory.mktemp("rec")
    return synth.write(str(d / "demo.rec"), cgroups={
        synth.CG_A: os.fsdecode(b"/kubepods/ctr-\xe9\x1b]0;t\x07"), synth.CG_B: "/kubepods/b\nc",
        synth.CG_ROOT: "/"})


def commands(rec):
    return [["report", rec], ["report", rec, "--json"], ["export", rec, "-o", "-"], ["--help"],
            ["snapshot"], ["snapshot", "--json"]]


@pytest.mark.parametrize("i", range(6))
def test_dev_full_is_one_line_exit_1(rec, i):
    args = commands(rec)[i]
    with open("/dev/full", "w") as full:
        r = subprocess.run(CLI + args, stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=120, env=ENV)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("erofs-top: "), r.stderr
    assert "No space left on device" in lines[0]


@pytest.mark.parametrize("i", [0, 1, 2, 4, 5])
def test_closed_pipe_is_quiet_141(rec, i):
    args = commands(rec)[i]
    r, w = os.pipe()
    os.close(r)                                  # nobody will ever read
    try:
        p = subprocess.run(CLI + args, stdout=w, stderr=subprocess.PIPE, text=True,
                           timeout=120, env=ENV)
    finally:
        os.close(w)
    assert p.returncode == 141, p.stderr
    assert p.stderr == ""


def test_report_and_export_with_odd_names_are_valid(rec):
    r = subprocess.run(CLI + ["report", rec, "--json"], capture_output=True, timeout=120, env=ENV)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout.decode("utf-8"))
    json.dumps(doc).encode("utf-8")
    cg = {c["cgroup"]: c for c in doc["containers"]}
    assert "/kubepods/ctr-\ufffd\x1b]0;t\x07" in cg
    r = subprocess.run(CLI + ["export", rec, "-o", "-"], capture_output=True, timeout=120, env=ENV)
    assert r.returncode == 0, r.stderr
    json.loads(r.stdout.decode("utf-8"))
    r = subprocess.run(CLI + ["report", rec], capture_output=True, timeout=120, env=ENV)
    assert r.returncode == 0
    assert all(b >= 0x20 or b == 0x0a for b in r.stdout)
    assert b"ctr-\\xe9\\x1b]0;t\\x07" in r.stdout
