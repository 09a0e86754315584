"""Redis diagnostics: key counts, sizes, TTLs, freshness, INFO, baselines, snapshots.

Every command goes through the read-only guard of :mod:`playbook.adapters.redis.client`,
which asks the server itself (``COMMAND INFO``, once per run for the commands the
operation needs) whether a command is read-only and refuses anything else, and the
expensive or blocking reads, before it is sent. Keys are walked with ``SCAN`` and a large
``COUNT``, and what is read per key is pipelined a batch at a time: seed 001's backup made
one round trip per key and took ten minutes through a slow link; this takes a couple of
dozen round trips in all.

No reply is held whole past :data:`~playbook.adapters.redis.values.MAX_REPLY` (64 MB). A
value's size is asked first, in the same pipelined round trip as its type and TTL
(``MEMORY USAGE`` where the server lets a read-only client send it, else ``STRLEN``), and
a snapshot then reads a value that size allows with one command, and streams a bigger one
to the result file in chunks (``GETRANGE`` for a string, ``SSCAN``/``HSCAN``/``ZSCAN``/
``LRANGE``/``XRANGE`` sized by the collection's cardinality) without ever holding it.
Underneath, the connection itself counts the bytes of each reply as they arrive and drops
the connection when one passes the cap (a key name, a value that grew since it was
measured, a collection whose sampled size was wrong): the run ends with an error instead
of the process taking gigabytes.

redis-py is imported only when a diagnostic runs (:meth:`RedisAdapter.run`): the
playbook model reads this class on every load, and redis-py costs about 80 ms.
"""

from __future__ import annotations

import base64
import math
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from playbook.adapters.base import Adapter, Refused, RunContext, RunError, RunRequest, Sink, scrub
from playbook.adapters.redis.models import SNAPSHOT_TYPES, RedisAction, RedisDiagnostic
from playbook.adapters.redis.values import (
    _CARDINALITY,
    MEMBER_CHUNK,
    ROUND_TRIP_BYTES,
    STREAM_OVER,
    TEXT_READ,
    VALUE_CHUNK,
    _encode,
    _Entry,
    _strings_lines,
    _text,
    _value,
)

if TYPE_CHECKING:
    from playbook.adapters.redis.client import GuardedRedis

__all__ = ["BATCH", "SCAN_COUNT", "RedisAdapter"]

SCAN_COUNT = 20_000
"""Keys the server examines per SCAN call unless the query says (``scan_count``)."""
BATCH = 2_000
"""Keys whose details are fetched per pipelined round trip."""


class RedisAdapter(Adapter):
    """Reads Redis with SCAN and pipelines; never KEYS, never a write."""

    kind = "redis"
    description = "Redis (redis-py): key counts, sizes, TTLs, freshness, INFO, snapshots"
    diagnostic_model = RedisDiagnostic
    action_model = RedisAction

    OPS: ClassVar[dict[str, tuple[str, ...]]] = {
        "count_keys": ("SCAN",),
        "collection_sizes": ("SCAN", "TYPE", "SCARD", "HLEN", "ZCARD", "LLEN"),
        "ttl_audit": ("SCAN", "PTTL"),
        "freshness": ("TYPE", "STRLEN", "GETRANGE"),
        "dbsize": (),
        "info": ("INFO",),
        "baseline": ("SCAN", "TYPE", "STRLEN", "GETRANGE"),
        "snapshot": (
            "SCAN",
            "TYPE",
            "PTTL",
            "MEMORY",
            "STRLEN",
            "SSCAN",
            "HSCAN",
            "ZSCAN",
            "LRANGE",
            "GET",
            "GETRANGE",
            "XRANGE",
            "SCARD",
            "HLEN",
            "ZCARD",
            "LLEN",
            "XLEN",
        ),
    }
    """The commands each operation sends (asked about in one COMMAND INFO)."""

    dbsize = 0
    """Keys in the database when the run started (asked with the guard's flags)."""
    scan_count = SCAN_COUNT

    def check(self, request: RunRequest) -> None:
        op = request.query.get("op")
        if op not in self.OPS:
            raise Refused(f"Refused: {op!r} is not a Redis diagnostic operation.")
        pattern = request.query.get("pattern")
        if op in ("count_keys", "collection_sizes", "ttl_audit", "baseline", "snapshot") and (
            not isinstance(pattern, str) or not pattern
        ):
            raise RunError(f"The {op} diagnostic needs a key pattern.")
        if op == "freshness" and not request.query.get("key"):
            raise RunError("The freshness diagnostic needs a key.")

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        import redis  # deferred: see the module's docstring

        from playbook.adapters.redis.client import connect

        query = request.query
        op = str(query["op"])
        client: GuardedRedis | None = None
        try:
            client = connect(request.uri, ctx)
            ctx.check()
            self.dbsize = client.guard.learn(client, self.OPS[op])
            ctx.connected()
            self.scan_count = int(query.get("scan_count") or SCAN_COUNT)
            return getattr(self, f"_{op}")(client, query, ctx, sink)
        except redis.AuthenticationError:
            raise RunError("Redis refused the credentials in the target's URI.") from None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            if ctx.stopped:
                raise ctx.stop_error() from None
            raise RunError(
                f"Redis connection failed: {scrub(str(exc), request.uri)}",
                f"Check the target and that the server answers within {ctx.connect_timeout:g} s.",
            ) from None
        except redis.ResponseError as exc:
            raise RunError(
                f"Redis answered with an error: {scrub(str(exc), request.uri)}"
            ) from None
        finally:
            if client is not None:
                client.close()

    # ------------------------------------------------------------------ walking keys

    def _scan(
        self, client: GuardedRedis, pattern: str, ctx: RunContext, unit: str = "keys examined"
    ) -> Iterator[list[bytes]]:
        total = self.dbsize
        examined = 0
        cursor = 0
        while True:
            ctx.check()
            cursor, keys = client.scan(cursor, match=pattern, count=self.scan_count)
            examined += self.scan_count
            examined = min(total, examined) if total else examined
            ctx.progress(examined, total, unit)
            if keys:
                yield keys
            if int(cursor) == 0:
                ctx.progress(total, total, unit, force=True)
                return

    def _scan_ahead(
        self, client: GuardedRedis, pattern: str, ctx: RunContext
    ) -> Iterator[list[bytes]]:
        """Like :meth:`_scan`, but the next SCAN is sent before this batch is handed on.

        The server walks the next stretch of the keyspace while the client writes out the
        last one, so the client's work hides behind the server's. Only for callers that
        send nothing else while iterating: the one connection is busy with the SCAN.
        """
        client.guard.require(client, "SCAN")
        total = self.dbsize
        examined = 0
        pool = client.connection_pool
        conn = pool.get_connection()
        args = ("MATCH", pattern, "COUNT", self.scan_count)
        try:
            conn.send_command("SCAN", 0, *args)
            while True:
                cursor_raw, keys = conn.read_response()
                ctx.check()
                cursor = int(cursor_raw)
                if cursor != 0:
                    conn.send_command("SCAN", cursor, *args)
                examined = min(total, examined + self.scan_count) if total else examined
                ctx.progress(examined, total, "keys examined")
                if keys:
                    yield keys
                if cursor == 0:
                    ctx.progress(total, total, "keys examined", force=True)
                    return
        except BaseException:
            conn.disconnect()  # a reply may still be on its way: never reuse this connection
            raise
        finally:
            pool.release(conn)

    def _batches(
        self, client: GuardedRedis, pattern: str, ctx: RunContext
    ) -> Iterator[list[bytes]]:
        """Matching keys in batches of at most :data:`BATCH`."""
        pending: list[bytes] = []
        for keys in self._scan(client, pattern, ctx):
            pending.extend(keys)
            while len(pending) >= BATCH:
                yield pending[:BATCH]
                del pending[:BATCH]
        if pending:
            yield pending

    # ------------------------------------------------------------------ operations

    def _count_keys(
        self, client: GuardedRedis, query: dict[str, Any], ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        count = 0
        for keys in self._scan_ahead(client, str(query["pattern"]), ctx):
            count += len(keys)
            sink.add_block(_strings_lines(keys), len(keys))
        return {"count": count}

    def _baseline(
        self, client: GuardedRedis, query: dict[str, Any], ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        baseline = query.get("baseline")
        if baseline is None and query.get("baseline_key"):
            kind, length, raw = _peek(client, str(query["baseline_key"]))
            if kind == "none":
                raise RunError(
                    f"No baseline is recorded at {query['baseline_key']!r}.",
                    "Record the healthy count there, or give the baseline as a parameter.",
                )
            try:
                if kind != "string" or length > TEXT_READ:
                    raise ValueError(kind)
                baseline = int(float(raw))
            except ValueError:
                raise RunError(
                    f"The baseline at {query['baseline_key']!r} is not a number."
                ) from None
        if baseline is None:
            raise RunError("The baseline diagnostic needs a baseline_key or a baseline value.")
        metrics = self._count_keys(client, query, ctx, sink)
        count, base = metrics["count"], int(baseline)
        change = (count - base) * 100.0 / base if base else 0.0
        return {
            "count": count,
            "baseline": base,
            "change_percent": round(change, 2),
            "drop_percent": round(max(0.0, -change), 2),
        }

    def _collection_sizes(
        self, client: GuardedRedis, query: dict[str, Any], ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        size_of = {b"set": "scard", b"hash": "hlen", b"zset": "zcard", b"list": "llen"}
        count = total = 0
        largest: int | None = None
        smallest: int | None = None
        for keys in self._batches(client, str(query["pattern"]), ctx):
            pipe = client.pipeline()
            for key in keys:
                pipe.type(key)
            types = pipe.execute()
            ctx.check()
            pipe = client.pipeline()
            sized = [(k, t) for k, t in zip(keys, types, strict=True) if t in size_of]
            for key, kind in sized:
                getattr(pipe, size_of[kind])(key)
            sizes = pipe.execute() if sized else []
            for (key, kind), size in zip(sized, sizes, strict=True):
                n = int(size)
                count += 1
                total += n
                largest = n if largest is None else max(largest, n)
                smallest = n if smallest is None else min(smallest, n)
                sink.add({"key": _text(key), "type": _text(kind), "size": n})
        return {
            "count": count,
            "total_members": total,
            "largest": largest,
            "smallest": smallest,
            "mean": round(total / count, 1) if count else 0,
        }

    def _ttl_audit(
        self, client: GuardedRedis, query: dict[str, Any], ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        count = with_ttl = 0
        for keys in self._batches(client, str(query["pattern"]), ctx):
            pipe = client.pipeline()
            for key in keys:
                pipe.pttl(key)
            for key, ttl in zip(keys, pipe.execute(), strict=True):
                ms = int(ttl)
                if ms == -2:  # expired between SCAN and PTTL
                    continue
                count += 1
                with_ttl += ms >= 0
                sink.add(
                    {"key": _text(key), "ttl_seconds": round(ms / 1000, 3) if ms >= 0 else None}
                )
        without = count - with_ttl
        return {
            "count": count,
            "with_ttl": with_ttl,
            "without_ttl": without,
            "with_ttl_percent": round(with_ttl * 100 / count, 2) if count else 0.0,
        }

    def _freshness(
        self, client: GuardedRedis, query: dict[str, Any], ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        from playbook.core.diagnostics import age_metrics

        key = str(query["key"])
        kind, length, head = _peek(client, key)
        if kind == "none":
            sink.add({"key": key, "present": False})
            return {"present": False, "age_seconds": None}
        if kind != "string":
            raise RunError(f"{key!r} is a {kind}, not a string holding a time.")
        if length > TEXT_READ:
            raise RunError(
                f"{key!r} holds {length:,} bytes, which is not a time.",
                "Freshness reads a Unix time (seconds or milliseconds) or an ISO 8601 time.",
            )
        raw = _text(head)
        moment = _parse_moment(raw)
        if moment is None:
            raise RunError(
                f"{key!r} holds {raw[:40]!r}, which is not a time.",
                "Freshness reads a Unix time (seconds or milliseconds) or an ISO 8601 time.",
            )
        # A time ahead of this machine's clock, beyond a small skew, has no age: the
        # age is then absent and ahead_seconds says by how much (clocks disagree).
        ages = age_metrics("", moment.timestamp(), time.time())
        sink.add({"key": key, "present": True, "value": raw, "time": moment.isoformat(), **ages})
        return {"present": True, **ages}

    def _dbsize(
        self, client: GuardedRedis, query: dict[str, Any], ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        count = self.dbsize
        sink.add({"dbsize": count})
        return {"count": count}

    def _info(
        self, client: GuardedRedis, query: dict[str, Any], ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        section = query.get("section")
        info = client.info(section) if section else client.info()
        metrics: dict[str, Any] = {}
        for name, value in _flatten(info):
            sink.add({"field": name, "value": value})
            if isinstance(value, int | float) and not isinstance(value, bool):
                metrics[name] = value
        metrics["count"] = sink.count
        return metrics

    def _snapshot(
        self, client: GuardedRedis, query: dict[str, Any], ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        """Every matching key with its type, TTL and whole value, one JSON line per key.

        Each round trip reads the values of one batch and, in the same pipeline, the
        types, TTLs and sizes of the next, so a batch costs one round trip, not two. The
        values read in one round trip add up to at most :data:`ROUND_TRIP_BYTES` (by
        their measured size), and a key is written out as soon as its value is complete,
        so what is held at once stays bounded. A value over :data:`STREAM_OVER` is
        streamed on its own (:meth:`_stream`): its line is written in parts.
        """
        probe = "MEMORY USAGE" if client.guard.allows(client, "MEMORY USAGE") else "STRLEN"
        keys_done = members = streamed = 0
        by_type: dict[str, int] = {}

        def saved(entry: _Entry) -> None:
            nonlocal keys_done, members
            keys_done += 1
            members += entry.size
            kind = entry.kind if entry.kind in SNAPSHOT_TYPES else "other"
            by_type[kind] = by_type.get(kind, 0) + 1

        batches = self._batches(client, str(query["pattern"]), ctx)
        keys = next(batches, None)
        heads: list[Any] = self._round_trip(client, ctx, [], keys or [], probe)
        while keys is not None:
            entries = [_Entry.probed(key, heads[3 * i : 3 * i + 3]) for i, key in enumerate(keys)]
            live = [e for e in entries if e.kind != "none"]  # expired since SCAN
            big = [e for e in live if e.measured > STREAM_OVER]
            waiting = [e for e in live if e.measured <= STREAM_OVER]
            upcoming = next(batches, None)
            heads_next = upcoming or []
            reading: list[_Entry] = []
            while waiting or reading or heads_next:  # usually once per batch
                held = sum(e.measured for e in reading)
                while waiting and (not reading or held + waiting[0].measured <= ROUND_TRIP_BYTES):
                    held += waiting[0].measured
                    reading.append(waiting.pop(0))
                replies = self._round_trip(client, ctx, reading, heads_next, probe)
                if heads_next:
                    heads = replies[len(reading) :]
                    heads_next = []
                still: list[_Entry] = []
                for entry, reply in zip(reading, replies, strict=False):
                    if entry.take(reply):
                        sink.add_bytes(entry.line())
                        saved(entry)
                    else:
                        still.append(entry)
                reading = still
            for entry in big:
                if self._stream(client, ctx, sink, entry):
                    saved(entry)
                    streamed += 1
            ctx.progress(keys_done, None, "keys saved")
            keys = upcoming
        return {
            "count": keys_done,
            "members": members,
            **({"streamed_keys": streamed} if streamed else {}),
            **{f"{k}_keys": v for k, v in by_type.items()},
        }

    @staticmethod
    def _round_trip(
        client: GuardedRedis,
        ctx: RunContext,
        entries: list[_Entry],
        head_keys: list[bytes],
        probe: str = "STRLEN",
    ) -> list[Any]:
        """One pipeline: the next part of each entry's value, then TYPE, PTTL and the size
        (``probe``: ``MEMORY USAGE`` or ``STRLEN``) of the next keys."""
        if not entries and not head_keys:
            return []
        pipe = client.pipeline()
        for entry in entries:
            entry.queue(pipe)
        for key in head_keys:
            pipe.type(key)
            pipe.pttl(key)
            pipe.execute_command(*probe.split(" "), key)
        replies = pipe.execute(raise_on_error=False)
        ctx.check()
        return replies

    def _stream(self, client: GuardedRedis, ctx: RunContext, sink: Sink, entry: _Entry) -> bool:
        """Write one big value to the sink in parts, never holding it; False if it went
        away meanwhile. Memory keeps a stub row (key, type, size) in its place."""
        card = 0
        if entry.kind != "string":
            command = _CARDINALITY.get(entry.kind)
            if command is None:  # a module type: nothing to read it with
                return False
            card = int(client.execute_command(command, entry.key) or 0)
            if not card:
                return False
            per_member = max(1, entry.measured // card)
            entry.count = max(1, min(MEMBER_CHUNK, VALUE_CHUNK // per_member))
        stub = {
            "key": _value(entry.key),
            "type": entry.kind,
            "ttl_ms": entry.ttl_ms,
            "streamed": True,
            "bytes": entry.measured,
            "value": f"… ({entry.measured:,} bytes: streamed to the result file)",
        }
        sink.add_parts(self._parts(client, ctx, entry), stub)
        return True

    def _parts(self, client: GuardedRedis, ctx: RunContext, entry: _Entry) -> Iterator[bytes]:
        """A streamed key's JSON line, a chunk at a time (a string's value as base64)."""
        key = _encode(_value(entry.key))
        yield (
            f'{{"key":{key},"type":"{entry.kind}","ttl_ms":{entry.ttl_ms},"streamed":true,"value":'
        ).encode()
        if entry.kind == "string":
            yield b'{"$base64":"'
            offset = 0
            while True:
                ctx.check()
                chunk = client.getrange(entry.key, offset, offset + VALUE_CHUNK - 1)
                yield base64.b64encode(chunk)
                offset += len(chunk)
                entry.size = 1
                ctx.progress(offset, entry.measured, "bytes of a large value")
                if len(chunk) < VALUE_CHUNK:
                    break
            yield b'"}}'
            return
        close = b"}" if entry.kind == "hash" else b"]"
        yield b"{" if entry.kind == "hash" else b"["
        first = True
        done = False
        while not done:
            ctx.check()
            pipe = client.pipeline()
            entry.queue(pipe)
            (reply,) = pipe.execute(raise_on_error=False)
            done = entry.take(reply)
            body = entry.drain()
            if body:
                yield body if first else b"," + body
                first = False
            ctx.progress(entry.size, None, "members of a large value")
        yield close + b"}"


def _peek(client: GuardedRedis, key: str) -> tuple[str, int, bytes]:
    """(type, length, first :data:`TEXT_READ` bytes) of a key that should hold a short
    string, in one round trip and never more than that many bytes of its value."""
    pipe = client.pipeline()
    pipe.type(key)
    pipe.strlen(key)
    pipe.getrange(key, 0, TEXT_READ - 1)
    kind_raw, length, head = pipe.execute(raise_on_error=False)
    if isinstance(kind_raw, Exception):
        raise kind_raw
    kind = _text(kind_raw)
    if kind != "string":
        return kind, 0, b""
    for reply in (length, head):
        if isinstance(reply, Exception):
            raise reply
    return kind, int(length), bytes(head)


def _parse_moment(raw: str) -> datetime | None:
    text = raw.strip()
    try:
        number = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not math.isfinite(number) or number <= 0:
        return None
    if number > 1e11:  # milliseconds since the epoch
        number /= 1000
    return datetime.fromtimestamp(number, UTC)


def _flatten(info: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, value in info.items():
        here = f"{prefix}{name}"
        if isinstance(value, dict):
            yield from _flatten(value, here + ".")
        else:
            yield here, value
