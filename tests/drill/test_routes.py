"""A drill's live HTTP answers (``answer:``), read from the sandbox at each request.

The drill file is not trusted: a route's SQL that tries to write, or to call a function
that changes the server, is refused by the diagnostics' PostgreSQL reader; the route
answers HTTP 500 saying why; the diagnostic asking records an error; and the rows and
the slot are still on the server. A read past the route's deadline is stopped by the
server and answered with a 500 too. A body can carry a column of the first row.
"""

from __future__ import annotations

import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import Cli
from helpers import ROOT

from playbook.adapters.plugins import load_playbook as load
from playbook.drill.run import DrillRun
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore

FAULTY = {"status": "success", "data": {"resultType": "vector", "result": []}}

HOSTILE = {
    # PostgreSQL's parser: not a read.
    "/delete": "DELETE FROM replicas",
    "/cte": "WITH gone AS (DELETE FROM replicas RETURNING name) SELECT * FROM gone",
    # The catalog: a volatile function that drops a slot whatever the transaction says.
    "/api/v1/query": "SELECT pg_drop_replication_slot('replica_2')",
    # A function the sandbox trusts (the registry's trigger), called outright.
    "/trigger": "SELECT public.playbook_drop_replica_slot()",
}
"""Path -> SQL a hostile drill file serves there."""


def _runbook(folder: Path, answers: dict[str, dict[str, Any]]) -> Path:
    """postgres-replication with its Prometheus fault step answering ``answers``."""
    text = (ROOT / "runbooks" / "postgres-replication.yaml").read_text()
    data = yaml.safe_load(text)
    steps = data["drill"]["fault"]
    step = next(s for s in steps if s["target"] == "metrics")
    step["answer"] = answers
    shutil.copytree(ROOT / "runbooks" / "templates", folder / "templates")
    shutil.copytree(ROOT / "runbooks" / "drills", folder / "drills")
    path = folder / "postgres-replication.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _answer(sql: str, rows: Any = FAULTY, timeout: str = "5s") -> dict[str, Any]:
    return {
        "from": "db",
        "sql": sql,
        "rows": rows,
        "no_rows": {"healthy": True},
        "timeout": timeout,
    }


def _get(run: DrillRun, path: str) -> tuple[int, str, Any]:
    """GET ``path`` from the drill's stub: status, reason phrase, JSON body."""
    url = run.sandbox.targets["metrics"].uri + path
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.reason, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.reason, json.loads(exc.read())


def _server_state(run: DrillRun) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The registry's rows and the server's slots, read as the sandbox superuser."""
    with run.sandbox.handle("db", superuser=True) as conn:
        rows = conn.execute("SELECT name, slot_name, decommissioned FROM replicas ORDER BY 1")
        slots = conn.execute("SELECT slot_name, active FROM pg_replication_slots ORDER BY 1")
        return [tuple(r) for r in rows], [tuple(s) for s in slots]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[DrillRun]:
    answers = {path: _answer(sql) for path, sql in HOSTILE.items()}
    answers["/row"] = _answer(
        "SELECT slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) AS held"
        " FROM pg_replication_slots",
        rows={"slot": {"$row": "slot_name"}, "held": [{"$row": "held"}], "kept": {"$param": "x"}},
    )
    answers["/missing"] = _answer("SELECT slot_name FROM pg_replication_slots", {"$row": "nope"})
    answers["/slow"] = _answer(
        "SELECT count(*) FROM generate_series(1, 100000000000) AS n", timeout="1s"
    )
    run = DrillRun.start(load(_runbook(tmp_path, answers)))
    try:
        yield run
    finally:
        run.stop()


def test_hostile_route_sql_is_refused_by_the_reader_and_answered_with_a_500(
    started: DrillRun,
) -> None:
    before = _server_state(started)
    assert before == (
        [("replica-1", "replica_1", False), ("replica-2", "replica_2", True)],
        [("replica_2", False)],
    )
    said: dict[str, str] = {}
    for path in HOSTILE:
        status, reason, body = _get(started, path)
        assert status == 500, (path, body)
        assert body["status"] == "error" and body["errorType"] == "drill_answer"
        assert f"The drill's answer for {path} could not be read" in body["error"]
        assert reason.startswith(f"The drill's answer for {path}")  # a body-less client too
        said[path] = body["error"]
    assert "Refused" in said["/delete"] and "Refused" in said["/cte"]
    assert "pg_drop_replication_slot" in said["/api/v1/query"]
    assert "trigger" in said["/trigger"]
    # Where the promise lands: nothing on the server changed.
    assert _server_state(started) == before


def test_the_diagnostic_asking_a_refused_route_records_an_error_not_a_verdict(
    started: DrillRun, tmp_path: Path
) -> None:
    store = SQLiteStore(tmp_path / "drills")
    try:
        service = Service(store, actor="drill-test")
        incident = started.open(service).id
        _state, payload = service.run_diagnostic(
            incident, "replication-lag-metric", {}, started.targets
        )
    finally:
        store.close()
    assert payload["verdict"] == "error"
    assert "500" in payload["error"] and "could not be read" in payload["error"]
    assert _server_state(started)[1] == [("replica_2", False)]


def test_a_body_takes_columns_of_the_first_row_as_values(started: DrillRun) -> None:
    status, _reason, body = _get(started, "/row")
    assert status == 200
    assert body["slot"] == "replica_2"
    assert body["held"][0] > 16 * 1024 * 1024  # a number, as the server computed it
    assert body["kept"] == {"$param": "x"}  # only {$row: …} is a placeholder

    status, _reason, body = _get(started, "/missing")
    assert status == 500
    assert "'nope', which the SQL does not return (it returns: slot_name)" in body["error"]


def test_a_read_past_the_routes_deadline_is_stopped_and_answered_with_a_500(
    started: DrillRun,
) -> None:
    asked = time.monotonic()
    status, _reason, body = _get(started, "/slow")
    took = time.monotonic() - asked
    assert status == 500
    assert "deadline of 1 s" in body["error"] and "the answer's timeout" in body["error"]
    # The count runs for minutes unstopped; 1 s of deadline, and generous room for a
    # loaded machine.
    assert took < 15, took
    # And the server stopped it: no backend is left counting.
    with started.sandbox.handle("db", superuser=True) as conn:
        until = time.monotonic() + 15
        while (still := _counting(conn)) and time.monotonic() < until:
            time.sleep(0.05)  # the poll interval of waiting for the server's own state
    assert not still


def _counting(conn: Any) -> bool:
    row = conn.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
        " AND query LIKE %s AND pid <> pg_backend_pid()",
        ("%generate_series(1, 100000000000)%",),
    ).fetchone()
    return bool(row[0])


def test_validate_names_an_answer_that_reads_no_postgres_service(cli: Cli, tmp_path: Path) -> None:
    path = _runbook(tmp_path, {"/api/v1/query": {**_answer("SELECT 1"), "from": "metrics"}})
    result = cli("validate", str(path))
    assert result.exit_code == 1, result.output
    assert "drill.fault[2].answer./api/v1/query.from: 'metrics' is not a postgres service" in (
        result.output
    )
    assert "Traceback" not in result.output
