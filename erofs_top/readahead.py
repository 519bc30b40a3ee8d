"""The kernel's readahead for buffered reads, replayed on one inode.  Pure.

Which pages a sequence of read(2)/pread(2) calls leaves in an inode's page
cache depends on that inode's cache (its history) and on each open file's
readahead state, not on the read requests alone.  That is why page-cache
sharing changes what random readers cache: on a shared inode, one member's
reads find the other members' pages (longer history, more readahead, no I/O
where a page is already cached), on its own inode only its own.  This module
replays the rules of Linux 6.10+ (checked against the lab's 7.2, see
docs/sharing.md "Random readers"), order-0 folios, all reads complete at once:

mm/filemap.c
  filemap_read()          loops filemap_get_pages() until the request is
                          copied; sets f_ra.prev_pos to the end of the copy
  filemap_get_pages()     index = pos >> PAGE_SHIFT, last_index = pages up to
                          pos + count; the batch of cached pages from index
                          (filemap_get_read_batch: stops at a gap and after a
                          PG_readahead page); empty: page_cache_sync_ra(
                          last_index - index) and look again; still empty:
                          filemap_create_folio (one page); the batch's last
                          page marked: page_cache_async_ra(last_index - index)
mm/readahead.c
  page_cache_sync_ra()    index 0, or index - prev_index <= 1: initial window
                          (get_init_ra_size); else the cached run right before
                          index (page_cache_prev_miss, up to ra_pages):
                          <= req_count: read just the request, no mark; else
                          a window of min(run + req, ra_pages) (run doubled
                          when cached from page 0), the mark on its last page
  page_cache_async_ra()   at the expected index: the next window, ramped up
                          (get_next_ra_size); else from the next gap
                          (page_cache_next_miss) if within ra_pages; the end
                          aligned down to 1 << min(order + 2, log2(ra_pages))
  page_cache_ra_unbounded() reads the window's missing pages up to EOF, marks
                          the page at start + size - async_size if it is new
                          (7.2: no mark when the window reaches the EOF page;
                          page_cache_ra_order() alike)
lib/xarray.c
  page_cache_prev_miss/next_miss walk slot by slot; started inside a large
                          folio the slots trail the index until a node edge

Compressed files (``InodeCache.z``, lz4-class extents; fs/erofs/zdata.c and
zmap.c, Linux 6.x-7.2): each batch read_pages() hands the filesystem
(z_erofs_readahead, or z_erofs_read_folio for one created folio) also caches
the missing pages of the extent holding its first byte that lie before it,
down to round_up(m_la, PAGE) (z_erofs_pcluster_readmore(false)); the trailing
readahead_expand() to the end of the last byte's extent is a no-op for lz4,
whose READMORE map ends at the end of the queried lcluster.  For lzma,
deflate and zstd (``ZExtentRa.whole``) z_erofs_do_map_blocks maps the whole
extent (FULL_MAPPED) when that lcluster-bounded length reaches a block: then
a readahead batch grows to the extent's end (readahead_expand(): up to the
first page already cached, ra->size and ra->async_size grow with it) and a
single-folio read (z_erofs_read_folio) grabs every missing page after it up
to the extent's end; see ``_readmore_tail``.  Every extent the batch
touches is decompressed from its pcluster, whose compressed pages go into the
superblock's managed cache unless the map was FULL_MAPPED (the queried
lcluster holds the next extent's head, or it is the file's last lcluster, the
extent runs to EOF and began in an earlier lcluster: its end is known; see
``_full_mapped``) and the extent starts at or after
the batch (z_erofs_should_alloc_cache, the default cache strategy
readaround); see ``z_batch``.  Checked page for page against the lab's 7.2
(tests/vm/ra_investigate.py, docs/sharing.md "Random readers").
"""
from __future__ import annotations

from dataclasses import dataclass, field

PAGE = 4096
RA_PAGES = 32           # VM_READAHEAD_PAGES: read_ahead_kb 128 with 4 KiB pages
NO_GAP_BELOW = -1       # page_cache_prev_miss() wrapped below page 0 (ULONG_MAX)


@dataclass
class FileRa:
    """struct file_ra_state: one per open file (file_ra_state_init)."""
    start: int = 0
    size: int = 0
    async_size: int = 0
    order: int = 0
    prev_pos: int = -1
    mmap_miss: int = 0


@dataclass(frozen=True)
class ZExtentRa:
    """One extent of a compressed file as the read path maps it: file bytes
    [start, end) decompress from image pages [pcluster_page, +pcluster_pages)
    (pcluster_pages 0: no pcluster of its own in the managed cache; with a
    pcluster_page, an inline pcluster (ztailpacking) read from that image
    page through erofs_read_metabuf, like an inline tail)."""
    start: int
    end: int
    pcluster_page: int = -1
    pcluster_pages: int = 0
    whole: bool = False     # lzma, deflate, zstd: a READMORE map may take it whole


@dataclass
class ZFile:
    """The compressed layout of one file: its extents in file order,
    contiguous from 0 to the file's size, and the lcluster size."""
    extents: list[ZExtentRa]
    lcluster_bytes: int = PAGE

    def at(self, pos: int) -> ZExtentRa:
        lo, hi = 0, len(self.extents) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.extents[mid].start <= pos:
                lo = mid
            else:
                hi = mid - 1
        return self.extents[lo]


@dataclass
class InodeCache:
    """One inode's page cache: resident pages and PG_readahead marks."""
    size_bytes: int
    large_folios: bool = False          # mapping_large_folio_support()
    pages: set[int] = field(default_factory=set)
    marks: set[int] = field(default_factory=set)       # folio heads
    folios: dict[int, int] = field(default_factory=dict)   # page -> head (order > 0)
    io: list[list[int]] | None = None   # when a list: each read_pages() batch, in order
    z: ZFile | None = None              # compressed: its extents (module doc)
    # when a list: each pcluster decompressed, (its image pages, kept in the
    # managed cache; None: an inline pcluster's metadata page)
    zio: list[tuple[range, bool | None]] | None = None
    zcuts: list[int] | None = None      # where in zio each read_pages() batch starts
    ra: FileRa | None = None            # the readahead state of the read in progress

    def head(self, page: int) -> int:
        return self.folios.get(page, page)

    def folio_pages(self, page: int) -> int:
        head = self.head(page)
        n = 1
        while self.folios.get(head + n) == head:
            n += 1
        return n

    @property
    def end_index(self) -> int:
        """The page holding the last byte (-1: empty file)."""
        return (self.size_bytes - 1) // PAGE


def init_ra_size(req: int, max_pages: int = RA_PAGES) -> int:
    """get_init_ra_size(): round up to a power of two, x4 small, x2 medium."""
    size = 1 << max(0, (req - 1).bit_length())
    if size <= max_pages // 32:
        return size * 4
    if size <= max_pages // 4:
        return size * 2
    return max_pages


def next_ra_size(cur: int, max_pages: int = RA_PAGES) -> int:
    """get_next_ra_size(): x4 while small, x2 up to half the max, then max."""
    if cur < max_pages // 16:
        return 4 * cur
    if cur <= max_pages // 2:
        return 2 * cur
    return max_pages


XA_CHUNK = 64           # XA_CHUNK_SIZE: slots per xarray node


def _sibling_shift(cache: InodeCache, index: int) -> int:
    """An xarray walk that starts inside a multi-page folio loads the
    folio's head slot first, then steps slot and index together: the slots
    it checks trail the index it reports by this much (xas_load() resolves
    the sibling entry to the head's offset; xas_next/xas_prev then move both)."""
    return index - cache.head(index) if index in cache.pages else 0


def _node_step(index: int, slot: int, step: int) -> int:
    """The slot an xas_next() (step 1) or xas_prev() (step -1) checks after
    the slot ``slot`` at the index ``index``, whose next index is ``index +
    step`` (lib/xarray.c).  Inside an xarray node (XA_CHUNK slots) slot and
    index move together; at the node's edge __xas_next/__xas_prev compare the
    new index's offset with the slot's: equal (a walk one index behind its
    slot, xas_prev at the node's first slot), the same slot again; else the
    walk leaves the node and, one node over, takes the new index's offset
    (xas_set_offset): slot and index are in step again."""
    edge = XA_CHUNK - 1 if step > 0 else 0
    if slot % XA_CHUNK != edge:
        return slot + step
    new = index + step
    if new % XA_CHUNK == slot % XA_CHUNK:
        return slot
    return (slot // XA_CHUNK + step) * XA_CHUNK + new % XA_CHUNK


def prev_miss(cache: InodeCache, index: int, max_scan: int) -> int:
    """page_cache_prev_miss(): the index it reports for the highest gap in
    [index - max_scan + 1, index]; NO_GAP_BELOW when the scan passes page 0
    (ULONG_MAX in the kernel); the last index scanned when there is no gap.
    Started inside a large folio, the slots checked trail the index until
    the walk crosses an xarray node's edge (``_node_step``; the lab's 7.2:
    prev_miss(515) inside the folio 514-515 reported the gap at 507, contig
    8, not 508)."""
    slot = index - _sibling_shift(cache, index)
    for k in range(max_scan):
        if index - k < 0:
            return NO_GAP_BELOW
        if slot < 0 or slot not in cache.pages:     # below the first node: bounds
            return index - k
        slot = _node_step(index - k, slot, -1)
    return index - max_scan + 1


def next_miss(cache: InodeCache, index: int, max_scan: int) -> int:
    """page_cache_next_miss(): the index it reports for the lowest gap in
    [index, index + max_scan), else index + max_scan (slots checked as in
    ``prev_miss``)."""
    slot = index - _sibling_shift(cache, index)
    for k in range(max_scan):
        if slot not in cache.pages:
            return index + k
        slot = _node_step(index + k, slot, 1)
    return index + max_scan


def _unbounded(cache: InodeCache, index: int, nr: int, lookahead: int) -> None:
    """do_page_cache_ra() + page_cache_ra_unbounded(): read the missing pages
    of [index, index + nr) up to EOF; mark index + nr - lookahead if new.  A
    window that reaches the EOF page is trimmed there with lookahead 0, so
    unmarked (the lab's 7.2 tracepoints: 54 of 54 trimmed windows)."""
    if cache.size_bytes <= 0 or index > cache.end_index:
        return
    if nr > cache.end_index - index:    # reaches EOF: trimmed, and no mark (7.2)
        nr, lookahead = cache.end_index - index + 1, 0
    mark = index + nr - lookahead if 0 < lookahead <= nr else None
    batch: list[int] = []
    for p in range(index, index + nr):
        if p in cache.pages:            # read_pages(): submit the batch so far
            _submit(cache, batch)
            batch = []
            continue
        cache.pages.add(p)
        batch.append(p)
        if p == mark:
            cache.marks.add(p)
    _submit(cache, batch)


def _submit(cache: InodeCache, batch: list[int], folio: bool = False) -> None:
    """read_pages(): one batch of new pages goes to the filesystem
    (``folio``: one created folio, through read_folio, not readahead)."""
    if batch and cache.z is not None:
        batch = z_batch(cache, batch, folio)
    if batch and cache.io is not None:
        cache.io.append(batch)


def z_batch(cache: InodeCache, batch: list[int], folio: bool = False) -> list[int]:
    """One batch of a compressed file (the module doc): adds the head
    extent's missing pages before the batch and, for a whole-mapped tail
    extent, after it; returns the pages it caches, in page order; logs the
    pclusters decompressed in ``cache.zio``."""
    z, head = cache.z, batch[0] * PAGE
    first = z.at(head)
    tail, after = _readmore_tail(cache, batch, folio)
    more = [p for p in range(-(-first.start // PAGE), batch[0]) if p not in cache.pages]
    cache.pages.update(more)
    if cache.zio is not None:
        if cache.zcuts is not None:
            cache.zcuts.append(len(cache.zio))
        end = min((max(batch[-1:] + after[-1:]) + 1) * PAGE, cache.size_bytes)
        i = z.extents.index(first)
        while i < len(z.extents) and z.extents[i].start < end:
            e = z.extents[i]
            query = min(e.end, end) - 1
            lcl = z.lcluster_bytes
            full = e is tail or _full_mapped(e, query, cache.size_bytes, lcl)
            if e.pcluster_pages:
                cache.zio.append((range(e.pcluster_page, e.pcluster_page + e.pcluster_pages),
                                  not full or e.start < head))
            elif e.pcluster_page >= 0:
                cache.zio.append((range(e.pcluster_page, e.pcluster_page + 1), None))
            i += 1
    return more + list(batch) + after


def _readmore_tail(cache: InodeCache, batch: list[int], folio: bool
                   ) -> tuple[ZExtentRa | None, list[int]]:
    """z_erofs_pcluster_readmore(backmost): the READMORE map of the batch's
    last byte.  For a ``whole`` extent whose lcluster-bounded map (from its
    start to the end of the queried lcluster, or to the next head inside
    it) is at least a block long (z_erofs_do_map_blocks: ``m_llen >=
    i_blocksize``), the map is the whole extent, FULL_MAPPED: returns it
    and the pages cached after the batch up to the extent's end (a
    readahead batch: readahead_expand() stops at the first cached page and
    grows the open file's window by as much; a single folio: every missing
    page, no window).  Else (None, [])."""
    z, lcl = cache.z, cache.z.lcluster_bytes
    query = min((batch[-1] + 1) * PAGE, cache.size_bytes) - 1
    e = z.at(query)
    if not e.whole:
        return None, []
    lend = (query // lcl + 1) * lcl
    # the next head inside the queried (NONHEAD) lcluster ends the map there
    ends_inside = (e.end < cache.size_bytes and e.start // lcl < query // lcl
                   and e.end // lcl == query // lcl)
    mapped_end = e.end if ends_inside else lend
    if mapped_end - e.start < lcl:
        return None, []
    last = min(cache.end_index, (e.end - 1) // PAGE)
    after: list[int] = []
    for p in range(batch[-1] + 1, last + 1):
        if p in cache.pages:
            if folio:
                continue
            break
        after.append(p)
    cache.pages.update(after)
    if not folio and cache.ra is not None:
        cache.ra.size += len(after)
        cache.ra.async_size += len(after)
    return e, after


def _full_mapped(e: ZExtentRa, query: int, size_bytes: int, lcl: int) -> bool:
    """Whether the READMORE map of byte ``query`` of extent ``e`` is
    FULL_MAPPED (its end known): the queried lcluster holds the next
    extent's head; or, for the file's last extent, the query sits in the
    file's last lcluster and that lcluster is not the extent's head one (a
    NONHEAD lcluster found by lookback).  A last extent whose head is in the
    last lcluster maps without it (the lab's 7.2: 73 of 73 such pclusters
    of libpython3.14-stdlib lz4hc kept in the managed cache, 149 of 149
    last extents headed in an earlier lcluster not kept).  A file whose size
    is a whole number of lclusters has no such end inside its last lcluster:
    its last extent is never FULL_MAPPED (the lab's 7.2, 2026-12-04,
    libpython3.14-stdlib lz4hc: 3 of 3 such pclusters kept, against 666 of
    674 unaligned ones headed earlier not kept, the 8 others read from
    before their head)."""
    if e.end >= size_bytes:
        last = (size_bytes - 1) // lcl
        return size_bytes % lcl != 0 and query // lcl == last and e.start // lcl < last
    return e.end % lcl != 0 and query // lcl == e.end // lcl


def _ra_submit(cache: InodeCache, ra: FileRa) -> None:
    """page_cache_ra_order(): folios of up to ``ra.order`` (aligned, not
    past the window or EOF), the one holding start + size - async_size
    marked; at the first page already cached it stops and reads the rest of
    the window as order-0 pages (the fallback).  Without large folios the
    fallback does it all."""
    if not cache.large_folios:
        ra.order = 0
        _unbounded(cache, ra.start, ra.size, ra.async_size)
        return
    start = index = ra.start
    limit = min(cache.end_index, start + ra.size - 1)
    added: list[int] = []
    # a window that reaches the EOF page marks no folio (the lab's 7.2)
    mark = start + ra.size - ra.async_size if start + ra.size - 1 < cache.end_index else -1
    ra.order = min(ra.order, ra.size.bit_length() - 1)
    while index <= limit:
        order = ra.order
        if index & ((1 << order) - 1):
            order = (index & -index).bit_length() - 1     # __ffs(index)
        while order > 0 and index + (1 << order) - 1 > limit:
            order -= 1
        n = 1 << order
        if any(p in cache.pages for p in range(index, index + n)):   # -EEXIST
            break
        cache.pages.update(range(index, index + n))
        added.extend(range(index, index + n))
        if n > 1:
            cache.folios.update((p, index) for p in range(index, index + n))
        if mark >= 0 and index == mark - mark % n:
            cache.marks.add(index)
        index += n
    _submit(cache, added)
    if index > limit:
        return
    if ra.size > index - start:
        _unbounded(cache, index, ra.size - (index - start), ra.async_size)


def sync_ra(cache: InodeCache, ra: FileRa, index: int, req: int,
            max_pages: int = RA_PAGES) -> None:
    """page_cache_sync_ra(): a read missed the cache at ``index``."""
    prev_index = ra.prev_pos >> 12 if ra.prev_pos >= 0 else None
    if index == 0 or req > max_pages or (
            prev_index is not None and 0 <= index - prev_index <= 1):
        ra.start, ra.size = index, init_ra_size(req, max_pages)
        ra.async_size = ra.size - req if ra.size > req else ra.size >> 1
        ra.order = 0
        _ra_submit(cache, ra)
        return
    miss = prev_miss(cache, index - 1, max_pages)
    contig = index if miss == NO_GAP_BELOW else index - miss - 1
    if contig <= req:                         # standalone, small random read
        _unbounded(cache, index, req, 0)
        return
    if miss == NO_GAP_BELOW:                  # cached from the beginning
        contig *= 2
    ra.start, ra.size, ra.async_size = index, min(contig + req, max_pages), 1
    ra.order = 0
    _ra_submit(cache, ra)


def async_ra(cache: InodeCache, ra: FileRa, index: int, req: int,
             max_pages: int = RA_PAGES) -> None:
    """page_cache_async_ra(): a read reached the marked page ``index``."""
    cache.marks.discard(index)
    expected = ra.start + ra.size - ra.async_size
    if index == expected - expected % cache.folio_pages(index):
        ra.start += ra.size
        ra.size = max(ra.size, next_ra_size(ra.size, max_pages))
    else:
        start = next_miss(cache, index + 1, max_pages)
        if not start or start - index > max_pages:
            return
        ra.start, ra.size = start, next_ra_size(start - index + req, max_pages)
    ra.order += 2
    align = 1 << min(ra.order, max_pages.bit_length() - 1)
    end = ra.start + ra.size
    aligned_end = end - end % align
    if aligned_end > ra.start:
        ra.size -= end - aligned_end
    ra.async_size = ra.size
    _ra_submit(cache, ra)


def _batch(cache: InodeCache, index: int, last: int) -> list[int]:
    """filemap_get_read_batch(): cached pages from ``index`` to ``last``,
    stopping at a gap and after a marked page."""
    out = []
    p = cache.head(index)
    while p <= last:
        if p not in cache.pages:
            break
        n = cache.folio_pages(p)
        out.append(p)
        if p in cache.marks:
            break
        p += n
    return out


def read(cache: InodeCache, ra: FileRa, pos: int, count: int,
         max_pages: int = RA_PAGES) -> None:
    """filemap_read() of ``count`` bytes at ``pos`` through an open file
    with readahead state ``ra``."""
    last_pos = ra.prev_pos
    cache.ra = ra
    end = pos + count
    while pos < end and pos < cache.size_bytes:
        index, last_index = pos // PAGE, -(-end // PAGE)
        batch = _batch(cache, index, last_index - 1)
        if not batch:
            sync_ra(cache, ra, index, last_index - index, max_pages)
            batch = _batch(cache, index, last_index - 1)
        if not batch:                         # filemap_create_folio()
            cache.pages.add(index)
            _submit(cache, [index], folio=True)
            batch = [index]
        if batch[-1] in cache.marks:          # filemap_readahead()
            async_ra(cache, ra, batch[-1], last_index - batch[-1], max_pages)
        pos = min(end, cache.size_bytes, (batch[-1] + cache.folio_pages(batch[-1])) * PAGE)
        last_pos = pos
    ra.prev_pos = last_pos


MMAP_LOTSAMISS = 100


def fault(cache: InodeCache, ra: FileRa, index: int, max_pages: int = RA_PAGES) -> None:
    """filemap_fault() of page ``index`` through a read-only shared mmap with
    readahead state ``ra`` (mm/filemap.c, Linux 6.10+; the logged calls are
    every call, retries included; fault-around maps cached pages only, so it
    caches nothing).  A cached page: do_async_mmap_readahead() (mmap_miss
    down; a PG_readahead folio opens the async window with req_count =
    ra_pages).  A miss: do_sync_mmap_readahead(): mmap_miss up; up to
    MMAP_LOTSAMISS misses, the read-around window ra_pages from index -
    ra_pages / 2 (not below 0), async_size ra_pages / 4, order 0, through
    page_cache_ra_order(); then the page itself if still missing
    (__filemap_get_folio(FGP_CREAT) + read_folio)."""
    if cache.size_bytes <= 0 or index > cache.end_index:
        return
    cache.ra = ra
    if index in cache.pages:
        ra.mmap_miss = max(0, ra.mmap_miss - 1)
        head = cache.head(index)
        if head in cache.marks:
            cache.marks.discard(head)
            async_ra(cache, ra, index, max_pages, max_pages)
        return
    ra.mmap_miss = min(ra.mmap_miss + 1, MMAP_LOTSAMISS * 10)
    if ra.mmap_miss <= MMAP_LOTSAMISS:
        ra.start, ra.size = max(0, index - max_pages // 2), max_pages
        ra.async_size, ra.order = max_pages // 4, 0
        _ra_submit(cache, ra)
    if index not in cache.pages:
        cache.pages.add(index)
        _submit(cache, [index], folio=True)


def replay(size_bytes: int, opens: list[list[tuple[int, int]]],
           cache: InodeCache | None = None, large_folios: bool = False) -> InodeCache:
    """The pages an inode of ``size_bytes`` holds after ``opens`` ran in
    order: each open is a list of (pos, count) reads through one open file
    (fresh readahead state).  ``cache``: start from it (changed in place)."""
    cache = cache if cache is not None else InodeCache(size_bytes, large_folios)
    for reads in opens:
        ra = FileRa()
        for pos, count in reads:
            read(cache, ra, pos, count)
    return cache


# ------------------------------------------------------------ reads of many files
@dataclass(frozen=True)
class Read:
    """One read(2)/pread(2) of an EROFS file, in the order the kernel saw it.

    ``inode``: the page cache it goes through (a member's own inode on a
    stock mount, the shared inode's key with inode_share); ``member``: the
    file read, as (mount, file) for its image page map (``member[0]`` is the
    mount: its image file and the mount's one backing ``struct file``);
    ``opened``: the open file (one readahead state per open);
    ``prev_pos``: the open file's f_ra.prev_pos as the kernel had it before
    this read (None: what the replay's own state says); ``tag``: who read
    (the pages this read inserts are tagged with it in Replayed.owners)."""
    inode: object
    member: tuple
    opened: object
    pos: int
    count: int
    prev_pos: int | None = None
    tag: object = None
    fault: bool = False     # a filemap_fault() of page pos // PAGE (mmap), not a read


def image_runs(batch: list[int], image_pages: list[int]) -> list[list[int]]:
    """One read_pages() batch of a file-backed EROFS file -> the reads of the
    image file erofs fileio issues (fs/erofs/fileio.c erofs_fileio_scan_folio:
    one request per run of physically contiguous blocks).  ``image_pages``:
    file page -> image page, -1 for an inline tail (read from its metadata
    block, without readahead: left out)."""
    runs: list[list[int]] = []
    for p in batch:
        ip = image_pages[p] if p < len(image_pages) else -1
        if ip < 0:
            continue
        if runs and ip == runs[-1][-1] + 1:
            runs[-1].append(ip)
        else:
            runs.append([ip])
    return runs


@dataclass
class Replayed:
    inodes: dict = field(default_factory=dict)      # inode key -> InodeCache
    images: dict = field(default_factory=dict)      # image key -> InodeCache of its image file
    managed: dict = field(default_factory=dict)     # superblock key -> its managed cache's pages
    # inode or image key -> {page: tag of the Read that inserted it}
    owners: dict = field(default_factory=dict)


def _tag_new(owners: dict, key, io: list[list[int]], tag) -> None:
    mine = owners.setdefault(key, {})
    for batch in io:
        for p in batch:
            mine[p] = tag


def replay_reads(reads, size_of, *, large_folios=lambda inode: False, image_map=None,
                 image_size=None, image_large_folios: bool = True,
                 image_of=lambda mount: mount, zfile=None,
                 managed_of=lambda read: read.member[0], image_seed=None,
                 meta_of=None, meta_readahead=lambda mount: False,
                 shared=lambda inode: False) -> Replayed:
    """Replay ``reads`` (Read, in order) from empty caches: what each inode
    and, given ``image_map(member)`` (file page -> image page, or None) and
    ``image_size(image)``, each image file would hold.  A miss is read
    through the reading member's image (``image_of(mount)``: the same image
    file mounted twice is one cache), with that mount's readahead state (the
    lab's 7.2: inode_share misses fill the reader's own image).
    ``zfile(member)``: a compressed file's ZFile (None: not compressed); each
    read decompresses through its own member's extents (on a shared inode
    too: the lab's 7.2 trace shows the reader's own nid), the pclusters go
    to the managed cache of ``managed_of(read)`` (``Replayed.managed``,
    owners under ("managed", key)); with ``image_map``, the compressed pages
    not in that cache are read through the reader's image (``_ZImageReads``).
    ``image_seed``: image -> pages cached before the reads (warm image
    files; never tagged).
    ``meta_of(member)``: the image pages of the member's on-disk inode and of
    its inline tail (``MetaPages``; None: unknown), read through the image's
    cache one page each, without readahead (see ``_meta_read``), except where
    ``meta_readahead(mount)``: a loop device, whose worker reads each
    metadata bio from the image as a buffered read with the mount's
    readahead state, as it reads data.
    ``shared(inode)``: the inode is an inode_share one, whose members' lookups
    also read their inline xattrs (the fingerprint: the pages after the
    inode's up to ``MetaPages.xattr_end_page``; the lab's 7.2)."""
    out = Replayed()
    for image, pages in (image_seed or {}).items():
        out.images[image] = InodeCache(image_size(image), image_large_folios, pages=set(pages))
    file_ra: dict = {}
    image_ra: dict = {}
    looked_up: set = set()
    bdev_pages: dict = {}           # loop mount -> its block device's cached pages
    for r in reads:
        c = out.inodes.get(r.inode)
        if c is None:
            c = out.inodes[r.inode] = InodeCache(size_of(r.inode), large_folios(r.inode))
        if zfile is not None:           # the reader's own member decompresses (the lab's 7.2)
            c.z = zfile(r.member)
        pm = image_map(r.member) if image_map is not None else None
        image = image_of(r.member[0]) if image_map is not None else None
        meta = meta_of(r.member) if (meta_of is not None and image is not None) else None
        mount_ra = image_ra.setdefault(r.member[0], FileRa())
        meta_ra = (mount_ra, bdev_pages.setdefault(r.member[0], set())
                   ) if meta_readahead(r.member[0]) else None
        if meta is not None and r.member not in looked_up:     # the lookup before the open
            looked_up.add(r.member)
            _meta_read(out, image, meta.inode_page, image_size, image_large_folios, r.tag,
                       meta_ra)
            if shared(r.inode):     # inode_share: iget reads the fingerprint xattr too
                for p in range(meta.inode_page + 1, meta.xattr_end_page + 1):
                    _meta_read(out, image, p, image_size, image_large_folios, r.tag, meta_ra)
        c.io, c.zio, c.zcuts = [], [], []
        ra = file_ra.setdefault(r.opened, FileRa())
        if r.prev_pos is not None:
            ra.prev_pos = r.prev_pos
        if r.fault:
            fault(c, ra, r.pos // PAGE)
        else:
            read(c, ra, r.pos, r.count)
        _tag_new(out.owners, r.inode, c.io, r.tag)
        if pm is not None:
            _image_reads(out, c.io, pm, r, image, image_size, image_large_folios, mount_ra)
            if meta is not None and meta.tail_page >= 0 and any(
                    pm[p] < 0 for batch in c.io for p in batch if p < len(pm)):
                _meta_read(out, image, meta.tail_page, image_size, image_large_folios, r.tag,
                           meta_ra)
        if c.zio:
            reads_of = None if image is None else _ZImageReads(
                out, image, image_size, image_large_folios, mount_ra, r.tag)
            _managed(out, c.zio, c.zcuts, managed_of(r), r.tag, reads_of)
        c.io = c.zio = c.zcuts = None
    return out


@dataclass(frozen=True)
class MetaPages:
    """Where a file's metadata sits in its image: the page holding its
    on-disk inode (read at lookup), the page its inline tail is read from
    (-1: no inline tail) and the page holding the last byte of its inline
    xattrs (-1: none or unknown)."""
    inode_page: int
    tail_page: int = -1
    xattr_end_page: int = -1


def _meta_read(out: Replayed, image, page: int, image_size, image_large_folios: bool,
               tag, loop: tuple[FileRa, set[int]] | None = None) -> None:
    """erofs_read_metabuf() -> erofs_bread() -> read_mapping_folio() on the
    image file (fs/erofs/data.c, mm/filemap.c do_read_cache_folio): the one
    page, inserted if missing, no readahead, the file's readahead state
    untouched.  The inode's lookup and an inline tail's read both go this
    way, with or without sharing (every mount reads its own inodes).  On a
    loop device (``loop``: its readahead state and its block device's cached
    pages) the folio is the block device's: a miss there is one bio, which
    the loop worker reads from the image file as a buffered read of that
    page with the device's readahead state (drivers/block/loop.c lo_rw_aio,
    dio off): a hit or a miss in the image file's cache, its readahead
    marks and windows apply."""
    img = out.images.get(image)
    if img is None:
        img = out.images[image] = InodeCache(image_size(image), image_large_folios)
    if page < 0:
        return
    if loop is not None:
        loop_ra, bdev = loop
        if page not in bdev:
            bdev.add(page)
            img.io = []
            read(img, loop_ra, page * PAGE, PAGE)
            _tag_new(out.owners, ("image", image), img.io, tag)
            img.io = None
        return
    if page in img.pages:
        return
    img.pages.add(page)
    out.owners.setdefault(("image", image), {})[page] = tag


BIO_PAGES = 16          # struct erofs_fileio_rq: bvecs[16] per backing-file read


@dataclass
class _ZImageReads:
    """The image-file reads of one EROFS read's compressed I/O (file-backed
    mounts): fs/erofs/zdata.c z_erofs_submit_queue() reads, per read_pages()
    batch and in file order, the compressed pages not in the managed cache,
    physically contiguous ones in one bio of up to BIO_PAGES pages, each bio
    one buffered read of the backing file (fileio.c) through the mount's
    readahead state; an inline pcluster comes from its metadata page."""
    out: Replayed
    image: object
    image_size: object
    large_folios: bool
    ra: FileRa
    tag: object

    def submit(self, pages: list[int]) -> None:
        img = self.out.images.get(self.image)
        if img is None:
            img = self.out.images[self.image] = InodeCache(self.image_size(self.image),
                                                           self.large_folios)
        bios: list[list[int]] = []
        for p in pages:
            if bios and bios[-1][-1] + 1 == p and len(bios[-1]) < BIO_PAGES:
                bios[-1].append(p)
            else:
                bios.append([p])
        img.io = []
        for bio in bios:
            read(img, self.ra, bio[0] * PAGE, len(bio) * PAGE)
        _tag_new(self.out.owners, ("image", self.image), img.io, self.tag)
        img.io = None

    def meta(self, page: int) -> None:
        _meta_read(self.out, self.image, page, self.image_size, self.large_folios, self.tag)


def _managed(out: Replayed, zio: list[tuple[range, bool | None]], cuts: list[int], sb, tag,
             reads_of: _ZImageReads | None) -> None:
    """The compressed pages kept by one read's decompressions, and (given
    ``reads_of``) the image reads of the pages not in the managed cache."""
    cache = out.managed.setdefault(sb, set())
    mine = out.owners.setdefault(("managed", sb), {})
    for lo, hi in zip(cuts, cuts[1:] + [len(zio)]):
        need: list[int] = []
        for pages, kept in zio[lo:hi]:
            if kept is None:
                if reads_of is not None:
                    reads_of.meta(pages[0])
                continue
            need.extend(p for p in pages if p not in cache and p not in need)
            for p in pages:
                if kept and p not in cache:
                    cache.add(p)
                    mine[p] = tag
        if reads_of is not None and need:
            reads_of.submit(need)


def _image_reads(out: Replayed, io: list[list[int]], pm: list[int], r: Read, image,
                 image_size, image_large_folios: bool, ra: FileRa) -> None:
    """The image-file reads one EROFS read's batches issue (erofs fileio)."""
    img = out.images.get(image)
    if img is None:
        img = out.images[image] = InodeCache(image_size(image), image_large_folios)
    img.io = []
    for batch in io:
        for run in image_runs(batch, pm):
            read(img, ra, run[0] * PAGE, len(run) * PAGE)
    _tag_new(out.owners, ("image", image), img.io, r.tag)
    img.io = None
