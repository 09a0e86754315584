"""A drill's Redis steps and fingerprint, on a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from servers import redis_server

from playbook.adapters.redis.drill import delete_matching, fingerprint, run_commands


@pytest.fixture
def client() -> Iterator[Any]:
    with redis_server() as server:
        conn = server.client()
        yield conn
        conn.close()


def load(client: Any) -> None:
    run_commands(
        client,
        [
            ["SADD", "idx:project:1", "a", "b", "c"],
            ["HSET", "msg:1", "id", "1", "body", "hello"],
            ["RPUSH", "queue", "x", "y"],
            ["ZADD", "rank", 1, "a", 2, "b"],
            ["SET", "counter", "41"],
        ],
    )


def test_the_fingerprint_changes_with_the_data_and_only_with_it(client: Any) -> None:
    load(client)
    patterns = ["idx:*", "msg:*", "queue", "rank", "counter"]
    before = fingerprint(client, patterns)
    assert set(before) == {"idx:project:1", "msg:1", "queue", "rank", "counter"}

    client.delete("idx:project:1")  # the same members, added back in another order
    client.sadd("idx:project:1", "c", "a", "b")
    assert fingerprint(client, patterns) == before

    client.srem("idx:project:1", "b")
    client.hset("msg:1", "body", "hell0")
    after = fingerprint(client, patterns)
    changed = {k for k in before if before[k] != after.get(k)}
    assert changed == {"idx:project:1", "msg:1"}


def test_a_delete_step_removes_exactly_the_matching_keys(client: Any) -> None:
    load(client)
    client.sadd("idx:user:7", "z")
    for n in range(2_500):  # more than one unlink batch
        client.set(f"idx:tmp:{n}", n)
    assert delete_matching(client, "idx:*") == 2_502
    assert sorted(k.decode() for k in client.scan_iter(count=10_000)) == [
        "counter",
        "msg:1",
        "queue",
        "rank",
    ]
