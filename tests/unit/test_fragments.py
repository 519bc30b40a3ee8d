"""The packed inode's pages (erofs_top/fragments.py): expected values worked
out by hand from the kernel's rule (zdata.c z_erofs_read_fragment reads the
fragment through the packed inode of the inode's own superblock; a packed
read_folio fills every page starting inside the decompressed extent)."""
from erofs_top import fragments as fr
from erofs_top.entries import Entry, SharedEntry
from erofs_top.node_savings import GroupCache, packed_potential, packed_realized
from erofs_top.resolve.base import MountInfo
from erofs_top.savings import Copy

P = 4096


def test_a_fragment_is_read_when_a_page_over_its_bytes_is_cached():
    tail = (2 * P + 100, 5000, 700)        # file bytes 8292..8991: page 2 only
    assert fr.reads_fragment({0: 0b100}, tail)
    assert not fr.reads_fragment({0: 0b011}, tail)     # pages 0-1: the head only
    assert fr.reads_fragment({1: 1}, (64 * P, 0, 10))   # page 64 = chunk 1, bit 0
    assert not fr.reads_fragment({0: 1}, (0, 0, 0))     # no bytes, nothing read


def test_needed_pages_of_an_uncompressed_packed_inode_are_the_pages_touched():
    # 100 bytes at 4000 straddle pages 0 and 1; 10 bytes at 3*4096 page 3
    assert fr.needed_pages([(4000, 100), (3 * P, 10)], None) == {0, 1, 3}
    assert fr.needed_pages([(5, 0)], None) == set()


# extents: [0, 10000) [10000, 30000) [30000, 41000), each with its cluster
LZ4 = [(0, 10000, (50,), fr.MAP_TO_LCLUSTER), (10000, 30000, (51,), fr.MAP_TO_LCLUSTER),
       (30000, 41000, (52, 53), fr.MAP_TO_LCLUSTER)]
LZMA = [(s, e, c, fr.MAP_WHOLE_IF_LONG) for s, e, c, _ in LZ4]


def test_a_packed_read_fills_the_pages_back_to_the_start_of_its_extent():
    # 50 bytes at 20000: page 4 (16384..20479); its first byte (16384) is in
    # [10000, 30000), whose pages start at 3 (12288): pages 3 and 4
    assert fr.needed_pages([(20000, 50)], LZ4) == {3, 4}
    # page 7 (28672..32767) starts in the second extent: 3..7
    assert fr.needed_pages([(29990, 20)], LZ4) == {3, 4, 5, 6, 7}
    # page 2 (8192..12287) starts in the first extent: 0..2
    assert fr.needed_pages([(12000, 50)], LZ4) == {0, 1, 2}
    # page 8 (32768..) starts in the third extent at 30000: page 8 only
    assert fr.needed_pages([(33000, 5)], LZ4) == {8}


def test_a_whole_mapped_extent_also_fills_the_pages_after_up_to_its_end():
    # page 4 ends (20479) inside [10000, 30000): pages 5..7 start before 30000
    assert fr.needed_pages([(20000, 50)], LZMA) == {3, 4, 5, 6, 7}
    # page 8 ends inside [30000, 41000): pages 9, 10 start before 41000
    assert fr.needed_pages([(33000, 5)], LZMA) == {8, 9, 10}


def test_an_extent_starting_inside_the_page_read_is_mapped_whole_only_when_encoded():
    # page 8 = 32768..36863; the extent holding its last byte starts at
    # 33000, inside it: the map asked there is 36864 - 33000 < a block long,
    # so lzma does not read on; encoded extents are always whole (pages 9-12
    # start before 50000).  Backwards: page 8's first byte is in [0, 33000),
    # whose pages 0-7 start inside it.
    two = [(0, 33000, (60,), fr.MAP_WHOLE_IF_LONG), (33000, 50000, (61,), fr.MAP_WHOLE_IF_LONG)]
    assert fr.needed_pages([(33100, 10)], two) == set(range(0, 9))
    encoded = [(s, e, c, fr.MAP_WHOLE) for s, e, c, _ in two]
    assert fr.needed_pages([(33100, 10)], encoded) == set(range(0, 13))


def test_the_clusters_of_every_extent_on_a_page_read_go_to_the_compressed_cache():
    assert fr.needed_clusters({3, 4}, LZ4) == {51}
    # page 2 holds the end of the first extent and the start of the second
    assert fr.needed_clusters({2}, LZ4) == {50, 51}
    assert fr.needed_clusters({7, 9}, LZ4) == {51, 52, 53}
    assert fr.needed_clusters({11}, LZ4) == set()         # past the last extent
    assert fr.needed_clusters({0}, None) == set()          # not compressed: none


def test_copies_keep_the_pages_no_earlier_copy_holds():
    a, b, c = {0: 0b0011}, {0: 0b0110}, {0: 0b0011, 1: 1}
    assert fr.kept_pages([a, b, c]) == [{0: 0b0011}, {0: 0b0100}, {1: 1}]


def test_stock_mount_saves_pages_only_its_given_up_fragments_needed():
    resident = {0: 7, 1: 7, 2: 8, 5: 9}     # page -> owner cgroup
    every = {0, 1, 2}                        # the fragments its readers read
    still = {1}                              # those it still reads with sharing
    # page 5: no fragment explains it, it stays; page 1 still needed
    assert fr.saved_pages(resident, still, every) == {0: 7, 2: 8}


def test_shared_mount_counts_the_needed_pages_it_does_not_hold():
    assert fr.kept_out([0, 1, 9], {0, 1, 2, 3}) == 2
    assert fr.kept_out([], set()) == 0


# --- node_savings: the packed inodes of mounts (a fake resolver) ---------------

PACKED_NID = 100
# the packed inode: extent 0 = bytes [0, 5000) (pages 0-1, cluster at image
# page 40), extent 1 = [5000, 12288) (pages 1-2, cluster 41)
EXTENTS = [(0, 5000, (40,), fr.MAP_TO_LCLUSTER), (5000, 12288, (41,), fr.MAP_TO_LCLUSTER)]
# ino 10 (content X, in both images): its whole content is a fragment on
# packed page 0; ino 11 (only in B): its fragment is on page 2
FRAGS = {10: (0, 0, 100), 11: (0, 8200, 10)}


class FakeContent:
    def packed_nid(self, m):
        return PACKED_NID

    def fragment(self, m, ino):
        return FRAGS.get(ino)

    def packed_extents(self, m):
        return EXTENTS


def _entry(dev, ino, pages, cg=7, share=False):
    mask = sum(1 << p for p in pages)
    m = MountInfo(dev=dev, dev_str=f"0:{dev}", mountpoint=f"/m{dev}", source="", backing="file",
                  inode_share=share)
    return Entry(dev, ino, chunks={0: {cg: mask}}, union={0: mask}, mount=m)


def _stock_b():
    """B (dev 2): ino 10, 11, its packed inode (pages 0 and 2) and its
    compressed-data cache (ino 0: both clusters), all charged to cgroup 7."""
    return [_entry(2, 10, [0]), _entry(2, 11, [0]), _entry(2, PACKED_NID, [0, 2]),
            _entry(2, 0, [40, 41])]


def test_stock_mount_saves_the_packed_page_and_cluster_only_a_given_up_copy_needed():
    a = [_entry(1, 10, [0]), _entry(1, PACKED_NID, [0]), _entry(1, 0, [40])]
    b = _stock_b()
    cache = GroupCache()
    cache.groups[("X", 0)] = ((1, 10, 0), None, (None,) * 3, False, 0, (1, 2))
    copies = [Copy((e.dev, e.ino, 0), e.union, e.chunks, None, None, True) for e in (a[0], b[0])]
    stages = {"rebuild": copies, "now": copies, "domains": copies}
    stock = {1: (a[0].mount, a[1], a[2], a[:1]), 2: (b[0].mount, b[2], b[3], b[:2])}
    out = packed_potential(stock, cache, lambda gid: stages, FakeContent())
    # A keeps X: nothing on A.  B gives X up: X's fragment needed page 0 and
    # extent 0's cluster (40); ino 11 still needs page 2 and cluster 41
    for stage in ("rebuild", "now", "domains"):
        s = out[stage]
        assert (s.file_pages, s.compressed_pages) == (1, 1)
        assert dict(s.by_cgroup) == {7: 2} and dict(s.by_dev) == {2: 2}


def test_shared_mount_counts_what_its_touched_fragments_need_and_it_does_not_hold():
    a_packed, a_managed = _entry(1, PACKED_NID, [0], share=True), _entry(1, 0, [40], share=True)
    b_packed, b_managed = _entry(2, PACKED_NID, [2], share=True), _entry(2, 0, [41], share=True)
    x = SharedEntry(1, 10, shared_mapping=5, touched={(1, 10): {0: 1}, (2, 10): {0: 1}})
    only_b = SharedEntry(2, 11, shared_mapping=6, touched={(2, 11): {0: 1}})
    mounts = {1: (a_packed.mount, a_packed, a_managed, []),
              2: (b_packed.mount, b_packed, b_managed, [])}
    # B's readers touched X (page 0 of the packed inode, cluster 40) through
    # A's packed inode: B would have held them; A holds all it needs
    assert packed_realized(mounts, [x, only_b], FakeContent()) == (1, 1)


def test_shared_mount_whose_packed_inode_holds_nothing_still_counts():
    # every fragment B's readers touched went through A's packed inode: B's
    # packed inode and compressed-data cache hold no page (no entries)
    a_packed, a_managed = _entry(1, PACKED_NID, [0], share=True), _entry(1, 0, [40], share=True)
    x = SharedEntry(1, 10, shared_mapping=5, touched={(1, 10): {0: 1}, (2, 10): {0: 1}})
    b_mount = _entry(2, 10, [0], share=True).mount
    mounts = {1: (a_packed.mount, a_packed, a_managed, []), 2: (b_mount, None, None, [])}
    assert packed_realized(mounts, [x], FakeContent()) == (1, 1)
