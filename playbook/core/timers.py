"""Timers: pure functions of an incident's state and the time now.

Rules, chosen for the responder at 3 a.m.:

- A timer warns when 75 % of its target is used, and is breached past 100 %.
- The response timer stops at acknowledgement, or at resolution if nobody acknowledged.
- Targets are always measured from the incident's opening: users were affected from
  then, whatever the severity says now.
- A severity change re-targets the timers that are still running (a P2 escalated to
  P1 at 2 h gets P1's 4 h resolution target, so 2 h remain; if the new target has
  already passed, the timer shows breached at once, which is the truth). A timer that
  has stopped keeps the target of the severity in force when it stopped: an
  acknowledgement that met P2's 1 h target is not re-judged against P1's 15 min.
- Elapsed time never runs backwards: "now" is never earlier than the last event,
  so a clock stepped back mid-incident cannot shrink elapsed time or un-breach a timer.
- A drill's clock may run ``speed`` times faster: elapsed time is real time multiplied
  by the speed, so a P2's hour to respond passes in six real minutes at ``--speed 10``.
  Targets stay as the playbook says; deadlines are the real moments they fall due.
  The events themselves keep their real times.
- Status updates follow the level's schedule (``updates``): the next one is due
  ``within`` of the opening (or the previous post) for the leading one-post steps, then
  ``every`` after each post, using the step whose ``until`` the incident has not yet
  reached when the post is made. Each audience (external, internal) has its own
  schedule and counts only its own posts. Updates switched off, a level without a
  schedule, or a resolved incident: nothing is due.
- The update reminder fires when the update is due, and once more at breach: a quarter
  of the interval later (the same 25 % the other timers warn at). A snooze silences it
  until the snooze ends; it does not move the due time, which stays the truth.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from playbook.core.durations import format_duration
from playbook.core.state import IncidentState, ScheduleStep

WARN_AT = 0.75

OK = "ok"
WARNING = "warning"
BREACHED = "breached"


@dataclass(frozen=True)
class Timer:
    """One timer's reading."""

    name: str
    """response, resolution, phase or status_update."""
    label: str
    started: datetime
    deadline: datetime
    target: float
    """Seconds allowed."""
    elapsed: float
    """Seconds used (up to when the timer stopped, if it did)."""
    state: str
    """ok, warning or breached."""
    stopped: bool = False
    """True when the thing it waited for happened."""
    escalate_to: str | None = None
    """Who to escalate to next, named when the timer is breached."""

    @property
    def remaining(self) -> float:
        return self.target - self.elapsed

    @property
    def used(self) -> float:
        return self.elapsed / self.target if self.target > 0 else 1.0


@dataclass(frozen=True)
class Timers:
    response: Timer | None
    resolution: Timer | None
    phase: Timer | None
    status_update: Timer | None
    internal_update: Timer | None = None
    """The internal audience's update timer, when its level has an internal schedule."""

    def all(self) -> list[Timer]:
        return [
            t
            for t in (
                self.response,
                self.resolution,
                self.phase,
                self.status_update,
                self.internal_update,
            )
            if t
        ]

    def alerts(self) -> list[Timer]:
        """Running timers that are warning or breached, worst first."""
        running = [t for t in self.all() if not t.stopped and t.state != OK]
        return sorted(running, key=lambda t: (t.state != BREACHED, -t.used))


def effective_now(state: IncidentState, now: datetime) -> datetime:
    """``now``, but never before the last recorded event."""
    if state.last_event_at is not None and now < state.last_event_at:
        return state.last_event_at
    return now


def _grade(elapsed: float, target: float) -> str:
    if elapsed > target:
        return BREACHED
    if target <= 0 or elapsed >= WARN_AT * target:
        return WARNING
    return OK


def _timer(
    name: str,
    label: str,
    started: datetime,
    target: float,
    until: datetime,
    stopped: bool,
    escalate_to: str | None,
    speed: float = 1.0,
) -> Timer:
    elapsed = max(0.0, (until - started).total_seconds()) * speed
    grade = _grade(elapsed, target)
    return Timer(
        name=name,
        label=label,
        started=started,
        deadline=started + timedelta(seconds=target / speed),
        target=float(target),
        elapsed=elapsed,
        state=grade,
        stopped=stopped,
        escalate_to=escalate_to if grade == BREACHED and not stopped else None,
    )


def compute(state: IncidentState, now: datetime) -> Timers:
    """Every timer of the incident at ``now``."""
    if state.opened_at is None or not state.levels:
        return Timers(None, None, None, None)
    now = effective_now(state, now)
    opened = state.opened_at
    nxt = state.next_escalation()
    speed = state.speed

    # Resolving ends the wait for a response too: an incident resolved without an
    # acknowledgement must not go on to breach its response target and ask for escalation.
    ack = state.acknowledged_at
    if ack is not None:
        answered, ack_level = ack, state.targets(state.acknowledged_severity)
    elif state.resolved_at is not None:
        answered, ack_level = state.resolved_at, state.targets(state.resolved_severity)
    else:
        answered, ack_level = None, state.targets()
    # A level the snapshot lacks (a damaged or hand-edited log) has no targets: its
    # timers are left out rather than measured against a guess.
    response = (
        _timer(
            "response",
            f"Response ({ack_level.id})",
            opened,
            ack_level.response,
            answered or now,
            answered is not None,
            nxt,
            speed,
        )
        if ack_level is not None and ack_level.response is not None
        else None
    )

    res = state.resolved_at
    res_level = state.targets(state.resolved_severity if res else None)
    resolution = (
        _timer(
            "resolution",
            f"Resolution ({res_level.id})",
            opened,
            res_level.resolution,
            res or now,
            res is not None,
            nxt,
            speed,
        )
        if res_level is not None and res_level.resolution is not None
        else None
    )

    phase_timer: Timer | None = None
    window = state.phase_window()
    if window is not None and res is None:
        elapsed = max(0.0, (now - opened).total_seconds()) * speed
        length = window.ends - window.starts
        if elapsed > window.ends:
            grade = BREACHED
        elif elapsed >= window.starts + WARN_AT * length:
            grade = WARNING
        else:
            grade = OK
        phase_timer = Timer(
            name="phase",
            label=f"Phase: {window.title}",
            started=opened + timedelta(seconds=window.starts / speed),
            deadline=opened + timedelta(seconds=window.ends / speed),
            target=float(window.ends),
            elapsed=elapsed,
            state=grade,
        )

    update_timers: dict[str, Timer | None] = {}
    for audience, label in (
        ("external", "Next status update"),
        ("internal", "Next internal update"),
    ):
        due = next_update_due(state, audience)
        update_timers[audience] = (
            _timer(
                "status_update" if audience == "external" else "internal_update",
                label,
                due.since,
                due.interval,
                now,
                False,
                None,
                speed,
            )
            if due is not None
            else None
        )
    return Timers(
        response,
        resolution,
        phase_timer,
        update_timers["external"],
        update_timers["internal"],
    )


@dataclass(frozen=True)
class UpdateDue:
    """When the next status update for one audience is due."""

    audience: str
    since: datetime
    """The previous post of this audience (or the opening)."""
    interval: float
    """Seconds of incident time from ``since`` to the due time."""
    due: datetime
    """The real moment it falls due."""
    breach_at: datetime
    """The real moment the reminder fires a second time: a quarter interval later."""

    @property
    def human(self) -> str:
        """``14:25 UTC``: the due time as a message says it."""
        return f"{self.due:%H:%M} UTC"


def _step_for(steps: tuple[ScheduleStep, ...], posts: int, age: float) -> float | None:
    """Seconds from the previous post (or the opening) to the next one, or None."""
    leading = []
    for step in steps:
        if step.within is None:
            break
        leading.append(step.within)
    if posts < len(leading):
        return float(leading[posts])
    repeating = [step for step in steps if step.every]
    if not repeating:
        return None  # only one-off posts, all made
    for step in repeating:
        if step.until is None or age < step.until:
            return float(step.every or 0)
    return float(repeating[-1].every or 0)  # past every `until`: the last cadence holds


def next_update_due(
    state: IncidentState, audience: str = "external", level: str | None = None
) -> UpdateDue | None:
    """The next status update due for ``audience`` under the level in force (or
    ``level``); None when none is expected: resolved, switched off, no schedule."""
    if state.opened_at is None or state.resolved_at is not None:
        return None
    if not state.updates_on(audience):
        return None
    targets = state.targets(level)
    steps = targets.updates.get(audience) if targets is not None else None
    if not steps:
        return None
    posts = [m for m in state.messages if m.audience == audience]
    since = posts[-1].at if posts else state.opened_at
    speed = state.speed
    age = max(0.0, (since - state.opened_at).total_seconds()) * speed
    interval = _step_for(steps, len(posts), age)
    if interval is None:
        return None
    due = since + timedelta(seconds=interval / speed)
    return UpdateDue(audience, since, interval, due, due + timedelta(seconds=interval / speed / 4))


@dataclass(frozen=True)
class Reminder:
    """A status update is due (``due``) or overdue past its breach point (``breach``)."""

    audience: str
    kind: str
    """``due`` or ``breach``."""
    update: UpdateDue

    def text(self, now: datetime) -> str:
        """What the responder is told."""
        who = "Internal update" if self.audience == "internal" else "Status update"
        late = max(0.0, (now - self.update.due).total_seconds())
        if self.kind == "breach":
            return (
                f"{who} overdue: it was due at {self.update.human} ({format_duration(late)} ago)."
            )
        return f"{who} due now (at {self.update.human})."


def reminders(state: IncidentState, now: datetime) -> list[Reminder]:
    """The update reminders firing at ``now``: one per audience whose update is due,
    unless a snooze still holds. Pure: the app and the CLI say what this returns, and
    the app notifies once per (audience, kind, due time)."""
    now = effective_now(state, now)
    found = []
    for audience in ("external", "internal"):
        update = next_update_due(state, audience)
        if update is None or now < update.due:
            continue
        snoozed = state.snoozed_until(audience)
        if snoozed is not None and now < snoozed:
            continue
        kind = "breach" if now >= update.breach_at else "due"
        found.append(Reminder(audience, kind, update))
    return found


def escalation_notice(state: IncidentState, who: str) -> str:
    """``Escalate to Technical Lead — commander: alice``: the roles say who acts."""
    held = state.roles_text()
    return f"Escalate to {who} — {held}" if held else f"Escalate to {who}"
