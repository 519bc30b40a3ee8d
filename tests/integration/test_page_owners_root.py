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


def test_page_owners_of_two_readers(stack, cgroup_prefix):
    path = stack.dir / "two-readers.bin"
    with open(path, "wb") as f:
        f.write(os.urandom(700 * PS))
        f.flush()
        os.fsync(f.fileno())
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
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
