"""What a running process holds, read from /proc without racing it: fds
close and processes exit between a listing and a look at one entry."""
from __future__ import annotations

import os


def bpf_prog_fds(pid: int) -> int:
    """How many BPF programs the process holds open (fds); 0 once it is gone."""
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:             # exited
        return 0
    count = 0
    for fd in fds:
        try:
            count += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf-prog"
        except OSError:         # closed meanwhile
            pass
    return count
