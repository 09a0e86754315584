"""Seeds 000 and 001 end to end, on a real redis-server: cause the incident, see the
runbook's diagnostics fail, repair with the guarded rebuild, see them pass, and compare
the data with what it was. Then the same with the process killed at every stage, and
with two processes racing for the lock."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from action_driver import KILL_POINTS
from servers import RedisServer, fingerprint, load_seed_000

from playbook.adapters.plugins import load_playbook as load
from playbook.adapters.writers import LockHeld, read_backup
from playbook.service import Service
from playbook.service.actions import ConfirmationMismatch
from playbook.targets import Target

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "runbooks" / "redis-index-loss.yaml"
DRIVER = ROOT / "tests" / "action_driver.py"
LIVE = ("discord:messages:project:*", "discord:messages:channel:*", "discord:messages:user:*")
LOCK = "lock:discord:rebuild"


@pytest.fixture(scope="module")
def server() -> Any:
    srv = RedisServer()
    yield srv
    srv.stop()


@pytest.fixture
def uri(server: RedisServer) -> str:
    return f"redis://:{server.password}@127.0.0.1:{server.port}/0"


@pytest.fixture
def cache(uri: str) -> Any:
    client = redis.Redis.from_url(uri)
    client.flushall()
    load_seed_000(client, messages=20_000)
    yield client
    client.close()


def live(client: redis.Redis) -> dict[bytes, Any]:
    out: dict[bytes, Any] = {}
    for pattern in LIVE:
        out.update(fingerprint(client, pattern))
    return out


def delete_indexes(client: redis.Redis) -> None:
    """Seed 000's rebuild script: every index key deleted, no backup."""
    for pattern in LIVE:
        keys = list(client.scan_iter(match=pattern, count=10_000))
        for start in range(0, len(keys), 1000):
            client.delete(*keys[start : start + 1000])


def verdicts(service: Service, incident: str, targets: dict[str, Target]) -> dict[str, str]:
    out = {}
    for diag in ("index-drop", "project-indexes", "message-count", "index-sizes"):
        _state, payload = service.run_diagnostic(incident, diag, {}, targets)
        out[diag] = payload["verdict"]
    return out


def test_the_runbook_validates() -> None:
    pb = load(RUNBOOK).playbook
    assert set(pb.actions) == {"rebuild-indexes", "drop-old-indexes"}
    assert pb.actions["rebuild-indexes"].lock.name == LOCK


def test_seed_000_deleted_indexes_are_rebuilt_exactly(
    sqlite_service: Service, cache: redis.Redis, uri: str
) -> None:
    before = live(cache)
    assert len(before) == 6049
    delete_indexes(cache)
    targets = {"cache": Target("cache", uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "Analytics indexes are gone").id

    found = verdicts(sqlite_service, incident, targets)
    assert found["index-drop"] == "fail"  # 100 % drop against the baseline
    assert found["project-indexes"] == "fail"
    assert found["message-count"] == "pass"  # the messages, the source of truth, survived

    run = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
    whole = fingerprint(cache)
    plan = run.dry_run()
    assert fingerprint(cache) == whole, "the dry run wrote something"
    assert plan.counts["create"] == 6049 and plan.counts["records"] == 20_000
    backup = run.backup()
    assert backup["rows"] == 6049  # every index it will create, recorded as absent
    list(read_backup(Path(backup["file"]), backup["sha256"]))
    run.confirm("cache")
    outcome = run.apply()

    assert outcome.ok, outcome.error
    assert {r["verdict"] for r in outcome.verify} == {"pass"}
    assert live(cache) == before  # every set, member for member
    assert verdicts(sqlite_service, incident, targets)["index-drop"] == "pass"
    state = sqlite_service.get(incident).state
    assert state.actions[run.run_id].status == "applied and verified"
    assert [f"{s['stage']} {s['outcome']}" for s in state.actions[run.run_id].stages] == [
        "dry_run done",
        "backup done",
        "confirm done",
        "lock done",
        "apply started",
        "apply done",
        "verify done",
        "unlock done",
    ]
    assert cache.exists(LOCK) == 0


def test_seed_001_rebuild_over_6049_live_sets_keeps_them_and_rolls_back(
    sqlite_service: Service, cache: redis.Redis, uri: str
) -> None:
    before = fingerprint(cache)
    targets = {"cache": Target("cache", uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "Rebuild the indexes").id
    run = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
    assert run.dry_run().counts["replace"] == 6049
    header, *rows = read_backup(Path(run.backup()["file"]), run.backup_info["sha256"])  # type: ignore[index]
    assert header["format"] == "playbook-redis-backup/2"  # says how it encodes keys
    assert len(rows) == 6049 and all("dump" in row and "fp" in row for row in rows)
    run.confirm("cache")
    assert run.apply().ok
    old = list(cache.scan_iter(match=f"discord:messages:old-{run.run_id}:*", count=10_000))
    assert len(old) == 6049  # the replaced indexes are kept, not deleted

    numbers = run.rollback()

    assert numbers["restored"] == 6049
    assert fingerprint(cache) == before  # the v- and old- keys are gone too
    assert sqlite_service.get(incident).state.actions[run.run_id].status == "rolled back"


def test_dropping_the_old_indexes_is_guarded_and_deletes_only_what_it_saved(
    sqlite_service: Service, cache: redis.Redis, uri: str
) -> None:
    targets = {"cache": Target("cache", uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "Rebuild the indexes").id
    rebuild = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
    rebuild.dry_run()
    rebuild.backup()
    rebuild.confirm("cache")
    assert rebuild.apply().ok
    kept = live(cache)

    drop = sqlite_service.start_action(incident, "drop-old-indexes", {}, targets)
    assert drop.dry_run().counts["delete"] == 6049
    drop.backup()
    cache.sadd("discord:messages:old-late:project:1", "written after the backup")
    with pytest.raises(ConfirmationMismatch):
        drop.confirm("yes")
    drop.confirm("cache")
    assert drop.apply().ok

    assert list(cache.scan_iter(match="discord:messages:old-2*", count=10_000)) == []
    assert cache.exists("discord:messages:old-late:project:1")  # not in the backup: kept
    assert live(cache) == kept


def test_a_failed_verify_offers_rollback_and_rollback_restores(
    sqlite_service: Service, cache: redis.Redis, uri: str
) -> None:
    delete_indexes(cache)
    cache.set("discord:health:lastMessageCount", 100_000)  # verify's baseline cannot be met
    after_incident = fingerprint(cache)
    targets = {"cache": Target("cache", uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "Indexes gone").id
    run = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
    run.dry_run()
    run.backup()
    run.confirm("cache")

    outcome = run.apply()

    assert not outcome.ok and outcome.stage == "verify" and outcome.rollback_offered
    assert sqlite_service.get(incident).state.actions[run.run_id].can_roll_back
    run.rollback()
    assert fingerprint(cache) == after_incident


def test_an_index_written_after_the_backup_stops_the_swap_and_nothing_is_lost(
    sqlite_service: Service, cache: redis.Redis, uri: str
) -> None:
    delete_indexes(cache)
    targets = {"cache": Target("cache", uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "Indexes gone").id
    run = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
    run.dry_run()
    run.backup()
    run.confirm("cache")
    cache.sadd("discord:messages:project:7", "a collector still running")

    outcome = run.apply()

    assert not outcome.ok and outcome.stage == "apply" and not outcome.wrote
    assert "appeared after the backup" in outcome.error
    assert not outcome.rollback_offered  # rolling back would delete the collector's index
    state = sqlite_service.get(incident).state
    assert not state.actions[run.run_id].can_roll_back
    assert state.actions[run.run_id].status == "apply stopped, nothing left to undo"
    assert live(cache) == {
        b"discord:messages:project:7": (b"set", frozenset({b"a collector still running"}))
    }
    assert not list(cache.scan_iter(match=f"playbook:staging:{run.run_id}:*"))


def test_a_key_missing_at_backup_and_written_again_is_not_dropped(
    sqlite_service: Service, cache: redis.Redis, uri: str
) -> None:
    cache.sadd("discord:messages:old-1:project:1", "a")
    cache.sadd("discord:messages:old-1:project:2", "b")
    targets = {"cache": Target("cache", uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "Drop old").id
    drop = sqlite_service.start_action(incident, "drop-old-indexes", {}, targets)
    assert drop.dry_run().counts["delete"] == 2
    cache.delete("discord:messages:old-1:project:2")
    drop.backup()  # it is gone now: nothing of it is saved
    cache.sadd("discord:messages:old-1:project:2", "written again")
    drop.confirm("cache")

    assert drop.apply().ok

    assert not cache.exists("discord:messages:old-1:project:1")
    assert cache.smembers("discord:messages:old-1:project:2") == {b"written again"}


def test_a_key_that_is_not_utf8_is_backed_up_and_restored_exactly(
    sqlite_service: Service, cache: redis.Redis, uri: str
) -> None:
    odd = b"discord:messages:old-2:project:\xff\xfe"
    cache.sadd(odd, b"\x00binary member")
    targets = {"cache": Target("cache", uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "Drop old").id
    drop = sqlite_service.start_action(incident, "drop-old-indexes", {}, targets)
    drop.dry_run()
    drop.backup()
    drop.confirm("cache")
    assert drop.apply().ok
    assert not cache.exists(odd)

    drop.rollback()

    assert cache.smembers(odd) == {b"\x00binary member"}


# --------------------------------------------------------------------------- processes


def start_driver(data_dir: Path, incident: str, uri: str, stop_at: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            str(DRIVER),
            str(data_dir),
            incident,
            "rebuild-indexes",
            f"cache={uri}",
            stop_at,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_stop(proc: subprocess.Popen[str]) -> list[str]:
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line.strip())
        if line.strip() == "stopped":
            return lines
    raise AssertionError(
        f"the driver ended early: {lines} {proc.stderr.read() if proc.stderr else ''}"
    )


def kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # reaps it and closes its pipes


STOPS = KILL_POINTS


@pytest.mark.parametrize(("stop_at", "status", "repaired"), STOPS, ids=[s[0] for s in STOPS])
def test_killed_at_any_stage_the_data_is_as_it_was_or_as_it_should_be(
    sqlite_service: Service,
    cache: redis.Redis,
    uri: str,
    tmp_path: Path,
    stop_at: str,
    status: str,
    repaired: bool,
) -> None:
    healthy = live(cache)
    delete_indexes(cache)
    data_dir = Path(sqlite_service.store.data_dir)  # type: ignore[attr-defined]
    incident = sqlite_service.open(RUNBOOK, "Indexes gone").id

    proc = start_driver(data_dir, incident, uri, stop_at)
    wait_for_stop(proc)
    kill(proc)

    assert live(cache) == (healthy if repaired else {})
    state = sqlite_service.get(incident).state
    (run,) = state.actions.values()
    assert run.status == status
    stages = [f"{s['stage']} {s['outcome']}" for s in run.stages]
    if "backup done" in stages:
        assert run.backup is not None
        list(read_backup(Path(run.backup["file"]), run.backup["sha256"]))
    locked = "lock done" in stages
    ttl = cache.pttl(LOCK)
    assert (0 < ttl <= 600_000) if locked else ttl == -2, "a held lock must expire on its own"
    if run.can_roll_back:
        cache.delete(LOCK)  # what its expiry would do, ten minutes on
        targets = {"cache": Target("cache", uri, "test")}
        sqlite_service.resume_action(incident, run.run, targets).rollback("cache")
        assert live(cache) == {}
        assert not list(cache.scan_iter(match=f"playbook:staging:{run.run}:*"))


def test_a_second_process_cannot_take_the_lock_and_is_told_who_holds_it(
    sqlite_service: Service, cache: redis.Redis, uri: str, cli: Any
) -> None:
    delete_indexes(cache)
    data_dir = Path(sqlite_service.store.data_dir)  # type: ignore[attr-defined]
    incident = sqlite_service.open(RUNBOOK, "Indexes gone").id
    first = start_driver(data_dir, incident, uri, "lock done")
    try:
        wait_for_stop(first)
        second = subprocess.run(
            [
                sys.executable,
                "-m",
                "playbook",
                "--data-dir",
                str(data_dir),
                "action",
                "run",
                incident,
                "rebuild-indexes",
                "--target",
                f"cache={uri}",
                "--confirm",
                "cache",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        kill(first)
    assert second.returncode == 9, second.stderr
    assert f"pid {first.pid}" in second.stderr and "since" in second.stderr
    assert "pw-MARKER" not in second.stderr + second.stdout
    assert live(cache) == {}  # neither applied
    runs = sqlite_service.get(incident).state.actions.values()
    assert any(r.status == "lock refused" for r in runs)


def test_a_killed_holders_lock_expires_and_the_next_run_goes_ahead(
    sqlite_service: Service, cache: redis.Redis, uri: str, tmp_path: Path
) -> None:
    short = tmp_path / "redis-index-loss.yaml"
    short.write_text(RUNBOOK.read_text().replace("ttl: 10m", "ttl: 1s"))
    shutil.copytree(RUNBOOK.parent / "drills", tmp_path / "drills")  # its drill script
    delete_indexes(cache)
    data_dir = Path(sqlite_service.store.data_dir)  # type: ignore[attr-defined]
    incident = sqlite_service.open(short, "Indexes gone").id
    cache.config_set("notify-keyspace-events", "Ex")  # the server says when a key expires
    expiries = cache.pubsub()
    expiries.subscribe("__keyevent@0__:expired")
    proc = start_driver(data_dir, incident, uri, "apply progress")
    wait_for_stop(proc)
    kill(proc)
    assert cache.exists(LOCK)

    expired = False
    deadline = time.monotonic() + 10
    while not expired and time.monotonic() < deadline:
        message = expiries.get_message(timeout=deadline - time.monotonic())
        expired = message is not None and message["data"] == LOCK.encode()
    expiries.close()
    assert expired and not cache.exists(LOCK)

    targets = {"cache": Target("cache", uri, "test")}
    run = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
    run.dry_run()
    run.backup()
    run.confirm("cache")
    assert run.apply().ok
    with pytest.raises(LockHeld):
        cache.set(LOCK, '{"holder": "someone else", "since": "03:00"}', px=60_000)
        again = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
        again.dry_run()
        again.backup()
        again.confirm("cache")
        again.apply()
