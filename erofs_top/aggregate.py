"""Readings + resolvers -> Model.  The only place that computes an attribution.

Pure: no bcc, no /proc; all I/O goes through the resolvers passed in.

Definitions (docs/json.md has them for users):
- resident: a page is resident; it belongs to the cgroup that inserted it (the
  memcg the kernel charged).  Shared (inode_share) pages too: the kernel charges
  the first reader, later readers pay nothing.
- duplicate: a resident page (file content C, page index i) such that page i of
  content C is also resident in another inode.
- redundant: for each (C, i) resident k >= 2 times, k - 1 pages.
- potential savings: the part of redundant that inode_share could remove under
  the kernel's rules: regular files of equal size (implied by equal content),
  same address_space operations (plain file-backed / plain loop-or-block /
  compressed), i.e. redundant computed within those classes only.
- shared (full tier): resident pages of a shared inode count in shared_bytes of
  every cgroup that uses it (opened, read or mapped one of its members); fair
  share splits each such page equally among the users; sharing saved counts,
  per shared page, the copies the kernel did not have to cache: distinct member
  inodes in use - 1 (each would have held its own copy without sharing).
"""
from __future__ import annotations

import bisect
import dataclasses
import gc
import heapq
from itertools import compress, repeat
from operator import attrgetter, is_not, le

from .attribution import (Accumulators, Contribution, IoSums, OwnerContribution, add_to_set,
                          contribution, new_contributions, owner_contribution, owner_contributions,
                          rank_of)
from .entries import (DERIVED_CLASS_VALUES, NONE, ORDER, Entry, SharedEntry, _any_chunk_entry,
                      _many_owner_entry, _one_owner_entry, chunk_entry, content_group_keys,
                      duplicate_group_part, elf_build_id_counts, full_group_part,
                      full_image_group, group_chunks,
                      one_image_file, same_input, shared_entry, size_group_keys,
                      usual_group_part)
from . import large_groups
from .large_groups import GroupDelta
from .model import Health, MapUsage, Model
from .node_savings import (MANAGED_CACHE_INO, GroupCache, Saved, cache_owners, has_page_maps,
                           node_savings, replayed_savings, stage_groups)
from .read_replay import ReadLog
from .readings import Readings
from .resolve.base import (AOPS_BLOCK, AOPS_COMPRESSED, AOPS_FILEIO, ContentResolver,
                           CgroupResolver, MountResolver)
from .rows import UNKNOWN_CGROUP_PATH, build_model

_contrib_of = attrgetter("contrib")
_DICT_KEYS = type({}.keys())
_UNSEEN = object()      # a key found does not hold (_move_large)
RECHECK_SLICES = 512       # every entry is re-derived from its input once per 512 refreshes
# Long-running faces hand what is alive after a refresh to the permanent
# generation of the cyclic GC (gc.freeze, O(1)): a collection then walks what
# is new since, not the millions of objects of a node's entries (0.4-2.6 s at
# 250,000 files, holding the GIL: scrapes and key presses waited).
# "every": after every refresh (the exporter: the refresh's own new objects
# are never walked either); "full": after a refresh that built everything
# anew (the TUI: its own short-lived cycles, frozen while alive, would never
# be freed: measured 2-4k objects per refresh with "every").  "": never.
FREEZE = {"mode": ""}


# what chunk_entry / shared_entry make of an entry's input (the later phases
# fill the rest): a recheck compares these of the kept and the re-derived entry
_derived = attrgetter(*(f.name for f in dataclasses.fields(SharedEntry)     # Entry's and more
                        if f.name not in ("mount", "info", "content_key", "dup", "in_group",
                                          "input", "size_idx", "ckey_idx", "contrib")),
                      *DERIVED_CLASS_VALUES)


def _mount_sig(m) -> tuple | None:
    """What an entry's resolution depends on (SysMounts updates MountInfo in place)."""
    if m is None:
        return None
    return (id(m), m.mountpoint, m.image_id, m.backing, m.backing_dev, m.backing_ino,
            m.dev_str, m.inode_share, getattr(m, "mount_ns", ""), getattr(m, "ns_prefix", ""))


class Aggregator:
    """Readings + resolvers -> Model, incrementally: entries, content keys,
    duplicates and accumulators are kept between refreshes and only what
    changed since the last refresh is recomputed.  The result equals
    aggregate() of the same Readings (tests/unit/test_refresh_churn.py);
    docs/architecture.md "Incremental refresh" explains why.

    Sources help by handing over unchanged things as the same objects: a
    file's PageChunks (or its list in ``Readings.chunks_by_file``), FileIO
    rows; equal new objects cost a comparison, never a wrong result."""

    # a refresh that begins with nothing kept (a full pass) takes one-loop
    # paths for its entries, resolution, size groups and contributions;
    # False: the general (incremental) code makes the same (the tests
    # compare the two: tests/unit/test_full_pass.py)
    fast_full = True

    def __init__(self, recheck_slices: int = RECHECK_SLICES):
        self.recheck_slices = recheck_slices
        self.refreshes = 0
        # keys by recheck slice, appended when an entry appears (8 B a key, not a
        # set's ~80): gone and repeated keys are dropped when the slice is due
        self.slices: list[list[tuple]] = [[] for _ in range(max(1, recheck_slices))]
        # key -> Entry; the entry also keeps what would otherwise be five more
        # dicts by key (its input, size and content group, Contribution)
        self.entries: dict[tuple, Entry] = {}
        self.gone: dict[tuple, Entry] = {}      # this refresh's entries dropped: their index state
        self.files_live = 0                     # entries with a Contribution
        self.dev_keys: dict[int, set[tuple]] = {}       # dev -> entry keys
        self.mount_sigs: dict[int, tuple | None] = {}
        # file size -> live regular entries, content key -> live entries: most
        # groups are small (a size or a content of 1-4 files), kept as a tuple
        # (48-112 B) until they grow (a set: 216 B and up); _add_small
        self.size_keys: dict[int, tuple | set[tuple]] = {}
        # size -> keys of two members of two image files, left by a
        # _digest_join that walked the group: while both stay (and did not
        # join again), the group is still digest-keyed and of several files
        # (no other path changes a kept member's key or mount), and the next
        # join need not walk it; dropped whenever the group is keyed another way
        self.digest_witnesses: dict[int, tuple[tuple, tuple]] = {}
        self.pending_sizes: dict[int, int] = {}         # size -> identities pending
        self.ckey_keys: dict[str, tuple | set[tuple]] = {}
        self.redundant: dict[str, int] = {}             # content key -> redundant pages
        # sum(self.redundant.values()), kept by the groups' changes (_set_redundant):
        # the Model's total without a pass over every content key each refresh
        self.redundant_pages = 0
        self.mergeable: dict[str, list[list[Entry]]] = {}
        self.acc = Accumulators()
        self.ranking = Ranking()
        # the Model's rows without what only the TUI and `once` show (Mount.holders,
        # Container.mounts, Model.files: left empty): the exporter exports none
        # of them (rows.build_model); set before the first refresh, never unset
        self.exported_rows_only = False
        self.holder_rows: dict[int, object] = {}   # dev -> MountHolders (rows.py)
        self.cgroup_mounts: dict[int, list[str]] = {}   # cg -> its mounts' names (rows.py)
        self.input_ids = {}.keys()          # ids of the per-file lists last read
        # the source builds a file's list at each access (FileChunks: no list
        # per file kept there): entries keep no input (the recheck re-derives
        # from the current read), lists are never compared by identity
        self.lean_input = False
        self.hinted_base = False            # the last read had chunks_by_file: a hint applies
        self.shared_keys: set[tuple] = set()    # live shared inodes' keys
        self.io = IoSums()
        self.special: set[tuple] = set()    # live shared inodes and compressed caches (ino 0)
        self.group_cache = GroupCache()
        self.large: dict[str, large_groups.LargeGroup] = {}     # content key -> kept large group
        # gid -> its rebuild file part when _duplicates counted it (else None);
        # ordered: groups in entries' order
        self.dirty_groups: dict[tuple, tuple | None] = {}
        self.unresolved_devs: set[int] = set()
        self.full_pass = False              # the last refresh built everything anew
        self.built_anew = False             # this refresh began with no entry kept
        self.new_sizes: dict[int, list] = {}    # built anew: size groups (_resolve_all)
        # built anew: content key -> (its keys in the entries' order: a list, or
        # its size group's tuple when it is all of one, shared with size_keys;
        # its entries in canonical order), made by _content_keys_all for _duplicates
        self.new_ckeys: dict[str, tuple[list[tuple], list[Entry]]] = {}
        self.recheck_keys: list[tuple] = []     # this refresh's slice, entries as re-derived
        # this refresh (not built anew): key -> its entry now (None: gone) for
        # the keys the phases look at, found once (_pairs); None between refreshes
        self.found: dict[tuple, Entry | None] | None = None
        self.rechecks_differed = 0          # re-derived entries that differed (drift repaired)
        self.read_log = ReadLog()           # full tier: the reads, for read_replay

    def update(self, readings: Readings, mounts: MountResolver, cgroups: CgroupResolver,
               content: ContentResolver, *, tier: str, started_at: float,
               files_cap: int = 200, kernel: str = "") -> Model:
        # a refresh allocates an object per changed chunk: the cyclic GC
        # would walk every kept entry many times over (most of a full pass)
        gc_on = gc.isenabled()
        gc.disable()
        try:
            return self._update(readings, mounts, cgroups, content, tier=tier,
                                started_at=started_at, files_cap=files_cap, kernel=kernel)
        finally:
            mode = FREEZE["mode"]
            if mode == "every" or (mode == "full" and self.full_pass):
                # frozen objects are still freed by reference counting; only
                # garbage cycles among them never are: the aggregator's state
                # and Models hold none (the benchmarks count what a run left)
                gc.freeze()
            if gc_on:
                gc.enable()

    def _update(self, readings, mounts, cgroups, content, *, tier, started_at, files_cap,
                kernel) -> Model:
        self.refreshes += 1
        self.full_pass = not self.files_live
        self.gone = {}
        health = _health(readings, files_cap)
        changed = self._read_entries(readings)
        if self.files_live and len(changed) > len(self.entries) // 3:
            # much of it changed: deltas (old out, new in) would cost more than a fresh start
            refreshes, read_log, lean = self.refreshes, self.read_log, self.exported_rows_only
            self.__dict__.update(Aggregator(self.recheck_slices).__dict__)
            self.read_log, self.exported_rows_only = read_log, lean
            self.refreshes, self.full_pass = refreshes, True
            changed = self._read_entries(readings)
        redo = self._resolve(mounts, content, changed)
        changed |= redo
        health.unresolved_mounts = len(self.unresolved_devs)
        rekeyed, pending = self._content_keys(changed, redo, content)
        if pending:
            health.warnings.append(f"{pending} file(s) not yet identified by content "
                                   f"(hashing is rate-limited); their duplicates show later")
        touched = self._duplicates(changed | rekeyed if rekeyed else changed)
        self._attribute(touched)
        self.gone, self.found = {}, None
        self.io.update(readings)
        saved = self._savings(touched, readings, mounts, content, health)
        top = [] if self.exported_rows_only else self.ranking.top(files_cap, self.contrib)
        return build_model(self, readings, mounts, cgroups, saved, health, tier=tier,
                           started_at=started_at, kernel=kernel, top=top)

    @property
    def contrib(self) -> _Contribs:
        """key -> Contribution of the live entries (kept in the entries)."""
        return _Contribs(self)

    # ---------------------------------------------------------- phase 1: entries
    def _read_entries(self, readings: Readings) -> set[tuple]:
        """Rebuild the entries whose input changed, and one slice of the
        others from scratch (resolution included); returns their keys (and
        those of entries gone)."""
        # nothing kept: every entry is new this refresh (a full pass), the
        # later phases take their one-loop paths (unless fast_full is off)
        self.built_anew = self.fast_full and not (self.entries or self.size_keys
                                                  or self.pending_sizes or self.files_live)
        given = readings.chunks_by_file
        self.lean_input = getattr(given, "built_on_access", False)
        self.found = None if self.built_anew else {}
        if given is not None and readings.changed_files is not None and self.hinted_base:
            changed = self._read_changed(given, readings.changed_files)
        else:
            changed = self._read_all(readings)
        self.hinted_base = given is not None
        again = self._read_shared(readings)     # (few: no copy of ``changed`` made)
        changed |= again
        self.recheck_keys = []
        if self.recheck_slices:     # re-derive a slice from scratch: no drift survives
            rechecked = self._recheck(self._due_slice(changed), given)
            changed |= rechecked
            again |= rechecked
        if again and self.found is not None:    # (a key _read_changed found: its entry now)
            self.found.update(zip(again, map(self.entries.get, again)))
        return changed

    def _chunk_entry(self, key: tuple, pcs: list) -> Entry:
        """chunk_entry of a file; without its input when the source builds
        lists on access (kept, each would be a list and PageChunks per file
        the source does not keep; and the entry a slot more: InputEntry)."""
        return chunk_entry(key[0], key[1], pcs, not self.lean_input)

    def _recheck(self, keys: list[tuple], given) -> set[tuple]:
        """Re-derive the entries of the due slice from their input as if new
        (an entry kept without it: from this read's list of the file, ``given``
        = Readings.chunks_by_file; not there: the file is gone).
        One that differs from the kept entry (a source that handed a changed
        file as its old list, or did not name a changed file, say) replaces
        it, resolution and all, and is returned changed; the others stay, and
        _resolve compares their resolution (``recheck_keys``): an entry equal
        in both costs no content key, duplicate, attribution or savings work."""
        entries, changed = self.entries, set()
        same = self.recheck_keys
        for key in keys:
            old = entries[key]
            inp = old.input
            if key[0] == "shared":
                new = shared_entry(inp)
            elif inp is not None:
                new = chunk_entry(key[0], key[1], inp)
            elif given is None:         # no input kept, none read: nothing to compare with
                same.append(key)
                continue
            else:
                pcs = given.get(key)
                new = None if pcs is None else self._chunk_entry(key, pcs)
            if new is not None and _derived(new) == _derived(old):
                same.append(key)
            else:
                self.rechecks_differed += 1
                self._put(key, new, fresh=True)
                changed.add(key)
        return changed

    def _due_slice(self, changed: set[tuple]) -> list[tuple]:
        """The live keys of this refresh's recheck slice not in ``changed``;
        the slice's list is compacted to its live keys, once each."""
        i = self.refreshes % self.recheck_slices
        live = self.slices[i] = self._live_keys(self.slices[i])
        return [k for k in live if k not in changed]

    def _live_keys(self, keys: list[tuple]) -> list[tuple]:
        entries = self.entries
        return [k for k in dict.fromkeys(keys) if k in entries]

    def _read_changed(self, given: dict, changed_files: set[tuple]) -> set[tuple]:
        """The source named the files that may differ since its previous read
        (``Readings.changed_files``): only those are looked at."""
        changed: set[tuple] = set()
        entries = self.entries
        found = self.found          # (the later phases' look-ups: _pairs)
        if found is None:           # (built anew: nothing kept, the phases' one-loop paths)
            found = {}
        for key in changed_files:
            pcs = given.get(key)
            e = entries.get(key)
            if pcs is None:
                if e is not None:
                    self._put(key, None)
                    changed.add(key)
                    found[key] = None
            elif e is None:
                self._put(key, new := self._chunk_entry(key, pcs))
                changed.add(key)
                found[key] = new
            elif not same_input(e.input, pcs):
                # _put of a rebuilt entry (same key: same dev and ino), inline:
                # it keeps the old one's index state, resolution and content key,
                # and its key object (_put's rule: the source's tuple, not the read's)
                new = self._chunk_entry(key, pcs)
                new.size_idx, new.ckey_idx, new.contrib = e.size_idx, e.ckey_idx, e.contrib
                new.mount, new.info, new.content_key = e.mount, e.info, e.content_key
                entries[key] = found[key] = new
                changed.add(key)
            else:
                e.input = None if self.lean_input else pcs
        self.input_ids = {}.keys()      # a later read without the hint compares by value
        return changed

    def _read_all(self, readings: Readings) -> set[tuple]:
        """Every file is a candidate (no hint): the per-file lists that are
        not the objects of the previous read are compared by value."""
        given = readings.chunks_by_file
        if given is not None:
            by_file = given     # read here only, not kept (each entry keeps its list)
            # kept for the next read only if it may come without the hint
            # (a source that names what changed does so from its first read)
            keep_ids = readings.changed_files is None and not self.lean_input
            if self.lean_input or (not self.entries and not keep_ids):
                # a first read (every file is new), or lists built at each
                # access (new objects: no identity to compare)
                candidates = by_file.keys()
                self.input_ids = {}.keys()
            else:
                # the files whose list is not the one of the previous read (set
                # operations on ids, in C: the old lists are alive, ids are unique)
                key_of = dict(zip(map(id, by_file.values()), by_file.keys()))
                fresh = key_of.keys() - self.input_ids
                if len(fresh) > len(key_of) // 8:   # many (a first read): in the source's order
                    candidates = [k for i, k in key_of.items() if i in fresh]
                else:
                    candidates = [key_of[i] for i in fresh]
                self.input_ids = key_of.keys() if keep_ids else {}.keys()
        else:
            by_file = group_chunks(readings.chunks)
            candidates = by_file.keys()
            self.input_ids = {}.keys()
        entries = self.entries
        if self.built_anew:
            return self._put_new(candidates, by_file)
        changed: set[tuple] = set()
        added = 0
        for key in candidates:
            pcs = by_file[key]
            e = entries.get(key)
            if e is None:
                added += 1
            elif same_input(e.input, pcs):
                e.input = None if self.lean_input else pcs
                continue
            new = self._chunk_entry(key, pcs)
            if e is not None and e.input is None and _derived(new) == _derived(e):
                continue                # kept without input: compared by what it derives
            self._put(key, new)
            changed.add(key)
        if len(entries) - len(self.shared_keys) > len(by_file):     # some are gone
            for key in entries.keys() - by_file.keys():
                if key[0] != "shared":
                    self._put(key, None)
                    changed.add(key)
        return changed

    def _put_new(self, keys, by_file: dict) -> set[tuple]:
        """_put of every file when nothing is kept (a first read, a full
        pass): the same entries, dev sets and slices, in one loop
        (chunk_entry's steps called here: its usual file without a call more)."""
        entries, dev_keys, slices = self.entries, self.dev_keys, self.slices
        n = len(slices) if self.recheck_slices else 0
        keep = not self.lean_input      # _chunk_entry's rule: no input kept for a lean source
        one, many = _one_owner_entry, _many_owner_entry
        # every file (by_file's keys): its pairs as they are, not each list
        # fetched by its key again (~0.25 us a tuple key's hash and lookup)
        pairs = by_file.items() if type(keys) is _DICT_KEYS else zip(
            keys, map(by_file.__getitem__, keys))
        for key, pcs in pairs:
            dev, ino = key
            e = one(dev, ino, pcs, keep)
            if e is None:
                e = many(dev, ino, pcs, keep) or _any_chunk_entry(dev, ino, pcs, keep)
            e.mount = _UNRESOLVED
            entries[key] = e
            s = dev_keys.get(dev)
            if s is None:
                dev_keys[dev] = {key}
            else:
                s.add(key)
            if n:
                slices[hash(key) % n].append(key)
        return set(entries)

    def _read_shared(self, readings: Readings) -> set[tuple]:
        """Shared inodes (few): compared at every refresh."""
        changed: set[tuple] = set()
        entries = self.entries
        now: set[tuple] = set()
        for si in readings.shared:
            key = ("shared", si.mapping)
            now.add(key)
            e = entries.get(key)
            old = None if e is None else e.input
            if old is None or (old is not si and old != si):
                self._put(key, shared_entry(si))
                changed.add(key)
            else:
                e.input = si
        for key in self.shared_keys - now:
            self._put(key, None)
            changed.add(key)
        self.shared_keys = now
        return changed

    def _put(self, key: tuple, e: Entry | None, fresh: bool = False) -> None:
        """Replace (or drop, e None) an entry; a rebuilt entry keeps the
        resolution and content key of the one it replaces (same file),
        unless ``fresh``.  What the indexes and sums count for the key goes
        with it (to ``gone`` for an entry dropped: the later phases take it
        out)."""
        # not popped and put back: a rebuilt entry keeps its key object (the
        # source's, one tuple per file; the read's own would be a second one)
        old = self.entries.get(key)
        same_dev = old is not None and e is not None and old.dev == e.dev
        if old is not None and not same_dev:
            keys = self.dev_keys[old.dev]
            keys.discard(key)
            if not keys:
                del self.dev_keys[old.dev]
        if e is None:
            if old is not None:
                del self.entries[key]
                self.gone[key] = old
            return          # its key leaves its slice's list when the slice is due
        held = old if old is not None else self.gone.pop(key, None)    # (back in one refresh)
        if held is not None:
            e.size_idx, e.ckey_idx, e.contrib = held.size_idx, held.ckey_idx, held.contrib
        if same_dev and not fresh and old.ino == e.ino:
            e.mount, e.info, e.content_key = old.mount, old.info, old.content_key
        else:
            e.mount = _UNRESOLVED
        self.entries[key] = e
        if not same_dev:            # (a rebuilt entry's key is in its dev's set already)
            add_to_set(self.dev_keys, e.dev, key)
        if old is None and self.recheck_slices:
            # an entry's slice follows from its key (no map of 250,000 slots):
            # the same key is in the same slice for the life of the process
            i = hash(key) % len(self.slices)
            keys = self.slices[i]
            keys.append(key)
            if len(keys) > 4 * (len(self.entries) // len(self.slices)) + 64:
                self.slices[i] = self._live_keys(keys)   # files that come and go often

    def _in_order(self, keys: set[tuple]):
        """Many keys (a full pass): in the entries' order, the order their
        objects were made in, not the set's hash order (each entry's objects
        then sit next to the previous one's: 1.5x faster at 50,000 files);
        keys of entries gone come last.  Few keys: as they are."""
        entries = self.entries
        if len(keys) < len(entries) // 8:
            return keys
        if len(keys) >= len(entries) and keys.issuperset(entries.keys()):     # in C
            out = list(entries)         # a full pass: every entry
        else:
            out = [k for k in entries if k in keys]
        if len(out) < len(keys):
            out += [k for k in keys if k not in entries]
        return out

    def _pairs(self, keys: set[tuple]):
        """(key, its entry now or None: gone) of ``keys``: few (a steady
        refresh), from ``found`` (each key looked up in the entries once per
        refresh, not once per phase: a cold line of their dict each); many
        (a full pass), looked up in _in_order's order.  The phases after
        _read_entries replace no entry: what ``found`` holds stays right."""
        found, entries = self.found, self.entries
        if found is None or len(keys) >= len(entries) // 8:
            return [(k, entries.get(k)) for k in self._in_order(keys)]
        if len(found) != len(keys):
            for k in keys:
                if k not in found:
                    found[k] = entries.get(k)
            if len(found) != len(keys):     # it holds keys not asked for
                return [(k, found[k]) for k in keys]
        return found.items()

    # ---------------------------------------------------------- phase 2: resolution
    def _resolve(self, mounts: MountResolver, content: ContentResolver,
                 changed: set[tuple]) -> set[tuple]:
        """Mounts and file info: for new entries, and for every entry of a dev
        whose mount changed.  Returns the keys re-resolved."""
        redo: set[tuple] = set()
        sigs: dict[int, tuple | None] = {}
        mount_of = {}
        by_dev: dict[int, object] = {}
        for m in mounts.mounts():        # one pass, not a by_dev() per dev
            by_dev.setdefault(m.dev, m)
        anew = self.built_anew
        for dev, keys in self.dev_keys.items():
            m = by_dev.get(dev) if dev else None
            mount_of[dev] = m
            sigs[dev] = _mount_sig(m)
            if not anew and sigs[dev] != self.mount_sigs.get(dev, False):
                redo |= keys
        self.mount_sigs = sigs
        self.unresolved_devs = {d for d, m in mount_of.items() if d and m is None}
        entries = self.entries
        if anew:            # every entry is new (in changed): each resolved, in order
            self._resolve_all(mount_of, content)
            return changed
        for key, e in self._pairs(changed):
            if e is not None and e.mount is _UNRESOLVED:
                redo.add(key)
        for key in self.recheck_keys:       # resolved as if new: the same?
            e = entries[key]
            m = mount_of[e.dev]
            if key not in redo and (e.mount is not m or e.info != (
                    content.file_info(m, e.ino) if m is not None else None)):
                self.rechecks_differed += 1
                redo.add(key)
        get = entries.get if self.found is None else self.found.get
        for key in self._in_order(redo):
            e = get(key) or entries[key]        # (one found already, if any)
            e.mount = mount_of[e.dev]
            e.info = content.file_info(e.mount, e.ino) if e.mount is not None else None
        return redo

    def _resolve_all(self, mount_of: dict, content: ContentResolver) -> None:
        """_resolve when every entry is new: each resolved, in the entries'
        order, and (the same loop) put in its size group for the content
        keys phase (``new_sizes``: size -> [key, entry, key, entry, ...], in
        the entries' order: the entries not fetched by key again, ~0.25 us
        each; the size groups of _content_keys: regular files of some size
        with pages)."""
        file_info, by_size = content.file_info, {}
        prefetch = getattr(content, "prefetch_inodes", None)    # (real images: in image order)
        if prefetch is not None:
            prefetch([(m, e.ino) for e in self.entries.values()
                      if (m := mount_of[e.dev]) is not None])
        for key, e in self.entries.items():
            m = e.mount = mount_of[e.dev]
            if m is None:
                e.info = None
                continue
            info = e.info = file_info(m, e.ino)
            if info and e.union and info.regular and info.size > 0:
                size = e.size_idx = info.size
                flat = by_size.get(size)
                if flat is None:
                    by_size[size] = [key, e]
                else:
                    flat += key, e
        self.new_sizes = by_size

    # ---------------------------------------------------------- phase 3: content keys
    def _content_keys(self, changed: set[tuple], redo: set[tuple], content: ContentResolver
                      ) -> tuple[set[tuple], int]:
        """Content keys for the size groups whose members changed, were
        re-resolved or have identities pending.  Returns (entries whose key
        changed, pending)."""
        if self.built_anew:
            return set(), self._content_keys_all(content)
        # size -> None (re-key it whole) or the entries that joined it (none:
        # only members left); ordered (see _in_order)
        dirty: dict[int, list | None] = dict.fromkeys(self.pending_sizes)
        entries, gone = self.entries, self.gone
        for key, e in self._pairs(changed):
            held = e
            if e is None:
                held = gone.get(key)        # (the size group it is still counted in)
            size = e.info.size if (e is not None and e.union and e.info and e.info.regular
                                   and e.info.size > 0) else None
            old = None if held is None else held.size_idx
            if old == size:
                if size is not None and key in redo:
                    # re-resolved (a new mount on the dev): as if it left and
                    # joined again (its key made anew, the others' kept where
                    # that is exact: _same_image_join, _digest_join)
                    joined = dirty.setdefault(size, [])
                    if joined is not None:
                        joined.append(e)
                continue
            if old is not None:
                _drop_small(self.size_keys, old, key)
                dirty.setdefault(old, [])
                held.size_idx = None
            if size is not None:
                _add_small(self.size_keys, size, key)
                e.size_idx = size
                joined = dirty.setdefault(size, [])
                if joined is not None:
                    joined.append(e)
            elif e is not None:
                e.content_key = ""
        rekeyed: set[tuple] = set()
        witnesses = self.digest_witnesses
        for size, joined in dirty.items():
            keys = self.size_keys.get(size)
            if not keys:
                self.size_keys.pop(size, None)
                self.pending_sizes.pop(size, None)
                witnesses.pop(size, None)
                continue
            if joined is not None and (_same_image_join(keys, joined, entries)
                                       or _digest_join(keys, joined, entries, content,
                                                       witnesses, size)):
                rekeyed.update(map(_key, joined))
                continue
            witnesses.pop(size, None)
            group = [entries[k] for k in keys]
            group.sort(key=ORDER)
            before = [e.content_key for e in group]
            pending = content_group_keys(group, content)
            if pending:
                self.pending_sizes[size] = pending
            else:
                self.pending_sizes.pop(size, None)
            rekeyed.update(_key(e) for e, b in zip(group, before) if e.content_key != b)
        return rekeyed, sum(self.pending_sizes.values())

    def _content_keys_all(self, content: ContentResolver) -> int:
        """_content_keys when every entry is new (in changed, so also in
        what the duplicates phase looks at: no rekeyed keys to return): the
        size groups _resolve_all made; content keys for the groups of two
        or more (a single file's key stays "", as made), and the content
        groups they make, fetched and sorted here once (``new_ckeys``, for
        _duplicates_all: (keys, entries), or (keys, entries, full_group_part's
        result) of the usual group, counted here).  Returns the identities
        pending."""
        by_size = self.new_sizes
        self.new_sizes = {}
        self.digest_witnesses = {}
        prefetch = getattr(content, "prefetch_identities", None)    # (real images: in image order)
        if prefetch is not None:
            prefetch(_identity_pairs(by_size))
        size_keys, pending_sizes = self.size_keys, self.pending_sizes
        by_ckey: dict[str, tuple] = {}
        for size, flat in by_size.items():      # (_add_small's tuples and sets)
            keys = flat[::2]
            kept = size_keys[size] = tuple(keys) if len(keys) <= SMALL_GROUP else set(keys)
            if len(keys) > 1:
                members = flat[1::2]
                group = sorted(members, key=ORDER)
                made = full_image_group(group) if type(kept) is tuple else None
                if made is not None:
                    # the usual size group (copies of one file of one image):
                    # its content key and duplicates in one walk, its copies
                    # still in the cache (_duplicates_all takes them; a later
                    # size group of the same key merges the two: made again)
                    ck = made[0]
                    if ck not in by_ckey:
                        by_ckey[ck] = (kept, group, made[1])
                    else:
                        _add_content_group(by_ckey, ck, keys, group)
                    continue
                pending, ck = size_group_keys(group, content)
                if pending:
                    pending_sizes[size] = pending
                if ck and ck not in by_ckey and type(kept) is tuple:
                    # the usual size group: one content; its content group
                    # keeps the size group's tuple (read only: one object),
                    # and its duplicates are made now, its copies still in
                    # the cache (_duplicates_all takes them; a later size
                    # group of the same key merges the two: made again)
                    for e in group:
                        e.ckey_idx = ck
                    by_ckey[ck] = (kept, group, full_group_part(group))
                elif ck:
                    _add_content_group(by_ckey, ck, keys, group)
                else:
                    _split_content_groups(by_ckey, keys, members, group)
        self.new_ckeys = by_ckey
        return sum(pending_sizes.values())

    # ---------------------------------------------------------- phase 4: duplicates
    def _duplicates(self, changed: set[tuple]) -> set[tuple]:
        """Duplicate masks of the content groups with a changed member.
        Returns every entry whose attribution may have changed."""
        if self.built_anew:
            return self._duplicates_all(changed)
        joined: dict[str, list[Entry]] = {}
        dirty = self._dirty_ckeys(changed, joined)
        touched = set(changed)
        entries = self.entries
        full = len(touched) >= len(entries) and touched >= entries.keys()
        large = self.large
        for ck, keys in dirty.items():
            if full or ck not in large or not self._move_large(ck, keys, touched):
                self._group_duplicates(ck, keys, changed, touched, full, joined.get(ck, ()))
        return touched

    def _dirty_ckeys(self, changed: set[tuple], joined: dict[str, list[Entry]]
                     ) -> dict[str, list[tuple]]:
        """The content groups' indexes moved for the changed keys; returns
        each content key with a changed member (ordered, see _in_order) and
        its changed keys (members that left it, joined it or changed in it:
        a kept large group's moves, _move_large; a small one's members
        kept, _kept_members).  ``joined`` (filled): content key -> its
        changed members now (their entries)."""
        dirty: dict[str, list[tuple]] = {}
        gone, ckey_keys = self.gone, self.ckey_keys
        for key, e in self._pairs(changed):
            held = e
            if e is None:
                held = gone.get(key)        # (the content group it is still counted in)
            ck = e.content_key if (e is not None and e.union) else ""
            old = "" if held is None else held.ckey_idx
            if old:
                _add_key(dirty, old, key)
                if old != ck:
                    _drop_small(ckey_keys, old, key)
                    held.ckey_idx = ""
            if ck:
                if old != ck:
                    _add_key(dirty, ck, key)
                    _add_small(ckey_keys, ck, key)
                    e.ckey_idx = ck
                _add_key(joined, ck, e)
            elif e is not None:
                e.dup = NONE
                e.in_group = False
        return dirty

    def _move_large(self, ck: str, keys: list[tuple], touched: set[tuple]) -> bool:
        """A kept large group (large_groups) with its changed members moved
        (O(what changed)); False when it has no kept state or must be
        recomputed whole (its state dropped)."""
        state = self.large.get(ck)
        if state is None:
            return False
        # each key's entry as _pairs found it (a small dict, warm), else
        # looked up (a key _pairs did not keep: many changed)
        entries, found = self.entries, self.found
        if found is None:
            found = entries
        changes = []
        for key in keys:
            e = found.get(key, _UNSEEN)
            if e is _UNSEEN:
                e = entries.get(key)
            changes.append((key, e if e is not None and e.union and e.content_key == ck
                            else None))
        moves = large_groups.plan(state, changes)
        if moves is None:
            del self.large[ck]
            return False
        self.dirty_groups[(ck, 0)] = large_groups.move(state, moves, touched)
        self._set_redundant(ck, state.redundant)
        return True

    def _set_redundant(self, ck: str, pages: int | None) -> None:
        """Content group ck's redundant pages (None: the group is gone), the
        running total adjusted by the difference."""
        redundant = self.redundant
        if pages is None:
            self.redundant_pages -= redundant.pop(ck, 0)
        else:
            self.redundant_pages += pages - redundant.get(ck, 0)
            redundant[ck] = pages

    def _group_duplicates(self, ck: str, ck_keys: list[tuple], changed: set[tuple],
                          touched: set[tuple], full: bool,
                          joined: list[Entry] | tuple = ()) -> None:
        """Content group ck recomputed whole (entries.duplicate_group_part,
        or usual_group_part when its unchanged members were one mergeable
        group); a large one's state kept (large_groups) for the next
        refreshes.  ``ck_keys``: its changed keys, ``joined``: its changed
        members now (_dirty_ckeys)."""
        was_large = self.large.pop(ck, None) is not None
        keys = self.ckey_keys.get(ck)
        if not keys:
            self.ckey_keys.pop(ck, None)
            self._set_redundant(ck, None)
            self.dirty_groups.update(
                dict.fromkeys((ck, i) for i in range(len(self.mergeable.pop(ck, ())))))
            return
        old_groups = self.mergeable.get(ck, ())
        kept = None if (full or was_large) else _kept_members(old_groups, ck_keys, changed)
        cls = None
        if kept is not None and len(kept) + len(joined) == len(keys):
            group = _put_in_order(kept, joined) if joined else kept
            if kept:        # (their class: that of the group they were in)
                cls = large_groups.member_class(kept[0])
        else:       # (some member was in no mergeable group, or the group was several)
            entries = self.entries
            group = [entries[k] for k in keys]
            group.sort(key=ORDER)
        # a member that did not change contributes the same unless its
        # duplicate pages do (the only thing the group gives it); in a
        # full pass every entry is touched already
        dups = None if full else [e.dup for e in group]
        made = None if cls is None else usual_group_part(group, joined, cls)
        usual = made is not None
        redundant, new_groups, part = made if usual else duplicate_group_part(group)
        self._set_redundant(ck, redundant)
        self.mergeable[ck] = new_groups
        if part is not None and len(group) >= large_groups.LARGE_GROUP:
            self.large[ck] = large_groups.LargeGroup(new_groups[0], redundant, part)
        if not full:
            found = self.found
            for e, d in zip(group, dups):
                dup = e.dup
                if dup is not d and dup != d:
                    key = ("shared", e.shared_mapping) if e.shared_mapping else (e.dev, e.ino)
                    touched.add(key)
                    if found is not None:
                        found[key] = e      # (_attribute's look-up: _pairs)
        if usual:
            # one group now and before (kept): the same when no member joined
            # (a joined one is changed) and none left (_same_group's answer)
            if joined or len(group) != len(old_groups[0]):
                self.dirty_groups[(ck, 0)] = part
            return
        for i in range(max(len(old_groups), len(new_groups))):
            if not _same_group(old_groups, new_groups, i, changed):
                # (a part is counted only for a content group that is one mergeable group)
                self.dirty_groups[(ck, i)] = part if i == 0 else None

    def _duplicates_all(self, changed: set[tuple]) -> set[tuple]:
        """_duplicates when every entry is new (a full pass: every entry in
        ``changed``, none gone, nothing kept): the content groups
        _content_keys_all fetched and sorted (``new_ckeys``; the usual ones
        counted there already, only filed here); no kept group
        to compare with (each is dirty), no old dup to compare (every entry
        is touched already), no set of the touched keys copied; a content
        of one file gets its state without a duplicates pass (its dup and
        in_group stay as made).  Returns ``changed``."""
        ckey_keys, redundant, mergeable = self.ckey_keys, self.redundant, self.mergeable
        dirty, large = self.dirty_groups, large_groups.LARGE_GROUP
        by_ckey, self.new_ckeys = self.new_ckeys, {}
        for ck, made in by_ckey.items():
            if len(made) == 3:      # the usual group, made by _content_keys_all
                ckey_keys[ck], group, (redundant[ck], groups, part) = made
            else:
                keys, group = made
                ckey_keys[ck] = keys if type(keys) is tuple else (
                    tuple(keys) if len(keys) <= SMALL_GROUP else set(keys))
                for e in group:
                    e.ckey_idx = ck
                if len(group) < 2:
                    redundant[ck], mergeable[ck] = 0, []
                    continue
                redundant[ck], groups, part = full_group_part(group)
            mergeable[ck] = groups
            if part is not None and len(group) >= large:
                self.large[ck] = large_groups.LargeGroup(groups[0], redundant[ck], part)
            for i in range(len(groups)):
                dirty[(ck, i)] = part if i == 0 else None
        # (one sum here, in a pass over every group anyway: the running total's start)
        self.redundant_pages = sum(redundant.values())
        return changed

    # ---------------------------------------------------------- phase 5: attribution
    def _attribute(self, touched: set[tuple]) -> None:
        """Subtract the old contribution of every touched entry, add its new
        one; keep the ranking of the largest files current.  A rank is made
        only for a file that may be in the ranking's reserve or enter it
        (its resident pages at least the reserve's last or the bound's: most
        changed files are small), Ranking.drop / offer called for it alone."""
        acc, gone, special = self.acc, self.gone, self.special
        ranking = self.ranking
        if not self.files_live and not ranking.valid and self.fast_full:
            self._attribute_all(touched)
            return
        live = 0
        ranked = ranking.valid
        reserve, floor = ranking.reserve, ranking.entry_floor()
        for key, e in self._pairs(touched):
            held = e
            if e is None:
                held = gone.get(key)
                if held is None:
                    continue
            old = held.contrib
            if type(old) is OwnerContribution and e is not None:
                row = old.renewed_row(e)
                if row is not None:     # the usual file still: the one of its new row
                    was = old.cg_sums
                    if row is not was:
                        acc.move_row(old.mount, row[0], row[1] - was[1], row[2] - was[2])
                        c = held.contrib = owner_contribution(old.mount, *row[:3])
                        if ranked:
                            if reserve and -was[1] <= reserve[-1][0]:
                                ranking.drop(key, rank_of(key, old))
                            if row[1] >= floor:
                                ranking.offer(key, rank_of(key, c))
                    else:
                        acc.move_row(old.mount, row[0], 0, 0)
                    continue
            c = held.contrib = contribution(e) if e is not None and e.union else None
            live += (c is not None) - (old is not None)
            if old is not None:
                if c is not None:
                    acc.replace(old, c)         # apply(old, -1), apply(c, +1)
                else:
                    acc.apply(old, -1)
                if ranked and reserve and -old.resident <= reserve[-1][0]:
                    ranking.drop(key, rank_of(key, old))
                special.discard(key)
            elif c is not None:
                acc.apply(c, +1)
            if c is not None:
                if ranked and c.resident >= floor:
                    ranking.offer(key, rank_of(key, c))
                if e.shared_mapping or e.ino == MANAGED_CACHE_INO:
                    special.add(key)
        self.files_live += live

    def _attribute_all(self, touched: set[tuple]) -> None:
        """_attribute with nothing kept (a full pass): every contribution is
        new, the usual file's made without a call each (owner_contributions:
        what Contribution(e) makes of it), the others' by new_contributions,
        the sums in one go (Accumulators.add_new_parts: the two kinds given
        apart), and the ranking, not valid yet, is made when asked."""
        owners, others = owner_contributions(self._touched_pairs(touched), self.special,
                                             MANAGED_CACHE_INO)
        others = new_contributions(others)
        self.files_live += len(owners) + len(others)
        if not self.acc.add_new_parts(owners, others):
            # two mount objects of one dev (never in a full pass): in order
            self.acc.add_new([e.contrib for _, e in self._touched_pairs(touched)
                              if e is not None and e.union])

    def _touched_pairs(self, touched: set[tuple]):
        """(key, entry or None) of the touched keys in the entries' order;
        built anew: touched is every entry (and no key gone)."""
        entries = self.entries
        if self.built_anew:
            return entries.items()
        return ((k, entries.get(k)) for k in self._in_order(touched))

    # ---------------------------------------------------------- phase 6: savings
    def _savings(self, touched: set[tuple], readings: Readings, mounts: MountResolver,
                 content: ContentResolver, health: Health) -> Saved:
        """The savings model: the groups that changed are recomputed, the
        cache part and the shared inodes (few) at every refresh."""
        entries = self.entries
        cache = self.group_cache
        if self.built_anew and not cache.groups:     # a full pass: every group is new
            mergeable = self.mergeable
            cache.put_new(((gid, mergeable[gid[0]][gid[1]], part)
                           for gid, part in self.dirty_groups.items()), content)
        else:
            put, mergeable, maps = cache.put, self.mergeable, has_page_maps(content)
            move = cache.move
            cache.touched = touched     # (the copies of the others are kept)
            try:
                for gid, part in self.dirty_groups.items():
                    groups = mergeable.get(gid[0], ())
                    if type(part) is GroupDelta:        # a kept large group (large_groups)
                        move(gid, groups[0], content, part, maps)
                        continue
                    put(gid, groups[gid[1]] if gid[1] < len(groups) else None, content, part,
                        maps)
            finally:
                cache.touched = None
        self.dirty_groups = {}
        shared = sorted((entries[k] for k in self.special if k[0] == "shared"),
                        key=ORDER)
        managed = sorted((entries[k] for k in self.special if k[0] != "shared"),
                         key=ORDER)
        owned = cache_owners(managed, readings)
        readers = self.acc.readers()
        # a mount's reads go with it: at its superblock's end in the log, or
        # (without that probe) when the mount on its dev differs at a refresh
        self.read_log.update(readings, lambda dev: _mount_sig(mounts.by_dev(dev)))

        def entries_on(dev):
            return (entries[k] for k in self.dev_keys.get(dev, ()))
        def stages_of(gid):
            return cache.groups[gid][1] or stage_groups(self.mergeable[gid[0]][gid[1]], content)
        replay, replay_groups = replayed_savings(self.read_log, cache, shared, entries_on, mounts,
                                                 content, readings, owned, health, stages_of)

        def others_on(devs):
            for dev in devs:
                for k in self.dev_keys.get(dev, ()):
                    e = entries[k]
                    if e.union and not e.shared_mapping and not e.in_group:
                        yield e
        def other_at(dev, ino):
            e = entries.get((dev, ino))
            if e is None or not e.union or e.shared_mapping or e.in_group:
                return None
            return e
        # the files whose entries changed (other_kept is redone for them only)
        changed_files = None if self.built_anew else {k for k in touched if k[0] != "shared"}
        return node_savings(cache, shared, others_on, owned, readers, mounts, content, health,
                            replay, replay_groups, entries_on, stages_of, changed_files,
                            other_at)


class Ranking:
    """The largest files, without sorting all of them at every refresh:
    ``reserve`` holds the smallest ranks (largest files first) and every live
    entry outside it ranks above ``bound``; a changed entry enters it when it
    ranks below the bound.  Rebuilt when it runs short of the files asked for."""
    RESERVE = 4                 # x files_cap kept

    def __init__(self):
        self.reserve: list[tuple] = []
        self.bound: tuple | None = None     # None: every live entry is in the reserve
        self.valid = False

    def drop(self, key: tuple, rank: tuple) -> None:
        if not self.valid or not self.reserve or rank > self.reserve[-1]:
            return      # top() ranks everything anyway; or it is not in the (sorted) reserve
        i = bisect.bisect_left(self.reserve, rank)
        if i < len(self.reserve) and self.reserve[i] == rank:
            del self.reserve[i]

    def entry_floor(self) -> int:
        """The resident pages below which no file enters the reserve
        (offer: its rank, -resident first, is above the bound); 0 when any
        may (no bound).  A file in the reserve has at least the resident
        pages of its last rank, -reserve[-1][0] (drop)."""
        return 0 if self.bound is None else -self.bound[0]

    def offer(self, key: tuple, rank: tuple) -> None:
        if self.valid and (self.bound is None or rank < self.bound):
            bisect.insort(self.reserve, rank)

    def top(self, files_cap: int, contrib: dict[tuple, Contribution]) -> list[tuple]:
        short = len(self.reserve) < files_cap and self.bound is not None
        if not self.valid or short:
            n = max(files_cap * self.RESERVE, 1)
            self.reserve = _smallest_ranks(n, *_columns(contrib))
            self.bound = self.reserve[-1] if len(contrib) > len(self.reserve) else None
            self.valid = True
        elif len(self.reserve) > 2 * files_cap * self.RESERVE:
            del self.reserve[files_cap * self.RESERVE:]      # trim: the bound comes down
            self.bound = self.reserve[-1]
        return self.reserve[:files_cap]


def _smallest_ranks(n: int, keys: list, contribs: list) -> list[tuple]:
    """heapq.nsmallest(n, rank_of(key, c) of the files' keys and
    contributions, two lists in step), without a rank made for every
    file: a rank begins with -resident, so the n smallest are among the
    files whose resident pages reach the n-th largest count (ties
    included; fewer than n files: all of them)."""
    if len(contribs) <= n:
        return sorted(map(rank_of, keys, contribs))
    res = list(map(_resident_of, contribs))
    least = heapq.nlargest(n, res)[-1]
    big = list(map(le, repeat(least), res))     # least <= resident
    return heapq.nsmallest(n, map(rank_of, compress(keys, big), compress(contribs, big)))


def _columns(contrib) -> tuple[list, list]:
    """(keys, contributions) of a key -> contribution mapping, two lists."""
    if isinstance(contrib, _Contribs):
        return contrib.columns()
    return list(contrib), list(contrib.values())


_resident_of = attrgetter("resident")


class _Contribs:
    """key -> Contribution of the live entries, read only (rows, Ranking):
    the Contributions are kept in the entries, not in a dict of their own."""
    __slots__ = ("agg",)

    def __init__(self, agg: Aggregator):
        self.agg = agg

    def __getitem__(self, key: tuple) -> Contribution:
        c = self.agg.entries[key].contrib
        if c is None:
            raise KeyError(key)
        return c

    def __len__(self) -> int:
        return self.agg.files_live

    def values(self):
        return (c for c in map(attrgetter("contrib"), self.agg.entries.values())
                if c is not None)

    def columns(self) -> tuple[list, list]:
        """The live entries' keys and contributions, two lists in step
        (made in C)."""
        es = self.agg.entries
        cs = list(map(_contrib_of, es.values()))
        live = list(map(is_not, cs, repeat(None)))
        return list(compress(es, live)), list(compress(cs, live))


class _Unresolved:
    """Marks an entry whose mount is not looked up yet."""


_UNRESOLVED = _Unresolved()


def _kept_members(old_groups: list, ck_keys: list[tuple], changed: set[tuple]
                  ) -> list | None:
    """A dirty content group's members that did not change, without a
    look-up by key each (a cold line of the entries' dict per member): its
    mergeable group of the last refresh (``old_groups``, when the content
    group was that one group) without the members whose key changed, in
    its (canonical) order; None when it was not one group.  ``ck_keys``:
    the group's changed keys (_dirty_ckeys: every changed key of a member
    of the last refresh's group is one); a member on a dev none of them
    names is not looked up (no key tuple: its ino, a cold line, not read).
    Exact because an entry whose key is not in ``changed`` is the same
    object in the same content group as at the last refresh, when the
    group's lists were made from the entries then (every change of a
    member dirties its group)."""
    if len(old_groups) != 1:
        return None
    devs = {k[0] for k in ck_keys}
    if "shared" in devs:            # (a shared inode's key does not name its dev)
        return [e for e in old_groups[0] if _key(e) not in changed]
    return [e for e in old_groups[0] if e.dev not in devs or _key(e) not in changed]


_DEV = attrgetter("dev")


def _put_in_order(kept: list[Entry], joined: list[Entry]) -> list[Entry]:
    """``kept`` (canonical order) with the ``joined`` entries put in their
    places: sort(key=ORDER)'s list (ORDER's keys are distinct), found by
    dev first (a bisect), ORDER compared only among copies on the joined
    one's dev (the others' inos, a cold line each, are not read).  Returns
    ``kept``, extended."""
    for j in joined:
        dev = j.dev
        i = bisect.bisect_left(kept, dev, key=_DEV)
        n = len(kept)
        if i < n and kept[i].dev == dev:
            o = ORDER(j)
            while i < n and kept[i].dev == dev and ORDER(kept[i]) < o:
                i += 1
        kept.insert(i, j)
    return kept


def _same_group(old: list, new: list, i: int, changed: set[tuple]) -> bool:
    """Mergeable group i of a content key holds the same entries as before,
    none of them rebuilt or re-resolved (``changed``): its savings stand.
    (A rebuilt entry is a new object; one re-resolved in place is in
    ``changed``; its duplicate masks do not enter the savings.)"""
    if i >= len(old) or i >= len(new) or len(old[i]) != len(new[i]):
        return False
    for a, b in zip(old[i], new[i]):
        if a is not b or _key(b) in changed:
            return False
    return True


SMALL_GROUP = 8      # members kept as a tuple (a set above)


def _add_small(groups: dict, k, v) -> None:
    """Add v to groups[k]: a tuple up to SMALL_GROUP members, then a set."""
    g = groups.get(k)
    if g is None:
        groups[k] = (v,)
    elif type(g) is tuple:
        if v not in g:
            groups[k] = g + (v,) if len(g) < SMALL_GROUP else {*g, v}
    else:
        g.add(v)


def _identity_pairs(by_size: dict[int, list]) -> list[tuple]:
    """(mount, ino) of the members of every new size group whose content
    keys need identities (two members or more, not one file of one image:
    size_group_keys asks each for its build_id)."""
    pairs = []
    for flat in by_size.values():           # [key, entry, key, entry, ...]
        if len(flat) > 2:
            members = flat[1::2]
            if one_image_file(members) is None:
                pairs += [(e.mount, e.ino) for e in members if e.mount is not None]
    return pairs


def _drop_small(groups: dict, k, v) -> None:
    """Remove v from groups[k] (_add_small's); an empty group stays, empty."""
    g = groups[k]
    if type(g) is tuple:
        if v in g:      # (once: _add_small adds none twice)
            i = g.index(v)
            groups[k] = g[:i] + g[i + 1:]
    else:
        g.discard(v)


def _add_content_group(by_ckey: dict, ck: str, keys: list[tuple], group: list[Entry]) -> None:
    """Put a size group's entries of content ``ck`` (``keys`` in the
    entries' order, ``group`` in canonical order) into by_ckey; a content
    key met in an earlier size group too (equal keys, never equal sizes:
    "sha256:" keys name the size; "img:" ones one file of one image) is
    merged, its members sorted again."""
    had = by_ckey.get(ck)
    if had is None:
        by_ckey[ck] = (keys, group)
    else:
        merged = had[1] + group
        merged.sort(key=ORDER)
        by_ckey[ck] = ([*had[0], *keys], merged)     # (had[0]: a list, or a size group's tuple)


def _split_content_groups(by_ckey: dict, keys: list[tuple], members: list[Entry],
                          group: list[Entry]) -> None:
    """_add_content_group of each content of a size group of several (or
    with some members of none: identities pending, unique contents):
    ``members`` in the entries' order (that of ``keys``), ``group`` the same
    in canonical order."""
    parts: dict[str, tuple[list[tuple], list[Entry]]] = {}
    for k, e in zip(keys, members):
        ck = e.content_key
        if ck:
            p = parts.get(ck)
            if p is None:
                parts[ck] = ([k], [])
            else:
                p[0].append(k)
    for e in group:
        ck = e.content_key
        if ck:
            parts[ck][1].append(e)
    for ck, (ks, sorted_members) in parts.items():
        _add_content_group(by_ckey, ck, ks, sorted_members)


def _add_key(dirty: dict, ck: str, key: tuple) -> None:
    keys = dirty.get(ck)
    if keys is None:
        dirty[ck] = [key]
    else:
        keys.append(key)


def _same_image_join(keys, joined: list[Entry], entries: dict) -> bool:
    """A size group whose members share one "img:" key (one file of one
    image: entries.size_group_keys) and whose other changes are members
    that left it, or copies of that file that joined it (``joined``): the
    members left keep their key, those who joined get it; nothing else to
    re-key (O(joined), not O(group)).  False for any other group."""
    if len(keys) < 2:
        return False
    ids = set(map(id, joined))
    for k in keys:
        r = entries[k]
        if id(r) not in ids:
            break
    else:
        return False
    ck, m = r.content_key, r.mount
    if not ck.startswith("img:") or m is None:
        return False
    for e in joined:
        em = e.mount
        if em is None or e.ino != r.ino or em.image_id != m.image_id:
            return False
    for e in joined:
        e.content_key = ck
    return True


def _digest_join(keys, joined: list[Entry], entries: dict, content: ContentResolver,
                 witnesses: dict[int, tuple[tuple, tuple]], size: int) -> bool:
    """A size group whose members left keep their "sha256:" keys and whose
    joined members are not ELF files (no build-id): entries.size_group_keys
    then keys every member by its own digest, the same for those left (no
    build-id shortcut: a member without one is in the group), so only the
    joined get theirs (O(joined), not a digest look-up per member: a new
    container of an image whose files other images share).  The members
    left are walked once to check their keys; the walk leaves two of them
    of two image files in ``witnesses`` (Aggregator.digest_witnesses), and
    while both stay, the next join walks none.  False, nothing changed, for
    any other group: one image file after all (its "img:" key), a member
    left without a key, a joined file's digest not known, or, when members
    only left, one left would now be keyed by none (_keys_stay)."""
    if len(keys) < 2:
        return False
    ids = set(map(id, joined))
    seen = _witnessed(witnesses.get(size), keys, ids, entries)
    if seen is None:
        seen = _digest_members(keys, ids, entries)
        if seen is None:
            return False
    first, several = seen[0], seen[1]
    if not joined and not _keys_stay(keys, entries, content):
        return False
    made = []
    for e in joined:
        m = e.mount
        if m is None or content.build_id(m, e.ino):
            return False
        several = several or (m.image_id, e.ino) != first
        digest = content.fingerprint(m, e.ino) or content.digest(m, e.ino)
        if digest is None:
            return False
        made.append(f"sha256:{digest}:{e.info.size}")
    if not several:             # (one image file: size_group_keys gives it its "img:" key)
        return False
    for e, key in zip(joined, made):
        e.content_key = key
    if len(seen) == 3:
        witnesses[size] = seen[2]
    return True


def _witnessed(pair, keys, ids: set[int], entries: dict) -> tuple | None:
    """(the first witness's image file, True): both of the group's witnesses
    still members, neither joined again; else None."""
    if pair is None:
        return None
    a, b = pair
    if a not in keys or b not in keys:
        return None
    ea, eb = entries[a], entries[b]
    if id(ea) in ids or id(eb) in ids:
        return None
    return (ea.mount.image_id, ea.ino), True


def _digest_members(keys, ids: set[int], entries: dict) -> tuple | None:
    """_digest_join's walk of the members left (not in ``ids``): None when
    one has no "sha256:" key or no mount, or none is left; else (the first
    one's image file, several files among them, and when several: the keys
    of a member of the first file and of one of another, the witnesses)."""
    first = first_key = None
    members = iter(keys)
    for k in members:
        e = entries[k]
        if id(e) in ids:
            continue
        if not e.content_key.startswith("sha256:") or e.mount is None:
            return None
        file = (e.mount.image_id, e.ino)
        if first is None:
            first, first_key = file, k
        elif file != first:
            other = k
            break
    else:
        return None if first is None else (first, False)
    for k in members:       # (the members after those two: their keys checked only)
        e = entries[k]
        if id(e) not in ids and (not e.content_key.startswith("sha256:") or e.mount is None):
            return None
    return first, True, (first_key, other)


def _keys_stay(keys, entries: dict, content: ContentResolver) -> bool:
    """Whether size_group_keys would key every member by its digest after
    members only left: unless every one is an ELF file and one's build-id
    is no other member's (entries.elf_build_id_counts, its rule)."""
    counts = elf_build_id_counts(content.build_id(e.mount, e.ino)
                                 for e in map(entries.__getitem__, keys))
    return counts is None or min(counts.values()) >= 2


def _key(e: Entry) -> tuple:
    return ("shared", e.shared_mapping) if e.shared_mapping else (e.dev, e.ino)


def _health(readings: Readings, files_cap: int) -> Health:
    health = Health(
        maps=[MapUsage(name, used, cap, fails) for name, (used, cap, fails)
              in sorted(readings.maps.items())],
        lost_events=readings.lost_events,
        owner_overflow_pages=readings.owner_overflow_pages,
        probes_attached=readings.probes_attached,
        bpf_run_time_ns=dict(readings.bpf_run_time_ns),
        bpf_run_count=dict(readings.bpf_run_count),
        warnings=list(readings.warnings),
        files_cap=files_cap,
    )
    health.update_failures = sum(f for _, _, f in readings.maps.values())
    return health


def aggregate(readings: Readings, mounts: MountResolver, cgroups: CgroupResolver,
              content: ContentResolver, *, tier: str, started_at: float,
              files_cap: int = 200, kernel: str = "") -> Model:
    """A Model from scratch (an Aggregator with nothing kept).  Without
    recheck slices: an Aggregator thrown away after one refresh never
    re-derives a slice, and a first refresh's slice is empty (every entry
    is new in it): the same Model without a slice list per key."""
    return Aggregator(recheck_slices=0).update(readings, mounts, cgroups, content, tier=tier,
                               started_at=started_at, files_cap=files_cap, kernel=kernel)


__all__ = ["aggregate", "Aggregator", "UNKNOWN_CGROUP_PATH", "AOPS_BLOCK", "AOPS_COMPRESSED",
           "AOPS_FILEIO"]
