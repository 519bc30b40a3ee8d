"""No function in the project's Python over 80 lines (the package, its tests,
benchmarks and scripts): long ones are split along their phases
(aggregate.Aggregator: entries, resolution, content keys, duplicates,
attribution, savings; rows.py: container/mount/file rows; a long test into
its set-up and named checks)."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TREES = ("erofs_top", "tests", "benchmarks", "scripts")
MAX_LINES = 80


def project_sources() -> list[Path]:
    return sorted(p for t in TREES for p in (REPO / t).rglob("*.py")
                  if ".venv" not in p.parts and "__pycache__" not in p.parts)


def test_the_trees_hold_the_package_and_its_tests():
    names = {str(p.relative_to(REPO)) for p in project_sources()}
    assert {"erofs_top/aggregate.py", "tests/unit/test_function_length.py",
            "benchmarks/bench_refresh.py"} <= names


def test_no_function_over_80_lines():
    long = []
    for p in project_sources():
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{p.relative_to(REPO)}:{node.lineno} {node.name}() {lines} lines")
    assert not long, long


def test_sources_compile_without_warnings():
    """pyproject.toml silences "invalid escape sequence" (Debian's bcc has one);
    our own files must not need that."""
    import warnings
    bad = []
    for p in project_sources():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            compile(p.read_bytes(), str(p), "exec")
        bad += [f"{p.relative_to(REPO)}:{w.lineno} {w.message}" for w in caught]
    assert not bad, bad
