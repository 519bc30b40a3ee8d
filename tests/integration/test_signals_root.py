"""One signal policy for every command (erofs_top/signals.py), on this kernel:
double and triple SIGINT/SIGTERM/SIGHUP at random moments, BPF compile
included.  Never a traceback; exit 128 + the first signal; a second signal
is absorbed with a line; nothing stays attached, mounted or made.  And a
demo killed by SIGKILL: the next demo and doctor remove what it left."""
from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time

import pytest

from erofs_top import workload

pytestmark = [pytest.mark.root, pytest.mark.timeout(600)]
CLI = [sys.executable, "-m", "erofs_top.cli"]
SIGS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
SEED = int(os.environ.get("EROFS_TOP_SIGNAL_SEED", "13"))


def bcc_kprobes_of(pid: int) -> list[str]:
    out = []
    for base in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        try:
            with open(f"{base}/kprobe_events") as f:
                out += [line for line in f if f"bcc_{pid}" in line]
            break
        except OSError:
            continue
    return out


def demo_things(pid: int) -> list[str]:
    mine = f"erofs-top-demo-{pid}"
    with open("/proc/self/mountinfo", errors="surrogateescape") as f:
        mounts = [line for line in f if mine + "-" in line]
    cg = [d for d in os.listdir(workload.cgroup2_root()) if d == mine]
    dirs = [d for d in os.listdir(workload.DEFAULT_WORK_PARENT) if d.startswith(mine + "-")]
    return mounts + cg + dirs


def shoot(p: subprocess.Popen, sigs: list[int], delay: float, rng: random.Random):
    time.sleep(delay)
    for i, sig in enumerate(sigs):
        if p.poll() is not None:
            break
        p.send_signal(sig)
        if i + 1 < len(sigs):
            time.sleep(rng.uniform(0.002, 0.1))
    try:
        out, err = p.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        pytest.fail(f"still running 120 s after {sigs}: {err[-2000:]}")
    return out, err


def check(p, err, sigs, finished_ok=(0,)):
    assert "Traceback" not in err and "Exception ignored" not in err, err
    if p.returncode in finished_ok and "interrupted" not in err:
        return False            # it ended on its own before the first signal
    assert p.returncode == 128 + sigs[0], (p.returncode, sigs, err)
    if len(sigs) >= 2 and "forced exit" not in err and err.count("still cleaning up") > 1:
        pytest.fail(err)
    assert not bcc_kprobes_of(p.pid)
    return True


def cases(n: int, count: int, hi: float):
    rng = random.Random(SEED * 1000 + n + count)
    return [(rng.choice(SIGS), rng.choice(SIGS), rng.choice(SIGS), rng.uniform(0, hi))
            for _ in range(n)]


@pytest.mark.parametrize("count", [2, 3])
@pytest.mark.parametrize("case", range(2))
def test_once_random_signals(count, case):
    """`once --duration 30`: signals during the BPF compile (first seconds) or the watch."""
    s1, s2, s3, delay = cases(2, count, 6.0)[case]
    sigs = [s1, s2, s3][:count]
    rng = random.Random(case)
    p = subprocess.Popen(CLI + ["once", "--json", "--duration", "30"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = shoot(p, sigs, delay, rng)
    assert check(p, err, sigs)
    assert out == ""


@pytest.mark.parametrize("count", [2, 3])
def test_once_cmd_child_stopped(count, tmp_path):
    """`once -- CMD`: the child gets the first signal and is waited for (a
    third signal kills it); never orphaned."""
    marker = tmp_path / "child.pid"
    script = (f"import os, signal, time\nopen({str(marker)!r}, 'w').write(str(os.getpid()))\n"
              "signal.signal(signal.SIGTERM, lambda *a: (time.sleep(1.5), os._exit(7)))\n"
              "signal.signal(signal.SIGINT, lambda *a: (time.sleep(1.5), os._exit(7)))\n"
              "signal.signal(signal.SIGHUP, lambda *a: (time.sleep(1.5), os._exit(7)))\n"
              "time.sleep(120)\n")
    p = subprocess.Popen(CLI + ["once", "--json", "--", sys.executable, "-c", script],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not marker.exists() and time.time() < deadline and p.poll() is None:
        time.sleep(0.1)
    child = int(marker.read_text())
    sigs = [signal.SIGTERM, signal.SIGINT, signal.SIGHUP][:count]
    out, err = shoot(p, sigs, 0.3, random.Random(count))
    assert check(p, err, sigs)
    assert "still cleaning up" in err
    time.sleep(0.2)
    assert not os.path.exists(f"/proc/{child}") or \
        open(f"/proc/{child}/stat").read().split()[2] == "Z", "the child CMD was orphaned"


@pytest.mark.parametrize("count", [2, 3])
def test_record_random_signals(count, tmp_path):
    s1, s2, s3, delay = cases(1, count, 6.0)[0]
    sigs = [s1, s2, s3][:count]
    out_rec = tmp_path / "sig.rec"
    p = subprocess.Popen(CLI + ["record", "-o", str(out_rec), "--duration", "60", "-q"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _out, err = shoot(p, sigs, delay, random.Random(count))
    assert check(p, err, sigs)
    if out_rec.exists() and "before recording started" not in err and "forced exit" not in err:
        from erofs_top.record.reader import Recording
        rec = Recording.open(str(out_rec))
        assert rec.complete, rec.warnings          # the END block was written
        r = subprocess.run(CLI + ["report", str(out_rec)], capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0 and "Traceback" not in r.stderr


@pytest.mark.parametrize("count", [2, 3])
def test_demo_random_signals(count):
    """The demo: double signals leave nothing behind; after a triple one the
    next demo (or doctor) removes what is left (test_killed_demo_leftovers)."""
    s1, s2, s3, delay = cases(1, count, 8.0)[0]
    sigs = [s1, s2, s3][:count]
    p = subprocess.Popen(CLI + ["demo", "--no-ui", "--hold", "60"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        _out, err = shoot(p, sigs, delay, random.Random(count))
        assert check(p, err, sigs)
        if "forced exit" not in err:
            assert not demo_things(p.pid), err
            assert "demo removed" in err or "interrupted" in err
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        workload.reap_demo_leftovers()
        assert not demo_things(p.pid)


def test_exporter_signal_before_and_while_serving():
    for delay, sigs in ((0.5, [signal.SIGTERM, signal.SIGTERM]),
                        (None, [signal.SIGHUP, signal.SIGINT])):
        with socket.socket() as so:
            so.bind(("127.0.0.1", 0))
            port = so.getsockname()[1]
        p = subprocess.Popen(CLI + ["exporter", "--listen", f"127.0.0.1:{port}", "--interval", "1",
                                    "--kube-names", "off"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if delay is None:                        # wait until it serves
            line = p.stderr.readline()
            assert "serving" in line, line
            delay = 0.5
        _out, err = shoot(p, sigs, delay, random.Random(1))
        assert "Traceback" not in err, err
        assert p.returncode == 128 + sigs[0], (p.returncode, err)


def test_killed_demo_leftovers_removed_by_next_demo_and_doctor():
    for reaper in (["demo", "--no-ui", "--no-bpf"], ["doctor"]):
        p = subprocess.Popen(CLI + ["demo", "--no-ui", "--no-bpf", "--hold", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 120
            while time.time() < deadline:
                mi = open("/proc/self/mountinfo", errors="surrogateescape").read()
                if mi.count(f"erofs-top-demo-{p.pid}-") >= 2 and os.path.isdir(
                        os.path.join(workload.cgroup2_root(), f"erofs-top-demo-{p.pid}", "ctr-b")):
                    break
                time.sleep(0.2)
            time.sleep(1.0)
            p.kill()
            p.wait()
            left = workload.demo_leftovers()
            assert any(k == "mount" for k, _ in left) and any(k == "cgroup" for k, _ in left)
            r = subprocess.run(CLI + reaper, capture_output=True, text=True, timeout=300)
            assert r.returncode == 0, r.stderr
            assert "Traceback" not in r.stderr
            assert f"erofs-top-demo-{p.pid}" in r.stdout + r.stderr
            assert not demo_things(p.pid)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
            workload.reap_demo_leftovers()
