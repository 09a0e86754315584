"""The PostgreSQL SQL action (kind ``postgres-sql``) through every stage, on a real server.

Each test reads what landed: the rows on the server (before and after each stage), the
backup file on disk, the incident's recorded stages. A "concurrent writer" is a second
connection that changes a targeted row at the moment the test chooses, from the run's
stage hook (never after a sleep).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pgserver import PostgresServer

from playbook.adapters.base import Refused
from playbook.adapters.postgres.sql_action import StatementRefused, check_dml
from playbook.adapters.writers import read_backup
from playbook.service import Service
from playbook.service.actions import ConfirmationMismatch, NothingToRollBack
from playbook.targets import Target

ROOT = Path(__file__).resolve().parents[2]

ACTIONS: dict[str, Any] = {
    "expire-invites": {
        "kind": "postgres-sql",
        "title": "Expire the invite codes of inactive staff",
        "target": "db",
        "params": {"max_invites": {"type": "int", "description": "At most this many."}},
        "do": {
            "operation": "statement",
            "table": "staff",
            "key": ["staff_id"],
            "sql": "UPDATE staff SET invite_code = 'EXPIRED', note = 'by playbook' "
            "WHERE total_invites <= %(max_invites)s",
        },
        "verify": ["no-live-codes"],
    },
    "drop-inactive": {
        "kind": "postgres-sql",
        "title": "Delete staff without invites",
        "target": "db",
        "do": {
            "operation": "statement",
            "table": "staff",
            "key": ["staff_id"],
            "sql": "DELETE FROM staff WHERE total_invites = 0",
        },
    },
    "add-staff": {
        "kind": "postgres-sql",
        "title": "Add a staff member",
        "target": "db",
        "params": {"id": {"type": "int"}, "name": {"type": "string"}},
        "do": {
            "operation": "statement",
            "table": "staff",
            "key": ["staff_id"],
            "sql": "INSERT INTO staff (staff_id, staff_username, invite_code)"
            " VALUES (%(id)s, %(name)s, 'NEW')",
        },
    },
}

DIAGNOSTIC = {
    "kind": "postgres",
    "title": "Live codes among low-invite staff",
    "target": "db",
    "query": {
        "sql": "SELECT count(*) AS live FROM staff WHERE total_invites <= 1"
        " AND invite_code <> 'EXPIRED'"
    },
    "expect": [{"metric": "live", "op": "eq", "value": 0, "because": "All expired."}],
}


@pytest.fixture(scope="module")
def playbook_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = yaml.safe_load((ROOT / "runbooks" / "stale-backup.yaml").read_text(encoding="utf-8"))
    text.pop("drill", None)
    for phase in [text["assessment"], *text["phases"]]:
        for step in phase.get("steps", []):
            step.pop("actions", None)
    text["diagnostics"]["no-live-codes"] = DIAGNOSTIC
    text["actions"] = ACTIONS
    path = tmp_path_factory.mktemp("playbook") / "sql.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def db(pg: PostgresServer) -> Iterator[Any]:
    with pg.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS staff")
        conn.execute(
            "CREATE TABLE staff (staff_id bigint PRIMARY KEY, staff_username text NOT NULL,"
            " invite_code text NOT NULL, total_invites int NOT NULL DEFAULT 0, note text,"
            " seen timestamptz DEFAULT '2025-10-31 09:27:49.00258+00')"
        )
        conn.execute(
            "INSERT INTO staff VALUES (1, 'ana', 'AAA', 5, NULL),"
            " (2, 'ben', 'BBB', 0, 'new'), (3, 'cy', 'CCC', 1, NULL)"
        )
        yield conn


def dump(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM staff ORDER BY staff_id").fetchall()


def start(service: Service, playbook_file: Path, pg: PostgresServer, action: str, **kw: Any) -> Any:
    incident = service.open(playbook_file, "sql action").id
    targets = {"db": Target("db", pg.uri, "t")}
    given = kw.pop("given", {})
    return service.start_action(incident, action, given, targets, **kw)


def stages(service: Service, run: Any) -> list[str]:
    found = service.get(run.incident_id).state.actions[run.run_id]
    return [f"{s['stage']} {s['outcome']}" for s in found.stages]


# --------------------------------------------------------------------------- every stage


def test_an_update_goes_through_every_stage_and_rolls_back_to_the_same_rows(
    sqlite_service: Service, playbook_file: Path, pg: PostgresServer, db: Any
) -> None:
    before = dump(db)
    run = start(sqlite_service, playbook_file, pg, "expire-invites", given={"max_invites": 1})

    plan = run.dry_run()
    assert dump(db) == before  # the dry run's transaction was rolled back
    assert plan.counts == {"update": 2} and plan.touches == 2
    assert any("staff_id=2" in line and "'BBB' -> 'EXPIRED'" in line for line in plan.items)

    info = run.backup()
    rows = list(read_backup(Path(info["file"]), info["sha256"]))
    assert rows[0]["format"].startswith("playbook-postgres-sql-backup/")
    saved = {r["key"]["staff_id"]: r["row"] for r in rows[1:]}
    assert set(saved) == {"2", "3"}  # keys as PostgreSQL's text
    assert saved["2"]["invite_code"] == "BBB" and saved["3"]["note"] is None
    assert dump(db) == before

    run.confirm(run.phrase)
    outcome = run.apply()
    assert outcome.ok, outcome.error
    assert [r["verdict"] for r in outcome.verify] == ["pass"]
    after = dump(db)
    assert [r[2] for r in after] == ["AAA", "EXPIRED", "EXPIRED"]
    assert after[1][4] == "by playbook"

    numbers = run.rollback(run.phrase)
    assert numbers["restored"] == 2 and numbers["kept"] == 0
    assert dump(db) == before
    assert stages(sqlite_service, run) == [
        "dry_run done",
        "backup done",
        "confirm done",
        "lock done",
        "apply started",
        "apply done",
        "verify done",
        "unlock done",
        "lock done",
        "rollback started",
        "rollback done",
        "unlock done",
    ]


def test_a_delete_and_an_insert_are_undone_by_their_rollbacks(
    sqlite_service: Service, playbook_file: Path, pg: PostgresServer, db: Any
) -> None:
    before = dump(db)
    run = start(sqlite_service, playbook_file, pg, "drop-inactive")
    assert run.dry_run().counts == {"delete": 1}
    run.backup()
    run.confirm(run.phrase)
    assert run.apply().ok
    assert [r[0] for r in dump(db)] == [1, 3]
    assert run.rollback(run.phrase)["reinserted"] == 1
    assert dump(db) == before  # every column, the timestamp's microseconds included

    run = start(sqlite_service, playbook_file, pg, "add-staff", given={"id": 9, "name": "dee"})
    assert run.dry_run().counts == {"insert": 1}
    assert dump(db) == before
    run.backup()
    run.confirm(run.phrase)
    assert run.apply().ok
    assert [r[0] for r in dump(db)] == [1, 2, 3, 9]
    assert run.rollback(run.phrase)["deleted"] == 1
    assert dump(db) == before


# --------------------------------------------------------------------------- concurrency


def test_a_row_changed_between_backup_and_apply_refuses_the_apply_and_writes_nothing(
    sqlite_service: Service, playbook_file: Path, pg: PostgresServer, db: Any
) -> None:
    def hook(stage: str, outcome: str) -> None:
        if (stage, outcome) == ("lock", "done"):  # after the backup, before the apply
            db.execute("UPDATE staff SET note = 'theirs' WHERE staff_id = 3")

    run = start(
        sqlite_service, playbook_file, pg, "expire-invites", given={"max_invites": 1}, hook=hook
    )
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    outcome = run.apply()
    assert not outcome.ok and not outcome.wrote and not outcome.rollback_offered
    assert "staff_id=3 changed after the backup" in outcome.error
    rows = dump(db)  # neither row 2 nor row 3 was expired; their change stands
    assert [(r[2], r[4]) for r in rows] == [("AAA", None), ("BBB", "new"), ("CCC", "theirs")]
    with pytest.raises(NothingToRollBack):
        run.rollback(run.phrase)


def test_a_row_that_newly_matches_between_backup_and_apply_refuses_the_apply(
    sqlite_service: Service, playbook_file: Path, pg: PostgresServer, db: Any
) -> None:
    def hook(stage: str, outcome: str) -> None:
        if (stage, outcome) == ("lock", "done"):
            db.execute("UPDATE staff SET total_invites = 0 WHERE staff_id = 1")

    run = start(
        sqlite_service, playbook_file, pg, "expire-invites", given={"max_invites": 1}, hook=hook
    )
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    outcome = run.apply()
    assert not outcome.ok and not outcome.wrote
    assert "would now also change staff staff_id=1" in outcome.error
    assert [r[2] for r in dump(db)] == ["AAA", "BBB", "CCC"]


def test_a_row_changed_between_apply_and_rollback_is_kept_and_named(
    sqlite_service: Service, playbook_file: Path, pg: PostgresServer, db: Any
) -> None:
    run = start(sqlite_service, playbook_file, pg, "expire-invites", given={"max_invites": 1})
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    assert run.apply().ok
    db.execute("UPDATE staff SET invite_code = 'REISSUED' WHERE staff_id = 3")
    db.execute("UPDATE staff SET total_invites = 7 WHERE staff_id = 2")  # not a SET column
    numbers = run.rollback(run.phrase)
    assert numbers["restored"] == 1 and numbers["kept"] == 1
    assert run.kept == ["staff staff_id=3 changed after the apply"]
    rows = dump(db)
    assert rows[1][2:5] == ("BBB", 7, "new")  # restored; the newer counter stays
    assert rows[2][2] == "REISSUED"  # theirs, kept
    found = sqlite_service.get(run.incident_id).state.actions[run.run_id]
    assert found.stage("rollback")["kept_items"] == ["staff staff_id=3 changed after the apply"]

    # --force, with its own phrase, puts the backup over their change too
    with pytest.raises(ConfirmationMismatch):
        run.rollback("db", force=True)
    assert dump(db)[2][2] == "REISSUED"
    forced = run.rollback("force db", force=True)
    assert forced["overwritten"] == 1
    assert dump(db)[2][2:5] == ("CCC", 1, None)


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("UPDATE staff SET note = 'x'; DELETE FROM staff", "2 statements"),
        ("DROP TABLE staff", "DropStmt".removesuffix("Stmt")),
        ("SELECT 1", "Select"),
        ("UPDATE staff SET note = 'x' RETURNING *", "RETURNING"),
        ("WITH d AS (DELETE FROM staff RETURNING 1) UPDATE staff SET note = 'x'", "WITH"),
        ("UPDATE staff SET staff_id = 4", "key column staff_id"),
        ("INSERT INTO staff VALUES (1, 'a', 'b') ON CONFLICT DO NOTHING", "ON CONFLICT"),
        ("INSERT INTO staff (staff_username, invite_code) VALUES ('a', 'b')", "key column"),
    ],
)
def test_the_parser_refuses_anything_but_one_plain_change(sql: str, says: str) -> None:
    with pytest.raises(StatementRefused) as caught:
        check_dml(sql, ["staff_id"])
    assert says in caught.value.title


def test_a_statement_on_another_table_or_calling_a_writing_function_changes_nothing(
    sqlite_service: Service, playbook_file: Path, pg: PostgresServer, db: Any, tmp_path: Path
) -> None:
    db.execute("DROP TABLE IF EXISTS other")
    db.execute("CREATE TABLE other (id int PRIMARY KEY, v text)")
    db.execute("INSERT INTO other VALUES (1, 'keep')")
    text = yaml.safe_load(playbook_file.read_text(encoding="utf-8"))
    text["actions"]["sneaky"] = {
        **ACTIONS["drop-inactive"],
        "do": {**ACTIONS["drop-inactive"]["do"], "sql": "DELETE FROM other"},
    }
    text["actions"]["setter"] = {
        **ACTIONS["drop-inactive"],
        "do": {
            **ACTIONS["drop-inactive"]["do"],
            "sql": "UPDATE staff SET note = pg_catalog.set_config('x.y', 'z', false)",
        },
    }
    path = tmp_path / "sneaky.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    before, others = dump(db), db.execute("SELECT * FROM other").fetchall()
    for action, says in (("sneaky", "not the declared table"), ("setter", "set_config")):
        run = start(sqlite_service, path, pg, action)
        with pytest.raises(Refused) as caught:
            run.dry_run()
        assert says in caught.value.title
    assert dump(db) == before
    assert db.execute("SELECT * FROM other").fetchall() == others


def test_a_table_whose_trigger_is_not_trusted_is_refused_before_the_statement_runs(
    sqlite_service: Service, playbook_file: Path, pg: PostgresServer, db: Any
) -> None:
    """A trigger is the table owner's code, run by every write: like a function the
    statement calls, it runs only when the responder named it for this target."""
    db.execute("DROP TABLE IF EXISTS fired")
    db.execute("CREATE TABLE fired (at text)")
    db.execute(
        "CREATE FUNCTION public.audit() RETURNS trigger LANGUAGE plpgsql AS"
        " $$BEGIN INSERT INTO fired VALUES ('ran'); RETURN NEW; END$$"
    )
    db.execute("CREATE TRIGGER audit BEFORE UPDATE ON staff FOR EACH ROW EXECUTE FUNCTION audit()")
    try:
        before = dump(db)
        run = start(sqlite_service, playbook_file, pg, "expire-invites", given={"max_invites": 1})
        with pytest.raises(Refused) as caught:
            run.dry_run()
        assert "public.audit (trigger audit)" in caught.value.title
        assert db.execute("SELECT count(*) FROM fired").fetchone()[0] == 0
        assert dump(db) == before

        incident = sqlite_service.open(playbook_file, "trusted").id
        trusted = {"db": Target("db", pg.uri, "t", functions=("public.audit",))}
        run = sqlite_service.start_action(incident, "expire-invites", {"max_invites": 1}, trusted)
        assert run.dry_run().counts == {"update": 2}
        assert dump(db) == before  # the trigger ran inside the rolled-back savepoint
        assert db.execute("SELECT count(*) FROM fired").fetchone()[0] == 0
    finally:
        db.execute("DROP FUNCTION public.audit() CASCADE")


def test_the_cli_runs_and_rolls_back_the_statement_and_never_shows_the_password(
    cli: Any, playbook_file: Path, pg: PostgresServer, db: Any
) -> None:
    import json

    from servers import PASSWORD

    before = dump(db)
    opened = cli("open", str(playbook_file), "--title", "invites", "--json")
    incident = json.loads(opened.output)["id"]
    target = ("--target", f"db={pg.uri}")
    done = cli(
        "action",
        "run",
        incident,
        "expire-invites",
        *target,
        "--set",
        "max_invites=1",
        "--confirm",
        "db",
    )
    assert done.exit_code == 0, done.output
    assert "update staff staff_id=2" in done.output
    assert [r[2] for r in dump(db)] == ["AAA", "EXPIRED", "EXPIRED"]
    (run,) = json.loads(cli("action", "status", incident, "--json").output)
    back = cli("action", "rollback", incident, run["run"], *target, "--confirm", "db")
    assert back.exit_code == 0, back.output
    assert dump(db) == before
    assert PASSWORD not in done.output + back.output


def test_the_example_playbook_validates_and_its_statement_passes_the_parser() -> None:
    from playbook.adapters.plugins import load_playbook

    pb = load_playbook(ROOT / "runbooks" / "examples" / "guarded-actions.yaml").playbook
    kinds = {name: a.kind for name, a in pb.actions.items()}
    assert kinds == {
        "expire-invites": "postgres-sql",
        "remove-old-logs": "shell",
        "truncate-spool": "shell",
    }
    dml = check_dml(pb.actions["expire-invites"].do.sql, ["staff_id"])
    assert (dml.kind, dml.sets, dml.order) == ("UPDATE", ("invite_code",), ("max_invites",))
