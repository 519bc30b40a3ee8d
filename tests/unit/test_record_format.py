"""Recording file format: round trips, damaged files (cut, bit-flipped, empty,
foreign), --max-size, a short fuzz run of the reader.  No root."""
from __future__ import annotations

import os
import random
import struct
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from erofs_top.readings import EventKind, PageEvent
from erofs_top.record import format as fmt
from erofs_top.record import synth
from erofs_top.record.format import EventBatch, RecordingError
from erofs_top.record.meta import file_to_json, safe_digest
from erofs_top.record.reader import Recording
from erofs_top.record.replay import Replayer
from erofs_top.record.writer import EVENTS_PER_BLOCK, RecordingWriter
from erofs_top.resolve.base import FileInfo

U64 = st.integers(0, 2**64 - 1)
U32 = st.integers(0, 2**32 - 1)
event_st = st.builds(PageEvent, ts_ns=U64, kind=st.integers(0, 255), dev=U32, ino=U64,
                     index=U64, nr_pages=U32, cgroup_id=U64, pid=U32)
HYP = settings(max_examples=60, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


def all_events(rec: Recording) -> list[tuple]:
    return [row for b in rec.batches() for row in b.rows()]


def as_rows(events) -> list[tuple]:
    return [(e.ts_ns, e.kind, e.dev, e.ino, e.index, e.nr_pages, e.cgroup_id, e.pid,
             getattr(e, "mapping", 0)) for e in events]


def minimal(path, events, *, codec=None, blocks=1, end=True, max_size=None):
    w = RecordingWriter(str(path), codec=codec, max_size_bytes=max_size)
    w.write_json(fmt.BLOCK_META, {"started_at": 1.7e9, "mono_start_ns": 0, "page_size": 4096,
                                  "tier": "tracepoint"})
    n = max(1, -(-len(events) // blocks)) if events else 1
    for i in range(0, len(events), n):
        w.add_events(events[i:i + n])
        w.flush_events()
    if end:
        w.close({"ts_ns": 0, "reason": "test"})
    else:
        w.abort()
    return w


# ---------------------------------------------------------------- round trips
@HYP
@given(events=st.lists(event_st, max_size=300), codec=st.sampled_from([0, 1, 2]),
       blocks=st.integers(1, 5))
def test_events_round_trip_any_values(tmp_path, events, codec, blocks):
    p = tmp_path / "r.rec"
    minimal(p, events, codec=codec, blocks=blocks)
    rec = Recording.open(str(p))
    assert rec.warnings == []
    assert rec.complete
    assert all_events(rec) == as_rows(events)
    assert rec.codec == codec


def test_mapping_column_round_trip(tmp_path):
    evs = [PageEvent(10, EventKind.SHARE_FILL, 0, 0, 5, 4, 7, 1)]
    evs[0].mapping = 0xFFFF888812345678
    evs.append(PageEvent(5, EventKind.ADD, 1, 2, 3, 1, 7, 1))     # ts goes back: signed deltas
    p = tmp_path / "m.rec"
    minimal(p, evs)
    assert all_events(Recording.open(str(p))) == as_rows(evs)


def test_event_batch_rejects_inconsistent_length():
    b = EventBatch.empty()
    b.append(1, 1, 1, 1, 1, 1, 1, 1)
    raw = b.encode()
    with pytest.raises(ValueError):
        EventBatch.decode(raw[:-1])
    with pytest.raises(ValueError):
        EventBatch.decode(raw[:5])


def test_synthetic_recording_metadata(tmp_path):
    p = synth.write(str(tmp_path / "s.rec"))
    rec = Recording.open(p)
    assert rec.complete and rec.warnings == []
    assert set(rec.mounts) == {synth.DEV_A, synth.DEV_B}
    assert rec.mounts[synth.DEV_A].image.uuid.startswith("1111")
    assert rec.cgroups[synth.CG_A] == "/kubepods/ctr-a"
    assert rec.files[(synth.DEV_B, synth.LIB_INO)].path.endswith("libapp.so")
    assert rec.digests[(synth.DEV_A, synth.LIB_INO)] == "ab" * 32
    assert rec.lost_events == 7
    assert rec.losses_per_second() == [(3.0, 7)]
    assert rec.duration_s == pytest.approx(6.0)
    assert rec.events_count == len(synth.demo_script().events)


# ---------------------------------------------------------------- header errors
def test_empty_file(tmp_path):
    p = tmp_path / "e.rec"
    p.write_bytes(b"")
    with pytest.raises(RecordingError, match="empty file"):
        Recording.open(str(p))


def test_not_a_recording(tmp_path):
    p = tmp_path / "x.json"
    p.write_text('{"schema": 1}')
    with pytest.raises(RecordingError, match="not an erofs-top recording"):
        Recording.open(str(p))


def test_missing_file(tmp_path):
    with pytest.raises(RecordingError, match="cannot read"):
        Recording.open(str(tmp_path / "nope.rec"))


def test_newer_major_refused_with_clear_message(tmp_path):
    p = tmp_path / "n.rec"
    minimal(p, [])
    data = bytearray(p.read_bytes())
    data[:fmt.FILE_HEADER.size] = fmt.pack_file_header(fmt.CODEC_ZLIB, major=fmt.FORMAT_MAJOR + 1)
    p.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=r"newer than this erofs-top reads.*upgrade"):
        Recording.open(str(p))


def test_newer_minor_unknown_blocks_skipped(tmp_path):
    p = tmp_path / "m.rec"
    evs = [PageEvent(1, 1, 1, 1, 1, 1, 1, 1)]
    w = RecordingWriter(str(p), codec=fmt.CODEC_ZLIB)
    w.write_json(fmt.BLOCK_META, {"started_at": 1.7e9, "mono_start_ns": 0})
    w.write_json(99, {"something": "new"})
    w.add_events(evs)
    w.close({"ts_ns": 1, "reason": "test"})
    data = bytearray(p.read_bytes())
    data[:fmt.FILE_HEADER.size] = fmt.pack_file_header(fmt.CODEC_ZLIB, minor=fmt.FORMAT_MINOR + 3)
    p.write_bytes(bytes(data))
    rec = Recording.open(str(p))
    assert all_events(rec) == as_rows(evs)
    assert rec.unknown_blocks == 1
    assert any("newer minor" in w for w in rec.warnings)


def test_header_checksum(tmp_path):
    p = tmp_path / "h.rec"
    minimal(p, [])
    data = bytearray(p.read_bytes())
    data[9] ^= 0x01     # minor version byte
    p.write_bytes(bytes(data))
    with pytest.raises(RecordingError, match="header is damaged"):
        Recording.open(str(p))


def test_header_only(tmp_path):
    p = tmp_path / "h.rec"
    p.write_bytes(fmt.pack_file_header(fmt.CODEC_ZLIB))
    with pytest.raises(RecordingError, match="no data recorded"):
        Recording.open(str(p))


def test_zstd_missing_message(tmp_path, monkeypatch):
    import builtins
    real = builtins.__import__

    def no_zstd(name, *a, **kw):
        if name == "zstandard":
            raise ImportError("no zstandard")
        return real(name, *a, **kw)

    p = tmp_path / "z.rec"
    minimal(p, [PageEvent(1, 1, 1, 1, 1, 1, 1, 1)] * 100, codec=fmt.CODEC_ZSTD)
    monkeypatch.setattr(builtins, "__import__", no_zstd)
    assert fmt.default_codec() == fmt.CODEC_ZLIB
    with pytest.raises(RecordingError, match="pip install zstandard"):
        Recording.open(str(p))


# ---------------------------------------------------------------- damage
def _events(n, seed=1):
    rnd = random.Random(seed)
    return [PageEvent(1000 + i * 1000, rnd.choice([1, 2, 3, 4]), 41, rnd.randrange(40, 44),
                      rnd.randrange(0, 512), rnd.choice([1, 4, 16]), rnd.choice([7, 8]), 9)
            for i in range(n)]


@pytest.fixture(scope="module")
def good_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("rec") / "good.rec"
    synth.write(str(p), events_per_block=40)
    return p.read_bytes()


def _check_prefix_property(path, full_rows):
    """A damaged file opens to a block-aligned prefix of the events, or raises
    RecordingError; the offline model builds without an exception."""
    try:
        rec = Recording.open(str(path))
    except RecordingError as e:
        assert "\n" not in str(e)
        return None
    rows = all_events(rec)
    assert rows == full_rows[:len(rows)]
    if not rec.complete:
        assert rec.warnings
    Replayer(rec).final_model()
    return rec


def test_truncated_at_every_block_boundary_and_inside(tmp_path, good_file):
    full = Recording.open(_write(tmp_path / "full.rec", good_file))
    rows = all_events(full)
    # every cut point in the first 400 bytes, then every 97th byte
    cuts = list(range(0, min(400, len(good_file)))) + list(range(400, len(good_file), 97))
    seen_partial = 0
    for cut in cuts:
        p = _write(tmp_path / "cut.rec", good_file[:cut])
        rec = _check_prefix_property(p, rows)
        if rec is not None:
            assert not rec.complete
            assert any("last good block" in w or "no end block" in w for w in rec.warnings)
            seen_partial += len(all_events(rec)) > 0
    assert seen_partial > 0


@HYP
@given(data=st.data())
def test_bit_flips_never_traceback(tmp_path, good_file, data):
    blob = bytearray(good_file)
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(blob) - 1), st.integers(0, 7)),
                               min_size=1, max_size=4, unique_by=lambda f: f[0]))
    for pos, bit in flips:
        blob[pos] ^= 1 << bit
    full_rows = all_events(Recording.open(_write(tmp_path / "ok.rec", good_file)))
    p = _write(tmp_path / "flip.rec", bytes(blob))
    rec = _check_prefix_property(p, full_rows)
    first_flip = min(pos for pos, _ in flips)
    if rec is not None and first_flip >= fmt.FILE_HEADER.size:
        # the block holding a flip fails its CRC: nothing from it on is used
        assert rec.good_bytes <= first_flip


def test_single_flip_in_events_block_detected(tmp_path, good_file):
    full = Recording.open(_write(tmp_path / "a.rec", good_file))
    ref = full.event_blocks[1]
    blob = bytearray(good_file)
    blob[ref.offset + fmt.BLOCK_HEADER.size + 3] ^= 0x10
    rec = Recording.open(_write(tmp_path / "b.rec", bytes(blob)))
    assert len(rec.event_blocks) == 1
    assert any("fails its checksum" in w for w in rec.warnings)
    assert not rec.complete


def test_fuzz_reader_short_run(tmp_path, good_file):
    """Random splices, truncations, garbage: RecordingError or a prefix, never a traceback."""
    rnd = random.Random(20261126)
    full_rows = all_events(Recording.open(_write(tmp_path / "ok.rec", good_file)))
    for _ in range(300):
        blob = bytearray(good_file)
        op = rnd.randrange(5)
        if op == 0:
            for _ in range(rnd.randrange(1, 20)):
                blob[rnd.randrange(len(blob))] = rnd.randrange(256)
        elif op == 1:
            del blob[rnd.randrange(len(blob)):]
        elif op == 2:
            a = rnd.randrange(len(blob))
            blob[a:a] = os.urandom(rnd.randrange(1, 64))
        elif op == 3:
            a = rnd.randrange(len(blob))
            del blob[a:a + rnd.randrange(1, 200)]
        else:
            blob = bytearray(blob[:fmt.FILE_HEADER.size] + os.urandom(rnd.randrange(0, 4096)))
        p = _write(tmp_path / "f.rec", bytes(blob))
        try:
            rec = Recording.open(str(p))
        except RecordingError:
            continue
        rows = all_events(rec)
        if op in (0, 1, 4):     # same offsets as the original: events are a prefix
            assert rows == full_rows[:len(rows)]
        Replayer(rec).final_model()


def test_forged_crc_valid_garbage_block_is_reported(tmp_path, good_file):
    """A block whose CRC matches but whose content is nonsense (a buggy writer)."""
    blob = bytearray(good_file)
    raw = b"\xff" * 40
    head = struct.pack("<4sBBHII", fmt.BLOCK_SYNC, fmt.BLOCK_EVENTS, 0, 0, len(raw), len(raw))
    crc = zlib.crc32(raw, zlib.crc32(head[4:16]))
    full = Recording.open(_write(tmp_path / "a.rec", good_file))
    at = full.event_blocks[0].offset
    blob[at:at] = head + struct.pack("<I", crc) + raw
    rec = Recording.open(_write(tmp_path / "b.rec", bytes(blob)))
    assert rec.events_count == 0
    assert any("unreadable" in w for w in rec.warnings)


def _write(p, data):
    p.write_bytes(data)
    return str(p)


# ---------------------------------------------------------------- size bound, crash
def test_max_size_bounds_file_and_says_so(tmp_path):
    evs = _events(40000, seed=3)
    p = tmp_path / "b.rec"
    w = minimal(p, evs, codec=fmt.CODEC_NONE, blocks=20, max_size=256 * 1024)
    assert os.path.getsize(p) <= 256 * 1024
    assert w.full
    rec = Recording.open(str(p))
    assert rec.complete and rec.end["max_size_reached"]
    rows = all_events(rec)
    assert 0 < len(rows) < len(evs)
    assert rows == as_rows(evs)[:len(rows)]
    assert rec.events_unwritten == len(evs) - len(rows)
    assert any("--max-size reached" in x for x in rec.warnings)


def test_max_size_too_small_refused(tmp_path):
    with pytest.raises(RecordingError, match="at least 64 KiB"):
        RecordingWriter(str(tmp_path / "s.rec"), max_size_bytes=1000)


def test_crash_without_end_block_reads_with_warning(tmp_path):
    evs = _events(1000)
    p = tmp_path / "c.rec"
    minimal(p, evs, blocks=4, end=False)
    rec = Recording.open(str(p))
    assert not rec.complete
    assert all_events(rec) == as_rows(evs)
    assert any("no end block" in w for w in rec.warnings)


def test_unwritable_path_is_one_line_error(tmp_path):
    with pytest.raises(RecordingError, match="cannot write"):
        RecordingWriter(str(tmp_path / "no" / "dir" / "x.rec"))


# ---------------------------------------------------------------- no secrets
def test_only_digests_are_stored():
    blob = "sha256:" + "\x01" * 32 + "domain-secret"
    assert safe_digest(blob) is None
    assert safe_digest("AB" * 32) == "ab" * 32
    assert safe_digest("xattr:" + "0f" * 32) == "xattr:" + "0f" * 32
    assert safe_digest(b"\x00" * 32) is None
    d = file_to_json(1, 2, FileInfo(2, "/p", 10, True, "fileio"), digest="zz-not-hex",
                     fingerprint=blob, build_id="12" * 20)
    assert "digest" not in d and "fingerprint" not in d
    assert d["build_id"] == "12" * 20


def test_logging_content_never_writes_raw_fingerprint(tmp_path):
    from erofs_top.record.recorder import LoggingContent
    from erofs_top.resolve.base import MountInfo

    class Inner:
        def file_info(self, m, ino):
            return FileInfo(ino, "/x", 4096, True, "fileio")

        def fingerprint(self, m, ino):
            return "sha256:\x00\x01raw-blob-with-domain_id"

        def build_id(self, m, ino):
            return None

        def digest(self, m, ino):
            return "cd" * 32

    lc = LoggingContent(Inner())
    m = MountInfo(5, "0:5", "/m", "/img", "file")
    assert lc.fingerprint(m, 3) == "sha256:\x00\x01raw-blob-with-domain_id"   # live: unchanged
    lc.file_info(m, 3), lc.digest(m, 3)
    (entry,) = lc.drain()
    assert entry["digest"] == "cd" * 32
    assert entry["fingerprint"].startswith("xattr:") and "raw" not in entry["fingerprint"]
    assert lc.drain() == []


def test_probe_records_bulk_decode():
    """probes/filemap.c struct page_event, as the ring buffer hands it over."""
    recs = [(10**12 + i, 4242, 40 + i, i * 4, (41 << 20) | 3, 4, 777, 1 + i % 4)
            for i in range(100)]
    buf = b"".join(fmt.PROBE_EVENT.pack(*r) for r in recs)
    assert fmt.PROBE_EVENT.size == 48
    b = EventBatch.from_probe_records(buf + b"\0" * 7)     # a partial trailing record is ignored
    assert [row[:8] for row in b.rows()] == [(t, k, d, ino, ix, nr, cg, pid)
                                             for t, cg, ino, ix, d, nr, pid, k in recs]
    assert len(EventBatch.from_probe_records(b"")) == 0


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_full_disk_is_one_line_error():
    with pytest.raises(RecordingError, match="No space left"):
        RecordingWriter("/dev/full")


def test_write_error_mid_recording_leaves_a_readable_prefix(tmp_path, monkeypatch):
    p = tmp_path / "enospc.rec"
    w = RecordingWriter(str(p))
    w.write_json(fmt.BLOCK_META, {"started_at": 1.7e9, "mono_start_ns": 0})
    evs = _events(500)
    w.add_events(evs)
    w.flush_events()
    real_write = w._f.write

    def failing_write(data):
        real_write(data[:len(data) // 2])       # the disk fills up mid-block
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(w._f, "write", failing_write)
    w.add_events(_events(500, seed=2))
    with pytest.raises(RecordingError, match="No space left"):
        w.flush_events()
    assert w.full
    w.close({"ts_ns": 1, "reason": "test"})     # END cannot be written: no exception
    rec = Recording.open(str(p))
    assert all_events(rec) == as_rows(evs)
    # the torn half block was cut off: the file ends at its last good block
    assert not rec.complete and any("no end block" in x for x in rec.warnings)
    assert os.path.getsize(p) == w.bytes_written


def test_disk_full_once_then_end_block_fits(tmp_path, monkeypatch):
    """A full disk met in the ring-buffer callback path: add_events never
    raises, the lost events are counted, the torn block is cut off, and the
    END block (room freed by the cut) says why and how many were lost."""
    p = tmp_path / "enospc.rec"
    w = RecordingWriter(str(p))
    w.write_json(fmt.BLOCK_META, {"started_at": 1.7e9, "mono_start_ns": 0})
    evs = _events(500)
    w.add_events(evs)
    w.flush_events()
    real_write = w._f.write
    fails = {"n": 1}

    def write_once_failing(data):
        if fails["n"]:
            fails["n"] -= 1
            real_write(bytes(data[:len(data) // 2]))
            raise OSError(28, "No space left on device")
        return real_write(data)
    monkeypatch.setattr(w._f, "write", write_once_failing)
    lost = _events(EVENTS_PER_BLOCK, seed=3)
    w.add_events(lost)                       # cuts a block: the write fails, no exception
    assert w.full and "No space left" in w.error
    w.add_events(_events(10, seed=4))        # after the error: counted, not written
    w.close({"ts_ns": 1, "reason": "write error"})
    rec = Recording.open(str(p))
    assert rec.complete
    assert all_events(rec) == as_rows(evs)
    assert rec.end["events_unwritten"] == len(lost) + 10
    assert "No space left" in rec.end["write_error"]
