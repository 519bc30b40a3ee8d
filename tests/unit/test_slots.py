"""erofs_top/kernel/slots.py without BPF: the CPU list, the bpf_attr layout,
the flush loop over CPUs and batches (with a scripted stand-in for the
program, FakeFlushProgram), and the constants shared with probes/filemap.c."""
from __future__ import annotations

import errno
import re
import struct
from pathlib import Path

import pytest

from erofs_top.kernel import slots

FILEMAP = Path(__file__).resolve().parents[2] / "probes" / "filemap.c"


@pytest.mark.parametrize("text, cpus", [
    ("0\n", [0]),
    ("0-3\n", [0, 1, 2, 3]),
    ("0-1,4,6-7\n", [0, 1, 4, 6, 7]),
    ("", []),
])
def test_parse_cpu_list(text, cpus):
    assert slots.parse_cpu_list(text) == cpus


def test_sys_bpf_numbers():
    assert slots.sys_bpf_number("x86_64") == 321
    assert slots.sys_bpf_number("aarch64") == 280
    assert slots.sys_bpf_number("vax") is None


def test_attr_layout_is_the_test_member_of_union_bpf_attr():
    buf = bytearray(slots._ATTR.size)
    slots._ATTR.pack_into(buf, 0, 7, 0, 8, 0, 0x1122334455667788, 1, 5)
    assert len(buf) == 80
    # uapi/linux/bpf.h: prog_fd, retval, data_size_in/out, data_in/out,
    # repeat, duration, ctx_size_in @40, ctx_size_out, ctx_in @48, ctx_out,
    # flags @64, cpu @68, batch_size
    assert struct.unpack_from("=I", buf, 0) == (7,)
    assert struct.unpack_from("=I", buf, 40) == (8,)
    assert struct.unpack_from("=Q", buf, 48) == (0x1122334455667788,)
    assert struct.unpack_from("=II", buf, 64) == (slots.BPF_F_TEST_RUN_ON_CPU, 5)
    assert not any(buf[8:40]) and not any(buf[56:64]) and not any(buf[72:])


class FakeFlushProgram:
    """Stands in for flush_io_slots: returns scripted values per (cpu, first
    slot), DONE once the script for that batch is used up; records calls."""

    def __init__(self, script: dict | None = None):
        self.script = {k: list(v) for k, v in (script or {}).items()}
        self.calls: list[tuple[int, int]] = []

    def __call__(self, cpu: int, first: int) -> int:
        self.calls.append((cpu, first))
        todo = self.script.get((cpu, first))
        if not todo:
            return slots.DONE
        rv = todo.pop(0)
        if isinstance(rv, Exception):
            raise rv
        return rv


def test_flush_all_runs_every_batch_of_every_cpu():
    prog = FakeFlushProgram()
    assert slots.flush_all(prog, [0, 2], slots=96, batch=32) == []
    assert prog.calls == [(0, 0), (0, 32), (0, 64), (2, 0), (2, 32), (2, 64)]


def test_flush_all_runs_a_busy_batch_again():
    prog = FakeFlushProgram({(1, 32): [slots.BUSY, slots.BUSY]})
    assert slots.flush_all(prog, [1], slots=64, batch=32) == []
    assert prog.calls == [(1, 0), (1, 32), (1, 32), (1, 32)]


def test_flush_all_gives_up_on_a_cpu_but_not_the_others():
    prog = FakeFlushProgram({(0, 0): [slots.BUSY] * 5,
                             (1, 32): [OSError(errno.ENXIO, "offline")],
                             (2, 0): [2]})                  # no map: not DONE
    assert slots.flush_all(prog, [0, 1, 2, 3], slots=64, batch=32, retries=5) == [0, 1, 2]
    assert prog.calls.count((0, 0)) == 5
    assert (0, 32) not in prog.calls and (2, 32) not in prog.calls     # the CPU's rest skipped
    assert (3, 0) in prog.calls and (3, 32) in prog.calls


def _c_define(name: str) -> int:
    m = re.search(rf"#define {name} (\d+)", FILEMAP.read_text())
    assert m, name
    return int(m.group(1))


def test_constants_match_probes_filemap_c():
    assert _c_define("IO_SLOTS") == slots.IO_SLOTS
    assert _c_define("FLUSH_BATCH") == slots.FLUSH_BATCH
    assert slots.IO_SLOTS % slots.FLUSH_BATCH == 0
    assert slots.IO_SLOTS & (slots.IO_SLOTS - 1) == 0         # direct-mapped by a mask
    assert _c_define("IO_LOG") == slots.IO_LOG
    assert slots.IO_LOG & (slots.IO_LOG - 1) == 0             # a ring indexed by a mask


def test_flush_runs_the_log_program_on_every_cpu_until_done(monkeypatch):
    """SlotFlusher.flush: the slot batches, then flush_io_log (its own fd)
    on each CPU again while it says BUSY; a CPU it cannot empty is left."""
    calls = []
    script = {(0, 99): [slots.BUSY, slots.BUSY], (1, 99): [slots.BUSY] * slots.RETRIES}

    def run(self, cpu, first, fd=None):     # a scripted stand-in for the two programs
        calls.append((cpu, first, fd))
        todo = script.get((cpu, fd))
        return todo.pop(0) if todo else slots.DONE

    monkeypatch.setattr(slots.SlotFlusher, "run", run)
    monkeypatch.setattr(slots, "online_cpus", lambda: [0, 1])
    f = slots.SlotFlusher(7, 321, log_fd=99)
    assert f.flush() == [1]
    assert [c for c in calls if c[2] == 99 and c[0] == 0] == [(0, 0, 99)] * 3
    assert len([c for c in calls if c[2] is None]) == 2 * slots.IO_SLOTS // slots.FLUSH_BATCH


def test_possible_cpus_counts_from_zero():
    assert slots.possible_cpus() >= len(slots.online_cpus())
