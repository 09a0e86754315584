"""How a Redis diagnostic reads values: the cap on a single reply, and values as JSON.

Kept apart from :mod:`playbook.adapters.redis.reader` (the operations) and
:mod:`playbook.adapters.redis.client` (the read-only guard and the reply cap, which
enforces :data:`MAX_REPLY`) so each stays readable. Two things live here:

* :class:`_Entry`: one key of a snapshot being read, a chunk at a time, then written as
  one JSON line (or, for a big value, drained chunk by chunk into the result file);
* the encoders: a value as JSON text when it is UTF-8, else ``{"$base64": …}``.
"""

from __future__ import annotations

import base64
import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from redis.client import Pipeline

MEMBER_CHUNK = 10_000
"""Members read per SSCAN / HSCAN / ZSCAN / LRANGE call, so no reply is unbounded."""
MAX_REPLY = 64 * 2**20
"""The largest single reply a diagnostic reads (bytes on the wire). Past it the
connection is dropped and the run ends with an error; nothing bigger is ever held."""
STREAM_OVER = 8 * 2**20
"""A snapshot streams a value whose measured size is over this, alone, in chunks; a
smaller one is read whole (and a set's members sorted)."""
ROUND_TRIP_BYTES = 32 * 2**20
"""Measured bytes of the values a snapshot reads in one pipelined round trip (and so
holds at once). The seed's 6,049 index sets take a few MB: still one round trip a batch."""
VALUE_CHUNK = 3 * 2**20
"""Bytes a streamed string is read in (GETRANGE), and the aim for a streamed collection's
chunk. A multiple of 3, so that its base64 pieces join into one base64 text."""
TEXT_READ = 256
"""Bytes read of a value that should be a time or a number (freshness, baseline)."""


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


def _values(raws: list[bytes]) -> list[Any]:
    """Many members at once (the snapshot's hot path: one list comprehension)."""
    try:
        return [m.decode("utf-8") for m in raws]
    except UnicodeDecodeError:
        return [_value(m) for m in raws]


def _value(raw: Any) -> Any:
    """A member or value as JSON: text if it is UTF-8, else ``{"$base64": ...}``."""
    if isinstance(raw, bytes):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"$base64": base64.b64encode(raw).decode("ascii")}
    return raw


_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


_CARDINALITY = {"set": "SCARD", "hash": "HLEN", "zset": "ZCARD", "list": "LLEN", "stream": "XLEN"}


class _Entry:
    """One key being copied: its type, TTL, measured size and the value read so far."""

    __slots__ = (
        "count",
        "cursor",
        "cursor_id",
        "key",
        "kind",
        "measured",
        "size",
        "ttl_ms",
        "value",
    )

    def __init__(self, key: bytes, kind: str, ttl_ms: int, measured: int = 0) -> None:
        self.key, self.kind, self.ttl_ms = key, kind, ttl_ms
        self.measured = measured
        """Bytes the server says the value takes (MEMORY USAGE, or STRLEN for a string)."""
        self.count = MEMBER_CHUNK
        self.cursor = 0
        self.cursor_id = ""
        self.size = 0
        self.value: Any = [] if kind in ("set", "list", "zset", "stream") else {}

    @classmethod
    def probed(cls, key: bytes, replies: list[Any]) -> _Entry:
        """An entry from its TYPE, PTTL and size replies."""
        kind, ttl, size = replies
        for reply in (kind, ttl):
            if isinstance(reply, Exception):
                raise reply
        measured = size if isinstance(size, int) and not isinstance(size, bool) else 0
        return cls(key, _text(kind), int(ttl), max(0, measured))

    def queue(self, pipe: Pipeline) -> None:
        k, c, n = self.key, self.cursor, self.count
        if self.kind == "set":
            pipe.sscan(k, c, count=n)
        elif self.kind == "hash":
            pipe.hscan(k, c, count=n)
        elif self.kind == "zset":
            pipe.zscan(k, c, count=n)
        elif self.kind == "list":
            pipe.lrange(k, c, c + n - 1)
        elif self.kind == "stream":
            pipe.xrange(k, min="-" if not c else f"({self.cursor_id}", count=n)
        else:
            pipe.get(k)

    def take(self, reply: Any) -> bool:
        """Add a reply; True when the whole value has been read."""
        if isinstance(reply, Exception):
            raise reply
        kind = self.kind
        if kind in ("set", "hash", "zset"):
            cursor, chunk = reply
            if kind == "set":
                self.value.extend(chunk)  # raw bytes; encoded once, in line()
                self.size += len(chunk)
            elif kind == "hash":
                before = len(self.value)  # HSCAN may repeat a field; count it once
                for field_, v in chunk.items():
                    self.value[_text(field_)] = _value(v)
                self.size += len(self.value) - before
            else:
                self.value.extend([_value(m), s] for m, s in chunk)
                self.size += len(chunk)
            self.cursor = int(cursor)
            return self.cursor == 0
        if kind == "list":
            self.value.extend(reply)
            self.size += len(reply)
            self.cursor += self.count
            return len(reply) < self.count
        if kind == "stream":
            for entry_id, fields in reply:
                self.value.append(
                    [_text(entry_id), {_text(f): _value(v) for f, v in fields.items()}]
                )
            self.size += len(reply)
            if reply:
                self.cursor = 1
                self.cursor_id = _text(reply[-1][0])
            return len(reply) < self.count
        self.value = _value(reply)
        self.size = 1
        return True

    def drain(self) -> bytes:
        """What was read since the last drain, as JSON without its brackets (streaming)."""
        if not self.value:
            return b""
        if self.kind in ("set", "list"):
            body = _members_json(self.value)
        else:
            body = _encode(self.value).encode("utf-8")
        self.value = {} if self.kind == "hash" else []
        return body[1:-1]

    def line(self) -> bytes:
        """The key as one JSON line (bytes, UTF-8)."""
        key = _encode(_value(self.key))
        head = f'{{"key":{key},"type":"{self.kind}","ttl_ms":{self.ttl_ms},"value":'

        if self.kind in ("set", "list"):
            if self.kind == "set":  # the server's order is arbitrary; sorted compares cleanly
                self.value.sort()
            body = _members_json(self.value)
        else:
            body = _encode(self.value).encode("utf-8")
        return head.encode("utf-8") + body + b"}"


_NOT_PLAIN = re.compile(rb'["\\\x00-\x1f\x7f-\xff]')


def _strings_lines(items: list[bytes]) -> bytes:
    """Each item as a JSON string on its own line (plain ASCII ones without decoding)."""
    if _NOT_PLAIN.search(b"".join(items)) is None:
        return b'"' + b'"\n"'.join(items) + b'"'
    return "\n".join(_encode(_value(k)) for k in items).encode("utf-8")


def _members_json(members: list[bytes]) -> bytes:
    """A JSON array of members; plain ASCII ones (ids, mostly) are joined without decoding."""
    if not members:
        return b"[]"
    if _NOT_PLAIN.search(b"".join(members)) is None:
        return b'["' + b'","'.join(members) + b'"]'
    return _encode(_values(members)).encode("utf-8")
