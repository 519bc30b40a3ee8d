"""What this host can do: the checks behind the tier choice and `erofs-top doctor`.

No bcc import here: doctor must work where bcc is missing.
"""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..readings import kdev

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
EVENTS = ("filemap:mm_filemap_add_to_page_cache", "filemap:mm_filemap_delete_from_page_cache",
          "erofs:erofs_fill_inode", "erofs:erofs_readahead", "erofs:erofs_read_folio")
SHARING_SYMBOL = "erofs_ishare_fill_inode"
# what probes/ishare.c hooks (kernel/sharing.py KPROBES)
SHARING_SYMBOLS = ("erofs_ishare_fill_inode", "erofs_ishare_file_open",
                   "erofs_ishare_file_read_iter", "erofs_ishare_mmap", "erofs_ishare_free_inode")


def tracefs() -> str | None:
    for d in TRACEFS_DIRS:
        if os.path.isdir(os.path.join(d, "events")):
            return d
    return None


def tracefs_denied() -> str | None:
    """A tracefs directory that exists but this user may not look into (not root)."""
    for d in TRACEFS_DIRS:
        try:
            os.stat(os.path.join(d, "events"))
        except PermissionError:
            return d
        except OSError:
            continue
    return None


def ensure_erofs_loaded() -> str | None:
    """Load the erofs module when it is a module not loaded yet: its
    tracepoints and ishare symbols exist only once it is (the first EROFS mount
    would load it, after we attached).  Returns what happened, for doctor."""
    if os.path.isdir("/sys/fs/erofs") or os.path.isdir("/sys/module/erofs"):
        return None
    try:
        import subprocess
        r = subprocess.run(["modprobe", "-q", "erofs"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        return f"erofs module not loaded and modprobe failed: {e}"
    if r.returncode != 0:
        return "erofs module not loaded and `modprobe erofs` failed"
    return "loaded the erofs module (modprobe erofs) so its tracepoints exist"


def tracepoints() -> dict[str, bool]:
    base = tracefs()
    out = {}
    for ev in EVENTS:
        sub, name = ev.split(":")
        out[ev] = bool(base) and os.path.isfile(os.path.join(base, "events", sub, name, "format"))
    return out


def kernel_version() -> tuple[int, int]:
    m = re.match(r"(\d+)\.(\d+)", platform.release())
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def has_ringbuf() -> bool:
    return kernel_version() >= (5, 8)


def lockdown() -> str:
    try:
        text = Path("/sys/kernel/security/lockdown").read_text()
    except OSError:
        return "unknown"
    m = re.search(r"\[(\w+)\]", text)
    return m.group(1) if m else text.strip()


def kallsyms_missing(symbols) -> list[str]:
    """The symbols /proc/kallsyms does not list (all of them if unreadable).
    One read of the whole file (~5 MB, 30 ms) and a search per symbol: a
    line-by-line parse costs ~50 ms per symbol."""
    try:
        with open("/proc/kallsyms") as f:
            text = f.read()
    except OSError:
        return list(symbols)
    # lines are "address type name[\t[module]]"
    return [s for s in symbols
            if not re.search(rf" {re.escape(s)}(?:\t|\n|$)", text)]


def kallsyms_has(symbol: str) -> bool:
    return not kallsyms_missing([symbol])


def kprobes_available() -> bool:
    base = tracefs()
    return bool(base) and os.path.exists(os.path.join(base, "kprobe_events"))


def header_tree() -> tuple[str, str | None]:
    """(path BCC will use, the kernel release it was built for, or None)."""
    build = f"/lib/modules/{platform.release()}/build"
    if not os.path.exists(os.path.join(build, "include")):
        return build, None
    real = os.path.realpath(build)
    # Debian trees: /usr/src/linux-headers-<release>; also include/config/kernel.release
    rel_file = Path(real, "include/config/kernel.release")
    if rel_file.is_file():
        return real, rel_file.read_text().strip()
    m = re.search(r"linux-headers-(.+)$", real)
    return real, m.group(1) if m else "unknown"


def bpf_problem() -> tuple[str, str] | None:
    """None when BPF tracepoint programs can be loaded, else (one-line reason
    with its fix, the --no-bpf hint): errors.CollectorError's two fields."""
    if os.geteuid() != 0:
        return ("BPF needs root (or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN): run with sudo",
                ", or --no-bpf")
    if not tracefs():
        return ("tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing",
                " (or use --no-bpf)")
    build, rel = header_tree()
    if rel is None:
        return (f"no kernel header tree at {build}: BCC needs one to compile "
                f"(apt-get install linux-headers-$(uname -r), or the distro's linux-headers "
                f"package linked there; see scripts/setup.sh)", ", or use --no-bpf")
    try:
        v = int(Path("/proc/sys/kernel/unprivileged_bpf_disabled").read_text())
        del v   # root is not affected; read only to prove /proc/sys is there
    except OSError:
        pass
    return None


# ustat(2) by architecture: it finds a superblock by its dev among all the
# kernel's (user_get_super), in no mount namespace too; generic-table
# architectures (arm64, riscv) have none
_USTAT_NR = {"x86_64": 136, "i386": 62, "i686": 62, "ppc64le": 62, "s390x": 62}
_libc = None


class _Ustat(ctypes.Structure):
    _fields_ = [("f_tfree", ctypes.c_int), ("f_tinode", ctypes.c_ulong),
                ("f_fname", ctypes.c_char * 6), ("f_fpack", ctypes.c_char * 6)]


def erofs_superblock_alive(kdev: int) -> bool | None:
    """Whether an EROFS superblock with kernel dev ``kdev`` (major << 20 |
    minor) is alive: mounted in any mount namespace, or unmounted lazily
    and still held (an open file, a process's cwd).  A dead superblock's
    pages are all gone (generic_shutdown_super evicts every inode).
    ustat(2) finds the superblock with that dev; it is EROFS's by its
    statfs (erofs_statfs since 4.19: no free block, f_ffree = ULLONG_MAX -
    inodes), so an anonymous dev taken again by another filesystem (tmpfs,
    overlay) reads as dead.  None: cannot tell (no ustat(2) here, or a
    seccomp filter refuses it)."""
    global _libc
    nr = _USTAT_NR.get(platform.machine())
    if nr is None:
        return None
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    out = _Ustat()
    dev_t = os.makedev(kdev >> 20, kdev & 0xFFFFF)
    if _libc.syscall(nr, ctypes.c_uint(dev_t & 0xFFFFFFFF), ctypes.byref(out)) != 0:
        return False if ctypes.get_errno() == errno.EINVAL else None
    high_bit = 1 << (8 * ctypes.sizeof(ctypes.c_ulong) - 1)
    return out.f_tfree == 0 and out.f_tinode >= high_bit


def erofs_sysfs_names(root: str = "/sys/fs/erofs") -> list[str] | None:
    """The names under /sys/fs/erofs: one per live EROFS superblock
    (erofs_register_sysfs at fill_super, gone at its death), mounted or
    not; None where there is no such directory (kernels before 5.14, no
    sysfs in this mount namespace)."""
    try:
        return [n for n in os.listdir(root) if n != "features"]
    except OSError:
        return None


_DEV_NAME = re.compile(r"(\d+):(\d+)")


def sysfs_name_dev(name: str, block_root: str = "/sys/class/block") -> int | None:
    """The kernel dev (major << 20 | minor) a /sys/fs/erofs name gives: a
    block device's name (loop and disk mounts: its dev file), or a dev
    "major:minor" itself (file-backed mounts on 7.x).  None for a name that
    names no dev (file-backed on 6.x: the private bdi's "erofs-N";
    fscache: the fsid, "domain_id,fsid")."""
    m = _DEV_NAME.fullmatch(name)
    if m is None and "/" not in name and name not in (".", ".."):
        try:
            with open(os.path.join(block_root, name, "dev")) as f:
                m = _DEV_NAME.fullmatch(f.read().strip())
        except OSError:
            return None
    return None if m is None else kdev(int(m[1]), int(m[2]))


def superblocks_alive_by_sysfs(devs, mounted: set[int], name_devs: list[int | None]
                               ) -> dict[int, bool | None]:
    """Whether an EROFS superblock with each dev of ``devs`` lives, told from
    /sys/fs/erofs where ustat(2) is missing (arm64, riscv).  ``name_devs``:
    the dev of each name there (sysfs_name_dev; None: the name gives none),
    ``mounted``: the EROFS devs in the mountinfo erofs-top reads.  A dev a
    name gives is alive.  Names that give none are counted: when the mounted
    devs no name gives account for all of them, no other superblock lives,
    so every other dev is dead.  Otherwise (a superblock detached and still
    held, or mounted where erofs-top does not look; or a mount made or gone
    between the two reads) a dev no name gives cannot be told: None."""
    named = {d for d in name_devs if d is not None}
    unnamed = sum(d is None for d in name_devs)
    placed = len({d for d in mounted if d not in named})
    out: dict[int, bool | None] = {}
    for dev in devs:
        if dev in named:
            out[dev] = True
        else:
            out[dev] = False if unnamed == placed else None
    return out


class SuperblockLiveness:
    """erofs_superblock_alive of many devs, where ustat(2) cannot tell
    (arm64, riscv; a seccomp filter) told from /sys/fs/erofs
    (superblocks_alive_by_sysfs).  There a dev is dead only when found so
    at two reads in a row: ``mounted`` may be older than the names (mount
    namespaces are scanned at most once a second), and a mount that went
    meanwhile would make a live detached superblock's name look like the
    gone one's.  A dev that cannot be ruled out is reported alive and put
    in ``guessed`` (kept watched: once the superblocks that made it
    uncertain die, it is told); a dev found dead once is kept too, silently.
    None: nothing here can tell (no ustat(2), no /sys/fs/erofs)."""

    def __init__(self, ustat=None, sysfs_names=None, name_dev=None):
        # (passed in by tests; the host's own by default)
        self.ustat = ustat or erofs_superblock_alive
        self.sysfs_names = sysfs_names or erofs_sysfs_names
        self.name_dev = name_dev or sysfs_name_dev
        self.guessed: set[int] = set()
        self.dead_once: set[int] = set()

    def __call__(self, devs, mounted: set[int]) -> dict[int, bool | None]:
        out = {dev: self.ustat(dev) for dev in devs}
        unknown = [dev for dev, alive in out.items() if alive is None]
        self.guessed = set()
        names = self.sysfs_names() if unknown else None
        if names is None:
            self.dead_once = set()
            return out
        told = superblocks_alive_by_sysfs(unknown, mounted, [self.name_dev(n) for n in names])
        dead = {dev for dev, alive in told.items() if alive is False}
        for dev, alive in told.items():
            if alive is None:
                self.guessed.add(dev)
                alive = True
            elif alive is False and dev not in self.dead_once:
                alive = True        # (dead at the next read, unless told otherwise then)
            out[dev] = alive
        self.dead_once = dead
        return out


def superblock_liveness_method(sysfs_root: str = "/sys/fs/erofs") -> tuple[bool, str, str]:
    """(ok, detail, fix) for doctor: how erofs-top tells whether an
    unmounted EROFS superblock still lives (SuperblockLiveness)."""
    if erofs_superblock_alive(0xFFFFF) is not None:     # (the last anonymous minor: unused)
        return True, "ustat(2) finds a detached superblock by its dev", ""
    if erofs_sysfs_names(sysfs_root) is not None:
        return True, (f"no ustat(2) on {platform.machine()}: told from {sysfs_root} (a dev it "
                      f"cannot rule out stays watched until it can)"), ""
    return False, f"no ustat(2) on {platform.machine()} and no {sysfs_root}", (
        "a layer unmounted lazily (containerd) is unwatched at its unmount: its later "
        "evictions are not counted; a kernel with EROFS sysfs (5.14+) mends it")


def kpagecgroup_readable() -> bool:
    try:
        with open("/proc/kpagecgroup", "rb") as f:
            f.read(8)
        return True
    except OSError:
        return False


def cgroup2_mount() -> str | None:
    from ..names import read_text
    from ..resolve.mounts import parse_mountinfo
    for e in parse_mountinfo(read_text("/proc/self/mountinfo"), "cgroup2"):
        if e.mountpoint in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
            return e.mountpoint
    return None


def _module_loaded(name: str) -> bool:
    return os.path.isdir(f"/sys/module/{name}")


def _config_says_sharing() -> bool | None:
    """CONFIG_EROFS_FS_PAGE_CACHE_SHARE from the kernel's config file, None if unknown."""
    rel = platform.release()
    for p in (f"/lib/modules/{rel}/config", f"/boot/config-{rel}"):
        try:
            text = Path(p).read_text()
        except OSError:
            continue
        return "CONFIG_EROFS_FS_PAGE_CACHE_SHARE=y" in text.splitlines()
    return None


def sharing_supported() -> tuple[bool, str]:
    """(True, how) when the full tier can run here, else (False, one-line reason)."""
    if os.geteuid() != 0:
        return False, "needs root"
    missing = kallsyms_missing(SHARING_SYMBOLS)
    if missing:
        if not _module_loaded("erofs") and not any(
                line.split()[-1] == "erofs" for line in _read_lines("/proc/filesystems")):
            if _config_says_sharing():
                return False, ("the erofs module is not loaded yet: the sharing probes attach "
                               "after it loads (modprobe erofs, or the first EROFS mount)")
            return False, "erofs is not loaded and the kernel config does not show page-cache sharing"
        if len(missing) == len(SHARING_SYMBOLS):
            return False, ("this kernel has no EROFS page-cache sharing "
                           "(CONFIG_EROFS_FS_PAGE_CACHE_SHARE, Linux 7.0+)")
        return False, f"kernel symbol {missing[0]} is missing (inlined or renamed on this kernel)"
    ld = lockdown()
    if ld == "confidentiality":
        return False, "lockdown=confidentiality refuses the kernel struct reads the probes need"
    if not kprobes_available() and not os.path.exists("/sys/kernel/btf/vmlinux"):
        return False, "neither kprobes nor BTF (fentry) are available"
    build, rel = header_tree()
    if rel is None:
        return False, f"no kernel header tree at {build}"
    if rel != platform.release():
        return False, (f"the header tree {build} is for {rel}, not the running "
                       f"{platform.release()}: struct offsets would be wrong")
    how = "kprobes" if kprobes_available() else "fentry"
    return True, f"{how} on erofs_ishare_*, raw tracepoints on filemap add/delete, headers match"


def _read_lines(path: str) -> list[str]:
    try:
        return Path(path).read_text().splitlines()
    except OSError:
        return []


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    fix: str = ""


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    tier: str = ""          # best tier that can run, "" when none

    def add(self, name, ok, detail, fix=""):
        self.checks.append(Check(name, ok, detail, fix))


def _doctor_tracing(r: Report):
    """tracefs, the tracepoints and kprobes: (tracefs path, path denied, tracepoints)."""
    tf = tracefs()
    denied = None if tf else tracefs_denied()
    if denied:
        # not the kernel's fault: this user may not read tracefs
        r.add("tracefs", False, f"{denied}: permission denied (uid {os.geteuid()})",
              "run as root: tracepoints and kprobes cannot be checked or used without it")
    else:
        r.add("tracefs", bool(tf), tf or "not mounted",
              "" if tf else "mount -t tracefs tracefs /sys/kernel/tracing")
    loaded = os.path.isdir("/sys/fs/erofs") or os.path.isdir("/sys/module/erofs")
    r.add("erofs filesystem", loaded, "loaded" if loaded else "module not loaded yet",
          "" if loaded else "erofs-top runs `modprobe erofs` at start: its tracepoints and "
                            "ishare symbols exist only once the module is loaded")
    tps = tracepoints()
    for ev, ok in tps.items():
        essential = ev.startswith("filemap:")
        if denied:
            r.add(f"tracepoint {ev}", False, "unknown: tracefs not readable (permission denied)",
                  "run as root to check")
            continue
        r.add(f"tracepoint {ev}", ok, "present" if ok else "missing",
              "" if ok else ("a kernel with large-folio filemap tracepoints (5.18+)" if essential
                             else "EROFS read events: plain files need 6.16+; "
                                  "readahead/miss counters stay 0"))
    kp = kprobes_available()
    if denied:
        r.add("kprobes", False, "unknown: tracefs not readable (permission denied)",
              "run as root to check")
    else:
        r.add("kprobes", kp, "kprobe_events present" if kp else
              "CONFIG_KPROBES off or tracefs missing",
              "" if kp else "only the full (sharing) tier needs kprobes; fentry is tried instead")
    return tf, denied, tps


def doctor(mounts=None) -> Report:
    """Everything `erofs-top doctor` prints, and the tier it concludes."""
    r = Report()
    rel = platform.release()
    r.add("kernel", True, rel)
    btf = os.path.exists("/sys/kernel/btf/vmlinux")
    r.add("BTF", btf, "/sys/kernel/btf/vmlinux" if btf else "missing",
          "" if btf else "a kernel with CONFIG_DEBUG_INFO_BTF=y (only the full tier's fentry needs it)")
    ld = lockdown()
    r.add("lockdown", ld != "confidentiality", ld,
          "" if ld != "confidentiality" else
          "kernel memory reads are refused: the full tier (struct reads) cannot run; "
          "tracepoint tier is fine")
    root = os.geteuid() == 0
    r.add("root", root, "uid 0" if root else f"uid {os.geteuid()}",
          "" if root else "run as root (sudo), or grant CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN")
    tf, denied, tps = _doctor_tracing(r)
    build, hrel = header_tree()
    match = hrel == rel
    if hrel is None:
        r.add("kernel headers", False, f"none at {build}",
              "apt-get install linux-headers-$(uname -r) or run scripts/setup.sh")
    else:
        r.add("kernel headers", True,
              f"{build} (built for {hrel}" + (", matches)" if match else
                                                f", does NOT match {rel}: tracepoint tier only, "
                                                f"no struct reads)"),
              "" if match else "install the headers of the running kernel for the full tier")
    share = kallsyms_has(SHARING_SYMBOL)
    r.add("page-cache sharing", share,
          f"{SHARING_SYMBOL} in kallsyms" if share else
          "kernel without CONFIG_EROFS_FS_PAGE_CACHE_SHARE (or erofs module not loaded yet)",
          "" if share else "Linux 7.0+ with CONFIG_EROFS_FS_PAGE_CACHE_SHARE=y, mount with "
                           "inode_share,domain_id=...")
    full, how = sharing_supported()
    r.add("sharing tier (full)", full, how,
          "" if full else "the tracepoint tier runs instead; fix the reason above for the full tier")
    cg = cgroup2_mount()
    r.add("cgroup v2", bool(cg), cg or "not mounted", "" if cg else "mount -t cgroup2 none /sys/fs/cgroup")
    r.add("unmounted superblocks", *superblock_liveness_method())
    kpc = kpagecgroup_readable()
    r.add("kpagecgroup", kpc, "readable" if kpc else "not readable",
          "" if kpc else "run as root; without it seeded pages have unknown owners")
    if mounts is not None:
        ms = mounts.mounts()
        _mount_tables(r, mounts)
        if not ms:
            r.add("EROFS mounts", True, "none now (erofs-top picks up new mounts while running)")
        if any(m.backing == "loop" for m in ms):
            _doctor_loop_charge(r, cg)
        for m in ms:
            opts = ",".join(o for o in ("inode_share", "directio") if o in m.options) or "-"
            where = f" [mount namespace: {m.mount_ns}]" if getattr(m, "mount_ns", "") else ""
            r.add(f"mount {m.dev_str}", True,
                  f"{m.mountpoint} <- {m.source} ({m.backing}; options {opts}){where}")
    bpf_ok = root and bool(tf) and hrel is not None and all(
        tps[e] for e in EVENTS[:2])
    full_ok = bpf_ok and full
    r.tier = "full" if full_ok else "tracepoint" if bpf_ok else "snapshot" if root or kpc else ""
    # the snapshot tier needs to read page residency (any user can mincore their files)
    if not r.tier:
        r.tier = "snapshot"
    return r


def loop_charge_check(controllers: str | None, subtree_control: str | None
                      ) -> tuple[bool, str, str]:
    """(ok, detail, fix): who pays a loop mount's backing-file page cache.

    The loop worker reads the backing file charged to the memcg of the blkcg
    that issued the bio (drivers/block/loop.c, ``cmd->memcg_css``): the
    reader's own only where the io controller covers the reader's cgroup.
    Otherwise the root memcg pays, no container's memory.stat shows it, and
    erofs-top cannot tell which reader it serves.  Arguments: the text of the
    cgroup v2 root's cgroup.controllers and cgroup.subtree_control."""
    if controllers is None:
        return True, "no cgroup v2 root to check", ""
    if "io" not in controllers.split():
        return True, ("the io controller is not on cgroup v2 (bound to v1?): the root "
                       "memcg pays loop mounts' backing-file cache, not the readers"), \
            "boot with cgroup v2 only (systemd.unified_cgroup_hierarchy=1)"
    if "io" not in (subtree_control or "").split():
        return True, ("io controller off for the root's children: the root memcg pays "
                      "loop mounts' backing-file cache, not the readers"), \
            "enable it as runc and the kubelet do: echo +io > <cgroup2 root>/cgroup.subtree_control"
    return True, "io controller on: each reader's cgroup pays the backing-file cache it reads", ""


def _doctor_loop_charge(r: Report, cg: str | None) -> None:
    from ..names import read_text
    texts = []
    for name in ("cgroup.controllers", "cgroup.subtree_control"):
        try:
            texts.append(read_text(f"{cg}/{name}") if cg else None)
        except OSError:
            texts.append(None)
    ok, detail, fix = loop_charge_check(*texts)
    r.add("loop backing-file charge", ok, detail, fix)


def _mount_tables(r, mounts) -> None:
    """doctor: which mount namespaces' tables were read (resolve/mountns.py)."""
    tables = getattr(mounts, "tables", None)
    ns = getattr(mounts, "namespaces", None)
    if not tables or ns is None:
        return
    labels = [t.label for t in tables]
    others = sum(1 for x in labels if x.startswith(("pid ", "host pid ")))
    shown = ", ".join(x for x in labels if not x.startswith(("pid ", "host pid ")))
    r.add("mount tables", True, f"{shown}" + (f" + {others} other mount namespace(s)" if others else "")
          + ("" if "host" in labels else f" (no host table: {ns.host_root}/proc/1/mountinfo "
                                          "absent or our own namespace)"))
    for note in ns.notes:
        r.add("mount namespaces", True, note)
