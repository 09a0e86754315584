"""Roles and the update cadence: who holds which role, handovers, and the status-update
reminder snoozed or switched off. Every one is an event.

When the incident's playbook says ``enforce_roles: true`` the commander's authority and
the handover's acknowledgement are binding (:func:`require_commander`): every check runs
inside the command's ``decide``, on the events the store appends after, in one store
transaction, so two responders racing a handover cannot both act as commander. It is a
coordination aid, not access control: anyone who can append to the log can write any
actor name."""

from __future__ import annotations

from datetime import timedelta

from playbook.core import events as ev
from playbook.core.durations import MAX_TARGET, format_duration
from playbook.core.state import Handover, IncidentState
from playbook.errors import Conflict, ExitCode, PlaybookError, UsageError
from playbook.service.context import Context, Decision, command, typed_text

AUDIENCE_CHOICES = ("all", "external", "internal")


COMMANDER = "commander"
"""The role that decides (severity, resolve, close) when roles are enforced."""


class NotCommander(PlaybookError):
    """Roles are enforced and someone else holds the commander role: refused before
    anything was recorded."""

    exit_code = ExitCode.REFUSED


def enforced(state: IncidentState) -> bool:
    """Whether the incident's playbook (as snapshotted at opening) makes roles binding."""
    return bool(state.snapshot.get("enforce_roles"))


def _take_over(state: IncidentState, holder: str, actor: str) -> str:
    return (
        f"Nothing was recorded. Ask {holder} to do it, or to hand the role over: {holder} "
        f"runs `playbook handover {state.id} {COMMANDER} {actor}`, then you run "
        f"`playbook handover {state.id} {COMMANDER} --accept`."
    )


def require_commander(state: IncidentState, actor: str, doing: str) -> None:
    """Refuse ``actor`` ``doing`` something only the commander may, when the playbook
    enforces roles and someone else holds the role. While nobody holds it anyone may, so
    a fresh incident is never stuck.

    Called from the use cases' ``decide`` (the state the append is decided on), never
    before it: a check on an earlier read would let a handover slip in between.

    Raises:
        NotCommander: naming the commander and how to take over.
    """
    if not enforced(state):
        return
    holder = state.roles.get(COMMANDER, "")
    if holder and holder != actor:
        raise NotCommander(
            f"Refused: {holder} is the incident commander of {state.id}, and only the "
            f"commander may {doing} (this playbook enforces roles).",
            _take_over(state, holder, actor),
        )


def _commander_change(state: IncidentState, actor: str, person: str) -> None:
    """Under enforcement the commander role is taken while free, released by its holder,
    and otherwise changes hands only by an accepted handover."""
    holder = state.roles.get(COMMANDER, "")
    if not enforced(state) or not holder or (actor == holder and not person):
        return
    if actor != holder:
        raise NotCommander(
            f"Refused: {holder} is the incident commander of {state.id}; the role changes "
            "hands only by a handover they offer and the new commander accepts (this "
            "playbook enforces roles).",
            _take_over(state, holder, actor),
        )
    raise NotCommander(
        "Refused: the commander role changes hands only when the new commander accepts "
        "(this playbook enforces roles).",
        f"Nothing was recorded. Offer it: `playbook handover {state.id} {COMMANDER} "
        f"{person}`; it is theirs when they run `playbook handover {state.id} {COMMANDER} "
        "--accept`.",
    )


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
        if wanted == COMMANDER:
            _commander_change(state, ctx.actor, person)
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
        if wanted == COMMANDER:
            require_commander(state, ctx.actor, "offer the commander role")
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
        if wanted == COMMANDER and enforced(state):
            _binding_acceptance(state, ctx.actor, taker, pending[-1])
        return [(ev.HANDOVER_ACCEPTED, {"role": wanted, "person": taker})]

    return command(ctx, ref, decide)


def _binding_acceptance(state: IncidentState, actor: str, taker: str, offer: Handover) -> None:
    """The acknowledgement is the new commander's own, of an offer the commander now made:
    nobody accepts for someone else, and an offer overtaken by another handover is void."""
    if taker != actor:
        raise NotCommander(
            f"Refused: only {taker} can accept the commander role offered to them "
            "(this playbook enforces roles).",
            "Nothing was recorded. The new commander runs "
            f"`playbook handover {state.id} {COMMANDER} --accept` themselves.",
        )
    holder = state.roles.get(COMMANDER, "")
    if offer.from_person != holder:
        raise NotCommander(
            f"Refused: this offer came from {offer.from_person or 'nobody'}, but {holder} "
            f"is the incident commander now (this playbook enforces roles).",
            f"Nothing was recorded. Ask {holder} to offer it: `playbook handover {state.id} "
            f"{COMMANDER} {taker}`.",
        )


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
