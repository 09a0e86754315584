"""What the catalog says about the SQL action's table, asked again by every stage that
writes, the rollback included.

The database here belongs to ``mallory``, an ordinary owner (no superuser); the action
runs as the application's role. Between the stages the owner adds a trigger, a
look-alike table first on the search path, or a foreign key that cascades; each test
reads what landed on the server: the table's rows, the look-alike's, and a table
``ran`` the owner's code writes to when it runs (the owner cannot write it; only the
responder's rights can).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pgserver import PostgresServer
from servers import PASSWORD

from playbook.adapters.base import Refused, RunContext, Sink
from playbook.adapters.postgres.sql_action import PostgresSqlWriter
from playbook.adapters.writers import Undo, WriteRequest, Written


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[PostgresServer, str, str]]:
    """(server, the owner's URI, the responder's URI)."""
    with PostgresServer() as pg:
        owner = pg.add_owner("mallory", PASSWORD, "owned")
        responder = pg.uri.rsplit("/", 1)[0] + "/owned"
        with pg.connect(pg.superuser_uri.rsplit("/", 1)[0] + "/owned") as su:
            # written only with the responder's rights: a row here is the owner's code
            # run by playbook
            su.execute("CREATE TABLE public.ran (what text)")
            su.execute("GRANT INSERT, SELECT ON public.ran TO playbook_app")
        yield pg, owner, responder


SU: list[Any] = []
"""The superuser's connection to ``owned``, which reads ``ran``."""


@pytest.fixture
def owned(server: tuple[PostgresServer, str, str]) -> Iterator[tuple[Any, str]]:
    """(the owner's connection, the responder's URI), with a fresh ``staff``."""
    pg, owner, responder = server
    with pg.connect(owner) as conn, pg.connect(pg.superuser_uri.rsplit("/", 1)[0] + "/owned") as su:
        SU[:] = [su]
        conn.execute("DROP SCHEMA IF EXISTS evil CASCADE")
        conn.execute("DROP TABLE IF EXISTS child, staff CASCADE")
        conn.execute(
            "CREATE TABLE public.staff (staff_id int PRIMARY KEY, code text UNIQUE, n int)"
        )
        conn.execute("INSERT INTO public.staff VALUES (1, 'a', 5), (2, 'b', 0), (3, 'c', 0)")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON public.staff TO playbook_app")
        conn.execute("CREATE SCHEMA evil")
        conn.execute("GRANT USAGE ON SCHEMA evil TO playbook_app")
        conn.execute(
            "CREATE FUNCTION evil.tf() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
            " INSERT INTO public.ran VALUES (TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME);"
            " RETURN NEW; END $$"
        )
        try:
            yield conn, responder
        finally:
            conn.execute("ALTER DATABASE owned RESET search_path")
            su.execute("DELETE FROM public.ran")


def ran(conn: Any) -> list[str]:
    """What the owner's code wrote with the responder's rights (read as the superuser:
    the owner may not)."""
    return [r[0] for r in SU[0].execute("SELECT what FROM public.ran ORDER BY 1")]


def rows(conn: Any, table: str = "public.staff") -> list[tuple[Any, ...]]:
    return conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()


def request(uri: str, sql: str, table: str = "staff") -> WriteRequest:
    do = {"operation": "statement", "table": table, "key": ["staff_id"], "sql": sql}
    return WriteRequest("act", "r1", do, uri, holder="t")


def stage(fn: Any, *args: Any) -> Any:
    ctx = RunContext(20.0, 5.0)
    try:
        return fn(*args, ctx)
    finally:
        ctx.finish()


class Run:
    """The writer's stages on one request, as the service calls them."""

    def __init__(self, req: WriteRequest) -> None:
        self.req, self.writer = req, PostgresSqlWriter()
        self.sink = Sink(None, keep=1000)
        self.written = Written(None)

    def plan_and_backup(self) -> Any:
        self.plan = stage(self.writer.plan, self.req)
        ctx = RunContext(20.0, 5.0)
        try:
            self.writer.backup(self.req, self.plan, ctx, self.sink)
        finally:
            ctx.finish()
        return self.plan

    def apply(self) -> dict[str, int]:
        ctx = RunContext(20.0, 5.0)
        try:
            return self.writer.apply(self.req, self.plan, ctx, self.written)
        finally:
            ctx.finish()

    def rollback(self) -> dict[str, int]:
        ctx = RunContext(20.0, 5.0)
        try:
            undo = Undo(dict(self.written.items))
            return self.writer.rollback(self.req, iter(self.sink.rows), ctx, undo)
        finally:
            ctx.finish()


# --------------------------------------------------------------------------- break 1


def test_a_trigger_added_after_the_apply_refuses_the_rollback_and_never_runs(
    owned: tuple[Any, str],
) -> None:
    conn, uri = owned
    run = Run(request(uri, "DELETE FROM staff WHERE n = 0"))
    assert run.plan_and_backup().counts == {"delete": 2}
    assert run.apply() == {"deleted": 2}
    conn.execute(
        "CREATE TRIGGER t BEFORE INSERT OR UPDATE ON public.staff"
        " FOR EACH ROW EXECUTE FUNCTION evil.tf()"
    )
    with pytest.raises(Refused) as caught:
        run.rollback()
    assert "evil.tf (trigger t)" in caught.value.title
    assert ran(conn) == []  # on the server: the owner's code never ran
    assert rows(conn) == [(1, "a", 5)]  # and nothing was reinserted

    conn.execute("DROP TRIGGER t ON public.staff")  # gone again: the rollback runs
    assert run.rollback()["reinserted"] == 2
    assert rows(conn) == [(1, "a", 5), (2, "b", 0), (3, "c", 0)]


def test_a_function_in_an_index_expression_is_code_a_write_runs(
    owned: tuple[Any, str],
) -> None:
    """An expression index calls its function on every write, with the writer's rights."""
    conn, uri = owned
    conn.execute(
        "CREATE FUNCTION evil.idx(t text) RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT t $$"
    )
    conn.execute("CREATE INDEX ON public.staff (evil.idx(code))")
    with pytest.raises(Refused) as caught:
        stage(PostgresSqlWriter().plan, request(uri, "UPDATE staff SET code = 'x' WHERE n = 5"))
    assert "evil.idx (an index)" in caught.value.title
    assert rows(conn)[0] == (1, "a", 5)


# --------------------------------------------------------------------------- break 2


def plant_lookalike(conn: Any, *, holding: str = "") -> None:
    """The owner's evil.staff, first on the database's search path, with a trigger."""
    conn.execute("CREATE TABLE evil.staff (LIKE public.staff INCLUDING ALL)")
    if holding:
        conn.execute(f"INSERT INTO evil.staff VALUES {holding}")
    conn.execute("GRANT ALL ON evil.staff TO playbook_app")
    conn.execute(
        "CREATE TRIGGER t BEFORE INSERT OR UPDATE OR DELETE ON evil.staff"
        " FOR EACH ROW EXECUTE FUNCTION evil.tf()"
    )
    conn.execute("ALTER DATABASE owned SET search_path = evil, public")


def test_the_backup_names_the_relation_and_the_rollback_writes_to_it_or_nowhere(
    owned: tuple[Any, str],
) -> None:
    conn, uri = owned
    run = Run(request(uri, "DELETE FROM staff WHERE n = 0"))
    run.plan_and_backup()
    head = run.sink.rows[0]
    oid = conn.execute("SELECT 'public.staff'::regclass::oid").fetchone()[0]
    assert (head["schema"], head["name"], head["oid"]) == ("public", "staff", oid)
    run.apply()
    plant_lookalike(conn)
    with pytest.raises(Refused) as caught:
        run.rollback()
    assert "evil.staff" in caught.value.title and str(oid) in caught.value.title
    assert rows(conn) == [(1, "a", 5)]  # public.staff: as the apply left it
    assert rows(conn, "evil.staff") == []  # the look-alike got nothing
    assert ran(conn) == []

    conn.execute("ALTER DATABASE owned RESET search_path")  # the path put back: it runs
    assert run.rollback()["reinserted"] == 2
    assert rows(conn) == [(1, "a", 5), (2, "b", 0), (3, "c", 0)]
    assert rows(conn, "evil.staff") == [] and ran(conn) == []


def test_an_apply_refuses_a_name_that_now_means_another_table(owned: tuple[Any, str]) -> None:
    conn, uri = owned
    run = Run(request(uri, "UPDATE staff SET code = code || 'x' WHERE n = 0"))
    run.plan_and_backup()
    conn.execute("INSERT INTO public.staff VALUES (9, 'z', 0)")  # not in the backup
    plant_lookalike(conn, holding="(2, 'b', 0), (3, 'c', 0)")
    with pytest.raises(Refused) as caught:
        run.apply()
    assert "OID" in caught.value.title
    assert rows(conn, "evil.staff") == [(2, "b", 0), (3, "c", 0)]
    assert rows(conn) == [(1, "a", 5), (2, "b", 0), (3, "c", 0), (9, "z", 0)]
    assert ran(conn) == []


def test_a_backup_that_does_not_name_its_relation_is_not_restored(owned: tuple[Any, str]) -> None:
    conn, uri = owned
    run = Run(request(uri, "DELETE FROM staff WHERE n = 0"))
    run.plan_and_backup()
    run.apply()
    run.sink.rows[0] = {
        k: v for k, v in run.sink.rows[0].items() if k not in ("schema", "name", "oid")
    } | {"format": "playbook-postgres-sql-backup/1"}
    with pytest.raises(Exception) as caught:
        run.rollback()
    assert "does not record which relation" in str(caught.value)
    assert rows(conn) == [(1, "a", 5)]


# --------------------------------------------------------------------------- break 3


def child(conn: Any, action: str) -> None:
    conn.execute(
        f"CREATE TABLE public.child (id int PRIMARY KEY, staff_id int, code text,"
        f" FOREIGN KEY (staff_id) REFERENCES public.staff ON DELETE {action},"
        f" CONSTRAINT by_code FOREIGN KEY (code) REFERENCES public.staff (code)"
        f" ON UPDATE {action})"
    )
    conn.execute("INSERT INTO public.child VALUES (1, 1, 'a'), (2, 3, 'c')")


@pytest.mark.parametrize("action", ["CASCADE", "SET NULL", "SET DEFAULT"])
def test_a_statement_whose_foreign_keys_change_another_table_is_refused_before_it_runs(
    owned: tuple[Any, str], action: str
) -> None:
    conn, uri = owned
    child(conn, action)
    before, children = rows(conn), rows(conn, "public.child")
    for sql, says in (
        ("DELETE FROM staff WHERE n = 0", f"ON DELETE {action}"),
        ("UPDATE staff SET code = code || '2' WHERE n = 0", f"ON UPDATE {action}"),
    ):
        with pytest.raises(Refused) as caught:
            stage(PostgresSqlWriter().plan, request(uri, sql))
        assert says in caught.value.title and "public.child" in caught.value.title
    assert rows(conn) == before and rows(conn, "public.child") == children
    # an UPDATE of a column no foreign key references changes no other row: it runs
    run = Run(request(uri, "UPDATE staff SET n = 7 WHERE n = 0"))
    assert run.plan_and_backup().counts == {"update": 2}
    run.apply()
    assert rows(conn, "public.child") == children


def test_no_action_and_restrict_foreign_keys_refuse_nothing(owned: tuple[Any, str]) -> None:
    """They change no other row: the server refuses the write instead, whole."""
    conn, uri = owned
    child(conn, "NO ACTION")
    run = Run(request(uri, "DELETE FROM staff WHERE staff_id = 2"))
    assert run.plan_and_backup().counts == {"delete": 1}
    assert run.apply() == {"deleted": 1}
    assert run.rollback()["reinserted"] == 1


def test_a_cascade_added_after_an_insert_refuses_its_rollback(owned: tuple[Any, str]) -> None:
    """The rollback of an INSERT deletes: a cascade added since would take other rows."""
    conn, uri = owned
    run = Run(request(uri, "INSERT INTO staff (staff_id, code, n) VALUES (4, 'd', 1)"))
    run.plan_and_backup()
    run.apply()
    conn.execute(
        "CREATE TABLE public.child (id int PRIMARY KEY,"
        " staff_id int REFERENCES public.staff ON DELETE CASCADE)"
    )
    conn.execute("INSERT INTO public.child VALUES (1, 4)")
    with pytest.raises(Refused) as caught:
        run.rollback()
    assert "ON DELETE CASCADE" in caught.value.title
    assert rows(conn, "public.child") == [(1, 4)]
    assert (4, "d", 1) in rows(conn)


def test_a_table_with_inheritance_children_is_refused(owned: tuple[Any, str]) -> None:
    conn, uri = owned
    conn.execute("CREATE TABLE evil.heir () INHERITS (public.staff)")
    conn.execute("INSERT INTO evil.heir VALUES (7, 'h', 0)")
    with pytest.raises(Refused) as caught:
        stage(PostgresSqlWriter().plan, request(uri, "DELETE FROM staff WHERE n = 0"))
    assert "evil.heir" in caught.value.title
    assert rows(conn, "evil.heir") == [(7, "h", 0)]


@pytest.mark.parametrize(
    ("setup", "says"),
    [
        (
            [
                "CREATE TABLE public.parted (staff_id int PRIMARY KEY, n int)"
                " PARTITION BY RANGE (staff_id)",
                "CREATE TABLE public.parted_low PARTITION OF public.parted"
                " FOR VALUES FROM (0) TO (100)",
                "CREATE TRIGGER t BEFORE UPDATE ON public.parted_low"
                " FOR EACH ROW EXECUTE FUNCTION evil.tf()",
            ],
            "evil.tf (trigger t)",
        ),
        (
            [
                "CREATE FUNCTION evil.ok(v int) RETURNS boolean LANGUAGE sql AS $$ SELECT true $$",
                "CREATE DOMAIN evil.checked AS int CHECK (evil.ok(VALUE))",
                "CREATE TABLE public.parted (staff_id int PRIMARY KEY, n evil.checked)",
            ],
            "evil.ok (a constraint)",
        ),
    ],
    ids=["a partition's trigger", "a column's domain check"],
)
def test_code_a_row_meets_on_its_way_in_is_code_a_write_runs(
    owned: tuple[Any, str], setup: list[str], says: str
) -> None:
    """A row lands in a partition, and runs its triggers; a domain's check runs on every
    value written to a column of that type."""
    conn, uri = owned
    conn.execute("DROP TABLE IF EXISTS public.parted")
    for statement in setup:
        conn.execute(statement)
    conn.execute("INSERT INTO public.parted VALUES (1, 0)")
    conn.execute("GRANT ALL ON public.parted TO playbook_app")
    try:
        with pytest.raises(Refused) as caught:
            stage(
                PostgresSqlWriter().plan,
                request(uri, "UPDATE parted SET n = 1 WHERE staff_id = 1", "parted"),
            )
        assert says in caught.value.title
        assert rows(conn, "public.parted") == [(1, 0)]
        assert ran(conn) == []
    finally:
        conn.execute("DROP TABLE public.parted")
