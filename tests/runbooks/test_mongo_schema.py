"""Seed 004 end to end: the Discord bot's MongoDB schema loses a unique index, duplicates
and a wrong-typed id get in; the runbook's diagnostics find it, its guarded actions
repair it in order, and the data is compared with what it was before the incident.

Runs on mongomock, and on a real MongoDB too when ``PLAYBOOK_TEST_MONGODB_URI`` is set.
The kill-at-each-stage and two-process lock races are not repeated here: mongomock
lives in one process. The lock race is covered in-process (two runs of the runbook).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import mongo_support
import pytest
from bson import Int64, ObjectId
from bson.json_util import CANONICAL_JSON_OPTIONS, dumps
from mongo_support import database

from playbook.adapters.mongo.reader import MongoAdapter
from playbook.adapters.plugins import load_playbook as load
from playbook.adapters.writers import LockHeld
from playbook.service import Service
from playbook.targets import Target

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "runbooks" / "mongo-schema.yaml"
LOCKS = "playbook_locks"
NOW = datetime.now(UTC).replace(microsecond=0)
"""Interaction logs are dated from now: their TTL index would expire older ones."""
GUILDS = ["1100000000000000001", "1100000000000000002", "1100000000000000003"]


def oid(n: int) -> ObjectId:
    """Ids that sort by n, as ObjectIds made one after another do."""
    return ObjectId(f"65f2a0c0{n:016x}")


def seed(db: Any) -> None:
    """The five collections of seed 004 with the indexes its schema promises."""
    db.discordservermappings.insert_many(
        [
            {
                "_id": oid(10 + n),
                "guildId": guild,
                "communityId": f"community-{n}",
                "linkedBy": f"user-{n}",
                "guildInfo": {"name": f"Guild {n}", "memberCount": 100 + n, "ownerId": "42"},
                "botConfig": {"defaultChannel": "general", "autoPostTasks": n % 2 == 0},
                "integrationStatus": {"isHealthy": True, "lastHealthCheck": NOW},
            }
            for n, guild in enumerate(GUILDS)
        ]
    )
    db.discordservermappings.create_index([("guildId", 1)], name="guildId_1", unique=True)
    db.discordservermappings.create_index([("communityId", 1)], name="communityId_1")
    db.discordaccountlinks.insert_many(
        [
            {
                "_id": oid(20 + n),
                "discordId": f"2200000000000000{n:03d}",
                "nafflesUserId": f"naffles-{n}",
                "oauthTokens": {"accessToken": "enc:...", "expiresAt": NOW + timedelta(hours=n)},
                "activityStats": {"totalPointsEarned": Int64(2**33 + n)},
            }
            for n in range(4)
        ]
    )
    db.discordaccountlinks.create_index([("discordId", 1)], name="discordId_1", unique=True)
    db.discordtaskposts.insert_many(
        [
            {
                "_id": oid(100 + n),
                "taskId": f"task-{n}",
                "guildId": GUILDS[n % 3],
                "messageId": f"3300000000000000{n:03d}",
                "taskData": {
                    "title": f"Follow us {n}",
                    "type": "twitter",
                    "points": 50,
                    "status": "active",
                },
                "interactionStats": {"views": Int64(10_000 + n), "conversionRate": 0.25},
            }
            for n in range(12)
        ]
    )
    for field in ("taskId", "guildId", "taskData.status"):
        db.discordtaskposts.create_index([(field, 1)], name=f"{field}_1")
    db.discordtaskposts.create_index([("messageId", 1)], name="messageId_1", unique=True)
    db.discordallowlistconnections.insert_many(
        [
            {
                "_id": oid(200 + n),
                "allowlistId": f"al-{n}",
                "guildId": GUILDS[0],
                "messageId": f"4400000000000000{n:03d}",
                "allowlistData": {"title": "Mint", "winnerCount": 5, "status": "open"},
            }
            for n in range(3)
        ]
    )
    db.discordallowlistconnections.create_index([("messageId", 1)], name="messageId_1", unique=True)
    db.discordinteractionlogs.insert_many(
        [
            {
                "_id": oid(300 + n),
                "interactionId": f"5500000000000000{n:03d}",
                "guildId": GUILDS[n % 3],
                "userId": f"2200000000000000{n % 4:03d}",
                "interaction": {"type": "command", "commandName": "tasks"},
                "timing": {"timestamp": NOW - timedelta(minutes=n), "responseTime": 120},
            }
            for n in range(5)
        ]
    )
    db.discordinteractionlogs.create_index(
        [("interactionId", 1)], name="interactionId_1", unique=True
    )
    db.discordinteractionlogs.create_index(
        [("timing.timestamp", 1)], name="timing.timestamp_1", expireAfterSeconds=7776000
    )


def dump(db: Any) -> dict[str, Any]:
    """The whole database but the lock collection, which a guarded run creates."""
    return mongo_support.dump(db, frozenset({LOCKS}))


@pytest.fixture(params=["mongomock", "real"])
def mongo(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Any, dict[str, Target]]]:
    """(database, targets) with seed 004's data; the Mongo client factory points at it."""
    with database(
        request.param, "mongodb://bot:s3cret@mock.invalid:27017/naffles", "naffles", monkeypatch
    ) as (db, uri):
        seed(db)
        yield (db, {"mongo": Target("mongo", uri, "test")})


NEW_POST = {
    "_id": oid(150),
    "taskId": "task-new",
    "guildId": GUILDS[1],
    "messageId": "3300000000000000999",
    "taskData": {"title": "Posted during the incident", "status": "active"},
}


def cause_the_incident(db: Any) -> None:
    """A migration drops messageId_1; the bot, retrying, posts two tasks twice; a new
    writer stores one post's guildId as a number; and one good post is written."""
    db.discordtaskposts.drop_index("messageId_1")
    db.discordtaskposts.insert_many(
        [
            {**db.discordtaskposts.find_one({"_id": oid(103)}), "_id": oid(160)},
            {**db.discordtaskposts.find_one({"_id": oid(103)}), "_id": oid(161)},
            {**db.discordtaskposts.find_one({"_id": oid(107)}), "_id": oid(162)},
            NEW_POST,
        ]
    )
    db.discordtaskposts.update_one({"_id": oid(104)}, {"$set": {"guildId": Int64(GUILDS[1])}})


def verdicts(service: Service, incident: str, targets: dict[str, Target]) -> dict[str, str]:
    out = {}
    for diagnostic in (
        "indexes-task-posts",
        "indexes-allowlists",
        "indexes-server-mappings",
        "indexes-account-links",
        "indexes-interaction-logs",
        "duplicate-values",
        "missing-unique-field",
        "orphaned-task-posts",
        "wrong-type",
    ):
        _state, payload = service.run_diagnostic(incident, diagnostic, {}, targets)
        out[diagnostic] = payload["verdict"]
    return out


def stages(service: Service, incident: str, run_id: str) -> list[str]:
    run = service.get(incident).state.actions[run_id]
    return [f"{s['stage']} {s['outcome']}" for s in run.stages]


APPLIED = [
    "dry_run done",
    "backup done",
    "confirm done",
    "lock done",
    "apply started",
    "apply done",
    "verify done",
    "unlock done",
]


# --------------------------------------------------------------------------- the runbook


def test_the_runbook_validates(cli: Any) -> None:
    pb = load(RUNBOOK).playbook
    assert pb.severity.default == "P2"
    assert [lvl.id for lvl in pb.severity.levels] == ["P1", "P2", "P3", "P4"]
    assert {a.kind for a in pb.actions.values()} == {"mongo"}
    assert {a.do.operation for a in pb.actions.values()} == {
        "ensure_indexes",
        "dedupe",
        "convert_type",
    }
    for action in pb.actions.values():  # every action is proved by diagnostics that exist
        assert action.verify
        assert {v.diagnostic for v in action.verify} <= set(pb.diagnostics)
    result = cli("validate", str(RUNBOOK))
    assert result.exit_code == 0, result.output
    assert "ok" in result.output


def test_seed_004_schema_incident_is_found_and_repaired(
    sqlite_service: Service, mongo: tuple[Any, dict[str, Target]]
) -> None:
    db, targets = mongo
    before = dump(db)
    cause_the_incident(db)
    incident = sqlite_service.open(RUNBOOK, "Task posts duplicated after the migration").id

    assert verdicts(sqlite_service, incident, targets) == {
        "indexes-task-posts": "fail",  # messageId_1 gone, no unique index left
        "indexes-allowlists": "pass",
        "indexes-server-mappings": "pass",
        "indexes-account-links": "pass",
        "indexes-interaction-logs": "pass",
        "duplicate-values": "fail",  # two messageIds held by more than one post
        "missing-unique-field": "pass",
        "orphaned-task-posts": "fail",  # the number matches no mapping's string guildId
        "wrong-type": "fail",
    }

    # Rebuilding the unique index first is refused in advance: the dry run says why.
    early = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
    plan = early.dry_run()
    assert plan.counts["create"] == 1
    assert "2 values are duplicated; run the dedupe action first" in plan.warnings[0]

    # 1. types, 2. duplicates, 3. indexes: each verified by the runbook's diagnostics.
    expected = {
        "fix-task-guild-id-type": {"convert": 1, "skipped": 0},
        "dedupe-task-message-id": {"delete": 3, "gone": 0, "changed": 0},
        "rebuild-indexes": {"create": 1, "replace": 0},
    }
    for action, numbers in expected.items():
        run = sqlite_service.start_action(incident, action, {}, targets)
        plan = run.dry_run()
        assert plan.touches == sum(numbers.values())
        run.backup()
        run.confirm("mongo")
        outcome = run.apply()
        assert outcome.ok, (action, outcome.error, outcome.verify)
        assert outcome.numbers == numbers
        assert {r["verdict"] for r in outcome.verify} == {"pass"}
        assert stages(sqlite_service, incident, run.run_id) == APPLIED

    assert set(verdicts(sqlite_service, incident, targets).values()) == {"pass"}
    assert db[LOCKS].count_documents({}) == 0  # every lock released

    # The data is what it was before the incident, but for one legitimate difference:
    # the post written during the incident (only once) is kept. Of each duplicated post
    # the oldest copy (the original, lowest _id) survived, so the originals are all
    # there byte for byte; the rebuilt messageId_1 has the name and options it had.
    expected_after = json.loads(json.dumps(before))
    expected_after["discordtaskposts"]["docs"] = sorted(
        [*before["discordtaskposts"]["docs"], dumps(NEW_POST, json_options=CANONICAL_JSON_OPTIONS)]
    )
    assert dump(db) == expected_after


def test_an_apply_whose_verify_fails_offers_rollback_and_rollback_restores(
    sqlite_service: Service, mongo: tuple[Any, dict[str, Target]]
) -> None:
    db, targets = mongo
    db.discordtaskposts.update_one({"_id": oid(104)}, {"$set": {"guildId": Int64(GUILDS[1])}})
    # A guild id that went through a double has lost its digits: it cannot be converted.
    db.discordtaskposts.update_one({"_id": oid(105)}, {"$set": {"guildId": float(GUILDS[2])}})
    before = dump(db)
    incident = sqlite_service.open(RUNBOOK, "Task posts with numeric guild ids").id

    run = sqlite_service.start_action(incident, "fix-task-guild-id-type", {}, targets)
    plan = run.dry_run()
    assert plan.counts == {"convert": 1, "unconvertible": 1}
    assert "cannot be converted to string without loss" in plan.warnings[0]
    run.backup()
    run.confirm("mongo")
    outcome = run.apply()

    assert not outcome.ok and outcome.rollback_offered
    assert outcome.stage == "verify"
    failed = {r["diagnostic"]: r["verdict"] for r in outcome.verify}
    assert failed == {"wrong-type": "fail", "orphaned-task-posts": "fail"}
    assert db.discordtaskposts.find_one({"_id": oid(104)})["guildId"] == GUILDS[1]

    assert run.rollback() == {"restore": 1, "already": 0, "untouched": 0, "kept": 0}
    assert dump(db) == before
    state = sqlite_service.get(incident).state
    assert state.actions[run.run_id].status == "rolled back"
    assert stages(sqlite_service, incident, run.run_id)[-6:] == [
        "verify failed",
        "unlock done",
        "lock done",
        "rollback started",
        "rollback done",
        "unlock done",
    ]


def test_an_earlier_run_is_rolled_back_from_its_recorded_backup(
    sqlite_service: Service, mongo: tuple[Any, dict[str, Target]]
) -> None:
    """A responder rolls back a dedupe later (another session): rebuilt from the timeline."""
    db, targets = mongo
    cause_the_incident(db)
    before = dump(db)
    incident = sqlite_service.open(RUNBOOK, "Duplicate task posts").id
    run = sqlite_service.start_action(incident, "dedupe-task-message-id", {}, targets)
    run.dry_run()
    run.backup()
    run.confirm("mongo")
    assert run.apply().ok
    assert dump(db) != before

    later = sqlite_service.resume_action(incident, run.run_id, targets)
    with pytest.raises(Exception, match="type 'mongo' exactly"):
        later.rollback()  # another session must confirm again
    assert later.rollback("mongo") == {
        "insert": 3,
        "replace": 0,
        "present": 0,
        "untouched": 0,
        "kept": 0,
    }
    assert dump(db) == before


def test_a_second_run_is_refused_the_lock_while_the_first_holds_it(
    sqlite_service: Service, mongo: tuple[Any, dict[str, Target]]
) -> None:
    db, targets = mongo
    cause_the_incident(db)
    incident = sqlite_service.open(RUNBOOK, "Two responders repair at once").id
    second = sqlite_service.start_action(incident, "fix-task-guild-id-type", {}, targets)
    second.dry_run()
    second.backup()
    second.confirm("mongo")
    refusals: list[LockHeld] = []

    def race(stage: str, outcome: str) -> None:
        if (stage, outcome) == ("lock", "done"):  # the first holds the lock right now
            with pytest.raises(LockHeld) as caught:
                second.apply()
            refusals.append(caught.value)

    first = sqlite_service.start_action(incident, "dedupe-task-message-id", {}, targets, hook=race)
    first.dry_run()
    first.backup()
    first.confirm("mongo")
    assert first.apply().ok

    assert len(refusals) == 1
    assert f"run {first.run_id}" in refusals[0].title  # names who holds it
    assert "since" in refusals[0].title and "expires at" in refusals[0].title
    assert stages(sqlite_service, incident, second.run_id)[-1] == "lock refused"
    refused = sqlite_service.get(incident).state.actions[second.run_id].last
    assert f"run {first.run_id}" in refused["error"]
    assert db.discordtaskposts.find_one({"_id": oid(104)})["guildId"] == Int64(GUILDS[1])
    # Once the first is done, the second may go.
    assert second.apply().ok
    assert db.discordtaskposts.find_one({"_id": oid(104)})["guildId"] == GUILDS[1]


def test_no_uri_or_password_reaches_the_timeline_or_the_export(
    sqlite_service: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server that fails with the URI in its error (as pymongo's errors do): the
    failure is recorded and exported without the URI's password."""
    import pymongo.errors

    uri = "mongodb://bot:hunter2@db.internal:27017/naffles"
    targets = {"mongo": Target("mongo", uri, "test")}

    class Unreachable:
        def get_default_database(self, default: str) -> Any:
            return self

        def __getitem__(self, name: str) -> Any:
            return self

        def find(self, *args: Any, **kwargs: Any) -> Any:
            raise pymongo.errors.ServerSelectionTimeoutError(f"{uri}: connection refused")

        def close(self) -> None:
            pass

    monkeypatch.setattr(MongoAdapter, "client_factory", staticmethod(lambda _u, _c: Unreachable()))
    incident = sqlite_service.open(RUNBOOK, "Secrets stay out").id
    run = sqlite_service.start_action(incident, "fix-task-guild-id-type", {}, targets)
    with pytest.raises(Exception, match="could not be reached") as caught:
        run.dry_run()
    assert "hunter2" not in str(caught.value)
    assert stages(sqlite_service, incident, run.run_id) == ["dry_run failed"]
    for fmt in ("json", "markdown"):
        exported = sqlite_service.export(incident, fmt)
        assert "could not be reached" in exported
        assert "hunter2" not in exported
        shown = exported.replace("\\*", "*")  # as Markdown renders its escaped stars
        assert "bot:***@db.internal" in shown
