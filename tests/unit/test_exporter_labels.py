"""FamilyBuilder keeps each container's label values and info labels
between Models (made once per distinct set of names): a kept builder's
label-bearing families equal a fresh builder's, Model after Model, while
every name a container's labels come from changes under the same cgroup id."""
from __future__ import annotations

import dataclasses
import random

from erofs_top.exporter.metrics import LABEL_CACHE_MAX, FamilyBuilder
from erofs_top.model import TIER_TRACEPOINT, Container, Health, Model, Totals

NAMES = ("cgroup", "runtime", "container_id", "pod_uid", "image", "namespace",
         "pod_namespace", "pod_name", "container_name")
VALUES = ["", "a", "b\nc", "d\"e", "ünï"]


def _model(containers) -> Model:
    return Model(tier=TIER_TRACEPOINT, started_at=1.0, ended_at=2.0, page_size=4096,
                 containers=containers, mounts=[], files=[], kernel="6.18.0",
                 health=Health(probes_attached=True), totals=Totals())


def _labelled(families):
    """The families whose samples carry container labels: names, labels and values."""
    return [(f.name, [(s.name, s.labels, s.value) for s in f.samples])
            for f in families if f.name.startswith("erofs_top_container")
            and not f.type == "counter"]


def test_kept_labels_follow_every_name():
    rng = random.Random(3)
    kept = FamilyBuilder()
    containers = [Container(cgroup_id=100 + i, cgroup=f"/pods/p{i}", resident_bytes=4096 * (i + 1))
                  for i in range(6)]
    for step in range(60):
        c = rng.randrange(len(containers))
        field = rng.choice(NAMES)
        value = rng.choice(VALUES) + ("/x" if field == "cgroup" else "")
        containers[c] = dataclasses.replace(containers[c], **{field: value or "/y"}
                                            if field == "cgroup" else {field: value})
        model = _model(list(containers))
        assert _labelled(kept.build(model)) == _labelled(FamilyBuilder().build(model)), step


def test_label_cache_is_bounded():
    kept = FamilyBuilder()
    for i in range(LABEL_CACHE_MAX + 10):
        kept._labels(Container(cgroup_id=i, cgroup=f"/c{i}"), "", "", "")
    assert len(kept._label_cache) <= LABEL_CACHE_MAX
