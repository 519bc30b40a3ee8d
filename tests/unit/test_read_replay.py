"""erofs_top.read_replay: savings from replaying the logged reads, and the
bounded read log.  Expected pages are derived by hand from the kernel's
rules (mm/readahead.c), written out beside each case."""
from __future__ import annotations

from erofs_top.read_replay import Inode, ReadLog, World, page_list, replay_savings
from erofs_top.readings import ReadRecord, Readings

PAGE = 4096
SIZE = 16 * PAGE        # both copies: 16 pages


def rec(dev, ino, page, cg, file, mapping=0, prev_pos=-1):
    return ReadRecord(dev=dev, ino=ino, file=file, mapping=mapping, pos=page * PAGE,
                      count=PAGE, prev_pos=prev_pos, size=SIZE, cgroup_id=cg)


# Reader A (cgroup 100, mount 1) reads page 0 of a fresh open: the initial
# window, get_init_ra_size(1) = 4 pages, 0..3.  Reader B (cgroup 200, mount
# 2) then reads page 4 of the same content, fresh open.  On its own inode
# nothing is cached before page 4 (page_cache_prev_miss finds the gap at 3:
# contig 0 <= 1 page asked): only page 4.  On one shared inode A's pages 0..3
# are cached right before it, from page 0 on: contig 4 > 1, doubled to 8
# (cached from the start), window min(8 + 1, 32) = 9 pages: 4..12.
READS = [rec(1, 10, 0, 100, file=0xA), rec(2, 20, 4, 200, file=0xB)]
STOCK_A, STOCK_B = frozenset(range(4)), frozenset({4})
SHARED = frozenset(range(13))


def world(records, inodes, candidate=lambda d: True, groups=None):
    return World(records=records, inodes=inodes, candidate=candidate,
                 image_of=lambda d: None, image_map=lambda d, ino: None,
                 image_sizes={}, image_owners={},
                 groups=groups if groups is not None else {"rebuild": [[(1, 10), (2, 20)]]})


def test_sharing_opens_a_window_a_random_reader_would_not_open_alone():
    w = world(READS, [Inode((1, 10), frozenset({1}), STOCK_A),
                      Inode((2, 20), frozenset({2}), STOCK_B)])
    out = replay_savings(w)
    assert out.explained_devs == {1, 2}
    saved = out.potential["rebuild"]
    # 4 + 1 pages cached now, 13 with sharing: it would cost 8 pages (the
    # intersection of the page sets says 0)
    assert saved.file_pages == 5 - 13
    # A inserts its 4 pages in both worlds; B 1 alone, 9 shared
    assert dict(saved.by_cgroup) == {200: 1 - 9}
    assert dict(saved.by_dev) == {2: 1 - 9}
    assert out.realized_file_pages == 0


def test_inode_share_mounts_report_what_their_own_inodes_would_hold():
    reads = [rec(1, 10, 0, 100, file=0xA, mapping=77), rec(2, 20, 4, 200, file=0xB, mapping=77)]
    w = world(reads, [Inode(("s", 77), frozenset({1, 2}), SHARED)],
              groups={"rebuild": [[("s", 77)]]})
    out = replay_savings(w)
    assert out.explained_devs == {1, 2}
    # without sharing: 4 pages on A's inode + 1 on B's; with: the 13 cached now
    assert out.realized_file_pages == 5 - 13
    assert out.potential["rebuild"].file_pages == 0


def test_mmap_faults_replay_with_one_readahead_state_per_mapping_and_cgroup():
    # B (cgroup 200) faults pages 20 and 24 of its copy through an mmap
    # (fault records: no struct file).  fault(20): the read-around 4-35
    # (start 20 - 16), the mark on 4 + 32 - 8 = 28; fault(24): a hit, no
    # mark.  A fresh state per record would not change this, but a hit on
    # 28 must see the first fault's window: expected index 28, the next
    # window 36-63 (to EOF, 64 pages).
    size = 64 * PAGE
    recs = [ReadRecord(dev=2, ino=20, file=0, mapping=0, pos=p * PAGE, count=0, prev_pos=-1,
                       size=size, cgroup_id=200, fault=True) for p in (20, 24, 28)]
    w = World(records=recs, inodes=[Inode((2, 20), frozenset({2}), frozenset(range(4, 64)))],
              candidate=lambda d: True, image_of=lambda d: None,
              image_map=lambda d, ino: None, image_sizes={}, image_owners={},
              groups={"rebuild": [[(2, 20)]]})
    out = replay_savings(w)
    assert out.explained_devs == {2}


def test_a_page_no_read_explains_leaves_the_mounts_to_the_page_rules():
    # page 9 of B's copy is cached too (an mmap fault, or cached before attach)
    w = world(READS, [Inode((1, 10), frozenset({1}), STOCK_A),
                      Inode((2, 20), frozenset({2}), STOCK_B | {9})])
    out = replay_savings(w)
    assert out.explained_devs == set()
    assert out.potential == {}


def test_a_group_spanning_a_mount_the_replay_cannot_model_is_not_explained():
    w = world(READS, [Inode((1, 10), frozenset({1}), STOCK_A),
                      Inode((2, 20), frozenset({2}), STOCK_B)],
              candidate=lambda d: d != 2)       # mount 2: a loop device
    assert replay_savings(w).explained_devs == set()


def test_unrelated_mounts_are_judged_apart():
    # mount 3 holds another file with a page nobody read: only it falls back
    w = world(READS, [Inode((1, 10), frozenset({1}), STOCK_A),
                      Inode((2, 20), frozenset({2}), STOCK_B),
                      Inode((3, 30), frozenset({3}), frozenset({0}))])
    assert replay_savings(w).explained_devs == {1, 2}


def test_directories_are_not_checked():
    w = world(READS, [Inode((1, 10), frozenset({1}), STOCK_A),
                      Inode((2, 20), frozenset({2}), STOCK_B),
                      Inode((1, 1), frozenset({1}), frozenset({0}), regular=False)])
    assert replay_savings(w).explained_devs == {1, 2}


def test_a_reused_struct_file_with_a_fresh_open_starts_a_fresh_readahead_state():
    # open 1 reads page 0: the initial window 0..3, marked at 1; then page 1
    # (right after: prev_pos 4096) hits the mark: the next window, 4 -> 8
    # pages, 4..11 as two order-2 folios, marked at 4.  A new open on the
    # same struct file (prev_pos -1, fresh f_ra: start = size = 0) reads page
    # 4 and hits that mark away from where it expects one: the next gap
    # (page_cache_next_miss from 5, one page late inside the folio: 13),
    # window next_ra_size(13 - 4 + 1) = 20, end aligned down to 4 pages: 19,
    # clipped at EOF: 13..15.  With open 1's state it would have been the
    # expected mark: window 12..15, and page 12 would be cached too.
    reads = [rec(1, 10, 0, 100, file=0xA), rec(1, 10, 1, 100, file=0xA, prev_pos=PAGE),
             rec(1, 10, 4, 100, file=0xA)]
    w = world(reads, [Inode((1, 10), frozenset({1}), frozenset(range(12)) | {13, 14, 15})],
              groups={})
    assert replay_savings(w).explained_devs == {1}


def test_page_list_takes_one_image_page_per_file_page():
    assert page_list({0: (7,), 1: (8,)}, 3 * PAGE) == [7, 8, -1]   # page 2: inline tail
    assert page_list({0: (7, 8)}, PAGE) is None                     # 1 KiB blocks
    assert page_list(None, PAGE) is None


def readings(reads=(), lost=0):
    r = Readings(taken_at=0.0, page_size=PAGE)
    r.reads, r.reads_lost = list(reads), lost
    return r


def test_read_log_forgets_a_mount_that_changed():
    log = ReadLog()
    sig = {1: "m1", 2: "m2"}
    log.update(readings(READS), sig.get)
    assert len(log.records) == 2
    sig[2] = "m2 again"                 # unmounted, another mount on dev 2
    log.update(readings(), sig.get)
    assert [r.dev for r in log.records] == [1]


def test_read_log_caps_reads_per_inode_and_in_all():
    log = ReadLog(max_reads=3, max_per_inode=2)
    log.update(readings([rec(1, 10, p, 100, file=1) for p in range(3)]), lambda d: "m")
    assert len(log.records) == 2 and log.overflowed == {(1, 10)}
    log.update(readings([rec(1, 11, p, 100, file=2) for p in range(2)]), lambda d: "m")
    assert log.records == [] and "more than 3 reads" in log.warning


def test_read_log_forgets_everything_when_the_kernel_dropped_records():
    log = ReadLog()
    log.update(readings(READS), lambda d: "m")
    log.update(readings(lost=5), lambda d: "m")
    assert log.records == [] and "dropped 5" in log.warning


# ------------------------------------------------------------ through the Aggregator
def _aggregator_world():
    from erofs_top.readings import PageChunk, kdev
    from erofs_top.resolve.base import (AOPS_BLOCK, FileInfo, ImageInfo, MountInfo,
                                        StaticCgroups, StaticContent, StaticMounts)
    img = ImageInfo(uuid="", volume_name="", feature_compat=0, feature_incompat=0,
                    block_size=PAGE, image_id="img", ishare_xattrs=True, compressed=False)
    devs = kdev(259, 1), kdev(259, 2)
    mounts = StaticMounts([MountInfo(dev=d, dev_str=f"259:{i + 1}", mountpoint=f"/m{i}",
                                     source=f"/dev/x{i}", backing="block", image=img)
                           for i, d in enumerate(devs)])
    files = {(devs[0], 10): FileInfo(10, "/m0/f", SIZE, True, AOPS_BLOCK),
             (devs[1], 20): FileInfo(20, "/m1/f", SIZE, True, AOPS_BLOCK)}
    content = StaticContent(files=files, content={k: "ab" * 32 for k in files})
    r = readings([rec(devs[0], 10, 0, 100, file=0xA), rec(devs[1], 20, 4, 200, file=0xB)])
    r.chunks = [PageChunk(devs[0], 10, 0, {100: 0b1111}), PageChunk(devs[1], 20, 0, {200: 1 << 4})]
    return r, mounts, StaticCgroups({100: "/a", 200: "/b"}), content


def test_the_aggregator_replaces_the_page_rules_where_the_replay_explains_the_cache():
    from erofs_top.aggregate import Aggregator
    r, mounts, cgroups, content = _aggregator_world()
    model = Aggregator().update(r, mounts, cgroups, content, tier="full", started_at=0.0)
    # the first case above, on two block devices: 4 + 1 pages now, 13 shared
    # (the page rules would say 0: the copies hold disjoint pages)
    assert model.totals.potential_savings_file_bytes == (5 - 13) * PAGE
    assert model.totals.potential_savings_bytes == (5 - 13) * PAGE


def test_the_aggregator_keeps_the_page_rules_without_a_read_log():
    from erofs_top.aggregate import Aggregator
    r, mounts, cgroups, content = _aggregator_world()
    r.reads = []
    model = Aggregator().update(r, mounts, cgroups, content, tier="full", started_at=0.0)
    assert model.totals.potential_savings_bytes == 0


def test_the_same_reads_replay_once_per_memo(monkeypatch):
    import erofs_top.read_replay as rr
    memo: dict = {}

    def make():
        w = world(READS, [Inode((1, 10), frozenset({1}), STOCK_A),
                          Inode((2, 20), frozenset({2}), STOCK_B)])
        w.memo = memo
        return w
    first = replay_savings(make())

    def no_replay(*a):
        raise AssertionError("replayed again")
    monkeypatch.setattr(rr, "_replay_now", no_replay)
    again = replay_savings(make())
    assert again.potential["rebuild"].file_pages == first.potential["rebuild"].file_pages == -8


def test_a_lone_mount_without_groups_is_explained_on_its_own():
    w = world(READS[:1], [Inode((1, 10), frozenset({1}), STOCK_A)], groups={})
    assert replay_savings(w).explained_devs == {1}


def test_a_file_whose_pages_were_evicted_leaves_its_mount_to_the_page_rules():
    # B's page 4 was read, but nothing of B's copy is cached now
    w = world(READS, [Inode((1, 10), frozenset({1}), STOCK_A)], groups={})
    assert replay_savings(w).explained_devs == {1}


def test_read_log_forgets_the_reads_of_a_superblock_that_went_away():
    # dev 2 unmounted and mounted again (same dev, same identity at the next
    # refresh) between two refreshes: only the records after its sb_gone stay
    log = ReadLog()
    log.update(readings(READS), lambda d: "m")
    gone = ReadRecord(dev=2, ino=0, file=0, mapping=0, pos=0, count=0, prev_pos=0, size=0,
                      cgroup_id=0, sb_gone=True)
    again = rec(2, 21, 1, 300, file=0xC)
    log.update(readings([rec(2, 20, 5, 200, file=0xB), gone, again]), lambda d: "m")
    assert log.records == [READS[0], again]
    assert log.per_inode == {(1, 10): 1, (2, 21): 1}


def test_read_log_ignores_the_end_of_a_superblock_it_holds_no_reads_of():
    log = ReadLog()
    log.update(readings(READS[:1]), lambda d: "m")
    generation = log.generation
    log.update(readings([ReadRecord(dev=7, ino=0, file=0, mapping=0, pos=0, count=0,
                                    prev_pos=0, size=0, cgroup_id=0, sb_gone=True)]),
               lambda d: "m")
    assert log.records == READS[:1] and log.generation == generation


def _two_file_backed_mounts(*, compressed: bool):
    """Two file-backed mounts 0:41 and 0:42 of images /i0 and /i1 (backing
    inodes 500 and 501 on 8:1)."""
    from erofs_top.readings import kdev
    from erofs_top.resolve.base import ImageInfo, MountInfo, StaticMounts
    img = ImageInfo(uuid="", volume_name="", feature_compat=0, feature_incompat=0,
                    block_size=PAGE, image_id="img", ishare_xattrs=True, compressed=compressed)
    devs = kdev(0, 41), kdev(0, 42)
    mounts = StaticMounts([MountInfo(dev=d, dev_str=f"0:{41 + i}", mountpoint=f"/m{i}",
                                     source=f"/i{i}", backing="file", backing_file=f"/i{i}",
                                     backing_dev=kdev(8, 1), backing_ino=500 + i, image=img)
                           for i, d in enumerate(devs)])
    return devs, mounts


def _file_backed_world():
    """Two file-backed mounts of one uncompressed image; the content resolver
    notes every file it is asked about (a stand-in for ImageContent, whose
    path lookups and first walk of a mount would cache directories)."""
    from erofs_top.readings import PageChunk, kdev
    from erofs_top.resolve.base import AOPS_FILEIO, FileInfo, StaticCgroups, StaticContent

    class ContentNotingCalls(StaticContent):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.asked: list[tuple[int, int]] = []

        def file_info(self, mount, ino):
            self.asked.append((mount.dev, ino))
            return super().file_info(mount, ino)

        def image_pages(self, mount, ino):
            self.asked.append((mount.dev, ino))
            return {p: (p,) for p in range(SIZE // PAGE)}

    devs, mounts = _two_file_backed_mounts(compressed=False)
    files = {(devs[0], 10): FileInfo(10, "/m0/f", SIZE, True, AOPS_FILEIO),
             (devs[1], 20): FileInfo(20, "/m1/f", SIZE, True, AOPS_FILEIO)}
    content = ContentNotingCalls(files=files, content={k: "ab" * 32 for k in files})
    r = readings([rec(devs[0], 10, 0, 100, file=0xA), rec(devs[1], 20, 4, 200, file=0xB)])
    r.image_sizes = {(kdev(8, 1), 500): 64 * PAGE, (kdev(8, 1), 501): 64 * PAGE}
    chunks = [PageChunk(devs[0], 10, 0, {100: 0b1111}), PageChunk(devs[1], 20, 0, {200: 1 << 4})]
    return r, chunks, mounts, StaticCgroups({100: "/a", 200: "/b"}), content


def test_the_replay_looks_up_the_files_that_hold_cache():
    from erofs_top.aggregate import Aggregator
    r, chunks, mounts, cgroups, content = _file_backed_world()
    r.chunks = chunks
    Aggregator().update(r, mounts, cgroups, content, tier="full", started_at=0.0)
    assert {k for k in content.asked} == {(m.dev, i) for m, i in zip(mounts.items, (10, 20))}


def test_a_refresh_looks_up_no_file_that_holds_no_cache():
    # reads logged, nothing of them cached (their mount was replaced by one
    # nothing has read yet): resolving them would make erofs-top cache the
    # new mount's directories before its readers pay for them
    from erofs_top.aggregate import Aggregator
    r, _, mounts, cgroups, content = _file_backed_world()
    model = Aggregator().update(r, mounts, cgroups, content, tier="full", started_at=0.0)
    assert content.asked == []
    assert model.totals.potential_savings_bytes == 0


def test_the_aggregator_forgets_reads_of_a_replaced_mount_that_held_no_entries():
    # inode_share members hold their pages on the shared inode, not on their
    # own dev: the mount itself, not its entries, is the identity compared
    import dataclasses
    from erofs_top.aggregate import Aggregator
    r, _, mounts, cgroups, content = _file_backed_world()
    agg = Aggregator()
    agg.update(r, mounts, cgroups, content, tier="full", started_at=0.0)
    assert {x.dev for x in agg.read_log.records} == {m.dev for m in mounts.items}
    mounts.items[1] = dataclasses.replace(mounts.items[1], mountpoint="/elsewhere")
    agg.update(readings(), mounts, cgroups, content, tier="full", started_at=0.0)
    assert {x.dev for x in agg.read_log.records} == {mounts.items[0].dev}


# ------------------------------------------------------------ compressed files
# A 40 KiB lz4 file in two images (4 KiB lclusters), extents [0, 10000),
# [10000, 22000), [22000, 40960) from image pages 100, 101, 102-103 in image
# "i1" (mount 1) and 200, 201, 202-203 in "i2" (mount 2); both images cached
# before the readers (charged to cgroup 9).  Kernel rules: zdata.c, as in
# tests/unit/test_readahead.py.
Z_SIZE = 40960


def zrec(dev, ino, pos, cg, file, mapping=0):
    return ReadRecord(dev=dev, ino=ino, file=file, mapping=mapping, pos=pos, count=PAGE,
                      prev_pos=-1, size=Z_SIZE, cgroup_id=cg)


def zfile_of(dev, ino):
    from erofs_top.readahead import ZExtentRa, ZFile
    b = 100 * dev
    return ZFile([ZExtentRa(0, 10000, b, 1), ZExtentRa(10000, 22000, b + 1, 1),
                  ZExtentRa(22000, Z_SIZE, b + 2, 2)])


def zworld(records, inodes, managed, groups, image_owner=9, images=None):
    owners = images or {"i1": {p: image_owner for p in range(100, 104)},
                        "i2": {p: 9 for p in range(200, 204)}}
    owners.update({("managed", d): pages for d, pages in managed.items()})
    return World(records=records, inodes=inodes, candidate=lambda d: True,
                 image_of=lambda d: f"i{d}", image_map=lambda d, ino: None,
                 image_sizes={"i1": 1024 * PAGE, "i2": 1024 * PAGE}, image_owners=owners,
                 groups=groups, zfile=zfile_of)


# A (cgroup 100) preads 4 KiB at 17000 on mount 1: pages 4-5 and, by the head
# extent's readmore, page 3; pclusters 101 (starts before the batch) and
# 102-103 (not FULL_MAPPED) kept.  B (cgroup 200) preads at 12500 on mount 2:
# pages 3-4 on its own inode (no readmore: round_up(10000) is page 3), its
# extent [10000, 22000) queried at 20479 (lcluster 4, no head in it): 201
# kept.  On one shared inode B finds pages 3-4 cached: no read at all.
Z_READS = [zrec(1, 10, 17000, 100, file=0xA), zrec(2, 20, 12500, 200, file=0xB)]
A_MANAGED = {101: 100, 102: 100, 103: 100}


def test_compressed_readers_save_file_and_managed_pages_when_shared():
    w = zworld(Z_READS, [Inode((1, 10), frozenset({1}), frozenset({3, 4, 5})),
                         Inode((2, 20), frozenset({2}), frozenset({3, 4}))],
               {1: A_MANAGED, 2: {201: 200}}, {"rebuild": [[(1, 10), (2, 20)]]})
    out = replay_savings(w)
    assert out.explained_devs == {1, 2}
    saved = out.potential["rebuild"]
    assert (saved.file_pages, saved.compressed_pages) == (5 - 3, 4 - 3)
    assert dict(saved.by_cgroup) == {200: 3}
    assert (out.realized_file_pages, out.realized_compressed_pages) == (0, 0)


def test_compressed_inode_share_reports_the_pages_own_inodes_would_hold():
    reads = [zrec(1, 10, 17000, 100, file=0xA, mapping=77),
             zrec(2, 20, 12500, 200, file=0xB, mapping=77)]
    w = zworld(reads, [Inode(("s", 77), frozenset({1, 2}), frozenset({3, 4, 5}))],
               {1: A_MANAGED}, {"rebuild": [[("s", 77)]]})
    out = replay_savings(w)
    assert out.explained_devs == {1, 2}
    assert (out.realized_file_pages, out.realized_compressed_pages) == (2, 1)


def test_cold_images_read_the_compressed_pages_through_the_readers_image():
    # Cold images: A's batch needs pclusters 101 and 102-103, none in the
    # managed cache: one bio of image pages 101-103 (contiguous), a buffered
    # read of the backing file at page 101 with no history before it
    # (page_cache_sync_ra: prev_miss(100) = 100, contig_count 0): just
    # 101-103, charged to A.  B's pcluster 201: image page 201, charged to B.
    # With sharing B reads nothing: its image page is saved too.
    inodes = [Inode((1, 10), frozenset({1}), frozenset({3, 4, 5})),
              Inode((2, 20), frozenset({2}), frozenset({3, 4}))]
    images = {"i1": {101: 100, 102: 100, 103: 100}, "i2": {201: 200}}
    w = zworld(Z_READS, inodes, {1: A_MANAGED, 2: {201: 200}},
               {"rebuild": [[(1, 10), (2, 20)]]}, images=images)
    out = replay_savings(w)
    assert out.explained_devs == {1, 2}
    saved = out.potential["rebuild"]
    assert (saved.file_pages, saved.image_pages, saved.compressed_pages) == (2, 1, 1)
    assert dict(saved.by_cgroup) == {200: 4}


def test_a_compressed_read_the_image_cache_does_not_show_is_not_explained():
    # as above, but image page 103 is not cached now: the replay read it
    images = {"i1": {101: 100, 102: 100}, "i2": {201: 200}}
    w = zworld(Z_READS, [Inode((1, 10), frozenset({1}), frozenset({3, 4, 5})),
                         Inode((2, 20), frozenset({2}), frozenset({3, 4}))],
               {1: A_MANAGED, 2: {201: 200}}, {"rebuild": [[(1, 10), (2, 20)]]},
               images=dict(images))
    assert replay_savings(w).explained_devs == set()


def test_a_managed_page_no_read_explains_leaves_the_mounts_to_the_page_rules():
    w = zworld(Z_READS, [Inode((1, 10), frozenset({1}), frozenset({3, 4, 5})),
                         Inode((2, 20), frozenset({2}), frozenset({3, 4}))],
               {1: A_MANAGED, 2: {201: 200, 200: 200}}, {"rebuild": [[(1, 10), (2, 20)]]})
    assert replay_savings(w).explained_devs == set()


def test_the_aggregator_replays_compressed_readers_with_their_managed_caches():
    # The first compressed case above through the aggregator: two file-backed
    # mounts of lz4 images (warm: their pages charged to cgroup 9), the
    # probes' entries for the files and for each mount's managed cache
    # (ino 0).  Sharing would save 2 file pages and 1 managed page.
    from erofs_top.aggregate import Aggregator
    from erofs_top.readings import PageChunk, kdev
    from erofs_top.resolve.base import AOPS_COMPRESSED, FileInfo, StaticCgroups, StaticContent

    class CompressedContent(StaticContent):
        def image_pages(self, mount, ino):
            return None

        def zfile(self, mount, ino):
            return zfile_of(1 if mount.dev == devs[0] else 2, ino)

    devs, mounts = _two_file_backed_mounts(compressed=True)
    files = {(devs[0], 10): FileInfo(10, "/m0/f", Z_SIZE, True, AOPS_COMPRESSED),
             (devs[1], 20): FileInfo(20, "/m1/f", Z_SIZE, True, AOPS_COMPRESSED)}
    content = CompressedContent(files=files, content={k: "ab" * 32 for k in files})
    r = readings([zrec(devs[0], 10, 17000, 100, file=0xA), zrec(devs[1], 20, 12500, 200, file=0xB)])
    r.image_sizes = {(kdev(8, 1), 500): 64 * PAGE, (kdev(8, 1), 501): 64 * PAGE}
    r.image_cache_owners = {(kdev(8, 1), 500): {p: 9 for p in range(100, 104)},
                            (kdev(8, 1), 501): {p: 9 for p in range(200, 204)}}
    r.chunks = [PageChunk(devs[0], 10, 0, {100: 0b111000}), PageChunk(devs[1], 20, 0, {200: 0b11000}),
                PageChunk(devs[0], 0, 1, {100: 0b111 << 37}),       # pages 101-103 (chunk 1: 64-127)
                PageChunk(devs[1], 0, 3, {200: 1 << 9})]           # page 201 (chunk 3: 192-255)
    model = Aggregator().update(r, mounts, StaticCgroups({100: "/a", 200: "/b", 9: "/"}), content,
                                tier="full", started_at=0.0)
    assert model.totals.potential_savings_file_bytes == 2 * PAGE
    assert model.totals.potential_savings_compressed_cache_bytes == 1 * PAGE


def test_uncompressed_files_of_a_compressed_mount_read_a_warm_image_as_cached():
    # Mount 1 also holds a stored (uncompressed) file, ino 11, file page p at
    # image page 300 + p.  The image was cached before the readers (charged
    # to cgroup 9): A's pread at 0 (initial window, pages 0-3) reads image
    # pages 300-303, already cached: nothing new, nothing charged to A.
    # Replayed from an empty image they would be A's, against the owner 9.
    reads = Z_READS[:1] + [ReadRecord(dev=1, ino=11, file=0xC, mapping=0, pos=0, count=PAGE,
                                      prev_pos=-1, size=10 * PAGE, cgroup_id=100)]
    w = zworld(reads, [Inode((1, 10), frozenset({1}), frozenset({3, 4, 5})),
                       Inode((1, 11), frozenset({1}), frozenset({0, 1, 2, 3}))],
               {1: A_MANAGED}, {})
    w.image_map = lambda d, ino: [300 + p for p in range(10)] if ino == 11 else None
    w.image_owners["i1"].update({300 + p: 9 for p in range(10)})
    w.image_sizes = {"i1": 1024 * PAGE}
    assert replay_savings(w).explained_devs == {1}
    # the same image cold (its pages charged to A): the replay reads 300-303
    # and the pclusters' pages 101-103 through it, all A's: explained too;
    # without page 303 cached, not
    w.image_owners["i1"] = {p: 100 for p in w.image_owners["i1"]}
    assert replay_savings(w).explained_devs == {1}
    del w.image_owners["i1"][303]
    assert replay_savings(w).explained_devs == set()


def test_an_inode_page_every_mount_looks_up_is_no_image_saving():
    # One 8-page file on two file-backed mounts, data in image pages 0-7 and
    # its inode in page 8 of each 16-page image.  Each reader reads it whole
    # (8 pages at 0): the lookup reads page 8 alone (read_mapping_folio), the
    # data read at image page 0 opens the initial window get_init_ra_size(8)
    # = 16: pages 0-15, 8 already cached.  With sharing B's read finds the
    # shared inode cached (no image read) but B's lookup still reads page 8
    # of its image: 15 of B's 16 image pages saved, not 16.
    from erofs_top.readahead import MetaPages
    reads = [ReadRecord(dev=d, ino=i, file=f, mapping=0, pos=0, count=8 * PAGE, prev_pos=-1,
                        size=8 * PAGE, cgroup_id=cg)
             for d, i, f, cg in ((1, 10, 0xA, 100), (2, 20, 0xB, 200))]
    pages = frozenset(range(8))
    w = World(records=reads, inodes=[Inode((1, 10), frozenset({1}), pages),
                                     Inode((2, 20), frozenset({2}), pages)],
              candidate=lambda d: True, image_of=lambda d: ("img", d),
              image_map=lambda d, ino: list(range(8)),
              image_sizes={("img", d): 16 * PAGE for d in (1, 2)},
              image_owners={("img", d): {p: cg for p in range(16)}
                            for d, cg in ((1, 100), (2, 200))},
              groups={"rebuild": [[(1, 10), (2, 20)]]},
              meta_pages=lambda d, ino: MetaPages(8))
    out = replay_savings(w)
    assert out.explained_devs == {1, 2}
    saved = out.potential["rebuild"]
    assert (saved.file_pages, saved.image_pages) == (8, 15)
    assert dict(saved.by_cgroup) == {200: 8 + 15}


def test_inode_share_lookups_read_the_xattr_pages_the_stock_world_does_not():
    # The file above on two inode_share mounts, one shared inode; its inline
    # xattrs run from image page 8 into page 9.  Actual world: A's lookup
    # reads pages 8 and 9 (inode_share's iget reads the fingerprint), its
    # read of the shared inode opens get_init_ra_size(8) = 16 image pages
    # (0-15, 8 and 9 cached); B's lookup reads 8 and 9 of its image, its read
    # finds the shared inode cached: images 16 + 2 pages, file 8.  Sharing
    # off (stock: lookups read the inode page only): 16 + 16 image pages,
    # 8 + 8 file pages.  Reported: 8 file pages, 32 - 18 = 14 image pages
    # (15 if B's lookup read page 8 alone).
    from erofs_top.readahead import MetaPages
    reads = [ReadRecord(dev=d, ino=i, file=f, mapping=0x55, pos=0, count=8 * PAGE,
                        prev_pos=-1, size=8 * PAGE, cgroup_id=cg)
             for d, i, f, cg in ((1, 10, 0xA, 100), (2, 20, 0xB, 200))]
    w = World(records=reads, inodes=[Inode(("s", 0x55), frozenset({1, 2}), frozenset(range(8)))],
              candidate=lambda d: True, image_of=lambda d: ("img", d),
              image_map=lambda d, ino: list(range(8)),
              image_sizes={("img", d): 16 * PAGE for d in (1, 2)},
              image_owners={("img", 1): {p: 100 for p in range(16)},
                            ("img", 2): {8: 200, 9: 200}},
              meta_pages=lambda d, ino: MetaPages(8, -1, 9))
    out = replay_savings(w)
    assert out.explained_devs == {1, 2}
    assert (out.realized_file_pages, out.realized_image_pages) == (8, 14)


def test_a_shared_inode_with_a_member_mount_that_logged_no_read_is_not_explained():
    # A reads the 8-page file through the shared inode (mount 1); B's member
    # on mount 2 touched it too (mmap faults: not in the read log).  The
    # shared inode's pages are A's, so the replay reproduces them, but B's
    # side (its image, its faults) is unknown: both mounts keep the page
    # rules.
    reads = [ReadRecord(dev=1, ino=10, file=0xA, mapping=0x55, pos=0, count=8 * PAGE,
                        prev_pos=-1, size=8 * PAGE, cgroup_id=100)]
    w = World(records=reads, inodes=[Inode(("s", 0x55), frozenset({1, 2}), frozenset(range(8)))],
              candidate=lambda d: True, image_of=lambda d: ("img", d),
              image_map=lambda d, ino: list(range(8)),
              image_sizes={("img", d): 16 * PAGE for d in (1, 2)},
              image_owners={("img", 1): {p: 100 for p in range(16)}, ("img", 2): {0: 200}})
    assert replay_savings(w).explained_devs == set()
