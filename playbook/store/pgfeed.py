"""Following the shared PostgreSQL log: LISTEN, catch up, read what each notification
names (see :class:`PostgresFeed`)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import TYPE_CHECKING, Any

import psycopg

from playbook.core.events import Event
from playbook.redaction import scrub
from playbook.store.follow import PRESENCE_TTL, FeedBase
from playbook.store.pgschema import CHANNEL, ROW_SELECT, first_line
from playbook.store.rows import events_from_rows

if TYPE_CHECKING:
    from playbook.store.postgres import PostgresStore

SWEEP = 30.0
"""Seconds between two catch-ups of a feed without a signal (see :meth:`PostgresFeed._sweep`)."""


class PostgresFeed(FeedBase):
    """LISTEN first, on a connection of its own (autocommit, never in a transaction, so
    it never holds up the server's notification queue); then catch up by reading; then
    read what each notification names. A lost connection is retried with backoff and
    followed by another catch-up, so nothing is missed while it was down.

    Presence is a row naming this connection (its backend pid and application name): it
    is shown while that connection is alive (``pg_stat_activity``) and was refreshed in
    the last :data:`~playbook.store.follow.PRESENCE_TTL` seconds. A client that is killed
    disappears at once; one cut off by the network, within the TTL.
    """

    def __init__(
        self,
        store: PostgresStore,
        incident_id: str | None,
        after: int,
        present_as: tuple[str, str] | None,
    ) -> None:
        super().__init__(incident_id, after)
        self._store = store
        self._key = uuid.uuid4()
        self._app = f"playbook/{self._key.hex}"
        self._present_as = present_as if incident_id is not None else None
        self._conn: psycopg.Connection[Any] | None = None
        self._conn_lock = threading.RLock()
        """get() runs in a worker thread, close() may come from another."""
        self._retry_at = 0.0
        self._next_sweep = 0.0
        self._backoff = 0.2
        self.connected = False
        with self._conn_lock:
            self._reconnect()

    def _reconnect(self) -> None:
        try:
            conn = self._store.connect(application_name=self._app)
        except psycopg.Error as exc:
            self._lost(exc)
            return
        try:
            conn.execute(f"LISTEN {CHANNEL}")
            self._conn = conn
            self._sweep()
            self._beat()
        except psycopg.Error as exc:
            self._lost(exc)
            return
        self.connected, self.error, self._backoff = True, "", 0.2

    def _lost(self, exc: Exception) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self.connected = False
        self.error = (
            f"Lost the shared incident log at {self._store.server}: "
            f"{first_line(scrub(str(exc), self._store.url))}"
        )
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, 5.0)

    def _wait(self, seconds: float) -> None:
        with self._conn_lock:
            if self._conn is None:
                if time.monotonic() >= self._retry_at:
                    self._reconnect()
                    return
            else:
                try:
                    # stop_after=1: return at the first notification (with any that came
                    # in the same packet); the others wait in the connection's backlog.
                    said = [n.payload for n in self._conn.notifies(timeout=seconds, stop_after=1)]
                    if said:  # and whatever else has arrived: read for all of them at once
                        said += [n.payload for n in self._conn.notifies(timeout=0)]
                    signals = [p.rpartition(":") for p in said]
                    self._moved([(i, int(seq)) for i, _, seq in signals if seq.isdigit()])
                    if time.monotonic() >= self._next_sweep:
                        self._sweep()
                except psycopg.Error as exc:
                    self._lost(exc)
                return
        self._stopped.wait(min(seconds, max(0.0, self._retry_at - time.monotonic())))

    def _sweep(self) -> None:
        """Catch up without a signal, every :data:`SWEEP` seconds: the notification is
        sent just after its append's commit, so a connection cut between the two (or a
        server crash) could lose it, and with it the event until the incident's next
        one. One indexed read that usually returns nothing."""
        self._next_sweep = time.monotonic() + SWEEP
        self._catch_up()

    def _read_after(self, incident_id: str, seq: int) -> list[Event]:
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT {ROW_SELECT} FROM playbook.events WHERE incident_id = %s AND seq > %s ORDER BY seq",
            (incident_id, seq),
        ).fetchall()
        return events_from_rows(rows)

    def _read_many(self, after: dict[str, int]) -> list[Event]:
        """One round trip for every incident that moved (a far server: 50 ms, not 50 ms
        per incident)."""
        if len(after) == 1:
            return super()._read_many(after)
        assert self._conn is not None
        rows = self._conn.execute(
            f"SELECT {ROW_SELECT.replace('incident_id,', 'e.incident_id,', 1)}"
            " FROM unnest(%s::text[], %s::int[]) AS w(incident_id, last)"
            " JOIN playbook.events e ON e.incident_id = w.incident_id AND e.seq > w.last"
            " ORDER BY e.incident_id, e.seq",
            (list(after), list(after.values())),
        ).fetchall()
        return events_from_rows(rows)

    def _tails(self) -> dict[str, int]:
        assert self._conn is not None
        rows = self._conn.execute(
            "SELECT incident_id, max(seq) FROM playbook.events GROUP BY incident_id"
        ).fetchall()
        return {str(i): int(seq) for i, seq in rows}

    def _heartbeat(self) -> None:
        if self._present_as is None or self._conn is None:
            return
        actor, device = self._present_as
        with self._conn_lock:
            try:
                self._conn.execute(
                    "INSERT INTO playbook.presence"
                    " (feed, incident_id, actor, device, backend_pid, application_name)"
                    " VALUES (%s, %s, %s, %s, pg_backend_pid(), %s)"
                    " ON CONFLICT (feed) DO UPDATE SET seen = now(),"
                    " backend_pid = pg_backend_pid()",
                    (self._key, self.incident_id, actor, device, self._app),
                )
                # Rows of feeds that died without leaving: not shown, and cleared in time.
                self._conn.execute(
                    "DELETE FROM playbook.presence WHERE seen < now() - make_interval(secs => %s)",
                    (10 * PRESENCE_TTL,),
                )
            except psycopg.Error as exc:  # presence is advisory; a lost connection is not
                if self._conn.broken:
                    self._lost(exc)

    def _release(self) -> None:
        with self._conn_lock:
            conn, self._conn = self._conn, None
            if conn is None:
                return
            try:
                if self._present_as is not None and not conn.broken:
                    conn.execute("DELETE FROM playbook.presence WHERE feed = %s", (self._key,))
            except psycopg.Error:
                pass  # its connection closes below, which hides it anyway
            finally:
                conn.close()
