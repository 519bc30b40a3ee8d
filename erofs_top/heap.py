"""The C heap of a long-running process (glibc malloc).

CPython's own allocator (pymalloc) takes objects up to 512 B; larger blocks
(the tables of big dicts and sets, lists, bytes: the first read's buffers, a
full pass's key sets, a /metrics body) come from malloc.  glibc's default
thresholds move: freeing a large mmapped block raises the mmap threshold to
its size (up to 32 MiB) and the heap's trim threshold to twice that, so
after a node's first read every later block up to 32 MiB comes from the
brk heap, and the holes its frees leave are never given back.  At 250,000
files x 1,000 containers that kept ~45-60 MB of freed memory in an
exporter's RSS (docs/performance.md, "The exporter's RSS").

``fixed_thresholds()`` sets both thresholds (which also stops glibc moving
them): a block of MMAP_THRESHOLD_BYTES or more is mapped and unmapped on
its own, and a free top of the heap over TRIM_THRESHOLD_BYTES is given back.
It also keeps every thread's blocks in the one (main) arena
(``M_ARENA_MAX`` = ARENAS): the exporter's refresh thread builds the
aggregator's blocks while the server's threads make the bodies; with an
arena per thread, the free room of one serves no other's blocks and a
thread's arena is given back less readily (~5-10 MB of an exporter's RSS
at 250,000 files, docs/performance.md "The kept forms").  Python's own
objects take the GIL anyway: no lock contention is added that matters.
Elsewhere (musl, no libc found) it does nothing and says so.

``trim()`` gives back the free memory inside the heap, not only at its top
(``malloc_trim(0)``): BCC's compile of the probes (clang and LLVM, in
process) and a full pass free tens of MB in the middle of the heap, which
the trim threshold never returns (~25 MB of a real exporter's RSS after its
first refresh, docs/performance.md).  The exporter calls it after each
refresh that began from scratch (the first, and any full pass later).
"""
from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1       # glibc malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
ARENAS = 1
MMAP_THRESHOLD_BYTES = 256 << 10
TRIM_THRESHOLD_BYTES = 1 << 20

_LIBC: list = []


def _glibc():
    """glibc's handle, None elsewhere (its mallopt only: musl has none)."""
    if not _LIBC:
        lib = None
        try:
            name = ctypes.util.find_library("c")
            cand = ctypes.CDLL(name) if name else None
            if cand is not None and hasattr(cand, "mallopt") and hasattr(cand, "gnu_get_libc_version"):
                lib = cand
        except OSError:
            lib = None
        _LIBC.append(lib)
    return _LIBC[0]


def fixed_thresholds(mmap_bytes: int = MMAP_THRESHOLD_BYTES,
                     trim_bytes: int = TRIM_THRESHOLD_BYTES, arenas: int = ARENAS) -> bool:
    """Fix glibc's mmap and trim thresholds and its arenas (process-wide;
    threads that have not allocated yet then share the main one).  False
    where there is no glibc or it refused."""
    lib = _glibc()
    if lib is None:
        return False
    return bool(lib.mallopt(M_MMAP_THRESHOLD, mmap_bytes)) and bool(
        lib.mallopt(M_TRIM_THRESHOLD, trim_bytes)) and bool(lib.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give the heap's free pages back to the system (glibc malloc_trim(0));
    False where there is no glibc or nothing was given back."""
    lib = _glibc()
    if lib is None or not hasattr(lib, "malloc_trim"):
        return False
    return bool(lib.malloc_trim(0))
