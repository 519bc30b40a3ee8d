"""erofs-top's own command line on the lab kernel (no BPF compile: fast)."""
from __future__ import annotations

import subprocess
import sys


def erofs_top(*args: str) -> subprocess.CompletedProcess:
    code = "import sys; from erofs_top.cli import main; sys.argv = ['erofs-top', *sys.argv[1:]]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                          timeout=600)


def test_doctor_concludes_full_tier(lab):
    r = erofs_top("doctor")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "tier: full" in out, out
    assert "page-cache sharing" in out and "matches" in out, out
