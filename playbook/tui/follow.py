"""Following the store: what other responders (or another terminal) record, as it lands.

:func:`follow` runs :meth:`playbook.store.EventStore.follow` in a Textual thread worker
and posts one :class:`StoreMoved` per batch to the screen that asked; the worker never
touches a widget. The screen reads the incident again through the store thread (so what
it shows is always a fold of the log, never a patch of it), tells the responder who did
what (:func:`describe`), and shows the offline line.

Every store can be followed: PostgreSQL through LISTEN/NOTIFY, SQLite by polling its
``data_version`` (two terminals on one machine see each other too, which also ends the
old bug of a dialog acting on a view another process had made stale). A shared store's
feed also syncs the outbox when the server answers again, so the app retries in here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.message import Message
from textual.worker import Worker, get_current_worker

from playbook.core.events import (
    ACKNOWLEDGED,
    ACTION_STAGE,
    CLOSED,
    DIAGNOSTIC_RUN,
    ESCALATED,
    ITEM_CHECKED,
    ITEM_UNCHECKED,
    NOTE_ADDED,
    PHASE_ENTERED,
    RENAMED,
    RESOLVED,
    SCENARIO_CHOSEN,
    SEVERITY_CHANGED,
    STATUS_RENDERED,
    Event,
    default_device,
)
from playbook.core.text import inline

if TYPE_CHECKING:
    from textual.dom import DOMNode

    from playbook.service import Service

WAIT = 0.25
"""Longest single wait of the worker: how late a cancelled follower notices."""


class StoreMoved(Message, bubble=False):
    """Events landed in what the screen follows, or the connection's state changed."""

    def __init__(
        self,
        events: Sequence[Event],
        connected: bool,
        offline: str | None,
        refused: Sequence[Any] = (),
    ) -> None:
        super().__init__()
        self.events = list(events)
        self.connected = connected
        self.offline = offline
        """``offline: 3 events not yet shared``, or None."""
        self.refused = list(refused)
        """Events the outbox's sync just refused (someone changed the same value first)."""


@dataclass
class Following:
    """A running follower; :meth:`stop` ends it within a fraction of a second."""

    worker: Worker[None] | None = None
    feeds: list[Any] = field(default_factory=list)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
        for feed in self.feeds:
            feed.stop()


def is_mine(service: Service, event: Event) -> bool:
    """Made by this responder in this process's terminal (not news to them)."""
    return event.actor == service.actor and event.device in ("", default_device())


def describe(event: Event) -> str:
    """One line saying who did what: ``alice ticked immediate-response.containment``."""
    p = event.payload
    what = {
        ITEM_CHECKED: lambda: f"ticked {p.get('item', '')}",
        ITEM_UNCHECKED: lambda: f"unticked {p.get('item', '')}",
        NOTE_ADDED: lambda: f"added a note: {str(p.get('text', ''))[:60]}",
        SEVERITY_CHANGED: lambda: f"changed the severity {p.get('from', '')} → {p.get('to', '')}",
        PHASE_ENTERED: lambda: f"moved the incident to {p.get('phase', '')}",
        ACKNOWLEDGED: lambda: "acknowledged the incident",
        RESOLVED: lambda: "resolved the incident",
        CLOSED: lambda: "closed the incident",
        RENAMED: lambda: f"renamed the incident to {p.get('to', '')}",
        ESCALATED: lambda: f"escalated to {p.get('to', '')}",
        SCENARIO_CHOSEN: lambda: f"chose the scenario {p.get('scenario', '')}",
        STATUS_RENDERED: lambda: f"recorded a {p.get('template', '')} status message",
        DIAGNOSTIC_RUN: lambda: f"ran {p.get('diagnostic', '')}: {p.get('verdict', '')}",
        ACTION_STAGE: lambda: (
            f"{p.get('action', 'an action')}: {p.get('stage', '')} {p.get('outcome', '')}"
        ),
    }.get(event.type, lambda: f"recorded {event.type}")()
    return inline(f"{event.actor} {what}")


def follow(
    node: DOMNode, service: Service, incident_id: str | None, after: int, present: bool
) -> Following:
    """Follow ``incident_id`` (None: every incident) after sequence ``after`` in a
    thread worker of ``node``, which gets a :class:`StoreMoved` per batch. ``present``:
    the responder shows as having the incident open while this runs."""
    following = Following()
    present_as = (service.actor, default_device()) if present else None
    store = service.store

    def run() -> None:
        worker = get_current_worker()
        feed = store.follow(incident_id, after, present_as)
        following.feeds.append(feed)
        last: tuple[bool, str | None] | None = None
        try:
            while not worker.is_cancelled:
                events = feed.get(WAIT)
                connected = bool(feed.connected)
                offline = service.offline_line(connected)
                synced = getattr(feed, "synced", None)
                refused = list(getattr(synced, "refused", []))
                if synced is not None:
                    feed.synced = None  # each sync's report is told once
                if events or refused or (connected, offline) != last:
                    last = (connected, offline)
                    node.post_message(StoreMoved(events, connected, offline, refused))
        finally:
            feed.close()

    following.worker = node.run_worker(  # type: ignore[attr-defined]
        run,
        thread=True,
        exit_on_error=False,
        group="follow",
        name=f"follow {incident_id or 'all'}",
    )
    return following


# --------------------------------------------------------------------------- the screens


class PresenceRead(Message, bubble=False):
    """Who else has each incident open: incident id -> their names."""

    def __init__(self, others: dict[str, list[str]]) -> None:
        super().__init__()
        self.others = others


PRESENCE_EVERY = 5.0
"""Seconds between two readings of who has which incident open (a presence changes
without an event: someone opened an incident to look)."""


def others_present(service: Service) -> dict[str, list[str]]:
    """Who has each incident open, this terminal left out (runs on the store thread)."""
    me = (service.actor, default_device())
    out: dict[str, list[str]] = {}
    for p in service.store.presence():
        if (p.actor, p.device) != me and p.actor not in out.get(p.incident_id, []):
            out.setdefault(p.incident_id, []).append(p.actor)
    return out


class FollowsIncident:
    """Mixed into the incident screen: follow its incident once it is shown, tell the
    responder what others did (a notification naming who, and the view read again), show
    the offline line in the header and the conflicts a sync refused. Textual calls the
    ``on_`` handlers of every class in the screen's MRO, so these add to the screen's."""

    _following: Following | None = None

    def on_incident_view_shown(self, message: Any) -> None:
        if self._following is None:
            state = message.state
            app = self.app  # type: ignore[attr-defined]
            self._following = follow(self, app.service, state.id, state.last_seq, present=True)  # type: ignore[arg-type]

    def on_unmount(self) -> None:
        if self._following is not None:
            self._following.stop()

    def on_store_moved(self, message: StoreMoved) -> None:
        service = self.app.service  # type: ignore[attr-defined]
        view = self.view  # type: ignore[attr-defined]
        for event in message.events:
            if not is_mine(service, event):
                self.notify(describe(event), title="Team", markup=False)  # type: ignore[attr-defined]
        for refused in message.refused:
            self.notify(  # type: ignore[attr-defined]
                f"Your {refused.event.type} was not shared: {refused.reason}. It is kept in "
                "the outbox; redo it on the incident as it is now if it still holds.",
                title="Refused on sync",
                severity="error",
                timeout=30,
                markup=False,
            )
        view.header.offline = message.offline or ""
        if message.events or message.refused:
            view.reload()


class FollowsIncidents:
    """Mixed into the start screen: list the incidents again when any of them moves, and
    show who else has each one open."""

    _following: Following | None = None

    def on_mount(self) -> None:
        app = self.app  # type: ignore[attr-defined]
        self._following = follow(self, app.service, None, 0, present=False)  # type: ignore[arg-type]
        self.set_interval(PRESENCE_EVERY, self.read_presence)  # type: ignore[attr-defined]
        self.read_presence()

    def on_unmount(self) -> None:
        if self._following is not None:
            self._following.stop()

    def read_presence(self) -> None:
        app = self.app  # type: ignore[attr-defined]
        service = app.service
        app.submit(
            "who is here",
            lambda: others_present(service),
            self,
            PresenceRead,
            tells=(Exception,),  # the list simply shows no one; the header says offline
            records=False,
        )

    _offline: str | None = None

    def on_store_moved(self, message: StoreMoved) -> None:
        if message.events:
            self.reload()  # type: ignore[attr-defined]
            self.read_presence()
        went = (self._offline is None) != (message.offline is None)
        self._offline = message.offline
        if went and message.offline is not None and message.offline.startswith("offline"):
            self.notify(message.offline, title="Team", severity="warning", markup=False)  # type: ignore[attr-defined]

    def on_presence_read(self, message: PresenceRead) -> None:
        from playbook.tui.widgets.incident_list import IncidentList

        self.query_one(IncidentList).presence = message.others  # type: ignore[attr-defined]
