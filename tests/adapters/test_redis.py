"""Redis diagnostics against a real redis-server the tests start, loaded like seed 001."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import (
    DroppingProxy,
    LatencyProxy,
    RedisServer,
    SilentServer,
    free_port,
    load_seed_001,
    redis_server,
)

from playbook.adapters.base import (
    Cancelled,
    DeadlineExceeded,
    Refused,
    RunContext,
    RunError,
    RunRequest,
    Sink,
)
from playbook.adapters.redis.client import GuardedRedis, connect
from playbook.adapters.redis.reader import RedisAdapter


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as srv:
        client = srv.client()
        counts = load_seed_001(client, message_keys=3_000)
        client.set("discord:bot:heartbeat", str(int(time.time() * 1000) - 42_000))
        client.set("discord:health:lastMessageCount", "8000")
        client.set("lock:discord:rebuild", "1")
        client.hset("odd:hash", mapping={"esc": "\x1b[31mred\x1b[0m", "markup": "[bold]x[/]"})
        client.set("odd:binary", b"\xff\xfe\x00raw")
        client.rpush("odd:list", "a", "b", "c")
        client.zadd("odd:zset", {"m1": 1.5, "m2": 2})
        srv.counts = counts  # type: ignore[attr-defined]
        yield srv


def run(
    uri: str,
    query: dict[str, Any],
    *,
    timeout: float = 30,
    connect_timeout: float = 5,
    path: Path | None = None,
    progress: Any = None,
) -> tuple[dict[str, Any], Sink]:
    adapter = RedisAdapter()
    request = RunRequest("t", query, uri)
    adapter.check(request)
    ctx = RunContext(timeout, connect_timeout, progress)
    sink = Sink(path)
    try:
        return adapter.run(request, ctx, sink), sink
    finally:
        ctx.finish()


def digest(server: RedisServer) -> str:
    """A checksum of the whole dataset: every key's DUMP, in key order."""
    client = server.client()
    keys = sorted(client.scan_iter(count=10_000))
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.dump(key)
        pipe.pttl(key)
    values = pipe.execute()
    return hashlib.sha256(repr(list(zip(keys, values[::2], strict=True))).encode()).hexdigest()


# --------------------------------------------------------------------------- operations


def test_count_keys_walks_with_scan_and_lists_every_key(
    server: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "keys.jsonl"
    metrics, sink = run(
        server.uri, {"op": "count_keys", "pattern": "discord:messages:user:*"}, path=path
    )
    sink.close()
    assert metrics["count"] == 2040
    keys = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(keys) == len(set(keys)) == 2040
    assert len(sink.rows) == 20  # memory holds the first rows only


def test_snapshot_saves_every_member_of_every_index_set(
    server: RedisServer, tmp_path: Path
) -> None:
    path = tmp_path / "snapshot.jsonl"
    with LatencyProxy(server.port, delay=0) as proxy:
        metrics, sink = run(
            server.uri_via(proxy.port),
            {"op": "snapshot", "pattern": "discord:messages:*"},
            path=path,
        )
        trips = proxy.round_trips
    sha = sink.close()
    assert metrics["count"] == 6049
    assert metrics["members"] == 703_455
    assert trips <= 25  # seed 001's backup made one round trip per key: 6,049
    client = server.client()
    lines = path.read_text().splitlines()
    assert len(lines) == 6049
    for line in lines[::97]:  # every 97th key, compared member for member with the server
        row = json.loads(line)
        assert row["type"] == "set" and row["ttl_ms"] == -1
        assert sorted(row["value"]) == sorted(m.decode() for m in client.smembers(row["key"]))
    assert sha == hashlib.sha256(path.read_bytes()).hexdigest()


def test_snapshot_keeps_every_type_and_odd_bytes_exactly(
    server: RedisServer, tmp_path: Path
) -> None:
    metrics, sink = run(server.uri, {"op": "snapshot", "pattern": "odd:*"})
    rows = {r["key"]: r for r in sink.rows}
    assert rows["odd:hash"]["value"] == {"esc": "\x1b[31mred\x1b[0m", "markup": "[bold]x[/]"}
    assert rows["odd:binary"]["value"] == {"$base64": "//4AcmF3"}
    assert rows["odd:list"]["value"] == ["a", "b", "c"]
    assert rows["odd:zset"]["value"] == [["m1", 1.5], ["m2", 2.0]]
    assert metrics["count"] == 4


def test_baseline_reports_the_drop_against_the_recorded_count(server: RedisServer) -> None:
    metrics, _ = run(
        server.uri,
        {
            "op": "baseline",
            "pattern": "discord:messages:*",
            "baseline_key": "discord:health:lastMessageCount",
        },
    )
    assert metrics["count"] == 6049 and metrics["baseline"] == 8000
    assert metrics["drop_percent"] == pytest.approx(24.39, abs=0.01)


def test_ttl_audit_finds_the_message_keys_that_expire(server: RedisServer) -> None:
    metrics, sink = run(server.uri, {"op": "ttl_audit", "pattern": "message:discord:*"})
    assert metrics["count"] == 3000
    assert metrics["with_ttl"] == 1000  # the loader gives every third message key a TTL
    assert any(r["ttl_seconds"] is None for r in sink.rows)


def test_freshness_reads_a_millisecond_heartbeat(server: RedisServer) -> None:
    metrics, _ = run(server.uri, {"op": "freshness", "key": "discord:bot:heartbeat"})
    assert metrics["present"] is True
    assert 40 <= metrics["age_seconds"] < 300
    metrics, _ = run(server.uri, {"op": "freshness", "key": "no:such:heartbeat"})
    assert metrics == {"present": False, "age_seconds": None}


def test_sizes_info_and_dbsize(server: RedisServer) -> None:
    sizes, _ = run(server.uri, {"op": "collection_sizes", "pattern": "discord:messages:project:*"})
    assert sizes["count"] == 2001 and 100 <= sizes["smallest"] <= sizes["largest"] <= 500
    info, _ = run(server.uri, {"op": "info", "section": "keyspace"})
    assert info["db0.keys"] == server.client().dbsize()
    size, _ = run(server.uri, {"op": "dbsize"})
    assert size["count"] == info["db0.keys"]


def test_counting_is_streamed_not_held(tmp_path: Path) -> None:
    with redis_server() as srv:
        client = srv.client()
        pipe = client.pipeline(transaction=False)
        for n in range(200_000):
            pipe.set(f"k:{n:012d}:padding-padding-padding", "1")
            if n % 20_000 == 19_999:
                pipe.execute()
        tracemalloc.start()
        try:
            metrics, sink = run(
                srv.uri, {"op": "count_keys", "pattern": "k:*"}, path=tmp_path / "k.jsonl"
            )
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        sink.close()
    assert metrics["count"] == 200_000
    # Holding every key would take well over 12 MB; one SCAN batch is a tenth of that.
    assert peak < 6_000_000, f"peak {peak:,} bytes"


# --------------------------------------------------------------------------- read only


REFUSED = [
    ("SET", "k", "v"),
    ("DEL", "discord:messages:user:1"),
    ("UNLINK", "k"),
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("EXPIRE", "k", "1"),
    ("PEXPIRE", "k", "1"),
    ("PERSIST", "k"),
    ("RENAME", "a", "b"),
    ("RENAMENX", "a", "b"),
    ("MOVE", "k", "1"),
    ("COPY", "a", "b"),
    ("SADD", "s", "1"),
    ("SREM", "s", "1"),
    ("SPOP", "s"),
    ("SMOVE", "a", "b", "m"),
    ("SINTERSTORE", "d", "a"),
    ("HSET", "h", "f", "v"),
    ("HDEL", "h", "f"),
    ("HINCRBY", "h", "f", "1"),
    ("LPUSH", "l", "x"),
    ("RPOP", "l"),
    ("LTRIM", "l", "0", "0"),
    ("LSET", "l", "0", "x"),
    ("ZADD", "z", "1", "m"),
    ("ZREM", "z", "m"),
    ("ZPOPMIN", "z"),
    ("XADD", "x", "*", "f", "v"),
    ("XTRIM", "x", "MAXLEN", "0"),
    ("XDEL", "x", "0-1"),
    ("INCR", "n"),
    ("APPEND", "k", "x"),
    ("SETRANGE", "k", "0", "x"),
    ("GETDEL", "k"),
    ("GETEX", "k", "EX", "1"),
    ("MSET", "a", "1"),
    ("SETEX", "k", "1", "v"),
    ("PFADD", "p", "x"),
    ("RESTORE", "k", "0", "x"),
    ("SORT", "l"),
    ("SWAPDB", "0", "1"),
    ("SELECT", "1"),
    ("PUBLISH", "c", "m"),
    ("CONFIG", "SET", "maxmemory", "1"),
    ("SHUTDOWN",),
    ("BGSAVE",),
    ("SAVE",),
    ("BGREWRITEAOF",),
    ("REPLICAOF", "NO", "ONE"),
    ("SLAVEOF", "NO", "ONE"),
    ("CLIENT", "KILL", "TYPE", "normal"),
    ("ACL", "SETUSER", "x"),
    ("MIGRATE", "h", "1", "k", "0", "1"),
    ("SCRIPT", "FLUSH"),
    ("EVAL", "return 1", "0"),
    ("EVALSHA", "a" * 40, "0"),
    ("FUNCTION", "FLUSH"),
    ("FCALL", "f", "0"),
    ("KEYS", "*"),
    ("MONITOR",),
    ("SUBSCRIBE", "c"),
    ("PSUBSCRIBE", "*"),
    ("BLPOP", "l", "0"),
    ("BRPOP", "l", "0"),
    ("BLMOVE", "a", "b", "LEFT", "LEFT", "0"),
    ("BZPOPMIN", "z", "0"),
    ("XREAD", "BLOCK", "0", "STREAMS", "x", "$"),
    ("DEBUG", "SLEEP", "5"),
    ("WAIT", "1", "0"),
    ("SYNC",),
    ("MULTI",),
    ("EXEC",),
    ("LMOVE", "a", "b", "LEFT", "LEFT"),
]


def test_the_refusal_table_is_long_enough() -> None:
    assert len(REFUSED) >= 50


def test_no_destructive_or_blocking_command_reaches_the_server(server: RedisServer) -> None:
    admin = server.client()
    before = digest(server)
    calls_before = admin.info("commandstats")
    ctx = RunContext(30, 5)
    client = connect(server.uri, ctx)
    refused = []
    for command in REFUSED:
        with pytest.raises(Refused):
            client.execute_command(*command)
        with pytest.raises(Refused):
            client.pipeline().execute_command(*command)
        refused.append(command[0].lower())
    ctx.finish()
    stats = admin.info("commandstats")

    def calls(table: dict[str, Any], name: str) -> int:
        return int(table.get(f"cmdstat_{name}", {}).get("calls", 0))

    reached = sorted({name for name in refused if calls(stats, name) != calls(calls_before, name)})
    assert reached == []  # the server never executed any of them
    assert digest(server) == before  # and the data is byte for byte the same


def test_reads_the_server_flags_read_only_pass(server: RedisServer) -> None:
    ctx = RunContext(30, 5)
    client = connect(server.uri, ctx)
    assert isinstance(client, GuardedRedis)
    assert client.execute_command("SCARD", "discord:messages:user:1") >= 1
    assert client.execute_command("DUMP", "odd:list")  # read-only by the server's flags
    ctx.finish()


def test_a_transaction_pipeline_is_refused(server: RedisServer) -> None:
    ctx = RunContext(30, 5)
    with pytest.raises(Refused):
        connect(server.uri, ctx).pipeline(transaction=True)
    ctx.finish()


# --------------------------------------------------------------------------- bounded


def test_a_server_that_never_answers_ends_at_the_deadline() -> None:
    with SilentServer() as silent:
        started = time.monotonic()
        with pytest.raises(RunError) as caught:
            run(
                f"redis://:x@127.0.0.1:{silent.port}/0",
                {"op": "dbsize"},
                timeout=2,
                connect_timeout=2,
            )
        took = time.monotonic() - started
    assert "did not answer within the connect timeout of 2 s" in caught.value.title
    assert took < 3, f"took {took:.1f} s for a 2 s deadline"


def test_equal_timeouts_always_say_the_server_never_answered() -> None:
    """Both watchdogs fire at once; whichever the scheduler runs first, the message is one."""
    contexts = [RunContext(0.05, 0.05) for _ in range(20)]
    for ctx in contexts:
        stopped = threading.Event()
        ctx.on_stop(stopped.set)
        assert stopped.wait(10)
    titles = {ctx.stop_error().title for ctx in contexts}
    assert titles == {"The server did not answer within the connect timeout of 0.05 s."}


def test_a_deadline_after_the_server_answered_says_the_result_is_partial() -> None:
    ctx = RunContext(0.05, 0.05)
    ctx.connected()
    stopped = threading.Event()
    ctx.on_stop(stopped.set)
    assert stopped.wait(10)
    assert "passed its deadline of 0.05 s" in ctx.stop_error().title


def test_an_unreachable_server_is_a_clear_error_without_retries() -> None:
    started = time.monotonic()
    with pytest.raises(RunError) as caught:
        run(f"redis://127.0.0.1:{free_port()}/0", {"op": "dbsize"}, timeout=2, connect_timeout=1)
    assert "Connection refused" in str(caught.value) or "connecting" in str(caught.value)
    assert time.monotonic() - started < 3


def test_a_connection_dropped_mid_scan_leaves_a_partial_result(server: RedisServer) -> None:
    with DroppingProxy(server.port, after_bytes=8_000_000) as proxy:
        sink = Sink(None)
        ctx = RunContext(10, 5)
        with pytest.raises(RunError) as caught:
            RedisAdapter().run(
                RunRequest(
                    "t",
                    {"op": "snapshot", "pattern": "discord:messages:*"},
                    server.uri_via(proxy.port),
                ),
                ctx,
                sink,
            )
        ctx.finish()
    assert "connection" in caught.value.title.lower()
    assert 0 < sink.count < 6049  # what arrived is kept, and it is not all


def test_the_deadline_stops_a_slow_run_midway(server: RedisServer) -> None:
    with LatencyProxy(server.port, delay=0.4) as proxy:
        started = time.monotonic()
        sink = Sink(None)
        ctx = RunContext(2, 2)
        with pytest.raises(DeadlineExceeded):
            RedisAdapter().run(
                RunRequest(
                    "t",
                    {"op": "count_keys", "pattern": "*", "scan_count": 100},
                    server.uri_via(proxy.port),
                ),
                ctx,
                sink,
            )
        ctx.finish()
        took = time.monotonic() - started
    assert took < 3
    assert sink.count > 0  # partial, not nothing


def test_cancel_from_another_thread_unblocks_a_silent_read() -> None:
    with SilentServer() as silent:
        ctx = RunContext(60, 30)
        outcome: list[BaseException] = []

        def work() -> None:
            try:
                RedisAdapter().run(
                    RunRequest("t", {"op": "dbsize"}, f"redis://:x@127.0.0.1:{silent.port}/0"),
                    ctx,
                    Sink(None),
                )
            except BaseException as exc:
                outcome.append(exc)

        worker = threading.Thread(target=work)
        worker.start()
        assert silent.spoken.wait(10)  # the client has sent AUTH and is waiting
        ctx.cancel()
        worker.join(10)
        ctx.finish()
    assert not worker.is_alive()
    assert isinstance(outcome[0], Cancelled)


def test_progress_is_reported_while_scanning(server: RedisServer) -> None:
    seen = []
    run(server.uri, {"op": "count_keys", "pattern": "*", "scan_count": 1000}, progress=seen.append)
    assert seen and seen[-1].done == seen[-1].total
    assert "keys examined" in seen[-1].describe()


def test_cancel_during_progress_stops_the_run(server: RedisServer) -> None:
    ctx = RunContext(30, 5, lambda p: ctx.cancel())
    sink = Sink(None)
    with pytest.raises(Cancelled):
        RedisAdapter().run(
            RunRequest("t", {"op": "ttl_audit", "pattern": "*", "scan_count": 1000}, server.uri),
            ctx,
            sink,
        )
    ctx.finish()
