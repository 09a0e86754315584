"""PostgreSQL diagnostics against a real PostgreSQL the tests start themselves.

What a responder relies on: a diagnostic cannot change data (refused before anything
is sent, and refused again by the server's read-only transaction), a value is data and
never SQL, a long or stuck query ends at the deadline or at cancel, and the target's
password never shows in an error. The server's ``uri`` logs in as its application role
(no superuser); the attacks themselves are in ``tests/security/test_postgres_attacks.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pgserver import PostgresServer
from servers import PASSWORD, SilentServer

from playbook.adapters.base import (
    Cancelled,
    DeadlineExceeded,
    Refused,
    RunContext,
    RunError,
    RunRequest,
    Sink,
)
from playbook.adapters.postgres.reader import PostgresAdapter

AT = datetime(2025, 10, 31, 10, 30, 59, tzinfo=UTC)
INJECTION = "'; DROP TABLE staff; --"


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def db(pg: PostgresServer) -> Iterator[Any]:
    """A fresh ``staff`` table (and a function that writes to it), as the superuser."""
    with pg.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS staff CASCADE")
        conn.execute("DROP FUNCTION IF EXISTS sneaky_write()")
        conn.execute(
            "CREATE TABLE staff (id bigint PRIMARY KEY, name text NOT NULL,"
            " joined timestamptz NOT NULL, score numeric, avatar bytea)"
        )
        conn.execute(
            "INSERT INTO staff VALUES"
            " (1, 'ana', %(at)s, 1.5, '\\x01ff'),"
            " (2, %(inj)s, %(later)s, 2, NULL),"
            " (3, 'cy', %(later)s, NULL, NULL)",
            {"at": AT, "later": AT + timedelta(hours=1), "inj": INJECTION},
        )
        conn.execute(
            "CREATE FUNCTION sneaky_write() RETURNS int LANGUAGE sql AS"
            " $$ DELETE FROM staff RETURNING 1 $$"
        )
        yield conn


def dump(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM staff ORDER BY id").fetchall()


def run(
    uri: str,
    sql: str,
    params: dict[str, object] | None = None,
    *,
    timeout: float = 10.0,
    limit: int = 1000,
    ctx: RunContext | None = None,
    target: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Sink]:
    options = {"params": params or {}, "target": target or {}}
    request = RunRequest("d", {"sql": sql}, uri, limit=limit, options=options)
    adapter = PostgresAdapter()
    adapter.check(request)
    ctx = ctx or RunContext(timeout, 5.0)
    sink = Sink(None)
    try:
        return adapter.run(request, ctx, sink), sink
    finally:
        ctx.finish()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    """Return once ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        pause.wait(0.01)


def active(conn: Any) -> int:
    """How many diagnostic queries the server is running now."""
    return conn.execute(
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE state = 'active' AND application_name = 'playbook diagnostic'"
    ).fetchone()[0]


# --------------------------------------------------------------------------- the check


REFUSED = [
    ("INSERT INTO staff VALUES (9, 'x', now())", "INSERT statement"),
    ("UPDATE staff SET name = 'x'", "UPDATE statement"),
    ("delete from staff", "DELETE statement"),
    ("DROP TABLE staff", "DROP statement"),
    ("CREATE TABLE t (x int)", "CREATE statement"),
    ("TRUNCATE staff", "TRUNCATE statement"),
    ("ALTER TABLE staff ADD COLUMN x int", "ALTER statement"),
    ("GRANT ALL ON staff TO public", "GRANT statement"),
    ("COPY staff TO '/tmp/out'", "COPY statement"),
    ("SET statement_timeout = 0", "SET statement"),
    ("BEGIN", "BEGIN statement"),
    ("DO $$ BEGIN DELETE FROM staff; END $$", "DO statement"),
    ("CALL something()", "CALL statement"),
    ("LOCK TABLE staff", "LOCK statement"),
    ("VACUUM staff", "VACUUM statement"),
    ("SELECT 1; DROP TABLE staff", "2 statements"),
    ("SELECT 1; SELECT 2;", "2 statements"),
    ("/* SELECT */ DELETE FROM staff", "DELETE statement"),
    ("-- SELECT\nDELETE FROM staff", "DELETE statement"),
    (
        "WITH gone AS (DELETE FROM staff RETURNING *) SELECT count(*) FROM gone",
        "DELETE inside a WITH",
    ),
    ("WITH x AS (INSERT INTO staff VALUES (9, 'x', now()) RETURNING 1) SELECT 1", "INSERT inside"),
    ("SELECT * INTO copy_of_staff FROM staff", "INTO creates a table"),
    ("SELECT * FROM staff FOR UPDATE", "FOR UPDATE locks"),
    ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN ANALYZE"),
    ("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM staff", "EXPLAIN ANALYZE"),
    ("EXPLAIN DELETE FROM staff", "EXPLAIN of a DELETE"),
    ("SELECT 'unclosed", "parser cannot read"),
    ("SELECT $x$ never closed", "parser cannot read"),
    ("   ", "needs its SQL"),
    ("-- only a comment", "no statement"),
]


@pytest.mark.parametrize(("sql", "why"), REFUSED)
def test_check_refuses_writes_and_second_statements_before_connecting(sql: str, why: str) -> None:
    with SilentServer() as silent:
        uri = f"postgresql://playbook:{PASSWORD}@127.0.0.1:{silent.port}/postgres"
        request = RunRequest("d", {"sql": sql}, uri)
        with pytest.raises(Refused, match=why):
            PostgresAdapter().check(request)
        with pytest.raises(Refused):  # run checks again, before it connects
            PostgresAdapter().run(request, RunContext(2, 2), Sink(None))
        assert not silent.spoken.is_set()  # nothing was sent


ALLOWED = [
    ("SELECT 'DELETE FROM staff; DROP TABLE staff' AS text", "DELETE FROM staff; DROP TABLE staff"),
    ('SELECT 1 AS "update"', 1),
    ("SELECT $$;INSERT$$ AS text;", ";INSERT"),
    ("SELECT $tag$ $$; DROP $$ $tag$ AS text", " $$; DROP $$ "),
    ("SELECT E'it\\'s; DELETE' AS text", "it's; DELETE"),
    ("SELECT 1 AS n;", 1),
    ("SELECT 1 AS n;;", 1),
    ("/* a comment; with DELETE */ SELECT 2 AS n -- and UPDATE;", 2),
    ("(SELECT 3 AS n)", 3),
    ("VALUES (4)", 4),
    ("WITH a AS (SELECT 5 AS n) SELECT n FROM a", 5),
]


@pytest.mark.parametrize(("sql", "first"), ALLOWED)
def test_words_inside_strings_names_and_comments_are_data(
    pg: PostgresServer, sql: str, first: object
) -> None:
    _, sink = run(pg.uri, sql)
    assert next(iter(sink.rows[0].values())) == first


def test_show_explain_and_table_read(pg: PostgresServer, db: Any) -> None:
    _, sink = run(pg.uri, "SHOW server_version")
    assert sink.rows[0]["server_version"].split(".")[0].isdigit()
    _, sink = run(pg.uri, "EXPLAIN SELECT * FROM staff")
    assert "Seq Scan on staff" in sink.rows[0]["QUERY PLAN"]
    metrics, _ = run(pg.uri, "TABLE staff")
    assert metrics["rows"] == 3


def test_a_function_the_responder_trusts_still_cannot_write(pg: PostgresServer, db: Any) -> None:
    """The catalog check refuses a user-defined function; trusted by the responder, it
    runs, and the read-only transaction refuses its write."""
    before = dump(db)
    with pytest.raises(Refused, match=r"public\.sneaky_write\(\)"):
        run(pg.uri, "SELECT sneaky_write()")
    trusted = {"functions": ["public.sneaky_write", "pg_catalog.nextval"]}
    with pytest.raises(RunError, match="read-only transaction") as caught:
        run(pg.uri, "SELECT sneaky_write()", target=trusted)
    assert "Nothing was changed" in caught.value.message
    db.execute("CREATE SEQUENCE IF NOT EXISTS s")
    with pytest.raises(RunError, match="read-only"):
        run(pg.uri, "SELECT nextval('s')", target=trusted)
    assert dump(db) == before
    assert db.execute("SELECT last_value, is_called FROM s").fetchone() == (1, False)


def test_a_value_is_bound_never_pasted(pg: PostgresServer, db: Any) -> None:
    before = dump(db)
    metrics, sink = run(
        pg.uri, "SELECT id, name FROM staff WHERE name = %(name)s", {"name": INJECTION}
    )
    assert metrics["rows"] == 1 and sink.rows == [{"id": 2, "name": INJECTION}]
    metrics, _ = run(
        pg.uri,
        "SELECT count(*) AS n FROM staff WHERE joined > %(since)s AND name LIKE 'a%%'",
        {"since": AT - timedelta(seconds=1), "unused": 5},
    )
    assert metrics["n"] == 1
    assert dump(db) == before


def test_a_placeholder_without_a_parameter_is_refused(pg: PostgresServer) -> None:
    with pytest.raises(Refused, match="who"):
        run(pg.uri, "SELECT %(who)s AS x")
    with pytest.raises(Refused, match="%%"):
        run(pg.uri, "SELECT %(who)s AS x WHERE 'a' LIKE 'a%'", {"who": "x"})


def test_rows_are_json_ready_and_the_first_row_gives_the_numbers(
    pg: PostgresServer, db: Any
) -> None:
    metrics, sink = run(
        pg.uri,
        "SELECT id, name, joined, score, avatar, interval '90 seconds' AS lag,"
        " 'NaN'::numeric AS nan, true AS ok, '{\"a\": [1]}'::jsonb AS doc"
        " FROM staff ORDER BY id",
    )
    first = sink.rows[0]
    assert first == {
        "id": 1,
        "name": "ana",
        "joined": "2025-10-31T10:30:59+00:00",
        "score": 1.5,
        "avatar": "01ff",
        "lag": 90.0,
        "nan": "NaN",
        "ok": True,
        "doc": {"a": [1]},
    }
    assert sink.rows[1]["score"] == 2  # a whole decimal is an integer
    assert metrics["rows"] == 3
    assert metrics["id"] == 1 and metrics["score"] == 1.5 and metrics["lag"] == 90.0
    assert metrics["joined"] == AT.timestamp()
    age = time.time() - AT.timestamp()
    assert abs(metrics["joined_age_seconds"] - age) < 60
    assert "name" not in metrics and "nan" not in metrics


def test_rows_stream_up_to_the_limit(pg: PostgresServer) -> None:
    metrics, sink = run(pg.uri, "SELECT g AS n FROM generate_series(1, 100000) g", limit=2500)
    assert metrics["rows"] == 2500 and sink.count == 2500
    assert len(sink.rows) == 20  # the sink keeps a few; the file would have all
    assert metrics["n"] == 1


SLEEP = {"functions": ["pg_catalog.pg_sleep"]}
"""pg_sleep is VOLATILE: only a responder's opt-in lets a diagnostic call it."""


def test_a_slow_query_ends_at_the_deadline(pg: PostgresServer, db: Any) -> None:
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        run(pg.uri, "SELECT pg_sleep(30)", timeout=1.5, target=SLEEP)
    assert time.monotonic() - started < 1.5 + 1.0
    wait_for(lambda: active(db) == 0)  # the server stopped it too


def test_cancel_from_another_thread_stops_the_query(pg: PostgresServer, db: Any) -> None:
    ctx = RunContext(60, 5)
    outcome: list[BaseException] = []

    def go() -> None:
        try:
            run(pg.uri, "SELECT pg_sleep(31)", ctx=ctx, target=SLEEP)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=go)
    worker.start()
    wait_for(lambda: active(db) == 1)
    cancelled = time.monotonic()
    ctx.cancel()
    worker.join(5)
    assert not worker.is_alive()
    assert time.monotonic() - cancelled < 1.0
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    wait_for(lambda: active(db) == 0)


def test_a_silent_server_ends_at_the_connect_timeout() -> None:
    with SilentServer() as silent:
        uri = f"postgresql://playbook:{PASSWORD}@127.0.0.1:{silent.port}/postgres"
        started = time.monotonic()
        with pytest.raises(RunError) as caught:
            run(uri, "SELECT 1", ctx=RunContext(30, 2))
        assert time.monotonic() - started < 2 + 1.0
        assert PASSWORD not in caught.value.title + caught.value.message


def test_the_password_never_shows_in_an_error(pg: PostgresServer) -> None:
    wrong_user = pg.uri.replace("playbook_app:", "nobody_here:")
    wrong_db = pg.uri.replace("/postgres", f"/{PASSWORD}")
    closed_port = pg.uri_via(1)
    errors: list[RunError] = []
    for uri, sql in [
        (wrong_user, "SELECT 1"),
        (wrong_db, "SELECT 1"),
        (closed_port, "SELECT 1"),
        (pg.uri, "SELECT sneaky_write_missing()"),
    ]:
        with pytest.raises(RunError) as caught:
            run(uri, sql)
        errors.append(caught.value)
    for error in errors:
        text = f"{error.title} {error.message}"
        assert PASSWORD not in text
    assert "authentication failed" in errors[0].title
    assert "does not exist" in errors[1].title  # the server named the database: scrubbed
