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


def summary(figures: list[Figure]) -> str:
    head = (
        f"{'measurement':<44} {'n':>3} {'median':>10} {'worst':>10} {'target':>9} "
        f"{'med/tgt':>7}  verdict"
    )
    lines = ["", "=" * len(head), "SUMMARY", head, "-" * len(head)]
    for f in figures:
        n = f.note or str(len(f.samples))
        worst = f.unit(f.worst) if len(f.samples) > 1 else "-"
        if f.target is None:
            target, ratio, verdict = "-", "-", "context"
        else:
            target, ratio = f"≤ {f.unit(f.target)}", f"{f.median / f.target:.2f}"
            verdict = "ok" if f.worst <= f.target else "MISSED"
            if verdict == "MISSED" and f.median <= f.target:
                verdict = "MISSED (worst only)"
        lines.append(
            f"{f.name:<44} {n:>3} {f.unit(f.median):>10} {worst:>10} {target:>9} "
            f"{ratio:>7}  {verdict}"
        )
    lines.append("=" * len(head))
    lines.append(
        "n: runs (median shown); est.: extrapolated or estimated, not measured in full; "
        "verdict: ok when the worst run meets the target"
    )
    return "\n".join(lines)
