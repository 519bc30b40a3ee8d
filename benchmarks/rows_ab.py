"""rows.container_rows and rows.mount_rows of two versions on the same arguments, in one process.

A whole-process benchmark (bench_exporter.py, bench_versions.py) cannot
resolve a change of ~1 ms in a ~200 ms refresh on this shared machine
(the same code measures +-10 % apart from one run to the next).  Here: a
kept Aggregator (exported_rows_only, as the exporter's) on
SyntheticNode(--files, --containers) after a full pass and --settle
refreshes at --churn % churn; build_model's arguments of the last
refresh are kept, then this checkout's container_rows and mount_rows and
those defined in --base's erofs_top/rows.py (those functions and
_runtime_names compiled into a copy of this rows module's namespace: the
same Container and Mount, the same helpers) are called in turns, --rounds
times --calls calls each, cyclic GC off; the rows of both are compared
first (equal, or no figures).

Run:  .venv/bin/python benchmarks/rows_ab.py --base /tmp/base254
"""
from __future__ import annotations

import ast
import gc
import sys
import time

import benchlib
from synthetic_node import SyntheticNode

import erofs_top.aggregate as agg_mod
import erofs_top.rows as rows
from erofs_top.model import Health, Totals

BASE_FUNCTIONS = ("container_rows", "mount_rows", "_runtime_names")


def _base_rows(base: str) -> dict:
    src = open(f"{base}/erofs_top/rows.py").read()
    fns = [n for n in ast.parse(src).body
           if isinstance(n, ast.FunctionDef) and n.name in BASE_FUNCTIONS]
    ns = dict(rows.__dict__)
    exec(compile(ast.Module(fns, []), f"{base}/erofs_top/rows.py", "exec"), ns)
    return ns


def _steady_args(args) -> tuple:
    node = SyntheticNode(args.files, args.containers)
    agg = agg_mod.Aggregator(recheck_slices=0)
    agg.exported_rows_only = True
    kept = {}
    real = agg_mod.build_model

    def keep(*a, **k):
        kept["args"] = a
        return real(*a, **k)

    agg_mod.build_model = keep
    for step in range(args.settle + 1):
        if step:
            node.churn(args.churn / 100)
        agg.update(node.readings(by_file=True, hint=True), *node.resolvers(),
                   tier="tracepoint", started_at=0.0)
    agg_mod.build_model = real
    return kept["args"]


def _calls(agg, readings, mounts, cgroups, saved, base: dict) -> dict:
    """(part, tree) -> a call of that tree's function on the kept arguments."""
    page = readings.page_size
    calls = {}
    for tree, ns in (("base", base), ("new", rows.__dict__)):
        def containers(f=ns["container_rows"]):
            return f(agg, readings, cgroups, saved, Health(), Totals(), page)

        def mount_rows(f=ns["mount_rows"]):
            return f(agg, readings, mounts, saved, Totals(), page)
        calls[("container_rows", tree)] = containers
        calls[("mount_rows", tree)] = mount_rows
    return calls


def _body(args) -> dict:
    agg, readings, mounts, cgroups, saved, _health = _steady_args(args)
    calls = _calls(agg, readings, mounts, cgroups, saved, _base_rows(args.base))
    for part in ("container_rows", "mount_rows"):
        if calls[(part, "base")]() != calls[(part, "new")]():
            raise SystemExit(f"rows_ab: the two versions' {part} differ")
    spent: dict[tuple, list[float]] = {k: [] for k in calls}
    gc.disable()
    try:
        for _ in range(args.rounds):
            for k, f in calls.items():
                t = time.process_time()
                for _ in range(args.calls):
                    f()
                spent[k].append((time.process_time() - t) / args.calls * 1e3)
    finally:
        gc.enable()
    med = {k: benchlib.median(v) for k, v in spent.items()}
    out = {}
    for part in ("container_rows", "mount_rows"):
        b, n = med[(part, "base")], med[(part, "new")]
        print(f"{args.files} files x {args.containers} containers: {part} median of "
              f"{args.rounds} rounds x {args.calls} calls: base {b:.2f} ms, new {n:.2f} ms "
              f"CPU; new/base {n / b:.2f}")
        out[part] = {"base_ms": b, "new_ms": n}
    return out


def main() -> int:
    def add_args(ap) -> None:
        ap.add_argument("--base", required=True, help="a checkout or `git archive` to compare")
        ap.add_argument("--files", type=int, default=250_000)
        ap.add_argument("--containers", type=int, default=1000)
        ap.add_argument("--churn", type=float, default=1.0, help="per cent of chunk entries changed")
        ap.add_argument("--settle", type=int, default=2, help="steady refreshes before")
        ap.add_argument("--rounds", type=int, default=9)
        ap.add_argument("--calls", type=int, default=10)
    return benchlib.bench_main(__doc__, add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
