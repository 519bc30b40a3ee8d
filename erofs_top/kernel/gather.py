"""The values of an incremental read's dirty keys without a lookup syscall
per key (issue 11): probes/filemap.c's never-attached `gather_chunks` and
`gather_io`.

The keys go into the probe's `gather_keys` array, mapped into this process
(BPF_F_MMAPABLE: a copy into memory, no syscall); one BPF_PROG_TEST_RUN per
GATHER_BATCH keys copies each key's value out of `chunks` (or `io`) into
`gather_chunk_out` (`gather_io_out`), also mapped here, with a found flag.
A bpf_lookup_elem syscall per key cost ~1.4 us (10 ms of a 1 % read at
600,000 chunk entries, docs/performance.md).  A value is copied as the
syscall copies it (while a probe on another CPU may change it; the dirty
protocol marks it again).  More keys than GATHER_MAX: in rounds.
"""
from __future__ import annotations

import ctypes as ct
import mmap
import struct

from . import slots

GATHER_MAX = 8192       # probes/filemap.c GATHER_MAX (keys a round)
GATHER_BATCH = 128      # probes/filemap.c GATHER_BATCH (keys a program run; verifier time ~ it)
KEY_SIZE = 24           # struct chunk_key, struct io_key
FOUND = struct.Struct("=Q")


def cflags(enabled: bool) -> list[str]:
    """The probe's -D flags for the gather programs (not built: GATHER_MAX 0)."""
    return [f"-DGATHER_MAX={GATHER_MAX if enabled else 0}", f"-DGATHER_BATCH={GATHER_BATCH}"]


def _pages(size: int) -> int:
    return -(-size // mmap.PAGESIZE) * mmap.PAGESIZE


def map_array(fd: int, value_size: int, n: int) -> mmap.mmap:
    """A BPF_F_MMAPABLE array map's values (n of value_size, 8-aligned) as
    shared memory."""
    return mmap.mmap(fd, _pages(value_size * n), mmap.MAP_SHARED,
                     mmap.PROT_READ | mmap.PROT_WRITE)


def split_found(raw: bytes, n: int, stride: int, keys: list[bytes], key_fmt, val_fmt):
    """(found: [(key tuple, value tuple)], gone: [key tuple]) of n output
    records of ``stride`` bytes (a u64 found flag, then the value as val_fmt
    after a skip of 8 bytes) for ``keys`` in order."""
    flags = raw[0:n * stride:stride]
    rec = struct.Struct("=8x" + val_fmt.format.lstrip("=") + "x" * (stride - 8 - val_fmt.size))
    if flags.count(1) == n:             # the usual: every key still there
        return (list(zip(key_fmt.iter_unpack(b"".join(keys)), rec.iter_unpack(raw[:n * stride]))),
                [])
    found, gone = [], []
    for i, k in enumerate(keys):
        if flags[i]:
            found.append((key_fmt.unpack(k), rec.unpack_from(raw, i * stride)))
        else:
            gone.append(key_fmt.unpack(k))
    return found, gone


class Gatherer:
    """gather_chunks / gather_io of one loaded probe."""

    def __init__(self, bpf, nr: int, chunk_fd: int, io_fd: int, *, max_keys: int = GATHER_MAX,
                 batch: int = GATHER_BATCH):
        self.nr, self.max_keys, self.batch = nr, max_keys, batch
        self.keys = map_array(bpf[b"gather_keys"].map_fd, KEY_SIZE, max_keys)
        self.prog_fds = {b"chunks": chunk_fd, b"io": io_fd}
        self.outs = {}
        for fd, name in ((chunk_fd, b"gather_chunk_out"), (io_fd, b"gather_io_out")):
            table = bpf[name]
            stride = ct.sizeof(table.Leaf)
            self.outs[fd] = (map_array(table.map_fd, stride, max_keys), stride)
        self.runner = slots.SlotFlusher(0, nr)
        self.ctx = (ct.c_uint64 * 2)()

    def lookup(self, prog_fd: int, keys: list[bytes], key_fmt, val_fmt):
        """(found, gone) as DirtyReader.lookup for raw keys, by program prog_fd."""
        out, stride = self.outs[prog_fd]
        found, gone = [], []
        for lo in range(0, len(keys), self.max_keys):
            part = keys[lo:lo + self.max_keys]
            n = len(part)
            self.keys[0:n * KEY_SIZE] = b"".join(part)
            for first in range(0, n, self.batch):
                if self._run(prog_fd, first, n - first) != 0:
                    raise OSError(0, "gather program found no slot")
            f, g = split_found(out[0:n * stride], n, stride, part, key_fmt, val_fmt)
            found += f
            gone += g
        return found, gone

    def _run(self, prog_fd: int, first: int, left: int) -> int:
        r = self.runner
        self.ctx[0], self.ctx[1] = first, left
        slots._ATTR.pack_into(r.attr, 0, prog_fd, 0, ct.sizeof(self.ctx), 0,
                              ct.addressof(self.ctx), 0, 0)
        if r.libc.syscall(ct.c_long(self.nr), ct.c_int(slots.BPF_PROG_TEST_RUN),
                          r.attr, ct.c_uint(slots._ATTR.size)) != 0:
            err = ct.get_errno()
            raise OSError(err, "BPF_PROG_TEST_RUN of a gather program")
        return struct.unpack_from("=I", r.attr, 4)[0]

    def close(self) -> None:
        self.keys.close()
        for out, _ in self.outs.values():
            out.close()
