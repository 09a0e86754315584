"""The command palette (Ctrl+P): every action by a name that reads "noun: verb".

The app offers these as system commands: "incident: open new" outside an incident, and
inside one the incident's actions, its scenarios and its phases. Each command calls the
same action as its key, so the palette and the keys can never disagree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Protocol

from textual.app import SystemCommand

if TYPE_CHECKING:
    from playbook.core.model import Playbook


class IncidentActions(Protocol):
    """What the palette needs of the incident screen: its actions, and what it shows."""

    @property
    def is_drill(self) -> bool: ...
    @property
    def playbook(self) -> Playbook | None: ...
    def action_drill_check(self) -> None: ...
    def action_briefing(self) -> None: ...
    def action_ack(self) -> None: ...
    def action_severity(self) -> None: ...
    def action_escalate(self) -> None: ...
    def action_rename(self) -> None: ...
    def action_resolve(self) -> None: ...
    def action_close_incident(self) -> None: ...
    def action_timeline(self) -> None: ...
    def action_export(self, fmt: str = "markdown") -> None: ...
    def action_status(self, kind: str = "") -> None: ...
    def choose_scenario(self, scenario: str) -> None: ...
    def action_make_current(self, phase: str) -> None: ...
    def action_phase(self, phase: str) -> None: ...


def start_commands(new_incident: Callable[[], None]) -> Iterable[SystemCommand]:
    """Outside an incident: start one."""
    yield SystemCommand("incident: open new", "Start a new incident", new_incident)


def incident_commands(
    screen: IncidentActions, add_note: Callable[[], None]
) -> Iterable[SystemCommand]:
    """Inside an incident: its actions (the drill's first, in a drill), then its scenarios
    and phases once its playbook is read. ``add_note`` is the app's note action (n works
    everywhere, so it belongs to the app)."""
    if screen.is_drill:
        yield SystemCommand(
            "drill: check data and show scorecard",
            "Compare the data with its fingerprint (F)",
            screen.action_drill_check,
        )
        yield SystemCommand(
            "drill: show the briefing",
            "What happened, and what stands in for what",
            screen.action_briefing,
        )
    yield SystemCommand("incident: acknowledge", "Stop the response timer", screen.action_ack)
    yield SystemCommand(
        "incident: change severity",
        "Escalate or downgrade, with a reason",
        screen.action_severity,
    )
    yield SystemCommand(
        "incident: escalate", "Record an escalation to the next person", screen.action_escalate
    )
    yield SystemCommand("incident: add note", "A note on the timeline (n)", add_note)
    yield SystemCommand(
        "incident: rename",
        "A new title; the old one stays in the timeline (T)",
        screen.action_rename,
    )
    yield SystemCommand("incident: resolve", "Stop the resolution timer", screen.action_resolve)
    yield SystemCommand(
        "incident: close", "After the post-incident work", screen.action_close_incident
    )
    yield SystemCommand(
        "incident: show timeline", "Every event, with filters", screen.action_timeline
    )
    yield SystemCommand(
        "incident: export timeline", "Markdown for the review", screen.action_export
    )
    yield SystemCommand(
        "incident: export timeline as JSON",
        "Every event, loadable",
        partial(screen.action_export, "json"),
    )
    for kind in ("initial", "progress", "resolution"):
        yield SystemCommand(
            f"status: compose {kind} update",
            "Status-page message",
            partial(screen.action_status, kind),
        )
    playbook = screen.playbook
    if playbook is None:
        return
    for scenario in playbook.scenarios:
        yield SystemCommand(
            f"scenario: follow {scenario.title}",
            "Bring its checks into view",
            partial(screen.choose_scenario, scenario.id),
        )
    for phase in playbook.phases:
        yield SystemCommand(
            f"phase: make current {phase.title}",
            "Record that the response is in this phase",
            partial(screen.action_make_current, phase.id),
        )
        yield SystemCommand(
            f"phase: show {phase.title}",
            f"Stage {phase.stage}",
            partial(screen.action_phase, phase.id),
        )
