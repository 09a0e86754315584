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

**The code.** Every name :mod:`playbook.adapters.postgres.sql` found is resolved on the
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

from playbook.adapters.base import Refused, RunError
from playbook.adapters.postgres.sql import Calls, calls_in
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

_ROLE_SQL = """
SELECT r.rolname, r.rolsuper, r.rolreplication,
       array_remove(ARRAY[{members}], NULL) AS memberships
FROM pg_catalog.pg_roles r
WHERE r.rolname IN (session_user, current_user)
"""


def check_role(conn: Any, target: TargetOptions) -> None:
    """Refuse a role that reaches past the database, unless the target is privileged.

    Raises:
        RefusedOnServer: the login or current role is a superuser, has REPLICATION, or is a
            member of a server-file role; the message names the attribute.
    """
    if target.privileged:
        return
    members = ", ".join(
        f"CASE WHEN coalesce(pg_catalog.pg_has_role(r.oid, "
        f"pg_catalog.to_regrole('{role}')::oid, 'MEMBER'), false) THEN '{role}' END"
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

MAX_DEFINITIONS = 64
"""Views, policies and domain checks read for one statement before giving up: a chain
of views this long is refused rather than walked for ever."""

_CALLS_SQL = """
WITH RECURSIVE
path AS (SELECT pg_catalog.unnest(pg_catalog.current_schemas(true)) AS nsp),
fcall AS (SELECT * FROM ROWS FROM (pg_catalog.unnest(%(f_schema)s::text[]),
                                   pg_catalog.unnest(%(f_name)s::text[]),
                                   pg_catalog.unnest(%(f_attr)s::bool[])) AS f(sch, name, attr)),
ocall AS (SELECT * FROM ROWS FROM (pg_catalog.unnest(%(o_schema)s::text[]),
                                   pg_catalog.unnest(%(o_name)s::text[])) AS o(sch, name)),
system AS (SELECT 'pg_catalog'::regnamespace::oid AS nsp
           UNION ALL SELECT 'information_schema'::regnamespace::oid),
rel AS (SELECT pg_catalog.to_regclass(r)::oid AS oid, r AS label
        FROM pg_catalog.unnest(%(rels)s::text[]) AS r),
tchain(oid, label) AS (
    SELECT pg_catalog.to_regtype(t)::oid, t FROM pg_catalog.unnest(%(types)s::text[]) AS t
    WHERE pg_catalog.to_regtype(t) IS NOT NULL
  UNION
    SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.typelem END, c.label
    FROM tchain c JOIN pg_catalog.pg_type t ON t.oid = c.oid
    WHERE t.typtype = 'd' OR (t.typcategory = 'A' AND t.typelem <> 0)
),
exprs(label, kind, body) AS (
    SELECT 'the view ' || rel.label, 'query', pg_catalog.pg_get_viewdef(c.oid)
    FROM rel JOIN pg_catalog.pg_class c ON c.oid = rel.oid AND c.relkind = 'v'
         AND c.relnamespace NOT IN (SELECT nsp FROM system)
  UNION ALL
    SELECT 'a row security policy on ' || rel.label, 'expr',
           pg_catalog.pg_get_expr(p.polqual, p.polrelid)
    FROM rel JOIN pg_catalog.pg_policy p ON p.polrelid = rel.oid
    WHERE p.polqual IS NOT NULL
  UNION ALL
    SELECT 'a check of the domain ' || tchain.label, 'expr', pg_catalog.pg_get_expr(k.conbin, 0)
    FROM tchain JOIN pg_catalog.pg_constraint k ON k.contypid = tchain.oid
    WHERE k.conbin IS NOT NULL
),
calls(via, fn) AS (
    SELECT 'the function ' || f.name, p.oid
    FROM fcall f JOIN pg_catalog.pg_proc p ON p.proname = f.name
    WHERE CASE WHEN f.sch IS NULL
               THEN p.pronamespace IN (SELECT n.oid FROM pg_catalog.pg_namespace n
                                       WHERE n.nspname IN (SELECT nsp FROM path))
               WHEN f.sch = 'pg_temp' THEN p.pronamespace = pg_catalog.pg_my_temp_schema()
               ELSE p.pronamespace = pg_catalog.to_regnamespace(f.sch)::oid END
      AND (NOT f.attr OR (p.pronargs >= 1 AND EXISTS (
             SELECT 1 FROM pg_catalog.pg_type t WHERE t.oid = p.proargtypes[0]
             AND t.typtype IN ('c', 'p', 'd'))))
  UNION ALL
    SELECT 'the operator ' || o.name, op.oprcode::oid
    FROM ocall o JOIN pg_catalog.pg_operator op ON op.oprname = o.name
    WHERE op.oprcode <> 0 AND CASE
               WHEN o.sch IS NULL
               THEN op.oprnamespace IN (SELECT n.oid FROM pg_catalog.pg_namespace n
                                        WHERE n.nspname IN (SELECT nsp FROM path))
               WHEN o.sch = 'pg_temp' THEN op.oprnamespace = pg_catalog.pg_my_temp_schema()
               ELSE op.oprnamespace = pg_catalog.to_regnamespace(o.sch)::oid END
  UNION ALL
    SELECT 'a cast to ' || t.label, c.castfunc
    FROM tchain t JOIN pg_catalog.pg_cast c ON c.casttarget = t.oid WHERE c.castfunc <> 0
),
runners AS (
    SELECT pg_catalog.to_regprocedure(s)::oid AS oid
    FROM pg_catalog.unnest(%(runners)s::text[]) s
),
allowed AS (
    SELECT pg_catalog.to_regprocedure(s)::oid AS oid FROM pg_catalog.unnest(%(allow)s::text[]) s
  UNION ALL
    SELECT p.oid FROM ROWS FROM (pg_catalog.unnest(%(opt_schema)s::text[]),
                                 pg_catalog.unnest(%(opt_name)s::text[])) AS o(sch, name)
    JOIN pg_catalog.pg_proc p ON p.pronamespace = pg_catalog.to_regnamespace(o.sch)::oid
         AND (o.name = '*' OR p.proname = o.name)
),
refused AS (
    SELECT DISTINCT c.via,
           pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(p.proname)
           || '(' || pg_catalog.pg_get_function_identity_arguments(p.oid) || ')' AS function,
           n.nspname AS schema, p.proname AS name,
           n.nspname = 'pg_catalog' AS builtin, p.provolatile AS volatility,
           c.fn IN (SELECT oid FROM runners WHERE oid IS NOT NULL) AS runs_queries
    FROM calls c JOIN pg_catalog.pg_proc p ON p.oid = c.fn
    JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
    WHERE NOT (n.nspname = 'pg_catalog' AND p.provolatile IN ('i', 's')
               AND c.fn NOT IN (SELECT oid FROM runners WHERE oid IS NOT NULL))
      AND c.fn NOT IN (SELECT oid FROM allowed WHERE oid IS NOT NULL)
)
SELECT pg_catalog.current_setting('transaction_read_only') = 'on',
       (SELECT COALESCE(pg_catalog.json_agg(r ORDER BY r.via, r.function), '[]'::json)
        FROM refused r),
       (SELECT COALESCE(pg_catalog.json_agg(e ORDER BY e.label), '[]'::json) FROM exprs e)
"""

_VOLATILITY = {"v": "VOLATILE", "s": "STABLE", "i": "IMMUTABLE"}


def check_calls(conn: Any, calls: Calls, target: TargetOptions) -> None:
    """Refuse the statement if it could call a function that is not allowed; also make
    sure the transaction it will run in is read only. Run inside that transaction.

    Views, row-security policies and domain checks hold code too. The server prints
    each one's definition (``pg_get_viewdef``, ``pg_get_expr``: text that reads back
    as the same objects in this session), the same parser reads it, and its calls are
    checked in turn, down through views on views. One round trip per definition.

    Raises:
        RefusedOnServer: a function it could reach is not allowed (each named with how
            the statement reaches it), a definition cannot be read, or the transaction
            is not read only.
    """
    queue: list[tuple[Calls, str]] = [(calls, "")]
    seen: set[str] = set()
    read = 0
    while queue:
        batch, context = queue.pop(0)
        read += 1
        if read > MAX_DEFINITIONS:
            raise RefusedOnServer(
                f"Refused: the statement reaches more than {MAX_DEFINITIONS} views, "
                "policies and domain checks; it was not run."
            )
        relations = [r for r in batch.relations if f"r:{r}" not in seen]
        types = [t for t in batch.types if f"t:{t}" not in seen]
        seen.update([f"r:{r}" for r in relations] + [f"t:{t}" for t in types])
        params = {
            "f_schema": [s for s, _, _ in batch.functions],
            "f_name": [n for _, n, _ in batch.functions],
            "f_attr": [a for _, _, a in batch.functions],
            "o_schema": [s for s, _ in batch.operators],
            "o_name": [n for _, n in batch.operators],
            "rels": relations,
            "types": types,
            "allow": list(VOLATILE_READS),
            "runners": list(RUN_QUERIES),
            "opt_schema": [s for s, _ in target.functions],
            "opt_name": [n for _, n in target.functions],
        }
        read_only, refused, exprs = conn.execute(_CALLS_SQL, params).fetchone()
        if not read_only:
            raise RefusedOnServer("Refused: the server says the transaction is not read only.")
        if refused:
            raise _refusal(refused, context)
        for item in exprs:
            where = f" in {item['label']}{context}"
            try:
                found = calls_in(item["body"], query=item["kind"] == "query")
            except Refused as exc:
                raise RefusedOnServer(
                    f"Refused: the server's definition of {item['label']}{context} "
                    f"cannot be checked ({exc.title.removeprefix('Refused: ')})",
                    "Nothing was run.",
                ) from None
            queue.append((found, where))


def _refusal(refused: list[dict[str, Any]], context: str) -> RefusedOnServer:
    shown = []
    for item in refused[:3]:
        if item["runs_queries"]:
            why = "it runs a query of its own over relations named at run time"
        elif item["builtin"]:
            why = f"{_VOLATILITY.get(item['volatility'], 'VOLATILE')}: it may change state"
        else:
            why = "not one of PostgreSQL's own functions"
        shown.append(f"{item['function']} ({why}), through {item['via']}{context}")
    more = f" and {len(refused) - 3} more" if len(refused) > 3 else ""
    names = sorted({f"{item['schema']}.{item['name']}" for item in refused})
    return RefusedOnServer(
        f"Refused: the statement may call {'; '.join(shown)}{more}.",
        "A diagnostic calls only PostgreSQL's own IMMUTABLE or STABLE functions and a "
        "few documented reads. If you trust these on this target, add "
        f"{', '.join(repr(n) for n in names)} to the target's functions in your "
        "own playbook.toml. Nothing was run.",
    )
