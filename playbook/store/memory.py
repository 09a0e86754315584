"""An in-memory event store with the same contract as SQLite; for tests and drills."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Sequence

from playbook.core.events import Event, NewEvent
from playbook.store import ConcurrencyConflict, numbered


class MemoryStore:
    """Events in a dict; lost when the process ends."""

    def __init__(self) -> None:
        self._events: dict[str, list[Event]] = {}
        self._lock = threading.Lock()

    def append(
        self, incident_id: str, expected_seq: int, events: Sequence[NewEvent]
    ) -> list[Event]:
        with self._lock:
            log = self._events.get(incident_id, [])
            last = log[-1].seq if log else 0
            if last != expected_seq:
                raise ConcurrencyConflict(
                    f"incident {incident_id} changed: at {last}, expected {expected_seq}"
                )
            new = numbered(incident_id, expected_seq, events)  # may refuse: nothing kept
            self._events.setdefault(incident_id, []).extend(copy.deepcopy(new))
            return new

    def update(
        self, incident_id: str, decide: Callable[[list[Event]], Sequence[NewEvent]]
    ) -> tuple[list[Event], list[Event]]:
        with self._lock:
            log = self._events.get(incident_id, [])
            before = copy.deepcopy(log)
            new = numbered(incident_id, len(log), decide(copy.deepcopy(log)))
            if new:
                self._events.setdefault(incident_id, []).extend(copy.deepcopy(new))
            return before, new

    def read(self, incident_id: str) -> list[Event]:
        with self._lock:
            return copy.deepcopy(self._events.get(incident_id, []))

    def incident_ids(self) -> list[str]:
        with self._lock:
            return list(self._events)

    def close(self) -> None:
        pass
