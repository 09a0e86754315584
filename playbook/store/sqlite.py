"""The default event store: one SQLite file in the user's data directory.

Durability settings, and why:
- WAL journal: readers (the app's refresh, `playbook show`) never block the writer.
- ``synchronous=FULL``: in WAL mode, NORMAL may lose the last commits on power loss;
  FULL fsyncs the WAL at every commit, so "acknowledged" means on disk. A commit costs
  an fsync (a few ms on an SSD), which a person typing never notices.
- ``BEGIN IMMEDIATE``: the write lock is taken before reading the last sequence, so two
  writers serialise instead of both deciding they are next.
- ``PRIMARY KEY (incident_id, seq)``: if they raced anyway, the second insert fails
  rather than forking the log.

Payloads are stored as JSON with their keys in the order they were written (never
``sort_keys``): a MongoDB ``sort`` in a playbook snapshot or an evidence payload means
what its key order says. A row that cannot be read back (broken or over-deep JSON, a
lone surrogate, a time, sequence number or schema that is not one, bytes that are not
UTF-8: only a hand edit, a damaged file or a newer version makes one) is returned marked
``unreadable`` rather than failing the whole incident (see :func:`_event`).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from playbook.core.events import EVENT_SCHEMA, Event, NewEvent, format_utc, parse_utc, read_payload
from playbook.errors import StoreError
from playbook.store import ConcurrencyConflict, numbered

DB_NAME = "incidents.sqlite3"
_SCHEMA_VERSION = 1

_SCHEMA = """
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
"""


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


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)
"""Times outside [_EPOCH, _LATEST) are not a time an event happened at; a deadline a
month after one near year 9999 would not fit in a ``datetime``."""


class _NotUtf8(bytes):
    """A TEXT value whose bytes are not UTF-8 (a damaged file or a hand edit), kept as
    bytes so that the row, not the whole query, is what cannot be read."""


def _text(raw: bytes) -> str | _NotUtf8:
    """The connection's text factory: UTF-8 text, or the bytes marked as not text.
    (sqlite3's default raises for the whole ``fetchall`` on one bad value.)"""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _NotUtf8(raw)


def _shown(value: object) -> str:
    """A stored value as it may appear in a reason: short, and never raising."""
    if isinstance(value, bytes):
        return f"bytes {bytes(value[:40])!r}"
    return repr(value)[:60]


def _event(row: tuple[object, ...], incident_id: str, previous: Event | None) -> Event:
    """One row as an event; never raises, whatever the row holds.

    SQLite keeps whatever a hand edit puts in a column (text in ``seq``, ``v2`` in
    ``schema``, a blob in ``payload``), so every field is checked before it is used. A
    row that fails is returned marked ``unreadable`` with an empty payload and the
    reasons, so that the incident's other events still fold and export, and the bad one
    is named. Its time falls back to the previous event's; a sequence number that is not
    a positive integer is shown as 0 (its reason quotes what is stored).
    """
    seq_raw, at_raw, actor_raw, kind_raw, payload_raw, schema_raw = row
    problems: list[str] = []
    seq = seq_raw if type(seq_raw) is int and seq_raw > 0 else 0
    if not seq:
        problems.append(f"its sequence number {_shown(seq_raw)} is not a positive integer")
    at = previous.at if previous is not None else _EPOCH
    if isinstance(at_raw, str):
        try:
            moment = parse_utc(at_raw)
        except (ValueError, OverflowError):
            problems.append(f"its time {at_raw[:40]!r} is not an ISO 8601 time")
        else:
            if _EPOCH <= moment < _LATEST:
                at = moment
            else:
                problems.append(f"its time {at_raw[:40]!r} is not a plausible time")
    else:
        problems.append(f"its time {_shown(at_raw)} is not text")
    actor = actor_raw if isinstance(actor_raw, str) else "?"
    if not isinstance(actor_raw, str):
        problems.append(f"its actor {_shown(actor_raw)} is not text")
    kind = kind_raw if isinstance(kind_raw, str) else "?"
    if not isinstance(kind_raw, str):
        problems.append(f"its type {_shown(kind_raw)} is not text")
    schema = schema_raw if type(schema_raw) is int else 0
    if schema != EVENT_SCHEMA:
        newer = " (written by a newer playbook?)" if schema > EVENT_SCHEMA else ""
        problems.append(f"its schema {_shown(schema_raw)} is not {EVENT_SCHEMA}{newer}")
    payload: dict[str, object] = {}
    if isinstance(payload_raw, str):
        if not problems:
            payload, why = read_payload(payload_raw)
            if why:
                problems.append(why)
    else:
        problems.append(f"its payload {_shown(payload_raw)} is not text")
    return Event(
        incident_id,
        seq,
        at,
        actor,
        kind,
        payload,
        schema or EVENT_SCHEMA,
        unreadable="; ".join(problems),
    )


class SQLiteStore:
    """Incidents' events in SQLite; safe for several processes at once."""

    def __init__(self, data_dir: Path | str, busy_timeout_ms: int = 10_000) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(
                f"Cannot create the data directory {self.data_dir}: {exc.strerror}.",
                "Choose a writable directory with --data-dir or PLAYBOOK_HOME.",
            ) from None
        self._lock = threading.Lock()
        try:
            self._conn = sqlite3.connect(
                self.path,
                timeout=busy_timeout_ms / 1000,
                isolation_level=None,  # we issue BEGIN/COMMIT ourselves
                check_same_thread=False,  # guarded by self._lock
            )
            self._conn.text_factory = _text
            self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            (version,) = self._conn.execute("PRAGMA user_version").fetchone()
            if version < _SCHEMA_VERSION:
                # First use: create the schema. Later opens write nothing, so an
                # incident can still be read and exported when the disk is full.
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.executescript(
                    "BEGIN IMMEDIATE;" + _SCHEMA + f"PRAGMA user_version={_SCHEMA_VERSION};COMMIT;"
                )
            elif version > _SCHEMA_VERSION:
                raise StoreError(
                    f"{self.path} was written by a newer playbook (schema {version}).",
                    "Upgrade playbook to read it; nothing was changed.",
                )
            self._conn.execute("PRAGMA synchronous=FULL")
        except sqlite3.Error as exc:
            raise _store_error(exc, self.path, "opening the log") from None

    @staticmethod
    def _rows(events: Sequence[Event]) -> list[tuple[object, ...]]:
        return [
            (
                e.incident_id,
                e.seq,
                format_utc(e.at),
                e.actor,
                e.type,
                json.dumps(e.payload, ensure_ascii=False),
                e.schema,
            )
            for e in events
        ]

    def _select(self, incident_id: str) -> list[Event]:
        # SQLite sorts integers before text and blobs, so a hand-edited sequence number
        # that is not one comes after every readable event.
        rows = self._conn.execute(
            "SELECT seq, at, actor, type, payload, schema FROM events "
            "WHERE incident_id = ? ORDER BY seq",
            (incident_id,),
        ).fetchall()
        events: list[Event] = []
        for row in rows:
            events.append(_event(row, incident_id, events[-1] if events else None))
        return events

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
            last = self._last_seq(conn, incident_id)
            if last != expected_seq:
                raise ConcurrencyConflict(
                    f"incident {incident_id} changed: at {last}, expected {expected_seq}"
                )
            conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", self._rows(new))
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
                conn.executemany("INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?)", self._rows(new))
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

    def close(self) -> None:
        with self._lock:
            self._conn.close()
