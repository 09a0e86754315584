"""The timeline: every event of the incident in order, with local and UTC times.

Reading and formatting the rows happens on the store thread (10,000 events never block a
key); :class:`playbook.tui.widgets.timeline_view.TimelineView` draws only what is visible.
"""

from __future__ import annotations

import gc
from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Static

from playbook.core import events as ev
from playbook.core.state import IncidentState
from playbook.core.text import inline
from playbook.render.export import describe
from playbook.service import postmortem
from playbook.tui.host import host
from playbook.tui.messages import ChangeRecorded, TimelineRead
from playbook.tui.screens.base import HelpText
from playbook.tui.screens.dialogs import ExportDialog
from playbook.tui.widgets.text import block
from playbook.tui.widgets.timeline_view import TimelineView
from playbook.tui.widgets.timers import TimerBar

FILTERS = (
    ("all", "everything", None),
    ("notes", "notes", {ev.NOTE_ADDED}),
    ("status", "status messages", {ev.STATUS_RENDERED}),
    ("checklist", "checklist", {ev.ITEM_CHECKED, ev.ITEM_UNCHECKED}),
    (
        "severity",
        "severity & escalation",
        {ev.SEVERITY_CHANGED, ev.ESCALATED, ev.ACKNOWLEDGED, ev.RESOLVED, ev.CLOSED, ev.OPENED},
    ),
    ("phases", "phases & scenarios", {ev.PHASE_ENTERED, ev.SCENARIO_CHOSEN}),
)


class TimelineScreen(HelpText, Screen[None]):
    """Every event in order, with local and UTC times."""

    HELP = (
        "Every event of the incident, oldest first; the line under the table shows the "
        "highlighted event in full. f cycles the filter; m and j export Markdown or JSON; "
        "n adds a note; p pins the highlighted event as a highlight of the postmortem "
        "(playbook export ID --format postmortem); Esc goes back."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "filter", "Filter", id="timeline.filter"),
        Binding("m", "export('markdown')", "Export MD", id="timeline.md"),
        Binding("j", "export('json')", "Export JSON", id="timeline.json"),
        Binding("p", "pin", "Pin", id="timeline.pin"),
        Binding("escape", "leave", "Back", id="timeline.leave"),
    ]

    def __init__(self, incident_id: str, state: IncidentState) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.state = state
        """The incident as last read (the incident screen below keeps it current)."""
        self.filter_index = 0
        self.events: list[ev.Event] = []
        self.rows: list[tuple[str, ...]] = []
        self.shown_events: list[ev.Event] = []
        self._loaded = False

    def compose(self) -> ComposeResult:
        yield Static(id="timeline-title")
        yield TimerBar(id="timers")
        yield TimelineView(id="timeline")
        yield Static(id="event-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(host(self).tick_seconds, self.tick)
        self.tick()
        self.reload()

    def tick(self) -> None:
        bar = self.query_one(TimerBar)
        bar.timers = host(self).service.timers(self.state)
        bar.speed = self.state.speed

    def on_screen_resume(self) -> None:
        if self._loaded:  # the first resume is the mount itself
            self.reload()

    def reload(self) -> None:
        app = host(self)
        ref = self.incident_id
        known = len(self.events)

        def read() -> tuple[list[ev.Event], list[tuple[str, ...]]]:
            # Runs on the store thread: reading and formatting 10,000 rows never blocks keys.
            found = app.service.get(ref)
            if len(found.events) == known:
                return found.events, []
            return found.events, [_timeline_row(e, found.state) for e in found.events]

        app.submit("read timeline", read, self, TimelineRead, records=False)

    def on_timeline_read(self, message: TimelineRead) -> None:
        self._loaded = True
        if message.rows or not self.events:
            self.events, self.rows = message.events, message.rows
            self.show()
            # Tens of thousands of long-lived rows made each full garbage collection
            # take 100-300 ms (a visible stall while scrolling, bench/app_bench.py).
            # Freezing moves them out of the collector's scans; reference counting
            # still frees them when the timeline closes (they hold no cycles).
            gc.freeze()

    def show(self) -> None:
        _key, label, kinds = FILTERS[self.filter_index]
        picked = [i for i, e in enumerate(self.events) if kinds is None or e.type in kinds]
        self.shown_events = [self.events[i] for i in picked]
        table = self.query_one(TimelineView)
        table.set_rows([self.rows[i] for i in picked])
        title = Text(
            f"Timeline of {self.incident_id}: {len(picked)} of {len(self.events)} events",
            style="bold",
        )
        title.append(f"  (filter: {label}; f changes it)")
        self.query_one("#timeline-title", Static).update(title)
        table.focus()

    def on_timeline_view_row_highlighted(self, event: TimelineView.RowHighlighted) -> None:
        if 0 <= event.row < len(self.shown_events):
            chosen = self.shown_events[event.row]
            text = Text(
                f"#{chosen.seq} {chosen.at:%Y-%m-%d %H:%M:%S}Z {chosen.actor}: ", style="bold"
            )
            text.append_text(block(describe(chosen, self.state)))
            if chosen.type == ev.STATUS_RENDERED:
                text.append("\n")
                text.append_text(block(chosen.payload.get("text", "")))
            self.query_one("#event-detail", Static).update(text)

    def action_filter(self) -> None:
        self.filter_index = (self.filter_index + 1) % len(FILTERS)
        self.show()

    def action_export(self, fmt: str) -> None:
        self.app.push_screen(ExportDialog(self.incident_id, fmt))

    def action_leave(self) -> None:
        self.app.pop_screen()

    def action_pin(self) -> None:
        """Pin the highlighted event: the postmortem's timeline highlights show it."""
        row = self.query_one(TimelineView).cursor_row
        if not 0 <= row < len(self.shown_events):
            self.notify("No event is highlighted.", markup=False)
            return
        seq = self.shown_events[row].seq
        app = host(self)
        ref = self.incident_id
        said = f"Pinned event {seq}: the postmortem's timeline highlights show it."
        app.submit(
            f"pin event {seq}",
            lambda: postmortem.pin(app.service.context, ref, seq),
            self,
            partial(ChangeRecorded, said=said),
        )

    def on_change_recorded(self, message: ChangeRecorded) -> None:
        self.state = message.state
        if message.said:
            self.notify(message.said, markup=False)
        self.reload()


def _timeline_row(event: ev.Event, state: IncidentState | None) -> tuple[str, ...]:
    """One timeline row as literal text (control characters escaped, newlines shown)."""
    local = event.at.astimezone()
    return (
        str(event.seq),
        f"{local:%m-%d %H:%M %Z}",
        f"{event.at:%H:%M:%S}Z",
        inline(event.actor),
        inline(describe(event, state).replace("\n", " ⏎ ")),
    )
