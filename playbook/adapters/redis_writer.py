"""Guarded actions on Redis: seed 000's safe index rebuild, and dropping keys.

``rebuild_indexes`` never deletes an index. It builds a new version of every index from
the records under ``<prefix>:v-<run>:``, checks each new set against the count of records
that belong in it, and then, in one MULTI/EXEC, renames the live indexes to
``<prefix>:old-<run>:`` and the new ones into their place. A process killed before EXEC
leaves the live indexes untouched; EXEC itself is atomic on the server. The old indexes
stay until a responder drops them with ``drop_keys`` (itself guarded).

``drop_keys`` deletes only the keys its backup holds, in batches, so a key that appears
after the backup is never deleted unsaved.

Backups are DUMP payloads with their TTLs, read in pipelines of :data:`BATCH` keys: the
6,049 index sets of seed 001 take a handful of round trips, not 6,049.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar

import redis
from redis.exceptions import RedisError, WatchError

from playbook.adapters.base import RunContext, RunError, Sink, scrub
from playbook.adapters.redis import SCAN_COUNT, open_client
from playbook.adapters.writers import (
    ITEMS_SHOWN,
    Lock,
    LockHeld,
    NothingWritten,
    Plan,
    Writer,
    WriteRequest,
)

BATCH = 2_000
"""Keys per pipeline when reading sizes, dumping or restoring."""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_READ = """
local out = {}
for i, key in ipairs(KEYS) do
  local kind = redis.call('TYPE', key)['ok']
  if kind == 'hash' then
    out[i] = redis.call('HMGET', key, unpack(ARGV))
  elseif kind == 'string' then
    out[i] = redis.call('GET', key)
  else
    out[i] = false
  end
end
return out
"""
"""Reads a batch of records in one command: the fields of a hash, or a string's JSON."""

_ADD = """
local at = 1
for i, key in ipairs(KEYS) do
  local n = tonumber(ARGV[at])
  redis.call('SADD', key, unpack(ARGV, at + 1, at + n))
  at = at + n + 1
end
return at
"""
"""Adds members to sets in one command: ARGV holds each key's count, then its members."""

SCRIPT_MEMBERS = 4_000
"""Members per SADD inside :data:`_ADD` (Lua's unpack has a stack limit near 8,000)."""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def _text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else raw


def _raw(key: str) -> bytes:
    return key.encode("utf-8", "surrogateescape")


class RedisLock(Lock):
    """``SET name value NX PX ttl``, renewed every third of the TTL while held."""

    def __init__(self, client: redis.Redis, name: str, value: str, ttl_ms: int) -> None:
        self.client = client
        self.name = name
        self.value = value
        self.ttl_ms = ttl_ms
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lock-{name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.ttl_ms / 3000):
            try:
                if not self.client.eval(_RENEW, 1, self.name, self.value, self.ttl_ms):
                    self.lost()  # no longer ours (expired, maybe taken): stop the writing
                    return
            except RedisError:
                continue  # the TTL still frees it if the server stays out of reach

    def release(self) -> None:
        self._stop.set()
        self._thread.join(5)
        try:
            self.client.eval(_RELEASE, 1, self.name, self.value)
        finally:
            self.client.close()


class RedisWriter(Writer):
    """Guarded actions on Redis: ``rebuild_indexes`` and ``drop_keys``."""

    kind: ClassVar[str] = "redis"
    operations: ClassVar[tuple[str, ...]] = ("rebuild_indexes", "drop_keys")

    # ------------------------------------------------------------------ lock

    def lock(self, request: WriteRequest, ctx: RunContext) -> Lock:
        client = self._client(request, ctx)
        value = json.dumps(
            {
                "holder": request.holder,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "run": request.run_id,
            }
        )
        ttl_ms = max(1000, int(request.lock_ttl * 1000))
        try:
            taken = client.set(request.lock_name, value, nx=True, px=ttl_ms)
            ctx.connected()
            if not taken:
                held, left = client.get(request.lock_name), client.pttl(request.lock_name)
                client.close()
                raise LockHeld(*_held_message(request.lock_name, held, left))
        except RedisError as exc:
            client.close()
            raise self._error(exc, request) from None
        # The lock outlives this stage's context: its own socket timeout bounds each call.
        client.connection_pool.connection_kwargs["socket_timeout"] = 5.0
        return RedisLock(client, request.lock_name, value, ttl_ms)

    # ------------------------------------------------------------------ stages

    def plan(self, request: WriteRequest, ctx: RunContext) -> Plan:
        with self._session(request, ctx) as client:
            if request.do["operation"] == "rebuild_indexes":
                return self._plan_rebuild(client, request, ctx)
            return self._plan_drop(client, request, ctx)

    def backup(self, request: WriteRequest, plan: Plan, ctx: RunContext, out: Sink) -> int:
        with self._session(request, ctx) as client:
            keys: list[str] = plan.private["backup"]
            absent: list[str] = plan.private.get("absent", [])
            saved: set[str] = plan.private.setdefault("saved", set())
            done = 0
            for start in range(0, len(keys), BATCH):
                ctx.check()
                chunk = keys[start : start + BATCH]
                pipe = client.pipeline(transaction=False)
                for key in chunk:
                    pipe.dump(_raw(key))
                    pipe.pttl(_raw(key))
                replies = pipe.execute()
                for i, key in enumerate(chunk):
                    payload, ttl = replies[2 * i], replies[2 * i + 1]
                    if payload is None:  # gone since the dry run: nothing to restore
                        out.add({**_key_fields(key), "absent": True})
                    else:
                        dump = base64.b64encode(payload).decode("ascii")
                        out.add({**_key_fields(key), "pttl": int(ttl), "dump": dump})
                        saved.add(key)
                done += len(chunk)
                ctx.progress(done, len(keys) + len(absent), "keys backed up")
            for key in absent:
                out.add({**_key_fields(key), "absent": True})
            ctx.progress(len(keys) + len(absent), len(keys) + len(absent), "keys backed up")
            return len(keys) + len(absent)

    def apply(self, request: WriteRequest, plan: Plan, ctx: RunContext) -> dict[str, int]:
        with self._session(request, ctx) as client:
            if request.do["operation"] == "rebuild_indexes":
                return self._apply_rebuild(client, request, plan, ctx)
            return self._apply_drop(client, request, plan, ctx)

    def rollback(
        self, request: WriteRequest, backup: Iterator[dict[str, Any]], ctx: RunContext
    ) -> dict[str, int]:
        restored = removed = 0
        with self._session(request, ctx) as client:
            pending: list[dict[str, Any]] = []

            def flush() -> None:
                nonlocal restored, removed
                pipe = client.pipeline(transaction=False)
                for row in pending:
                    key = base64.b64decode(row["key64"]) if "key64" in row else _raw(row["key"])
                    if row.get("absent"):
                        pipe.delete(key)
                        removed += 1
                    else:
                        ttl = int(row["pttl"])
                        pipe.restore(
                            key,
                            max(ttl, 0),
                            base64.b64decode(row["dump"]),
                            replace=True,
                        )
                        restored += 1
                pipe.execute()
                pending.clear()
                ctx.check()
                ctx.progress(restored + removed, None, "keys restored")

            for row in backup:
                pending.append(row)
                if len(pending) >= BATCH:
                    flush()
            if pending:
                flush()
            leftovers = 0
            if request.do["operation"] == "rebuild_indexes":
                prefix = request.do["prefix"]
                for space in (f"v-{request.run_id}", f"old-{request.run_id}"):
                    leftovers += self._unlink_matching(client, f"{_glob(prefix)}:{space}:*", ctx)
        return {"restored": restored, "removed": removed, "cleaned": leftovers}

    # ------------------------------------------------------------------ rebuild

    def _plan_rebuild(self, client: redis.Redis, request: WriteRequest, ctx: RunContext) -> Plan:
        do = request.do
        prefix, indexes = do["prefix"], dict(do["indexes"])
        expected: Counter[str] = Counter()
        records = 0
        for pairs, count in self._records(client, request, ctx):
            records += count
            for key, _member in pairs:
                expected[key] += 1
        live = self._live_indexes(client, prefix, indexes, ctx)
        sizes = self._sizes(client, live, ctx)
        create = [k for k in expected if k not in sizes]
        replace = [k for k in expected if k in sizes]
        retire = [k for k in sizes if k not in expected]
        changes = sorted(
            [(abs(expected[k] - sizes.get(k, 0)), k) for k in expected]
            + [(sizes[k], k) for k in retire],
            reverse=True,
        )
        items = []
        for _delta, key in changes[:ITEMS_SHOWN]:
            if key in expected:
                verb = "replace" if key in sizes else "create"
                items.append(f"{verb} {key}: {sizes.get(key, 0):,} -> {expected[key]:,} members")
            else:
                items.append(f"retire {key} ({sizes[key]:,} members, no record points to it)")
        warnings = []
        if records == 0:
            warnings.append(
                f"No record matches {do['source']!r}: the rebuild would leave no index at all. "
                "It will refuse to apply."
            )
        if retire:
            warnings.append(
                f"{len(retire):,} live indexes have no record; they move to the old indexes."
            )
        return Plan(
            counts={
                "records": records,
                "indexes": len(expected),
                "members": sum(expected.values()),
                "create": len(create),
                "replace": len(replace),
                "retire": len(retire),
                "live_indexes": len(sizes),
            },
            items=items,
            touches=len(sizes) + len(create),
            warnings=warnings,
            private={"backup": sorted(sizes), "absent": sorted(create), "records": records},
        )

    def _apply_rebuild(
        self, client: redis.Redis, request: WriteRequest, plan: Plan, ctx: RunContext
    ) -> dict[str, int]:
        prefix = request.do["prefix"]
        version = f"{prefix}:v-{request.run_id}"
        try:
            expected, records, live = self._build(client, request, plan, ctx, version)
        except BaseException as exc:
            # Only the new version was written: remove it, so the run leaves no trace.
            self._discard(client, version)
            if isinstance(exc, NothingWritten) or not isinstance(exc, RunError | RedisError):
                raise
            why = exc.title if isinstance(exc, RunError) else str(exc)
            raise NothingWritten(
                f"{scrub(why, request.uri)} Nothing was swapped: the live indexes are as "
                "they were.",
                exc.message if isinstance(exc, RunError) else "",
            ) from None
        new_keys = sorted(expected)
        swapped = self._swap(
            client, live, new_keys, prefix, version, f"{prefix}:old-{request.run_id}", ctx
        )
        return {
            "records": records,
            "indexes": len(new_keys),
            "members": sum(expected.values()),
            "swapped": swapped,
            "kept_old": len(live),
        }

    def _build(
        self, client: redis.Redis, request: WriteRequest, plan: Plan, ctx: RunContext, version: str
    ) -> tuple[Counter[str], int, list[str]]:
        """The new version, built and validated; the live indexes it will replace.

        Raises NothingWritten when the swap would lose or leave behind anything the
        backup does not hold.
        """
        do = request.do
        prefix = do["prefix"]
        expected: Counter[str] = Counter()
        records = 0
        carry = client.pipeline(transaction=False)
        for pairs, count in self._records(client, request, ctx, "records indexed", carry):
            # This batch's writes ride with the next batch's reads: one round trip each,
            # two commands (the scripts), however many records.
            grouped: dict[str, list[str]] = {}
            for key, member in pairs:
                grouped.setdefault(key, []).append(member)
                expected[key] += 1
            _queue_adds(carry, {version + k[len(prefix) :]: m for k, m in grouped.items()})
            records += count
        _raise_first(carry.execute(raise_on_error=False))
        if records == 0:
            raise NothingWritten(
                f"No record matches {do['source']!r}; the rebuild stopped before touching "
                "any index.",
                "Check the source pattern; the live indexes are as they were.",
            )
        # Validate every new index against the records that belong in it.
        new_keys = sorted(expected)
        sizes = self._sizes(client, [version + k[len(prefix) :] for k in new_keys], ctx)
        wrong = [k for k in new_keys if sizes.get(version + k[len(prefix) :], 0) != expected[k]]
        if wrong:
            raise NothingWritten(
                f"Validation failed: {len(wrong):,} new indexes do not hold the records that "
                f"belong in them (first: {wrong[0]}). Nothing was swapped.",
                "Records with the same member id, or records written while it ran?",
            )
        ctx.progress(len(new_keys), len(new_keys), "indexes validated", force=True)
        saved: set[str] = plan.private.get("saved", set())
        live = self._live_indexes(client, prefix, dict(do["indexes"]), ctx)
        unsaved = sorted(set(live) - saved)
        if unsaved:
            raise NothingWritten(
                f"{len(unsaved):,} live indexes appeared after the backup (first: {unsaved[0]}); "
                "they would be replaced unsaved. Nothing was swapped.",
                "Stop whatever writes them (the collector?), then run the action again.",
            )
        unrecorded = sorted(set(new_keys) - saved - set(plan.private.get("absent", [])))
        if unrecorded:
            raise NothingWritten(
                f"{len(unrecorded):,} indexes would be created that the backup does not record "
                f"(first: {unrecorded[0]}): records were added after the dry run. Nothing was "
                "swapped.",
                "Run the action again, from its dry run, so the backup covers them.",
            )
        return expected, records, live

    def _swap(
        self,
        client: redis.Redis,
        live: list[str],
        new_keys: list[str],
        prefix: str,
        version: str,
        old: str,
        ctx: RunContext,
    ) -> int:
        """One MULTI/EXEC: live -> old, new -> live. Aborts if a live index is written
        (or one that did not exist appears) between the check and EXEC."""
        ctx.check()
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(*(_raw(k) for k in sorted(set(live) | set(new_keys))))
                pipe.multi()
                for key in live:
                    pipe.rename(_raw(key), _raw(old + key[len(prefix) :]))
                for key in new_keys:
                    pipe.rename(_raw(version + key[len(prefix) :]), _raw(key))
                pipe.execute()
            except WatchError:
                self._discard(client, version)
                raise NothingWritten(
                    "A live index changed during the swap; the swap was abandoned, nothing "
                    "was renamed.",
                    "Stop whatever writes the indexes, then run the action again.",
                ) from None
        ctx.progress(len(new_keys), len(new_keys), "indexes swapped", force=True)
        return len(new_keys)

    def _records(
        self,
        client: redis.Redis,
        request: WriteRequest,
        ctx: RunContext,
        unit: str = "records read",
        carry: redis.client.Pipeline | None = None,
    ) -> Iterator[tuple[list[tuple[str, str]], int]]:
        """(live index key, member) pairs and the number of records, a batch at a time.

        Commands the caller queued on ``carry`` are sent with the next batch's reads.
        """
        do = request.do
        prefix, indexes, member_field = do["prefix"], dict(do["indexes"]), do["member_field"]
        fields = [member_field, *indexes.values()]
        names = list(indexes)
        total = int(client.dbsize())
        done = 0
        for keys in _batched(self._scan(client, do["source"], ctx), request.batch):
            pipe = carry if carry is not None else client.pipeline(transaction=False)
            skip = len(pipe)
            pipe.eval(_READ, len(keys), *keys, *fields)
            replies = pipe.execute(raise_on_error=False)
            _raise_first(replies)
            ctx.check()
            values: dict[bytes, list[Any]] = {}
            for key, got in zip(keys, replies[skip], strict=True):
                if isinstance(got, list):
                    values[key] = got
                elif got is not None:  # a record kept as a JSON string
                    values[key] = _json_fields(got, fields)
            pairs: list[tuple[str, str]] = []
            for key, got in values.items():
                member = got[0] if got[0] is not None else _raw(_text(key).rsplit(":", 1)[-1])
                for name, value in zip(names, got[1:], strict=True):
                    if value is not None and value != b"":
                        pairs.append((f"{prefix}:{name}:{_text(value)}", _text(member)))
            done += len(keys)
            ctx.progress(min(done, total), total, unit)
            yield pairs, len(values)

    def _live_indexes(
        self, client: redis.Redis, prefix: str, indexes: dict[str, str], ctx: RunContext
    ) -> list[str]:
        # One walk of the prefix, sorted out here: a SCAN per index would walk the whole
        # keyspace once for each.
        heads = tuple(f"{prefix}:{name}:" for name in indexes)
        live = {
            text
            for keys in self._scan(client, f"{_glob(prefix)}:*", ctx)
            for text in map(_text, keys)
            if text.startswith(heads)
        }
        return sorted(live)

    # ------------------------------------------------------------------ drop

    def _plan_drop(self, client: redis.Redis, request: WriteRequest, ctx: RunContext) -> Plan:
        keys = sorted(
            {_text(k) for batch in self._scan(client, request.do["pattern"], ctx) for k in batch}
        )
        sizes = self._sizes(client, keys, ctx) if len(keys) <= 100_000 else {}
        items = [
            f"delete {k}" + (f" ({sizes[k]:,} members)" if k in sizes else "")
            for k in keys[:ITEMS_SHOWN]
        ]
        return Plan(
            counts={"delete": len(keys)},
            items=items,
            touches=len(keys),
            private={"backup": keys},
        )

    def _apply_drop(
        self, client: redis.Redis, request: WriteRequest, plan: Plan, ctx: RunContext
    ) -> dict[str, int]:
        # Only keys the backup holds: one gone at backup time and written again since
        # has no copy, so it is not deleted.
        keys = sorted(plan.private.get("saved", set()))
        deleted = 0
        for start in range(0, len(keys), request.batch):
            ctx.check()
            chunk = keys[start : start + request.batch]
            deleted += int(client.unlink(*(_raw(k) for k in chunk)))
            ctx.progress(start + len(chunk), len(keys), "keys deleted")
        return {"deleted": deleted, "planned": len(plan.private["backup"])}

    # ------------------------------------------------------------------ plumbing

    def _session(self, request: WriteRequest, ctx: RunContext) -> _Session:
        return _Session(self, request, ctx)

    def _client(self, request: WriteRequest, ctx: RunContext) -> redis.Redis:
        return open_client(request.uri, ctx, redis.Redis)

    @staticmethod
    def _error(exc: Exception, request: WriteRequest) -> RunError:
        return RunError(f"Redis said: {scrub(str(exc), request.uri)}")

    def _scan(self, client: redis.Redis, pattern: str, ctx: RunContext) -> Iterator[list[bytes]]:
        cursor = 0
        while True:
            ctx.check()
            cursor, keys = client.scan(cursor, match=pattern, count=SCAN_COUNT)
            ctx.connected()
            if keys:
                yield keys
            if int(cursor) == 0:
                return

    def _sizes(self, client: redis.Redis, keys: list[str], ctx: RunContext) -> dict[str, int]:
        """Members of each set that exists (SCARD, pipelined)."""
        sizes: dict[str, int] = {}
        for start in range(0, len(keys), BATCH):
            ctx.check()
            chunk = keys[start : start + BATCH]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.scard(_raw(key))
            for key, size in zip(chunk, pipe.execute(raise_on_error=False), strict=True):
                if isinstance(size, int) and size > 0:
                    sizes[key] = size
        return sizes

    def _discard(self, client: redis.Redis, version: str) -> None:
        """Best effort: remove a new version that will not be swapped in (a later
        rollback of the run removes whatever this could not)."""
        ctx = RunContext(30.0, 5.0)
        try:
            with contextlib.suppress(RedisError, RunError):
                self._unlink_matching(client, f"{_glob(version)}:*", ctx)
        finally:
            ctx.finish()

    def _unlink_matching(self, client: redis.Redis, pattern: str, ctx: RunContext) -> int:
        removed = 0
        for keys in self._scan(client, pattern, ctx):
            removed += int(client.unlink(*keys))
        return removed


class _Session:
    """A client for one stage, its errors turned into RunError; closed at the end."""

    def __init__(self, writer: RedisWriter, request: WriteRequest, ctx: RunContext) -> None:
        self.writer = writer
        self.request = request
        self.ctx = ctx
        self.client: redis.Redis | None = None

    def __enter__(self) -> redis.Redis:
        self.client = self.writer._client(self.request, self.ctx)
        return self.client

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any
    ) -> None:
        if self.client is not None:
            self.client.close()
        if isinstance(exc, RedisError) and not isinstance(exc, WatchError):
            if self.ctx.stopped is not None:
                raise self.ctx.stop_error() from None
            raise self.writer._error(exc, self.request) from None


def _held_message(name: str, held: bytes | None, left_ms: int) -> tuple[str, str]:
    try:
        info = json.loads(held or b"{}")
    except ValueError:
        info = {}
    holder = info.get("holder") or (_text(held) if held else "an unknown holder")
    since = info.get("since", "an unknown time")
    expires = f"; it expires in {max(0, left_ms) // 1000} s" if left_ms and left_ms > 0 else ""
    return (
        f"The lock {name} is held by {holder} since {since}{expires}.",
        "Another responder or script is changing this data. Wait for it, or ask them; "
        "nothing was written.",
    )


def _queue_adds(pipe: redis.client.Pipeline, members: dict[str, list[str]]) -> None:
    """SADD every key's members through :data:`_ADD`, in as few commands as fit."""
    keys: list[bytes] = []
    args: list[str | int] = []
    size = 0
    for key, values in members.items():
        for start in range(0, len(values), SCRIPT_MEMBERS):
            chunk = values[start : start + SCRIPT_MEMBERS]
            if size + len(chunk) > SCRIPT_MEMBERS and keys:
                pipe.eval(_ADD, len(keys), *keys, *args)
                keys, args, size = [], [], 0
            keys.append(_raw(key))
            args.append(len(chunk))
            args.extend(chunk)
            size += len(chunk)
    if keys:
        pipe.eval(_ADD, len(keys), *keys, *args)


def _key_fields(key: str) -> dict[str, str]:
    """A key as a backup row holds it: readable text, and its exact bytes in base64
    (a key need not be UTF-8; the backup file must be)."""
    raw = _raw(key)
    return {
        "key": raw.decode("utf-8", "backslashreplace"),
        "key64": base64.b64encode(raw).decode("ascii"),
    }


def _raise_first(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def _json_fields(raw: bytes | None, fields: list[str]) -> list[Any]:
    try:
        record = json.loads(raw) if raw else {}
    except ValueError:
        record = {}
    if not isinstance(record, dict):
        record = {}
    return [None if record.get(f) is None else str(record[f]).encode() for f in fields]


def _batched(batches: Iterable[list[bytes]], size: int) -> Iterator[list[bytes]]:
    pending: list[bytes] = []
    for keys in batches:
        pending.extend(keys)
        while len(pending) >= size:
            yield pending[:size]
            del pending[:size]
    if pending:
        yield pending


def _glob(text: str) -> str:
    """``text`` with Redis glob characters escaped, for use inside a SCAN pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
