"""The PostgreSQL upsert writer, stage by stage, against a real PostgreSQL.

What a responder relies on: the dry run writes nothing and says what would change;
backup, apply and rollback give back exactly the table that was there (types and all);
a second run waits for the first (and learns who holds the lock); a killed holder frees
the lock; a failed or cancelled apply leaves the data as it was.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from pgserver import PostgresServer
from servers import PASSWORD

from playbook.adapters.base import Cancelled, RunContext, RunError, Sink
from playbook.adapters.postgres.writer import PostgresWriter, lock_key, short_holder
from playbook.adapters.writers import LockHeld, Plan, WriteRequest, read_backup

OUTRID3R = 974994910581256293
AT = datetime(2025, 10, 31, 9, 27, 49, 2580, tzinfo=UTC)
LATER = datetime(2025, 10, 31, 10, 30, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def db(pg: PostgresServer) -> Iterator[Any]:
    """``staff`` with every kind of column a restore must get exactly right."""
    with pg.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS staff")
        conn.execute(
            """CREATE TABLE staff (
                staff_id bigint PRIMARY KEY,
                staff_username text NOT NULL,
                invite_code varchar(20) NOT NULL,
                total_invites int NOT NULL DEFAULT 0,
                rate numeric(30, 20),
                updated_at timestamptz NOT NULL DEFAULT now(),
                local_time timestamp,
                avatar bytea,
                prefs jsonb,
                tags text[],
                lag interval
            )"""
        )
        conn.execute(
            "INSERT INTO staff VALUES"
            " (1, 'ana', 'AAA111', 3, 0.12345678901234567891, %(at)s, '2025-10-31 09:27:49.5',"
            "  '\\x00ff10', '{\"theme\": \"dark\", \"n\": [1, 2.5]}', '{a,\"b c\"}', '1 mon 2 days 03:04:05'),"
            " (2, 'ben', 'BBB222', 0, NULL, %(at)s, NULL, NULL, NULL, NULL, NULL)",
            {"at": AT},
        )
        yield conn


def dump(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM staff ORDER BY staff_id").fetchall()


def request(
    pg: PostgresServer, rows: list[dict[str, Any]], run: str = "r1", **kw: Any
) -> WriteRequest:
    return WriteRequest(
        action_id="reinsert-staff",
        run_id=run,
        do={"operation": "upsert", "table": "staff", "key": ["staff_id"], "rows": rows},
        uri=pg.uri,
        lock_name="playbook:action:reinsert-staff",
        holder=kw.pop("holder", f"alice@host pid 1, incident I-1, run {run}"),
        **kw,
    )


def ctx(timeout: float = 10.0) -> RunContext:
    return RunContext(timeout, 5.0)


def stage(fn: Any, *args: Any, context: RunContext | None = None) -> Any:
    context = context or ctx()
    try:
        return fn(*args, context)
    finally:
        context.finish()


def backup(writer: PostgresWriter, req: WriteRequest, plan: Plan, sink: Sink | None = None) -> int:
    context = ctx()
    try:
        return writer.backup(req, plan, context, sink or Sink(None))
    finally:
        context.finish()


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    """Return once ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        pause.wait(0.01)


ROWS = [
    # ben's name and code change, his counts and times too
    {
        "staff_id": 2,
        "staff_username": "ben2",
        "invite_code": "BBB333",
        "rate": Decimal("0.5"),
        "updated_at": LATER,
        "local_time": "2025-10-31 10:30:59",
        "avatar": b"\x01\x02",
        "prefs": {"theme": "light"},
        "tags": ["x"],
        "lag": timedelta(seconds=5),
    },
    # ana's row, changed in every typed column
    {
        "staff_id": 1,
        "staff_username": "ana",
        "invite_code": "AAA111",
        "rate": Decimal("1"),
        "updated_at": LATER,
        "local_time": "2020-01-01 00:00:00",
        "avatar": b"",
        "prefs": {"x": 1},
        "tags": [],
        "lag": timedelta(0),
    },
    # seed 002's lost record
    {"staff_id": OUTRID3R, "staff_username": "OUTRID3R", "invite_code": "RDwD35HRMt"},
]


def test_the_dry_run_says_what_would_change_and_writes_nothing(pg: PostgresServer, db: Any) -> None:
    before = dump(db)
    rows = [
        {"staff_id": 2, "staff_username": "ben2", "invite_code": "BBB222"},
        # the same time written as text: the server compares it as a timestamptz
        {
            "staff_id": 1,
            "staff_username": "ana",
            "invite_code": "AAA111",
            "updated_at": AT.isoformat(),
        },
        ROWS[2],
    ]
    plan = stage(PostgresWriter().plan, request(pg, rows))
    assert plan.counts == {"insert": 1, "update": 1, "unchanged": 1}
    assert plan.touches == 2
    assert plan.items == [
        "update staff staff_id=2: staff_username 'ben' -> 'ben2'",
        f"insert staff staff_id={OUTRID3R}: staff_username 'OUTRID3R', invite_code 'RDwD35HRMt'",
    ]
    assert plan.warnings == []
    assert dump(db) == before


def test_backup_apply_rollback_gives_back_exactly_the_table(
    pg: PostgresServer, db: Any, tmp_path: Path
) -> None:
    before = dump(db)
    writer = PostgresWriter()
    req = request(pg, ROWS)
    plan = stage(writer.plan, req)
    assert plan.counts == {"insert": 1, "update": 2, "unchanged": 0}
    sink = Sink(tmp_path / "backup.jsonl", keep=0)
    assert backup(writer, req, plan, sink) == 3
    sha = sink.close()
    saved = list(read_backup(tmp_path / "backup.jsonl", sha or ""))
    oid = db.execute("SELECT 'public.staff'::regclass::oid").fetchone()[0]
    assert {k: saved[0][k] for k in ("format", "schema", "name", "oid")} == {
        "format": "playbook-postgres-backup/2",
        "schema": "public",
        "name": "staff",
        "oid": oid,
    }
    assert saved[3] == {"key": {"staff_id": OUTRID3R}, "absent": True}
    assert saved[2]["key"] == {"staff_id": 1}
    assert saved[2]["row"]["updated_at"] == "2025-10-31 09:27:49.00258+00"

    done = stage(writer.apply, req, plan)
    assert done == {"inserted": 1, "updated": 2, "unchanged": 0}
    after = {r[0]: r for r in dump(db)}
    assert after[OUTRID3R][1:4] == ("OUTRID3R", "RDwD35HRMt", 0)
    assert after[1][5] == LATER and after[1][8] == {"x": 1}
    assert after[2][1:3] == ("ben2", "BBB333")

    rows = stage(writer.rollback, req, iter(saved))
    assert rows == {"deleted": 1, "restored": 2, "reinserted": 0, "already": 0, "untouched": 0}
    assert dump(db) == before
    again = stage(writer.rollback, req, iter(saved))  # safe to run twice
    assert again == {"deleted": 0, "restored": 0, "reinserted": 0, "already": 3, "untouched": 0}
    assert dump(db) == before


def test_a_forced_rollback_puts_back_a_row_deleted_since(pg: PostgresServer, db: Any) -> None:
    """Without fingerprints (``undo`` None) a rollback restores like ``--force``: a row
    deleted since comes back whole. (Unforced, it is kept: test_rollback_concurrency.)"""
    before = dump(db)
    writer = PostgresWriter()
    req = request(pg, ROWS[:1])
    plan = stage(writer.plan, req)
    sink = Sink(None)
    backup(writer, req, plan, sink)
    saved = sink.rows
    stage(writer.apply, req, plan)
    db.execute("DELETE FROM staff WHERE staff_id = 2")
    assert stage(writer.rollback, req, iter(saved))["reinserted"] == 1
    assert dump(db) == before


def test_a_failed_apply_leaves_the_table_as_it_was(pg: PostgresServer, db: Any) -> None:
    """The first row's update succeeds inside the transaction; the second row breaks a
    NOT NULL; nothing of either is kept."""
    before = dump(db)
    writer = PostgresWriter()
    req = request(pg, [ROWS[0], {"staff_id": 77, "staff_username": "no code"}])
    plan = stage(writer.plan, req)
    assert plan.warnings == [
        "Apply will fail: staff staff_id=77 gives no invite_code, which the table requires"
        " (NOT NULL, no default); an upsert's row must be complete enough to insert."
    ]
    backup(writer, req, plan)
    with pytest.raises(RunError, match="rolled back") as caught:
        stage(writer.apply, req, plan)
    assert "invite_code" in caught.value.title and PASSWORD not in caught.value.title
    assert dump(db) == before


def test_apply_refuses_rows_changed_after_the_backup(pg: PostgresServer, db: Any) -> None:
    writer = PostgresWriter()
    req = request(pg, ROWS[:1])
    plan = stage(writer.plan, req)
    backup(writer, req, plan)
    db.execute("UPDATE staff SET total_invites = 9 WHERE staff_id = 2")
    before = dump(db)
    with pytest.raises(RunError, match="changed after the backup"):
        stage(writer.apply, req, plan)
    assert dump(db) == before


def test_cancel_stops_an_apply_waiting_on_a_row_lock(pg: PostgresServer, db: Any) -> None:
    writer = PostgresWriter()
    req = request(pg, ROWS[:1])
    plan = stage(writer.plan, req)
    backup(writer, req, plan)
    before = dump(db)
    with pg.connect(autocommit=False) as blocker:
        blocker.execute("SELECT * FROM staff WHERE staff_id = 2 FOR UPDATE")
        context = ctx(60)
        outcome: list[BaseException] = []

        def go() -> None:
            try:
                stage(writer.apply, req, plan, context=context)
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=go)
        worker.start()
        wait_for(
            lambda: (
                db.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND application_name = 'playbook action'"
                ).fetchone()[0]
                == 1
            )
        )
        context.cancel()
        worker.join(5)
        assert not worker.is_alive()
        blocker.rollback()
    assert len(outcome) == 1 and isinstance(outcome[0], Cancelled)
    assert "rolled back" in outcome[0].title
    assert dump(db) == before


def test_a_second_run_meets_the_lock_and_learns_who_holds_it(pg: PostgresServer) -> None:
    writer = PostgresWriter()
    first = request(pg, ROWS, run="20261122t031500-a1b2")
    second = request(pg, ROWS, run="20261122t031501-c3d4", holder="bob@other pid 2, run x")
    held = stage(writer.lock, first)
    try:
        with pytest.raises(LockHeld) as caught:
            stage(writer.lock, second)
        assert short_holder(first.holder) in caught.value.title
        assert "alice@host pid 1" in caught.value.title and "since" in caught.value.title
        assert "UTC" in caught.value.title
    finally:
        held.release()
    stage(writer.lock, second).release()  # free again once released


HOLDER = textwrap.dedent(
    """
    import sys
    from playbook.adapters.base import RunContext
    from playbook.adapters.postgres.writer import PostgresWriter
    from playbook.adapters.writers import WriteRequest

    req = WriteRequest("reinsert-staff", "r9", {"operation": "upsert"}, sys.argv[1],
                       lock_name="playbook:action:reinsert-staff",
                       holder="killed@host pid 9, incident I-9, run r9")
    ctx = RunContext(30, 5)
    lock = PostgresWriter().lock(req, ctx)
    ctx.finish()
    print("locked", flush=True)
    sys.stdin.read()  # holds the lock until killed
    """
)


def test_a_killed_holder_frees_the_lock(pg: PostgresServer, db: Any) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, pg.uri],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld, match="killed@host pid 9"):
            stage(PostgresWriter().lock, request(pg, ROWS))
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                pipe.close()
    key = lock_key("playbook:action:reinsert-staff")
    # the server notices the closed connection as soon as its backend reads from it
    wait_for(
        lambda: (
            not db.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND ((classid::bigint << 32) | objid::bigint) = %s",
                [key & 0xFFFF_FFFF_FFFF_FFFF],
            ).fetchone()[0]
        )
    )
    stage(PostgresWriter().lock, request(pg, ROWS)).release()


def test_the_holder_fits_an_application_name_keeping_who_and_which_run() -> None:
    long = (
        "a-very-long-responder-name@a-very-long-host-name.example.internal pid 4242, "
        "incident 2026-11-22-database-went-away, run 20261122t031500-a1b2"
    )
    short = short_holder(long)
    assert len(short.encode()) <= 63
    assert short.endswith("run 20261122t031500-a1b2") and short.startswith("playbook a-very")
    assert short_holder("al@h pid 1, run r") == "playbook al@h pid 1, run r"


def test_errors_never_show_the_password(pg: PostgresServer, db: Any) -> None:
    writer = PostgresWriter()
    wrong = request(pg, ROWS)
    wrong.uri = pg.uri.replace("/postgres", f"/{PASSWORD}")
    missing = request(pg, ROWS)
    missing.do = {**missing.do, "table": "no_such_table"}
    bad_column = request(pg, [{"staff_id": 1, "nope": 1}])
    no_key = request(pg, ROWS)
    no_key.do = {**no_key.do, "key": ["invite_code"]}
    for req, why in [
        (wrong, "could not be reached"),
        (missing, "no table no_such_table"),
        (bad_column, "no column nope"),
        (no_key, "no unique index on \\(invite_code\\)"),
    ]:
        with pytest.raises(RunError, match=why) as caught:
            stage(writer.plan, req)
        assert PASSWORD not in f"{caught.value.title} {caught.value.message}"


def test_a_plan_of_nothing_is_empty(pg: PostgresServer, db: Any) -> None:
    same = {"staff_id": 2, "staff_username": "ben", "invite_code": "BBB222", "total_invites": 0}
    plan: Plan = stage(PostgresWriter().plan, request(pg, [same]))
    assert plan.empty and plan.counts["unchanged"] == 1


def test_rollback_leaves_alone_a_column_the_upsert_did_not_set(pg: PostgresServer, db: Any) -> None:
    writer = PostgresWriter()
    req = request(pg, ROWS[:1])  # ben: name and code, not his invite count
    plan = stage(writer.plan, req)
    sink_rows = Sink(None, keep=10)
    backup(writer, req, plan, sink_rows)
    stage(writer.apply, req, plan)
    db.execute("UPDATE staff SET total_invites = total_invites + 5 WHERE staff_id = 2")

    stage(writer.rollback, req, iter(sink_rows.rows))

    name, code, invites = db.execute(
        "SELECT staff_username, invite_code, total_invites FROM staff WHERE staff_id = 2"
    ).fetchone()
    assert (name, code) == ("ben", "BBB222")  # what the upsert changed, put back
    assert invites == 5  # what the bot counted since, kept
