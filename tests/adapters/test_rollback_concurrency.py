"""A rollback restores what its run changed, and nothing newer.

Seed 002 was a restore that put a stale backup over newer data. Here a "collector"
writes to an item a guarded action touches, at each stage of a run: before the backup,
between the backup and the apply, during the apply (from the apply's own progress
callback, after its first batch: no sleeps) and between the apply and the rollback. Then
the run is rolled back the way a responder would, from its events (``playbook action
rollback``), and the test reads the *server's* data: the collector's write is there,
and everything else is as it was before the apply. A run that wrote nothing refuses to
roll back at all.

Every writer and operation: Redis (``rebuild_indexes``, ``drop_keys``) and PostgreSQL
(``upsert``) on real servers the tests start; MongoDB (``ensure_indexes``, ``dedupe``,
``convert_type``) on mongomock, and on a real server when ``PLAYBOOK_TEST_MONGODB_URI``
is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from bson import ObjectId
from bson.json_util import CANONICAL_JSON_OPTIONS, dumps
from mongo_support import database
from pgserver import PostgresServer
from servers import RedisServer, fingerprint

from playbook.service import Service
from playbook.service.actions import NothingToRollBack
from playbook.targets import Target

ROOT = Path(__file__).resolve().parents[2]

BEFORE = "before backup"
BETWEEN = "between backup and apply"
DURING = "during apply"
AFTER = "between apply and rollback"
STAGES = [BEFORE, BETWEEN, DURING, AFTER]

ACTIONS: dict[str, Any] = {
    "redis-rebuild": {
        "kind": "redis",
        "title": "Rebuild the test indexes",
        "target": "cache",
        "lock": {"name": "lock:test:rebuild"},
        "batch": 2,
        "do": {
            "operation": "rebuild_indexes",
            "source": "msg:*",
            "member_field": "id",
            "prefix": "idx",
            "indexes": {"user": "authorId", "project": "projectId"},
        },
    },
    "redis-drop": {
        "kind": "redis",
        "title": "Drop the old test indexes",
        "target": "cache",
        "batch": 1,
        "do": {"operation": "drop_keys", "pattern": "idx:old-1:*"},
    },
    "pg-upsert": {
        "kind": "postgres",
        "title": "Upsert two staff rows",
        "target": "db",
        "do": {
            "operation": "upsert",
            "table": "staff",
            "key": ["staff_id"],
            "rows": [
                {"staff_id": 2, "username": "ben2", "code": "B22"},
                {"staff_id": 3, "username": "cy", "code": "C33"},
            ],
        },
    },
    "mongo-indexes": {
        "kind": "mongo",
        "title": "Rebuild the posts' indexes",
        "target": "mongo",
        "do": {
            "operation": "ensure_indexes",
            "collection": "posts",
            "indexes": [{"keys": {"messageId": 1}, "unique": True}, {"keys": {"taskId": 1}}],
        },
    },
    "mongo-dedupe": {
        "kind": "mongo",
        "title": "Delete duplicate posts",
        "target": "mongo",
        "batch": 1,
        "do": {"operation": "dedupe", "collection": "posts", "field": "messageId"},
    },
    "mongo-convert": {
        "kind": "mongo",
        "title": "Store guildId as text",
        "target": "mongo",
        "batch": 1,
        "do": {
            "operation": "convert_type",
            "collection": "posts",
            "field": "guildId",
            "to": "string",
        },
    },
}


@pytest.fixture(scope="module")
def playbook_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stale-backup's incident shape with these actions (and no drill, no step links)."""
    text = yaml.safe_load((ROOT / "runbooks" / "stale-backup.yaml").read_text(encoding="utf-8"))
    text.pop("drill", None)
    for phase in [text["assessment"], *text["phases"]]:
        for step in phase.get("steps", []):
            step.pop("actions", None)
    text["actions"] = ACTIONS
    path = tmp_path_factory.mktemp("playbook") / "concurrency.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def redis_srv() -> Iterator[RedisServer]:
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


# --------------------------------------------------------------------------- scenarios


@dataclass
class Scenario:
    """One operation's data, its collector, and how to read the data back."""

    action: str
    unit: str
    """The apply's progress unit: the collector runs on its first report."""
    targets: dict[str, Target]
    snapshot: Callable[[], dict[Any, Any]]
    """The data the action and the collector touch, item by item."""
    collector: Callable[[str], list[Any]]
    """Writes, at a stage; returns the items it wrote (keys of :attr:`snapshot`)."""
    kept_at: dict[str, Callable[[list[Any]], list[str]]] = field(default_factory=dict)
    """Stage -> the names a rollback must report kept, from the items collected."""
    wrote: dict[str, bool] = field(default_factory=dict)
    """Stage -> whether the apply writes anything (False: nothing to roll back)."""


def redis_rebuild(server: RedisServer) -> Scenario:
    client = server.client()
    client.flushall()
    for n, author, project in ((1, "u1", "p1"), (2, "u1", "p1"), (3, "u2", "p1")):
        client.hset(f"msg:{n}", mapping={"id": n, "authorId": author, "projectId": project})
    client.sadd("idx:user:u1", 1)  # missing 2: the rebuild replaces it
    client.sadd("idx:project:p1", 1, 2, 3)
    client.sadd("idx:user:u9", 7)  # no record: the rebuild retires it; idx:user:u2 is created

    def snapshot() -> dict[Any, Any]:
        return {**fingerprint(client, "idx:[up]*"), **fingerprint(client, "msg:*")}

    def collect(stage: str) -> list[Any]:
        client.hset("msg:9", mapping={"id": 9, "authorId": "u1", "projectId": "p1"})
        client.sadd("idx:user:u1", 9)  # the collector indexes what it writes
        return [b"idx:user:u1", b"msg:9"]

    return Scenario(
        "redis-rebuild",
        "records indexed",
        {"cache": Target("cache", server.uri, "test")},
        snapshot,
        collect,
        kept_at={AFTER: lambda _items: ["idx:user:u1 changed after the apply"]},
        wrote={BEFORE: True, BETWEEN: False, DURING: False, AFTER: True},
    )


def redis_drop(server: RedisServer) -> Scenario:
    client = server.client()
    client.flushall()
    for name, member in (("project:p1", "a"), ("user:u1", "b"), ("user:u2", "c")):
        client.sadd(f"idx:old-1:{name}", member)

    def snapshot() -> dict[Any, Any]:
        return fingerprint(client, "idx:*")

    def collect(stage: str) -> list[Any]:
        client.sadd("idx:old-1:user:u1", "late")  # not deleted yet during the apply
        if stage != DURING:
            return [b"idx:old-1:user:u1"]
        client.sadd("idx:old-1:project:p1", "late")  # deleted by the first batch: re-created
        return [b"idx:old-1:user:u1", b"idx:old-1:project:p1"]

    return Scenario(
        "redis-drop",
        "keys deleted",
        {"cache": Target("cache", server.uri, "test")},
        snapshot,
        collect,
        kept_at={
            DURING: lambda _items: ["idx:old-1:project:p1 changed after the apply"],
            AFTER: lambda _items: ["idx:old-1:user:u1 changed after the apply"],
        },
        wrote=dict.fromkeys(STAGES, True),
    )


def pg_upsert(server: PostgresServer) -> Scenario:
    with server.connect() as conn:
        conn.execute("DROP TABLE IF EXISTS staff")
        conn.execute(
            "CREATE TABLE staff (staff_id bigint PRIMARY KEY, username text NOT NULL,"
            " code text NOT NULL, invites int NOT NULL DEFAULT 0)"
        )
        conn.execute("INSERT INTO staff VALUES (1, 'ana', 'A11', 4), (2, 'ben', 'B22', 5)")

    def snapshot() -> dict[Any, Any]:
        with server.connect() as conn:
            return {r[0]: r for r in conn.execute("SELECT * FROM staff").fetchall()}

    def collect(stage: str) -> list[Any]:
        with server.connect() as conn:
            if stage == DURING:  # row 3 is not there yet: the apply is about to insert it
                conn.execute("INSERT INTO staff VALUES (3, 'cy (collector)', 'C-c', 1)")
                return [3]
            if stage == AFTER:  # a column the upsert set
                conn.execute("UPDATE staff SET code = 'B-c' WHERE staff_id = 2")
            else:
                conn.execute("UPDATE staff SET username = 'ben (collector)' WHERE staff_id = 2")
        return [2]

    return Scenario(
        "pg-upsert",
        "rows written",
        {"db": Target("db", server.uri, "test")},
        snapshot,
        collect,
        kept_at={AFTER: lambda _items: ["staff staff_id=2 changed after the apply"]},
        wrote={BEFORE: True, BETWEEN: False, DURING: False, AFTER: True},
    )


def mongo_snapshot(db: Any) -> Callable[[], dict[Any, Any]]:
    def snapshot() -> dict[Any, Any]:
        docs = {
            dumps(d["_id"], json_options=CANONICAL_JSON_OPTIONS): dumps(
                d, json_options=CANONICAL_JSON_OPTIONS
            )
            for d in db.posts.find()
        }
        indexes = {
            f"index {i['name']}": (
                dumps(dict(i["key"])),
                bool(i.get("unique")),
                i.get("expireAfterSeconds"),
            )
            for i in db.posts.list_indexes()
        }
        return {**docs, **indexes}

    return snapshot


def oid(n: int) -> ObjectId:
    return ObjectId(f"{n:024x}")


def mongo_indexes(db: Any, targets: dict[str, Target]) -> Scenario:
    db.posts.insert_many(
        [{"_id": oid(n), "messageId": f"m{n}", "taskId": f"t{n % 2}"} for n in range(1, 5)]
    )
    db.posts.create_index([("messageId", 1)], name="messageId_1")  # not unique: replaced

    def collect(stage: str) -> list[Any]:
        if stage in (BEFORE, BETWEEN):  # someone else changes the index apply replaces
            db.posts.drop_index("messageId_1")
            db.posts.create_index([("messageId", 1)], name="messageId_1", expireAfterSeconds=3600)
            return ["index messageId_1"]
        if stage == AFTER:  # someone else rebuilds the run's new index their way
            db.posts.drop_index("taskId_1")
        db.posts.create_index([("taskId", 1)], name="taskId_1", expireAfterSeconds=60)
        return ["index taskId_1"]

    return Scenario(
        "mongo-indexes",
        "indexes built",
        targets,
        mongo_snapshot(db),
        collect,
        kept_at={AFTER: lambda _items: ["index taskId_1 on posts changed after the apply"]},
        wrote={BEFORE: True, BETWEEN: False, DURING: True, AFTER: True},
    )


def mongo_dedupe(db: Any, targets: dict[str, Target]) -> Scenario:
    groups = {1: "m1", 2: "m1", 3: "m1", 4: "m2", 5: "m2", 6: "m3"}
    db.posts.insert_many([{"_id": oid(n), "messageId": m, "n": n} for n, m in groups.items()])
    doomed = [oid(2), oid(3), oid(5)]  # all but the oldest of each group

    def key(_id: ObjectId) -> str:
        return dumps(_id, json_options=CANONICAL_JSON_OPTIONS)

    def collect(stage: str) -> list[Any]:
        there = [d["_id"] for d in db.posts.find({"_id": {"$in": doomed}})]
        if stage == AFTER:  # a retried insert brings one back, as the collector wrote it
            db.posts.insert_one({"_id": oid(2), "messageId": "m1", "n": 2, "retried": True})
            return [key(oid(2))]
        if stage != DURING:
            db.posts.update_one({"_id": oid(2)}, {"$set": {"seen": True}})
            return [key(oid(2))]
        gone = next(i for i in doomed if i not in there)  # the first batch's
        pending = there[0]
        db.posts.insert_one({"_id": gone, "messageId": "m-retry", "retried": True})
        db.posts.update_one({"_id": pending}, {"$set": {"seen": True}})
        return [key(gone), key(pending)]

    def kept(items: list[Any]) -> list[str]:
        return [f"posts {items[0]} changed after the apply"]

    return Scenario(
        "mongo-dedupe",
        "documents deleted",
        targets,
        mongo_snapshot(db),
        collect,
        kept_at={DURING: kept, AFTER: kept},
        wrote=dict.fromkeys(STAGES, True),
    )


def mongo_convert(db: Any, targets: dict[str, Target]) -> Scenario:
    db.posts.insert_many(
        [
            {"_id": oid(1), "guildId": 123},
            {"_id": oid(2), "guildId": 456},
            {"_id": oid(3), "guildId": "789"},
        ]
    )

    def key(n: int) -> str:
        return dumps(oid(n), json_options=CANONICAL_JSON_OPTIONS)

    def collect(stage: str) -> list[Any]:
        if stage in (BEFORE, BETWEEN):  # the writer that stores numbers, still running
            db.posts.update_one({"_id": oid(1)}, {"$set": {"guildId": 124}})
            return [key(1)]
        db.posts.update_one({"_id": oid(1)}, {"$set": {"guildId": "123 (edited)"}})
        if stage == AFTER:
            return [key(1)]
        db.posts.update_one({"_id": oid(2)}, {"$set": {"guildId": 999}})  # not converted yet
        return [key(1), key(2)]

    def kept(items: list[Any]) -> list[str]:
        return [f"posts {items[0]} changed after the apply"]

    return Scenario(
        "mongo-convert",
        "documents converted",
        targets,
        mongo_snapshot(db),
        collect,
        kept_at={DURING: kept, AFTER: kept},
        wrote=dict.fromkeys(STAGES, True),
    )


MONGO = {
    "mongo-indexes": mongo_indexes,
    "mongo-dedupe": mongo_dedupe,
    "mongo-convert": mongo_convert,
}


# --------------------------------------------------------------------------- the test


def play(service: Service, incident: str, sc: Scenario, stage: str) -> dict[str, Any]:
    """One guarded run with the collector writing at ``stage``; then, as a responder
    would later, ``action rollback`` of it. What was collected and what the rollback said."""
    collected: dict[Any, Any] = {}

    def progress(p: Any) -> None:
        if stage == DURING and p.unit == sc.unit and not collected:
            items = sc.collector(stage)
            now = sc.snapshot()
            collected.update({item: now.get(item) for item in items})

    run = service.start_action(incident, sc.action, {}, sc.targets, progress)
    run.dry_run()
    if stage == BEFORE:
        items = sc.collector(stage)
    run.backup()
    if stage == BETWEEN:
        items = sc.collector(stage)
    if stage in (BEFORE, BETWEEN):
        now = sc.snapshot()
        collected.update({item: now.get(item) for item in items})
    before_apply = sc.snapshot()
    run.confirm(run.phrase)
    outcome = run.apply()
    if stage == DURING:
        assert collected, "the collector never ran during the apply"
    if stage == AFTER:
        items = sc.collector(stage)
        now = sc.snapshot()
        collected.update({item: now.get(item) for item in items})
    status = service.get(incident).state.actions[run.run_id]
    result: dict[str, Any] = {
        "wrote": outcome.wrote,
        "can_roll_back": status.can_roll_back,
        "before_apply": before_apply,
        "collected": collected,
        "kept": None,
    }
    if not outcome.wrote:
        with pytest.raises(NothingToRollBack):
            service.resume_action(incident, run.run_id, sc.targets)
        return result
    later = service.resume_action(incident, run.run_id, sc.targets)
    later.rollback(later.phrase)
    result["kept"] = later.kept
    event = service.get(incident).state.actions[run.run_id].stage("rollback")
    assert event is not None and event["numbers"]["kept"] == len(later.kept)
    assert event.get("kept_items", []) == later.kept
    return result


def check(sc: Scenario, stage: str, result: dict[str, Any]) -> None:
    assert result["wrote"] is sc.wrote[stage]
    assert result["can_roll_back"] is sc.wrote[stage]  # no offer when nothing was written
    collected = result["collected"]
    assert collected and all(v is not None for v in collected.values()), collected
    after = sc.snapshot()
    for item, value in collected.items():  # the collector's write, on the server
        assert after.get(item) == value, f"the collector's write to {item!r} was lost"
    # Everything else as it was before the apply: the run's own changes undone.
    expected = {**result["before_apply"], **collected}
    assert after == expected
    wanted = sc.kept_at.get(stage, lambda _i: [])(list(collected))
    assert (result["kept"] or []) == wanted


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("operation", ["redis-rebuild", "redis-drop"])
def test_redis_rollback_keeps_the_collectors_write(
    sqlite_service: Service, playbook_file: Path, redis_srv: RedisServer, operation: str, stage: str
) -> None:
    sc = (redis_rebuild if operation == "redis-rebuild" else redis_drop)(redis_srv)
    incident = sqlite_service.open(playbook_file, f"{operation} {stage}").id
    result = play(sqlite_service, incident, sc, stage)
    check(sc, stage, result)
    with redis_srv.client() as client:  # nothing of the run's own left behind
        leftovers = [
            k for k in client.scan_iter(match="idx:[vo]*") if not k.startswith(b"idx:old-1:")
        ]
    if operation == "redis-rebuild" and stage == AFTER:
        # the kept index's old version stays beside it: it is what was there before
        assert [k.split(b":", 2)[2] for k in leftovers] == [b"user:u1"]
    else:
        assert leftovers == []


@pytest.mark.parametrize("stage", STAGES)
def test_postgres_rollback_keeps_the_collectors_write(
    sqlite_service: Service, playbook_file: Path, pg: PostgresServer, stage: str
) -> None:
    sc = pg_upsert(pg)
    incident = sqlite_service.open(playbook_file, f"upsert {stage}").id
    check(sc, stage, play(sqlite_service, incident, sc, stage))


@pytest.mark.parametrize("kind", ["mongomock", "real"])
@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("operation", list(MONGO))
def test_mongo_rollback_keeps_the_collectors_write(
    sqlite_service: Service,
    playbook_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    operation: str,
    stage: str,
) -> None:
    with database(kind, "mongodb://bot:pw@mock.invalid:27017/app", "app", monkeypatch) as (
        db,
        uri,
    ):
        sc = MONGO[operation](db, {"mongo": Target("mongo", uri, "test")})
        incident = sqlite_service.open(playbook_file, f"{operation} {stage}").id
        check(sc, stage, play(sqlite_service, incident, sc, stage))


def test_a_writer_that_records_nothing_rolls_back_only_with_force(
    sqlite_service: Service,
    playbook_file: Path,
    redis_srv: RedisServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A third-party writer from before fingerprints (``apply`` and ``rollback`` without
    ``written`` and ``undo``) still applies; its rollback cannot tell its changes from
    newer ones, so only a forced one runs."""
    from playbook.adapters import plugins
    from playbook.adapters.redis.writer import RedisWriter
    from playbook.errors import Conflict
    from playbook.service.actions import ConfirmationMismatch

    class OldWriter(RedisWriter):
        records_writes = False

        def apply(self, request: Any, plan: Any, ctx: Any) -> dict[str, int]:  # type: ignore[override]
            return super().apply(request, plan, ctx)

        def rollback(self, request: Any, backup: Any, ctx: Any) -> dict[str, int]:  # type: ignore[override]
            return super().rollback(request, backup, ctx)

    monkeypatch.setattr(plugins, "load_writer", lambda kind: OldWriter())
    sc = redis_drop(redis_srv)
    before = sc.snapshot()
    incident = sqlite_service.open(playbook_file, "old writer").id
    run = sqlite_service.start_action(incident, sc.action, {}, sc.targets)
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    assert run.apply().wrote  # it cannot say otherwise
    assert sc.snapshot() == {}

    with pytest.raises(Conflict, match="did not record what it wrote"):
        run.rollback()
    with pytest.raises(ConfirmationMismatch):
        run.rollback("cache", force=True)
    assert sc.snapshot() == {}
    run.rollback("force cache", force=True)
    assert sc.snapshot() == before
