"""The wheel's contents as pyproject.toml declares them: every package of the
tree, and the BPF C sources of the top-level probes/ inside erofs_top."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from erofs_top.kernel import probe_files

REPO = Path(__file__).resolve().parents[2]


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_is_listed():
    tree = sorted(".".join(p.parent.relative_to(REPO).parts)
                  for top in ("erofs_top",) for p in (REPO / top).rglob("__init__.py"))
    listed = _setuptools()["packages"]
    assert sorted(p for p in listed if p != "erofs_top.probes") == tree


def test_probes_ship_inside_the_package():
    st = _setuptools()
    assert st["package-dir"]["erofs_top.probes"] == "probes"
    assert "erofs_top.probes" in st["packages"]
    patterns = st["package-data"]["erofs_top.probes"]
    assert sorted(patterns) == ["*.c", "*.h"]
    assert {p.suffix for p in (REPO / "probes").iterdir()} <= {".c", ".h"}


def test_probe_file_found_in_a_checkout():
    p = probe_files.probe_file("filemap.c")
    assert p.is_file() and (p.parent / "chunk_owners.h").is_file()


def test_missing_probe_file_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setattr(probe_files, "_candidates", lambda name: [tmp_path / name])
    with pytest.raises(probe_files.ProbeFileMissing) as e:
        probe_files.probe_file("filemap.c")
    assert "\n" not in str(e.value) and "filemap.c" in str(e.value)
