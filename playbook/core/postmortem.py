"""The postmortem's records, folded from their events (issue 15 §6): impact figures,
follow-up actions, pinned events and retrospective notes.

A pure part of the fold (:mod:`playbook.core.state` registers :data:`FOLDS`): each
function takes the incident's state and one event. An event that names something the
incident does not have (follow-up 7 of 3, a pin of a later event, a retrospective field
nobody knows) raises :class:`Refused`; the fold skips it and names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from playbook.core import events as ev
from playbook.core.events import Event


class Refused(ValueError):
    """The event names something this incident does not have; it is not folded."""


@dataclass(frozen=True)
class ImpactFigure:
    """One impact figure as last recorded: the value as typed, when and by whom."""

    key: str
    value: str
    at: datetime
    actor: str


@dataclass
class FollowUp:
    """A follow-up action of the postmortem."""

    number: int
    title: str
    owner: str
    due: str
    """An ISO date (``2026-12-05``) or "" when none was given."""
    ticket: str
    added_at: datetime
    added_by: str
    done_at: datetime | None = None
    done_by: str = ""


@dataclass(frozen=True)
class RetrospectiveNote:
    """What went well, badly, the root cause, …: ``field`` says which."""

    field: str
    text: str
    at: datetime
    actor: str


def _impact_recorded(state: Any, event: Event) -> None:
    for key, value in event.payload["set"].items():
        state.impact[key] = ImpactFigure(key, value, event.at, event.actor)


def _followup_added(state: Any, event: Event) -> None:
    p = event.payload
    state.followups.append(
        FollowUp(
            len(state.followups) + 1,
            p["title"],
            p["owner"],
            p["due"],
            p["ticket"],
            event.at,
            event.actor,
        )
    )


def _followup_done(state: Any, event: Event) -> None:
    number = event.payload["number"]
    if not 1 <= number <= len(state.followups):
        raise Refused(
            f"it marks follow-up {number} done, and the incident has "
            f"{len(state.followups)} follow-up(s)"
        )
    followup = state.followups[number - 1]
    followup.done_at, followup.done_by = event.at, event.actor


def _event_pinned(state: Any, event: Event) -> None:
    seq = event.payload["seq"]
    if not 1 <= seq < event.seq:
        raise Refused(f"it pins event {seq}, which is not an earlier event")
    if seq not in state.pinned:
        state.pinned.append(seq)


def _retrospective_noted(state: Any, event: Event) -> None:
    p = event.payload
    if p["field"] not in ev.RETROSPECTIVE_FIELDS:
        raise Refused(
            f"its field {p['field']!r} is not one of {', '.join(ev.RETROSPECTIVE_FIELDS)}"
        )
    state.retrospective.append(RetrospectiveNote(p["field"], p["text"], event.at, event.actor))


FOLDS: dict[str, Callable[[Any, Event], None]] = {
    ev.IMPACT_RECORDED: _impact_recorded,
    ev.FOLLOWUP_ADDED: _followup_added,
    ev.FOLLOWUP_DONE: _followup_done,
    ev.EVENT_PINNED: _event_pinned,
    ev.RETROSPECTIVE_NOTED: _retrospective_noted,
}
"""Event type -> the function that folds it into an
:class:`~playbook.core.state.IncidentState` (typed ``Any`` here: state imports this)."""
