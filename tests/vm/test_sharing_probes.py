"""The full-tier probes (probes/ishare.c via erofs_top.kernel.sharing) against
the kernel's ground truth, on the lab's Linux 7.x.

One BCC compile per boot (the session fixture ``sharing_probes``); each test
finds its own shared inodes by their members' (s_dev, i_ino), so tests do not
see each other's pages.
"""
from __future__ import annotations

import os

import pytest

from erofs_top.readings import kdev_from_st_dev

from . import labkit as lk

DOMAIN = "erofstop"
SHARE = f"inode_share,domain_id={DOMAIN}"
SIZE = 2 * lk.MiB
NPAGES = SIZE // lk.PAGE


def key(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return kdev_from_st_dev(st.st_dev), st.st_ino


def shared_of(probes, *paths):
    """The SharedInode(s) whose members include any of PATHS' (dev, ino)."""
    want = {key(p) for p in paths}
    return [s for s in probes.read() if s.members & want]


def resident_by_owner(s) -> dict[int, int]:
    out: dict[int, int] = {}
    for owners in s.chunks.values():
        for cg, mask in owners.items():
            out[cg] = out.get(cg, 0) + mask.bit_count()
    return out


@pytest.fixture(scope="module")
def images(lab):
    d = lk.workdir("sharing-probes")
    try:
        for side in ("a", "b"):
            lk.write_random(f"{d}/src-{side}/big.bin", SIZE, seed=11)
            lk.write_random(f"{d}/src-{side}/uniq.bin", 256 * 1024)
            lk.write_text(f"{d}/src-{side}/text.txt", SIZE, seed=3)
            lk.mkfs_erofs(f"{d}/{side}-dig.erofs", f"{d}/src-{side}", "--xattr-inode-digest")
            lk.mkfs_erofs(f"{d}/{side}-plain.erofs", f"{d}/src-{side}")
            lk.mkfs_erofs(f"{d}/{side}-lz4.erofs", f"{d}/src-{side}", "--xattr-inode-digest", "-zlz4")
        yield d
    finally:
        lk.rmtree(d)


def test_supported_in_lab(lab):
    from erofs_top.kernel import host
    ok, how = host.sharing_supported()
    assert ok, how
    assert "headers match" in how


def test_two_containers_one_shared_inode(sharing_probes, images):
    p = sharing_probes
    with lk.erofs_mount(f"{images}/a-dig.erofs", SHARE) as ma, \
            lk.erofs_mount(f"{images}/b-dig.erofs", SHARE) as mb, \
            lk.Cgroup("sh-a") as ca, lk.Cgroup("sh-b") as cb:
        fa, fb = f"{ma}/big.bin", f"{mb}/big.bin"
        ca.read(fa)
        cb.read(fb)
        found = shared_of(p, fa, fb)
        # ground truth after the probe read: mincore's mmap is itself a use
        truth_pages = lk.mincore_pages(fb)
    assert len(found) == 1, f"A and B must map to one shared inode: {found}"
    s = found[0]
    assert len(s.members) == 2, s.members
    assert s.size == SIZE
    owners = resident_by_owner(s)
    # the kernel charges the first reader for every page; B inserted none
    assert owners.get(ca.id, 0) == truth_pages == NPAGES, (owners, truth_pages)
    assert owners.get(cb.id, 0) == 0, owners
    assert set(s.users) >= {ca.id, cb.id}, s.users
    assert len(s.users[ca.id]) == 1 and len(s.users[cb.id]) == 1
    assert s.users[ca.id] != s.users[cb.id], "each container used its own mount's inode"
    # sharing saved: resident pages x (users - 1) among the two containers
    users = {ca.id, cb.id} & set(s.users)
    assert sum(owners.values()) * (len(users) - 1) == NPAGES
    c = p.counters()
    assert c["fill_shared"] >= 2 and c["fill_no_iget"] == 0, c
    assert c["chunk_update_failures"] == c["owner_overflow_pages"] == 0, c


def test_mmap_only_reader_is_a_user(sharing_probes, images):
    p = sharing_probes
    with lk.erofs_mount(f"{images}/a-dig.erofs", SHARE) as ma, \
            lk.erofs_mount(f"{images}/b-dig.erofs", SHARE) as mb, \
            lk.Cgroup("mm-a") as ca, lk.Cgroup("mm-b") as cb:
        ca.read(f"{ma}/big.bin")
        cb.mmap_touch(f"{mb}/big.bin")          # never calls read(2)
        (s,) = shared_of(p, f"{ma}/big.bin")
        assert cb.id in s.users, f"mmap-only container missing from users {s.users}"
        assert resident_by_owner(s).get(cb.id, 0) == 0


def test_mmap_first_inserts_pages(sharing_probes, images):
    """Pages faulted in through an mmap are inserted by the mapping cgroup."""
    p = sharing_probes
    with lk.erofs_mount(f"{images}/a-dig.erofs", SHARE) as ma, lk.Cgroup("mf-a") as ca:
        ca.mmap_touch(f"{ma}/big.bin")
        (s,) = shared_of(p, f"{ma}/big.bin")
        owners = resident_by_owner(s)
        truth = lk.mincore_pages(f"{ma}/big.bin")
    assert owners.get(ca.id, 0) == truth > 0, (owners, truth)


def test_eviction_of_last_member_drops_shared_pages(sharing_probes, images):
    p = sharing_probes
    with lk.Cgroup("ev-a") as ca:
        with lk.erofs_mount(f"{images}/a-dig.erofs", SHARE) as ma, \
                lk.erofs_mount(f"{images}/b-dig.erofs", SHARE) as mb:
            ca.read(f"{ma}/big.bin")
            (s,) = shared_of(p, f"{ma}/big.bin", f"{mb}/big.bin")
            mapping = s.mapping
            assert sum(resident_by_owner(s).values()) == NPAGES
            ka, kb = key(f"{ma}/big.bin"), key(f"{mb}/big.bin")
            with lk.erofs_mount(f"{images}/a-dig.erofs", SHARE) as mc:
                kc = key(f"{mc}/big.bin")
            # one member left (mount C): the other two still hold the pages
            left = [x for x in p.read() if x.mapping == mapping]
            assert left and sum(resident_by_owner(left[0]).values()) == NPAGES
            assert kc not in left[0].members
        # both mounts gone: real inodes evicted, the shared inode and its pages too
        gone = [x for x in p.read() if x.mapping == mapping and (x.members & {ka, kb} or x.chunks)]
        assert gone == [], gone
        c = p.counters()
        assert c["free_inode"] >= 2, c


def test_compressed_images_share_too(sharing_probes, images):
    p = sharing_probes
    with lk.erofs_mount(f"{images}/a-lz4.erofs", SHARE) as ma, \
            lk.erofs_mount(f"{images}/b-lz4.erofs", SHARE) as mb, \
            lk.Cgroup("lz-a") as ca, lk.Cgroup("lz-b") as cb:
        ca.read(f"{ma}/text.txt")
        cb.read(f"{mb}/text.txt")
        found = shared_of(p, f"{ma}/text.txt", f"{mb}/text.txt")
        truth = lk.mincore_pages(f"{mb}/text.txt")
    assert len(found) == 1 and len(found[0].members) == 2, found
    assert resident_by_owner(found[0]).get(ca.id, 0) == truth == NPAGES


@pytest.mark.parametrize("case", ["no-digest", "two-domains", "plain-vs-lz4", "loop-vs-file"])
def test_no_shared_inode_where_the_kernel_did_not_share(sharing_probes, images, case):
    """The probes report sharing exactly where the kernel shared, nowhere else."""
    p = sharing_probes
    img_a, img_b, opt_b, loop_b = f"{images}/a-dig.erofs", f"{images}/b-dig.erofs", SHARE, False
    if case == "no-digest":
        img_a, img_b = f"{images}/a-plain.erofs", f"{images}/b-plain.erofs"
    elif case == "two-domains":
        opt_b = SHARE + "2"
    elif case == "plain-vs-lz4":
        img_b = f"{images}/b-lz4.erofs"
    elif case == "loop-vs-file":
        loop_b = True
    target = "text.txt" if case == "plain-vs-lz4" else "big.bin"
    with lk.erofs_mount(img_a, SHARE) as ma, lk.erofs_mount(img_b, opt_b, loop=loop_b) as mb, \
            lk.Cgroup("ns-a") as ca, lk.Cgroup("ns-b") as cb:
        fa, fb = f"{ma}/{target}", f"{mb}/{target}"
        ca.read(fa)
        c0 = lk.cached_bytes()
        cb.read(fb)
        b_pages = (lk.cached_bytes() - c0) // lk.PAGE
        found = shared_of(p, fa, fb)
        ka, kb = key(fa), key(fb)
    assert b_pages >= NPAGES * 0.9, f"the kernel shared after all ({b_pages} pages added by B)"
    for s in found:
        # no shared inode holds both files, and B never used A's
        assert len(s.members & {ka, kb}) == 1, s
        if ka in s.members:
            assert cb.id not in s.users, s


def test_fentry_variant_sees_the_same(lab, images, sharing_probes):
    """The fentry/fexit build of probes/ishare.c (what "auto" falls back to
    when kprobes cannot attach; the fallback order is unit-tested)."""
    from erofs_top.kernel import sharing
    with sharing.SharingProbes(mode="fentry") as fp:
        assert fp.hook == "fentry"
        with lk.erofs_mount(f"{images}/a-dig.erofs", SHARE) as ma, \
                lk.erofs_mount(f"{images}/b-dig.erofs", SHARE) as mb, \
                lk.Cgroup("fe-a") as ca, lk.Cgroup("fe-b") as cb:
            ca.read(f"{ma}/big.bin")
            cb.mmap_touch(f"{mb}/big.bin")
            (s,) = shared_of(fp, f"{ma}/big.bin")
            assert resident_by_owner(s).get(ca.id, 0) == NPAGES
            assert {ca.id, cb.id} <= set(s.users)
            assert len(s.members) == 2
            assert fp.counters()["fill_shared"] >= 2


def test_kprobe_attach_failure_is_one_line(sharing_probes, monkeypatch):
    """kprobe-only mode: a required probe that cannot attach is a SharingError
    of one line naming it (attached to the session's loaded program: a second
    compile would cost ~20 s under TCG)."""
    from erofs_top.kernel import sharing
    bogus = ("erofs_top_no_such_function", "kp_ishare_mmap", False, True)
    monkeypatch.setattr(sharing, "KPROBES", (bogus,))
    shell = sharing.SharingProbes.__new__(sharing.SharingProbes)
    shell.bpf, shell.warnings = sharing_probes.bpf, []
    with pytest.raises(sharing.SharingError) as e:
        shell._attach_kprobes()
    msg = str(e.value)
    assert "kprobe erofs_top_no_such_function" in msg and "\n" not in msg, msg
    # an optional probe only warns
    monkeypatch.setattr(sharing, "KPROBES", (bogus[:3] + (False,),))
    shell._attach_kprobes()
    assert any("erofs_top_no_such_function" in w for w in shell.warnings), shell.warnings


def test_btf_layouts_equal_the_kernel_header_tree(lab):
    """erofs_top/kernel/btf.py's offsets and sizes (libbpf on the running
    kernel's BTF) against clang's view of this kernel's own header tree: a
    program that includes the headers and asserts each -D macro equals
    offsetof/sizeof there compiles only if every one matches."""
    from bcc import BPF

    from erofs_top.kernel import btf
    flags, why = btf.cflags()
    assert flags is not None, why
    checks = []
    for st, path in btf.FIELDS:
        name = btf.macro_name(st, path)
        checks.append(f"_Static_assert(OFF_{name} == offsetof(struct {st}, {path}), "
                      f"\"offset of {st}.{path}\");")
        checks.append(f"_Static_assert(SZ_{name} == sizeof(((struct {st} *)0)->{path}), "
                      f"\"size of {st}.{path}\");")
    for enum, value in btf.ENUMS:
        checks.append(f"_Static_assert(VAL_{enum}__{value} == {value}, \"{enum} {value}\");")
    text = "\n".join(["#include <linux/fs.h>", "#include <linux/mm_types.h>",
                      "#include <linux/page-flags.h>", "#include <linux/uio.h>",
                      "#include <linux/stddef.h>", *checks,
                      "int layout_check(void *ctx) { return 0; }"])
    b = BPF(text=text.encode(), cflags=flags)     # raises with clang's message on a mismatch
    b.cleanup()
    assert len(checks) == 2 * len(btf.FIELDS) + len(btf.ENUMS)
