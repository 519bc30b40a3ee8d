"""Fixed Models for the TUI tests (built from model.py dataclasses; no root)."""
from __future__ import annotations

from erofs_top.model import (Container, File, Health, MapUsage, Model, Mount, MountHolder,
                             Totals, TIER_TRACEPOINT)

MiB = 1 << 20
T0 = 1_700_000_000.0


def containers(step: int = 0) -> list[Container]:
    """Three containers; counters grow with step (2 s per step)."""
    return [
        Container(cgroup_id=101, cgroup="/erofs-top-demo/ctr-a", runtime="",
                  resident_bytes=13 * MiB, duplicate_bytes=9 * MiB,
                  inserted_bytes=(13 + 4 * step) * MiB, evicted_bytes=step * MiB,
                  readahead_bytes=(12 + 2 * step) * MiB, read_folio_count=40 + 10 * step,
                  files_count=4, mounts=["7:3"]),
        Container(cgroup_id=102, cgroup="/erofs-top-demo/ctr-b", runtime="",
                  resident_bytes=11 * MiB, duplicate_bytes=9 * MiB,
                  inserted_bytes=11 * MiB, evicted_bytes=0,
                  readahead_bytes=10 * MiB, read_folio_count=30,
                  files_count=4, mounts=["7:4"]),
        Container(cgroup_id=103, cgroup="/system.slice/docker-0123456789abcdef0123.scope",
                  runtime="docker", container_id="0123456789abcdef0123",
                  resident_bytes=2 * MiB, duplicate_bytes=0,
                  inserted_bytes=(2 + step) * MiB, evicted_bytes=0,
                  readahead_bytes=2 * MiB, read_folio_count=5,
                  files_count=1, mounts=["7:4"]),
    ]


def mounts() -> list[Mount]:
    return [
        Mount(dev="7:3", mountpoint="/run/erofs-top-demo/ctr-a", source="/tmp/app-v1.erofs",
              backing="file", backing_file="/tmp/app-v1.erofs", image_id="aa11bb22cc33",
              resident_bytes=13 * MiB, duplicate_bytes=9 * MiB,
              backing_resident_bytes=13 * MiB, containers_count=1),
        Mount(dev="7:4", mountpoint="/run/erofs-top-demo/ctr-b", source="/dev/loop4",
              backing="loop", backing_file="/tmp/app-v2.erofs", image_id="dd44ee55ff66",
              resident_bytes=13 * MiB, duplicate_bytes=9 * MiB,
              backing_resident_bytes=0, containers_count=2),
    ]


def files() -> list[File]:
    return [
        File(dev="7:3", ino=36, path="/run/erofs-top-demo/ctr-a/usr/lib/libdemo.so.1",
             content_id="c0ffee0123456789", size=6 * MiB, resident_bytes=6 * MiB,
             duplicate_bytes=6 * MiB, copies=2, cgroups=[101]),
        File(dev="7:4", ino=36, path="/run/erofs-top-demo/ctr-b/usr/lib/libdemo.so.1",
             content_id="c0ffee0123456789", size=6 * MiB, resident_bytes=6 * MiB,
             duplicate_bytes=6 * MiB, copies=2, cgroups=[102]),
        File(dev="7:3", ino=40, path="/run/erofs-top-demo/ctr-a/usr/bin/demo-server",
             content_id="beef00aa11223344", size=3 * MiB, resident_bytes=3 * MiB,
             duplicate_bytes=3 * MiB, copies=2, cgroups=[101]),
        File(dev="7:3", ino=44, path="/run/erofs-top-demo/ctr-a/usr/share/demo/data.bin",
             content_id="d00d00aa11223344", size=4 * MiB, resident_bytes=4 * MiB,
             duplicate_bytes=0, copies=1, cgroups=[101]),
        File(dev="7:4", ino=44, path="/run/erofs-top-demo/ctr-b/usr/share/demo/data.bin",
             content_id="d00d00bb11223344", size=4 * MiB, resident_bytes=2 * MiB,
             duplicate_bytes=0, copies=1, cgroups=[103]),
    ]


def model(step: int = 0, *, tier: str = TIER_TRACEPOINT, drop_cgroups: tuple[int, ...] = (),
          t0: float = T0, interval_s: float = 2.0) -> Model:
    cs = [c for c in containers(step) if c.cgroup_id not in drop_cgroups]
    ms = mounts()
    for m in ms:    # each fixture container holds pages of one mount only
        m.holders = sorted((MountHolder(c.cgroup_id, c.resident_bytes, c.duplicate_bytes)
                            for c in cs if m.dev in c.mounts),
                           key=lambda h: -h.resident_bytes)
    return Model(
        tier=tier, started_at=t0, ended_at=t0 + interval_s * step, page_size=4096,
        containers=cs, mounts=ms, files=files(),
        totals=Totals(resident_bytes=26 * MiB, duplicate_bytes=18 * MiB,
                      redundant_bytes=9 * MiB, potential_savings_bytes=9 * MiB,
                      backing_resident_bytes=13 * MiB,
                      inserted_bytes=(26 + 5 * step) * MiB, evicted_bytes=step * MiB,
                      page_cache_bytes=2048 * MiB),
        health=Health(maps=[MapUsage("pages", 1200, 65536), MapUsage("io", 10, 16384)],
                      probes_attached=True, files_total=5, files_cap=200,
                      bpf_run_time_ns={"insert": 1_000_000 * (step + 1), "evict": 200_000 * step},
                      bpf_run_count={"insert": 100 * step}),
        kernel="6.18.0",
    )


def screen_text(app) -> str:
    """What the user sees right now, as plain text (one line per terminal row)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


def run_async(fn):
    """Run an async test with asyncio.run (no pytest-asyncio dependency)."""
    import asyncio
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return asyncio.run(fn(*args, **kwargs))
    return wrapper


async def pause_until(pilot, condition, step_s: float = 0.05, tries: int = 100) -> None:
    """Let the app run until ``condition()`` holds (a wait on a condition, not a
    fixed sleep), then one more pause for the repaint."""
    for _ in range(tries):
        if condition():
            break
        await pilot.pause(step_s)
    await pilot.pause()
