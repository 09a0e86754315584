"""What the server says about a diagnostic's session: its role, and the code a statement
would run.

Both checks ask the server's own catalog, inside the read-only transaction the statement
will run in, so they see the same search path, the same schemas and the same role. Their
SQL (:mod:`playbook.adapters.postgres.catalog`) names every function, operator and type
with its schema: whatever the database's owner put on the search path, it reaches none
of theirs.

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
  must pass, so whichever it picks is allowed); a type's input function (``record_in``,
  ``domain_in``: ``pg_type.typinput``) is refused, as it runs the checks of any type;
* operators: the function behind every operator of that name (``pg_operator.oprcode``);
* types: every type a value in the statement can have or be made into: the types it
  names (casts, column definition lists, ``pg_input_is_valid``'s literal), the row types
  of the relations it reads, what the functions and operators it names take and give,
  and what stored code uses; then down domains to their base types, arrays to their
  elements, ranges to their subtypes, composites to their fields. Each domain's CHECK is
  stored code (below); each cast between two of these types (or from a built-in type,
  a literal's or a parameter's) is a function it could reach, implicit or not;
* code stored in the catalog: a view's query, a row-security policy of a table read,
  a domain's check. ``pg_depend`` names every function, operator, type and relation
  that is not built in that it uses (implicit casts included); and since it does not
  record built-in objects (a view calling ``pg_stat_reset()`` has no such row) the
  server also prints the definition (``pg_get_viewdef``, ``pg_get_expr``), the same
  parser reads it, and its names are checked the same way, through views on views.
  Views and domains in ``pg_catalog`` and ``information_schema`` come with the server
  and are read as they are.

A function is allowed when it is IMMUTABLE or STABLE and in ``pg_catalog``
(``pg_proc.provolatile``: the server's own word that it changes nothing) and does not
run a query of its own over relations named by a value (:data:`RUN_QUERIES`), when it is on
:data:`VOLATILE_READS`, or when the responder named it for this target
(``functions = ["schema.name", "schema.*"]``). On a privileged target, whose role's
rights reach the server's files and programs, each view, policy and domain check of the
database's own that the statement reaches must also be named there; so must a foreign
table, on any target. Everything else is refused before the statement is sent, with
what it is and how it is reached.

What this cannot see (and SECURITY.md says): code only a superuser can define (a type's
input and output functions, operator classes behind ``ORDER BY``/``GROUP BY``/
``DISTINCT``, selectivity estimators, event triggers, ``pg_catalog`` itself); the body
of a function the responder trusts; and a domain constraint or cast added in the
milliseconds between the check and the statement (tables and views are locked).
Whatever such code tries to write still fails in the read-only transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from playbook.adapters.base import Refused, RunError
from playbook.adapters.postgres.catalog import CALLS_SQL, ROLE_SQL
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
        ROLE_SQL.format(members=members)
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
LONGEST_DEFINITION = 1_000_000
"""Characters of one definition the server sends back to be read: a view holding a
500 MB literal is refused, not pulled into this process."""
LOCK_ROUNDS = 3
"""Checks of the same statement, each after locking what the one before found."""

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

    The tables and views of the database's own schemas that the statement reads are
    then locked (ACCESS SHARE, what the statement itself takes) and the check is made
    again, so no view, policy or rule can be swapped between the check and the
    statement (a domain's constraints are not locked by anything; SECURITY.md says so).

    Raises:
        RefusedOnServer: a function it could reach is not allowed (each named with how
            the statement reaches it), stored code is not trusted, a definition cannot
            be read, or the transaction is not read only.
    """
    from psycopg import sql

    locked: set[tuple[str, str]] = set()
    for _ in range(LOCK_ROUNDS):
        wanted = _check(conn, calls, target)
        if wanted <= locked:
            return
        names = sql.SQL(", ").join(sql.Identifier(*name) for name in sorted(wanted - locked))
        conn.execute(sql.SQL("LOCK TABLE {} IN ACCESS SHARE MODE").format(names))
        locked |= wanted
    raise RefusedOnServer(
        "Refused: the relations the statement reads kept changing while they were checked.",
        "Nothing was run.",
    )


def _check(conn: Any, calls: Calls, target: TargetOptions) -> set[tuple[str, str]]:
    """One whole check; the relations it found to lock."""
    queue: list[tuple[Calls, str]] = [(calls, "")]
    seen: set[str] = set()
    lockable: set[tuple[str, str]] = set()
    while queue:
        batch, queue = queue, []
        read_only, refused, exprs, untrusted, relations = conn.execute(
            CALLS_SQL, _round(batch, target)
        ).fetchone()
        if not read_only:
            raise RefusedOnServer("Refused: the server says the transaction is not read only.")
        if refused:
            raise _refusal(refused)
        if untrusted:
            raise _untrusted(untrusted, target)
        lockable.update((schema, name) for schema, name in relations)
        for item in exprs:
            if item["key"] in seen:
                continue
            seen.add(item["key"])
            if len(seen) > MAX_DEFINITIONS:
                raise RefusedOnServer(
                    f"Refused: the statement reaches more than {MAX_DEFINITIONS} views, "
                    "policies and domain checks; it was not run."
                )
            if len(item["body"] or "") > LONGEST_DEFINITION:
                raise RefusedOnServer(
                    f"Refused: the server's definition of {item['label']} is longer than "
                    f"{LONGEST_DEFINITION:,} characters; it was not read.",
                    "Nothing was run.",
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
    return lockable


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
        "longest": LONGEST_DEFINITION,
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
