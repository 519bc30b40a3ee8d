"""ELF build-id and "which sections do the resident pages fall in" for a file.

The Model's File has a path and resident bytes, not page indices, so the
Files view asks the page cache itself: ``pagecache.resident_pages`` (mincore on a
mapping, which faults nothing in) gives the resident page indices, and
pyelftools gives the section ranges.  Only done for the rows on screen and
cached per (path, size, resident bytes).

Cost to be honest about: reading the ELF and section headers reads a few
pages of the file, which may bring them into the page cache (charged to
erofs-top's cgroup); usually page 0 is resident already, the section header
table at the end of the file often is not.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

from .. import pagecache
from ..units import fmt_bytes

DEBUG = "debug"
OUTSIDE = "(no section)"


@dataclass
class ElfInfo:
    build_id: str = ""                  # hex, "" when the file has none
    sections: list[tuple[str, int]] = field(default_factory=list)  # (name, resident bytes), largest first
    resident_bytes: int = 0
    error: str = ""                     # "not ELF", "unreadable: ..."

    @property
    def is_elf(self) -> bool:
        return not self.error

    def summary(self, n: int = 3) -> str:
        if self.error:
            return "-"
        parts = [f"{name} {fmt_bytes(b)}" for name, b in self.sections[:n] if b]
        return " ".join(parts) if parts else "none resident"


def _section_group(name: str) -> str:
    return DEBUG if name.startswith((".debug", ".zdebug")) else name


def section_ranges(path: str) -> tuple[str, list[tuple[int, int, str]]]:
    """(build id hex, [(file offset, end, section name)]) of an ELF file."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    with open(path, "rb") as f:
        if f.read(4) != b"\x7fELF":
            raise ValueError("not ELF")
        f.seek(0)
        try:
            elf = ELFFile(f)
            ranges = []
            build_id = ""
            for sec in elf.iter_sections():
                if sec["sh_type"] == "SHT_NOBITS" or sec["sh_size"] == 0:
                    continue
                off = sec["sh_offset"]
                ranges.append((off, off + sec["sh_size"], _section_group(sec.name)))
                if sec["sh_type"] == "SHT_NOTE" and not build_id:
                    for note in sec.iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID":
                            build_id = note["n_desc"]
                            break
        except (ELFError, KeyError, ValueError) as exc:
            raise ValueError(f"bad ELF: {exc}") from None
    ranges.sort()
    return build_id, ranges


def split_pages(pages: list[int], page_size: int,
                ranges: list[tuple[int, int, str]]) -> dict[str, int]:
    """Resident bytes per section: each page's bytes go to the sections it overlaps.

    pages ascending, ranges sorted by offset and (as linkers lay them out) not
    overlapping: one sweep over both.
    """
    out: dict[str, int] = {}
    j = 0
    n = len(ranges)
    for p in pages:
        lo, hi = p * page_size, (p + 1) * page_size
        while j < n and ranges[j][1] <= lo:
            j += 1
        covered = 0
        k = j
        while k < n and ranges[k][0] < hi:
            s, e, name = ranges[k]
            overlap = min(e, hi) - max(s, lo)
            if overlap > 0:
                out[name] = out.get(name, 0) + overlap
                covered += overlap
            k += 1
        if covered < page_size:
            out[OUTSIDE] = out.get(OUTSIDE, 0) + page_size - covered
    return out


def elf_info(path: str, page_size: int | None = None,
             ranges_cache: dict | None = None) -> ElfInfo:
    """Build-id and resident bytes per section of the file at path (never raises).

    ranges_cache: (path, size, mtime) -> (build id, ranges) so the ELF headers are
    parsed once per file; only the residency (mincore) is read again."""
    page_size = page_size or os.sysconf("SC_PAGE_SIZE")
    if not path:
        return ElfInfo(error="no path")
    try:
        st = os.stat(path)
        key = (path, st.st_size, st.st_mtime_ns)
        cached = ranges_cache.get(key) if ranges_cache is not None else None
        if cached is None:
            cached = section_ranges(path)
            if ranges_cache is not None:
                if len(ranges_cache) >= 256:
                    ranges_cache.pop(next(iter(ranges_cache)))
                ranges_cache[key] = cached
        build_id, ranges = cached
    except ValueError as exc:
        return ElfInfo(error=str(exc))
    except OSError as exc:
        return ElfInfo(error=f"unreadable: {exc.strerror or exc}")
    try:
        pages = pagecache.resident_pages(path)
    except OSError as exc:
        return ElfInfo(build_id=build_id, error=f"mincore failed: {exc.strerror or exc}")
    split = split_pages(pages, page_size, ranges)
    size = st.st_size
    # The last page is partial: do not count bytes past the end of the file.
    if pages and (pages[-1] + 1) * page_size > size and OUTSIDE in split:
        split[OUTSIDE] = max(0, split[OUTSIDE] - ((pages[-1] + 1) * page_size - size))
        if not split[OUTSIDE]:
            del split[OUTSIDE]
    sections = sorted(split.items(), key=lambda kv: (-kv[1], kv[0]))
    return ElfInfo(build_id=build_id, sections=sections,
                   resident_bytes=len(pages) * page_size)


class ElfCache:
    """ElfInfo per (path, size, resident bytes): the split is recomputed when the
    residency changes; the section table is parsed once per file."""

    def __init__(self, max_entries: int = 512):
        self.max_entries = max_entries
        self._cache: dict[tuple, ElfInfo] = {}
        self._ranges: dict[tuple, tuple] = {}       # parsed section tables, per file
        self._lock = threading.Lock()

    @staticmethod
    def key(path: str, size: int, resident_bytes: int) -> tuple:
        return (path, size, resident_bytes)

    def get(self, path: str, size: int, resident_bytes: int) -> ElfInfo | None:
        return self._cache.get(self.key(path, size, resident_bytes))

    def compute(self, path: str, size: int, resident_bytes: int) -> ElfInfo:
        # Several worker threads may compute at once: one at a time (a few ms each).
        with self._lock:
            info = elf_info(path, ranges_cache=self._ranges)
            if len(self._cache) >= self.max_entries:
                self._cache.pop(next(iter(self._cache)))
            self._cache[self.key(path, size, resident_bytes)] = info
        return info
