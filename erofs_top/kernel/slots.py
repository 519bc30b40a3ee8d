"""probes/filemap.c's per-CPU io write-combining slots (`io_slots`, issue 11):
emptied into the `io` map before each read of the maps.

The probe keeps, per CPU, up to IO_SLOTS pending io updates (one (dev, ino,
cgroup id) each, direct-mapped) and adds a slot to `io` only when an event of
another key needs it.  Counts still in a slot are not in `io`: before reading,
user space runs the probe's never-attached raw tracepoint program
`flush_io_slots` on every online CPU through BPF_PROG_TEST_RUN with
BPF_F_TEST_RUN_ON_CPU (an IPI runs it on that CPU), FLUSH_BATCH slots per run.
It adds the slots to `io` and marks them dirty, so the read that follows (full
or incremental) sees every count made before the flush.  The io counts are
sums: the order in which CPUs add them does not matter.

The probe's `io_current` line and `io_log` ring (per CPU: the readahead and
read_folio counts of the file last inserted, and those it moved on from) are
emptied the same way by `flush_io_log`, run on each CPU until it says the
ring and the line are in `io` (16 entries a run).

A run that interrupted a probe in the middle of a slot update leaves that
slot and returns BUSY; it is run again.  A CPU that is offline keeps its pending
slots until it is back online (the kernel cannot run a program there): its
counts are late, not lost.
"""
from __future__ import annotations

import ctypes as ct
import platform
import struct
from typing import Callable, Iterable

IO_SLOTS = 512          # probes/filemap.c IO_SLOTS (per CPU)
FLUSH_BATCH = 32        # probes/filemap.c FLUSH_BATCH (slots per run)
IO_LOG = 1024           # probes/filemap.c IO_LOG (io_log entries per CPU)
DONE, BUSY = 0, 1       # flush_io_slots return values
RETRIES = 1000          # runs of one batch that may find a probe in the middle

BPF_PROG_TEST_RUN = 10
BPF_F_TEST_RUN_ON_CPU = 1
# __NR_bpf per machine (asm/unistd.h); None elsewhere: the probe is built
# without slots (IO_SLOTS=0, one io update per event as before)
SYS_BPF = {"x86_64": 321, "aarch64": 280, "arm64": 280, "riscv64": 280,
           "loongarch64": 280, "ppc64le": 361, "ppc64": 361, "s390x": 351}
# union bpf_attr, its `test` member: prog_fd @0, retval @4, ctx_size_in @40,
# ctx_in @48, flags @64, cpu @68 (80 bytes with batch_size and padding)
_ATTR = struct.Struct("=II32xII Q8xII8x")


def sys_bpf_number(machine: str | None = None) -> int | None:
    """The bpf(2) syscall number of this machine, None if not known here."""
    return SYS_BPF.get(machine if machine is not None else platform.machine())


def parse_cpu_list(text: str) -> list[int]:
    """A kernel CPU list ("0-3,8,10-11\\n") as the CPU numbers in it."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def possible_cpus() -> int:
    """How many CPU numbers the kernel may use (the probe's LOG_CPUS)."""
    with open("/sys/devices/system/cpu/possible") as f:
        return max(parse_cpu_list(f.read()), default=0) + 1


def online_cpus() -> list[int]:
    with open("/sys/devices/system/cpu/online") as f:
        return parse_cpu_list(f.read())


def flush_all(run: Callable[[int, int], int], cpus: Iterable[int], *, slots: int = IO_SLOTS,
              batch: int = FLUSH_BATCH, retries: int = RETRIES) -> list[int]:
    """Run ``run(cpu, first_slot)`` for every batch of slots of every CPU,
    again while it returns BUSY (at most ``retries`` times).  ``run`` returns
    the program's value (DONE, BUSY, other: failed) or raises OSError (an
    offline CPU: ENXIO).  Returns the CPUs left with slots not flushed."""
    left = []
    for cpu in cpus:
        for first in range(0, slots, batch):
            rv = BUSY
            for _ in range(retries):
                try:
                    rv = run(cpu, first)
                except OSError:
                    rv = -1
                if rv != BUSY:
                    break
            if rv != DONE:
                left.append(cpu)
                break
    return left


class SlotFlusher:
    """flush_io_slots of one loaded probe, run on every online CPU."""

    def __init__(self, prog_fd: int, nr: int, log_fd: int | None = None):
        self.prog_fd, self.nr, self.log_fd = prog_fd, nr, log_fd
        self.libc = ct.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ct.c_long
        self.attr = ct.create_string_buffer(_ATTR.size)
        self.ctx = (ct.c_uint64 * 1)()          # args[0]: the first slot of the batch
        self.left: list[int] = []               # CPUs the last flush could not empty

    def run(self, cpu: int, first: int, fd: int | None = None) -> int:
        self.ctx[0] = first
        _ATTR.pack_into(self.attr, 0, self.prog_fd if fd is None else fd, 0,
                        ct.sizeof(self.ctx), 0,
                        ct.addressof(self.ctx), BPF_F_TEST_RUN_ON_CPU, cpu)
        if self.libc.syscall(ct.c_long(self.nr), ct.c_int(BPF_PROG_TEST_RUN),
                             self.attr, ct.c_uint(_ATTR.size)) != 0:
            err = ct.get_errno()
            raise OSError(err, f"BPF_PROG_TEST_RUN on CPU {cpu}")
        return struct.unpack_from("=I", self.attr, 4)[0]

    def flush(self) -> list[int]:
        """Every online CPU's slots into `io`; the CPUs left (see flush_all)."""
        cpus = online_cpus()
        self.left = flush_all(self.run, cpus)
        if self.log_fd is not None:     # io_log + io_current: one "batch", run until DONE
            left = flush_all(lambda cpu, first: self.run(cpu, first, self.log_fd), cpus,
                             slots=1, batch=1)
            self.left = sorted(set(self.left) | set(left))
        return self.left
