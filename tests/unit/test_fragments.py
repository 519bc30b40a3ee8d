"""The packed inode's pages (erofs_top/fragments.py): expected values worked
out by hand from the kernel's rule (zdata.c z_erofs_read_fragment reads the
fragment through the packed inode of the inode's own superblock; a packed
read_folio fills every page starting inside the decompressed extent)."""
from erofs_top import fragments as fr

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
LZ4 = [(0, 10000, (50,), False), (10000, 30000, (51,), False), (30000, 41000, (52, 53), False)]
LZMA = [(s, e, c, True) for s, e, c, _ in LZ4]


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
