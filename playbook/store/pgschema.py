"""The shared store's schema in PostgreSQL: numbered steps, applied once each.

``playbook.schema_migrations`` records every step applied, with its description and
time. :func:`migrate` applies the missing ones in one transaction (PostgreSQL's DDL is
transactional: a step applies whole or not at all) under an advisory lock, so two clients
starting at once do not both apply a step. A step is never edited once released; a change
is a new step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from playbook.errors import StoreError

CHANNEL = "playbook"
"""The notification channel: payload ``incident:seq``."""

ROW_SELECT = (
    "incident_id, seq, to_char(at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " actor, type, payload::text, schema, event_id::text, device"
)
"""The columns :func:`playbook.store.rows.event_from_row` reads, times as our UTC text."""


def first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "no reason given"


LOCK_SPACE = 0x706C6179  # "play"
"""First key of the incidents' advisory locks (the second is the incident id's hash), so
they do not meet another application's locks on the same database; the store takes it
before it appends, and the server's check (step 2) takes it for every row inserted."""

MIGRATION_LOCK = (LOCK_SPACE + 1, 0)
"""The advisory lock migrations take (beside the incidents' ``LOCK_SPACE``)."""

MIGRATIONS: tuple[tuple[str, str], ...] = (
    (
        "the event log and presence",
        """
        CREATE TABLE playbook.events (
            incident_id text NOT NULL CHECK (length(incident_id) BETWEEN 1 AND 200),
            seq         integer NOT NULL CHECK (seq > 0),
            event_id    uuid NOT NULL UNIQUE,
            at          timestamptz NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            actor       text NOT NULL,
            device      text NOT NULL DEFAULT '',
            type        text NOT NULL,
            payload     json NOT NULL,
            schema      integer NOT NULL,
            PRIMARY KEY (incident_id, seq)
        );
        CREATE INDEX events_opened ON playbook.events (at, incident_id) WHERE seq = 1;
        CREATE TABLE playbook.presence (
            feed             uuid PRIMARY KEY,
            incident_id      text NOT NULL,
            actor            text NOT NULL,
            device           text NOT NULL,
            backend_pid      integer NOT NULL,
            application_name text NOT NULL,
            since            timestamptz NOT NULL DEFAULT now(),
            seen             timestamptz NOT NULL DEFAULT now()
        );
        """,
    ),
    (
        "the server keeps the log append-only in order",
        f"""
        CREATE FUNCTION playbook.events_in_order() RETURNS trigger
        LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
        DECLARE
            last integer;
        BEGIN
            -- The incident's lock, the one every playbook takes before it appends:
            -- re-entrant for a playbook that holds it already, and a writer that skips
            -- it (psql) waits until the tail it checks against is settled.
            PERFORM pg_advisory_xact_lock({LOCK_SPACE}, hashtext(NEW.incident_id));
            SELECT max(seq) INTO last FROM playbook.events WHERE incident_id = NEW.incident_id;
            IF NEW.seq <> COALESCE(last, 0) + 1 THEN
                RAISE EXCEPTION USING
                    ERRCODE = 'integrity_constraint_violation',
                    CONSTRAINT = 'events_in_order',
                    MESSAGE = format('event %s of incident %s is not the next one (%s)',
                                     NEW.seq, NEW.incident_id, COALESCE(last, 0) + 1);
            END IF;
            NEW.recorded_at := now();  -- the server's clock, whatever the writer sent
            RETURN NEW;
        END
        $$;
        CREATE TRIGGER events_in_order BEFORE INSERT ON playbook.events
            FOR EACH ROW EXECUTE FUNCTION playbook.events_in_order();
        """,
    ),
)
"""Schema steps, numbered from 1, each applied once in :func:`migrate`.

Step 2: a row may only be the incident's next event (its last sequence plus one), checked
by the server under the incident's advisory lock, so a role with INSERT (every
responder's, after ``store init --grant``) cannot slot an event into the past or leave a
gap for later; rows already in a log are kept as they are. What it costs: one index probe
per row appended, under a lock the writer already holds."""

SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The schema's version in this database (0: never initialised)."""
    (exists,) = conn.execute(  # type: ignore[misc]
        "SELECT to_regclass('playbook.schema_migrations') IS NOT NULL"
    ).fetchone()
    if not exists:
        return 0
    (version,) = conn.execute(  # type: ignore[misc]
        "SELECT COALESCE(max(version), 0) FROM playbook.schema_migrations"
    ).fetchone()
    return int(version)


def schema_error(server: str, version: int) -> StoreError:
    if version > SCHEMA_VERSION:
        return StoreError(
            f"The shared incident log at {server} was set up by a newer playbook "
            f"(schema {version}; this one knows {SCHEMA_VERSION}).",
            "Upgrade playbook to use it; nothing was changed.",
        )
    return StoreError(
        f"The shared incident log at {server} is not set up"
        + (f" for this playbook (schema {version} of {SCHEMA_VERSION})." if version else "."),
        "Run `playbook store init` once, as a role that may create tables there.",
    )


def migrate(conn: psycopg.Connection[Any]) -> list[int]:
    """Apply the schema steps this database lacks, in one transaction, under an advisory
    lock (two clients starting at once: the second waits, then finds nothing to do).

    A database that is up to date is only read, so a role without the CREATE privilege
    can run this too. Returns the versions applied.
    """
    if schema_version(conn) == SCHEMA_VERSION:
        return []
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s, %s)", MIGRATION_LOCK)
        conn.execute("CREATE SCHEMA IF NOT EXISTS playbook")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS playbook.schema_migrations ("
            " version integer PRIMARY KEY, description text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = schema_version(conn)
        if current > SCHEMA_VERSION:
            raise schema_error("this database", current)
        for version in range(current + 1, SCHEMA_VERSION + 1):
            description, statements = MIGRATIONS[version - 1]
            conn.execute(statements.encode())  # several statements: simple query protocol
            conn.execute(
                "INSERT INTO playbook.schema_migrations (version, description) VALUES (%s, %s)",
                (version, description),
            )
            applied.append(version)
    return applied


def grant(conn: psycopg.Connection[Any], roles: Sequence[str]) -> None:
    """Give ``roles`` what a responder's playbook needs: the log is append-only for
    them (SELECT and INSERT, no UPDATE or DELETE), enforced by the server."""
    from psycopg import sql

    for role in roles:
        who = sql.Identifier(role)
        with conn.transaction():
            for statement in (
                "GRANT USAGE ON SCHEMA playbook TO {}",
                "GRANT SELECT, INSERT ON playbook.events TO {}",
                "GRANT SELECT ON playbook.schema_migrations TO {}",
                "GRANT SELECT, INSERT, UPDATE, DELETE ON playbook.presence TO {}",
            ):
                conn.execute(sql.SQL(statement).format(who))
