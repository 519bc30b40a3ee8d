"""Advice view: every action of `erofs-top advise`, ranked, on the latest Model.

The rows are ``advise(model)``'s actions as they are (kind, bytes saved,
mounts, commands): the view computes no saving of its own.  Keys are stable
across refreshes (the action's kind and image), so the cursor follows an
action while the ranking changes."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable

from ..advise import Action, advise, nothing_to_advise
from ..units import BYTES_WIDTH, fmt_bytes
from .common import ViewContext
from .table import Column, RowTable

KIND = "advice"
TITLE = "Advice"
SORT_KEYS = ("rank", "kind", "saves", "mounts")
COMMAND_SEP = " ; "
WAITING = "waiting for the first refresh…"


@dataclass(frozen=True)
class AdviceRow:
    rank: int               # 1 = the largest saving (advise()'s order)
    action: Action


def action_key(a: Action) -> Hashable:
    """Stable key: one inode_share action per node, one rebuild per image."""
    return (a.kind, a.image_id or a.image)


def current(ctx: ViewContext) -> dict[Hashable, AdviceRow]:
    """The latest Model's actions by key, in advise()'s ranking."""
    model = ctx.model
    if model is None:
        return {}
    return {action_key(a): AdviceRow(i, a) for i, a in enumerate(advise(model), 1)}


def empty_text(ctx: ViewContext) -> str:
    """The one line shown when there is nothing to advise, and why."""
    model = ctx.model
    return WAITING if model is None else f"Nothing to advise: {nothing_to_advise(model)}"


def match_text(key: Hashable, r: AdviceRow) -> str:
    a = r.action
    return " ".join((a.kind, a.image, a.image_id, *a.mounts, *a.commands))


def columns(ctx: ViewContext) -> list[Column]:
    def count(keys, rows):
        return f"{len(keys)} action(s)"

    return [
        Column("rank", "#", lambda k, r: str(r.rank), lambda k, r: r.rank, width=3,
               descending=False, total=lambda keys, rows: ""),
        Column("kind", "ACTION", lambda k, r: r.action.kind, lambda k, r: r.action.kind,
               width=11, align="left", descending=False, total=count),
        Column("saves", "SAVES", lambda k, r: fmt_bytes(r.action.saves_bytes),
               lambda k, r: r.action.saves_bytes, width=BYTES_WIDTH + 1),
        Column("mounts", "MOUNTS", lambda k, r: str(len(r.action.mounts)),
               lambda k, r: len(r.action.mounts), width=6),
        Column("touches", "MOUNT POINTS", lambda k, r: ", ".join(r.action.mounts), None,
               width=20, align="left", flex=1, max_width=60, shorten="path", priority=2),
        Column("commands", "COMMANDS (Enter)",
               lambda k, r: COMMAND_SEP.join(r.action.commands), None, width=20,
               align="left", flex=3, priority=1),
    ]


def make_table(ctx: ViewContext, sort_key: str | None = None) -> RowTable:
    return RowTable(columns(ctx), sort_key=sort_key or "rank", match=match_text,
                    empty_text=WAITING, id="table-advice")


def rows(ctx: ViewContext) -> tuple[dict[Hashable, Any], dict[Hashable, float]]:
    return current(ctx), {}
