"""Type and range checks for every field a recording's JSON blocks carry.

A block whose checksum is right can still hold a string where a number
belongs, a NaN timestamp or a list in the metadata (a bug, another tool, a
hand edit).  The reader runs these checks on each block as it is read and
turns a failure into a one-line error naming the block (the first metadata
block) or a warning that the recording is read up to its last good block.
Objects built from the JSON (MountInfo, FileInfo, Readings, Model...) are
checked against their dataclass annotations by ``check_dataclass``.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any

I64 = 2 ** 63
U64 = 2 ** 64                   # kernel addresses and dev_t-like values are u64


class Invalid(ValueError):
    """A field of the wrong type or out of range; the message names it."""


def _show(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def integer(d: dict, key: str, lo: int = 0, hi: int = I64 - 1, *, required: bool = True):
    if key not in d:
        if required:
            raise Invalid(f"{key} missing")
        return None
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise Invalid(f"{key} must be an integer in [{lo}, {hi}], not {_show(v)}")
    return v


def number(d: dict, key: str, lo: float = -1e18, hi: float = 1e18, *, required: bool = True):
    if key not in d:
        if required:
            raise Invalid(f"{key} missing")
        return None
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) \
            or not lo <= v <= hi:
        raise Invalid(f"{key} must be a finite number in [{lo:g}, {hi:g}], not {_show(v)}")
    return v


def string(d: dict, key: str, *, required: bool = False):
    if key not in d:
        if required:
            raise Invalid(f"{key} missing")
        return None
    if not isinstance(d[key], str):
        raise Invalid(f"{key} must be a string, not {_show(d[key])}")
    return d[key]


def boolean(d: dict, key: str):
    if key in d and not isinstance(d[key], bool):
        raise Invalid(f"{key} must be true or false, not {_show(d[key])}")


def obj(v: Any, what: str) -> dict:
    if not isinstance(v, dict):
        raise Invalid(f"{what} must be a JSON object, not {_show(v)}")
    return v


def array(d: dict, key: str, *, required: bool = False) -> list:
    if key not in d:
        if required:
            raise Invalid(f"{key} missing")
        return []
    if not isinstance(d[key], list):
        raise Invalid(f"{key} must be a list, not {_show(d[key])}")
    return d[key]


# ---------------------------------------------------------------- dataclasses
def _check(v: Any, t: Any, where: str) -> None:
    if t is Any:
        return
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for a in args:
            try:
                _check(v, a, where)
                return
            except Invalid as e:
                errors.append(str(e))
        raise Invalid(errors[0] if errors else f"{where}: bad value {_show(v)}")
    if t is type(None):
        if v is not None:
            raise Invalid(f"{where} must be null, not {_show(v)}")
        return
    if t is bool:
        if not isinstance(v, bool):
            raise Invalid(f"{where} must be true or false, not {_show(v)}")
        return
    if t is int:
        if isinstance(v, bool) or not isinstance(v, int) or not -I64 <= v < U64:
            raise Invalid(f"{where} must be an integer, not {_show(v)}")
        return
    if t is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise Invalid(f"{where} must be a finite number, not {_show(v)}")
        return
    if t is str:
        if not isinstance(v, str):
            raise Invalid(f"{where} must be a string, not {_show(v)}")
        return
    if origin in (list, set, frozenset, tuple):
        # JSON has no tuples: a tuple field comes back from a recording as a list
        if not isinstance(v, origin) and not (origin is tuple and isinstance(v, list)):
            raise Invalid(f"{where} must be a {origin.__name__}, not {_show(v)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(v) != len(args):
                raise Invalid(f"{where} must have {len(args)} items, not {_show(v)}")
            for i, (x, a) in enumerate(zip(v, args)):
                _check(x, a, f"{where}[{i}]")
            return
        for i, x in enumerate(v):
            _check(x, args[0] if args else Any, f"{where}[{i}]")
        return
    if origin is dict:
        if not isinstance(v, dict):
            raise Invalid(f"{where} must be an object, not {_show(v)}")
        kt, vt = args if args else (Any, Any)
        for k, x in v.items():
            _check(k, kt, f"{where} key")
            _check(x, vt, f"{where}[{k!r}]")
        return
    if dataclasses.is_dataclass(t):
        if not isinstance(v, t):
            raise Invalid(f"{where} must be a {t.__name__}, not {_show(v)}")
        check_dataclass(v, where)
        return
    if isinstance(t, type) and not isinstance(v, t):
        raise Invalid(f"{where} must be a {t.__name__}, not {_show(v)}")


_HINTS: dict[type, dict[str, Any]] = {}


def check_dataclass(o: Any, where: str = "") -> None:
    """Every field of dataclass instance ``o`` has its annotated type (numbers finite)."""
    cls = type(o)
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    for f in dataclasses.fields(o):
        _check(getattr(o, f.name), hints.get(f.name, Any), f"{where or cls.__name__}.{f.name}")


# ---------------------------------------------------------------- blocks
def tick(d: Any) -> None:
    obj(d, "tick")
    integer(d, "ts_ns")
    number(d, "wall", 0, 1e11, required=False)
    for k in ("events_total", "lost_events_total", "bytes_written", "page_cache_bytes"):
        integer(d, k, required=False)


def end(d: Any) -> None:
    obj(d, "end block")
    integer(d, "ts_ns", required=False)
    number(d, "ended_at", 0, 1e11, required=False)
    string(d, "reason")
    string(d, "write_error")
    boolean(d, "max_size_reached")
    for k in ("events_total", "lost_events_total", "events_written", "events_unwritten"):
        integer(d, k, required=False)


def model_block(d: Any) -> None:
    obj(d, "model block")
    integer(d, "ts_ns")
    integer(d, "read_ts_ns", required=False)
    m = obj(d.get("model"), "model")
    from ..model import Model
    try:
        model = Model.from_dict(m)
    except Invalid:
        raise
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise Invalid(f"model: {type(e).__name__}: {e}") from None
    check_dataclass(model, "model")
    if model.page_size <= 0:
        raise Invalid(f"model.page_size must be positive, not {model.page_size}")


def meta(d: Any, first: bool) -> None:
    obj(d, "metadata")
    number(d, "started_at", 0, 1e11, required=first)
    integer(d, "mono_start_ns", required=first)
    ps = integer(d, "page_size", 512, 1 << 24, required=False)
    if ps is not None and ps & (ps - 1):
        raise Invalid(f"page_size must be a power of 2, not {ps}")
    integer(d, "files_cap", 0, 10 ** 9, required=False)
    integer(d, "max_size_bytes", 0, required=False) if d.get("max_size_bytes") is not None \
        else None
    for k in ("tier", "kernel", "hostname", "erofs_top"):
        string(d, k)
    for i, c in enumerate(array(d, "command")):
        if not isinstance(c, str):
            raise Invalid(f"command[{i}] must be a string, not {_show(c)}")
    for i, m in enumerate(array(d, "mounts")):
        obj(m, f"mounts[{i}]")
    for i, f in enumerate(array(d, "files")):
        obj(f, f"files[{i}]")
    cgs = obj(d.get("cgroups", {}), "cgroups")
    for k, v in cgs.items():
        if not (isinstance(k, str) and k.isdigit()) or not isinstance(v, str):
            raise Invalid(f"cgroups must map cgroup ids to paths, not {_show(k)}: {_show(v)}")


def state(d: Any) -> None:
    obj(d, "state block")
    integer(d, "ts_ns")
    for i, row in enumerate(array(d, "backing_pages")):
        if not (isinstance(row, list) and len(row) == 3 and
                all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x < U64
                    for x in row)):
            raise Invalid(f"backing_pages[{i}] must be [dev, ino, pages], not {_show(row)}")
    array(d, "shared")


def seed(d: Any) -> None:
    obj(d, "seed block")
    integer(d, "ts_ns", required=False)
    obj(d.get("readings"), "readings")
