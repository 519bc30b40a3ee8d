"""Root integration tests on the real kernel: real images, mounts, cgroups, BPF.

They are real tests: on a machine where they cannot run (not root, no tracefs,
no mkfs.erofs) they FAIL with the reason, unless EROFS_TOP_ALLOW_SKIP=1 says
the caller knowingly runs without root (a developer laptop).
"""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from erofs_top import workload


def _blocker() -> str | None:
    if os.geteuid() != 0:
        return "integration tests need root (they mount images and make cgroups)"
    if not shutil.which("mkfs.erofs"):
        return "mkfs.erofs missing: apt-get install erofs-utils (scripts/setup.sh)"
    if not os.path.isdir("/sys/kernel/tracing/events") and \
            not os.path.isdir("/sys/kernel/debug/tracing/events"):
        return "tracefs not mounted (scripts/setup.sh mounts it)"
    return None


@pytest.fixture(autouse=True)
def _need_root():
    reason = _blocker()
    if reason:
        if os.environ.get("EROFS_TOP_ALLOW_SKIP") == "1":
            pytest.skip(reason)
        pytest.fail(reason)


@pytest.fixture
def stack():
    """Scratch dir + everything a test mounts/creates, removed also on failure."""
    with workload.Stack(prefix=f"erofs-top-test-{os.getpid()}-") as st:
        yield st


@pytest.fixture
def cgroup_prefix(request):
    return f"erofs-top-test-{os.getpid()}-{request.node.name[:40]}"


@pytest.fixture
def probes():
    """A tracepoint-tier collector, attached; detached after the test."""
    from erofs_top.tiers import open_collector
    col = open_collector()
    try:
        yield col
    finally:
        col.close()


def leftovers() -> list[str]:
    """EROFS mounts, loop devices and cgroups this test run may have left
    (named with our pid, so concurrent runs elsewhere do not count)."""
    mine = f"erofs-top-test-{os.getpid()}-"
    out = []
    with open("/proc/self/mountinfo", errors="surrogateescape") as f:   # names are bytes
        for line in f:
            if " - erofs " in line and mine in line:
                out.append("mount: " + line.split()[4])
    r = subprocess.run(["losetup", "-a"], capture_output=True, text=True,
                       errors="surrogateescape")
    out += ["loop: " + l for l in r.stdout.splitlines() if mine in l]
    root = workload.cgroup2_root()
    out += ["cgroup: " + d for d in os.listdir(root) if d.startswith(mine)]
    return out


@pytest.fixture(scope="session", autouse=True)
def _no_leftovers():
    before = set(leftovers()) if _blocker() is None else set()
    yield
    if _blocker() is None:
        left = set(leftovers()) - before
        assert not left, f"tests left these behind: {sorted(left)}"


@pytest.fixture
def one_cpu():
    """This process (and the readers it starts) on its first allowed CPU: the
    per-CPU buffers' tests put every event on the CPU they then flush."""
    old = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(old)})
    try:
        yield min(old)
    finally:
        os.sched_setaffinity(0, old)
