"""An installed erofs-top carries its probes.

Builds the wheel from a clean checkout (the files git tracks, copied out of the
repository: what a fresh clone holds, no build artefacts, no untracked files),
installs it into a fresh venv outside the repository that sees Debian's bcc
(--system-site-packages), and runs `erofs-top doctor` and `erofs-top once
--json --duration 1` from another working directory: the tracepoint tier must
compile probes/filemap.c from inside the installed package and attach.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from erofs_top.pagecache import file_resident_pages

from erofs_top.workload import build_image, make_tree, read_file

pytestmark = pytest.mark.root
REPO = Path(__file__).resolve().parents[2]
PROBES = sorted(p.name for p in (REPO / "probes").iterdir() if p.suffix in (".c", ".h"))


def _run(argv, **kw):
    r = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=600, **kw)
    assert r.returncode == 0, f"{argv}: exit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-4000:]}"
    return r


def _clean_checkout(dst: Path) -> Path:
    files = _run(["git", "-C", REPO, "ls-files", "-z"]).stdout.split("\0")
    src = dst / "src"
    for f in files:
        if f and (REPO / f).is_file():      # a tracked file deleted in the tree is gone
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / f, src / f)
    return src


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv's erofs-top, a scratch working directory outside the repository)."""
    base = tmp_path_factory.mktemp("wheel")
    src = _clean_checkout(base)
    wheels = base / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
          "-w", wheels, src], cwd=base)
    (wheel,) = wheels.glob("erofs_top-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if n.startswith("erofs_top/probes/")] == \
        [f"erofs_top/probes/{p}" for p in PROBES], names
    venv = base / "venv"
    _run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
    _run([venv / "bin/pip", "install", "-q", wheel], cwd=base)
    work = base / "elsewhere"
    work.mkdir()
    return venv / "bin/erofs-top", work


def _env():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_wheel_doctor_and_once_attach_from_elsewhere(installed, stack):
    exe, work = installed
    src = make_tree(stack.dir / "src", {"f.bin": 1 << 20})
    m = stack.mount(build_image(src, stack.dir / "a.erofs"), "m")
    read_file(m.path("f.bin"))

    doc = subprocess.run([exe, "doctor"], cwd=work, env=_env(), capture_output=True,
                         text=True, timeout=300)
    assert doc.returncode == 0, doc.stdout + doc.stderr
    assert "Traceback" not in doc.stderr
    assert "[ok  ] BPF load" in doc.stdout, doc.stdout
    tier = doc.stdout.strip().splitlines()[-1]
    assert tier in ("tier: tracepoint", "tier: full"), doc.stdout

    once = subprocess.run([exe, "once", "--json", "--duration", "1"], cwd=work, env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert once.returncode == 0, once.stderr
    assert "Traceback" not in once.stderr
    model = json.loads(once.stdout)
    assert model["tier"] in ("tracepoint", "full"), model["tier"]
    assert model["health"]["probes_attached"] is True
    mine = [mt for mt in model["mounts"] if mt["mountpoint"] == str(m.mountpoint)]
    # this host evicts page cache while tests run: what erofs-top saw is at
    # least what mincore still finds afterwards (evictions only take away)
    still_bytes = file_resident_pages(m.path("f.bin")) * os.sysconf("SC_PAGE_SIZE")
    assert mine and mine[0]["resident_bytes"] > 0, model["mounts"]
    assert mine[0]["resident_bytes"] >= still_bytes, (mine[0], still_bytes)
    # the package it ran is the installed one, not this checkout
    where = subprocess.run([exe.parent / "python", "-c",
                            "import erofs_top.kernel.probe_files as p; print(p.probe_file('filemap.c'))"],
                           cwd=work, env=_env(), capture_output=True, text=True, timeout=60)
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(exe.parent.parent)), where.stdout
