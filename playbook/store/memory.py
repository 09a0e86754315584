"""An in-memory event store with the same contract as SQLite; for tests and drills."""

from __future__ import annotations

import copy
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from playbook.core.events import Event, NewEvent
from playbook.store import (
    ConcurrencyConflict,
    Presence,
    already_recorded,
    numbered,
    reused_ids,
)
from playbook.store.follow import PRESENCE_TTL, FeedBase


class MemoryStore:
    """Events in a dict; lost when the process ends."""

    def __init__(self) -> None:
        self._events: dict[str, list[Event]] = {}
        self._by_id: dict[str, Event] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._version = 0
        """Bumped by every append; feeds wait for it to move."""
        self._present: dict[int, tuple[Presence, float]] = {}
        self._feed_ids = itertools.count()

    def _record(self, new: list[Event]) -> None:
        """Keep ``new`` and wake the feeds (caller holds the lock)."""
        if not new:
            return
        kept = copy.deepcopy(new)
        self._events.setdefault(new[0].incident_id, []).extend(kept)
        self._by_id.update((e.event_id, e) for e in kept)
        self._version += 1
        self._changed.notify_all()

    def append(
        self, incident_id: str, expected_seq: int, events: Sequence[NewEvent]
    ) -> list[Event]:
        with self._lock:
            new = numbered(incident_id, expected_seq, events)  # may refuse: nothing kept
            found = [self._by_id[e.event_id] for e in events if e.event_id in self._by_id]
            again = already_recorded(incident_id, events, found)
            if again is not None:
                return copy.deepcopy(again)
            log = self._events.get(incident_id, [])
            last = log[-1].seq if log else 0
            if last != expected_seq:
                raise ConcurrencyConflict(
                    f"incident {incident_id} changed: at {last}, expected {expected_seq}"
                )
            self._record(new)
            return new

    def update(
        self, incident_id: str, decide: Callable[[list[Event]], Sequence[NewEvent]]
    ) -> tuple[list[Event], list[Event]]:
        with self._lock:
            log = self._events.get(incident_id, [])
            before = copy.deepcopy(log)
            new = numbered(incident_id, len(log), decide(copy.deepcopy(log)))
            found = [self._by_id[e.event_id] for e in new if e.event_id in self._by_id]
            if found:
                raise reused_ids(found)
            self._record(new)
            return before, new

    def read(self, incident_id: str) -> list[Event]:
        with self._lock:
            return copy.deepcopy(self._events.get(incident_id, []))

    def incident_ids(self) -> list[str]:
        with self._lock:
            return list(self._events)

    def follow(
        self,
        incident_id: str | None = None,
        after: int = 0,
        present_as: tuple[str, str] | None = None,
    ) -> MemoryFeed:
        return MemoryFeed(self, incident_id, after, present_as)

    def presence(self, incident_id: str | None = None) -> list[Presence]:
        now = time.monotonic()
        with self._lock:
            shown = [
                who
                for who, seen in self._present.values()
                if now - seen < PRESENCE_TTL and incident_id in (None, who.incident_id)
            ]
        return sorted(shown, key=lambda p: p.since)

    def close(self) -> None:
        pass


class MemoryFeed(FeedBase):
    """Waits on the store's condition variable: woken by every append."""

    def __init__(
        self,
        store: MemoryStore,
        incident_id: str | None,
        after: int,
        present_as: tuple[str, str] | None,
    ) -> None:
        super().__init__(incident_id, after)
        self._store = store
        self._key = next(store._feed_ids)
        self._presence: Presence | None = None
        if incident_id is not None and present_as is not None:
            actor, device = present_as
            self._presence = Presence(incident_id, actor, device, datetime.now(UTC))
        with store._lock:
            self._seen = store._version
        self._catch_up()
        self._beat()

    def _wait(self, seconds: float) -> None:
        with self._store._changed:
            moved = self._store._changed.wait_for(
                lambda: self._store._version != self._seen or self._stopped.is_set(), seconds
            )
            self._seen = self._store._version
        if moved:
            self._catch_up()

    def _read_after(self, incident_id: str, seq: int) -> list[Event]:
        return self._store.read(incident_id)[seq:]

    def _tails(self) -> dict[str, int]:
        with self._store._lock:
            return {i: len(log) for i, log in self._store._events.items()}

    def _heartbeat(self) -> None:
        if self._presence is not None:
            with self._store._lock:
                self._store._present[self._key] = (self._presence, time.monotonic())

    def stop(self) -> None:
        super().stop()
        with self._store._changed:
            self._store._changed.notify_all()

    def _release(self) -> None:
        with self._store._lock:
            self._store._present.pop(self._key, None)
