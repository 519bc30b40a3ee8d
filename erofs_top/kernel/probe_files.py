"""Where the BPF C sources (the repository's top-level probes/) are found.

An installed erofs-top carries them inside the package, as ``erofs_top/probes/``
(pyproject.toml maps the repository's ``probes/`` there, so the build backend
puts them in the wheel); they are looked up with ``importlib.resources``.  A
source checkout or an editable install has no ``erofs_top/probes/``: there the
repository's ``probes/`` next to the package is used.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import erofs_top


class ProbeFileMissing(Exception):
    """A probe source file is not where erofs-top looks; str() is one line."""


def _candidates(name: str) -> list[Path]:
    out = []
    packaged = resources.files("erofs_top").joinpath("probes", name)
    if isinstance(packaged, Path):          # installed unzipped (wheels always are)
        out.append(packaged)
    out.append(Path(erofs_top.__file__).resolve().parent.parent / "probes" / name)
    return out


def probe_file(name: str) -> Path:
    """The path of probe source ``name`` (e.g. "filemap.c"); its directory also
    holds the headers the probes include (chunk_owners.h)."""
    for p in _candidates(name):
        if p.is_file():
            return p
    raise ProbeFileMissing(f"BPF probe source {name} is missing (looked in "
                           f"{', '.join(str(p.parent) for p in _candidates(name))}): "
                           f"reinstall erofs-top, its wheel ships probes/")
