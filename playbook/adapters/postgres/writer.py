"""Guarded changes to PostgreSQL: ``upsert`` (``INSERT … ON CONFLICT (key) DO UPDATE``).

(Over 600 lines: the catalog checks, the lock and the four stages of one operation,
which must agree on each row's text form and fingerprint; every statement of ours named
so that a table owner's search path reaches none of its own code.)

Seed 002's fix was a hand-typed ``INSERT … ON CONFLICT (staff_id) DO UPDATE`` to put
back a staff record a stale backup had overwritten. This writer does the same change
with the guard rails around it:

* **plan** reads, in a read-only transaction, the rows the upsert would hit and says
  per key what would be inserted, updated (old -> new, column by column) or left as is.
  The server compares, after casting each given value to its column's type, so
  ``'2025-10-31T10:30:59Z'`` and a stored ``timestamptz`` are the same time.
* **backup** saves each key's whole row as PostgreSQL's own text for every column (or
  that the row was absent): text goes back in through each type's input function, so
  timestamps, numerics, bytea, arrays and JSON return exactly as they were.
* **lock** is an advisory lock held on a connection of its own whose
  ``application_name`` names the holder; it dies with that connection, so a killed
  process frees it.
* **apply** is one transaction: the rows are first checked to be as the backup saw them
  (locked ``FOR UPDATE``), then upserted with identifiers quoted by :mod:`psycopg.sql`
  and values bound; a row the backup saw absent is inserted only if it is still absent
  (``ON CONFLICT DO NOTHING``: one inserted since is someone else's, and the transaction
  stops). Each row written is read back, in the same transaction, and its fingerprint
  recorded (and fsynced) before the commit. A failure or cancel leaves the transaction
  uncommitted: the data as it was.
* **rollback** is one transaction: each row is locked ``FOR UPDATE`` and compared with
  the fingerprint the apply recorded; only rows still as the run left them go back (a
  row the run inserted is deleted, the others get the columns the upsert set back). A
  row changed since is kept and named. Running it twice changes nothing more.
* **which table, and what a write to it runs**: the catalog's word, asked as the SQL
  action asks it (:mod:`.sql_table`). The dry run pins the relation the name means (its
  OID); the backup and apply refuse if the name now means another one, and the backup's
  header records it, so the rollback writes to that relation (named by its schema) or to
  none. The apply and the rollback lock the table ``ROW EXCLUSIVE`` first, then refuse
  code of the database's own that their writes would run (triggers, defaults, rules,
  policies, domain checks, index expressions) unless the responder trusts it, and a
  foreign key of another table whose ``ON DELETE`` / ``ON UPDATE`` action would change
  that table's rows (no backup holds them). The dry run asks the same, unlocked, so a
  refusal comes before the backup; it also warns when the rollback would be refused.

A row's fingerprint is the SHA-256 of its columns' text (PostgreSQL's own text for each
type): every column for a row the run inserted, the columns the upsert set for a row it
updated (a counter the application moves on afterwards is not the run's to undo, and
does not make the row "changed").
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from playbook.adapters.base import RunContext, RunError, Sink
from playbook.adapters.postgres.calls import RefusedOnServer, TargetOptions
from playbook.adapters.postgres.reader import (
    Interrupt,
    connect,
    json_ready,
    run_error,
    set_timeouts,
)
from playbook.adapters.postgres.sql_table import check_code, check_foreign, pin_table
from playbook.adapters.writers import Lock, LockHeld, Plan, Undo, Writer, WriteRequest, Written
from playbook.redaction import shortened

APPLICATION_NAME = "playbook action"
SAFE_PATH = "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true)"
"""Our own statements' search path, for the rest of the transaction: PostgreSQL's own
schema, then the session's temporary one (never searched for functions or operators)."""
NAME_BYTES = 63
"""PostgreSQL keeps the first 63 bytes of an ``application_name``."""
SHOWN = 60
"""Characters of a value shown in a plan line."""
BACKUP_FORMAT = "playbook-postgres-backup/2"
BACKUP_RULE = (
    "A header, then one row per row of the upsert. key: the key columns, value: "
    "PostgreSQL's own text output for the column's type. row: every column as that text "
    "(null: SQL NULL), as it was before the run; absent: true: there was no such row (the "
    "upsert inserts it). A rollback gives the text back to each type's input function. "
    "The header's schema, name and oid: the relation the rows came from; a rollback "
    "writes only to the relation with that OID."
)


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """As ``format_type`` spells it (``timestamp with time zone``)."""
    not_null: bool
    has_default: bool
    writable: bool
    """False for generated and ``GENERATED ALWAYS AS IDENTITY`` columns."""


@dataclass
class Table:
    """The upsert's table as the catalog describes it, and the request's rows."""

    parts: tuple[str, ...]
    """The table's schema and name as the catalog has them (our statements name it so)."""
    columns: dict[str, Column]
    key: list[str]
    rows: list[dict[str, Any]]
    given: str = ""
    """The table as the playbook names it, for messages."""
    oid: int = 0
    """Which relation the name resolved to."""

    @property
    def found(self) -> dict[str, Any]:
        """The relation as the catalog identifies it: what later stages must find again."""
        return {"schema": self.parts[0], "name": self.parts[1], "oid": self.oid}

    def code(self, conn: Any, request: WriteRequest, doing: str) -> list[int]:
        """:func:`check_code` for this table (and the OIDs of it and its partitions)."""
        return check_code(
            conn, self.oid, self.label, TargetOptions.of(request.options), doing=doing
        )

    def updated(self, rows: Sequence[Mapping[str, Any]]) -> set[str]:
        """The columns an upsert of ``rows`` (already there) sets: all given but the key."""
        return {c for row in rows for c in row} - set(self.key)

    @property
    def ident(self) -> Any:
        from psycopg import sql

        return sql.Identifier(*self.parts)

    @property
    def label(self) -> str:
        return self.given or ".".join(self.parts)

    def key_of(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: json_ready(row[k]) for k in self.key}

    def key_text(self, key: dict[str, Any]) -> str:
        return " ".join(f"{k}={v}" for k, v in key.items())

    def where(self) -> Any:
        return key_where(self.key)

    def key_params(self, key: dict[str, Any]) -> dict[str, Any]:
        return key_params(self.key, key)

    def as_text(self) -> Any:
        """Every column as PostgreSQL's text for it: ``"c"::text AS "c"``, …"""
        from psycopg import sql

        return sql.SQL(", ").join(
            sql.SQL("{}::pg_catalog.text AS {}").format(sql.Identifier(c), sql.Identifier(c))
            for c in self.columns
        )


def _describe(
    conn: Any,
    request: WriteRequest,
    earlier: Mapping[str, Any] | None = None,
    *,
    lock: bool = False,
    restoring: bool = False,
) -> Table:
    """The table's columns from the catalog, checked against the request.

    ``earlier``: the relation an earlier stage found (the dry run's, the backup header's);
    the name must still mean it. ``lock``: the stage writes; the table is locked ``ROW
    EXCLUSIVE`` before the catalog is read (:func:`pin_table`).

    Raises:
        RunError: no such table, a column it does not have, a key without a unique
            index, a row without its key or two rows with the same key.
        RefusedOnServer: the name now means another relation than ``earlier``.
    """
    do = request.do
    key = [str(k) for k in do["key"]]
    rows = [dict(r) for r in do["rows"]]
    # The name is resolved on the session's search path, as the playbook means it; from
    # here on the transaction's path is PostgreSQL's own, so a look-alike function or
    # operator that the database's owner put earlier on the path (public.set_config, a
    # public "=") is never what our statements reach. The table is named by its schema.
    schema, name, found = pin_table(conn, str(do["table"]), earlier, lock=lock, restoring=restoring)
    conn.execute(SAFE_PATH)
    columns = {
        name: Column(name, typ, not_null, has_default, writable)
        for name, typ, not_null, has_default, writable in conn.execute(
            "SELECT attname, pg_catalog.format_type(atttypid, atttypmod), attnotnull,"
            " atthasdef OR attidentity OPERATOR(pg_catalog.<>) '',"
            " attgenerated OPERATOR(pg_catalog.=) ''"
            " AND attidentity OPERATOR(pg_catalog.<>) 'a'"
            " FROM pg_catalog.pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) %s"
            " AND attnum OPERATOR(pg_catalog.>) 0 AND NOT attisdropped"
            " ORDER BY attnum",
            [found],
        ).fetchall()
    }
    table = Table((schema, name), columns, key, rows, str(do["table"]), found)
    unknown = sorted({c for r in rows for c in r} - set(columns))
    if unknown:
        raise RunError(
            f"{table.label} has no column {', '.join(unknown)}.",
            f"Its columns: {', '.join(columns)}.",
        )
    unique = conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_index i"
        " WHERE i.indrelid OPERATOR(pg_catalog.=) %s AND i.indisunique"
        " AND i.indpred IS NULL AND (SELECT pg_catalog.array_agg(attname ORDER BY attname)"
        "   FROM pg_catalog.pg_attribute WHERE attrelid OPERATOR(pg_catalog.=) %s"
        "   AND attnum OPERATOR(pg_catalog.=) ANY(i.indkey))"
        " OPERATOR(pg_catalog.=) %s::pg_catalog.name[])",
        [found, found, sorted(key)],
    ).fetchone()[0]
    if not unique:
        raise RunError(
            f"{table.label} has no unique index on ({', '.join(key)}), so ON CONFLICT "
            "cannot find the row to update.",
            "Key the action on the table's primary key or a unique column set.",
        )
    seen: set[tuple[Any, ...]] = set()
    for n, row in enumerate(rows, 1):
        missing = [k for k in key if row.get(k) is None]
        if missing:
            raise RunError(f"Row {n} of the upsert has no value for its key {', '.join(missing)}.")
        ident = tuple(json_ready(row[k]) for k in key)
        if ident in seen:
            raise RunError(f"Two rows of the upsert have the same key {table.key_of(row)}.")
        seen.add(ident)
    return table


def _session(conn: Any, ctx: RunContext) -> None:
    """Time limits for this transaction, and the text forms of values fixed (UTC, ISO)."""
    set_timeouts(conn, ctx)
    conn.execute(
        "SELECT pg_catalog.set_config('TimeZone', 'UTC', true),"
        " pg_catalog.set_config('DateStyle', 'ISO, MDY', true),"
        " pg_catalog.set_config('IntervalStyle', 'postgres', true),"
        " pg_catalog.set_config('extra_float_digits', '3', true)"
    )


def _read(conn: Any, table: Table, key: dict[str, Any], *, lock: bool = False) -> Any:
    """The row with ``key`` as {column: text}, or None when there is none."""
    from psycopg import sql
    from psycopg.rows import dict_row

    query = sql.SQL("SELECT {} FROM {} WHERE {}{}").format(
        table.as_text(),
        table.ident,
        table.where(),
        sql.SQL(" FOR UPDATE") if lock else sql.SQL(""),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, table.key_params(key)).fetchone()


def _shown(text: str | None) -> str:
    if text is None:
        return "NULL"
    return repr(shortened(text, SHOWN))


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (the first 8 bytes of SHA-256)."""
    return int.from_bytes(hashlib.sha256(name.encode("utf-8")).digest()[:8], "big", signed=True)


def short_holder(holder: str) -> str:
    """``holder`` cut to what an ``application_name`` keeps (63 bytes), keeping who and
    which run: ``alice@host pid 7, run 20261122t031500-a1b2``."""
    text = f"playbook {holder}"
    if len(text.encode("utf-8")) > NAME_BYTES:
        parts = holder.split(", ")
        kept = [parts[0], *[p for p in parts[1:] if p.startswith("run ")]]
        text = f"playbook {', '.join(kept)}"
    if len(text.encode("utf-8")) > NAME_BYTES and ", run " in text:  # shorten the who
        who, run = text.split(", run ", 1)
        room = NAME_BYTES - len(f"..., run {run}".encode())
        who = who.encode("utf-8")[: max(0, room)].decode("utf-8", "ignore")
        text = f"{who}..., run {run}"  # ASCII: the server shows other characters as ?
    return text.encode("utf-8")[:NAME_BYTES].decode("utf-8", "ignore")


# --------------------------------------------------------------------------- the lock


class AdvisoryLock(Lock):
    """A session advisory lock, held by its own connection until :meth:`release`."""

    def __init__(self, conn: Any, key: int) -> None:
        self.conn = conn
        self.key = key

    def release(self) -> None:
        try:
            if not self.conn.closed:
                self.conn.execute("SELECT pg_catalog.pg_advisory_unlock(%s)", [self.key])
        finally:
            self.conn.close()  # the lock dies with the session anyway


# --------------------------------------------------------------------------- the writer


def key_where(columns: Sequence[str]) -> Any:
    """``"k1" OPERATOR(pg_catalog.=) %(k_0)s AND …`` for a row's key: the operator named
    through ``pg_catalog``, so a look-alike on the search path is never reached."""
    from psycopg import sql

    return sql.SQL(" AND ").join(
        sql.SQL("{} OPERATOR(pg_catalog.=) {}").format(sql.Identifier(k), sql.Placeholder(f"k_{i}"))
        for i, k in enumerate(columns)
    )


def key_params(columns: Sequence[str], key: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters :func:`key_where` names, from a row's key."""
    return {f"k_{i}": key[k] for i, k in enumerate(columns)}


def backup_header(backup: Iterator[dict[str, Any]], form: str) -> dict[str, Any]:
    """The header of a backup in format ``form``, which records the relation its rows
    came from (schema, name, OID): a rollback writes to that relation or to none.

    Raises:
        RunError: the backup has no such header (an older format, or none).
    """
    head = next(backup, None)
    if head is None or head.get("format") != form:
        raise RunError(
            f"The backup is not a {form} file (it says {(head or {}).get('format')!r}): it "
            "does not record which relation its rows came from, so nothing is restored "
            "into whatever the name means now.",
            "Restore its rows by hand, into the table you know they came from.",
        )
    return head


def apply_failed(exc: RunError, committing: bool, what: str) -> RunError:
    """What an apply that failed in one transaction says. Failed at the commit, it may or
    may not have been applied. Failed before it, the transaction is gone and the table is
    as it was, so there is nothing to roll back (and a rollback would put the backup over
    newer rows): the error says ``nothing_written``."""
    if committing:
        return type(exc)(
            f"The {what}'s commit did not answer: {exc.title}",
            "It may or may not have been applied; run the dry run to see which.",
        )
    error = type(exc)(
        f"{exc.title} The transaction was rolled back: the data is as it was.", exc.message
    )
    error.nothing_written = True  # type: ignore[attr-defined]
    return error


class PostgresWriter(Writer):
    """Upserts a few rows in one transaction, with a backup that restores them exactly."""

    kind: ClassVar[str] = "postgres"
    operations: ClassVar[tuple[str, ...]] = ("upsert",)
    records_writes: ClassVar[bool] = True

    @contextlib.contextmanager
    def _connection(
        self,
        request: WriteRequest,
        ctx: RunContext,
        doing: str,
        *,
        read_only: bool,
        snapshot: bool = False,
    ) -> Iterator[Any]:
        """A connection in a transaction with the stage's time limits; rolled back
        unless the body commits; errors as :class:`RunError` with the URI scrubbed."""
        import psycopg

        if request.do.get("operation") not in self.operations:
            raise RunError(f"The postgres writer cannot {request.do.get('operation')!r}.")
        conn = connect(request.uri, ctx, APPLICATION_NAME, autocommit=False)
        interrupt = Interrupt(conn)
        ctx.on_stop(interrupt)
        try:
            conn.read_only = read_only
            if snapshot:  # REPEATABLE READ: every row read from one snapshot
                conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            _session(conn, ctx)
            yield conn
        except psycopg.Error as exc:
            raise run_error(exc, ctx, request.uri, doing) from None
        finally:
            with contextlib.suppress(Exception):
                if not conn.closed and not ctx.stopped:
                    conn.rollback()
            interrupt.close()

    # ------------------------------------------------------------------ plan

    def plan(self, request: WriteRequest, ctx: RunContext) -> Plan:
        from psycopg import sql
        from psycopg.rows import dict_row

        counts = {"insert": 0, "update": 0, "unchanged": 0}
        items: list[str] = []
        warnings: list[str] = []
        there: list[dict[str, Any]] = []
        with self._connection(request, ctx, "the dry run", read_only=True) as conn:
            table = _describe(conn, request)
            # Asked before any value is cast (a domain's check is the owner's code);
            # unlocked (the dry run reads only): the apply asks again under its lock.
            oids = table.code(conn, request, "the upsert")
            for n, row in enumerate(table.rows):
                ctx.check()
                key = table.key_of(row)
                given = [c for c in table.columns if c in row and c not in table.key]
                params = table.key_params(key)
                picks = [sql.SQL("true AS found")]
                for i, col in enumerate(given):
                    cast = sql.SQL("CAST({} AS {})").format(
                        sql.Placeholder(f"v_{i}"), sql.SQL(table.columns[col].type)
                    )
                    params[f"v_{i}"] = _bound(row[col])
                    picks.append(
                        sql.SQL(
                            "{c}::text AS {old}, {cast}::text AS {new},"
                            " {c} IS NOT DISTINCT FROM {cast} AS {same}"
                        ).format(
                            c=sql.Identifier(col),
                            cast=cast,
                            old=sql.Identifier(f"old_{i}"),
                            new=sql.Identifier(f"new_{i}"),
                            same=sql.Identifier(f"same_{i}"),
                        )
                    )
                query = sql.SQL("SELECT {} FROM {} WHERE {}").format(
                    sql.SQL(", ").join(picks), table.ident, table.where()
                )
                with conn.cursor(row_factory=dict_row) as cur:
                    found = cur.execute(query, params).fetchone()
                label = f"{table.label} {table.key_text(key)}"
                missing = [
                    c.name
                    for c in table.columns.values()
                    if c.not_null and not c.has_default and c.writable and c.name not in row
                ]
                if missing:  # checked before ON CONFLICT looks for the row, so always
                    warnings.append(
                        f"Apply will fail: {label} gives no {', '.join(missing)}, which the "
                        "table requires (NOT NULL, no default); an upsert's row must be "
                        "complete enough to insert."
                    )
                if found is not None:
                    there.append(row)
                if found is None:
                    counts["insert"] += 1
                    shown = ", ".join(f"{c} {_shown(_text(row[c]))}" for c in given)
                    items.append(f"insert {label}" + (f": {shown}" if shown else ""))
                    continue
                changed = [
                    f"{col} {_shown(found[f'old_{i}'])} -> {_shown(found[f'new_{i}'])}"
                    for i, col in enumerate(given)
                    if not found[f"same_{i}"]
                ]
                if changed:
                    counts["update"] += 1
                    items.append(f"update {label}: " + ", ".join(changed))
                else:
                    counts["unchanged"] += 1
                ctx.progress(n + 1, len(table.rows), "rows compared")
            updates = table.updated(there)
            check_foreign(
                conn, oids, table.label, deletes=False, updates=updates, doing="the upsert"
            )
            try:  # the rollback asks the same; better known before the apply
                check_foreign(
                    conn,
                    oids,
                    table.label,
                    deletes=counts["insert"] > 0,
                    updates=updates,
                    doing="its rollback",
                )
            except RefusedOnServer as exc:
                warnings.append(f"A rollback of this run will be refused. {exc.title}")
        return Plan(
            counts=counts,
            items=items,
            touches=counts["insert"] + counts["update"],
            warnings=warnings,
            private={"table": table.found},
        )

    # ------------------------------------------------------------------ backup

    def backup(self, request: WriteRequest, plan: Plan, ctx: RunContext, out: Sink) -> int:
        saved: dict[str, Any] = {}
        with self._connection(request, ctx, "the backup", read_only=True, snapshot=True) as conn:
            table = _describe(conn, request, plan.private.get("table"))
            types = {c.name: c.type for c in table.columns.values()}
            out.add(
                {
                    "format": BACKUP_FORMAT,
                    "rule": BACKUP_RULE,
                    "table": table.label,
                    # the relation itself: a rollback restores into it or into nothing
                    **table.found,
                    "key": table.key,
                }
            )
            for n, row in enumerate(table.rows):
                ctx.check()
                key = table.key_of(row)
                found = _read(conn, table, key)
                if found is None:
                    out.add({"key": key, "absent": True})
                else:
                    out.add({"key": key, "row": dict(found), "types": types})
                saved[_ident(key)] = None if found is None else dict(found)
                ctx.progress(n + 1, len(table.rows), "rows saved")
        plan.private["backup"] = saved
        return len(table.rows)

    # ------------------------------------------------------------------ lock

    def lock(self, request: WriteRequest, ctx: RunContext) -> Lock:
        import psycopg

        name = request.lock_name or f"playbook:action:{request.action_id}"
        key = lock_key(name)
        conn = connect(request.uri, ctx, short_holder(request.holder), autocommit=True)
        interrupt = Interrupt(conn)
        ctx.on_stop(interrupt)  # only while taking it: a held lock outlives the stage
        try:
            # This connection runs only our statements: PostgreSQL's own path for all.
            conn.execute(
                "SELECT pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', false)"
            )
            with contextlib.suppress(psycopg.Error):  # a dead client frees the lock sooner
                conn.execute(
                    "SELECT pg_catalog.set_config('tcp_keepalives_idle', '30', false),"
                    " pg_catalog.set_config('tcp_keepalives_interval', '10', false),"
                    " pg_catalog.set_config('tcp_keepalives_count', '3', false)"
                )
            if conn.execute("SELECT pg_catalog.pg_try_advisory_lock(%s)", [key]).fetchone()[0]:
                interrupt.detach()
                return AdvisoryLock(conn, key)
            unsigned = key & 0xFFFF_FFFF_FFFF_FFFF
            held = conn.execute(
                "SELECT a.application_name, a.backend_start, a.pid FROM pg_locks l"
                " JOIN pg_stat_activity a ON a.pid = l.pid"
                " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1"
                " AND l.classid = %s::oid AND l.objid = %s::oid"
                " AND l.database = (SELECT oid FROM pg_database"
                "   WHERE datname = current_database())",
                [str(unsigned >> 32), str(unsigned & 0xFFFF_FFFF)],
            ).fetchone()
        except psycopg.Error as exc:
            interrupt.close()
            raise run_error(exc, ctx, request.uri, "the lock") from None
        interrupt.close()
        if held is None:
            raise LockHeld(
                f"The lock {name} was held by another session, which has just let it go.",
                "Try again.",
            )
        who, since, pid = held
        age = int((datetime.now(UTC) - since).total_seconds()) if since else 0
        raise LockHeld(
            f"The lock {name} is held by {who or f'a session (pid {pid})'} "
            f"since {since.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC ({age} s ago).",
            "Another run of this action is in progress; wait for it, or ask its holder. "
            "The lock goes when its holder's connection does.",
        )

    # ------------------------------------------------------------------ apply

    def apply(
        self, request: WriteRequest, plan: Plan, ctx: RunContext, written: Written | None = None
    ) -> dict[str, int]:
        from psycopg import sql

        written = written if written is not None else Written(None)
        done = {"inserted": 0, "updated": 0, "unchanged": 0}
        committing = False
        try:
            with self._connection(request, ctx, "the upsert", read_only=False) as conn:
                table = _describe(conn, request, plan.private.get("table"), lock=True)
                oids = table.code(conn, request, "the upsert")
                saved = plan.private.get("backup")
                for row in table.rows:  # the rows must be as the backup saw them
                    key = table.key_of(row)
                    if saved is not None and _read(conn, table, key, lock=True) != saved.get(
                        _ident(key), False
                    ):
                        raise RunError(
                            f"{table.label} {table.key_text(key)} changed after the backup; "
                            "nothing was written.",
                            "Start again from the dry run, so the backup holds what apply "
                            "replaces.",
                        )
                # A row the backup saw absent is only inserted (DO NOTHING on a conflict).
                updates = table.updated(
                    [r for r in table.rows if saved is None or saved.get(_ident(table.key_of(r)))]
                )
                check_foreign(
                    conn, oids, table.label, deletes=False, updates=updates, doing="the upsert"
                )
                for n, row in enumerate(table.rows):
                    ctx.check()
                    key = table.key_of(row)
                    cols = list(row)
                    rest = [c for c in cols if c not in table.key]
                    # A row the backup saw absent has no row lock to hold it so: insert it
                    # only if it is still absent, or the upsert would overwrite a row
                    # someone else inserted since (and a rollback would delete it).
                    fresh = saved is not None and saved.get(_ident(key)) is None
                    if rest and not fresh:
                        conflict = sql.SQL(
                            "DO UPDATE SET {} WHERE ({}) IS DISTINCT FROM ({})"
                        ).format(
                            sql.SQL(", ").join(
                                sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c))
                                for c in rest
                            ),
                            sql.SQL(", ").join(
                                sql.SQL("{}.{}").format(table.ident, sql.Identifier(c))
                                for c in rest
                            ),
                            sql.SQL(", ").join(
                                sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in rest
                            ),
                        )
                    else:
                        conflict = sql.SQL("DO NOTHING")
                    query = sql.SQL(
                        "INSERT INTO {t} ({cols}) VALUES ({vals}) ON CONFLICT ({key}) {conflict}"
                        " RETURNING (xmax OPERATOR(pg_catalog.=) 0) AS inserted"
                    ).format(
                        t=table.ident,
                        cols=sql.SQL(", ").join(map(sql.Identifier, cols)),
                        vals=sql.SQL(", ").join(
                            sql.Placeholder(f"c_{i}") for i in range(len(cols))
                        ),
                        key=sql.SQL(", ").join(map(sql.Identifier, table.key)),
                        conflict=conflict,
                    )
                    params = {f"c_{i}": _bound(row[c]) for i, c in enumerate(cols)}
                    result = conn.execute(query, params).fetchone()
                    if result is None and fresh:
                        raise RunError(
                            f"{table.label} {table.key_text(key)} was inserted by someone else "
                            "after the backup; nothing was written.",
                            "Start again from the dry run, so the backup holds what apply "
                            "replaces.",
                        )
                    if result is None:
                        done["unchanged"] += 1
                    else:
                        done["inserted" if result[0] else "updated"] += 1
                        now = _read(conn, table, key)
                        written.record(
                            _ident(key).encode(), _row_print(now, None if fresh else cols)
                        )
                    ctx.progress(n + 1, len(table.rows), "rows written")
                ctx.check()
                written.commit()  # before the commit: a rollback must know every row
                committing = True
                conn.commit()
        except RunError as exc:
            raise apply_failed(exc, committing, "upsert") from None
        return done

    # ------------------------------------------------------------------ rollback

    def rollback(
        self,
        request: WriteRequest,
        backup: Iterator[dict[str, Any]],
        ctx: RunContext,
        undo: Undo | None = None,
    ) -> dict[str, int]:
        from psycopg import sql

        undo = undo if undo is not None else Undo(None, force=True)
        done = {"deleted": 0, "restored": 0, "reinserted": 0, "already": 0, "untouched": 0}
        decided: list[tuple[str, str]] = []
        # A backup of an older playbook does not say which relation its rows came from;
        # the name alone may now mean an owner's look-alike on the search path.
        head = backup_header(backup, BACKUP_FORMAT)
        items = list(backup)  # the upsert's rows: as few as the playbook lists
        with self._connection(request, ctx, "the rollback", read_only=False) as conn:
            table = _describe(conn, request, head, lock=True, restoring=True)
            oids = table.code(conn, request, "the rollback")
            given = {_ident(table.key_of(row)): list(row) for row in table.rows}
            # It deletes the rows the run inserted and sets back the columns it set.
            check_foreign(
                conn,
                oids,
                table.label,
                deletes=any(item.get("absent") for item in items),
                updates=table.updated(
                    [
                        dict.fromkeys(given.get(_ident(i["key"]), ()))
                        for i in items
                        if not i.get("absent")
                    ]
                ),
                doing="the rollback",
            )
            for n, item in enumerate(items):
                ctx.check()
                key = dict(item["key"])
                ident = _ident(key)
                params = table.key_params(key)
                absent = bool(item.get("absent"))
                # What the run wrote: the whole row it inserted, or the columns it set.
                cols = None if absent else given.get(ident)
                now = _read(conn, table, key, lock=True)
                before = None if absent else _row_print(dict(item["row"]), cols)
                verdict = undo.decide(ident.encode(), _row_print(now, cols), before)
                decided.append((f"{table.label} {table.key_text(key)}", verdict))
                if verdict not in ("restore", "force"):
                    if verdict != "keep":
                        done[verdict] += 1
                    continue
                if absent:
                    cur = conn.execute(
                        sql.SQL("DELETE FROM {} WHERE {}").format(table.ident, table.where()),
                        params,
                    )
                    done["deleted"] += cur.rowcount
                    continue
                saved = {
                    c: v
                    for c, v in dict(item["row"]).items()
                    if c in table.columns and table.columns[c].writable
                }
                # text values go in untyped: each column's type reads its own text form
                values = {f"r_{i}": v for i, v in enumerate(saved.values())}
                if now is None:  # deleted since (only with force): put it back whole
                    conn.execute(
                        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                            table.ident,
                            sql.SQL(", ").join(map(sql.Identifier, saved)),
                            sql.SQL(", ").join(
                                sql.Placeholder(f"r_{i}") for i in range(len(saved))
                            ),
                        ),
                        values,
                    )
                    done["reinserted"] += 1
                    continue
                # Only the columns the upsert set go back: a counter the application
                # moved on since is not the action's to undo.
                written_cols = set(cols or []) - set(key)
                sets = [
                    sql.SQL("{} = {}").format(sql.Identifier(c), sql.Placeholder(f"r_{i}"))
                    for i, c in enumerate(saved)
                    if c in written_cols
                ]
                if sets:
                    conn.execute(
                        sql.SQL("UPDATE {} SET {} WHERE {}").format(
                            table.ident, sql.SQL(", ").join(sets), table.where()
                        ),
                        {**params, **values},
                    )
                done["restored"] += 1
                ctx.progress(n + 1, None, "rows restored")
            ctx.check()
            conn.commit()
        for name, verdict in decided:  # counted once the transaction has gone through
            undo.settle(name, verdict)
        return done


def _row_print(row: dict[str, Any] | None, columns: list[str] | None) -> str | None:
    """The fingerprint of ``row`` ({column: text}) over ``columns`` (None: every column);
    None for no row."""
    if row is None:
        return None
    picked = {c: row.get(c) for c in columns} if columns is not None else dict(row)
    text = json.dumps(picked, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _ident(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True, default=str)


def _text(value: Any) -> str | None:
    """A given value as a plan line shows it (times ISO 8601)."""
    value = json_ready(value)
    return None if value is None else str(value)


def _bound(value: Any) -> Any:
    """A given value as psycopg binds it; nested lists and dicts as JSON."""
    if isinstance(value, dict):
        from psycopg.types.json import Jsonb

        return Jsonb(value)
    return value
