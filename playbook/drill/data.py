"""Data generators for drills: data too large to write out in a runbook, or that must be
dated from the moment the drill runs.

A drill step ``generate: NAME`` (with ``with: {…}`` as keyword arguments) calls the
generator registered under that name in the ``playbook.drill_data`` entry-point group;
the built-in ones are registered in ``pyproject.toml`` exactly as a team's own would be.
A generator takes the target's handle (a redis-py client, a psycopg connection, a
mongomock database, or the HTTP stub) and returns a line saying what it wrote.
"""

from __future__ import annotations

import random
import time
from typing import Any

GROUP = "playbook.drill_data"

SEED_001_MEMBERS = 703_455
"""Members of seed 001's 6,049 index sets."""
SEED_000_MESSAGES = SEED_001_MEMBERS // 3
"""Messages that give seed 001's 703,455 index members when each is in three indexes."""
FAMILIES = {"project": 2001, "channel": 2008, "user": 2040}
"""Index families and how many ids each has: 6,049 index sets in all (seed 001)."""
FIELDS = {"project": "projectId", "channel": "channelId", "user": "authorId"}


def discord_messages(
    client: Any,
    messages: int = SEED_000_MESSAGES,
    seed: int = 0,
    prefix: str = "discord:messages",
    heartbeat: bool = True,
) -> str:
    """Message hashes and the index sets built from them, shaped like seeds 000 and 001.

    Each message (``message:discord:<id>``: id, content, projectId, channelId, authorId)
    names a project (2,001 of them), a channel (2,008) and an author (2,040); every id is
    used at least once, so there are 6,049 index sets ``<prefix>:<family>:<id>``. With the
    default count they hold 703,455 members, as in seed 001. Also writes the healthy
    index count at ``discord:health:lastMessageCount`` and, unless ``heartbeat`` is false,
    a fresh collector heartbeat (300 s expiry).
    """
    if messages < max(FAMILIES.values()):
        raise ValueError(f"messages must be at least {max(FAMILIES.values())} for 6,049 indexes")
    rng = random.Random(seed)
    pipe = client.pipeline(transaction=False)
    indexes: dict[str, list[str]] = {}
    for n in range(messages):
        ident = str(10**18 + n * 7919 + rng.randrange(7919))
        record = {"id": ident, "content": f"message {n}"}
        for family, size in FAMILIES.items():
            value = str(n if n < size else rng.randrange(size))
            record[FIELDS[family]] = value
            indexes.setdefault(f"{prefix}:{family}:{value}", []).append(ident)
        pipe.hset(f"message:discord:{ident}", mapping=record)
        if n % 5_000 == 4_999:
            pipe.execute()
    pipe.execute()
    for n, (key, members) in enumerate(indexes.items()):
        pipe.sadd(key, *members)
        if n % 500 == 499:
            pipe.execute()
    pipe.set("discord:health:lastMessageCount", len(indexes))
    if heartbeat:
        pipe.set("discord:bot:heartbeat", int(time.time()), ex=300)
    pipe.execute()
    members = sum(len(m) for m in indexes.values())
    return f"{messages:,} messages, {len(indexes):,} index sets holding {members:,} members"


INTERACTION_COMMANDS = [
    ("command", "tasks", None),
    ("button", "complete_task", "task:complete"),
    ("command", "allowlist", None),
    ("button", "enter_allowlist", "allowlist:enter"),
    ("command", "link", None),
    ("command", "points", None),
]


def discord_interaction_logs(
    db: Any,
    logs: int = 6,
    guilds: list[str] | None = None,
    users: list[str] | None = None,
    collection: str = "discordinteractionlogs",
) -> str:
    """Interaction logs shaped like seed 004's DiscordInteractionLog, dated from now.

    Log ``n`` (from 0) was written ``n + 1`` minutes ago, in ``guilds[n % len]`` by
    ``users[n % len]``; everything else about it is fixed by ``n``. They are dated from
    the moment the drill starts, not written out in the runbook, because the schema
    expires them through a 90-day TTL index on ``timing.timestamp``: logs dated in the
    runbook would be deleted by a MongoDB (or a stand-in that honours nested TTL fields)
    once the runbook is 90 days old, and a drill must not depend on when it runs.
    """
    from datetime import UTC, datetime, timedelta

    from bson import ObjectId

    guilds = guilds or ["1100000000000000001"]
    users = users or ["2200000000000000001"]
    now = datetime.now(UTC).replace(microsecond=0)  # MongoDB keeps milliseconds
    docs = []
    for n in range(logs):
        kind, command, custom_id = INTERACTION_COMMANDS[n % len(INTERACTION_COMMANDS)]
        interaction: dict[str, Any] = {"type": kind, "commandName": command}
        if custom_id is not None:
            interaction["customId"] = custom_id
        docs.append(
            {
                "_id": ObjectId(f"6720f4{n:018x}"),
                "interactionId": str(5500000000000000000 + 7919 * n),
                "guildId": guilds[n % len(guilds)],
                "userId": users[n % len(users)],
                "interaction": interaction,
                "timing": {
                    "timestamp": now - timedelta(minutes=n + 1),
                    "responseTime": 80 + 17 * n,
                    "processingTime": 40 + 9 * n,
                },
                "security": {"riskScore": n % 3, "suspiciousActivity": False, "rateLimited": False},
                "businessData": {
                    "pointsAwarded": 50 if command == "complete_task" else 0,
                    "taskCompleted": command == "complete_task",
                    "conversionEvent": command == "enter_allowlist",
                },
            }
        )
    if docs:
        db[collection].insert_many(docs)
    return f"{logs} interaction logs in {collection}, written over the last {logs} minutes"
