"""Pure parts of the UI: shortening, header packing and warnings, charts, ELF split."""
import os
import sys

import pytest

from erofs_top.model import TIER_SNAPSHOT
from erofs_top.tui.common import chart, container_name, sparkline
from erofs_top.tui.elfinfo import OUTSIDE, ElfCache, elf_info, split_pages
from erofs_top.tui.header import pack, warnings
from erofs_top.tui.table import shorten

from tui_fixtures import model


@pytest.mark.parametrize("text, width, how, out", [
    ("short", 10, "end", "short"),
    ("abcdefghij", 5, "end", "abcd…"),
    ("abcdefghij", 5, "middle", "ab…ij"),
    ("/run/erofs-top-demo/ctr-a/usr/lib/libdemo.so.1", 20, "path", "/run/e…/libdemo.so.1"),
    ("abc", 1, "path", "…"),
])
def test_shorten(text, width, how, out):
    assert shorten(text, width, how) == out
    assert len(shorten(text, width, how)) <= width


def test_pack_never_splits_an_item_and_wraps_long_ones():
    lines = pack(["tier tracepoint", "every 2.0 s", "BPF cost 0.31 ms/s"], 30)
    assert lines == ["tier tracepoint  every 2.0 s", "BPF cost 0.31 ms/s"]
    long = "! " + "word " * 20
    lines = pack(["a", long.strip(), "b"], 24)
    assert lines[0] == "a" and lines[-1] == "b"
    assert all(len(line) <= 24 for line in lines)


def test_warnings_name_every_degraded_state():
    m = model(1, tier=TIER_SNAPSHOT)
    m.health.unresolved_cgroups = 3
    m.health.unresolved_mounts = 1
    m.health.update_failures = 12
    m.health.owner_overflow_pages = 5
    m.health.maps[0].entries = m.health.maps[0].capacity
    m.mounts[0].gone = True
    w = " | ".join(warnings(m, "refresh failed: x"))
    for phrase in ("refresh failed: x", "snapshot tier", "3 cgroup(s) unresolved",
                   "1 dev(s) match no mount", "map pages 100% full", "12 map updates refused",
                   "5 pages with too many owners", "mount went away"):
        assert phrase in w, phrase
    assert warnings(model(1)) == []


def test_sparkline_and_chart_scale_to_their_maximum():
    assert sparkline([0, 4, 8], 10) == "▁▅█"
    assert sparkline([1, 2, 3, 4], 2) == "▆█"           # the last samples only
    assert sparkline([0, 0], 5) == "▁▁"
    rows = chart([8, 4], 2, 2)
    assert rows == ["█ ", "██"]
    assert all(len(r) == 2 for r in chart([1], 2, 3))


def test_container_names():
    c = model(0).containers
    assert container_name(c[0]) == "/erofs-top-demo/ctr-a"
    assert container_name(c[2]) == "docker:0123456789ab"
    c[0].cgroup = "?"
    assert container_name(c[0]) == "cgroup #101 (unresolved)"
    c[1].pod_uid, c[1].container_id = "1234abcd-5678", "feedbeef" * 8
    assert container_name(c[1]) == "pod 1234abcd/feedbeeffeed"


def test_split_pages_gives_each_page_to_the_sections_it_overlaps():
    ranges = [(0, 100, ".a"), (100, 5000, ".text"), (5000, 9000, ".rodata")]
    split = split_pages([0, 1, 2], 4096, ranges)
    assert split == {".a": 100, ".text": 4900, ".rodata": 4000, OUTSIDE: 4096 - 808}
    assert sum(split.values()) == 3 * 4096
    assert split_pages([], 4096, ranges) == {}


def test_elf_info_on_a_real_elf_and_on_non_elf(tmp_path):
    exe = os.path.realpath(sys.executable)
    info = elf_info(exe)
    assert info.is_elf and not info.error
    names = [n for n, _ in info.sections]
    assert ".text" in names or info.resident_bytes == 0
    assert sum(b for _, b in info.sections) <= os.path.getsize(exe)
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    assert elf_info(str(text)).error == "not ELF"
    assert elf_info(str(tmp_path / "missing")).error.startswith("unreadable")
    bad = tmp_path / "bad.so"
    bad.write_bytes(b"\x7fELF" + b"\0" * 10)
    assert elf_info(str(bad)).error.startswith("bad ELF")


def test_elf_cache_parses_a_file_once_and_splits_per_residency():
    exe = os.path.realpath(sys.executable)
    size = os.path.getsize(exe)
    cache = ElfCache(max_entries=2)
    a = cache.compute(exe, size, 1)
    assert cache.get(exe, size, 1) is a
    assert cache.get(exe, size, 2) is None
    cache.compute(exe, size, 2)
    cache.compute(exe, size, 3)
    assert cache.get(exe, size, 1) is None                # bounded
    assert len(cache._ranges) == 1                        # one section table parse
