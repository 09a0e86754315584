"""A team's shared event log on PostgreSQL, behind the same protocol as SQLite.

The choices, and why:

- **Tables in their own schema** (``playbook.events``, ``playbook.presence``,
  ``playbook.schema_migrations``): a team's database already has tables, maybe one called
  ``events``. ``events`` has the primary key ``(incident_id, seq)``, so a second writer at
  the same sequence fails instead of forking the log, and a unique ``event_id``.
- **Payloads are ``json``, not ``jsonb``**: ``jsonb`` stores keys sorted (by length, then
  bytes), so a MongoDB ``sort`` of ``{role: 1, _id: -1}`` would come back as
  ``{_id: -1, role: 1}``, another query. ``json`` keeps the text as written, and the
  server still refuses anything that is not JSON. A later migration can add an indexed
  ``payload::jsonb`` generated column if the team wants to query payloads.
- **One advisory transaction lock per incident** (``pg_advisory_xact_lock`` on a key the
  server hashes from the id) serialises ``append`` and ``update`` on one incident, rather
  than ``SELECT … FOR UPDATE`` on an incident row: a brand-new incident has no row to lock
  (two clients opening it would race to create it), and the lock needs no second table
  kept in step with the log. Incidents never wait for each other, a hash collision only
  makes two incidents' writers take turns, and readers (the incident list included) never
  wait at all. Each statement after the lock sees every commit made before it (READ
  COMMITTED takes a snapshot per statement), so the read-decide-append is never stale.
- **Idempotent appends**: the client gives each event its id (uuid4) before sending. An
  append first looks its ids up: found, it returns the events as recorded (the first try
  committed and its reply was lost); so a retry is always safe, and appends are retried on
  a broken connection (:data:`ATTEMPTS`).
- **One round trip per append**: BEGIN, the lock, one statement that checks the ids and
  the expected sequence, inserts and queues the notification, and COMMIT go in one
  pipeline. Through a 50 ms link an append costs 50 ms, not 350.
- **Live updates**: each append is followed, in the same pipeline, by
  ``NOTIFY playbook, 'incident:seq'`` in a transaction of its own that does not wait for
  the disk (see ``_pipelined``: a notifying transaction holds a cluster-wide lock through
  its fsync, which queued every responder's append behind the others'). Listeners read
  the events themselves (:class:`playbook.store.pgfeed.PostgresFeed`), so the payload stays a few bytes; they
  drop repeats, close gaps by reading, and catch up every ``pgfeed.SWEEP`` seconds in case a
  notification was lost between the two commits.
- **Durability**: ``synchronous_commit`` is raised to ``on`` for our sessions when the
  server has it ``off``: "acknowledged" means flushed to the server's disk.
- **Credentials**: the URL is used as libpq reads it (TLS parameters such as ``sslmode``
  and ``sslrootcert`` are honoured, never stripped); only its redacted form
  (:func:`playbook.redaction.redact`) appears in a message, and its password is scrubbed
  from any driver text quoted.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import TransactionStatus

from playbook.core.events import Event, NewEvent, format_utc
from playbook.errors import StoreError
from playbook.redaction import redact, remember_uri, scrub
from playbook.store import (
    ConcurrencyConflict,
    Presence,
    StoreUnavailable,
    already_recorded,
    check_incident_id,
    numbered,
    reused_ids,
)
from playbook.store.follow import PRESENCE_TTL
from playbook.store.pgfeed import PostgresFeed
from playbook.store.pgschema import (
    CHANNEL,
    LOCK_SPACE,
    ROW_SELECT,
    SCHEMA_VERSION,
    first_line,
    grant,
    migrate,
    schema_error,
    schema_version,
)

__all__ = ["PostgresStore", "init"]
from playbook.store.rows import events_from_rows, payload_text

ATTEMPTS = 3
"""Tries for an operation whose connection breaks; safe for appends thanks to event ids."""
BACKOFF = (0.1, 0.5)
"""Seconds to wait before the second and the third try."""

CONNECTION_DEFAULTS = {
    "connect_timeout": "3",
    "application_name": "playbook",
    # A server that vanished (cable, VM paused) is noticed within seconds, not the
    # kernel's 15 minutes: keepalives for an idle wait, tcp_user_timeout for sent data.
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "3",
    "keepalives_count": "3",
    "tcp_user_timeout": "10000",
}
"""libpq parameters we add when the URL does not set them (the URL always wins)."""

SESSION = (
    "SELECT set_config('lock_timeout', '10s', false),"
    " set_config('idle_in_transaction_session_timeout', '60s', false),"
    " set_config('synchronous_commit',"
    "   CASE current_setting('synchronous_commit') WHEN 'off' THEN 'on'"
    "   ELSE current_setting('synchronous_commit') END, false)"
)
"""Set once per connection: a client that dies holding the lock frees it within a minute,
a writer waits at most 10 s for another, and commits are durable."""


_APPEND = """
WITH given AS (
    SELECT * FROM unnest(
        %(seqs)s::int[], %(ids)s::uuid[], %(ats)s::timestamptz[], %(actors)s::text[],
        %(devices)s::text[], %(types)s::text[], %(payloads)s::text[], %(schemas)s::int[]
    ) AS g(seq, event_id, at, actor, device, type, payload, schema)
),
found AS (
    SELECT count(*) AS n FROM playbook.events WHERE event_id IN (SELECT event_id FROM given)
),
tail AS (
    SELECT COALESCE(max(seq), 0) AS last FROM playbook.events WHERE incident_id = %(incident)s
),
added AS (
    INSERT INTO playbook.events
        (incident_id, seq, event_id, at, actor, device, type, payload, schema)
    SELECT %(incident)s, seq, event_id, at, actor, device, type, payload::json, schema
    FROM given
    WHERE %(check)s = false
       OR ((SELECT n FROM found) = 0 AND (SELECT last FROM tail) = %(expected)s)
    ORDER BY seq
    RETURNING seq
)
SELECT (SELECT n FROM found), (SELECT last FROM tail), (SELECT count(*) FROM added)
"""
"""Check the batch's ids and the expected sequence and insert, in one statement (run after
the incident's lock, so its snapshot holds every commit)."""

_TELL = (
    "SELECT pg_notify(%(channel)s, %(incident)s || ':' || COALESCE(max(seq), 0))"
    " FROM playbook.events WHERE incident_id = %(incident)s"
)
"""The notification: the incident's last sequence (``incident:seq``); after a conflict,
that is an event the listeners have, and they drop it."""


def _params(
    incident_id: str, expected_seq: int, new: Sequence[Event], check: bool
) -> dict[str, Any]:
    return {
        "incident": incident_id,
        "expected": expected_seq,
        "check": check,
        "channel": CHANNEL,
        "seqs": [e.seq for e in new],
        "ids": [uuid.UUID(e.event_id) for e in new],
        "ats": [format_utc(e.at) for e in new],
        "actors": [e.actor for e in new],
        "devices": [e.device for e in new],
        "types": [e.type for e in new],
        "payloads": [payload_text(e.payload) for e in new],
        "schemas": [e.schema for e in new],
    }


@contextmanager
def _pipelined(conn: psycopg.Connection[Any]) -> Iterator[list[str]]:
    """BEGIN … COMMIT in one pipeline: sent together, one round trip (plus one for each
    result fetched inside). Not ``conn.transaction()``, which waits for its BEGIN.

    Then, in the same pipeline, a second transaction notifies listeners that the
    incidents the body put in the yielded list moved. Not the first: a transaction that
    notifies holds a cluster-wide lock until its commit is flushed to disk, so every
    notifying commit waits for the previous one's fsync and all clients' appends queue
    behind each other (group commit cannot help). This one commits without waiting for
    the disk (a notification is never durable anyway); it is sent only after the events
    are committed, and one lost between the two commits (a crash, a cut) is caught up by
    the listeners' periodic sweep and their reconnection.
    """
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            tell: list[str] = []
            yield tell
            conn.execute("COMMIT")
            if tell:
                conn.execute("BEGIN")
                conn.execute("SET LOCAL synchronous_commit = off")
                for incident_id in tell:
                    conn.execute(_TELL, {"channel": CHANNEL, "incident": incident_id})
                conn.execute("COMMIT")
    except BaseException:
        if not conn.broken and conn.info.transaction_status != TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        raise


IDENTITY_KEYS = ("host", "hostaddr", "port", "dbname", "user", "service")
"""What says which server, database and role a URL reaches (the outbox's key): not TLS,
timeouts or any other option, which change how the same store is reached."""


def _read(url: str) -> dict[str, str]:
    """``url`` as libpq reads it.

    Raises:
        StoreError: libpq cannot read it (its message scrubbed of the URL's secrets).
    """
    try:
        return {k: str(v) for k, v in conninfo_to_dict(url).items()}
    except (psycopg.Error, ValueError) as exc:
        raise StoreError(
            f"The shared store's URL is not a PostgreSQL URL: {first_line(scrub(str(exc), url))}",
            "Give it as postgresql://user@host/database (or libpq key=value).",
        ) from None


def identity(url: str) -> str:
    """Which store ``url`` names, as libpq reads it: its hosts, ports, database and user
    (:data:`IDENTITY_KEYS`), with libpq's defaults for what it leaves out (the
    ``PG…`` variables, port 5432, the login name; the database named as the user), as a
    libpq ``key=value`` string. Two spellings of one store (``?sslmode=disable`` added,
    ``:5432`` written out, a URI or ``key=value``) give the same string; it holds no
    secret, so the outbox may keep it on disk.

    Raises:
        StoreError: libpq cannot read ``url``.
    """
    given = _read(url)
    defaults = {
        opt.keyword.decode(): opt.val.decode()
        for opt in pq.Conninfo.get_defaults()
        if opt.keyword and opt.val is not None
    }
    key = {k: given.get(k) or defaults.get(k, "") for k in IDENTITY_KEYS}
    key["dbname"] = key["dbname"] or key["user"]  # libpq's own default
    return make_conninfo("", **{k: v for k, v in key.items() if v})


def _lock(conn: psycopg.Connection[Any], incident_id: str) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (LOCK_SPACE, incident_id))


class PostgresStore:
    """Incidents' events in a shared PostgreSQL database (see the module's docstring).

    ``url`` is a ``postgresql://`` URI or a libpq ``key=value`` string, from the
    responder's own config or environment. The schema must have been created by
    :func:`init` (``playbook store init``).
    """

    def __init__(self, url: str, *, check_schema: bool = True) -> None:
        remember_uri(url)  # from now on its password is scrubbed from every message
        self.url = url
        self.server = redact(url)
        """The URL as it may be shown: password and secret parameters masked."""
        given = _read(url)
        self.identity = identity(url)
        """Which store this is, whatever the URL's spelling (:func:`identity`): the key
        of its local outbox, kept there in place of the URL."""
        extra = {k: v for k, v in CONNECTION_DEFAULTS.items() if k not in given}
        self._conninfo = make_conninfo(url, **extra)
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._check_schema = check_schema

    # ------------------------------------------------------------------ connections

    def connect(self, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new autocommit connection with our session settings.

        Raises:
            psycopg.Error: as the driver raised it (callers turn it into a StoreError).
        """
        conn = psycopg.connect(self._conninfo, autocommit=True, **kwargs)
        try:
            conn.execute(SESSION)
        except BaseException:
            conn.close()
            raise
        return conn

    def _connection(self) -> psycopg.Connection[Any]:
        """The store's connection, made (and the schema checked) when there is none."""
        if self._conn is not None and not self._conn.broken and not self._conn.closed:
            return self._conn
        self._drop()
        conn = self.connect()
        if self._check_schema:
            try:
                version = schema_version(conn)
            except BaseException:
                conn.close()
                raise
            if version != SCHEMA_VERSION:
                conn.close()
                raise schema_error(self.server, version)
            self._check_schema = False
        self._conn = conn
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _run(
        self,
        work: Callable[[psycopg.Connection[Any]], Any],
        doing: Callable[[], str],
        unconfirmed: Callable[[], Sequence[NewEvent]] = list,
        seen: Callable[[], Sequence[Event] | None] = lambda: None,
        writes: bool = True,
    ) -> Any:
        """``work`` on the connection under the thread lock; tried again on a fresh
        connection when the connection breaks (``work`` must be safe to repeat), and
        the driver's errors made into ours.

        Raises:
            StoreUnavailable: the server could not be reached in :data:`ATTEMPTS` tries.
            ConcurrencyConflict: another writer took the sequence first.
            StoreError: the server refused the work.
        """
        last_error: Exception | None = None
        with self._lock:
            for attempt in range(ATTEMPTS):
                if attempt:
                    time.sleep(BACKOFF[min(attempt, len(BACKOFF)) - 1])
                conn = None
                try:
                    conn = self._connection()
                    return work(conn)
                except psycopg.Error as exc:
                    if conn is not None and not (conn.broken or conn.closed):
                        raise self._refused(exc, doing()) from None
                    self._drop()  # the connection is gone (or never came): try again
                    last_error = exc
        pending = list(unconfirmed())
        reason = first_line(scrub(str(last_error), self.url))
        raise StoreUnavailable(
            f"Cannot reach the shared incident log at {self.server}: {reason}",
            (
                f"The server did not confirm {doing()}: it may or may not be recorded; "
                "sending it again is safe (each event is recognised by its id)."
                if pending
                else f"{doing()[:1].upper()}{doing()[1:]} was NOT recorded."
                if writes
                else "Check that the server is up and reachable from here; nothing changed."
            ),
            unconfirmed=pending,
            seen=seen(),
        )

    def _refused(self, exc: psycopg.Error, doing: str) -> Exception:
        """The error for a server's refusal (the connection still works)."""
        if isinstance(exc, pg_errors.UniqueViolation):
            if exc.diag.constraint_name == "events_pkey":
                return ConcurrencyConflict("the incident changed while appending")
            if exc.diag.constraint_name == "events_event_id_key":
                return reused_ids([])
        if isinstance(exc, pg_errors.LockNotAvailable):
            return StoreError(
                f"Another playbook held the incident's lock at {self.server} for over 10 s: "
                f"{doing} was NOT recorded.",
                "Run the command again in a moment.",
            )
        if isinstance(exc, pg_errors.UndefinedTable | pg_errors.InvalidSchemaName):
            return schema_error(self.server, 0)
        return StoreError(
            f"The shared incident log at {self.server} refused {doing}: "
            f"{first_line(scrub(str(exc), self.url))}",
            "It was NOT recorded. Everything recorded before is intact.",
        )

    # ------------------------------------------------------------------ the protocol

    def append(
        self, incident_id: str, expected_seq: int, events: Sequence[NewEvent]
    ) -> list[Event]:
        new = numbered(incident_id, expected_seq, events)
        sent = False

        def work(conn: psycopg.Connection[Any]) -> list[Event]:
            nonlocal sent
            with _pipelined(conn) as tell:
                _lock(conn, incident_id)
                tell.append(incident_id)  # after a conflict: a repeat, which listeners drop
                cur = conn.execute(_APPEND, _params(incident_id, expected_seq, new, True))
                sent = True
            found, last, added = cur.fetchone()  # type: ignore[misc]
            if found:
                again = already_recorded(
                    incident_id, events, self._by_ids(conn, [e.event_id for e in events])
                )
                assert again is not None
                return again
            if added != len(new):
                raise ConcurrencyConflict(
                    f"incident {incident_id} changed: at {last}, expected {expected_seq}"
                )
            return new

        return self._run(
            work,
            lambda: ", ".join(e.type for e in new),
            unconfirmed=lambda: list(events) if sent else [],
        )

    def update(
        self, incident_id: str, decide: Callable[[list[Event]], Sequence[NewEvent]]
    ) -> tuple[list[Event], list[Event]]:
        check_incident_id(incident_id)
        decided: list[NewEvent] = []
        seen: list[Event] | None = None
        sent = False

        def work(conn: psycopg.Connection[Any]) -> tuple[list[Event], list[Event]]:
            nonlocal decided, seen, sent
            new: list[Event] = []
            # Two round trips: BEGIN, the lock and the read; then the insert and COMMIT.
            with _pipelined(conn) as tell:
                _lock(conn, incident_id)
                before = events_from_rows(
                    conn.execute(  # fetching makes the pipeline send what it holds
                        f"SELECT {ROW_SELECT} FROM playbook.events WHERE incident_id = %s ORDER BY seq",
                        (incident_id,),
                    ).fetchall()
                )
                if sent:  # a retry: did the first try commit before its reply was lost?
                    ids = {e.event_id for e in decided}
                    landed = [e for e in before if e.event_id in ids]
                    if landed:
                        if len(landed) != len(decided):
                            raise reused_ids(landed)
                        return [e for e in before if e.seq < landed[0].seq], landed
                seen, sent = before, False
                decided = list(decide(before))
                # After the log's last sequence, not its length: a log with a gap (rows
                # planted before the server checked the order) numbered a note 4 below
                # a planted 50, and the CLI reported the note as "event 50".
                last = before[-1].seq if before else 0
                new = numbered(incident_id, last, decided)
                if new:
                    sent = True
                    conn.execute(_APPEND, _params(incident_id, last, new, False))
                    tell.append(incident_id)
            return before, new

        return self._run(
            work,
            lambda: ", ".join(e.type for e in decided) or "the change",
            unconfirmed=lambda: decided if sent else [],
            seen=lambda: seen if sent else None,
        )

    def _by_ids(self, conn: psycopg.Connection[Any], ids: Sequence[str]) -> list[Event]:
        cur = conn.execute(
            f"SELECT {ROW_SELECT} FROM playbook.events WHERE event_id = ANY(%s) ORDER BY seq",
            ([uuid.UUID(i) for i in ids],),
        )
        return events_from_rows(cur.fetchall())

    def read(self, incident_id: str) -> list[Event]:
        return self._run(
            lambda conn: events_from_rows(
                conn.execute(
                    f"SELECT {ROW_SELECT} FROM playbook.events WHERE incident_id = %s ORDER BY seq",
                    (incident_id,),
                ).fetchall()
            ),
            lambda: "reading the incident",
            writes=False,
        )

    def incident_ids(self) -> list[str]:
        rows = self._run(
            lambda conn: conn.execute(
                "SELECT incident_id FROM playbook.events WHERE seq = 1 ORDER BY at, incident_id"
            ).fetchall(),
            lambda: "listing incidents",
            writes=False,
        )
        return [row[0] for row in rows]

    def follow(
        self,
        incident_id: str | None = None,
        after: int = 0,
        present_as: tuple[str, str] | None = None,
    ) -> PostgresFeed:
        return PostgresFeed(self, incident_id, after, present_as)

    def presence(self, incident_id: str | None = None) -> list[Presence]:
        rows = self._run(
            lambda conn: conn.execute(
                "SELECT p.incident_id, p.actor, p.device, p.since FROM playbook.presence p"
                " JOIN pg_stat_activity a"
                "   ON a.pid = p.backend_pid AND a.application_name = p.application_name"
                " WHERE p.seen > now() - make_interval(secs => %s)"
                "   AND (%s::text IS NULL OR p.incident_id = %s)"
                " ORDER BY p.since",
                (PRESENCE_TTL, incident_id, incident_id),
            ).fetchall(),
            lambda: "reading who is present",
            writes=False,
        )
        return [
            Presence(i, actor, device, since.astimezone(UTC)) for i, actor, device, since in rows
        ]

    def ping(self) -> None:
        """Return once the server answers (and the schema is ours): the check before an
        outside effect (:func:`playbook.service.team.require_online`).

        Raises:
            StoreUnavailable: it does not answer.
        """
        self._run(lambda conn: conn.execute("SELECT 1"), lambda: "a check", writes=False)

    def schema_version(self) -> int:
        """The schema's version on the server (0: `playbook store init` never ran), read
        without refusing a version other than ours (`playbook store status` shows it)."""
        with self._lock:
            checking, self._check_schema = self._check_schema, False
        try:
            version: int = self._run(
                schema_version, lambda: "reading the schema's version", writes=False
            )
            return version
        finally:
            if checking:  # that connection skipped the check: the next one makes it
                with self._lock:
                    self._check_schema = True
                    self._drop()

    def close(self) -> None:
        with self._lock:
            self._drop()


def init(url: str, grant_to: Sequence[str] = ()) -> list[int]:
    """``playbook store init``: create or upgrade the schema at ``url``; returns the
    versions applied (empty: it was up to date).

    ``grant_to`` names roles the responders log in as: they get what the app needs and
    no more (read and append events, never change or delete one; keep their presence).

    Raises:
        StoreUnavailable: the server cannot be reached.
        StoreError: the server refused (no privilege to create the schema, …).
    """
    store = PostgresStore(url, check_schema=False)

    def work(conn: psycopg.Connection[Any]) -> list[int]:
        applied = migrate(conn)
        if grant_to:
            grant(conn, grant_to)
        return applied

    try:
        return store._run(work, lambda: "setting up the schema")  # type: ignore[no-any-return]
    finally:
        store.close()
