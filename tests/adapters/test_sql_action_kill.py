"""The SQL action's process killed at each stage (SIGKILL, no clean-up of ours runs):
the rows on the server are as they were or as they should be, the advisory lock goes
with the dead connection, and a run that committed rolls back to the rows it found."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pgserver import PostgresServer

from playbook.service import Service
from playbook.targets import Target

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "tests" / "action_driver.py"
ACTION = {
    "kind": "postgres-sql",
    "title": "Delete staff without invites",
    "target": "db",
    "do": {
        "operation": "statement",
        "table": "staff",
        "key": ["staff_id"],
        "sql": "DELETE FROM staff WHERE total_invites = 0",
    },
}


@pytest.fixture(scope="module")
def playbook_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = yaml.safe_load((ROOT / "runbooks" / "stale-backup.yaml").read_text(encoding="utf-8"))
    text.pop("drill", None)
    for phase in [text["assessment"], *text["phases"]]:
        for step in phase.get("steps", []):
            step.pop("actions", None)
    text["actions"] = {"drop-inactive": ACTION}
    path = tmp_path_factory.mktemp("playbook") / "kill.yaml"
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
            "CREATE TABLE staff (staff_id bigint PRIMARY KEY, name text, total_invites int)"
        )
        conn.execute("INSERT INTO staff VALUES (1, 'ana', 5), (2, 'ben', 0), (3, 'cy', 0)")
        yield conn


def dump(conn: Any) -> list[tuple[Any, ...]]:
    return conn.execute("SELECT * FROM staff ORDER BY staff_id").fetchall()


def advisory_locks(conn: Any) -> int:
    return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'").fetchone()[0]


def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the condition never came true"
        time.sleep(0.02)  # the poll interval of waiting for the server to see a death


STOPS = [
    ("backup done", False),
    ("lock done", False),
    ("apply started", False),
    ("apply done", True),
    ("verify done", True),
]


@pytest.mark.parametrize(("stop_at", "deleted"), STOPS, ids=[s[0] for s in STOPS])
def test_killed_at_any_stage_the_rows_are_as_they_were_or_as_they_should_be(
    sqlite_service: Service,
    playbook_file: Path,
    pg: PostgresServer,
    db: Any,
    stop_at: str,
    deleted: bool,
) -> None:
    before = dump(db)
    data_dir = Path(sqlite_service.store.data_dir)  # type: ignore[attr-defined]
    incident = sqlite_service.open(playbook_file, "kill").id
    proc = subprocess.Popen(
        [
            sys.executable,
            str(DRIVER),
            str(data_dir),
            incident,
            "drop-inactive",
            f"db={pg.uri}",
            stop_at,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    seen = []
    for line in proc.stdout:
        seen.append(line.strip())
        if line.strip() == "stopped":
            break
    else:
        raise AssertionError(
            f"the driver ended early: {seen} {proc.stderr.read() if proc.stderr else ''}"
        )
    proc.send_signal(signal.SIGKILL)
    proc.communicate()

    assert dump(db) == ([before[0]] if deleted else before)
    until(lambda: advisory_locks(db) == 0)  # the lock went with the dead connection
    (run,) = sqlite_service.get(incident).state.actions.values()
    if run.can_roll_back:
        targets = {"db": Target("db", pg.uri, "test")}
        sqlite_service.resume_action(incident, run.run, targets).rollback("db")
        assert dump(db) == before
    else:
        assert not deleted
