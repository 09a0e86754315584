"""A rebuild's rollback counts a key's expiry as part of it: an index given an expiry
after the swap is kept (its expiry with it), while an expiry that was there before the
run, counting down since, is no change. On a real Redis."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Cli
from redis_actions_support import write_playbook
from servers import RedisServer, redis_server

from playbook.adapters.redis import prints

INDEX = b"idx:user:bob"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


@pytest.fixture
def client(redis: RedisServer) -> Iterator[Any]:
    with redis.client() as c:
        c.flushall()
        c.hset("msg:1", mapping={"id": "m1", "author": "bob"})
        c.hset("msg:2", mapping={"id": "m2", "author": "bob"})
        c.sadd(INDEX, "m1", "stale")
        yield c


def rebuilt(cli: Cli, redis: RedisServer, tmp_path: Path) -> tuple[str, str, str]:
    """(incident, --target, run) once the rebuild has swapped in idx:user:bob = {m1, m2}."""
    opened = cli("open", str(write_playbook(tmp_path / "pb")), "--title", "t", "--json")
    incident = json.loads(opened.output)["id"]
    target = f"cache={redis.uri}"
    done = cli("action", "run", incident, "rebuild", "--target", target, "--confirm", "cache")
    assert done.exit_code == 0, done.output
    (row,) = json.loads(cli("action", "status", incident, "--json").output)
    return incident, target, row["run"]


def test_an_expiry_set_after_the_swap_keeps_the_index_and_its_expiry(
    cli: Cli, redis: RedisServer, client: Any, tmp_path: Path
) -> None:
    incident, target, run = rebuilt(cli, redis, tmp_path)
    assert client.expire(INDEX, 86_400)  # a writer's EXPIRE: a write like any other

    back = cli("action", "rollback", incident, run, "--target", target, "--confirm", "cache")

    assert back.exit_code == 0, back.output
    assert "kept 1: idx:user:bob changed after the apply" in back.output
    assert 0 < client.ttl(INDEX) <= 86_400  # the writer's expiry is still there
    assert client.smembers(INDEX) == {b"m1", b"m2"}  # and the rebuilt members


def test_an_expiry_from_before_the_run_counting_down_is_no_change(
    cli: Cli, redis: RedisServer, client: Any, tmp_path: Path
) -> None:
    client.pexpire(INDEX, 3_600_000)
    incident, target, run = rebuilt(cli, redis, tmp_path)
    old = next(iter(client.scan_iter(match="idx:old-*")))
    before = client.pttl(old)
    # The moved index's time to live has gone down since the backup read it: waited for
    # on the server's clock (its resolution is 1 ms), not slept.
    deadline = time.monotonic() + 5
    while client.pttl(old) == before and time.monotonic() < deadline:
        pass
    assert client.pttl(old) < before

    back = cli("action", "rollback", incident, run, "--target", target, "--confirm", "cache")

    assert back.exit_code == 0, back.output
    assert "kept" not in back.output.replace("kept 0", "")
    assert client.smembers(INDEX) == {b"m1", b"stale"}  # the index as it was before the run
    assert 0 < client.pttl(INDEX) <= 3_600_000  # with its expiry
    assert not client.exists(old)


def test_a_fingerprint_says_whether_the_key_expires_not_how_long_it_has(
    client: Any,
) -> None:
    plain = prints.read(client, [INDEX])[INDEX].fingerprint
    client.expire(INDEX, 1_000)
    first = prints.read(client, [INDEX])[INDEX].fingerprint
    client.expire(INDEX, 500)
    second = prints.read(client, [INDEX])[INDEX].fingerprint
    client.persist(INDEX)
    assert plain != first == second
    assert prints.read(client, [INDEX])[INDEX].fingerprint == plain
    assert plain == prints.of_set([b"m1", b"stale"])  # a set without expiry, as recorded
