"""Large content groups kept between refreshes (issue 11: one image run by
many pods makes each content group ~100 copies).

entries.duplicate_group_part recomputes a dirty content group whole: every
member's pages, O(group) for one member changed.  A group of LARGE_GROUP
members or more (kept down to half of it) whose copies form one mergeable
group of stock copies (the usual group: same aops class, no shared inode,
no fingerprint, no inode_share mount; its savings part counted by
duplicate_group_part) keeps a LargeGroup: its members in canonical order
and the counts of its savings part (pages each copy gives up to an
earlier one, by cgroup and by dev).
A refresh then moves only the members that changed (rebuilt, added,
removed: ``move``), each chunk looking at the other members only until
their pages cover the pages in question (the copies of one content hold
mostly the same pages: one or two members):

- the pages a copy gives up are those an earlier copy holds (``pre``);
- a page whose first holder changes moves to the next holder's count;
- a page's duplicate status changes for another copy only when its holders
  go from one to two or back (``_dup_changes``).

The result equals duplicate_group_part's (tests/unit/test_refresh_churn.py:
a fleet of copies, and its churn world, with a small LARGE_GROUP)."""
from __future__ import annotations

import bisect
from itertools import chain
from operator import attrgetter

from .entries import NONE, Entry, aops
from .node_savings import _add_counts as add_counts
from .savings import gone_by_cgroup

# members: a smaller dirty group is recomputed whole (cheap: measured, a kept
# group of 4 copies costs more than it saves, of 8 as much, of 16 a third
# less: docs/performance.md); a kept group stays kept down to half of it
LARGE_GROUP = 12
STATS = {"moved": 0, "built": 0}       # members moved, groups kept (tests count the path)


class LargeGroup:
    """One large group's kept state (see the module doc)."""
    __slots__ = ("members", "cls", "redundant", "by_cgroup", "by_dev")

    def __init__(self, members: list[Entry], redundant: int, part: tuple):
        self.members = members          # the mergeable group's own list (canonical order)
        self.cls = member_class(members[0])
        self.redundant = redundant
        it = iter(part[4])
        self.by_cgroup: dict[int, int] = dict(zip(it, it))
        it = iter(part[5])
        self.by_dev: dict[int, int] = dict(zip(it, it))
        STATS["built"] += 1

    def __getitem__(self, i: int):
        """The savings part's fields (duplicate_group_part's flat form): a
        GroupCache keeps the state itself as the part of its group, the
        flat counts made only when read (a group dropped or recomputed)."""
        if i == 0:
            return self.redundant
        if i < 4:
            return 0
        return tuple(chain.from_iterable((self.by_cgroup if i == 4 else self.by_dev).items()))

    def flat_part(self) -> tuple:
        """The savings part in duplicate_group_part's flat form."""
        return (self.redundant, 0, 0, 0, tuple(chain.from_iterable(self.by_cgroup.items())),
                tuple(chain.from_iterable(self.by_dev.items())))


def member_class(e: Entry) -> str:
    info = e.info
    return info.aops if info else aops(e)


def plain_member(e: Entry, cls: str) -> bool:
    """e may join a kept group of class ``cls``: a stock copy, unfingerprinted,
    of that aops class (duplicate_group_part's ``plain`` member)."""
    m = e.mount
    if e.shared_mapping or (m is not None and (m.inode_share or (
            m.image is not None and m.image.ishare_xattrs))):
        return False
    return member_class(e) == cls and bool(e.union)


_DEV_INO = attrgetter("dev", "ino")


def find(members: list[Entry], dev: int, ino: int) -> int:
    """(dev, ino)'s slot in the members (entries.ORDER's: a kept group's
    copies are plain, shared_mapping 0 each)."""
    return bisect.bisect_left(members, (dev, ino), key=_DEV_INO)


class GroupDelta:
    """What a LargeGroup.move changed in its savings part: the rebuild file
    pages, by cgroup and by dev (added to GroupCache's sums), the devs of
    copies added and removed (its dev counts) and where (``slots``: (i, dev)
    a copy on dev inserted at slot i, (i, None) the copy at slot i removed,
    in the order done: GroupCache's devs in member order move by these, no
    member read)."""
    __slots__ = ("state", "redundant", "by_cgroup", "by_dev", "devs_in", "devs_out", "slots")

    def __init__(self, state: LargeGroup):
        self.state = state
        self.redundant = 0
        self.by_cgroup: dict[int, int] = {}
        self.by_dev: dict[int, int] = {}
        self.devs_in: list[int] = []
        self.devs_out: list[int] = []
        self.slots: list[tuple[int, int | None]] = []


def plan(state: LargeGroup, changes: list[tuple[tuple, Entry | None]]) -> list | None:
    """The moves of a kept group for its changed keys: (key, the entry now in
    the group or None) each, as (its slot in the members now, whether a
    member holds it, key, entry); None when the group must be recomputed whole
    (a member re-resolved in place, one that is not a plain copy of the
    class, fewer than half of LARGE_GROUP left)."""
    members, moves = state.members, []
    size = len(members)
    seen = set()
    for key, e in changes:
        if key in seen or type(key[0]) is not int:
            return None
        seen.add(key)
        i = find(members, key[0], key[1])
        present = i < len(members) and members[i].dev == key[0] and members[i].ino == key[1]
        if e is not None and not plain_member(e, state.cls):
            return None
        if present:
            if members[i] is e:         # re-resolved in place (its class may change)
                return None
        elif e is None:
            return None
        moves.append((i, present, key, e))
        size += (e is not None) - present
    return moves if size >= max(2, LARGE_GROUP // 2) else None


def move(state: LargeGroup, moves: list, touched: set) -> GroupDelta:
    """Apply plan()'s moves: the members, their dup masks and in_group, the
    redundant pages and the savings part's counts; returns the delta.  Keys
    of unchanged members whose dup masks changed go into ``touched``.
    Each move's slot is plan()'s, shifted by the moves done before it (no
    second search)."""
    delta = GroupDelta(state)
    members = state.members
    # removals first: a copy that leaves for another group is a live entry
    # whose dup masks that group sets (the moves below change others' only);
    # from the last slot down, each before the slots it would shift
    moves.sort()        # by slot, at one slot an insertion first (keys differ: no entry compared)
    gone = [m[0] for m in moves if m[3] is None]
    for m in reversed(moves):
        if m[3] is None:
            i = m[0]
            old = members[i]
            delta.devs_out.append(old.dev)
            delta.slots.append((i, None))
            _move_member(members, delta, i, old, None, touched)
            del members[i]
    # then the others in slot order: each is shifted by the removals before
    # it and the insertions done
    added = 0
    for i, present, _, e in moves:
        if e is None:
            continue
        if gone:
            i -= bisect.bisect_left(gone, i)
        i += added
        if present:
            old = members[i]
        else:
            old = None
            members.insert(i, e)
            added += 1
            delta.devs_in.append(e.dev)
            delta.slots.append((i, e.dev))
        _move_member(members, delta, i, old, e, touched)
        members[i] = e
        e.in_group = True
    STATS["moved"] += len(moves)
    state.redundant += delta.redundant
    # the kept counts move once by the delta's (the moves above count into it only)
    add_counts(state.by_cgroup, delta.by_cgroup)
    add_counts(state.by_dev, delta.by_dev)
    return delta


def _move_member(members: list[Entry], delta: GroupDelta, i: int, old: Entry | None,
                 new: Entry | None, touched: set) -> None:
    """Slot i of the members goes from ``old`` to ``new`` (None: absent).
    A copy rebuilt (a page flipped: the usual move) skips the chunks whose
    pages and owners it keeps: their counts would cancel and their dup
    masks are old's (kept current by _dup_changes); of one owner, a changed
    chunk's pages given up move by their difference.  The new copy's dup
    masks: old's for the pages it keeps, the pages another copy holds
    (_dup_changes' scan) for those it gains."""
    ou = old.union if old is not None else NONE
    nu = new.union if new is not None else NONE
    keep = _kept_chunks(old, new)
    odup = old.dup if old is not None else NONE
    dup: dict[int, int] = {}
    for c in ou.keys() | nu.keys() if ou is not nu else nu.keys():
        o, n = ou.get(c, 0), nu.get(c, 0)
        if keep is not None and (keep is True or keep[0].get(c) == keep[1].get(c)):
            if o == n:
                d = odup.get(c, 0)
                if d:
                    dup[c] = d
                continue
            pre = _held_before(members, i, c, o | n)
            k = (n & pre).bit_count() - (o & pre).bit_count()
            if k:               # one dev, one owner (or the same owners of chunk c)
                _count_moved(delta, old, new, c, o, n, pre, k)
        else:
            pre = _held_before(members, i, c, o | n)
            if o:
                _count(delta, old, c, o, o & pre, -1)
            if n:
                _count(delta, new, c, n, n & pre, +1)
        first = (o ^ n) & ~pre          # pages whose first holder changes
        if first:
            _next_holders(members, delta, i, c, first, o, n)
        held = _dup_changes(members, i, c, o, n, touched) if o != n else 0
        if n:
            d = (odup.get(c, 0) & n & o) | (n & ~o & held)
            if d:
                dup[c] = d
    if new is not None:
        new.dup = NONE if not dup else (new.union if dup == new.union else dup)


def _count_moved(delta: GroupDelta, old: Entry, new: Entry, c: int, o: int, n: int, pre: int,
                 k: int) -> None:
    """_count(old, -1) then _count(new, +1) of chunk c's pages given up
    (``pre``) by a rebuilt copy whose chunk c counts alike (one dev, the
    same owners): ``k`` pages more given up."""
    owner = new.chunks
    if owner.__class__ is not int:      # the chunk's owners: by cgroup each
        _count(delta, old, c, o, o & pre, -1)
        _count(delta, new, c, n, n & pre, +1)
        return
    delta.redundant += k
    by = delta.by_dev
    by[new.dev] = by.get(new.dev, 0) + k
    by = delta.by_cgroup
    by[owner] = by.get(owner, 0) + k


def _kept_chunks(old: Entry | None, new: Entry | None):
    """Whether a chunk of equal pages in ``old`` and ``new`` (one key: one
    dev) counts the same in both: True (one owner), (old's, new's owners by
    chunk: equal when the chunk's owners are), None (no chunk does)."""
    if old is None or new is None:
        return None
    oc, nc = old.chunks, new.chunks
    if oc.__class__ is int or nc.__class__ is int:
        return True if oc == nc else None
    return oc, nc


def _held_before(members: list[Entry], i: int, c: int, want: int) -> int:
    """The pages of ``want`` in chunk c held by the members before slot i."""
    held = 0
    for j in range(i):
        held |= members[j].union.get(c, 0)
        if held & want == want:
            break
    return held & want


def _next_holders(members: list[Entry], delta: GroupDelta, i: int, c: int, pages: int,
                  o: int, n: int) -> None:
    """Pages of chunk c whose first holder was (o) or becomes (n) slot i:
    the next holder after it gives them up (n) or no longer does (o)."""
    for j in range(i + 1, len(members)):
        e = members[j]
        m = e.union.get(c, 0)
        h = m & pages
        if h:
            if h & o:
                _count(delta, e, c, m, h & o, -1)
            if h & n:
                _count(delta, e, c, m, h & n, +1)
            pages &= ~h
            if not pages:
                return


def _count(delta: GroupDelta, e: Entry, c: int, mask: int, gone: int, sign: int) -> None:
    """± the pages ``gone`` of chunk c of copy e given up (entries._count_gone),
    into the delta (move() adds it to the kept counts)."""
    n = gone.bit_count()
    if not n:
        return
    n *= sign
    delta.redundant += n
    by = delta.by_dev
    by[e.dev] = by.get(e.dev, 0) + n
    by = delta.by_cgroup
    owner = e.chunks            # the one owner (an int: Entry.owner), or a dict
    if owner.__class__ is int:
        by[owner] = by.get(owner, 0) + n
        return
    owners = owner.get(c)
    if owners is not None:
        counts: dict[int, int] = {}
        gone_by_cgroup(owners, mask, gone, abs(n), counts)
        for cg, k in counts.items():
            by[cg] = by.get(cg, 0) + sign * k


def _dup_changes(members: list[Entry], i: int, c: int, o: int, n: int, touched: set) -> int:
    """Slot i's pages of chunk c go from o to n: a page another copy alone
    holds becomes (n) or stops being (o) a duplicate page of that copy.
    Returns the pages of o ^ n another copy holds."""
    pages = o ^ n
    once = twice = 0
    for j, e in enumerate(members):
        if j != i:
            m = e.union.get(c, 0) & pages
            twice |= once & m
            once |= m
            if twice == pages:
                return pages    # every such page held by two others: no status changes
    single = once & ~twice
    if not single:
        return once
    for j, e in enumerate(members):
        h = e.union.get(c, 0) & single if j != i else 0
        if h:
            old = e.dup
            d = dict(old) if old is not NONE else {}
            m = (d.get(c, 0) | (h & n)) & ~(h & o)
            if m:
                d[c] = m
            else:
                d.pop(c, None)
            e.dup = NONE if not d else (e.union if d == e.union else d)
            touched.add((e.dev, e.ino))
    return once
