"""What every use case shares: its context, reading an incident, and the one way to
append to one.

Each command reads the incident's events, folds them, decides what new events the
request means (refusing it with a clear error if the state does not allow it), and
appends them naming the last sequence it saw (:func:`command`). If another process
appended first, the store re-reads and the command decides again, so concurrent writers
never lose or reorder an acknowledged event and never act on stale state. Every payload
passes through :func:`playbook.redaction.scrub_data` on its way to the store: no event
holds a secret the process knows, whichever use case built it. The one exception is the
playbook's own snapshot in ``opened`` (see :func:`playbook.service.incidents.open_incident`).
"""

from __future__ import annotations

import difflib
import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from playbook.core.clock import Clock
from playbook.core.events import REPLACES, Event, NewEvent
from playbook.core.state import IncidentState, fold
from playbook.core.text import first_control, unpaired_escaped
from playbook.errors import Conflict, NotFound, UsageError
from playbook.redaction import scrub_data
from playbook.store import EventStore

Decision = list[tuple[str, dict[str, Any]]]
"""What a command decided: the new events, each as (kind, payload)."""


@dataclass
class Context:
    """The few things every use case needs, and nothing else: the use cases are
    functions of this, so each one's dependencies are its arguments and its imports."""

    store: EventStore
    clock: Clock
    actor: str
    """Who is acting: the name every event is recorded under."""
    evidence_dir: Path | None
    """Where full diagnostic results are saved (None: results are not saved)."""
    backup_dir: Path | None
    """Where guarded actions save their backups (None: no action can apply)."""


@dataclass(frozen=True)
class Incident:
    """An incident as read: its events and the state folded from them."""

    state: IncidentState
    events: list[Event]


def typed_text(value: str, what: str, *, multiline: bool = False) -> str:
    """``value`` as a person typed it, for the incident log; refused (never altered)
    when it holds what no terminal, export or status page should receive.

    The policy for every title, note, reason, summary and actor name: what Unicode
    calls a control, format or separator character (:mod:`playbook.core.text`: terminal
    escapes, every bidirectional control, zero-width characters, U+2028) and bytes that
    are not UTF-8 are refused here, with where they are, so the log holds exactly what was typed and
    one bad title cannot block status messages later. With ``multiline`` (notes,
    resolution summaries) newlines and tabs are text, and Windows line endings become
    plain newlines.

    Raises:
        UsageError: naming the field, the character and its position.
    """
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(
            f"The {what} is not UTF-8 text (at character {exc.start + 1}).",
            "Type it again in UTF-8 (check the terminal's and the locale's encoding).",
        ) from None
    if multiline:
        value = value.replace("\r\n", "\n")
    found = first_control(value, multiline)
    if found is not None:
        position, shown = found
        allowed = (
            "newlines and tabs are fine"
            if multiline
            else "it is one line of plain text, without tabs or line breaks"
        )
        raise UsageError(
            f"The {what} contains a control character: {shown} at character {position}.",
            "Text typed into the incident is kept exactly as typed and shown in terminals, "
            "exports and status pages, so control characters, terminal escapes (colour "
            "codes), invisible format characters (direction marks and overrides, "
            f"zero-width characters) and line separators are refused; {allowed}.",
        )
    return value


def default_actor() -> str:
    """Who is acting: ``$PLAYBOOK_ACTOR``, ``$USER``, or the login name."""
    for var in ("PLAYBOOK_ACTOR", "USER", "LOGNAME"):
        value = os.environ.get(var)
        if value:
            return value
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def check_actor(ctx: Context) -> None:
    """The actor's name goes into every event: the same policy as typed text."""
    typed_text(ctx.actor, "actor name (from --actor, PLAYBOOK_ACTOR or $USER)")


def resolve_id(ctx: Context, ref: str) -> str:
    """An incident id from the id itself or a unique part of it (e.g. its suffix)."""
    ref = ref.strip()
    ids = ctx.store.incident_ids()
    if ref in ids:
        return ref
    matches = [i for i in ids if i.startswith(ref) or i.endswith(ref)] if ref else []
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UsageError(
            f"{ref!r} matches {len(matches)} incidents",
            "Use more of the id: " + ", ".join(matches[:10]),
        )
    hint = difflib.get_close_matches(ref, ids, n=1)
    raise NotFound(
        f"No incident {ref!r}.",
        f"Did you mean {hint[0]}?" if hint else "`playbook incidents` lists them.",
    )


def get(ctx: Context, ref: str) -> Incident:
    """The incident ``ref`` names, read now."""
    incident_id = resolve_id(ctx, ref)
    events = ctx.store.read(incident_id)
    return Incident(fold(events, incident_id), events)


# --------------------------------------------------------------------------- based on

FIELDS: dict[str, Callable[[IncidentState], str]] = {
    "severity": lambda state: state.severity,
    "status": lambda state: state.status,
    "phase": lambda state: state.phase,
    "title": lambda state: state.title,
}
"""The fields a change can name the value of that it replaces, and how to read each from
the state. A later field (a role: ``role_assigned``) adds its line here and its event type
to :data:`playbook.core.events.REPLACES`."""

_based_on: ContextVar[tuple[str, str] | None] = ContextVar("based_on", default=None)


class StaleChange(Conflict):
    """Someone else changed the field first: the change was based on a value that is no
    longer current, and was refused (nothing was recorded)."""

    def __init__(self, field: str, mine: str, current: str, by: Event | None) -> None:
        who = (
            f"{by.actor} set it to {current or '(none)'} at {by.at:%H:%M:%S} UTC (event {by.seq})"
            if by is not None
            else f"it is {current or '(none)'} now"
        )
        super().__init__(
            f"Refused: the {field} changed before your change: {who}; yours was based on "
            f"{mine or '(none)'}.",
            "Nothing was recorded. Look at the incident as it is now and redo the change "
            "if it still holds.",
        )
        self.field, self.mine, self.current, self.by = field, mine, current, by


@contextmanager
def based_on(field: str, value: str | None) -> Iterator[None]:
    """Inside this block, a command refuses (:class:`StaleChange`) unless the incident's
    ``field`` is still ``value`` when the store decides, atomically: the app passes the
    value the responder saw, so a change is never made on a view another responder made
    stale. ``value`` None: no check (the CLI, which reads and decides at once).

    A context variable, not an argument: each thread (the app's store worker) has its own,
    and no use case's signature changes."""
    if value is None:
        yield
        return
    if field not in FIELDS:
        raise ValueError(f"unknown field {field!r}")
    token = _based_on.set((field, value))
    try:
        yield
    finally:
        _based_on.reset(token)


def _check_based_on(state: IncidentState, events: list[Event]) -> None:
    expected = _based_on.get()
    if expected is None:
        return
    field, value = expected
    current = FIELDS[field](state)
    if current != value:
        by = next((e for e in reversed(events) if REPLACES.get(e.type) == field), None)
        raise StaleChange(field, value, current, by)


def command(ctx: Context, ref: str, decide: Callable[[IncidentState], Decision]) -> IncidentState:
    """Decide on the incident's current events and append, in one store transaction."""
    incident_id = resolve_id(ctx, ref)
    check_actor(ctx)

    def make(events: list[Event]) -> list[NewEvent]:
        state = fold(events, incident_id)
        _check_based_on(state, events)
        decision = decide(state)
        now = ctx.clock.now()
        if state.last_event_at is not None and now < state.last_event_at:
            now = state.last_event_at  # the log's time never runs backwards
        # Secrets masked; a lone surrogate a database or an endpoint returned is recorded as
        # its six-character escape (\ud800), never refused with the evidence lost.
        return [
            NewEvent(kind, unpaired_escaped(scrub_data(payload)), ctx.actor, now)
            for kind, payload in decision
        ]

    before, appended = ctx.store.update(incident_id, make)
    return fold([*before, *appended], incident_id)


def append_one(ctx: Context, ref: str, kind: str, payload: dict[str, Any]) -> IncidentState:
    """Append one event whatever the incident's state (evidence, a stage of an action:
    what happened is recorded also after the incident was resolved or closed)."""
    return command(ctx, ref, lambda _state: [(kind, payload)])
