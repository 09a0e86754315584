"""What every store's feed shares: where each followed incident is, duplicates dropped,
gaps closed by reading, presence kept fresh, and a stop switch.

A store's feed says *that* an incident may have moved (a PostgreSQL notification, a
changed SQLite ``data_version``, a condition variable); this base reads what moved, from
the last sequence it delivered, so a lost or repeated signal never loses or repeats an
event. Each subclass gives three things: how to wait for a signal, how to read an
incident's events after a sequence, and every incident's last sequence.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from playbook.core.events import Event

SLICE = 0.1
"""Longest single wait inside :meth:`FeedBase.get`: how late a :meth:`stop` can be seen.
A signal ends the wait at once, so this costs no latency, only a wake-up a tenth of a
second while nothing happens."""

HEARTBEAT = 10.0
"""Seconds between two presence heartbeats of a feed with ``present_as``."""

PRESENCE_TTL = 30.0
"""A presence not refreshed for this long is not shown (its client froze, or the network
between it and the server broke without either side noticing yet)."""


class FeedBase:
    """A blocking feed of events (see :class:`playbook.store.Feed`)."""

    def __init__(self, incident_id: str | None, after: int) -> None:
        self.incident_id = incident_id
        self.connected = True
        self.error = ""
        """Why :attr:`connected` is False (redacted), or ""."""
        self._last: dict[str, int] = {}
        if incident_id is not None:
            self._last[incident_id] = after
        self._started = incident_id is not None
        self._queue: deque[Event] = deque()
        self._stopped = threading.Event()
        self._next_beat = 0.0

    # ------------------------------------------------------------------ for subclasses

    def _wait(self, seconds: float) -> None:
        """Wait up to ``seconds`` for a signal; report what moved with :meth:`_moved` or
        :meth:`_catch_up`. A lost connection is the subclass's to handle: it sets
        :attr:`connected`, reconnects, and catches up."""
        raise NotImplementedError

    def _read_after(self, incident_id: str, seq: int) -> list[Event]:
        """The incident's events with a sequence above ``seq``, in order."""
        raise NotImplementedError

    def _read_many(self, after: dict[str, int]) -> list[Event]:
        """Each incident's events above its sequence in ``after`` (in order within an
        incident). One query per incident unless the subclass does better."""
        return [e for incident_id, seq in after.items() for e in self._read_after(incident_id, seq)]

    def _tails(self) -> dict[str, int]:
        """Every incident's last sequence."""
        raise NotImplementedError

    def _heartbeat(self) -> None:
        """Refresh this feed's presence (nothing when it has none)."""

    def _release(self) -> None:
        """Close the feed's connection and remove its presence."""

    # ------------------------------------------------------------------ the logic

    def _moved(self, signals: list[tuple[str, int]]) -> None:
        """Signals that incidents reached sequences: read what is new, if anything, for
        all of them at once."""
        after: dict[str, int] = {}
        for incident_id, seq in signals:
            if self.incident_id is not None and incident_id != self.incident_id:
                continue
            last = self._last.get(incident_id, 0)
            if seq > last:  # else delivered already: a repeated or late signal
                after[incident_id] = last
        # Read from the last delivered event, not from the signalled one: the events
        # between (whose signals were lost, or folded into this one) come too, in order.
        if after:
            self._deliver_many(self._read_many(after))

    def _catch_up(self) -> None:
        """Read whatever moved since the last delivery, without a signal (after a
        (re)connection, or when the store's signal only says *something* changed)."""
        if self.incident_id is not None:
            self._deliver(
                self.incident_id, self._read_after(self.incident_id, self._last[self.incident_id])
            )
            return
        tails = self._tails()
        if not self._started:  # following every incident: from now on
            self._last.update(tails)
            self._started = True
            return
        moved = {
            i: self._last.get(i, 0) for i, tail in tails.items() if tail > self._last.get(i, 0)
        }
        if moved:
            self._deliver_many(self._read_many(moved))

    def _deliver(self, incident_id: str, events: list[Event]) -> None:
        last = self._last.get(incident_id, 0)
        for event in events:
            if event.seq == last + 1:
                self._queue.append(event)
                last = event.seq
        self._last[incident_id] = last

    def _deliver_many(self, events: list[Event]) -> None:
        by_incident: dict[str, list[Event]] = {}
        for event in events:
            by_incident.setdefault(event.incident_id, []).append(event)
        for incident_id, mine in by_incident.items():
            self._deliver(incident_id, mine)

    def _beat(self) -> None:
        """Refresh the presence now, and schedule the next heartbeat."""
        self._next_beat = time.monotonic() + HEARTBEAT
        self._heartbeat()

    def position(self, incident_id: str) -> int:
        """The last sequence delivered for ``incident_id`` (0: none)."""
        return self._last.get(incident_id, 0)

    # ------------------------------------------------------------------ the API

    def get(self, timeout: float) -> list[Event]:
        deadline = time.monotonic() + timeout
        while not self._stopped.is_set():
            if self._queue:
                out = list(self._queue)
                self._queue.clear()
                return out
            now = time.monotonic()
            if now >= self._next_beat:
                self._beat()
            remaining = deadline - now
            if remaining <= 0:
                break
            self._wait(min(remaining, SLICE))
        return []

    def stop(self) -> None:
        self._stopped.set()

    def close(self) -> None:
        self.stop()
        self._release()

    def __enter__(self) -> FeedBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
