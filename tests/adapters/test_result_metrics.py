"""Every built-in kind says which numbers its run can give, and a run gives exactly those.

`playbook validate` checks an expectation's metric against the kind's
``result_metrics()``; a declaration that a run disagreed with would either reject a good
playbook or pass a misspelt metric. So each kind runs against a real server (Redis and
PostgreSQL started here, HTTP served here, mongomock, a real program) and the numbers it
returned are compared with the declaration both ways: every number returned is declared,
and every declared name is returned, save the alternatives the test names (an age or an
"ahead", a column's min/max or its non-finite count).
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml
from numbers_harness import BASE, Harness
from pgserver import PostgresServer
from servers import redis_server

from playbook.adapters.base import RunContext, RunRequest, Sink
from playbook.adapters.http.reader import HttpAdapter
from playbook.adapters.mongo.reader import MongoAdapter
from playbook.adapters.plugins import load_playbook, playbook_model
from playbook.adapters.postgres.reader import PostgresAdapter
from playbook.adapters.prometheus.reader import PrometheusAdapter
from playbook.adapters.redis.models import SNAPSHOT_TYPES
from playbook.adapters.redis.reader import RedisAdapter
from playbook.adapters.redis.values import _CARDINALITY
from playbook.service.authoring import is_declared

NOW = datetime.now(UTC)


def declared(diagnostic: dict[str, Any]) -> frozenset[str] | None:
    """``result_metrics()`` of a diagnostic as the playbook model reads it."""
    book = {**BASE, "diagnostics": {"check": diagnostic}}
    return playbook_model().model_validate(book).diagnostics["check"].result_metrics()


def agree(got: dict[str, Any], names: frozenset[str] | None, absent: set[str]) -> None:
    """Every number ``got`` is declared; every declared name was got, but ``absent``."""
    assert names is not None
    assert not [m for m in got if not is_declared(m, names)], (sorted(got), sorted(names))
    assert not absent & set(got), absent & set(got)
    missing = {n for n in names if not n.endswith("*")} - set(got) - absent
    assert not missing, missing
    for pattern in (n for n in names if n.endswith("*")):
        assert any(m.startswith(pattern[:-1]) for m in got), pattern


def run(adapter: Any, query: dict[str, Any], uri: str, **options: Any) -> dict[str, Any]:
    ctx = RunContext(20, 5)
    try:
        return adapter.run(RunRequest("check", query, uri, options=options), ctx, Sink(None))
    finally:
        ctx.finish()


# --------------------------------------------------------------------------- http


class Answers(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.startswith("/api/v1/query"):
            value = "NaN" if "nan" in self.path else "0.93"
            body: Any = {
                "status": "success",
                "data": {
                    "resultType": "vector",
                    "result": [{"metric": {"job": "node"}, "value": [time.time(), value]}],
                },
            }
        else:
            ahead = NOW + timedelta(hours=1)
            body = {"at": (NOW - timedelta(minutes=5)).isoformat(), "later": ahead.isoformat()}
            body |= {"n": 3, "text_n": "7%", "items": [1, 2]}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture(scope="module")
def web() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_http_returns_what_it_declares(web: str) -> None:
    pick = {
        "at": "at",
        "later": "later",
        "n": "n",
        "text_n": {"path": "text_n", "as": "number", "strip": "%"},
        "items": "items.#",
    }
    diagnostic = {"kind": "http", "title": "t", "target": "api", "query": {"pick": pick}}
    got = run(HttpAdapter(), {"path": "/", "pick": pick}, web)
    # `at` is five minutes old, `later` an hour ahead; `n` and `items` are no times.
    absent = {"at_ahead_seconds", "later_age_seconds"}
    absent |= {f"{p}_{w}_seconds" for p in ("n", "items") for w in ("age", "ahead")}
    agree(got, declared(diagnostic), absent)
    assert "text_n_age_seconds" not in declared(diagnostic)  # a number is never a time


def test_prometheus_returns_what_it_declares(web: str) -> None:
    diagnostic = {"kind": "prometheus", "title": "t", "target": "m", "query": {"promql": "up"}}
    names = declared(diagnostic)
    agree(run(PrometheusAdapter(), {"promql": "up"}, web), names, {"value_non_finite"})
    nan = run(PrometheusAdapter(), {"promql": "nan"}, web)
    agree(nan, names, {"value", "value_min", "value_max"})


# --------------------------------------------------------------------------- redis


REDIS_QUERIES: dict[str, tuple[dict[str, Any], set[str]]] = {
    "count_keys": ({"pattern": "k:*"}, set()),
    "baseline": ({"pattern": "k:*", "baseline": 4}, set()),
    "collection_sizes": ({"pattern": "k:*"}, set()),
    "ttl_audit": ({"pattern": "k:*"}, set()),
    "freshness": ({"key": "hb"}, {"ahead_seconds"}),
    "dbsize": ({}, set()),
    "snapshot": ({"pattern": "k:*"}, {"streamed_keys", "other_keys"}),
}


def test_redis_returns_what_it_declares() -> None:
    with redis_server() as server:
        client = server.client()
        client.set("k:string", "v", ex=600)
        client.rpush("k:list", "a", "b")
        client.sadd("k:set", "a")
        client.zadd("k:zset", {"a": 1})
        client.hset("k:hash", mapping={"a": "1"})
        client.xadd("k:stream", {"a": "1"})
        client.set("hb", str(int(time.time())))
        for op, (query, absent) in REDIS_QUERIES.items():
            diagnostic = {
                "kind": "redis",
                "title": "t",
                "target": "c",
                "query": {"op": op, **query},
            }
            agree(
                run(RedisAdapter(), {"op": op, **query}, server.uri), declared(diagnostic), absent
            )
        # INFO's fields are the server's: said unknown, not guessed
        assert (
            declared({"kind": "redis", "title": "t", "target": "c", "query": {"op": "info"}})
            is None
        )
    assert set(SNAPSHOT_TYPES) == {"string", *_CARDINALITY}  # the types the snapshot reads


# --------------------------------------------------------------------------- postgres


SQL = (
    "SELECT 2 AS n, s.joined - interval '1 s' AS newest, now() + interval '1 hour' AS planned,"
    " s.joined, interval '90 s' AS wait, true AS ok, 'x' AS label, 1.5 AS n"
    " FROM (VALUES (now() - interval '5 minutes')) AS s(joined)"
)


def test_postgres_returns_what_it_declares() -> None:
    diagnostic = {"kind": "postgres", "title": "t", "target": "db", "query": {"sql": SQL}}
    names = declared(diagnostic)
    with PostgresServer() as pg:
        got = run(PostgresAdapter(), {"sql": SQL}, pg.uri, params={}, target={})
        values = run(PostgresAdapter(), {"sql": "VALUES (1, 'a')"}, pg.uri, params={}, target={})
    # times: newest and joined are past, planned ahead; the rest are no times, label no number
    absent = {"newest_ahead_seconds", "joined_ahead_seconds", "planned_age_seconds", "label"}
    absent |= {
        f"{c}_{w}_seconds" for c in ("n", "n_2", "wait", "ok", "label") for w in ("age", "ahead")
    }
    agree(got, names, absent)
    assert got["n_2"] == 1.5  # a repeated name is numbered as the declaration numbers it
    column2 = {f"column2{s}" for s in ("", "_age_seconds", "_ahead_seconds")}
    absent = {"column1_age_seconds", "column1_ahead_seconds"} | column2
    agree(values, declared({**diagnostic, "query": {"sql": "VALUES (1, 'a')"}}), absent)


@pytest.mark.parametrize(
    "sql", ["SELECT * FROM t", "SELECT count(*) FROM t", "TABLE t", "SELECT t.* FROM t"]
)
def test_postgres_columns_only_the_server_can_name_are_unknown(sql: str) -> None:
    assert (
        declared({"kind": "postgres", "title": "t", "target": "db", "query": {"sql": sql}}) is None
    )


# --------------------------------------------------------------------------- mongo


# `distinct` is left out: mongomock's takes no maxTimeMS, which the reader sends (its
# numbers, count and rows, are those of aggregate). mongomock has no `command` either:
# the stats operations are checked on a reply below.
MONGO_QUERIES: dict[str, dict[str, Any]] = {
    "find": {"collection": "staff", "filter": {}},
    "count": {"collection": "staff"},
    "aggregate": {"collection": "staff", "pipeline": [{"$match": {}}]},
    "list_indexes": {"collection": "staff"},
}


@pytest.mark.parametrize("op", MONGO_QUERIES)
def test_mongo_returns_what_it_declares(op: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from mongo_support import database

    with database("mongomock", "mongodb://127.0.0.1/app", "app", monkeypatch) as (db, uri):
        db.staff.insert_many([{"name": "ana"}, {"name": "bo"}])
        db.staff.create_index("name", unique=True)
        query = {"op": op, **MONGO_QUERIES[op]}
        got = run(MongoAdapter(), query, uri)
    names = declared({"kind": "mongo", "title": "t", "target": "m", "query": query})
    agree(got, names, set())


@pytest.mark.parametrize("op", ["collection_stats", "db_stats", "command"])
def test_mongo_stats_keep_exactly_the_declared_fields(op: str) -> None:
    """A reply with every field the server may send and more: the run keeps the declared
    ones (the shared STATS_METRICS), nothing else."""
    from playbook.adapters.mongo.models import STATS_METRICS
    from playbook.adapters.mongo.readonly import Bounded

    reply = {name: 1 for name in STATS_METRICS} | {"ok": 1.0, "ns": "app.staff", "scaleFactor": 1}
    reply["wiredTiger"] = {"cache": {"bytes": 5}}

    class Db:
        def command(self, document: dict[str, Any]) -> dict[str, Any]:
            return reply

    bounded = Bounded({}, 10, 1000)
    adapter = MongoAdapter()
    adapter._line = json.dumps  # set by run() in real use
    got = adapter._stats(Db(), {"dbStats": 1}, bounded, Sink(None))
    query = {"op": op, "collection": "staff", "command": {"dbStats": 1}}
    agree(got, declared({"kind": "mongo", "title": "t", "target": "m", "query": query}), set())


# --------------------------------------------------------------------------- shell


def test_shell_returns_what_it_declares(tmp_path: Path) -> None:
    printf = shutil.which("printf", path="/usr/bin:/bin")
    diagnostic = {
        "kind": "shell",
        "title": "prints",
        "target": "local",
        "timeout": "20s",
        "argv": [printf, "%s", "Use% Mount\n95% /var\n"],
        "extract": {
            "columns": ["use_percent", "mount"],
            "skip": 1,
            "fields": {"use_percent": {"as": "number", "strip": "%"}},
        },
    }
    payload = Harness(tmp_path).run(diagnostic)
    assert payload["verdict"] == "pass", payload
    # remote, lines_cut, background_killed and stderr say what did not happen here
    absent = {"remote", "lines_cut", "background_killed", "stderr", "use_percent_non_finite"}
    agree(payload["metrics"], declared(diagnostic), absent)
    assert "mount" not in declared(diagnostic)  # text, no number


# --------------------------------------------------------------------------- validate


KINDS: dict[str, dict[str, Any]] = {
    "http": {"kind": "http", "target": "api", "query": {"pick": {"updated": "u"}}},
    "prometheus": {"kind": "prometheus", "target": "m", "query": {"promql": "up"}},
    "redis": {"kind": "redis", "target": "c", "query": {"op": "freshness", "key": "hb"}},
    "postgres": {"kind": "postgres", "target": "db", "query": {"sql": "SELECT 1 AS lag"}},
    "mongo": {"kind": "mongo", "target": "m", "query": {"op": "count", "collection": "c"}},
    "shell": {"kind": "shell", "target": "local", "argv": ["/bin/true"]},
}
MISSPELT = {
    "http": "updated_age_second",
    "prometheus": "valu",
    "redis": "age_secs",
    "postgres": "lagg",
    "mongo": "cnt",
    "shell": "exitcode",
}


@pytest.mark.parametrize("kind", KINDS)
def test_validate_names_a_misspelt_metric_with_file_line_and_column(
    cli: Any, tmp_path: Path, kind: str
) -> None:
    good = "count" if kind in ("mongo",) else "exit_code" if kind == "shell" else None
    expect = [{"metric": MISSPELT[kind], "op": "le", "value": 60}]
    if good:
        expect.insert(0, {"metric": good, "op": "ge", "value": 0})
    diagnostic = {**KINDS[kind], "title": "t", "expect": expect}
    path = tmp_path / f"{kind}.yaml"
    path.write_text(yaml.safe_dump({**BASE, "diagnostics": {"check": diagnostic}}, sort_keys=False))
    load_playbook(path)  # the playbook itself is valid: only the metric is wrong
    result = cli("validate", str(path))
    assert result.exit_code == 1, result.output
    lines = path.read_text(encoding="utf-8").splitlines()
    line = next(n for n, text in enumerate(lines, 1) if f"metric: {MISSPELT[kind]}" in text)
    column = lines[line - 1].index(MISSPELT[kind]) + 1
    index = len(expect) - 1
    assert (
        f"{path}:{line}:{column}: diagnostics.check.expect[{index}].metric: "
        f"'{MISSPELT[kind]}' is not a metric this {kind} diagnostic returns"
    ) in result.output
    assert "not declared by their kind" not in result.output
    if good:  # the right name beside it is not reported
        assert f"'{good}' is not a metric" not in result.output
