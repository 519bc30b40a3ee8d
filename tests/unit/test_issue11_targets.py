"""benchmarks/issue11_targets.py: every command it runs names a benchmark
that exists and options that benchmark's parser takes (a renamed option or
script would otherwise fail only 40 minutes into a targets run)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

import issue11_targets  # noqa: E402


def test_every_command_names_a_benchmark_and_its_options():
    helps: dict[str, str] = {}
    for name, _, cmd, pattern in issue11_targets.COMMANDS:
        script, *args = cmd.split()
        path = REPO / "benchmarks" / script
        assert path.is_file(), (name, script)
        if script not in helps:
            out = subprocess.run([sys.executable, str(path), "--help"], capture_output=True,
                                 text=True, timeout=120)
            assert out.returncode == 0, (script, out.stderr[-500:])
            helps[script] = out.stdout
        taken = set(re.findall(r"(--[a-z][a-z0-9-]*)", helps[script]))
        for opt in (a.split("=")[0] for a in args if a.startswith("--")):
            assert opt in taken, (name, script, opt)
        re.compile(pattern)
    names = [c[0] for c in issue11_targets.COMMANDS]
    assert len(names) == len(set(names))


def test_unknown_names_and_a_missing_base_are_refused():
    script = str(REPO / "benchmarks" / "issue11_targets.py")
    bad = subprocess.run([sys.executable, script, "--only", "nope"], capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "unknown command name(s): nope" in bad.stderr
    no_base = subprocess.run([sys.executable, script, "--only", "versions"],
                             capture_output=True, text=True, timeout=60)
    assert no_base.returncode == 2 and "--base is needed by: versions" in no_base.stderr
    listed = subprocess.run([sys.executable, script, "--list"], capture_output=True,
                            text=True, timeout=60)
    assert listed.returncode == 0
    assert [ln.split()[0] for ln in listed.stdout.splitlines()] == [
        c[0] for c in issue11_targets.COMMANDS]
