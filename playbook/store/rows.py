"""Rows to events and back, the same for every store that keeps events as rows of text
(SQLite, PostgreSQL, the outbox's local cache).

Payloads are stored as JSON text with their keys in the order they were written (never
``sort_keys``): a MongoDB ``sort`` in a playbook snapshot or an evidence payload means
what its key order says. A row that cannot be read back (broken JSON, a time that is not
one: only a hand edit or a damaged file makes one) is returned marked ``unreadable``
rather than failing the whole incident.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from playbook.core.events import Event, format_utc, parse_utc

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

ROW_COLUMNS = "incident_id, seq, at, actor, type, payload, schema, event_id, device"
"""The columns :func:`event_from_row` reads, in its order."""

_DERIVED = uuid.UUID("5d1c2b52-7a57-4c43-9a0e-6b1f9e0f7c11")
"""The namespace of ids derived for events recorded before events had ids."""


def derived_event_id(incident_id: str, seq: int, at_text: str, kind: str) -> str:
    """A stable id for an event recorded without one: the same row always gets the same
    id, so copying an old log to a shared store twice copies it once."""
    return str(uuid.uuid5(_DERIVED, f"{incident_id}\0{seq}\0{at_text}\0{kind}"))


def payload_text(payload: dict[str, object]) -> str:
    """A payload as stored: JSON, keys in written order, non-ASCII kept as is."""
    return json.dumps(payload, ensure_ascii=False)


def row_of(event: Event) -> tuple[object, ...]:
    """``event`` as a row of :data:`ROW_COLUMNS`."""
    return (
        event.incident_id,
        event.seq,
        format_utc(event.at),
        event.actor,
        event.type,
        payload_text(event.payload),
        event.schema,
        event.event_id,
        event.device,
    )


def event_from_row(row: Sequence[object], previous: datetime) -> Event:
    """One row of :data:`ROW_COLUMNS` as an event; a row that cannot be read is returned
    marked ``unreadable`` (empty payload, the previous event's time) so that the
    incident's other events still fold and export."""
    incident_id, seq, at_text, actor, kind, text, schema, event_id, device = row
    problems: list[str] = []
    try:
        at = parse_utc(str(at_text))
    except ValueError:
        at = previous
        problems.append(f"its time {str(at_text)[:40]!r} is not an ISO 8601 time")
    payload: object = {}
    try:
        payload = json.loads(str(text))
    except ValueError as exc:  # json.JSONDecodeError, or text that is not UTF-8
        problems.append(f"its payload is not JSON ({exc})")
    if not isinstance(payload, dict):
        if not problems:
            problems.append(f"its payload is a {type(payload).__name__}, not a JSON object")
        payload = {}
    return Event(
        str(incident_id),
        int(seq),  # type: ignore[call-overload]
        at,
        str(actor),
        str(kind),
        payload,
        int(schema),  # type: ignore[call-overload]
        unreadable="; ".join(problems),
        event_id=str(event_id)
        if event_id
        else derived_event_id(str(incident_id), int(seq), str(at_text), str(kind)),  # type: ignore[call-overload]
        device=str(device or ""),
    )


def events_from_rows(rows: Sequence[Sequence[object]]) -> list[Event]:
    """Rows in sequence order as events (see :func:`event_from_row`)."""
    events: list[Event] = []
    for row in rows:
        events.append(event_from_row(row, events[-1].at if events else EPOCH))
    return events
