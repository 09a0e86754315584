"""Guarded actions on Redis: seed 000's safe index rebuild, and dropping keys.

(Over 600 lines: each operation's plan, backup, apply and rollback stay side by side,
because they must agree on what is compared and how, item for item; the fingerprints
and the Lua-free reads are in :mod:`playbook.adapters.redis.prints`.)

``rebuild_indexes`` never deletes an index. It builds a new version of every index from
the records under ``<prefix>:v-<run>:``, checks each new set against the count of records
that belong in it, and then, in one MULTI/EXEC under WATCH, renames the live indexes to
``<prefix>:old-<run>:`` and the new ones into their place, once it has checked that
every live index is still what the backup holds (an index a collector wrote to since
would otherwise go back to its backed-up value on rollback, losing the write). A process
killed before EXEC leaves the live indexes untouched; EXEC itself is atomic on the
server. The old indexes stay until a responder drops them with ``drop_keys`` (itself
guarded); a rollback renames them back, which gives each index back byte for byte.

``drop_keys`` deletes, a batch at a time under WATCH, only the keys its backup holds and
only while they are still as the backup saw them, so a key that appears or changes after
the backup is never deleted unsaved.

Rollback, a batch at a time: WATCH the keys, read their fingerprints, and in the same
MULTI/EXEC put back only those still as the run left them (:class:`~playbook.adapters.
writers.Undo`); a key written since is kept and named. Fingerprints are of the values
themselves, not of DUMP payloads (:mod:`playbook.adapters.redis.prints` says why).

**Bytes are bytes.** Keys, members and record fields travel as ``bytes`` from the read
to the backup to the write to the rollback, and are never decoded on the way: a key or
member that is not UTF-8 is rebuilt, backed up and restored exactly. They are shown
with ``\\xff`` escapes (:func:`~playbook.adapters.writers.shown`).

**The backup file** (JSON Lines) starts with a header row
``{"format": "playbook-redis-backup/2", "rule": …}``; then one row per key:
``"k": "<key>"`` when the key's bytes are valid UTF-8, else ``"k_b64": "<base64 of the
bytes>"``; ``"dump"``: base64 of its DUMP payload, ``"pttl"``: its time to live in ms (-1
none), ``"fp"``: the fingerprint of its value; or ``"absent": true`` for a key the action
creates. Backups of the previous format (no header; ``"key"`` text and ``"key64"`` base64
on every row; no ``"fp"``) are still read for rollback. The keys are read in pipelines of
:data:`BATCH`: the 6,049 index sets of seed 001 take a handful of round trips, not 6,049.
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
from playbook.adapters.redis import prints as redis_prints
from playbook.adapters.redis.client import open_client
from playbook.adapters.redis.prints import SetPrint
from playbook.adapters.redis.reader import SCAN_COUNT
from playbook.adapters.writers import (
    ITEMS_SHOWN,
    Lock,
    LockHeld,
    NothingWritten,
    Plan,
    Undo,
    Writer,
    WriteRequest,
    Written,
    item_fields,
    item_of,
    shown,
)

BATCH = 2_000
"""Keys per pipeline when reading sizes, dumping or restoring."""
ATTEMPTS = 5
"""Times a batch under WATCH is tried again when one of its keys moves before EXEC."""
BACKUP_FORMAT = "playbook-redis-backup/2"
BACKUP_RULE = (
    "One row per key. k: the key when its bytes are valid UTF-8; k_b64: the key's bytes "
    "in base64 otherwise (never both). dump: base64 of the DUMP payload; pttl: time to "
    "live in ms (-1: none); fp: fingerprint of the value; absent: true for a key the "
    "action creates."
)

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
    records_writes: ClassVar[bool] = True

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
        """Every key apply will touch: its DUMP, TTL and fingerprint, read in one
        MULTI/EXEC per batch so the three describe the same value."""
        with self._session(request, ctx) as client:
            keys: list[bytes] = plan.private["backup"]
            absent: list[bytes] = plan.private.get("absent", [])
            saved: set[bytes] = plan.private.setdefault("saved", set())
            prints: dict[bytes, str | None] = plan.private.setdefault("prints", {})
            out.add({"format": BACKUP_FORMAT, "rule": BACKUP_RULE})
            total = len(keys) + len(absent)
            done = 0
            for start in range(0, len(keys), BATCH):
                ctx.check()
                chunk = keys[start : start + BATCH]
                values = redis_prints.read(client, chunk, dump=True, atomic=True)
                for key in chunk:
                    value = values[key]
                    prints[key] = value.fingerprint
                    if value.dump is None:  # gone since the dry run: nothing to restore
                        out.add({**item_fields(key), "absent": True})
                        continue
                    dump = base64.b64encode(value.dump).decode("ascii")
                    fields = {"pttl": value.pttl, "dump": dump, "fp": value.fingerprint}
                    out.add({**item_fields(key), **fields})
                    saved.add(key)
                done += len(chunk)
                ctx.progress(done, total, "keys backed up")
            for key in absent:
                out.add({**item_fields(key), "absent": True})
                prints.setdefault(key, None)
            ctx.progress(total, total, "keys backed up")
            return total

    def apply(
        self, request: WriteRequest, plan: Plan, ctx: RunContext, written: Written | None = None
    ) -> dict[str, int]:
        written = written if written is not None else Written(None)
        with self._session(request, ctx) as client:
            if request.do["operation"] == "rebuild_indexes":
                return self._apply_rebuild(client, request, plan, ctx, written)
            return self._apply_drop(client, request, plan, ctx, written)

    def rollback(
        self,
        request: WriteRequest,
        backup: Iterator[dict[str, Any]],
        ctx: RunContext,
        undo: Undo | None = None,
    ) -> dict[str, int]:
        undo = undo if undo is not None else Undo(None, force=True)
        numbers = {"restored": 0, "removed": 0, "already": 0, "untouched": 0}
        rebuild = request.do["operation"] == "rebuild_indexes"
        prefix = str(request.do.get("prefix", "")).encode()
        old = f"{request.do.get('prefix', '')}:old-{request.run_id}".encode()
        kept_old: set[bytes] = set()
        with self._session(request, ctx) as client:
            pending: list[dict[str, Any]] = []

            def flush() -> None:
                olds = (
                    {item_of(r): old + item_of(r)[len(prefix) :] for r in pending}
                    if rebuild
                    else {}
                )
                kept = self._undo_batch(client, pending, olds, undo, numbers, ctx)
                kept_old.update(olds[k] for k in kept if k in olds)
                pending.clear()
                ctx.progress(sum(numbers.values()), None, "keys compared and restored")

            for row in backup:
                if "format" in row:  # the header of a backup in this format
                    continue
                pending.append(row)
                if len(pending) >= BATCH:
                    flush()
            if pending:
                flush()
            leftovers = 0
            if rebuild:
                glob = _glob(request.do["prefix"])
                leftovers += self._unlink_matching(client, f"{glob}:v-{request.run_id}:*", ctx)
                # an old index whose live one was kept stays: it is what was there before
                leftovers += self._unlink_matching(
                    client, f"{glob}:old-{request.run_id}:*", ctx, spare=kept_old
                )
        return {**numbers, "cleaned": leftovers}

    def _undo_batch(
        self,
        client: redis.Redis,
        rows: list[dict[str, Any]],
        olds: dict[bytes, bytes],
        undo: Undo,
        numbers: dict[str, int],
        ctx: RunContext,
    ) -> list[bytes]:
        """One batch of a rollback: WATCH, compare, restore in one MULTI/EXEC; the keys
        kept. A key written between the compare and EXEC makes EXEC fail; the batch is
        then compared again."""
        keys = [item_of(row) for row in rows]
        for _attempt in range(ATTEMPTS):
            ctx.check()
            with client.pipeline(transaction=True) as pipe:
                pipe.watch(*keys, *olds.values())
                now = redis_prints.read(client, [*keys, *olds.values()])
                verdicts: list[str] = []
                pipe.multi()
                for key, row in zip(keys, rows, strict=True):
                    before = None if row.get("absent") else row.get("fp", ...)
                    verdict = undo.decide(key, now[key].fingerprint, before)
                    verdicts.append(verdict)
                    if verdict not in ("restore", "force"):
                        continue
                    if row.get("absent"):
                        pipe.delete(key)
                    elif key in olds and "fp" in row and now[olds[key]].fingerprint == row["fp"]:
                        pipe.rename(olds[key], key)  # the very value that was live: exact
                    else:
                        payload = base64.b64decode(row["dump"])
                        pipe.restore(key, max(int(row["pttl"]), 0), payload, replace=True)
                try:
                    pipe.execute()
                except WatchError:
                    continue
            kept = []
            for key, row, verdict in zip(keys, rows, verdicts, strict=True):
                undo.settle(shown(key), verdict)
                if verdict in ("restore", "force"):
                    numbers["removed" if row.get("absent") else "restored"] += 1
                elif verdict == "keep":
                    kept.append(key)
                else:
                    numbers[verdict] += 1
            return kept
        raise RunError(
            f"Keys kept changing while they were being rolled back ({ATTEMPTS} tries); this "
            f"batch was left as it is (first: {shown(keys[0])}).",
            "Stop whatever writes them (the collector?), then roll back again: what was "
            "restored stays restored.",
        )

    # ------------------------------------------------------------------ rebuild

    def _plan_rebuild(self, client: redis.Redis, request: WriteRequest, ctx: RunContext) -> Plan:
        do = request.do
        prefix, indexes = do["prefix"], dict(do["indexes"])
        expected: Counter[bytes] = Counter()
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
                items.append(
                    f"{verb} {shown(key)}: {sizes.get(key, 0):,} -> {expected[key]:,} members"
                )
            else:
                items.append(
                    f"retire {shown(key)} ({sizes[key]:,} members, no record points to it)"
                )
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
        self,
        client: redis.Redis,
        request: WriteRequest,
        plan: Plan,
        ctx: RunContext,
        written: Written,
    ) -> dict[str, int]:
        prefix = request.do["prefix"]
        version = f"{prefix}:v-{request.run_id}"
        try:
            prints, records, live = self._build(client, request, plan, ctx, version)
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
        swapped = self._swap(client, request, plan, live, prints, version, ctx, written)
        return {
            "records": records,
            "indexes": len(prints),
            "members": sum(p.count for p in prints.values()),
            "swapped": swapped,
            "kept_old": len(live),
        }

    def _build(
        self, client: redis.Redis, request: WriteRequest, plan: Plan, ctx: RunContext, version: str
    ) -> tuple[dict[bytes, SetPrint], int, list[bytes]]:
        """The new version, built and validated: each new index's fingerprint (taken
        from the members as they are added), the records read, and the live indexes it
        will replace.

        Raises NothingWritten when the swap would lose or leave behind anything the
        backup does not hold.
        """
        do = request.do
        prefix = do["prefix"].encode()
        head = version.encode()
        expected: Counter[bytes] = Counter()
        prints: dict[bytes, SetPrint] = {}
        records = 0
        carry = client.pipeline(transaction=False)
        for pairs, count in self._records(client, request, ctx, "records indexed", carry):
            # This batch's writes ride with the next batch's reads: one round trip each,
            # two commands (the scripts), however many records.
            grouped: dict[bytes, list[bytes]] = {}
            for key, member in pairs:
                grouped.setdefault(key, []).append(member)
                expected[key] += 1
                found = prints.get(key)
                if found is None:
                    found = prints[key] = SetPrint()
                found.add(member)
            _queue_adds(carry, {head + k[len(prefix) :]: m for k, m in grouped.items()})
            records += count
        _raise_first(carry.execute(raise_on_error=False))
        if records == 0:
            raise NothingWritten(
                f"No record matches {do['source']!r}; the rebuild stopped before touching "
                "any index.",
                "Check the source pattern; the live indexes are as they were.",
            )
        # Validate every new index against the records that belong in it. Equal counts
        # also prove each index's fingerprint: a member added twice would leave it short.
        new_keys = sorted(expected)
        sizes = self._sizes(client, [head + k[len(prefix) :] for k in new_keys], ctx)
        wrong = [k for k in new_keys if sizes.get(head + k[len(prefix) :], 0) != expected[k]]
        if wrong:
            raise NothingWritten(
                f"Validation failed: {len(wrong):,} new indexes do not hold the records that "
                f"belong in them (first: {shown(wrong[0])}). Nothing was swapped.",
                "Records with the same member id, or records written while it ran?",
            )
        ctx.progress(len(new_keys), len(new_keys), "indexes validated", force=True)
        saved: set[bytes] = plan.private.get("saved", set())
        live = self._live_indexes(client, do["prefix"], dict(do["indexes"]), ctx)
        unsaved = sorted(set(live) - saved)
        if unsaved:
            raise NothingWritten(
                f"{len(unsaved):,} live indexes appeared after the backup (first: "
                f"{shown(unsaved[0])}); they would be replaced unsaved. Nothing was swapped.",
                "Stop whatever writes them (the collector?), then run the action again.",
            )
        unrecorded = sorted(set(new_keys) - saved - set(plan.private.get("absent", [])))
        if unrecorded:
            raise NothingWritten(
                f"{len(unrecorded):,} indexes would be created that the backup does not record "
                f"(first: {shown(unrecorded[0])}): records were added after the dry run. "
                "Nothing was swapped.",
                "Run the action again, from its dry run, so the backup covers them.",
            )
        return prints, records, live

    def _swap(
        self,
        client: redis.Redis,
        request: WriteRequest,
        plan: Plan,
        live: list[bytes],
        prints: dict[bytes, SetPrint],
        version: str,
        ctx: RunContext,
        written: Written,
    ) -> int:
        """One MULTI/EXEC: live -> old, new -> live, once every index the backup holds is
        checked to be as it was then. WATCH makes EXEC fail if any of them is written
        (or one that did not exist appears) between that check and EXEC; what the swap
        leaves is recorded in ``written`` before EXEC goes out."""
        prefix = request.do["prefix"].encode()
        head, old = version.encode(), f"{request.do['prefix']}:old-{request.run_id}".encode()
        new_keys = sorted(prints)
        backed: dict[bytes, str | None] = plan.private.get("prints", {})
        saved: set[bytes] = plan.private.get("saved", set())
        compared = sorted(set(live) | saved)
        ctx.check()
        with client.pipeline(transaction=True) as pipe:
            try:
                pipe.watch(*sorted(set(compared) | set(new_keys)))
                changed = [
                    key
                    for start in range(0, len(compared), BATCH)
                    for key, value in redis_prints.read(
                        client, compared[start : start + BATCH]
                    ).items()
                    if value.fingerprint != backed.get(key)
                ]
                if changed:
                    raise NothingWritten(
                        f"{len(changed):,} indexes changed after the backup (first: "
                        f"{shown(changed[0])}); swapping now would put a version without "
                        "that change in their place. Nothing was swapped.",
                        "Stop whatever writes them (the collector?), then run the action "
                        "again from its dry run.",
                    )
                retired = [key for key in live if key not in prints]
                for key in new_keys:
                    written.record(key, prints[key].text())
                for key in retired:
                    written.record(key, None)
                written.commit()
                pipe.multi()
                for key in live:
                    pipe.rename(key, old + key[len(prefix) :])
                for key in new_keys:
                    pipe.rename(head + key[len(prefix) :], key)
                pipe.execute()
            except (WatchError, NothingWritten) as exc:
                for key in [*new_keys, *live]:
                    if key in written.items:
                        written.skip(key)
                self._discard(client, version)
                if isinstance(exc, NothingWritten):
                    raise
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
    ) -> Iterator[tuple[list[tuple[bytes, bytes]], int]]:
        """(live index key, member) pairs, as bytes, and the number of records, a batch
        at a time. Commands the caller queued on ``carry`` go with the next batch's reads.
        """
        do = request.do
        prefix, indexes, member_field = do["prefix"], dict(do["indexes"]), do["member_field"]
        fields = [member_field, *indexes.values()]
        heads = [f"{prefix}:{name}:".encode() for name in indexes]
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
            pairs: list[tuple[bytes, bytes]] = []
            for key, got in values.items():
                member = got[0] if got[0] is not None else key.rsplit(b":", 1)[-1]
                for head, value in zip(heads, got[1:], strict=True):
                    if value is not None and value != b"":
                        pairs.append((head + value, member))
            done += len(keys)
            ctx.progress(min(done, total), total, unit)
            yield pairs, len(values)

    def _live_indexes(
        self, client: redis.Redis, prefix: str, indexes: dict[str, str], ctx: RunContext
    ) -> list[bytes]:
        # One walk of the prefix, sorted out here: a SCAN per index would walk the whole
        # keyspace once for each.
        heads = tuple(f"{prefix}:{name}:".encode() for name in indexes)
        live = {
            key
            for keys in self._scan(client, f"{_glob(prefix)}:*", ctx)
            for key in keys
            if key.startswith(heads)
        }
        return sorted(live)

    # ------------------------------------------------------------------ drop

    def _plan_drop(self, client: redis.Redis, request: WriteRequest, ctx: RunContext) -> Plan:
        keys = sorted(
            {k for batch in self._scan(client, request.do["pattern"], ctx) for k in batch}
        )
        sizes = self._sizes(client, keys, ctx) if len(keys) <= 100_000 else {}
        items = [
            f"delete {shown(k)}" + (f" ({sizes[k]:,} members)" if k in sizes else "")
            for k in keys[:ITEMS_SHOWN]
        ]
        return Plan(
            counts={"delete": len(keys)},
            items=items,
            touches=len(keys),
            private={"backup": keys},
        )

    def _apply_drop(
        self,
        client: redis.Redis,
        request: WriteRequest,
        plan: Plan,
        ctx: RunContext,
        written: Written,
    ) -> dict[str, int]:
        """Delete the backed-up keys a batch at a time, each only while it is still as
        the backup saw it: WATCH the batch, compare, UNLINK in one MULTI/EXEC. A key gone
        at backup time and written again since has no copy, so it is not deleted; a key
        changed since the backup is left alone (deleting it would lose the change)."""
        keys = sorted(plan.private.get("saved", set()))
        backed: dict[bytes, str | None] = plan.private.get("prints", {})
        deleted = changed = 0
        for start in range(0, len(keys), request.batch):
            chunk = keys[start : start + request.batch]
            doomed = self._drop_batch(client, chunk, backed, ctx, written)
            deleted += len(doomed)
            changed += len(chunk) - len(doomed)
            ctx.progress(start + len(chunk), len(keys), "keys deleted")
        return {"deleted": deleted, "changed": changed, "planned": len(plan.private["backup"])}

    def _drop_batch(
        self,
        client: redis.Redis,
        chunk: list[bytes],
        backed: dict[bytes, str | None],
        ctx: RunContext,
        written: Written,
    ) -> list[bytes]:
        for _attempt in range(ATTEMPTS):
            ctx.check()
            with client.pipeline(transaction=True) as pipe:
                pipe.watch(*chunk)
                now = redis_prints.read(client, chunk)
                doomed = [
                    k
                    for k in chunk
                    if now[k].fingerprint is not None and now[k].fingerprint == backed.get(k)
                ]
                for key in doomed:
                    written.record(key, None)
                written.commit()
                pipe.multi()
                if doomed:
                    pipe.unlink(*doomed)
                try:
                    pipe.execute()
                except WatchError:
                    for key in doomed:
                        written.skip(key)
                    continue
                return doomed
        raise RunError(
            f"Keys kept changing while they were being deleted ({ATTEMPTS} tries); this "
            f"batch was left as it is (first: {shown(chunk[0])}).",
            "Stop whatever writes them, then apply again or roll back.",
        )

    # ------------------------------------------------------------------ plumbing

    def _session(self, request: WriteRequest, ctx: RunContext) -> _Session:
        return _Session(self, request, ctx)

    def _client(self, request: WriteRequest, ctx: RunContext) -> redis.Redis:
        client = open_client(request.uri, ctx, redis.Redis)
        # Two connections: a batch under WATCH holds one while its keys are read, in one
        # pipelined round trip, on the other (a watching connection sends each command
        # on its own). The second costs one connect, only when a WATCH is used.
        client.connection_pool.max_connections = 2
        return client

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

    def _sizes(self, client: redis.Redis, keys: list[bytes], ctx: RunContext) -> dict[bytes, int]:
        """Members of each set that exists (SCARD, pipelined)."""
        sizes: dict[bytes, int] = {}
        for start in range(0, len(keys), BATCH):
            ctx.check()
            chunk = keys[start : start + BATCH]
            pipe = client.pipeline(transaction=False)
            for key in chunk:
                pipe.scard(key)
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

    def _unlink_matching(
        self,
        client: redis.Redis,
        pattern: str,
        ctx: RunContext,
        spare: set[bytes] | frozenset[bytes] = frozenset(),
    ) -> int:
        removed = 0
        for keys in self._scan(client, pattern, ctx):
            doomed = [k for k in keys if k not in spare]
            if doomed:
                removed += int(client.unlink(*doomed))
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
    holder = info.get("holder") or (shown(held) if held else "an unknown holder")
    since = info.get("since", "an unknown time")
    expires = f"; it expires in {max(0, left_ms) // 1000} s" if left_ms and left_ms > 0 else ""
    return (
        f"The lock {name} is held by {holder} since {since}{expires}.",
        "Another responder or script is changing this data. Wait for it, or ask them; "
        "nothing was written.",
    )


def _queue_adds(pipe: redis.client.Pipeline, members: dict[bytes, list[bytes]]) -> None:
    """SADD every key's members through :data:`_ADD`, in as few commands as fit."""
    keys: list[bytes] = []
    args: list[bytes | int] = []
    size = 0
    for key, values in members.items():
        for start in range(0, len(values), SCRIPT_MEMBERS):
            chunk = values[start : start + SCRIPT_MEMBERS]
            if size + len(chunk) > SCRIPT_MEMBERS and keys:
                pipe.eval(_ADD, len(keys), *keys, *args)
                keys, args, size = [], [], 0
            keys.append(key)
            args.append(len(chunk))
            args.extend(chunk)
            size += len(chunk)
    if keys:
        pipe.eval(_ADD, len(keys), *keys, *args)


def _raise_first(replies: list[Any]) -> None:
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


def _json_fields(raw: bytes | None, fields: list[str]) -> list[Any]:
    """A record kept as a JSON string: its fields as bytes. Read with surrogate escapes
    and written back with them, so a field's bytes come out as they went in, UTF-8 or
    not; a number or other non-string value is its JSON text."""
    try:
        record = json.loads(raw.decode("utf-8", "surrogateescape")) if raw else {}
    except ValueError:
        record = {}
    if not isinstance(record, dict):
        record = {}
    return [None if record.get(f) is None else _bytes(record[f]) for f in fields]


def _bytes(value: Any) -> bytes:
    text = value if isinstance(value, str) else str(value)
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate written as a JSON escape: keep it
        return text.encode("utf-8", "surrogatepass")


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
