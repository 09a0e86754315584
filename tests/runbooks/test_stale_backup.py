"""Seed 002 end to end: a stale backup restored over newer data, found and repaired.

A real PostgreSQL holds staff_invite_configs with seven staff (OUTRID3R added at
10:30:59); a tiny HTTP server plays the backup service, handing out the 09:27:49 copy
with six. The test restores that copy over the table (the incident), then works the
runbook through the service: the diagnostics say the backup is stale and OUTRID3R is
lost, the guarded upsert puts him back, verify passes, and he is still there after
PostgreSQL restarts. Then the same action is killed at every stage: the table is as it
was or as it should be, never in between, and the lock is free again.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from action_driver import KILL_POINTS
from helpers import ROOT
from pgserver import PostgresServer

from playbook.adapters.plugins import load_playbook as load
from playbook.adapters.postgres.writer import lock_key
from playbook.adapters.writers import read_backup
from playbook.drill.stubs import HttpStub
from playbook.service import Service
from playbook.targets import Target

RUNBOOK = ROOT / "runbooks" / "stale-backup.yaml"
OUTRID3R = 974994910581256293
BACKUP_AT = "2025-10-31T09:27:49.002580"
ADDED_AT = datetime(2025, 10, 31, 10, 30, 59, tzinfo=UTC)
LOCK = "playbook:staff_invite_configs"

SCHEMA = """
CREATE TABLE staff_invite_configs (
    staff_id bigint PRIMARY KEY,
    staff_username text NOT NULL,
    invite_code text NOT NULL,
    total_invites int NOT NULL DEFAULT 0,
    vip_conversions int NOT NULL DEFAULT 0,
    pending_requests int NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE staff_audit (
    staff_id bigint NOT NULL,
    staff_username text NOT NULL,
    invite_code text,
    action text NOT NULL,
    at timestamptz NOT NULL
);
"""

# (staff_id, username, invite code, invites, vip, pending, updated_at): the six the
# 09:27:49 backup holds, then OUTRID3R, added at 10:30:59.
STAFF = [
    (310000000000000001, "mira", "MiRa7Qx2", 41, 6, 2, "2025-10-30T18:02:11+00:00"),
    (310000000000000002, "kestrel", "Ks9vLp0A", 17, 2, 0, "2025-10-30T21:45:03+00:00"),
    (310000000000000003, "dunelight", "Dn3Wq8Zr", 63, 11, 4, "2025-10-31T07:12:40+00:00"),
    (310000000000000004, "  sp\u00e4ce ", "Sp4ce001", 5, 0, 1, "2025-10-31T08:01:00+00:00"),
    (310000000000000005, "[b]not markup[/b]", "Mk1Up2Dn", 0, 0, 0, "2025-10-31T09:00:00+00:00"),
    (310000000000000006, "o'neil", "On3il9Ko", 9, 1, 0, "2025-10-31T09:20:15+00:00"),
    (OUTRID3R, "OUTRID3R", "RDwD35HRMt", 0, 0, 0, ADDED_AT.isoformat()),
]


# --------------------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture
def db(pg: PostgresServer) -> Iterator[Any]:
    """The bot's database before the incident: seven staff and their audit trail."""
    with pg.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS staff_invite_configs, staff_audit")
        conn.execute(SCHEMA)
        for row in STAFF:
            conn.execute(
                "INSERT INTO staff_invite_configs VALUES (%s, %s, %s, %s, %s, %s, %s)", row
            )
            conn.execute(
                "INSERT INTO staff_audit VALUES (%s, %s, %s, 'add', %s)",
                (row[0], row[1], row[2], row[6]),
            )
        yield conn


class BackupService:
    """GET /get_discord_data_backup answers the stale 09:27:49 copy (six staff): the
    drills' HTTP stub, serving what the test gives it."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {
            "timestamp": BACKUP_AT,
            "staff_configs": [
                {
                    "staff_id": s[0],
                    "staff_username": s[1],
                    "invite_code": s[2],
                    "total_invites": s[3],
                    "vip_conversions": s[4],
                    "pending_requests": s[5],
                    "updated_at": s[6],
                }
                for s in STAFF[:6]
            ],
            "version": "v2",
        }
        self.stub = HttpStub()
        self.stub.serve({"/get_discord_data_backup": self.document})
        self.url = self.stub.uri

    def close(self) -> None:
        self.stub.stop()


@pytest.fixture(scope="module")
def backups() -> Iterator[BackupService]:
    service = BackupService()
    yield service
    service.close()


@pytest.fixture
def targets(pg: PostgresServer, backups: BackupService) -> dict[str, Target]:
    return {"db": Target("db", pg.uri, "test"), "backups": Target("backups", backups.url, "test")}


# --------------------------------------------------------------------------- helpers


def fingerprint(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM staff_invite_configs ORDER BY staff_id").fetchall()


def restore_stale_backup(conn: Any, document: dict[str, Any]) -> None:
    """What the redeploy did: replace the table with the backup's staff."""
    with conn.transaction():
        conn.execute("DELETE FROM staff_invite_configs")
        for s in document["staff_configs"]:
            conn.execute(
                "INSERT INTO staff_invite_configs VALUES"
                " (%(staff_id)s, %(staff_username)s, %(invite_code)s, %(total_invites)s,"
                "  %(vip_conversions)s, %(pending_requests)s, %(updated_at)s)",
                s,
            )


def verdict(
    service: Service, incident: str, diagnostic: str, targets: dict[str, Target], **given: object
) -> dict[str, Any]:
    _state, payload = service.run_diagnostic(incident, diagnostic, given, targets)
    return payload


def lock_free(conn: Any) -> bool:
    key = lock_key(LOCK) & 0xFFFF_FFFF_FFFF_FFFF
    return not conn.execute(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
        " AND ((classid::bigint << 32) | objid::bigint) = %s",
        [key],
    ).fetchone()[0]


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    """Return once ``condition()`` is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        pause.wait(0.01)


PARAMS = {"staff_id": OUTRID3R, "staff_username": "OUTRID3R", "invite_code": "RDwD35HRMt"}


# --------------------------------------------------------------------------- the runbook


def test_the_runbook_validates(cli: Any) -> None:
    result = cli("validate", str(RUNBOOK))
    assert result.exit_code == 0, result.output
    pb = load(RUNBOOK).playbook
    assert pb.severity.default == "P2" and [lvl.id for lvl in pb.severity.levels] == [
        "P1",
        "P2",
        "P3",
        "P4",
    ]
    assert set(pb.diagnostics) == {
        "newest-write",
        "backup-freshness",
        "lost-records",
        "staff-present",
    }
    assert pb.actions["reinsert-staff"].do.key == ["staff_id"]


def test_seed_002_the_stale_restore_is_found_and_the_lost_record_put_back(
    sqlite_service: Service,
    db: Any,
    pg: PostgresServer,
    backups: BackupService,
    targets: dict[str, Target],
) -> None:
    before = fingerprint(db)
    restore_stale_backup(db, backups.document)
    assert OUTRID3R not in {r[0] for r in fingerprint(db)}
    service = sqlite_service
    incident = service.open(RUNBOOK, "OUTRID3R missing after redeploy").id

    newest = verdict(service, incident, "newest-write", targets)
    assert newest["verdict"] == "pass"
    assert newest["metrics"]["newest_write"] == ADDED_AT.timestamp()  # from the audit trail

    fresh = verdict(service, incident, "backup-freshness", targets)  # newest_write defaulted
    assert fresh["verdict"] == "fail", fresh
    assert fresh["metrics"]["staff"] == 6
    failed = [c for c in fresh["checks"] if not c["ok"]]
    assert [c["metric"] for c in failed] == ["backup_time"]
    assert "Do not restore it" in failed[0]["because"]

    lost = verdict(service, incident, "lost-records", targets)
    assert lost["verdict"] == "fail" and lost["metrics"]["rows"] == 1
    assert lost["rows"][0]["staff_id"] == OUTRID3R
    assert lost["rows"][0]["invite_code"] == "RDwD35HRMt"
    assert lost["rows"][0]["added_at"] == "2025-10-31T10:30:59+00:00"
    assert (
        verdict(service, incident, "staff-present", targets, staff_id=OUTRID3R)["verdict"] == "fail"
    )

    run = service.start_action(incident, "reinsert-staff", dict(PARAMS), targets)
    plan = run.dry_run()
    assert plan.counts == {"insert": 1, "update": 0, "unchanged": 0}
    assert plan.items == [
        f"insert staff_invite_configs staff_id={OUTRID3R}:"
        " staff_username 'OUTRID3R', invite_code 'RDwD35HRMt'"
    ]
    assert fingerprint(db) == [r for r in before if r[0] != OUTRID3R]  # the dry run wrote nothing
    info = run.backup()
    assert info["rows"] == 1
    head, *saved = [json.loads(line) for line in Path(info["file"]).read_text().splitlines()]
    assert (head["format"], head["schema"], head["name"]) == (
        "playbook-postgres-backup/2",
        "public",
        "staff_invite_configs",
    )
    assert saved == [{"key": {"staff_id": OUTRID3R}, "absent": True}]
    run.confirm("db")
    outcome = run.apply()
    assert outcome.ok, outcome
    assert outcome.numbers == {"inserted": 1, "updated": 0, "unchanged": 0}
    assert [(v["diagnostic"], v["verdict"]) for v in outcome.verify] == [
        ("staff-present", "pass"),
        ("lost-records", "pass"),
    ]
    assert lock_free(db)

    pg.restart()
    with pg.connect() as conn:
        again = verdict(service, incident, "staff-present", targets, staff_id=OUTRID3R)
        assert again["verdict"] == "pass"
        after = fingerprint(conn)
    # The re-inserted row matches the lost one in every column but updated_at: the
    # upsert does not set it, so it is the time of the re-insert (the column default),
    # not the 10:30:59 of the original add. Every other row is untouched.
    assert len(after) == len(before) == 7
    for old, new in zip(before, after, strict=True):
        if old[0] == OUTRID3R:
            assert new[:6] == old[:6] and new[6] > old[6]
        else:
            assert new == old
    state = service.get(incident).state
    assert state.actions[run.run_id].status == "applied and verified"


def test_rolling_back_the_reinsert_removes_only_that_record(
    sqlite_service: Service, db: Any, backups: BackupService, targets: dict[str, Target]
) -> None:
    restore_stale_backup(db, backups.document)
    incident_state = fingerprint(db)
    service = sqlite_service
    incident = service.open(RUNBOOK, "OUTRID3R missing").id
    run = service.start_action(incident, "reinsert-staff", dict(PARAMS), targets)
    run.dry_run()
    run.backup()
    run.confirm("db")
    assert run.apply().ok
    resumed = service.resume_action(incident, run.run_id, targets)
    assert resumed.rollback("db") == {
        "deleted": 1,
        "restored": 0,
        "reinserted": 0,
        "already": 0,
        "untouched": 0,
        "kept": 0,
    }
    assert fingerprint(db) == incident_state
    assert service.get(incident).state.actions[run.run_id].status == "rolled back"


# --------------------------------------------------------------------------- killed


DRIVER = textwrap.dedent(
    """
    import json, sys, threading
    from pathlib import Path
    from playbook.service import Service
    from playbook.store.sqlite import SQLiteStore
    from playbook.targets import Target

    data_dir, incident, uri, params, stop_at = sys.argv[1:]
    hold = threading.Event()

    def say(line):
        print(line, flush=True)
        if line == stop_at:
            print("stopped", flush=True)
            hold.wait()  # the test kills us here

    def progress(p):
        if p.unit == "rows written":  # inside apply's transaction, before its commit
            say("apply progress")

    service = Service(SQLiteStore(Path(data_dir)), actor="driver")
    run = service.start_action(
        incident, "reinsert-staff", json.loads(params), {"db": Target("db", uri, "driver")},
        progress, lambda stage, outcome: say(f"{stage} {outcome}"),
    )
    print(f"run {run.run_id}", flush=True)
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    outcome = run.apply()
    say("ok" if outcome.ok else f"failed {outcome.error}")
    """
)

STOPS = [*KILL_POINTS, ("unlock done", "applied and verified", True)]


@pytest.mark.parametrize(("stop_at", "status", "repaired"), STOPS, ids=[s[0] for s in STOPS])
def test_killed_at_any_stage_the_table_is_as_it_was_or_as_it_should_be(
    sqlite_service: Service,
    db: Any,
    pg: PostgresServer,
    backups: BackupService,
    targets: dict[str, Target],
    tmp_path: Path,
    stop_at: str,
    status: str,
    repaired: bool,
) -> None:
    restore_stale_backup(db, backups.document)
    incident_state = fingerprint(db)
    data_dir = Path(sqlite_service.store.data_dir)  # type: ignore[attr-defined]
    incident = sqlite_service.open(RUNBOOK, "OUTRID3R missing").id
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(data_dir), incident, pg.uri, json.dumps(PARAMS), stop_at],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    said: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        said.append(line.strip())
        if said[-1] == "stopped":
            break
    else:
        proc.wait(10)
        raise AssertionError(
            f"the driver ended early: {said} {proc.stderr.read() if proc.stderr else ''}"
        )
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # reaps it and closes its pipes

    # The killed connections' transactions end with them: wait until the server has let go.
    wait_for(lambda: lock_free(db))
    wait_for(
        lambda: (
            not db.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'playbook %%'"
            ).fetchone()[0]
        )
    )
    now = fingerprint(db)
    if repaired:
        assert [r for r in now if r[0] != OUTRID3R] == incident_state
        (back,) = [r for r in now if r[0] == OUTRID3R]
        assert back[:6] == (OUTRID3R, "OUTRID3R", "RDwD35HRMt", 0, 0, 0)
    else:
        assert now == incident_state  # never between: the apply is one transaction
    state = sqlite_service.get(incident).state
    run_id = said[0].removeprefix("run ")
    assert state.actions[run_id].status == status
    stages = [f"{s['stage']} {s['outcome']}" for s in state.actions[run_id].stages]
    if "backup done" in stages:
        backup = state.actions[run_id].backup
        assert backup is not None
        assert list(read_backup(Path(backup["file"]), backup["sha256"]))[1:] == [
            {"key": {"staff_id": OUTRID3R}, "absent": True}
        ]
