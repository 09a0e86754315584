"""A drill's scorecard: how the response went, for the engineer and the review after.

A pure function of an incident's state and the time now. It says how long the team
took to acknowledge and to resolve against the playbook's targets, how long each phase
lasted against its window, who was escalated to and when, how many status messages
were sent against how many were due, which diagnostics were run and what they found,
how each guarded action ended, whether the data came back to its fingerprint, and what
was left undone.

Durations are on the incident's clock: for a drill run with ``--speed`` that is real
time multiplied by the speed (the clock the timers use), and the real time is given
beside it. A non-drill incident gets the same review, without the drill's parts.

Only numbers and facts: durations, counts, met or breached. Every line of text and
Markdown made of them is :mod:`playbook.render.scorecard`'s (``scorecard_text``,
``scorecard_markdown``), beside the other exports.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from playbook.core.events import format_utc
from playbook.core.state import DiagnosticRun, IncidentState
from playbook.core.timers import BREACHED, Timer, compute, effective_now

Since = Callable[[datetime], "Span"]
"""Time from the incident's opening to a moment, on both clocks."""

MAX_DUE = 100_000
"""A bound on the status-update count, so a zero-length cadence cannot loop forever."""


# --------------------------------------------------------------------------- the parts


@dataclass(frozen=True)
class Span:
    """A length of time on the incident's clock and in real time."""

    drill: float
    """Seconds on the incident's clock (real seconds × speed)."""
    real: float
    """Real seconds."""

    @classmethod
    def of(cls, real: float, speed: float) -> Span:
        return cls(real * speed, real)

    def to_dict(self) -> dict[str, float]:
        return {"drill": round(self.drill, 3), "real": round(self.real, 3)}


@dataclass(frozen=True)
class TargetResult:
    """The response or resolution target, and how the incident did against it."""

    name: str
    """``response`` or ``resolution``."""
    level: str
    """The severity whose target applies (the one in force when the timer stopped)."""
    target: float
    """Seconds allowed, on the incident's clock."""
    took: Span
    """Time used: until acknowledgement or resolution, or until now if still running."""
    result: str
    """``met``, ``breached``, ``running`` (within target) or ``overdue`` (running, breached)."""
    at: datetime | None
    """When the timer stopped (acknowledged, resolved), None while it runs."""


@dataclass(frozen=True)
class PhaseVisit:
    """One stay in a phase, from entering it to entering the next or resolving."""

    id: str
    title: str
    starts: int | None
    """The phase window's start, seconds from opening on the incident's clock."""
    ends: int | None
    """The window's end: the phase should be left by then."""
    entered: Span
    """When the phase was entered, from opening."""
    left: Span | None
    """When it was left, from opening; None while the incident is still in it."""
    spent: Span
    """Time in the phase (until now for the current phase)."""
    result: str
    """``in time``, ``late`` (left after its window), ``current`` or ``overdue``
    (still in it after its window ended)."""


@dataclass(frozen=True)
class EscalationMade:
    to: str
    actor: str
    reason: str
    after: Span
    """When, from opening."""


@dataclass(frozen=True)
class StatusCadence:
    sent: int
    due: int
    """Updates the cadence asked for between opening and resolution (or now): one per
    ``status_update_every`` of the severity in force."""
    sent_at: list[Span] = field(default_factory=list)
    """When each was sent, from opening."""


@dataclass(frozen=True)
class DiagnosticSummary:
    id: str
    title: str
    runs: int
    verdict: str
    """The last run's verdict: pass, warn, fail or error."""
    found: str
    """The last run's first failing check, or its error; empty when it passed."""
    last: Span
    """When it was last run, from opening."""


@dataclass(frozen=True)
class Skipped:
    id: str
    title: str


@dataclass(frozen=True)
class ActionSummary:
    run: str
    action: str
    target: str
    status: str
    """How the run ended, as :attr:`ActionRun.status` says (``applied and verified``, …)."""
    started: Span | None


@dataclass(frozen=True)
class TargetCheck:
    """One fingerprinted target at the last check."""

    target: str
    service: str
    """What the sandbox gave the target (its label)."""
    expected: int
    found: int
    missing: int
    changed: int
    extra: int
    restored: bool
    examples: list[str]
    """A few differing items, as recorded (shown literally)."""


@dataclass(frozen=True)
class Recovery:
    """Whether the data came back to its fingerprint, at the last check."""

    checked: bool
    restored: bool | None
    """None when the data was never checked."""
    checks: int
    at: Span | None
    targets: list[TargetCheck]


@dataclass(frozen=True)
class SectionLeft:
    """A checklist section with items nobody ticked."""

    id: str
    title: str
    not_ticked: int
    total: int
    items: list[str]
    post_incident: bool
    """Post-incident sections stay open after resolution by design."""


# --------------------------------------------------------------------------- the scorecard


@dataclass(frozen=True)
class Scorecard:
    """The review of one incident's response; see :func:`scorecard`."""

    incident: str
    title: str
    playbook: str
    status: str
    severity: str
    at: datetime
    drill: bool
    scenario: str
    speed: float
    services: dict[str, str]
    setup: dict[str, Any]
    response: TargetResult | None
    resolution: TargetResult | None
    phases: list[PhaseVisit]
    phases_not_entered: list[Skipped]
    escalations: list[EscalationMade]
    status_messages: StatusCadence
    diagnostics: list[DiagnosticSummary]
    diagnostics_not_run: list[Skipped]
    actions: list[ActionSummary]
    recovery: Recovery | None
    """None for a real incident, which has no fingerprint."""
    checklist_left: list[SectionLeft]

    # ------------------------------------------------------------------ data

    def to_dict(self) -> dict[str, Any]:
        """Everything as JSON-able data: seconds as numbers, times as UTC strings."""
        return _jsonable(
            {
                "incident": self.incident,
                "title": self.title,
                "playbook": self.playbook,
                "status": self.status,
                "severity": self.severity,
                "at": self.at,
                "drill": self.drill,
                "scenario": self.scenario,
                "speed": self.speed,
                "services": self.services,
                "setup": self.setup,
                "response": self.response,
                "resolution": self.resolution,
                "phases": self.phases,
                "phases_not_entered": self.phases_not_entered,
                "escalations": self.escalations,
                "status_messages": self.status_messages,
                "diagnostics": self.diagnostics,
                "diagnostics_not_run": self.diagnostics_not_run,
                "actions": self.actions,
                "recovery": self.recovery,
                "skipped": {
                    "items": sum(s.not_ticked for s in self.checklist_left),
                    "sections": self.checklist_left,
                    "diagnostics": [d.id for d in self.diagnostics_not_run],
                },
            }
        )


# --------------------------------------------------------------------------- building it


def scorecard(state: IncidentState, now: datetime) -> Scorecard:
    """The scorecard of ``state`` at ``now`` (an incident still running is read up to now)."""
    speed = state.speed
    now = effective_now(state, now)
    opened = state.opened_at or now
    end = state.resolved_at or now

    def since_opening(moment: datetime) -> Span:
        return Span.of(max(0.0, (moment - opened).total_seconds()), speed)

    timers = compute(state, now)
    drill = state.drill
    return Scorecard(
        incident=state.id,
        title=state.title,
        playbook=state.playbook_id,
        status=state.status,
        severity=state.severity,
        at=now,
        drill=drill is not None,
        scenario=drill.title if drill else "",
        speed=speed,
        services=dict(drill.services) if drill else {},
        setup=dict(drill.setup) if drill else {},
        response=_target(timers.response, speed, state.acknowledged_at or state.resolved_at),
        resolution=_target(timers.resolution, speed, state.resolved_at),
        phases=_phases(state, end, since_opening),
        phases_not_entered=[
            Skipped(p.id, p.title)
            for p in state.phases
            if p.id not in {phase for phase, _at in state.phase_history}
        ],
        escalations=[
            EscalationMade(e.to, e.actor, e.reason, since_opening(e.at)) for e in state.escalations
        ],
        status_messages=StatusCadence(
            sent=len(state.messages),
            due=_updates_due(state, end),
            sent_at=[since_opening(m.at) for m in state.messages],
        ),
        diagnostics=_diagnostics(state, since_opening),
        diagnostics_not_run=_not_run(state),
        actions=[
            ActionSummary(
                a.run,
                a.action,
                a.target,
                a.status,
                _stage_time(a.stages[0], since_opening) if a.stages else None,
            )
            for a in state.actions.values()
        ],
        recovery=_recovery(state, since_opening) if drill else None,
        checklist_left=_checklist_left(state),
    )


_LEVEL = re.compile(r"\(([^()]*)\)$")


def _target(timer: Timer | None, speed: float, stopped_at: datetime | None) -> TargetResult | None:
    if timer is None:
        return None
    breached = timer.state == BREACHED
    if timer.stopped:
        result = "breached" if breached else "met"
    else:
        result = "overdue" if breached else "running"
    level = _LEVEL.search(timer.label)  # the timer names the level whose target applies
    return TargetResult(
        name=timer.name,
        level=level.group(1) if level else "",
        target=timer.target,
        took=Span(timer.elapsed, timer.elapsed / speed),
        result=result,
        at=stopped_at if timer.stopped else None,
    )


def _phases(state: IncidentState, end: datetime, since: Since) -> list[PhaseVisit]:
    visits: list[PhaseVisit] = []
    history = state.phase_history
    for i, (phase_id, entered_at) in enumerate(history):
        leaving = history[i + 1][1] if i + 1 < len(history) else state.resolved_at
        window = state.phase_window(phase_id)
        entered = since(entered_at)
        left = since(leaving) if leaving is not None else None
        until = since(leaving if leaving is not None else end)
        spent = Span(until.drill - entered.drill, until.real - entered.real)
        if window is None:
            result = "in time" if left is not None else "current"
        elif left is not None:
            result = "in time" if left.drill <= window.ends else "late"
        else:
            result = "overdue" if until.drill > window.ends else "current"
        visits.append(
            PhaseVisit(
                id=phase_id,
                title=window.title if window else phase_id,
                starts=window.starts if window else None,
                ends=window.ends if window else None,
                entered=entered,
                left=left,
                spent=spent,
                result=result,
            )
        )
    return visits


def _updates_due(state: IncidentState, end: datetime) -> int:
    """Status updates due from opening to ``end``: one each ``status_update_every`` (on
    the incident's clock) of the severity in force when the previous one fell due."""
    if state.opened_at is None or not state.levels:
        return 0
    speed = state.speed
    total = max(0.0, (end - state.opened_at).total_seconds()) * speed

    t = 0.0
    due = 0
    while due < MAX_DUE:
        moment = state.opened_at + timedelta(seconds=t / speed)
        level = state.severity_history[0].level if state.severity_history else state.severity
        for period in state.severity_history:
            if period.since <= moment:
                level = period.level
        targets = state.levels.get(level)
        if targets is None or targets.status_update_every <= 0:
            break
        t += targets.status_update_every
        if t > total:
            break
        due += 1
    return due


def _diagnostics(state: IncidentState, since: Since) -> list[DiagnosticSummary]:
    titles = {k: str(v.get("title", "")) for k, v in _playbook_diagnostics(state).items()}
    order: list[str] = []
    runs: dict[str, list[DiagnosticRun]] = {}
    for run in state.runs:
        if run.diagnostic not in runs:
            order.append(run.diagnostic)
        runs.setdefault(run.diagnostic, []).append(run)
    out: list[DiagnosticSummary] = []
    for diagnostic in order:
        last = runs[diagnostic][-1]
        p = last.payload
        failing = next(
            (
                str(c.get("text", ""))
                for c in p.get("checks") or []
                if isinstance(c, dict) and not c.get("ok")
            ),
            "",
        )
        if not failing and last.verdict != "pass":
            failing = str(p.get("error") or p.get("message") or "")
        out.append(
            DiagnosticSummary(
                id=diagnostic,
                title=str(p.get("title") or titles.get(diagnostic, "")),
                runs=len(runs[diagnostic]),
                verdict=last.verdict,
                found=failing,
                last=since(last.at),
            )
        )
    return out


def _playbook_diagnostics(state: IncidentState) -> dict[str, dict[str, Any]]:
    found = state.snapshot.get("diagnostics") or {}
    return {str(k): v for k, v in found.items() if isinstance(v, dict)}


def _not_run(state: IncidentState) -> list[Skipped]:
    ran = {run.diagnostic for run in state.runs}
    return [
        Skipped(k, str(v.get("title", "")))
        for k, v in _playbook_diagnostics(state).items()
        if k not in ran and not v.get("writes")  # a diagnostic that writes never runs
    ]


def _stage_time(stage: dict[str, Any], since: Since) -> Span | None:
    try:
        return since(datetime.fromisoformat(str(stage.get("at"))))
    except (TypeError, ValueError):
        return None


def _recovery(state: IncidentState, since: Since) -> Recovery:
    if not state.drill_checks:
        return Recovery(checked=False, restored=None, checks=0, at=None, targets=[])
    last = state.drill_checks[-1]
    services = state.drill.services if state.drill else {}
    targets = []
    for name, t in last.targets.items():
        if not isinstance(t, dict):
            continue
        targets.append(
            TargetCheck(
                target=str(name),
                service=str(services.get(name, "")),
                expected=_int((t.get("expected") or {}).get("items")),
                found=_int((t.get("found") or {}).get("items")),
                missing=_int(t.get("missing")),
                changed=_int(t.get("changed")),
                extra=_int(t.get("extra")),
                restored=bool(t.get("restored")),
                examples=[str(e) for e in t.get("examples") or []],
            )
        )
    return Recovery(
        checked=True,
        restored=last.restored,
        checks=len(state.drill_checks),
        at=since(last.at),
        targets=targets,
    )


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _checklist_left(state: IncidentState) -> list[SectionLeft]:
    scenario_ids = {s.get("id") for s in state.snapshot.get("scenarios", [])}
    post = {s.get("id") for s in state.snapshot.get("post_incident", [])}
    out: list[SectionLeft] = []
    for section in state.sections:
        items = [i for step in section.get("steps", []) for i in step.get("items", [])]
        left = [i for i in items if i["ref"] not in state.done]
        if not left:
            continue
        followed = section["id"] not in scenario_ids or section["id"] in state.scenarios
        if not followed and len(left) == len(items):
            continue  # a scenario nobody followed was not skipped: it did not apply
        out.append(
            SectionLeft(
                id=section["id"],
                title=section.get("title", section["id"]),
                not_ticked=len(left),
                total=len(items),
                items=[i["text"] for i in left],
                post_incident=section["id"] in post,
            )
        )
    return out


# --------------------------------------------------------------------------- helpers


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, Span):
        return value.to_dict()
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _jsonable(getattr(value, name)) for name in value.__dataclass_fields__}
    return value
