"""Structure-aware fuzzer for recordings: blocks stay well-formed (sync, valid
CRC, decompressible) but their JSON contents are mutated: a string where a
number belongs, NaN and infinite timestamps, lists in metadata, missing keys,
huge numbers.  `report`, `export` and `replay` must either work or stop with
a one-line RecordingError naming the block; never another exception.
Bounded: EROFS_TOP_FUZZ_CASES cases (default 240), a fixed seed."""
from __future__ import annotations

import copy
import json
import os
import random

import pytest

from erofs_top.record import format as fmt
from erofs_top.record import perfetto, synth, timeline
from erofs_top.record.reader import Recording
from erofs_top.record.replay import Replayer
from erofs_top.record.report import build_report, render_text

CASES = int(os.environ.get("EROFS_TOP_FUZZ_CASES", "240"))
SEED = int(os.environ.get("EROFS_TOP_FUZZ_SEED", "13"))
JSON_BLOCKS = {fmt.BLOCK_META, fmt.BLOCK_SEED, fmt.BLOCK_TICK, fmt.BLOCK_MODEL,
               fmt.BLOCK_END, fmt.BLOCK_STATE}
ODD_VALUES = ["x", "", float("nan"), float("inf"), float("-inf"), 1e308, -1, -2**63, 2**70,
              None, True, [], [1, 2], {}, {"a": 1}, 0.5, "12", [["x"]]]


def split_blocks(data: bytes):
    head, off, out = data[:fmt.FILE_HEADER.size], fmt.FILE_HEADER.size, []
    dec = fmt.Decompressor()
    while off < len(data):
        sync, btype, codec, flags, stored_len, raw_len, crc = \
            fmt.BLOCK_HEADER.unpack_from(data, off)
        stored = data[off + fmt.BLOCK_HEADER.size: off + fmt.BLOCK_HEADER.size + stored_len]
        out.append((btype, flags, dec.decompress(codec, stored, raw_len)))
        off += fmt.BLOCK_HEADER.size + stored_len
    return head, out


def leaves(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from leaves(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:6]):
            yield from leaves(v, path + (i,))


def mutate(obj, rng: random.Random):
    obj = copy.deepcopy(obj)
    paths = [p for p in leaves(obj) if p]
    if not paths:
        return rng.choice(ODD_VALUES)
    path = rng.choice(paths)
    parent = obj
    for k in path[:-1]:
        parent = parent[k]
    if isinstance(parent, dict) and rng.random() < 0.15:
        del parent[path[-1]]
    else:
        parent[path[-1]] = rng.choice(ODD_VALUES)
    return obj


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    p = tmp_path_factory.mktemp("fuzz") / "base.rec"
    synth.write(str(p), models=[(3.0, _model_dict())])
    return split_blocks(p.read_bytes())


def _model_dict():
    from erofs_top.model import Container, Model
    return Model(tier="tracepoint", started_at=1.7e9, ended_at=1.7e9 + 3, page_size=4096,
                 containers=[Container(cgroup_id=synth.CG_A, cgroup="/kubepods/ctr-a",
                                       resident_bytes=4096)]).to_dict()


def write(path, head, blocks):
    comp = fmt.Compressor(fmt.CODEC_ZLIB)
    with open(path, "wb") as f:
        f.write(head)
        for btype, flags, raw in blocks:
            f.write(fmt.pack_block(btype, raw, comp, flags))


def exercise(path):
    rec = Recording.open(str(path))
    model, doc = build_report(rec, max_samples=50)
    render_text(model, doc)
    json.dumps(doc, allow_nan=False)
    tl = timeline.build(rec, Replayer(rec), max_samples=50)
    json.dumps(perfetto.trace(rec, tl), allow_nan=False)


def test_base_recording_reads(base, tmp_path):
    head, blocks = base
    assert {b[0] for b in blocks} >= {fmt.BLOCK_META, fmt.BLOCK_TICK, fmt.BLOCK_END,
                                      fmt.BLOCK_MODEL}
    write(tmp_path / "same.rec", head, blocks)
    exercise(tmp_path / "same.rec")


def test_structured_mutations_never_traceback(base, tmp_path):
    head, blocks = base
    rng = random.Random(SEED)
    json_idx = [i for i, b in enumerate(blocks) if b[0] in JSON_BLOCKS]
    crashes = []
    for case in range(CASES):
        i = rng.choice(json_idx)
        btype, flags, raw = blocks[i]
        doc = mutate(json.loads(raw), rng)
        mutated = list(blocks)
        mutated[i] = (btype, flags, json.dumps(doc).encode())
        path = tmp_path / f"m{case}.rec"
        write(path, head, mutated)
        try:
            exercise(path)
        except fmt.RecordingError as e:
            msg = str(e)
            assert "\n" not in msg and msg, msg
        except Exception as e:      # noqa: BLE001 - the point of the test
            crashes.append(f"case {case}: {fmt.BLOCK_NAMES[btype]} block -> "
                           f"{type(e).__name__}: {e}"[:300])
        finally:
            path.unlink()
    assert not crashes, f"{len(crashes)} of {CASES} mutations crashed:\n" + "\n".join(crashes[:20])
