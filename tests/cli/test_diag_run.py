"""`playbook diag run` end to end: a real Redis, mongomock, evidence, exports, secrets."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mongomock
import pytest
from conftest import Cli
from servers import PASSWORD, RedisServer, SilentServer, free_port, load_seed_001, redis_server

from playbook.adapters.mongo.reader import MongoAdapter


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        client = srv.client()
        load_seed_001(client, message_keys=300)
        client.set("discord:health:lastMessageCount", "6049")
        client.set("discord:bot:heartbeat", str(time.time() - 30))
        client.hset("message:discord:1", mapping={"content": "\x1b]0;pwned\x07[red]hi[/red]"})
        yield srv


def opened(cli: Cli) -> str:
    result = cli("open", "--title", "analytics look empty", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["id"]


def everything_written(cli: Cli, *outputs: str) -> str:
    """Every byte a user or reviewer could see: outputs, the log, evidence, exports."""
    parts = list(outputs)
    for path in cli.home.rglob("*"):
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


def test_a_run_is_recorded_with_its_evidence(cli: Cli, redis: RedisServer) -> None:
    incident = opened(cli)
    result = cli("diag", "run", incident, "redis-index-drop", "--target", f"cache={redis.uri}")
    assert result.exit_code == 0, result.output
    assert "PASS  redis-index-drop on cache" in result.output
    assert "drop_percent = 0.0 (healthy: <= 10): ok" in result.output
    # It says how many rows it prints, not how many the event keeps (20).
    assert "showing 10 of 6,049 rows" in result.output
    assert sum(1 for line in result.output.splitlines() if line.startswith('    "discord:')) == 10

    shown = cli("timeline", incident)
    assert "Diagnostic redis-index-drop on cache: PASS" in shown.output

    event = json.loads(cli("export", incident, "--format", "json").output)["events"][-1]
    p = event["payload"]
    assert event["type"] == "diagnostic_run"
    assert p["target"] == "cache" and p["metrics"]["count"] == 6049
    assert p["params"] == {
        "pattern": "discord:messages:*",
        "baseline_key": "discord:health:lastMessageCount",
    }
    assert p["rows_total"] == 6049 and len(p["rows"]) == 20
    assert hashlib.sha256(Path(p["file"]).read_bytes()).hexdigest() == p["sha256"]
    assert len(Path(p["file"]).read_text().splitlines()) == 6049

    md = cli("export", incident).output
    assert "### redis-index-drop: PASS" in md
    assert f"SHA-256 `{p['sha256']}`" in md
    assert "- Rows: showing 10 of 6,049 rows" in md


def test_verdicts_set_the_exit_status(cli: Cli, redis: RedisServer) -> None:
    incident = opened(cli)
    target = f"cache={redis.uri}"
    lock = cli("diag", "run", incident, "redis-rebuild-lock", "--target", target)
    assert lock.exit_code == 0  # no lock is held
    ttl = cli("diag", "run", incident, "redis-message-ttl", "--target", target)
    assert ttl.exit_code == 10 and "WARN" in ttl.output  # every third message key expires
    drop = cli(
        "diag",
        "run",
        incident,
        "redis-index-drop",
        "--target",
        target,
        "--set",
        "pattern=discord:messages:project:*",
    )
    assert drop.exit_code == 11 and "FAIL" in drop.output  # 2,001 of 6,049 is a 67 % drop


def test_database_values_are_shown_as_data(cli: Cli, redis: RedisServer) -> None:
    incident = opened(cli)
    result = cli(
        "diag",
        "run",
        incident,
        "redis-snapshot",
        "--target",
        f"cache={redis.uri}",
        "--set",
        "pattern=message:discord:1",
    )
    assert result.exit_code == 0
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "[red]hi[/red]" in result.output  # markup stays literal text


def test_a_writing_diagnostic_is_never_run(cli: Cli) -> None:
    incident = opened(cli)
    result = cli("diag", "run", incident, "reindex", "--set", "collection=users")
    assert result.exit_code == 7
    assert "never run as a diagnostic" in result.output
    assert "diagnostic_run" not in cli("export", incident, "--format", "json").output


def test_missing_target_and_parameters_say_what_to_do(cli: Cli) -> None:
    incident = opened(cli)
    result = cli("diag", "run", incident, "redis-heartbeat")
    assert result.exit_code == 2 and "No target named 'cache'" in result.output
    assert "--target cache=URI" in result.output
    result = cli("diag", "run", incident, "missing-field", "--target", "app-db=mongodb://x/app")
    assert result.exit_code == 2
    assert "missing collection" in result.output and "missing field" in result.output
    result = cli("diag", "run", incident, "redis-hartbeat")
    assert result.exit_code == 3 and "Did you mean redis-heartbeat?" in result.output


def test_targets_come_from_playbook_toml_with_env(
    cli: Cli, redis: RedisServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.mkdir()
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    (config / "playbook").mkdir()
    (config / "playbook" / "playbook.toml").write_text(
        '[targets]\ncache = "redis://:${CACHE_PASSWORD}@127.0.0.1:PORT/0"\n'.replace(
            "PORT", str(redis.port)
        )
    )
    monkeypatch.setenv("CACHE_PASSWORD", PASSWORD)
    incident = opened(cli)
    result = cli("diag", "run", incident, "redis-heartbeat")
    assert result.exit_code == 0, result.output


def test_the_mongo_diagnostics_run_from_the_cli(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    client: Any = mongomock.MongoClient("mongodb://db.invalid/app")
    client.app.users.insert_many([{"email": "a@x.io"}, {"email": "a@x.io"}, {"email": "b@x.io"}])
    monkeypatch.setattr(MongoAdapter, "client_factory", staticmethod(lambda _u, _c: client))
    incident = opened(cli)
    result = cli(
        "diag",
        "run",
        incident,
        "duplicate-keys",
        "--target",
        "app-db=mongodb://db.invalid/app",
        "--set",
        "collection=users",
        "--set",
        "field=email",
    )
    assert result.exit_code == 11, result.output
    assert "count = 1 (healthy: == 0): FAIL" in result.output  # one value is shared
    assert '"_id": "a@x.io"' in result.output and '"count": 2' in result.output


def test_the_password_never_appears_anywhere(cli: Cli, redis: RedisServer) -> None:
    incident = opened(cli)
    outputs = []
    with SilentServer() as silent:
        for uri in (
            redis.uri,  # works
            f"redis://:{PASSWORD}@127.0.0.1:{free_port()}/0",  # refused
            f"redis://:{PASSWORD}@127.0.0.1:{silent.port}/0",  # never answers
            f"redis://:{PASSWORD}@127.0.0.1:{redis.port}/9",  # a database that is empty
            f"mongodb://admin:{PASSWORD}@127.0.0.1:{free_port()}/app",  # refused
        ):
            name = "app-db" if uri.startswith("mongodb") else "cache"
            diag = "list-indexes" if name == "app-db" else "redis-heartbeat"
            result = cli(
                "diag",
                "run",
                incident,
                diag,
                "--target",
                f"{name}={uri}",
                "--set",
                "collection=users" if name == "app-db" else "key=discord:bot:heartbeat",
            )
            outputs.append(result.output)
    outputs.append(cli("export", incident).output)
    outputs.append(cli("export", incident, "--format", "json").output)
    outputs.append(cli("timeline", incident).output)
    outputs.append(cli("show", incident).output)
    text = everything_written(cli, *outputs)
    assert "redis-heartbeat" in text  # the runs did happen
    assert PASSWORD not in text


def test_an_unanswering_server_ends_at_the_deadline_with_a_recorded_error(cli: Cli) -> None:
    incident = opened(cli)
    with SilentServer() as silent:
        result = cli(
            "diag",
            "run",
            incident,
            "redis-heartbeat",
            "--target",
            f"cache=redis://127.0.0.1:{silent.port}/0",
        )
    assert result.exit_code == 8
    assert "ERROR  redis-heartbeat" in result.output
    assert "no rows: the run did not finish" in result.output
    event = json.loads(cli("export", incident, "--format", "json").output)["events"][-1]
    assert event["payload"]["verdict"] == "error" and event["payload"]["partial"] is True
