"""Mongo diagnostics: the playbook's own queries on data shaped like seed 004.

Every case runs against mongomock, and against a real MongoDB too when
``PLAYBOOK_TEST_MONGODB_URI`` is set (it gets a database of its own and drops it).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from bson.json_util import dumps
from helpers import RUNBOOK
from mongo_support import database

from playbook.adapters.base import Refused, RunContext, RunRequest, Sink
from playbook.adapters.mongo.reader import MongoAdapter, to_bson
from playbook.adapters.plugins import load_playbook as load
from playbook.core.diagnostics import evaluate, resolve, substitute

INCIDENT = datetime(2026, 3, 14, 2, 10, tzinfo=UTC)
CONV = [ObjectId() for _ in range(3)]


def seed(db: Any) -> None:
    """Users, conversations and messages as in seed 004, with known faults planted."""
    db.users.insert_many(
        [
            {"_id": 1, "email": "ana@example.com", "createdAt": INCIDENT - timedelta(days=9)},
            {"_id": 2, "email": "ben@example.com", "createdAt": INCIDENT, "lastLogin": INCIDENT},
            {"_id": 3, "email": "not-an-address", "createdAt": INCIDENT},  # bad email
            {"_id": 4, "email": "cy@example.com", "createdAt": "2026-03-01"},  # string date
            {"_id": 5, "email": "ana@example.com", "createdAt": INCIDENT},  # duplicate email
            {"_id": 6, "email": "\x1b[31mdee@example.com", "createdAt": INCIDENT, "lastLogin": 7},
        ]
    )
    db.users.create_index("createdAt")
    db.conversations.insert_many([{"_id": c} for c in CONV])
    db.messages.insert_many(
        [
            {"_id": n, "conversationId": CONV[n % 3], "parentId": None if n == 4 else n - 1}
            for n in range(1, 11)
        ]
        + [{"_id": 99, "conversationId": ObjectId()}]  # orphan
    )
    db.messages.update_one({"_id": 1}, {"$unset": {"parentId": ""}})
    db.messages.update_many(
        {"_id": {"$in": [7, 8]}}, {"$set": {"deletedAt": INCIDENT + timedelta(minutes=5)}}
    )
    db.messages.update_many({}, {"$set": {"lastUpdated": INCIDENT - timedelta(hours=1)}})
    db.messages.update_one({"_id": 10}, {"$set": {"lastUpdated": INCIDENT + timedelta(hours=1)}})
    db.auditLog.insert_many(
        [
            {
                "operation": "delete",
                "collection": "messages",
                "timestamp": INCIDENT + timedelta(minutes=m),
            }
            for m in (5, 6)
        ]
        + [
            {
                "operation": "delete",
                "collection": "users",
                "timestamp": INCIDENT + timedelta(minutes=7),
            }
        ]
    )


def checksum(db: Any) -> str:
    parts = []
    for name in sorted(db.list_collection_names()):
        docs = sorted(dumps(d, sort_keys=True) for d in db[name].find())
        parts.append(name + "".join(docs))
    return hashlib.sha256("".join(parts).encode()).hexdigest()


@pytest.fixture(params=["mongomock", "real"])
def mongo(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, str]]:
    """(database, uri) with the seed data; the adapter's client factory points at it."""
    with database(
        request.param, "mongodb://user:secret@mock.invalid:27017/app", "app", monkeypatch
    ) as (db, uri):
        seed(db)
        yield db, uri


def run_diag(uri: str, diagnostic_id: str, **given: object) -> tuple[dict[str, Any], Sink, str]:
    pb = load(RUNBOOK).playbook
    d = pb.diagnostics[diagnostic_id]
    values = resolve(d.params, given)
    query = substitute(d.query.model_dump(by_alias=True, exclude_none=True), values)
    request = RunRequest(diagnostic_id, query, uri)  # type: ignore[arg-type]
    adapter = MongoAdapter()
    adapter.check(request)
    ctx = RunContext(float(d.timeout), float(d.connect_timeout))
    sink = Sink(None)
    try:
        metrics = adapter.run(request, ctx, sink)
    finally:
        ctx.finish()
    return metrics, sink, evaluate(d.expect, metrics).verdict


SINCE = "2026-03-14T02:10:00Z"


@pytest.mark.parametrize(
    ("diagnostic", "given", "count", "verdict"),
    [
        ("orphaned-references", {}, 1, "fail"),
        ("invalid-user-types", {}, 3, "fail"),
        ("duplicate-keys", {"collection": "users", "field": "email"}, 1, "fail"),
        ("duplicate-keys", {"collection": "messages", "field": "conversationId"}, 3, "fail"),
        ("orphaned-documents", {"collection": "messages"}, 1, "fail"),
        ("missing-field", {"collection": "messages", "field": "parentId"}, 2, "fail"),
        ("wrong-type", {"collection": "users", "field": "createdAt"}, 1, "fail"),
        ("deleted-after", {"collection": "messages", "since": SINCE}, 2, "warn"),
        ("audit-log-deletions", {"collection": "messages", "since": SINCE}, 2, "warn"),
        ("audit-log-deletions", {"collection": "conversations", "since": SINCE}, 0, "pass"),
        ("updated-after-sync", {"collection": "messages", "since": SINCE}, 1, "warn"),
        ("list-indexes", {"collection": "users"}, 2, "pass"),
    ],
)
def test_the_playbooks_queries_find_what_was_planted(
    mongo: tuple[Any, str], diagnostic: str, given: dict[str, object], count: int, verdict: str
) -> None:
    db, uri = mongo
    before = checksum(db)
    metrics, _, got = run_diag(uri, diagnostic, **given)
    assert metrics["count"] == count
    assert got == verdict
    assert checksum(db) == before


def test_ids_in_a_list_parameter_are_object_ids(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    db.sync.insert_many([{"_id": c} for c in CONV])
    metrics, sink, verdict = run_diag(
        uri,
        "missing-in-secondary",
        collection="sync",
        secondary_ids=",".join(str(c) for c in CONV[:2]),
    )
    assert metrics["count"] == 1 and verdict == "fail"
    assert sink.rows == [{"_id": {"$oid": str(CONV[2])}}]  # Extended JSON, not a repr


def test_dates_come_back_as_extended_json(mongo: tuple[Any, str]) -> None:
    _, uri = mongo
    _, sink, _ = run_diag(uri, "deleted-after", collection="messages", since=SINCE)
    assert sink.rows[0]["deletedAt"] == {"$date": "2026-03-14T02:15:00Z"}


def test_a_value_is_never_an_operator(mongo: tuple[Any, str]) -> None:
    """A parameter holding '{"$ne": null}' is compared as text, so it matches nothing."""
    _, uri = mongo
    metrics, _, _ = run_diag(uri, "duplicate-keys", collection="users", field="email")
    assert metrics["count"] == 1
    with pytest.raises(Exception, match="field name"):
        run_diag(uri, "missing-field", collection="messages", field='{"$ne": null}')


def test_find_says_how_many_match_beyond_the_limit(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    db.bulk.insert_many([{"n": n, "x": None} for n in range(250)])
    metrics, sink, _ = run_diag(uri, "missing-field", collection="bulk", field="absent")
    assert metrics["rows"] == 100 and metrics["count"] == 250
    assert sink.count == 100


def test_to_bson_keeps_structure() -> None:
    from playbook.core.values import ObjectIdValue

    oid = "65f2a0c0e4b0a1b2c3d4e5f6"
    assert to_bson({"a": [ObjectIdValue(oid)]}) == {"a": [ObjectId(oid)]}


def test_a_write_is_refused_before_any_client_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []
    monkeypatch.setattr(MongoAdapter, "client_factory", staticmethod(lambda *a: made.append(a)))
    adapter = MongoAdapter()
    for query in (
        {"op": "aggregate", "collection": "c", "pipeline": [{"$out": "other"}]},
        {"op": "command", "command": {"dropDatabase": 1}},
        {"op": "find", "collection": "c", "filter": {"$where": "sleep(1000)"}},
    ):
        request = RunRequest("t", query, "mongodb://x")
        with pytest.raises(Refused):
            adapter.check(request)
        ctx = RunContext(5, 1)
        with pytest.raises(Refused):
            adapter.run(request, ctx, Sink(None))
        ctx.finish()
    assert made == []


@pytest.mark.parametrize("server", ["silent", "refused"])
def test_an_unanswering_or_absent_mongo_ends_within_the_deadline(server: str) -> None:
    """pymongo's own defaults would wait 30 s for server selection; the run waits ~2 s."""
    from servers import SilentServer, free_port

    from playbook.adapters.base import RunError

    with SilentServer() as silent:
        port = silent.port if server == "silent" else free_port()
        request = RunRequest(
            "t", {"op": "count", "collection": "users"}, f"mongodb://u:pw@127.0.0.1:{port}/app"
        )
        ctx = RunContext(4, 2)
        started = time.monotonic()
        with pytest.raises(RunError) as caught:
            MongoAdapter().run(request, ctx, Sink(None))
        ctx.finish()
        took = time.monotonic() - started
    assert "could not be reached" in caught.value.title
    assert ":pw@" not in str(caught.value)
    assert took < 4 + 1, f"took {took:.1f} s"
    _let_pymongo_threads_finish()


def _let_pymongo_threads_finish() -> None:
    """pymongo's monitor, stuck connecting to the silent server, drops its socket
    unclosed when its own timeout ends; collect it here rather than in whichever later
    test the garbage collector happens to run in (a ResourceWarning that is pymongo's)."""
    import gc
    import threading
    import warnings

    for thread in threading.enumerate():
        if thread.name.startswith("pymongo"):
            thread.join(10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()
