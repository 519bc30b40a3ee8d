"""pagecache.page_owners on a real file read by two cgroups: every resident
page is named with the memcg that paid for it (kpagecgroup), a page not
resident is not named, whether the runs come from the whole mincore vector
(an image file, ImageCacheReader) or from a list of pages (snapshot)."""
from __future__ import annotations

import os
import sys

from erofs_top import pagecache

PS = pagecache.PAGE_SIZE

# exactly these pages, no readahead around them
_READ = ("import os,sys\n"
         "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
         "os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)\n"
         "for a in sys.argv[2:]:\n"
         "    lo, hi = map(int, a.split('-'))\n"
         "    for p in range(lo, hi):\n"
         "        os.pread(fd, 1, p * %d)\n" % PS)


def _memcg_ino(cg) -> int:
    """The inode kpagecgroup names for pages charged to cgroup ``cg`` (its v1
    memory cgroup on a hybrid host)."""
    return os.stat(cg.mem_dir or cg.dir).st_ino


def _cold_file(path, pages: int):
    """A file of ``pages`` random pages on disk, none of them cached."""
    with open(path, "wb") as f:
        f.write(os.urandom(pages * PS))
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    return path


def test_page_owners_of_two_readers(stack, cgroup_prefix):
    path = _cold_file(stack.dir / "two-readers.bin", 700)
    assert pagecache.file_resident_pages(str(path)) == 0
    a, b = (stack.cgroup(f"{cgroup_prefix}/{n}") for n in "ab")
    runs = {a: [(0, 200), (400, 450), (699, 700)], b: [(250, 350), (500, 600)]}
    for cg, rs in runs.items():
        cg.run([sys.executable, "-S", "-c", _READ, str(path), *(f"{lo}-{hi}" for lo, hi in rs)])
    want = {p: _memcg_ino(cg) for cg, rs in runs.items() for lo, hi in rs
            for p in range(lo, hi)}
    assert _memcg_ino(a) != _memcg_ino(b)
    assert pagecache.file_resident_pages(str(path)) == len(want)
    assert pagecache.page_owners(str(path)) == want
    some = list(range(190, 260)) + [450, 699, 5000]       # some resident, some not
    assert pagecache.page_owners(str(path), some) == {p: want[p] for p in some if p in want}
    assert pagecache.file_resident_pages(str(path)) == len(want)     # looking loaded nothing


class _OneMount:
    def __init__(self, info):
        self.info = info

    def mounts(self):
        return [self.info]


def test_image_cache_reader_follows_moved_pages(stack, cgroup_prefix):
    """ImageCacheReader on a file-backed mount: after part of the image is
    evicted and read again by another cgroup, and after the first reader's
    cgroup is removed (kpagecgroup then names its parent for the same
    pages), what it reports equals a fresh reader's full read; a read with
    nothing moved hands back the same dict."""
    from erofs_top.image_cache import ImageCacheReader
    from erofs_top.resolve.cgroups import SysCgroups
    from erofs_top.workload import build_image, drop_file_cache, make_tree
    from image_reads import cold, mount_info
    src = make_tree(stack.dir / "src", {f"d/f{i:02d}.bin": 200_000 + 4096 * i
                                        for i in range(24)}, seed=3)
    img = build_image(src, stack.dir / "img.erofs")
    cold(img)
    m = stack.mount(img, "m", "file")
    mounts, cgroups = _OneMount(mount_info(m)), SysCgroups()
    key = (mounts.info.backing_dev, mounts.info.backing_ino)
    a, b = (stack.cgroup(f"{cgroup_prefix}/{n}") for n in "ab")
    walk = ("import os,sys\n"
            "for f in sorted(os.listdir(sys.argv[1])):\n"
            "    open(os.path.join(sys.argv[1], f), 'rb').read()\n")
    a.run([sys.executable, "-S", "-c", walk, m.path("d")])
    reader = ImageCacheReader()
    first = reader.read(mounts, cgroups, {m.dev: 1})[key]
    assert sum(1 for cg in first.values() if cg == a.id) > 1000    # (the mount read a few)
    assert reader.read(mounts, cgroups, {m.dev: 2})[key] is first     # nothing moved
    # half of the image's pages out, its files' own pages out, read again by b
    size = os.path.getsize(img)
    fd = os.open(img, os.O_RDONLY)
    os.posix_fadvise(fd, size // 4, size // 2, os.POSIX_FADV_DONTNEED)
    os.close(fd)
    for f in sorted(os.listdir(m.path("d"))):
        drop_file_cache(m.path("d/" + f))
    b.run([sys.executable, "-S", "-c", walk, m.path("d")])
    moved = reader.read(mounts, cgroups, {m.dev: 3})[key]
    assert moved == ImageCacheReader().read(mounts, cgroups, {m.dev: 3})[key]
    assert {a.id, b.id} <= set(moved.values())
    a_memcg = _memcg_ino(a)
    assert a_memcg in set(pagecache.page_owners(str(img)).values())
    a.remove()          # its pages reported as its parent's once its memcg is offline
    import time
    for _ in range(100):
        if a_memcg not in set(pagecache.page_owners(str(img)).values()):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("kpagecgroup still names the removed cgroup's memcg after 5 s")
    gone = reader.read(mounts, cgroups, {m.dev: 4})[key]
    assert gone == ImageCacheReader().read(mounts, cgroups, {m.dev: 4})[key]
    assert a.id not in set(gone.values()) and b.id in set(gone.values())


# Each page dropped and read again at once by the same process, on one CPU:
# the freed page goes to that CPU's free list, which hands out the last page
# freed first, so the page often comes back at the same PFN, charged to the
# reader's cgroup this time.
_REREAD_ON_CPU0 = ("import os,sys\n"
                   "os.sched_setaffinity(0, {0})\n"
                   "fd = os.open(sys.argv[1], os.O_RDONLY)\n"
                   "os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)\n"
                   "for p in range(int(sys.argv[2]), int(sys.argv[3])):\n"
                   "    os.posix_fadvise(fd, p * %d, %d, os.POSIX_FADV_DONTNEED)\n"
                   "    os.pread(fd, 1, p * %d)\n" % (PS, PS, PS))


def test_owners_since_names_a_page_read_again_at_the_same_pfn(stack, cgroup_prefix):
    """A page evicted and read again by another cgroup can get the same PFN
    back: page_owners_since must still name its new owner (a PFN that did
    not move is no proof the page was not replaced)."""
    path = _cold_file(stack.dir / "same-pfn.bin", 256)
    a, b = (stack.cgroup(f"{cgroup_prefix}/{n}") for n in "ab")
    a.run([sys.executable, "-S", "-c", _READ, str(path), "0-256"])
    before = pagecache.page_owners_since(str(path), None)
    assert set(before.owners().values()) == {_memcg_ino(a)}
    b.run([sys.executable, "-S", "-c", _REREAD_ON_CPU0, str(path), "128", "256"])
    fresh = pagecache.page_owners_since(str(path), None)
    same_pfn = [p for p in range(128, 256) if fresh.pfns[p] == before.pfns[p]]
    assert same_pfn, "no page came back at its PFN: the case is not exercised"
    owners = fresh.owners()
    assert [owners[p] for p in range(256)] == [_memcg_ino(a)] * 128 + [_memcg_ino(b)] * 128
    assert pagecache.page_owners_since(str(path), before).owners() == fresh.owners()


def test_demo_readers_bring_evicted_pages_back_to_their_container(stack, cgroup_prefix):
    """The demo's containers keep using their files (DemoScenario.keep_reading):
    a file's pages the kernel evicted come back, charged to the container
    that reads it, and the readers stop when told."""
    import threading
    import time
    from erofs_top.workload import DEMO_FILES, DemoScenario, drop_file_cache
    scen = DemoScenario(stack, cgroup_prefix)
    lib = scen.mount_a.path("usr/lib/libdemo.so.1")
    pages = DEMO_FILES["usr/lib/libdemo.so.1"] // PS
    # the whole library cached first; read again if a page went meanwhile (once,
    # with the host's two cores overloaded, one 128 KiB folio of it was not
    # cached right after the read: 1,504 of 1,536 pages, no reclaim counted)
    for _ in range(3):
        scen.read_all()
        if pagecache.file_resident_pages(lib) == pages:
            break
    assert pagecache.file_resident_pages(lib) == pages
    stop = threading.Event()
    readers = scen.keep_reading(stop, every_s=0.2)
    try:
        drop_file_cache(lib)
        assert pagecache.file_resident_pages(lib) < pages
        for _ in range(100):
            if pagecache.file_resident_pages(lib) == pages:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the demo's readers did not read the evicted library again in 10 s")
        assert set(pagecache.page_owners(lib).values()) == {_memcg_ino(scen.ctr_a)}
    finally:
        stop.set()
        readers.join(30)
    assert not readers.is_alive()
