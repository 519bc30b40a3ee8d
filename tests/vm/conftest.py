"""tests/vm: tests that run inside the qemu Linux 7.x lab (`make vm-test`).

Outside the lab (no LAB_GUEST=1, which tests/vm/guest-init sets) every test
here is skipped with the reason, and nothing here touches the host: modules
import only the standard library at collection time.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import time

import pytest

IN_LAB = os.environ.get("LAB_GUEST") == "1"
HERE = pathlib.Path(__file__).parent.resolve()
SKIP_REASON = "runs only inside the qemu Linux 7.x lab: make vm-test (tests/vm/lab.sh test)"


def pytest_configure(config):
    # BCC 0.37 under Python 3.14: noise about str names and ctypes _pack_
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:bcc")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HERE not in pathlib.Path(item.path).resolve().parents:
            continue
        item.add_marker(pytest.mark.vm)
        if not IN_LAB:
            item.add_marker(pytest.mark.skip(reason=SKIP_REASON))


def pytest_report_header(config):
    if not IN_LAB:
        return None
    erofs = subprocess.run(["mkfs.erofs", "-V"], capture_output=True, text=True).stdout.split("\n")[0]
    return f"lab guest: kernel {os.uname().release}, {erofs}"


@pytest.fixture(scope="session")
def lab():
    """The guest: erofs loaded (its ishare symbols appear in kallsyms only then)."""
    assert IN_LAB
    subprocess.run(["modprobe", "erofs"], check=True)
    return os.uname().release


FINGERPRINT_XATTR = "trusted.erofs.fingerprint"   # images: --xattr-inode-digest=<this>
REPORT: list[str] = []                             # lines for the end of the run


@pytest.fixture(scope="session")
def _collector(lab):
    """erofs-top's own collector (full tier), opened once per boot: it
    compiles probes/filemap.c and probes/ishare.c (~50 s under TCG)."""
    from erofs_top.tiers import open_collector
    try:
        col = open_collector(fingerprint_xattr=FINGERPRINT_XATTR, files_cap=1_000_000)
    except Exception as e:      # reported by the tests that need it
        yield e
        return
    try:
        yield col
    finally:
        col.close()


@pytest.fixture(scope="session")
def collector(_collector):
    if isinstance(_collector, Exception):
        pytest.fail(f"open_collector() failed in the lab: {_collector}")
    assert _collector.tier == "full", \
        f"the lab must run the full tier, got {_collector.tier}: {getattr(_collector.source, 'degraded', '')}"
    return _collector


@pytest.fixture(scope="session")
def sharing_probes(_collector):
    """The full-tier probes (probes/ishare.c): the collector's own instance when
    it runs, else a standalone one (so these tests do not depend on the
    tracepoint tier).  One BCC compile per boot either way."""
    if not isinstance(_collector, Exception) and getattr(_collector.source, "sharing", None):
        yield _collector.source.sharing
        return
    from erofs_top.kernel import host, sharing
    ok, reason = host.sharing_supported()
    assert ok, f"the lab kernel must support the full tier: {reason}"
    probes = sharing.SharingProbes()
    try:
        yield probes
    finally:
        probes.close()


SB_GONE_WAIT_S = 10.0       # a lazily unmounted superblock dies when its last user goes


def _erofs_superblocks() -> tuple[set[str], set[str]]:
    """(live, mounted): /sys/fs/erofs/<name>, one per live EROFS superblock,
    mounted or not; and the devs (major:minor) of the EROFS mounts in this
    mount namespace, one per mounted superblock."""
    live = {n for n in os.listdir("/sys/fs/erofs") if n != "features"}
    mounted = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[fields.index("-") + 1] == "erofs":
                mounted.add(fields[2])
    return live, mounted


def _tasks() -> dict[int, str]:
    """pid -> its command line, of the user tasks (a kernel thread has none)."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").strip()
        except OSError:         # gone meanwhile
            continue
        if cmd:
            out[int(pid)] = cmd.decode(errors="backslashreplace")
    return out


@pytest.fixture(scope="module", autouse=True)
def _no_erofs_superblock_left():
    """A test module leaves no more EROFS superblocks alive without a mount
    than it found.  One unmounted lazily (umount -l, MNT_DETACH) lives on
    while a task holds a file of it, its pages resident and charged: the
    modules after it would count them (full runs carried 126 MiB on "2
    device(s) ... match no current EROFS mount" into the matrix).  Fails
    the module's last test, naming the superblocks and the tasks the module
    started that still run."""
    if not IN_LAB:
        yield
        return
    live, mounted = _erofs_superblocks()
    unmounted_before = len(live) - len(mounted)
    tasks_before = _tasks()
    yield
    deadline = time.monotonic() + SB_GONE_WAIT_S
    while True:
        live, mounted = _erofs_superblocks()
        if len(live) - len(mounted) <= unmounted_before or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if len(live) - len(mounted) <= unmounted_before:
        return
    new_tasks = [f"{pid} {cmd}" for pid, cmd in sorted(_tasks().items())
                 if tasks_before.get(pid) != cmd and pid != os.getpid()]
    pytest.fail(f"{len(live) - len(mounted)} EROFS superblock(s) alive without a mount "
                f"{SB_GONE_WAIT_S:g} s after this module (it found {unmounted_before}): "
                f"live {sorted(live)}, mounted devs {sorted(mounted)}; tasks started "
                f"since the module began that still run: {new_tasks or 'none'}")


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("lab measurements")
        for line in REPORT:
            terminalreporter.write_line(line)
