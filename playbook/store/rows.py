"""Rows to events and back, the same for every store that keeps events as rows of text
(SQLite, PostgreSQL, the outbox's local cache).

Payloads are stored as JSON text with their keys in the order they were written (never
``sort_keys``): a MongoDB ``sort`` in a playbook snapshot or an evidence payload means
what its key order says. A row that cannot be read back (broken or over-deep JSON, a
lone surrogate, a time, sequence number or schema that is not one, bytes that are not
UTF-8: only a hand edit, a damaged file or a newer version makes one) is returned marked
``unreadable`` rather than failing the whole incident (:func:`event_from_row`).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from playbook.core.events import EVENT_SCHEMA, Event, format_utc, parse_utc, read_payload

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


class NotUtf8(bytes):
    """A TEXT value whose bytes are not UTF-8 (a damaged file or a hand edit), kept as
    bytes by the store's text factory so that the row, not the whole query, is what
    cannot be read."""


LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""Times outside [EPOCH, LATEST) are not a time an event happened at; a deadline a
month after one near year 9999 would not fit in a ``datetime``."""


def _shown(value: object) -> str:
    """A stored value as it may appear in a reason: short, and never raising."""
    if isinstance(value, bytes):
        return f"bytes {bytes(value[:40])!r}"
    return repr(value)[:60]


def event_from_row(row: Sequence[object], previous: datetime) -> Event:
    """One row of :data:`ROW_COLUMNS` as an event; never raises, whatever the row holds.

    A store keeps whatever a hand edit puts in a column (text in ``seq``, ``v2`` in
    ``schema``, a blob in ``payload``), so every field is checked before it is used. A
    row that fails is returned marked ``unreadable`` with an empty payload and the
    reasons, so that the incident's other events still fold and export, and the bad one
    is named. Its time falls back to ``previous`` (the event before it); a sequence
    number that is not a positive integer is shown as 0 (its reason quotes what is
    stored).
    """
    incident_raw, seq_raw, at_raw, actor_raw, kind_raw, text, schema_raw, event_id, device = row
    problems: list[str] = []
    incident_id = incident_raw if isinstance(incident_raw, str) else _shown(incident_raw)
    seq = seq_raw if type(seq_raw) is int and seq_raw > 0 else 0
    if not seq:
        problems.append(f"its sequence number {_shown(seq_raw)} is not a positive integer")
    at = previous
    if isinstance(at_raw, str) and not isinstance(at_raw, bytes):
        try:
            moment = parse_utc(at_raw)
        except (ValueError, OverflowError):
            problems.append(f"its time {at_raw[:40]!r} is not an ISO 8601 time")
        else:
            if EPOCH <= moment < LATEST:
                at = moment
            else:
                problems.append(f"its time {at_raw[:40]!r} is not a plausible time")
    else:
        problems.append(f"its time {_shown(at_raw)} is not text")
    actor = actor_raw if isinstance(actor_raw, str) else "?"
    if not isinstance(actor_raw, str):
        problems.append(f"its actor {_shown(actor_raw)} is not text")
    kind = kind_raw if isinstance(kind_raw, str) else "?"
    if not isinstance(kind_raw, str):
        problems.append(f"its type {_shown(kind_raw)} is not text")
    schema = schema_raw if type(schema_raw) is int else 0
    if schema != EVENT_SCHEMA:
        newer = " (written by a newer playbook?)" if schema > EVENT_SCHEMA else ""
        problems.append(f"its schema {_shown(schema_raw)} is not {EVENT_SCHEMA}{newer}")
    payload: dict[str, object] = {}
    if isinstance(text, str):
        if not problems:
            payload, why = read_payload(text)
            if why:
                problems.append(why)
    else:
        problems.append(f"its payload {_shown(text)} is not text")
    at_text = at_raw if isinstance(at_raw, str) else ""
    return Event(
        incident_id,
        seq,
        at,
        actor,
        kind,
        payload,
        schema or EVENT_SCHEMA,
        unreadable="; ".join(problems),
        event_id=str(event_id)
        if isinstance(event_id, str) and event_id
        else derived_event_id(incident_id, seq, at_text, kind),
        device=device if isinstance(device, str) else "",
    )


def events_from_rows(rows: Sequence[Sequence[object]]) -> list[Event]:
    """Rows in sequence order as events (see :func:`event_from_row`)."""
    events: list[Event] = []
    for row in rows:
        events.append(event_from_row(row, events[-1].at if events else EPOCH))
    return events
