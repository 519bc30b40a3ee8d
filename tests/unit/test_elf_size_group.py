"""entries.size_group_keys' build-id shortcut, on its own: among ELF files
alone, a file whose build-id no other member has is unique content and gets
no key (no digest read); with one file that is not ELF in the group, every
member is keyed by its digest (entries.elf_build_id_counts, which
aggregate._keys_stay shares)."""
from __future__ import annotations

from test_refresh_churn import _image, _mount

from erofs_top.entries import Entry, elf_build_id_counts, size_group_keys
from erofs_top.resolve.base import AOPS_FILEIO, FileInfo, StaticContent

SIZE = 40 * 4096


class BuildIds(StaticContent):
    """StaticContent with ELF build-ids: (dev, ino) -> build-id."""

    def __init__(self, build_ids, **kw):
        super().__init__(**kw)
        self.build_ids = build_ids

    def build_id(self, mount, ino):
        return self.build_ids.get((mount.dev, ino))


def _group(build_ids: list[str | None]):
    """One copy of a file per mount (three images), every one the same
    bytes, with the given build-ids (None: not an ELF file)."""
    mounts = [_mount(n, "file", _image(n, fingerprints=False)) for n in range(len(build_ids))]
    group, bids, content = [], {}, {}
    for m, bid in zip(mounts, build_ids):
        e = Entry(m.dev, 7)
        e.mount, e.info = m, FileInfo(7, f"{m.mountpoint}/f7", SIZE, True, AOPS_FILEIO)
        group.append(e)
        content[(m.dev, 7)] = "ab" * 32
        if bid:
            bids[(m.dev, 7)] = bid
    return group, BuildIds(bids, content=content)


def test_a_build_id_of_its_own_among_elf_files_gets_no_key():
    group, content = _group(["b1", "b1", "b2"])
    pending, key = size_group_keys(group, content)
    assert pending == 0 and key == ""          # not every member keyed alike
    assert [bool(e.content_key) for e in group] == [True, True, False]
    assert group[0].content_key == group[1].content_key == f"sha256:{'ab' * 32}:{SIZE}"


def test_a_file_that_is_not_elf_gets_every_member_keyed():
    group, content = _group(["b1", None, "b2"])
    pending, key = size_group_keys(group, content)
    assert key == f"sha256:{'ab' * 32}:{SIZE}" and pending == 0
    assert all(e.content_key == key for e in group)


def test_elf_build_id_counts():
    assert elf_build_id_counts(["b1", "b2", "b1"]) == {"b1": 2, "b2": 1}
    assert elf_build_id_counts(iter(["b1", None, "b2"])) is None
    assert elf_build_id_counts([]) == {}
