"""The incident's events: the only thing that is stored about an incident.

An event is immutable once appended. Its payload is versioned plain JSON (``schema``),
never pickled state, so an old log always loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
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


@dataclass(frozen=True)
class NewEvent:
    """An event not yet appended: what happened, by whom, when."""

    type: str
    payload: dict[str, Any]
    actor: str
    at: datetime


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

    def to_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "seq": self.seq,
            "at": format_utc(self.at),
            "actor": self.actor,
            "type": self.type,
            "payload": self.payload,
            "schema": self.schema,
        }

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
        )


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a Z, sortable as text."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
