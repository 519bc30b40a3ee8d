"""erofs_top.advise: actions from a Model (the aggregator's savings)."""
from __future__ import annotations

from erofs_top.advise import advise, nothing_to_advise, render, to_json
from erofs_top.model import Model, Mount, Totals

MiB = 1 << 20


def mount(dev, mp, *, fp, share=False, pot=0, now=0, image="img", dup=0):
    return Mount(dev=dev, mountpoint=mp, source=f"/images/{mp[-1]}.erofs", backing="file",
                 backing_file=f"/images/{mp[-1]}.erofs", image_id=image, inode_share=share,
                 ishare_xattrs=fp, potential_savings_bytes=pot, potential_savings_now_bytes=now,
                 duplicate_bytes=dup)


def model(mounts, now=0, resident=0, dup=0, saved=0):
    return Model(tier="tracepoint", started_at=0, ended_at=1, page_size=4096, mounts=mounts,
                 totals=Totals(potential_savings_bytes=sum(m.potential_savings_bytes for m in mounts),
                               potential_savings_now_bytes=now, resident_bytes=resident,
                               duplicate_bytes=dup, sharing_saved_bytes=saved))


def test_ranked_inode_share_first_then_rebuilds():
    m = model([mount("0:41", "/m/a", fp=True, pot=6 * MiB, now=6 * MiB, image="A"),
               mount("0:42", "/m/b", fp=True, image="B"),
               mount("0:43", "/m/c", fp=False, pot=2 * MiB, image="C"),
               mount("0:44", "/m/d", fp=False, pot=9 * MiB, image="D")], now=6 * MiB)
    acts = advise(m)
    assert [(a.kind, a.saves_bytes) for a in acts] == [
        ("rebuild", 11 * MiB), ("inode_share", 6 * MiB)]
    share = acts[1]
    assert share.mounts == ["/m/a"]
    assert "inode_share,domain_id=" in share.commands[0] and "/images/a.erofs" in share.commands[0]
    # both images without fingerprints in one action, the larger saving first
    assert acts[0].image == "/images/d.erofs" and acts[0].mounts == ["/m/d", "/m/c"]
    assert acts[0].image_savings_bytes == {"D": 9 * MiB, "C": 2 * MiB}
    assert "11.0 MiB" in render(acts, m) and '"kind": "rebuild"' in to_json(acts, m)


def test_mounts_already_sharing_are_not_advised():
    m = model([mount("0:41", "/m/a", fp=True, share=True), mount("0:42", "/m/b", fp=True,
                                                                 share=True)])
    assert advise(m) == []
    assert render([], m).startswith("nothing to advise")


def test_inode_share_mounts_in_two_domains_are_advised_to_move():
    a = mount("0:41", "/m/a", fp=True, share=True, image="A")
    b = mount("0:42", "/m/b", fp=True, share=True, pot=3 * MiB, image="A")
    b.potential_savings_domains_bytes = 3 * MiB
    m = model([a, b])
    m.totals.potential_savings_domains_bytes = 3 * MiB
    acts = advise(m)
    assert [(x.kind, x.saves_bytes, x.mounts) for x in acts] == [("domain", 3 * MiB, ["/m/b"])]
    assert "/m/a" in acts[0].why
    assert acts[0].commands == ["umount /m/b && mount -t erofs -o ro,inode_share,"
                                "domain_id=<domain> /images/b.erofs /m/b"]


def test_when_every_shared_mount_would_gain_the_largest_keeps_its_domain():
    a = mount("0:41", "/m/a", fp=True, share=True, pot=MiB, image="A")
    b = mount("0:42", "/m/b", fp=True, share=True, pot=2 * MiB, image="B")
    a.potential_savings_domains_bytes, b.potential_savings_domains_bytes = MiB, 2 * MiB
    a.resident_bytes, b.resident_bytes = 9 * MiB, 5 * MiB
    m = model([a, b])
    m.totals.potential_savings_domains_bytes = 3 * MiB
    (act,) = advise(m)
    assert act.kind == "domain" and act.mounts == ["/m/b"] and "(/m/a)" in act.why


def test_the_copy_that_keeps_the_pages_is_remounted_too():
    # /m/a keeps the one cached copy (it saves nothing itself), /m/b's copy goes: both
    # must be in the domain, or /m/b has nothing to share with.  /m/c holds only
    # unique content, /m/d shares already.
    m = model([mount("0:41", "/m/a", fp=True, dup=4 * MiB),
               mount("0:42", "/m/b", fp=True, pot=4 * MiB, now=4 * MiB, dup=4 * MiB),
               mount("0:43", "/m/c", fp=True),
               mount("0:44", "/m/d", fp=True, share=True, dup=4 * MiB)], now=4 * MiB)
    (share,) = advise(m)
    assert share.mounts == ["/m/a", "/m/b"]
    assert [c.split()[-1] for c in share.commands] == ["/m/a", "/m/b"]


def test_an_image_without_fingerprints_that_keeps_the_pages_is_rebuilt_too():
    # /m/a's copy stays cached (no saving of its own), /m/b's would go: /m/b's rebuild
    # saves only once /m/a's image carries fingerprints too.  /m/c is unique content.
    m = model([mount("0:41", "/m/a", fp=False, dup=4 * MiB, image="A"),
               mount("0:42", "/m/b", fp=False, pot=4 * MiB, dup=4 * MiB, image="B"),
               mount("0:43", "/m/c", fp=False, image="C")])
    (act,) = advise(m)
    assert (act.kind, act.saves_bytes, act.image) == ("rebuild", 4 * MiB, "/images/b.erofs")
    assert act.mounts == ["/m/b", "/m/a"]
    assert [c.split()[-1].rstrip(">") for c in act.commands] == ["/images/b.erofs",
                                                                 "/images/a.erofs"]
    assert act.image_savings_bytes == {"B": 4 * MiB, "A": 0}


def test_images_that_keep_some_copies_and_give_up_others_are_one_action():
    # seen in the lab: two versions without fingerprints, each keeps some copies
    m = model([mount("0:41", "/m/a", fp=False, pot=MiB, dup=4 * MiB, image="A"),
               mount("0:42", "/m/b", fp=False, pot=3 * MiB, dup=4 * MiB, image="B")])
    assert [(a.saves_bytes, a.mounts) for a in advise(m)] == [(4 * MiB, ["/m/b", "/m/a"])]


def test_a_fingerprinted_keeper_needs_no_rebuild():
    m = model([mount("0:41", "/m/a", fp=True, dup=4 * MiB, image="A"),
               mount("0:42", "/m/b", fp=False, pot=4 * MiB, dup=4 * MiB, image="B")])
    (act,) = advise(m)
    assert act.mounts == ["/m/b"] and len(act.commands) == 1 and "(all of them" not in act.why


def test_duplicates_without_a_saving_now_are_not_an_inode_share_action():
    m = model([mount("0:41", "/m/a", fp=True, dup=4 * MiB),
               mount("0:42", "/m/b", fp=True, dup=4 * MiB)])
    assert advise(m) == []


def test_nothing_to_advise_says_why():
    assert nothing_to_advise(model([])) == "no EROFS mounts on this node"
    stock = [mount("0:41", "/m/a", fp=True), mount("0:42", "/m/b", fp=False)]
    assert nothing_to_advise(model(stock)) == "no EROFS page cache resident yet"
    assert nothing_to_advise(model(stock, resident=MiB)) == "no duplicate content resident"
    assert nothing_to_advise(model(stock, resident=MiB, dup=2 * MiB)) == (
        "2.0 MiB duplicate, none of it shareable (docs/sharing.md)")
    sharing = [mount("0:41", "/m/a", fp=True, share=True),
               mount("0:42", "/m/b", fp=True, share=True)]
    assert nothing_to_advise(model(sharing, resident=MiB, dup=0, saved=3 * MiB)) == (
        "every mount already shares (inode_share), saving 3.0 MiB")
    reasons = [nothing_to_advise(model(stock, resident=MiB, dup=1023 * MiB)),
               nothing_to_advise(model(sharing, resident=MiB, saved=1023 * MiB))]
    assert all(len("Nothing to advise: " + r) <= 80 for r in reasons)


def test_exporter_has_one_rebuild_series_per_image_summing_to_the_action():
    from erofs_top.exporter.metrics import FamilyBuilder
    m = model([mount("0:41", "/m/a", fp=True, pot=6 * MiB, now=6 * MiB, image="A"),
               mount("0:43", "/m/c", fp=False, dup=2 * MiB, image="C"),
               mount("0:44", "/m/d", fp=False, pot=9 * MiB, dup=2 * MiB, image="D")], now=6 * MiB)
    (fam,) = [f for f in FamilyBuilder().build(m) if f.name == "erofs_top_advice_savings_bytes"]
    series = {(s.labels["action"], s.labels["image"]): s.value for s in fam.samples}
    assert series == {("inode_share", ""): 6 * MiB, ("rebuild", "D"): 9 * MiB,
                      ("rebuild", "C"): 0}
