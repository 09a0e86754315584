"""Outside text shown literally, and the marks several widgets share (verdict, drill, stand-in)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from playbook.core.text import inline, printable

if TYPE_CHECKING:
    from playbook.core.state import IncidentState


def lit(text: str, style: str = "") -> Text:
    """One line of outside text, never parsed as markup, control characters escaped."""
    return Text(inline(text), style=style, no_wrap=False)


def block(text: str, style: str = "") -> Text:
    """Several lines of outside text, shown literally."""
    return Text(printable(text), style=style)


VERDICT_STYLE = {
    "pass": "bold green",
    "warn": "bold black on yellow",
    "fail": "bold white on red",
    "error": "bold red",
}


def verdict_text(verdict: str) -> Text:
    """A diagnostic's verdict as a coloured tag: `` PASS ``, `` FAIL ``…"""
    return Text(f" {verdict.upper()} ", style=VERDICT_STYLE.get(verdict, "bold"))


DRILL_STYLE = "bold white on dark_magenta"
"""The drill's colours: its bar, its mark in lists, its clock beside the timers."""

STANDIN = "stand-in"
"""The word every stand-in's label carries (see :data:`playbook.adapters.mongo.standin.LABEL`)."""


def standin_label(state: IncidentState | None, target: str) -> str | None:
    """The label of ``target`` when a drill gave it a stand-in, not a real server."""
    if state is None or state.drill is None:
        return None
    label = str(state.drill.services.get(target, ""))
    return label if STANDIN in label else None


def standin_line(state: IncidentState | None, target: str) -> Text | None:
    """A line saying ``target`` is a stand-in, for screens that name the target."""
    label = standin_label(state, target)
    if label is None:
        return None
    line = Text(f"target {target} is a stand-in: ", style="bold yellow")
    line.append_text(lit(label, "yellow"))
    return line


def speed_text(speed: float) -> str:
    """A drill clock's speed as the marks show it: ``×10``."""
    return f"×{speed:g}"
