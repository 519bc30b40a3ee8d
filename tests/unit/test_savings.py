"""erofs_top.savings: the page-granular rules of docs/sharing.md, one case each."""
from __future__ import annotations

from erofs_top.savings import (Copy, init_ra_pages, potential, realized_file_pages,
                               realized_cache_pages,
                               touched_copies)

A, B, C = 101, 202, 303          # reader cgroups
WARMER = 999                     # a cgroup that warmed an image and reads no mount
IMG1, IMG2 = (1, 11), (1, 12)    # (host dev, image ino)


def bits(first: int, count: int) -> int:
    return ((1 << count) - 1) << first


def copy(key, mask, owner, image=None, page_map=None, fp=True) -> Copy:
    return Copy(key=key, union={0: mask}, owners={0: {owner: mask}}, image=image,
                page_map=page_map, fingerprinted=fp)


def linear(n: int, start: int) -> dict[int, tuple[int, ...]]:
    """file page i -> image page start + i (a flat plain file with 4 KiB blocks)."""
    return {i: (start + i,) for i in range(n)}


def test_file_pages_save_only_where_both_copies_hold_the_page():
    # A holds pages 0-9, B (a half reader) pages 0-4: five pages are cached twice
    s = potential([[copy("a", bits(0, 10), A), copy("b", bits(0, 5), B)]], {}, {}, {})
    assert (s.file_pages, s.image_pages) == (5, 0)
    assert dict(s.by_cgroup) == {B: 5}      # B would stop paying for them


def test_disjoint_halves_save_nothing():
    s = potential([[copy("a", bits(0, 5), A), copy("b", bits(5, 5), B)]], {}, {}, {})
    assert s.pages == 0


def test_now_counts_only_copies_on_fingerprinted_images():
    s = potential([[copy("a", bits(0, 8), A), copy("b", bits(0, 8), B, fp=False)]], {}, {}, {})
    assert (s.file_pages, s.now_file_pages) == (8, 0)
    s = potential([[copy("a", bits(0, 8), A), copy("b", bits(0, 8), B)]], {}, {}, {})
    assert s.now_file_pages == 8


def test_cold_images_save_the_second_image_files_pages_too():
    owned = {IMG1: {100 + i: A for i in range(10)}, IMG2: {200 + i: B for i in range(10)}}
    readers = {IMG1: {A}, IMG2: {B}}
    s = potential([[copy("a", bits(0, 10), A, IMG1, linear(10, 100)),
                    copy("b", bits(0, 10), B, IMG2, linear(10, 200))]], owned, readers, {})
    assert (s.file_pages, s.image_pages) == (10, 10)
    assert dict(s.by_cgroup) == {B: 20}


def test_warm_image_pages_charged_to_another_cgroup_save_nothing():
    owned = {IMG1: {100 + i: WARMER for i in range(10)}, IMG2: {200 + i: WARMER for i in range(10)}}
    s = potential([[copy("a", bits(0, 10), A, IMG1, linear(10, 100)),
                    copy("b", bits(0, 10), B, IMG2, linear(10, 200))]],
                  owned, {IMG1: {A}, IMG2: {B}}, {})
    assert (s.file_pages, s.image_pages) == (10, 0)


def test_image_pages_charged_to_a_reader_of_other_files_save_nothing():
    # the images were warmed by a cgroup that also reads other files of both
    # mounts (the lab's root cgroup: mkfs, then a directory walk): it reads
    # the images, but holds no page of these files, so sharing these files
    # would not drop its image pages (the two-domains lab case)
    owned = {IMG1: {100 + i: C for i in range(10)}, IMG2: {200 + i: C for i in range(10)}}
    s = potential([[copy("a", bits(0, 10), A, IMG1, linear(10, 100)),
                    copy("b", bits(0, 10), B, IMG2, linear(10, 200))]],
                  owned, {IMG1: {A, C}, IMG2: {B, C}}, {})
    assert (s.file_pages, s.image_pages) == (10, 0)
    # the same pages charged to the copies' own readers do save
    owned = {IMG1: {100 + i: A for i in range(10)}, IMG2: {200 + i: B for i in range(10)}}
    s = potential([[copy("a", bits(0, 10), A, IMG1, linear(10, 100)),
                    copy("b", bits(0, 10), B, IMG2, linear(10, 200))]],
                  owned, {IMG1: {A, C}, IMG2: {B, C}}, {})
    assert (s.file_pages, s.image_pages) == (10, 10)


def test_image_pages_other_files_need_stay():
    owned = {IMG1: {100 + i: A for i in range(4)}, IMG2: {200 + i: B for i in range(4)}}
    # image page 201 also holds blocks of another resident file of image 2
    s = potential([[copy("a", bits(0, 4), A, IMG1, linear(4, 100)),
                    copy("b", bits(0, 4), B, IMG2, linear(4, 200))]],
                  owned, {IMG1: {A}, IMG2: {B}}, {IMG2: {201}})
    assert s.image_pages == 3


def test_an_inline_pcluster_in_its_inode_page_stays_read_by_the_lookup():
    # two small compressed files (ztailpacking), each one page whose data is
    # an inline pcluster right after its inode: file page 0 -> the inode's
    # own image page (100 on image 1, 200 on image 2).  With sharing, B's
    # read finds the shared inode cached, but B's lookup on its own mount
    # still reads image page 200 (erofs_read_inode): no image page saved.
    # A file whose inode sits elsewhere (page 250) saves its data page 201.
    owned = {IMG1: {100: A, 101: A}, IMG2: {200: B, 201: B, 250: B}}
    readers = {IMG1: {A}, IMG2: {B}}
    inline = [copy("a", 1, A, IMG1, {0: (100,)}), copy("b", 1, B, IMG2, {0: (200,)})]
    inline[0].inode_page, inline[1].inode_page = 100, 200
    s = potential([inline], owned, readers, {})
    assert (s.file_pages, s.image_pages) == (1, 0)
    apart = [copy("a", 1, A, IMG1, {0: (101,)}), copy("b", 1, B, IMG2, {0: (201,)})]
    apart[1].inode_page = 250
    s = potential([inline, apart], owned, readers, {})
    assert (s.file_pages, s.image_pages) == (2, 1)
    assert dict(s.by_cgroup) == {B: 3}


def test_same_image_mounted_twice_has_one_image_cache():
    owned = {IMG1: {100 + i: A for i in range(6)}}
    s = potential([[copy("a", bits(0, 6), A, IMG1, linear(6, 100)),
                    copy("b", bits(0, 6), B, IMG1, linear(6, 100))]],
                  owned, {IMG1: {A, B}}, {})
    assert (s.file_pages, s.image_pages) == (6, 0)


def test_realized_counts_members_that_touched_each_page():
    union = {0: bits(0, 64), 1: bits(0, 64)}
    # one member read all 128 pages, another the first 40 sequentially (on its
    # own inode the kernel would have read one 32-page async window further);
    # a splice/sendfile reader's member touched no shared page (it reads its
    # own private copy)
    touched = {(31, 5): {0: bits(0, 64), 1: bits(0, 64)}, (32, 5): {0: bits(0, 40)},
               (33, 5): {}}
    assert realized_file_pages(union, touched) == 40 + 32


def test_realized_one_member_many_readers_saves_nothing():
    assert realized_file_pages({0: bits(0, 10)}, {(31, 5): {0: bits(0, 10)}}) == 0


def test_realized_image_pages_are_those_sharing_kept_out_of_the_cache():
    union = {0: bits(0, 4)}
    touched = {(31, 5): {0: bits(0, 4)}, (32, 5): {0: bits(0, 4)}}
    images = {31: IMG1, 32: IMG2}
    maps = {31: linear(4, 100), 32: linear(4, 200)}
    copies = touched_copies(union, touched, lambda m: images[m[0]], lambda m: maps[m[0]])
    # read through image 1 (resident, charged to A); image 2 was never read
    owned = {IMG1: {100 + i: A for i in range(4)}, IMG2: {}}
    assert realized_cache_pages([copies], owned, {IMG1: {A}, IMG2: {B}}, {}) == (4, 0)
    # image 2 warm (resident anyway): sharing kept nothing out
    owned[IMG2] = {200 + i: WARMER for i in range(4)}
    assert realized_cache_pages([copies], owned, {IMG1: {A}, IMG2: {B}}, {}) == (0, 0)


def test_identical_files_inside_one_image_save_their_own_image_pages():
    # redis-check-aof and redis-server: the same bytes in two files of one image,
    # in different blocks: sharing reads one file's blocks only
    owned = {IMG1: {100 + i: A for i in range(4)} | {200 + i: A for i in range(4)}}
    s = potential([[copy("x", bits(0, 4), A, IMG1, linear(4, 100)),
                    copy("y", bits(0, 4), A, IMG1, linear(4, 200))]], owned, {IMG1: {A}}, {})
    assert (s.file_pages, s.image_pages) == (4, 4)


def test_first_read_counts_the_initial_readahead_window():
    # mm/readahead.c get_init_ra_size with the default 32-page window
    assert [init_ra_pages(n) for n in (1, 2, 3, 4, 8, 9, 32, 40)] == [4, 4, 8, 8, 16, 32, 32, 40]
    # a member that read pages 0-2 of a 16-page file would have cached 0-7 on its own
    union = {0: bits(0, 16)}
    touched = {(31, 5): {0: bits(0, 16)}, (32, 5): {0: bits(0, 3)}}
    assert realized_file_pages(union, touched) == 8


def test_compressed_copies_save_the_second_mounts_compressed_cache():
    # two compressed copies: each file page decompresses from one 4-page cluster
    # (pages 0-3 -> cluster 50-53 on mount 1, 70-73 on mount 2)
    m1, m2 = ("managed", 41), ("managed", 42)
    cl1 = {i: (50, 51, 52, 53) for i in range(4)}
    cl2 = {i: (70, 71, 72, 73) for i in range(4)}
    owned = {m1: {50 + i: A for i in range(4)}, m2: {70 + i: B for i in range(4)}}
    a = copy("a", bits(0, 4), A)
    b = copy("b", bits(0, 4), B)
    a.managed, b.managed = (m1, cl1), (m2, cl2)
    s = potential([[a, b]], owned, {m1: {A}, m2: {B}}, {})
    assert (s.file_pages, s.image_pages, s.compressed_pages) == (4, 0, 4)


def test_realized_compressed_cache_mirrors_the_member_read_through():
    # the compressed-data cache keeps only some clusters: a missing one proves
    # nothing, so each other member that touched a page would have cached what
    # the member read through holds for it
    union = {0: bits(0, 4)}
    touched = {(41, 5): {0: bits(0, 4)}, (42, 5): {0: bits(0, 2)}}
    clusters = {41: {i: (50,) for i in range(4)}, 42: {i: (70,) for i in range(4)}}
    copies = touched_copies(union, touched, lambda m: None, lambda m: None,
                            lambda m: (("managed", m[0]), clusters[m[0]]))
    owned = {("managed", 41): {50: A}}
    assert realized_cache_pages([copies], owned, {}, {}) == (0, 1)


def test_standalone_random_reads_get_no_readahead_long_runs_one_window():
    # 1-page reads at pages 10 and 40 of a 128-page file: the kernel reads them
    # as is; a 40-page run from page 64 would have had one async window more
    union = {0: bits(0, 64), 1: bits(0, 64)}
    touched = {(31, 5): {0: bits(0, 64), 1: bits(0, 64)},
               (32, 5): {0: (1 << 10) | (1 << 40), 1: bits(0, 40)}}
    assert realized_file_pages(union, touched) == 2 + 40 + 24
