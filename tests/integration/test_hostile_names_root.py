"""Names are bytes (issue 13): a non-UTF-8 mount point anywhere on the host,
a cgroup whose name is not UTF-8, file names with escapes, newlines and OSC
sequences inside a real EROFS image.  Nothing may crash; JSON stays valid
UTF-8 with the exact bytes beside it; terminals and Prometheus see escapes.
Every mount and cgroup made here is removed, also on failure."""
from __future__ import annotations

import base64
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from erofs_top.workload import build_image, make_tree, read_file

pytestmark = pytest.mark.root
CLI = [sys.executable, "-m", "erofs_top.cli"]
# (no flock here: the suite runs under the heavy-work lock already; nesting it deadlocks)
_libc = ctypes.CDLL(None, use_errno=True)

# a byte that is not UTF-8, an OSC title sequence, a newline and a tab
OSC = b"\x1b]0;pwned\x07"
HOSTILE_FILES = {
    b"plain.bin": 64 << 10,
    b"caf\xe9.bin": 64 << 10,                     # latin-1, not UTF-8
    b"title" + OSC + b".bin": 64 << 10,
    b"two\nlines.bin": 64 << 10,
    b"tab\there.bin": 64 << 10,
    "bidi\u202ename.bin".encode(): 64 << 10,
}


def run(args, timeout=120, **kw):
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(CLI + list(args), capture_output=True, timeout=timeout,
                          env=env, **kw)


def no_traceback(r):
    assert b"Traceback" not in r.stderr, r.stderr.decode(errors="replace")


def strict_json(raw: bytes):
    """json.loads as a strict parser sees it: UTF-8 without lone surrogates."""
    text = raw.decode("utf-8")                      # strict
    doc = json.loads(text)

    def walk(o):
        if isinstance(o, str):
            o.encode("utf-8")                       # raises on a lone surrogate
        elif isinstance(o, dict):
            for k, v in o.items():
                walk(k), walk(v)
        elif isinstance(o, list):
            for v in o:
                walk(v)
    walk(doc)
    return doc


def assert_terminal_safe(out: bytes):
    """No byte that moves the cursor or starts an escape sequence."""
    for b in out:
        assert b >= 0x20 or b == 0x0a, f"raw control byte {b:#x} in output"
    assert b"\x9b" not in out and b"\x9d" not in out
    out.decode("utf-8")                             # and valid UTF-8


@contextlib.contextmanager
def tmpfs_on(path: bytes):
    os.makedirs(path, exist_ok=True)
    if _libc.mount(b"none", path, b"tmpfs", 0, b"size=1m") != 0:
        raise OSError(ctypes.get_errno(), "mount tmpfs")
    try:
        yield path
    finally:
        if _libc.umount2(path, 0) != 0:
            _libc.umount2(path, 2)
        os.rmdir(path)


@pytest.fixture
def odd_tmpfs(stack):
    """A tmpfs mounted on a directory named with byte 0xe9 (and a space, a
    newline and a backslash, which mountinfo escapes)."""
    d = os.fsencode(stack.dir) + b"/odd-\xe9 x\ny\\z"
    with tmpfs_on(d):
        yield d


def test_non_utf8_mount_point_snapshot_json_text(odd_tmpfs):
    r = run(["snapshot", "--json"])
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    strict_json(r.stdout)
    r = run(["snapshot"])
    no_traceback(r)
    assert r.returncode == 0
    assert_terminal_safe(r.stdout)


def test_non_utf8_mount_point_doctor(odd_tmpfs):
    r = subprocess.run([*CLI, "doctor"], capture_output=True, timeout=300)
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    assert b"tier:" in r.stdout


def test_non_utf8_mount_point_once(odd_tmpfs):
    r = subprocess.run([*CLI, "once", "--json", "--duration", "0.2"],
                       capture_output=True, timeout=300)
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    strict_json(r.stdout)


def test_mount_point_appearing_mid_run_keeps_once_alive(stack):
    """once watches for 3 s; a non-UTF-8 mount point appears and goes meanwhile."""
    p = subprocess.Popen([*CLI, "once", "--json", "--duration", "6"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        time.sleep(3)
        with tmpfs_on(os.fsencode(stack.dir) + b"/late-\xff"):
            time.sleep(1.5)
        out, err = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert b"Traceback" not in err, err
    assert p.returncode == 0, err
    strict_json(out)


@pytest.fixture
def hostile_image(stack):
    """A real EROFS image whose file names carry escapes, mounted on a
    mount point that is not UTF-8 itself; every file read (resident)."""
    src = os.fsencode(stack.dir) + b"/src"
    os.makedirs(src)
    make_tree(os.fsdecode(src), {os.fsdecode(k): v for k, v in HOSTILE_FILES.items()})
    image = stack.dir / "hostile.erofs"
    build_image(os.fsdecode(src), image)
    m = stack.mount(image, os.fsdecode(b"mnt-\xe9\x1b[31m"))
    for name in HOSTILE_FILES:
        read_file(os.fsdecode(os.fsencode(m.mountpoint) + b"/" + name))
    return m


def test_escape_laden_file_names_in_snapshot(hostile_image):
    m = hostile_image
    mp = os.fsencode(m.mountpoint)
    r = run(["snapshot", "--json", "--files", "1000"])
    no_traceback(r)
    assert r.returncode == 0, r.stderr
    doc = strict_json(r.stdout)
    mine = [mt for mt in doc["mounts"] if mt["dev"] == m.dev_str]
    assert len(mine) == 1
    mt = mine[0]
    # the mount point is not UTF-8: replacement text plus its exact bytes
    assert base64.b64decode(mt["mountpoint_b64"]) == mp
    assert "\ufffd" in mt["mountpoint"]
    files = [f for f in doc["files"] if f["dev"] == m.dev_str]
    exact = {base64.b64decode(f["path_b64"]) if "path_b64" in f else f["path"].encode()
             for f in files}
    assert exact == {mp + b"/" + n for n in HOSTILE_FILES}, exact
    for f in files:
        # every path here is under a non-UTF-8 mount point: all carry their bytes
        raw = base64.b64decode(f["path_b64"])
        assert f["path"] == raw.decode("utf-8", "replace")

    # the table: one row per file, no raw escapes, names shown escaped
    r = run(["snapshot", "--files", "1000"])
    no_traceback(r)
    assert r.returncode == 0
    assert_terminal_safe(r.stdout)
    text = r.stdout.decode()
    rows = [line for line in text.splitlines() if "mnt-\\xe9" in line]
    file_rows = [line for line in rows if "KiB" in line and ".bin" in line]
    assert len(file_rows) == len(HOSTILE_FILES), text
    assert any("title\\x1b]0;pwned\\x07.bin" in line for line in file_rows)
    assert any("two\\nlines.bin" in line for line in file_rows)
    assert any("tab\\there.bin" in line for line in file_rows)
    assert any("caf\\xe9.bin" in line for line in file_rows)
    assert any("bidi\\u202ename.bin" in line for line in file_rows)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_non_utf8_cgroup_scraped_through_metrics(stack, cgroup_prefix):
    """A cgroup named with byte 0xe9 and an ESC holds EROFS pages: /metrics
    answers 200 with the name escaped in the label, /healthz ok."""
    src = make_tree(stack.dir / "src", {"f.bin": 256 << 10})
    build_image(src, stack.dir / "c.erofs")
    m = stack.mount(stack.dir / "c.erofs", "c")
    name = os.fsdecode(cgroup_prefix.encode() + b"-\xe9\x1b]0;x\x07")
    cg = stack.cgroup(name)
    read_file(m.path("f.bin"), cg)
    port = _free_port()
    p = subprocess.Popen(CLI + ["exporter", "--no-bpf", "--listen", f"127.0.0.1:{port}",
                                "--interval", "0.5", "--kube-names", "off"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        body, status = b"", 0
        deadline = time.time() + 60
        want = f'id="/{cgroup_prefix}-\\\\xe9\\\\x1b]0;x\\\\x07"'.encode()
        while time.time() < deadline and p.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    status, body = r.status, r.read()
                if want in body:
                    break
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read()
            except OSError:
                pass
            time.sleep(0.5)
        assert status == 200, body[-500:]
        assert want in body, body.decode(errors="replace")[-3000:]
        body.decode("utf-8")
        assert b"\x1b" not in body and b"\x07" not in body
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            assert r.status == 200
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
