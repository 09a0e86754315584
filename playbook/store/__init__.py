"""The incident event log: one protocol, an in-memory twin, and SQLite (the default).

An append names the sequence number the caller last saw; if another writer appended
since, the append fails with :class:`ConcurrencyConflict` instead of forking the log.
``append`` returns only after the events are durable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

from playbook.core.events import Event, NewEvent
from playbook.errors import PlaybookError


class ConcurrencyConflict(PlaybookError):
    """Someone else appended to the incident first; re-read and try again."""

    exit_code = 4


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


def numbered(incident_id: str, expected_seq: int, events: Sequence[NewEvent]) -> list[Event]:
    """Give new events their sequence numbers after ``expected_seq``."""
    return [
        Event(incident_id, expected_seq + i, e.at, e.actor, e.type, dict(e.payload))
        for i, e in enumerate(events, start=1)
    ]
