"""Names are bytes: decoding, terminal/label escaping, lossless JSON."""
from __future__ import annotations

import base64
import json
import os

from erofs_top.model import Container, File, Model, Mount
from erofs_top.names import display, json_name, json_safe, read_text
from erofs_top.resolve.mounts import parse_mountinfo, unescape

E9 = os.fsdecode(b"caf\xe9")


def test_display_escapes_every_control_and_undecodable_byte():
    assert display("/plain/path é ü") == "/plain/path é ü"
    assert display(E9) == "caf\\xe9"
    assert display("a\nb\tc\rd") == "a\\nb\\tc\\rd"
    assert display("t\x1b]0;x\x07") == "t\\x1b]0;x\\x07"
    assert display("\x9b31m") == "\\u009b31m"            # C1 CSI as a code point
    assert display("bidi\u202eevil") == "bidi\\u202eevil"
    assert display("line\u2028sep") == "line\\u2028sep"
    for s in (E9, "a\nb", "t\x1b]0;x\x07", "\u202e", "\udcff\x00"):
        out = display(s)
        assert out.isprintable() and display(out) == out
        out.encode("utf-8")


def test_json_name_exact_only_where_it_must_be():
    assert json_name("/ok/ü\n") == ("/ok/ü\n", None)
    text, b64 = json_name("/m/" + E9)
    assert text == "/m/caf\ufffd"
    assert base64.b64decode(b64) == b"/m/caf\xe9"


def test_model_json_is_valid_utf8_and_lossless():
    path = os.fsdecode(b"/mnt/\xff\xfe/t\x1b]0;x\x07\n.bin")
    m = Model(tier="snapshot", started_at=0.0, ended_at=1.0, page_size=4096,
              containers=[Container(cgroup_id=5, cgroup=os.fsdecode(b"/k/\xe9"))],
              mounts=[Mount(dev="0:1", mountpoint=os.fsdecode(b"/mnt/\xff\xfe"),
                            source="/img", backing="file")],
              files=[File(dev="0:1", ino=1, path=path, content_id="", size=1,
                          resident_bytes=4096, duplicate_bytes=0, copies=1)])
    m.health.warnings.append("source " + E9 + " not visible")
    text = json.dumps(m.to_dict())
    text.encode("utf-8")                 # no lone surrogate anywhere
    doc = json.loads(text)
    f = doc["files"][0]
    assert base64.b64decode(f["path_b64"]) == os.fsencode(path)
    assert base64.b64decode(doc["mounts"][0]["mountpoint_b64"]) == b"/mnt/\xff\xfe"
    assert "source_b64" not in doc["mounts"][0]
    assert doc["health"]["warnings"] == ["source caf\ufffd not visible"]
    back = Model.from_dict(doc)
    assert back.files[0].path == path
    assert back.containers[0].cgroup == os.fsdecode(b"/k/\xe9")
    assert back.mounts[0].mountpoint == os.fsdecode(b"/mnt/\xff\xfe")


def test_mountinfo_octal_escapes_are_bytes():
    assert os.fsencode(unescape("/a\\040b\\351")) == b"/a b\xe9"
    raw = (b"36 35 0:50 / /t/a\\040\xe9\xc2\x85\x1cb rw - tmpfs none rw\n"
           b"37 35 0:51 / /t/x\\012y rw - erofs /img\\011x ro\n")
    es = parse_mountinfo(os.fsdecode(raw))
    assert [os.fsencode(e.mountpoint) for e in es] == [b"/t/a \xe9\xc2\x85\x1cb", b"/t/x\ny"]
    assert es[1].source == "/img\tx"


def test_read_text_keeps_bytes(tmp_path):
    p = tmp_path / "mi"
    p.write_bytes(b"x \xe9 y\n")
    assert os.fsencode(read_text(str(p))) == b"x \xe9 y\n"


def test_json_safe():
    assert json_safe({"a": [E9, 1]}) == {"a": ["caf\ufffd", 1]}


def test_text_tables_escape_names():
    from erofs_top.cli import render_text
    path = os.fsdecode(b"/m/\xe9/t\x1b]0;x\x07\nrow.bin")
    m = Model(tier="snapshot", started_at=0.0, ended_at=1.0, page_size=4096,
              containers=[Container(cgroup_id=5, cgroup="/k/a\tb", resident_bytes=1)],
              mounts=[Mount(dev="0:1", mountpoint=os.fsdecode(b"/m/\xe9"), source="/i",
                            backing="file")],
              files=[File(dev="0:1", ino=1, path=path, content_id="", size=1,
                          resident_bytes=4096, duplicate_bytes=0, copies=1)])
    text = render_text(m)
    assert all(ch == "\n" or ch.isprintable() for ch in text)
    assert "/m/\\xe9/t\\x1b]0;x\\x07\\nrow.bin" in text
    assert "/k/a\\tb" in text
    assert len(text.splitlines()) == len(render_text(Model(
        tier="snapshot", started_at=0.0, ended_at=1.0, page_size=4096,
        containers=[Container(cgroup_id=5, cgroup="/k", resident_bytes=1)],
        mounts=[Mount(dev="0:1", mountpoint="/m", source="/i", backing="file")],
        files=[File(dev="0:1", ino=1, path="/m/f", content_id="", size=1,
                    resident_bytes=4096, duplicate_bytes=0, copies=1)])).splitlines())


def test_tui_names_escaped():
    from erofs_top.tui.common import container_name
    from erofs_top.tui.detail import _files_table, _kv
    c = Container(cgroup_id=5, cgroup=os.fsdecode(b"/k/\xe9\x1b]0;t\x07\nx"))
    assert container_name(c) == "/k/\\xe9\\x1b]0;t\\x07\\nx"
    line = _kv(200, [("cgroup", c.cgroup)])
    assert "\n" not in line and "\x1b" not in line and "\\xe9" in line
    rows = _files_table([File(dev="0:1", ino=1, path="/m/a\tb\x1b[2J", content_id="", size=1,
                              resident_bytes=1, duplicate_bytes=0, copies=1)], 120)
    assert len(rows) == 2 and all(r.isprintable() for r in rows)
