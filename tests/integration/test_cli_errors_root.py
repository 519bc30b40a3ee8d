"""Bad input and hostile conditions: a one-line reason, the right exit code,
never a traceback, nothing left attached or mounted."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from erofs_top.workload import build_image, make_tree
from procs import bpf_prog_fds

pytestmark = pytest.mark.root
CLI = [sys.executable, "-m", "erofs_top.cli"]


def run(args, user=None, **kw):
    argv = CLI + list(args)
    if user:
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *argv]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, **kw)


def one_line_error(r):
    assert "Traceback" not in r.stderr, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("erofs-top: "), r.stderr


def test_not_root_once_is_one_line_and_exit_1():
    r = run(["once", "--json", "--duration", "0"], user="nobody")
    assert r.returncode == 1
    one_line_error(r)
    assert "root" in r.stderr and "--no-bpf" in r.stderr


def test_not_root_snapshot_still_works_with_unknown_owners(stack):
    r = run(["snapshot", "--json"], user="nobody")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr


def test_not_root_doctor_names_permissions_not_the_kernel():
    r = run(["doctor"], user="nobody")
    assert "Traceback" not in r.stderr
    assert "permission denied" in r.stdout
    tp = [l for l in r.stdout.splitlines() if l.startswith("[") and "tracepoint " in l]
    assert tp and not any(l.endswith(": missing") for l in tp), tp
    assert "not mounted" not in r.stdout


def test_duration_and_cmd_together_is_usage_error():
    r = run(["once", "--duration", "1", "--", "true"])
    assert r.returncode == 2
    one_line_error(r)


def test_missing_command_exit_127():
    r = run(["once", "--", "/nonexistent/cmd"])
    assert r.returncode == 127
    one_line_error(r)


def _default_sigint():
    """A suite started in the background by a shell without job control (`cmd &`
    in a script) inherits SIGINT ignored, and so would erofs-top: Python then
    never raises KeyboardInterrupt.  Ctrl-C at a terminal is what is tested."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_detaches_and_exits_130(stack):
    src = make_tree(stack.dir / "src", {"f": 1 << 20})
    build_image(src, stack.dir / "a.erofs")
    p = subprocess.Popen(CLI + ["once", "--json", "--duration", "60"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=_default_sigint)
    # wait until the probes are attached (the program shows up in its fdinfo)
    deadline = time.time() + 60
    while time.time() < deadline:
        if p.poll() is None and bpf_prog_fds(p.pid):
            break
        time.sleep(0.2)
    else:
        p.kill()
        pytest.fail("probes never attached")
    time.sleep(0.5)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    assert "Traceback" not in err and "interrupted" in err


def test_demo_no_ui_json_cleans_up():
    import json
    p = subprocess.Popen(CLI + ["demo", "--no-ui", "--json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0, err
    doc = json.loads(out)
    mine = f"/erofs-top-demo-{p.pid}/"        # other demos may run on this node too
    names = {c["cgroup"].rsplit("/", 1)[-1]: c for c in doc["containers"]
             if c["cgroup"].startswith(mine)}
    assert {"ctr-a", "ctr-b"} <= set(names), [c["cgroup"] for c in doc["containers"]]
    assert names["ctr-a"]["duplicate_bytes"] >= 9 << 20       # library + binary + conf
    assert doc["totals"]["potential_savings_bytes"] >= 9 << 20
    mounts = open("/proc/self/mountinfo").read()
    assert f"erofs-top-demo-{p.pid}-" not in mounts
    assert not os.path.exists(f"/sys/fs/cgroup/unified{mine}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_demo_killed_by_signal_cleans_up(sig):
    p = subprocess.Popen(CLI + ["demo", "--no-ui", "--hold", "60"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    mine = f"erofs-top-demo-{p.pid}-"
    deadline = time.time() + 60
    while time.time() < deadline and mine not in open("/proc/self/mountinfo").read():
        time.sleep(0.2)
    time.sleep(1.0)       # readers done, holding
    p.send_signal(sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert mine not in open("/proc/self/mountinfo").read()
    assert not os.path.exists(f"/sys/fs/cgroup/unified/erofs-top-demo-{p.pid}")


def test_doctor_selftest_passes_and_cleans_up():
    r = run(["doctor", "--selftest"])
    assert "Traceback" not in r.stderr
    assert r.returncode == 0, r.stdout + r.stderr
    checks = [l for l in r.stdout.splitlines() if " selftest " in l]
    assert len(checks) == 4 and all(l.startswith("[pass]") for l in checks), checks
    assert all("(tier tracepoint)" in l or "(tier full)" in l for l in checks)
    assert "selftest: pass" in r.stdout
    mine = "erofs-top-selftest-"
    assert mine not in open("/proc/self/mountinfo").read()
    from erofs_top import workload
    assert not [d for d in os.listdir(workload.cgroup2_root()) if d.startswith(mine)]
    assert not [d for d in os.listdir("/var/tmp") if d.startswith(mine)]


def test_doctor_selftest_not_root_is_one_line():
    r = run(["doctor", "--selftest"], user="nobody")
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("erofs-top: --selftest needs root")
