"""erofs_top.readahead: the kernel's readahead replayed on hand-written reads.

Each expected page set is derived by hand from the kernel source named in the
test (mm/readahead.c, mm/filemap.c, Linux 6.10+; the lab's 7.2 agrees page for
page on the matrix's random readers: docs/sharing.md "Random readers").
"""
from __future__ import annotations

from erofs_top.readahead import (PAGE, FileRa, InodeCache, MetaPages, Read, ZExtentRa, ZFile,
                                 fault, image_runs, init_ra_size, z_batch,
                                 next_miss, next_ra_size, prev_miss, read, replay, replay_reads)


def pages(lo: int, hi: int) -> set[int]:
    """Pages lo..hi inclusive."""
    return set(range(lo, hi + 1))


def test_initial_window_rounds_up_and_scales_by_request_size():
    # get_init_ra_size(): power of two, x4 up to max/32, x2 up to max/4, else max
    assert [init_ra_size(n) for n in (1, 2, 3, 4, 5, 8, 9, 40)] == [4, 4, 8, 8, 16, 16, 32, 32]


def test_next_window_quadruples_small_doubles_medium_caps_at_max():
    # get_next_ra_size(): x4 below max/16, x2 up to max/2, then max
    assert [next_ra_size(n) for n in (1, 2, 3, 16, 17, 32)] == [4, 4, 6, 32, 32, 32]


def test_first_read_at_page_zero_gets_the_initial_window_and_a_mark():
    # page_cache_sync_ra(): index 0 -> size 4 for a 1-page read, async_size 3,
    # PG_readahead on page start + size - async_size = 1
    c = replay(100 * PAGE, [[(0, PAGE)]])
    assert (c.pages, c.marks) == (pages(0, 3), {1})


def test_reading_the_marked_page_pushes_the_next_window():
    # page_cache_async_ra(): index 1 == expected (0 + 4 - 3): start 4, size
    # get_next_ra_size(4) = 8 (end 12 is 4-aligned), async_size 8: mark on 4
    c = replay(100 * PAGE, [[(0, PAGE), (PAGE, PAGE)]])
    assert (c.pages, c.marks) == (pages(0, 11), {4})


def test_random_read_without_history_reads_just_the_request():
    # a 4 KiB pread at an unaligned offset spans 2 pages; no cached page before
    # it (page_cache_prev_miss -> contig_count 0 <= req_count): no readahead
    c = replay(100 * PAGE, [[(50 * PAGE + 100, PAGE)]])
    assert (c.pages, c.marks) == ({50, 51}, set())


def test_another_readers_pages_give_a_random_read_a_window():
    # The inode_share case: pages 40-49 cached by the other member; the same
    # read now finds contig_count 10 > 2: window min(10 + 2, 32) = 12, mark on
    # its last page (async_size 1).  On its own inode it read 2 pages (above).
    c = InodeCache(100 * PAGE, pages=pages(40, 49))
    read(c, FileRa(), 50 * PAGE + 100, PAGE)
    assert (c.pages - pages(40, 49), c.marks) == (pages(50, 61), {61})


def test_history_from_page_zero_doubles_the_window():
    # page_cache_prev_miss() passes page 0 (ULONG_MAX): contig_count 10 * 2,
    # window min(20 + 1, 32) = 21
    c = InodeCache(100 * PAGE, pages=pages(0, 9))
    read(c, FileRa(), 10 * PAGE, PAGE)
    assert (c.pages, c.marks) == (pages(0, 30), {30})


def test_a_read_right_after_the_previous_one_is_sequential():
    # prev_pos is the end of the last copy: index - prev_index <= 1 is a
    # sequential miss: the initial window (4 pages for 1, async 3, mark on 4)
    c = replay(100 * PAGE, [[(2 * PAGE, PAGE), (3 * PAGE, PAGE)]])
    assert (c.pages, c.marks) == ({2} | pages(3, 6), {4})


def test_each_open_starts_with_fresh_readahead_state():
    # file_ra_state_init(): prev_pos -1 for a new open, so the second open's
    # read of page 3 is random again (no history before page 3: 1 page)
    c = replay(100 * PAGE, [[(2 * PAGE, PAGE)], [(3 * PAGE, PAGE)]])
    assert c.pages == {2, 3}


def test_window_stops_at_end_of_file():
    # do_page_cache_ra(): not past the page with the last byte; the mark moves
    # with the clamped window (nr_to_read 3 - lookahead 3 = page 0), so the
    # read hits it at once and page_cache_async_ra() finds nothing to read
    c = replay(3 * PAGE - 10, [[(0, PAGE)]])
    assert (c.pages, c.marks) == (pages(0, 2), set())


def test_large_folios_mark_the_folio_and_align_the_next_window():
    # page_cache_ra_order(): the async window 4-11 (order 2) as folios 4-7 and
    # 8-11, the folio at 4 marked; reading page 5 hits it: expected index 4,
    # next size 16, order 4: the end 28 aligned down to 16 leaves 12-15, one
    # order-2 folio, marked (async_size = size)
    c = replay(100 * PAGE, [[(0, PAGE), (PAGE, PAGE), (5 * PAGE, PAGE)]], large_folios=True)
    assert (c.pages, c.marks) == (pages(0, 15), {12})
    assert [c.head(p) for p in (3, 5, 11, 15)] == [3, 4, 8, 12]


def test_gap_search_inside_a_large_folio_reports_one_index_late():
    # xarray walk from 113, inside the folio 112-115: it loads the head's slot
    # first, so slot and index stay one apart: the gap at 118 is reported as
    # 119 (seen in the lab: page_cache_ra_order index=119 after a hit on 112)
    c = InodeCache(200 * PAGE, large_folios=True, pages=pages(112, 117),
                   folios={p: 112 for p in range(112, 116)} | {116: 116, 117: 116})
    assert next_miss(c, 113, 32) == 119
    assert next_miss(c, 112, 32) == 118


def test_gap_search_back_from_a_large_folio_resyncs_at_an_xarray_node_edge():
    # the lab's 7.2 (2026-12-04, redis-tools, LAB_MATRIX_SEED=11, readahead
    # tracepoints): pages 508-515 cached, 514-515 one order-1 folio, 507 not;
    # a pread at 516: page_cache_sync_ra sized its window 10 = contig 8 + 2,
    # so page_cache_prev_miss(515) reported 507, not 508.  The walk: xas_load
    # (515) takes the head's slot 514, then index and slot step down
    # together (514/513, 513/512); at the node's first slot 512 __xas_prev
    # finds the new index 512 at that offset: slot 512 again, in step from
    # there (511/511 ... 507/507, the gap)
    c = InodeCache(800 * PAGE, large_folios=True, pages=pages(508, 515),
                   folios={514: 514, 515: 514})
    assert prev_miss(c, 515, 32) == 507
    # the same folio away from a node edge: one index late, as before
    c = InodeCache(800 * PAGE, large_folios=True, pages=pages(538, 547),
                   folios={546: 546, 547: 546})
    assert prev_miss(c, 547, 32) == 538


def test_gap_search_forward_from_a_large_folio_skips_slots_past_a_node_edge():
    # folio 60-63 (order 2), 64 missing, 65-70 cached: next_miss(61) checks
    # slots 60, 61, 62, 63 for indices 61-64; from slot 63 (the node's last)
    # __xas_next's new index 65 has offset 1: it leaves the node and takes
    # slot 65 in the next one; slot 64 is never checked: the gap at 71
    c = InodeCache(200 * PAGE, large_folios=True, pages=pages(60, 63) | pages(65, 70),
                   folios={p: 60 for p in range(60, 64)})
    assert next_miss(c, 61, 32) == 71
    assert next_miss(c, 60, 32) == 64


def test_a_window_that_reaches_eof_marks_nothing():
    # Linux 7.2 (the lab, 2026-12-04, readahead tracepoints): when
    # do_page_cache_ra() trims a window at the page holding EOF it passes
    # lookahead 0 to page_cache_ra_unbounded (54 of 54 trimmed windows; 1070
    # of 1070 untrimmed ones kept async_size), so no page is marked.  A
    # 4-page file, pread(0, 2 pages): the initial window 0-3 (size 4, async
    # 2) ends on the EOF page; before, the mark went on 0 + 4 - 2 = 2.
    c = replay(4 * PAGE, [[(0, 2 * PAGE)]])
    assert (c.pages, c.marks) == (pages(0, 3), set())
    # page_cache_ra_order() alike: a 14-page file with large folios, reads
    # at pages 0, 1 and 4.  0: window 0-3, mark on 1.  1: the mark, expected
    # index 1: window 4-11 (size next_ra_size(4) = 8, order 2), mark on 4.
    # 4: the mark, expected: start 12, size 16, order 4, end 28 aligned down
    # to 16: size 4, window 12-15, past EOF (13): one order-1 folio 12-13,
    # unmarked (before: marked, 12 + 4 - 4 = 12; in the lab a lz4hc file's
    # window 747-767 at EOF 765 left 747 unmarked: no async readahead when a
    # later pread reached it)
    c = replay(14 * PAGE, [[(0, PAGE), (PAGE, PAGE), (4 * PAGE, PAGE)]], large_folios=True)
    assert (c.pages, c.marks) == (pages(0, 13), set())
    assert c.head(13) == 12


def test_a_cached_page_splits_the_window_into_two_batches():
    # page_cache_ra_unbounded(): a page already present submits the batch so
    # far (read_pages) and the window goes on after it
    c = InodeCache(100 * PAGE, pages=pages(40, 49) | {55}, io=[])
    read(c, FileRa(), 50 * PAGE + 100, PAGE)
    assert c.io == [[50, 51, 52, 53, 54], [56, 57, 58, 59, 60, 61]]


def test_image_reads_are_the_contiguous_runs_of_a_batch():
    # erofs fileio: one request per run of contiguous blocks; -1 (inline tail)
    # is read from its metadata block, not as a data read
    assert image_runs([0, 1, 2, 3], [10, 11, 30, -1]) == [[10, 11], [30]]


def test_misses_read_the_image_through_the_mounts_one_readahead_state():
    # X (4 pages, image 100-103) and Y (10 pages, image 104-113) back to back.
    # X page 0: window 0-3 -> image read 100-103 (no history: just those).
    # Y page 0, another file: window 0-3 -> image read 104-107, right after
    # the mount's previous image read (one backing file, one prev_pos): a
    # sequential miss, initial window get_init_ra_size(4) = 8: 104-111.  With
    # a readahead state per file it would be 104-107 (contig_count 4 <= 4).
    maps = {("m", "X"): list(range(100, 104)), ("m", "Y"): list(range(104, 114))}
    reads = [Read("X", ("m", "X"), 1, 0, PAGE), Read("Y", ("m", "Y"), 2, 0, PAGE)]
    sizes = {"X": 4 * PAGE, "Y": 10 * PAGE}
    out = replay_reads(reads, sizes.get, image_map=maps.get, image_size=lambda m: 200 * PAGE)
    assert (out.inodes["X"].pages, out.inodes["Y"].pages) == (pages(0, 3), pages(0, 3))
    assert (out.images["m"].pages, out.images["m"].marks) == (pages(100, 111), {108})


def test_a_miss_on_a_shared_inode_fills_the_readers_own_image():
    # One shared inode S, members on mounts m1 and m2.  A reads page 5 (m1
    # image page 105).  B reads page 5 (cached: no I/O), then page 6: right
    # after its previous read, the initial window 6-9, read through m2's image
    maps = {("m1", "f"): list(range(100, 110)), ("m2", "f"): list(range(50, 60))}
    reads = [Read("S", ("m1", "f"), "a", 5 * PAGE, PAGE),
             Read("S", ("m2", "f"), "b", 5 * PAGE, PAGE),
             Read("S", ("m2", "f"), "b", 6 * PAGE, PAGE)]
    out = replay_reads(reads, lambda ino: 10 * PAGE, image_map=maps.get,
                       image_size=lambda m: 200 * PAGE)
    assert out.inodes["S"].pages == pages(5, 9)
    assert (out.images["m1"].pages, out.images["m2"].pages) == ({105}, pages(56, 59))


def test_a_lookup_reads_the_inode_page_alone_before_the_data():
    # F: one data page (image page 20) and an inline tail, its inode in image
    # page 19 (the tail too).  The lookup reads page 19 (erofs_read_metabuf ->
    # read_mapping_folio: one page, no readahead).  The data read at image
    # page 20 then misses with no prev_pos: page_cache_prev_miss from 19
    # finds 19 cached, 18 not: contig_count 1 <= req_count 1, just page 20.
    # The tail's page is cached already: no other read.
    maps = {("m", "F"): [20, -1]}
    meta = {("m", "F"): MetaPages(19, 19)}
    reads = [Read("F", ("m", "F"), 1, 0, 2 * PAGE, tag="a")]
    out = replay_reads(reads, lambda ino: PAGE + 100, image_map=maps.get,
                       image_size=lambda m: 64 * PAGE, meta_of=meta.get)
    assert out.inodes["F"].pages == {0, 1}
    assert out.images["m"].pages == {19, 20}
    assert out.owners[("image", "m")] == {19: "a", 20: "a"}


def test_cached_inode_pages_before_a_miss_open_a_window():
    # B (inode page 19, data page 40) is read, then A (inode page 18, data
    # page 20), one page each, through the mount's one image readahead state.
    # B's data read at 40: prev_miss(39) is 39, no history: just 40.  A's
    # lookup caches 18; its data read at 20 is not sequential (prev_pos is
    # 41 pages): prev_miss(19) passes 19 and 18 (both inode pages), stops at
    # 17: contig_count 2 > req_count 1, a window of min(2 + 1, 32) = 3 pages
    # (20-22), async_size 1: the mark on 22 (page_cache_sync_ra).  Without
    # the lookups no page before 20 is cached: just 20.
    maps = {("m", "B"): [40], ("m", "A"): [20]}
    meta = {("m", "B"): MetaPages(19), ("m", "A"): MetaPages(18)}
    reads = [Read("B", ("m", "B"), 1, 0, PAGE), Read("A", ("m", "A"), 2, 0, PAGE)]
    sizes = {"A": PAGE, "B": PAGE}
    out = replay_reads(reads, sizes.get, image_map=maps.get, image_size=lambda m: 64 * PAGE,
                       meta_of=meta.get)
    assert (out.images["m"].pages, out.images["m"].marks) == ({18, 19, 20, 21, 22, 40}, {22})
    bare = replay_reads(reads, sizes.get, image_map=maps.get, image_size=lambda m: 64 * PAGE)
    assert bare.images["m"].pages == {20, 40}


def test_an_inode_share_lookup_also_reads_the_xattr_pages_past_the_inode_page():
    # H: one data page (image 40); its inode at the end of image page 19, its
    # inline xattrs (the fingerprint) running into page 20.  Read through a
    # shared inode ("s"), the lookup reads page 19 and, for the fingerprint
    # (inode_share's iget), page 20, each alone.  The data miss at 40 then
    # finds 39 uncached: just 40.  On a stock inode the xattrs are not read
    # at lookup: pages 19 and 40 only.
    maps = {("m", "H"): [40]}
    meta = {("m", "H"): MetaPages(19, -1, 20)}
    for inode, want in (("s", {19, 20, 40}), ("H", {19, 40})):
        reads = [Read(inode, ("m", "H"), 1, 0, PAGE, tag="a")]
        out = replay_reads(reads, lambda ino: PAGE, image_map=maps.get,
                           image_size=lambda m: 64 * PAGE, meta_of=meta.get,
                           shared=lambda k: k == "s")
        assert out.images["m"].pages == want


def test_an_inline_tail_in_its_own_page_is_read_alone_when_its_page_is_read():
    # G: two data pages (image 30-31), the tail read from page 51 while the
    # inode sits at the end of page 50.  A read of page 0 only (window 0-2
    # by get_init_ra_size(1) = 4, cut at EOF) reads the tail's file page too:
    # image 30-31 for the data, 51 for the tail, 50 at lookup.
    maps = {("m", "G"): [30, 31, -1]}
    meta = {("m", "G"): MetaPages(50, 51)}
    reads = [Read("G", ("m", "G"), 1, 0, PAGE)]
    out = replay_reads(reads, lambda ino: 2 * PAGE + 7, image_map=maps.get,
                       image_size=lambda m: 64 * PAGE, meta_of=meta.get)
    assert out.inodes["G"].pages == {0, 1, 2}
    assert out.images["m"].pages == {30, 31, 50, 51}


# ---------------------------------------------------------------- compressed files
# A 40 KiB lz4 file, 4 KiB lclusters, three extents (bytes): [0, 10000) from
# image page 100, [10000, 22000) from page 101, [22000, 40960) from pages
# 102-103.  Expectations from fs/erofs/zdata.c z_erofs_readahead /
# z_erofs_pcluster_readmore / z_erofs_should_alloc_cache and zmap.c
# z_erofs_do_map_blocks (READMORE maps of lz4 end at the queried lcluster's
# end, or at the next head when that lcluster holds it: FULL_MAPPED).
def zfile() -> ZFile:
    return ZFile([ZExtentRa(0, 10000, 100, 1), ZExtentRa(10000, 22000, 101, 1),
                  ZExtentRa(22000, 40960, 102, 2)])


def test_compressed_batch_caches_its_head_extent_before_it():
    # pread(17000, 4 KiB): pages 4-5, no history: batch [4, 5].  readmore(true)
    # maps byte 24575 -> [22000, 24576): round_up = 24576, no expansion.  The
    # scan ends on the extent of byte 16384, [10000, ...): readmore(false)
    # grabs pages from round_up(10000) = page 3 up to the batch: page 3.
    # Pclusters: [22000, ...) not FULL_MAPPED (its end is past the lcluster
    # queried) -> kept; [10000, 22000) FULL_MAPPED (byte 21999's lcluster 5
    # holds the next head at 1520) but starts before the batch (readaround)
    # -> kept.  Managed pages 101, 102, 103.
    c = InodeCache(40960, z=zfile(), io=[], zio=[])
    read(c, FileRa(), 17000, PAGE)
    assert c.pages == {3, 4, 5}
    assert c.io == [[3, 4, 5]]
    assert [(list(r), kept) for r, kept in c.zio] == [([101], True), ([102, 103], True)]


def test_compressed_extent_inside_the_batch_decompresses_in_place():
    # pread(0, 4 KiB): the initial window, pages 0-3 (mark on 1).  Extent
    # [0, 10000) is queried at 9999: lcluster 2 holds the next head -> FULL_MAPPED,
    # and it starts at the batch -> not kept (in-place I/O); [10000, 22000) is
    # queried at 16383 (lcluster 3, no head) -> not FULL_MAPPED -> kept.
    c = InodeCache(40960, z=zfile(), io=[], zio=[])
    read(c, FileRa(), 0, PAGE)
    assert (c.pages, c.marks) == (pages(0, 3), {1})
    assert [(list(r), kept) for r, kept in c.zio] == [([100], False), ([101], True)]


def test_compressed_pages_already_in_the_managed_cache_stay_the_first_readers():
    # A's pread(17000) keeps pclusters 101-103 (first test).  B's pread(0) on
    # the same inode: window 0-3, page 3 cached -> batch [0, 1, 2]; [10000, ..)
    # queried at 12287 -> kept, but page 101 is cached already: no new page.
    reads = [Read("f", ("m1", 1), "A", 17000, PAGE, tag="A"),
             Read("f", ("m1", 1), "B", 0, PAGE, tag="B")]
    out = replay_reads(reads, lambda inode: 40960, zfile=lambda member: zfile())
    assert out.inodes["f"].pages == pages(0, 5)
    assert out.managed == {"m1": {101, 102, 103}}
    assert out.owners[("managed", "m1")] == {101: "A", 102: "A", 103: "A"}
    assert out.owners["f"] == {3: "A", 4: "A", 5: "A", 0: "B", 1: "B", 2: "B"}


def test_compressed_last_extent_queried_in_the_last_lcluster_is_full_mapped():
    # pread(36000, 4 KiB) -> pages 8-9 (to EOF 40960), no history: batch [8, 9].
    # Head readmore: extent [22000, 40960), pages round_up(22000) = 6, 7.  The
    # query, byte 40959, sits in the file's last lcluster: the extent's end is
    # known (FULL_MAPPED) but it starts before the batch -> kept.
    c = InodeCache(40960, z=zfile(), io=[], zio=[])
    read(c, FileRa(), 36000, PAGE)
    assert c.pages == pages(6, 9)
    assert [(list(r), kept) for r, kept in c.zio] == [([102, 103], True)]
    # A one-extent file read from page 0 to EOF: FULL_MAPPED, starts at the
    # batch -> decompressed in place, nothing kept.
    c = InodeCache(5627, z=ZFile([ZExtentRa(0, 5627, 7, 1)]), io=[], zio=[])
    read(c, FileRa(), 0, PAGE)
    assert c.pages == {0, 1}
    assert [(list(r), kept) for r, kept in c.zio] == [([7], False)]


def test_compressed_last_extent_headed_in_the_last_lcluster_is_not_full_mapped():
    # An 11769-byte file (3 pages, lclusters 0-2), extents [0, 11414) from
    # image page 50 and [11414, 11769) from page 51: the last extent's head
    # is in the last lcluster (2).  pread(179, 4 KiB): pages 0-1, page 0 ->
    # the initial window get_init_ra_size(2) = 8, cut at EOF: batch [0, 1, 2].
    # [0, 11414) is queried at 11413: lcluster 2 holds the next head ->
    # FULL_MAPPED, starts at the batch -> not kept.  [11414, ..) is queried
    # at 11768, lcluster 2 = its HEAD lcluster (endoff >= clusterofs): the
    # map ends at the lcluster's end, not FULL_MAPPED -> kept (the lab's 7.2,
    # libpython3.14-stdlib lz4hc: every such tail pcluster cached).
    z = ZFile([ZExtentRa(0, 11414, 50, 1), ZExtentRa(11414, 11769, 51, 1)])
    c = InodeCache(11769, z=z, io=[], zio=[])
    read(c, FileRa(), 179, PAGE)
    assert c.pages == {0, 1, 2}
    assert [(list(r), kept) for r, kept in c.zio] == [([50], False), ([51], True)]


# A 40 KiB deflate file (lzma and zstd map the same way), 4 KiB lclusters:
# [0, 10000) from image page 100, [10000, 30000) from pages 101-102 (a 2-page
# pcluster), [30000, 40960) from page 103.  zmap.c z_erofs_do_map_blocks: a
# READMORE map of an lzma/deflate/zstd extent whose lcluster-bounded length
# (m_llen: from its start to the queried lcluster's end, or to the next head
# inside it) is >= the block size is taken whole and FULL_MAPPED;
# zdata.c z_erofs_pcluster_readmore(backmost) then grows a readahead batch to
# the extent's end (readahead_expand(), which also grows f_ra's size and
# async_size, mm/readahead.c) or, for one folio (z_erofs_read_folio), grabs
# every missing page after it up to that end.
def wfile(whole: bool = True) -> ZFile:
    return ZFile([ZExtentRa(0, 10000, 100, 1, whole), ZExtentRa(10000, 30000, 101, 2, whole),
                  ZExtentRa(30000, 40960, 103, 1, whole)])


def test_a_whole_mapped_tail_extent_grows_the_batch_and_the_window():
    # pread(0, 4 KiB), fresh file: the initial window pages 0-3, async_size
    # 3, the mark on page 1.  Readmore maps byte 16383 (lcluster 3, not the
    # head lcluster 2 of [10000, 30000), no head inside): m_llen = 16384 -
    # 10000 = 6384 >= 4096 -> whole, FULL_MAPPED, expanded to round_up(30000)
    # = page 8: pages 4-7 added, f_ra size 4 + 4 = 8, async_size 3 + 4 = 7.
    # Pclusters: [0, 10000) queried at 9999, lcluster 2 holds the next head:
    # FULL_MAPPED, starts at the batch -> not kept; [10000, 30000) FULL_MAPPED
    # (whole), starts after the batch's head -> not kept; [30000, ..) is on
    # page 7 too (bytes 30000-32767): queried at 32767, lcluster 7 is its
    # head lcluster, not the file's last -> not FULL_MAPPED -> kept.
    c, ra = InodeCache(40960, z=wfile(), io=[], zio=[]), FileRa()
    read(c, ra, 0, PAGE)
    assert (c.pages, c.marks) == (pages(0, 7), {1})
    assert c.io == [list(range(8))]
    assert (ra.start, ra.size, ra.async_size) == (0, 8, 7)
    assert [(list(r), kept) for r, kept in c.zio] == [
        ([100], False), ([101, 102], False), ([103], True)]
    # The same reads of an lz4-class file (not whole): pages 0-3 only and
    # [10000, 30000) queried at 16383 is not FULL_MAPPED -> kept.
    c, ra = InodeCache(40960, z=wfile(False), io=[], zio=[]), FileRa()
    read(c, ra, 0, PAGE)
    assert c.pages == pages(0, 3) and (ra.size, ra.async_size) == (4, 3)
    assert [(list(r), kept) for r, kept in c.zio] == [([100], False), ([101, 102], True)]


def test_a_short_head_map_is_not_taken_whole():
    # pread(11000, 1000): page 2 only, no history (prev_miss finds no cached
    # run): just the request, page 2.  Readmore maps byte 12287, lcluster 2
    # = the head lcluster of [10000, 30000): m_llen = 12288 - 10000 = 2288
    # < 4096 -> not whole: no expansion.  Page 2 starts inside [0, 10000),
    # the extent the scan ends on (flags-0 map at 9999: lcluster 2 holds the
    # next head, so m_llen = 10000): readmore(false) grabs pages 1 and 0.
    # The extent of byte 12287 is not FULL_MAPPED (lz4 rule) -> kept;
    # [0, 10000): FULL_MAPPED, starts before the batch -> kept (readaround).
    c, ra = InodeCache(40960, z=wfile(), io=[], zio=[]), FileRa()
    read(c, ra, 11000, 1000)
    assert c.pages == {0, 1, 2}
    assert (ra.size, ra.async_size) == (0, 0)
    assert [(list(r), kept) for r, kept in c.zio] == [([100], True), ([101, 102], True)]


def test_a_single_folio_read_grabs_every_missing_page_of_its_whole_extent():
    # z_erofs_read_folio of page 1 (the folio, just added): readmore maps
    # byte 8191, lcluster 1 of [0, 10000) (not its head lcluster 0, and the
    # next head is in lcluster 2): m_llen = 8192 >= 4096 -> whole, to
    # round_up(10000) = page 3: grabs page 2.  The head readmore adds page 0.
    c = InodeCache(40960, z=wfile(), io=[], zio=[], pages={1})
    assert z_batch(c, [1], folio=True) == [0, 1, 2]
    # A folio of [10000, 30000) (page 4) with page 5 cached: every missing
    # page up to page 7 but 5; readmore before it: page 3.
    c = InodeCache(40960, z=wfile(), io=[], zio=[], pages={4, 5})
    assert z_batch(c, [4], folio=True) == [3, 4, 6, 7]
    # [10000, 30000) starts before the folio -> kept; [30000, ..) on page 7
    # -> kept (not FULL_MAPPED)
    assert [(list(r), kept) for r, kept in c.zio] == [([101, 102], True), ([103], True)]


def test_a_shared_inode_decompresses_through_each_readers_own_member():
    # Same content in two images at other image pages: reader B's miss on the
    # shared inode reads B's pclusters into B's superblock's managed cache.
    other = ZFile([ZExtentRa(0, 10000, 200, 1), ZExtentRa(10000, 22000, 201, 1),
                   ZExtentRa(22000, 40960, 202, 2)])
    reads = [Read("s", ("m1", 1), "A", 17000, PAGE, tag="A"),
             Read("s", ("m2", 1), "B", 36000, PAGE, tag="B")]
    out = replay_reads(reads, lambda inode: 40960,
                       zfile=lambda member: zfile() if member[0] == "m1" else other)
    # A: pages 3-5, pclusters 101-103 (first compressed test).  B: pages 8-9,
    # sync_ra finds pages 6-7 missing (prev_miss(7) = 7, contig 0): just the
    # request, head readmore adds 6-7; extent [22000, ..) -> B's 202-203.
    assert out.inodes["s"].pages == pages(3, 9)
    assert out.managed == {"m1": {101, 102, 103}, "m2": {202, 203}}


def test_cold_compressed_reads_go_through_the_image_in_bios_of_16_pages():
    # A 100 KiB lz4 file stored as 25 one-page pclusters at image pages
    # 200-224 (physically contiguous), then an inline last pcluster for the
    # bytes [102400, 104000) in metadata page 40.  read(0, 104000): the file
    # window get_init_ra_size(26 pages > 8) = 32, cut at EOF: one batch,
    # pages 0-25.  Each extent ends on its lcluster's end (4 KiB), so no
    # queried lcluster holds the next head: not FULL_MAPPED, all 25 kept in
    # the managed cache (the inline one has no pcluster there).
    # Image reads (zdata.c z_erofs_submit_queue, fileio.c bvecs[16]): bios
    # 200-215 and 216-224; the first at page 200 with no history reads just
    # its 16 pages (prev_miss(199) = 199); the second starts right after the
    # previous read (prev_pos): sequential, the initial window
    # get_init_ra_size(9) = 32 from 216 (to 247), async_size 32 - 9 = 23,
    # the mark on 247 - 23 + 1 = 225.  The inline pcluster: page 40 alone.
    ext = [ZExtentRa(k * PAGE, (k + 1) * PAGE, 200 + k, 1) for k in range(25)]
    ext.append(ZExtentRa(25 * PAGE, 104000, 40, 0))
    reads = [Read("f", ("m", 1), 1, 0, 104000, tag="A")]
    out = replay_reads(reads, lambda inode: 104000, zfile=lambda member: ZFile(ext),
                       image_map=lambda member: None, image_size=lambda img: 512 * PAGE)
    assert out.inodes["f"].pages == pages(0, 25)
    assert out.managed == {"m": pages(200, 224)}
    assert out.images["m"].pages == pages(200, 247) | {40}
    assert out.images["m"].marks == {225}
    assert set(out.owners[("image", "m")].values()) == {"A"}


def test_a_loop_devices_lookups_go_through_the_image_files_readahead():
    # A: inode in image page 39, data page 40; B: inode page 41, data page 50.
    # File-backed: every lookup reads its page alone (read_mapping_folio):
    # {39, 40, 41, 50}.  Loop: a lookup misses the block device's cache, and
    # the loop worker reads that page from the image as a buffered read with
    # the device's one readahead state.  A's lookup at 39: no history
    # (prev_miss(38) finds nothing cached) -> just 39, prev_pos 40 pages.
    # A's data at 40: index - prev_index = 0 -> the initial window,
    # get_init_ra_size(1) = 4: pages 40-43, async_size 3, the mark on 41.
    # B's lookup at 41: cached in the image, but a read: it reaches the mark,
    # the async window at the expected index 44, next_ra_size(4) = 8 (44-51),
    # aligned to 1 << min(2, 5) = 4: 44-51 stays; B's data page 50 is cached.
    maps = {("m", "A"): [40], ("m", "B"): [50]}
    meta = {("m", "A"): MetaPages(39), ("m", "B"): MetaPages(41)}
    reads = [Read("A", ("m", "A"), 1, 0, PAGE), Read("B", ("m", "B"), 2, 0, PAGE)]
    sizes = {"A": PAGE, "B": PAGE}
    kw = dict(image_map=maps.get, image_size=lambda m: 64 * PAGE, meta_of=meta.get)
    file_backed = replay_reads(reads, sizes.get, **kw)
    assert file_backed.images["m"].pages == {39, 40, 41, 50}
    loop = replay_reads(reads, sizes.get, meta_readahead=lambda mount: True, **kw)
    assert loop.images["m"].pages == pages(39, 51)


# ---------------------------------------------------------------- mmap faults
# mm/filemap.c filemap_fault(), Linux 6.10+: a miss runs
# do_sync_mmap_readahead() (the read-around: ra_pages = 32 from pgoff - 16,
# async_size 8, order 0, page_cache_ra_order()); a hit runs
# do_async_mmap_readahead() (a PG_readahead folio: page_cache_async_ra() with
# req_count = ra_pages, index = the faulting page).
def test_an_mmap_miss_reads_the_window_around_the_fault():
    # fault(10) on a 64-page file: start max(0, 10 - 16) = 0, 32 pages, the
    # mark on 0 + 32 - 8 = 24; mmap_miss 1
    c, ra = InodeCache(64 * PAGE), FileRa()
    fault(c, ra, 10)
    assert (c.pages, c.marks) == (pages(0, 31), {24})
    assert (ra.start, ra.size, ra.async_size, ra.mmap_miss) == (0, 32, 8, 1)
    # fault(40) on a fresh inode: start 24, pages 24-55, the mark on 48
    c, ra = InodeCache(64 * PAGE), FileRa()
    fault(c, ra, 40)
    assert (c.pages, c.marks) == (pages(24, 55), {48})


def test_an_mmap_hit_on_the_mark_opens_the_async_window():
    # After fault(10): fault(14) hits an unmarked page: mmap_miss back to 0,
    # nothing read.  fault(24) hits the mark: expected index 0 + 32 - 8 = 24,
    # so the window moves on: start 32, size max(32, next_ra_size(32)) = 32,
    # order 2, end 64 aligned to 4: stays; async_size 32, the mark on 32 +
    # 32 - 32 = 32 (the file goes on past the window: see
    # test_a_window_that_reaches_eof_marks_nothing).
    c, ra = InodeCache(100 * PAGE), FileRa()
    fault(c, ra, 10)
    fault(c, ra, 14)
    assert c.pages == pages(0, 31) and ra.mmap_miss == 0
    fault(c, ra, 24)
    assert (c.pages, c.marks) == (pages(0, 63), {32})
    assert (ra.start, ra.size, ra.async_size) == (32, 32, 32)


def test_faults_replay_with_reads_in_order():
    # A read(2)s page 0 (window 0-3, mark on 1), then B faults page 2 of the
    # same inode: a hit on an unmarked page, nothing read; then page 1: the
    # mark, B's own state (fresh: start 0, size 0, async 0) expects index 0,
    # not 1: the window from the next gap, page_cache_next_miss(2) = 4,
    # size next_ra_size(4 - 1 + 32) = 32, order 2, end 36 aligned to 4:
    # pages 4-35, async_size 32, the mark on 4.
    reads = [Read("f", ("m", 1), "A", 0, PAGE, tag="A"),
             Read("f", ("m", 1), "B", 2 * PAGE, 0, tag="B", fault=True),
             Read("f", ("m", 1), "B", 1 * PAGE, 0, tag="B", fault=True)]
    out = replay_reads(reads, lambda inode: 64 * PAGE)
    assert out.inodes["f"].pages == pages(0, 35)
    assert out.inodes["f"].marks == {4}
    assert out.owners["f"] == {**{p: "A" for p in range(4)}, **{p: "B" for p in range(4, 36)}}


def test_the_last_extent_of_an_lcluster_aligned_file_is_not_full_mapped():
    # A 32768-byte file (8 lclusters, the lab's libpython3.14-stdlib lz4hc):
    # extents [0, 9290) page 1006, [9290, 23114) 1007, [23114, 32768) 1008.
    # read(0, 1 MiB): the initial window (32 pages) cut at EOF: batch 0-7.
    # [0, 9290) queried at 9289: lcluster 2 holds the next head ->
    # FULL_MAPPED, at the batch's head -> not kept; the same for [9290,
    # 23114) (lcluster 5 holds the head at 23114); [23114, 32768) queried at
    # 32767: lcluster 7 holds no head and no end inside it (the size is
    # lcluster-aligned) -> not FULL_MAPPED -> kept.  Were the file one byte
    # shorter, the last extent would be FULL_MAPPED and not kept.
    z = ZFile([ZExtentRa(0, 9290, 1006, 1), ZExtentRa(9290, 23114, 1007, 1),
               ZExtentRa(23114, 32768, 1008, 1)])
    c = InodeCache(32768, z=z, io=[], zio=[])
    read(c, FileRa(), 0, 1 << 20)
    assert c.pages == pages(0, 7)
    assert [(list(r), kept) for r, kept in c.zio] == [([1006], False), ([1007], False),
                                                      ([1008], True)]
    z = ZFile([ZExtentRa(0, 9290, 1006, 1), ZExtentRa(9290, 23114, 1007, 1),
               ZExtentRa(23114, 32767, 1008, 1)])
    c = InodeCache(32767, z=z, io=[], zio=[])
    read(c, FileRa(), 0, 1 << 20)
    assert [kept for _, kept in c.zio] == [False, False, False]
