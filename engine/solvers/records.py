"""Metrics records the solver hands to observers (the editor's live plots read them)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class OutputValue:
    """One element of a net output blob, with its loss weight (0 for non-losses)."""

    name: str
    value: float
    loss_weight: float = 0.0


@dataclass
class IterationRecord:
    iteration: int
    loss: float
    smoothed_loss: float
    learning_rate: float
    outputs: list[OutputValue] = field(default_factory=list)
    elapsed: float = 0.0
    #: engine.debug records of the last pass, when gradient statistics were asked for
    gradient_stats: list = field(default_factory=list)


@dataclass
class TestRecord:
    iteration: int
    net_id: int
    outputs: list[OutputValue] = field(default_factory=list)
    loss: float | None = None
