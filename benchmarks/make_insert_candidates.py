"""Candidate probe sources for `bench_probes.py --candidate` (measurement only,
not exact, never loaded by erofs-top): the insertion's page bits kept in a
pending buffer instead of the `chunks` map, to measure what an insertion
without its map operation would cost (docs/performance.md, "The insertion
hook: a pending buffer per task or per CPU").

  taskbuf.c  filter + cgroup id + BPF task storage (bpf_task_storage_get with
             bpf_get_current_task_btf) holding one pending chunk
  cpubuf.c   the same in an array indexed by CPU number
  same.c     an identical copy of probes/filemap.c (attach-position control)

No flush exists: a pending chunk replaced by another only counts into
CNT_CHUNK_UPDATE_FAILURES where the flush would go.

Run:  python3 benchmarks/make_insert_candidates.py DIR
      sudo .venv/bin/python benchmarks/bench_probes.py --candidate DIR/cpubuf.c \
          --candidate DIR/taskbuf.c [--candidates-first]
"""
import shutil
import sys
from pathlib import Path

PROBES = Path(__file__).resolve().parents[1] / "probes"
out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=True)
src = (PROBES / 'filemap.c').read_text()
old = src[src.index('TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache)'):src.index('TRACEPOINT_PROBE(filemap, mm_filemap_delete_from_page_cache)')]
HEAD = '''/* CANDIDATE (measurement only, not exact): the insertion's page bits go to
 * LABEL instead of `chunks` */
struct pend {
    u32 dev;
    u32 n;
    u64 ino;
    u64 chunk;
    u64 cg;
    u64 bits;
};
DECL
TRACEPOINT_PROBE(filemap, mm_filemap_add_to_page_cache)
{
    u32 dev = args->s_dev;
    if (!(watched_kind(dev) & KIND_EROFS))
        return 0;
    u64 cg = bpf_get_current_cgroup_id();
    struct mark_ctx mc = {.gen = current_gen()};
GET
    if (p) {
        u64 chunk = args->index >> 6;
        if (p->dev != dev || p->ino != args->i_ino || p->chunk != chunk || p->cg != cg) {
            if (p->bits)
                count(CNT_CHUNK_UPDATE_FAILURES, 1);    /* where a flush would go */
            p->dev = dev;
            p->ino = args->i_ino;
            p->chunk = chunk;
            p->cg = cg;
            p->bits = 0;
        }
        p->bits |= args->order <= 6 ? folio_mask(args->index, args->order) : ~0ULL;
        p->n++;
    }
    io_cur_follow(dev, args->i_ino, cg, &mc);
    mark_done(&mc);
    EMIT(args, EV_ADD, dev, args->i_ino, args->index, 1ULL << args->order, cg);
    return 0;
}

'''
variants = {
    'taskbuf': ('a per-task buffer (BPF task storage)', 'BPF_TASK_STORAGE(pending, struct pend);',
                '    struct task_struct *t = (struct task_struct *)bpf_get_current_task_btf();\n'
                '    struct pend *p = pending.task_storage_get(t, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);'),
    'cpubuf': ('a per-CPU buffer (array indexed by CPU)', 'BPF_ARRAY(pending, struct pend, LOG_CPUS);',
               '    u32 cpu = bpf_get_smp_processor_id();\n'
               '    struct pend *p = pending.lookup(&cpu);'),
}
for name, (label, decl, get) in variants.items():
    body = HEAD.replace('LABEL', label).replace('DECL', decl).replace('GET', get)
    (out / f'{name}.c').write_text(src.replace(old, body))
(out / 'same.c').write_text(src)
shutil.copy(PROBES / 'chunk_owners.h', out / 'chunk_owners.h')
print(f'{out}: taskbuf.c cpubuf.c same.c chunk_owners.h')
