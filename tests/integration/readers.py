"""Shared by the per-CPU buffer tests (test_io_slots_root, test_io_log_root):
a reader script and a mount of many small files, their cache dropped."""
from __future__ import annotations

from erofs_top.workload import build_image, drop_file_cache, make_tree

KiB = 1 << 10

# one process in the cgroup reads every file given (whole, read(2) in 1 MiB steps)
READ_ALL = r"""
import os, sys
for path in sys.argv[1:]:
    fd = os.open(path, os.O_RDONLY)
    while os.read(fd, 1 << 20):
        pass
    os.close(fd)
"""


def mount_files(stack, name: str, n_files: int, size: int, size_steps: int):
    """(mount, paths): an image of n_files files of size + (i % size_steps) *
    4 KiB bytes, mounted, none of their pages cached."""
    files = {f"f{i:04d}.bin": size + (i % size_steps) * 4 * KiB for i in range(n_files)}
    img = build_image(make_tree(stack.dir / "src", files), stack.dir / "img.erofs")
    m = stack.mount(img, name)
    paths = [m.path(f) for f in files]
    for p in paths:
        drop_file_cache(p)
    return m, paths
