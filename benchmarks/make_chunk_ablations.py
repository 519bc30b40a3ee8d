"""Ablation copies of probes/filemap.c for `bench_coldread.py --candidate`
(measurement only, not exact, never loaded by erofs-top): the insertion
program with parts removed, to find where a cold read's per-insertion cost
goes (docs/performance.md, "The cold read's insertion, by ablation").

  same         an identical copy (the candidate machinery's own cost)
  filter       the add program returns after the filter
  nochunk      no `chunks` operation (filter, cgroup id, generation, io_current)
  nofollow     no io_current update (filter, cgroup id, generation, `chunks`)
  nomark       no dirty mark of a chunk entry (created or changed)
  nocreate     `chunks` looked up but never created: every lookup misses
  nocreate16k  the same with a 16,384-entry `chunks` (256 KiB of buckets)
  nocreate2k   the same with 2,048 entries (32 KiB of buckets)
  fixedkey     nocreate with one constant key: the same (warm) bucket each time
  twice        nocreate with the lookup made twice (the second finds it warm)
  noprealloc   `chunks` with BPF_F_NO_PREALLOC

Run:  python3 benchmarks/make_chunk_ablations.py DIR
      sudo .venv/bin/python benchmarks/bench_coldread.py --bpf-stats \
          --candidate DIR/nochunk.c --candidate DIR/nocreate.c ...
"""
import shutil
import sys
from pathlib import Path

PROBES = Path(__file__).resolve().parents[1] / "probes"

ADD = """    u64 cg = bpf_get_current_cgroup_id();
    struct mark_ctx mc = {.gen = current_gen()};
    folio_add(dev, args->i_ino, args->index, args->order, cg, &mc);
    io_cur_follow(dev, args->i_ino, cg, &mc);
"""
CREATE = """        if (chunks.insert(k, &z) == 0) {
            dirty_insert(k->dev, DIRTY_CHUNK, k->ino, k->chunk, mc);
            return;
        }"""
MARK = """        count(CNT_OWNER_OVERFLOW_PAGES, __builtin_popcountll(overflow));
    mark_dirty(&v->dirty_gen, k->dev, DIRTY_CHUNK, k->ino, k->chunk, mc);"""
DECL = "struct chunk_val, chunks, CHUNK_ENTRIES, 0);"
ONE = """        k.chunk = index >> 6;
        chunk_set(&k, cg, folio_mask(index, order), mc);"""
NOCREATE = [(CREATE, "        return;")]


def sized(n: int) -> list:
    return NOCREATE + [(DECL, DECL.replace("CHUNK_ENTRIES", str(n)))]


VARIANTS = {
    "same": [],
    "filter": [(ADD, "    return 0;\n" + ADD)],
    "nochunk": [(ADD, ADD.replace(
        "    folio_add(dev, args->i_ino, args->index, args->order, cg, &mc);\n", ""))],
    "nofollow": [(ADD, ADD.replace("    io_cur_follow(dev, args->i_ino, cg, &mc);\n", ""))],
    "nomark": [(CREATE, CREATE.replace(
        "            dirty_insert(k->dev, DIRTY_CHUNK, k->ino, k->chunk, mc);\n", "")),
        (MARK, MARK.split("\n")[0])],
    "nocreate": NOCREATE,
    "nocreate16k": sized(16384),
    "nocreate2k": sized(2048),
    "fixedkey": NOCREATE + [(ONE, """        struct chunk_key fk = {.dev = 1};
        chunk_set(&fk, cg, folio_mask(index, order), mc);""")],
    "twice": NOCREATE + [(ONE, ONE + "\n" + ONE.split("\n")[1])],
    "noprealloc": [(DECL, DECL.replace(", 0);", ", BPF_F_NO_PREALLOC);"))],
}


def make(name: str, src: str) -> str:
    """``src`` with the replacements of variant ``name``; each must match once."""
    for old, new in VARIANTS[name]:
        if src.count(old) != 1:
            raise SystemExit(f"{name}: the probe source changed, {old.splitlines()[0]!r} "
                             f"found {src.count(old)} times")
        src = src.replace(old, new)
    return src


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    src = (PROBES / "filemap.c").read_text()
    shutil.copy(PROBES / "chunk_owners.h", out / "chunk_owners.h")
    for name in VARIANTS:
        (out / f"{name}.c").write_text(make(name, src))
    print(f"{len(VARIANTS)} candidates in {out}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
