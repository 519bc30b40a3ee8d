"""A steady refresh's attribution, rows and I/O sums of two versions on the same Readings, in one process.

A whole-process benchmark (bench_versions.py) cannot resolve a change of a
few ms in a ~200 ms refresh on this shared machine (+-8 % from one run to
the next).  Here the erofs_top of --base is imported beside this checkout's
(as the package ``erofs_top_base``: its modules import each other
relatively), a kept Aggregator of each (re-derivation slices off) is fed
the same Readings of SyntheticNode(--files, --containers) (a full pass, one
refresh to settle, then --steps refreshes each after --churn % of the chunk
entries changed, the Readings naming what changed), the two versions in
turns (which goes first alternates), cyclic GC off while they run.  Timed
per version (time.process_time, the timers' own cost included alike):
Aggregator._attribute, the model's rows (aggregate.build_model, and in it
rows.container_rows and rows.mount_rows) and IoSums.update (the previous
Readings, held by both, freed after both refreshed).  Both Models
must be equal (to_dict) at every refresh, or no figures.

Run:  .venv/bin/python benchmarks/attribute_ab.py --base /tmp/base238
"""
from __future__ import annotations

import gc
import importlib
import importlib.util
import sys
import time

import benchlib
from synthetic_node import SyntheticNode

import erofs_top.aggregate as agg_mod

PARTS = ("_attribute", "build_model", "container_rows", "mount_rows", "io sums")


def _load_base(base: str):
    """--base's erofs_top as the package erofs_top_base; its aggregate module."""
    spec = importlib.util.spec_from_file_location(
        "erofs_top_base", f"{base}/erofs_top/__init__.py",
        submodule_search_locations=[f"{base}/erofs_top"])
    pkg = importlib.util.module_from_spec(spec)
    sys.modules["erofs_top_base"] = pkg
    spec.loader.exec_module(pkg)
    return importlib.import_module("erofs_top_base.aggregate")


def _timed(aggregate_module, spent: dict) -> None:
    """Timers on one version's parts (spent: label -> CPU seconds)."""
    rows = sys.modules[aggregate_module.__name__.rsplit(".", 1)[0] + ".rows"]
    attribution = sys.modules[aggregate_module.__name__.rsplit(".", 1)[0] + ".attribution"]
    benchlib.wrap_timed(aggregate_module.Aggregator, "_attribute", "_attribute", spent)
    benchlib.wrap_timed(aggregate_module, "build_model", "build_model", spent)
    benchlib.wrap_timed(rows, "container_rows", "container_rows", spent)
    benchlib.wrap_timed(rows, "mount_rows", "mount_rows", spent)
    benchlib.wrap_timed(attribution.IoSums, "update", "io sums", spent)


def _refresh(agg, r, node) -> tuple[dict, float]:
    gc.disable()
    try:
        t = time.process_time()
        model = agg.update(r, *node.resolvers(), tier="tracepoint", started_at=0.0)
        return model.to_dict(), time.process_time() - t
    finally:
        gc.enable()


def _body(args) -> dict:
    versions = {"base": _load_base(args.base), "new": agg_mod}
    spent = {v: {} for v in versions}
    for v, mod in versions.items():
        _timed(mod, spent[v])
    aggs = {v: mod.Aggregator(recheck_slices=0) for v, mod in versions.items()}
    node = SyntheticNode(args.files, args.containers)
    per: dict[str, dict[str, list[float]]] = {v: {p: [] for p in PARTS + ("refresh",)}
                                              for v in versions}
    r = None
    for step in range(args.steps + 2):      # a full pass and one refresh to settle, untimed
        if step:
            node.churn(args.churn / 100)
        # the previous Readings freed after both refreshes, outside the timers:
        # else the version that goes second frees its rows (a copy per read here)
        prev, r = r, node.readings(by_file=True, hint=True)
        gc.collect()
        order = list(versions) if step % 2 else list(reversed(versions))
        models = {}
        for v in order:
            spent[v].clear()
            models[v], total = _refresh(aggs[v], r, node)
            if step >= 2:
                per[v]["refresh"].append(total * 1e3)
                for p in PARTS:
                    per[v][p].append(spent[v].get(p, 0.0) * 1e3)
        del prev
        if models["base"] != models["new"]:
            raise SystemExit(f"attribute_ab: the two versions' Models differ at step {step}")
    out = {}
    for p in PARTS + ("refresh",):
        b, n = benchlib.median(per["base"][p]), benchlib.median(per["new"][p])
        print(f"  {p:16} base {b:7.2f} ms  new {n:7.2f} ms  new/base {n / b:.3f}")
        out[p] = {"base_ms": b, "new_ms": n, "base_all": per["base"][p], "new_all": per["new"][p]}
    print(f"{args.files} files x {args.containers} containers, {args.churn:g} % churn: "
          f"medians of {args.steps} refreshes per version (CPU, timers included)")
    return out


def main() -> int:
    def add_args(ap) -> None:
        benchlib.add_phase_args(ap, 12)
        ap.add_argument("--base", required=True, help="a checkout or `git archive` to compare")
    return benchlib.bench_main(__doc__, add_args, _body, root=False)


if __name__ == "__main__":
    sys.exit(main())
