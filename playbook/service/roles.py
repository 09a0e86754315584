"""Roles and the update cadence: who holds which role, handovers, and the status-update
reminder snoozed or switched off. Every one is an event; nothing here is enforced yet
beyond the playbook's declared roles (team mode will make the commander's authority and
the handover's acknowledgement binding)."""

from __future__ import annotations

from datetime import timedelta

from playbook.core import events as ev
from playbook.core.durations import MAX_TARGET, format_duration
from playbook.core.state import IncidentState
from playbook.errors import Conflict, UsageError
from playbook.service.context import Context, Decision, command, typed_text

AUDIENCE_CHOICES = ("all", "external", "internal")


def _closed_check(state: IncidentState) -> None:
    if state.closed_at is not None:
        raise Conflict(f"Incident {state.id} is closed.", "Only notes can be added to it.")


def _known_role(state: IncidentState, role: str) -> str:
    """``role`` as the playbook declared it; any slug when it declares none (an incident
    opened before roles existed can still record them)."""
    role = role.strip()
    if state.role_names and role not in state.role_names:
        raise UsageError(
            f"No role {role!r} in this incident's playbook.",
            f"It has: {', '.join(state.role_names)}.",
        )
    if not role:
        raise UsageError("Name a role (commander, scribe, …).")
    return typed_text(role, "role")


def assign_role(ctx: Context, ref: str, role: str, person: str) -> IncidentState:
    """Record that ``person`` holds ``role`` now (empty ``person``: nobody does)."""
    person = typed_text(person.strip(), "person")

    def decide(state: IncidentState) -> Decision:
        _closed_check(state)
        wanted = _known_role(state, role)
        if state.roles.get(wanted, "") == person:
            raise Conflict(f"{person or 'Nobody'} already holds {wanted}.")
        return [(ev.ROLE_ASSIGNED, {"role": wanted, "person": person, "by": ctx.actor})]

    return command(ctx, ref, decide)


def offer_handover(ctx: Context, ref: str, role: str, to: str, brief: str = "") -> IncidentState:
    """Offer ``role`` to ``to``: the role changes hands only when they accept."""
    to = typed_text(to.strip(), "person")
    brief = typed_text(brief.strip(), "brief", multiline=True)
    if not to:
        raise UsageError("Say who the role is handed over to.")

    def decide(state: IncidentState) -> Decision:
        _closed_check(state)
        wanted = _known_role(state, role)
        holder = state.roles.get(wanted, "")
        if holder == to:
            raise Conflict(f"{to} already holds {wanted}.")
        payload = {"role": wanted, "from": holder, "to": to, "brief": brief}
        return [(ev.HANDOVER_OFFERED, payload)]

    return command(ctx, ref, decide)


def accept_handover(ctx: Context, ref: str, role: str, person: str | None = None) -> IncidentState:
    """``person`` (default: the actor) accepts the role offered to them."""
    taker = typed_text((person or ctx.actor).strip(), "person")

    def decide(state: IncidentState) -> Decision:
        _closed_check(state)
        wanted = _known_role(state, role)
        pending = [
            h
            for h in state.handovers
            if h.role == wanted and h.accepted_at is None and h.to_person == taker
        ]
        if not pending:
            offered = [
                h.to_person for h in state.handovers if h.role == wanted and h.accepted_at is None
            ]
            raise Conflict(
                f"Nobody offered {wanted} to {taker}.",
                f"Open offers of {wanted}: {', '.join(offered)}." if offered else "",
            )
        return [(ev.HANDOVER_ACCEPTED, {"role": wanted, "person": taker})]

    return command(ctx, ref, decide)


def _audience(audience: str) -> str:
    if audience not in AUDIENCE_CHOICES:
        raise UsageError(
            f"Unknown audience {audience!r}.", f"Choose one of: {', '.join(AUDIENCE_CHOICES)}."
        )
    return audience


def _reason(reason: str) -> str:
    text = typed_text(reason.strip(), "reason")
    if not text:
        raise UsageError("Give a reason (--reason): the timeline says why updates paused.")
    return text


def snooze_updates(
    ctx: Context, ref: str, length: str, reason: str, audience: str = "all"
) -> IncidentState:
    """Quiet the update reminder for ``length`` (incident time, as the timers count it).
    The due time does not move: the timer stays honest, only the reminder waits."""
    from playbook.core.model import parse_duration  # for start-up speed: pydantic

    try:
        seconds = parse_duration(length.strip())
    except ValueError as why:
        raise UsageError(f"Snooze length: {why}.") from None
    if not isinstance(seconds, int) or not 0 < seconds <= MAX_TARGET:
        raise UsageError(f"A snooze lasts from 1s to {format_duration(MAX_TARGET)}.")
    why = _reason(reason)
    who = _audience(audience)

    def decide(state: IncidentState) -> Decision:
        _closed_check(state)
        if state.resolved_at is not None:
            raise Conflict(f"Incident {state.id} is resolved: no update is due.")
        now = max(ctx.clock.now(), state.last_event_at or ctx.clock.now())
        until = now + timedelta(seconds=seconds / state.speed)
        payload = {"audience": who, "seconds": seconds, "until": until.isoformat(), "reason": why}
        return [(ev.UPDATE_SNOOZED, payload)]

    return command(ctx, ref, decide)


def switch_updates(
    ctx: Context, ref: str, on: bool, reason: str, audience: str = "all"
) -> IncidentState:
    """Expect status updates again (``on``) or no longer, for one audience or all."""
    why = _reason(reason)
    who = _audience(audience)

    def decide(state: IncidentState) -> Decision:
        _closed_check(state)
        audiences = ("external", "internal") if who == "all" else (who,)
        if all(state.updates_on(a) == on for a in audiences):
            raise Conflict(f"Status updates are already {'on' if on else 'off'}.")
        return [(ev.UPDATES_SWITCHED, {"on": on, "audience": who, "reason": why})]

    return command(ctx, ref, decide)
