"""Full tier: EROFS page-cache sharing (inode_share, Linux 7.0+).

Loads probes/ishare.c with BCC and reads its maps into
``readings.SharedInode`` lists: per shared inode (keyed by its address_space
pointer) the resident pages per inserting cgroup, the real inodes that joined
it (members) and the cgroups that opened, read or mapped it (users).

The tracepoint tier (probes.py) creates ``SharingProbes`` when the host
check ``host.sharing_supported()`` says yes and puts ``read()`` into ``Readings.shared``;
the aggregator turns that into shared / fair / saved bytes.  This module and
probes.py are the only ones that import bcc.
"""
from __future__ import annotations

import ctypes as ct
import os
import struct
import time
from pathlib import Path

from ..readings import ReadRecord, SharedInode
from . import btf, host, maps
from .probe_files import ProbeFileMissing, probe_file

COUNTERS = ("chunk_update_failures", "member_update_failures", "user_update_failures",
            "owner_overflow_pages", "big_folio_lost_pages", "delete_untracked_pages",
            "fill_shared", "fill_not_shared", "free_inode", "open", "read", "mmap",
            "fill_no_iget", "touch_update_failures", "touch_no_member",
            "touch_truncated_pages", "read_log_drops")
# probes/ishare.c struct read_rec: file, mapping, ino, pos, count, prev_pos, size, cgid, dev, kind
READ_REC = struct.Struct("<QQQqQqQQII")
READ_SB_GONE = 1        # read_rec.kind: superblock dev was killed (erofs_kill_sb)
READ_FAULT = 2          # read_rec.kind: a filemap_fault of page pos >> 12 (mmap)
# (function, BPF function, return probe?, required?)
KPROBES = (
    ("erofs_ishare_file_open", "kp_ishare_open", False, True),
    ("erofs_ishare_file_open", "kr_ishare_open", True, True),
    ("erofs_ishare_file_read_iter", "kp_ishare_read_iter", False, True),
    ("erofs_ishare_mmap", "kp_ishare_mmap", False, True),
    ("erofs_ishare_free_inode", "kp_free_inode", False, True),
    ("erofs_ishare_fill_inode", "kp_fill_inode", False, False),
    ("erofs_ishare_fill_inode", "kr_fill_inode", True, False),
    ("iget5_locked", "kr_iget5_locked", True, False),
    ("erofs_file_read_iter", "kp_file_read_iter", False, False),
    ("erofs_kill_sb", "kp_kill_sb", False, False),
)
WITHOUT = {"erofs_file_read_iter": "reads of stock files are not logged (random readers' "
                                   "savings follow the page rules)",
           "erofs_kill_sb": "unmounts are seen only at refreshes (reads of a mount "
                            "unmounted and replaced between two refreshes on the same dev "
                            "are taken for the new mount's)"}


class SharingError(Exception):
    """One-line reason why the sharing probes cannot run."""


class SharingProbes:
    """probes/ishare.c compiled, loaded and attached.

    ``mode``: "auto" (kprobes, else fentry), "kprobe" or "fentry".
    ``hook`` then says which one runs (for doctor); ``warnings`` lists what is
    degraded (e.g. members learned only from opens when fill_inode cannot be
    probed).
    """

    def __init__(self, *, mode: str = "auto", max_chunks: int = 262144,
                 max_members: int = 65536, max_users: int = 65536):
        try:
            from bcc import BPF
        except ImportError:
            raise SharingError("the bcc Python module is missing (apt-get install python3-bpfcc)") from None
        self._BPF = BPF
        self.max_chunks, self.max_members, self.max_users = max_chunks, max_members, max_users
        self.warnings: list[str] = []
        self._chunk_gc = None         # set once the probes are loaded
        self.bpf = None
        self._layout: list[str] | None = None   # btf.py's -D macros ([]: headers)
        self.layout = ""              # where struct layouts came from (doctor)
        self.layout_s = 0.0
        errors = []
        order = {"auto": ("kprobe", "fentry"), "kprobe": ("kprobe",), "fentry": ("fentry",)}[mode]
        for hook in order:
            try:
                self._load(hook)
                self.hook = hook
                break
            except SharingError as e:
                errors.append(f"{hook}: {e}")
                self._cleanup()
        else:
            raise SharingError("; ".join(errors))

    # ---------------------------------------------------------- loading
    def _cflags(self, hook: str, probe: Path) -> list[str]:
        fl = [f"-DSHARED_CHUNK_ENTRIES={self.max_chunks}", f"-DMEMBER_ENTRIES={self.max_members}",
              f"-DUSER_ENTRIES={self.max_users}", f"-DTOUCH_ENTRIES={self.max_chunks}",
              f"-DSELF_TGID={os.getpid()}",
              f"-I{probe.parent}"]     # chunk_owners.h, shared with filemap.c
        if hook == "fentry":
            fl.append("-DISHARE_FENTRY")
        return fl + self._layout_cflags()

    def _layout_cflags(self) -> list[str]:
        """Struct layouts from kernel BTF (btf.py: no header tree to compile,
        most of this file's compile time); [] = the kernel headers."""
        if self._layout is None:
            t = time.monotonic()
            flags, why = btf.cflags()
            self.layout_s = time.monotonic() - t
            self._layout = flags or []
            self.layout = "BTF" if flags else f"kernel headers ({why})"
        return self._layout

    def _load(self, hook: str) -> None:
        BPF = self._BPF
        if hook == "fentry" and not BPF.support_kfunc():
            raise SharingError("fentry (BPF trampolines) not supported here")
        if hook == "kprobe" and not host.kprobes_available():
            raise SharingError("kprobes not available")
        try:
            probe = probe_file("ishare.c")
        except ProbeFileMissing as e:
            raise SharingError(str(e)) from None
        try:
            try:
                self.bpf = BPF(src_file=str(probe).encode(), cflags=self._cflags(hook, probe))
            except Exception as e:
                if not self._layout:
                    raise
                # BTF layouts the file cannot use: the headers, as before BTF
                self.warnings.append("sharing: probes/ishare.c did not compile with BTF struct "
                                     f"layouts ({_last_line(e)}); compiled with the kernel headers")
                self._layout, self.layout = [], "kernel headers (BTF layouts failed)"
                self.bpf = BPF(src_file=str(probe).encode(), cflags=self._cflags(hook, probe))
        except Exception as e:   # bcc raises plain Exception with the compiler log
            lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
            raise SharingError(f"probes/ishare.c failed to load: {lines[-1] if lines else e}") from None
        self._chunk_gc = maps.EmptyChunkGC(self.bpf["shared_chunks"])
        self._reads: list[bytes] = []
        self._drops_seen = 0

        def on_read(_ctx, data, size):
            self._reads.append(ct.string_at(data, size))
        self.bpf["read_log"].open_ring_buffer(on_read)
        if hook == "fentry":
            return                # BCC attached the kfunc programs at load
        self._attach_kprobes()

    def _attach_kprobes(self) -> None:
        for fn, prog, ret, required in KPROBES:
            try:
                if ret:
                    self.bpf.attach_kretprobe(event=fn, fn_name=prog)
                else:
                    self.bpf.attach_kprobe(event=fn, fn_name=prog)
            except Exception as e:
                if required:
                    raise SharingError(f"cannot attach {'kretprobe' if ret else 'kprobe'} "
                                       f"{fn}: {str(e).strip().splitlines()[-1]}") from None
                why = str(e).strip().splitlines()
                self.warnings.append(f"sharing: {fn} not probed ({why[-1] if why else e}); " +
                                     WITHOUT.get(fn, "members are learned from opens, reads "
                                                     "and mmaps only"))

    def _cleanup(self) -> None:
        if self.bpf is not None:
            try:
                self.bpf.cleanup()
            except Exception:
                pass
            self.bpf = None

    def close(self) -> None:
        self._cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---------------------------------------------------------- reading
    def counters(self) -> dict[str, int]:
        return maps.percpu_counters(self.bpf["counters"], COUNTERS)

    def map_usage(self) -> dict[str, tuple[int, int, int]]:
        """name -> (entries, capacity, update failures), for Readings.maps."""
        c = self.counters()
        return {
            "shared_chunks": (len(self.bpf["shared_chunks"]), self.max_chunks, c["chunk_update_failures"]),
            "shared_members": (len(self.bpf["members"]), self.max_members, c["member_update_failures"]),
            "shared_users": (len(self.bpf["users"]), self.max_users, c["user_update_failures"]),
            "shared_touched": (len(self.bpf["touched"]), self.max_chunks,
                               c["touch_update_failures"]),
        }

    def drain_reads(self) -> tuple[list[ReadRecord], int]:
        """The reads logged since the previous call, in order (with a
        ``sb_gone`` record where an EROFS superblock was killed), and how many
        records the ring dropped since then."""
        self.bpf.ring_buffer_consume()
        raw, self._reads = self._reads, []
        out = []
        for b in raw:
            f, mapping, ino, pos, count, prev_pos, size, cgid, dev, kind = READ_REC.unpack_from(b)
            out.append(ReadRecord(dev=dev, ino=ino, file=f, mapping=mapping, pos=pos,
                                  count=count, prev_pos=prev_pos, size=size, cgroup_id=cgid,
                                  sb_gone=kind == READ_SB_GONE, fault=kind == READ_FAULT))
        drops = self.counters()["read_log_drops"]
        lost, self._drops_seen = drops - self._drops_seen, drops
        return out, lost

    def read(self) -> list[SharedInode]:
        """Every shared inode with resident pages or live members."""
        if self.bpf is None:
            raise SharingError("the sharing probes are closed")
        out: dict[int, SharedInode] = {}

        def inode(mapping: int) -> SharedInode:
            s = out.get(mapping)
            if s is None:
                s = out[mapping] = SharedInode(mapping=mapping, chunks={})
            return s

        empty = set()
        for k, v in maps.items(self.bpf["shared_chunks"]):
            owners = maps.chunk_owners(v)
            if not owners:
                empty.add((k.mapping, k.chunk))
                continue
            inode(k.mapping).chunks[k.chunk] = owners
        self._chunk_gc.collect(empty)

        for k, v in maps.items(self.bpf["members"]):
            s = inode(k.mapping)
            s.members.add((k.dev, k.ino))
            s.size = max(s.size, v.size)

        users = self.bpf["users"]
        stale = []
        for k, _ in maps.items(users):
            s = out.get(k.mapping)
            if s is None or (k.dev, k.ino) not in s.members:
                stale.append(k)       # its real inode was evicted: forget the use
                continue
            s.users.setdefault(k.cgid, set()).add((k.dev, k.ino))
        for k in stale:
            try:
                del users[k]
            except KeyError:
                pass
        self._read_touched(out)
        return [s for s in out.values() if s.chunks or s.members]

    def _read_touched(self, out: dict[int, SharedInode]) -> None:
        """Pages each member's readers asked for; marks of members that left go."""
        for s in out.values():
            s.touched = {}
        touched = self.bpf["touched"]
        stale = []
        for k, v in maps.items(touched):
            s = out.get(k.mapping)
            if s is None or (k.dev, k.ino) not in s.members:
                stale.append(k)
                continue
            s.touched.setdefault((k.dev, k.ino), {})[k.chunk] = v.value
        for k in stale:
            try:
                del touched[k]
            except KeyError:
                pass


def _last_line(e: Exception) -> str:
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__

