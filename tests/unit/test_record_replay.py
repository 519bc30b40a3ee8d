"""Offline model from a recording: replay math, report, timeline, Perfetto
export, the replay source and the click commands.  No root."""
from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from erofs_top.model import Model
from erofs_top.readings import CHUNK_PAGES, EventKind, PageChunk
from erofs_top.record import format as fmt
from erofs_top.record import perfetto, synth, timeline
from erofs_top.record.cli import (export_command, parse_size, record_command, replay_command,
                                  report_command)
from erofs_top.record.reader import Recording
from erofs_top.record.replay import Replayer, page_ranges
from erofs_top.record.report import build_report
from erofs_top.record.source import RecordingSource

PAGE = synth.PAGE
MiB = 1 << 20


@pytest.fixture
def demo(tmp_path):
    return Recording.open(synth.write(str(tmp_path / "demo.rec")))


# ---------------------------------------------------------------- page math
@given(index=st.integers(0, 5000), nr=st.integers(0, 700))
def test_page_ranges_cover_exactly(index, nr):
    pages = set()
    for chunk, mask in page_ranges(index, nr):
        for b in range(CHUNK_PAGES):
            if mask >> b & 1:
                p = chunk * CHUNK_PAGES + b
                assert p not in pages
                pages.add(p)
    assert pages == set(range(index, index + nr))


@settings(max_examples=80, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from([EventKind.ADD, EventKind.DELETE]),
                              st.integers(0, 200), st.sampled_from([1, 2, 4, 16, 64, 128]),
                              st.sampled_from([11, 12, 13])), max_size=120))
def test_replay_matches_a_page_by_page_oracle(tmp_path_factory, ops):
    """Owner per page after any insert/evict sequence: the last inserter owns a
    resident page; evictions go to the owner."""
    s = synth.Script()
    owner: dict[int, int] = {}
    evicted: dict[int, int] = {}
    inserted: dict[int, int] = {}
    for i, (kind, index, nr, cg) in enumerate(ops):
        s.ev(0.001 * (i + 1), kind, synth.DEV_A, synth.LIB_INO, index, nr, cg)
        for p in range(index, index + nr):
            if kind == EventKind.ADD:
                owner[p] = cg
            elif p in owner:
                o = owner.pop(p)
                evicted[o] = evicted.get(o, 0) + 1
        if kind == EventKind.ADD:
            inserted[cg] = inserted.get(cg, 0) + nr
    s.duration_s = 1.0
    path = str(tmp_path_factory.mktemp("o") / "o.rec")
    rec = Recording.open(synth.write(path, s, cgroups={}))
    rp = Replayer(rec)
    rp.advance_to(rec.end_ts_ns)
    r = rp.readings()
    got: dict[int, int] = {}
    for pc in r.chunks:
        for cg, m in pc.owners.items():
            got[cg] = got.get(cg, 0) + m.bit_count()
    want: dict[int, int] = {}
    for cg in owner.values():
        want[cg] = want.get(cg, 0) + 1
    assert got == want
    io = {x.cgroup_id: x for x in r.io}
    for cg, n in inserted.items():
        assert io[cg].inserted_pages == n
    for cg, n in evicted.items():
        assert io[cg].evicted_pages == n


def test_events_before_seed_do_not_double_count(tmp_path):
    """The seed already holds what happened before it was read: page bits are
    idempotent, counters only count events after the seed."""
    s = synth.Script()
    s.seed_chunks.append(PageChunk(synth.DEV_A, synth.LIB_INO, 0, {synth.CG_A: 0xF}, 0))
    s.ev(-0.5, EventKind.ADD, synth.DEV_A, synth.LIB_INO, 0, 4, synth.CG_A)   # before the seed
    s.ev(0.5, EventKind.ADD, synth.DEV_A, synth.LIB_INO, 4, 4, synth.CG_A)
    s.duration_s = 1.0
    rec = Recording.open(synth.write(str(tmp_path / "s.rec"), s))
    m = Replayer(rec).final_model()
    a = next(c for c in m.containers if c.cgroup_id == synth.CG_A)
    assert a.resident_bytes == 8 * PAGE
    assert a.inserted_bytes == 4 * PAGE


# ---------------------------------------------------------------- the demo scenario
def test_final_model_of_demo(demo):
    m = Replayer(demo).final_model()
    a = next(c for c in m.containers if c.cgroup_id == synth.CG_A)
    b = next(c for c in m.containers if c.cgroup_id == synth.CG_B)
    assert a.cgroup == "/kubepods/ctr-a"
    assert a.resident_bytes == (synth.LIB_PAGES + synth.DATA_PAGES - 64) * PAGE
    assert b.resident_bytes == (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE
    assert a.duplicate_bytes == b.duplicate_bytes == synth.LIB_PAGES * PAGE
    assert m.totals.redundant_bytes == synth.LIB_PAGES * PAGE
    assert a.inserted_bytes == (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE
    assert a.evicted_bytes == 64 * PAGE           # the owner, not the reclaiming root cgroup
    assert a.readahead_bytes == (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE
    assert a.read_folio_count == 1
    assert a.seeded_bytes == 8 * PAGE
    assert all(c.cgroup_id != synth.CG_ROOT for c in m.containers)
    assert m.health.lost_events == 7
    assert m.kernel == "6.18.0-synthetic" and m.tier == "tracepoint"
    assert {f.path for f in m.files if f.duplicate_bytes} == {
        "/run/ctr-a/rootfs/usr/lib/libapp.so", "/run/ctr-b/rootfs/usr/lib/libapp.so"}


def test_seek_back_equals_fresh_replay(demo):
    rp = Replayer(demo)
    t3 = demo.mono_start_ns + int(3.5 * synth.SEC)
    late = rp.model_at(demo.end_ts_ns)
    again = rp.model_at(t3)
    fresh = Replayer(demo).model_at(t3)
    assert again.to_dict()["containers"] == fresh.to_dict()["containers"]
    assert late.totals.resident_bytes != again.totals.resident_bytes


def test_report_json_is_once_schema_plus_sections(demo):
    model, doc = build_report(demo)
    keys = list(Model(tier="x", started_at=0, ended_at=0, page_size=1).to_dict())
    assert list(doc)[:len(keys)] == keys
    assert set(doc) == set(keys) | {"timeline", "recording"}
    again = Model.from_dict({k: doc[k] for k in keys})     # the same tools read it
    assert again.to_dict() == model.to_dict()
    json.dumps(doc)


def test_timeline_peaks_and_losses(demo):
    _model, doc = build_report(demo)
    tl = doc["timeline"]
    assert tl["step_s"] == 1.0
    assert [s["t_s"] for s in tl["samples"]] == [0, 1, 2, 3, 4, 5, 6]
    p = tl["peaks"]
    assert p["resident"]["t_s"] == 4.0
    assert p["resident"]["resident_bytes"] == 2 * (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE
    ins = p["insert_rate"]
    assert (ins["t_start_s"], ins["t_end_s"]) == (3.0, 4.0)
    assert ins["top_inserters"][0]["cgroup"] == "/kubepods/ctr-b"
    assert ins["top_inserters"][0]["inserted_bytes"] == (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE
    assert len(ins["top_inserters"]) == 1
    assert tl["losses"]["lost_events"] == 7
    assert tl["losses"]["per_second"] == [{"t_s": 3.0, "lost_events": 7}]
    rec = doc["recording"]
    assert rec["complete"] and rec["end_reason"] == "duration"
    assert rec["events_count"] == demo.events_count and rec["bytes_per_event"] > 0


def test_long_recording_caps_samples(tmp_path):
    s = synth.Script()
    for i in range(100):
        s.ev(i * 10.0, EventKind.ADD, synth.DEV_A, synth.LIB_INO, i, 1, synth.CG_A)
    s.duration_s = 1000.0
    rec = Recording.open(synth.write(str(tmp_path / "l.rec"), s))
    tl = timeline.build(rec, max_samples=50)
    assert len(tl.samples) <= 50
    assert tl.samples[-1].t_s == pytest.approx(1000.0)
    assert tl.samples[-1].model.totals.resident_bytes == 100 * PAGE


def test_cut_recording_reports_what_it_has(tmp_path):
    p = synth.write(str(tmp_path / "cut.rec"), events_per_block=50)
    data = open(p, "rb").read()
    open(p, "wb").write(data[:len(data) * 2 // 3])
    rec = Recording.open(p)
    assert not rec.complete
    model, doc = build_report(rec)
    assert doc["recording"]["complete"] is False
    assert any("last good block" in w for w in model.health.warnings)
    assert 0 < model.totals.resident_bytes < 2 * (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE


def test_shared_inode_events_replay(tmp_path):
    """Kinds >= 16: a shared mapping, filled by one cgroup, used by two."""
    s = synth.Script()
    mp = 0xFFFF888800001000
    s.ev(0.1, EventKind.SHARE_OPEN, synth.DEV_A, synth.LIB_INO, 0, 0, synth.CG_A, mapping=mp)
    s.ev(0.2, EventKind.SHARE_FILL, 0, 0, 0, 32, synth.CG_A, mapping=mp)
    s.ev(0.3, EventKind.SHARE_MMAP, synth.DEV_B, synth.LIB_INO, 0, 0, synth.CG_B, mapping=mp)
    s.ev(0.4, EventKind.SHARE_FREE, 0, 0, 24, 8, synth.CG_B, mapping=mp)
    s.ev(0.5, 31, 0, 0, 0, 0, synth.CG_B, mapping=mp)       # a future kind: skipped, counted
    s.duration_s = 1.0
    rec = Recording.open(synth.write(str(tmp_path / "sh.rec"), s))
    rp = Replayer(rec)
    rp.advance_to(rec.end_ts_ns)
    (si,) = rp.readings().shared
    assert si.mapping == mp
    assert si.members == {(synth.DEV_A, synth.LIB_INO), (synth.DEV_B, synth.LIB_INO)}
    assert set(si.users) == {synth.CG_A, synth.CG_B}
    assert sum(m.bit_count() for o in si.chunks.values() for m in o.values()) == 24
    assert rp.bad_events == 1
    m = rp.model()
    assert m.totals.shared_bytes == 24 * PAGE


# ---------------------------------------------------------------- perfetto
def test_perfetto_trace_is_valid_with_tracks_counters_bursts(demo):
    tl = timeline.build(demo)
    doc = json.loads(json.dumps(perfetto.trace(demo, tl, burst_min_rate_bytes_per_s=MiB)))
    ev = doc["traceEvents"]
    for e in ev:
        assert e["ph"] in {"M", "C", "i", "X"}
        assert isinstance(e["pid"], int)
        if e["ph"] != "M":
            assert isinstance(e["ts"], (int, float)) and e["ts"] >= 0
    names = {e["args"]["name"]: e["pid"] for e in ev
             if e["ph"] == "M" and e["name"] == "process_name"}
    pid_a = next(p for n, p in names.items() if n.startswith("/kubepods/ctr-a"))
    pid_b = next(p for n, p in names.items() if n.startswith("/kubepods/ctr-b"))
    assert any(n.startswith("node") for n in names)
    for pid in (pid_a, pid_b):
        counters = {e["name"] for e in ev if e["ph"] == "C" and e["pid"] == pid}
        assert {"resident_bytes", "duplicate_bytes", "inserted_bytes_per_s"} <= counters
    res_b = [e["args"]["resident_bytes"] for e in ev
             if e["ph"] == "C" and e["pid"] == pid_b and e["name"] == "resident_bytes"]
    assert res_b[0] == 0 and max(res_b) == (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE
    bursts = [e for e in ev if e["ph"] == "i" and e["name"] == "insert burst"]
    assert {e["pid"] for e in bursts} == {pid_a, pid_b}
    b_burst = next(e for e in bursts if e["pid"] == pid_b)
    assert b_burst["ts"] == 3_000_000
    lost = [e for e in ev if e["ph"] == "i" and "lost" in e["name"]]
    assert lost and lost[0]["args"]["lost_events"] == 7
    assert doc["otherData"]["lost_events"] == 7


def test_no_bursts_below_threshold(demo):
    tl = timeline.build(demo)
    assert timeline.bursts(tl, 100 * MiB) == []


# ---------------------------------------------------------------- replay source
def test_recording_source_clock_step_seek(demo):
    now = [100.0]
    src = RecordingSource(demo, speed=2.0, clock=lambda: now[0])
    m0 = src.refresh()
    assert src.offset_s == 0 and m0.totals.resident_bytes == 8 * PAGE     # the seed
    now[0] += 1.0
    src.refresh()
    assert src.offset_s == pytest.approx(2.0)
    now[0] += 600.0      # the UI was paused: the gap counts as one usual interval
    src.refresh()
    assert src.offset_s == pytest.approx(4.0)
    now[0] += 1.5
    src.refresh()
    assert src.offset_s == pytest.approx(6.0)      # clamped at the end
    assert src.at_end
    m = src.step(-2)
    assert src.offset_s == pytest.approx(4.0)
    assert m.totals.resident_bytes == 2 * (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE
    src.seek(demo.started_at + 1.5)
    assert src.offset_s == pytest.approx(1.5)
    assert "+1.5 s of 6.0 s, 25%" in src.position()
    src.seek(-5)
    assert src.offset_s == 0
    assert src.tier == "tracepoint"


# ---------------------------------------------------------------- commands
def test_report_command_text_and_json(demo):
    r = CliRunner().invoke(report_command, [demo.path])
    assert r.exit_code == 0, r.output
    assert "/kubepods/ctr-b" in r.output and "peak inserts" in r.output
    assert "7 at 3 s" in r.output
    r = CliRunner().invoke(report_command, [demo.path, "--json"])
    assert r.exit_code == 0
    doc = json.loads(r.output)
    assert doc["schema"] == 1 and "timeline" in doc


@pytest.mark.parametrize("content,msg", [
    (b"", "empty file"),
    (b"hello world, not a recording", "not an erofs-top recording"),
    (fmt.pack_file_header(fmt.CODEC_ZLIB, major=9), "upgrade erofs-top"),
])
def test_bad_files_one_line_error_no_traceback(tmp_path, content, msg):
    p = tmp_path / "bad.rec"
    p.write_bytes(content)
    for cmd, extra in ((report_command, []), (export_command, ["-o", str(tmp_path / "o.json")]),
                       (replay_command, [])):
        r = CliRunner().invoke(cmd, [str(p), *extra])
        assert r.exit_code == 1
        assert msg in r.output
        assert "Traceback" not in r.output
        assert r.output.count("\n") == 1


def test_report_on_random_garbage_never_tracebacks(tmp_path):
    rnd = random.Random(7)
    good = open(synth.write(str(tmp_path / "g.rec")), "rb").read()
    for i in range(40):
        blob = bytearray(good)
        for _ in range(rnd.randrange(1, 6)):
            blob[rnd.randrange(len(blob))] = rnd.randrange(256)
        p = tmp_path / f"b{i}.rec"
        p.write_bytes(bytes(blob))
        r = CliRunner().invoke(report_command, [str(p), "--json"])
        assert r.exit_code in (0, 1), r.output
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception


def test_export_command_writes_json(demo, tmp_path):
    out = tmp_path / "t.json"
    r = CliRunner().invoke(export_command, [demo.path, "--format", "perfetto", "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "traceEvents" in json.loads(out.read_text())


def test_replay_needs_a_terminal(demo):
    r = CliRunner().invoke(replay_command, [demo.path])
    assert r.exit_code == 1 and "needs a terminal" in r.output


def test_record_usage_errors():
    r = CliRunner().invoke(record_command, ["-o", "/tmp/x.rec", "--duration", "1", "--", "true"])
    assert r.exit_code == 2 and "not both" in r.output
    r = CliRunner().invoke(record_command, ["-o", "/tmp/x.rec", "--max-size", "lots"])
    assert r.exit_code == 2 and "not a size" in r.output
    r = CliRunner().invoke(record_command, ["--help"])
    assert r.exit_code == 0 and "--max-size" in r.output


def test_parse_size():
    assert parse_size("4096") == 4096
    assert parse_size("512K") == 512 << 10
    assert parse_size("100M") == 100 << 20
    assert parse_size("1.5GiB") == 3 << 29
    with pytest.raises(ValueError):
        parse_size("-1M")


def test_parse_time():
    from erofs_top.record.cli import parse_time
    import time as _t
    start = _t.mktime((2026, 11, 26, 14, 0, 0, 0, 0, -1))
    assert parse_time("90", start, 600) == 90
    assert parse_time("14:01:30", start, 600) == 90
    assert parse_time("14:05", start, 600) == 300
    with pytest.raises(ValueError, match="outside the recording"):
        parse_time("15:00", start, 600)
    with pytest.raises(ValueError, match="not a time"):
        parse_time("soon", start, 600)


def test_live_check_compares_replay_with_stored_live_model(tmp_path, demo):
    from erofs_top.record.report import live_check
    at4 = Replayer(demo).model_at(demo.mono_start_ns + 4 * synth.SEC).to_dict()
    same = Recording.open(synth.write(str(tmp_path / "same.rec"), models=[(4.0, at4)]))
    lc = live_check(same, Replayer(same))
    assert lc["t_s"] == 4.0 and lc["cgroup_difference_bytes"] == 0
    off = json.loads(json.dumps(at4))
    off["containers"][0]["resident_bytes"] += 10 * PAGE          # the live view disagreed
    other = Recording.open(synth.write(str(tmp_path / "off.rec"),
                                       models=[(4.0, off), (5.0, {"schema": 99})]))
    lc = live_check(other, Replayer(other))
    assert lc["cgroup_difference_bytes"] == 10 * PAGE
    assert lc["cgroup_difference_pct"] == pytest.approx(100 * 10 / ALL_PAGES_AT_4, abs=0.01)
    _m, doc = build_report(other)
    assert doc["recording"]["live_check"]["cgroup_difference_bytes"] == 10 * PAGE
    assert build_report(demo)[1]["recording"]["live_check"] is None


ALL_PAGES_AT_4 = 2 * (synth.LIB_PAGES + synth.DATA_PAGES)


def test_readings_json_round_trip_keeps_every_io_counter():
    from dataclasses import fields
    from erofs_top.readings import FileIO, Readings
    from erofs_top.record.meta import readings_from_json, readings_to_json
    vals = {f.name: i + 1 for i, f in enumerate(fields(FileIO))}
    r = Readings(taken_at=1.0, page_size=PAGE, io=[FileIO(**vals)],
                 chunks=[PageChunk(1, 2, 3, {7: 0b1010}, 0b10)], backing_pages={(5, 6): 9})
    back = readings_from_json(json.loads(json.dumps(readings_to_json(r))))
    assert back.io == r.io and back.chunks == r.chunks and back.backing_pages == r.backing_pages
    # an older recording: positional io rows without io_fields
    old = readings_to_json(r)
    del old["io_fields"]
    old["io"] = [[1, 2, 3, 4, 5, 6, 7]]
    (x,) = readings_from_json(old).io
    assert (x.dev, x.ino, x.cgroup_id, x.inserted_pages, x.read_folio_count) == (1, 2, 3, 4, 7)


def test_backing_cache_snapshots_step_the_replay(tmp_path):
    """The image files' cache comes from state snapshots (cachestat at each live
    refresh) when the recording has no backing events."""
    img_a = (synth.HOST_DEV, 7)
    p = synth.write(str(tmp_path / "b.rec"),
                    backing=[(2.0, {img_a: 100}), (4.0, {img_a: 300})])
    rec = Recording.open(p)
    assert rec.backing_events_count == 0 and len(rec.backing_snapshots) == 2
    rp = Replayer(rec)

    def image_cache(t_s):
        m = rp.model_at(rec.mono_start_ns + int(t_s * synth.SEC))
        return next(x for x in m.mounts if x.dev == "0:41").backing_resident_bytes

    assert image_cache(1.0) == 0             # the seed's value
    assert image_cache(3.0) == 100 * PAGE
    assert image_cache(5.0) == 300 * PAGE
    assert image_cache(2.5) == 100 * PAGE    # backwards too


def test_events_swapped_across_cpus_replay_in_time_order(tmp_path):
    """A perf buffer delivers CPU by CPU: the removal of a page may be written
    before its insert.  The replay orders each block by time."""
    s = synth.Script()
    s.ev(0.2, EventKind.DELETE, synth.DEV_A, synth.LIB_INO, 0, 4, synth.CG_ROOT)   # cpu 1
    s.ev(0.1, EventKind.ADD, synth.DEV_A, synth.LIB_INO, 0, 4, synth.CG_A)         # cpu 0
    s.ev(0.3, EventKind.ADD, synth.DEV_A, synth.LIB_INO, 8, 4, synth.CG_A)
    s.duration_s = 1.0
    from erofs_top.record.writer import RecordingWriter
    p = str(tmp_path / "swap.rec")
    w = RecordingWriter(p)
    w.write_json(fmt.BLOCK_META, {"started_at": 1.7e9, "mono_start_ns": synth.MONO0,
                                  "page_size": PAGE, "tier": "tracepoint"})
    w.add_events(s.events)              # file order: delete, add, add
    w.close({"ts_ns": synth.MONO0 + synth.SEC, "reason": "test"})
    rec = Recording.open(p)
    assert [row[1] for b in rec.batches() for row in b.rows()] == [2, 1, 1]
    rp = Replayer(rec)
    rp.advance_to(rec.end_ts_ns)
    r = rp.readings()
    assert sum(m.bit_count() for pc in r.chunks for m in pc.owners.values()) == 4
    (fio,) = [x for x in r.io if x.cgroup_id == synth.CG_A]
    assert fio.evicted_pages == 4


def test_report_at_a_time(demo):
    r = CliRunner().invoke(report_command, [demo.path, "--json", "--at", "3.5"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["recording"]["model_at_s"] == 3.5
    b = next(c for c in doc["containers"] if c["cgroup"] == "/kubepods/ctr-b")
    assert 0 < b["resident_bytes"] < (synth.LIB_PAGES + synth.DATA_PAGES) * PAGE   # mid-read
    assert len(doc["timeline"]["samples"]) == 7                                  # still all of it
    r = CliRunner().invoke(report_command, [demo.path, "--at", "3.5"])
    assert "3.5 s after the start" in r.output
    r = CliRunner().invoke(report_command, [demo.path, "--at", "99"])
    assert r.exit_code == 2 and "outside the recording" in r.output
