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
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from playbook.core.state import IncidentState

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

    def all(self) -> list[Timer]:
        return [t for t in (self.response, self.resolution, self.phase, self.status_update) if t]

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
        if ack_level is not None
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
        if res_level is not None
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

    update_timer: Timer | None = None
    level = state.targets()
    if res is None and level is not None:
        last = state.messages[-1].at if state.messages else opened
        update_timer = _timer(
            "status_update",
            "Next status update",
            last,
            level.status_update_every,
            now,
            False,
            None,
            speed,
        )
    return Timers(response, resolution, phase_timer, update_timer)
