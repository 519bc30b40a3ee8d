"""Kernel struct layouts from the running kernel's BTF, for probes/ishare.c.

Why: compiling ishare.c against the kernel header tree (``linux/fs.h``,
``linux/mm_types.h``, ``linux/page-flags.h``) is most of the full tier's
start-up: in the qemu lab (Linux 7.2 under TCG) those three headers take
~20 s of the file's ~27 s compile, a one-line program 3-4 s
(docs/performance.md, "Start-up").  The probe reads a few fields of a few
structs; their byte offsets and sizes, and one enum value, come from
``/sys/kernel/btf/vmlinux`` instead and go to the compiler as ``-D``
macros (``OFF_<struct>__<field>``, ``SZ_<struct>__<field>``,
``VAL_<enum>__<name>``).  Where BTF or a field is missing, ishare.c is
compiled with the headers as before (``cflags()`` returns None).

BTF is parsed by libbpf (``btf__load_vmlinux_btf``: libbpf1 is a
dependency of BCC's libbpfcc), read through ctypes: one C parse (tens of
ms), no Python walk of the ~150,000 types.

Layout lookup is pure (``member_offset`` on any ``TypeSource``); only
``VmlinuxBtf`` touches the kernel.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from dataclasses import dataclass
from typing import Protocol

# BTF kinds (include/uapi/linux/btf.h)
KIND_INT, KIND_PTR, KIND_ARRAY, KIND_STRUCT, KIND_UNION, KIND_ENUM = 1, 2, 3, 4, 5, 6
KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT = 8, 9, 10, 11
KIND_FLOAT, KIND_TYPE_TAG, KIND_ENUM64 = 16, 18, 19
_MODIFIERS = (KIND_TYPEDEF, KIND_VOLATILE, KIND_CONST, KIND_RESTRICT, KIND_TYPE_TAG)
_SIZED = (KIND_INT, KIND_STRUCT, KIND_UNION, KIND_ENUM, KIND_FLOAT, KIND_ENUM64)
POINTER_BYTES = 8           # 64-bit kernels only (the full tier: x86-64, arm64)

# What probes/ishare.c reads: (struct, dotted field path).  A path goes
# through anonymous structs/unions by itself; dots name nested members.
FIELDS: tuple[tuple[str, str], ...] = (
    ("super_block", "s_magic"),
    ("super_block", "s_type"),
    ("super_block", "s_dev"),
    ("file_system_type", "name"),
    ("address_space", "host"),
    ("inode", "i_sb"),
    ("inode", "i_ino"),
    ("inode", "i_size"),
    ("inode", "i_mapping"),
    ("folio", "mapping"),
    ("folio", "index"),
    ("folio", "_flags_1"),
    ("file", "private_data"),
    ("file", "f_inode"),
    ("file", "f_mapping"),
    ("file", "f_ra.prev_pos"),
    ("kiocb", "ki_filp"),
    ("kiocb", "ki_flags"),
    ("kiocb", "ki_pos"),
    ("iov_iter", "count"),
)
ENUMS: tuple[tuple[str, str], ...] = (("pageflags", "PG_head"),)


class BtfError(Exception):
    pass


@dataclass(frozen=True)
class Member:
    name: str
    type_id: int
    bit_offset: int
    bitfield_bits: int          # 0: not a bitfield


@dataclass(frozen=True)
class Type:
    kind: int
    name: str
    size_or_type: int           # size for sized kinds, the referred type id otherwise
    members: tuple[Member, ...] = ()
    enum_values: tuple[tuple[str, int], ...] = ()
    array_elem: int = 0         # ARRAY: element type id
    array_len: int = 0


class TypeSource(Protocol):
    def find(self, name: str, kind: int) -> int | None: ...
    def type(self, type_id: int) -> Type: ...


def resolve(src: TypeSource, type_id: int) -> tuple[int, Type]:
    """Through typedefs and qualifiers to the type they name."""
    for _ in range(32):
        t = src.type(type_id)
        if t.kind not in _MODIFIERS:
            return type_id, t
        type_id = t.size_or_type
    raise BtfError(f"type {type_id}: qualifier chain too long")


def type_size(src: TypeSource, type_id: int) -> int:
    _, t = resolve(src, type_id)
    if t.kind == KIND_PTR:
        return POINTER_BYTES
    if t.kind == KIND_ARRAY:
        return t.array_len * type_size(src, t.array_elem)
    if t.kind in _SIZED:
        return t.size_or_type
    raise BtfError(f"type {type_id} ({t.name or 'anonymous'}): no size")


def _find_member(src: TypeSource, type_id: int, name: str) -> tuple[int, Member] | None:
    """(bit offset, member) of ``name`` in a struct/union, looking into
    anonymous members (depth first, as C does)."""
    _, t = resolve(src, type_id)
    if t.kind not in (KIND_STRUCT, KIND_UNION):
        return None
    for m in t.members:
        if m.name == name:
            return m.bit_offset, m
    for m in t.members:
        if not m.name:
            inner = _find_member(src, m.type_id, name)
            if inner is not None:
                return m.bit_offset + inner[0], inner[1]
    return None


def member_offset(src: TypeSource, struct_name: str, path: str) -> tuple[int, int]:
    """(byte offset, byte size) of ``struct <struct_name>``'s ``path``
    (``a`` or ``a.b``).  BtfError if missing or a bitfield."""
    type_id = src.find(struct_name, KIND_STRUCT)
    if type_id is None:
        raise BtfError(f"struct {struct_name}: not in BTF")
    bits = 0
    for part in path.split("."):
        found = _find_member(src, type_id, part)
        if found is None:
            raise BtfError(f"struct {struct_name}: no member {path}")
        bits += found[0]
        if found[1].bitfield_bits or bits % 8:
            raise BtfError(f"struct {struct_name}.{path}: a bitfield")
        type_id = found[1].type_id
    return bits // 8, type_size(src, type_id)


def enum_value(src: TypeSource, enum_name: str, name: str) -> int:
    for kind in (KIND_ENUM, KIND_ENUM64):
        type_id = src.find(enum_name, kind)
        if type_id is not None:
            values = dict(src.type(type_id).enum_values)
            if name in values:
                return values[name]
    raise BtfError(f"enum {enum_name}: no {name}")


def macro_name(struct_name: str, path: str) -> str:
    return f"{struct_name}__{path.replace('.', '__')}"


def layout_cflags(src: TypeSource, fields=FIELDS, enums=ENUMS) -> list[str]:
    """-D macros for every field and enum value: OFF_/SZ_/VAL_.  A size over
    8 bytes is refused (the probe reads each field into a u64)."""
    out = ["-DBTF_LAYOUT"]
    for struct_name, path in fields:
        off, size = member_offset(src, struct_name, path)
        if not 0 < size <= 8:
            raise BtfError(f"struct {struct_name}.{path}: {size} bytes, not a scalar")
        name = macro_name(struct_name, path)
        out += [f"-DOFF_{name}={off}", f"-DSZ_{name}={size}"]
    for enum_name, name in enums:
        out.append(f"-DVAL_{enum_name}__{name}={enum_value(src, enum_name, name)}")
    return out


# ------------------------------------------------------------ libbpf reader
class _BtfType(ctypes.Structure):
    _fields_ = [("name_off", ctypes.c_uint32), ("info", ctypes.c_uint32),
                ("size_or_type", ctypes.c_uint32)]


class VmlinuxBtf:
    """The running kernel's BTF through libbpf; ``close()`` frees it."""

    def __init__(self, lib=None):
        self.lib = lib or _libbpf()
        self.lib.btf__load_vmlinux_btf.restype = ctypes.c_void_p
        self.lib.btf__find_by_name_kind.restype = ctypes.c_int32
        self.lib.btf__find_by_name_kind.argtypes = [ctypes.c_void_p, ctypes.c_char_p,
                                                    ctypes.c_uint32]
        self.lib.btf__type_by_id.restype = ctypes.POINTER(_BtfType)
        self.lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        self.lib.btf__name_by_offset.restype = ctypes.c_char_p
        self.lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        self.lib.btf__free.argtypes = [ctypes.c_void_p]
        self.btf = self.lib.btf__load_vmlinux_btf()
        if not self.btf or self.btf < 4096:       # libbpf 1.x: NULL + errno; 0.x: ERR_PTR
            self.btf = None
            raise BtfError("kernel BTF not readable (/sys/kernel/btf/vmlinux)")
        self._cache: dict[int, Type] = {}

    def close(self) -> None:
        if self.btf:
            self.lib.btf__free(self.btf)
            self.btf = None

    def find(self, name: str, kind: int) -> int | None:
        type_id = self.lib.btf__find_by_name_kind(self.btf, name.encode(), kind)
        return type_id if type_id > 0 else None

    def _name(self, off: int) -> str:
        raw = self.lib.btf__name_by_offset(self.btf, off)
        return raw.decode("utf-8", "replace") if raw else ""

    def type(self, type_id: int) -> Type:
        hit = self._cache.get(type_id)
        if hit is None:
            hit = self._cache[type_id] = self._read(type_id)
        return hit

    def _read(self, type_id: int) -> Type:
        p = self.lib.btf__type_by_id(self.btf, type_id)
        if not p:
            raise BtfError(f"type {type_id}: not in BTF")
        t = p.contents
        kind, vlen, kflag = (t.info >> 24) & 0x1F, t.info & 0xFFFF, t.info >> 31
        rest = ctypes.addressof(t) + ctypes.sizeof(_BtfType)
        name = self._name(t.name_off)
        if kind in (KIND_STRUCT, KIND_UNION):
            words = (ctypes.c_uint32 * (3 * vlen)).from_address(rest)
            members = tuple(_member(self._name(words[3 * i]), words[3 * i + 1],
                                    words[3 * i + 2], kflag) for i in range(vlen))
            return Type(kind, name, t.size_or_type, members=members)
        if kind == KIND_ENUM:
            words = (ctypes.c_int32 * (2 * vlen)).from_address(rest)
            return Type(kind, name, t.size_or_type, enum_values=tuple(
                (self._name(words[2 * i] & 0xFFFFFFFF), words[2 * i + 1]) for i in range(vlen)))
        if kind == KIND_ENUM64:
            words = (ctypes.c_uint32 * (3 * vlen)).from_address(rest)
            return Type(kind, name, t.size_or_type, enum_values=tuple(
                (self._name(words[3 * i]), words[3 * i + 1] | words[3 * i + 2] << 32)
                for i in range(vlen)))
        if kind == KIND_ARRAY:
            words = (ctypes.c_uint32 * 3).from_address(rest)
            return Type(kind, name, 0, array_elem=words[0], array_len=words[2])
        return Type(kind, name, t.size_or_type)


def _member(name: str, type_id: int, offset: int, kflag: int) -> Member:
    if kflag:       # bitfield encoding: size in the top 8 bits, bit offset below
        return Member(name, type_id, offset & 0xFFFFFF, offset >> 24)
    return Member(name, type_id, offset, 0)


def _libbpf():
    path = ctypes.util.find_library("bpf") or "libbpf.so.1"
    try:
        return ctypes.CDLL(path)
    except OSError as e:
        raise BtfError(f"libbpf not loadable ({e})") from None


def cflags() -> tuple[list[str] | None, str]:
    """(-D macros for probes/ishare.c, "") from the running kernel's BTF, or
    (None, why) when BTF, libbpf or a field is missing: the caller then
    compiles with the kernel headers."""
    try:
        src = VmlinuxBtf()
    except BtfError as e:
        return None, str(e)
    try:
        return layout_cflags(src), ""
    except BtfError as e:
        return None, str(e)
    finally:
        src.close()
