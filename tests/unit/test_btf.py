"""erofs_top/kernel/btf.py: struct layouts for probes/ishare.c from kernel BTF.

Pure part on hand-built types (expected offsets worked out by hand from the
C layout each case mimics); the libbpf reader against an independent raw
parse of /sys/kernel/btf/vmlinux written here; the contract between the
READ_FIELD uses in probes/ishare.c and btf.FIELDS.  (The lab checks the
macros against the kernel's own header tree: tests/vm/test_sharing_probes.py.)"""
from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from erofs_top.kernel import btf
from erofs_top.kernel.btf import Member, Type

ISHARE = Path(__file__).resolve().parents[2] / "probes" / "ishare.c"
VMLINUX = "/sys/kernel/btf/vmlinux"


class FakeBtf:
    """Types by id, as BTF numbers them (0 is void)."""

    def __init__(self, types: dict[int, Type]):
        self.types = types

    def find(self, name, kind):
        return next((i for i, t in self.types.items() if t.name == name and t.kind == kind), None)

    def type(self, type_id):
        return self.types[type_id]


def _m(name, type_id, byte_off, bits=0):
    return Member(name, type_id, byte_off * 8, bits)


# struct demo {                      offset
#     unsigned int a;                0
#     union {                        8 (aligned to the pointer in it)
#         struct { long b; const u64_t c; };   b 8, c 16
#         void *d;                   8
#     };
#     struct inner e;                24: x 24, y 32
#     char f[3];                     40
#     unsigned int g:3;              bitfield at bit 344 (byte 43)
# };
FAKE = FakeBtf({
    1: Type(btf.KIND_INT, "unsigned int", 4),
    2: Type(btf.KIND_INT, "long", 8),
    3: Type(btf.KIND_TYPEDEF, "u64_t", 2),
    4: Type(btf.KIND_CONST, "", 3),
    5: Type(btf.KIND_STRUCT, "", 16, members=(_m("b", 2, 0), _m("c", 4, 8))),
    6: Type(btf.KIND_PTR, "", 0),
    7: Type(btf.KIND_UNION, "", 16, members=(_m("", 5, 0), _m("d", 6, 0))),
    8: Type(btf.KIND_STRUCT, "inner", 16, members=(_m("x", 2, 0), _m("y", 1, 8))),
    9: Type(btf.KIND_INT, "char", 1),
    10: Type(btf.KIND_ARRAY, "", 0, array_elem=9, array_len=3),
    11: Type(btf.KIND_STRUCT, "demo", 48, members=(
        _m("a", 1, 0), _m("", 7, 8), _m("e", 8, 24), _m("f", 10, 40),
        Member("g", 1, 344, 3))),
    12: Type(btf.KIND_ENUM, "flags", 4, enum_values=(("F_A", 0), ("F_HEAD", 6))),
    13: Type(btf.KIND_ENUM64, "wide", 8, enum_values=(("W_BIG", 1 << 40),)),
})


@pytest.mark.parametrize("path,expected", [
    ("a", (0, 4)),
    ("b", (8, 8)),          # two anonymous levels down
    ("c", (16, 8)),         # through const and typedef to long
    ("d", (8, 8)),          # a pointer: 8 bytes
    ("e", (24, 16)),
    ("e.x", (24, 8)),
    ("e.y", (32, 4)),
    ("f", (40, 3)),         # an array: 3 x 1 byte
])
def test_member_offsets_through_anonymous_members_and_typedefs(path, expected):
    assert btf.member_offset(FAKE, "demo", path) == expected


@pytest.mark.parametrize("path,why", [("g", "bitfield"), ("zz", "no member"), ("e.zz", "no member")])
def test_bitfields_and_missing_members_are_refused(path, why):
    with pytest.raises(btf.BtfError, match=why):
        btf.member_offset(FAKE, "demo", path)


def test_a_missing_struct_is_refused():
    with pytest.raises(btf.BtfError, match="not in BTF"):
        btf.member_offset(FAKE, "nosuch", "a")


def test_enum_values_from_enum_and_enum64():
    assert btf.enum_value(FAKE, "flags", "F_HEAD") == 6
    assert btf.enum_value(FAKE, "wide", "W_BIG") == 1 << 40
    with pytest.raises(btf.BtfError):
        btf.enum_value(FAKE, "flags", "F_NONE")


def test_layout_cflags_name_every_field_and_refuse_non_scalars():
    flags = btf.layout_cflags(FAKE, fields=(("demo", "e.y"), ("demo", "b")),
                              enums=(("flags", "F_HEAD"),))
    assert flags == ["-DBTF_LAYOUT", "-DOFF_demo__e__y=32", "-DSZ_demo__e__y=4",
                     "-DOFF_demo__b=8", "-DSZ_demo__b=8", "-DVAL_flags__F_HEAD=6"]
    with pytest.raises(btf.BtfError, match="not a scalar"):
        btf.layout_cflags(FAKE, fields=(("demo", "e"),), enums=())


# ------------------------------------------------------------ the probe's contract
def _read_field_uses() -> set[tuple[str, str]]:
    text = re.sub(r"/\*.*?\*/", " ", ISHARE.read_text(), flags=re.S)
    plain = {(st, f) for st, f in re.findall(r"READ_FIELD\([^,]+,\s*\w+,\s*(\w+),\s*(\w+)\)", text)
             if st != "st"}
    nested = {(st, f"{f}.{g}") for st, f, g in
              re.findall(r"READ_NESTED\([^,]+,\s*\w+,\s*(\w+),\s*(\w+),\s*(\w+)\)", text)
              if st != "st"}
    return plain | nested


def test_every_field_the_probe_reads_is_in_fields_and_no_other():
    uses = _read_field_uses()
    assert len(uses) >= 10, uses
    assert uses == set(btf.FIELDS)


def test_no_struct_dereference_outside_read_field():
    """A kernel struct read through ``->`` would need the headers BTF mode
    leaves out: every bpf_probe_read_kernel of ishare.c goes through
    READ_FIELD (its one raw use reads a folio's first word, at offset 0)."""
    text = re.sub(r"/\*.*?\*/", " ", ISHARE.read_text(), flags=re.S)
    raw = re.findall(r"bpf_probe_read_kernel\(([^;]*)\);", text)
    assert raw, "no bpf_probe_read_kernel found"
    assert all("->" not in call for call in raw), [c for c in raw if "->" in c]


# ------------------------------------------------------------ the running kernel
class RawBtf:
    """An independent reader of the raw BTF blob (uapi/linux/btf.h layout):
    walks every type record in Python."""

    FIXED = {1: 4, 3: 12, 14: 4, 17: 4}                  # INT, ARRAY, VAR, DECL_TAG
    PER_VLEN = {4: 12, 5: 12, 6: 8, 13: 8, 15: 12, 19: 12}   # members, values, params

    def __init__(self, blob: bytes):
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, _str_len = \
            struct.unpack_from("<HBBIIIII", blob)
        assert magic == 0xEB9F
        self.strings = blob[hdr_len + str_off:]
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        self.records = [None]
        while pos < end:
            name_off, info, size_or_type = struct.unpack_from("<III", blob, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            self.records.append((pos, name_off, info, size_or_type))
            pos += 12 + self.FIXED.get(kind, 0) + vlen * self.PER_VLEN.get(kind, 0)
        assert pos == end, "type section not walked to its end"
        self.blob = blob

    def name(self, off: int) -> str:
        return self.strings[off:self.strings.index(b"\0", off)].decode()

    def find(self, name: str, kind: int):
        for i, rec in enumerate(self.records[1:], 1):
            if (rec[2] >> 24) & 0x1F == kind and self.name(rec[1]) == name:
                return i
        return None

    def type(self, type_id: int) -> Type:
        pos, name_off, info, size_or_type = self.records[type_id]
        kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
        if kind in (btf.KIND_STRUCT, btf.KIND_UNION):
            members = []
            for i in range(vlen):
                n, t, off = struct.unpack_from("<III", self.blob, pos + 12 + 12 * i)
                members.append(Member(self.name(n), t, off & 0xFFFFFF if kflag else off,
                                      off >> 24 if kflag else 0))
            return Type(kind, self.name(name_off), size_or_type, members=tuple(members))
        if kind == btf.KIND_ENUM:
            vals = tuple((self.name(n), v) for n, v in
                         (struct.unpack_from("<Ii", self.blob, pos + 12 + 8 * i) for i in range(vlen)))
            return Type(kind, self.name(name_off), size_or_type, enum_values=vals)
        if kind == btf.KIND_ARRAY:
            elem, _idx, nelems = struct.unpack_from("<III", self.blob, pos + 12)
            return Type(kind, "", 0, array_elem=elem, array_len=nelems)
        return Type(kind, self.name(name_off), size_or_type)


def test_libbpf_reader_agrees_with_a_raw_parse_of_the_running_kernel():
    with open(VMLINUX, "rb") as f:
        raw = RawBtf(f.read())
    lib = btf.VmlinuxBtf()
    try:
        for struct_name, path in btf.FIELDS:
            assert btf.member_offset(lib, struct_name, path) == \
                btf.member_offset(raw, struct_name, path), (struct_name, path)
        # a layout that has not changed in twenty years
        assert btf.member_offset(lib, "list_head", "next") == (0, 8)
        assert btf.member_offset(lib, "list_head", "prev") == (8, 8)
        assert btf.enum_value(lib, "pageflags", "PG_head") == \
            btf.enum_value(raw, "pageflags", "PG_head")
    finally:
        lib.close()


def test_cflags_cover_every_field_on_the_running_kernel():
    flags, why = btf.cflags()
    assert flags is not None, why
    names = {f.split("=")[0] for f in flags}
    for struct_name, path in btf.FIELDS:
        assert f"-DOFF_{btf.macro_name(struct_name, path)}" in names
