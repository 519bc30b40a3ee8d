"""entries.same_input: the same PageChunks in any order, and its shortcut
for a changed file (one PageChunk of a chunk replaced: False without sorting)."""
import random

from erofs_top.entries import same_input
from erofs_top.readings import PageChunk

FULL = (1 << 64) - 1


def _file(chunks: int) -> list[PageChunk]:
    return [PageChunk(5, 7, c, {1001: FULL}) for c in range(chunks)]


def test_same_objects_and_equal_copies_in_any_order():
    rng = random.Random(3)
    for n in range(1, 5):
        old = _file(n)
        for _ in range(5):
            new = [PageChunk(pc.dev, pc.ino, pc.chunk, dict(pc.owners)) for pc in old]
            rng.shuffle(new)
            assert same_input(old, new) and same_input(old, list(old))


def test_a_changed_chunk_differs_in_any_order():
    rng = random.Random(4)
    for n in range(1, 5):
        old = _file(n)
        for i in range(n):
            new = list(old)
            new[i] = PageChunk(5, 7, i, {1001: FULL >> 1})      # a page evicted
            assert not same_input(old, new)
            rng.shuffle(new)
            assert not same_input(old, new)
            moved = list(old)       # a PageChunk of another chunk in its place
            moved[i] = PageChunk(5, 7, n + 1, {1001: FULL})
            assert not same_input(old, moved)


def test_a_chunk_in_two_pagechunks():
    a, b = PageChunk(5, 7, 0, {1001: 1}), PageChunk(5, 7, 0, {1002: 2})
    c = PageChunk(5, 7, 1, {1001: 1})
    assert same_input([a, b, c], [a, b, c])
    assert same_input([a, c, b], [c, a, b])         # sorted: the same pairs
    assert not same_input([a, b], [a, PageChunk(5, 7, 0, {1002: 4})])
    assert not same_input([a, c], [b, c])           # chunk 0 twice in neither: differs
