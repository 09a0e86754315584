"""`playbook action` end to end on a real Redis: what it refuses, what it records, what it
shows, and that the target's password appears nowhere."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import Cli
from helpers import run_playbook
from servers import (
    PASSWORD,
    RedisServer,
    SilentServer,
    fingerprint,
    load_seed_000,
    redis_server,
)

RUNBOOK = str(Path(__file__).resolve().parents[2] / "runbooks" / "redis-index-loss.yaml")
LIVE = "discord:messages:[pcu]*"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


@pytest.fixture
def broken(redis: RedisServer) -> dict[bytes, object]:
    """Seed 000's incident: the index sets deleted, the messages intact. Returns the
    indexes as they were."""
    with redis.client() as client:
        client.flushall()
        load_seed_000(client, messages=6_000)
        healthy = fingerprint(client, LIVE)
        for key in list(client.scan_iter(match=LIVE, count=10_000)):
            client.delete(key)
    return healthy


def seen(redis: RedisServer, pattern: str = "*") -> dict[bytes, object]:
    with redis.client() as client:
        return fingerprint(client, pattern)


def opened(cli: Cli) -> str:
    result = cli("open", RUNBOOK, "--title", "indexes gone", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["id"]


def rebuilt(cli: Cli, redis: RedisServer) -> tuple[str, str, dict[str, object]]:
    """An incident whose indexes were rebuilt by the action: (incident, --target, run)."""
    incident = opened(cli)
    uri = f"cache={redis.uri}"
    done = cli("action", "run", incident, "rebuild-indexes", "--target", uri, "--confirm", "cache")
    assert done.exit_code == 0, done.output
    (run,) = json.loads(cli("action", "status", incident, "--json").output)
    return incident, uri, run


def stages(cli: Cli, incident: str) -> list[list[str]]:
    rows = json.loads(cli("action", "status", incident, "--json").output)
    return [row["stages"] for row in rows]


def test_yes_alone_is_refused_before_anything_runs(
    cli: Cli, redis: RedisServer, broken: object
) -> None:
    incident = opened(cli)
    result = cli(
        "action", "run", incident, "rebuild-indexes", "--target", f"cache={redis.uri}", "--yes"
    )
    assert result.exit_code == 7
    assert "--yes is not enough" in result.output
    assert stages(cli, incident) == []
    assert seen(redis, LIVE) == {}


def test_a_wrong_phrase_is_refused_before_anything_runs(
    cli: Cli, redis: RedisServer, broken: object
) -> None:
    incident = opened(cli)
    result = cli(
        "action",
        "run",
        incident,
        "rebuild-indexes",
        "--target",
        f"cache={redis.uri}",
        "--confirm",
        "production",
    )
    assert result.exit_code == 7 and "'cache'" in result.output
    assert stages(cli, incident) == []


def test_without_a_phrase_it_stops_after_the_backup(
    cli: Cli, redis: RedisServer, broken: object
) -> None:
    incident = opened(cli)
    result = cli("action", "run", incident, "rebuild-indexes", "--target", f"cache={redis.uri}")
    assert result.exit_code == 7
    assert "pass --confirm cache" in result.output
    assert stages(cli, incident) == [["dry_run done", "backup done"]]
    assert seen(redis, LIVE) == {}


def test_dry_run_shows_the_plan_and_writes_nothing(
    cli: Cli, redis: RedisServer, broken: object
) -> None:
    incident = opened(cli)
    before = seen(redis)
    result = cli(
        "action", "run", incident, "rebuild-indexes", "--target", f"cache={redis.uri}", "--dry-run"
    )
    assert result.exit_code == 0
    assert "dry run: records 6,000, indexes 6,049" in result.output
    assert "create discord:messages:" in result.output
    assert seen(redis) == before


def test_confirmed_it_applies_verifies_exports_and_rolls_back_later(
    cli: Cli, redis: RedisServer, broken: dict[bytes, object]
) -> None:
    incident = opened(cli)
    uri = f"cache={redis.uri}"
    result = cli(
        "action", "run", incident, "rebuild-indexes", "--target", uri, "--confirm", "cache"
    )
    assert result.exit_code == 0, result.output
    assert "Applied and verified" in result.output
    assert "verify PASS  index-drop" in result.output
    assert seen(redis, LIVE) == broken

    status = json.loads(cli("action", "status", incident, "--json").output)
    (run,) = status
    assert run["status"] == "applied and verified" and run["can_roll_back"]
    markdown = cli("export", incident).output
    assert "## Guarded actions" in markdown and "applied and verified" in markdown
    assert run["backup"]["sha256"] in markdown

    back = cli("action", "rollback", incident, run["run"], "--target", uri, "--confirm", "cache")
    assert back.exit_code == 0, back.output
    assert seen(redis, LIVE) == {}
    assert json.loads(cli("action", "status", incident, "--json").output)[0]["status"] == (
        "rolled back"
    )

    everything = "\n".join([result.output, back.output, markdown])
    for path in cli.home.rglob("*"):
        if path.is_file():
            everything += path.read_bytes().decode("utf-8", "replace")
    assert PASSWORD not in everything


def test_a_changed_backup_file_is_never_restored(
    cli: Cli, redis: RedisServer, broken: dict[bytes, object]
) -> None:
    incident, uri, run = rebuilt(cli, redis)
    backup = Path(run["backup"]["file"])
    backup.write_text(backup.read_text().replace("discord", "DISCORD", 1))

    back = cli("action", "rollback", incident, run["run"], "--target", uri, "--confirm", "cache")

    assert back.exit_code == 8
    assert "has changed since it was recorded" in back.output
    assert seen(redis, LIVE) == broken  # the rebuilt indexes, untouched by the refusal


def test_every_action_command_has_help(cli: Cli) -> None:
    for command in ("list", "run", "rollback", "status"):
        result = cli("action", command, "--help")
        assert result.exit_code == 0 and len(result.output) > 200
    listed = cli("action", "list", RUNBOOK)
    assert "rebuild-indexes  [redis rebuild_indexes on cache]" in listed.output
    assert "confirm by typing: cache" in listed.output


def test_a_backup_is_never_rolled_back_onto_another_server(
    cli: Cli, redis: RedisServer, broken: object
) -> None:
    incident, _uri, run = rebuilt(cli, redis)
    elsewhere = f"cache=redis://:{PASSWORD}@127.0.0.1:1/0"

    back = cli(
        "action", "rollback", incident, run["run"], "--target", elsewhere, "--confirm", "cache"
    )

    assert back.exit_code == 4
    assert "not rolled back onto another server" in back.output
    assert PASSWORD not in back.output
    assert seen(redis, LIVE) == broken


# --------------------------------------------------------------------------- never worse


def collector_between_backup_and_apply(
    redis: RedisServer, monkeypatch: pytest.MonkeyPatch, key: str, member: str
) -> None:
    """A collector that writes ``member`` to ``key`` once the phrase is typed: after the
    backup, before the apply (the order seed 002's stale restore lost data in)."""
    from playbook.service.actions import GuardedRun

    confirm = GuardedRun.confirm

    def confirmed_then_collected(self: GuardedRun, typed: str) -> None:
        confirm(self, typed)
        with redis.client() as client:
            client.sadd(key, member)

    monkeypatch.setattr(GuardedRun, "confirm", confirmed_then_collected)


def test_a_run_that_wrote_nothing_offers_no_rollback_and_refuses_one(
    cli: Cli, redis: RedisServer, broken: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = opened(cli)
    uri = f"cache={redis.uri}"
    collector_between_backup_and_apply(redis, monkeypatch, "discord:messages:user:u1", "m-9")

    run = cli("action", "run", incident, "rebuild-indexes", "--target", uri, "--confirm", "cache")

    assert run.exit_code == 8, run.output
    assert "appeared after the backup" in run.output
    assert "nothing of this run remains" in run.output  # its staging keys were removed
    assert "Nothing of this run is left on the target, so there is nothing to roll back." in (
        run.output
    )
    assert "To roll back later" not in run.output
    (row,) = json.loads(cli("action", "status", incident, "--json").output)
    assert row["status"] == "apply stopped, nothing left to undo" and not row["can_roll_back"]
    assert "roll back:" not in cli("action", "status", incident).output
    after_run = seen(redis)

    back = cli("action", "rollback", incident, row["run"], "--target", uri, "--confirm", "cache")

    assert back.exit_code == 4, back.output
    assert "wrote nothing, so there is nothing to roll back" in back.output
    assert "Traceback" not in back.output
    assert seen(redis) == after_run  # the collector's index is still there, as it wrote it
    assert seen(redis, LIVE) == {b"discord:messages:user:u1": (b"set", frozenset({b"m-9"}))}
    forced = cli(
        "action", "rollback", incident, row["run"], "--target", uri, "--force",
        "--confirm", "force cache",
    )  # fmt: skip
    assert forced.exit_code == 4 and seen(redis) == after_run  # --force does not change that
    assert [s for s in stages(cli, incident)[0] if s.startswith("rollback")] == []


def test_rollback_keeps_an_index_written_after_the_apply_and_force_needs_its_own_phrase(
    cli: Cli, redis: RedisServer, broken: dict[bytes, object]
) -> None:
    incident, uri, run = rebuilt(cli, redis)
    key = next(k for k in broken if k.startswith(b"discord:messages:user:"))
    with redis.client() as client:
        client.sadd(key, "written by the collector after the apply")
        kept = client.smembers(key)

    back = cli("action", "rollback", incident, run["run"], "--target", uri, "--confirm", "cache")

    assert back.exit_code == 0, back.output
    assert f"kept 1: {key.decode()} changed after the apply" in back.output
    assert "--force --confirm 'force cache'" in back.output
    assert seen(redis, LIVE) == {key: (b"set", frozenset(kept))}  # only the kept one is left
    event = [s for s in stages(cli, incident)[0] if s.startswith("rollback")]
    assert event == ["rollback started", "rollback done"]
    (row,) = json.loads(cli("action", "status", incident, "--json").output)
    assert row["status"] == "rolled back"

    plain = cli(
        "action", "rollback", incident, run["run"], "--target", uri, "--force", "--confirm", "cache"
    )
    assert plain.exit_code == 7 and "'force cache'" in plain.output
    assert seen(redis, LIVE) == {key: (b"set", frozenset(kept))}

    forced = cli(
        "action", "rollback", incident, run["run"], "--target", uri, "--force",
        "--confirm", "force cache",
    )  # fmt: skip
    assert forced.exit_code == 0, forced.output
    assert f"overwritten 1: {key.decode()}" in forced.output
    assert seen(redis, LIVE) == {}  # the backup (no index at all) over the collector's write


def test_ctrl_c_during_verify_cancels_it_and_offers_rollback_for_later(
    tmp_path: Path, redis: RedisServer, broken: object
) -> None:
    """SIGINT while a verify diagnostic waits on a server that never answers: the verify
    is cancelled (not run to its 60 s connect timeout) and says so; nothing more runs,
    and the rollback is offered as a command for later."""
    text = yaml.safe_load(Path(RUNBOOK).read_text(encoding="utf-8"))
    text["diagnostics"]["slow-count"] = {
        "kind": "redis",
        "title": "Count keys on a server that may not answer",
        "target": "slow",
        "connect_timeout": "60s",
        "query": {"op": "count_keys", "pattern": "discord:*"},
        "expect": [{"metric": "count", "op": "ge", "value": 0, "because": "Any count."}],
    }
    text["actions"]["rebuild-indexes"]["verify"] = ["slow-count", "index-drop"]
    text["drill"]["services"]["slow"] = "redis"
    runbook = tmp_path / "runbooks" / "redis-index-loss.yaml"
    shutil.copytree(Path(RUNBOOK).parent, runbook.parent)
    runbook.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    home = tmp_path / "home"
    opened_ = run_playbook("--data-dir", str(home), "open", str(runbook), "-t", "t", "--json")
    assert opened_.returncode == 0, opened_.stderr
    incident = json.loads(opened_.stdout)["id"]
    with SilentServer() as silent:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "playbook", "--data-dir", str(home), "action", "run",
                incident, "rebuild-indexes", "--target", f"cache={redis.uri}",
                "--target", f"slow=redis://127.0.0.1:{silent.port}/0", "--confirm", "cache",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )  # fmt: skip
        assert silent.spoken.wait(120), "verify never reached the silent server"
        began = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert time.monotonic() - began < 30
    assert proc.returncode == 11, out + err
    assert "cancelling the apply" in err and "Traceback" not in err
    assert "verify failed: verify cancelled by the responder" in out
    assert f"To roll back later: playbook action rollback {incident} " in out
    (row,) = json.loads(
        run_playbook("--data-dir", str(home), "action", "status", incident, "--json").stdout
    )
    assert row["stages"][-2:] == ["verify cancelled", "unlock done"] and row["can_roll_back"]
    assert row["status"] == "verify cancelled"
    with redis.client() as client:
        assert not client.exists("lock:discord:rebuild")
