"""Reading BCC maps: shared by the tracepoint tier (probes.py) and the sharing
tier (sharing.py), whose chunk maps hold the same owner slots
(probes/chunk_owners.h)."""
from __future__ import annotations

MAX_OWNERS = 4      # probes/chunk_owners.h


def items(table) -> list:
    """All (key, value) pairs, in one batch syscall where the kernel and BCC
    have them (5.6+), else one lookup per key."""
    try:
        return list(table.items_lookup_batch())
    except Exception:
        return list(table.items())


def percpu_counters(table, names) -> dict[str, int]:
    """A BPF_PERCPU_ARRAY of counters, summed over CPUs: {name: total} with
    names in index order (missing slots read 0)."""
    import ctypes as ct
    out = {}
    for i, name in enumerate(names):
        try:
            out[name] = int(sum(table[ct.c_int(i)]))
        except (KeyError, TypeError):
            out[name] = 0
    return out


def chunk_owners(v) -> dict[int, int]:
    """A chunk value's owner slots -> {cgroup id: page mask}; pages whose owner
    did not fit in a slot go to cgroup 0 (unknown)."""
    owners: dict[int, int] = {}
    for s in range(MAX_OWNERS):
        if v.bits[s]:
            owners[v.cgid[s]] = owners.get(v.cgid[s], 0) | v.bits[s]
    if v.other_bits:
        owners[0] = owners.get(0, 0) | v.other_bits
    return owners


class EmptyChunkGC:
    """Deletes chunk entries that were empty at two reads in a row: an insert
    racing the delete of its entry would be lost, so give it one interval."""

    def __init__(self, table):
        self.table = table
        self.last: set = set()

    def collect(self, empty_keys: set) -> None:
        """empty_keys: tuples of key fields whose entry had no resident page."""
        t = self.table
        for fields in empty_keys & self.last:
            key = t.Key(*fields)
            try:
                v = t[key]
                if not any(v.bits) and not v.other_bits:
                    del t[key]
            except KeyError:
                pass
        self.last = empty_keys
