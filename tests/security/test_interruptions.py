"""Interruptions never damage an incident (issue 12, part 6).

Every case sends a real signal to a real `playbook` process, at a moment it waits for
(a line on stderr, a server that has been spoken to, a row in the log, a file the process
has closed), never after a sleep, and then reads the rows of the SQLite log file itself:
the command appended nothing, or complete events, and `show` and `export` still work.
Rows the store would refuse are written into the file with sqlite3 directly, as a damaged
or hand-edited log (or a newer version) would leave them.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, run_playbook
from servers import LatencyProxy, RedisServer, SilentServer, load_seed_000, redis_server
from tui_support import SIZE, make_app, on_incident, until

from playbook.adapters.plugins import load_playbook as load
from playbook.core.events import payload_problem
from playbook.render import markdown as md
from playbook.service import Service
from playbook.store import InvalidEvent
from playbook.store.sqlite import DB_NAME, SQLiteStore

INDEX_LOSS = str(ROOT / "runbooks" / "redis-index-loss.yaml")


# --------------------------------------------------------------------------- helpers


def playbook(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_playbook("--data-dir", str(home), *args)


def start(home: Path, *args: str) -> subprocess.Popen[str]:
    """`playbook ARGS` running in the background; stderr is read by the test."""
    return subprocess.Popen(
        [sys.executable, "-m", "playbook", "--data-dir", str(home), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def opened(home: Path, runbook: str | None = None) -> str:
    result = playbook(home, "open", *([runbook] if runbook else []), "--title", "t", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["id"]


def rows(home: Path) -> list[tuple[int, str, str]]:
    """(seq, type, payload text) of every row in the log file, read with sqlite3 itself."""
    with sqlite3.connect(home / DB_NAME) as con:
        return con.execute("SELECT seq, type, payload FROM events ORDER BY seq").fetchall()


def complete(found: list[tuple[int, str, str]]) -> None:
    """Every row is a complete event: JSON that matches its type's schema."""
    for seq, kind, payload in found:
        problem = payload_problem(kind, json.loads(payload))
        assert problem is None, f"row {seq} ({kind}): {problem}"


def wait_for(condition: Callable[[], object], what: str, seconds: float = 60) -> None:
    """Poll a condition on the file system or the log (bounded), never a fixed sleep."""
    ends = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > ends:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.005)


def open_files(pid: int) -> set[str]:
    fds = Path(f"/proc/{pid}/fd")
    found = set()
    for fd in fds.iterdir():
        try:
            found.add(os.readlink(fd))
        except OSError:
            continue  # closed meanwhile
    return found


def finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _out, err = proc.communicate(timeout=60)
    return proc.returncode, err


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


# --------------------------------------------------------------------------- diag run


@pytest.mark.parametrize(("sig", "name"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")])
def test_a_signal_during_a_diag_run_records_one_complete_cancelled_event(
    home: Path, sig: signal.Signals, name: str
) -> None:
    incident = opened(home)
    with SilentServer() as silent:
        proc = start(
            home,
            "diag",
            "run",
            incident,
            "redis-index-drop",
            "--target",
            f"cache=redis://127.0.0.1:{silent.port}/0",
        )
        assert silent.spoken.wait(30), "the run never reached the server"
        began = time.monotonic()
        proc.send_signal(sig)
        code, err = finish(proc)
    assert time.monotonic() - began < 5  # cancelled, not waiting for the connect timeout
    assert code == 8, err  # the error verdict, after recording
    assert "Traceback" not in err
    found = rows(home)
    assert [kind for _, kind, _ in found] == ["opened", "diagnostic_run"]
    complete(found)
    evidence = json.loads(found[1][2])
    assert evidence["cancelled"] is True and evidence["partial"] is True
    assert evidence["verdict"] == "error" and "Cancelled" in evidence["error"]
    shown = playbook(home, "show", incident)
    assert shown.returncode == 0 and "unreadable" not in shown.stdout


def test_a_signal_while_a_diag_run_is_recording_records_nothing(
    home: Path, redis: RedisServer
) -> None:
    incident = opened(home)
    before = rows(home)
    evidence = home / "evidence" / incident
    locker = sqlite3.connect(home / DB_NAME, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another writer holds the log
    try:
        proc = start(
            home, "diag", "run", incident, "redis-index-drop", "--target", f"cache={redis.uri}"
        )

        def recording() -> bool:
            # Its result file written, fsynced and closed, and its main thread asleep in
            # SQLite's busy handler: it is recording and waits for the log. (A closed file
            # alone is too early: a signal before the recording starts cancels the run,
            # which is then recorded as cancelled, as `diag run --help` says.)
            files = list(evidence.glob("*.jsonl")) if evidence.is_dir() else []
            if not files or str(files[0]) in open_files(proc.pid):
                return False
            return Path(f"/proc/{proc.pid}/wchan").read_text() == "hrtimer_nanosleep"

        wait_for(recording, "the run to wait for the log to record its result")
        proc.send_signal(signal.SIGTERM)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    code, err = finish(proc)
    assert code == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert rows(home) == before  # nothing, not an empty or partial event


def test_a_sighup_ignored_by_nohup_stays_ignored(home: Path) -> None:
    """`nohup playbook …` must survive its terminal closing: the handler is not put back."""
    incident = opened(home)
    before = rows(home)
    locker = sqlite3.connect(home / DB_NAME, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        nohup = ["nohup", sys.executable, "-m", "playbook", "--data-dir", str(home)]
        proc = subprocess.Popen(  # nohup ignores SIGHUP, then execs playbook (same pid)
            [*nohup, "note", incident, "kept"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        db = str(home / DB_NAME)
        wait_for(lambda: db in open_files(proc.pid), "the command to open the log")
        proc.send_signal(signal.SIGHUP)
    finally:
        locker.execute("ROLLBACK")  # the command goes on and appends its note
        locker.close()
    exit_code, err = finish(proc)
    assert exit_code == 0, err
    assert [kind for _, kind, _ in rows(home)[len(before) :]] == ["note_added"]


@pytest.mark.parametrize(
    "command",
    [
        ["note", "{id}", "restore verified"],
        ["ack", "{id}"],
        ["severity", "{id}", "P1", "--reason", "users affected"],
        ["status", "{id}", "initial", "--set", "specific_issues=missing orders"],
    ],
    ids=["note", "ack", "severity", "status"],
)
@pytest.mark.parametrize(("sig", "exit_code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_signal_while_a_command_waits_for_the_log_appends_nothing(
    home: Path, command: list[str], sig: signal.Signals, exit_code: int
) -> None:
    incident = opened(home)
    before = rows(home)
    locker = sqlite3.connect(home / DB_NAME, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")
    try:
        proc = start(home, *[part.format(id=incident) for part in command])
        db = str(home / DB_NAME)
        wait_for(lambda: db in open_files(proc.pid), "the command to open the log")
        proc.send_signal(sig)  # SIGHUP: the terminal closed
    finally:
        locker.execute("ROLLBACK")  # the command may now take the lock: it must not append
        locker.close()
    code, err = finish(proc)
    assert code == exit_code, err  # 128 + the signal, as a shell reports it
    assert f"terminated ({sig.name})" in err and "Traceback" not in err
    assert rows(home) == before


# --------------------------------------------------------------------------- guarded action


def test_sigterm_during_an_apply_leaves_complete_stage_events_and_no_lock(
    home: Path, redis: RedisServer
) -> None:
    with redis.client() as client:
        client.flushall()
        load_seed_000(client, messages=6_000)
        for key in list(client.scan_iter(match="discord:messages:[pcu]*", count=10_000)):
            client.delete(key)
    incident = opened(home, INDEX_LOSS)
    with LatencyProxy(redis.port, delay=0.1) as slow:
        proc = start(
            home,
            "action",
            "run",
            incident,
            "rebuild-indexes",
            "--target",
            f"cache={redis.uri_via(slow.port)}",
            "--confirm",
            "cache",
        )

        def applying() -> bool:
            return any(
                kind == "action_stage"
                and json.loads(p).get("stage") == "apply"
                and json.loads(p).get("outcome") == "started"
                for _, kind, p in rows(home)
            )

        wait_for(applying, "the apply to start")
        proc.send_signal(signal.SIGTERM)
        code, err = finish(proc)
    assert code == 8, err
    assert "Traceback" not in err
    found = rows(home)
    complete(found)
    stages = [(json.loads(p)["stage"], json.loads(p)["outcome"]) for _, k, p in found[1:]]
    apply = [outcome for stage, outcome in stages if stage == "apply"]
    assert apply[0] == "started" and apply[-1] != "started"  # the apply's end is recorded
    assert stages[-1] == ("unlock", "done")
    with redis.client() as client:
        assert client.exists("lock:discord:rebuild") == 0  # released, not left to expire
    status = json.loads(playbook(home, "action", "status", incident, "--json").stdout)
    assert "interrupted" not in status[0]["status"]


# --------------------------------------------------------------------------- unreadable rows


BAD_ROWS = {
    "empty evidence": ("diagnostic_run", "{}", "has no 'diagnostic'"),
    "broken JSON": ("note_added", '{"text": "cut off', "not JSON"),
    "newer type": ("from_the_future", '{"x": 1}', "unknown event type 'from_the_future'"),
    "wrong type": ("severity_changed", '{"from": "P2", "to": 1, "reason": ""}', "'to' is"),
}


def write_row(home: Path, incident: str, seq: int, kind: str, payload: str) -> None:
    with sqlite3.connect(home / DB_NAME) as con:
        con.execute(
            "INSERT INTO events (incident_id, seq, at, actor, type, payload, schema) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (incident, seq, "2026-03-14T02:05:00.000000Z", "mallory", kind, payload, 1),
        )


@pytest.mark.parametrize("case", list(BAD_ROWS))
def test_show_and_export_work_and_name_an_unreadable_event(home: Path, case: str) -> None:
    kind, payload, why = BAD_ROWS[case]
    incident = opened(home)
    assert playbook(home, "note", incident, "before").returncode == 0
    write_row(home, incident, 3, kind, payload)
    assert playbook(home, "note", incident, "after").returncode == 0  # still takes events
    named = f"event 3 ({kind}) is unreadable"

    shown = playbook(home, "show", incident)
    assert shown.returncode == 0, shown.stderr
    assert named in shown.stdout and why in shown.stdout
    as_json = json.loads(playbook(home, "show", incident, "--json").stdout)
    assert [(u["seq"], u["type"]) for u in as_json["unreadable"]] == [(3, kind)]
    assert as_json["notes"] == 2  # the events around it still count

    markdown = playbook(home, "export", incident, "--format", "markdown")
    assert markdown.returncode == 0, markdown.stderr
    # read as rendered: the Markdown escapes what came from the log (`_` is `\_`)
    assert f"event 3 (`{kind}`)" in markdown.stdout and md.text(why) in markdown.stdout
    exported = json.loads(playbook(home, "export", incident, "--format", "json").stdout)
    assert exported["unreadable"][0]["seq"] == 3 and why in exported["unreadable"][0]["why"]
    assert len(exported["events"]) == 4  # every row is exported, the bad one included
    timeline = playbook(home, "timeline", incident)
    assert timeline.returncode == 0 and f"Unreadable {kind} event" in timeline.stdout


def test_an_unreadable_opened_event_still_shows_and_exports(home: Path) -> None:
    incident = opened(home)
    with sqlite3.connect(home / DB_NAME) as con:
        con.execute("UPDATE events SET payload = '{\"title\": ' WHERE seq = 1")
    shown = playbook(home, "show", incident)
    assert shown.returncode == 0, shown.stderr
    assert "event 1 (opened) is unreadable" in shown.stdout
    exported = playbook(home, "export", incident, "--format", "markdown")
    assert exported.returncode == 0 and "event 1 (`opened`)" in exported.stdout
    ran = playbook(home, "diag", "run", incident, "redis-index-drop")
    assert ran.returncode != 0 and "Traceback" not in ran.stderr
    assert len(rows(home)) == 1  # nothing was added by the refused run


def test_the_store_refuses_the_empty_evidence_an_interrupted_run_used_to_leave(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "data")
    service = Service(store, actor="alice")
    incident = service.open(None, "x").id
    with pytest.raises(InvalidEvent, match="diagnostic_run"):
        service.record_diagnostic(incident, {})
    store.close()
    with sqlite3.connect(tmp_path / "data" / DB_NAME) as con:
        assert con.execute("SELECT type FROM events").fetchall() == [("opened",)]


def test_a_result_file_that_cannot_be_written_records_nothing(
    home: Path, redis: RedisServer
) -> None:
    incident = opened(home)
    (home / "evidence").write_text("not a folder")  # the evidence folder cannot be made
    ran = playbook(
        home, "diag", "run", incident, "redis-index-drop", "--target", f"cache={redis.uri}"
    )
    assert ran.returncode == 5, ran.stderr
    assert "nothing was recorded" in ran.stderr and "Traceback" not in ran.stderr
    assert [kind for _, kind, _ in rows(home)] == ["opened"]


async def test_the_app_says_which_event_is_unreadable(home: Path) -> None:
    incident = opened(home)
    write_row(home, incident, 2, *BAD_ROWS["empty evidence"][:2])
    store = SQLiteStore(home)
    service = Service(store, actor="alice")
    app = make_app(service, load(ROOT / "runbooks" / "data-integrity.yaml"), incident)
    try:
        async with app.run_test(size=SIZE) as pilot:
            await on_incident(pilot)
            await until(pilot, lambda: any("unreadable" in s for s in app.said), "a notice")
            notice = next(s for s in app.said if "unreadable" in s)
            assert "event 2 (diagnostic_run)" in notice and "has no 'diagnostic'" in notice
    finally:
        store.close()


def test_evidence_payloads_read_back_from_the_file_are_complete(
    home: Path, redis: RedisServer
) -> None:
    incident = opened(home)
    ran = playbook(
        home, "diag", "run", incident, "redis-index-drop", "--target", f"cache={redis.uri}"
    )
    assert ran.returncode in (0, 8, 10, 11), ran.stderr
    found = rows(home)
    complete(found)
    payload: dict[str, Any] = json.loads(found[-1][2])
    assert payload["cancelled"] is False
