"""A table owner's look-alikes on the search path never run inside a guarded action.

The owner of a database can put their own schema before ``pg_catalog`` on its search
path (``ALTER DATABASE … SET search_path = public, pg_catalog``) and define there a
``set_config``, a ``to_regclass``, an advisory-lock function and an ``=`` on bigint with
exactly the built-ins' signatures: a statement that names them unqualified then runs the
owner's code, with the responder's rights. Each look-alike here records that it ran, in
a table on the server; the test reads that table after every stage of the writers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pgserver import PostgresServer
from servers import PASSWORD

from playbook.adapters.base import Refused, RunContext, Sink
from playbook.adapters.postgres.sql_action import PostgresSqlWriter
from playbook.adapters.postgres.writer import PostgresWriter
from playbook.adapters.writers import Undo, WriteRequest, Written

LOOKALIKES = """
CREATE TABLE public.ran (what text);
GRANT INSERT, SELECT ON public.ran TO PUBLIC;
CREATE FUNCTION public.set_config(text, text, boolean) RETURNS text LANGUAGE sql AS
  $$ INSERT INTO public.ran VALUES ('set_config'); SELECT $2 $$;
CREATE FUNCTION public.to_regclass(text) RETURNS regclass LANGUAGE sql AS
  $$ INSERT INTO public.ran VALUES ('to_regclass'); SELECT pg_catalog.to_regclass($1) $$;
CREATE FUNCTION public.format_type(oid, integer) RETURNS text LANGUAGE sql AS
  $$ INSERT INTO public.ran VALUES ('format_type'); SELECT pg_catalog.format_type($1, $2) $$;
CREATE FUNCTION public.pg_try_advisory_lock(bigint) RETURNS boolean LANGUAGE sql AS
  $$ INSERT INTO public.ran VALUES ('pg_try_advisory_lock'); SELECT true $$;
CREATE FUNCTION public.pg_advisory_unlock(bigint) RETURNS boolean LANGUAGE sql AS
  $$ INSERT INTO public.ran VALUES ('pg_advisory_unlock'); SELECT true $$;
CREATE FUNCTION public.eq8(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS
  $$ BEGIN INSERT INTO public.ran VALUES ('='); RETURN $1 OPERATOR(pg_catalog.=) $2; END $$;
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.eq8);
CREATE TABLE public.staff (staff_id bigint PRIMARY KEY, name text NOT NULL);
INSERT INTO public.staff VALUES (1, 'ana'), (2, 'ben');
GRANT ALL ON public.staff TO playbook_app;
"""


@pytest.fixture(scope="module")
def owned() -> Iterator[tuple[PostgresServer, str, str]]:
    """(server, the owner's URI, the responder's URI) on a database whose owner planted
    look-alikes first on its search path."""
    with PostgresServer() as server:
        owner = server.add_owner("mallory", PASSWORD, "owned")
        with server.connect(owner) as conn:
            conn.execute(LOOKALIKES)
            conn.execute("ALTER DATABASE owned SET search_path = public, pg_catalog")
        responder = server.uri.rsplit("/", 1)[0] + "/owned"
        yield server, owner, responder


def ran(server: PostgresServer, owner: str) -> list[str]:
    with server.connect(owner) as conn:
        return [r[0] for r in conn.execute("SELECT what FROM public.ran ORDER BY 1")]


def stage(fn: Any, *args: Any) -> Any:
    ctx = RunContext(20.0, 5.0)
    try:
        return fn(*args, ctx)
    finally:
        ctx.finish()


def test_the_lookalikes_are_reached_by_an_unqualified_call(
    owned: tuple[PostgresServer, str, str],
) -> None:
    """The attack is real: a plain session of the responder's reaches them."""
    server, owner, responder = owned
    with server.connect(owner) as conn:
        conn.execute("DELETE FROM public.ran")
    with server.connect(responder) as conn:
        conn.execute("SELECT set_config('x.y', 'z', false)")
        conn.execute("SELECT 1 FROM staff WHERE staff_id = 1::bigint")
    assert set(ran(server, owner)) == {"=", "set_config"}


def test_the_upsert_writer_never_runs_a_lookalike_through_every_stage(
    owned: tuple[PostgresServer, str, str],
) -> None:
    server, owner, responder = owned
    with server.connect(owner) as conn:
        conn.execute("DELETE FROM public.ran")
    request = WriteRequest(
        "fix",
        "r1",
        {
            "operation": "upsert",
            "table": "staff",
            "key": ["staff_id"],
            "rows": [{"staff_id": 2, "name": "ben2"}, {"staff_id": 3, "name": "cy"}],
        },
        responder,
        lock_name="playbook:action:fix",
        holder="alice@host pid 1, incident I-1, run r1",
    )
    writer = PostgresWriter()
    plan = stage(writer.plan, request)
    assert plan.counts == {"insert": 1, "update": 1, "unchanged": 0}
    sink = Sink(None, keep=100)
    ctx = RunContext(20.0, 5.0)
    try:
        writer.backup(request, plan, ctx, sink)
    finally:
        ctx.finish()
    lock = stage(writer.lock, request)
    written = Written(None)
    try:
        ctx = RunContext(20.0, 5.0)
        try:
            writer.apply(request, plan, ctx, written)
        finally:
            ctx.finish()
        with server.connect(owner) as conn:
            rows = conn.execute("SELECT * FROM public.staff ORDER BY 1").fetchall()
        assert rows == [(1, "ana"), (2, "ben2"), (3, "cy")]
        ctx = RunContext(20.0, 5.0)
        try:
            writer.rollback(request, iter(sink.rows), ctx, Undo(dict(written.items)))
        finally:
            ctx.finish()
    finally:
        lock.release()
    with server.connect(owner) as conn:
        rows = conn.execute("SELECT * FROM public.staff ORDER BY 1").fetchall()
    assert rows == [(1, "ana"), (2, "ben")]
    assert ran(server, owner) == []  # on the server: not one look-alike ran


def test_the_sql_action_refuses_a_statement_whose_operator_has_a_lookalike(
    owned: tuple[PostgresServer, str, str],
) -> None:
    server, owner, responder = owned
    with server.connect(owner) as conn:
        conn.execute("DELETE FROM public.ran")
    request = WriteRequest(
        "rename",
        "r2",
        {
            "operation": "statement",
            "table": "staff",
            "key": ["staff_id"],
            "sql": "UPDATE staff SET name = 'x' WHERE staff_id = 1::bigint",
        },
        responder,
        holder="t",
    )
    with pytest.raises(Refused) as caught:
        stage(PostgresSqlWriter().plan, request)
    assert "public.eq8" in caught.value.title
    assert ran(server, owner) == []
    with server.connect(owner) as conn:
        assert conn.execute("SELECT name FROM public.staff WHERE staff_id = 1").fetchone() == (
            "ana",
        )


@pytest.mark.parametrize(
    "name", ["TABLE_SQL", "TREE_SQL", "CODE_SQL", "FOREIGN_SQL", "NAMED_SQL", "KIND_SQL"]
)
def test_the_sql_actions_table_checks_name_every_function_operator_and_type_with_its_schema(
    name: str,
) -> None:
    """The catalog questions every SQL action stage (its rollback too) asks of the
    table, read with the parser that reads diagnostics: every function, operator and type
    is pg_catalog's by name, so no search path the owner sets swaps one for theirs."""
    from pglast import parse_sql

    from playbook.adapters.postgres import sql_table
    from playbook.adapters.postgres.sql import _calls, _walk, as_sent

    (statement,) = parse_sql(as_sent(getattr(sql_table, name)))
    calls = _calls(statement.stmt)
    assert [f for f in calls.functions if not f[2] and f[0] != "pg_catalog"] == []
    assert [o for o in calls.operators if o[0] != "pg_catalog"] == []
    assert [t for t in calls.types if not t.startswith('"pg_catalog".')] == []
    joins = [n for n, _ in _walk(statement.stmt) if type(n).__name__ == "JoinExpr"]
    assert [j for j in joins if j.usingClause or j.isNatural] == []  # = by name
