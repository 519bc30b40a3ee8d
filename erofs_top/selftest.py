"""`erofs-top doctor --selftest`: a known workload checked against what the
probes saw.  A tiny EROFS image is built and mounted file-backed, a reader in a
scratch cgroup reads its one file, and the live Model must show the pages
inserted, resident and attributed to that cgroup, then evicted after the
unmount.  Everything it made is removed again (also on failure or a signal)."""
from __future__ import annotations

import os
from dataclasses import dataclass

FILE_BYTES = 1 << 20
ENOUGH = 0.9                    # readahead and timing never lose more than this


@dataclass
class Result:
    name: str
    ok: bool
    detail: str


def run(tier_hint: str = "") -> tuple[str, list[Result]]:
    """(tier the probes ran, results).  Raises CollectorError/WorkloadError when
    the test cannot even start."""
    from . import workload
    from .tiers import open_collector
    from .signals import POLICY
    out: list[Result] = []
    pid = os.getpid()
    stack = workload.Stack(prefix=f"erofs-top-selftest-{pid}-")
    col = None
    try:
        src = workload.make_tree(stack.dir / "src", {"selftest.bin": os.urandom(FILE_BYTES)})
        image = workload.build_image(src, stack.dir / "selftest.erofs")
        col = open_collector()
        tier = col.tier
        mnt = stack.mount(image, "m")
        cg = stack.cgroup(f"erofs-top-selftest-{pid}")
        workload.read_file(mnt.path("selftest.bin"), cg)
        model = col.refresh()
        c = next((c for c in model.containers if c.cgroup_id == cg.id), None)
        m = next((m for m in model.mounts if m.dev == mnt.dev_str), None)
        want = int(FILE_BYTES * ENOUGH)

        def add(name, ok, detail):
            out.append(Result(name, bool(ok), detail))
        add("pages inserted", c is not None and c.inserted_bytes >= want,
            f"{c.inserted_bytes if c else 0} of {FILE_BYTES} bytes seen inserted by the reader")
        add("pages resident", m is not None and m.resident_bytes >= want,
            f"{m.resident_bytes if m else 0} bytes resident on the test mount")
        add("attributed to the cgroup", c is not None and c.resident_bytes >= want,
            f"{c.resident_bytes if c else 0} bytes charged to {cg.path}")
        mnt.umount()
        model = col.refresh()
        c2 = next((c for c in model.containers if c.cgroup_id == cg.id), None)
        add("evicted after unmount", c2 is not None and c2.evicted_bytes >= want,
            f"{c2.evicted_bytes if c2 else 0} bytes seen evicted when the image was unmounted")
        return tier, out
    finally:
        with POLICY.cleanup():
            if col is not None:
                col.close()
            stack.close()
