"""What the benchmarks print: the samples of one measurement, against its target."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass


def duration(seconds: float) -> str:
    """A time in the unit that reads best: ms under a second, s above."""
    if seconds == float("inf"):
        return "timeout"
    if seconds < 1:
        return f"{seconds * 1000:.1f} ms"
    return f"{seconds:.3f} s" if seconds < 100 else f"{seconds:,.0f} s"


@dataclass
class Figure:
    """One line of a summary: samples of one measurement against its target."""

    name: str
    samples: list[float]
    target: float | None
    """None: context only, no target. Targets are upper bounds (at most)."""
    unit: Callable[[float], str] = duration
    note: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.samples) if self.samples else float("nan")

    @property
    def worst(self) -> float:
        return max(self.samples) if self.samples else float("nan")
