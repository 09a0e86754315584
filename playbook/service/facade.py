"""The service: everything the CLI and the app can do to an incident, in one object.

:class:`Service` holds a :class:`~playbook.service.context.Context` (the store, the
clock, the actor, where evidence and backups go) and hands it to the use cases, which
are plain functions in one module per job:

- :mod:`~playbook.service.incidents`: open, acknowledge, severity, phase, scenario,
  check, note, escalate, rename, resolve, close, and reading incidents back;
- :mod:`~playbook.service.status`: status messages and their templates;
- :mod:`~playbook.service.diagnostics`: prepare, execute and record a diagnostic;
- :mod:`~playbook.service.action_runs` and :mod:`~playbook.service.actions`: guarded
  actions, stage by stage;
- :mod:`~playbook.service.targets`: which targets an incident may reach;
- :mod:`~playbook.service.exports`: the timeline as Markdown or JSON.

Why a class that delegates, rather than one class made of mixins: a use case's
dependencies are then its arguments (the context) and its imports, which import-linter
can check; a mixin's are whatever ``self`` happens to offer, which is how the guarded
stages and the service came to import each other. Each method here is one line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playbook.core.clock import Clock, SystemClock
from playbook.core.state import IncidentState
from playbook.core.timers import Timers
from playbook.service import diagnostics, exports, incidents, roles, status, team
from playbook.service.context import (
    Context,
    Incident,
    default_actor,
    get,
    resolve_id,
)
from playbook.service.context import based_on as based_on_
from playbook.store import EventStore

if TYPE_CHECKING:
    from playbook.adapters.base import Progress
    from playbook.core.loader import LoadedPlaybook
    from playbook.core.model import Playbook
    from playbook.service.actions import GuardedRun, StageHook
    from playbook.service.diagnostics import PreparedRun
    from playbook.service.targets import Sandbox
    from playbook.targets import Target, Targets


class Service:
    """Incident use cases over an event store and a clock."""

    def __init__(
        self,
        store: EventStore,
        clock: Clock | None = None,
        actor: str | None = None,
        evidence_dir: Path | None = None,
    ) -> None:
        data_dir = getattr(store, "data_dir", None)
        evidence_dir = evidence_dir or (Path(data_dir) / "evidence" if data_dir else None)
        backup_dir = evidence_dir.parent / "backups" if evidence_dir is not None else None
        self.context = Context(
            store, clock or SystemClock(), actor or default_actor(), evidence_dir, backup_dir
        )
        """What every use case is given; the attributes below read and set it."""

    # ------------------------------------------------------------------ the context

    @property
    def store(self) -> EventStore:
        return self.context.store

    @property
    def clock(self) -> Clock:
        return self.context.clock

    @clock.setter
    def clock(self, clock: Clock) -> None:  # the app swaps in a steady clock
        self.context.clock = clock

    @property
    def actor(self) -> str:
        return self.context.actor

    @actor.setter
    def actor(self, actor: str) -> None:
        self.context.actor = actor

    @property
    def evidence_dir(self) -> Path | None:
        """Where full diagnostic results are saved (None: results are not saved)."""
        return self.context.evidence_dir

    @property
    def backup_dir(self) -> Path | None:
        """Where guarded actions save their backups (None: no action can apply)."""
        return self.context.backup_dir

    # ------------------------------------------------------------------ reading

    def incident_ids(self) -> list[str]:
        return self.context.store.incident_ids()

    def resolve_id(self, ref: str) -> str:
        """An incident id from the id itself or a unique part of it (e.g. its suffix)."""
        return resolve_id(self.context, ref)

    def get(self, ref: str) -> Incident:
        return get(self.context, ref)

    def incidents(self) -> list[IncidentState]:
        return incidents.incidents(self.context)

    def timers(self, state: IncidentState, now: datetime | None = None) -> Timers:
        return incidents.timers(self.context, state, now)

    def playbook_of(self, state: IncidentState) -> Playbook:
        """The playbook as it was when the incident opened (see :func:`incidents.playbook_of`)."""
        return incidents.playbook_of(state)

    # ------------------------------------------------------------------ an incident's life

    def open(
        self,
        playbook: LoadedPlaybook | str | Path | None,
        title: str,
        severity: str | None = None,
        triggers: Iterable[str] = (),
        drill: Mapping[str, Any] | None = None,
    ) -> IncidentState:
        """Open a new incident on a playbook (a drill when ``drill`` describes one)."""
        return incidents.open_incident(self.context, playbook, title, severity, triggers, drill)

    # ``based_on``: the value the responder saw (the app passes it); if another responder
    # changed it since, the change is refused with who set what, when
    # (:class:`~playbook.service.context.StaleChange`). None: decide on the log as it is.

    def acknowledge(self, ref: str, *, based_on: str | None = None) -> IncidentState:
        with based_on_("status", based_on):
            return incidents.acknowledge(self.context, ref)

    def change_severity(
        self, ref: str, level: str, reason: str, *, based_on: str | None = None
    ) -> IncidentState:
        with based_on_("severity", based_on):
            return incidents.change_severity(self.context, ref, level, reason)

    def enter_phase(self, ref: str, phase: str, *, based_on: str | None = None) -> IncidentState:
        with based_on_("phase", based_on):
            return incidents.enter_phase(self.context, ref, phase)

    def choose_scenario(self, ref: str, scenario: str) -> IncidentState:
        """Follow a scenario: its detection signs, investigation and recovery come into view."""
        return incidents.choose_scenario(self.context, ref, scenario)

    def check(self, ref: str, item: str) -> IncidentState:
        """Tick an item, or every item of a step (see :func:`incidents.check`)."""
        return incidents.check(self.context, ref, item)

    def uncheck(self, ref: str, item: str) -> IncidentState:
        return incidents.uncheck(self.context, ref, item)

    def note(self, ref: str, text: str) -> IncidentState:
        return incidents.note(self.context, ref, text)

    def escalate(self, ref: str, to: str | None = None, reason: str = "") -> IncidentState:
        return incidents.escalate(self.context, ref, to, reason)

    def resolve(self, ref: str, summary: str = "", *, based_on: str | None = None) -> IncidentState:
        with based_on_("status", based_on):
            return incidents.resolve(self.context, ref, summary)

    def rename(self, ref: str, title: str) -> IncidentState:
        """A new title; the old one stays in the timeline (see :func:`incidents.rename`)."""
        return incidents.rename(self.context, ref, title)

    def close(self, ref: str, *, based_on: str | None = None) -> IncidentState:
        with based_on_("status", based_on):
            return incidents.close(self.context, ref)

    def record_drill_check(self, ref: str, payload: dict[str, Any]) -> IncidentState:
        """Append a drill's fingerprint comparison (refused for a real incident)."""
        return incidents.record_drill_check(self.context, ref, payload)

    # ------------------------------------------------------------------ roles and cadence

    def assign_role(self, ref: str, role: str, person: str) -> IncidentState:
        """Record who holds ``role`` (see :func:`roles.assign_role`)."""
        return roles.assign_role(self.context, ref, role, person)

    def offer_handover(self, ref: str, role: str, to: str, brief: str = "") -> IncidentState:
        """Offer ``role`` to ``to``; it changes hands when they accept."""
        return roles.offer_handover(self.context, ref, role, to, brief)

    def accept_handover(self, ref: str, role: str, person: str | None = None) -> IncidentState:
        """``person`` (default: the actor) takes the role offered to them."""
        return roles.accept_handover(self.context, ref, role, person)

    def snooze_updates(
        self, ref: str, length: str, reason: str, audience: str = "all"
    ) -> IncidentState:
        """Quiet the update reminder for ``length``; the due time does not move."""
        return roles.snooze_updates(self.context, ref, length, reason, audience)

    def switch_updates(
        self, ref: str, on: bool, reason: str, audience: str = "all"
    ) -> IncidentState:
        """Expect status updates again, or no longer."""
        return roles.switch_updates(self.context, ref, on, reason, audience)

    # ------------------------------------------------------------------ status messages

    def template_dir(self, state: IncidentState) -> Path:
        """Where the incident's status templates are (see :func:`status.template_dir`)."""
        return status.template_dir(state)

    def status_variables(self, state: IncidentState, now: datetime | None = None) -> dict[str, str]:
        """The variables an incident fills in by itself."""
        return status.status_variables(self.context, state, now)

    def render_status(self, state: IncidentState, kind: str, values: Mapping[str, str]) -> str:
        """The text of status message ``kind`` for ``state``: preview and record alike."""
        return status.render_status(self.context, state, kind, values)

    def preview_status(self, ref: str, kind: str, values: Mapping[str, str]) -> str:
        """Render a status message without recording it."""
        return status.preview_status(self.context, ref, kind, values)

    def status(self, ref: str, kind: str, values: Mapping[str, str]) -> tuple[IncidentState, str]:
        """Render a status message and record its exact text."""
        return status.send_status(self.context, ref, kind, values)

    # ------------------------------------------------------------------ targets

    def targets_for(
        self,
        state: IncidentState | None,
        overrides: Sequence[str] = (),
        sandbox: Sandbox | None = None,
        *,
        serves: str | None = None,
        playbook_path: Path | None = None,
    ) -> Targets:
        """The targets a command on ``state``'s incident may use; a drill only its own
        sandbox's (see :func:`playbook.service.targets.targets_for`)."""
        # Imported here for start-up speed: reading the configuration (TOML, the trust
        # file) is not needed until a command reaches a target.
        from playbook.service.targets import targets_for

        return targets_for(state, overrides, sandbox, serves=serves, playbook_path=playbook_path)

    # ------------------------------------------------------------------ diagnostics

    def prepare_diagnostic(
        self,
        ref: str,
        diagnostic_id: str,
        given: Mapping[str, object],
        targets: Mapping[str, Target],
    ) -> PreparedRun:
        """Everything checked before a diagnostic runs; nothing is sent yet."""
        return diagnostics.prepare_diagnostic(self.context, ref, diagnostic_id, given, targets)

    def execute_diagnostic(
        self, prepared: PreparedRun, progress: Callable[[Progress], None] | None = None
    ) -> dict[str, Any]:
        """Run a prepared diagnostic; the evidence payload, whatever the outcome."""
        return diagnostics.execute_diagnostic(self.context, prepared, progress)

    def record_diagnostic(self, ref: str, payload: dict[str, Any]) -> IncidentState:
        """Append a run's evidence to the incident (also after it was resolved or closed)."""
        return diagnostics.record_diagnostic(self.context, ref, payload)

    def run_diagnostic(
        self,
        ref: str,
        diagnostic_id: str,
        given: Mapping[str, object],
        targets: Mapping[str, Target],
        progress: Callable[[Progress], None] | None = None,
    ) -> tuple[IncidentState, dict[str, Any]]:
        """Prepare, run and record a diagnostic: the state after, and the evidence."""
        return diagnostics.run_diagnostic(
            self.context, ref, diagnostic_id, given, targets, progress
        )

    # ------------------------------------------------------------------ guarded actions
    # The action modules are imported when an action starts: they need the playbook
    # model (pydantic) and the writers, which the CLI and the app's first frame must not
    # wait for (tests/test_architecture.py holds `playbook.service` to that).

    def start_action(
        self,
        ref: str,
        action_id: str,
        given: Mapping[str, object],
        targets: Mapping[str, Target],
        progress: Callable[[Progress], None] | None = None,
        hook: StageHook | None = None,
    ) -> GuardedRun:
        """A new run of a guarded action, checked and ready for its dry run."""
        from playbook.service import action_runs

        self.require_online("a guarded action")
        return action_runs.start(self.context, ref, action_id, given, targets, progress, hook)

    def resume_action(
        self,
        ref: str,
        run_id: str,
        targets: Mapping[str, Target],
        progress: Callable[[Progress], None] | None = None,
        hook: StageHook | None = None,
    ) -> GuardedRun:
        """An earlier run of a guarded action, rebuilt from its events to roll it back."""
        from playbook.service import action_runs

        self.require_online("a guarded action's rollback")
        return action_runs.resume(self.context, ref, run_id, targets, progress, hook)

    def record_action_stage(self, ref: str, payload: dict[str, Any]) -> IncidentState:
        """Append one stage of a guarded action (also after the incident was resolved)."""
        from playbook.service import action_runs

        return action_runs.record_stage(self.context, ref, payload)

    # ------------------------------------------------------------------ team mode

    def require_online(self, what: str) -> None:
        """Refuse (:class:`~playbook.service.team.Offline`) unless the store is local, or
        shared, reachable and with nothing unshared: the gate before every outside effect
        (a guarded action, a published status message). See :func:`team.require_online`."""
        team.require_online(self.context.store, what)

    def offline_line(self, reachable: bool = True) -> str | None:
        """``offline: 3 events not yet shared``, or None (see :func:`team.offline_line`)."""
        return team.offline_line(self.context.store, reachable)

    # ------------------------------------------------------------------ export

    def export(self, ref: str, fmt: str, tz: tzinfo | None = None) -> str:
        """The incident's timeline as ``markdown`` or ``json``."""
        return exports.export(self.context, ref, fmt, tz)
