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


@pytest.fixture(scope="session")
def sharing_probes(lab):
    """The full-tier probes (probes/ishare.c), compiled and attached ONCE per
    boot: the BCC compile takes ~20-25 s under TCG."""
    from erofs_top.kernel import sharing
    ok, reason = sharing.sharing_supported()
    assert ok, f"the lab kernel must support the full tier: {reason}"
    probes = sharing.SharingProbes()
    try:
        yield probes
    finally:
        probes.close()
