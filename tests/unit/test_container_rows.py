"""rows.container_rows and rows.mount_rows make each Container and Mount
with its fields positional (one row per cgroup and per mount, every
refresh): each row against one made here by field name from the same
sums, on test_refresh_churn's random node, with a cgroup resolver that
gives every name field a value of its own (a swapped field fails), some
cgroups unresolved, some names None, and a resolver object without name
fields; mounts with layer names, and without an image."""
from __future__ import annotations

import dataclasses
import random

import pytest

import erofs_top.aggregate as aggregate_mod
from erofs_top import rows
from erofs_top.aggregate import Aggregator
from erofs_top.model import Container, Mount
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


def _mounts_by_name(agg, readings, mounts, saved, page: int) -> tuple[list[Mount], int]:
    """The mount rows by field name, holders aside: (rows, backing bytes)."""
    out, backing_total = [], 0
    for m in mounts.mounts():
        img = m.image
        pages = readings.backing_pages.get((m.backing_dev, m.backing_ino), 0) \
            if m.backing_ino else 0
        now = saved.potential_now.by_dev.get(m.dev, 0)
        out.append(Mount(
            dev=m.dev_str, mountpoint=m.mountpoint, source=m.source, backing=m.backing,
            backing_file=m.backing_file, image_id=m.image_id,
            uuid=img.uuid if img else "", volume_name=img.volume_name if img else "",
            inode_share=m.inode_share, directio=m.directio,
            ishare_xattrs=img.ishare_xattrs if img else False,
            compressed=img.compressed if img else False,
            resident_bytes=agg.acc.mount_resident.get(m.dev, 0) * page,
            duplicate_bytes=agg.acc.mount_dup.get(m.dev, 0) * page,
            backing_resident_bytes=max(0, pages) * page,
            containers_count=len(agg.acc.mount_cgroups().get(m.dev, ())),
            potential_savings_bytes=saved.potential.by_dev.get(m.dev, 0) * page,
            potential_savings_now_bytes=now * page,
            potential_savings_domains_bytes=max(
                0, saved.potential_domains.by_dev.get(m.dev, 0) - now) * page,
            layer_digest=m.layer_digest, snapshot_id=m.snapshot_id, images=list(m.images)))
        backing_total += max(0, pages) * page
    return out, backing_total


def _named_mounts(node) -> None:
    """Layer names on some mounts, no image on one, distinct per field."""
    for i, m in enumerate(node.all_mounts):
        if i % 2:
            m.layer_digest, m.snapshot_id = f"sha256:layer{i}", f"snap{i}"
            m.images = (f"img{i}", "other")
        m.backing_file = f"/var/img{i}.erofs"
        m.directio = i == 1
    node.all_mounts[4].image = None


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
    _named_mounts(node)
    agg = Aggregator(recheck_slices=0)
    agg.exported_rows_only = lean
    cgroups = NamedCgroups()
    checked = unresolved_seen = holders_seen = 0
    for step in range(10):
        if step:
            node.churn(5)
        readings = node.readings(float(step))
        agg.update(readings, node.mounts, cgroups, node.content,
                   tier="full", started_at=0.0, files_cap=10)
        _, _, saved, model = made[-1]
        want, unresolved, ins, ev = _by_name(agg, cgroups, saved, PAGE)
        assert model.containers == want, f"step {step}"
        assert model.health.unresolved_cgroups == unresolved
        assert (model.totals.inserted_bytes, model.totals.evicted_bytes) == (ins, ev)
        checked += len(want)
        want_mounts, backing = _mounts_by_name(agg, readings, node.mounts, saved, PAGE)
        holders_seen += sum(map(len, (m.holders for m in model.mounts)))
        assert [dataclasses.replace(m, holders=[]) for m in model.mounts] == want_mounts
        assert model.totals.backing_resident_bytes == backing
        unresolved_seen += unresolved
    assert checked > 20 and unresolved_seen
    assert bool(holders_seen) != lean           # the exporter's rows have none
    names = {getattr(c, k) for c in model.containers for k in NAME_FIELDS}
    assert "" in names and len(names) > 10       # None and absent names read as "", others kept


def test_runtime_names_of_any_resolver_answer():
    info = CgroupInfo(7, "/x", image=None, pod_name="p")
    assert rows._runtime_names(info) == ("", "", "", "", "", "p", "")
    assert rows._runtime_names(_Bare("/y")) == ("",) * len(NAME_FIELDS)
    assert rows._runtime_names(None) == ("",) * len(NAME_FIELDS)
    full = CgroupInfo(7, "/x", **{k: k.upper() for k in NAME_FIELDS})
    assert rows._runtime_names(full) == tuple(k.upper() for k in NAME_FIELDS)
