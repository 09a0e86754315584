"""PostgreSQL diagnostics, attacked, against a real server the tests start.

The attacker writes a playbook's SQL (and its parameters). Every attack runs twice: as a
reader role (``pg_read_all_data`` + ``pg_monitor``, what the README recommends) and as a
superuser on a target the responder marked ``privileged``, where the server itself
would let almost anything through and our checks are the only wall. Each case checks
where the attack would land, as the superuser, before and after: the canary table's
rows, replication slots, statistics resets, a second session still alive, settings and
``postgresql.auto.conf``, large objects, tables, advisory locks, files in a folder the
server may write, and what a listener received. Never only our own message.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pgserver import PostgresServer
from servers import PASSWORD

from playbook.adapters.base import RunContext, RunRequest, Sink
from playbook.adapters.postgres import reader as postgres
from playbook.adapters.postgres.reader import PostgresAdapter
from playbook.adapters.postgres.sql import Calls, Statement, as_sent
from playbook.errors import PlaybookError

CHANNEL = "playbook_attacks"
READER = "reader"
ADMIN = "admin"

SETUP = """
CREATE TABLE canary (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO canary VALUES (1, 'one'), (2, 'two'), (3, 'three');
CREATE FUNCTION sneaky_insert() RETURNS int LANGUAGE sql VOLATILE
    AS $$ INSERT INTO canary VALUES (99, 'sneaky') RETURNING 1 $$;
CREATE FUNCTION noisy(int) RETURNS boolean LANGUAGE sql VOLATILE
    AS $$ SELECT pg_catalog.pg_stat_reset() IS NULL OR true $$;
CREATE FUNCTION eq_and_reset(int, int) RETURNS boolean LANGUAGE sql VOLATILE
    AS $$ SELECT pg_catalog.pg_stat_reset() IS NULL AND $1 = $2 $$;
CREATE OPERATOR === (LEFTARG = int, RIGHTARG = int, FUNCTION = eq_and_reset);
CREATE TYPE mood AS ENUM ('calm', 'loud');
CREATE FUNCTION int_to_mood(int) RETURNS mood LANGUAGE sql VOLATILE
    AS $$ SELECT CASE WHEN pg_catalog.pg_stat_reset() IS NULL THEN 'loud'::mood END $$;
CREATE CAST (int AS mood) WITH FUNCTION int_to_mood(int);
CREATE DOMAIN loud AS int CHECK (noisy(VALUE));
CREATE TYPE loud_row AS (a loud);
CREATE TABLE loud_table (x loud);
INSERT INTO loud_table VALUES (1);
CREATE TYPE loud_range AS RANGE (subtype = loud);
CREATE VIEW loud_view AS SELECT ROW(id)::loud_row AS r FROM canary;
CREATE FUNCTION shout(canary) RETURNS text LANGUAGE sql VOLATILE
    AS $$ SELECT pg_catalog.pg_stat_reset()::text $$;
CREATE VIEW canary_view AS SELECT id, sneaky_insert() AS n FROM canary;
CREATE VIEW stats_view AS SELECT pg_catalog.pg_stat_reset()::text AS r;
CREATE VIEW view_on_view AS SELECT * FROM stats_view;
CREATE TABLE guarded (id int);
INSERT INTO guarded VALUES (1);
ALTER TABLE guarded ENABLE ROW LEVEL SECURITY;
ALTER TABLE guarded FORCE ROW LEVEL SECURITY;
CREATE POLICY noisy_policy ON guarded USING (noisy(id));
CREATE PROCEDURE purge() LANGUAGE sql AS $$ DELETE FROM canary $$;
"""


# --------------------------------------------------------------------------- the world


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="module")
def drop() -> Iterator[Path]:
    """A folder the server's user may write in: any file appearing there is a breach."""
    folder = Path(tempfile.mkdtemp(prefix="playbook-drop-"))
    folder.chmod(0o777)
    yield folder
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


@pytest.fixture(scope="module")
def admin(pg: PostgresServer) -> Iterator[Any]:
    """The superuser, who sets the world up and looks at where attacks land."""
    with pg.connect() as conn:
        conn.execute(SETUP)
        conn.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"GRANT pg_read_all_data, pg_monitor TO {READER}")
        conn.execute(f"GRANT USAGE ON SCHEMA public TO {READER}")
        yield conn


def uri_of(pg: PostgresServer, who: str) -> str:
    if who == ADMIN:
        return pg.superuser_uri
    return pg.superuser_uri.replace("//playbook:", f"//{who}:")


@pytest.fixture
def victim(pg: PostgresServer, admin: Any) -> Iterator[Any]:
    """A second session an attacker would like to end."""
    with pg.connect() as conn:
        yield conn


@pytest.fixture
def listener(pg: PostgresServer, admin: Any) -> Iterator[Any]:
    with pg.connect() as conn:
        conn.execute(f"LISTEN {CHANNEL}")
        yield conn


def heard(listener: Any, admin: Any) -> list[str]:
    """What the listener received before a marker we send now (no sleeping: the marker
    arrives after anything sent before it)."""
    admin.execute(f"NOTIFY {CHANNEL}, 'marker'")
    got = []
    for note in listener.notifies(timeout=10):
        if note.payload == "marker":
            break
        got.append(note.payload)
    return got


def landing(pg: PostgresServer, admin: Any, victim: Any, drop: Path) -> dict[str, Any]:
    """Everything an attack could change, as the superuser sees it."""
    one = lambda sql: admin.execute(sql).fetchone()[0]  # noqa: E731
    auto_conf = pg.data / "postgresql.auto.conf"
    return {
        "canary": admin.execute("SELECT id, note FROM canary ORDER BY id").fetchall(),
        "slots": one("SELECT count(*) FROM pg_replication_slots"),
        "db_stats_reset": one(
            "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
        ),
        "shared_stats_reset": one("SELECT stats_reset FROM pg_stat_bgwriter"),
        "victim": victim.execute("SELECT pg_backend_pid()").fetchone()[0],
        "settings": admin.execute(
            "SELECT name, setting FROM pg_settings WHERE name IN"
            " ('work_mem', 'default_transaction_read_only', 'log_statement') ORDER BY name"
        ).fetchall(),
        "auto_conf": hashlib.sha256(auto_conf.read_bytes()).hexdigest(),
        "large_objects": one("SELECT count(*) FROM pg_largeobject_metadata"),
        "tables": one(
            "SELECT string_agg(relname, ',' ORDER BY relname) FROM pg_class"
            " WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'"
        ),
        "advisory": one("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"),
        "files": sorted(p.name for p in drop.iterdir()),
    }


def attempt(
    uri: str, sql: str, target: dict[str, Any], params: dict[str, Any] | None = None
) -> Any:
    """What the service does with a diagnostic: check, then run. The error, or the rows."""
    request = RunRequest(
        "attack", {"sql": sql}, uri, options={"params": params or {}, "target": target}
    )
    adapter = PostgresAdapter()
    ctx = RunContext(15, 5)
    sink = Sink(None)
    try:
        adapter.check(request)
        adapter.run(request, ctx, sink)
    except PlaybookError as exc:
        return exc
    finally:
        ctx.finish()
    return sink.rows


def as_who(pg: PostgresServer, who: str) -> tuple[str, dict[str, Any]]:
    return uri_of(pg, who), ({"privileged": True} if who == ADMIN else {})


# --------------------------------------------------------------------------- attacks

ATTACKS = [
    # a second statement, hidden from a lexer that is not PostgreSQL's
    "COMMIT; DELETE FROM canary",
    "SELECT 1 --\rCOMMIT; DELETE FROM canary",
    "SELECT 1 -- comment\n; DELETE FROM canary",
    "SELECT 1 /* /* nested */ */ ; DELETE FROM canary",
    "SELECT E'\\''; DELETE FROM canary; --'",
    "SELECT $a$ $b$ $a$; DELETE FROM canary; SELECT $b$ x $b$",
    "SELECT U&'\\0027'; DELETE FROM canary; --",
    "SELECT '--'; DELETE FROM canary",
    "TABLE canary; DELETE FROM canary",
    "SHOW work_mem; ALTER SYSTEM SET work_mem = '1GB'",
    "SELECT 1\x00; DELETE FROM canary",  # the parser and libpq would both stop at the NUL
    # functions that act on the server, however they are written
    "SELECT pg_stat_reset()",
    'SELECT "pg_stat_reset"()',
    "SELECT PG_CATALOG.PG_STAT_RESET()",
    'SELECT U&"\\0070g_stat_reset"()',
    "SELECT pg_stat_reset_shared('bgwriter')",
    "SELECT * FROM ROWS FROM (pg_stat_reset())",
    "SELECT id FROM canary WHERE (SELECT pg_stat_reset()) IS NULL",
    "SELECT pg_terminate_backend({victim})",
    'SELECT "pg_terminate_backend"({victim})',
    "SELECT pg_catalog.pg_cancel_backend({victim})",
    "SELECT pg_create_physical_replication_slot('evil')",
    "SELECT * FROM pg_create_logical_replication_slot('evil2', 'pgoutput')",
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT pg_notify('" + CHANNEL + "', 'attack')",
    "SELECT lo_import('/etc/hostname')",
    "SELECT lo_export(lo_from_bytea(0, 'x'), '{drop}/exported')",
    "SELECT pg_advisory_lock(42)",
    "SELECT pg_reload_conf()",
    "SELECT dblink_exec('dbname=postgres', 'DELETE FROM canary')",
    # functions behind operators, casts, domains, views, policies, attribute notation
    "SELECT 1 === 1",
    "SELECT 1 OPERATOR(public.===) 1",
    "SELECT 1::mood",
    "SELECT CAST(2 AS public.mood)",
    "SELECT mood(3)",
    "SELECT 1::loud",
    # a domain's check reached with no cast to the domain in the text
    "SELECT '(1)'::loud_row IS NOT NULL",
    "SELECT ROW(1)::loud_row IS NOT NULL",
    "SELECT jsonb_populate_record(NULL::loud_row, '{{\"a\": 1}}') IS NOT NULL",
    'SELECT count(*) FROM jsonb_to_recordset(\'[{{"a": {{"a": 1}}}}]\') AS x(a loud_row)',
    "SELECT jsonb_populate_record(t, '{{\"x\": 2}}') IS NOT NULL FROM loud_table t",
    "SELECT record_in('(1)', 'loud_row'::regtype, -1) IS NOT NULL",
    "SELECT '[1,2)'::loud_range IS NOT NULL",
    "SELECT * FROM loud_view",
    "SELECT c.shout FROM canary c",
    "SELECT (c).shout FROM canary c",
    "SELECT * FROM canary_view",
    "SELECT * FROM stats_view",
    "SELECT * FROM view_on_view",
    "SELECT * FROM guarded",
    "SELECT sneaky_insert()",
    # STABLE functions that run a query of their own over a relation named by a value
    "SELECT table_to_xml('stats_view', true, false, '')",
    "SELECT database_to_xml(true, false, '')",
    # writes and locks inside a read, at any depth
    "WITH gone AS (DELETE FROM canary RETURNING *) SELECT count(*) FROM gone",
    "WITH a AS (WITH b AS (UPDATE canary SET note = 'x' RETURNING 1) SELECT * FROM b)"
    " SELECT * FROM a",
    "SELECT 1 UNION ALL (WITH d AS (DELETE FROM canary RETURNING 1) SELECT 1)",
    "SELECT (WITH i AS (INSERT INTO canary VALUES (7, 'x') RETURNING 1) SELECT 1)",
    "WITH harmless AS (SELECT 1) DELETE FROM canary",
    "SELECT * INTO evil FROM canary",
    "SELECT * FROM canary FOR UPDATE",
    "SELECT * FROM canary FOR NO KEY UPDATE",
    "SELECT * FROM (SELECT * FROM canary FOR SHARE) s",
    "SELECT * FROM canary FOR KEY SHARE",
    # EXPLAIN ANALYZE runs what it explains, in every spelling
    "EXPLAIN ANALYZE DELETE FROM canary",
    "EXPLAIN (ANALYZE) DELETE FROM canary",
    "EXPLAIN (ANALYZE true) DELETE FROM canary",
    "EXPLAIN (analyse on) DELETE FROM canary",
    "EXPLAIN (ANALYZE, BUFFERS) SELECT pg_stat_reset()",
    "EXPLAIN DELETE FROM canary",
    # statements that are not reads at all
    "DELETE FROM canary",
    "LISTEN " + CHANNEL,
    "NOTIFY " + CHANNEL + ", 'attack'",
    "SET default_transaction_read_only = off",
    "RESET ALL",
    "DO $$ BEGIN DELETE FROM canary; END $$",
    "CALL purge()",
    "COPY canary TO '{drop}/copied.csv'",
    "COPY (SELECT 1) TO PROGRAM 'touch {drop}/program_ran'",
    "PREPARE p AS DELETE FROM canary",
    "EXECUTE p",
    "ALTER SYSTEM SET work_mem = '1GB'",
    "CREATE TABLE evil AS SELECT * FROM canary",
]


@pytest.mark.parametrize("who", [READER, ADMIN])
@pytest.mark.parametrize("sql", ATTACKS)
def test_an_attack_changes_nothing_on_the_server(
    pg: PostgresServer, admin: Any, victim: Any, listener: Any, drop: Path, who: str, sql: str
) -> None:
    pid = victim.execute("SELECT pg_backend_pid()").fetchone()[0]
    text = sql.format(victim=pid, drop=drop)
    before = landing(pg, admin, victim, drop)
    uri, target = as_who(pg, who)
    outcome = attempt(uri, text, target)
    assert isinstance(outcome, PlaybookError), f"the attack ran: {outcome!r}"
    assert landing(pg, admin, victim, drop) == before
    assert heard(listener, admin) == []
    assert PASSWORD not in f"{outcome.title} {outcome.message}"


DATA_NOT_CODE = [
    # text that looks like an attack and is, to PostgreSQL, one string or one comment
    ("SELECT E'\\'; DELETE FROM canary; --' AS t", "'; DELETE FROM canary; --"),
    ("SELECT $b$ $a$; DELETE FROM canary; $a$ $b$ AS t", " $a$; DELETE FROM canary; $a$ "),
    ("SELECT 'x' AS t /* /* */ ; DELETE FROM canary /* */ */", "x"),
    ("SELECT '--' AS t -- ; DELETE FROM canary", "--"),
    ("SELECT 'pg_stat_reset()' AS t", "pg_stat_reset()"),
    ('SELECT 1 AS "pg_terminate_backend"', 1),
]


@pytest.mark.parametrize("who", [READER, ADMIN])
@pytest.mark.parametrize(("sql", "value"), DATA_NOT_CODE)
def test_what_postgresql_reads_as_data_runs_as_data(
    pg: PostgresServer, admin: Any, victim: Any, drop: Path, who: str, sql: str, value: object
) -> None:
    before = landing(pg, admin, victim, drop)
    uri, target = as_who(pg, who)
    rows = attempt(uri, sql, target)
    assert not isinstance(rows, Exception), rows
    assert next(iter(rows[0].values())) == value
    assert landing(pg, admin, victim, drop) == before


def test_a_server_that_reads_backslashes_otherwise_still_lexes_as_the_parser_did(
    pg: PostgresServer, admin: Any, victim: Any, drop: Path
) -> None:
    """With standard_conforming_strings off, this text calls pg_stat_reset() (shown on a
    plain connection first); the session's own setting makes the server read it as the
    parser did: two strings."""
    import psycopg

    text = "SELECT '\\' , ' , pg_stat_reset() -- '"
    reset = "SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()"
    with psycopg.connect(pg.superuser_uri, autocommit=True) as plain:
        plain.execute("SET standard_conforming_strings = off")
        first = admin.execute(reset).fetchone()[0]
        plain.execute(text)
        assert admin.execute(reset).fetchone()[0] != first  # the attack is real
    before = landing(pg, admin, victim, drop)
    uri = pg.superuser_uri + "?options=-c%20standard_conforming_strings%3Doff"
    rows = attempt(uri, text, {"privileged": True})
    assert rows == [{"?column?": "\\", "?column?_2": " , pg_stat_reset() -- "}]
    assert landing(pg, admin, victim, drop) == before


# --------------------------------------------------------------------------- the walls behind


def bypass_parser(monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """Let any text through the parse check, as the attacker's dream lexer would."""
    monkeypatch.setattr(
        postgres.PostgresAdapter,
        "_checked",
        lambda self, request: Statement(request.query["sql"], kind, frozenset(), Calls()),
    )


@pytest.mark.parametrize(
    ("kind", "sql"),
    [
        # a SELECT is sent inside a query of ours: these close its parenthesis first
        ("SELECT", "SELECT 1) AS q; DELETE FROM canary; SELECT * FROM (SELECT 1"),
        ("SELECT", "SELECT 1) AS q; COMMIT; DELETE FROM canary; SELECT * FROM (SELECT 1"),
        ("SHOW", "SHOW work_mem; DELETE FROM canary"),
        ("EXPLAIN", "EXPLAIN SELECT 1; COMMIT; DELETE FROM canary"),
    ],
)
def test_the_server_refuses_a_second_statement_when_the_parse_check_is_bypassed(
    pg: PostgresServer,
    admin: Any,
    victim: Any,
    drop: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    sql: str,
) -> None:
    """The statement always goes out on the extended protocol, one statement by the
    server's own rule: proven here with the parse check out of the way."""
    bypass_parser(monkeypatch, kind)
    before = landing(pg, admin, victim, drop)
    outcome = attempt(uri_of(pg, ADMIN), sql, {"privileged": True})
    assert isinstance(outcome, PlaybookError)
    assert "multiple commands" in outcome.title
    assert landing(pg, admin, victim, drop) == before


def test_a_trusted_function_that_writes_meets_the_read_only_transaction(
    pg: PostgresServer, admin: Any, victim: Any, drop: Path
) -> None:
    before = landing(pg, admin, victim, drop)
    uri = uri_of(pg, READER)
    refused = attempt(uri, "SELECT sneaky_insert()", {})
    assert "public.sneaky_insert()" in refused.title  # not built in: not without opt-in
    trusted = attempt(uri, "SELECT sneaky_insert()", {"functions": ["public.sneaky_insert"]})
    assert isinstance(trusted, PlaybookError) and "read-only transaction" in trusted.title
    assert landing(pg, admin, victim, drop) == before


def test_a_whole_schema_can_be_trusted_and_a_bare_name_cannot(
    pg: PostgresServer, admin: Any
) -> None:
    uri = uri_of(pg, READER)
    trusted = attempt(uri, "SELECT 1 === 1 AS same", {"functions": ["public.*"]})
    assert isinstance(trusted, PlaybookError) and "pg_stat_reset" in trusted.title
    bare = attempt(uri, "SELECT 1 AS n", {"functions": ["sneaky_insert"]})
    assert isinstance(bare, PlaybookError) and "schema.function" in bare.title


def test_a_uri_cannot_undo_the_session_limits(
    pg: PostgresServer, admin: Any, victim: Any, drop: Path
) -> None:
    options = "?options=-c%20default_transaction_read_only%3Doff%20-c%20statement_timeout%3D0"
    uri = uri_of(pg, READER) + options
    shown = attempt(
        uri,
        "SELECT current_setting('default_transaction_read_only') AS ro,"
        " current_setting('statement_timeout') AS st",
        {},
    )
    assert shown[0]["ro"] == "on" and shown[0]["st"] != "0"
    before = landing(pg, admin, victim, drop)
    outcome = attempt(uri, "SELECT sneaky_insert()", {"functions": ["public.sneaky_insert"]})
    assert isinstance(outcome, PlaybookError) and "read-only" in outcome.title
    assert landing(pg, admin, victim, drop) == before


# --------------------------------------------------------------------------- the role


@pytest.mark.parametrize(
    ("grant", "named"),
    [
        ("SUPERUSER", "superuser"),
        ("REPLICATION", "REPLICATION"),
        ("IN ROLE pg_write_server_files", "pg_write_server_files"),
        ("IN ROLE pg_execute_server_program", "pg_execute_server_program"),
        ("IN ROLE pg_read_server_files", "pg_read_server_files"),
    ],
)
def test_a_role_that_reaches_past_the_database_needs_the_target_marked_privileged(
    pg: PostgresServer, admin: Any, grant: str, named: str
) -> None:
    role = f"strong_{named.lower()}"
    admin.execute(f"DROP ROLE IF EXISTS {role}")
    admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{PASSWORD}' {grant}")
    uri = uri_of(pg, role)
    refused = attempt(uri, "SELECT 1 AS n", {})
    assert isinstance(refused, PlaybookError) and named in refused.title
    assert attempt(uri, "SELECT 1 AS n", {"privileged": True}) == [{"n": 1}]


def test_a_role_set_by_the_uri_is_looked_at_too(pg: PostgresServer, admin: Any) -> None:
    """SUPERUSER is not inherited: the login role is not one, the role it sets is."""
    admin.execute("DROP ROLE IF EXISTS plain_login, super_role")
    admin.execute("CREATE ROLE super_role NOLOGIN SUPERUSER")
    admin.execute(f"CREATE ROLE plain_login LOGIN PASSWORD '{PASSWORD}'")
    admin.execute("GRANT super_role TO plain_login")
    uri = uri_of(pg, "plain_login")
    assert attempt(uri, "SELECT current_user AS u", {}) == [{"u": "plain_login"}]
    refused = attempt(uri + "?options=-c%20role%3Dsuper_role", "SELECT current_user AS u", {})
    assert isinstance(refused, PlaybookError) and "super_role is a superuser" in refused.title


def test_the_reader_role_and_bypassrls_are_accepted(pg: PostgresServer, admin: Any) -> None:
    admin.execute("DROP ROLE IF EXISTS auditor")
    admin.execute(f"CREATE ROLE auditor LOGIN PASSWORD '{PASSWORD}' BYPASSRLS")
    admin.execute("GRANT pg_read_all_data TO auditor")
    assert attempt(uri_of(pg, "auditor"), "SELECT count(*) AS n FROM canary", {}) == [{"n": 3}]


def test_the_documented_lists_name_functions_the_server_has(pg: PostgresServer, admin: Any) -> None:
    """Each allowed volatile read exists and is VOLATILE (else it needs no entry); each
    function that runs its own queries exists and is STABLE (else the rule refuses it)."""
    from playbook.adapters.postgres.calls import RUN_QUERIES, VOLATILE_READS

    def volatility(signatures: Any) -> set[str | None]:
        return {
            admin.execute(
                "SELECT provolatile FROM pg_proc WHERE oid = to_regprocedure(%s)", [sig]
            ).fetchone()[0]
            for sig in signatures
        }

    assert volatility(VOLATILE_READS) == {"v"}
    assert volatility(RUN_QUERIES) == {"s"}


# --------------------------------------------------------------------------- reads still work

READS = [
    ("SELECT count(*) AS n FROM canary", {}, {"n": 3}),
    (
        "SELECT max(id) AS top, now() - interval '5 minutes' < now() AS ok FROM canary",
        {},
        {"top": 3, "ok": True},
    ),
    ("SELECT id FROM canary WHERE note = %(note)s", {"note": "two"}, {"id": 2}),
    (
        "SELECT id FROM canary WHERE id = ANY(%(ids)s) ORDER BY id DESC LIMIT 1",
        {"ids": [1, 3]},
        {"id": 3},
    ),
    ("SELECT count(*) AS n FROM canary WHERE note LIKE %(p)s || '%%'", {"p": "t"}, {"n": 2}),
    ("SELECT count(*) > 0 AS ok FROM pg_stat_activity", {}, {"ok": True}),
    ("SELECT count(*) >= 0 AS ok FROM pg_locks", {}, {"ok": True}),
    ("SELECT pg_database_size(current_database()) > 0 AS ok", {}, {"ok": True}),
    (
        "SELECT pg_is_in_recovery() AS standby, pg_last_xact_replay_timestamp() AS lag",
        {},
        {"standby": False, "lag": None},
    ),
    ("SELECT count(*) > 0 AS ok FROM information_schema.columns", {}, {"ok": True}),
    (
        "SELECT note, row_number() OVER (ORDER BY id) AS r FROM canary ORDER BY id LIMIT 1",
        {},
        {"note": "one", "r": 1},
    ),
    ("SELECT '{\"a\": \"b\"}'::jsonb ->> 'a' AS v", {}, {"v": "b"}),
    ("SELECT count(*) AS n FROM canary WHERE note ~ '^t' AND id BETWEEN 1 AND 3", {}, {"n": 2}),
    ("VALUES (1)", {}, {"column1": 1}),
    ("TABLE canary", {}, {"id": 1, "note": "one"}),
    ("SHOW default_transaction_read_only", {}, {"default_transaction_read_only": "on"}),
]


@pytest.mark.parametrize(("sql", "params", "first"), READS)
def test_a_diagnostic_read_still_runs_as_the_reader(
    pg: PostgresServer, admin: Any, sql: str, params: dict[str, Any], first: dict[str, Any]
) -> None:
    rows = attempt(uri_of(pg, READER), sql, {}, params)
    assert not isinstance(rows, Exception), rows
    assert rows[0] == first


def test_explain_runs_and_explains(pg: PostgresServer, admin: Any) -> None:
    rows = attempt(
        uri_of(pg, READER), "EXPLAIN SELECT * FROM canary WHERE id = %(id)s", {}, {"id": 1}
    )
    assert "canary" in rows[0]["QUERY PLAN"]


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT %(a)s::int + 1 AS n",
        "SELECT %(a)s AS x, %(b)s AS y, %(a)s AS z",
        "SELECT 'a%%b' AS t, %(a)s AS n",
        "SELECT x%(a)s FROM t",
        "SELECT $q$%(a)s$q$",
    ],
)
def test_the_parser_reads_what_psycopg_sends(sql: str) -> None:
    """The placeholders are rewritten as psycopg rewrites them, so the parser checks the
    text the server receives (psycopg's private function, compared only here)."""
    from psycopg._queries import _query2pg_nocache

    sent, *_ = _query2pg_nocache(sql.encode(), "utf-8")
    assert as_sent(sql) == sent.decode()


def test_the_drop_folder_is_writable_by_the_server(
    pg: PostgresServer, admin: Any, drop: Path
) -> None:
    """The file attacks above prove something only if the server could write there."""
    admin.execute(f"COPY (SELECT 1) TO '{drop}/control.csv'")
    try:
        assert (drop / "control.csv").read_text().strip() == "1"
    finally:
        os.unlink(drop / "control.csv")
