"""The incident event log: one protocol, an in-memory twin, SQLite (the default),
PostgreSQL (a team's shared log) and an offline outbox in front of a shared store.

An append names the sequence number the caller last saw; if another writer appended
since, the append fails with :class:`ConcurrencyConflict` instead of forking the log.
``append`` returns only after the events are durable. Every event carries an id its
client chose (:attr:`NewEvent.event_id`): sending a batch again returns the events already
recorded instead of recording them twice, so a retry after a lost reply is always safe.

Every store numbers new events with :func:`numbered`, which also refuses an event whose
payload does not match its type's schema (:data:`playbook.core.events.SCHEMAS`) or is not
plain JSON: an interrupted command can leave nothing, or a complete event, never an empty
or partial one that would make the incident unreadable.

Every store can also be followed (:meth:`EventStore.follow`): a blocking feed of the
events other writers append, for a thread worker, and says who has an incident open
(:meth:`EventStore.presence`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from playbook.core.events import Event, NewEvent, content_problem, payload_problem
from playbook.errors import ExitCode, PlaybookError, StoreError

MAX_INCIDENT_ID = 200
"""Longest incident id a store records, in characters. A PostgreSQL notification carries
``incident:seq`` and must stay under 8,000 bytes; every store applies the same bound."""


class ConcurrencyConflict(PlaybookError):
    """Someone else appended to the incident first; re-read and try again."""

    exit_code = ExitCode.CONFLICT


class InvalidEvent(StoreError):
    """An event's payload does not match its type's schema; nothing was appended."""


class StoreUnavailable(StoreError):
    """The (shared) store cannot be reached: the server is down, or the network is.

    ``unconfirmed`` holds the events whose fate is unknown (the connection broke after
    they were sent): they may have been recorded or not. Sending them again, with the same
    event ids, is safe, which is what :class:`playbook.store.outbox.OutboxStore` does.
    ``seen`` is the log that ``update``'s ``decide`` was given for them, if it ran.
    """

    def __init__(
        self,
        title: str,
        message: str = "",
        unconfirmed: Sequence[NewEvent] = (),
        seen: Sequence[Event] | None = None,
    ) -> None:
        super().__init__(title, message)
        self.unconfirmed = list(unconfirmed)
        self.seen = None if seen is None else list(seen)


@dataclass(frozen=True)
class Presence:
    """Someone who has an incident open (following it) right now."""

    incident_id: str
    actor: str
    device: str
    since: datetime
    """When they opened it."""


class Feed(Protocol):
    """The events appended to one incident (or to every incident), as they land.

    Use it from a thread worker::

        with store.follow(incident_id, after=last_seq) as feed:
            while not cancelled:
                for event in feed.get(timeout=0.5):
                    ...  # post a message; never touch a widget from here

    Every event comes exactly once and in sequence order per incident, whatever the
    store's notifications did (duplicates are dropped, gaps closed by reading).
    """

    connected: bool
    """False while the store cannot be reached; the feed reconnects by itself and then
    catches up, so nothing is missed."""
    error: str
    """Why it is not connected (the server named, its password masked), or ""."""

    def get(self, timeout: float) -> list[Event]:
        """Wait up to ``timeout`` seconds for new events; those that came (maybe none).

        Returns at once, empty, once :meth:`stop` was called.
        """
        ...

    def stop(self) -> None:
        """Make :meth:`get` return (from any thread) within a fraction of a second."""
        ...

    def close(self) -> None:
        """Stop, and release the feed's connection (and its presence)."""
        ...

    def __enter__(self) -> Feed: ...

    def __exit__(self, *exc: object) -> None: ...


class EventStore(Protocol):
    """Where incidents' events live."""

    def append(
        self, incident_id: str, expected_seq: int, events: Sequence[NewEvent]
    ) -> list[Event]:
        """Append ``events`` after sequence ``expected_seq`` (0 for a new incident).

        If every event's ``event_id`` is already recorded (a retry after a lost reply),
        nothing is appended and the events as recorded are returned.

        Returns:
            The appended events, numbered; they are durable when this returns.
        Raises:
            ConcurrencyConflict: the incident's last sequence is not ``expected_seq``.
            InvalidEvent: an event's payload does not match its type's schema.
            StoreError: the log could not be written (disk full, permissions, …);
                :class:`StoreUnavailable` when its server cannot be reached.
        """
        ...

    def update(
        self, incident_id: str, decide: Callable[[list[Event]], Sequence[NewEvent]]
    ) -> tuple[list[Event], list[Event]]:
        """Read an incident's events and append what ``decide`` makes of them, atomically.

        No other writer can append between the read and the append, so a decision is
        never made on stale events. ``decide`` may raise to append nothing.

        Returns:
            The events that were read, and the events appended (durable on return).
        Raises:
            InvalidEvent: an event ``decide`` made does not match its type's schema.
            StoreError: the log could not be written.
        """
        ...

    def read(self, incident_id: str) -> list[Event]:
        """Every event of an incident, in sequence order (empty if none)."""
        ...

    def incident_ids(self) -> list[str]:
        """Every incident with at least one event, oldest first."""
        ...

    def follow(
        self,
        incident_id: str | None = None,
        after: int = 0,
        present_as: tuple[str, str] | None = None,
    ) -> Feed:
        """A feed of the events appended to ``incident_id`` after sequence ``after``; or,
        with no incident, of every incident's events appended from now on.

        ``present_as`` (actor, device) marks the follower present on the incident for as
        long as the feed is open (see :meth:`presence`).
        """
        ...

    def presence(self, incident_id: str | None = None) -> list[Presence]:
        """Who has ``incident_id`` (or any incident) open now, earliest first."""
        ...

    def close(self) -> None:
        """Release the store's resources."""
        ...


def check_event(event: NewEvent) -> None:
    """Refuse ``event`` unless its payload matches its type's schema and is plain JSON
    that the store can read back: no deeper than :data:`~playbook.core.events.MAX_DEPTH`
    and without lone surrogates (the service escapes those from databases first), so a
    store never writes an event that it would then call unreadable.

    Raises:
        InvalidEvent: naming the type and what is wrong; nothing is appended.
    """
    problem = payload_problem(event.type, event.payload) or content_problem(event.payload)
    if problem is None:
        try:  # what SQLite and PostgreSQL store; the memory twin must refuse the same
            json.dumps(event.payload, ensure_ascii=False, allow_nan=False).encode()
        except (TypeError, ValueError) as exc:  # NaN; UnicodeEncodeError: a lone surrogate
            problem = f"its payload is not plain JSON ({exc})"
    if problem is None and not event.event_id:
        problem = "it has no event id"
    if problem is not None:
        raise InvalidEvent(
            f"Refused to record a {event.type!r} event: {problem}. Nothing was recorded.",
            "This is a bug in playbook (or in a plug-in); the incident's log is unchanged.",
        )


def check_incident_id(incident_id: str) -> None:
    """Refuse an incident id that is empty, longer than :data:`MAX_INCIDENT_ID` or holds a
    control character (it travels in notifications and is shown in lists)."""
    bad = not incident_id or len(incident_id) > MAX_INCIDENT_ID
    if bad or any(ord(c) < 32 or ord(c) == 127 for c in incident_id):
        raise InvalidEvent(
            f"Refused an incident id of {len(incident_id)} characters: an id has 1 to "
            f"{MAX_INCIDENT_ID} printable characters. Nothing was recorded.",
            "This is a bug in playbook (or in a plug-in); no log was changed.",
        )


def numbered(incident_id: str, expected_seq: int, events: Sequence[NewEvent]) -> list[Event]:
    """Give new events their sequence numbers after ``expected_seq``, once each one is
    checked against its type's schema (:func:`check_event`).

    Raises:
        InvalidEvent: an event does not match its schema, or two share an id; none of
            them is numbered.
    """
    check_incident_id(incident_id)
    for event in events:
        check_event(event)
    if len({e.event_id for e in events}) != len(events):
        raise InvalidEvent(
            "Refused a batch of events that holds the same event id twice. Nothing was recorded.",
            "This is a bug in playbook (or in a plug-in); the incident's log is unchanged.",
        )
    return [
        Event(
            incident_id,
            expected_seq + i,
            e.at,
            e.actor,
            e.type,
            dict(e.payload),
            event_id=e.event_id,
            device=e.device,
        )
        for i, e in enumerate(events, start=1)
    ]


def already_recorded(
    incident_id: str, events: Sequence[NewEvent], found: Sequence[Event]
) -> list[Event] | None:
    """The batch ``events`` as recorded before, given the recorded events that carry its
    ids (``found``); None when none of them is recorded (append it).

    A batch is recorded in one transaction, so it is there whole or not at all; finding a
    part of it, or finding it in another incident, means an id was reused.

    Raises:
        InvalidEvent: only part of the batch is recorded, or it is in another incident.
    """
    if not found:
        return None
    by_id = {e.event_id: e for e in found}
    elsewhere = sorted({e.incident_id for e in found if e.incident_id != incident_id})
    if elsewhere or any(e.event_id not in by_id for e in events):
        where = f" in incident {elsewhere[0]}" if elsewhere else ""
        raise InvalidEvent(
            f"Refused to record events whose ids are already recorded{where} with other "
            "events. Nothing was recorded.",
            "This is a bug in playbook (or in a plug-in): an event id was reused.",
        )
    return [by_id[e.event_id] for e in events]


def reused_ids(found: Sequence[Event]) -> InvalidEvent:
    """The error for new events (made by ``update``'s ``decide``) whose ids are already
    recorded: an id was reused."""
    where = f" (in incident {found[0].incident_id})" if found else ""
    return InvalidEvent(
        f"Refused to record events whose ids are already recorded{where}. Nothing was recorded.",
        "This is a bug in playbook (or in a plug-in): an event id was reused.",
    )


def as_new(event: Event) -> NewEvent:
    """``event`` as a new event with the same identity, to copy it to another store (the
    copy is recognised there by its ``event_id``)."""
    return NewEvent(
        event.type,
        dict(event.payload),
        event.actor,
        event.at,
        event_id=event.event_id,
        device=event.device,
    )
