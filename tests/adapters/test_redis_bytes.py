"""Bytes are bytes: Redis keys, members and record fields that are not UTF-8 go through a
guarded rebuild, its backup and its rollback exactly, on a real redis-server.

"Exactly" is checked where it lands: the server's ``DUMP`` of every key the run touched,
before the apply and after the rollback, has the same SHA-256. What a person reads (the
dry run, the events, the rollback's kept list) shows the odd bytes as ``\\xff`` escapes.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer, fingerprint

from playbook.adapters.base import RunContext
from playbook.adapters.redis.writer import RedisWriter
from playbook.adapters.writers import WriteRequest, read_backup
from playbook.service import Service
from playbook.targets import Target

ROOT = Path(__file__).resolve().parents[2]
RUNBOOK = ROOT / "runbooks" / "redis-index-loss.yaml"
ODD_PROJECT = b"discord:messages:project:p\xff"
ODD_USER = b"discord:messages:user:\xc3\x28"  # an invalid two-byte sequence
ODD_RECORD = b"message:discord:\xfe\xff1"


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: RedisServer) -> Iterator[Any]:
    with server.client() as c:
        c.flushall()
        yield c


def load_odd_data(client: Any) -> None:
    """Records whose keys, ids and fields are not UTF-8, and damaged live indexes."""
    client.hset(
        ODD_RECORD,
        mapping={
            b"id": b"\xff\xfe1",  # the member that crashed the apply (surrogates not allowed)
            b"projectId": b"p\xff",
            b"authorId": b"\xc3\x28",
            b"channelId": b"c1",
        },
    )
    client.hset(
        "message:discord:2",
        mapping={b"id": b"2", b"projectId": b"p\xff", b"authorId": b"u2", b"channelId": b"c1"},
    )
    # A record kept as a JSON string whose text is not UTF-8 either.
    client.set(
        "message:discord:3",
        b'{"id": "j\xff3", "projectId": "p\xff", "authorId": "u2", "channelId": "c\xfe"}',
    )
    # Live indexes: one missing a member (replaced), one with a stale one (replaced), one
    # that no record points at (retired); the rest are created.
    client.sadd(ODD_PROJECT, b"\xff\xfe1")
    client.sadd(b"discord:messages:channel:c1", b"\xff\xfe1", b"2", b"stale \xff")
    client.sadd(b"discord:messages:user:gone\xff", b"\x00\x01")


def dumps(client: Any, keys: list[bytes]) -> dict[bytes, str | None]:
    """SHA-256 of each key's DUMP payload (None: absent)."""
    out: dict[bytes, str | None] = {}
    for key in keys:
        payload = client.dump(key)
        out[key] = None if payload is None else hashlib.sha256(payload).hexdigest()
    return out


def test_a_rebuild_and_its_rollback_keep_every_byte(
    sqlite_service: Service, server: RedisServer, client: Any
) -> None:
    load_odd_data(client)
    targets = {"cache": Target("cache", server.uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "odd bytes").id
    run = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
    plan = run.dry_run()
    assert plan.counts["replace"] == 2 and plan.counts["retire"] == 1
    assert any("discord:messages:project:p\\xff" in line for line in plan.items)
    info = run.backup()
    run.confirm("cache")
    touched = sorted(
        {*plan.private["backup"], *plan.private["absent"]}  # what the backup covers
    )
    before = dumps(client, touched)
    records = dumps(client, [ODD_RECORD, b"message:discord:2", b"message:discord:3"])

    outcome = run.apply()

    assert outcome.stage == "verify", outcome.error  # the apply itself went through
    assert client.smembers(ODD_PROJECT) == {b"\xff\xfe1", b"2", b"j\xff3"}
    assert client.smembers(ODD_USER) == {b"\xff\xfe1"}
    assert client.smembers(b"discord:messages:channel:c\xfe") == {b"j\xff3"}
    assert client.smembers(b"discord:messages:channel:c1") == {b"\xff\xfe1", b"2"}
    assert not client.exists(b"discord:messages:user:gone\xff")

    # The backup says how it holds keys, and holds the odd ones as base64.
    header, *rows = read_backup(Path(info["file"]), info["sha256"])
    assert header["format"] == "playbook-redis-backup/2" and "k_b64" in header["rule"]
    by_key = {base64.b64decode(r["k_b64"]) if "k_b64" in r else r["k"].encode(): r for r in rows}
    assert set(by_key) == set(touched)
    assert "k" not in by_key[ODD_PROJECT] and "k_b64" in by_key[ODD_PROJECT]
    assert by_key[b"discord:messages:channel:c1"]["k"] == "discord:messages:channel:c1"

    later = sqlite_service.resume_action(incident, run.run_id, targets)
    numbers = later.rollback("cache")

    assert numbers["kept"] == 0 and numbers["restored"] == 3
    assert dumps(client, touched) == before  # every touched key, byte for byte
    assert dumps(client, list(records)) == records
    assert fingerprint(client, "discord:messages:[ov]*") == {}  # no versions left behind


def test_a_kept_key_that_is_not_utf8_is_named_with_escapes(
    sqlite_service: Service, server: RedisServer, client: Any
) -> None:
    load_odd_data(client)
    targets = {"cache": Target("cache", server.uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "odd bytes").id
    run = sqlite_service.start_action(incident, "rebuild-indexes", {}, targets)
    run.dry_run()
    run.backup()
    run.confirm("cache")
    run.apply()
    client.sadd(ODD_PROJECT, b"written by the collector \xfe")

    run.rollback()

    assert run.kept == ["discord:messages:project:p\\xff changed after the apply"]
    assert client.smembers(ODD_PROJECT) == {
        b"\xff\xfe1",
        b"2",
        b"j\xff3",
        b"written by the collector \xfe",
    }
    event = sqlite_service.get(incident).state.actions[run.run_id].stage("rollback")
    assert event is not None and event["kept_items"] == run.kept
    markdown = sqlite_service.export(incident, "markdown")  # shown, never decoded
    assert "kept 1" in markdown


def test_dropped_keys_that_are_not_utf8_come_back_exactly(
    sqlite_service: Service, server: RedisServer, client: Any
) -> None:
    """Values whose encodings serialise in a fixed order (a string, a small hash, a set
    of one) give the same DUMP after a RESTORE; a larger hash-table set may not (its
    order is the table's), so that is compared by content in the rebuild test above."""
    keys = [
        b"discord:messages:old-1:project:\xff",
        b"discord:messages:old-1:user:\xfe\xff",
        b"discord:messages:old-1:channel:\xc3\x28",
    ]
    client.sadd(keys[0], b"\x00\xff")
    client.hset(keys[1], mapping={b"\xff": b"\xfe", b"ok": b"\x80"})
    client.set(keys[2], b"\xff" * 10, px=3_600_000)
    before = dumps(client, keys)
    targets = {"cache": Target("cache", server.uri, "test")}
    incident = sqlite_service.open(RUNBOOK, "odd bytes").id
    drop = sqlite_service.start_action(
        incident, "drop-old-indexes", {"pattern": "discord:messages:old-1:*"}, targets
    )
    assert drop.dry_run().counts["delete"] == 3
    drop.backup()
    drop.confirm("cache")
    assert drop.apply().wrote
    assert dumps(client, keys) == dict.fromkeys(keys)

    assert drop.rollback()["restored"] == 3

    assert dumps(client, keys) == before
    assert 0 < client.pttl(keys[2]) <= 3_600_000


def test_a_backup_in_the_previous_format_still_rolls_back(server: RedisServer, client: Any) -> None:
    """Backups written before this format (no header; ``key`` as text with surrogate
    escapes, ``key64`` as base64) are read for rollback."""
    odd = b"discord:messages:old-2:project:\xff"
    client.sadd(odd, b"member \xfe")
    payload = client.dump(odd)
    client.delete(odd)
    old_row = {
        "key": odd.decode("utf-8", "backslashreplace"),
        "key64": base64.b64encode(odd).decode("ascii"),
        "pttl": -1,
        "dump": base64.b64encode(payload).decode("ascii"),
    }
    request = WriteRequest(
        "drop-old-indexes", "r1", {"operation": "drop_keys", "pattern": "x"}, server.uri
    )
    ctx = RunContext(30, 5)
    try:
        numbers = RedisWriter().rollback(request, iter([json.loads(json.dumps(old_row))]), ctx)
    finally:
        ctx.finish()
    assert numbers["restored"] == 1
    assert client.smembers(odd) == {b"member \xfe"}
