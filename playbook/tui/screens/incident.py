"""The incident screen: the incident's keys, over a view of the incident.

:class:`playbook.tui.widgets.incident_view.IncidentView` shows the incident and keeps it
current; this screen maps each key to what it does: a dialog or a screen that records a
change and returns the incident as recorded through ``dismiss()`` (shown by the view), a
diagnostic or a guarded action on the highlighted line, the drill's data check.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual import on
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, OptionList

from playbook.core.state import IncidentState
from playbook.tui.commands import incident_commands
from playbook.tui.follow import FollowsIncident
from playbook.tui.host import host
from playbook.tui.messages import DiagnosticRecorded, DrillChecked, DrillCheckFailed
from playbook.tui.screens.action import ActionScreen
from playbook.tui.screens.base import HelpText
from playbook.tui.screens.composer import ComposerScreen
from playbook.tui.screens.diagnostics import ResultScreen, start_diagnostic
from playbook.tui.screens.dialogs import (
    CopyPicker,
    EscalateDialog,
    ExportDialog,
    RenameDialog,
    ResolvedDialog,
    ResolveDialog,
    SeverityDialog,
)
from playbook.tui.screens.drill import (
    NO_SANDBOX,
    BriefingScreen,
    ScorecardScreen,
    check_data,
    drill_help,
)
from playbook.tui.screens.roles import RolesDialog, SnoozeDialog
from playbook.tui.screens.timeline import TimelineScreen
from playbook.tui.widgets.checklist import Checklist
from playbook.tui.widgets.incident_view import IncidentView
from playbook.tui.widgets.phase_nav import PhaseNav
from playbook.tui.widgets.sections import post_incident_first, step_of
from playbook.tui.widgets.step_detail import copy_choices

if TYPE_CHECKING:
    from playbook.core.model import Playbook
    from playbook.service import PreparedRun


class IncidentScreen(FollowsIncident, HelpText, Screen[None]):
    """The incident: timers on top, phases on the left, the checklist and its details."""

    HELP = (
        "Left column: the assessment, the phases grouped into Containment, Investigation, "
        "Recovery and Restoration, the scenarios and the post-incident work, with progress "
        "(▶ marks the current phase). Enter or Tab moves to the checklist.\n"
        "Right, top: the checklist of the chosen section; Space ticks the highlighted item "
        "(only when the checklist has focus). An item shows ticked only after it is written "
        "to disk. Ticking an item of a later phase moves the incident into that phase.\n"
        "Right, bottom: the highlighted step's guidance, its diagnostics (what would run, on "
        "which target, and what healthy looks like) and recovery commands; c copies one.\n"
        "Diagnostics (⚙ lines under a step, with their last verdict): d runs the highlighted "
        "one (asking for its parameters), D runs all of the step's with their last or default "
        "parameters, k stops running ones, Enter opens the last result as a table. They only "
        "read, run in the background with progress, and each result is saved as evidence. "
        "Guarded actions (⚡ lines) are the only way to change data: g (or Enter) shows the "
        "dry run, makes the backup, then asks you to type the target's name before it locks, "
        "applies and verifies; if that fails it offers rollback from the backup, and G rolls "
        "back the highlighted action's latest run later. "
        "Targets come from playbook.toml or `playbook run --target name=URI`.\n"
        "Roles: o assigns a role, offers a handover or accepts one; z snoozes the status-"
        "update reminder with a reason (the due time does not move).\n"
        "Other keys: t timeline, x export, T renames the incident, Esc back to the "
        "incident list, Ctrl+Q quit. r on a resolved incident shows what is left to do.\n"
        "Timers: response and resolution (elapsed/target), the phase window, and when the "
        "next status update is due. When one warns or is breached, a message names who "
        "to escalate to next; e records the escalation.\n"
        "Ctrl+P lists every action, e.g. 'incident: export timeline'.\n"
        "Team: what other responders (or another terminal) record shows within a second, "
        "with a note saying who did it. On a shared store that cannot be reached, the header "
        "starts with 'offline: N events not yet shared': work goes on and is shared when "
        "the store answers; guarded actions wait until then. A severity change or a "
        "resolution someone else made first is refused and shown; Enter redoes yours."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle", "Tick", id="incident.toggle"),
        # Only in a drill (check_action): first, so the footer shows it at 80 columns.
        Binding("F", "drill_check", "Check data", id="incident.drill_check"),
        Binding("a", "ack", "Ack", id="incident.ack"),
        Binding("v", "severity", "Sev", id="incident.severity"),
        Binding("e", "escalate", "Escal", id="incident.escalate"),
        Binding("s", "status", "Status", id="incident.status"),
        Binding("r", "resolve", "Resolve", id="incident.resolve"),
        Binding("d", "diagnose", "Diagnose", id="incident.diagnose"),
        Binding("D", "diagnose_all", "Run all", id="incident.diagnose_all", show=False),
        Binding("g", "guarded_action", "Act", id="incident.act"),
        Binding("G", "roll_back", "Roll back", id="incident.rollback", show=False),
        Binding("k", "stop_diagnostics", "Stop runs", id="incident.stop", show=False),
        Binding("t", "timeline", "Timeline", id="incident.timeline", show=False),
        Binding("c", "copy", "Copy", id="incident.copy", show=False),
        Binding("x", "export", "Export", id="incident.export", show=False),
        Binding("T", "rename", "Rename", id="incident.rename", show=False),
        Binding("o", "roles", "Roles", id="incident.roles"),
        Binding("z", "snooze", "Snooze", id="incident.snooze"),
        Binding("escape", "leave", "Incidents", id="incident.leave", show=False),
    ]

    def __init__(self, incident_id: str, state: IncidentState | None = None) -> None:
        super().__init__()
        self.view = IncidentView(incident_id, state)

    def compose(self) -> ComposeResult:
        yield self.view
        yield Footer()

    @property
    def incident_id(self) -> str:
        return self.view.incident_id

    @property
    def state(self) -> IncidentState | None:
        """The incident as last read (None until it is)."""
        return self.view.state

    @property
    def playbook(self) -> Playbook | None:
        """The playbook the incident opened with (None until it is rebuilt)."""
        return self.view.playbook

    @property
    def section(self) -> str:
        """The section shown on the right."""
        return self.view.section

    @property
    def running(self) -> dict[str, PreparedRun]:
        """Diagnostics running now, by id."""
        return self.view.runs.running

    @property
    def checklist(self) -> Checklist:
        return self.view.checklist

    def show_recorded(self, state: IncidentState | None) -> None:
        """Show the incident as a dialog recorded it (None: it recorded nothing)."""
        if state is not None:
            self.view.apply_state(state)

    def on_incident_view_shown(self, message: IncidentView.Shown) -> None:
        state = message.state
        if message.first or state.drill is not None:
            self._drill_shown(state, message.first)
        if message.first:  # an edited playbook file is said once, not applied silently
            from playbook.service.upgrade import file_changed

            notice = file_changed(state)
            if notice:
                self.notify(notice, title="Playbook changed", timeout=15)
        for screen in self.app.screen_stack:  # the composer and timeline opened from here
            if isinstance(screen, (ComposerScreen, TimelineScreen)) and screen.state.id == state.id:
                screen.state = state

    # -------------------------------------------------------------- focus and size

    _focus_on_leave: Widget | None = None
    """The widget that had focus when another screen covered this one."""

    def on_screen_suspend(self) -> None:
        self._focus_on_leave = self.focused

    def on_screen_resume(self) -> None:
        """Back from the timeline, a dialog or help: focus where it was, highlighted.

        Textual keeps a screen's focus while it is covered, unless something took it
        meanwhile (the terminal losing focus, a rebuilt widget); then it fell on the
        first focusable widget or nowhere, with no highlight, and keys like Space did
        nothing. This runs before Textual's own resume handler (it walks the MRO from
        here), so Textual's fallback only applies when this finds nothing either.
        """
        wanted, self._focus_on_leave = self._focus_on_leave, None
        if self.focused is None and not host(self).too_small:
            if wanted is None or not wanted.is_attached or not wanted.focusable:
                wanted = self.checklist
            self.set_focus(wanted, scroll_visible=False)
        focused = self.focused
        if isinstance(focused, (PhaseNav, Checklist)) and focused.highlighted is None:
            # Rebuilt, each list highlights what it would on arrival: the section shown,
            # the first open item.
            focused.rebuild()

    def on_resize(self) -> None:
        if not host(self).too_small:
            self.view.relayout()

    # -------------------------------------------------------------- the checklist

    @on(OptionList.OptionSelected, "#checklist")
    def _line_chosen(self, event: OptionList.OptionSelected) -> None:
        ident = event.option.id or ""
        if ident.startswith("scenario:"):
            self.choose_scenario(ident.split(":", 1)[1])
        elif ident.startswith("item:"):
            self.action_toggle()
        elif ident.startswith("diag:"):
            self.show_last_result(ident.rsplit(":", 1)[1])
        elif ident.startswith("act:"):
            self.start_action(ident.rsplit(":", 1)[1])

    def action_phase(self, phase: str) -> None:
        self.view.show_section(phase)

    def choose_scenario(self, scenario: str) -> None:
        self.view.choose_scenario(scenario)

    def action_toggle(self) -> None:
        if self.state is None:
            return
        if self.focused is not self.checklist:
            # Space on the left column chooses the section; it never ticks what is unseen.
            self.checklist.focus()
            return
        ident = self.checklist.highlighted_id
        if ident.startswith("scenario:"):
            self.choose_scenario(ident.split(":", 1)[1])
        elif ident.startswith("item:"):
            self.checklist.toggle()
        else:
            self.notify("Highlight an item to tick it (the headings are steps).", markup=False)

    def action_copy(self) -> None:
        located = step_of(self.checklist.highlighted_id)
        if self.playbook is None or located is None:
            self.notify("Highlight a step or item first.", markup=False)
            return
        step = self.checklist.highlighted_step()
        if step is None:
            return
        choices = copy_choices(self.playbook, step)
        if not choices:
            self.notify("This step has no commands or queries to copy.", markup=False)
            return
        self.app.push_screen(CopyPicker(choices))

    # -------------------------------------------------------------- diagnostics

    def action_diagnose(self) -> None:
        one, _every = self.checklist.highlighted_diagnostics()
        if one is None:
            self.notify("This step has no diagnostics.", markup=False)
            return
        self.start_diagnostic(one, ask=True)

    def action_diagnose_all(self) -> None:
        _one, every = self.checklist.highlighted_diagnostics()
        runnable = [d for d in every if self.playbook and not self.playbook.diagnostics[d].writes]
        if not runnable:
            self.notify("This step has no diagnostics that can run.", markup=False)
            return
        for diag_id in runnable:
            self.start_diagnostic(diag_id, ask=False)

    def action_stop_diagnostics(self) -> None:
        self.view.runs.stop()

    def start_diagnostic(self, diag_id: str, ask: bool) -> None:
        """Ask for parameters (or take the last ones), then run it in the background."""
        if self.playbook is not None and self.state is not None:
            start_diagnostic(self.app, self.view.runs, self.playbook, diag_id, ask)

    def on_diagnostic_recorded(self, message: DiagnosticRecorded) -> None:
        if message.show:  # the view has shown the incident with it already
            self.app.push_screen(ResultScreen(message.payload))

    def show_last_result(self, diag_id: str) -> None:
        last = self.state.last_runs().get(diag_id) if self.state else None
        if last is None:
            self.start_diagnostic(diag_id, ask=True)
        else:
            self.app.push_screen(ResultScreen(last.payload))

    # -------------------------------------------------------------- guarded actions

    def _highlighted_action(self) -> str | None:
        chosen = self.checklist.highlighted_action()
        if chosen is None:
            self.notify("This step has no guarded action.", markup=False)
        return chosen

    def action_guarded_action(self) -> None:
        chosen = self._highlighted_action()
        if chosen is not None:
            self.start_action(chosen)

    def action_roll_back(self) -> None:
        """Roll back the latest run of the highlighted action from its backup."""
        chosen = self._highlighted_action()
        if chosen is not None and self.state is not None:
            ActionScreen.roll_back(self.app, self.state, chosen, self._reload_after)

    def start_action(self, action_id: str) -> None:
        """Open the guarded action's screen: dry run and backup start at once."""
        if self.playbook is not None and self.state is not None:
            ActionScreen.open(self.app, self.state, self.playbook, action_id, self._reload_after)

    def _reload_after(self, _result: None) -> None:
        self.view.reload()  # the run or the check changed the incident

    # -------------------------------------------------------------- drill

    @property
    def is_drill(self) -> bool:
        """True when this incident is a drill (known before it is read in `playbook drill`)."""
        if self.state is not None:
            return self.state.drill is not None
        return host(self).sandbox_for(self.incident_id) is not None

    def shows_key(self, action: str) -> bool:
        """False for a drill's key outside a drill: it is neither in the footer nor in help."""
        return self.is_drill or action != "drill_check"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.shows_key(action):
            return False
        return super().check_action(action, parameters)

    def help_extra(self) -> Text | None:
        """What help adds for a drill: its keys, and what is not real."""
        return drill_help(self.state)

    def _drill_shown(self, state: IncidentState, first: bool) -> None:
        """Mark the screens of a drill, and brief the responder the first time it opens."""
        app = host(self)
        if first:
            self.refresh_bindings()  # the drill's key shows only now that it is known
        app.refresh_drill_marks()
        if state.drill is not None and state.id not in app.briefed:
            app.briefed.add(state.id)
            self.action_briefing()

    def action_briefing(self) -> None:
        if self.state is not None and self.state.drill is not None:
            sandbox = host(self).sandbox_for(self.state.id)
            self.app.push_screen(BriefingScreen(self.state, sandbox))

    def action_drill_check(self) -> None:
        """Compare the drill's data with its fingerprint, record it, show the scorecard."""
        state, app = self.state, host(self)
        if state is None:
            return
        if state.drill is None:
            self.notify("This incident is not a drill: it has no fingerprint.", markup=False)
            return
        card = ScorecardScreen.shown(self.app, state.id)
        if card is None:
            card = ScorecardScreen(state.id, state.drill.title)
            self.app.push_screen(card, self._reload_after)
        sandbox = app.sandbox_for(state.id)
        if sandbox is None:
            card.show_recorded(NO_SANDBOX)  # honest: no sandbox, no new check
            return
        card.show_pending()
        self.view.check_drill(partial(check_data, sandbox, app.service, state.id))

    def on_drill_checked(self, message: DrillChecked) -> None:
        ScorecardScreen.report(self.app, message.card)  # the view shows the incident

    def on_drill_check_failed(self, message: DrillCheckFailed) -> None:
        ScorecardScreen.report_failure(self.app, self.incident_id, message.error)

    # -------------------------------------------------------------- changes to the incident

    def action_ack(self) -> None:
        if self.state is not None and self.state.acknowledged_at is not None:
            self.notify("Already acknowledged.", markup=False)
            return
        service = host(self).service
        self.view.record(
            "acknowledge",
            partial(service.acknowledge, self.incident_id),
            "Acknowledged: response begun.",
        )

    def action_make_current(self, phase: str) -> None:
        service = host(self).service
        self.view.record(
            "phase",
            partial(service.enter_phase, self.incident_id, phase),
            f"Current phase: {phase}.",
        )

    def action_close_incident(self) -> None:
        service = host(self).service
        self.view.record(
            "close",
            partial(service.close, self.incident_id),
            "Closed. Export the timeline for the review (x).",
        )

    def action_severity(self) -> None:
        if self.state is not None and self.playbook is not None:
            self.app.push_screen(SeverityDialog(self.state, self.playbook), self.show_recorded)

    def action_escalate(self) -> None:
        if self.state is not None:
            self.app.push_screen(EscalateDialog(self.state), self.show_recorded)

    def action_roles(self) -> None:
        if self.state is not None:
            self.app.push_screen(RolesDialog(self.state), self.show_recorded)

    def action_snooze(self) -> None:
        if self.state is not None:
            self.app.push_screen(SnoozeDialog(self.state), self.show_recorded)

    def action_resolve(self) -> None:
        if self.state is None:
            return
        if self.state.resolved_at is not None:
            self.app.push_screen(ResolvedDialog(self.state), self._after_resolved)
            return
        self.app.push_screen(ResolveDialog(self.state), self._resolved)

    def _resolved(self, state: IncidentState | None) -> None:
        if state is not None:
            self.view.apply_state(state)
            self.view.show_section(post_incident_first(state))  # what is left to do

    def _after_resolved(self, choice: str | None) -> None:
        """Do what was chosen in the resolved incident's dialog, now that it is gone."""
        if choice == "post":
            self.show_post_incident()
        elif choice == "export":
            self.action_export()
        elif choice == "close":
            self.action_close_incident()

    def show_post_incident(self) -> None:
        """Show the first post-incident section, its checklist focused."""
        if self.state is not None:
            self.view.show_section(post_incident_first(self.state))
        self.checklist.focus()

    def action_rename(self) -> None:
        if self.state is None:
            return
        if self.state.closed_at is not None:
            self.notify(
                "The incident is closed: its title stays as it is.", severity="error", markup=False
            )
            return
        self.app.push_screen(RenameDialog(self.state), self.show_recorded)

    def action_status(self, kind: str = "") -> None:
        if self.state is None:
            return
        kind = kind or ComposerScreen.next_kind(self.state)
        self.app.push_screen(ComposerScreen(self.state, kind), self.show_recorded)

    def action_timeline(self) -> None:
        if self.state is not None:
            self.app.push_screen(TimelineScreen(self.incident_id, self.state))

    def action_export(self, fmt: str = "markdown") -> None:
        if self.state is not None:
            self.app.push_screen(ExportDialog(self.incident_id, fmt))

    def action_leave(self) -> None:
        self.app.clear_notifications()  # this incident's toasts do not belong on the next screen
        self.app.pop_screen()

    def palette_commands(self) -> Iterable[SystemCommand]:
        """This incident's commands for the palette (see :mod:`playbook.tui.commands`)."""
        return incident_commands(self, host(self).action_note)
