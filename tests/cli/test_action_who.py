"""`playbook action status` says who ran each stage of a guarded action (team mode: the
apply and the rollback may be different responders'), read from the stage events' actor
on a real Redis run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Cli
from servers import RedisServer, load_seed_000, redis_server

RUNBOOK = str(Path(__file__).resolve().parents[2] / "runbooks" / "redis-index-loss.yaml")


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def test_action_status_names_who_ran_each_stage(cli: Cli, redis: RedisServer) -> None:
    with redis.client() as client:
        client.flushall()
        load_seed_000(client, messages=2_100)
        for key in list(client.scan_iter(match="discord:messages:[pcu]*", count=10_000)):
            client.delete(key)
    opened = cli("--actor", "alice", "open", RUNBOOK, "--title", "indexes gone", "--json")
    incident = json.loads(opened.output)["id"]
    uri = f"cache={redis.uri}"
    ran = cli(
        "--actor", "alice", "action", "run", incident, "rebuild-indexes",
        "--target", uri, "--confirm", "cache",
    )  # fmt: skip
    assert ran.exit_code == 0, ran.output
    (row,) = json.loads(cli("action", "status", incident, "--json").output)
    back = cli(
        "--actor", "bob", "action", "rollback", incident, row["run"],
        "--target", uri, "--confirm", "cache",
    )  # fmt: skip
    assert back.exit_code == 0, back.output

    (row,) = json.loads(cli("action", "status", incident, "--json").output)
    who = [(w["stage"], w["actor"]) for w in row["who"]]
    assert ("dry run", "alice") in who and ("apply", "alice") in who
    assert ("rollback", "bob") in who
    assert who.index(("apply", "alice")) < who.index(("rollback", "bob"))
    # the names come from the events the store keeps, one per stage event
    events = json.loads(cli("timeline", incident, "--json").output)
    stage_actors = {
        (e["payload"]["stage"], e["actor"]) for e in events if e["type"] == "action_stage"
    }
    assert ("apply", "alice") in stage_actors and ("rollback", "bob") in stage_actors

    text = cli("action", "status", incident).output
    assert "dry run — alice" in text and "apply — alice" in text and "rollback — bob" in text
