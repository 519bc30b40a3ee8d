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
  arrayidx     the potential of a layout with locality (not exact: chunks of
               different files may share an entry): a lookup of the file in a
               hash map (never created: the same warm bucket for all of a
               file's insertions), then the owner update on the entry of an
               array at (hash of the file) * 1024 + chunk: a file's chunk
               entries adjacent, found by arithmetic; no `chunks` operation

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
ARRAY_DECL = """/* ABLATION arrayidx (not exact) */
struct file_key { u32 dev; u32 pad; u64 ino; };
BPF_F_TABLE("hash", struct file_key, u32, files, 65536, 0);
BPF_ARRAY(chunk_arr, struct chunk_val, 65536);
"""
ARRAY_ONE = """        struct file_key fk = {.dev = dev, .ino = ino};
        u32 *base = files.lookup(&fk);
        u32 ai = (u32)((((ino * 0x9E3779B1ULL) >> 16) << 10) + (index >> 6) + (base ? *base : 0))
                 & 65535;
        struct chunk_val *v = chunk_arr.lookup(&ai);
        if (v)
            owners_claim(v->cgid, v->bits, &v->other_bits, cg, folio_mask(index, order));"""


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
    "arrayidx": [(DECL, DECL + "\n" + ARRAY_DECL), (ONE, ARRAY_ONE)],
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
