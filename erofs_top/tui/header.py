"""Header: node totals, tier, interval, the tool's own cost, and the warning line."""
from __future__ import annotations

import textwrap

from rich.text import Text
from textual.widget import Widget

from ..advise import advise
from ..model import TIER_FULL, TIER_SNAPSHOT, Model
from ..units import fmt_bytes, fmt_count, fmt_pct, fmt_rate, fmt_seconds
from .history import History

MAP_FULL_WARN = 0.90        # map fullness that earns a warning


def pack(items: list[str], width: int, sep: str = "  ") -> list[str]:
    """Greedy line packing that never splits an item (items are 'label value')."""
    lines: list[str] = []
    cur = ""
    for item in items:
        if not item:
            continue
        if len(item) > width:
            # One item wider than the screen (a long warning): wrap it at words.
            if cur:
                lines.append(cur)
                cur = ""
            lines.extend(textwrap.wrap(item, width, subsequent_indent="  ",
                                       break_on_hyphens=False) or [item[:width]])
            continue
        if cur and len(cur) + len(sep) + len(item) > width:
            lines.append(cur)
            cur = item
        else:
            cur = f"{cur}{sep}{item}" if cur else item
    if cur:
        lines.append(cur)
    return lines


def map_fullness(model: Model) -> tuple[float, str]:
    """(highest entries/capacity, map name) over the BPF maps."""
    best, name = 0.0, ""
    for m in model.health.maps:
        if m.capacity > 0 and m.entries / m.capacity >= best:
            best, name = m.entries / m.capacity, m.name
    return best, name


def warnings(model: Model, source_error: str = "") -> list[str]:
    """Everything degraded, one short phrase each."""
    h = model.health
    out: list[str] = []
    if source_error:
        out.append(source_error)
    if model.tier == TIER_SNAPSHOT:
        out.append("snapshot tier: no BPF, so no insert/evict/miss rates")
    out.extend(h.warnings)
    if h.unresolved_cgroups:
        out.append(f"{h.unresolved_cgroups} cgroup(s) unresolved (deleted?)")
    if h.unresolved_mounts:
        out.append(f"{h.unresolved_mounts} dev(s) match no mount (unmounted?)")
    for m in h.maps:
        if m.capacity and m.entries / m.capacity >= MAP_FULL_WARN:
            out.append(f"map {m.name} {fmt_pct(m.entries, m.capacity)} full")
    if h.update_failures:
        out.append(f"{fmt_count(h.update_failures)} map updates refused (full maps)")
    if h.lost_events:
        out.append(f"{fmt_count(h.lost_events)} events lost")
    if h.owner_overflow_pages:
        out.append(f"{fmt_count(h.owner_overflow_pages)} pages with too many owners (cgroup 0)")
    if h.files_cap and h.files_total > h.files_cap:
        out.append(f"files: top {h.files_cap} of {fmt_count(h.files_total)} listed")
    if any(m.gone for m in model.mounts):
        out.append("an EROFS mount went away while watching")
    return out


class NodeHeader(Widget):
    """Always visible; height follows the terminal width (items wrap whole)."""

    DEFAULT_CSS = """
    NodeHeader { height: auto; padding: 0 1; background: $panel; }
    """

    def __init__(self, history: History, *, id: str | None = None, title: str = "erofs-top"):
        super().__init__(id=id)
        self.title = title
        self.history = history
        self.interval_s = 2.0
        self.paused = False
        self.source_error = ""
        self.replay_note = ""

    def update_state(self, *, interval_s: float, paused: bool, source_error: str = "",
                     replay_note: str = "") -> None:
        self.interval_s, self.paused = interval_s, paused
        self.source_error, self.replay_note = source_error, replay_note
        # A layout pass only when the number of lines changes (warnings come and go).
        width = max(20, self.size.width or 80)
        plain, warn = self.lines(width)
        self.refresh(layout=len(plain) + len(warn) != self.size.height)

    def lines(self, width: int) -> tuple[list[str], list[str]]:
        """(plain lines, warning lines) for a given width."""
        model = self.history.latest
        top = [self.title]
        if model is None:
            top.append("waiting for the first refresh…")
            if self.source_error:
                return pack(top, width), pack(["! " + self.source_error], width, sep=" · ")
            return pack(top, width), []
        t = model.totals
        h = self.history
        top.append(f"tier {model.tier}")
        top.append(f"every {fmt_seconds(self.interval_s)}" + (" PAUSED" if self.paused else ""))
        if self.replay_note:
            top.append(self.replay_note)
        cost = h.bpf_cost()
        if model.tier != TIER_SNAPSHOT:
            hl = model.health
            if not any(hl.bpf_run_count.values()) and not any(hl.bpf_run_time_ns.values()):
                # bpf_stats report zeros unless the kernel collects them
                top.append("BPF cost - (no bpf_stats)")
            else:
                top.append("BPF cost " + (f"{cost * 1000:.2f} ms/s" if cost is not None
                                          else "-"))
            fullness, name = map_fullness(model)
            maps = f"maps {fullness * 100:.0f}% full" if model.health.maps else ""
            top.append(" ".join(filter(None, (maps, f"lost {fmt_count(model.health.lost_events)}"))))
        node = [
            f"EROFS resident {fmt_bytes(t.resident_bytes)} of {fmt_bytes(t.page_cache_bytes)} "
            f"page cache ({fmt_pct(t.resident_bytes, t.page_cache_bytes)})",
            f"image files cached {fmt_bytes(t.backing_resident_bytes)}",
        ]
        rates = h.node_rates()
        if model.tier != TIER_SNAPSHOT:
            node.append(f"insert {fmt_rate(rates['insert_bytes_per_s'])}")
            node.append(f"evict {fmt_rate(rates['evict_bytes_per_s'])}")
        dup = [f"duplicate {fmt_bytes(t.duplicate_bytes)}",
               f"redundant {fmt_bytes(t.redundant_bytes)}"]
        if model.tier == TIER_FULL:
            dup.append(f"shared {fmt_bytes(t.shared_bytes)}")
            dup.append(f"sharing saved {fmt_bytes(t.sharing_saved_bytes)}")
        else:
            dup.append(f"inode_share could save {fmt_bytes(t.potential_savings_bytes)}")
        acts = advise(model)
        if acts:        # the top action of `erofs-top advise`
            a = acts[0]
            what = {"inode_share": "mount with inode_share",
                    "domain": "move mounts into one domain"}.get(a.kind, "rebuild an image")
            dup.append(f"advise: {what} ({len(a.mounts)} mount(s)) saves "
                       f"{fmt_bytes(a.saves_bytes)}")
        out = pack(top, width) + pack(node, width) + pack(dup, width)
        warn = warnings(model, self.source_error)
        return out, (pack(["! " + w for w in warn], width, sep=" · ") if warn else [])

    def render(self) -> Text:
        width = max(20, self.size.width or 80)
        plain, warn = self.lines(width)
        text = Text(no_wrap=True, overflow="ellipsis")
        for i, line in enumerate(plain):
            if i:
                text.append("\n")
            text.append(line, style="bold" if i == 0 else "")
        for line in warn:
            text.append("\n")
            text.append(line, style="bold yellow")
        return text

    def get_content_height(self, container, viewport, width: int) -> int:
        plain, warn = self.lines(max(20, width))
        return len(plain) + len(warn)
