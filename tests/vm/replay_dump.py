"""Lab debugging aid: every World the read replay sees, dumped for the host.

Load it as a pytest plugin in the guest, e.g.
    LAB_OUT=/tmp/out tests/vm/lab.sh run "python3 -m pytest -p tests.vm.replay_dump \\
        tests/vm/test_savings_matrix.py -k 'ztail'"
Each call of the replay with logged reads writes /out/worlds/NNN.pkl: the
World with its callables materialized for the files involved, the test that
ran, /proc/self/mountinfo and the replay's result.  On the host,
``load_world(path)`` rebuilds the World, so read_replay's checks
(``_failed_devs``) and replays can be run and compared page by page with
the kernel's residency (``image_owners``, ``inodes``) without the lab.
Not a test: nothing here runs unless loaded.
"""
from __future__ import annotations

import os
import pickle

from erofs_top import node_savings
from erofs_top.read_replay import World

_replay_savings = node_savings.replay_savings
_count = [0]


def _materialized(w: World) -> dict:
    keys = {(r.dev, r.ino) for r in w.records} | {i.key for i in w.inodes if i.key[0] != "s"}
    devs = {r.dev for r in w.records} | {d for i in w.inodes for d in i.devs}
    return dict(records=w.records, inodes=w.inodes,
                candidate={d: w.candidate(d) for d in devs},
                image_of={d: w.image_of(d) for d in devs},
                image_map={k: w.image_map(*k) for k in keys},
                zfile={k: w.zfile(*k) for k in keys},
                meta_pages={k: w.meta_pages(*k) for k in keys},
                image_sizes=w.image_sizes, image_owners=w.image_owners,
                overflowed=w.overflowed, groups=w.groups)


def _dumping(w: World):
    saved = _materialized(w)
    out = _replay_savings(w)
    if w.records and os.path.isdir("/out"):
        os.makedirs("/out/worlds", exist_ok=True)
        saved.update(result=out, test=os.environ.get("PYTEST_CURRENT_TEST", ""),
                     mountinfo=open("/proc/self/mountinfo").read())
        with open(f"/out/worlds/{_count[0]:03d}.pkl", "wb") as f:
            pickle.dump(saved, f)
        _count[0] += 1
    return out


def load_world(path: str) -> tuple[World, dict]:
    """The World dumped at ``path`` (and the whole dump)."""
    with open(path, "rb") as f:
        d = pickle.load(f)
    return World(records=d["records"], inodes=d["inodes"],
                 candidate=lambda dev: d["candidate"].get(dev, False),
                 image_of=lambda dev: d["image_of"].get(dev),
                 image_map=lambda dev, ino: d["image_map"].get((dev, ino)),
                 image_sizes=d["image_sizes"], image_owners=d["image_owners"],
                 overflowed=d["overflowed"], groups=d["groups"],
                 zfile=lambda dev, ino: d["zfile"].get((dev, ino)),
                 meta_pages=lambda dev, ino: d["meta_pages"].get((dev, ino))), d


if os.environ.get("LAB_GUEST") == "1":     # patched only inside the lab guest
    node_savings.replay_savings = _dumping
