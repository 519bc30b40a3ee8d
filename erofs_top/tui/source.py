"""ModelSource: what the UI pulls Models from (live collector or a recording).

    class ModelSource(Protocol):
        tier: str
        def refresh(self) -> Model        # the next Model; called in a worker thread
        def close(self) -> None
        # optional, for recordings (erofs-top replay):
        speed: float                      # replay speed factor, changed with < and >
        def step(self, n: int = 1) -> Model   # n Models forward (or back, n < 0), paused
        def seek(self, t: float) -> Model     # jump to recording time t (unix seconds)
        def position(self) -> str         # "12:03:04 (35%)" for the header

A live collector (``erofs_top.collector.Collector``) already has ``refresh``,
``tier`` and ``close``; nothing to wrap.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from ..model import Model


@runtime_checkable
class ModelSource(Protocol):
    tier: str

    def refresh(self) -> Model: ...

    def close(self) -> None: ...


def can_step(source: object) -> bool:
    return callable(getattr(source, "step", None))


def can_seek(source: object) -> bool:
    return callable(getattr(source, "seek", None))


class ListSource:
    """Models from a list, one per refresh (tests, benchmarks, fixtures).

    Steppable like a recording; after the last Model it keeps returning it.
    """

    def __init__(self, models: list[Model]):
        if not models:
            raise ValueError("ListSource needs at least one Model")
        self.models = models
        self.index = -1
        self.speed = 1.0
        self.closed = False

    @property
    def tier(self) -> str:
        return self.models[0].tier

    def refresh(self) -> Model:
        self.index = min(self.index + 1, len(self.models) - 1)
        return self.models[self.index]

    def step(self, n: int = 1) -> Model:
        self.index = max(0, min(self.index + n, len(self.models) - 1))
        return self.models[self.index]

    def position(self) -> str:
        return f"model {self.index + 1}/{len(self.models)}"

    def close(self) -> None:
        self.closed = True
