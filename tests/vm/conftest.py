"""tests/vm: tests that run inside the qemu Linux 7.x lab (`make vm-test`).

Outside the lab (no LAB_GUEST=1, which tests/vm/guest-init sets) every test
here is skipped with the reason, and nothing here touches the host: modules
import only the standard library at collection time.
"""
from __future__ import annotations

import os
import pathlib
import subprocess

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


def pytest_terminal_summary(terminalreporter):
    if REPORT:
        terminalreporter.section("lab measurements")
        for line in REPORT:
            terminalreporter.write_line(line)
