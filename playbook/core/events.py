"""The incident's events: the only thing that is stored about an incident.

(Over 600 lines: every event type, its payload schema and whether it commutes are one
table that every store, the fold and the merge read; split, a new type could be added to
one part and forgotten in another.)

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

import json
import math
import os
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from playbook.core.text import first_unpaired

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
ROLE_ASSIGNED = "role_assigned"
"""Someone holds a role now: ``{"role", "person", "by"}`` (``person`` empty: released)."""
HANDOVER_OFFERED = "handover_offered"
"""A role's holder offers it to someone: ``{"role", "from", "to", "brief"}``. The role
changes hands only when the new holder accepts."""
HANDOVER_ACCEPTED = "handover_accepted"
"""The person offered a role took it: ``{"role", "person"}``."""
UPDATE_SNOOZED = "update_snoozed"
"""The status-update reminder is quiet until ``until``: ``{"audience", "seconds",
"until", "reason"}``. The update's due time does not move."""
UPDATES_SWITCHED = "updates_switched"
"""Status updates are expected again (``on``) or no longer: ``{"on", "audience",
"reason"}`` (audience ``all`` or one audience)."""
PLAYBOOK_UPGRADED = "playbook_upgraded"
"""The incident moved to an edited playbook (`playbook upgrade`): the new playbook's
snapshot and checklist replace the ones it was opened with, and the payload keeps both
SHA-256 digests and what was added, removed and changed."""

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
    ROLE_ASSIGNED,
    HANDOVER_OFFERED,
    HANDOVER_ACCEPTED,
    UPDATE_SNOOZED,
    UPDATES_SWITCHED,
    PLAYBOOK_UPGRADED,
)

JsonType = Any
"""What a payload value must hold, as plain data:

- a Python JSON type: ``str``, ``int`` (never a bool), ``float`` (a finite number; an int
  is a number too), ``bool``, ``dict``, ``list``, ``type(None)``, or a tuple of them;
- a dict ``{key: schema}``: an object with those keys (``"key?"``: the key may be absent)
  and any others; ``{"*": schema}``: an object whose every value matches ``schema``;
- a one-item list ``[schema]``: a list whose every item matches ``schema``;
- ``ANY``: whatever JSON."""

_NULL = type(None)
ANY: JsonType = object
"""Any JSON value (what is not read, only shown, such as a diagnostic's rows)."""
NUMBER: JsonType = float
"""A finite number: seconds, a speed."""

_LEVEL = {
    "id": str,
    "name?": str,
    # Optional since levels may set no target; an older log always has all three.
    "response?": (NUMBER, _NULL),
    "resolution?": (NUMBER, _NULL),
    "status_update_every?": (NUMBER, _NULL),
    # A list, a mapping per audience, "none" or null: the fold reads it step by step.
    "updates?": ANY,
    "notify?": str,
    "escalation?": (list, _NULL),
}
_SNAPSHOT = {
    "service?": str,
    "severity?": {"levels?": [_LEVEL], "escalation_path?": [str]},
    "phases?": [{"id": str, "title": str, "stage?": str, "starts": NUMBER, "ends": NUMBER}],
    "scenarios?": [{"id?": str}],
    "communications?": {
        "template_dir?": str,
        "templates?": {"*": {"file": str, "status?": str, "audience?": str}},
    },
    "roles?": [{"id": str, "name?": str}],
}
"""The parts of a playbook's snapshot that the fold and the readers of its state use
(the rest is read through the playbook model, which checks it itself)."""
_SECTIONS = [
    {
        "id": str,
        "title": str,
        "steps": [{"id": str, "title": str, "items": [{"ref": str, "text": str}]}],
    }
]
_DRILL = {
    "title?": str,
    "speed?": NUMBER,
    "services?": {"*": str},
    "fingerprint?": dict,
    "setup?": {"*": ANY},
    "source?": str,
    "briefing?": str,
}

SCHEMAS: dict[str, dict[str, JsonType]] = {
    OPENED: {
        "title": str,
        "severity": str,
        "triggers": [str],
        "playbook": {"id?": str, "title?": str, "path?": str, "sha256?": str},
        "snapshot": _SNAPSHOT,
        "sections": _SECTIONS,
        "drill?": _DRILL,
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
    ROLE_ASSIGNED: {"role": str, "person": str, "by?": str},
    HANDOVER_OFFERED: {"role": str, "from": str, "to": str, "brief?": str},
    HANDOVER_ACCEPTED: {"role": str, "person": str},
    UPDATE_SNOOZED: {"audience": str, "seconds": NUMBER, "until": str, "reason": str},
    UPDATES_SWITCHED: {"on": bool, "audience": str, "reason": str},
    DIAGNOSTIC_RUN: {
        "diagnostic": str,
        "kind": str,
        "target": str,
        "params": dict,
        "started": str,
        "ended": str,
        "verdict": str,
        "message": str,
        "checks": [{"text": str}],
        "metrics": dict,
        "rows": list,
        "rows_total": int,
        "partial": bool,
        "error": str,
        "file": (str, _NULL),
        "sha256": (str, _NULL),
    },
    ACTION_STAGE: {
        "run": str,
        "action": str,
        "target": str,
        "stage": str,
        "outcome": str,
        "wrote?": bool,
        "file?": (str, _NULL),
        "sha256?": (str, _NULL),
        "counts?": dict,
        "numbers?": dict,
    },
    PLAYBOOK_UPGRADED: {
        "playbook": {"id?": str, "title?": str, "path?": str, "sha256": str},
        "from_sha256": str,
        "to_sha256": str,
        "diff": {"*": {"added?": [str], "removed?": [str], "changed?": [str]}},
        "snapshot": _SNAPSHOT,
        "sections": _SECTIONS,
    },
    DRILL_CHECKED: {
        "restored": bool,
        "targets": {
            "*": {"restored?": bool, "missing?": int, "changed?": int, "extra?": int},
        },
    },
}
"""Event type -> the payload keys it must have and the shape of what they hold.

Extra keys are allowed, so a later version can add a field without making older logs or
older readers fail; a key listed here is one the fold or the exports rely on, down to
the nested parts they read (a checklist section's ``title``, a level's ``response``), so
a reader never meets a shape it does not expect. A new event type adds its line here (an
unknown type is refused on append and skipped on read)."""

MAX_DEPTH = 100
"""How deeply a payload's JSON may nest. The deepest a payload of ours gets is a
playbook's snapshot holding a MongoDB query (MongoDB itself stops at 100 levels, and the
loader at 64); evidence rows are cut at four. A row nested deeper came from a damaged or
hand-edited log, and is unreadable rather than a ``RecursionError`` in whatever reads it
next (the JSON parser, the exports, the app)."""

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
        HANDOVER_OFFERED,
        UPDATE_SNOOZED,
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
    ROLE_ASSIGNED: "roles",
    HANDOVER_ACCEPTED: "roles",
    UPDATES_SWITCHED: "update schedule",
}
"""Order-sensitive types -> the incident field each replaces. An event of one of these types
written on a stale view is refused (kept and reported, never dropped) when another writer
replaced the same field after the view it was decided on; otherwise it is re-based.

A type in neither table (``opened``, and any type this version does not know) is re-based
only onto a log that has not moved at all."""

# --------------------------------------------------------------------------- publishing
# Issue 17: a status message published outside the terminal, in two events around the send.

PUBLISH_INTENDED = "publish_intended"
"""A message is about to be sent to a destination: written (durable) before the send, so
a crash after it leaves a trace to reconcile with the destination's own record."""
PUBLISH_RESULT = "publish_result"
"""What a destination answered (or that the send failed): its id and URL, the HTTP
status, and the exact text sent."""

EVENT_TYPES = (*EVENT_TYPES, PUBLISH_INTENDED, PUBLISH_RESULT)
SCHEMAS[PUBLISH_INTENDED] = {
    "destination": str,
    "key": str,
    "digest": str,
    "template": str,
    "status": str,
    "external_id?": (str, _NULL),
}
SCHEMAS[PUBLISH_RESULT] = {
    "destination": str,
    "key": str,
    "outcome": str,
    "external_id": (str, _NULL),
    "url": (str, _NULL),
    "http_status": (int, _NULL),
    "text": str,
    "template": str,
    "status": str,
}
# Both record what happened at a destination, whatever else happened meanwhile.
COMMUTING = COMMUTING | {PUBLISH_INTENDED, PUBLISH_RESULT}


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
    if kind is float and not math.isfinite(value):  # type: ignore[arg-type]
        return f"{value!r} (not a finite number)"
    return _JSON_NAMES.get(kind, kind.__name__)


def _holds(value: object, wanted: type | tuple[type, ...]) -> bool:
    kinds = wanted if isinstance(wanted, tuple) else (wanted,)
    for kind in kinds:
        if kind is object:
            return True
        if kind is int and isinstance(value, int) and not isinstance(value, bool):
            return True
        if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
            return math.isfinite(value)
        if kind not in (int, float) and isinstance(value, kind):
            return True
    return False


def _expected(wanted: JsonType) -> str:
    if isinstance(wanted, dict):
        return "an object"
    if isinstance(wanted, list):
        return "a list"
    kinds = wanted if isinstance(wanted, tuple) else (wanted,)
    return " or ".join(_JSON_NAMES.get(k, "anything") for k in kinds)


def _where(path: tuple[str | int, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return repr(text)


def shape_problem(value: object, wanted: JsonType, path: tuple[str | int, ...] = ()) -> str | None:
    """Why ``value`` does not have the shape ``wanted`` (see :data:`JsonType`), or None.

    Recursion follows the schema, not the value, so it is as deep as the schema is.
    """
    if isinstance(wanted, dict):
        if not isinstance(value, dict):
            return f"its {_where(path)} is {_json_name(value)}, not an object"
        if "*" in wanted:
            for key, child in value.items():
                found = shape_problem(child, wanted["*"], (*path, key))
                if found:
                    return found
            return None
        missing = [k for k in wanted if not k.endswith("?") and k not in value]
        if missing:
            at = f"its {_where(path)} has" if path else "its payload has"
            return f"{at} no " + ", ".join(repr(k) for k in missing)
        for key, child_schema in wanted.items():
            name = key.removesuffix("?")
            if name in value:
                found = shape_problem(value[name], child_schema, (*path, name))
                if found:
                    return found
        return None
    if isinstance(wanted, list):
        if not isinstance(value, list):
            return f"its {_where(path)} is {_json_name(value)}, not a list"
        for i, item in enumerate(value):
            found = shape_problem(item, wanted[0], (*path, i))
            if found:
                return found
        return None
    if not _holds(value, wanted):
        return f"its {_where(path)} is {_json_name(value)}, not {_expected(wanted)}"
    return None


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
    if _checker(kind)(payload):
        return None  # the common case, answered by the compiled check alone
    return shape_problem(payload, schema)


_CHECKERS: dict[str, Callable[[object], bool]] = {}


def _checker(kind: str) -> Callable[[object], bool]:
    """``SCHEMAS[kind]`` compiled once into a yes/no check (what every read of a log
    does for each event: 100,000 events cost a third of a second through
    :func:`shape_problem`). It answers exactly as :func:`shape_problem` does; only a
    "no" goes on to that function, for the message."""
    found = _CHECKERS.get(kind)
    if found is None:
        found = _CHECKERS[kind] = _compile(SCHEMAS[kind])
    return found


def _compile(wanted: JsonType) -> Callable[[object], bool]:
    if isinstance(wanted, dict):
        if "*" in wanted:
            each = _compile(wanted["*"])
            return lambda v: isinstance(v, dict) and all(each(x) for x in v.values())
        # One pass over the keys; a leaf that ``isinstance`` alone decides is tested
        # inline, without a call (most keys of most events are strings).
        fields = tuple(
            (key.removesuffix("?"), not key.endswith("?"), _plain(child), _compile(child))
            for key, child in wanted.items()
        )

        def holds(v: object) -> bool:
            if not isinstance(v, dict):
                return False
            for name, required, kinds, child in fields:
                if name in v:
                    if kinds is None:
                        if not child(v[name]):
                            return False
                    elif not isinstance(v[name], kinds):
                        return False
                elif required:
                    return False
            return True

        return holds
    if isinstance(wanted, list):
        each = _compile(wanted[0])
        return lambda v: isinstance(v, list) and all(each(x) for x in v)
    kinds = _plain(wanted)
    if kinds is not None:
        return lambda v: isinstance(v, kinds)
    return lambda v: _holds(v, wanted)


def _plain(wanted: JsonType) -> tuple[type, ...] | None:
    """The types of a leaf that ``isinstance`` alone decides (no int, which excludes
    bool, no float, which must be finite, no ``ANY``), or None."""
    if isinstance(wanted, dict | list):
        return None
    kinds = wanted if isinstance(wanted, tuple) else (wanted,)
    if any(kind in (int, float, object) for kind in kinds):
        return None
    return kinds


def content_problem(payload: object) -> str | None:
    """Why ``payload`` cannot be kept in the log whatever its type: nested deeper than
    :data:`MAX_DEPTH`, or holding text that is not Unicode (a lone surrogate, which no
    UTF-8 file, terminal or export can take). None when it can.

    Walked with a stack, not recursion, so any depth is measured safely.
    """
    stack: list[tuple[object, int, tuple[str | int, ...]]] = [(payload, 0, ())]
    while stack:
        value, depth, path = stack.pop()
        if isinstance(value, str):
            at = first_unpaired(value)
            if at is not None:
                return (
                    f"its {_where(path) if path else 'payload'} holds a lone surrogate "
                    f"\\u{ord(value[at]):04x} (at character {at + 1}), which is not text"
                )
        elif isinstance(value, dict | list):
            if depth >= MAX_DEPTH:
                return f"it is nested more than {MAX_DEPTH} levels deep"
            if isinstance(value, dict):
                for key, child in value.items():
                    if isinstance(key, str) and first_unpaired(key) is not None:
                        return (
                            f"a key in its {_where(path) if path else 'payload'} holds a lone "
                            "surrogate, which is not text"
                        )
                    stack.append((child, depth + 1, (*path, str(key))))
            else:
                stack.extend((child, depth + 1, (*path, i)) for i, child in enumerate(value))
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


def read_payload(text: str) -> tuple[dict[str, Any], str | None]:
    """A payload as stored (JSON text) read back: the object and None, or ``{}`` and
    why it cannot be read. Never raises, whatever the text.

    JSON's own parser reads it; nesting past Python's recursion budget is its
    ``RecursionError``, caught here, and anything deeper than :data:`MAX_DEPTH` or
    holding a lone surrogate is refused after parsing (:func:`content_problem`).
    ``NaN`` and ``Infinity`` are read as Python writes them (a database can return
    them in a row); where the fold needs a number, the schema asks for a finite one.
    """
    try:
        payload = json.loads(text)
    except RecursionError:
        return {}, f"its payload is nested more than {MAX_DEPTH} levels deep"
    except ValueError as exc:  # json.JSONDecodeError, a 5,000-digit integer
        return {}, f"its payload is not JSON ({exc})"
    if not isinstance(payload, dict):
        return {}, f"its payload is {_json_name(payload)}, not a JSON object"
    problem = content_problem(payload)
    if problem is not None:
        return {}, problem
    return payload, None


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
        schema, a type this version does not know), or None when it can.

        Worked out once per event (it is immutable): the fold, the timeline and the
        exports all ask, and a 100,000-event export asked 200,000 times. Kept in the
        instance's ``__dict__`` by hand: ``functools.cached_property`` takes a lock on
        every first read before Python 3.12, a tenth of a 100,000-event fold."""
        try:
            return self.__dict__["_problem"]
        except KeyError:
            found = self.__dict__["_problem"] = self.unreadable or payload_problem(
                self.type, self.payload
            )
            return found

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
    utc = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    if utc.year < 1000:  # strftime writes such a year unpadded; keep what it wrote
        return utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # isoformat is C and a third faster than strftime (an export writes one per event)
    return utc.isoformat("T", "microseconds")[:-6] + "Z"


def parse_utc(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------- postmortem
# Facts recorded during or after an incident for its postmortem (issue 15 §6): impact
# figures, follow-up actions, pinned events and retrospective notes. All of them may be
# recorded after the incident is closed: the review happens then.

IMPACT_RECORDED = "impact_recorded"
"""Impact figures as typed, ``{"set": {"users": "1200", "data_lost": "none"}}``; a later
value of a key replaces the earlier one, which stays in the timeline."""
FOLLOWUP_ADDED = "followup_added"
"""A follow-up action: ``title``, ``owner``, ``due`` (an ISO date or ""), ``ticket``.
Follow-ups are numbered 1, 2, … in the order they were added."""
FOLLOWUP_DONE = "followup_done"
"""Follow-up ``number`` is done."""
EVENT_PINNED = "event_pinned"
"""Event ``seq`` is a highlight of the timeline (in the postmortem's highlights)."""
RETROSPECTIVE_NOTED = "retrospective_noted"
"""A retrospective note: ``field`` (one of :data:`RETROSPECTIVE_FIELDS`) and ``text``."""

RETROSPECTIVE_FIELDS = (
    "trigger",
    "detection",
    "root_cause",
    "contributing",
    "resolution",
    "went_well",
    "went_badly",
    "lucky",
)
"""What a retrospective note is about, as Google SRE's and PagerDuty's postmortem
templates ask (see /work/shared/reference/team-comms-conventions.md)."""

EVENT_TYPES = (
    *EVENT_TYPES,
    IMPACT_RECORDED,
    FOLLOWUP_ADDED,
    FOLLOWUP_DONE,
    EVENT_PINNED,
    RETROSPECTIVE_NOTED,
)
SCHEMAS.update(
    {
        IMPACT_RECORDED: {"set": {"*": str}},
        FOLLOWUP_ADDED: {"title": str, "owner": str, "due": str, "ticket": str},
        FOLLOWUP_DONE: {"number": int},
        EVENT_PINNED: {"seq": int},
        RETROSPECTIVE_NOTED: {"field": str, "text": str},
    }
)
COMMUTING = COMMUTING | {IMPACT_RECORDED, FOLLOWUP_ADDED, EVENT_PINNED, RETROSPECTIVE_NOTED}
"""(See above.) The postmortem's facts merge too: a figure, a retrospective note, a pin or
a new follow-up means the same whatever was appended before it (a later figure of a key
still wins by log order). ``followup_done`` is not among them: it names a follow-up by its
number, which an offline writer decided on a view that may have moved."""
