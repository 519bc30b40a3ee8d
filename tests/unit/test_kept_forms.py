"""The compact forms the aggregator keeps per file: unions of the usual pages
shared across files (entries.shared_union), seeded masks only in a
SeededEntry (Entry has no slot for them), the source's file of chunk 0
alone as its owners dict (ChunkState.packed).  The churn tests check that the
sums stay exact; these check the forms themselves, and that a difference
they hide is still seen (the recheck compares seeded masks)."""
from __future__ import annotations

import gc
import random
import sys

import pytest

from erofs_top import entries
from erofs_top.aggregate import _derived
from erofs_top.entries import NONE, Entry, SeededEntry, chunk_entry, shared_union
from erofs_top.kernel.maps import ChunkState, owners_of
from erofs_top.readings import PageChunk

FULL = (1 << 64) - 1


def _file(dev: int, ino: int, masks: dict[int, int], cg: int = 7, second: int | None = None,
          seeded: int = 0) -> list[PageChunk]:
    """PageChunks of a file: chunk -> mask of cgroup cg (half of the last
    chunk's pages to ``second``, when given)."""
    out = []
    last = max(masks)
    for c, m in masks.items():
        owners = {cg: m}
        if second is not None and c == last:
            owners = {cg: m & 0xFFFFFFFF, second: m & ~0xFFFFFFFF}
        out.append(PageChunk(dev, ino, c, {k: v for k, v in owners.items() if v},
                             seeded if c == last else 0))
    return out


def _fresh(n: int) -> int:
    """A mask int object of value n made anew (not one a constant shares)."""
    return int(str(n))


@pytest.mark.parametrize("second", [None, 9])
def test_equal_usual_unions_are_one_dict(second):
    entries._UNIONS.clear()
    # full chunks and a tail's first pages: files of one cgroup, or with a
    # second cgroup's pages in the tail (the two-owner path)
    a = chunk_entry(1, 10, _file(1, 10, {0: FULL, 1: _fresh((1 << 5) - 1)}, second=second))
    b = chunk_entry(2, 11, _file(2, 11, {0: _fresh(FULL), 1: (1 << 5) - 1}, cg=8, second=second))
    assert a.union == {0: FULL, 1: 31} and a.union is b.union
    # the same masks at other chunks: another union
    c = chunk_entry(1, 12, _file(1, 12, {1: FULL, 2: 31}, second=second))
    assert c.union == {1: FULL, 2: 31} and c.union is not a.union
    # any other pages (not 0..n-1 of a chunk): each file its own
    d = chunk_entry(1, 13, _file(1, 13, {0: FULL, 1: 0b110}, second=second))
    e = chunk_entry(1, 14, _file(1, 14, {0: FULL, 1: 0b110}, second=second))
    assert d.union == e.union == {0: FULL, 1: 6} and d.union is not e.union
    # an entry's union is never the table's dict of another value
    for x in (a, b, c, d, e):
        assert x.union == {pc.chunk: _or(pc.owners.values()) for pc in
                           _file(x.dev, x.ino, dict(x.union), second=second)}


def _or(ms) -> int:
    u = 0
    for m in ms:
        u |= m
    return u


def test_shared_union_table_starts_anew(monkeypatch):
    entries._UNIONS.clear()
    monkeypatch.setattr(entries, "UNIONS_MAX", 3)
    unions = [shared_union({0: (1 << n) - 1}) for n in range(1, 5)]    # 4 > UNIONS_MAX
    assert len(entries._UNIONS) == 1        # cleared at the 4th, which is then kept
    assert shared_union({0: 15}) is unions[3]
    assert shared_union({0: 1}) is not unions[0] and shared_union({0: 1}) == unions[0]
    big = {c: FULL for c in range(entries.UNION_CHUNKS_MAX + 1)}
    assert shared_union(big) is big and shared_union(dict(big)) is not big


def test_seeded_masks_only_in_a_seeded_entry():
    plain = chunk_entry(1, 10, _file(1, 10, {0: FULL, 1: 31}, second=9), keep=False)
    seeded = chunk_entry(1, 10, _file(1, 10, {0: FULL, 1: 31}, second=9, seeded=0b11), keep=False)
    assert type(plain) is Entry and plain.seeded is NONE
    assert type(seeded) is SeededEntry and seeded.seeded == {1: 0b11}
    assert sys.getsizeof(plain) < sys.getsizeof(seeded)
    with pytest.raises(AttributeError):
        plain.seeded = {1: 1}           # a class value: no slot in the usual entry
    # the recheck's comparison sees seeded pages that came or went
    assert _derived(plain) != _derived(seeded)
    again = chunk_entry(1, 10, _file(1, 10, {0: FULL, 1: 31}, second=9, seeded=0b11))
    assert _derived(again) == _derived(seeded)
    other = chunk_entry(1, 10, _file(1, 10, {0: FULL, 1: 31}, second=9, seeded=0b10))
    assert _derived(other) != _derived(seeded)


def test_random_files_keep_their_pages():
    """Many random files through chunk_entry: each entry's union is its own
    pages, whatever it shares (a table keyed wrongly would hand one file
    another's)."""
    rng = random.Random(5)
    entries._UNIONS.clear()
    made = []
    for i in range(3000):
        masks = {c: rng.choice([FULL, (1 << rng.randint(1, 63)) - 1, rng.getrandbits(64) | 1])
                 for c in rng.sample(range(5), rng.randint(1, 3))}
        pcs = _file(1, 100 + i, masks, cg=rng.choice([7, 8]),
                    second=rng.choice([None, 9]), seeded=rng.choice([0, 0, 0, 1]))
        made.append((chunk_entry(1, 100 + i, pcs), masks))
    assert len({id(e.union) for e, _ in made}) < len(made)         # some are shared
    for e, masks in made:
        assert e.union == masks


def _chunk_value(rng) -> tuple:
    """A chunks map value: one or two owners, seeded pages now and then, or none."""
    cgs = (rng.choice([101, 102]), rng.choice([0, 103]), 0, 0)
    bits = (rng.choice([FULL, 31, rng.getrandbits(64), 0]), rng.getrandbits(64) if cgs[1] else 0, 0, 0)
    return cgs + bits + (0, rng.choice([0, 0, 0, 0, 1, FULL]))


@pytest.mark.parametrize("seed", range(6))
def test_a_file_of_chunk_0_alone_is_kept_as_its_owners_dict(seed):
    """ChunkState.packed keeps a file whose one entry is chunk 0, nothing
    seeded, as that entry's owners dict (no tuple); through full reads and
    patches of the keys marked changed (one per file: _one_change; more:
    _file_changes), files of chunk 0 alone become files of more chunks,
    seeded ones and back; every file's PageChunks and the entry count stay
    those of the map."""
    rng = random.Random(seed)
    chunks: dict = {}
    cs = ChunkState()
    forms = set()
    for step in range(60):
        dirty = set()
        for _ in range(rng.randrange(1, 12)):
            key = (7 << 20, rng.randrange(12), rng.choice([0, 0, 0, 1, 2]))
            if rng.random() < 0.2:
                chunks.pop(key, None)
            else:
                chunks[key] = _chunk_value(rng)
            dirty.add(key)
        if step % 7 == 0:
            cs.update(list(chunks.items()))
        else:
            cs.patch([(k, chunks[k]) for k in dirty if k in chunks], [k for k in dirty if k not in chunks])
        cs.held_delta = {}
        want: dict = {}
        for (dev, ino, c), v in chunks.items():
            owners = owners_of(v)
            if owners:
                want.setdefault((dev, ino), {})[c] = (owners, v[-1])
        assert cs.packed.keys() == want.keys()
        for fk, ents in want.items():
            t = cs.packed[fk]
            alone = list(ents) == [0] and not ents[0][1]
            assert (type(t) is dict) is alone, (fk, t, ents)
            forms.add((alone, len(ents)))
            got = {pc.chunk: (pc.owners, pc.seeded_mask) for pc in cs.by_file[fk]}
            assert got == ents
        assert cs.n_chunks == sum(map(len, want.values())) == len(cs.entries) - len(cs.empty)
        assert sorted(cs.entries) == sorted(k for k, v in chunks.items())
    assert {(True, 1), (False, 1), (False, 2)} <= forms, "the test saw little"


def test_an_image_files_key_is_96_bits_its_content_id_the_digests():
    """Copies of one file (nid) of one image mounted twice get one "img:"
    key (size_group_keys, no hashing of the file): IMG_KEY_HEX (24) hex
    digits of sha256("image:nid"), a str kept in 80 B (128 with all 64);
    content_id (what the rows show) is the full digest's first 16 digits,
    as before; another nid or image gives another key."""
    import hashlib

    from erofs_top.readings import kdev
    from erofs_top.resolve.base import AOPS_BLOCK, FileInfo, ImageInfo, MountInfo
    from erofs_top.rows import content_id

    def group(image_id: str, nid: int) -> list[Entry]:
        img = ImageInfo(uuid="0-0", volume_name="", feature_compat=0, feature_incompat=0,
                        block_size=4096, image_id=image_id, ishare_xattrs=False,
                        compressed=False)
        out = []
        for n in range(2):
            dev = kdev(7, 40 + n)
            m = MountInfo(dev=dev, dev_str=f"7:{40 + n}", mountpoint=f"/m{n}",
                          source="/img/x", backing="loop", image=img)
            out.append(Entry(dev, nid, {0: {7: 1}}, union={0: 1}, mount=m,
                             info=FileInfo(nid, f"/m{n}/f", 4096, True, AOPS_BLOCK)))
        return out

    g = group("img-x", 5)
    pending, key = entries.size_group_keys(g, None)
    full = hashlib.sha256(b"img-x:5").hexdigest()
    assert pending == 0 and key == "img:" + full[:24] and len(key) == 4 + entries.IMG_KEY_HEX
    assert all(e.content_key is key for e in g)
    assert sys.getsizeof(key) <= 80 < sys.getsizeof("img:" + full)
    assert content_id(key) == "img:" + full[:16] == content_id("img:" + full)
    others = {entries.size_group_keys(group(i, n), None)[1] for i, n in
              [("img-x", 6), ("img-y", 5), ("img-x", 50)]}
    assert len(others) == 3 and key not in others



def test_an_entry_is_12_slots_its_owner_kept_in_chunks():
    """Entry keeps no owner or input slot (12 slots: 128 B a file with
    pymalloc's rounding, not 144): a file of one owner keeps the owner's
    int in ``chunks``; ``owner`` reads it, owners_by_chunk() makes the
    mapping.  An entry that keeps its input (keep: a source of kept lists)
    is an InputEntry or SeededInputEntry; a SharedEntry keeps its own."""
    from erofs_top.entries import InputEntry, SeededInputEntry, SharedEntry
    assert sys.getsizeof(Entry(1, 2)) == 128 and "owner" not in Entry.__slots__
    assert "input" not in Entry.__slots__ and "input" in SharedEntry.__slots__
    one_pcs = _file(1, 2, {0: 0b1011, 3: 1 << 63}, cg=5)
    one = chunk_entry(1, 2, one_pcs, keep=False)
    assert type(one) is Entry and one.chunks == 5 and one.owner == 5 and one.input is None
    assert entries.owners_by_chunk(one) == {0: {5: 0b1011}, 3: {5: 1 << 63}}
    with pytest.raises(AttributeError):
        one.input = one_pcs             # a class value: no slot in the usual entry
    kept = chunk_entry(1, 2, one_pcs)
    assert type(kept) is InputEntry and kept.input is one_pcs and kept.owner == 5
    assert sys.getsizeof(kept) == 136          # 13 slots (144 B with the rounding: as before)
    two_pcs = _file(1, 2, {0: FULL}, cg=5, second=6)
    two = chunk_entry(1, 2, two_pcs, keep=False)
    assert type(two) is Entry
    assert two.owner is None and two.chunks == {0: {5: 0xFFFFFFFF, 6: FULL & ~0xFFFFFFFF}}
    assert chunk_entry(1, 2, two_pcs).input is two_pcs
    seeded_pcs = _file(1, 3, {0: 0b11}, cg=5, seeded=0b1)
    seeded = chunk_entry(1, 3, seeded_pcs, keep=False)
    assert type(seeded) is SeededEntry and seeded.owner == 5 and seeded.input is None
    s_kept = chunk_entry(1, 3, seeded_pcs)
    assert type(s_kept) is SeededInputEntry and s_kept.input is seeded_pcs
    assert _derived(s_kept) == _derived(seeded) and _derived(kept) == _derived(one)
    one.owner = None                        # the setter: no owner, no mapping either
    assert one.chunks is None and one.owner is None
    two.owner = 9
    assert two.chunks == 9


@pytest.mark.parametrize("seed", range(6))
def test_an_aggregator_keeps_inputs_only_for_a_source_that_keeps_its_lists(seed):
    """A source that keeps its lists (the churn world's): every live chunk
    entry keeps the file's PageChunks of the last read (in any order); a
    lean source (lists built on access): none (Entry or SeededEntry)."""
    from test_refresh_churn import Node, _refresh

    from erofs_top.aggregate import Aggregator
    from erofs_top.entries import InputEntry, SeededInputEntry

    def files_of(r) -> dict:
        files: dict = {}
        for pc in r.chunks:
            files.setdefault((pc.dev, pc.ino), []).append(pc)
        return files

    rng = random.Random(seed)
    by_chunk = entries._chunk_of
    for hint in (False, True):
        node = Node(rng, hint)
        agg = Aggregator(recheck_slices=3)
        for step in range(25):
            node.churn(rng.choice([1, 5, 30]))
            r = node.readings(float(step))
            _refresh(agg, node, r, 10)
            files = files_of(r)
            chunk = {k: e for k, e in agg.entries.items() if k[0] != "shared"}
            assert all(type(e) in (InputEntry, SeededInputEntry) for e in chunk.values())
            assert {k: sorted(e.input, key=by_chunk) for k, e in chunk.items()} == \
                {k: sorted(files[k], key=by_chunk) for k in chunk}, step

    class Lean(dict):
        built_on_access = True
    for step in range(3):               # the same aggregator, a lean source now
        node.churn(30)
        r = node.readings(100.0 + step)
        r.chunks_by_file, r.changed_files = Lean(files_of(r)), None
        _refresh(agg, node, r, 10)
    fresh = Aggregator(recheck_slices=3)
    _refresh(fresh, node, r, 10)
    for a in (agg, fresh):
        chunk = [e for k, e in a.entries.items() if k[0] != "shared"]
        assert chunk and all(e.input is None for e in chunk)
    assert all(type(e) in (Entry, SeededEntry) for k, e in fresh.entries.items()
               if k[0] != "shared")


@pytest.mark.parametrize("seed", range(4))
def test_equal_owner_contributions_are_one_object(seed):
    """The usual file's OwnerContribution keeps no file (2 slots and a weak
    reference's, 56 B): after the full pass and after every kept refresh
    (rows renewed: a file takes another object, none is changed in place),
    the live ones of one mount object and row are one object, fewer
    objects than files, each the row of its file's pages; the table of them
    holds those in use only; the ranking reads the file from the key."""
    from test_refresh_churn import Node, _refresh
    from test_steady_paths import _regrow

    from erofs_top import attribution
    from erofs_top.aggregate import Aggregator
    from erofs_top.attribution import OwnerContribution, owner_contribution, rank_of

    attribution._OWNERS.clear()         # (started anew: no object of another test's)
    rng = random.Random(seed)
    node = Node(rng, maps=False)
    agg = Aggregator(recheck_slices=0)
    shared = 0          # refreshes with fewer objects than files
    for step in range(30):
        node.churn(rng.choice([1, 5, 20]))
        for _ in range(rng.choice([0, 5, 20])):
            _regrow(node)
        for key, pc in node.chunks.items():     # few pages a chunk: equal rows
            if len(pc.owners) == 1:
                (cg, mask), = pc.owners.items()
                node.chunks[key] = PageChunk(*key, {cg: mask & 3 or 1}, pc.seeded_mask)
        _refresh(agg, node, node.readings(float(step)), 10)
        owned = {k: e for k, e in agg.entries.items() if type(e.contrib) is OwnerContribution}
        by_row: dict = {}
        for k, e in owned.items():
            c = e.contrib
            pages = sum(bin(m).count("1") for m in e.union.values())
            assert c.cg_sums == (e.owner, pages, pages if e.dup else 0, 0), (step, k)
            assert c.mount is e.mount
            by_row.setdefault((id(c.mount), c.cg_sums), set()).add(id(c))
        assert all(len(ids) == 1 for ids in by_row.values()), step
        gc.collect()
        assert len(attribution._OWNERS) == len(by_row), step
        shared += len(by_row) < len(owned)
    assert shared > 10, shared
    c = next(iter(owned.values())).contrib
    assert sys.getsizeof(c) == 56 and not hasattr(c, "dev")
    assert owner_contribution(c.mount, *c.cg_sums[:3]) is c
    assert rank_of((5, 9), c) == (-c.cg_sums[1], -c.cg_sums[2], 5, 9, 0)


def test_a_contribution_is_4_slots_seeded_and_the_file_only_where_needed():
    """A file's Contribution keeps its sums and mount (64 B): its seeded
    pages only when it has seeded masks (SeededContribution), its dev, ino
    only when shared (SharedContribution: its key is its mapping)."""
    from erofs_top.attribution import (Contribution, SeededContribution, SharedContribution,
                                       rank_of)
    from erofs_top.entries import SharedEntry

    two = chunk_entry(5, 9, _file(5, 9, {0: 0b111 | 1 << 40}, cg=7, second=8), keep=False)
    c = Contribution(two)
    assert type(c) is Contribution and sys.getsizeof(c) == 64
    assert (c.resident, c.dup, c.seeded) == (4, 0, 0) and not hasattr(c, "dev")
    assert sorted(c.per_cg()) == [(7, 3, 0, 0), (8, 1, 0, 0)]
    assert rank_of((5, 9), c) == (-4, 0, 5, 9, 0)
    seeded = chunk_entry(5, 10, _file(5, 10, {0: 0b111}, seeded=0b110), keep=False)
    s = Contribution(seeded)
    assert type(s) is SeededContribution and (s.resident, s.seeded) == (3, 2)
    sh = SharedEntry(5, 11, shared_mapping=77)
    sh.chunks, sh.union = {0: {7: 0b11}}, {0: 0b11}
    shc = Contribution(sh)
    assert type(shc) is SharedContribution and shc.seeded == 0
    assert rank_of(("shared", 77), shc) == (-2, 0, 5, 11, 77)
