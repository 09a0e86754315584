"""Fingerprints of Redis values, read without Lua: equal exactly when the values are.

A guarded action compares values three times: apply checks that what it replaces is
still what the backup holds; it records what it leaves behind; rollback restores only
what is still as the run left it. Each needs a fingerprint that changes when the value
changes and only then.

A digest of ``DUMP`` is not one. A set or hash kept as a hash table serialises in its
table's order, and that order moves while the table rehashes, which reads drive too
(``SISMEMBER`` takes a rehash step), and a key ``RESTORE``d from a ``DUMP`` comes back in
another order. On redis 6.2, a set of two members or more RESTOREd from its own DUMP
gives a different DUMP in most trials, and a set's DUMP changes after a few thousand
``SISMEMBER`` calls. A rollback comparing DUMP digests would keep items nobody changed.

So a fingerprint is taken from the value itself, in a form that does not depend on how
the server stores it: a set's members (or a hash's fields and values) each hashed with
BLAKE2b and summed modulo 2**256, so order does not matter and a set being built can be
fingerprinted member by member (:class:`SetPrint`) without reading it back; a string's,
list's or sorted set's content hashed in order; any other type (streams, modules) by its
``DUMP``, which for those does not move. Every fingerprint names its type, and the
number of members, so values of different types never compare equal.

**Whether a key expires is part of it.** ``EXPIRE`` and ``PERSIST`` are writes: a
rollback that took a key given an expiry since the apply for "as the run left it" would
rename the old value over it and lose that expiry. So a key with a time to live reads as
its value's fingerprint followed by ``+expires`` (:data:`EXPIRES`); one without, as the
value alone, the form every fingerprint had before, so what older runs recorded still
compares. Only the state is in it, not the time left: an expiry counting down is not a
change, and the fingerprint of a key read twice a second apart stays equal. (A new
expiry over an earlier one is therefore not seen; that costs a key whose deadline was
moved being restored with the backup's.)

Reads are pipelined: ``TYPE``, ``SMEMBERS`` and ``PTTL`` of every key in one round trip
(indexes are sets, so that is usually all), then one more for keys of other types.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from playbook.adapters.base import RunError

_MOD = 1 << 256

EXPIRES = "+expires"
"""Appended to the fingerprint of a key that has a time to live (see the module)."""


def _h(data: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(data, digest_size=32).digest(), "big")


def _framed(parts: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


class SetPrint:
    """A set's fingerprint, built one member at a time (members must be distinct).
    About half a second for seed 001's 703,455 members. It is the fingerprint of a set
    without an expiry: the sets a run builds have none."""

    __slots__ = ("count", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0

    def add(self, member: bytes) -> None:
        self.count += 1
        self.total += _h(member)  # reduced once, in text(): Python's ints do not overflow

    def text(self) -> str:
        return f"set:{self.count}:{self.total % _MOD:064x}"


def of_set(members: Iterable[bytes]) -> str:
    """The fingerprint of a set holding ``members``."""
    blake = hashlib.blake2b
    count = total = 0
    for member in members:
        count += 1
        total += int.from_bytes(blake(member, digest_size=32).digest(), "big")
    return f"set:{count}:{total % _MOD:064x}"


def of_hash(fields: dict[bytes, bytes]) -> str:
    total = 0
    for name, value in fields.items():
        total = (total + _h(len(name).to_bytes(8, "big") + name + value)) % _MOD
    return f"hash:{len(fields)}:{total:064x}"


def of_string(value: bytes) -> str:
    return f"string:{hashlib.sha256(value).hexdigest()}"


def of_list(items: list[bytes]) -> str:
    return f"list:{len(items)}:{_framed(items)}"


def of_zset(flat: list[bytes]) -> str:
    """``ZRANGE key 0 -1 WITHSCORES`` as the server sent it: member, score, member, …"""
    return f"zset:{len(flat) // 2}:{_framed(flat)}"


def of_dump(kind: str, payload: bytes) -> str:
    return f"{kind}:dump:{hashlib.sha256(payload).hexdigest()}"


@dataclass(frozen=True)
class Value:
    """A key as read: its fingerprint (None: absent), its time to live in ms (-1: none)
    and, when asked for, its DUMP payload."""

    fingerprint: str | None
    dump: bytes | None = None
    pttl: int = -2


def read(
    client: Any, keys: Sequence[bytes], *, dump: bool = False, atomic: bool = False
) -> dict[bytes, Value]:
    """Each key's :class:`Value`, in one round trip (two when some are not sets).

    ``dump`` adds each key's DUMP payload; ``atomic`` sends each round trip in
    MULTI/EXEC, so a key's payload and fingerprint describe the same value (a backup
    needs that; a compare under WATCH does not: EXEC fails if the key moves after it).

    Raises:
        RunError: a key kept changing type while it was read.
    """
    out: dict[bytes, Value] = {}
    kinds: dict[bytes, str] = {key: "set" for key in keys}
    pending = list(keys)
    for _attempt in range(5):
        pipe = client.pipeline(transaction=atomic)
        for key in pending:
            pipe.type(key)
            _queue_read(pipe, key, kinds[key])
            pipe.pttl(key)
            if dump:
                pipe.dump(key)
        replies = pipe.execute(raise_on_error=False)
        step = 4 if dump else 3
        retry: list[bytes] = []
        for i, key in enumerate(pending):
            kind_reply, content = replies[i * step], replies[i * step + 1]
            if isinstance(kind_reply, Exception):
                raise kind_reply
            kind = kind_reply.decode() if isinstance(kind_reply, bytes) else str(kind_reply)
            if kind == "none":
                out[key] = Value(None)
                continue
            if kind != kinds[key] or isinstance(content, Exception):
                kinds[key] = kind  # read it again with the command for its type
                retry.append(key)
                continue
            pttl_reply = replies[i * step + 2]
            payload = replies[i * step + 3] if dump else None
            for reply in (pttl_reply, payload):
                if isinstance(reply, Exception):
                    raise reply
            pttl = int(pttl_reply)
            if pttl == -2:  # gone between TYPE and PTTL (it expired): absent, as now
                out[key] = Value(None)
                continue
            print_ = _fingerprint(kind, content) + (EXPIRES if pttl >= 0 else "")
            out[key] = Value(print_, payload, pttl)
        if not retry:
            return out
        pending = retry
    raise RunError(
        f"{len(pending):,} keys kept changing type while they were read; nothing was "
        "changed for them.",
        "Something is rewriting them right now; stop it, then run the stage again.",
    )


_READS = {
    "set": ("SMEMBERS",),
    "hash": ("HGETALL",),
    "string": ("GET",),
    "list": ("LRANGE", 0, -1),
    "zset": ("ZRANGE", 0, -1, "WITHSCORES"),
}


def _queue_read(pipe: Any, key: bytes, kind: str) -> None:
    command = _READS.get(kind)
    if command is None:
        pipe.dump(key)
    elif kind == "set":
        pipe.smembers(key)
    elif kind == "hash":
        pipe.hgetall(key)
    else:  # raw replies: ZRANGE's scores as the server wrote them, not floats
        pipe.execute_command(command[0], key, *command[1:])


def _fingerprint(kind: str, content: Any) -> str:
    if kind == "set":
        return of_set(content)
    if kind == "hash":
        return of_hash(content)
    if kind == "string":
        return of_string(content)
    if kind == "list":
        return of_list(list(content))
    if kind == "zset":
        return of_zset(list(content))
    return of_dump(kind, content)
