"""The Redis writer's lock, on a real redis-server: it names its holder, it is never
released by someone who does not hold it, and losing it stops the stage in progress."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from servers import RedisServer, redis_server

from playbook.adapters.base import RunContext, RunError
from playbook.adapters.redis.writer import RedisWriter
from playbook.adapters.writers import LockHeld, WriteRequest


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


def request(
    redis: RedisServer, ttl: float, holder: str = "alice@host pid 1, run r1"
) -> WriteRequest:
    return WriteRequest(
        "rebuild",
        "r1",
        {"operation": "drop_keys", "pattern": "x:*"},
        redis.uri,
        lock_name="lock:test",
        lock_ttl=ttl,
        holder=holder,
    )


def test_a_held_lock_names_its_holder_and_when_it_expires(redis: RedisServer) -> None:
    writer = RedisWriter()
    first = writer.lock(request(redis, 60), RunContext(5, 5))
    try:
        with pytest.raises(LockHeld) as held:
            writer.lock(request(redis, 60, holder="bob@other pid 2, run r2"), RunContext(5, 5))
        assert "alice@host pid 1, run r1" in held.value.title
        assert "expires in" in held.value.title
    finally:
        first.release()
    with redis.client() as client:
        assert not client.exists("lock:test")


def test_a_lost_lock_stops_the_stage_and_is_not_released_from_its_new_holder(
    redis: RedisServer,
) -> None:
    lock = RedisWriter().lock(request(redis, 0.3), RunContext(5, 5))
    stage = RunContext(30, 5)
    lost = threading.Event()

    def on_lost() -> None:
        stage.lock_lost()
        lost.set()

    lock.on_lost = on_lost
    with redis.client() as client:
        client.set("lock:test", "someone else took it")  # as after an expiry
        assert lost.wait(10), "the renewal never noticed"
        with pytest.raises(RunError) as stopped:
            stage.check()
        assert "lock was lost" in stopped.value.title
        lock.release()
        assert client.get("lock:test") == b"someone else took it"
        client.delete("lock:test")
    stage.finish()
