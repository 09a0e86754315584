"""The state of an incident: a pure fold over its events.

(Over 600 lines: the state is one dataclass and its fold, and every reader (timers,
exports, the app) needs the record types beside it; splitting them would scatter what
one event adds to the state across modules.)

Nothing here is stored. The ``opened`` event carries a snapshot of the playbook as it
was when the incident opened (targets, phases, checklist), so an incident folds the
same way on any machine, and a later edit of the playbook file cannot move a running
incident's targets.

An event that cannot be folded (its JSON is broken, its payload fails its type's schema,
or its type is one this version does not know) is skipped and recorded in
:attr:`IncidentState.unreadable`, so ``show``, the app and the exports still work and can
name it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from playbook.core import events as ev
from playbook.core import postmortem
from playbook.core.durations import MAX_TARGET
from playbook.core.events import Event
from playbook.core.publications import Publication, publish_intended, publish_result


@dataclass(frozen=True)
class Unreadable:
    """An event the fold skipped, and why; or, with ``kept``, one it folded although a
    value in it is not one this incident knows (an ``opened`` event's severity that its
    playbook has no level for: the incident is still shown, without the targets)."""

    seq: int
    type: str
    why: str
    kept: bool = False

    def describe(self) -> str:
        what = f"event {self.seq}" if self.seq else "an event without a valid sequence number"
        if self.kept:
            return f"{what} ({self.type}) was read, but {self.why}"
        return f"{what} ({self.type}) is unreadable and was skipped: {self.why}"


class _NotFoldable(ValueError):
    """A value the fold relies on is not one the incident knows; the event is skipped."""


@dataclass(frozen=True)
class ScheduleStep:
    """One step of a level's update schedule, in seconds (see
    :class:`playbook.core.model.UpdateStep`)."""

    within: int | None = None
    every: int | None = None
    until: int | None = None


@dataclass(frozen=True)
class LevelTargets:
    """A severity level's targets in seconds, as snapshotted at opening."""

    id: str
    name: str
    response: int | None
    """None: the level sets no response target (no timer)."""
    resolution: int | None
    status_update_every: int
    """The first ``every`` of the external schedule, 0 when there is none (kept for
    readers that knew only one cadence)."""
    notify: str = "page"
    """page, ticket or none."""
    escalation: tuple[str, ...] | None = None
    """The level's own escalation path; None: the policy's."""
    updates: dict[str, tuple[ScheduleStep, ...]] = field(default_factory=dict)
    """Audience (external, internal) -> its update schedule; absent: no updates due."""


@dataclass(frozen=True)
class PhaseWindow:
    """A phase's window, in seconds from the incident's opening."""

    id: str
    title: str
    stage: str
    starts: int
    ends: int


@dataclass(frozen=True)
class SeverityPeriod:
    level: str
    since: datetime
    reason: str
    actor: str


@dataclass(frozen=True)
class Note:
    at: datetime
    actor: str
    text: str
    seq: int = 0
    """The note's event (who held the scribe role then: :meth:`IncidentState.holder_at`)."""


@dataclass(frozen=True)
class StatusMessage:
    at: datetime
    actor: str
    template: str
    status: str
    text: str
    audience: str = "external"
    """Who the template was for (its ``audience`` in the snapshot)."""


@dataclass(frozen=True)
class RoleChange:
    """Someone took a role (assigned, or by accepting a handover), or it was released."""

    at: datetime
    actor: str
    role: str
    person: str
    """Empty when the role was released."""
    previous: str
    how: str
    """``assigned`` or ``handover``."""
    seq: int = 0
    """The event that made the change (ordering by it, not by time: two events may share
    a moment)."""


@dataclass
class Handover:
    """A role offered from one person to another; ``accepted_at`` once they took it."""

    at: datetime
    actor: str
    role: str
    from_person: str
    to_person: str
    brief: str = ""
    accepted_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "role": self.role,
            "from": self.from_person,
            "to": self.to_person,
            "brief": self.brief,
            "offered_at": self.at.isoformat(),
            "offered_by": self.actor,
            "accepted_at": self.accepted_at.isoformat() if self.accepted_at else None,
        }


@dataclass(frozen=True)
class Snooze:
    at: datetime
    actor: str
    audience: str
    until: datetime
    reason: str


@dataclass(frozen=True)
class UpdatesSwitch:
    at: datetime
    actor: str
    on: bool
    audience: str
    """``all``, ``external`` or ``internal``."""
    reason: str


@dataclass(frozen=True)
class Rename:
    """The title changed: what it was, what it became, who changed it and when."""

    at: datetime
    actor: str
    old: str
    new: str


@dataclass(frozen=True)
class Escalation:
    at: datetime
    actor: str
    to: str
    reason: str


@dataclass(frozen=True)
class DiagnosticRun:
    """A diagnostic that was run, as its evidence event recorded it."""

    seq: int
    at: datetime
    actor: str
    diagnostic: str
    verdict: str
    payload: dict[str, Any]
    """The whole evidence: target, parameters, numbers, checks, first rows, file, SHA-256."""


STAGES = ("dry_run", "backup", "confirm", "lock", "apply", "verify", "rollback", "unlock")
"""A guarded action's stages, in the order they run."""


@dataclass
class ActionRun:
    """One run of a guarded action, as far as its stage events go."""

    run: str
    action: str
    target: str
    stages: list[dict[str, Any]] = field(default_factory=list)
    """Every stage event's payload, oldest first."""

    @property
    def last(self) -> dict[str, Any]:
        return self.stages[-1] if self.stages else {}

    def stage(self, name: str) -> dict[str, Any] | None:
        """The latest event of stage ``name``."""
        return next((s for s in reversed(self.stages) if s.get("stage") == name), None)

    def who_ran(self) -> list[tuple[str, str]]:
        """Each stage as ``(stage in words, who ran it)``, in order; a stage's events by
        one person (started, then done) count once. In team mode the dry run and the apply
        may be different responders'."""
        out: list[tuple[str, str]] = []
        for s in self.stages:
            step = (str(s.get("stage", "")).replace("_", " "), str(s.get("actor", "")))
            if not out or out[-1] != step:
                out.append(step)
        return out

    @property
    def backup(self) -> dict[str, Any] | None:
        """The backup this run made (file, SHA-256, size), once it was recorded done."""
        found = self.stage("backup")
        return found if found and found.get("outcome") == "done" else None

    @property
    def status(self) -> str:
        """Where the run stands, in words: ``applied``, ``rolled back``, ``interrupted
        during apply`` (a ``started`` with nothing after it), ``apply failed``, …"""
        last = self.last
        stage, outcome = last.get("stage", ""), last.get("outcome", "")
        if stage == "unlock":
            before = [s for s in self.stages if s.get("stage") not in ("unlock", "lock")]
            last = before[-1] if before else last
            stage, outcome = last.get("stage", ""), last.get("outcome", "")
        if outcome == "started":
            return f"interrupted during {stage.replace('_', ' ')}"
        if stage == "rollback" and outcome == "done":
            return "rolled back"
        if stage == "verify" and outcome == "done":
            return "applied and verified"
        if stage == "apply" and outcome == "done":
            return "applied"
        if outcome in ("failed", "cancelled") and last.get("wrote") is False:
            ended = "cancelled" if outcome == "cancelled" else "stopped"
            return f"{stage.replace('_', ' ')} {ended}, nothing left to undo"
        if outcome in ("failed", "refused", "cancelled"):
            return f"{stage.replace('_', ' ')} {outcome}"
        return f"{stage.replace('_', ' ')} done"

    @property
    def wrote(self) -> bool:
        """Whether the run wrote (or may have written) anything: its apply began and did
        not end saying it wrote nothing. A run that wrote nothing has nothing to roll
        back: "rolling back" would put its backup over whatever is there now."""
        last_apply = self.stage("apply")
        return last_apply is not None and last_apply.get("wrote", True) is not False

    @property
    def can_roll_back(self) -> bool:
        """A backup exists and the run wrote (or may have written) and was not rolled back."""
        rolled = self.stage("rollback")
        return (
            self.backup is not None
            and self.wrote
            and not (rolled and rolled.get("outcome") == "done")
        )


@dataclass(frozen=True)
class DrillInfo:
    """What marks an incident as a drill: set once, by its ``opened`` event."""

    title: str
    """The scenario rehearsed, e.g. "The rebuild script deleted every index"."""
    speed: float
    """How many times faster than real time the incident's clock runs (1 = real time)."""
    services: dict[str, str]
    """Target name -> what the sandbox gave it ("redis-server 7.2 (sandbox)",
    "mongomock: a MongoDB stand-in, not a real server")."""
    fingerprint: dict[str, Any]
    """Target name -> the fingerprint of its data before the fault was injected."""
    setup: dict[str, Any]
    """Figures of the set-up: seconds to start the sandbox, load the data, inject the fault."""
    source: str = ""
    """Which seed or real incident the drill is shaped like."""
    briefing: str = ""
    """What the responder was told when the drill started."""


@dataclass(frozen=True)
class DrillCheck:
    """One comparison of a drill's data with the fingerprint taken before the fault."""

    at: datetime
    actor: str
    restored: bool
    """True when every fingerprinted target's data is as it was before the fault."""
    targets: dict[str, Any]
    """Target name -> expected and found (counts, SHA-256, a few differing keys)."""


@dataclass
class IncidentState:
    """Everything known about an incident, folded from its events."""

    id: str
    title: str = ""
    """The title now (the last rename's, else the one it was opened with)."""
    renames: list[Rename] = field(default_factory=list)
    """Every change of title, oldest first."""
    playbook_id: str = ""
    playbook_title: str = ""
    playbook_sha256: str = ""
    playbook_path: str = ""
    service: str = ""
    snapshot: dict[str, Any] = field(default_factory=dict)
    levels: dict[str, LevelTargets] = field(default_factory=dict)
    phases: list[PhaseWindow] = field(default_factory=list)
    sections: list[dict[str, Any]] = field(default_factory=list)
    """The checklist grouped by section and step, as snapshotted at opening."""
    checklist: dict[str, str] = field(default_factory=dict)
    """Every item ref -> its text."""
    escalation_path: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    severity: str = ""
    severity_history: list[SeverityPeriod] = field(default_factory=list)
    opened_at: datetime | None = None
    acknowledged_at: datetime | None = None
    acknowledged_severity: str = ""
    resolved_at: datetime | None = None
    resolved_severity: str = ""
    resolution_summary: str = ""
    closed_at: datetime | None = None
    phase: str = ""
    phase_history: list[tuple[str, datetime]] = field(default_factory=list)
    done: dict[str, tuple[datetime, str]] = field(default_factory=dict)
    notes: list[Note] = field(default_factory=list)
    messages: list[StatusMessage] = field(default_factory=list)
    escalations: list[Escalation] = field(default_factory=list)
    scenarios: list[str] = field(default_factory=list)
    """Scenarios the responders chose to follow, in the order chosen."""
    runs: list[DiagnosticRun] = field(default_factory=list)
    """Diagnostics run, oldest first."""
    actions: dict[str, ActionRun] = field(default_factory=dict)
    """Guarded action runs by run id, oldest first."""
    drill: DrillInfo | None = None
    """Set when the incident is a drill on a sandbox, never for a real incident."""
    drill_checks: list[DrillCheck] = field(default_factory=list)
    """Comparisons of the drill's data with its fingerprint, oldest first."""
    publications: dict[str, Publication] = field(default_factory=dict)
    """Messages published outside the terminal, by idempotency key, oldest first."""
    actors: list[str] = field(default_factory=list)
    last_seq: int = 0
    last_event_at: datetime | None = None
    unknown_events: int = 0
    """Events of a type this version does not know (also listed in ``unreadable``)."""
    unreadable: list[Unreadable] = field(default_factory=list)
    """Events skipped because they cannot be read, oldest first."""
    roles: dict[str, str] = field(default_factory=dict)
    """Role id -> who holds it now (plain data: the postmortem export reads it)."""
    role_names: dict[str, str] = field(default_factory=dict)
    """Role id -> its name, as the playbook declared it at opening."""
    role_history: list[RoleChange] = field(default_factory=list)
    _holders: dict[str, tuple[list[int], list[str], int]] = field(
        default_factory=dict, repr=False, compare=False
    )
    """:meth:`holder_at`'s index by role (derived; rebuilt when the history grows)."""
    handovers: list[Handover] = field(default_factory=list)
    """Every handover offered, oldest first; ``accepted_at`` set once taken."""
    snoozes: list[Snooze] = field(default_factory=list)
    updates_switches: list[UpdatesSwitch] = field(default_factory=list)
    # Postmortem (issue 15 §6): folded by the functions at the end of this module.
    impact: dict[str, postmortem.ImpactFigure] = field(default_factory=dict)
    """Impact figures by key, the latest value of each (keys in the order first set)."""
    followups: list[postmortem.FollowUp] = field(default_factory=list)
    """Follow-up actions, numbered from 1 in the order added."""
    pinned: list[int] = field(default_factory=list)
    """Sequence numbers of pinned events, in the order pinned."""
    retrospective: list[postmortem.RetrospectiveNote] = field(default_factory=list)
    """Retrospective notes, oldest first."""
    upgrades: list[dict[str, Any]] = field(default_factory=list)
    """Moves to an edited playbook (`playbook upgrade`), oldest first: at, actor,
    from_sha256, to_sha256, diff."""

    @property
    def status(self) -> str:
        if self.closed_at is not None:
            return "closed"
        if self.resolved_at is not None:
            return "resolved"
        if self.acknowledged_at is not None:
            return "acknowledged"
        return "open"

    @property
    def speed(self) -> float:
        """How fast the incident's clock runs: a drill's ``--speed``, else 1."""
        return self.drill.speed if self.drill is not None else 1.0

    def targets(self, level: str | None = None) -> LevelTargets | None:
        """The targets of ``level`` (default: the severity now); None when the incident's
        playbook has no such level (an ``opened`` event that could not be read, or one
        naming a level its snapshot lacks), so no timer is computed against a guess."""
        return self.levels.get(level or self.severity)

    def phase_window(self, phase_id: str | None = None) -> PhaseWindow | None:
        wanted = phase_id or self.phase
        return next((p for p in self.phases if p.id == wanted), None)

    def last_runs(self) -> dict[str, DiagnosticRun]:
        """The latest run of each diagnostic."""
        return {run.diagnostic: run for run in self.runs}

    def next_escalation(self) -> str | None:
        """The first person on the escalation path not yet escalated to."""
        reached = {e.to for e in self.escalations}
        return next((who for who in self.level_escalation() if who not in reached), None)

    def level_escalation(self, level: str | None = None) -> list[str]:
        """The escalation path at ``level`` (default: now): the level's own, else the
        playbook's; nobody at a level that does not page (``notify: none``)."""
        found = self.targets(level)
        if found is None:
            return list(self.escalation_path)
        if found.notify == "none":
            return []
        return list(found.escalation if found.escalation is not None else self.escalation_path)

    def severity_rank(self, level: str | None = None) -> int:
        """0 for the playbook's most severe level, 1 for the next… (the list order is
        the meaning, not any digit in the id); past the end for an unknown level."""
        ids = list(self.levels)
        wanted = level or self.severity
        return ids.index(wanted) if wanted in ids else len(ids)

    def updates_on(self, audience: str = "external") -> bool:
        """Whether status updates for ``audience`` are expected (not switched off)."""
        for switch in reversed(self.updates_switches):
            if switch.audience in ("all", audience):
                return switch.on
        return True

    def snoozed_until(self, audience: str = "external") -> datetime | None:
        """When the latest snooze of ``audience``'s reminder ends (may be past)."""
        for snooze in reversed(self.snoozes):
            if snooze.audience in ("all", audience):
                return snooze.until
        return None

    def holder_at(self, role: str, seq: int) -> str:
        """Who held ``role`` when event ``seq`` was appended ('' for nobody): the scribe
        mark on a note is derived from this when shown, never stored a second time.

        An export asks once per note (100,000 of them): a bisect in the role's changes,
        indexed once per length of the history, keeps that off the export's time."""
        index = self._holders.get(role)
        if index is None or index[2] != len(self.role_history):
            changes = [(c.seq, c.person) for c in self.role_history if c.role == role and c.seq]
            index = ([c[0] for c in changes], [c[1] for c in changes], len(self.role_history))
            self._holders[role] = index
        seqs, people, _length = index
        found = bisect_left(seqs, seq)
        return people[found - 1] if found else ""

    def roles_text(self) -> str:
        """Holders as ``commander: alice, scribe: bob`` (empty when nobody holds one)."""
        return ", ".join(f"{role}: {who}" for role, who in self.roles.items() if who)


def _opened(state: IncidentState, event: Event) -> None:
    if state.opened_at is not None:
        raise _NotFoldable("the incident was already opened; a second opening is not folded")
    p = event.payload
    pb = p.get("playbook", {})
    state.title = p.get("title", "")
    state.playbook_id = pb.get("id", "")
    state.playbook_title = pb.get("title", "")
    state.playbook_sha256 = pb.get("sha256", "")
    state.playbook_path = pb.get("path", "")
    snapshot = p.get("snapshot", {})
    state.snapshot = snapshot
    state.service = snapshot.get("service", "")
    severity = snapshot.get("severity", {})
    state.levels = {lvl["id"]: _level(lvl) for lvl in severity.get("levels", [])}
    state.escalation_path = list(severity.get("escalation_path", []))
    state.role_names = {
        str(role["id"]): str(role.get("name", role["id"])) for role in snapshot.get("roles", [])
    }
    state.phases = [
        PhaseWindow(
            ph["id"], ph["title"], ph.get("stage", ""), _target(ph["starts"]), _target(ph["ends"])
        )
        for ph in snapshot.get("phases", [])
    ]
    state.sections = list(p.get("sections", []))
    state.checklist = {
        item["ref"]: item["text"]
        for section in state.sections
        for step in section.get("steps", [])
        for item in step.get("items", [])
    }
    state.triggers = list(p.get("triggers", []))
    state.severity = p.get("severity", "")
    state.severity_history = [
        SeverityPeriod(state.severity, event.at, "opened at this severity", event.actor)
    ]
    drill = p.get("drill")
    if isinstance(drill, dict):
        state.drill = DrillInfo(
            title=str(drill.get("title", "")),
            speed=max(1.0, float(drill.get("speed", 1) or 1)),
            services=dict(drill.get("services", {})),
            fingerprint=dict(drill.get("fingerprint", {})),
            setup=dict(drill.get("setup", {})),
            source=str(drill.get("source", "")),
            briefing=str(drill.get("briefing", "")),
        )
    state.opened_at = event.at
    if state.phases:
        state.phase = state.phases[0].id
        state.phase_history = [(state.phase, event.at)]
    if state.levels and state.severity not in state.levels:
        state.unreadable.append(
            Unreadable(
                event.seq,
                event.type,
                f"its severity {state.severity!r} is not a level of its playbook "
                f"({_known(state.levels)}): shown as written, without response, resolution "
                "or status-update targets",
                kept=True,
            )
        )


def _level(lvl: dict[str, Any]) -> LevelTargets:
    """A level of the snapshot. An incident opened before levels had schedules has
    ``status_update_every`` only: it reads as a one-step external schedule."""
    updates = _schedules(lvl.get("updates"), lvl.get("status_update_every"))
    external = updates.get("external", ())
    escalation = lvl.get("escalation")
    return LevelTargets(
        lvl["id"],
        lvl.get("name", ""),
        None if lvl.get("response") is None else _target(lvl["response"]),
        None if lvl.get("resolution") is None else _target(lvl["resolution"]),
        next((step.every for step in external if step.every), 0),
        str(lvl.get("notify") or "page"),
        tuple(str(who) for who in escalation) if isinstance(escalation, list) else None,
        updates,
    )


def _schedules(updates: object, every: object) -> dict[str, tuple[ScheduleStep, ...]]:
    if updates == "none":
        return {}
    if isinstance(updates, list):
        by_audience: dict[str, object] = {"external": updates}
    elif isinstance(updates, dict):
        by_audience = dict(updates)
    elif every is not None and _target(every) > 0:
        return {"external": (ScheduleStep(every=_target(every)),)}
    else:
        return {}
    found: dict[str, tuple[ScheduleStep, ...]] = {}
    for audience, steps in by_audience.items():
        if not isinstance(steps, list):
            raise _NotFoldable(f"the update schedule for {audience!r} is not a list")
        parsed = tuple(
            ScheduleStep(*(_opt_target(step.get(k)) for k in ("within", "every", "until")))
            for step in steps
        )
        # A zero step (a hand-made log; validate refuses it) would make a post due
        # every instant: it is left out.
        parsed = tuple(s for s in parsed if (s.within or s.every))
        if parsed:
            found[str(audience)] = parsed
    return found


def _opt_target(value: object) -> int | None:
    return None if value is None else _target(value)


def _target(value: object) -> int:
    """A target from the snapshot, in seconds, within what ``validate`` allows today: an
    incident opened by an older version (or a hand-made log) cannot overflow the timers."""
    seconds = int(value)  # type: ignore[call-overload]
    return max(0, min(seconds, MAX_TARGET))


def _acknowledged(state: IncidentState, event: Event) -> None:
    state.acknowledged_at = event.at
    state.acknowledged_severity = state.severity


def _known(found: Iterable[str]) -> str:
    names = ", ".join(found)
    return f"it has {names}" if names else "it has none"


def _severity_changed(state: IncidentState, event: Event) -> None:
    level = event.payload["to"]
    if state.levels and level not in state.levels:
        # Only a hand edit (or a log from another playbook) makes one: the service
        # refuses a level the snapshot lacks. Skipped and named, the severity stays.
        raise _NotFoldable(
            f"it changes the severity to {level!r}, which is not a level of this "
            f"incident's playbook ({_known(state.levels)})"
        )
    state.severity = level
    state.severity_history.append(
        SeverityPeriod(state.severity, event.at, event.payload.get("reason", ""), event.actor)
    )


def _phase_entered(state: IncidentState, event: Event) -> None:
    phase = event.payload["phase"]
    if state.phases and state.phase_window(phase) is None:
        raise _NotFoldable(
            f"it enters phase {phase!r}, which is not a phase of this incident's playbook "
            f"({_known(p.id for p in state.phases)})"
        )
    state.phase = phase
    state.phase_history.append((state.phase, event.at))


def _item_checked(state: IncidentState, event: Event) -> None:
    state.done[event.payload["item"]] = (event.at, event.actor)


def _item_unchecked(state: IncidentState, event: Event) -> None:
    state.done.pop(event.payload["item"], None)


def _note_added(state: IncidentState, event: Event) -> None:
    state.notes.append(Note(event.at, event.actor, event.payload["text"], event.seq))


def _status_rendered(state: IncidentState, event: Event) -> None:
    p = event.payload
    templates = state.snapshot.get("communications", {}).get("templates", {})
    template = templates.get(p["template"]) if isinstance(templates, dict) else None
    audience = template.get("audience", "external") if isinstance(template, dict) else "external"
    state.messages.append(
        StatusMessage(
            event.at, event.actor, p["template"], p.get("status", ""), p["text"], str(audience)
        )
    )


def _escalated(state: IncidentState, event: Event) -> None:
    p = event.payload
    state.escalations.append(Escalation(event.at, event.actor, p["to"], p.get("reason", "")))


def _resolved(state: IncidentState, event: Event) -> None:
    state.resolved_at = event.at
    state.resolved_severity = state.severity
    state.resolution_summary = event.payload.get("summary", "")


def _closed(state: IncidentState, event: Event) -> None:
    state.closed_at = event.at


def _scenario_chosen(state: IncidentState, event: Event) -> None:
    scenario = event.payload["scenario"]
    if scenario not in state.scenarios:
        state.scenarios.append(scenario)


def _diagnostic_run(state: IncidentState, event: Event) -> None:
    p = event.payload
    state.runs.append(
        DiagnosticRun(event.seq, event.at, event.actor, p["diagnostic"], p["verdict"], p)
    )


def _action_stage(state: IncidentState, event: Event) -> None:
    p = event.payload
    run = state.actions.get(p["run"])
    if run is None:
        run = state.actions[p["run"]] = ActionRun(p["run"], p["action"], p.get("target", ""))
    run.stages.append({**p, "at": event.at.isoformat(), "actor": event.actor})


def _drill_checked(state: IncidentState, event: Event) -> None:
    p = event.payload
    state.drill_checks.append(
        DrillCheck(event.at, event.actor, bool(p.get("restored")), dict(p.get("targets", {})))
    )


def _renamed(state: IncidentState, event: Event) -> None:
    p = event.payload
    new = str(p.get("to", ""))
    state.renames.append(Rename(event.at, event.actor, str(p.get("from", state.title)), new))
    state.title = new


def _role_assigned(state: IncidentState, event: Event) -> None:
    p = event.payload
    role, person = p["role"], p["person"]
    previous = state.roles.get(role, "")
    if person:
        state.roles[role] = person
    else:
        state.roles.pop(role, None)
    state.role_history.append(
        RoleChange(event.at, event.actor, role, person, previous, "assigned", event.seq)
    )


def _handover_offered(state: IncidentState, event: Event) -> None:
    p = event.payload
    state.handovers.append(
        Handover(event.at, event.actor, p["role"], p["from"], p["to"], p.get("brief", ""))
    )


def _handover_accepted(state: IncidentState, event: Event) -> None:
    p = event.payload
    role, person = p["role"], p["person"]
    offer = next(
        (
            h
            for h in reversed(state.handovers)
            if h.role == role and h.to_person == person and h.accepted_at is None
        ),
        None,
    )
    if offer is None:
        raise _NotFoldable(f"it accepts role {role!r} for {person!r}, which nobody offered")
    offer.accepted_at = event.at
    previous = state.roles.get(role, "")
    state.roles[role] = person
    state.role_history.append(
        RoleChange(event.at, event.actor, role, person, previous, "handover", event.seq)
    )


def _update_snoozed(state: IncidentState, event: Event) -> None:
    p = event.payload
    until = datetime.fromisoformat(p["until"])
    if until.tzinfo is None:
        raise _NotFoldable("its `until` has no time zone")
    state.snoozes.append(Snooze(event.at, event.actor, p["audience"], until, p["reason"]))


def _updates_switched(state: IncidentState, event: Event) -> None:
    p = event.payload
    state.updates_switches.append(
        UpdatesSwitch(event.at, event.actor, bool(p["on"]), p["audience"], p["reason"])
    )


def _playbook_upgraded(state: IncidentState, event: Event) -> None:
    """The edited playbook's snapshot and checklist replace the old ones; what happened
    (ticks, severity, phase, notes, evidence) stays. Read as an opening of the new
    playbook would be, so both are folded by the same code."""
    if state.opened_at is None:
        raise _NotFoldable("the incident was not opened; an upgrade has nothing to replace")
    p = event.payload
    fresh = IncidentState(id=state.id)
    opening = {"title": state.title, "severity": state.severity, "triggers": []}
    _opened(fresh, replace(event, payload={**opening, **p}))
    if fresh.levels and state.severity not in fresh.levels:
        raise _NotFoldable(f"its playbook has no level {state.severity!r}, the severity now")
    state.playbook_id, state.playbook_title = fresh.playbook_id, fresh.playbook_title
    state.playbook_sha256, state.playbook_path = fresh.playbook_sha256, fresh.playbook_path
    state.snapshot, state.service = fresh.snapshot, fresh.service
    state.levels, state.escalation_path = fresh.levels, fresh.escalation_path
    state.phases, state.sections, state.checklist = fresh.phases, fresh.sections, fresh.checklist
    state.role_names = fresh.role_names  # the roles the edited playbook declares
    keep = ("from_sha256", "to_sha256", "diff")
    state.upgrades.append({"at": event.at, "actor": event.actor, **{k: p.get(k) for k in keep}})


_APPLY: dict[str, Callable[[IncidentState, Event], None]] = {
    ev.OPENED: _opened,
    ev.ACKNOWLEDGED: _acknowledged,
    ev.SEVERITY_CHANGED: _severity_changed,
    ev.PHASE_ENTERED: _phase_entered,
    ev.ITEM_CHECKED: _item_checked,
    ev.ITEM_UNCHECKED: _item_unchecked,
    ev.NOTE_ADDED: _note_added,
    ev.STATUS_RENDERED: _status_rendered,
    ev.ESCALATED: _escalated,
    ev.RESOLVED: _resolved,
    ev.CLOSED: _closed,
    ev.SCENARIO_CHOSEN: _scenario_chosen,
    ev.DIAGNOSTIC_RUN: _diagnostic_run,
    ev.ACTION_STAGE: _action_stage,
    ev.DRILL_CHECKED: _drill_checked,
    ev.RENAMED: _renamed,
    ev.ROLE_ASSIGNED: _role_assigned,
    ev.HANDOVER_OFFERED: _handover_offered,
    ev.HANDOVER_ACCEPTED: _handover_accepted,
    ev.UPDATE_SNOOZED: _update_snoozed,
    ev.UPDATES_SWITCHED: _updates_switched,
    ev.PLAYBOOK_UPGRADED: _playbook_upgraded,
}


_APPLY[ev.PUBLISH_INTENDED] = publish_intended
_APPLY[ev.PUBLISH_RESULT] = publish_result


def apply(state: IncidentState, event: Event) -> IncidentState:
    """Fold one more event into ``state`` (in place) and return it.

    An event that cannot be read is skipped and recorded in ``state.unreadable``; so is
    one whose payload passes its schema yet still breaks its handler (a nested part of an
    ``opened`` snapshot, say), so one bad event never makes the incident unreadable.
    """
    _apply_all(state, (event,))
    return state


def fold(events: Iterable[Event], incident_id: str | None = None) -> IncidentState:
    """The state of an incident after all of ``events``, in sequence order."""
    events = iter(events)
    first = next(events, None)
    if first is None:
        return IncidentState(id=incident_id or "")
    state = IncidentState(id=first.incident_id)
    _apply_all(state, (first,))
    _apply_all(state, events)
    return state


def _apply_all(state: IncidentState, events: Iterable[Event]) -> None:
    """:func:`apply` for each of ``events``, in one loop: a 100,000-event export folds
    them all, and a call per event was a tenth of it."""
    handlers = _APPLY.get
    actors = state.actors
    for event in events:
        handler = handlers(event.type)
        problem = event.problem
        if handler is None:
            state.unknown_events += 1
            problem = problem or f"unknown event type {event.type!r}"
        elif problem is None:
            try:
                handler(state, event)
            except _NotFoldable as exc:
                problem = str(exc)
            except (
                KeyError,
                TypeError,
                ValueError,
                AttributeError,
                IndexError,
                OverflowError,
            ) as exc:
                problem = f"its payload could not be folded ({type(exc).__name__}: {exc})"
        if problem is not None:
            state.unreadable.append(Unreadable(event.seq, event.type, problem))
        if event.seq > state.last_seq:
            state.last_seq = event.seq
        # A skipped event's time may be as wrong as the rest of it: it does not move the
        # clock that timers and new events are kept after.
        if problem is None and (state.last_event_at is None or event.at > state.last_event_at):
            state.last_event_at = event.at
        if event.actor not in actors:
            actors.append(event.actor)


# --------------------------------------------------------------------------- postmortem
# Impact figures, follow-ups, pins and retrospective notes (issue 15 §6): their records
# and fold functions live in playbook.core.postmortem; an event it refuses is skipped and
# named like any other.


def _postmortem_fold(
    fold_one: Callable[[Any, Event], None],
) -> Callable[[IncidentState, Event], None]:
    def folded(state: IncidentState, event: Event) -> None:
        try:
            fold_one(state, event)
        except postmortem.Refused as exc:
            raise _NotFoldable(str(exc)) from None

    return folded


_APPLY.update({kind: _postmortem_fold(fold_one) for kind, fold_one in postmortem.FOLDS.items()})
