"""Start-up (issue 11): every command imports erofs_top.cli, which registers
the exporter's click command; prometheus_client (~20 ms) is imported only
when the exporter runs (exporter/cli.py imports its metrics in the command)."""
from __future__ import annotations

import subprocess
import sys


def _loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys\n"
                          "print('\\n'.join(sys.modules))"],
                         capture_output=True, text=True, check=True).stdout
    return set(out.split())


def test_the_cli_does_not_import_prometheus_client():
    mods = _loaded_after("import erofs_top.cli")
    assert "erofs_top.exporter.cli" in mods            # the command is registered
    assert "prometheus_client" not in mods
    assert "erofs_top.exporter.metrics" not in mods


def test_the_exporter_module_still_has_its_default():
    mods = _loaded_after("from erofs_top.exporter import metrics, DEFAULT_MAX_CONTAINERS as d\n"
                         "assert metrics.FamilyBuilder().max_containers == d == 2000")
    assert "prometheus_client" in mods


def test_the_exporter_binds_without_prometheus_client():
    """What the exporter command imports before the probes compile (the rest is
    imported by a thread meanwhile: exporter/cli.py _import_in_background)."""
    mods = _loaded_after("from erofs_top.exporter import listen, podnames, privileges\n"
                         "listen.bind('127.0.0.1', 0).server_close()")
    assert "prometheus_client" not in mods
    assert "erofs_top.exporter.metrics" not in mods
