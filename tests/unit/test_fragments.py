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


def test_a_needed_byte_caches_every_page_starting_in_its_extent():
    # extents: [0, 10000) [10000, 30000) [30000, 41000)
    ext = [(0, 10000), (10000, 30000), (30000, 41000)]
    # 50 bytes at 12000: page 2 itself (8192..12287) and the pages starting
    # in [10000, 30000): 3 (12288) .. 7 (28672); page 2 starts before 10000
    # but holds the fragment, so it is cached too
    assert fr.needed_pages([(12000, 50)], ext) == {2, 3, 4, 5, 6, 7}
    # a range spanning two extents: both extents' pages
    assert fr.needed_pages([(29990, 20)], ext) == {3, 4, 5, 6, 7, 8, 9, 10}
    # the first extent: pages 0..2 (page 2 starts at 8192 < 10000)
    assert fr.needed_pages([(0, 1)], ext) == {0, 1, 2}


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
