"""Aggregator math on fixture readings: no root, no BPF."""
import json
from dataclasses import dataclass, field

import pytest

from erofs_top.aggregate import UNKNOWN_CGROUP_PATH, aggregate
from erofs_top.model import Model
from erofs_top.readings import FileIO, PageChunk, Readings, SharedInode, kdev
from erofs_top.resolve.base import (AOPS_BLOCK, AOPS_COMPRESSED, AOPS_FILEIO, FileInfo,
                                    StaticCgroups, StaticContent, StaticMounts, ImageInfo,
                                    MountInfo)

PAGE = 4096
DEV_A = kdev(0, 40)     # file-backed mount of image 1
DEV_B = kdev(0, 41)     # the same image mounted again
DEV_C = kdev(7, 0)      # loop mount of image 2
CG_A, CG_B = 101, 202


def image(uid):
    return ImageInfo(uuid=uid, volume_name="", feature_compat=0, feature_incompat=0,
                     block_size=4096, image_id=f"img-{uid}", ishare_xattrs=False,
                     compressed=False)


def mount(dev, backing, img):
    major, minor = dev >> 20, dev & 0xFFFFF
    return MountInfo(dev=dev, dev_str=f"{major}:{minor}", mountpoint=f"/mnt/{minor}",
                     source=f"/img/{img.uuid}", backing=backing, image=img)


def mask(first, count):
    return ((1 << count) - 1) << first


def chunks_for(dev, ino, pages, cg):
    """PageChunks for page indices [0, pages) inserted by cg."""
    out = []
    for c in range((pages + 63) // 64):
        n = min(64, pages - c * 64)
        out.append(PageChunk(dev, ino, c, {cg: mask(0, n)}))
    return out


@pytest.fixture
def env():
    img1, img2 = image("one"), image("two")
    mounts = StaticMounts([mount(DEV_A, "file", img1), mount(DEV_B, "file", img1),
                            mount(DEV_C, "loop", img2)])
    cgroups = StaticCgroups({CG_A: "/pods/ctrA", CG_B: "/pods/ctrB"})
    size = 200 * PAGE
    content = StaticContent(files={
        (DEV_A, 40): FileInfo(40, "/mnt/40/lib.so", size, True, AOPS_FILEIO),
        (DEV_B, 40): FileInfo(40, "/mnt/41/lib.so", size, True, AOPS_FILEIO),
        (DEV_C, 77): FileInfo(77, "/mnt/0/lib.so", size, True, AOPS_BLOCK),
        (DEV_A, 50): FileInfo(50, "/mnt/40/data", 10 * PAGE, True, AOPS_FILEIO),
    }, content={(DEV_A, 40): "aa" * 32, (DEV_B, 40): "aa" * 32, (DEV_C, 77): "aa" * 32})
    return mounts, cgroups, content


def run(readings, env, **kw):
    mounts, cgroups, content = env
    return aggregate(readings, mounts, cgroups, content, tier="tracepoint", started_at=0.0, **kw)


def test_same_image_twice_duplicates_exact_per_page(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks += chunks_for(DEV_A, 40, 200, CG_A)       # ctrA read all 200 pages
    r.chunks += chunks_for(DEV_B, 40, 50, CG_B)        # ctrB read the first 50
    m = run(r, env)
    a, b = m.container("/pods/ctrA"), m.container("/pods/ctrB")
    assert a.resident_bytes == 200 * PAGE and b.resident_bytes == 50 * PAGE
    assert a.duplicate_bytes == 50 * PAGE and b.duplicate_bytes == 50 * PAGE
    assert m.totals.redundant_bytes == 50 * PAGE
    assert m.totals.potential_savings_bytes == 50 * PAGE   # same image, same aops
    assert m.totals.resident_bytes == 250 * PAGE
    # the same image mounted twice needs no hashing
    assert env[2].digest_calls == 0
    f = next(f for f in m.files if f.dev == "0:40" and f.ino == 40)
    assert f.copies == 2 and f.content_id.startswith("img:")


def test_duplicate_only_where_page_indices_match(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks.append(PageChunk(DEV_A, 40, 0, {CG_A: mask(0, 32)}))     # pages 0..31
    r.chunks.append(PageChunk(DEV_B, 40, 0, {CG_B: mask(16, 32)}))    # pages 16..47
    m = run(r, env)
    assert m.container("/pods/ctrA").duplicate_bytes == 16 * PAGE
    assert m.container("/pods/ctrB").duplicate_bytes == 16 * PAGE
    assert m.totals.redundant_bytes == 16 * PAGE


def test_different_images_found_by_content_but_not_shareable_across_aops(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks += chunks_for(DEV_A, 40, 100, CG_A)       # file-backed: erofs_fileio_aops
    r.chunks += chunks_for(DEV_C, 77, 100, CG_B)       # loop: erofs_aops
    m = run(r, env)
    assert m.container("/pods/ctrA").duplicate_bytes == 100 * PAGE
    assert m.totals.redundant_bytes == 100 * PAGE
    # inode_share never shares a file-backed copy with a loop copy
    assert m.totals.potential_savings_bytes == 0
    assert env[2].digest_calls >= 2


def test_three_copies_redundant_counts_k_minus_one(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks += chunks_for(DEV_A, 40, 64, CG_A)
    r.chunks += chunks_for(DEV_B, 40, 64, CG_B)
    r.chunks += chunks_for(DEV_C, 77, 64, CG_B)
    m = run(r, env)
    assert m.totals.redundant_bytes == 2 * 64 * PAGE
    assert m.totals.duplicate_bytes == 3 * 64 * PAGE
    assert m.totals.potential_savings_bytes == 64 * PAGE   # only the two fileio copies


def test_unique_file_is_not_duplicate_and_counts(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks.append(PageChunk(DEV_A, 50, 0, {CG_A: mask(0, 10)}))
    r.io.append(FileIO(DEV_A, 50, CG_A, inserted_pages=12, evicted_pages=2,
                       readahead_pages=8, read_folio_count=3))
    m = run(r, env)
    a = m.container("/pods/ctrA")
    assert (a.resident_bytes, a.duplicate_bytes) == (10 * PAGE, 0)
    assert (a.inserted_bytes, a.evicted_bytes, a.readahead_bytes, a.read_folio_count) == \
        (12 * PAGE, 2 * PAGE, 8 * PAGE, 3)
    assert a.fair_bytes == a.resident_bytes and a.shared_bytes == 0
    assert m.files[0].content_id == ""    # unique by size: never hashed
    assert env[2].digest_calls == 0


def test_two_owners_in_one_chunk_and_unknown_owner(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks.append(PageChunk(DEV_A, 50, 0, {CG_A: mask(0, 4), CG_B: mask(4, 4), 0: mask(8, 2)},
                              seeded_mask=mask(8, 2)))
    m = run(r, env)
    assert m.container("/pods/ctrA").resident_bytes == 4 * PAGE
    assert m.container("/pods/ctrB").resident_bytes == 4 * PAGE
    unknown = m.container(UNKNOWN_CGROUP_PATH)
    assert unknown.resident_bytes == 2 * PAGE and unknown.seeded_bytes == 2 * PAGE
    assert m.health.seeded_bytes == 2 * PAGE


def test_unresolved_cgroup_and_mount_are_reported(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks.append(PageChunk(DEV_A, 50, 0, {999: mask(0, 1)}))
    r.chunks.append(PageChunk(kdev(0, 99), 5, 0, {CG_A: mask(0, 1)}))
    m = run(r, env)
    assert m.health.unresolved_cgroups == 1
    assert m.health.unresolved_mounts == 1
    assert any("no current EROFS mount" in w for w in m.health.warnings)
    assert m.container("?") is not None


def test_shared_inode_owner_users_fair_and_saved(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    shared = SharedInode(mapping=0xffff888012345678, chunks={0: {CG_A: mask(0, 64)},
                                                             1: {CG_A: mask(0, 36)}},
                         members={(DEV_A, 40), (DEV_B, 40)},
                         users={CG_A: {(DEV_A, 40)}, CG_B: {(DEV_B, 40)}}, size=200 * PAGE)
    r.shared.append(shared)
    m = run(r, env)
    a, b = m.container("/pods/ctrA"), m.container("/pods/ctrB")
    # the kernel charges the first reader for all of it; the second pays nothing
    assert a.resident_bytes == 100 * PAGE and b.resident_bytes == 0
    assert a.shared_bytes == b.shared_bytes == 100 * PAGE
    assert a.fair_bytes == b.fair_bytes == 50 * PAGE
    assert m.totals.shared_bytes == 100 * PAGE
    assert m.totals.sharing_saved_bytes == 100 * PAGE
    assert m.totals.resident_bytes == 100 * PAGE
    assert m.files[0].shared


def test_files_cap_reported(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    for ino in range(1, 11):
        r.chunks.append(PageChunk(DEV_A, ino, 0, {CG_A: mask(0, ino)}))
    m = run(r, env, files_cap=3)
    assert len(m.files) == 3 and m.health.files_total == 10 and m.health.files_cap == 3
    assert [f.resident_bytes for f in m.files] == [10 * PAGE, 9 * PAGE, 8 * PAGE]


def test_map_failures_become_health_and_warning(env):
    r = Readings(taken_at=1.0, page_size=PAGE, maps={"chunks": (100, 100, 7)})
    m = run(r, env)
    assert m.health.update_failures == 7
    assert m.health.maps[0].entries == 100 and m.health.maps[0].capacity == 100
    assert any("full" in w for w in m.health.warnings)


def test_json_round_trip_and_schema(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks += chunks_for(DEV_A, 40, 100, CG_A)
    r.chunks += chunks_for(DEV_B, 40, 100, CG_B)
    m = run(r, env)
    d = json.loads(json.dumps(m.to_dict()))
    assert list(d)[:2] == ["schema", "tier"] and d["schema"] == 1
    assert set(d) == {"schema", "tier", "kernel", "started_at", "ended_at", "page_size",
                      "containers", "mounts", "images", "files", "totals", "health"}
    assert Model.from_dict(d) == m
    with pytest.raises(ValueError, match="schema"):
        Model.from_dict({**d, "schema": 2})


def test_compressed_and_plain_copies_not_shareable(env):
    mounts, cgroups, content = env
    content.files[(DEV_B, 40)] = FileInfo(40, "/mnt/41/lib.so", 200 * PAGE, True, AOPS_COMPRESSED)
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks += chunks_for(DEV_A, 40, 64, CG_A)
    r.chunks += chunks_for(DEV_B, 40, 64, CG_B)
    m = run(r, env)
    assert m.totals.redundant_bytes == 64 * PAGE
    assert m.totals.potential_savings_bytes == 0


def test_mount_holders_split_each_cgroup_per_mount(env):
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks += chunks_for(DEV_A, 40, 100, CG_A)
    r.chunks += chunks_for(DEV_B, 40, 30, CG_A)
    r.chunks += chunks_for(DEV_B, 40 + 1000, 20, CG_B)   # another file on B
    m = run(r, env)
    rows = {x.dev: x for x in m.mounts}
    a_on_a = [(h.cgroup_id, h.resident_bytes, h.duplicate_bytes) for h in rows["0:40"].holders]
    assert a_on_a == [(CG_A, 100 * PAGE, 30 * PAGE)]
    on_b = [(h.cgroup_id, h.resident_bytes) for h in rows["0:41"].holders]
    assert on_b == [(CG_A, 30 * PAGE), (CG_B, 20 * PAGE)]
    assert sum(h.resident_bytes for h in rows["0:41"].holders) == rows["0:41"].resident_bytes
    assert Model.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def _sharing_env(share_a: bool, share_b: bool):
    """Image "one" (with fingerprints) mounted twice, file-backed; either mount
    may carry inode_share."""
    img = ImageInfo(uuid="one", volume_name="", feature_compat=0, feature_incompat=0,
                    block_size=4096, image_id="img-one", ishare_xattrs=True, compressed=False)
    ma, mb = mount(DEV_A, "file", img), mount(DEV_B, "file", img)
    ma.inode_share, mb.inode_share = share_a, share_b
    content = StaticContent(files={
        (DEV_A, 40): FileInfo(40, "/mnt/40/lib.so", 200 * PAGE, True, AOPS_FILEIO),
        (DEV_B, 40): FileInfo(40, "/mnt/41/lib.so", 200 * PAGE, True, AOPS_FILEIO)})
    return StaticMounts([ma, mb]), StaticCgroups({CG_A: "/pods/ctrA", CG_B: "/pods/ctrB"}), content


def _shared(mapping, dev, cg, pages):
    return SharedInode(mapping=mapping, chunks={c: {cg: m} for c, m in
                                                enumerate(chunks_mask(pages))},
                       members={(dev, 40)}, users={cg: {(dev, 40)}}, size=200 * PAGE)


def chunks_mask(pages):
    return [mask(0, min(64, pages - c * 64)) for c in range((pages + 63) // 64)]


def test_shared_inodes_of_one_content_in_two_domains_are_stage_c():
    # both mounts share, but each has its own shared inode for the same
    # content: their domains differ; one domain would hold the 50 common pages once
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.shared += [_shared(0xffff0001, DEV_A, CG_A, 100), _shared(0xffff0002, DEV_B, CG_B, 50)]
    m = run(r, _sharing_env(True, True))
    t = m.totals
    assert t.potential_savings_domains_bytes == 50 * PAGE
    assert t.potential_savings_now_bytes == 0 and t.potential_savings_rebuild_bytes == 0
    assert t.potential_savings_bytes == 50 * PAGE
    # the smaller shared inode is the one that would merge into the larger
    assert {x.dev: x.potential_savings_domains_bytes for x in m.mounts} == \
        {"0:40": 0, "0:41": 50 * PAGE}
    assert m.container("/pods/ctrB").potential_savings_bytes == 50 * PAGE


def test_a_stock_mount_joins_an_existing_shared_inode_now():
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.shared.append(_shared(0xffff0001, DEV_A, CG_A, 100))
    r.chunks += chunks_for(DEV_B, 40, 60, CG_B)       # stock mount, image with fingerprints
    m = run(r, _sharing_env(True, False))
    assert m.totals.potential_savings_now_bytes == 60 * PAGE
    assert m.totals.potential_savings_domains_bytes == 0
    assert m.totals.potential_savings_bytes == 60 * PAGE


def test_own_inode_pages_on_an_inode_share_mount_are_no_potential():
    # splice/sendfile readers of an inode_share mount fill the member inode's
    # own cache: private on every kernel, no remount merges it
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.shared.append(_shared(0xffff0001, DEV_A, CG_A, 100))
    r.chunks += chunks_for(DEV_B, 40, 60, CG_B)
    m = run(r, _sharing_env(True, True))
    assert m.totals.redundant_bytes == 60 * PAGE
    assert m.totals.potential_savings_bytes == 0


@dataclass
class OrderingContent(StaticContent):
    """StaticContent with ImageContent's optional read-order hooks, recording
    what a full pass hands them (dev, ino)."""
    inode_pairs: list = field(default_factory=list)
    identity_pairs: list = field(default_factory=list)

    def prefetch_inodes(self, pairs):
        self.inode_pairs += [(m.dev, ino) for m, ino in pairs]

    def prefetch_identities(self, pairs):
        self.identity_pairs += [(m.dev, ino) for m, ino in pairs]


def test_a_full_pass_lets_the_resolver_read_in_image_order(env):
    """Before file_info, every resolved entry; before the content keys, the
    members of the size groups whose keys need identities (two or more
    members, more than one image file: not DEV_A/DEV_B's one file of image
    one alone, not the single 10-page file).  The model is the one made
    without the hooks."""
    mounts, cgroups, content = env
    ordering = OrderingContent(files=content.files, content=content.content)
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks += chunks_for(DEV_A, 40, 200, CG_A)
    r.chunks += chunks_for(DEV_B, 40, 50, CG_B)
    r.chunks += chunks_for(DEV_C, 77, 100, CG_B)
    r.chunks += chunks_for(DEV_A, 50, 10, CG_A)
    m = aggregate(r, mounts, cgroups, ordering, tier="tracepoint", started_at=0.0)
    assert sorted(ordering.inode_pairs) == sorted([(DEV_A, 40), (DEV_B, 40), (DEV_C, 77),
                                                   (DEV_A, 50)])
    assert sorted(ordering.identity_pairs) == sorted([(DEV_A, 40), (DEV_B, 40), (DEV_C, 77)])
    assert m.to_dict() == run(r, env).to_dict()

    ordering = OrderingContent(files=content.files, content=content.content)
    r = Readings(taken_at=1.0, page_size=PAGE)
    r.chunks += chunks_for(DEV_A, 40, 200, CG_A)
    r.chunks += chunks_for(DEV_B, 40, 50, CG_B)
    aggregate(r, mounts, cgroups, ordering, tier="tracepoint", started_at=0.0)
    assert ordering.identity_pairs == []        # one file of one image: no identity read


class ElfContent(StaticContent):
    """StaticContent whose files in ``elf`` carry an ELF build-id."""

    def __init__(self, elf=(), **kw):
        super().__init__(**kw)
        self.elf = dict(elf)

    def build_id(self, mount, ino):
        return self.elf.get((mount.dev, ino))


FILLER = range(100, 120)


def _keys_env(elf=()):
    """Four mounts (image one twice, image two on a loop, image three) and
    one 200-page file of one content in each (a library every image holds)."""
    img1, img2, img3 = image("one"), image("two"), image("three")
    dev_d = kdev(0, 42)
    mounts = StaticMounts([mount(DEV_A, "file", img1), mount(DEV_B, "file", img1),
                           mount(DEV_C, "loop", img2), mount(dev_d, "file", img3)])
    files = {(dev, ino): FileInfo(ino, f"/mnt/{dev}/lib.so", 200 * PAGE, True, AOPS_FILEIO)
             for dev, ino in ((DEV_A, 40), (DEV_B, 40), (DEV_C, 77), (dev_d, 40))}
    for ino in FILLER:      # (files of other sizes: a refresh changes few of the files)
        files[(DEV_A, ino)] = FileInfo(ino, f"/mnt/a/f{ino}", ino * PAGE, True, AOPS_FILEIO)
    content = ElfContent(elf, files=files, content=dict.fromkeys(files, "aa" * 32))
    return mounts, StaticCgroups({CG_A: "/pods/ctrA", CG_B: "/pods/ctrB"}), content, dev_d


@pytest.mark.parametrize("elf", [False, True])
def test_a_copy_joining_a_keyed_size_group_reads_its_digest_alone(elf):
    """A size group keyed by digests (copies of one content in two images)
    that a copy joins (a new container's mount): without build-ids only the
    joined copy's digest is read, and its key is the one a fresh pass
    gives; with build-ids (ELF files) the group is keyed again whole.  A
    group left as one image file (the other image's copy gone) gets its
    "img:" key, as a fresh pass gives it."""
    from erofs_top.aggregate import Aggregator
    mounts, cgroups, content, dev_d = _keys_env(
        {k: "b1" for k in ((DEV_A, 40), (DEV_B, 40), (DEV_C, 77), (kdev(0, 42), 40))}
        if elf else ())

    def refresh(agg, *files):
        r = Readings(taken_at=1.0, page_size=PAGE)
        for dev, ino in files:
            r.chunks += chunks_for(dev, ino, 200, CG_A)
        for ino in FILLER:
            r.chunks += chunks_for(DEV_A, ino, 2, CG_B)
        content.digest_calls = 0
        got = agg.update(r, mounts, cgroups, content, tier="tracepoint", started_at=0.0)
        refresh.digests = content.digest_calls
        want = Aggregator()
        assert got == want.update(r, mounts, cgroups, content, tier="tracepoint",
                                  started_at=0.0)
        return ({k: e.content_key for k, e in agg.entries.items() if k[1] not in FILLER},
                {k: e.content_key for k, e in want.entries.items() if k[1] not in FILLER})

    agg = Aggregator()
    got, want = refresh(agg, (DEV_A, 40), (DEV_C, 77))
    assert got == want and got[(DEV_A, 40)].startswith("sha256:")
    got, want = refresh(agg, (DEV_A, 40), (DEV_C, 77), (dev_d, 40))
    assert got == want and len(set(got.values())) == 1
    assert refresh.digests == (3 if elf else 1)
    # image two's copy gone, image one's second mount joins: one image file
    got, want = refresh(agg, (DEV_A, 40), (DEV_B, 40))
    assert got == want and got[(DEV_A, 40)].startswith("img:")
    assert not agg.built_anew       # (each refresh after the first: incremental)
