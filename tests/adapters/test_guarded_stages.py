"""Every stage of a guarded action records how it ended, a cancel included (attack B).

A cancel is the responder's Ctrl-C (the CLI and the app call :meth:`GuardedRun.cancel`
from another thread); here it is called from the run's own progress and stage hooks, at
the moment the test wants, never after a sleep. Each test reads what landed: the
incident's events, the files beside it, the lock's key on the server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml
from servers import RedisServer, SilentServer, fingerprint

from playbook.adapters.base import Cancelled
from playbook.adapters.redis import writer as redis_writer
from playbook.render import export
from playbook.service import Service
from playbook.targets import Target

ROOT = Path(__file__).resolve().parents[2]
LOCK = "lock:test:rebuild"
SURPRISE = "argument must be an int, or have a fileno() method. internals=0x7f3a"


@pytest.fixture(scope="module")
def playbook_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rebuild whose verify runs a diagnostic on a second target (``slow``)."""
    text = yaml.safe_load((ROOT / "runbooks" / "stale-backup.yaml").read_text(encoding="utf-8"))
    text.pop("drill", None)
    for phase in [text["assessment"], *text["phases"]]:
        for step in phase.get("steps", []):
            step.pop("actions", None)
    text["diagnostics"]["slow-count"] = {
        "kind": "redis",
        "title": "Count keys on a server that may not answer",
        "target": "slow",
        "connect_timeout": "60s",
        "timeout": "60s",
        "query": {"op": "count_keys", "pattern": "idx:*"},
        "expect": [{"metric": "count", "op": "ge", "value": 0, "because": "Any count."}],
    }
    text["actions"] = {
        "rebuild": {
            "kind": "redis",
            "title": "Rebuild the test indexes",
            "target": "cache",
            "lock": {"name": LOCK},
            "batch": 2,
            "do": {
                "operation": "rebuild_indexes",
                "source": "msg:*",
                "member_field": "id",
                "prefix": "idx",
                "indexes": {"user": "authorId"},
            },
            "verify": ["slow-count", "slow-count"],
        }
    }
    path = tmp_path_factory.mktemp("playbook") / "stages.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: RedisServer) -> Iterator[Any]:
    with server.client() as c:
        c.flushall()
        for n, author in ((1, "u1"), (2, "u1"), (3, "u2")):
            c.hset(f"msg:{n}", mapping={"id": n, "authorId": author})
        c.sadd("idx:user:u1", 1)
        c.sadd("idx:user:u9", 7)
        yield c


def start(
    service: Service,
    playbook_file: Path,
    server: RedisServer,
    slow_uri: str | None = None,
    progress: Any = None,
    hook: Any = None,
) -> tuple[str, Any]:
    incident = service.open(playbook_file, "stages").id
    targets = {
        "cache": Target("cache", server.uri, "t"),
        "slow": Target("slow", slow_uri or server.uri, "t"),
    }
    return incident, service.start_action(incident, "rebuild", {}, targets, progress, hook)


def stages(service: Service, incident: str, run: Any) -> list[str]:
    found = service.get(incident).state.actions[run.run_id]
    return [f"{s['stage']} {s['outcome']}" for s in found.stages]


def backups(service: Service, incident: str) -> list[Path]:
    assert service.backup_dir is not None
    folder = Path(service.backup_dir) / incident
    return sorted(folder.iterdir()) if folder.exists() else []


# --------------------------------------------------------------------------- break 5


def test_a_cancel_after_the_dry_run_records_the_backup_cancelled_and_leaves_no_file(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    incident, run = start(sqlite_service, playbook_file, server)
    run.dry_run()
    run.cancel()  # Ctrl-C as the dry run ends

    with pytest.raises(Cancelled):
        run.backup()

    assert stages(sqlite_service, incident, run) == ["dry_run done", "backup cancelled"]
    assert backups(sqlite_service, incident) == []
    status = sqlite_service.get(incident).state.actions[run.run_id].status
    assert status == "backup cancelled"


def test_a_cancel_during_the_backup_records_it_and_deletes_the_partial_file(
    sqlite_service: Service,
    playbook_file: Path,
    server: RedisServer,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(redis_writer, "BATCH", 1)  # one key per round trip: a mid-point
    box: dict[str, Any] = {}

    def progress(p: Any) -> None:
        if p.unit == "keys backed up" and p.done == 1:
            box["file"] = backups(sqlite_service, incident)
            box["run"].cancel()

    incident, run = start(sqlite_service, playbook_file, server, progress=progress)
    box["run"] = run
    run.dry_run()

    with pytest.raises(Cancelled):
        run.backup()

    assert len(box["file"]) == 1  # the backup had begun writing its file
    assert backups(sqlite_service, incident) == []  # and it is gone: it is not a backup
    event = sqlite_service.get(incident).state.actions[run.run_id].stage("backup")
    assert event is not None and event["outcome"] == "cancelled"
    assert event["partial_removed"] == str(box["file"][0])
    assert sqlite_service.get(incident).state.actions[run.run_id].backup is None


def test_a_cancel_before_the_lock_records_it_and_takes_no_lock(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    incident, run = start(sqlite_service, playbook_file, server)
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    run.cancel()

    with pytest.raises(Cancelled):
        run.apply()

    assert stages(sqlite_service, incident, run)[-1] == "lock cancelled"
    assert not client.exists(LOCK)


def test_a_cancel_once_the_lock_is_taken_records_the_apply_cancelled_and_releases_it(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    before = fingerprint(client, "*")
    box: dict[str, Any] = {}

    def hook(stage: str, outcome: str) -> None:
        if (stage, outcome) == ("lock", "done"):
            assert client.exists(LOCK)
            box["run"].cancel()

    incident, run = start(sqlite_service, playbook_file, server, hook=hook)
    box["run"] = run
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)

    with pytest.raises(Cancelled):
        run.apply()

    assert stages(sqlite_service, incident, run)[-3:] == [
        "lock done",
        "apply cancelled",
        "unlock done",
    ]
    assert not client.exists(LOCK)
    assert fingerprint(client, "*") == before
    found = sqlite_service.get(incident).state.actions[run.run_id]
    assert found.status == "apply cancelled, nothing left to undo" and not found.can_roll_back


def test_a_cancel_during_verify_stops_the_diagnostic_and_skips_the_rest(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    """Ctrl-C during verify cancels it: the diagnostic waiting on a server that never
    answers ends at once (not at its 60 s connect timeout) and is recorded cancelled;
    the next one does not run; rollback stays offered, since the apply wrote."""
    with SilentServer() as silent:
        incident, run = start(
            sqlite_service, playbook_file, server, f"redis://127.0.0.1:{silent.port}/0"
        )
        run.dry_run()
        run.backup()
        run.confirm(run.phrase)

        def cancel_once_verifying() -> None:
            assert silent.spoken.wait(60), "verify never reached the server"
            run.cancel()

        threading.Thread(target=cancel_once_verifying, daemon=True).start()
        began = time.monotonic()
        outcome = run.apply()
        took = time.monotonic() - began

    assert took < 30
    assert not outcome.ok and outcome.stage == "verify" and outcome.rollback_offered
    assert outcome.error == "verify cancelled by the responder"
    assert [r.get("cancelled") for r in outcome.verify] == [True, True]
    assert outcome.verify[1]["error"] == "not run: the verify was cancelled"
    state = sqlite_service.get(incident).state
    assert stages(sqlite_service, incident, run)[-2:] == ["verify cancelled", "unlock done"]
    runs = [d.payload for d in state.runs if d.diagnostic == "slow-count"]
    assert len(runs) == 1 and runs[0]["cancelled"] is True
    assert state.actions[run.run_id].can_roll_back
    assert not client.exists(LOCK)


# --------------------------------------------------------------------------- surprises


def test_a_drivers_surprise_is_recorded_as_a_sentence_not_its_text(
    sqlite_service: Service,
    playbook_file: Path,
    server: RedisServer,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    incident, run = start(sqlite_service, playbook_file, server)
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise TypeError(SURPRISE)

    monkeypatch.setattr(redis_writer.RedisWriter, "_live_indexes", broken)
    outcome = run.apply()

    assert not outcome.ok
    assert outcome.error == (
        "The apply stage stopped on an error playbook did not expect from the redis writer "
        "or its driver (TypeError). This is a bug in playbook or the driver, not a problem "
        "with the data."
    )
    assert isinstance(run.surprise, TypeError)  # kept for a front end's debug output
    assert not outcome.wrote  # its staging keys were removed, as after any stop
    assert not list(client.scan_iter(match=f"playbook:staging:{run.run_id}:*"))
    events = sqlite_service.get(incident).events
    recorded = export.to_json(events, sqlite_service.clock.now())
    markdown = export.to_markdown(events, sqlite_service.clock.now())
    assert "TypeError" in recorded and "TypeError" in markdown
    assert SURPRISE not in recorded and "internals" not in markdown


def test_what_a_driver_raises_after_a_cancel_is_recorded_as_the_cancel(
    sqlite_service: Service,
    playbook_file: Path,
    server: RedisServer,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """redis-py raises AttributeError ('NoneType' object has no attribute 'sendall') or
    TypeError when the connection is closed under it by a cancel; that is the cancel."""
    box: dict[str, Any] = {}
    execute = redis.client.Pipeline.execute

    def half_closed(self: Any, *args: Any, **kwargs: Any) -> Any:
        if box.get("cancelled") and not box.get("raised"):  # once: the clean-up reconnects
            box["raised"] = True
            raise AttributeError("'NoneType' object has no attribute 'sendall'")
        return execute(self, *args, **kwargs)

    def progress(p: Any) -> None:
        if p.unit == "records indexed" and not box.get("cancelled"):
            box["cancelled"] = True
            box["run"].cancel()

    incident, run = start(sqlite_service, playbook_file, server, progress=progress)
    box["run"] = run
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    monkeypatch.setattr(redis.client.Pipeline, "execute", half_closed)
    outcome = run.apply()
    monkeypatch.undo()

    assert box["raised"]
    assert outcome.error.startswith("Cancelled by the responder.")
    assert "AttributeError" not in outcome.error and "NoneType" not in outcome.error
    assert stages(sqlite_service, incident, run)[-2:] == ["apply cancelled", "unlock done"]
    assert run.surprise is None and not outcome.wrote
    assert not list(client.scan_iter(match=f"playbook:staging:{run.run_id}:*"))


def test_a_rollback_asked_for_after_a_cancelled_verify_runs(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    """The app offers the rollback after a cancel (the apply wrote); typed, it runs."""
    before = fingerprint(client, "idx:*")
    box: dict[str, Any] = {}

    def hook(stage: str, outcome: str) -> None:
        if (stage, outcome) == ("apply", "done"):
            box["run"].cancel()  # Ctrl-C as verify begins

    incident, run = start(sqlite_service, playbook_file, server, hook=hook)
    box["run"] = run
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    outcome = run.apply()
    assert outcome.stage == "verify" and outcome.rollback_offered
    assert fingerprint(client, "idx:*") != before

    run.rollback(run.phrase)

    assert stages(sqlite_service, incident, run)[-3:] == [
        "rollback started",
        "rollback done",
        "unlock done",
    ]
    assert fingerprint(client, "idx:*") == before  # old keys renamed back, new ones removed
