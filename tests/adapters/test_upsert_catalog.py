"""The upsert writer asks the catalog what the SQL action asks (attack round 3, B3-B5).

The database belongs to ``mallory``, an ordinary owner (no superuser); the upsert runs
as the application's role. The owner adds, before or between the stages, a foreign key
of another table that cascades, a trigger or a default calling their own function, or a
look-alike table first on the search path. Each test reads what landed on the server:
the other table's rows, the upserted table's, the look-alike's, and ``ran``, a table the
owner's code writes to when it runs (the owner cannot write it; only the responder's
rights can).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from pgserver import PostgresServer
from servers import PASSWORD

from playbook.adapters.base import Refused, RunContext, RunError, Sink
from playbook.adapters.postgres.writer import PostgresWriter
from playbook.adapters.writers import Undo, WriteRequest, Written


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[PostgresServer, str, str, str]]:
    """(server, the owner's URI, the responder's URI, the superuser's URI), all to
    the owner's database ``owned``."""
    with PostgresServer() as pg:
        owner = pg.add_owner("mallory", PASSWORD, "owned")
        responder = pg.uri.rsplit("/", 1)[0] + "/owned"
        su_uri = pg.superuser_uri.rsplit("/", 1)[0] + "/owned"
        with pg.connect(su_uri) as su:
            su.execute("CREATE TABLE public.ran (what text)")
            su.execute("GRANT INSERT, SELECT ON public.ran TO playbook_app")
        yield pg, owner, responder, su_uri


class Db:
    """The owner's connection, the superuser's (which alone reads ``ran``), and the
    responder's URI."""

    def __init__(self, owner: Any, su: Any, uri: str) -> None:
        self.owner, self.su, self.uri = owner, su, uri

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        return self.su.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()

    def ran(self) -> list[str]:
        """What the owner's code wrote with the responder's rights."""
        return [r[0] for r in self.su.execute("SELECT what FROM public.ran ORDER BY 1")]


@pytest.fixture
def db(server: tuple[PostgresServer, str, str, str]) -> Iterator[Db]:
    """Fresh ``accounts`` (id 1, code 100), ``staff`` (id 1) and the owner's schema
    ``evil`` with a trigger function that writes to ``ran``."""
    pg, owner, responder, su_uri = server
    with pg.connect(owner) as conn, pg.connect(su_uri) as su:
        conn.execute("DROP SCHEMA IF EXISTS evil CASCADE")
        conn.execute("DROP TABLE IF EXISTS others, invoices, accounts, staff CASCADE")
        conn.execute("CREATE TABLE accounts (id int PRIMARY KEY, code int UNIQUE, name text)")
        conn.execute("INSERT INTO accounts VALUES (1, 100, 'one')")
        conn.execute("CREATE TABLE public.staff (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO public.staff VALUES (1, 'original')")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON accounts, staff TO playbook_app")
        conn.execute("CREATE SCHEMA evil")
        conn.execute("GRANT USAGE ON SCHEMA evil TO playbook_app")
        conn.execute(
            "CREATE FUNCTION evil.tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " INSERT INTO public.ran VALUES (TG_OP || ' ' || TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);"
            " RETURN COALESCE(NEW, OLD); END $$"
        )
        try:
            yield Db(conn, su, responder)
        finally:
            conn.execute("ALTER DATABASE owned RESET search_path")
            su.execute("DELETE FROM public.ran")


def upsert(uri: str, table: str, rows: list[dict[str, Any]], **options: Any) -> WriteRequest:
    do = {"operation": "upsert", "table": table, "key": ["id"], "rows": rows}
    return WriteRequest("act", "r1", do, uri, holder="t", options=options)


@contextlib.contextmanager
def context() -> Iterator[RunContext]:
    """A stage's own context, finished after it, as the service runs a stage."""
    ctx = RunContext(20.0, 5.0)
    try:
        yield ctx
    finally:
        ctx.finish()


class Run:
    """The writer's stages on one request, in the service's order."""

    def __init__(self, req: WriteRequest) -> None:
        self.req, self.writer = req, PostgresWriter()
        self.sink, self.written = Sink(None, keep=1000), Written(None)

    def plan(self) -> Any:
        with context() as ctx:
            self.planned = self.writer.plan(self.req, ctx)
        return self.planned

    def plan_and_backup(self) -> Any:
        plan = self.plan()
        with context() as ctx:
            self.writer.backup(self.req, plan, ctx, self.sink)
        return plan

    def apply(self) -> dict[str, int]:
        with context() as ctx:
            return self.writer.apply(self.req, self.planned, ctx, self.written)

    def rollback(self, rows: list[dict[str, Any]] | None = None) -> dict[str, int]:
        """From the backup the run wrote (or ``rows``), with the run's fingerprints."""
        saved = iter(self.sink.rows if rows is None else rows)
        with context() as ctx:
            return self.writer.rollback(self.req, saved, ctx, Undo(dict(self.written.items)))


# --------------------------------------------------------------------------- B3


@pytest.mark.parametrize("action", ["CASCADE", "SET NULL", "SET DEFAULT"])
def test_a_rollback_that_would_delete_into_another_tables_newer_rows_is_refused(
    db: Db, action: str
) -> None:
    """The upsert inserts account 3; a customer's row of another table then points at
    it. Deleting account 3 would delete, null or re-point that row: no backup holds it."""
    db.owner.execute(
        "CREATE TABLE others (id int PRIMARY KEY, account_id int DEFAULT 1"
        f" REFERENCES accounts (id) ON DELETE {action}, note text)"
    )
    run = Run(upsert(db.uri, "accounts", [{"id": 3, "code": 300, "name": "three"}]))
    plan = run.plan_and_backup()
    assert any("rollback of this run will be refused" in w for w in plan.warnings)
    assert run.apply() == {"inserted": 1, "updated": 0, "unchanged": 0}
    db.owner.execute("INSERT INTO others VALUES (1, 3, 'NEWER row of account 3')")

    with pytest.raises(Refused) as caught:
        run.rollback()
    assert "others_account_id_fkey of public.others" in caught.value.title
    assert f"ON DELETE {action}" in caught.value.title
    assert db.rows("others") == [(1, 3, "NEWER row of account 3")]  # intact
    assert db.rows("accounts") == [(1, 100, "one"), (3, 300, "three")]  # nothing undone


def test_an_upsert_that_would_rewrite_another_tables_keys_is_refused_at_every_stage(
    db: Db,
) -> None:
    """Changing account 1's code cascades into invoices (ON UPDATE CASCADE), whose rows
    no backup holds: refused by the dry run; by the apply when the key appears after the
    backup; by the rollback when it appears after the apply."""
    db.owner.execute(
        "CREATE TABLE invoices (id int PRIMARY KEY, account_code int, note text);"
        "INSERT INTO invoices VALUES (1, 100, 'old invoice of code 100')"
    )
    fk = (
        "ALTER TABLE invoices ADD CONSTRAINT invoices_code FOREIGN KEY (account_code)"
        " REFERENCES accounts (code) ON UPDATE CASCADE"
    )
    recode = [{"id": 1, "code": 150, "name": "one"}]

    db.owner.execute(fk)
    with pytest.raises(Refused) as caught:
        Run(upsert(db.uri, "accounts", recode)).plan()
    assert "invoices_code of public.invoices" in caught.value.title
    assert "ON UPDATE CASCADE" in caught.value.title

    db.owner.execute("ALTER TABLE invoices DROP CONSTRAINT invoices_code")
    run = Run(upsert(db.uri, "accounts", recode))
    run.plan_and_backup()
    db.owner.execute(fk)  # between the backup and the apply
    with pytest.raises(Refused):
        run.apply()
    assert db.rows("accounts") == [(1, 100, "one")]
    assert db.rows("invoices") == [(1, 100, "old invoice of code 100")]

    db.owner.execute("ALTER TABLE invoices DROP CONSTRAINT invoices_code")
    run = Run(upsert(db.uri, "accounts", recode))
    run.plan_and_backup()
    assert run.apply()["updated"] == 1
    db.owner.execute("UPDATE invoices SET account_code = 150")
    db.owner.execute(fk)  # between the apply and the rollback
    db.owner.execute("INSERT INTO invoices VALUES (2, 150, 'NEWER invoice of code 150')")
    with pytest.raises(Refused) as caught:
        run.rollback()
    assert "invoices_code" in caught.value.title
    assert db.rows("accounts") == [(1, 150, "one")]
    assert db.rows("invoices") == [
        (1, 150, "old invoice of code 100"),
        (2, 150, "NEWER invoice of code 150"),  # still the new code's
    ]


# --------------------------------------------------------------------------- B4


def test_the_owners_trigger_never_runs_with_the_responders_rights(db: Db) -> None:
    trigger = (
        "CREATE TRIGGER audit BEFORE INSERT OR UPDATE OR DELETE ON public.staff"
        " FOR EACH ROW EXECUTE FUNCTION evil.tf()"
    )
    rows = [{"id": 1, "name": "fixed"}, {"id": 7, "name": "OUTRID3R"}]
    db.owner.execute(trigger)
    with pytest.raises(Refused) as caught:
        Run(upsert(db.uri, "staff", rows)).plan()
    assert "evil.tf (trigger audit)" in caught.value.title

    # added after the dry run: the apply refuses under its lock
    db.owner.execute("DROP TRIGGER audit ON public.staff")
    run = Run(upsert(db.uri, "staff", rows))
    run.plan_and_backup()
    db.owner.execute(trigger)
    with pytest.raises(Refused):
        run.apply()
    assert db.ran() == []
    assert db.rows("public.staff") == [(1, "original")]

    # added after the apply: the rollback refuses
    db.owner.execute("DROP TRIGGER audit ON public.staff")
    run = Run(upsert(db.uri, "staff", rows))
    run.plan_and_backup()
    run.apply()
    db.owner.execute(trigger)
    with pytest.raises(Refused) as caught:
        run.rollback()
    assert "evil.tf (trigger audit)" in caught.value.title and "the rollback" in caught.value.title
    assert db.ran() == []
    assert db.rows("public.staff") == [(1, "fixed"), (7, "OUTRID3R")]  # as the run left it

    # the responder trusts it in their own config: it runs, in the rollback too
    trusted = Run(upsert(db.uri, "staff", rows, target={"functions": ["evil.tf"]}))
    trusted.sink, trusted.written = run.sink, run.written
    assert trusted.rollback()["deleted"] == 1
    assert db.ran() == ["DELETE public.staff", "UPDATE public.staff"]
    assert db.rows("public.staff") == [(1, "original")]


def test_the_owners_volatile_default_is_code_an_insert_runs(db: Db) -> None:
    db.owner.execute(
        "CREATE FUNCTION evil.stamp() RETURNS text LANGUAGE plpgsql VOLATILE AS $$ BEGIN"
        " INSERT INTO public.ran VALUES ('default'); RETURN 'x'; END $$;"
        "GRANT EXECUTE ON FUNCTION evil.stamp() TO playbook_app"
    )
    run = Run(upsert(db.uri, "staff", [{"id": 7, "name": "OUTRID3R"}]))
    run.plan_and_backup()
    db.owner.execute(
        "ALTER TABLE public.staff ADD COLUMN stamp text;"
        "ALTER TABLE public.staff ALTER COLUMN stamp SET DEFAULT evil.stamp()"
    )
    with pytest.raises(Refused) as caught:
        run.apply()
    assert "evil.stamp (a column default)" in caught.value.title
    assert db.ran() == []
    assert db.rows("public.staff") == [(1, "original", None)]


# --------------------------------------------------------------------------- B5


def plant_lookalike(db: Db) -> None:
    """The owner's evil.staff, first on the database's search path."""
    db.owner.execute(
        "CREATE TABLE evil.staff (id int PRIMARY KEY, name text);"
        "INSERT INTO evil.staff VALUES (1, 'fixed'), (2, 'shadow row 2'), (7, 'OUTRID3R');"
        "GRANT SELECT, INSERT, UPDATE, DELETE ON evil.staff TO playbook_app;"
        "ALTER DATABASE owned SET search_path = evil, public"
    )


def test_the_rollback_writes_to_the_relation_the_backup_came_from_or_nowhere(db: Db) -> None:
    run = Run(upsert(db.uri, "staff", [{"id": 1, "name": "fixed"}, {"id": 7, "name": "OUTRID3R"}]))
    run.plan_and_backup()
    (oid,) = db.su.execute("SELECT 'public.staff'::regclass::oid").fetchone()
    relation = {k: run.sink.rows[0][k] for k in ("format", "schema", "name", "oid")}
    assert relation == {
        "format": "playbook-postgres-backup/2",
        "schema": "public",
        "name": "staff",
        "oid": oid,
    }
    run.apply()
    plant_lookalike(db)

    with pytest.raises(Refused) as caught:
        run.rollback()
    assert "evil.staff" in caught.value.title and str(oid) in caught.value.title
    assert db.rows("public.staff") == [(1, "fixed"), (7, "OUTRID3R")]  # as the apply left it
    assert db.rows("evil.staff") == [(1, "fixed"), (2, "shadow row 2"), (7, "OUTRID3R")]

    db.owner.execute("ALTER DATABASE owned RESET search_path")  # the name means it again
    assert run.rollback() == {
        "deleted": 1,
        "restored": 1,
        "reinserted": 0,
        "already": 0,
        "untouched": 0,
    }
    assert db.rows("public.staff") == [(1, "original")]
    assert db.rows("evil.staff") == [(1, "fixed"), (2, "shadow row 2"), (7, "OUTRID3R")]


def test_the_apply_refuses_a_name_that_now_means_another_relation(db: Db) -> None:
    run = Run(upsert(db.uri, "staff", [{"id": 2, "name": "inserted-by-run"}]))
    run.plan_and_backup()
    plant_lookalike(db)
    with pytest.raises(Refused):
        run.apply()
    assert db.rows("public.staff") == [(1, "original")]
    assert db.rows("evil.staff") == [(1, "fixed"), (2, "shadow row 2"), (7, "OUTRID3R")]


def test_a_backup_without_the_relation_restores_nothing(db: Db) -> None:
    """A backup an older playbook wrote has no header: which relation its rows came from
    is unknown, so the rollback refuses rather than guess from the name."""
    run = Run(upsert(db.uri, "staff", [{"id": 1, "name": "fixed"}]))
    run.plan_and_backup()
    run.apply()
    with pytest.raises(RunError) as caught:
        run.rollback(run.sink.rows[1:])
    assert "does not record which relation" in caught.value.title
    assert db.rows("public.staff") == [(1, "fixed")]


# ----------------------------------------------------- attacker F, break 1: nested domains

CHECKED_DOMAIN = (
    "CREATE FUNCTION evil.ok(v text) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN"
    " INSERT INTO public.ran VALUES ('check ' || v); RETURN true;"
    " EXCEPTION WHEN insufficient_privilege THEN RETURN true; END $$;"
    "CREATE DOMAIN evil.d AS text CHECK (evil.ok(VALUE))"
)
"""The owner's domain, whose check writes to ``ran`` when it runs with the responder's
rights (the owner's own ALTER TABLE runs it too, but cannot write there)."""


@pytest.mark.parametrize(
    "column",
    [
        "tags evil.d[] DEFAULT ARRAY['x']::evil.d[]",
        "grid evil.d[][] DEFAULT ARRAY[ARRAY['x']]::evil.d[][]",
        "CREATE TYPE evil.pair AS (k evil.d);"
        "ALTER TABLE public.staff ADD COLUMN pair evil.pair DEFAULT ROW('x')::evil.pair",
        "CREATE TYPE evil.pair AS (k evil.d);"
        "CREATE TYPE evil.deep AS (pairs evil.pair[]);"
        "ALTER TABLE public.staff ADD COLUMN deep evil.deep"
        " DEFAULT ROW(ARRAY[ROW('x')::evil.pair])::evil.deep",
        "CREATE DOMAIN evil.d2 AS evil.d;"
        "ALTER TABLE public.staff ADD COLUMN tags evil.d2[] DEFAULT ARRAY['x']::evil.d2[]",
        "CREATE DOMAIN evil.dd AS evil.d[];"
        "ALTER TABLE public.staff ADD COLUMN tags evil.dd DEFAULT ARRAY['x']::evil.dd",
        "CREATE TYPE evil.r AS RANGE (subtype = evil.d);"
        "ALTER TABLE public.staff ADD COLUMN span evil.r DEFAULT evil.r('a', 'b')",
        "CREATE TYPE evil.r AS RANGE (subtype = evil.d, multirange_type_name = evil.rs);"
        "ALTER TABLE public.staff ADD COLUMN spans evil.rs DEFAULT evil.rs(evil.r('a', 'b'))",
    ],
    ids=[
        "array of a domain",
        "two-dimensional array",
        "composite with a domain attribute",
        "composite holding an array of composites",
        "array of a domain over the domain",
        "domain over an array of the domain",
        "range over the domain",
        "multirange of that range",
    ],
)
def test_a_default_that_casts_to_a_type_holding_the_owners_domain_runs_its_check(
    db: Db, column: str
) -> None:
    """A value cast to ``d[]``, or to a row type with a ``d`` attribute, runs ``d``'s
    check on each element as the responder: the catalog follows the types down. Added
    after the dry run, so the apply's own check under its lock is what refuses."""
    db.owner.execute(CHECKED_DOMAIN)
    if not column.startswith("CREATE"):
        column = f"ALTER TABLE public.staff ADD COLUMN {column}"
    rows = [{"id": 7, "name": "OUTRID3R"}]
    run = Run(upsert(db.uri, "staff", rows))
    run.plan_and_backup()
    db.owner.execute(column)
    with pytest.raises(Refused) as caught:
        run.apply()
    assert "evil.ok (a constraint)" in caught.value.title
    assert db.ran() == []
    assert [r[:2] for r in db.rows("public.staff")] == [(1, "original")]
    with pytest.raises(Refused):  # and a dry run says so early
        Run(upsert(db.uri, "staff", rows)).plan()


def test_a_generated_array_column_added_after_the_apply_is_refused_by_the_rollback(
    db: Db,
) -> None:
    db.owner.execute(CHECKED_DOMAIN)
    rows = [{"id": 1, "name": "fixed"}, {"id": 7, "name": "OUTRID3R"}]
    run = Run(upsert(db.uri, "staff", rows))
    run.plan_and_backup()
    run.apply()
    db.owner.execute(
        "ALTER TABLE public.staff ADD COLUMN g evil.d[]"
        " GENERATED ALWAYS AS (ARRAY[name]::evil.d[]) STORED"
    )
    with pytest.raises(Refused) as caught:
        run.rollback()
    assert "evil.ok (a constraint)" in caught.value.title and "the rollback" in caught.value.title
    assert db.ran() == []
    assert [r[:2] for r in db.rows("public.staff")] == [(1, "fixed"), (7, "OUTRID3R")]


def test_a_domains_own_default_is_code_an_insert_runs(db: Db) -> None:
    """A column of a domain with a DEFAULT and no default of its own takes the domain's:
    an insert that leaves the column out runs it."""
    db.owner.execute(
        "CREATE FUNCTION evil.stamp() RETURNS text LANGUAGE plpgsql VOLATILE AS $$ BEGIN"
        " INSERT INTO public.ran VALUES ('default'); RETURN 'x';"
        " EXCEPTION WHEN insufficient_privilege THEN RETURN 'x'; END $$;"
        "CREATE DOMAIN evil.stamped AS text DEFAULT evil.stamp();"
        "ALTER TABLE public.staff ADD COLUMN stamp evil.stamped"
    )
    with pytest.raises(Refused) as caught:
        Run(upsert(db.uri, "staff", [{"id": 7, "name": "OUTRID3R"}])).plan()
    assert "evil.stamp (a domain default)" in caught.value.title
    assert db.ran() == []
    assert [r[:2] for r in db.rows("public.staff")] == [(1, "original")]
