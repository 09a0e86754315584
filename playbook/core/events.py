"""The incident's events: the only thing that is stored about an incident.

An event is immutable once appended. Its payload is versioned plain JSON (``schema``),
never pickled state, so an old log always loads.

Each type has a small payload schema (:data:`SCHEMAS`): the keys the fold needs and their
JSON types. Every store refuses an event that does not match it (see
:func:`playbook.store.numbered`), and the fold skips, and names, an event read back that
does not (a row written by hand, or by a newer version), so one bad event never makes a
whole incident unreadable. Payload keys keep the order they were written in: a MongoDB
``sort`` of ``{role: 1, _id: -1}`` is not the same query as ``{_id: -1, role: 1}``.

Each event carries an id its client chose (so a retry never records it twice, and a copy
to a shared store is recognised) and the device it was made on. :data:`COMMUTING` and
:data:`REPLACES` say which events may be re-based onto a log that moved while their
writer was offline, and which must be refused and shown instead.
"""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

EVENT_SCHEMA = 1

OPENED = "opened"
ACKNOWLEDGED = "acknowledged"
SEVERITY_CHANGED = "severity_changed"
PHASE_ENTERED = "phase_entered"
ITEM_CHECKED = "item_checked"
ITEM_UNCHECKED = "item_unchecked"
NOTE_ADDED = "note_added"
STATUS_RENDERED = "status_rendered"
ESCALATED = "escalated"
RESOLVED = "resolved"
CLOSED = "closed"
SCENARIO_CHOSEN = "scenario_chosen"
DIAGNOSTIC_RUN = "diagnostic_run"
ACTION_STAGE = "action_stage"
"""A guarded action reached a stage: dry_run, backup, confirm, lock, apply, verify,
rollback, unlock; each ``started`` (where work that writes begins) and then ``done``,
``failed`` or ``refused``."""
DRILL_CHECKED = "drill_checked"
"""A drill's data was compared with the fingerprint taken before its fault was injected
(only a drill's log has it; a drill's ``opened`` event carries a ``drill`` block)."""
RENAMED = "renamed"
"""The incident's title changed: ``{"from": old title, "to": new title}``."""

EVENT_TYPES = (
    OPENED,
    ACKNOWLEDGED,
    SEVERITY_CHANGED,
    PHASE_ENTERED,
    ITEM_CHECKED,
    ITEM_UNCHECKED,
    NOTE_ADDED,
    STATUS_RENDERED,
    ESCALATED,
    RESOLVED,
    CLOSED,
    SCENARIO_CHOSEN,
    DIAGNOSTIC_RUN,
    ACTION_STAGE,
    DRILL_CHECKED,
    RENAMED,
)

JsonType = type | tuple[type, ...]
"""What a payload key must hold, as Python's JSON types: ``str``, ``int`` (never a bool),
``float`` (an int is a number too), ``bool``, ``dict``, ``list``, ``type(None)``."""

_NULL = type(None)

SCHEMAS: dict[str, dict[str, JsonType]] = {
    OPENED: {
        "title": str,
        "severity": str,
        "triggers": list,
        "playbook": dict,
        "snapshot": dict,
        "sections": list,
    },
    ACKNOWLEDGED: {},
    SEVERITY_CHANGED: {"from": str, "to": str, "reason": str},
    PHASE_ENTERED: {"phase": str},
    ITEM_CHECKED: {"item": str},
    ITEM_UNCHECKED: {"item": str},
    NOTE_ADDED: {"text": str},
    STATUS_RENDERED: {"template": str, "status": str, "text": str},
    ESCALATED: {"to": str, "reason": str},
    RESOLVED: {"summary": str},
    CLOSED: {},
    SCENARIO_CHOSEN: {"scenario": str},
    RENAMED: {"from": str, "to": str},
    DIAGNOSTIC_RUN: {
        "diagnostic": str,
        "kind": str,
        "target": str,
        "params": dict,
        "started": str,
        "ended": str,
        "verdict": str,
        "message": str,
        "checks": list,
        "metrics": dict,
        "rows": list,
        "rows_total": int,
        "partial": bool,
        "error": str,
        "file": (str, _NULL),
        "sha256": (str, _NULL),
    },
    ACTION_STAGE: {"run": str, "action": str, "target": str, "stage": str, "outcome": str},
    DRILL_CHECKED: {"restored": bool, "targets": dict},
}
"""Event type -> the payload keys it must have and their JSON types.

Extra keys are allowed, so a later version can add a field without making older logs or
older readers fail; a key listed here is one the fold or the exports rely on. A new event
type adds its line here (an unknown type is refused on append and skipped on read)."""

COMMUTING: frozenset[str] = frozenset(
    {
        ITEM_CHECKED,
        ITEM_UNCHECKED,
        NOTE_ADDED,
        STATUS_RENDERED,
        ESCALATED,
        SCENARIO_CHOSEN,
        DIAGNOSTIC_RUN,
        ACTION_STAGE,
        DRILL_CHECKED,
    }
)
"""Types that record a fact whose meaning does not depend on what was appended before it
(a tick, a note, evidence, an action stage that already happened). An event of one of these
types written on a stale view (offline, or copied from another log) is re-based onto the
log's new tail: it merges."""

REPLACES: dict[str, str] = {
    SEVERITY_CHANGED: "severity",
    PHASE_ENTERED: "phase",
    ACKNOWLEDGED: "status",
    RESOLVED: "status",
    CLOSED: "status",
    RENAMED: "title",
}
"""Order-sensitive types -> the incident field each replaces. An event of one of these types
written on a stale view is refused (kept and reported, never dropped) when another writer
replaced the same field after the view it was decided on; otherwise it is re-based.

A type in neither table (``opened``, and any type this version does not know) is re-based
only onto a log that has not moved at all."""

_JSON_NAMES = {
    str: "a string",
    int: "an integer",
    float: "a number",
    bool: "true or false",
    dict: "an object",
    list: "a list",
    _NULL: "null",
}


def _json_name(value: object) -> str:
    kind = type(value)
    return _JSON_NAMES.get(kind, kind.__name__)


def _holds(value: object, wanted: JsonType) -> bool:
    kinds = wanted if isinstance(wanted, tuple) else (wanted,)
    for kind in kinds:
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return True
        if kind not in (int, float) and isinstance(value, kind):
            return True
    return False


def payload_problem(kind: str, payload: object) -> str | None:
    """Why ``payload`` is not a valid payload of an event of type ``kind``, or None.

    A plain function of the registry, so every store (and the fold, on reading) applies
    the same rule.
    """
    schema = SCHEMAS.get(kind)
    if schema is None:
        return f"unknown event type {kind!r} (written by a newer playbook?)"
    if not isinstance(payload, dict):
        return f"its payload is {_json_name(payload)}, not an object"
    missing = [key for key in schema if key not in payload]
    if missing:
        return "its payload has no " + ", ".join(repr(k) for k in missing)
    for key, wanted in schema.items():
        if not _holds(payload[key], wanted):
            kinds = wanted if isinstance(wanted, tuple) else (wanted,)
            expected = " or ".join(_JSON_NAMES[k] for k in kinds)
            return f"its {key!r} is {_json_name(payload[key])}, not {expected}"
    return None


@lru_cache(maxsize=1)
def default_device() -> str:
    """Where this process runs, as ``host`` or ``host:terminal`` (``laptop:pts/3``): shown
    beside the actor, so a responder with two terminals open can tell which one acted.
    Read once per process."""
    host = socket.gethostname() or "unknown-host"
    for fd in (0, 1, 2):
        try:
            return f"{host}:{os.ttyname(fd).removeprefix('/dev/')}"
        except OSError:
            continue
    return host


def new_event_id() -> str:
    """A random (version 4) UUID, made by the client before it sends the event: a retry
    after a lost reply sends the same id, and the store returns the event it already has
    instead of recording it twice."""
    return str(uuid.uuid4())


@dataclass(frozen=True)
class NewEvent:
    """An event not yet appended: what happened, by whom, when, and from where."""

    type: str
    payload: dict[str, Any]
    actor: str
    at: datetime
    event_id: str = field(default_factory=new_event_id)
    """The event's identity in every store it is copied to (see :func:`new_event_id`)."""
    device: str = field(default_factory=default_device)
    """The host and terminal the client runs on (see :func:`default_device`)."""


@dataclass(frozen=True)
class Event:
    """An appended event: durable, numbered within its incident."""

    incident_id: str
    seq: int
    at: datetime
    actor: str
    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    schema: int = EVENT_SCHEMA
    unreadable: str = ""
    """Why the store could not read this event's payload (its JSON is broken), else "".
    The payload is then empty; the fold skips the event and names it."""
    event_id: str = ""
    """The id the client gave the event (:attr:`NewEvent.event_id`); for an event recorded
    before ids existed, one derived from its incident, sequence, time and type."""
    device: str = ""
    """Where the event was made (:attr:`NewEvent.device`); "" when recorded before."""

    @property
    def problem(self) -> str | None:
        """Why this event cannot be folded (broken JSON, a payload that fails its type's
        schema, a type this version does not know), or None when it can."""
        return self.unreadable or payload_problem(self.type, self.payload)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "incident_id": self.incident_id,
            "seq": self.seq,
            "at": format_utc(self.at),
            "actor": self.actor,
            "type": self.type,
            "payload": self.payload,
            "schema": self.schema,
        }
        if self.unreadable:
            data["unreadable"] = self.unreadable
        if self.event_id:
            data["event_id"] = self.event_id
        if self.device:
            data["device"] = self.device
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Event:
        return cls(
            incident_id=str(data["incident_id"]),
            seq=int(data["seq"]),
            at=parse_utc(str(data["at"])),
            actor=str(data["actor"]),
            type=str(data["type"]),
            payload=dict(data.get("payload") or {}),
            schema=int(data.get("schema", EVENT_SCHEMA)),
            unreadable=str(data.get("unreadable") or ""),
            event_id=str(data.get("event_id") or ""),
            device=str(data.get("device") or ""),
        )


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z, sortable as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
