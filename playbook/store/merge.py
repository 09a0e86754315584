"""Merging events written on a stale view into a shared log: the rule the offline outbox
and ``playbook store push`` share.

An event whose type commutes (:data:`~playbook.core.events.COMMUTING`: ticks, notes,
evidence, action stages) is re-based onto the log's new tail. An event that replaces a
value (:data:`~playbook.core.events.REPLACES`: severity, status, phase, title) is refused
when someone else replaced the same value after the view it was decided on, and reported
with the events that did (who set what, when); otherwise it is re-based. Any other event
(``opened``) is merged only onto a log that has not moved. An event already in the log
(same id) is neither: it landed before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from playbook.core.events import (
    CLOSED,
    COMMUTING,
    HANDOVER_ACCEPTED,
    OPENED,
    REPLACES,
    RESOLVED,
    ROLE_ASSIGNED,
    SEVERITY_CHANGED,
    Event,
    NewEvent,
    format_utc,
)
from playbook.store import EventStore, as_new


@dataclass(frozen=True)
class Pending:
    """An event not yet in the shared log, and the last shared sequence its writer saw."""

    incident_id: str
    event: NewEvent
    base_seq: int


@dataclass(frozen=True)
class Refused:
    """An event that was not merged, because someone replaced what it replaces first."""

    incident_id: str
    event: NewEvent
    base_seq: int
    """The last shared sequence its writer had seen: fold the log up to it for the value
    the event was based on (a severity change also names it, in its ``from``)."""
    theirs: list[Event]
    """The shared events, by others, that replaced the same value after ``base_seq``:
    who set what, and when."""
    reason: str


def superseding(kind: str, since: Sequence[Event]) -> list[Event]:
    """The events among ``since`` (appended by others after an event of type ``kind`` was
    decided) that make it stale: none for a commuting type; those replacing the same
    field for an order-sensitive one; all of them for any other type (``opened``)."""
    if kind in COMMUTING:
        return []
    replaced = REPLACES.get(kind)
    if replaced is None:
        return list(since)
    return [e for e in since if REPLACES.get(e.type) == replaced]


def rebase(
    shared: Sequence[Event], pending: Sequence[Pending], ours: set[str]
) -> tuple[list[NewEvent], list[Refused], list[Pending]]:
    """What to append of ``pending`` onto the shared log ``shared`` (one incident).

    Returns the events to append (in order), those refused, and those already in the
    shared log. ``ours`` are the ids of events this writer made: not news to it. Once an
    incident's ``opened`` is refused (the id is another incident's), nothing else of it
    is merged.
    """
    present = {e.event_id for e in shared}
    merge: list[NewEvent] = []
    refused: list[Refused] = []
    landed: list[Pending] = []
    opening_refused = False
    for p in pending:
        if p.event.event_id in present:
            landed.append(p)
            continue
        since = [e for e in shared if e.seq > p.base_seq and e.event_id not in ours]
        theirs = superseding(p.event.type, since)
        commanded = [] if theirs else _commander_changes(shared, p.event, since)
        if opening_refused:
            reason = "the incident it belongs to was not merged"
        elif commanded:
            theirs, last = commanded, commanded[-1]
            reason = (
                f"{last.actor} changed who commands ({last.type} at {format_utc(last.at)}, "
                f"event {last.seq}) after the log this change was based on, and this "
                "incident's playbook enforces roles: only the commander decides it"
            )
        elif theirs:
            reason = _reason(p.event.type, theirs)
        else:
            merge.append(p.event)
            continue
        refused.append(Refused(p.incident_id, p.event, p.base_seq, theirs, reason))
        opening_refused = opening_refused or p.event.type == OPENED
    return merge, refused, landed


def merging(
    waiting: list[Pending], ours: set[str], outcome: dict[str, Any]
) -> Callable[[list[Event]], list[NewEvent]]:
    """An ``update`` decision that merges ``waiting`` by :func:`rebase`; what it refused
    and found already there is left in ``outcome`` (the last call's: a store may call it
    again on a retry)."""

    def decide(shared: list[Event]) -> list[NewEvent]:
        merge, refused, landed = rebase(shared, waiting, ours)
        outcome.update(refused=refused, landed=landed)
        return merge

    return decide


_COMMANDER_ONLY = frozenset({SEVERITY_CHANGED, RESOLVED, CLOSED})
"""What only the commander decides when the playbook enforces roles
(:mod:`playbook.service.roles`)."""


def _commander_changes(
    shared: Sequence[Event], event: NewEvent, since: Sequence[Event]
) -> list[Event]:
    """The events among ``since`` that moved the commander role to someone other than
    ``event``'s writer, when ``event`` is the commander's to decide and the incident (its
    ``opened`` snapshot) enforces roles: a decision made offline while the role moved is
    refused and shown, like a stale severity, never merged behind the new commander."""
    if event.type not in _COMMANDER_ONLY or not shared or shared[0].type != OPENED:
        return []
    snapshot = shared[0].payload.get("snapshot")
    if not isinstance(snapshot, dict) or not snapshot.get("enforce_roles"):
        return []
    moves = [
        e
        for e in shared
        if e.type in (ROLE_ASSIGNED, HANDOVER_ACCEPTED) and e.payload.get("role") == "commander"
    ]
    holder = str(moves[-1].payload.get("person", "")) if moves else ""
    if not holder or holder == event.actor:
        return []  # nobody commands now (anyone may), or the writer does
    later = {e.event_id for e in since}
    return [e for e in moves if e.event_id in later]


def _reason(kind: str, theirs: Sequence[Event]) -> str:
    last = theirs[-1]
    if kind == OPENED:
        return f"the shared store already has an incident with this id (opened by {last.actor})"
    what = REPLACES.get(kind, "the incident")
    return (
        f"{last.actor} changed the {what} ({last.type} at {format_utc(last.at)}, "
        f"event {last.seq}) after the log this change was based on (event "
        f"{theirs[0].seq - 1} or earlier)"
    )


@dataclass
class Pushed:
    """One incident copied by :func:`push`."""

    incident_id: str
    copied: int = 0
    already: int = 0
    refused: list[Refused] = field(default_factory=list)
    skipped: str = ""
    """Why nothing of it was copied (an unreadable event), or ""."""


# --------------------------------------------------------------------------- push


def push(local: EventStore, shared: EventStore) -> list[Pushed]:
    """Copy every incident of ``local`` to ``shared`` (``playbook store push``).

    Idempotent: an event already there (by id) is not copied again, so pushing twice
    copies nothing the second time. An incident the shared store already has with
    events of others gets this log's commuting events re-based after them, and its
    order-sensitive ones refused if the others replaced the same value (reported, and
    left in ``local``, which is never changed). An incident holding an unreadable event
    is not copied (its copy would not be the same log).
    """
    report: list[Pushed] = []
    for incident_id in local.incident_ids():
        events = local.read(incident_id)
        done = Pushed(incident_id)
        report.append(done)
        bad = next((e for e in events if e.problem), None)
        if bad is not None:
            done.skipped = f"event {bad.seq} ({bad.type}) is unreadable: {bad.problem}"
            continue
        ours = {e.event_id for e in events}
        # Seen by their writer: the events before them in this log, none of the others'.
        waiting = [Pending(incident_id, as_new(e), 0) for e in events]
        outcome: dict[str, Any] = {}
        _before, added = shared.update(incident_id, merging(waiting, ours, outcome))
        done.copied, done.refused = len(added), outcome["refused"]
        done.already = len(outcome["landed"])
    return report
