"""rows.container_rows makes each Container with its fields positional (one
row per cgroup, every refresh): each row against one made here by field
name from the same sums, on test_refresh_churn's random node, with a
cgroup resolver that gives every name field a value of its own (a swapped
field fails), some cgroups unresolved, some names None, and a resolver
object without name fields."""
from __future__ import annotations

import dataclasses
import random

import pytest

import erofs_top.aggregate as aggregate_mod
from erofs_top import rows
from erofs_top.aggregate import Aggregator
from erofs_top.model import Container, Health, Totals
from erofs_top.readings import UNKNOWN_CGROUP
from erofs_top.resolve.base import CgroupInfo

from test_refresh_churn import PAGE, Node

NAME_FIELDS = ("namespace", "image", "image_digest", "snapshot_key", "pod_namespace",
               "pod_name", "container_name")


@dataclasses.dataclass
class _Bare:
    """A resolver's answer without name fields (duck-typed CgroupInfo)."""
    path: str
    runtime: str = "bare"
    container_id: str = "cid"
    pod_uid: str = "pod"
    resolved: bool = True


class NamedCgroups:
    """A cgroup resolver whose every field differs per field and cgroup."""

    def resolve(self, cg: int):
        if cg % 5 == 0:
            return _Bare(f"/bare/{cg}")
        names = {k: (None if cg % 3 == 0 and i % 2 else f"{k}-{cg}")
                 for i, k in enumerate(NAME_FIELDS)}
        return CgroupInfo(cg, f"/pods/c{cg}", f"rt-{cg}", f"cid-{cg}", f"pod-{cg}",
                          resolved=cg % 4 != 0, **names)


def _by_name(agg, cgroups, saved, page: int) -> tuple[list[Container], int, int, int]:
    """The rows by field name: (rows, unresolved, inserted bytes, evicted bytes)."""
    out, unresolved, ins_total, ev_total = [], 0, 0, 0
    for cg in sorted(agg.acc.cg.keys() | agg.io.by_group.keys()):
        a = agg.acc.cg.get(cg)
        ins, ev, ra, rf, _ = agg.io.by_group.get(cg, (0, 0, 0, 0, 0))
        ci = None if cg == UNKNOWN_CGROUP else cgroups.resolve(cg)
        if ci is not None and not ci.resolved:
            unresolved += 1
        names = {k: (getattr(ci, k, "") or "") for k in NAME_FIELDS} if ci else {}
        out.append(Container(
            cgroup_id=cg, cgroup=ci.path if ci else rows.UNKNOWN_CGROUP_PATH,
            runtime=ci.runtime if ci else "", container_id=ci.container_id if ci else "",
            pod_uid=ci.pod_uid if ci else "",
            resident_bytes=a.resident * page if a else 0,
            duplicate_bytes=a.dup * page if a else 0,
            shared_bytes=a.shared * page if a else 0,
            fair_bytes=round(a.fair * page) if a else 0,
            inserted_bytes=ins * page, evicted_bytes=ev * page, readahead_bytes=ra * page,
            read_folio_count=rf, seeded_bytes=a.seeded * page if a else 0,
            files_count=a.files if a else 0, mounts=list(agg.cgroup_mounts.get(cg, ())),
            potential_savings_bytes=saved.potential.by_cgroup.get(cg, 0) * page, **names))
        ins_total += ins * page
        ev_total += ev * page
    out.sort(key=lambda c: (-c.resident_bytes, c.cgroup, c.cgroup_id))
    return out, unresolved, ins_total, ev_total


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("lean", [False, True], ids=["tui", "exporter"])
def test_positional_rows_equal_rows_by_name(seed, lean, monkeypatch):
    made = []
    real = aggregate_mod.build_model

    def kept_args(agg, readings, mounts, cgroups, saved, health, **kw):
        model = real(agg, readings, mounts, cgroups, saved, health, **kw)
        made.append((agg, cgroups, saved, model))
        return model

    monkeypatch.setattr(aggregate_mod, "build_model", kept_args)
    node = Node(random.Random(seed), hint=True)
    agg = Aggregator(recheck_slices=0)
    agg.exported_rows_only = lean
    cgroups = NamedCgroups()
    checked = unresolved_seen = 0
    for step in range(10):
        if step:
            node.churn(5)
        agg.update(node.readings(float(step)), node.mounts, cgroups, node.content,
                   tier="full", started_at=0.0, files_cap=10)
        _, _, saved, model = made[-1]
        want, unresolved, ins, ev = _by_name(agg, cgroups, saved, PAGE)
        assert model.containers == want, f"step {step}"
        assert model.health.unresolved_cgroups == unresolved
        assert (model.totals.inserted_bytes, model.totals.evicted_bytes) == (ins, ev)
        checked += len(want)
        unresolved_seen += unresolved
    assert checked > 20 and unresolved_seen
    names = {getattr(c, k) for c in model.containers for k in NAME_FIELDS}
    assert "" in names and len(names) > 10       # None and absent names read as "", others kept


def test_runtime_names_of_any_resolver_answer():
    info = CgroupInfo(7, "/x", image=None, pod_name="p")
    assert rows._runtime_names(info) == ("", "", "", "", "", "p", "")
    assert rows._runtime_names(_Bare("/y")) == ("",) * len(NAME_FIELDS)
    assert rows._runtime_names(None) == ("",) * len(NAME_FIELDS)
    full = CgroupInfo(7, "/x", **{k: k.upper() for k in NAME_FIELDS})
    assert rows._runtime_names(full) == tuple(k.upper() for k in NAME_FIELDS)
