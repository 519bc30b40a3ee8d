"""Names are bytes: paths and cgroup names exactly as the kernel gives them.

Inside erofs-top a name is a ``str`` decoded from the kernel's bytes with
``os.fsdecode`` (UTF-8 + ``surrogateescape``): every byte sequence round-trips
through ``os.fsencode``, so opening, stat'ing and walking use the exact name
even when it is not valid UTF-8 (a byte 0xe9 becomes the lone surrogate
U+DCE9).  Such a string must never leave the process raw:

- ``display(name)``: for terminals, tables and Prometheus label values:
  every control, format and non-printable character (and every undecodable
  byte) becomes a visible escape (``\\n``, ``\\t``, ``\\x1b``, ``\\xe9``,
  ``\\u202e``); nothing can move the cursor, set a title or split a row.
- ``json_name(name)``: for JSON documents: a valid-UTF-8 text (undecodable
  bytes replaced by U+FFFD) and, only when that lost bytes, the exact bytes
  in base64 (the ``*_b64`` keys of docs/json.md).
- ``read_text(path)`` / ``decode(raw)``: kernel text files (mountinfo,
  /proc/PID/cgroup, cgroup.procs) read without a UnicodeDecodeError.
"""
from __future__ import annotations

import base64
import os
import re
import unicodedata

_SURROGATE = re.compile("[\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
# categories shown escaped: controls, format chars (bidi overrides), surrogates,
# private use, unassigned, line/paragraph separators
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


def decode(raw: bytes) -> str:
    """Kernel bytes -> internal name (lossless, never raises)."""
    return os.fsdecode(raw)


def encode(name: str) -> bytes:
    """Internal name -> the kernel's bytes (a lone surrogate that is no escaped
    byte, which no kernel name decodes to, is encoded as U+FFFD)."""
    try:
        return os.fsencode(name)
    except UnicodeEncodeError:
        return "".join(ch if not 0xD800 <= ord(ch) <= 0xDC7F and not 0xDD00 <= ord(ch) <= 0xDFFF
                       else "\ufffd" for ch in name).encode("utf-8", "surrogateescape")


def read_text(path: str) -> str:
    """A kernel text file (mountinfo, /proc/PID/cgroup...) as an internal str:
    names in it keep their exact bytes.  Raises OSError like open()."""
    with open(path, "rb") as f:
        return decode(f.read())


def is_exact_utf8(name: str) -> bool:
    """The name's bytes are valid UTF-8 (no escaped byte inside)."""
    return _SURROGATE.search(name) is None


def _escape_char(ch: str) -> str:
    o = ord(ch)
    if ch in _NAMED:
        return _NAMED[ch]
    if 0xDC80 <= o <= 0xDCFF:            # an undecodable byte, surrogate-escaped
        return f"\\x{o - 0xDC00:02x}"
    if o < 0x80:
        return f"\\x{o:02x}"
    if o < 0x10000:
        return f"\\u{o:04x}"
    return f"\\U{o:08x}"


def display(name: str) -> str:
    """A name safe to print on a terminal or put in a label value: printable
    characters stay, every other one becomes a visible escape."""
    if name.isprintable() and is_exact_utf8(name):
        return name
    return "".join(_escape_char(ch) if ch != " " and (
        not ch.isprintable() or unicodedata.category(ch) in _UNSAFE_CATEGORIES) else ch
        for ch in name)


def json_name(name: str) -> tuple[str, str | None]:
    """(valid UTF-8 text, base64 of the exact bytes or None when the text is exact)."""
    if is_exact_utf8(name):
        return name, None
    raw = encode(name)
    return raw.decode("utf-8", "replace"), base64.b64encode(raw).decode("ascii")


def from_json_name(text: str, b64: str | None) -> str:
    """Inverse of json_name: the internal name (exact when b64 is given)."""
    if b64:
        return decode(base64.b64decode(b64, validate=True))
    return text


def json_safe(obj):
    """A JSON-able structure with every string made valid UTF-8 (escaped bytes
    replaced by U+FFFD): for documents without a ``*_b64`` convention."""
    if isinstance(obj, str):
        return obj if is_exact_utf8(obj) else encode(obj).decode("utf-8", "replace")
    if isinstance(obj, dict):
        return {json_safe(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


# name-carrying keys of the Model's JSON document (docs/json.md): list -> keys
MODEL_NAME_KEYS = {"containers": ("cgroup",),
                   "mounts": ("mountpoint", "source", "backing_file"),
                   "files": ("path",)}


def model_names_to_json(doc: dict) -> dict:
    """In place on Model.to_dict(): each name becomes valid UTF-8 text, with a
    ``<key>_b64`` of its exact bytes beside it where the text could not be exact."""
    for section, keys in MODEL_NAME_KEYS.items():
        for item in doc.get(section, ()):
            for k in keys:
                v = item.get(k)
                if isinstance(v, str):
                    text, b64 = json_name(v)
                    item[k] = text
                    if b64 is not None:
                        item[k + "_b64"] = b64
    # anything else that quotes a name (warnings...) only needs to be valid
    for k, v in doc.items():
        doc[k] = json_safe(v)
    return doc


def model_names_from_json(doc: dict) -> dict:
    """Inverse of model_names_to_json on a parsed document (a copy of the
    sections it touches): the ``*_b64`` keys go, their names come back exact."""
    doc = dict(doc)
    for section, keys in MODEL_NAME_KEYS.items():
        items = []
        for item in doc.get(section, ()):
            item = dict(item)
            for k in keys:
                b64 = item.pop(k + "_b64", None)
                if b64 is not None:
                    item[k] = from_json_name(item.get(k, ""), b64)
            items.append(item)
        if section in doc:
            doc[section] = items
    return doc
