"""Random readers against the kernel, page by page (an investigation tool, not
a test; docs/sharing.md "Random readers" has what it found).

In the lab (as root; about 30 s):
    LAB_OUT=/tmp/ra tests/vm/lab.sh run 'python3 tests/vm/ra_investigate.py'
runs the matrix's random reader (seeded 4 KiB preads, a third of each file's
pages) on two redis-tools versions, plain (cold image files) and lz4hc, and
a whole-file reader (1 MiB reads) beside a half reader (64 KiB reads), plain
and cold, each first on stock mounts, then on inode_share mounts, and writes
/out/ra.json:
per cell and phase the memcg charge, per file the reads issued and its
resident pages (mincore), per image file its resident pages, plus the
kernel's readahead trace (/out/trace-CELL-PHASE.txt).

On the host:
    python3 tests/vm/ra_investigate.py --replay /tmp/ra
replays the same reads through erofs_top.readahead (the kernel's rules) and
prints, per cell, what the kernel cached against what the model says: EROFS
pages per inode and, for the plain cell, the image files' pages.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import sys
from collections import defaultdict

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

PKG_DIR = "/opt/lab-data/redis-tools"
FP = "trusted.erofs.fingerprint"
SHARE = "inode_share,domain_id=ra"
TR = "/sys/kernel/tracing"
PAGE = 4096
# name, mkfs options, cold image files, (reader A's, reader B's) read pattern
CELLS = (("plain", (), True, ("random", "random")), ("lz4hc", ("-zlz4hc",), False, ("random", "random")),
         ("plain-whole-half", (), True, ("whole", "half")))


def files(root):
    for d, _, fs in os.walk(root):
        for name in sorted(fs):
            p = os.path.join(d, name)
            if os.path.isfile(p) and not os.path.islink(p):
                yield p


def read_random_logged(root, log):
    """tests/vm/test_savings_matrix.py read_random(), recording the reads."""
    rng = random.Random(7)
    for p in files(root):
        size = os.path.getsize(p)
        reads = []
        with open(p, "rb", buffering=0) as f:
            for _ in range(max(1, size // PAGE // 3)):
                off = rng.randrange(0, max(1, size))
                os.pread(f.fileno(), PAGE, off)
                reads.append((off, PAGE))
        log[os.path.relpath(p, root)] = reads


def read_whole_logged(root, log):
    """labkit.read_file() of every file (1 MiB reads to EOF), recording them."""
    for p in files(root):
        reads, pos = [], 0
        with open(p, "rb", buffering=0) as f:
            while True:
                reads.append((pos, 1 << 20))
                n = len(f.read(1 << 20))
                pos += n
                if not n:
                    break
        log[os.path.relpath(p, root)] = reads


def read_half_logged(root, log):
    """test_savings_matrix.read_half(): the first half, 64 KiB reads."""
    for p in files(root):
        left, reads, pos = os.path.getsize(p) // 2, [], 0
        with open(p, "rb", buffering=0) as f:
            while left > 0:
                want = min(left, 64 << 10)
                reads.append((pos, want))
                n = len(f.read(want))
                if not n:
                    break
                left -= n
                pos += n
        log[os.path.relpath(p, root)] = reads


PATTERNS = {"random": read_random_logged, "whole": read_whole_logged, "half": read_half_logged}


def mincore_vec(path):
    """'0'/'1' per page: resident as mincore(2) sees it through an mmap."""
    from tests.vm import labkit as lk
    return "".join("1" if r else "0" for r in lk.resident_vector(path))

def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()[:16]


def _write(path, text):
    with contextlib.suppress(OSError):
        with open(path, "w") as f:
            f.write(text)


def tracing(on, name=None):
    events = ("readahead", "filemap/mm_filemap_get_pages", "filemap/mm_filemap_add_to_page_cache",
              "erofs/erofs_read_folio", "erofs/erofs_readahead")
    if on:
        _write(f"{TR}/trace", "")
        _write(f"{TR}/buffer_size_kb", "65536")
        for ev in events:
            _write(f"{TR}/events/{ev}/enable", "1")
        return
    _write(f"{TR}/tracing_on", "0")
    with contextlib.suppress(OSError):
        with open(f"{TR}/trace") as src, open(f"/out/trace-{name}.txt", "w") as dst:
            dst.write(src.read())
    _write(f"{TR}/tracing_on", "1")
    for ev in events:
        _write(f"{TR}/events/{ev}/enable", "0")


def _reader(cg, mnt, pattern):
    """PATTERNS[pattern](mnt) in a child inside cgroup ``cg``; its log."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        with open(f"{cg.path_abs}/cgroup.procs", "w") as f:
            f.write(str(os.getpid()))
        log = {}
        PATTERNS[pattern](mnt, log)
        os.write(w, json.dumps(log).encode())
        os._exit(0)
    os.close(w)
    data = b""
    while chunk := os.read(r, 1 << 20):
        data += chunk
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data)


def phase(lk, imgs, opts, cold, name, patterns):
    with contextlib.ExitStack() as st:
        mnts = [st.enter_context(lk.erofs_mount(i, opts)) for i in imgs]
        cgs = [st.enter_context(lk.Cgroup(f"ra-{i}")) for i in range(len(mnts))]
        if cold:
            lk.drop_caches()
        tracing(True)
        logs = [_reader(cg, m, pat) for cg, m, pat in zip(cgs, mnts, patterns)]
        tracing(False, name)
        out = {"charged": [cg.file_bytes() for cg in cgs], "mounts": [],
               "image_mincore": [mincore_vec(i) for i in imgs]}
        for m, log in zip(mnts, logs):
            out["mounts"].append([
                {"path": os.path.relpath(p, m), "size": os.path.getsize(p),
                 "ino": os.stat(p).st_ino, "reads": log.get(os.path.relpath(p, m), []),
                 "mincore": mincore_vec(p)} for p in files(m)])
    return out


def image_maps(img, mounts_files):
    """path -> [image page of each file page, -1: not in a data block]."""
    from erofs_top.resolve import superblock as sbm
    sb, _ = sbm.read_superblock(img)
    out = {}
    for f in mounts_files:
        ino = sbm.read_inode(img, sb, f["ino"])
        ext = sbm.data_extents(sb, ino, lambda off, n: sbm.read_image(img, off, n)) or []
        pm = sbm.file_page_map(ext, 0, PAGE)
        out[f["path"]] = [pm.get(p, (-1,))[0] for p in range(-(-f["size"] // PAGE))]
    return out


def z_extents(img, mounts_files):
    """path -> [(logical offset, logical length, physical offset, physical
    length)] of each compressed file (erofs_top.zmap), for the host replay."""
    from erofs_top import zmap
    from erofs_top.resolve import superblock as sbm
    sb, _ = sbm.read_superblock(img)
    out = {}
    for f in mounts_files:
        ino = sbm.read_inode(img, sb, f["ino"])
        if ino.layout in (sbm.COMPRESSED_FULL, sbm.COMPRESSED_COMPACT):
            ext = zmap.compressed_extents(sb, ino, lambda off, n: sbm.read_image(img, off, n))
            out[f["path"]] = [(e.logical_offset, e.logical_length, e.physical_offset,
                               e.physical_length) for e in ext]
    return out


def lab_main():
    from tests.vm import labkit as lk
    vers = sorted(v for v in os.listdir(PKG_DIR) if os.path.isdir(f"{PKG_DIR}/{v}"))
    d = lk.workdir("ra")
    res = {"versions": vers,
           "sha": {v: {os.path.relpath(p, f"{PKG_DIR}/{v}"): sha(p) for p in files(f"{PKG_DIR}/{v}")}
                   for v in vers}}
    try:
        for cell, opts, cold, patterns in CELLS:
            imgs = [lk.mkfs_erofs(f"{d}/{cell}-{i}.erofs", f"{PKG_DIR}/{v}",
                                  f"--xattr-inode-digest={FP}", *opts) for i, v in enumerate(vers)]
            res[cell] = {"stock": phase(lk, imgs, "", cold, f"{cell}-stock", patterns),
                         "shared": phase(lk, imgs, SHARE, cold, f"{cell}-shared", patterns)}
            if opts:
                res[cell]["z_extents"] = [z_extents(img, res[cell]["stock"]["mounts"][i])
                                          for i, img in enumerate(imgs)]
            if not opts:
                res[cell]["image_maps"] = [image_maps(img, res[cell]["stock"]["mounts"][i])
                                           for i, img in enumerate(imgs)]
                res[cell]["image_pages"] = [os.path.getsize(i) // PAGE for i in imgs]
            print(cell, res[cell]["stock"]["charged"], res[cell]["shared"]["charged"], flush=True)
    finally:
        lk.rmtree(d)
        with open("/out/ra.json", "w") as f:
            json.dump(res, f)


# ------------------------------------------------------------------ host replay
def _resident(vec):
    return {i for i, c in enumerate(vec) if c == "1"}


def replay_phase(res, cell, phase_name):
    """The model's EROFS caches (per inode key) and image caches (per mount):
    erofs_top.readahead.replay_reads() of the phase's reads, in order."""
    from erofs_top import readahead as ra
    data, shared = res[cell][phase_name], phase_name == "shared"
    maps = res[cell].get("image_maps")
    sizes, reads = {}, []
    for mi, fs in enumerate(data["mounts"]):        # reader A's files, then reader B's
        for f in fs:
            if not f["size"]:
                continue
            key = ((res["sha"][res["versions"][mi]][f["path"]], f["size"]) if shared
                   else (mi, f["path"]))
            sizes[key] = f["size"]
            reads += [ra.Read(key, (mi, f["path"]), (mi, f["path"]), *(
                r if isinstance(r, list) else (r, PAGE)), tag=mi) for r in f["reads"]]
    # member inodes have large folios; the shared inode has none (its
    # page_cache_ra_order() falls back at once in the lab's trace)
    zext = res[cell].get("z_extents")
    out = ra.replay_reads(
        reads, sizes.get, large_folios=lambda key: not shared,
        image_map=(lambda m: maps[m[0]][m[1]]) if maps else None,
        image_size=lambda mi: res[cell]["image_pages"][mi] * PAGE,
        zfile=(lambda m: zfile_of(zext[m[0]].get(m[1]))) if zext else None,
        managed_of=lambda r: MANAGED_OF[0](r, shared))
    return out, [out.images[mi] for mi in sorted(out.images)]


def zfile_of(extents):
    """ra_investigate's z_extents tuples -> erofs_top.readahead.ZFile."""
    from erofs_top import readahead as ra
    if not extents:
        return None
    return ra.ZFile([ra.ZExtentRa(lo, lo + ll, po // PAGE, -(-(po % PAGE + pl) // PAGE) if pl else 0)
                     for lo, ll, po, pl in extents])


# whose superblock's managed cache a decompression fills: the reader's mount,
# or (inode_share) the shared inode's first member's (the first reader's)
MANAGED_RULES = {"reader's mount": lambda r, shared: r.member[0],
                 "first member's mount": lambda r, shared: 0 if shared else r.member[0]}
MANAGED_OF = [MANAGED_RULES["reader's mount"]]


def _charges(res, cell, phase_name):
    """Per reader: memcg charge against the model's EROFS + managed pages it
    inserted, under each managed-cache rule."""
    charged = [c // PAGE for c in res[cell][phase_name]["charged"]]
    for name, rule in MANAGED_RULES.items():
        MANAGED_OF[0] = rule
        replayed, _ = replay_phase(res, cell, phase_name)
        per = defaultdict(lambda: [0, 0])
        for key, owners in replayed.owners.items():
            for tag in owners.values():
                per[tag][1 if key[0] == "managed" else 0] += 1
        print(f"  {phase_name:6} charge, pages: kernel {charged}; model file+managed "
              f"{[per[i][0] + per[i][1] for i in range(len(charged))]} "
              f"(managed {[per[i][1] for i in range(len(charged))]}) [{name}]")
    MANAGED_OF[0] = MANAGED_RULES["reader's mount"]


def _managed_vs_trace(out_dir, res, cell, phase_name):
    """The managed caches' pages: the kernel's (mm_filemap_add_to_page_cache
    on ino 0 of each mount's dev, from the phase's trace) against the model's."""
    import re
    replayed, _ = replay_phase(res, cell, phase_name)
    kern = defaultdict(set)
    with contextlib.suppress(OSError):
        for line in open(os.path.join(out_dir, f"trace-{cell}-{phase_name}.txt")):
            m = re.search(r"add_to_page_cache: dev (\S+) ino 0 pfn=\S+ ofs=(\d+)", line)
            if m:
                kern[m.group(1)].add(int(m.group(2)) // PAGE)
    devs = sorted((d for d in kern if d != min(kern)), key=lambda d: int(d.split(":")[1])) \
        if len(kern) > 2 else sorted(kern, key=lambda d: int(d.split(":")[1]))
    for mi, dev in enumerate(devs):
        model = replayed.managed.get(mi, set())
        print(f"  {phase_name:6} managed pages of mount {mi} (dev {dev}): kernel {len(kern[dev])}, "
              f"model {len(model)}, kernel-only {len(kern[dev] - model)}, "
              f"model-only {len(model - kern[dev])}")


def replay_main(out_dir):
    res = json.load(open(os.path.join(out_dir, "ra.json")))
    for cell, *_ in CELLS:
        if cell not in res:
            continue
        print(f"== {cell}: memcg charge without {sum(res[cell]['stock']['charged']) / 2**20:.2f}"
              f" MiB, with {sum(res[cell]['shared']['charged']) / 2**20:.2f} MiB")
        pages = {}
        for phase_name in ("stock", "shared"):
            replayed, images = replay_phase(res, cell, phase_name)
            inodes = replayed.inodes
            if replayed.managed:
                _charges(res, cell, phase_name)
                _managed_vs_trace(out_dir, res, cell, phase_name)
            data = res[cell][phase_name]
            real = defaultdict(set)
            for mi, fs in enumerate(data["mounts"]):
                for f in fs:
                    if f["size"]:
                        key = ((res["sha"][res["versions"][mi]][f["path"]], f["size"])
                               if phase_name == "shared" else (mi, f["path"]))
                        real[key] = _resident(f["mincore"])
            same = sum(1 for k, c in inodes.items() if c.pages == real[k])
            model_n, real_n = sum(len(c.pages) for c in inodes.values()), sum(map(len, real.values()))
            print(f"  {phase_name:6} EROFS pages: kernel {real_n}, model {model_n}; "
                  f"inodes identical page for page {same}/{len(inodes)}")
            pages[phase_name, "file"] = (real_n, model_n)
            if images:
                k_img = [_resident(v) for v in data["image_mincore"]]
                m_img = [c.pages for c in images]
                print(f"         image pages: kernel {[len(s) for s in k_img]}, model "
                      f"{[len(s) for s in m_img]}; kernel-only {[sorted(a - b)[:5] for a, b in zip(k_img, m_img)]}"
                      f" model-only {[sorted(b - a)[:5] for a, b in zip(k_img, m_img)]}")
                pages[phase_name, "image"] = (sum(map(len, k_img)), sum(map(len, m_img)))
        for part in ("file", "image"):
            if ("stock", part) in pages:
                (ks, ms), (kw, mw) = pages["stock", part], pages["shared", part]
                print(f"  {part:5} saving, pages: kernel {ks - kw}; predicted from stock "
                      f"{ks - mw}; reported from shared {ms - kw}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--replay":
        replay_main(sys.argv[2])
    else:
        lab_main()
