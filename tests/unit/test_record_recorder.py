"""The recording loop (recorder.py) against a scripted stand-in for the BPF
collector (a real Collector around ScriptedRecordSource: the probes need root; the root round trip
is tests/integration/test_record_root.py).  Checks what reaches the file."""
from __future__ import annotations

import time

from erofs_top.collector import Collector
from erofs_top.readings import EventKind, PageChunk, PageEvent, Readings, SharedInode
from erofs_top.record import format as fmt
from erofs_top.record import synth
from erofs_top.record.reader import Recording
from erofs_top.record.recorder import Recorder, monotonic_ns
from erofs_top.record.replay import Replayer
from erofs_top.record.writer import RecordingWriter
from erofs_top.resolve.base import FileInfo, StaticCgroups, StaticContent, StaticMounts

PAGE = synth.PAGE
MAPPING = 0xFFFF8880DEAD0000


class ScriptedRecordSource:
    """Mock of TracepointSource(record=True) (the real one needs root and BPF;
    its round trip is tests/integration/test_record_root.py): events in
    scripted batches, Readings with a shared inode."""
    tier = "full"
    page_size = PAGE

    def __init__(self, batches):
        self.batches = list(batches)
        self.lost_events = 0
        self.reads = 0
        self.shared_pages = 0

    def read(self):
        self.reads += 1
        self.shared_pages += 8
        si = SharedInode(MAPPING, {0: {synth.CG_A: (1 << self.shared_pages) - 1}},
                         {(synth.DEV_A, synth.LIB_INO), (synth.DEV_B, synth.LIB_INO)},
                         {synth.CG_A: {(synth.DEV_A, synth.LIB_INO)},
                          synth.CG_B: {(synth.DEV_B, synth.LIB_INO)}}, 64 * PAGE)
        return Readings(taken_at=time.time(), page_size=PAGE, probes_attached=True,
                        chunks=[PageChunk(synth.DEV_A, synth.LIB_INO, 0, {synth.CG_A: 0b11}, 0b11),
                                PageChunk(synth.DEV_B, synth.LIB_INO, 1, {synth.CG_B: 0b1}, 0b1)],
                        shared=[si])

    def poll_events(self, callback, timeout_ms):
        if self.batches:
            callback(self.batches.pop(0))
        else:
            time.sleep(timeout_ms / 1000)

    def close(self):
        pass


def scripted_collector(batches) -> Collector:
    """The real Collector (static resolvers, the real refresh) around the
    scripted source."""
    files = {(synth.DEV_A, synth.LIB_INO): FileInfo(synth.LIB_INO, "/a/lib.so", 64 * PAGE,
                                                    True, "fileio"),
             (synth.DEV_B, synth.LIB_INO): FileInfo(synth.LIB_INO, "/b/lib.so", 64 * PAGE,
                                                    True, "block")}
    return Collector(
        ScriptedRecordSource(batches), files_cap=50, mounts=StaticMounts(synth.demo_mounts()),
        cgroups=StaticCgroups({synth.CG_A: "/pods/a", synth.CG_B: "/pods/b"}),
        content=StaticContent(files=files, content={k: "ef" * 32 for k in files},
                              fingerprints={k: "sha256:\x00raw+domain" for k in files}))


def events(n, cg, dev, start_index=0):
    now = monotonic_ns()
    return [PageEvent(now + i, EventKind.ADD, dev, synth.LIB_INO, start_index + i, 1, cg, 7)
            for i in range(n)]


def test_recorder_writes_events_metadata_models_and_shared_snapshots(tmp_path):
    col = scripted_collector([events(16, synth.CG_A, synth.DEV_A, 2),
                               events(32, synth.CG_B, synth.DEV_B)])
    w = RecordingWriter(str(tmp_path / "r.rec"))
    rec = Recorder(col, w, model_interval_s=0.3)
    rec.start()
    assert rec.run(duration_s=0.8) == "duration"
    rec.finish()
    r = Recording.open(str(tmp_path / "r.rec"))
    assert r.complete and r.warnings == []
    assert r.end["reason"] == "duration" and r.end["events_total"] == 48
    assert r.events_count == 48
    assert r.start["tier"] == "full" and r.start["files_cap"] == 50
    assert r.cgroups == {synth.CG_A: "/pods/a", synth.CG_B: "/pods/b"}
    assert r.files[(synth.DEV_B, synth.LIB_INO)].path == "/b/lib.so"
    # the live aggregator used the (raw) fingerprints: only hashes of them are stored,
    # equal for equal values, so offline the same files are found duplicate
    fps = set(r.fingerprints.values())
    assert len(fps) == 1 and next(iter(fps)).startswith("xattr:")
    assert b"raw+domain" not in open(tmp_path / "r.rec", "rb").read()
    assert len(r.models) >= 2                        # periodic + the final one
    assert len(r.shared_snapshots) == len(r.models)
    assert len(r.ticks) >= 1
    m = Replayer(r).final_model()
    a = next(c for c in m.containers if c.cgroup == "/pods/a")
    b = next(c for c in m.containers if c.cgroup == "/pods/b")
    # the shared inode as of the last snapshot (the fake adds 8 pages per read)
    last_shared = r.shared_snapshots[-1][1][0]
    pages = sum(m.bit_count() for o in last_shared.chunks.values() for m in o.values())
    assert pages == 8 * col.source.reads
    assert m.totals.shared_bytes == pages * PAGE
    # ctr-a inserted the shared pages (the owner pays) + 2 seeded + 16 inserted
    assert a.resident_bytes == (pages + 18) * PAGE
    assert b.resident_bytes == 33 * PAGE             # 1 seeded (page 64) + 32 inserted
    # same content everywhere (equal fingerprint hashes): b's pages 0..31 are
    # resident in a's copies too, its page 64 nowhere else
    assert b.duplicate_bytes == 32 * PAGE
    assert a.duplicate_bytes >= 16 * PAGE
    assert b.shared_bytes == pages * PAGE            # a user, not the owner


def test_recorder_stops_at_max_size(tmp_path):
    big = [events(4096, synth.CG_A, synth.DEV_A, i * 4096) for i in range(40)]
    col = scripted_collector(big)
    w = RecordingWriter(str(tmp_path / "m.rec"), codec=fmt.CODEC_NONE, max_size_bytes=128 << 10)
    rec = Recorder(col, w, model_interval_s=0)
    rec.start()
    assert rec.run(duration_s=30) == "max-size"
    rec.finish()
    r = Recording.open(str(tmp_path / "m.rec"))
    assert (tmp_path / "m.rec").stat().st_size <= 128 << 10
    assert r.complete and r.end["reason"] == "max-size" and r.end["max_size_reached"]
    assert r.events_count + r.events_unwritten == rec.events_total


def test_recorder_stop_flag(tmp_path):
    col = scripted_collector([])
    w = RecordingWriter(str(tmp_path / "s.rec"))
    rec = Recorder(col, w, model_interval_s=0)
    rec.start()
    calls = []
    assert rec.run(should_stop=lambda: calls.append(1) or len(calls) > 2) == "interrupted"
    rec.finish()
    assert Recording.open(str(tmp_path / "s.rec")).end["reason"] == "interrupted"


def test_shared_snapshots_step_the_replay(tmp_path):
    def si(pages):
        return SharedInode(MAPPING, {0: {synth.CG_A: (1 << pages) - 1}},
                           {(synth.DEV_A, synth.LIB_INO)}, {synth.CG_A: {(synth.DEV_A, synth.LIB_INO)}},
                           64 * PAGE)
    p = synth.write(str(tmp_path / "sh.rec"), shared=[(1.0, [si(16)]), (3.0, [si(32)])])
    r = Recording.open(p)
    rp = Replayer(r)
    at = lambda s: rp.model_at(r.mono_start_ns + int(s * synth.SEC)).totals.shared_bytes
    assert at(0.5) == 0
    assert at(2.0) == 16 * PAGE
    assert at(5.0) == 32 * PAGE
    assert at(1.5) == 16 * PAGE          # backwards too


def test_recorder_takes_bulk_decoded_probe_records(tmp_path):
    now = monotonic_ns()
    raw = b"".join(fmt.PROBE_EVENT.pack(now + i, synth.CG_B, synth.LIB_INO, i, synth.DEV_B, 1,
                                        9, EventKind.ADD) for i in range(64))
    col = scripted_collector([fmt.EventBatch.from_probe_records(raw)])
    w = RecordingWriter(str(tmp_path / "b.rec"))
    rec = Recorder(col, w, model_interval_s=0)
    rec.start()
    rec.run(duration_s=0.3)
    rec.finish()
    r = Recording.open(str(tmp_path / "b.rec"))
    assert r.events_count == 64
    assert r.cgroups[synth.CG_B] == "/pods/b"
    assert r.files[(synth.DEV_B, synth.LIB_INO)].path == "/b/lib.so"
