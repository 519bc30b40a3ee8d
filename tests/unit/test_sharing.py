"""erofs_top.kernel.sharing without a 7.x kernel: the map -> SharedInode
conversion (against stand-in BPF tables: the real ones need the lab, where
tests/vm covers them) and the capability check's contract."""
from __future__ import annotations

from types import SimpleNamespace as NS

from erofs_top.kernel import host, maps, sharing


class FakeBpfTable(dict):
    """Stand-in for a BCC hash table: items(), lookup, delete, Key()."""

    def __init__(self, key_fields=(), items=()):
        super().__init__(items)
        self._fields = key_fields

    def Key(self, *vals):                        # noqa: N802 (BCC's name)
        return NS(**dict(zip(self._fields, vals)))

    def items_lookup_batch(self):
        raise RuntimeError("no batch ops in the stand-in")


class HashableNS(NS):
    def __hash__(self):
        return hash(tuple(sorted(vars(self).items())))

    def __eq__(self, other):
        return vars(self) == vars(other)


def ck(mapping, chunk):
    return HashableNS(mapping=mapping, chunk=chunk)


def cv(cgid=(0, 0, 0, 0), bits=(0, 0, 0, 0), other=0):
    return NS(cgid=list(cgid), bits=list(bits), other_bits=other)


def mk(mapping, dev, ino):
    return HashableNS(mapping=mapping, dev=dev, pad=0, ino=ino)


def uk(mapping, cg, dev, ino):
    return HashableNS(mapping=mapping, cgid=cg, dev=dev, pad=0, ino=ino)


def tk(mapping, dev, ino, chunk):
    return HashableNS(mapping=mapping, dev=dev, pad=0, ino=ino, chunk=chunk)


def probes_with(chunks, members, users, touched=()):
    p = sharing.SharingProbes.__new__(sharing.SharingProbes)   # no BCC: tables only
    chunk_t = FakeBpfTable(("mapping", "chunk"), chunks)
    chunk_t.Key = lambda m, c: ck(m, c)
    p.bpf = {"shared_chunks": chunk_t, "members": FakeBpfTable(items=members),
             "users": FakeBpfTable(items=users),
             "touched": FakeBpfTable(items={k: NS(value=v) for k, v in dict(touched).items()})}
    p._chunk_gc = maps.EmptyChunkGC(chunk_t)
    p.warnings = []
    return p


def test_read_builds_shared_inodes_with_owners_members_users():
    A, B = 101, 202
    p = probes_with(
        chunks={ck(0xAA, 0): cv((A, 0, 0, 0), (0xFF, 0, 0, 0)),
                ck(0xAA, 1): cv((A, B, 0, 0), (0x1, 0x2, 0, 0), other=0x4)},
        members={mk(0xAA, 31, 40): NS(size=8192, inode=1),
                 mk(0xAA, 32, 40): NS(size=8192, inode=2)},
        users={uk(0xAA, A, 31, 40): NS(), uk(0xAA, B, 32, 40): NS()})
    (s,) = p.read()
    assert s.mapping == 0xAA
    assert s.chunks == {0: {A: 0xFF}, 1: {A: 0x1, B: 0x2, 0: 0x4}}   # overflow -> cgroup 0
    assert s.members == {(31, 40), (32, 40)}
    assert s.users == {A: {(31, 40)}, B: {(32, 40)}}
    assert s.size == 8192


def test_touched_pages_are_per_member_and_marks_of_members_that_left_go():
    A = 101
    p = probes_with(chunks={ck(0xEE, 0): cv((A, 0, 0, 0), (0xF, 0, 0, 0))},
                    members={mk(0xEE, 31, 5): NS(size=4 * 4096, inode=1),
                             mk(0xEE, 32, 5): NS(size=4 * 4096, inode=2)},
                    users={uk(0xEE, A, 31, 5): NS()},
                    touched={tk(0xEE, 31, 5, 0): 0xF, tk(0xEE, 32, 5, 0): 0x3,
                             tk(0xEE, 33, 5, 0): 0x1})       # dev 33: no longer a member
    (s,) = p.read()
    assert s.touched == {(31, 5): {0: 0xF}, (32, 5): {0: 0x3}}
    assert tk(0xEE, 33, 5, 0) not in p.bpf["touched"]


def test_users_of_evicted_members_are_forgotten():
    A = 7
    stale = uk(0xBB, A, 33, 50)              # member (33, 50) was freed
    p = probes_with(chunks={ck(0xBB, 0): cv((A, 0, 0, 0), (1, 0, 0, 0))},
                    members={mk(0xBB, 31, 40): NS(size=4096, inode=1)},
                    users={uk(0xBB, A, 31, 40): NS(), stale: NS()})
    (s,) = p.read()
    assert s.users == {A: {(31, 40)}}
    assert stale not in p.bpf["users"], "a forgotten use is deleted from the kernel map"


def test_gone_inodes_disappear_and_empty_chunks_are_collected_on_the_second_read():
    empty = ck(0xCC, 3)
    p = probes_with(chunks={empty: cv()}, members={}, users={})
    assert p.read() == []                    # no pages, no members: nothing to show
    assert empty in p.bpf["shared_chunks"]   # kept one interval (racing insert)
    assert p.read() == []
    assert empty not in p.bpf["shared_chunks"]


def test_members_without_resident_pages_are_listed():
    p = probes_with(chunks={}, members={mk(0xDD, 31, 9): NS(size=100, inode=1)}, users={})
    (s,) = p.read()
    assert s.chunks == {} and s.members == {(31, 9)}


def test_sharing_supported_answers_in_one_line():
    ok, reason = host.sharing_supported()
    assert isinstance(ok, bool)
    assert reason and "\n" not in reason


def test_kallsyms_missing_agrees_with_a_line_by_line_parse():
    # symbols tagged [bpf] come and go as any process loads BPF programs (other
    # tests, other tools): the symbols checked are the kernel's and modules' own
    with open("/proc/kallsyms") as f:
        lines = [line.split() for line in f]
    names = [w[2] for w in lines if len(w) >= 3]
    stable = [w[2] for w in lines if len(w) >= 3 and w[3:] != ["[bpf]"]]
    moduled = [w[2] for w in lines if len(w) >= 4 and w[3] not in ("[bpf]", "[__builtin__ftrace]")]
    # a few real ones (first, middle, last of a module if any), and absent ones
    present = [stable[0], stable[len(stable) // 2], (moduled or stable)[-1]]
    absent = ["erofs_top_no_such_symbol", stable[0] + "_x", present[2][:-1] + "\u00e9"]
    assert host.kallsyms_missing(present + absent) == [
        s for s in present + absent if s not in set(names)]
    assert host.kallsyms_has(present[2]) and not host.kallsyms_has(absent[0])


def _host(monkeypatch, *, root=True, symbols=host.SHARING_SYMBOLS, module=True, filesystems=True,
          config=True, lockdown="none", kprobes=True, btf=True, headers=("/b", "match")):
    """Pretend-host for sharing_supported(): each probe of the system replaced."""
    rel = host.platform.release()
    monkeypatch.setattr(host.os, "geteuid", lambda: 0 if root else 1000)
    monkeypatch.setattr(host, "kallsyms_missing", lambda syms: [s for s in syms if s not in symbols])
    monkeypatch.setattr(host, "_module_loaded", lambda n: module)
    monkeypatch.setattr(host, "_read_lines",
                        lambda p: ["nodev\terofs"] if filesystems else ["nodev\tproc"])
    monkeypatch.setattr(host, "_config_says_sharing", lambda: config)
    monkeypatch.setattr(host, "lockdown", lambda: lockdown)
    monkeypatch.setattr(host, "kprobes_available", lambda: kprobes)
    monkeypatch.setattr(host.os.path, "exists",
                        lambda p: btf if p == "/sys/kernel/btf/vmlinux" else False)
    build, hrel = headers
    monkeypatch.setattr(host, "header_tree",
                        lambda: (build, rel if hrel == "match" else hrel))


def test_supported_with_everything_in_place(monkeypatch):
    _host(monkeypatch)
    ok, how = host.sharing_supported()
    assert ok and how.startswith("kprobes")


def test_fentry_named_when_kprobes_are_off(monkeypatch):
    _host(monkeypatch, kprobes=False)
    ok, how = host.sharing_supported()
    assert ok and how.startswith("fentry")


def test_refusals_name_the_reason(monkeypatch):
    cases = [
        (dict(root=False), "root"),
        (dict(symbols=(), module=False, filesystems=False), "not loaded yet"),
        (dict(symbols=(), module=False, filesystems=False, config=False), "kernel config"),
        (dict(symbols=()), "no EROFS page-cache sharing"),
        (dict(symbols=host.SHARING_SYMBOLS[1:]), "erofs_ishare_fill_inode is missing"),
        (dict(lockdown="confidentiality"), "lockdown=confidentiality"),
        (dict(kprobes=False, btf=False), "neither kprobes nor BTF"),
        (dict(headers=("/lib/modules/x/build", "6.1.0-9-amd64")), "is for 6.1.0-9-amd64"),
        (dict(headers=("/lib/modules/x/build", None)), "no kernel header tree"),
        (dict(headers=("/lib/modules/x/build", "match")), None),   # matching: supported
    ]
    for kw, words in cases:
        _host(monkeypatch, **kw)
        ok, reason = host.sharing_supported()
        if words is None:
            assert ok, reason
            continue
        assert not ok and words in reason and "\n" not in reason, (kw, reason)


def test_auto_falls_back_to_fentry_and_reports_both_failures(monkeypatch):
    """The order of hooks in mode "auto" (the real loads run in tests/vm)."""
    tried = []

    def fake_load(self, hook):                  # stands in for the BCC compile + attach
        tried.append(hook)
        if hook == "kprobe":
            raise sharing.SharingError("cannot attach kprobe erofs_ishare_mmap: no such symbol")
        self.bpf = object()

    monkeypatch.setattr(sharing.SharingProbes, "_load", fake_load)
    monkeypatch.setattr(sharing.SharingProbes, "_cleanup", lambda self: None)
    p = sharing.SharingProbes(mode="auto")
    assert tried == ["kprobe", "fentry"] and p.hook == "fentry"

    def always_fails(self, hook):
        raise sharing.SharingError(f"{hook} broken")

    monkeypatch.setattr(sharing.SharingProbes, "_load", always_fails)
    try:
        sharing.SharingProbes(mode="auto")
    except sharing.SharingError as e:
        assert str(e) == "kprobe: kprobe broken; fentry: fentry broken"
    else:
        raise AssertionError("no SharingError")
