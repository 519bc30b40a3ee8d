"""An incremental refresh equals a refresh from scratch, after any churn.

Seeded random sequences of Readings (pages inserted and evicted, files
appearing and disappearing, cgroups vanishing, mounts unmounted and mounted
again, shared inodes changing, content identities arriving late, image-file
cache owners moving) go through ONE Aggregator, refresh after refresh; each
Model it returns must equal, as a whole, aggregate() (a fresh Aggregator) of
the same Readings with the same resolvers.  The resolvers are the fixture
ones of resolve/base.py; the page maps below stand in for dump.erofs output
(named fake: no image behind them)."""
from __future__ import annotations

import copy
import dataclasses
import random

import pytest

from erofs_top import large_groups
from erofs_top.aggregate import Aggregator, aggregate
from erofs_top.entries import duplicate_group_part
from erofs_top.readings import FileIO, PageChunk, Readings, SharedInode, kdev
from erofs_top.resolve.base import (AOPS_BLOCK, AOPS_COMPRESSED, AOPS_FILEIO, FileInfo,
                                    ImageInfo, MountInfo, StaticCgroups, StaticContent,
                                    StaticMounts)

PAGE = 4096
CGROUPS = [0] + list(range(1001, 1013))
FULL = (1 << 64) - 1


def _image(i, fingerprints):
    return ImageInfo(uuid=f"{i:08x}-0000", volume_name="", feature_compat=0,
                     feature_incompat=0, block_size=4096, image_id=f"img-{i}",
                     ishare_xattrs=fingerprints, compressed=False)


def _mount(n, backing, img):
    dev = kdev(0, 300 + n) if backing == "file" else kdev(7, n)
    return MountInfo(dev=dev, dev_str=f"{dev >> 20}:{dev & 0xFFFFF}",
                     mountpoint=f"/run/m{n}", source=f"/img/{img.image_id}", backing=backing,
                     image=img, backing_dev=kdev(8, 1) if backing != "block" else 0,
                     backing_ino=5000 + n // 2 if backing != "block" else 0)


class LateContent(StaticContent):
    """StaticContent with identities that arrive late: a digest is None
    until ``step`` reaches the file's ``late`` step (the rate limit of the
    real resolver).  No page maps: no group has cache page maps (a resolver
    without image_pages / managed_pages / meta_pages)."""

    def __init__(self, late, build_ids=None, **kw):
        super().__init__(**kw)
        self.late = late
        self.step = 0
        self.build_ids = build_ids or {}

    def build_id(self, mount, ino):
        return self.build_ids.get((mount.dev, ino))

    def digest(self, mount, ino):
        if self.late.get((mount.dev, ino), 0) > self.step:
            return None
        return super().digest(mount, ino)


class FakePageMapContent(LateContent):
    """LateContent plus made-up page maps (file page -> image-file pages)."""

    def image_pages(self, mount, ino):
        if mount.backing == "block" or (mount.dev, ino) not in self.files:
            return None
        return {p: (ino * 64 + p, ino * 64 + p + 1) for p in range(0, 48, 3)}

    def managed_pages(self, mount, ino):
        info = self.files.get((mount.dev, ino))
        if info is None or info.aops != AOPS_COMPRESSED:
            return None
        return {p: (p // 4,) for p in range(16)}


class Node:
    """The world the Readings describe, changed at random between refreshes."""

    def __init__(self, rng: random.Random, hint: bool = False, maps: bool = True):
        self.rng = rng
        self.hint = hint                # hand over changed_files with by_file readings
        self.prev_lists: dict | None = None
        self.prev_io: dict | None = None
        imgs = [_image(i, fingerprints=i % 2 == 0) for i in range(3)]
        backings = ["file", "loop", "file", "block", "file", "loop"]
        self.all_mounts = [_mount(n, backings[n], imgs[n % 3]) for n in range(6)]
        for m in self.all_mounts[::3]:
            m.inode_share = True
        self.mounts = StaticMounts(list(self.all_mounts))
        self.cgroups = StaticCgroups({cg: f"/pods/c{cg}" for cg in CGROUPS if cg})
        files, content, late, build_ids = {}, {}, {}, {}
        for m in self.all_mounts:
            for ino in range(1, 13):
                size = (ino % 5 + 1) * 40 * PAGE     # same sizes across mounts
                aops = AOPS_COMPRESSED if ino % 6 == 0 else (
                    AOPS_FILEIO if m.backing == "file" else AOPS_BLOCK)
                files[(m.dev, ino)] = FileInfo(ino, f"{m.mountpoint}/f{ino}", size,
                                               ino != 11, aops)
                content[(m.dev, ino)] = f"{ino % 7:064x}"    # equal content across images
                # ELF files in one size group with a file that is not: 12's
                # build-id is the same in every image, 2's its image's own
                # (size_group_keys: a unique build-id among ELF peers is unique content)
                if ino in (2, 12):
                    build_ids[(m.dev, ino)] = "b12" if ino == 12 else f"b2-{m.image.image_id}"
                if rng.random() < 0.3:
                    late[(m.dev, ino)] = rng.randrange(1, 12)
        self.content = (FakePageMapContent if maps else LateContent)(
            late, build_ids, files=files, content=content)
        self.chunks: dict[tuple, PageChunk] = {}     # (dev, ino, chunk) -> PageChunk
        self.io: dict[tuple, FileIO] = {}
        self.shared: dict[int, SharedInode] = {}
        self.owners: dict[tuple[int, int], dict[int, int]] = {}
        self.backing: dict[tuple[int, int], int] = {}

    def churn(self, n_ops: int) -> None:
        ops = [self.insert] * 6 + [self.evict] * 3 + [self.drop_file, self.drop_cgroup,
               self.toggle_mount, self.share, self.move_owners, self.io_event, self.remount]
        for _ in range(n_ops):
            self.rng.choice(ops)()
        self.content.step += 1

    def _file(self):
        m = self.rng.choice(self.all_mounts)
        return m.dev, self.rng.choice([0] + list(range(1, 14)))   # 0: compressed cache, 13: no info

    def insert(self):
        dev, ino = self._file()
        c = self.rng.randrange(3)
        cg = self.rng.choice(CGROUPS)
        bits = self.rng.getrandbits(64) & self.rng.choice([FULL, 0xFFFF, 1 << 63])
        old = self.chunks.get((dev, ino, c))
        owners = dict(old.owners) if old else {}
        for o in owners:        # a page has one owner
            owners[o] &= ~bits
        owners[cg] = owners.get(cg, 0) | bits
        seeded = (old.seeded_mask if old else 0) | (bits if self.rng.random() < 0.1 else 0)
        self.chunks[(dev, ino, c)] = PageChunk(dev, ino, c, owners, seeded)

    def evict(self):
        if not self.chunks:
            return
        key = self.rng.choice(sorted(self.chunks))
        old = self.chunks[key]
        keep = self.rng.getrandbits(64)
        # an emptied entry stays in the map until the GC: all-zero owners
        self.chunks[key] = PageChunk(*key, {cg: m & keep for cg, m in old.owners.items()},
                                     old.seeded_mask & keep)

    def drop_file(self):
        dev, ino = self._file()
        for key in [k for k in self.chunks if k[:2] == (dev, ino)]:
            del self.chunks[key]

    def drop_cgroup(self):
        cg = self.rng.choice(CGROUPS[1:])
        self.cgroups.paths.pop(cg, None) if self.rng.random() < 0.5 else \
            self.cgroups.paths.setdefault(cg, f"/pods/c{cg}")
        for key, pc in list(self.chunks.items()):
            if cg in pc.owners and self.rng.random() < 0.7:
                self.chunks[key] = PageChunk(*key, {o: m for o, m in pc.owners.items()
                                                    if o != cg}, pc.seeded_mask)

    def toggle_mount(self):
        m = self.rng.choice(self.all_mounts)
        if m in self.mounts.items:
            self.mounts.items.remove(m)
        else:
            self.mounts.items.append(m)

    def remount(self):
        """Options change in place (SysMounts updates its MountInfo), or the
        dev comes back as another mount (another image file behind it)."""
        i = self.rng.randrange(len(self.all_mounts))
        m = self.all_mounts[i]
        if self.rng.random() < 0.5:
            m.inode_share = not m.inode_share
            return
        new = dataclasses.replace(m, backing_ino=m.backing_ino + 100 if m.backing_ino else 0,
                                  mountpoint=m.mountpoint + "x")
        self.all_mounts[i] = new
        self.mounts.items = [new if x is m else x for x in self.mounts.items]

    def share(self):
        mapping = 0xffff0000 + self.rng.randrange(3)
        if self.rng.random() < 0.2:
            self.shared.pop(mapping, None)
            return
        ms = self.rng.sample([(m.dev, self.rng.choice((3, 6))) for m in self.all_mounts], 2)
        users = {cg: {self.rng.choice(ms)} for cg in self.rng.sample(CGROUPS[1:], 2)}
        touched = None if self.rng.random() < 0.3 else {
            mem: {0: self.rng.getrandbits(64)} for mem in ms}
        self.shared[mapping] = SharedInode(
            mapping, {0: {self.rng.choice(CGROUPS): self.rng.getrandbits(64)}},
            set(ms), users if self.rng.random() < 0.8 else {}, 40 * PAGE, touched)

    def move_owners(self):
        m = self.rng.choice(self.all_mounts)
        img = (m.backing_dev, m.backing_ino)
        pages = {p: self.rng.choice(CGROUPS) for p in self.rng.sample(range(900), 60)}
        self.owners[img] = pages
        self.backing[img] = len(pages)

    def io_event(self):
        dev, ino = self._file()
        cg = self.rng.choice(CGROUPS)
        old = self.io.get((dev, ino, cg)) or FileIO(dev, ino, cg)
        self.io[(dev, ino, cg)] = FileIO(dev, ino, cg, old.inserted_pages + 8,
                                         old.evicted_pages + 2, old.readahead_pages + 4,
                                         old.read_folio_count + 1)

    def _by_file(self, chunks) -> tuple[dict, set]:
        """Per-file lists as the tracepoint source gives them: a file whose
        PageChunks are all the same objects as last time keeps its list.
        Also the files whose list is not the previous read's (new, changed,
        gone): what a source with a dirty set hands over as changed_files."""
        by_file: dict = {}
        for pc in chunks:
            by_file.setdefault((pc.dev, pc.ino), []).append(pc)
        prev = self.prev_lists if self.prev_lists is not None else {}
        for k, lst in by_file.items():
            old = prev.get(k)
            if old is not None and [id(x) for x in old] == [id(x) for x in lst]:
                by_file[k] = old
        changed = {k for k, lst in by_file.items() if prev.get(k) is not lst}
        changed |= prev.keys() - by_file.keys()
        self.prev_lists = by_file
        return by_file, changed

    def readings(self, t: float) -> Readings:
        chunks = list(self.chunks.values())
        self.rng.shuffle(chunks)        # map order is arbitrary
        by_file = changed = None
        if self.rng.random() < (0.8 if self.hint else 0.5):
            by_file, changed = self._by_file(chunks)
        elif self.hint:
            self.prev_lists = None          # the next hint would not follow this read
        if by_file is None and self.rng.random() < 0.3:   # equal objects built anew
            chunks = [copy.deepcopy(pc) for pc in chunks]
        io_by_key = changed_io = None
        if self.hint and self.rng.random() < 0.8:     # rows by key, and the keys changed
            io_by_key = dict(self.io)
            prev = self.prev_io if self.prev_io is not None else {}
            changed_io = {k for k, f in io_by_key.items() if prev.get(k) is not f}
            changed_io |= prev.keys() - io_by_key.keys()
        self.prev_io = io_by_key
        return Readings(taken_at=t, page_size=PAGE, chunks=chunks, io=list(self.io.values()),
                        chunks_by_file=by_file,
                        changed_files=changed if self.hint else None,
                        io_by_key=io_by_key, changed_io=changed_io,
                        backing_pages=dict(self.backing),
                        image_cache_owners={k: dict(v) for k, v in self.owners.items()},
                        shared=[copy.deepcopy(s) for s in self.shared.values()],
                        maps={"chunks": (len(chunks), 4096, 0)})


def _refresh(agg, node, r, cap):
    return agg.update(r, node.mounts, node.cgroups, node.content, tier="full",
                      started_at=0.0, files_cap=cap)


def _assert_same(got, want, step):
    if got == want:
        return
    g, w = got.to_dict(), want.to_dict()
    diff = {k: (g[k], w[k]) for k in w if g[k] != w[k]}
    pytest.fail(f"step {step}: incremental != from scratch in {sorted(diff)}: {diff}")


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("ops_per_refresh", [1, 5, 40])
@pytest.mark.parametrize("recheck", [0, 4])     # 0: only deltas; 4: + a slice re-derived
@pytest.mark.parametrize("hint", [False, True], ids=["no-hint", "changed-files"])
@pytest.mark.parametrize("maps", [True, False], ids=["maps", "no-maps"])
def test_incremental_refresh_equals_full_recompute(seed, ops_per_refresh, recheck, hint, maps):
    """hint: the Readings name the files and FileIO rows changed since the
    previous read (Readings.changed_files, io_by_key and changed_io; correct
    here: a wrong one is the source's bug).  maps False: a resolver without
    cache page maps (GroupCache keeps no copies, savings.potential no cache part)."""
    rng = random.Random(seed * 1000 + ops_per_refresh)
    node = Node(rng, hint, maps)
    agg = Aggregator(recheck_slices=recheck)
    cap = rng.choice([3, 10, 200])
    for step in range(30):
        node.churn(ops_per_refresh)
        r = node.readings(float(step))
        got = _refresh(agg, node, r, cap)
        want = aggregate(r, node.mounts, node.cgroups, node.content, tier="full",
                         started_at=0.0, files_cap=cap)
        _assert_same(got, want, step)
        # the running total of redundant pages is the sum it replaces
        assert agg.redundant_pages == sum(agg.redundant.values()), step
        # in this world every page has one owner: the holders add up
        for m in want.mounts:
            assert sum(h.resident_bytes for h in m.holders) == m.resident_bytes, m.dev
        assert want.totals.resident_bytes == sum(
            pc.owners[cg].bit_count() for pc in r.chunks for cg in pc.owners
            if (pc.dev, pc.ino) and pc.owners[cg]) * PAGE + sum(
            sum(m.bit_count() for o in s.chunks.values() for m in o.values())
            for s in r.shared) * PAGE


def test_a_size_group_keyed_another_way_forgets_its_digest_witnesses():
    """aggregate._digest_join's witnesses (two members of two image files
    whose stay proves the group digest-keyed) are dropped when the group is
    keyed by the full path: there, ELF files alone key none with a build-id
    of its own, and a later join must walk the group again.  Scripted on
    test_refresh_churn's world: two copies of ELF file 12 (one build-id)
    become the witnesses when file 7 (no build-id) joins; 7 goes (ELF files
    alone, one build-id: their keys stay); file 2 of image 2 (a build-id of its own) joins,
    keyed by none; a 7 joins again: every member keyed by its digest, file
    2 too."""
    node = Node(random.Random(0), hint=True)
    node.rng.random = lambda: 0.0       # every read hands over the files changed (no full pass)
    node.content.late = {}
    node.chunks.clear()
    m1, m2, m4, m5 = (node.all_mounts[i] for i in (1, 2, 4, 5))   # (0 and 3: inode_share)
    others = [(m, ino) for m in node.all_mounts for ino in (1, 3, 4, 5, 8, 9)]   # (other sizes)
    steps = [[(m1, 12), (m2, 12)] + others, [(m4, 7)], [], [(m2, 2)], [(m5, 7)]]
    gone = {2: [(m4, 7)]}
    agg = Aggregator()
    for step, files in enumerate(steps):
        for m, ino in gone.get(step, ()):
            del node.chunks[(m.dev, ino, 0)]
        for m, ino in files:
            node.chunks[(m.dev, ino, 0)] = PageChunk(m.dev, ino, 0, {1001: 0xFF}, 0)
        r = node.readings(float(step))
        _assert_same(_refresh(agg, node, r, 200),
                     aggregate(r, node.mounts, node.cgroups, node.content, tier="full",
                               started_at=0.0, files_cap=200), step)
        if step == 2:   # 7 left two copies of one build-id: their keys stay, no re-key
            assert agg.digest_witnesses, step
    keys = {e.ino: e.content_key for e in agg.entries.values() if e.ino in (2, 7)}
    assert keys[2].startswith("sha256:") and keys[7].startswith("sha256:"), keys


def test_unchanged_readings_reuse_every_entry():
    """No churn: the second refresh rebuilds no entry (what makes it cheap)."""
    node = Node(random.Random(5))
    node.churn(60)
    r = node.readings(1.0)
    agg = Aggregator(recheck_slices=0)
    first = _refresh(agg, node, r, 200)
    entries = dict(agg.entries)
    second = _refresh(agg, node, node.readings(2.0), 200)
    assert all(agg.entries[k] is e for k, e in entries.items())
    assert second.totals == first.totals and second.containers == first.containers


@pytest.mark.parametrize("seed", range(5))
def test_ranking_keeps_the_largest_files_through_changes(seed):
    """Ranking (the files listed) against a sort of every rank, on random
    rank changes, files gone and new, for a small files_cap (many trims)."""
    from erofs_top.aggregate import Ranking
    from erofs_top.attribution import rank_of

    class C:        # stands for a Contribution: what rank_of reads of one
        dup = mapping = 0

        def __init__(self, resident):
            self.resident = resident

    def ranks(contrib):     # every file's rank, written out: (-resident, -dup, dev, ino, 0)
        return sorted((-c.resident, 0, k[0], k[1], 0) for k, c in contrib.items())
    rng = random.Random(seed)
    contrib = {(1, i): C(rng.randrange(50)) for i in range(300)}
    ranking = Ranking()
    cap = 3
    assert ranking.top(cap, contrib) == ranks(contrib)[:cap]
    for step in range(400):
        for _ in range(rng.randrange(1, 6)):
            key = (1, rng.randrange(400))
            if step % 20 >= 5 and rng.random() < 0.5:    # evict one of the largest
                key = min(contrib, key=lambda k: rank_of(k, contrib[k]))
            old = contrib.pop(key, None)
            if old is not None:
                ranking.drop(key, rank_of(key, old))
            if rng.random() < 0.8:
                # phases of growth (the reserve fills up and is trimmed) and of
                # evictions (the listed files leave the top, others take over)
                size = rng.randrange(40, 100) if step % 20 < 5 else rng.randrange(0, 10)
                new = contrib[key] = C(size)
                ranking.offer(key, rank_of(key, new))
        assert ranking.top(cap, contrib) == ranks(contrib)[:cap], step


@pytest.mark.parametrize("seed", range(4))
def test_remount_remakes_the_kept_copies(seed):
    """Every file-backed and loop dev comes back as another mount (another
    image file behind it), the files' pages unchanged: the groups' savings
    copies are made anew from the new mount.  The copies of every group with
    page maps name their entry's new image (an entry re-resolved in place
    among them), and the Model equals one from scratch."""
    from erofs_top.attribution import image_key
    rng = random.Random(seed)
    node = Node(rng)
    node.content.step = 100         # every identity known: groups form
    for _ in range(60):
        node.insert()
    agg = Aggregator(recheck_slices=0)
    _refresh(agg, node, node.readings(0.0), 200)
    before = {k: e for k, e in agg.entries.items()}
    for i, m in enumerate(list(node.all_mounts)):
        if m.backing == "block":
            continue
        new = dataclasses.replace(m, backing_ino=m.backing_ino + 100, mountpoint=m.mountpoint + "x")
        node.all_mounts[i] = new
        node.mounts.items = [new if x is m else x for x in node.mounts.items]
    r = node.readings(1.0)
    got = _refresh(agg, node, r, 200)
    _assert_same(got, aggregate(r, node.mounts, node.cgroups, node.content, tier="full",
                                 started_at=0.0, files_cap=200), 1)
    copies = [c for g in agg.group_cache.groups.values() if g[1] for c in g[1]["rebuild"]]
    assert copies, "no group with page maps: the test sees nothing"
    kept = 0
    for c in copies:
        e = agg.entries[("shared", c.key[2]) if c.key[2] else c.key[:2]]
        kept += before.get(c.key[:2]) is e      # the same entry, re-resolved in place
        assert c.image == image_key(e.mount), c.key
    assert kept, "every entry rebuilt: no re-resolution in place"


@pytest.mark.parametrize("seed", range(3))
def test_in_group_marks_exactly_the_mergeable_members(seed):
    """Entry.in_group (the savings' "other resident files" leave these out)
    holds for the members of the kept mergeable groups and no other entry,
    refresh after refresh."""
    from erofs_top.aggregate import _key
    rng = random.Random(seed)
    node = Node(rng, hint=True)
    agg = Aggregator(recheck_slices=0)
    seen = 0
    for step in range(20):
        node.churn(8)
        _refresh(agg, node, node.readings(float(step)), 200)
        grouped = {_key(e) for groups in agg.mergeable.values() for g in groups for e in g}
        assert {k for k, e in agg.entries.items() if e.in_group} == grouped, step
        seen += len(grouped)
    assert seen, "no mergeable group formed: the test sees nothing"


# ---------------------------------------------------------------- large groups
# Kept large content groups (erofs_top/large_groups.py): a refresh that moves
# only the changed members of a large group equals one from scratch.  A fleet:
# one image without fingerprints mounted by many containers (every file a
# content group of one copy per mount); LARGE_GROUP is lowered so that the
# fixture's groups are kept ones; the tests count the members moved (the path
# is taken).

class Fleet(Node):
    """Node's churn on ``n`` file-backed mounts of one image without
    fingerprints: each file a content group of up to ``n`` copies, of one
    aops class (the large groups' path); remount may make a mount
    inode_share (the group recomputed whole)."""

    def __init__(self, rng: random.Random, n: int, hint: bool):
        super().__init__(rng, hint, maps=False)
        img = _image(1, fingerprints=False)
        self.all_mounts = [_mount(2 * k, "file", img) for k in range(n)]
        self.mounts = StaticMounts(list(self.all_mounts))
        files = {}
        for m in self.all_mounts:
            for ino in range(1, 13):
                files[(m.dev, ino)] = FileInfo(ino, f"{m.mountpoint}/f{ino}",
                                               (ino % 5 + 1) * 40 * PAGE + ino, True, AOPS_FILEIO)
        self.content = StaticContent(files=files)
        self.content.step = 0

    def churn(self, n_ops: int) -> None:
        ops = [self.insert] * 8 + [self.evict] * 4 + [self.drop_file, self.drop_cgroup,
               self.toggle_mount, self.move_owners, self.io_event] + (
               [self.remount] if self.rng.random() < 0.2 else [])
        for _ in range(n_ops):
            self.rng.choice(ops)()


def _kept(g: tuple) -> tuple:
    """A GroupCache group's order, rebuild part (its counts as dicts) and devs."""
    p = g[2][0]
    return (g[0], p[0], p[1], p[2], p[3], dict(zip(p[4][::2], p[4][1::2])),
            dict(zip(p[5][::2], p[5][1::2])), g[5])


class NoMaps(StaticContent):
    """StaticContent that has page maps (has_page_maps), each None: what
    GroupCache keeps changes kind (copies per stage), nothing else."""

    def image_pages(self, mount, ino):
        return None


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("ops_per_refresh", [1, 4, 30])
@pytest.mark.parametrize("hint", [False, True], ids=["no-hint", "changed-files"])
def test_kept_large_groups_equal_full_recompute(seed, ops_per_refresh, hint, monkeypatch):
    """Also: from step 15 on the resolver has page maps (GroupCache.move's
    put(), the kept parts made flat)."""
    monkeypatch.setattr(large_groups, "LARGE_GROUP", 3)
    rng = random.Random(seed * 100 + ops_per_refresh)
    node = Fleet(rng, 10, hint)
    for _ in range(80):         # the groups fill up first
        node.insert()
    agg = Aggregator(recheck_slices=rng.choice([0, 4]))
    moved = large_groups.STATS["moved"]
    for step in range(25):
        if step:
            node.churn(ops_per_refresh)
        if step == 15 and seed % 2:
            node.content.__class__ = NoMaps
        r = node.readings(float(step))
        got = _refresh(agg, node, r, 200)
        fresh = Aggregator(recheck_slices=0)
        want = fresh.update(r, node.mounts, node.cgroups, node.content, tier="full",
                            started_at=0.0, files_cap=200)
        _assert_same(got, want, step)
        assert agg.redundant_pages == sum(agg.redundant.values()), step
        cache, cache0 = agg.group_cache, fresh.group_cache     # GroupCache's kept sums too
        assert cache.dev_count == cache0.dev_count, step
        assert cache.file_part == cache0.file_part, step
        assert {gid: _kept(g) for gid, g in cache.groups.items()} == {
            gid: _kept(g) for gid, g in cache0.groups.items()}, step
        for ck, state in agg.large.items():      # the kept state is the group's
            assert agg.mergeable[ck] == [state.members]
            dups = [dict(e.dup) for e in state.members]
            redundant, _, part = duplicate_group_part(list(state.members))
            assert redundant == state.redundant == agg.redundant[ck], step
            assert dict(zip(part[4][::2], part[4][1::2])) == state.by_cgroup, step
            assert dict(zip(part[5][::2], part[5][1::2])) == state.by_dev, step
            assert [dict(e.dup) for e in state.members] == dups, step
    assert large_groups.STATS["moved"] > moved, "no kept group moved: the test sees nothing"


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("maps", [True, False], ids=["maps", "no-maps"])
def test_churn_world_with_every_group_kept(seed, maps, monkeypatch):
    """test_refresh_churn's world (shared inodes, inode_share mounts,
    fingerprints, late identities, seeded pages) with every plain group of
    two copies or more kept: the fallbacks to a whole recompute."""
    monkeypatch.setattr(large_groups, "LARGE_GROUP", 2)
    rng = random.Random(seed)
    node = Node(rng, True, maps)
    agg = Aggregator(recheck_slices=4)
    for step in range(30):
        node.churn(5)
        r = node.readings(float(step))
        _assert_same(_refresh(agg, node, r, 10), aggregate(
            r, node.mounts, node.cgroups, node.content, tier="full", started_at=0.0,
            files_cap=10), step)
        assert agg.redundant_pages == sum(agg.redundant.values()), step


def test_kept_group_shrinks_and_grows(monkeypatch):
    """One file's copies leave a kept group one refresh at a time down to
    none, then come back: kept from LARGE_GROUP copies on, down to half of
    it (the path counted), recomputed whole otherwise, equal to a refresh
    from scratch at each step."""
    monkeypatch.setattr(large_groups, "LARGE_GROUP", 6)
    node = Fleet(random.Random(7), 8, True)
    for m in node.all_mounts:
        for c in range(2):
            node.chunks[(m.dev, 4, c)] = PageChunk(m.dev, 4, c, {1001 + c: FULL >> (m.dev % 7)})
    agg = Aggregator(recheck_slices=0)
    moved, kept = large_groups.STATS["moved"], []
    order = [m.dev for m in node.all_mounts]
    for step, dev in enumerate(order + order):
        r = node.readings(float(step))
        fresh = Aggregator(recheck_slices=0)
        _assert_same(_refresh(agg, node, r, 200), fresh.update(
            r, node.mounts, node.cgroups, node.content, tier="full", started_at=0.0,
            files_cap=200), step)
        assert agg.group_cache.dev_count == fresh.group_cache.dev_count, step
        kept.append(len(agg.large))
        for c in range(2):
            if step < len(order):
                del node.chunks[(dev, 4, c)]
            else:
                node.chunks[(dev, 4, c)] = PageChunk(dev, 4, c, {1003: FULL})
    # kept from 8 copies down to 3 (half of LARGE_GROUP), again from 6 up
    assert kept == [1] * 6 + [0] * 8 + [1] * 2, kept
    assert large_groups.STATS["moved"] - moved == 5 + 1, "moves: 8 -> 3 copies, 6 -> 7"


def test_ranking_ties_at_the_bound_through_steady_refreshes():
    """Aggregator._attribute makes a rank only for a file that may be in the
    reserve or enter it (its resident pages against the reserve's last and
    the bound's); files of equal size tie at the bound, so a file that
    shrinks to the bound's size, or comes back at it, with a smaller ino
    than the bound's must enter the top (the files listed equal
    aggregate()'s: a pre-test one page off loses it)."""
    m = _mount(3, "block", _image(0, False))
    mounts, cgroups, content = StaticMounts([m]), StaticCgroups({1001: "/pods/c1001"}), \
        StaticContent()
    pages = {ino: 1 for ino in range(1, 21)}
    agg = Aggregator(recheck_slices=0)

    def step(t):
        r = Readings(taken_at=t, page_size=PAGE,
                     chunks=[PageChunk(m.dev, ino, 0, {1001: (1 << n) - 1})
                             for ino, n in pages.items()])
        got = agg.update(r, mounts, cgroups, content, tier="full", started_at=0.0, files_cap=2)
        want = aggregate(r, mounts, cgroups, content, tier="full", started_at=0.0, files_cap=2)
        _assert_same(got, want, t)
        return [f.ino for f in got.files]

    assert step(0.0) == [1, 2]
    pages[1] = 2                    # grows: listed first
    assert step(1.0) == [1, 2]
    pages[1] = 1                    # back to the bound's size (the same row kind: renewed)
    assert step(2.0) == [1, 2]
    del pages[2]
    assert step(3.0) == [1, 3]
    pages[2] = 1                    # comes back at the bound's size (apply)
    assert step(4.0) == [1, 2]


@pytest.mark.parametrize("owners", ["two-owners", "one-owner"])
def test_kept_group_member_rebuilt_keeps_a_chunk(owners, monkeypatch):
    """A kept group's copy rebuilt with one chunk's pages flipped and
    another chunk's pages kept: the kept chunk is skipped (its counts
    cancel, its dup masks are the old copy's) only where its owners are
    the same too. Here the kept chunk's owners move between cgroups (two
    owners: the chunk's owners dict; one owner: the copy's one owner), so
    the savings part's by-cgroup counts must follow; and with owners kept
    the chunk is skipped and its dup masks must still be right."""
    monkeypatch.setattr(large_groups, "LARGE_GROUP", 4)
    node = Fleet(random.Random(3), 6, True)
    for m in node.all_mounts:
        for c in range(3):
            node.chunks[(m.dev, 5, c)] = PageChunk(m.dev, 5, c, {2000 + m.dev: FULL >> (c + m.dev % 3)})
    agg = Aggregator(recheck_slices=0)
    moved = large_groups.STATS["moved"]
    dev = node.all_mounts[2].dev
    plans = [   # per refresh: chunk 0's owners, chunk 1's pages (chunk 2 kept throughout)
        ({3001: FULL >> 2}, FULL >> 5),
        ({3001: FULL >> 2}, FULL >> 6),       # chunk 0 kept with its owners: skipped
        ({3002: FULL >> 2}, FULL >> 7) if owners == "one-owner" else
        ({3001: FULL >> 2 & ~7, 3002: 7}, FULL >> 7),    # chunk 0 kept, owners moved
        ({3002: FULL >> 2}, FULL >> 8) if owners == "one-owner" else
        ({3001: 7, 3002: FULL >> 2 & ~7}, FULL >> 8),
    ]
    for step in range(len(plans) + 1):
        r = node.readings(float(step))
        fresh = Aggregator(recheck_slices=0)
        _assert_same(_refresh(agg, node, r, 200), fresh.update(
            r, node.mounts, node.cgroups, node.content, tier="full", started_at=0.0,
            files_cap=200), step)
        cache, cache0 = agg.group_cache, fresh.group_cache
        assert cache.file_part == cache0.file_part, step
        assert cache.dev_count == cache0.dev_count, step
        (state,) = [s for s in agg.large.values() if any(e.ino == 5 for e in s.members)]
        dups = [dict(e.dup) for e in state.members]
        redundant, _, part = duplicate_group_part(list(state.members))
        assert redundant == state.redundant, step
        assert dict(zip(part[4][::2], part[4][1::2])) == state.by_cgroup, step
        assert [dict(e.dup) for e in state.members] == dups, step
        if step == len(plans):
            break
        own, pages = plans[step]
        if owners == "one-owner":
            cg = next(iter(own))
            node.chunks[(dev, 5, 0)] = PageChunk(dev, 5, 0, {cg: own[cg]})
            node.chunks[(dev, 5, 1)] = PageChunk(dev, 5, 1, {cg: pages})
            node.chunks[(dev, 5, 2)] = PageChunk(dev, 5, 2, {cg: FULL >> (2 + dev % 3)})
        else:
            node.chunks[(dev, 5, 0)] = PageChunk(dev, 5, 0, own)
            node.chunks[(dev, 5, 1)] = PageChunk(dev, 5, 1, {3001: pages})
    assert large_groups.STATS["moved"] - moved == len(plans), "the copy's moves"
