"""Shared bits of the views: the view context, names, sparklines, cell helpers."""
from __future__ import annotations

from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Hashable

from ..names import display
from .history import History
from ..model import TIER_FULL, TIER_SNAPSHOT, Container, Model
from ..units import fmt_bytes

SPARK_CHARS = "▁▂▃▄▅▆▇█"


@dataclass
class ViewContext:
    """What every view reads: the history (which holds the latest Model)."""
    history: History
    elf: Any = None                     # ElfCache, set by the app (files view)
    extra: dict = field(default_factory=dict)

    @property
    def model(self) -> Model | None:
        return self.history.latest

    @property
    def tier(self) -> str:
        return self.model.tier if self.model else TIER_SNAPSHOT

    @property
    def full(self) -> bool:
        return self.tier == TIER_FULL

    @property
    def live_rates(self) -> bool:
        # The snapshot tier has no event counters: rates would be fake zeros.
        return self.tier != TIER_SNAPSHOT


def sparkline(values: list[int], width: int) -> str:
    """Last `width` samples as block characters, scaled to their own max."""
    if width <= 0:
        return ""
    values = values[-width:]
    if not values:
        return ""
    top = max(values)
    if top <= 0:
        return SPARK_CHARS[0] * len(values)
    n = len(SPARK_CHARS) - 1
    return "".join(SPARK_CHARS[min(n, max(0, round(v * n / top)))] for v in values)


def chart(values: list[int], width: int, height: int) -> list[str]:
    """A bar chart of the last `width` samples, `height` lines, eighth blocks."""
    values = values[-width:] if width > 0 else []
    top = max(values) if values else 0
    lines = []
    for row in range(height, 0, -1):        # top line first
        out = []
        for v in values:
            eighths = 0 if top <= 0 else round(v * height * 8 / top)
            full_below = (row - 1) * 8
            level = eighths - full_below
            if level >= 8:
                out.append("█")
            elif level <= 0:
                out.append(" ")
            else:
                out.append(SPARK_CHARS[level - 1])
        lines.append("".join(out).ljust(max(width, 0)))
    return lines


def short_id(ident: str, n: int = 12) -> str:
    return ident[:n]


def container_name(c: Container) -> str:
    """pod/container when the runtime is known, else the cgroup path."""
    if c.cgroup == "?" or not c.cgroup:
        return f"cgroup #{c.cgroup_id} (unresolved)"
    if getattr(c, "pod_name", ""):
        return f"{c.pod_namespace}/{c.pod_name}/{c.container_name or c.container_id[:12]}"
    if getattr(c, "namespace", "") and c.container_id:
        # containerd: its namespace and container id (ctr's /<ns>/<id>, --cgroup paths)
        return f"{c.namespace}/{c.container_id[:12]}"
    if c.pod_uid and c.container_id:
        return f"pod {c.pod_uid[:8]}/{c.container_id[:12]}"
    if c.container_id:
        return f"{c.runtime or 'ctr'}:{c.container_id[:12]}"
    return display(c.cgroup)


def container_match_text(key: Hashable, c: Container) -> str:
    return " ".join((container_name(c), c.cgroup, c.runtime, c.container_id, c.pod_uid,
                     getattr(c, "image", "")))


def bytes_total(attr: str):
    """Totals-row function summing a byte field over the live rows shown."""
    getter = attrgetter(attr)

    def total(keys: list[Hashable], rows: dict[Hashable, Any]) -> str:
        if len(keys) == len(rows):          # every row is live and shown: no lookups
            return fmt_bytes(sum(map(getter, rows.values())))
        return fmt_bytes(sum(map(getter, map(rows.__getitem__, keys))))
    return total


def count_total(keys: list[Hashable], rows: dict[Hashable, Any]) -> str:
    return f"TOTAL {len(keys)}"
