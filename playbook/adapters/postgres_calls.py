"""What the server says about a diagnostic's session: its role, and the code a statement
would run.

Both checks ask the server's own catalog, in the session the statement will run in, so
they see the same search path, the same schemas and the same role.

**The role.** A superuser, a role with ``REPLICATION``, or a member of
``pg_write_server_files``, ``pg_execute_server_program`` or ``pg_read_server_files`` is
refused unless the responder marked the target ``privileged`` in their own config: such
a role can reach past the database (files, programs, replication) where a read-only
transaction does not follow. ``BYPASSRLS`` is allowed: it widens what a role may read,
never what it may change. Both the login role and the current role (a URI can set
``role``) are looked at.

**The code.** Every name :mod:`playbook.adapters.postgres_sql` found is resolved on the
server, and each function it could reach must be allowed:

* functions called by name: every function of that name in the schema written, or in
  the session's search path (the server picks one of them by argument types; all of them
  must pass, so whichever it picks is allowed);
* operators: the function behind every operator of that name (``pg_operator.oprcode``);
* casts: the function of every cast to a type the statement casts to
  (``pg_cast.castfunc``), down a domain to its base type and an array to its element;
* code stored in the catalog: a view's query, a row-security policy of a table read,
  a domain's check. The server prints each definition (``pg_get_viewdef``,
  ``pg_get_expr``), the same parser reads it, and its names are checked the same way,
  through views on views. (``pg_depend`` would be shorter, but it does not record
  built-in functions: a view calling ``pg_stat_reset()`` has no such row.) Views in
  ``pg_catalog`` and ``information_schema`` come with the server and are read as they
  are.

A function is allowed when it is IMMUTABLE or STABLE and in ``pg_catalog``
(``pg_proc.provolatile``: the server's own word that it changes nothing) and does not
run a query of its own over relations named by a value (:data:`RUN_QUERIES`), when it is on
:data:`VOLATILE_READS`, or when the responder named it for this target
(``functions = ["schema.name", "schema.*"]``). Everything else is refused before the
statement is sent, with the function named.

What this cannot see (and SECURITY.md says): functions the analyser adds without a name
in the text (implicit casts, the comparison functions of ``GROUP BY``/``DISTINCT``/
``ORDER BY``, a type's input and output functions), which only a type's owner or a
superuser can define; and a superuser who marks a function with side effects STABLE.
Whatever such a function tries to write still fails in the read-only transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from playbook.adapters.base import RunError
from playbook.adapters.postgres_sql import Calls, calls_in
from playbook.adapters.readonly import Refused
from playbook.errors import UsageError


class RefusedOnServer(Refused, RunError):
    """Refused after asking the server, before the statement ran.

    A refusal (exit 7) to whoever asks what kind of failure it is, and a
    :class:`RunError` to the service, whose evidence then says why the run stopped in
    the refusal's own words.
    """


VOLATILE_READS: dict[str, str] = {
    "pg_catalog.clock_timestamp()": "the wall clock now (now() is the transaction's start)",
    "pg_catalog.pg_is_in_recovery()": "whether the server is a standby",
    "pg_catalog.pg_last_xact_replay_timestamp()": "a standby's replay lag",
    "pg_catalog.pg_last_wal_receive_lsn()": "a standby's received WAL position",
    "pg_catalog.pg_last_wal_replay_lsn()": "a standby's replayed WAL position",
    "pg_catalog.pg_current_wal_lsn()": "the primary's WAL position, to measure lag against",
    "pg_catalog.pg_database_size(name)": "a database's size on disk",
    "pg_catalog.pg_database_size(oid)": "a database's size on disk",
    "pg_catalog.pg_relation_size(regclass)": "a table's size on disk",
    "pg_catalog.pg_relation_size(regclass,text)": "a table fork's size on disk",
    "pg_catalog.pg_total_relation_size(regclass)": "a table's size with indexes and TOAST",
    "pg_catalog.pg_table_size(regclass)": "a table's size without indexes",
    "pg_catalog.pg_indexes_size(regclass)": "a table's indexes' size",
    "pg_catalog.pg_blocking_pids(integer)": "who blocks a session (lock incidents)",
}
"""VOLATILE functions in ``pg_catalog`` a diagnostic may call, and why each is a read.

PostgreSQL marks them VOLATILE because their answer changes between two calls in one
statement (a clock, a WAL position, a file's size), not because they change anything.
``random()`` is left out: a diagnostic's evidence should say the same thing twice."""

RUN_QUERIES: tuple[str, ...] = tuple(
    f"pg_catalog.{name}({args})"
    for name, args in [
        ("table_to_xml", "regclass,boolean,boolean,text"),
        ("table_to_xmlschema", "regclass,boolean,boolean,text"),
        ("table_to_xml_and_xmlschema", "regclass,boolean,boolean,text"),
        ("schema_to_xml", "name,boolean,boolean,text"),
        ("schema_to_xmlschema", "name,boolean,boolean,text"),
        ("schema_to_xml_and_xmlschema", "name,boolean,boolean,text"),
        ("database_to_xml", "boolean,boolean,text"),
        ("database_to_xmlschema", "boolean,boolean,text"),
        ("database_to_xml_and_xmlschema", "boolean,boolean,text"),
    ]
)
"""STABLE functions in ``pg_catalog`` that run a query of their own over relations
named at run time (``SELECT * FROM`` a table, a schema's or the database's tables):
through a view or a row-security policy, that query runs whatever code it holds, and
no check of the statement's text can follow a relation named by a value. The catalog
cannot say which functions do this (STABLE only promises not to modify the database),
so these are refused unless the responder names them. The ``query_to_xml`` family is
VOLATILE and refused anyway."""

ROLE_ATTRIBUTES = (
    ("pg_write_server_files", "a member of pg_write_server_files (writes files on the server)"),
    ("pg_execute_server_program", "a member of pg_execute_server_program (runs programs)"),
    ("pg_read_server_files", "a member of pg_read_server_files (reads any file on the server)"),
)

READER_RECIPE = (
    "CREATE ROLE playbook_reader LOGIN PASSWORD '…'; "
    "GRANT pg_read_all_data, pg_monitor TO playbook_reader;"
)


@dataclass(frozen=True)
class TargetOptions:
    """What the responder's own config says about a target (never the playbook's)."""

    privileged: bool = False
    """Connect even as a superuser, a replication role or a member of the server-file
    roles."""
    functions: tuple[tuple[str, str], ...] = ()
    """(schema, name or ``*``): functions the responder trusts on this target."""

    @classmethod
    def of(cls, options: Mapping[str, Any]) -> TargetOptions:
        """The ``target`` entry of a request's options (``{}`` when absent).

        Raises:
            UsageError: ``functions`` holds something that is not ``schema.name``.
        """
        target = options.get("target") or {}
        if not isinstance(target, Mapping):
            raise UsageError("The target's options are not a table.")
        functions = []
        for entry in target.get("functions") or ():
            schema, dot, name = str(entry).partition(".")
            if not (isinstance(entry, str) and dot and schema and name):
                raise UsageError(
                    f"The target's functions list holds {entry!r}; each entry is "
                    "schema.function (pg_catalog.pg_sleep) or schema.* (every function "
                    "of that schema).",
                )
            functions.append((schema, name))
        return cls(bool(target.get("privileged", False)), tuple(functions))


# --------------------------------------------------------------------------- the role

# Every function, operator and type in this module's SQL is written with its schema
# (OPERATOR(pg_catalog.=) too): a database owner can put a better-matching array_remove
# or = in a schema the session's search path puts first (ALTER DATABASE … SET
# search_path), and the server would call it. A test reads these queries with the same
# parser as a diagnostic and fails on any name without pg_catalog.
_ROLE_SQL = """
SELECT r.rolname, r.rolsuper, r.rolreplication,
       pg_catalog.array_remove(ARRAY[{members}], NULL::pg_catalog.text) AS memberships
FROM pg_catalog.pg_roles r
WHERE r.rolname OPERATOR(pg_catalog.=) ANY (ARRAY[SESSION_USER, CURRENT_USER])
"""


def check_role(conn: Any, target: TargetOptions) -> None:
    """Refuse a role that reaches past the database, unless the target is privileged.
    Run inside the read-only transaction.

    Raises:
        RefusedOnServer: the login or current role is a superuser, has REPLICATION, or is a
            member of a server-file role; the message names the attribute.
    """
    if target.privileged:
        return
    members = ", ".join(
        f"CASE WHEN COALESCE(pg_catalog.pg_has_role(r.oid, "
        f"pg_catalog.to_regrole('{role}')::pg_catalog.oid, 'MEMBER'), false) "
        f"THEN '{role}'::pg_catalog.text END"
        for role, _ in ROLE_ATTRIBUTES
    )
    found: list[str] = []
    for name, superuser, replication, memberships in conn.execute(
        _ROLE_SQL.format(members=members)
    ).fetchall():
        if superuser:
            found.append(f"{name} is a superuser")
            continue
        if replication:
            found.append(f"{name} has REPLICATION")
        said = dict(ROLE_ATTRIBUTES)
        found.extend(f"{name} is {said[m]}" for m in memberships)
    if found:
        raise RefusedOnServer(
            f"Refused: the target's role {'; '.join(found)}.",
            "A diagnostic connects as a reader role: "
            f"{READER_RECIPE} If this target must use that role, mark it "
            "privileged = true in your own playbook.toml. Nothing was run.",
        )


# --------------------------------------------------------------------------- the code

MAX_DEFINITIONS = 256
"""Views, policies and domain checks read for one statement before giving up: a web
of definitions this large is refused rather than walked for ever."""

_CALLS_SQL = """
WITH RECURSIVE
system(nsp) AS (
    SELECT n.oid FROM pg_catalog.pg_namespace n
    WHERE n.nspname OPERATOR(pg_catalog.=)
          ANY ('{pg_catalog,information_schema}'::pg_catalog.name[])
),
path(nsp) AS (
    SELECT n.oid FROM pg_catalog.pg_namespace n
    WHERE n.nspname OPERATOR(pg_catalog.=) ANY (pg_catalog.current_schemas(true))
),
fcall AS (SELECT * FROM ROWS FROM (pg_catalog.unnest(%(f_schema)s::pg_catalog.text[]),
                                   pg_catalog.unnest(%(f_name)s::pg_catalog.text[]),
                                   pg_catalog.unnest(%(f_attr)s::pg_catalog.bool[]),
                                   pg_catalog.unnest(%(f_ctx)s::pg_catalog.text[]))
          AS f(sch, name, attr, ctx)),
ocall AS (SELECT * FROM ROWS FROM (pg_catalog.unnest(%(o_schema)s::pg_catalog.text[]),
                                   pg_catalog.unnest(%(o_name)s::pg_catalog.text[]),
                                   pg_catalog.unnest(%(o_ctx)s::pg_catalog.text[]))
          AS o(sch, name, ctx)),
-- every function of a name written: all of them must pass, whichever the server picks
fns(via, fn) AS (
    SELECT 'the function ' OPERATOR(pg_catalog.||) f.name OPERATOR(pg_catalog.||) f.ctx, p.oid
    FROM fcall f JOIN pg_catalog.pg_proc p ON p.proname OPERATOR(pg_catalog.=) f.name
    WHERE CASE WHEN f.sch IS NULL
               THEN p.pronamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM path)
               WHEN f.sch OPERATOR(pg_catalog.=) 'pg_temp'
               THEN p.pronamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
               ELSE p.pronamespace OPERATOR(pg_catalog.=)
                    pg_catalog.to_regnamespace(f.sch)::pg_catalog.oid END
      AND (NOT f.attr OR (p.pronargs OPERATOR(pg_catalog.>=) 1 AND EXISTS (
             SELECT FROM pg_catalog.pg_type t
             WHERE t.oid OPERATOR(pg_catalog.=) p.proargtypes[0]
               AND t.typtype OPERATOR(pg_catalog.=) ANY ('{c,p,d}'::pg_catalog."char"[]))))
),
ops(oid, via) AS (
    SELECT op.oid, 'the operator ' OPERATOR(pg_catalog.||) o.name OPERATOR(pg_catalog.||) o.ctx
    FROM ocall o JOIN pg_catalog.pg_operator op ON op.oprname OPERATOR(pg_catalog.=) o.name
    WHERE CASE WHEN o.sch IS NULL
               THEN op.oprnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM path)
               WHEN o.sch OPERATOR(pg_catalog.=) 'pg_temp'
               THEN op.oprnamespace OPERATOR(pg_catalog.=) pg_catalog.pg_my_temp_schema()
               ELSE op.oprnamespace OPERATOR(pg_catalog.=)
                    pg_catalog.to_regnamespace(o.sch)::pg_catalog.oid END
),
named(via, fn) AS (
    SELECT via, fn FROM fns
  UNION ALL
    SELECT o.via, op.oprcode::pg_catalog.oid
    FROM ops o JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) o.oid
    WHERE op.oprcode::pg_catalog.oid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
),
-- relations read: those named, what their views' queries and policies read (pg_depend
-- records every object a stored query uses that is not built in), and their children
rels(oid) AS (
    SELECT c.oid FROM pg_catalog.unnest(%(rels)s::pg_catalog.text[]) AS r(name)
    JOIN pg_catalog.pg_class c
      ON c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass(r.name)::pg_catalog.oid
  UNION
    SELECT e.oid FROM rels CROSS JOIN LATERAL (
        SELECT d.refobjid AS oid
        FROM pg_catalog.pg_rewrite w JOIN pg_catalog.pg_depend d
          ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
         AND d.objid OPERATOR(pg_catalog.=) w.oid
        WHERE w.ev_class OPERATOR(pg_catalog.=) rels.oid
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      UNION ALL
        SELECT d.refobjid
        FROM pg_catalog.pg_policy p JOIN pg_catalog.pg_depend d
          ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass
         AND d.objid OPERATOR(pg_catalog.=) p.oid
        WHERE p.polrelid OPERATOR(pg_catalog.=) rels.oid
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
      UNION ALL
        SELECT i.inhrelid FROM pg_catalog.pg_inherits i
        WHERE i.inhparent OPERATOR(pg_catalog.=) rels.oid
    ) AS e
),
-- code stored on those relations: each view's query, each row security policy
held(key, via, classid, objid, kind, body, sch, name, what) AS (
    SELECT 'v' OPERATOR(pg_catalog.||) c.oid::pg_catalog.text,
           'the view ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text,
           'pg_catalog.pg_rewrite'::pg_catalog.regclass::pg_catalog.oid, w.oid,
           'query', pg_catalog.pg_get_viewdef(c.oid), n.nspname, c.relname, 'the view'
    FROM rels JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) rels.oid
    JOIN pg_catalog.pg_rewrite w ON w.ev_class OPERATOR(pg_catalog.=) c.oid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE c.relkind OPERATOR(pg_catalog.=) 'v'::pg_catalog."char"
      AND w.ev_type OPERATOR(pg_catalog.=) '1'::pg_catalog."char"
      AND NOT c.relnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM system)
  UNION ALL
    SELECT 'p' OPERATOR(pg_catalog.||) p.oid::pg_catalog.text,
           'a row security policy on '
             OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text,
           'pg_catalog.pg_policy'::pg_catalog.regclass::pg_catalog.oid, p.oid,
           'expr', pg_catalog.pg_get_expr(p.polqual, p.polrelid), n.nspname, c.relname,
           'row security on the table'
    FROM rels JOIN pg_catalog.pg_policy p ON p.polrelid OPERATOR(pg_catalog.=) rels.oid
    JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) p.polrelid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE p.polqual IS NOT NULL
  UNION ALL
    SELECT 'f' OPERATOR(pg_catalog.||) c.oid::pg_catalog.text,
           'the foreign table ' OPERATOR(pg_catalog.||) c.oid::pg_catalog.regclass::pg_catalog.text,
           0::pg_catalog.oid, 0::pg_catalog.oid, NULL, NULL, n.nspname, c.relname,
           'the foreign table'
    FROM rels JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) rels.oid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
    WHERE c.relkind OPERATOR(pg_catalog.=) 'f'::pg_catalog."char"
),
-- every type a value in the statement can have or be coerced to: types named, the
-- relations' row types, what the functions and operators named take and give, what
-- stored code uses; then down domains, arrays, ranges and composites' fields
types(oid) AS (
    SELECT pg_catalog.to_regtype(t)::pg_catalog.oid
    FROM pg_catalog.unnest(%(types)s::pg_catalog.text[]) AS t
    WHERE pg_catalog.to_regtype(t) IS NOT NULL
  UNION
    SELECT c.reltype FROM rels JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) rels.oid
  UNION
    SELECT x.oid FROM named JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) named.fn
    CROSS JOIN LATERAL (
        SELECT p.prorettype AS oid
      UNION ALL SELECT pg_catalog.unnest(p.proargtypes::pg_catalog.oid[])
      UNION ALL SELECT pg_catalog.unnest(p.proallargtypes)
    ) AS x
  UNION
    SELECT pg_catalog.unnest(ARRAY[op.oprleft, op.oprright, op.oprresult])
    FROM ops JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) ops.oid
  UNION
    SELECT d.refobjid FROM held h JOIN pg_catalog.pg_depend d
      ON d.classid OPERATOR(pg_catalog.=) h.classid AND d.objid OPERATOR(pg_catalog.=) h.objid
    WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
  UNION
    SELECT e.oid
    FROM types JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) types.oid
    CROSS JOIN LATERAL (
        SELECT t.typbasetype AS oid WHERE t.typtype OPERATOR(pg_catalog.=) 'd'::pg_catalog."char"
      UNION ALL SELECT t.typelem
      UNION ALL SELECT t.typarray
        WHERE NOT t.typnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM system)
      UNION ALL SELECT a.atttypid FROM pg_catalog.pg_attribute a
        WHERE a.attrelid OPERATOR(pg_catalog.=) t.typrelid
          AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
      UNION ALL SELECT r.rngsubtype FROM pg_catalog.pg_range r
        WHERE r.rngtypid OPERATOR(pg_catalog.=) t.oid
      UNION ALL SELECT r.rngtypid FROM pg_catalog.pg_range r
        WHERE r.rngmultitypid OPERATOR(pg_catalog.=) t.oid
      UNION ALL SELECT d.refobjid FROM pg_catalog.pg_constraint k JOIN pg_catalog.pg_depend d
          ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_constraint'::pg_catalog.regclass
         AND d.objid OPERATOR(pg_catalog.=) k.oid
        WHERE k.contypid OPERATOR(pg_catalog.=) t.oid
          AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_type'::pg_catalog.regclass
    ) AS e
    WHERE e.oid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
),
-- all code stored on what the statement reaches: the above, and each check of a domain
stored(key, via, classid, objid, kind, body, sch, name, what) AS (
    SELECT * FROM held
  UNION ALL
    SELECT 'c' OPERATOR(pg_catalog.||) k.oid::pg_catalog.text,
           'a check of the domain ' OPERATOR(pg_catalog.||) t.oid::pg_catalog.regtype::pg_catalog.text,
           'pg_catalog.pg_constraint'::pg_catalog.regclass::pg_catalog.oid, k.oid,
           'expr', pg_catalog.pg_get_expr(k.conbin, 0::pg_catalog.oid), n.nspname, t.typname,
           'the domain'
    FROM types JOIN pg_catalog.pg_type t ON t.oid OPERATOR(pg_catalog.=) types.oid
    JOIN pg_catalog.pg_constraint k ON k.contypid OPERATOR(pg_catalog.=) t.oid
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) t.typnamespace
    WHERE k.conbin IS NOT NULL
      AND NOT t.typnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM system)
),
calls(via, fn) AS (
    SELECT via, fn FROM named
  UNION ALL
    -- a cast between two types a value can have: to a type reached, from one reached or
    -- built in (a literal, a parameter)
    SELECT 'a cast to ' OPERATOR(pg_catalog.||) c.casttarget::pg_catalog.regtype::pg_catalog.text,
           c.castfunc
    FROM pg_catalog.pg_cast c
    WHERE c.castfunc OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
      AND c.casttarget OPERATOR(pg_catalog.=) ANY (SELECT oid FROM types)
      AND (c.castsource OPERATOR(pg_catalog.=) ANY (SELECT oid FROM types)
           OR EXISTS (SELECT FROM pg_catalog.pg_type s
                      WHERE s.oid OPERATOR(pg_catalog.=) c.castsource
                        AND s.typnamespace OPERATOR(pg_catalog.=) ANY (SELECT nsp FROM system)))
  UNION ALL
    -- functions stored code calls, however it was written (implicit casts included)
    SELECT s.via, d.refobjid FROM stored s JOIN pg_catalog.pg_depend d
      ON d.classid OPERATOR(pg_catalog.=) s.classid AND d.objid OPERATOR(pg_catalog.=) s.objid
    WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_proc'::pg_catalog.regclass
  UNION ALL
    SELECT s.via, op.oprcode::pg_catalog.oid FROM stored s JOIN pg_catalog.pg_depend d
      ON d.classid OPERATOR(pg_catalog.=) s.classid AND d.objid OPERATOR(pg_catalog.=) s.objid
    JOIN pg_catalog.pg_operator op ON op.oid OPERATOR(pg_catalog.=) d.refobjid
    WHERE d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_operator'::pg_catalog.regclass
      AND op.oprcode::pg_catalog.oid OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
  UNION ALL
    SELECT 'the range type ' OPERATOR(pg_catalog.||) r.rngtypid::pg_catalog.regtype::pg_catalog.text,
           f.fn
    FROM types JOIN pg_catalog.pg_range r ON r.rngtypid OPERATOR(pg_catalog.=) types.oid
    CROSS JOIN LATERAL (VALUES (r.rngcanonical::pg_catalog.oid),
                               (r.rngsubdiff::pg_catalog.oid)) AS f(fn)
    WHERE f.fn OPERATOR(pg_catalog.<>) 0::pg_catalog.oid
),
runners AS (
    SELECT pg_catalog.to_regprocedure(s)::pg_catalog.oid AS oid
    FROM pg_catalog.unnest(%(runners)s::pg_catalog.text[]) s
    WHERE pg_catalog.to_regprocedure(s) IS NOT NULL
),
inputs AS (  -- a type's input functions: record_in, domain_in… run any type's code
    SELECT t.typinput::pg_catalog.oid AS oid FROM pg_catalog.pg_type t
  UNION SELECT t.typreceive::pg_catalog.oid FROM pg_catalog.pg_type t
  UNION SELECT t.typmodin::pg_catalog.oid FROM pg_catalog.pg_type t
),
allowed AS (
    SELECT pg_catalog.to_regprocedure(s)::pg_catalog.oid AS oid
    FROM pg_catalog.unnest(%(allow)s::pg_catalog.text[]) s
    WHERE pg_catalog.to_regprocedure(s) IS NOT NULL
  UNION ALL
    SELECT p.oid FROM ROWS FROM (pg_catalog.unnest(%(opt_schema)s::pg_catalog.text[]),
                                 pg_catalog.unnest(%(opt_name)s::pg_catalog.text[])) AS o(sch, name)
    JOIN pg_catalog.pg_proc p
      ON p.pronamespace OPERATOR(pg_catalog.=) pg_catalog.to_regnamespace(o.sch)::pg_catalog.oid
     AND (o.name OPERATOR(pg_catalog.=) '*' OR p.proname OPERATOR(pg_catalog.=) o.name)
),
refused AS (
    SELECT DISTINCT c.via,
           pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.'
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(p.proname) OPERATOR(pg_catalog.||) '('
           OPERATOR(pg_catalog.||) pg_catalog.pg_get_function_identity_arguments(p.oid)
           OPERATOR(pg_catalog.||) ')' AS function,
           n.nspname AS schema, p.proname AS name,
           n.nspname OPERATOR(pg_catalog.=) 'pg_catalog' AS builtin, p.provolatile AS volatility,
           c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM runners) AS runs_queries,
           c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM inputs) AS type_input
    FROM calls c JOIN pg_catalog.pg_proc p ON p.oid OPERATOR(pg_catalog.=) c.fn
    JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
    WHERE NOT (n.nspname OPERATOR(pg_catalog.=) 'pg_catalog'
               AND p.provolatile OPERATOR(pg_catalog.=) ANY ('{i,s}'::pg_catalog."char"[])
               AND NOT c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM runners)
               AND NOT c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM inputs))
      AND NOT c.fn OPERATOR(pg_catalog.=) ANY (SELECT oid FROM allowed)
),
untrusted AS (  -- stored code the responder must name: all of it on a privileged target
    SELECT DISTINCT s.what OPERATOR(pg_catalog.||) ' '
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s.sch) OPERATOR(pg_catalog.||) '.'
           OPERATOR(pg_catalog.||) pg_catalog.quote_ident(s.name) AS label,
           s.sch AS schema, s.name AS name
    FROM stored s
    WHERE (%(privileged)s::pg_catalog.bool OR s.what OPERATOR(pg_catalog.=) 'the foreign table')
      AND NOT EXISTS (
          SELECT FROM ROWS FROM (pg_catalog.unnest(%(opt_schema)s::pg_catalog.text[]),
                                 pg_catalog.unnest(%(opt_name)s::pg_catalog.text[])) AS o(sch, name)
          WHERE o.sch OPERATOR(pg_catalog.=) s.sch::pg_catalog.text
            AND (o.name OPERATOR(pg_catalog.=) '*'
                 OR o.name OPERATOR(pg_catalog.=) s.name::pg_catalog.text))
)
SELECT pg_catalog.current_setting('transaction_read_only') OPERATOR(pg_catalog.=) 'on',
       (SELECT COALESCE(pg_catalog.json_agg(r ORDER BY r.via, r.function), '[]'::pg_catalog.json)
        FROM refused r),
       (SELECT COALESCE(pg_catalog.json_agg(pg_catalog.json_build_object(
                   'key', s.key, 'label', s.via, 'kind', s.kind, 'body', s.body)
                   ORDER BY s.key), '[]'::pg_catalog.json)
        FROM stored s WHERE s.kind IS NOT NULL),
       (SELECT COALESCE(pg_catalog.json_agg(u ORDER BY u.label), '[]'::pg_catalog.json)
        FROM untrusted u)
"""

_VOLATILITY = {"v": "VOLATILE", "s": "STABLE", "i": "IMMUTABLE"}


def check_calls(conn: Any, calls: Calls, target: TargetOptions) -> None:
    """Refuse the statement if it could call a function that is not allowed; also make
    sure the transaction it will run in is read only. Run inside that transaction.

    Views, row-security policies and domain checks hold code too. The server says what
    each one uses (``pg_depend``: every function, operator, type and relation that is
    not built in, implicit casts included) and prints its definition (``pg_get_viewdef``,
    ``pg_get_expr``), which the same parser reads for the built-in functions it names
    (``pg_depend`` does not record those); those are checked in turn, a level of
    definitions per round trip. On a privileged target each such definition, and on any
    target a foreign table, must also be named by the responder.

    Raises:
        RefusedOnServer: a function it could reach is not allowed (each named with how
            the statement reaches it), stored code is not trusted, a definition cannot
            be read, or the transaction is not read only.
    """
    queue: list[tuple[Calls, str]] = [(calls, "")]
    seen: set[str] = set()
    while queue:
        batch, queue = queue, []
        read_only, refused, exprs, untrusted = conn.execute(
            _CALLS_SQL, _round(batch, target)
        ).fetchone()
        if not read_only:
            raise RefusedOnServer("Refused: the server says the transaction is not read only.")
        if refused:
            raise _refusal(refused)
        if untrusted:
            raise _untrusted(untrusted, target)
        for item in exprs:
            if item["key"] in seen:
                continue
            seen.add(item["key"])
            if len(seen) > MAX_DEFINITIONS:
                raise RefusedOnServer(
                    f"Refused: the statement reaches more than {MAX_DEFINITIONS} views, "
                    "policies and domain checks; it was not run."
                )
            try:
                found = calls_in(item["body"], query=item["kind"] == "query")
            except Refused as exc:
                raise RefusedOnServer(
                    f"Refused: the server's definition of {item['label']} "
                    f"cannot be checked ({exc.title.removeprefix('Refused: ')})",
                    "Nothing was run.",
                ) from None
            queue.append((found, f" in {item['label']}"))


def _round(batch: list[tuple[Calls, str]], target: TargetOptions) -> dict[str, Any]:
    """The parameters of one round trip: every name of every definition of a level."""
    functions = [(f, ctx) for calls, ctx in batch for f in calls.functions]
    operators = [(o, ctx) for calls, ctx in batch for o in calls.operators]
    return {
        "f_schema": [s for (s, _, _), _ in functions],
        "f_name": [n for (_, n, _), _ in functions],
        "f_attr": [a for (_, _, a), _ in functions],
        "f_ctx": [ctx for _, ctx in functions],
        "o_schema": [s for (s, _), _ in operators],
        "o_name": [n for (_, n), _ in operators],
        "o_ctx": [ctx for _, ctx in operators],
        "rels": sorted({r for calls, _ in batch for r in calls.relations}),
        "types": sorted({t for calls, _ in batch for t in calls.types}),
        "allow": list(VOLATILE_READS),
        "runners": list(RUN_QUERIES),
        "opt_schema": [s for s, _ in target.functions],
        "opt_name": [n for _, n in target.functions],
        "privileged": target.privileged,
    }


def _refusal(refused: list[dict[str, Any]]) -> RefusedOnServer:
    shown = []
    for item in refused[:3]:
        if item["type_input"]:
            why = "a type's input function: it runs the checks of whatever type it is given"
        elif item["runs_queries"]:
            why = "it runs a query of its own over relations named at run time"
        elif item["builtin"]:
            why = f"{_VOLATILITY.get(item['volatility'], 'VOLATILE')}: it may change state"
        else:
            why = "not one of PostgreSQL's own functions"
        shown.append(f"{item['function']} ({why}), through {item['via']}")
    more = f" and {len(refused) - 3} more" if len(refused) > 3 else ""
    names = sorted({f"{item['schema']}.{item['name']}" for item in refused})
    return RefusedOnServer(
        f"Refused: the statement may call {'; '.join(shown)}{more}.",
        "A diagnostic calls only PostgreSQL's own IMMUTABLE or STABLE functions and a "
        "few documented reads. If you trust these on this target, add "
        f"{', '.join(repr(n) for n in names)} to the target's functions in your "
        "own playbook.toml. Nothing was run.",
    )


def _untrusted(untrusted: list[dict[str, Any]], target: TargetOptions) -> RefusedOnServer:
    shown = ", ".join(item["label"] for item in untrusted[:5])
    more = f" and {len(untrusted) - 5} more" if len(untrusted) > 5 else ""
    names = sorted({f"{item['schema']}.{item['name']}" for item in untrusted})
    why = (
        "On a privileged target the statement runs with that role's rights (a "
        "superuser's, files and programs on the server included), so every view, row "
        "security policy and domain check outside pg_catalog that it reaches must be "
        "named by you, like a function. A foreign table is read by a query on another "
        "server, outside the read-only transaction."
        if target.privileged
        else "A foreign table is read by a query on another server, outside the "
        "read-only transaction."
    )
    return RefusedOnServer(
        f"Refused: the statement reaches {shown}{more}, which you have not named as "
        "trusted for this target.",
        f"{why} If you trust them, add {', '.join(repr(n) for n in names)} to the "
        "target's functions in your own playbook.toml. Nothing was run.",
    )
