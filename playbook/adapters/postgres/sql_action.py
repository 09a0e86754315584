"""Guarded SQL on PostgreSQL: one UPDATE, DELETE or INSERT on a declared table (kind
``postgres-sql``).

(Over 600 lines: the parser's check, the catalog's, and the four stages, which must agree
on each row's key, text form and fingerprint, read best in one place.)

"Drop the inactive rows" is a statement a responder would otherwise paste into psql.
This writer runs it with the same guard rails as the upsert
(:mod:`playbook.adapters.postgres.writer`, whose advisory lock and connection it shares):

* **what it is**: PostgreSQL's own parser (pglast) reads the text: exactly one UPDATE,
  DELETE or INSERT, no WITH, no RETURNING, no ON CONFLICT, no change to a key column;
  the catalog says its table is the declared one (both names resolved on the session's
  search path, as the statement's are), that the key is a unique index, and that no
  rule rewrites it. Everything the statement could call goes through the reader's
  check (:func:`playbook.adapters.postgres.calls._check`: the same allowlist, the
  responder's ``functions`` and ``privileged``), run in a read-only subtransaction so
  that the server itself vouches nothing was written while checking. What a write to
  the table runs and changes is the catalog's word (:mod:`.sql_table`), asked by every
  stage that writes, the rollback included, with the table locked: code not
  PostgreSQL's own runs only where the responder trusts it, and a foreign key that
  cascades to another table's rows, or inheritance children, are refused.
* **which table**: the dry run finds the relation the name means (its schema, name and
  OID); the backup and apply refuse if the name now means another one, and the backup's
  header records it, so the rollback writes to that relation or to none.
* **dry run**: the statement runs inside a savepoint with ``RETURNING`` its rows' keys;
  each row is read as changed, the savepoint is rolled back, each row is read as it
  was; the transaction is then rolled back. Count and a sample are shown.
* **backup**: the same, and each row's old values (PostgreSQL's text for every column,
  or that it was absent) go to the backup file, keyed.
* **apply**: one transaction. Each backed-up row is locked ``FOR UPDATE`` and compared
  with the backup; then the statement runs and the keys it changed must be exactly the
  backed-up ones. Any difference (someone changed, added or removed a targeted row since
  the dry run) rolls the transaction back: nothing written, the seed-002 lesson. Each
  changed row's fingerprint is recorded (and fsynced) before the commit.
* **rollback**: one transaction; each row locked and compared with the fingerprint, put
  back only where it is as the run left it; the others are kept and named. Its own
  statements name the table by schema (never through the search path).

A row's fingerprint is the SHA-256 of its columns' text: the SET columns of an UPDATE
(a counter the application moves on afterwards is not the run's), every column of an
inserted row, absent for a deleted one.

Costs and limits: at most :data:`MAX_ROWS` rows per statement (they are held in memory
and in the backup); the dry run and the backup really run the statement (inside a
savepoint), so sequences advance and triggers fire (a trusted trigger's outside effects,
if any, happen three times); an INSERT must give its keys, or the apply's could never
match the backup's; our own statements compare keys with ``OPERATOR(pg_catalog.=)``,
so a key column needs an equality operator of PostgreSQL's own.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from playbook.adapters.base import Refused, RunContext, RunError, Sink
from playbook.adapters.postgres.calls import RefusedOnServer, TargetOptions, check_role
from playbook.adapters.postgres.sql import Calls
from playbook.adapters.postgres.sql_table import TABLE_SQL, check_table, pin_table
from playbook.adapters.postgres.writer import (
    PostgresWriter,
    _bound,
    _shown,
    apply_failed,
    backup_header,
    key_params,
    key_where,
)
from playbook.adapters.writers import ITEMS_SHOWN, Plan, Undo, WriteRequest, Written

MAX_ROWS = 50_000
READ_BATCH = 5_000
"""Rows read a round trip (before and during apply)."""
"""Rows one statement may change: each is held in memory, in the plan and the backup."""
BACKUP_FORMAT = "playbook-postgres-sql-backup/2"
BACKUP_RULE = (
    "One row per row the statement changes. key: the key columns, value: PostgreSQL's "
    "own text output for the column's type. row: every column as that text (null: SQL "
    "NULL), as it was before the run; absent: true: there was no such row (the statement "
    "inserts it). A rollback gives the text back to each type's input function. The "
    "header's schema, name and oid: the relation the rows came from; a rollback writes "
    "only to the relation with that OID."
)
_KINDS = {"UpdateStmt": "UPDATE", "DeleteStmt": "DELETE", "InsertStmt": "INSERT"}


class StatementRefused(Refused, RunError):
    """The statement is not one the action may run; nothing was sent or written."""


# --------------------------------------------------------------------------- the statement


@dataclass(frozen=True)
class Dml:
    """One data-changing statement as PostgreSQL's parser reads it."""

    kind: str
    """UPDATE, DELETE or INSERT."""
    body: str
    """The statement as the parser delimited it, placeholders as ``$n``."""
    order: tuple[str, ...]
    """The parameters' names in ``$n`` order."""
    relation: str
    """Its table as written, quoted, for ``to_regclass``."""
    ref: str
    """How a RETURNING names the table's row: its alias, or its name."""
    sets: tuple[str, ...]
    """An UPDATE's SET columns (the columns it writes); an INSERT's listed columns."""
    calls: Calls


def check_dml(text: str, key: list[str]) -> Dml:
    """The statement, if the parser reads ``text`` as one UPDATE, DELETE or INSERT we run.

    Raises:
        StatementRefused: anything else; the message names what was found.
    """
    from pglast import parse_sql
    from pglast.parser import ParseError

    from playbook.adapters.postgres.sql import _calls, _numbered, _quoted, placeholders

    if "\x00" in text:
        raise StatementRefused("Refused: the SQL holds a NUL character.")
    try:
        names = placeholders(text)
    except Refused as exc:
        raise StatementRefused(exc.title, exc.message) from None
    parsed, order = _numbered(text) if names else (text, ())
    try:
        statements = parse_sql(parsed)
    except ParseError as exc:
        raise StatementRefused(
            f"Refused: PostgreSQL's parser cannot read the SQL: {exc.args[0]}."
        ) from None
    except RecursionError:
        raise StatementRefused("Refused: the SQL is nested too deeply to check.") from None
    if len(statements) != 1:
        raise StatementRefused(
            f"Refused: the SQL holds {len(statements)} statements; an action runs exactly one."
        )
    raw = statements[0]
    node = raw.stmt
    kind = _KINDS.get(type(node).__name__)
    if kind is None:
        raise StatementRefused(
            f"Refused: the SQL is a {type(node).__name__.removesuffix('Stmt')} statement; a "
            "postgres-sql action runs one UPDATE, DELETE or INSERT (no DDL)."
        )
    if node.withClause is not None:
        raise StatementRefused("Refused: a WITH clause; write the change as one plain statement.")
    # pglast for PostgreSQL 18 calls it returningClause; earlier ones returningList
    if getattr(node, "returningClause", None) or getattr(node, "returningList", None):
        raise StatementRefused("Refused: RETURNING is playbook's own (it reads the keys).")
    if kind == "INSERT" and node.onConflictClause is not None:
        raise StatementRefused(
            "Refused: ON CONFLICT; a row changed or not depending on the data is not what "
            "the dry run can promise. Use an UPDATE, or the postgres upsert."
        )
    if kind == "UPDATE":
        sets = tuple(t.name for t in node.targetList or ())
        children: tuple[Any, ...] = (node.targetList, node.fromClause, node.whereClause)
    elif kind == "DELETE":
        sets = ()
        children = (node.usingClause, node.whereClause)
    else:
        sets = tuple(t.name for t in node.cols or ())
        children = (node.selectStmt,)
    if kind == "INSERT" and sets and not set(key) <= set(sets):
        raise StatementRefused(
            f"Refused: the INSERT does not give the key column "
            f"{sorted(set(key) - set(sets))[0]}; a key the server makes up (a sequence) "
            "differs between the dry run and the apply, so apply could never match the backup."
        )
    if kind == "UPDATE" and set(sets) & set(key):
        raise StatementRefused(
            f"Refused: the UPDATE sets the key column {sorted(set(sets) & set(key))[0]}; a "
            "row's key is how the backup and the rollback find it."
        )
    rel = node.relation
    parts = [p for p in (rel.schemaname, rel.relname) if p]
    relation = _quoted(parts)
    ref = _quoted([rel.alias.aliasname]) if rel.alias is not None else relation
    try:
        calls = _calls(children)
    except Refused as exc:
        raise StatementRefused(exc.title, exc.message) from None
    calls = Calls(calls.functions, calls.operators, calls.types, (*calls.relations, relation))
    start = max(raw.stmt_location, 0)
    body = parsed[start : start + raw.stmt_len] if raw.stmt_len else parsed[start:]
    return Dml(kind, body, order, relation, ref, sets, calls)


# --------------------------------------------------------------------------- the table


@dataclass
class Job:
    """The statement, its table as the catalog describes it, and its parameters."""

    dml: Dml
    schema: str
    name: str
    label: str
    columns: list[str]
    writable: set[str]
    key: list[str]
    params: list[Any]
    key_types: dict[str, str] = field(default_factory=dict)
    """Each key column's type as ``format_type`` spells it on the session's path."""
    oid: int = 0
    """The table's OID: which relation the name resolved to."""

    @property
    def found(self) -> dict[str, Any]:
        """The table as the catalog identifies it: what later stages must find again."""
        return {"schema": self.schema, "name": self.name, "oid": self.oid}

    @property
    def ident(self) -> Any:
        from psycopg import sql

        return sql.Identifier(self.schema, self.name)

    @property
    def printed(self) -> list[str] | None:
        """The columns a fingerprint covers: an UPDATE's SET columns, else all."""
        return list(self.dml.sets) if self.dml.kind == "UPDATE" else None

    def where(self) -> Any:
        return key_where(self.key)

    def key_params(self, key: dict[str, Any]) -> dict[str, Any]:
        return key_params(self.key, key)

    def read(self, conn: Any, key: dict[str, Any], *, lock: bool = False) -> dict[str, Any] | None:
        """The row with ``key`` as {column: text}, or None."""
        from psycopg import sql
        from psycopg.rows import dict_row

        cols = sql.SQL(", ").join(
            sql.SQL("{}::pg_catalog.text AS {}").format(sql.Identifier(c), sql.Identifier(c))
            for c in self.columns
        )
        query = sql.SQL("SELECT {} FROM {} WHERE {}{}").format(
            cols, self.ident, self.where(), sql.SQL(" FOR UPDATE") if lock else sql.SQL("")
        )
        with conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(query, self.key_params(key)).fetchone()

    def read_many(
        self, conn: Any, keys: list[dict[str, Any]], *, lock: bool = False
    ) -> dict[str, dict[str, Any] | None]:
        """The rows with ``keys`` (ident -> {column: text}, None where there is none),
        :data:`READ_BATCH` keys a round trip: one join with the keys' arrays, each text
        cast to its column's type so the key's index is used."""
        from psycopg import sql
        from psycopg.rows import dict_row

        found: dict[str, dict[str, Any] | None] = {ident_of(k): None for k in keys}
        cols = sql.SQL(", ").join(
            sql.SQL("t.{}::pg_catalog.text AS {}").format(sql.Identifier(c), sql.Identifier(c))
            for c in self.columns
        )
        arrays = sql.SQL(", ").join(
            sql.SQL("{}::pg_catalog.text[]").format(sql.Placeholder(f"a_{i}"))
            for i in range(len(self.key))
        )
        names = sql.SQL(", ").join(sql.Identifier(f"a_{i}") for i in range(len(self.key)))
        on = sql.SQL(" AND ").join(
            sql.SQL("t.{} OPERATOR(pg_catalog.=) CAST(u.{} AS {})").format(
                sql.Identifier(k), sql.Identifier(f"a_{i}"), sql.SQL(self.key_types[k])
            )
            for i, k in enumerate(self.key)
        )
        query = sql.SQL(
            "SELECT {} FROM {} AS t JOIN pg_catalog.unnest({}) AS u({}) ON {}{}"
        ).format(cols, self.ident, arrays, names, on, sql.SQL(" FOR UPDATE OF t" if lock else ""))
        for start in range(0, len(keys), READ_BATCH):
            batch = keys[start : start + READ_BATCH]
            params = {f"a_{i}": [key[k] for key in batch] for i, k in enumerate(self.key)}
            with conn.cursor(row_factory=dict_row) as cur:
                for row in cur.execute(query, params):
                    found[ident_of({k: row[k] for k in self.key})] = row
        return found

    def shown(self, key: dict[str, Any]) -> str:
        return f"{self.label} " + " ".join(f"{k}={v}" for k, v in key.items())


def ident_of(key: dict[str, Any]) -> str:
    return json.dumps(key, sort_keys=True)


def row_print(row: dict[str, Any] | None, columns: list[str] | None) -> str | None:
    """The fingerprint of ``row`` ({column: text}) over ``columns`` (None: all); None
    for no row."""
    if row is None:
        return None
    picked = {c: row.get(c) for c in columns} if columns is not None else dict(row)
    text = json.dumps(picked, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _prepare(
    conn: Any,
    request: WriteRequest,
    *,
    table: dict[str, Any] | None = None,
    undoing: dict[str, Any] | None = None,
) -> Job:
    """The statement checked against the server's parser and catalog; the table
    described, locked, and what a write to it runs checked. Runs in the stage's
    transaction, so the checks hold for the stage's write.

    ``table``: the table as an earlier stage found it (:func:`_found`); the name must
    still resolve to that relation (its OID). ``undoing``: a rollback's; the statement is
    not run, so neither its calls nor its kind are checked, but what the rollback's own
    writes run and change is (``deletes``, ``updates``).

    Raises:
        StatementRefused | RefusedOnServer: not a statement this action may run.
        RunError: no such table, or a parameter without a value.
    """
    do = request.do
    key = [str(k) for k in do["key"]]
    dml = check_dml(str(do["sql"]), key)
    missing = sorted(set(dml.order) - set(request.params))
    if missing:
        raise StatementRefused(
            f"Refused: the SQL uses %({missing[0]})s, which is not one of the action's params.",
            "Declare each %(name)s under the action's params.",
        )
    target = TargetOptions.of(request.options)
    schema, name, oid = pin_table(
        conn, str(do["table"]), table, lock=True, restoring=undoing is not None
    )
    statement = conn.execute(
        "SELECT pg_catalog.to_regclass(%s)::pg_catalog.oid", [dml.relation]
    ).fetchone()[0]
    if statement != oid:
        raise StatementRefused(
            f"Refused: the statement changes {dml.relation}, not the declared table {do['table']}.",
            "An action changes only the table it declares (do.table). Nothing was run.",
        )
    columns, writable, unique = conn.execute(TABLE_SQL, {"oid": oid, "key": sorted(key)}).fetchone()
    if not unique:
        raise StatementRefused(
            f"Refused: {do['table']} has no unique index on ({', '.join(key)}), so its rows "
            "cannot be found again by that key.",
            "Key the action on the table's primary key or a unique column set.",
        )
    unknown = sorted(set(dml.sets) - set(columns))
    if unknown:
        raise StatementRefused(f"Refused: {do['table']} has no column {unknown[0]}.")
    check_role(conn, target)
    if undoing is None:
        check_table(
            conn,
            oid,
            str(do["table"]),
            target,
            deletes=dml.kind == "DELETE",
            updates=set(dml.sets) if dml.kind == "UPDATE" else set(),
            doing=f"the {dml.kind}",
        )
        _check_calls(conn, dml.calls, target)
    else:
        updates = undoing["updates"]
        if updates is None:
            updates = set(writable or ()) - set(key)
        check_table(
            conn,
            oid,
            str(do["table"]),
            target,
            deletes=undoing["deletes"],
            updates=updates,
            doing="the rollback",
        )
    params = [_bound(request.params[n]) for n in dml.order]
    key_types = dict(
        conn.execute(
            "SELECT a.attname::pg_catalog.text, pg_catalog.format_type(a.atttypid, a.atttypmod)"
            " FROM pg_catalog.pg_attribute a WHERE a.attrelid OPERATOR(pg_catalog.=) %s"
            " AND a.attname OPERATOR(pg_catalog.=) ANY (%s::pg_catalog.name[])",
            [oid, key],
        ).fetchall()
    )
    return Job(
        dml,
        schema,
        name,
        str(do["table"]),
        columns,
        set(writable or ()),
        key,
        params,
        key_types,
        oid,
    )


def _check_calls(conn: Any, calls: Calls, target: TargetOptions) -> None:
    """The reader's check of what the statement could call, in a read-only
    subtransaction (the server's word that checking wrote nothing), locking what it
    reads in the outer transaction between rounds, as the reader does."""
    from psycopg import sql

    from playbook.adapters.postgres.calls import LOCK_ROUNDS, _check

    locked: set[tuple[str, str]] = set()
    for _ in range(LOCK_ROUNDS):
        conn.execute("SAVEPOINT playbook_check")
        try:
            conn.execute("SELECT pg_catalog.set_config('transaction_read_only', 'on', true)")
            wanted = _check(conn, calls, target)
        finally:
            conn.execute("ROLLBACK TO SAVEPOINT playbook_check")
        if wanted <= locked:
            return
        names = sql.SQL(", ").join(sql.Identifier(*n) for n in sorted(wanted - locked))
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(names))
        locked |= wanted
    raise RefusedOnServer(
        "Refused: the relations the statement reads kept changing while they were checked."
    )


def _run(conn: Any, job: Job) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Run the statement with RETURNING every column as text; (key, row as the statement
    left it: None for a deleted one), in order.

    Raises:
        RunError: more than :data:`MAX_ROWS` rows, or a row with a NULL key.
    """
    import psycopg

    returning = ", ".join(
        f"{job.dml.ref}.{_q(c)}::pg_catalog.text AS {_q(f'c_{i}')}"
        for i, c in enumerate(job.columns)
    )
    text = f"{job.dml.body}\nRETURNING {returning}"
    found = []
    cur = psycopg.RawCursor(conn)
    for n, values in enumerate(cur.execute(text, job.params or None)):
        if n >= MAX_ROWS:
            raise RunError(
                f"The statement changes more than {MAX_ROWS:,} rows; a guarded SQL action "
                "changes at most that many.",
                "Narrow its WHERE and run it in parts. Nothing was written.",
            )
        row = dict(zip(job.columns, values, strict=True))
        key = {k: row[k] for k in job.key}
        if any(v is None for v in key.values()):
            raise RunError(f"The statement changes a row of {job.label} whose key is NULL.")
        found.append((key, None if job.dml.kind == "DELETE" else row))
    return found


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _rows(conn: Any, job: Job, ctx: RunContext) -> list[tuple[dict[str, Any], Any, Any]]:
    """(key, row before, row after) for every row the statement changes, found by running
    it in a savepoint that is rolled back."""
    conn.execute("SAVEPOINT playbook_dry")
    changed = _run(conn, job)
    conn.execute("ROLLBACK TO SAVEPOINT playbook_dry")
    ctx.check()
    before = job.read_many(conn, [key for key, _ in changed])
    return [(key, before[ident_of(key)], new) for key, new in changed]


def _line(job: Job, key: dict[str, Any], old: Any, new: Any) -> str:
    where = job.shown(key)
    if new is None:
        return f"delete {where}"
    if old is None:
        cols = [c for c in job.columns if c not in job.key and new.get(c) is not None]
        return f"insert {where}: " + ", ".join(f"{c} {_shown(new[c])}" for c in cols[:8])
    changed = [c for c in job.columns if old.get(c) != new.get(c)]
    return f"update {where}: " + ", ".join(
        f"{c} {_shown(old.get(c))} -> {_shown(new.get(c))}" for c in changed[:8]
    )


# --------------------------------------------------------------------------- the writer


class PostgresSqlWriter(PostgresWriter):
    """Runs one checked UPDATE, DELETE or INSERT as a guarded action."""

    kind: ClassVar[str] = "postgres-sql"
    operations: ClassVar[tuple[str, ...]] = ("statement",)
    records_writes: ClassVar[bool] = True

    def plan(self, request: WriteRequest, ctx: RunContext) -> Plan:
        with self._connection(request, ctx, "the dry run", read_only=False) as conn:
            job = _prepare(conn, request)
            found = _rows(conn, job, ctx)
            conn.rollback()
        verb = job.dml.kind.lower()
        items = [_line(job, k, old, new) for k, old, new in found[:ITEMS_SHOWN]]
        return Plan(
            counts={verb: len(found)},
            items=items,
            touches=len(found),
            private={"rows": [(k, old) for k, old, _ in found], "table": job.found},
        )

    def backup(self, request: WriteRequest, plan: Plan, ctx: RunContext, out: Sink) -> int:
        with self._connection(request, ctx, "the backup", read_only=False) as conn:
            job = _prepare(conn, request, table=plan.private.get("table"))
            found = _rows(conn, job, ctx)
            conn.rollback()
        out.add(
            {
                "format": BACKUP_FORMAT,
                "rule": BACKUP_RULE,
                "table": job.label,
                # the relation itself: a rollback restores into it or into nothing
                "schema": job.schema,
                "name": job.name,
                "oid": job.oid,
                "key": job.key,
                "statement": job.dml.kind,
            }
        )
        saved: dict[str, Any] = {}
        for n, (key, old, _) in enumerate(found):
            out.add({"key": key, "absent": True} if old is None else {"key": key, "row": old})
            saved[ident_of(key)] = old
            ctx.progress(n + 1, len(found), "rows saved")
        plan.private["backup"] = saved
        return len(found)

    def apply(
        self, request: WriteRequest, plan: Plan, ctx: RunContext, written: Written | None = None
    ) -> dict[str, int]:
        written = written if written is not None else Written(None)
        saved: dict[str, Any] = plan.private.get("backup") or {}
        committing = False
        try:
            with self._connection(request, ctx, "the statement", read_only=False) as conn:
                job = _prepare(conn, request, table=plan.private.get("table"))
                now = job.read_many(conn, [json.loads(i) for i in saved], lock=True)
                for ident, old in saved.items():  # still as the backup saw them?
                    if now[ident] != old:
                        raise RunError(
                            f"{job.shown(json.loads(ident))} changed after the backup; nothing "
                            "was written.",
                            "Start again from the dry run, so the backup holds what apply "
                            "replaces.",
                        )
                ctx.check()
                changes = _run(conn, job)
                keys = [key for key, _ in changes]
                changed = {ident_of(k) for k in keys}
                if changed != set(saved):
                    extra = sorted(changed - set(saved))
                    gone = sorted(set(saved) - changed)
                    which = (
                        f"it would now also change {job.shown(json.loads(extra[0]))}"
                        if extra
                        else f"it no longer changes {job.shown(json.loads(gone[0]))}"
                    )
                    raise RunError(
                        f"The statement's rows are not the ones backed up: {which} "
                        f"({len(extra)} more, {len(gone)} fewer); nothing was written.",
                        "Start again from the dry run, so the backup holds what apply replaces.",
                    )
                for n, (key, left) in enumerate(changes):
                    written.record(ident_of(key).encode(), row_print(left, job.printed))
                    ctx.progress(n + 1, len(keys), "rows written")
                ctx.check()
                written.commit()  # before the commit: a rollback must know every row
                committing = True
                conn.commit()
        except RunError as exc:
            raise apply_failed(exc, committing, "statement") from None
        return {job.dml.kind.lower() + "d": len(keys)}

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
        head = backup_header(backup, BACKUP_FORMAT)
        kind = str(head.get("statement"))
        with self._connection(request, ctx, "the rollback", read_only=False) as conn:
            # what this rollback writes: it deletes the rows an INSERT added, puts back
            # an UPDATE's SET columns, or reinserts a deleted row (or, where the row is
            # back since, puts back its columns but the key: None)
            undoing: dict[str, Any] = {
                "deletes": kind == "INSERT",
                "updates": set(check_dml(str(request.do["sql"]), []).sets)
                if kind == "UPDATE"
                else (None if kind == "DELETE" else set()),
            }
            job = _prepare(conn, request, table=head, undoing=undoing)
            cols = job.printed
            for n, item in enumerate(backup):
                ctx.check()
                key = dict(item["key"])
                ident = ident_of(key)
                params = job.key_params(key)
                old = None if item.get("absent") else dict(item["row"])
                now = job.read(conn, key, lock=True)
                verdict = undo.decide(ident.encode(), row_print(now, cols), row_print(old, cols))
                decided.append((job.shown(key), verdict))
                if verdict not in ("restore", "force"):
                    if verdict != "keep":
                        done[verdict] += 1
                    continue
                if old is None:  # the run inserted it: take it out again
                    if now is not None:
                        conn.execute(
                            sql.SQL("DELETE FROM {} WHERE {}").format(job.ident, job.where()),
                            params,
                        )
                        done["deleted"] += 1
                    continue
                # the key is how the row was found: it is already the backup's
                put = {c: v for c, v in old.items() if c in job.writable and c not in job.key}
                if cols is not None:  # an UPDATE: only the columns it set go back
                    put = {c: v for c, v in put.items() if c in cols}
                # text values go in untyped: each column's type reads its own text form
                values = {f"r_{i}": v for i, v in enumerate(put.values())}
                if now is None:
                    full = {c: v for c, v in old.items() if c in job.writable}
                    conn.execute(
                        sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                            job.ident,
                            sql.SQL(", ").join(map(sql.Identifier, full)),
                            sql.SQL(", ").join(sql.Placeholder(f"r_{i}") for i in range(len(full))),
                        ),
                        {f"r_{i}": v for i, v in enumerate(full.values())},
                    )
                    done["reinserted"] += 1
                    continue
                if put:
                    conn.execute(
                        sql.SQL("UPDATE {} SET {} WHERE {}").format(
                            job.ident,
                            sql.SQL(", ").join(
                                sql.SQL("{} = {}").format(
                                    sql.Identifier(c), sql.Placeholder(f"r_{i}")
                                )
                                for i, c in enumerate(put)
                            ),
                            job.where(),
                        ),
                        {**params, **values},
                    )
                done["restored"] += 1
                ctx.progress(n + 1, None, "rows restored")
            ctx.check()
            conn.commit()
        for name, verdict in decided:
            undo.settle(name, verdict)
        return done
