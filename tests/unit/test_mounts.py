"""mountinfo parsing and SysMounts over fixture mountinfo + sysfs trees."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from erofs_top.readings import kdev, kdev_from_st_dev
from erofs_top.resolve.mounts import (SysMounts, parse_mountinfo, parse_mountinfo_line,
                                      pick_per_superblock, unescape)

MI = """\
22 1 253:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
47 22 0:40 / /var/tmp/a\\040b ro,relatime shared:20 master:3 - erofs /var/tmp/img\\040one.erofs ro,user_xattr,acl,cache_strategy=readaround,inode_share
48 22 7:2 / /mnt/loop ro,relatime - erofs /dev/erofs-top-fixture-loop2 ro,user_xattr,directio
49 22 7:2 /sub /mnt/bind ro,relatime - erofs /dev/erofs-top-fixture-loop2 ro,user_xattr,directio
50 22 259:1 / /mnt/nvme ro - erofs /dev/nvme0n1p1 ro
garbage line
51 22 0:41 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
"""


def test_unescape():
    assert unescape(r"a\040b\011c\012d\134e") == "a b\tc\nd\\e"
    assert unescape("plain") == "plain"
    assert unescape(r"\134040") == "\\040"      # an escaped backslash stays one


def test_parse_mountinfo_fields():
    es = parse_mountinfo(MI, "erofs")
    assert [e.mount_id for e in es] == [47, 48, 49, 50]
    a = es[0]
    assert (a.major, a.minor, a.dev) == (0, 40, kdev(0, 40))
    assert a.mountpoint == "/var/tmp/a b" and a.source == "/var/tmp/img one.erofs"
    assert a.optional == ["shared:20", "master:3"]
    assert "inode_share" in a.super_options and "ro" in a.mount_options
    assert es[1].dev == (7 << 20) | 2 and "directio" in es[1].super_options
    assert es[2].root == "/sub"
    assert len(parse_mountinfo(MI)) == 6       # all types, garbage skipped


def test_only_the_fstype_after_the_separator_makes_an_erofs_line():
    # the kernel escapes a space in every field (\\040): " - erofs " is only
    # ever the separator and the fstype, so other lines are not parsed
    text = MI + (
        "52 22 0:42 / /run/a\\040-\\040erofs\\040b rw - tmpfs tmpfs rw\n"
        "53 22 0:43 / /run/x rw - tmpfs a\\040-\\040erofs\\040src rw\n"
        "54 22 0:44 / /run/y\\040-\\040tmpfs\\040z ro shared:9 - erofs /img\\040-\\040erofs ro\n"
        "55 22 0:45 / /run/f ro - fuse.erofs erofsfuse ro\n")
    es = parse_mountinfo(text, "erofs")
    assert [e.mount_id for e in es] == [47, 48, 49, 50, 54]
    assert (es[-1].mountpoint, es[-1].source) == ("/run/y - tmpfs z", "/img - erofs")
    assert [e.mount_id for e in parse_mountinfo(text, "tmpfs")] == [52, 53]
    assert len(parse_mountinfo(text)) == 10


@pytest.mark.parametrize("line", ["", "1 2 3", "1 2 x:y / / rw - erofs src opts",
                                  "a b 0:1 / / rw - erofs s o", "1 2 0:1 / / rw erofs"])
def test_malformed_lines_are_none(line):
    assert parse_mountinfo_line(line) is None


def test_one_entry_per_superblock_prefers_fs_root():
    es = parse_mountinfo(MI.replace("48 22 7:2 / /mnt/loop", "48 22 7:2 /x /mnt/loop"), "erofs")
    chosen = {e.dev: e for e in pick_per_superblock(es)}
    assert chosen[kdev(7, 2)].mount_id == 48          # first when none is the fs root
    es = parse_mountinfo(MI, "erofs")
    es = [es[2], es[1], es[0], es[3]]                 # bind mount first
    chosen = {e.dev: e for e in pick_per_superblock(es)}
    assert chosen[kdev(7, 2)].mountpoint == "/mnt/loop"


@pytest.fixture
def image(tmp_path):
    if not shutil.which("mkfs.erofs"):
        pytest.skip("mkfs.erofs missing")
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(os.urandom(10000))
    img = tmp_path / "img.erofs"
    subprocess.run(["mkfs.erofs", "--quiet", "-U01234567-89ab-cdef-0123-456789abcdef",
                    str(img), str(src)], check=True)
    return img


def _sysfs(tmp_path, backing: str | None):
    sysr = tmp_path / "sys"
    (sysr / "dev" / "block").mkdir(parents=True, exist_ok=True)
    if backing is not None:
        d = sysr / "dev" / "block" / "7:2" / "loop"
        d.mkdir(parents=True)
        (d / "backing_file").write_text(backing + "\n")
    return str(sysr)


def test_sysmounts_backing_modes_and_identity(tmp_path, image):
    mi = tmp_path / "mountinfo"
    mi.write_text(MI.replace("/var/tmp/img\\040one.erofs", str(image)))
    m = SysMounts(str(mi), sys_root=_sysfs(tmp_path, str(image)), dev_root=str(tmp_path / "dev"))
    added, removed = m.refresh()
    assert removed == [] and len(added) == 3           # bind mount of 7:2 listed once
    st = os.stat(image)
    f = m.by_dev(kdev(0, 40))
    assert f.backing == "file" and f.backing_file == str(image) and f.dev_str == "0:40"
    assert (f.backing_dev, f.backing_ino) == (kdev_from_st_dev(st.st_dev), st.st_ino)
    assert f.inode_share and not f.directio and f.mountpoint == "/var/tmp/a b"
    assert f.image.uuid == "01234567-89ab-cdef-0123-456789abcdef"
    lo = m.by_dev(kdev(7, 2))
    assert lo.backing == "loop" and lo.backing_file == str(image) and lo.directio
    assert lo.backing_ino == st.st_ino                  # no /dev/loop2 here: stat fallback
    assert lo.image_id == f.image_id                    # same image, two mounts
    nv = m.by_dev(kdev(259, 1))
    assert nv.backing == "block" and nv.backing_file == "" and nv.image is None
    assert any("superblock unreadable" in n for n in m.notes[kdev(259, 1)])


def test_sysmounts_refresh_added_removed(tmp_path, image):
    mi = tmp_path / "mountinfo"
    line = f"47 22 0:40 / /m ro - erofs {image} ro\n"
    mi.write_text(line)
    m = SysMounts(str(mi), sys_root=_sysfs(tmp_path, None))
    a, r = m.refresh()
    assert len(a) == 1 and r == []
    assert m.refresh() == ([], [])                       # unchanged text: nothing to do
    mi.write_text(line.replace("/m ro", "/moved ro") + "1 1 8:0 / / rw - ext4 /dev/sda rw\n")
    assert m.refresh() == ([], [])                       # same superblock, moved
    assert m.by_dev(kdev(0, 40)).mountpoint == "/moved"
    other = tmp_path / "other.erofs"
    shutil.copy(image, other)
    mi.write_text(f"47 22 0:40 / /m ro - erofs {other} ro\n")    # anon dev reused
    a, r = m.refresh()
    assert [x.source for x in a] == [str(other)] and [x.source for x in r] == [str(image)]
    mi.write_text("")
    a, r = m.refresh()
    assert a == [] and len(r) == 1 and m.mounts() == []


def test_sysmounts_missing_things_are_notes_not_errors(tmp_path):
    mi = tmp_path / "mountinfo"
    mi.write_text("47 22 0:40 / /m ro - erofs /nonexistent/img ro\n"
                  "48 22 7:2 / /l ro - erofs /dev/erofs-top-fixture-loop2 ro\n")
    m = SysMounts(str(mi), sys_root=_sysfs(tmp_path, "/gone/img.erofs (deleted)"))
    a, _ = m.refresh()
    assert {x.backing for x in a} == {"file", "loop"}
    assert any("not visible" in n for n in m.notes[kdev(0, 40)])
    assert any("deleted" in n for n in m.notes[kdev(7, 2)])
    bad = SysMounts(str(tmp_path / "nope"))
    assert bad.refresh() == ([], []) and "nope" in bad.error


from hypothesis import given, strategies as st  # noqa: E402


def kernel_escape(s: str) -> str:
    """What the kernel's mangle() does to paths in mountinfo (seq_file escapes)."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in s)


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
def test_unescape_inverts_kernel_escape(path):
    assert unescape(kernel_escape(path)) == path


@given(st.text(max_size=200))
def test_any_line_parses_or_is_none(line):
    e = parse_mountinfo_line(line)
    assert e is None or isinstance(e.dev, int)
