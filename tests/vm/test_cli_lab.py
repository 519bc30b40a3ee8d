"""erofs-top's own command line on the lab kernel (`doctor` starts the full tier's
probes once to prove them and time the start-up: 45-50 s under TCG)."""
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
    # probes/ishare.c compiled from BTF struct layouts, not the header tree
    assert "sharing probes' struct layouts: BTF" in out, out


READERS = r"""
import os, sys
for cg, path in zip(sys.argv[1::2], sys.argv[2::2]):
    pid = os.fork()
    if pid == 0:
        with open(cg + "/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        with open(path, "rb", buffering=0) as f:
            while f.read(1 << 20):
                pass
        os._exit(0)
    os.waitpid(pid, 0)
"""


def test_once_json_reports_sharing(lab):
    """`erofs-top once --json -- CMD` on the full tier: CMD's two containers
    read one file through two inode_share mounts (one BCC compile, ~45 s)."""
    import json

    from . import labkit as lk
    from .conftest import FINGERPRINT_XATTR
    size = 2 * lk.MiB
    d = lk.workdir("cli-once")
    try:
        lk.write_random(f"{d}/src/big.bin", size, seed=5)
        lk.mkfs_erofs(f"{d}/a.erofs", f"{d}/src", f"--xattr-inode-digest={FINGERPRINT_XATTR}")
        lk.mkfs_erofs(f"{d}/b.erofs", f"{d}/src", f"--xattr-inode-digest={FINGERPRINT_XATTR}")
        share = "inode_share,domain_id=cli"
        with lk.erofs_mount(f"{d}/a.erofs", share) as ma, lk.erofs_mount(f"{d}/b.erofs", share) as mb, \
                lk.Cgroup("cli-a") as ca, lk.Cgroup("cli-b") as cb:
            r = erofs_top("once", "--json", "--", sys.executable, "-c", READERS,
                          ca.path_abs, f"{ma}/big.bin", cb.path_abs, f"{mb}/big.bin")
            assert r.returncode == 0, r.stderr
            doc = json.loads(r.stdout)
    finally:
        lk.rmtree(d)
    assert doc["tier"] == "full", doc["health"]["warnings"]
    by_id = {c["cgroup_id"]: c for c in doc["containers"]}
    a, b = by_id[ca.id], by_id[cb.id]
    assert size <= a["resident_bytes"] <= size + 2 * lk.PAGE, a
    assert b["resident_bytes"] <= 2 * lk.PAGE, b
    assert a["shared_bytes"] == b["shared_bytes"] == size, (a, b)
    assert doc["totals"]["sharing_saved_bytes"] == size, doc["totals"]
    assert sum(m["inode_share"] for m in doc["mounts"]) == 2, doc["mounts"]
