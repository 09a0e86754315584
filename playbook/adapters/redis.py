"""Redis diagnostics: key counts, sizes, TTLs, freshness, INFO, baselines, snapshots.

Every command goes through :class:`ReadOnlyGuard`, which asks the server itself
(``COMMAND INFO``, once per run for the commands the operation needs) whether a command
is read-only and refuses anything else, and the expensive or blocking reads, before it is
sent. Keys are walked with ``SCAN`` and a large ``COUNT``, and what is read per key is
pipelined a batch at a time: seed 001's backup made one round trip per key and took ten
minutes through a slow link; this takes a couple of dozen round trips in all.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.client import Pipeline
from redis.retry import Retry

from playbook.adapters.base import Adapter, RunContext, RunError, RunRequest, Sink, scrub
from playbook.adapters.readonly import Refused

SCAN_COUNT = 20_000
"""Keys the server examines per SCAN call unless the query says (``scan_count``)."""
BATCH = 2_000
"""Keys whose details are fetched per pipelined round trip."""
MEMBER_CHUNK = 10_000
"""Members read per SSCAN / HSCAN / ZSCAN / LRANGE call, so no reply is unbounded."""

DENIED = frozenset(
    {
        # walk the whole keyspace in one call, or never return
        "KEYS",
        "MONITOR",
        "SUBSCRIBE",
        "PSUBSCRIBE",
        "SSUBSCRIBE",
        "SYNC",
        "PSYNC",
        "WAIT",
        "WAITAOF",
        # blocking reads: they wait for data instead of answering
        "BLPOP",
        "BRPOP",
        "BRPOPLPUSH",
        "BLMOVE",
        "BLMPOP",
        "BZPOPMIN",
        "BZPOPMAX",
        "BZMPOP",
        "XREAD",
        "XREADGROUP",
        # code and introspection that can stall the server
        "DEBUG",
        "EVAL",
        "EVALSHA",
        "EVAL_RO",
        "EVALSHA_RO",
        "FCALL",
        "FCALL_RO",
        "SCRIPT",
        "FUNCTION",
        "SORT_RO",
    }
)
"""Refused even where the server calls them read-only (expensive or blocking)."""

NON_KEY_READS = frozenset({"INFO", "PING", "COMMAND", "TIME", "ECHO", "DBSIZE"})
"""Reads that touch no key (most of which Redis therefore does not flag ``readonly``)."""


class ReadOnlyGuard:
    """Decides, per command name, whether it may be sent; asks the server's flags once."""

    def __init__(self) -> None:
        self.flags: dict[str, frozenset[str]] = {}

    def learn(self, client: redis.Redis, names: Iterable[str]) -> int:
        """Fetch ``COMMAND INFO`` for ``names``; returns DBSIZE, asked in the same round trip."""
        wanted = sorted({n.upper() for n in names} - set(self.flags) - NON_KEY_READS)
        pipe = Pipeline(client.connection_pool, client.response_callbacks, False, None)
        if wanted:
            pipe.execute_command("COMMAND", "INFO", *wanted)
        pipe.execute_command("DBSIZE")
        *reply, dbsize = pipe.execute()
        for name, info in zip(wanted, reply[0] if reply else [], strict=False):
            flags = info[2] if info else []
            self.flags[name] = frozenset(_text(f) for f in flags)
        return int(dbsize)

    def require(self, client: redis.Redis, name: str) -> None:
        """Raise :class:`Refused` unless ``name`` is a read this guard lets through."""
        upper = name.upper()
        if upper in DENIED:
            raise Refused(
                f"Refused: {upper} is blocking or too expensive for a diagnostic.",
                "Nothing was sent. Use SCAN (for KEYS) or SSCAN / HSCAN (for big collections).",
            )
        if upper in NON_KEY_READS:
            return
        if upper not in self.flags:
            self.learn(client, [upper])
        flags = self.flags[upper]
        if not flags:
            raise Refused(f"Refused: {upper} is not a command this server knows.")
        if "readonly" not in flags or "write" in flags or "admin" in flags:
            raise Refused(
                f"Refused: the server does not flag {upper} as read-only "
                f"({', '.join(sorted(flags))}).",
                "Diagnostics only read; nothing was sent.",
            )


class GuardedRedis(redis.Redis):
    """A client that refuses, before sending, every command the guard does not allow."""

    guard: ReadOnlyGuard

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.guard.require(self, str(args[0]).split(" ")[0])
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = False, shard_hint: Any = None) -> GuardedPipeline:
        if transaction:
            raise Refused("Refused: MULTI/EXEC transactions are for writes.")
        pipe = GuardedPipeline(self.connection_pool, self.response_callbacks, False, shard_hint)
        pipe.guard, pipe.client = self.guard, self
        return pipe


class GuardedPipeline(Pipeline):
    """A pipeline whose commands are checked as they are queued, not when sent."""

    guard: ReadOnlyGuard
    client: GuardedRedis

    def pipeline_execute_command(self, *args: Any, **options: Any) -> Pipeline:
        self.guard.require(self.client, str(args[0]).split(" ")[0])
        return super().pipeline_execute_command(*args, **options)


try:  # no CLIENT SETINFO on connect: two round trips saved per run
    import redis.driver_info

    _NO_CLIENT_SETINFO: dict[str, Any] = {"driver_info": None}
except ImportError:
    _NO_CLIENT_SETINFO = {"lib_name": None, "lib_version": None}


_C = TypeVar("_C", bound=redis.Redis)


def connect(uri: str, ctx: RunContext) -> GuardedRedis:
    """A guarded client with no retries and the run's timeouts; closed at stop."""
    client = open_client(uri, ctx, GuardedRedis)
    client.guard = ReadOnlyGuard()
    client.set_response_callback("COMMAND", lambda reply, **_: reply)  # raw flags, no parsing
    return client


def open_client(uri: str, ctx: RunContext, cls: type[_C]) -> _C:
    """A client of ``cls`` with no retries and the run's timeouts; closed at stop."""
    try:
        client = cls.from_url(
            uri,
            socket_connect_timeout=ctx.connect_timeout,
            socket_timeout=ctx.timeout,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
            max_connections=1,  # commands and pipelines share one connection
            protocol=2,  # RESP2: one AUTH on connect, no HELLO or notification set-up
            **_NO_CLIENT_SETINFO,
        )
    except ValueError as exc:
        raise RunError(f"The target's URI is not a Redis URI: {scrub(str(exc), uri)}") from None
    ctx.on_stop(client.connection_pool.disconnect)
    return client


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


class RedisAdapter(Adapter):
    """Reads Redis with SCAN and pipelines; never KEYS, never a write."""

    kind = "redis"
    description = "Redis (redis-py): key counts, sizes, TTLs, freshness, INFO, snapshots"

    OPS: ClassVar[dict[str, tuple[str, ...]]] = {
        "count_keys": ("SCAN",),
        "collection_sizes": ("SCAN", "TYPE", "SCARD", "HLEN", "ZCARD", "LLEN"),
        "ttl_audit": ("SCAN", "PTTL"),
        "freshness": ("GET", "TYPE"),
        "dbsize": (),
        "info": ("INFO",),
        "baseline": ("SCAN", "GET"),
        "snapshot": (
            "SCAN",
            "TYPE",
            "PTTL",
            "SSCAN",
            "HSCAN",
            "ZSCAN",
            "LRANGE",
            "GET",
            "XRANGE",
            "LLEN",
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
            raw = client.get(str(query["baseline_key"]))
            if raw is None:
                raise RunError(
                    f"No baseline is recorded at {query['baseline_key']!r}.",
                    "Record the healthy count there, or give the baseline as a parameter.",
                )
            try:
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
        key = str(query["key"])
        kind = client.type(key)
        if kind == b"none":
            sink.add({"key": key, "present": False})
            return {"present": False, "age_seconds": None}
        if kind != b"string":
            raise RunError(f"{key!r} is a {_text(kind)}, not a string holding a time.")
        raw = _text(client.get(key))
        moment = _parse_moment(raw)
        if moment is None:
            raise RunError(
                f"{key!r} holds {raw[:40]!r}, which is not a time.",
                "Freshness reads a Unix time (seconds or milliseconds) or an ISO 8601 time.",
            )
        age = round(time.time() - moment.timestamp(), 3)
        sink.add({"key": key, "present": True, "value": raw, "time": moment.isoformat()})
        return {"present": True, "age_seconds": age}

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
        types and TTLs of the next, so a batch costs one round trip, not two.
        """
        keys_done = members = 0
        by_type: dict[str, int] = {}
        batches = self._batches(client, str(query["pattern"]), ctx)
        keys = next(batches, None)
        heads: list[Any] = self._round_trip(client, ctx, [], keys or [])
        while keys is not None:
            for reply in heads:
                if isinstance(reply, Exception):
                    raise reply
            entries = [
                _Entry(key, _text(heads[2 * i]), int(heads[2 * i + 1]))
                for i, key in enumerate(keys)
            ]
            live = [e for e in entries if e.kind != "none"]  # expired since SCAN
            upcoming = next(batches, None)
            pending, heads_next = live, upcoming or []
            while pending or heads_next:  # usually once; big collections take more
                replies = self._round_trip(client, ctx, pending, heads_next)
                heads = replies[len(pending) :] if heads_next else heads
                heads_next = []
                pending = [e for e, r in zip(pending, replies, strict=False) if not e.take(r)]
            for entry in live:
                sink.add_bytes(entry.line())
                members += entry.size
                by_type[entry.kind] = by_type.get(entry.kind, 0) + 1
            keys_done += len(live)
            ctx.progress(keys_done, None, "keys saved")
            keys = upcoming
        return {
            "count": keys_done,
            "members": members,
            **{f"{k}_keys": v for k, v in by_type.items()},
        }

    @staticmethod
    def _round_trip(
        client: GuardedRedis, ctx: RunContext, entries: list[_Entry], head_keys: list[bytes]
    ) -> list[Any]:
        """One pipeline: the next part of each entry's value, then TYPE and PTTL of keys."""
        if not entries and not head_keys:
            return []
        pipe = client.pipeline()
        for entry in entries:
            entry.queue(pipe)
        for key in head_keys:
            pipe.type(key)
            pipe.pttl(key)
        replies = pipe.execute(raise_on_error=False)
        ctx.check()
        return replies


class _Entry:
    """One key being copied: its type, TTL and the value read so far."""

    __slots__ = ("cursor", "cursor_id", "key", "kind", "size", "ttl_ms", "value")

    def __init__(self, key: bytes, kind: str, ttl_ms: int) -> None:
        self.key, self.kind, self.ttl_ms = key, kind, ttl_ms
        self.cursor = 0
        self.cursor_id = ""
        self.size = 0
        self.value: Any = [] if kind in ("set", "list", "zset", "stream") else {}

    def queue(self, pipe: Pipeline) -> None:
        k, c = self.key, self.cursor
        if self.kind == "set":
            pipe.sscan(k, c, count=MEMBER_CHUNK)
        elif self.kind == "hash":
            pipe.hscan(k, c, count=MEMBER_CHUNK)
        elif self.kind == "zset":
            pipe.zscan(k, c, count=MEMBER_CHUNK)
        elif self.kind == "list":
            pipe.lrange(k, c, c + MEMBER_CHUNK - 1)
        elif self.kind == "stream":
            pipe.xrange(k, min="-" if not c else f"({self.cursor_id}", count=MEMBER_CHUNK)
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
                for field_, v in chunk.items():
                    self.value[_text(field_)] = _value(v)
                self.size = len(self.value)
            else:
                self.value.extend([_value(m), s] for m, s in chunk)
                self.size += len(chunk)
            self.cursor = int(cursor)
            return self.cursor == 0
        if kind == "list":
            self.value.extend(reply)
            self.size += len(reply)
            self.cursor += MEMBER_CHUNK
            return len(reply) < MEMBER_CHUNK
        if kind == "stream":
            for entry_id, fields in reply:
                self.value.append(
                    [_text(entry_id), {_text(f): _value(v) for f, v in fields.items()}]
                )
            self.size += len(reply)
            if reply:
                self.cursor = 1
                self.cursor_id = _text(reply[-1][0])
            return len(reply) < MEMBER_CHUNK
        self.value = _value(reply)
        self.size = 1
        return True

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
