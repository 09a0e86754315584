"""The default event store: one SQLite file in the user's data directory.

Durability settings, and why:
- WAL journal: readers (the app's refresh, `playbook show`) never block the writer.
- ``synchronous=FULL``: in WAL mode, NORMAL may lose the last commits on power loss;
  FULL fsyncs the WAL at every commit, so "acknowledged" means on disk. A commit costs
  an fsync (a few ms on an SSD), which a person typing never notices.
- ``BEGIN IMMEDIATE``: the write lock is taken before reading the last sequence, so two
  writers serialise instead of both deciding they are next.
- ``PRIMARY KEY (incident_id, seq)``: if they raced anyway, the second insert fails
  rather than forking the log. A unique ``event_id`` makes a repeated batch return the
  events already recorded (see :mod:`playbook.store`).

The schema is versioned in ``PRAGMA user_version`` and migrated step by step in one
transaction at the first open by a newer playbook (:data:`MIGRATIONS`); later opens write
nothing, so an incident can still be read and exported when the disk is full. Rows are
read as :mod:`playbook.store.rows` says: key order kept, and a row that cannot be read
back (broken or over-deep JSON, a lone surrogate, a time, sequence number or schema that
is not one, bytes that are not UTF-8: only a hand edit, a damaged file or a newer version
makes one) is returned marked ``unreadable`` rather than failing the whole incident.

Another process's appends are followed by polling ``PRAGMA data_version`` on the feed's
own connection (SQLite has no notifications): a few microseconds every
:data:`POLL` seconds, and the events are read only when it changed.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from playbook.core.events import Event, NewEvent, format_utc, parse_utc
from playbook.errors import StoreError
from playbook.store import (
    ConcurrencyConflict,
    Presence,
    already_recorded,
    numbered,
    reused_ids,
)
from playbook.store.follow import PRESENCE_TTL, FeedBase
from playbook.store.rows import ROW_COLUMNS, NotUtf8, events_from_rows, row_of

DB_NAME = "incidents.sqlite3"

MIGRATIONS: tuple[str, ...] = (
    # 1: the event log
    """
    CREATE TABLE IF NOT EXISTS events (
        incident_id TEXT NOT NULL,
        seq         INTEGER NOT NULL CHECK (seq > 0),
        at          TEXT NOT NULL,
        actor       TEXT NOT NULL,
        type        TEXT NOT NULL,
        payload     TEXT NOT NULL,
        schema      INTEGER NOT NULL,
        PRIMARY KEY (incident_id, seq)
    ) WITHOUT ROWID;
    """,
    # 2: event ids (idempotent appends, copies to a shared store), devices, presence.
    # Rows from version 1 keep a NULL id and are given a derived one when read.
    """
    ALTER TABLE events ADD COLUMN event_id TEXT;
    ALTER TABLE events ADD COLUMN device TEXT NOT NULL DEFAULT '';
    CREATE UNIQUE INDEX events_event_id ON events (event_id) WHERE event_id IS NOT NULL;
    CREATE TABLE presence (
        feed        TEXT PRIMARY KEY,
        incident_id TEXT NOT NULL,
        actor       TEXT NOT NULL,
        device      TEXT NOT NULL,
        pid         INTEGER NOT NULL,
        since       TEXT NOT NULL,
        seen        REAL NOT NULL
    );
    """,
)
"""Schema steps; step ``n`` takes ``PRAGMA user_version`` from ``n - 1`` to ``n``."""

SCHEMA_VERSION = len(MIGRATIONS)

POLL = 0.025
"""Seconds between two ``data_version`` checks of a feed: how late another process's
append can be seen, at most."""

_INSERT = f"INSERT INTO events ({ROW_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SELECT = f"SELECT {ROW_COLUMNS} FROM events"
_IDS_AT_ONCE = 500
"""Event ids looked up per query (SQLite limits the parameters of one statement)."""


def _store_error(exc: sqlite3.Error, path: Path, doing: str) -> StoreError:
    text = str(exc)
    lowered = text.lower()
    if "full" in lowered:
        return StoreError(
            f"The disk holding {path} is full: {doing} was NOT recorded.",
            "Free some space (or point --data-dir / PLAYBOOK_HOME elsewhere) and run the "
            "command again. Everything recorded before is intact.",
        )
    if "readonly" in lowered or "read-only" in lowered:
        return StoreError(
            f"{path} is read-only: {doing} was NOT recorded.",
            "Use a writable --data-dir (or PLAYBOOK_HOME).",
        )
    if "locked" in lowered or "busy" in lowered:
        return StoreError(
            f"{path} stayed locked by another playbook process: {doing} was NOT recorded.",
            "Run the command again in a moment.",
        )
    if "disk i/o error" in lowered:
        return StoreError(
            f"Writing the incident log at {path} failed: {doing} was NOT recorded.",
            "The disk may be full, over a size limit, or failing. Free space or use another "
            "--data-dir, then run the command again. Everything recorded before is intact.",
        )
    if "unable to open" in lowered:
        return StoreError(
            f"Cannot open the incident log at {path}.",
            "Check that the directory exists and is writable, or choose another with "
            "--data-dir / PLAYBOOK_HOME.",
        )
    return StoreError(f"The incident log at {path} failed: {doing} was NOT recorded.", text)


def _text(raw: bytes) -> str | NotUtf8:
    """The connection's text factory: UTF-8 text, or the bytes marked as not text.
    (sqlite3's default raises for the whole ``fetchall`` on one bad value.)"""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return NotUtf8(raw)


def _connect(path: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,  # we issue BEGIN/COMMIT ourselves
        check_same_thread=False,  # each user guards its connection with a lock
    )
    conn.text_factory = _text
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    return conn


def _found(conn: sqlite3.Connection, ids: Sequence[str]) -> list[Event]:
    """The recorded events that carry one of ``ids``."""
    rows: list[tuple[object, ...]] = []
    for start in range(0, len(ids), _IDS_AT_ONCE):
        chunk = ids[start : start + _IDS_AT_ONCE]
        marks = ", ".join("?" * len(chunk))
        rows += conn.execute(f"{_SELECT} WHERE event_id IN ({marks})", chunk).fetchall()
    return events_from_rows(rows)


class SQLiteStore:
    """Incidents' events in SQLite; safe for several processes at once."""

    def __init__(self, data_dir: Path | str, busy_timeout_ms: int = 10_000) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.busy_timeout_ms = busy_timeout_ms
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the data directory {self.data_dir}: {exc.strerror}.",
                "Choose a writable directory with --data-dir or PLAYBOOK_HOME.",
            ) from None
        self._lock = threading.Lock()
        try:
            self._conn = _connect(self.path, busy_timeout_ms)
            self._migrate()
            self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, "opening the log") from None

    def _migrate(self) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION` (nothing is written when it is)."""
        (version,) = self._conn.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} was written by a newer playbook (schema {version}).",
                "Upgrade playbook to read it; nothing was changed.",
            )
        if version == SCHEMA_VERSION:
            return
        if version == 0:
            self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            # Read again under the write lock: another process may have migrated it.
            (version,) = self._conn.execute("PRAGMA user_version").fetchone()
            for step in range(version, SCHEMA_VERSION):
                for statement in MIGRATIONS[step].split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
            self._conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise

    def _select(self, incident_id: str, after: int = 0) -> list[Event]:
        # SQLite sorts integers before text and blobs, so a hand-edited sequence number
        # that is not one comes after every readable event.
        rows = self._conn.execute(
            f"{_SELECT} WHERE incident_id = ? AND seq > ? ORDER BY seq", (incident_id, after)
        ).fetchall()
        return events_from_rows(rows)

    @staticmethod
    def _last_seq(conn: sqlite3.Connection, incident_id: str) -> int:
        """The incident's highest sequence number: the next event is numbered after it.
        Only integers count: a hand edit can leave text or a blob in ``seq``."""
        (last,) = conn.execute(
            "SELECT COALESCE(MAX(seq), 0) FROM events "
            "WHERE incident_id = ? AND typeof(seq) = 'integer'",
            (incident_id,),
        ).fetchone()
        return int(last)

    @contextmanager
    def _transaction(
        self, incident_id: str, doing: Callable[[], str]
    ) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT under the thread lock, with errors made readable."""
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.IntegrityError:
                raise ConcurrencyConflict(
                    f"incident {incident_id} changed while appending"
                ) from None
            except sqlite3.Error as exc:
                raise _store_error(exc, self.path, doing()) from None
            except OverflowError:
                # The next sequence number does not fit SQLite's 64-bit integer: only a
                # hand edit of ``seq`` gets there.
                raise StoreError(
                    f"Incident {incident_id}'s sequence numbers are used up (its log was "
                    f"edited by hand?): {doing()} was NOT recorded.",
                    "Export the incident and open a new one.",
                ) from None

    def append(
        self, incident_id: str, expected_seq: int, events: Sequence[NewEvent]
    ) -> list[Event]:
        new = numbered(incident_id, expected_seq, events)
        with self._transaction(incident_id, lambda: ", ".join(e.type for e in new)) as conn:
            again = already_recorded(
                incident_id, events, _found(conn, [e.event_id for e in events])
            )
            if again is not None:
                return again
            last = self._last_seq(conn, incident_id)
            if last != expected_seq:
                raise ConcurrencyConflict(
                    f"incident {incident_id} changed: at {last}, expected {expected_seq}"
                )
            conn.executemany(_INSERT, [row_of(e) for e in new])
        return new

    def update(
        self, incident_id: str, decide: Callable[[list[Event]], Sequence[NewEvent]]
    ) -> tuple[list[Event], list[Event]]:
        new: list[Event] = []
        with self._transaction(
            incident_id, lambda: ", ".join(e.type for e in new) or "the change"
        ) as conn:
            before = self._select(incident_id)
            new = numbered(incident_id, self._last_seq(conn, incident_id), decide(before))
            if new:
                found = _found(conn, [e.event_id for e in new])
                if found:
                    raise reused_ids(found)
                conn.executemany(_INSERT, [row_of(e) for e in new])
        return before, new

    def read(self, incident_id: str) -> list[Event]:
        with self._lock:
            try:
                return self._select(incident_id)
            except sqlite3.Error as exc:
                raise _store_error(exc, self.path, "reading") from None

    def incident_ids(self) -> list[str]:
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT incident_id FROM events WHERE seq = 1 ORDER BY at, incident_id"
                ).fetchall()
            except sqlite3.Error as exc:
                raise _store_error(exc, self.path, "listing incidents") from None
        # An id that is not UTF-8 text cannot be named on a command line or shown.
        return [row[0] for row in rows if isinstance(row[0], str)]

    def follow(
        self,
        incident_id: str | None = None,
        after: int = 0,
        present_as: tuple[str, str] | None = None,
    ) -> SQLiteFeed:
        return SQLiteFeed(self, incident_id, after, present_as)

    def presence(self, incident_id: str | None = None) -> list[Presence]:
        with self._lock:
            try:
                rows = self._conn.execute(
                    "SELECT incident_id, actor, device, since, pid FROM presence "
                    "WHERE seen > ? AND (? IS NULL OR incident_id = ?) ORDER BY since",
                    (time.time() - PRESENCE_TTL, incident_id, incident_id),
                ).fetchall()
            except sqlite3.Error as exc:
                raise _store_error(exc, self.path, "reading who is present") from None
        return [
            Presence(str(i), str(actor), str(device), parse_utc(str(since)))
            for i, actor, device, since, pid in rows
            if _alive(int(pid))
        ]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a feed killed with SIGKILL left its row)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


class SQLiteFeed(FeedBase):
    """Polls ``PRAGMA data_version`` on its own connection: it changes whenever another
    connection (another process, or this process's store) commits."""

    def __init__(
        self,
        store: SQLiteStore,
        incident_id: str | None,
        after: int,
        present_as: tuple[str, str] | None,
    ) -> None:
        super().__init__(incident_id, after)
        self._path = store.path
        self._key = str(uuid.uuid4())
        self._present_as = present_as if incident_id is not None else None
        self._since = format_utc(datetime.now(UTC))
        self._conn_lock = threading.Lock()
        """get() runs in a worker thread, close() may come from another."""
        try:
            self._conn = _connect(store.path, store.busy_timeout_ms)
            # Presence rows are not precious: no fsync for them (WAL stays consistent).
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._version = self._data_version()
            self._catch_up()
        except sqlite3.Error as exc:
            raise _store_error(exc, self._path, "following the log") from None
        self._beat()

    def _data_version(self) -> int:
        (version,) = self._conn.execute("PRAGMA data_version").fetchone()
        return int(version)

    def _wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopped.is_set():
            try:
                with self._conn_lock:
                    version = self._data_version()
                    moved = version != self._version
                    if moved:
                        self._catch_up()
                        self._version = version  # only once read: a failed read is retried
                self.connected = True
                if moved:
                    return
            except sqlite3.Error:
                self.connected = False  # locked or unreadable for now: try again
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._stopped.wait(min(POLL, left))

    def _read_after(self, incident_id: str, seq: int) -> list[Event]:
        rows = self._conn.execute(
            f"{_SELECT} WHERE incident_id = ? AND seq > ? ORDER BY seq", (incident_id, seq)
        ).fetchall()
        return events_from_rows(rows)

    def _tails(self) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT incident_id, MAX(seq) FROM events GROUP BY incident_id"
        ).fetchall()
        return {str(i): int(seq) for i, seq in rows}

    def _heartbeat(self) -> None:
        if self._present_as is None or self.incident_id is None:
            return
        actor, device = self._present_as
        # Presence is advisory: a busy or full disk must not stop the feed.
        with self._conn_lock, contextlib.suppress(sqlite3.Error):
            now = time.time()
            self._conn.execute(
                "INSERT OR REPLACE INTO presence VALUES (?, ?, ?, ?, ?, ?, ?)",
                (self._key, self.incident_id, actor, device, os.getpid(), self._since, now),
            )
            # Rows of feeds that died without leaving: not shown, and cleared in time.
            self._conn.execute("DELETE FROM presence WHERE seen < ?", (now - 10 * PRESENCE_TTL,))

    def _release(self) -> None:
        with self._conn_lock, contextlib.suppress(sqlite3.Error):
            if self._present_as is not None:
                self._conn.execute("DELETE FROM presence WHERE feed = ?", (self._key,))
            self._conn.close()
