"""What PostgreSQL's catalog says of a guarded action's table: which relation the
declared name means (:func:`pin_table`), what it is (:data:`TABLE_SQL`), and what a write
to it runs and changes (:func:`check_table`).

Both PostgreSQL writers ask it: every stage of
:mod:`playbook.adapters.postgres.sql_action` that writes (the dry run's savepoint, the
backup's, the apply and the rollback), and the upsert's
(:mod:`playbook.adapters.postgres.writer`: its apply and rollback, and its read-only dry
run, which says early what the apply would be refused). A stage that writes asks in its
own transaction, after locking the table ``ROW EXCLUSIVE`` (the lock the write takes
anyway): ``CREATE TRIGGER``, ``CREATE RULE``, ``ALTER TABLE`` and a new foreign key that
references the table all wait for that lock, so what the catalog said is still true when
the write runs. Asked:

* **which relation**: the name is resolved on the session's search path, as the playbook
  means it, and pinned by OID: a later stage (the rollback above all) refuses if the
  name now means another relation (an owner's look-alike put earlier on the path), and
  names the pinned one by its schema in its own statements.
* **what it is**: an ordinary or partitioned table without rewrite rules (a rule, or a
  view's trigger, would run the statement as something else).

* **the code** a write runs that is not PostgreSQL's own: triggers, and the functions
  (directly, or as an operator's code) that the table's defaults and generated columns,
  constraints, indexes' expressions and predicates, row-security policies call, and the
  checks and defaults of every domain its columns' types reach (through an array's
  element, a composite's attribute, a range's subtype or a domain's base, at any depth),
  on the table and on each of its partitions (a row lands in one, and runs its code).
  Run only where the responder trusts it.
* **other rows** the write changes: a foreign key of another table with ``ON DELETE`` /
  ``ON UPDATE`` ``CASCADE``, ``SET NULL`` or ``SET DEFAULT`` changes that table's rows,
  which the backup does not hold and the rollback cannot bring back: refused, naming the
  constraint and the table. So is a table with inheritance children (a statement on it
  changes theirs too; a rollback would put their rows in the parent).

Every name is qualified (``pg_catalog.``), so no search path reaches the owner's code.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from playbook.adapters.base import RunError
from playbook.adapters.postgres.calls import RefusedOnServer, TargetOptions

NAMED_SQL = """
SELECT n.nspname::pg_catalog.text, c.relname::pg_catalog.text
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE c.oid OPERATOR(pg_catalog.=) %(oid)s
"""
"""The schema and name of the relation with an OID."""

KIND_SQL = """
SELECT c.relkind::pg_catalog.text,
  (SELECT pg_catalog.array_agg(r.rulename::pg_catalog.text) FROM pg_catalog.pg_rewrite r
    WHERE r.ev_class OPERATOR(pg_catalog.=) c.oid
      AND r.rulename OPERATOR(pg_catalog.<>) '_RETURN')
  FROM pg_catalog.pg_class c
 WHERE c.oid OPERATOR(pg_catalog.=) %(oid)s
"""
"""The relation's kind and its rewrite rules."""

TABLE_SQL = """
SELECT
  (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attnum)
     FROM pg_catalog.pg_attribute a
    WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0
      AND NOT a.attisdropped),
  (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attnum)
     FROM pg_catalog.pg_attribute a
    WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attnum OPERATOR(pg_catalog.>) 0
      AND NOT a.attisdropped AND a.attgenerated OPERATOR(pg_catalog.=) ''
      AND a.attidentity OPERATOR(pg_catalog.<>) 'a'),
  EXISTS (SELECT 1 FROM pg_catalog.pg_index i
           WHERE i.indrelid OPERATOR(pg_catalog.=) c.oid AND i.indisunique
             AND i.indpred IS NULL
             AND (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text ORDER BY a.attname)
                    FROM pg_catalog.pg_attribute a
                   WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid
                     AND a.attnum OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[]))
                 OPERATOR(pg_catalog.=) %(key)s::pg_catalog.text[])
FROM pg_catalog.pg_class c
WHERE c.oid OPERATOR(pg_catalog.=) %(oid)s
"""
"""The table's columns, writable columns, and whether ``key`` is a unique index. Every
name qualified: a table owner's look-alike on the search path reaches none of it."""

TREE_SQL = """
SELECT
  (SELECT pg_catalog.array_agg(r.oid) FROM (
     SELECT %(oid)s::pg_catalog.oid
      UNION  -- a table that is not partitioned is in no partition tree: itself alone
     SELECT t.relid::pg_catalog.oid
       FROM pg_catalog.pg_partition_tree(%(oid)s::pg_catalog.oid::pg_catalog.regclass) AS t
   ) AS r(oid)),
  (SELECT pg_catalog.array_agg(n.nspname::pg_catalog.text OPERATOR(pg_catalog.||) '.'
                               OPERATOR(pg_catalog.||) c.relname::pg_catalog.text)
     FROM pg_catalog.pg_inherits i
     JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) i.inhrelid
     JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE i.inhparent OPERATOR(pg_catalog.=) %(oid)s AND NOT c.relispartition)
"""
"""The table and its partitions (at every level), and its inheritance children that are
not partitions."""

CODE_SQL = """
WITH RECURSIVE reached(typ) AS (
  SELECT a.atttypid FROM pg_catalog.pg_attribute a
   WHERE a.attrelid OPERATOR(pg_catalog.=) ANY (%(oids)s::pg_catalog.oid[])
     AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
  UNION  -- not ALL: a type met again adds nothing, so a cycle ends
  SELECT inner_type.typ
    FROM reached r
    JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) r.typ
   CROSS JOIN LATERAL (
     SELECT t.typbasetype WHERE t.typbasetype OPERATOR(pg_catalog.<>) 0  -- a domain's base
     UNION ALL
     SELECT t.typelem WHERE t.typelem OPERATOR(pg_catalog.<>) 0  -- an array's element
     UNION ALL
     SELECT a.atttypid FROM pg_catalog.pg_attribute a  -- a composite's attributes
      WHERE t.typrelid OPERATOR(pg_catalog.<>) 0
        AND a.attrelid OPERATOR(pg_catalog.=) t.typrelid
        AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
     UNION ALL
     SELECT rg.rngsubtype FROM pg_catalog.pg_range rg  -- a range's subtype
      WHERE rg.rngtypid OPERATOR(pg_catalog.=) t.oid
     UNION ALL
     SELECT rg.rngtypid FROM pg_catalog.pg_range rg  -- a multirange's range
      WHERE rg.rngmultitypid OPERATOR(pg_catalog.=) t.oid
   ) AS inner_type(typ)
),
domains(typ) AS (
  SELECT r.typ FROM reached r
    JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) r.typ
   WHERE t.typtype OPERATOR(pg_catalog.=) 'd'
),
objs(classid, objid) AS (
  SELECT 'pg_catalog.pg_attrdef'::pg_catalog.regclass::pg_catalog.oid, ad.oid
    FROM pg_catalog.pg_attrdef ad
   WHERE ad.adrelid OPERATOR(pg_catalog.=) ANY (%(oids)s::pg_catalog.oid[])
  UNION ALL
  SELECT 'pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid, co.oid
    FROM pg_catalog.pg_constraint co
   WHERE co.conrelid OPERATOR(pg_catalog.=) ANY (%(oids)s::pg_catalog.oid[])
      OR co.contypid OPERATOR(pg_catalog.=) ANY (SELECT d.typ FROM domains d)
  UNION ALL
  -- a domain's own DEFAULT: an insert that leaves a column of the domain out runs it
  SELECT 'pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, d.typ FROM domains d
  UNION ALL
  SELECT 'pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, i.indexrelid
    FROM pg_catalog.pg_index i
   WHERE i.indrelid OPERATOR(pg_catalog.=) ANY (%(oids)s::pg_catalog.oid[])
  UNION ALL
  SELECT 'pg_catalog.pg_policy'::pg_catalog.regclass::pg_catalog.oid, po.oid
    FROM pg_catalog.pg_policy po
   WHERE po.polrelid OPERATOR(pg_catalog.=) ANY (%(oids)s::pg_catalog.oid[])
),
what(classid, why) AS (VALUES
  ('pg_catalog.pg_attrdef'::pg_catalog.regclass::pg_catalog.oid, 'a column default'),
  ('pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid, 'a constraint'),
  ('pg_catalog.pg_type'::pg_catalog.regclass::pg_catalog.oid, 'a domain default'),
  ('pg_catalog.pg_class'::pg_catalog.regclass::pg_catalog.oid, 'an index'),
  ('pg_catalog.pg_policy'::pg_catalog.regclass::pg_catalog.oid, 'a row-security policy')
),
code(fn, why) AS (
  SELECT t.tgfoid, 'trigger ' OPERATOR(pg_catalog.||) t.tgname::pg_catalog.text
    FROM pg_catalog.pg_trigger t
   WHERE t.tgrelid OPERATOR(pg_catalog.=) ANY (%(oids)s::pg_catalog.oid[])
     AND NOT t.tgisinternal AND t.tgenabled OPERATOR(pg_catalog.<>) 'D'
  UNION ALL
  SELECT d.refobjid, w.why
    FROM objs o
    JOIN what w ON w.classid OPERATOR(pg_catalog.=) o.classid
    JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) o.classid
     AND d.objid OPERATOR(pg_catalog.=) o.objid
   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
  UNION ALL
  SELECT op.oprcode::pg_catalog.oid, w.why
    FROM objs o
    JOIN what w ON w.classid OPERATOR(pg_catalog.=) o.classid
    JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) o.classid
     AND d.objid OPERATOR(pg_catalog.=) o.objid
    JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) d.refobjid
   WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
)
SELECT DISTINCT n.nspname::pg_catalog.text, p.proname::pg_catalog.text, code.why
  FROM code
  JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) code.fn
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
 WHERE n.nspname OPERATOR(pg_catalog.<>) 'pg_catalog'
 ORDER BY 1, 2, 3
"""
"""Functions outside ``pg_catalog`` that a write to the table (or a partition) runs:
its triggers', and those ``pg_depend`` says its defaults, constraints, indexes and
policies call, directly or as an operator's code; and the checks and defaults of every
domain its columns' types reach. The catalog says which those are (``reached``): a
domain's base type (a domain over a domain), an array's element type, a composite's
attributes, a range's subtype and a multirange's range, at any depth. A value cast to
``d[]`` or to a row type with a ``d`` attribute runs ``d``'s checks on each element, as
the responder, as a column of type ``d`` does."""

FOREIGN_SQL = """
SELECT co.conname::pg_catalog.text,
       n.nspname::pg_catalog.text OPERATOR(pg_catalog.||) '.'
         OPERATOR(pg_catalog.||) c.relname::pg_catalog.text,
       co.confdeltype::pg_catalog.text, co.confupdtype::pg_catalog.text,
       (SELECT pg_catalog.array_agg(a.attname::pg_catalog.text)
          FROM pg_catalog.pg_attribute a
         WHERE a.attrelid OPERATOR(pg_catalog.=) co.confrelid
           AND a.attnum OPERATOR(pg_catalog.=) ANY (co.confkey))
  FROM pg_catalog.pg_constraint co
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) co.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
 WHERE co.contype OPERATOR(pg_catalog.=) 'f'
   AND co.confrelid OPERATOR(pg_catalog.=) ANY (%(oids)s::pg_catalog.oid[])
 ORDER BY 1, 2
"""
"""Foreign keys that reference the table (or a partition): name, referencing table,
its ON DELETE and ON UPDATE actions (``pg_constraint.confdeltype``/``confupdtype``), and
the referenced columns."""

ACTIONS = {"c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
"""The referential actions that change the other table's rows (``a`` no action and
``r`` restrict only refuse the write)."""


def pin_table(
    conn: Any,
    declared: str,
    earlier: Mapping[str, Any] | None,
    *,
    lock: bool,
    restoring: bool = False,
) -> tuple[str, str, int]:
    """The relation ``declared`` names on the session's search path: (schema, name, OID).
    Run first in the stage's transaction, before anything else resolves a name.

    ``lock``: the stage writes; the table is locked ``ROW EXCLUSIVE`` and the name
    resolved again, so the relation checked is the one written. ``earlier``: the relation
    as an earlier stage found it (``{"schema", "name", "oid"}``: the dry run's, or the
    backup's header); the name must still mean that OID. ``restoring``: the stage is a
    rollback, for the message.

    Raises:
        RunError: there is no such relation.
        RefusedOnServer: the name now means another relation than ``earlier``'s.
    """
    from psycopg import sql

    # The catalog checks are a few recursive CTEs the planner thinks costly: JIT
    # compiling them took seconds of a check that runs in milliseconds (the reader's
    # session turns it off too).
    conn.execute("SELECT pg_catalog.set_config('jit', 'off', true)")
    regclass = sql.Identifier(*declared.split(".")).as_string(conn)
    resolve = "SELECT pg_catalog.to_regclass(%s)::pg_catalog.oid"
    oid = conn.execute(resolve, [regclass]).fetchone()[0]
    if oid is None:
        raise RunError(f"There is no table {declared} on the target.")
    if lock:
        # ROW EXCLUSIVE: the lock the write takes anyway, taken before the catalog is
        # read, so no trigger, rule or foreign key is added between the checks and the
        # write.
        conn.execute(sql.SQL("LOCK TABLE {} IN ROW EXCLUSIVE MODE").format(sql.SQL(regclass)))
        if conn.execute(resolve, [regclass]).fetchone()[0] != oid:
            raise RefusedOnServer(
                f"Refused: {declared} was renamed or replaced while it was checked."
            )
    schema, name = conn.execute(NAMED_SQL, {"oid": oid}).fetchone()
    if earlier is not None and earlier.get("oid") != oid:
        raise RefusedOnServer(
            f"Refused: {declared} now names {schema}.{name} (OID {oid}), not the "
            f"{earlier.get('schema')}.{earlier.get('name')} (OID {earlier.get('oid')}) the "
            f"{'backup was taken from' if restoring else 'dry run read'}.",
            "The database or its search path changed since; nothing was written. "
            + (
                "Put it back, or restore from the backup file by hand."
                if restoring
                else "Start again from the dry run."
            ),
        )
    return schema, name, oid


def check_table(
    conn: Any,
    oid: int,
    label: str,
    target: TargetOptions,
    *,
    deletes: bool,
    updates: set[str],
    doing: str,
) -> None:
    """Refuse a write to the table ``oid`` whose effects reach past it or run code the
    responder does not trust. ``deletes``: the stage deletes rows; ``updates``: the
    columns it sets; ``doing``: the stage, for the message. Run after the table is
    locked, in the transaction that writes.

    Raises:
        RefusedOnServer: the catalog names the code, the foreign key or the children.
    """
    oids = check_code(conn, oid, label, target, doing=doing)
    check_foreign(conn, oids, label, deletes=deletes, updates=updates, doing=doing)


def check_code(conn: Any, oid: int, label: str, target: TargetOptions, *, doing: str) -> list[int]:
    """The half of :func:`check_table` that does not depend on the rows: refuse a
    relation that is not a plain table, has rewrite rules or inheritance children, or
    whose write runs code the responder does not trust. Returns the table's OID and its
    partitions' (for :func:`check_foreign`).

    Raises:
        RefusedOnServer: the catalog names the kind, the rules, the children or the code.
    """
    relkind, rules = conn.execute(KIND_SQL, {"oid": oid}).fetchone()
    if relkind not in ("r", "p"):
        raise RefusedOnServer(f"Refused: {label} is not a table (relkind {relkind}).")
    if rules:
        raise RefusedOnServer(
            f"Refused: {label} has rewrite rules ({', '.join(rules)}): {doing} would not run "
            "as written."
        )
    oids, children = conn.execute(TREE_SQL, {"oid": oid}).fetchone()
    if children:
        raise RefusedOnServer(
            f"Refused: {label} has inheritance children ({', '.join(sorted(children)[:3])}); "
            f"{doing} would change their rows too, and a rollback would put them back in "
            f"{label}.",
            "Act on each table with an action of its own. Nothing was run.",
        )
    trusted = set(target.functions)
    refused = [
        f"{schema}.{name} ({why})"
        for schema, name, why in conn.execute(CODE_SQL, {"oids": oids}).fetchall()
        if (schema, name) not in trusted and (schema, "*") not in trusted
    ]
    if refused:
        raise RefusedOnServer(
            f"Refused: a write to {label} runs {', '.join(refused[:3])}, code of the "
            f"database's own ({doing}).",
            "If you trust it on this target, add it to the target's functions in your own "
            "playbook.toml. Nothing was run.",
        )
    return list(oids)


def check_foreign(
    conn: Any, oids: list[int], label: str, *, deletes: bool, updates: set[str], doing: str
) -> None:
    """The other half: refuse a write whose foreign keys of other tables change their
    rows (``ON DELETE`` when ``deletes``, ``ON UPDATE`` of a column in ``updates``).

    Raises:
        RefusedOnServer: the catalog names the foreign key and its table.
    """
    for name, other, on_delete, on_update, columns in conn.execute(
        FOREIGN_SQL, {"oids": oids}
    ).fetchall():
        if deletes and on_delete in ACTIONS:
            said = f"ON DELETE {ACTIONS[on_delete]}"
        elif on_update in ACTIONS and updates & set(columns or ()):
            said = f"ON UPDATE {ACTIONS[on_update]}"
        else:
            continue
        raise RefusedOnServer(
            f"Refused: the foreign key {name} of {other} references {label} with {said}: "
            f"{doing} would change rows of {other}, which its backup does not hold and a "
            "rollback could not bring back.",
            f"Change {other}'s rows with an action of their own first. Nothing was run.",
        )
