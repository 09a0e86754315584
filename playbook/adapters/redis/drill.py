"""What a drill does to a Redis target, in redis-py: its set-up steps and its fingerprint.

The drill (:mod:`playbook.drill`) decides what happens and when; this is how it happens
on Redis, beside the reader and the writer. The handle is the drill's client, logged in as
an ACL user that may run data commands only (the sandbox's doing, not this module's).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import Any

DELETE_BATCH = 1_000
"""Keys unlinked per command when a step deletes by pattern."""
READ_BATCH = 2_000
"""Keys whose type and value are read per pipelined round trip for a fingerprint."""
SCAN_COUNT = 10_000
"""Keys the server examines per SCAN call (the sandbox's data is small: fewer trips)."""


def run_commands(client: Any, commands: Iterable[Sequence[str | int]]) -> int:
    """Send each command as written (a drill's ``redis:`` step); how many were sent."""
    sent = 0
    for command in commands:
        client.execute_command(*command)
        sent += 1
    return sent


def delete_matching(client: Any, pattern: str) -> int:
    """Unlink every key matching ``pattern`` (a drill's ``delete:`` step); how many."""
    deleted = 0
    batch: list[bytes] = []
    for key in client.scan_iter(match=pattern, count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= DELETE_BATCH:
            deleted += client.unlink(*batch)
            batch = []
    if batch:
        deleted += client.unlink(*batch)
    return deleted


def fingerprint(client: Any, patterns: Iterable[str]) -> dict[str, str]:
    """Every key matching ``patterns`` -> a digest of its type and whole value.

    A set's members and a hash's fields are sorted first: the server's order is not the
    data's. Other types go by their content (a list, a sorted set with scores) or, for a
    string and anything else, by ``DUMP``.
    """
    keys: list[bytes] = sorted(
        {k for p in patterns for k in client.scan_iter(match=p, count=SCAN_COUNT)}
    )
    out: dict[str, str] = {}
    for start in range(0, len(keys), READ_BATCH):
        chunk = keys[start : start + READ_BATCH]
        pipe = client.pipeline(transaction=False)
        for key in chunk:
            pipe.type(key)
        kinds = pipe.execute()
        for key, kind in zip(chunk, kinds, strict=True):
            if kind == b"set":
                pipe.smembers(key)
            elif kind == b"hash":
                pipe.hgetall(key)
            elif kind == b"zset":
                pipe.zrange(key, 0, -1, withscores=True)
            elif kind == b"list":
                pipe.lrange(key, 0, -1)
            else:
                pipe.dump(key)
        for key, kind, value in zip(chunk, kinds, pipe.execute(), strict=True):
            if kind == b"set":
                value = sorted(value)
            elif kind == b"hash":
                value = sorted(value.items())
            out[key.decode("utf-8", "backslashreplace")] = digest((kind, value))
    return out


def digest(value: Any) -> str:
    """A short digest of a value as Python writes it (the drill's, for every back end)."""
    return hashlib.sha256(repr(value).encode()).hexdigest()[:20]
