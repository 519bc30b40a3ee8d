"""The benchmarks' synthetic node (benchmarks/synthetic_node.py): churn with
``rereads`` keeps the node's set of files (a node's fixed image files: only
files evicted whole come back), the default churn reads new files; age()
churns without naming the changes."""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
from synthetic_node import SyntheticNode  # noqa: E402


def _churned(rereads: bool, rounds: int = 40) -> tuple[SyntheticNode, set]:
    node = SyntheticNode(2000, 20, rereads=rereads)
    first = set(node.files)
    node.readings(by_file=True, hint=True)
    for _ in range(rounds):
        node.churn(0.02)
    return node, first


def test_rereads_keep_the_nodes_files():
    node, first = _churned(rereads=True)
    assert set(node.files) <= first
    evicted = {(node.mount_list[c].dev, ino) for c, ino in node.evicted}
    assert evicted == first - set(node.files)       # every file: resident or evicted
    assert sorted(node.resident) == sorted(node.files)
    assert all(node.resident[i] == k for k, i in node.resident_at.items())
    # some files went and came back (else the churn did not run)
    assert node.changed and len(node.files) >= len(first) - 100


def test_default_churn_reads_new_files():
    node, first = _churned(rereads=False)
    assert set(node.files) - first          # files never seen before
    assert not node.evicted and not node.resident


def test_age_churns_without_naming_changes():
    node = SyntheticNode(2000, 20, rereads=True)
    before = {k: list(v) for k, v in node.files.items()}
    node.age(30, 0.02)
    assert not node.changed and not node.changed_io
    assert any(node.files.get(k) != v for k, v in before.items())


def test_decode_afresh_makes_equal_new_objects():
    node = SyntheticNode(500, 10, rereads=True)
    node.age(5, 0.05)
    before = dict(node.files)
    node.decode_afresh(shuffle_seed=3)
    assert node.files == before                         # the same lists, by value
    assert list(node.files) != list(before)             # in another order
    key = next(iter(before))
    assert node.files[key] is not before[key] and node.files[key][0] is not before[key][0]
    assert node.io_by_key == {(f.dev, f.ino, f.cgroup_id): f for f in node.io.values()}


def test_derived_content_answers_as_the_nodes_own():
    """node_process.py's resolver derives each file's FileInfo and digest:
    the same answers as the node's StaticContent for every file it made,
    new ones of the default churn included."""
    from synthetic_node import DerivedContent
    node, first = _churned(rereads=False, rounds=10)
    derived = DerivedContent(node.mount_list, node.n_images, node.per_mount)
    mount_of = {m.dev: m for m in node.mount_list}
    assert len(node.content.files) > len(first)
    for (dev, ino), info in node.content.files.items():
        assert derived.file_info(mount_of[dev], ino) == info
        assert derived.digest(mount_of[dev], ino) == node.content.content[(dev, ino)]
    assert len(set(node.content.content.values())) < len(node.content.content)  # copies share one
