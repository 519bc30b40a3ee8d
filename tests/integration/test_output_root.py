"""Output that fails on this real kernel: a recording's disk fills up while
`record` runs (real BPF, a real small tmpfs); stdout of `once` is /dev/full
or a closed pipe.  One line each, the right exit code, the recording readable
to its last block with its losses counted."""
from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
import time

import pytest

from erofs_top.record.reader import Recording
from erofs_top.workload import build_image, drop_file_cache, make_tree, read_file

pytestmark = pytest.mark.root
CLI = [sys.executable, "-m", "erofs_top.cli"]
_libc = ctypes.CDLL(None, use_errno=True)


@contextlib.contextmanager
def small_tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    if _libc.mount(b"none", os.fsencode(path), b"tmpfs", 0, f"size={size}".encode()) != 0:
        raise OSError(ctypes.get_errno(), "mount tmpfs")
    try:
        yield path
    finally:
        if _libc.umount2(os.fsencode(path), 0) != 0:
            _libc.umount2(os.fsencode(path), 2)
        os.rmdir(path)


def test_disk_full_during_record(stack):
    src = make_tree(stack.dir / "src", {f"f{i}.bin": 4 << 20 for i in range(4)})
    m = stack.mount(build_image(src, stack.dir / "img.erofs"), "m")
    with small_tmpfs(str(stack.dir / "small"), "192k") as d:
        out = os.path.join(d, "full.rec")
        p = subprocess.Popen([*CLI, "record", "-o", out, "--duration", "40",
                              "--model-interval", "0.2", "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # page-cache traffic on an EROFS mount until the disk is full
            deadline = time.time() + 200
            while p.poll() is None and time.time() < deadline:
                for i in range(4):
                    read_file(m.path(f"f{i}.bin"))
                    drop_file_cache(m.path(f"f{i}.bin"))
                time.sleep(0.1)
            _out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert "Traceback" not in err and "Exception ignored" not in err, err
        assert p.returncode == 1, err
        lines = err.splitlines()
        assert len(lines) == 2, err
        assert "No space left on device; the recording ends here" in lines[0]
        assert lines[1].startswith("erofs-top: recorded ") and "stopped: write error" in lines[1]
        rec = Recording.open(out)                  # readable to its last block
        r = subprocess.run(CLI + ["report", out, "--json"], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        if rec.complete:                           # the END block fit after the cut
            assert "No space left" in rec.end.get("write_error", "")
            assert rec.end["events_unwritten"] >= 0
        else:
            assert rec.warnings


@pytest.mark.parametrize("where", ["full", "pipe"])
def test_once_stdout_fails(where):
    if where == "full":
        target = os.open("/dev/full", os.O_WRONLY)
    else:
        r, target = os.pipe()
        os.close(r)
    try:
        p = subprocess.run([*CLI, "once", "--json", "--duration", "0.2"],
                           stdout=target, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(target)
    assert "Traceback" not in p.stderr
    if where == "full":
        assert p.returncode == 1
        assert p.stderr.splitlines() == ["erofs-top: cannot write to standard output: "
                                         "No space left on device"]
    else:
        assert p.returncode == 141 and p.stderr == ""
