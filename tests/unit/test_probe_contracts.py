"""What probes/*.c and the Python side must agree on, read from the C source
(no BPF, no compiler): the counters' order (enum counter <-> COUNTERS), the
record-mode event layout (struct page_event <-> record/format.py PROBE_EVENT)
and the event kinds (enum event_kind <-> readings.EventKind)."""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from erofs_top.kernel import probes, sharing
from erofs_top.readings import EventKind
from erofs_top.record import format as fmt

PROBES = Path(__file__).resolve().parents[2] / "probes"
C_CODES = {"u64": "Q", "u32": "I", "u16": "H", "u8": "B", "s64": "q", "s32": "i"}


def _source(name: str) -> str:
    text = (PROBES / name).read_text()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)     # comments out
    return re.sub(r"//[^\n]*", " ", text)


def _block(src: str, head: str) -> str:
    m = re.search(rf"{re.escape(head)}\s*\{{(.*?)\}};", src, re.S)
    assert m, f"{head} not found"
    return m.group(1)


def c_enum(name: str, enum: str) -> dict[str, int]:
    """The enumerators of ``enum <enum>`` in probes/<name>, with their values."""
    out, value = {}, -1
    for item in (i.strip() for i in _block(_source(name), f"enum {enum}").split(",")):
        if not item:
            continue
        ident, _, explicit = (p.strip() for p in item.partition("="))
        value = int(explicit, 0) if explicit else value + 1
        out[ident] = value
    return out


def c_struct(name: str, struct_name: str) -> list[tuple[str, str]]:
    """(field, struct code) of ``struct <struct_name>``; arrays as "<n>x" when
    named pad, else repeated codes."""
    out = []
    for decl in (d.strip() for d in _block(_source(name), f"struct {struct_name}").split(";")):
        if not decl:
            continue
        m = re.fullmatch(r"(\w+)\s+(\w+)(?:\[(\d+)\])?", decl)
        assert m and m.group(1) in C_CODES, f"unexpected field {decl!r}"
        ctype, field, n = m.groups()
        if field.startswith("pad"):
            out.append(("", f"{int(n or 1) * struct.calcsize(C_CODES[ctype])}x"))
        else:
            assert n is None, f"array field {field} has no Python counterpart"
            out.append((field, C_CODES[ctype]))
    return out


@pytest.mark.parametrize("probe, counters", [("filemap.c", probes.COUNTERS),
                                             ("ishare.c", sharing.COUNTERS)])
def test_counters_match_enum_counter(probe, counters):
    enum = c_enum(probe, "counter")
    assert enum.pop("CNT_MAX") == len(enum)
    assert sorted(enum, key=enum.get) == [f"CNT_{c.upper()}" for c in counters]
    assert sorted(enum.values()) == list(range(len(enum)))


def test_page_event_layout_matches_the_decoder():
    fields = c_struct("filemap.c", "page_event")
    assert fields == list(fmt.PROBE_EVENT_FIELDS)
    assert fmt.PROBE_EVENT.size == 48


def test_event_kinds_match_enum_event_kind():
    enum = c_enum("filemap.c", "event_kind")
    assert enum == {f"EV_{k.name}": k.value for k in
                    (EventKind.ADD, EventKind.DELETE, EventKind.READAHEAD, EventKind.READ_FOLIO)}
    # every event the probe emits is named, never a bare number
    emits = re.findall(r"\bEMIT\(\s*\w+\s*,\s*(\w+)\s*,", _source("filemap.c"))
    assert emits and set(emits) - {"kind"} == set(enum), emits


def test_decoded_probe_records_carry_every_field():
    rec = fmt.PROBE_EVENT.pack(11, 22, 33, 44, 55, 66, 77, int(EventKind.READAHEAD))
    b = fmt.EventBatch.from_probe_records(rec * 2)
    assert (b.ts_ns[1], b.cgroup_id[1], b.ino[1], b.index[1], b.dev[1], b.nr_pages[1],
            b.pid[1], b.kind[1]) == (11, 22, 33, 44, 55, 66, 77, EventKind.READAHEAD)
