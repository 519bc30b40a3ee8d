"""Savings stage c in the lab: two inode_share mounts of one content in two
domains keep two shared inodes (the kernel shares only within a domain);
erofs-top's ``potential_savings_domains_bytes`` (seen from the two shared
inodes, no domain_id read) must equal what one domain really saves, in page
cache the kernel charges (memory.stat ``file`` of the readers), and
``advise`` must say which mount to move.

One version of a real package in two images of one content (the matrix's
``v1`` and ``v1-noinline``: the two versions share few files), with
fingerprints, file-backed, cold image files, each read whole by its own
cgroup: first in domains ``dx``/``dy``, then both in ``dz``.
"""
from __future__ import annotations

import contextlib

from erofs_top.advise import advise

from . import labkit as lk
from .conftest import REPORT
from .test_savings_matrix import images  # noqa: F401 (fixture)


def _run(collector, imgs: list[str], domains: list[str]):
    with contextlib.ExitStack() as st:
        mnts = [st.enter_context(lk.erofs_mount(img, f"inode_share,domain_id={dom}"))
                for img, dom in zip(imgs, domains)]
        cgs = [st.enter_context(lk.Cgroup(f"dom-{i}")) for i in range(len(mnts))]
        collector.refresh()                 # picks up the new mounts
        lk.drop_caches()
        for cg, m in zip(cgs, mnts):
            cg.run(lk.read_tree, m)
        model = collector.refresh()
        return sum(cg.file_bytes() for cg in cgs), model, mnts


def test_two_domains_predict_what_one_domain_saves(collector, images):  # noqa: F811
    imgs = [images("v1"), images("v1-noinline")]
    charged_two, model, mnts = _run(collector, imgs, ["dx", "dy"])
    charged_one, one, _ = _run(collector, imgs, ["dz", "dz"])
    real = charged_two - charged_one
    t = model.totals
    REPORT.append(f"domains (stage c): predicted {t.potential_savings_domains_bytes / lk.MiB:.2f}"
                  f" MiB, real {real / lk.MiB:.2f} MiB ({charged_two / lk.MiB:.2f} -> "
                  f"{charged_one / lk.MiB:.2f} MiB charged); one domain reports "
                  f"{one.totals.potential_savings_domains_bytes / lk.MiB:.2f} MiB more")
    assert real > 0
    assert t.potential_savings_now_bytes == 0 and t.potential_savings_rebuild_bytes == 0, t
    assert abs(t.potential_savings_domains_bytes - real) <= max(0.05 * real,
                                                                0.01 * charged_two), (t, real)
    # in one domain there is nothing more to merge
    assert one.totals.potential_savings_domains_bytes == 0, one.totals
    top = advise(model)[0]
    assert top.kind == "domain" and len(top.mounts) == 1 and top.mounts[0] in mnts, top
