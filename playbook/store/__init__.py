"""The incident event log: one protocol, an in-memory twin, and SQLite (the default).

An append names the sequence number the caller last saw; if another writer appended
since, the append fails with :class:`ConcurrencyConflict` instead of forking the log.
``append`` returns only after the events are durable.

Every store numbers new events with :func:`numbered`, which also refuses an event whose
payload does not match its type's schema (:data:`playbook.core.events.SCHEMAS`) or is not
plain JSON: an interrupted command can leave nothing, or a complete event, never an empty
or partial one that would make the incident unreadable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Protocol

from playbook.core.events import Event, NewEvent, content_problem, payload_problem
from playbook.errors import PlaybookError, StoreError


class ConcurrencyConflict(PlaybookError):
    """Someone else appended to the incident first; re-read and try again."""

    exit_code = 4


class InvalidEvent(StoreError):
    """An event's payload does not match its type's schema; nothing was appended."""


class EventStore(Protocol):
    """Where incidents' events live."""

    def append(
        self, incident_id: str, expected_seq: int, events: Sequence[NewEvent]
    ) -> list[Event]:
        """Append ``events`` after sequence ``expected_seq`` (0 for a new incident).

        Returns:
            The appended events, numbered; they are durable when this returns.
        Raises:
            ConcurrencyConflict: the incident's last sequence is not ``expected_seq``.
            InvalidEvent: an event's payload does not match its type's schema.
            StoreError: the log could not be written (disk full, permissions, …).
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
        try:  # what SQLite stores; the memory twin must refuse the same payloads
            json.dumps(event.payload, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            problem = f"its payload is not plain JSON ({exc})"
    if problem is not None:
        raise InvalidEvent(
            f"Refused to record a {event.type!r} event: {problem}. Nothing was recorded.",
            "This is a bug in playbook (or in a plug-in); the incident's log is unchanged.",
        )


def numbered(incident_id: str, expected_seq: int, events: Sequence[NewEvent]) -> list[Event]:
    """Give new events their sequence numbers after ``expected_seq``, once each one is
    checked against its type's schema (:func:`check_event`).

    Raises:
        InvalidEvent: an event does not match its schema; none of them is numbered.
    """
    for event in events:
        check_event(event)
    return [
        Event(incident_id, expected_seq + i, e.at, e.actor, e.type, dict(e.payload))
        for i, e in enumerate(events, start=1)
    ]
