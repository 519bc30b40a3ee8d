"""A synthetic node in a process of its own, for the exporter's RSS
(bench_exporter.py --node-process; not a test module).

bench_exporter.py's node part made the SyntheticNode in the exporter's own
process and printed the exporter's RSS as the process's RSS less the node's
RSS once made.  That subtraction is only as good as its assumption that the
node's memory stays what it was once made: churn grows the node's heap and
changes which objects the node and the source share, so the figure moved
with the benchmark's node, not with erofs-top (docs/performance.md, the
exporter RSS "by this method").  Here the node lives in a child process and
hands over only what a probe source reads from the kernel's maps:

- once, at start, the fixture resolvers' state: mounts, cgroup paths, and
  the two numbers from which synthetic_node.DerivedContent derives each
  file's FileInfo and digest when the aggregator asks (a real resolver
  reads the image's inode when asked; erofs-top keeps what it keeps of
  the answer, and that is counted here);
- the first read: every chunk entry and io row as two packed buffers each,
  as a batch map read returns them (maps.chunk_items / io_items with a
  RawBatch);
- every later read, after the node's churn: the chunk entries the probe
  would have marked dirty (bench_exporter.marked_chunks against what the
  child sent before), the chunk keys gone, and the io rows changed, as
  plain tuples of ints; unpickling them makes fresh ints, as a map read's
  decoding does.

The exporter's process then holds what a real exporter holds (interpreter,
resolvers, the source's ChunkState/IoState, the aggregator, the exporter's
families and encodings) and nothing of the node.
"""
from __future__ import annotations

import multiprocessing as mp

import benchlib  # noqa: F401  (sets sys.path)

from synthetic_node import DerivedContent

from erofs_top.resolve.base import StaticCgroups, StaticMounts


def _chunk_view(pcs) -> dict:
    """chunk -> PageChunk of a file's chunks: what the source keeps of it."""
    return {pc.chunk: pc for pc in pcs}


def _steady_read(node, sent: dict, mark_every_chunk: bool) -> tuple[list, list, list]:
    """(found, gone, io_found) of the files and io rows the node changed
    since the last read; ``sent`` (file -> chunk -> PageChunk, what the
    source holds) is brought up to date."""
    from bench_exporter import _chunk_pairs, _io_value, marked_chunks
    found, gone = [], []
    for fk in node.changed:
        now = node.files.get(fk, ())
        was = sent.get(fk, {})
        found += _chunk_pairs({fk: now if mark_every_chunk else marked_chunks(now, was)})
        have = {pc.chunk for pc in now}
        gone += [(fk[0], fk[1], c) for c in was if c not in have]
        if now:
            sent[fk] = _chunk_view(now)
        else:
            sent.pop(fk, None)
    io_found = [(k, _io_value(node.io_by_key.get(k))) for k in node.changed_io]
    return found, gone, io_found


def serve(conn, files: int, containers: int, rereads: bool, aged: int, fraction: float,
          mark_every_chunk: bool, seed: int = 1) -> None:
    """The child: make and age the node, send the resolvers' state, then
    answer each request (True: churn first; False: the first read; None:
    stop) with a read."""
    from bench_exporter import pack_chunks, pack_io
    from synthetic_node import SyntheticNode
    node = SyntheticNode(files, containers, rereads=rereads, seed=seed)
    node.age(aged)
    # the resolvers' state: mounts and cgroups as they are, the files' (a
    # FileInfo and a digest each) as DerivedContent's formula
    conn.send((node.mount_list, dict(node.cgroups.paths), node.n_images, node.per_mount,
               node.chunk_count()))
    sent: dict = {}
    while True:
        churn = conn.recv()
        if churn is None:
            break
        if churn:
            node.churn(fraction)
            conn.send(_steady_read(node, sent, mark_every_chunk))
        else:
            # packed here, unpacked by the source as it reads them
            conn.send((pack_chunks(node.files), pack_io(node.io_by_key)))
            sent = {fk: _chunk_view(pcs) for fk, pcs in node.files.items()}
        node.changed, node.changed_io = set(), set()
    conn.close()


class NodeProcess:
    """The parent's end: starts serve() in a spawned child (a fresh
    interpreter: nothing of this process copied into it, nothing of the
    node in this one), holds the resolvers made from what it sent, and
    asks it for reads."""

    def __init__(self, files: int, containers: int, *, rereads: bool = False, aged: int = 0,
                 fraction: float = 0.01, mark_every_chunk: bool = False,
                 seed: int = 1):
        ctx = mp.get_context("spawn")
        self.conn, child_end = ctx.Pipe()
        self.proc = ctx.Process(target=serve, daemon=True, args=(
            child_end, files, containers, rereads, aged, fraction, mark_every_chunk, seed))
        self.proc.start()
        child_end.close()
        try:
            mount_list, cg_paths, n_images, per_mount, self.n_chunks = self.conn.recv()
        except EOFError:
            self.close()
            raise RuntimeError(f"the node process exited ({self.proc.exitcode}) before its "
                               f"first message") from None
        self.mounts = StaticMounts(mount_list)
        self.cgroups = StaticCgroups(cg_paths)
        self.content = DerivedContent(mount_list, n_images, per_mount)

    def resolvers(self):
        return self.mounts, self.cgroups, self.content

    def chunk_count(self) -> int:
        """The node's chunk entries when it was made."""
        return self.n_chunks

    def read(self, churn: bool):
        """The first read's packed buffers ((chunk keys, values), (io keys,
        values)) when not ``churn``; else, after a churn, (found, gone,
        io_found) as plain tuples (the probe's dirty keys, decoded)."""
        self.conn.send(churn)
        return self.conn.recv()

    def close(self) -> None:
        if self.proc.is_alive():
            try:
                self.conn.send(None)
            except OSError:
                pass
            self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.conn.close()
