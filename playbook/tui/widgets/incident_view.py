"""Everything the incident screen shows of one incident, kept current."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import OptionList

from playbook.core.evidence import shown_of
from playbook.core.text import inline
from playbook.core.timers import BREACHED, Timer, reminders
from playbook.tui.host import host
from playbook.tui.messages import (
    Card,
    ChangeRecorded,
    DiagnosticRecorded,
    DrillChecked,
    DrillCheckFailed,
    IncidentRead,
    ItemRecorded,
    PlaybookBuilt,
    ScenarioFollowed,
    post_outcome,
)
from playbook.tui.widgets.checklist import Checklist
from playbook.tui.widgets.diagnostic_runs import DiagnosticRuns
from playbook.tui.widgets.incident_header import IncidentHeader
from playbook.tui.widgets.phase_nav import PhaseNav
from playbook.tui.widgets.sections import post_incident_first
from playbook.tui.widgets.step_detail import StepDetail
from playbook.tui.widgets.timers import TimerBar, alert_of

if TYPE_CHECKING:
    from datetime import datetime

    from playbook.core.model import Playbook
    from playbook.core.state import IncidentState


UPDATE_TIMERS = ("status_update", "internal_update")
"""Timers whose news is an update reminder (:func:`playbook.core.timers.reminders`)."""


def _snoozed(state: IncidentState, timer: Timer, now: datetime) -> bool:
    audience = "internal" if timer.name == "internal_update" else "external"
    until = state.snoozed_until(audience)
    return until is not None and now < until


class IncidentView(Vertical):
    """The header, the timers, the left column, the checklist with its detail pane, and
    the running diagnostics, of one incident.

    It reads the incident on the store thread (and again every ``refresh_seconds``: another
    terminal may have changed it), rebuilds its playbook from the snapshot, and hands each
    widget the state it shows. It records the changes that need no dialog (a scenario
    followed, an acknowledgement, a phase made current), shows every change recorded
    wherever it was made (a tick in the checklist, a run, a dialog's result), and tells
    the screen each time it shows a new reading (:class:`Shown`).
    """

    DEFAULT_CSS = "IncidentView { height: 1fr; }"

    class Shown(Message):
        """The view shows a new reading of the incident (``first``: its first)."""

        def __init__(self, state: IncidentState, first: bool) -> None:
            super().__init__()
            self.state = state
            self.first = first

    def __init__(self, incident_id: str, state: IncidentState | None = None) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.state: IncidentState | None = None
        """The incident as last read (None until it is)."""
        self.playbook: Playbook | None = None
        """The playbook the incident opened with, rebuilt from its snapshot."""
        self.section = ""
        """The section shown on the right (an id from the left column)."""
        self.announced: set[tuple[str, ...]] = set()
        """(timer, state, severity) the responder was told of: each is said once."""
        self.unreadable_shown: set[int] = set()
        """Sequence numbers of unreadable events the responder has been told about."""
        self.checking = False
        """True while the drill's data is being compared with its fingerprint."""
        self._initial = state
        self._playbook_sha = ""
        self._reading_playbook = ""
        self.header = IncidentHeader(id="incident-header")
        self.nav = PhaseNav(id="nav")
        self.checklist = Checklist(id="checklist")
        self.detail = StepDetail(id="detail-scroll")
        self.runs = DiagnosticRuns(id="diag-status")

    def compose(self) -> ComposeResult:
        yield self.header
        yield TimerBar(id="timers")
        with Horizontal(id="body"):
            yield self.nav
            with Vertical(id="main"):
                yield self.checklist
                yield self.detail
        yield self.runs

    def on_mount(self) -> None:
        app = host(self)
        if self._initial is not None:
            self.apply_state(self._initial)
        else:
            self.reload()
        self.set_interval(app.tick_seconds, self.tick)
        self.set_interval(app.refresh_seconds, self.reload)

    # -------------------------------------------------------------- reading

    def reload(self) -> None:
        app, ref = host(self), self.incident_id
        app.submit("read incident", lambda: app.service.get(ref).state, self, IncidentRead)

    def on_incident_read(self, message: IncidentRead) -> None:
        if self.state is None or message.state.last_seq != self.state.last_seq:
            self.apply_state(message.state)

    def apply_state(self, state: IncidentState) -> None:
        """Show ``state`` in every widget (called with every state the store hands back)."""
        first = self.state is None
        self.incident_id = state.id
        self.state = state
        self._tell_unreadable(state)
        self.post_message(self.Shown(state, first))
        self.header.state = self.runs.state = state
        if state.playbook_sha256 != self._playbook_sha or self.playbook is None:
            self._read_playbook(state)
            self.tick()
            return
        self.nav.state = state
        self.checklist.state = state
        self.detail.state = state
        if not self.section:
            self.show_section(state.phase if not state.resolved_at else post_incident_first(state))
        self._follow_highlight()
        self.tick()

    def _tell_unreadable(self, state: IncidentState) -> None:
        """Say once, per event, that the log holds an event the fold had to skip."""
        new = [u for u in state.unreadable if u.seq not in self.unreadable_shown]
        if not new:
            return
        self.unreadable_shown.update(u.seq for u in new)
        lines = [inline(u.describe()) for u in new[:5]]  # reasons quote the log
        if len(new) > 5:
            lines.append(f"… and {len(new) - 5} more (playbook show lists them all)")
        self.notify(
            "\n".join(lines),
            title="Unreadable events in this incident",
            severity="warning",
            timeout=30,
            markup=False,
        )

    def _read_playbook(self, state: IncidentState) -> None:
        """Build the incident's playbook (from its snapshot) on the store thread."""
        sha = state.playbook_sha256
        if self._reading_playbook == sha:
            return
        self._reading_playbook = sha
        app = host(self)
        app.submit(
            "read playbook",
            partial(app.service.playbook_of, state),
            self,
            partial(PlaybookBuilt, sha),
            records=False,
        )

    def on_playbook_built(self, message: PlaybookBuilt) -> None:
        self.playbook = message.playbook
        self._playbook_sha, self._reading_playbook = message.sha, ""
        self.nav.playbook = self.checklist.playbook = self.detail.playbook = message.playbook
        if self.state is not None:
            self.apply_state(self.state)

    def tick(self) -> None:
        """Redraw the timers; say once when one warns or is breached, and to whom to turn."""
        state = self.state
        if state is None:
            return
        timers = host(self).service.timers(state)
        bar = self.query_one(TimerBar)
        bar.timers = timers
        bar.speed = state.speed
        bar.roles = state.roles_text()
        self._remind(state)
        for timer in timers.alerts():
            if timer.name in UPDATE_TIMERS and (
                timer.state == BREACHED or _snoozed(state, timer, host(self).service.clock.now())
            ):
                continue  # due and late are said by _remind, which honours a snooze
            key = (timer.name, timer.state, state.severity)
            alert = alert_of(timer)
            if key in self.announced or alert is None:
                continue
            self.announced.add(key)
            text, title, severity, timeout = alert
            if timer.escalate_to and state.roles:
                text += f" — {state.roles_text()}"  # who acts on it
            self.notify(text, title=title, severity=severity, timeout=timeout, markup=False)

    def _remind(self, state: IncidentState) -> None:
        """Say once when a status update is due, and once more at breach (not while
        the reminder is snoozed; a snooze that ends still leaves it to say)."""
        now = host(self).service.clock.now()
        for reminder in reminders(state, now):
            key = ("reminder", reminder.audience, reminder.kind, reminder.update.due.isoformat())
            if key in self.announced:
                continue
            self.announced.add(key)
            late = reminder.kind == "breach"
            self.notify(
                reminder.text(now) + " Compose it with s; z snoozes the reminder.",
                title="Update overdue" if late else "Update due",
                severity="error" if late else "warning",
                timeout=12 if late else 8,
                markup=False,
            )

    def relayout(self) -> None:
        """Widths changed: redraw the left column and re-wrap the checklist to fit."""
        if self.state is not None and self.playbook is not None:
            self.call_after_refresh(self.nav.rebuild)
            self.call_after_refresh(self.checklist.rebuild)

    # -------------------------------------------------------------- where the responder is

    def show_section(self, section: str) -> None:
        """Show ``section`` on the right, from its first open item."""
        self.section = section
        self.header.section = self.nav.section = self.checklist.section = section
        self._follow_highlight()

    def on_phase_nav_section_highlighted(self, message: PhaseNav.SectionHighlighted) -> None:
        self.show_section(message.section)

    @on(OptionList.OptionSelected, "#nav")
    def _section_chosen(self) -> None:
        self.checklist.focus()

    @on(OptionList.OptionHighlighted, "#checklist")
    def _follow_highlight(self) -> None:
        """The detail pane and the header follow the checklist's highlighted line."""
        self.detail.ident = self.checklist.highlighted_id
        step = self.checklist.highlighted_step()
        self.header.step = step.title if step is not None else ""

    def on_diagnostic_runs_changed(self, message: DiagnosticRuns.Changed) -> None:
        self.checklist.running = message.running

    # -------------------------------------------------------------- what was recorded

    def record(self, label: str, fn: Callable[[], Any], said: str = "") -> None:
        """Record a change on the store thread; show it, and ``said``, once it is on disk."""
        host(self).submit(label, fn, self, partial(ChangeRecorded, said=said))

    def on_change_recorded(self, message: ChangeRecorded) -> None:
        self.apply_state(message.state)
        if message.said:
            self.notify(message.said, markup=False)

    def on_item_recorded(self, message: ItemRecorded) -> None:
        state = message.state
        self.apply_state(state)
        if message.ticked:
            self.checklist.advance_from(message.ref)
        if state.phase != message.phase_before:
            window = state.phase_window()
            self.notify(
                f"The incident moved to phase {window.title if window else state.phase}. "
                "Ctrl+P, 'phase: make current' moves it back.",
                timeout=8,
                markup=False,
            )

    def choose_scenario(self, scenario: str) -> None:
        """Follow ``scenario``: its signs, queries and recovery join the list."""
        app = host(self)
        app.submit(
            "choose scenario",
            partial(app.service.choose_scenario, self.incident_id, scenario),
            self,
            partial(ScenarioFollowed, scenario),
        )

    def on_scenario_followed(self, message: ScenarioFollowed) -> None:
        self.apply_state(message.state)
        self.show_section(message.scenario)
        self.notify(
            f"Following scenario: {message.scenario}. Its signs, queries and recovery are in the list.",
            markup=False,
        )

    def check_drill(self, check: Callable[[], Card]) -> None:
        """Run a drill's data ``check`` (it records its answer) in a thread worker of
        the view, which outlives the scorecard; :class:`DrillChecked` bubbles up when it
        is done. One check at a time: a second F waits for the running one."""
        if self.checking:
            return
        self.checking = True
        self.run_worker(
            partial(post_outcome, self, check, DrillChecked, DrillCheckFailed),
            name="drill check",
            group="drill",
            thread=True,
            exit_on_error=False,
        )

    def on_drill_checked(self, message: DrillChecked) -> None:
        self.checking = False
        self.apply_state(message.card.state)

    def on_drill_check_failed(self, _message: DrillCheckFailed) -> None:
        self.checking = False

    def on_diagnostic_recorded(self, message: DiagnosticRecorded) -> None:
        payload = message.payload
        self.apply_state(message.state)
        verdict = str(payload["verdict"]).upper()
        self.notify(
            f"{message.diagnostic_id}: {verdict}. {payload.get('message') or shown_of(payload)}",
            severity="error" if verdict in ("FAIL", "ERROR") else "information",
            markup=False,
        )
