"""The live UI on this kernel, in a real terminal (tmux): `erofs-top demo`.

Starts `erofs-top demo` (two EROFS images, containers ctr-a and ctr-b in their
own cgroups, BPF probes) in a detached tmux session, reads the screen with
capture-pane and checks that both demo containers show up with their
duplicate bytes (the shared library and binary are the same bytes in both
images: 6 MiB + 3 MiB).  Then `2` must show the demo's images and `q` must end
the demo and remove its mounts and cgroups.

Root only (tests/integration/conftest.py); fails, never skips, when
`erofs-top demo` or tmux is missing.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

import pytest

from erofs_top import workload
from procs import bpf_prog_fds

pytestmark = [pytest.mark.root, pytest.mark.timeout(300)]

MiB = 1 << 20
UNITS = {"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
BYTES_RE = re.compile(r"(\d+(?:\.\d+)?) (B|KiB|MiB|GiB|TiB)\b")
DEMO_DUPLICATE_MIN = 9 * MiB          # libdemo.so.1 (6 MiB) + demo-server (3 MiB)
WIDTH, HEIGHT = 160, 40
# env execs the command (the pane's pid stays erofs-top's); COLUMNS/LINES inherited
# from the environment would override the real terminal size (shutil.get_terminal_size).
LAUNCH = "env -u COLUMNS -u LINES TERM=xterm-256color"


def erofs_top_bin() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "erofs-top")
    return exe if os.path.exists(exe) else shutil.which("erofs-top") or ""


class Tmux:
    """A private tmux server (own socket), so nothing else is touched."""

    def __init__(self):
        self.socket = f"erofs-top-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.session = "ui"

    def run(self, *args: str, check: bool = True) -> str:
        r = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                           timeout=30)
        if check and r.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {r.stderr.strip()}")
        return r.stdout

    def start(self, command: str) -> int:
        self.run("new-session", "-d", "-s", self.session, "-x", str(WIDTH), "-y", str(HEIGHT),
                 command)
        self.run("set-option", "-t", self.session, "remain-on-exit", "on")
        return int(self.run("list-panes", "-t", self.session, "-F", "#{pane_pid}").split()[0])

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", self.session, check=False)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", self.session, *keys)

    def pane_dead(self) -> bool:
        out = self.run("list-panes", "-t", self.session, "-F", "#{pane_dead}", check=False)
        return out.strip() == "1"

    def kill(self) -> None:
        self.run("kill-server", check=False)


def wait_for(pred, timeout_s: float, what: str, screen):
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        last = screen()
        got = pred(last)
        if got:
            return got
        time.sleep(1.0)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}; screen was:\n{last}")


def row_bytes(screen: str, name: str) -> list[int] | None:
    """Byte values on the row naming `name` (resident, duplicate, ...) or None."""
    for line in screen.splitlines():
        if name in line:
            rest = line[line.index(name) + len(name):]
            return [int(float(n) * UNITS[u]) for n, u in BYTES_RE.findall(rest)]
    return None


def erofs_demo_mounts() -> set[str]:
    with open("/proc/self/mountinfo") as f:
        return {line.split()[4] for line in f
                if " - erofs " in line and "erofs-top-demo-" in line.split()[4]}


def test_demo_in_tmux_shows_both_containers_and_their_duplicates():
    exe = erofs_top_bin()
    if not shutil.which("tmux"):
        pytest.fail("tmux is missing: apt-get install tmux (scripts/setup.sh)")
    if not exe:
        pytest.fail("the erofs-top command is not installed: pip install -e . in the venv")
    helptext = subprocess.run([exe, "--help"], capture_output=True, text=True).stdout
    if not re.search(r"^\s+demo\b", helptext, re.M):
        pytest.fail("`erofs-top demo` is missing from erofs-top --help: the TUI run needs it")

    mounts_before = erofs_demo_mounts()
    tmux = Tmux()
    pid = None
    try:
        # exec: the pane's pid is erofs-top's, which names the demo's cgroups
        pid = tmux.start(f"exec {LAUNCH} {exe} demo")
        prefix = f"erofs-top-demo-{pid}"
        ctr_a, ctr_b = f"{prefix}/ctr-a", f"{prefix}/ctr-b"

        def both_rows(screen):
            a, b = row_bytes(screen, ctr_a), row_bytes(screen, ctr_b)
            # content hashing is rate-limited: duplicates grow over the first
            # refreshes, so wait for the demo's full duplicate bytes
            if a and b and len(a) >= 2 and len(b) >= 2 and \
                    min(a[1], b[1]) >= DEMO_DUPLICATE_MIN * 0.99:
                return a, b
            return None

        a, b = wait_for(both_rows, 180, f"rows of {ctr_a} and {ctr_b} with duplicate bytes",
                        tmux.screen)
        screen = tmux.screen()
        assert "CONTAINER" in screen and "DUPLICATE" in screen
        assert "tier " in screen
        for name, (resident, duplicate) in ((ctr_a, a[:2]), (ctr_b, b[:2])):
            assert duplicate >= DEMO_DUPLICATE_MIN * 0.99, (name, duplicate, screen)
            assert resident >= duplicate, (name, resident, duplicate)
        header_dup = re.search(r"duplicate (\d+(?:\.\d+)?) (B|KiB|MiB|GiB)", screen)
        assert header_dup, screen
        assert float(header_dup.group(1)) * UNITS[header_dup.group(2)] >= 2 * DEMO_DUPLICATE_MIN * 0.99

        new_mounts = erofs_demo_mounts() - mounts_before
        assert len(new_mounts) >= 2, new_mounts

        # Images view: the demo's two mounts are listed.
        tmux.keys("2")
        wait_for(lambda s: all(m in s or ("…" + m[-30:]) in s or os.path.basename(m) in s
                               for m in new_mounts) and "MOUNT POINT" in s,
                 30, "the demo's mounts in the Images view", tmux.screen)

        # q quits; the demo then removes its mounts and cgroups.
        tmux.keys("q")
        wait_for(lambda s: tmux.pane_dead(), 60, "erofs-top to exit after q", tmux.screen)
        assert not (erofs_demo_mounts() & new_mounts), "the demo left mounts behind"
        assert not os.path.exists(os.path.join(workload.cgroup2_root(), prefix)), \
            "the demo left its cgroups behind"
    finally:
        if pid is not None and not tmux.pane_dead():
            try:                                   # our own demo process: let it clean up
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not tmux.pane_dead():
                time.sleep(0.5)
        tmux.kill()


def child_pids(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def test_files_view_shows_elf_build_id_and_sections_of_a_real_image(stack, cgroup_prefix):
    """A real ELF (this Python's binary) in a real EROFS image, read by a cgroup:
    the Files view names its build-id and puts its resident bytes in .text etc."""
    from erofs_top.tui.elfinfo import section_ranges
    exe = erofs_top_bin()
    if not shutil.which("tmux"):
        pytest.fail("tmux is missing: apt-get install tmux (scripts/setup.sh)")
    if not exe:
        pytest.fail("the erofs-top command is not installed: pip install -e . in the venv")
    elf = os.path.realpath(sys.executable)
    build_id, _ = section_ranges(elf)
    with open(elf, "rb") as f:
        src = workload.make_tree(stack.dir / "src", {"usr/bin/elfapp": f.read()})
    image = workload.build_image(src, stack.dir / "elf.erofs", "-T0")
    mnt = stack.mount(image, "elfimg", "file")
    ctr = stack.cgroup(f"{cgroup_prefix}/reader")
    path = mnt.path("usr/bin/elfapp")
    workload.read_file(path, ctr)
    unique = os.path.basename(stack.dir)

    tmux = Tmux()
    pid = None
    try:
        pid = tmux.start(f"exec {LAUNCH} {exe} top --filter {unique} --interval 1")

        def elf_row(screen):
            for line in screen.splitlines():
                if "elfapp" in line and ".text" in line:
                    return line
            return None

        tmux.keys("3")
        line = wait_for(elf_row, 120, "the ELF file's row with its .text bytes in Files view",
                        tmux.screen)
        if build_id:
            assert build_id[:12] in line, line
        text = re.search(r"\.text (\d+(?:\.\d+)?) (B|KiB|MiB|GiB)", line)
        assert text and float(text.group(1)) * UNITS[text.group(2)] > 0, line
        # the detail pane: every section with its resident bytes
        tmux.keys("Enter")
        wait_for(lambda s: "Resident pages by section" in s and ".text" in s, 30,
                 "the ELF section table in the detail pane", tmux.screen)
        # the probes belong to the collector process (a child), not to the UI's
        collectors = [c for c in child_pids(pid) if bpf_prog_fds(c)]
        assert len(collectors) == 1 and not bpf_prog_fds(pid), (collectors, child_pids(pid))
        tmux.keys("q")
        wait_for(lambda s: tmux.pane_dead(), 30, "erofs-top to exit after q", tmux.screen)
        # ... and went with it: its programs' fds closed (probes detached)
        wait_for(lambda s: not os.path.exists(f"/proc/{collectors[0]}"), 30,
                 "the collector process to end after q", lambda: str(collectors))
    finally:
        if pid is not None and not tmux.pane_dead():
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and not tmux.pane_dead():
                time.sleep(0.5)
        tmux.kill()
