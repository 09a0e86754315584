"""Roles, handovers and the update cadence in words: the timeline's lines for their
events, and the roles sections of the JSON and Markdown exports.

Kept apart from :mod:`playbook.render.export` so the export only calls in (one line per
place), and the postmortem export can reuse the same words.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from playbook.core import events as ev
from playbook.core.durations import format_duration
from playbook.core.events import Event
from playbook.core.state import IncidentState
from playbook.render import markdown as md

LEVEL_EVENTS = frozenset(
    {
        ev.ROLE_ASSIGNED,
        ev.HANDOVER_OFFERED,
        ev.HANDOVER_ACCEPTED,
        ev.UPDATE_SNOOZED,
        ev.UPDATES_SWITCHED,
    }
)


def _role(state: IncidentState | None, role: object) -> str:
    name = state.role_names.get(str(role), "") if state is not None else ""
    return f"{name} ({role})" if name and name != role else str(role)


def describe_level_event(event: Event, state: IncidentState | None = None) -> str:
    """One line of plain text for a role, handover or update-cadence event."""
    p = event.payload
    kind = event.type
    if kind == ev.ROLE_ASSIGNED:
        if not p.get("person"):
            return f"Role {_role(state, p.get('role'))} released"
        return f"Role {_role(state, p.get('role'))}: {p.get('person')} (assigned by {event.actor})"
    if kind == ev.HANDOVER_OFFERED:
        brief = f" — brief: {p['brief']}" if p.get("brief") else ""
        return (
            f"Handover of {_role(state, p.get('role'))} offered by {p.get('from') or '(nobody)'} "
            f"to {p.get('to')}{brief}"
        )
    if kind == ev.HANDOVER_ACCEPTED:
        return f"Handover accepted: {p.get('person')} is {_role(state, p.get('role'))} now"
    if kind == ev.UPDATE_SNOOZED:
        seconds = p.get("seconds")
        length = format_duration(seconds) if isinstance(seconds, int | float) else "?"
        return (
            f"Update reminder ({p.get('audience')}) snoozed for {length}, until "
            f"{str(p.get('until', ''))[11:16]}Z: {p.get('reason')}"
        )
    if kind == ev.UPDATES_SWITCHED:
        which = "" if p.get("audience") == "all" else f" ({p.get('audience')})"
        state_word = "on" if p.get("on") else "off"
        return f"Status updates{which} switched {state_word}: {p.get('reason')}"
    return kind


SCRIBE = "scribe"
"""The role whose notes the timeline and the exports mark "(scribe)"."""


def scribe_mark(state: IncidentState | None, seq: int, actor: str) -> str:
    """`` (scribe)`` when ``actor`` held the scribe role as event ``seq`` was appended:
    read from the role history when shown, so the log holds the note once and a role
    put right later never disagrees with a copy."""
    if state is None or not actor or not state.role_history:
        return ""  # nobody was ever given a role: the common case, answered at once
    if state.holder_at(SCRIBE, seq) != actor:
        return ""
    return " (scribe)"


def roles_json(state: IncidentState) -> dict[str, Any]:
    """Who holds each role now, every change, and every handover (plain data)."""
    return {
        "holders": dict(state.roles),
        "names": dict(state.role_names),
        "changes": [
            {
                "at": change.at.isoformat(),
                "by": change.actor,
                "role": change.role,
                "person": change.person,
                "previous": change.previous,
                "how": change.how,
            }
            for change in state.role_history
        ],
        "handovers": [h.as_dict() for h in state.handovers],
        "scribe_notes": [n.seq for n in state.notes if scribe_mark(state, n.seq, n.actor)],
    }


def roles_markdown(add: Callable[[str], None], state: IncidentState) -> None:
    """The export's ``## Roles`` section: holders, then handovers."""
    add("## Roles")
    add("")
    if not state.roles and not state.role_history:
        add("Nobody was assigned a role.")
        add("")
        return
    add("| Role | Held by | Since (UTC) |")
    add("|---|---|---|")
    for role in dict.fromkeys([*state.role_names, *state.roles]):
        holder = state.roles.get(role, "")
        since = next((c.at for c in reversed(state.role_history) if c.role == role), None)
        add(
            f"| {md.text(_role(state, role))} | {md.text(holder or '—')} | "
            f"{f'{since:%Y-%m-%d %H:%M}Z' if since and holder else ''} |"
        )
    add("")
    if state.handovers:
        add("Handovers:")
        add("")
        for h in state.handovers:
            taken = f"accepted {h.accepted_at:%H:%M}Z" if h.accepted_at else "not (yet) accepted"
            add(
                f"- {h.at:%Y-%m-%d %H:%M}Z {md.text(_role(state, h.role))}: "
                f"{md.text(h.from_person or '(nobody)')} → {md.text(h.to_person)}, {taken}"
                + (f" — {md.text(h.brief)}" if h.brief else "")
            )
        add("")
