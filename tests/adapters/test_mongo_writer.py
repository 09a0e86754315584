"""The mongo writer, stage by stage, on data shaped like seed 004 (the Discord bot schema).

Every case runs against mongomock, and against a real MongoDB too when
``PLAYBOOK_TEST_MONGODB_URI`` is set (each test gets a database of its own and drops it).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mongo_support
import pytest
from bson import Int64, ObjectId
from mongo_support import database

from playbook.adapters import plugins
from playbook.adapters.base import Cancelled, Progress, RunContext, RunError, Sink
from playbook.adapters.mongo.reader import MongoAdapter
from playbook.adapters.mongo.writer import LOCKS, MongoLock, MongoWriter, convert
from playbook.adapters.writers import LockHeld, Plan, WriteRequest, read_backup

T0 = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)
SNOWFLAKE = "1100000000000000001"
NOW = datetime.now(UTC).replace(microsecond=0)
"""Interaction logs are dated from now: their TTL index would expire older ones."""


def oid(n: int) -> ObjectId:
    """Ids that sort by n, as ObjectIds made one after another do."""
    return ObjectId(f"65f2a0c0{n:016x}")


def seed(db: Any) -> None:
    """Task posts, server mappings and interaction logs as seed 004 describes them, with
    its promised indexes; duplicates and wrong types are planted by each test."""
    db.discordtaskposts.insert_many(
        [
            {
                "_id": oid(n),
                "taskId": f"task-{n}",
                "guildId": f"9000{n % 2}",
                "messageId": f"m-{n}",
                "taskData": {"title": f"Task {n}", "points": Int64(2**40 + n), "weight": 1.0},
                "createdAt": T0 - timedelta(days=n),
            }
            for n in range(1, 7)
        ]
    )
    db.discordtaskposts.create_index([("guildId", 1)], name="guildId_1")
    db.discordservermappings.insert_many(
        [
            {
                "_id": oid(100 + n),
                "guildId": f"9000{n}",
                "guildInfo": {"name": f"Guild {n}", "memberCount": 10 * (n + 1)},
            }
            for n in range(2)
        ]
    )
    db.discordservermappings.create_index([("guildId", 1)], name="guildId_1", unique=True)
    db.discordinteractionlogs.insert_many(
        [
            {
                "_id": oid(200 + n),
                "interactionId": f"i-{n}",
                "timing": {"timestamp": NOW - timedelta(minutes=n)},
            }
            for n in range(3)
        ]
    )
    db.discordinteractionlogs.create_index([("interactionId", 1)], name="interactionId_1")
    db.discordinteractionlogs.create_index(
        [("timing.timestamp", 1)], name="timing.timestamp_1", expireAfterSeconds=3600
    )


def dump(db: Any) -> dict[str, Any]:
    """The whole database but the lock collection, which a guarded run creates."""
    return mongo_support.dump(db, frozenset({LOCKS}))


@pytest.fixture(params=["mongomock", "real"])
def mongo(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, str]]:
    """(database, uri) with the seed data; the writer's client factory points at it."""
    with database(
        request.param, "mongodb://user:secret@mock.invalid:27017/app", "app", monkeypatch
    ) as (db, uri):
        seed(db)
        yield db, uri


# --------------------------------------------------------------------------- driving stages


def req(uri: str, do: dict[str, Any], batch: int = 1000, **kw: Any) -> WriteRequest:
    base: dict[str, Any] = {
        "lock_name": "playbook:action:test",
        "lock_ttl": 60.0,
        "holder": "alice@host pid 1, incident I, run r1",
    }
    return WriteRequest("test", "r1", do, uri, batch=batch, **{**base, **kw})


def stage(
    fn: Any, *args: Any, progress: Any = None, context: list[RunContext] | None = None
) -> Any:
    ctx = RunContext(30, 5, progress)
    if context is not None:
        context.append(ctx)
    try:
        return fn(*args, ctx)
    finally:
        ctx.finish()


def backup(
    writer: MongoWriter, r: WriteRequest, plan: Plan, folder: Path | None = None
) -> _Replayable:
    """Run the backup stage; its rows, re-readable, when it was written to ``folder``."""
    path = folder / f"backup-{secrets.token_hex(3)}.jsonl" if folder else None
    sink = Sink(path, keep=0)
    ctx = RunContext(30, 5)
    try:
        writer.backup(r, plan, ctx, sink)
    finally:
        ctx.finish()
    return _Replayable(path, sink.close() or "")


class _Replayable:
    """A backup that can be read more than once (to roll back twice)."""

    def __init__(self, path: Path | None, sha: str) -> None:
        self.path, self.sha = path, sha

    def __iter__(self) -> Iterator[dict[str, Any]]:
        assert self.path is not None, "this backup was not written to a file"
        return read_backup(self.path, self.sha)


ENSURE = {
    "operation": "ensure_indexes",
    "collection": "discordinteractionlogs",
    "indexes": [
        {"keys": {"interactionId": 1}, "unique": True},
        {"keys": {"timing.timestamp": 1}, "unique": False, "expire_after_seconds": 7776000},
        {"keys": {"guildId": 1}, "unique": False},
    ],
}
DEDUPE = {"operation": "dedupe", "collection": "discordtaskposts", "field": "messageId"}
CONVERT = {
    "operation": "convert_type",
    "collection": "discordservermappings",
    "field": "guildId",
    "to": "string",
}


def plant_duplicates(db: Any) -> list[ObjectId]:
    """Two more posts for message m-1 and one for m-2, and two posts with no messageId;
    returns the ids of the planted duplicates (the originals are older)."""
    dupes = [oid(50), oid(51), oid(52)]
    db.discordtaskposts.insert_many(
        [
            {"_id": dupes[0], "taskId": "task-1", "messageId": "m-1", "at": T0},
            {"_id": dupes[1], "taskId": "task-1", "messageId": "m-1", "n": Int64(2**40)},
            {"_id": dupes[2], "taskId": "task-2", "messageId": "m-2", "w": 2.0},
            {"_id": oid(60), "taskId": "draft-1"},
            {"_id": oid(61), "taskId": "draft-2", "messageId": None},
        ]
    )
    return dupes


def plant_wrong_types(db: Any) -> None:
    """A guild id written as an int64 (convertible), one as a double that has lost its
    digits (not convertible), and a member count written as text."""
    db.discordservermappings.drop_index("guildId_1")  # so the int64 twin can exist
    db.discordservermappings.insert_many(
        [
            {
                "_id": oid(110),
                "guildId": Int64(int(SNOWFLAKE)),
                "guildInfo": {"memberCount": "123"},
            },
            {"_id": oid(111), "guildId": 1.1e18, "guildInfo": {"memberCount": "12a"}},
        ]
    )


def incident(db: Any, operation: str) -> None:
    if operation == "dedupe":
        plant_duplicates(db)
    elif operation == "convert_type":
        plant_wrong_types(db)
    else:
        db.discordinteractionlogs.drop_index("interactionId_1")


OPERATIONS = [("ensure_indexes", ENSURE), ("dedupe", DEDUPE), ("convert_type", CONVERT)]


# --------------------------------------------------------------------------- every operation


def test_the_entry_point_gives_the_mongo_writer() -> None:
    writer = plugins.load_writer("mongo")
    assert isinstance(writer, MongoWriter)
    assert set(writer.operations) == {"ensure_indexes", "dedupe", "convert_type"}


@pytest.mark.parametrize(("operation", "do"), OPERATIONS)
def test_a_dry_run_writes_nothing(
    mongo: tuple[Any, str], operation: str, do: dict[str, Any]
) -> None:
    db, uri = mongo
    incident(db, operation)
    before = dump(db)
    plan = stage(MongoWriter().plan, req(uri, do))
    assert plan.touches > 0 and plan.items
    assert dump(db) == before
    assert LOCKS not in db.list_collection_names()


@pytest.mark.parametrize(("operation", "do"), OPERATIONS)
def test_backup_apply_rollback_gives_the_database_back_exactly(
    mongo: tuple[Any, str], tmp_path: Path, operation: str, do: dict[str, Any]
) -> None:
    db, uri = mongo
    incident(db, operation)
    before = dump(db)
    writer, r = MongoWriter(), req(uri, do, batch=2)
    plan = stage(writer.plan, r)
    rows = backup(writer, r, plan, tmp_path)
    assert dump(db) == before  # the backup reads only
    stage(writer.apply, r, plan)
    assert dump(db) != before
    first = stage(writer.rollback, r, iter(rows))
    assert dump(db) == before
    again = stage(writer.rollback, r, iter(rows))  # safe to run twice: changes nothing
    assert dump(db) == before
    assert sum(first.values()) > 0
    assert again.get("insert", 0) == again.get("drop", 0) == again.get("restore", 0) == 0


# --------------------------------------------------------------------------- ensure_indexes


def index_named(db: Any, collection: str, name: str) -> dict[str, Any] | None:
    return next((i for i in db[collection].list_indexes() if i["name"] == name), None)


def test_ensure_indexes_plans_create_replace_and_unchanged(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    db.discordinteractionlogs.drop_index("interactionId_1")
    db.discordinteractionlogs.create_index([("guildId", 1)], name="guildId_1")
    plan = stage(MongoWriter().plan, req(uri, ENSURE))
    assert plan.counts == {"create": 1, "replace": 1, "unchanged": 1}
    assert plan.items == [
        'create interactionId_1 on discordinteractionlogs: {"interactionId": 1}, unique',
        "replace timing.timestamp_1 on discordinteractionlogs with timing.timestamp_1 "
        "(expireAfterSeconds 3600 -> 7776000)",
    ]
    assert plan.warnings == []


def test_ensure_indexes_builds_what_the_schema_promises(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    db.discordinteractionlogs.drop_index("interactionId_1")
    writer, r = MongoWriter(), req(uri, ENSURE)
    plan = stage(writer.plan, r)
    numbers = stage(writer.apply, r, plan)
    assert numbers == {"create": 2, "replace": 1}
    assert index_named(db, "discordinteractionlogs", "interactionId_1")["unique"] is True  # type: ignore[index]
    ttl = index_named(db, "discordinteractionlogs", "timing.timestamp_1")
    assert ttl is not None and int(ttl["expireAfterSeconds"]) == 7776000
    assert stage(writer.plan, r).counts == {"create": 0, "replace": 0, "unchanged": 3}


def test_a_unique_index_over_duplicates_is_flagged_before_and_fails_saying_what_was_done(
    mongo: tuple[Any, str],
) -> None:
    db, uri = mongo
    plant_duplicates(db)
    do = {
        "operation": "ensure_indexes",
        "collection": "discordtaskposts",
        "indexes": [
            {"keys": {"taskId": 1}, "name": "taskId_1"},
            {"keys": {"messageId": 1}, "unique": True},
        ],
    }
    writer, r = MongoWriter(), req(uri, do)
    plan = stage(writer.plan, r)
    # m-1 and m-2 are shared, and the two posts without a messageId share null.
    assert plan.warnings == [
        "Unique index messageId_1 on discordtaskposts.messageId: creating it will fail: "
        "3 values are duplicated; run the dedupe action first."
    ]
    with pytest.raises(RunError) as caught:
        stage(writer.apply, r, plan)
    assert "Stopped at: create messageId_1 on discordtaskposts" in caught.value.message
    assert "Done before it: created taskId_1." in caught.value.message
    assert index_named(db, "discordtaskposts", "messageId_1") is None
    assert "secret" not in str(caught.value)


# --------------------------------------------------------------------------- dedupe


def test_dedupe_keeps_the_oldest_of_each_group_and_leaves_missing_values_alone(
    mongo: tuple[Any, str],
) -> None:
    db, uri = mongo
    dupes = plant_duplicates(db)
    writer, r = MongoWriter(), req(uri, DEDUPE)
    plan = stage(writer.plan, r)
    assert plan.counts == {"groups": 2, "delete": 3}
    assert plan.items[0] == (
        f'messageId = "m-1": 3 documents; keep {{"$oid": "{oid(1)}"}} (oldest), delete 2'
    )
    assert plan.warnings and "2 documents have no messageId" in plan.warnings[0]
    before = db.discordtaskposts.count_documents({})
    assert stage(writer.apply, r, plan) == {"delete": 0, "gone": 0, "changed": 0}  # no backup
    assert db.discordtaskposts.count_documents({}) == before
    backup(writer, r, plan)
    assert stage(writer.apply, r, plan) == {"delete": 3, "gone": 0, "changed": 0}
    assert db.discordtaskposts.count_documents({"_id": {"$in": dupes}}) == 0
    assert db.discordtaskposts.count_documents({"_id": {"$in": [oid(1), oid(2)]}}) == 2
    assert db.discordtaskposts.count_documents({"_id": {"$in": [oid(60), oid(61)]}}) == 2


def test_dedupe_can_keep_the_newest(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    dupes = plant_duplicates(db)
    writer, r = MongoWriter(), req(uri, {**DEDUPE, "keep": "newest"})
    plan = stage(writer.plan, r)
    backup(writer, r, plan)
    stage(writer.apply, r, plan)
    left = {d["_id"] for d in db.discordtaskposts.find({"messageId": {"$in": ["m-1", "m-2"]}})}
    assert left == {dupes[1], dupes[2]}


def test_a_cancel_between_batches_stops_dedupe_and_rollback_restores_all(
    mongo: tuple[Any, str], tmp_path: Path
) -> None:
    db, uri = mongo
    dupes = plant_duplicates(db)
    originals = {d["_id"]: d for d in db.discordtaskposts.find({"_id": {"$in": dupes}})}
    before = dump(db)
    writer, r = MongoWriter(), req(uri, DEDUPE, batch=1)
    plan = stage(writer.plan, r)
    rows = backup(writer, r, plan, tmp_path)
    contexts: list[RunContext] = []
    seen: list[Progress] = []

    def cancel_after_first_batch(p: Progress) -> None:
        seen.append(p)
        contexts[0].cancel()

    with pytest.raises(Cancelled) as caught:
        stage(writer.apply, r, plan, progress=cancel_after_first_batch, context=contexts)
    assert seen[0].done == 1
    assert "1 of 3 duplicates were deleted" in caught.value.message
    assert "roll back" in caught.value.message
    for _id, original in originals.items():  # each deleted or intact, never half-done
        assert db.discordtaskposts.find_one({"_id": _id}) in (None, original)
    assert db.discordtaskposts.count_documents({"_id": {"$in": dupes}}) == 2
    assert stage(writer.rollback, r, iter(rows)) == {
        "insert": 1,
        "replace": 0,
        "present": 2,
        "untouched": 0,
    }
    assert dump(db) == before


def test_rollback_of_dedupe_under_a_unique_index_says_to_roll_the_index_back_first(
    mongo: tuple[Any, str], tmp_path: Path
) -> None:
    db, uri = mongo
    plant_duplicates(db)
    writer, r = MongoWriter(), req(uri, DEDUPE)
    plan = stage(writer.plan, r)
    rows = backup(writer, r, plan, tmp_path)
    stage(writer.apply, r, plan)
    db.discordtaskposts.delete_many({"_id": {"$in": [oid(60), oid(61)]}})  # the null pair
    db.discordtaskposts.create_index([("messageId", 1)], name="messageId_1", unique=True)
    with pytest.raises(RunError) as caught:
        stage(writer.rollback, r, iter(rows))
    assert "could not be inserted back" in caught.value.title
    assert "roll back the index rebuild first" in caught.value.message


# --------------------------------------------------------------------------- convert_type


def test_convert_plans_each_change_and_warns_of_what_cannot_convert(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    plant_wrong_types(db)
    before = dump(db)
    plan = stage(MongoWriter().plan, req(uri, CONVERT))
    assert plan.counts == {"convert": 1, "unconvertible": 1}
    assert plan.items == [f'{{"$oid": "{oid(110)}"}}: {SNOWFLAKE} -> "{SNOWFLAKE}"']
    assert plan.warnings == [
        "1 values of guildId cannot be converted to string without loss (e.g. 1.1e+18); "
        "they are left alone."
    ]
    assert dump(db) == before


def test_convert_text_to_int_then_the_field_has_the_type(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    plant_wrong_types(db)
    do = {
        "operation": "convert_type",
        "collection": "discordservermappings",
        "field": "guildInfo.memberCount",
        "to": "int",
    }
    writer, r = MongoWriter(), req(uri, do)
    plan = stage(writer.plan, r)
    assert plan.items == [f'{{"$oid": "{oid(110)}"}}: "123" -> 123']
    assert plan.counts == {"convert": 1, "unconvertible": 1}
    backup(writer, r, plan)
    assert stage(writer.apply, r, plan) == {"convert": 1, "skipped": 0}
    assert db.discordservermappings.find_one({"_id": oid(110)})["guildInfo"]["memberCount"] == 123
    assert (
        db.discordservermappings.count_documents({"guildInfo.memberCount": {"$type": "int"}}) == 3
    )
    assert db.discordservermappings.find_one({"_id": oid(111)})["guildInfo"]["memberCount"] == "12a"


def test_a_document_changed_since_the_dry_run_is_not_overwritten(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    plant_wrong_types(db)
    writer, r = MongoWriter(), req(uri, CONVERT)
    plan = stage(writer.plan, r)
    backup(writer, r, plan)
    db.discordservermappings.update_one({"_id": oid(110)}, {"$set": {"guildId": "77"}})
    assert stage(writer.apply, r, plan) == {"convert": 0, "skipped": 1}
    assert db.discordservermappings.find_one({"_id": oid(110)})["guildId"] == "77"


@pytest.mark.parametrize(
    ("value", "to", "expected"),
    [
        ("123", "int", (True, 123)),
        ("-4", "long", (True, Int64(-4))),
        ("007", "int", (False, None)),  # converting back would not give the same text
        (" 5", "int", (False, None)),
        ("3000000000", "int", (False, None)),  # beyond int32
        ("3000000000", "long", (True, Int64(3000000000))),
        (Int64(int(SNOWFLAKE)), "string", (True, SNOWFLAKE)),
        (1.1e18, "string", (False, None)),  # a double this big has lost the id's digits
        (42.0, "int", (True, 42)),
        (42.5, "int", (False, None)),
        ("2.5", "double", (True, 2.5)),
        (True, "int", (False, None)),
        (None, "string", (False, None)),
        ({"a": 1}, "string", (False, None)),
    ],
)
def test_convert_changes_only_what_converts_without_loss(
    value: Any, to: str, expected: tuple[bool, Any]
) -> None:
    ok, new = convert(value, to)
    assert (ok, new) == expected
    assert type(new) is type(expected[1])


# --------------------------------------------------------------------------- the lock


def take(uri: str, holder: str, ttl: float = 60.0) -> Any:
    return stage(MongoWriter().lock, req(uri, {}, holder=holder, lock_ttl=ttl))


def test_a_second_taker_is_refused_naming_the_first(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    first = take(uri, "alice@host-a pid 10, incident I1, run r1")
    try:
        with pytest.raises(LockHeld) as caught:
            take(uri, "bob@host-b pid 20, incident I2, run r2")
        held = db[LOCKS].find_one({"_id": "playbook:action:test"})
        assert "held by alice@host-a pid 10, incident I1, run r1" in caught.value.title
        assert f"since {held['since']:%Y-%m-%d %H:%M:%S} UTC" in caught.value.title
        assert f"expires at {held['expires_at']:%Y-%m-%d %H:%M:%S} UTC" in caught.value.title
    finally:
        first.release()
    assert db[LOCKS].count_documents({}) == 0
    take(uri, "bob@host-b pid 20, incident I2, run r2").release()  # free again


def test_the_lock_collection_expires_its_documents(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    take(uri, "alice").release()
    ttl = [i for i in db[LOCKS].list_indexes() if list(i["key"]) == ["expires_at"]]
    assert len(ttl) == 1 and int(ttl[0]["expireAfterSeconds"]) == 0


def test_an_expired_lock_left_by_a_killed_process_is_taken_over(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    # A plain index on expires_at stands in for a TTL monitor that has not run yet (it
    # runs once a minute; mongomock's runs on every read): the stale document is still
    # there when we come, so it must be replaced rather than inserted over.
    db[LOCKS].create_index([("expires_at", 1)], name="expires_at_1")
    db[LOCKS].insert_one(
        {
            "_id": "playbook:action:test",
            "holder": "ghost pid 99",
            "token": "dead",
            "since": T0,
            "expires_at": datetime.now(UTC) - timedelta(seconds=5),
        }
    )
    lock = take(uri, "alice pid 1")
    try:
        held = db[LOCKS].find_one({"_id": "playbook:action:test"})
        assert held["holder"] == "alice pid 1"
        assert held["expires_at"] > datetime.now(UTC)
    finally:
        lock.release()
    assert db[LOCKS].count_documents({}) == 0


def test_release_never_removes_another_holders_lock(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    ours = take(uri, "alice pid 1", ttl=60)
    bobs_until = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0)
    # Ours expired while we were stopped, and bob took it over.
    db[LOCKS].replace_one(
        {"_id": "playbook:action:test"},
        {"holder": "bob pid 2", "token": "bobs", "since": T0, "expires_at": bobs_until},
    )
    assert isinstance(ours, MongoLock)
    assert ours.renew() is False and ours.gone
    ours.release()
    held = db[LOCKS].find_one({"_id": "playbook:action:test"})
    assert held["holder"] == "bob pid 2" and held["expires_at"] == bobs_until


def test_a_held_lock_is_renewed_in_the_background(mongo: tuple[Any, str]) -> None:
    db, uri = mongo
    lock = take(uri, "alice pid 1", ttl=0.6)
    assert isinstance(lock, MongoLock)
    first = db[LOCKS].find_one({"_id": "playbook:action:test"})["expires_at"]
    try:
        assert lock.renewed.wait(timeout=10), "no renewal within 10 s (ttl/3 is 0.2 s)"
        later = db[LOCKS].find_one({"_id": "playbook:action:test"})["expires_at"]
        assert later > first
    finally:
        lock.release()
    assert db[LOCKS].count_documents({}) == 0


# --------------------------------------------------------------------------- failures


class _Unreachable:
    """A client whose every call fails the way pymongo does, quoting the URI."""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def get_default_database(self, default: str) -> Any:
        return self

    def __getitem__(self, name: str) -> Any:
        return self

    def list_indexes(self) -> Any:
        import pymongo.errors

        raise pymongo.errors.ServerSelectionTimeoutError(f"{self.uri}: connection refused")

    aggregate = find = list_indexes

    def close(self) -> None:
        pass


@pytest.mark.parametrize("step", ["plan", "lock"])
def test_an_unreachable_server_is_a_run_error_without_the_password(
    monkeypatch: pytest.MonkeyPatch, step: str
) -> None:
    uri = "mongodb://bot:hunter2@db.internal:27017/naffles"
    monkeypatch.setattr(MongoAdapter, "client_factory", staticmethod(lambda u, _c: _Unreachable(u)))
    writer, r = MongoWriter(), req(uri, ENSURE)
    with pytest.raises(RunError) as caught:
        stage(writer.plan if step == "plan" else writer.lock, r)
    assert "could not be reached" in str(caught.value)
    assert "hunter2" not in str(caught.value)
    assert "bot:***@db.internal" in str(caught.value)


def test_a_conversion_a_unique_index_refuses_stops_and_says_how_far_it_got(
    mongo: tuple[Any, str],
) -> None:
    """Under guildId_1 (unique), an int64 twin of "90000" cannot become "90000"."""
    db, uri = mongo
    db.discordservermappings.insert_one({"_id": oid(121), "guildId": Int64(90000)})
    writer, r = MongoWriter(), req(uri, CONVERT)
    plan = stage(writer.plan, r)
    assert plan.counts == {"convert": 1, "unconvertible": 0}
    backup(writer, r, plan)
    with pytest.raises(RunError) as caught:
        stage(writer.apply, r, plan)
    assert "E11000" in caught.value.title
    assert "0 of 1 documents were converted" in caught.value.message
    assert db.discordservermappings.find_one({"_id": oid(121)})["guildId"] == 90000


def test_rollback_keeps_an_index_made_after_the_apply_under_the_name_a_replace_freed(
    mongo: tuple[Any, str], tmp_path: Path
) -> None:
    """A replace under a new name leaves the old name free; that is a write of the run's.
    Someone who builds their own index under that name after the apply keeps it: the
    rollback neither drops it (it used to, to recreate the old one) nor drops the run's
    new index, whose old twin could not come back; it names the index it left."""
    from playbook.adapters.writers import Undo, Written, read_written

    db, uri = mongo
    coll = db.discordinteractionlogs
    coll.drop_index("interactionId_1")
    coll.create_index([("interactionId", 1)], name="iid")  # same keys, another name
    do = {**ENSURE, "indexes": [{"keys": {"interactionId": 1}, "unique": True}]}
    writer, r = MongoWriter(), req(uri, do)
    plan = stage(writer.plan, r)
    assert plan.items[0].startswith("replace iid on discordinteractionlogs with interactionId_1")
    rows = backup(writer, r, plan, tmp_path)
    written = Written(tmp_path / "written.jsonl")
    stage(lambda ctx: writer.apply(r, plan, ctx, written))
    sha = written.close()["sha256"]
    assert index_named(db, "discordinteractionlogs", "iid") is None
    coll.create_index([("taskId", 1)], name="iid")  # theirs, after the apply
    theirs = index_named(db, "discordinteractionlogs", "iid")
    ours = index_named(db, "discordinteractionlogs", "interactionId_1")

    undo = Undo(read_written(tmp_path / "written.jsonl", sha))
    stage(lambda ctx: writer.rollback(r, iter(rows), ctx, undo))

    assert index_named(db, "discordinteractionlogs", "iid") == theirs
    assert index_named(db, "discordinteractionlogs", "interactionId_1") == ours
    assert undo.kept == ["index iid on discordinteractionlogs changed after the apply"]

    forced = Undo(read_written(tmp_path / "written.jsonl", sha), force=True)
    stage(lambda ctx: writer.rollback(r, iter(rows), ctx, forced))
    old = index_named(db, "discordinteractionlogs", "iid")
    assert old is not None and dict(old["key"]) == {"interactionId": 1}  # the backup's
    assert index_named(db, "discordinteractionlogs", "interactionId_1") is None
    assert forced.forced == ["index iid on discordinteractionlogs"]  # theirs, overwritten
