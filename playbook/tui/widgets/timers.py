"""The incident's timers, always on screen."""

from __future__ import annotations

from typing import Literal

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from playbook.core.durations import format_duration
from playbook.core.timers import BREACHED, WARNING, Timer, Timers
from playbook.tui.widgets.text import DRILL_STYLE, speed_text

STATE_STYLE = {BREACHED: "bold white on red", WARNING: "bold black on yellow"}


def timer_cell(timer: Timer) -> Text:
    """A timer as a short cell: label, used / target, state."""
    out = Text()
    name = {
        "response": "Respond",
        "resolution": "Resolve",
        "phase": "Phase",
        "status_update": "Update",
        "internal_update": "Internal",
    }.get(timer.name, timer.name)
    if timer.stopped:
        verdict = "BREACHED" if timer.state == BREACHED else "met"
        out.append(f" {name} {verdict} ", style=STATE_STYLE.get(timer.state, "green"))
        out.append(f"{format_duration(timer.elapsed)}/{format_duration(timer.target)}")
        return out
    style = STATE_STYLE.get(timer.state, "bold green")
    if timer.name in ("status_update", "internal_update"):
        left = timer.remaining
        due = f"due in {format_duration(left)}" if left >= 0 else f"{format_duration(-left)} late"
        out.append(f" {name} ", style=style)
        out.append(f" {due}")
        return out
    if timer.name == "phase":
        left = timer.remaining
        out.append(f" {name} ", style=style)
        out.append(
            f" {format_duration(left)} left" if left >= 0 else f" {format_duration(-left)} over"
        )
        return out
    out.append(f" {name} ", style=style)
    out.append(f" {format_duration(timer.elapsed)}/{format_duration(timer.target)}")
    left = timer.remaining
    out.append(f" {format_duration(left)} left" if left >= 0 else f" {format_duration(-left)} over")
    return out


class TimerBar(Static):
    """The incident's timers, always on screen, coloured by state."""

    DEFAULT_CSS = """
    TimerBar { height: 2; padding: 0 1; background: $panel; }
    """

    timers: reactive[Timers | None] = reactive(None, layout=False)
    """The latest reading; set on every tick."""
    escalate_to: reactive[str] = reactive("")
    """Who is next on the escalation path, shown when a timer is breached."""
    roles: reactive[str] = reactive("")
    """Who holds which role (``commander: alice``), named in the escalation notice."""
    speed: reactive[float] = reactive(1.0)
    """How fast the incident's clock runs (a drill's ``--speed``); shown when not 1."""

    def render(self) -> Text:
        timers = self.timers
        if timers is None:
            return Text("loading timers…")
        first = Text()
        for timer in (timers.response, timers.resolution):
            if timer is not None:
                first.append_text(timer_cell(timer))
                first.append("   ")
        second = Text()
        for timer in (timers.phase, timers.status_update, timers.internal_update):
            if timer is not None:
                second.append_text(timer_cell(timer))
                second.append("   ")
        breached = [t for t in timers.alerts() if t.state == BREACHED and t.escalate_to]
        if breached:
            held = f" — {self.roles}" if self.roles else ""
            second.append(
                f" Escalate to {breached[0].escalate_to}{held} (e) ", style="bold white on red"
            )
        if self.speed != 1:
            # Right-aligned on the first line when it fits, else after the second: the
            # timers above count drill time, and the responder must see it is not real time.
            tag = Text(f" clock {speed_text(self.speed)} ", style=DRILL_STYLE)
            width = self.content_size.width
            line = first if first.cell_len + tag.cell_len <= width else second
            line.append(" " * max(1, width - line.cell_len - tag.cell_len))
            line.append_text(tag)
        return Text("\n").join([first, second])


def alert_of(timer: Timer) -> tuple[str, str, Literal["warning", "error"], int] | None:
    """What to tell the responder when ``timer`` first warns or is breached: (message,
    title, severity, seconds shown); None when it does neither."""
    if timer.state == BREACHED:
        who = f" Escalate to {timer.escalate_to}: press e." if timer.escalate_to else ""
        return (
            f"{timer.label} target breached ({format_duration(timer.elapsed)} of {format_duration(timer.target)}).{who}",
            "Target breached",
            "error",
            12,
        )
    if timer.state == WARNING:
        return (
            f"{timer.label}: {timer.used:.0%} of the target used, {format_duration(timer.remaining)} left.",
            "Target at risk",
            "warning",
            8,
        )
    return None
