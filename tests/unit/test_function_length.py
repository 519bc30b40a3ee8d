"""No function in erofs_top over 80 lines: long ones are split along their
phases (aggregate.Aggregator: entries, resolution, content keys, duplicates,
attribution, savings; rows.py: container/mount/file rows)."""
from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "erofs_top"
MAX_LINES = 80
EXEMPT: set[tuple[str, str]] = set()


def test_no_function_over_80_lines():
    long = []
    for p in sorted(PKG.rglob("*.py")):
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                rel = str(p.relative_to(PKG))
                if lines > MAX_LINES and (rel, node.name) not in EXEMPT:
                    long.append(f"{rel}:{node.lineno} {node.name}() {lines} lines")
    assert not long, long
