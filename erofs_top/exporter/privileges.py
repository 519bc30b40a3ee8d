"""Drop Linux capabilities once the probes are attached (capset(2) via ctypes).

Loading BPF programs, attaching them, raising RLIMIT_MEMLOCK and binding the
listen socket need privileges; reading the maps afterwards does not (the map
fds are already open and, since Linux 6.5, map lookups on an fd need no
capability).  What a refresh still needs is kept (``default_keep``,
docs/exporter.md):

- CAP_DAC_READ_SEARCH: read image superblocks, name files and hash their
  content on mounts whose files root cannot read by mode bits;
- CAP_SYS_ADMIN only on the snapshot tier: /proc/kpagecgroup and
  pagemap PFNs (ground truth every refresh), trusted.* fingerprint xattrs
  through the mount (most images give them: resolve/xattrs.py);
- CAP_BPF on kernels before 6.5 (CAP_SYS_ADMIN before 5.8) to read the maps.

Capabilities are per thread on Linux: call ``drop_capabilities`` while the
process has a single thread, before the refresh and HTTP threads start (it
refuses otherwise).  It also empties the bounding and ambient sets and sets
no_new_privs, so no exec can regain what was dropped.
"""
from __future__ import annotations

import ctypes
import os

CAPS = {   # linux/capability.h
    "chown": 0, "dac_override": 1, "dac_read_search": 2, "fowner": 3, "fsetid": 4,
    "kill": 5, "setgid": 6, "setuid": 7, "setpcap": 8, "linux_immutable": 9,
    "net_bind_service": 10, "net_broadcast": 11, "net_admin": 12, "net_raw": 13,
    "ipc_lock": 14, "ipc_owner": 15, "sys_module": 16, "sys_rawio": 17, "sys_chroot": 18,
    "sys_ptrace": 19, "sys_pacct": 20, "sys_admin": 21, "sys_boot": 22, "sys_nice": 23,
    "sys_resource": 24, "sys_time": 25, "sys_tty_config": 26, "mknod": 27, "lease": 28,
    "audit_write": 29, "audit_control": 30, "setfcap": 31, "mac_override": 32,
    "mac_admin": 33, "syslog": 34, "wake_alarm": 35, "block_suspend": 36, "audit_read": 37,
    "perfmon": 38, "bpf": 39, "checkpoint_restore": 40,
}
KEEP_BPF_TIER = ("dac_read_search",)
KEEP_SNAPSHOT_TIER = ("dac_read_search", "sys_admin")


def default_keep(tier: str, kernel: tuple[int, int]) -> tuple[str, ...]:
    """What a refresh needs on this tier and kernel.

    Before Linux 6.5 every bpf(2) command, map reads included, needs CAP_BPF
    (CAP_SYS_ADMIN before 5.8, which has no CAP_BPF) when
    kernel.unprivileged_bpf_disabled is set, the distribution default."""
    if tier == "snapshot":
        return KEEP_SNAPSHOT_TIER
    if kernel < (5, 8):
        return KEEP_BPF_TIER + ("sys_admin",)
    if kernel < (6, 5):
        return KEEP_BPF_TIER + ("bpf",)
    return KEEP_BPF_TIER

_LINUX_CAPABILITY_VERSION_3 = 0x20080522
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4


class CapsError(Exception):
    pass


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


_libc = ctypes.CDLL(None, use_errno=True)
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def parse_caps(text: str) -> tuple[str, ...]:
    """"dac_read_search,CAP_SYS_ADMIN" -> ("dac_read_search", "sys_admin"); "" -> ()."""
    out = []
    for part in text.split(","):
        name = part.strip().lower().removeprefix("cap_")
        if not name:
            continue
        if name not in CAPS:
            raise CapsError(f"unknown capability {part.strip()!r} "
                            f"(known: {', '.join(sorted(CAPS))})")
        out.append(name)
    return tuple(dict.fromkeys(out))


def _mask(names) -> int:
    m = 0
    for n in names:
        m |= 1 << CAPS[n]
    return m


def current_caps(pid: int | str = "self") -> dict[str, int]:
    """CapEff/CapPrm/CapBnd/... of a task from /proc (hex masks as ints)."""
    out = {}
    with open(f"/proc/{pid}/status", errors="surrogateescape") as f:
        for line in f:
            if line.startswith("Cap"):
                k, v = line.split(":", 1)
                out[k] = int(v.strip(), 16)
    return out


def names_of(mask: int) -> list[str]:
    return sorted((n for n, bit in CAPS.items() if mask >> bit & 1), key=CAPS.get)


def drop_capabilities(keep: tuple[str, ...]) -> list[str]:
    """Keep only ``keep`` (effective = permitted); returns the names kept and held."""
    tasks = os.listdir("/proc/self/task")
    if len(tasks) != 1:
        raise CapsError(f"cannot drop capabilities: {len(tasks)} threads running "
                        "(capabilities are per thread; drop before starting threads)")
    held = current_caps()
    keep_mask = _mask(keep) & held.get("CapPrm", 0)
    # bounding set first (needs CAP_SETPCAP, which we still hold), then ambient
    for name, bit in CAPS.items():
        if not keep_mask >> bit & 1 and _libc.prctl(PR_CAPBSET_READ, bit, 0, 0, 0) == 1:
            if _libc.prctl(PR_CAPBSET_DROP, bit, 0, 0, 0) != 0:
                e = ctypes.get_errno()
                if e != 1:      # EPERM: no CAP_SETPCAP; the capset below still drops it
                    raise CapsError(f"cannot drop cap_{name} from the bounding set: "
                                    f"{os.strerror(e)}")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    hdr = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_Data * 2)()
    for i in range(2):
        word = (keep_mask >> (32 * i)) & 0xFFFFFFFF
        data[i].effective = word
        data[i].permitted = word
        data[i].inheritable = 0
    if _libc.capset(ctypes.byref(hdr), data) != 0:
        e = ctypes.get_errno()
        raise CapsError(f"capset failed: {os.strerror(e)}")
    if _libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        e = ctypes.get_errno()
        raise CapsError(f"cannot set no_new_privs: {os.strerror(e)}")
    return names_of(keep_mask)
