"""Small widgets and helpers of the app. Text from outside is always shown literally."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.segment import Segment
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import Static

from playbook.core.durations import format_duration
from playbook.core.text import inline, printable
from playbook.core.timers import BREACHED, WARNING, Timer, Timers

if TYPE_CHECKING:
    from playbook.core.state import IncidentState


def lit(text: str, style: str = "") -> Text:
    """One line of outside text, never parsed as markup, control characters escaped."""
    return Text(inline(text), style=style, no_wrap=False)


def block(text: str, style: str = "") -> Text:
    """Several lines of outside text, shown literally."""
    return Text(printable(text), style=style)


STATE_STYLE = {BREACHED: "bold white on red", WARNING: "bold black on yellow"}


def timer_cell(timer: Timer) -> Text:
    """A timer as a short cell: label, used / target, state."""
    out = Text()
    name = {
        "response": "Respond",
        "resolution": "Resolve",
        "phase": "Phase",
        "status_update": "Update",
    }[timer.name]
    if timer.stopped:
        verdict = "BREACHED" if timer.state == BREACHED else "met"
        out.append(f" {name} {verdict} ", style=STATE_STYLE.get(timer.state, "green"))
        out.append(f"{format_duration(timer.elapsed)}/{format_duration(timer.target)}")
        return out
    style = STATE_STYLE.get(timer.state, "bold green")
    if timer.name == "status_update":
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


@dataclass(frozen=True)
class DrillMark:
    """What a drill's bar says: which drill, how fast its clock runs, whether its
    sandbox runs in this app."""

    title: str
    speed: float | None = None
    """None while the incident is still being read."""
    sandbox: bool = True


class DrillBanner(Static):
    """One line on top of every screen of a drill, so none is taken for a real incident."""

    DEFAULT_CSS = """
    DrillBanner {
        dock: top; height: 1; width: 100%; background: darkmagenta; color: white;
        text-style: bold;
    }
    """

    mark: reactive[DrillMark | None] = reactive(None)
    """The drill shown; None hides the bar."""

    def __init__(self, mark: DrillMark) -> None:
        super().__init__(markup=False)
        self.set_reactive(DrillBanner.mark, mark)

    def watch_mark(self, mark: DrillMark | None) -> None:
        self.display = mark is not None

    def render(self) -> Text:
        mark = self.mark
        if mark is None:
            return Text()
        head = Text(" DRILL ", style="reverse")
        head.append(" not a real incident — ")
        tail = Text()
        if mark.speed is not None and mark.speed != 1:
            tail.append(f" — clock {speed_text(mark.speed)}")
        if not mark.sandbox:
            tail.append(" — no sandbox here")
        # The title gives way first: the mark and the clock always fit on one line.
        room = self.size.width - head.cell_len - tail.cell_len
        title = inline(mark.title) or "a drill"
        if len(title) > room:
            title = title[: max(0, room - 1)] + "…"
        out = head + Text(title) + tail
        out.no_wrap = True
        out.overflow = "ellipsis"
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
        for timer in (timers.phase, timers.status_update):
            if timer is not None:
                second.append_text(timer_cell(timer))
                second.append("   ")
        breached = [t for t in timers.alerts() if t.state == BREACHED and t.escalate_to]
        if breached:
            second.append(f" Escalate to {breached[0].escalate_to} (e) ", style="bold white on red")
        if self.speed != 1:
            # Right-aligned on the first line when it fits, else after the second: the
            # timers above count drill time, and the responder must see it is not real time.
            tag = Text(f" clock {speed_text(self.speed)} ", style=DRILL_STYLE)
            width = self.content_size.width
            line = first if first.cell_len + tag.cell_len <= width else second
            line.append(" " * max(1, width - line.cell_len - tag.cell_len))
            line.append_text(tag)
        return Text("\n").join([first, second])


class TimelineView(ScrollView, can_focus=True):
    """Rows of the timeline, drawn one visible line at a time.

    A table widget that builds and measures every cell stalled the app for seconds on
    10,000 events; this view formats rows once (off the event loop, by the caller) and
    draws only the lines on screen, so opening and scrolling cost the same at any size.
    """

    DEFAULT_CSS = """
    TimelineView { height: 1fr; }
    TimelineView > .timeline--cursor { background: $accent; color: $text; text-style: bold; }
    TimelineView > .timeline--header { text-style: bold; background: $panel; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"timeline--cursor", "timeline--header"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,ctrl+home", "jump(0)", "First", show=False),
        Binding("end,ctrl+end", "jump(-1)", "Last", show=False),
    ]
    WIDTHS = (6, 17, 10, 11)
    """Widths of the #, local time, UTC time and actor columns; the event takes the rest."""

    cursor_row: reactive[int] = reactive(0, always_update=True)
    """The highlighted row."""

    class RowHighlighted(Message):
        """The cursor moved to ``row``."""

        def __init__(self, row: int) -> None:
            super().__init__()
            self.row = row

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[tuple[str, ...]] = []

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def set_rows(self, rows: list[tuple[str, ...]], cursor: int = 0) -> None:
        """Show ``rows`` (already literal text: see :func:`playbook.core.text.inline`)."""
        self.rows = rows
        self.virtual_size = Size(self.size.width, len(rows) + 1)
        self.cursor_row = max(0, min(cursor, len(rows) - 1))
        self.refresh()

    def watch_cursor_row(self, row: int) -> None:
        if not self.rows:
            return
        # Line 0 of the view is the header; rows start at line 1, from scroll_offset.y.
        top = self.scroll_offset.y
        room = max(1, self.scrollable_content_region.height - 1)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + room:
            self.scroll_to(y=row - room + 1, animate=False, immediate=True)
        self.refresh()
        self.post_message(self.RowHighlighted(row))

    def action_move(self, delta: int) -> None:
        if self.rows:
            self.cursor_row = max(0, min(len(self.rows) - 1, self.cursor_row + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.scrollable_content_region.height - 2))

    def action_jump(self, row: int) -> None:
        if self.rows:
            self.cursor_row = row % len(self.rows)

    def _cells(self, values: tuple[str, ...], width: int) -> str:
        out = ""
        for value, size in zip(values, self.WIDTHS, strict=False):
            out += value[: size - 1].ljust(size)
        rest = max(0, width - len(out))
        event = values[len(self.WIDTHS)] if len(values) > len(self.WIDTHS) else ""
        return (out + event)[:width].ljust(width) if rest else out[:width]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            header = self._cells(("#", "Local", "UTC", "Actor", "Event"), width)
            return Strip([Segment(header, self.get_component_rich_style("timeline--header"))])
        index = self.scroll_offset.y + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        style = (
            self.get_component_rich_style("timeline--cursor")
            if index == self.cursor_row
            else self.rich_style
        )
        return Strip([Segment(self._cells(self.rows[index], width), style)])
