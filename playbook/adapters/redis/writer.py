"""Guarded actions on Redis: seed 000's safe index rebuild, and dropping keys.

(Over 600 lines: each operation's plan, backup, apply and rollback stay side by side,
because they must agree on what is compared and how, item for item; the fingerprints
and the Lua-free reads are in :mod:`playbook.adapters.redis.prints`, the lock in
:mod:`playbook.adapters.redis.lock`.)

``rebuild_indexes`` never deletes an index. It builds a new version of every index from
the records under ``playbook:staging:<run>:`` (the live key's name follows), checks each
new set against the count of records that belong in it, and then, in one MULTI/EXEC
under WATCH, renames the live indexes to ``<prefix>:old-<run>:`` and the new ones into
their place, once it has checked that every live index is still what the backup holds
(an index a collector wrote to since would otherwise go back to its backed-up value on
rollback, losing the write), that no old key is in the way, that the new version is
still the one validated, and that the lock is still this run's. A process killed before
EXEC leaves the live indexes untouched; EXEC itself is atomic on the server. The old
indexes stay until a responder drops them with ``drop_keys`` (itself guarded); a
rollback renames them back, which gives each index back byte for byte.

**The staging keys live outside the indexes' prefix** (``playbook:staging:<run>:``, the
namespace playbook keeps for itself, like its default lock names): a check that counts
``<prefix>:*`` (the runbook's index-drop check counts ``discord:messages:*``) never
counts a half-built version, which could otherwise hide an index loss. A Redis user that
runs the rebuild needs write access there too.

**Every key the run makes is written, and recorded.** The staging keys are recorded, a
batch at a time, with the fingerprint each will have after the batch, before the batch
goes out; each batch is one script, atomic on the server, so a stopped process leaves
each staging key as its last batch or the one before left it (:meth:`Written.record`
``batch``). The swap
records the old keys (holding the backup's value), the new live ones and the staging
keys it empties. A rollback or a clean-up compares each with what the run left before it
removes or renames it; one changed since is kept and named.

**A fence for batches still on their way.** A cancel closes the connection under a
batch; the server may still run what it already received, after the clean-up has looked.
So every staging batch runs only while the lock holds this run's value (checked by the
script that adds the members, on the server), and the clean-up first changes that value
(:meth:`RedisLock.rotate`): a batch that arrives later is refused, and what the clean-up
finds is all there will be. A lock taken over by someone else refuses the batches the
same way, and the swap, every batch of ``drop_keys`` and of a rollback check the lock's
value under the same WATCH as their write.

``drop_keys`` deletes, a batch at a time under WATCH, only the keys its backup holds and
only while they are still as the backup saw them, so a key that appears or changes after
the backup is never deleted unsaved.

Rollback, a batch at a time: WATCH the keys (and their old keys), read their
fingerprints, and in the same MULTI/EXEC put back only those still as the run left them
(:class:`~playbook.adapters.writers.Undo`); a key written since is kept and named, and so
is an old or staging key written since, which is neither renamed back nor removed.
Fingerprints are of the values themselves, not of DUMP payloads
(:mod:`playbook.adapters.redis.prints` says why).

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
import json
import secrets
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, ClassVar, NoReturn

import redis
from redis.exceptions import RedisError, ResponseError, WatchError

from playbook.adapters.base import RunContext, RunError, Sink, scrub
from playbook.adapters.redis import prints as redis_prints
from playbook.adapters.redis.client import open_client
from playbook.adapters.redis.lock import RedisLock, held_message, lost_message
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

STAGING = "playbook:staging"
"""Where a rebuild builds its new version: ``<STAGING>:<run>:<live key>``. Outside every
index prefix, so no check that counts the indexes counts a half-built version."""

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
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('PLAYBOOK-FENCE the lock is not held by this run')
end
local at, short = 2, {}
for i = 2, #KEYS do
  local n = tonumber(ARGV[at])
  local first, added = at + 1, 0
  while first <= at + n do
    local last = math.min(first + 3999, at + n)
    added = added + redis.call('SADD', KEYS[i], unpack(ARGV, first, last))
    first = last + 1
  end
  if added < n then short[#short + 1] = i - 1 end
  at = at + n + 1
end
return short
"""
"""Adds a whole batch's members to their sets in one command, so the batch is one atomic
step on the server; and only while the lock (KEYS[1]) holds this run's value (ARGV[1];
empty: no lock to check). ARGV then holds each key's count, then its members, added
4,000 at a time (Lua's unpack has a stack limit near 8,000). Returns the (1-based)
positions of the keys that got fewer new members than they were sent. The lock is
checked in the same step as the writes: a batch that arrives after a clean-up rotated
the lock, or after someone else took it, writes nothing."""

STAGING_MEMBERS = 100_000
"""Members gathered before they go out as one staging write: about 50 ms of the server's
time (the read of a 5,000-record batch takes 60-100 ms), and a row per staging key in the
written file each time (seed 000: 7 writes of ~6,000 keys, 8 MB)."""

FENCED = "PLAYBOOK-FENCE"

_SWAP = """
if ARGV[1] ~= '' and redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return redis.error_reply('PLAYBOOK-FENCE the lock is not held by this run')
end
local n, m = tonumber(ARGV[2]), tonumber(ARGV[3])
local olds, news, staged = 1 + n, 1 + 2 * n, 1 + 2 * n + m
for i = 1, n do
  if redis.call('EXISTS', KEYS[olds + i]) == 1 then return {'old', i} end
end
for j = 1, m do
  if redis.call('SCARD', KEYS[staged + j]) ~= tonumber(ARGV[3 + j]) then
    return {'staged', j}
  end
end
for i = 1, n do redis.call('RENAME', KEYS[1 + i], KEYS[olds + i]) end
for j = 1, m do redis.call('RENAME', KEYS[staged + j], KEYS[news + j]) end
return {'swapped', m}
"""
"""The swap itself, all or nothing, on the server. KEYS: the lock, the n live indexes,
their n old keys, the m new indexes, their m staging keys; ARGV: the lock's value ('':
none), n, m, each staging key's size as validated. It renames nothing unless the lock
is this run's, no old key is in the way (RENAME would overwrite it, unsaved) and every
staging key is as validated (a RENAME of a missing one would fail half-way). These are
checked here, in the same atomic step as the renames, rather than under WATCH: on redis
6.2 a WATCH of N keys costs O(N^2) on the server (each key is looked for among those
already watched), so watching the staging and old keys too would block the server for
seconds on seed 001, and the lock's renewal would make the WATCH fire."""


class RedisWriter(Writer):
    """Guarded actions on Redis: ``rebuild_indexes`` and ``drop_keys``.

    The writer keeps the lock it took (:meth:`lock`) for the stages that follow in the
    same run: its value is the token every write is checked against.
    """

    kind: ClassVar[str] = "redis"
    operations: ClassVar[tuple[str, ...]] = ("rebuild_indexes", "drop_keys")
    records_writes: ClassVar[bool] = True

    def __init__(self) -> None:
        self._held: RedisLock | None = None

    # ------------------------------------------------------------------ lock

    def lock(self, request: WriteRequest, ctx: RunContext) -> Lock:
        client = self._client(request, ctx)
        value = json.dumps(
            {
                "holder": request.holder,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "run": request.run_id,
                "token": secrets.token_hex(8),  # two runs of one holder never share a value
            }
        )
        ttl_ms = max(1000, int(request.lock_ttl * 1000))
        try:
            taken = client.set(request.lock_name, value, nx=True, px=ttl_ms)
            ctx.connected()
            if not taken:
                held, left = client.get(request.lock_name), client.pttl(request.lock_name)
                client.close()
                raise LockHeld(*held_message(request.lock_name, held, left))
        except RedisError as exc:
            client.close()
            raise self._error(exc, request) from None
        # The lock outlives this stage's context: its own socket timeout bounds each call.
        client.connection_pool.connection_kwargs["socket_timeout"] = 5.0
        self._held = RedisLock(client, request.lock_name, value, ttl_ms)
        return self._held

    def _lock_keys(self, request: WriteRequest) -> list[str]:
        """The lock's key, to WATCH beside a batch's keys (none without a lock)."""
        return [request.lock_name] if self._held is not None else []

    def _token(self) -> str:
        """The lock's value, which a staging batch must find ('' without a lock)."""
        return self._held.value if self._held is not None else ""

    def _check_lock(self, client: redis.Redis, request: WriteRequest) -> None:
        """Under a WATCH that includes the lock's key: stop unless it is still ours.

        Raises:
            LockLost: it expired, or someone else holds it now.
        """
        if self._held is None:
            return
        held = client.get(request.lock_name)
        if held != self._held.value.encode():
            raise lost_message(request.lock_name, held)

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
        numbers = {"restored": 0, "removed": 0, "already": 0, "untouched": 0, "cleaned": 0}
        rebuild = request.do["operation"] == "rebuild_indexes"
        prefix = str(request.do.get("prefix", "")).encode()
        old = _old_head(request)
        met: set[bytes] = set()
        with self._session(request, ctx) as client:
            pending: list[dict[str, Any]] = []

            def flush() -> None:
                olds = {}
                if rebuild:  # the key a swap moved each replaced live index to
                    olds = {
                        item_of(r): old + item_of(r)[len(prefix) :]
                        for r in pending
                        if not r.get("absent")
                    }
                met.update(olds.values())
                self._undo_batch(client, request, pending, olds, undo, numbers, ctx)
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
            if rebuild:
                # The rest of what the run made for itself: the staging keys of a build
                # that never swapped, each removed only if still as the run left it.
                own = sorted(
                    item
                    for item in (undo.written or {})
                    if item.startswith((_staging_head(request), old + b":")) and item not in met
                )
                numbers["cleaned"] += self._remove_own(client, request, own, undo, ctx)
        return numbers

    def _undo_batch(
        self,
        client: redis.Redis,
        request: WriteRequest,
        rows: list[dict[str, Any]],
        olds: dict[bytes, bytes],
        undo: Undo,
        numbers: dict[str, int],
        ctx: RunContext,
    ) -> None:
        """One batch of a rollback: WATCH, compare, restore in one MULTI/EXEC. A key
        written between the compare and EXEC makes EXEC fail; the batch is then compared
        again.

        ``olds``: a rebuild's old key for each live key. It holds what the swap moved
        there, the backup's value, and is the run's own: renamed back when it is still
        as the run left it (the very value that was live, exact), removed when the live
        key already holds the backup's value, kept and named when someone wrote to it
        since, and left beside a live key that is kept.
        """
        keys = [item_of(row) for row in rows]
        _infer_old_keys(undo, rows, keys, olds)
        for _attempt in range(ATTEMPTS):
            ctx.check()
            with client.pipeline(transaction=True) as pipe:
                pipe.watch(*keys, *olds.values(), *self._lock_keys(request))
                self._check_lock(client, request)
                now = redis_prints.read(client, [*keys, *olds.values()])
                decided: list[tuple[str, str | None, str]] = []
                pipe.multi()
                for key, row in zip(keys, rows, strict=True):
                    before = None if row.get("absent") else row.get("fp", ...)
                    verdict = undo.decide(key, now[key].fingerprint, before)
                    was = olds.get(key)
                    moved = now[was].fingerprint if was is not None else None
                    # the old key was absent before the run: "restore" means remove it
                    old_verdict = undo.decide(was, moved, None) if was is not None else None
                    done = ""
                    if verdict in ("restore", "force"):
                        if row.get("absent"):
                            pipe.delete(key)
                        elif (
                            was is not None
                            and moved is not None
                            and moved == row.get("fp")
                            and old_verdict in ("restore", "force")
                        ):
                            pipe.rename(was, key)  # the very value that was live: exact
                            done = "renamed"
                        else:
                            payload = base64.b64decode(row["dump"])
                            pipe.restore(key, max(int(row["pttl"]), 0), payload, replace=True)
                    if (
                        was is not None
                        and not done
                        and moved is not None
                        and old_verdict in ("restore", "force")
                        and verdict != "keep"  # an old key stays beside its kept live key
                    ):
                        pipe.delete(was)
                        done = "removed"
                    decided.append((verdict, old_verdict, done))
                try:
                    pipe.execute()
                except WatchError:
                    continue
            for key, row, (verdict, old_verdict, done) in zip(keys, rows, decided, strict=True):
                undo.settle(shown(key), verdict)
                if verdict in ("restore", "force"):
                    numbers["removed" if row.get("absent") else "restored"] += 1
                elif verdict != "keep":
                    numbers[verdict] += 1
                if done == "removed":
                    numbers["cleaned"] += 1
                if old_verdict == "keep" or (old_verdict == "force" and done == "removed"):
                    undo.settle(shown(olds[key]), old_verdict)
            return
        raise RunError(
            f"Keys kept changing while they were being rolled back ({ATTEMPTS} tries); this "
            f"batch was left as it is (first: {shown(keys[0])}).",
            "Stop whatever writes them (the collector?), then roll back again: what was "
            "restored stays restored.",
        )

    def _remove_own(
        self,
        client: redis.Redis,
        request: WriteRequest,
        items: list[bytes],
        undo: Undo,
        ctx: RunContext,
        removed: Callable[[bytes], None] | None = None,
        *,
        check_lock: bool = True,
    ) -> int:
        """Remove keys the run made for itself (absent before it), a batch at a time
        under WATCH, each only while still as the run left it; a key changed since is
        kept and named (``force``: removed and named). Calls ``removed`` for each key
        absent once its batch has gone through (removed, or never written: a batch that
        did not go out). Returns how many were removed."""
        count = 0
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            for _attempt in range(ATTEMPTS):
                ctx.check()
                with client.pipeline(transaction=True) as pipe:
                    pipe.watch(*chunk, *(self._lock_keys(request) if check_lock else []))
                    if check_lock:
                        self._check_lock(client, request)
                    now = redis_prints.read(client, chunk)
                    verdicts = {k: undo.decide(k, now[k].fingerprint, None) for k in chunk}
                    doomed = [
                        k
                        for k in chunk
                        if verdicts[k] in ("restore", "force") and now[k].fingerprint is not None
                    ]
                    pipe.multi()
                    if doomed:
                        pipe.unlink(*doomed)
                    try:
                        pipe.execute()
                    except WatchError:
                        continue
                for key in chunk:
                    if key in doomed or verdicts[key] == "keep":
                        undo.settle(shown(key), verdicts[key])
                if removed is not None:  # gone now, or absent all along: as before the run
                    for key in chunk:
                        if key in doomed or now[key].fingerprint is None:
                            removed(key)
                count += len(doomed)
                break
            else:
                raise RunError(
                    f"Keys this run made kept changing while they were being removed "
                    f"({ATTEMPTS} tries; first: {shown(chunk[0])}); they were left as they are.",
                    "Stop whatever writes them, then roll back again.",
                )
        return count

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
        try:
            prints, records, live = self._build(client, request, plan, ctx, written)
            swapped = self._swap(client, request, plan, live, prints, ctx, written)
        except SwapUnknown:
            raise  # it may have swapped: nothing is removed; what it would write is recorded
        except BaseException as exc:
            # Not swapped: only staging keys were written. Remove them (compared), and say
            # what is left; a surprise is re-raised as it was, for the engine to name.
            error = self._unstaged(request, written, exc, ctx)
            if error is None:
                raise
            raise error from None
        return {
            "records": records,
            "indexes": len(prints),
            "members": sum(p.count for p in prints.values()),
            "swapped": swapped,
            "kept_old": len(live),
        }

    def _build(
        self,
        client: redis.Redis,
        request: WriteRequest,
        plan: Plan,
        ctx: RunContext,
        written: Written,
    ) -> tuple[dict[bytes, SetPrint], int, list[bytes]]:
        """The new version, built and validated: each new index's fingerprint (taken
        from the members as they are added), the records read, and the live indexes it
        will replace.

        The members to add gather across read batches up to :data:`STAGING_MEMBERS`;
        then each staging key they touch is recorded in ``written`` with the fingerprint
        it will have after them, and they go out as one script (atomic, fenced by the
        lock: :data:`_ADD`) with the next batch's read. A set the script adds fewer
        members to than it was sent (two records with one member id) is read back and
        recorded as it is, so the record stays exact (the validation then refuses).

        Raises NothingWritten when the swap would lose or leave behind anything the
        backup does not hold.
        """
        do = request.do
        head = _staging_head(request)
        lock, token = request.lock_name, self._token()
        expected: Counter[bytes] = Counter()
        prints: dict[bytes, SetPrint] = {}
        records = 0
        pending: dict[bytes, list[bytes]] = {}
        size = 0
        sent: list[list[bytes]] = []
        carry = client.pipeline(transaction=False)

        def flush() -> None:
            # The writes ride with the next batch's read: one round trip, two scripts.
            # One row per staging key per flush (about 185 bytes): seed 000's rebuild
            # writes 7 flushes, 8 MB, against a rollback that could not otherwise tell
            # its own half-built sets from anyone's.
            for key in pending:
                written.record(head + key, prints[key].text(), batch=True)
            written.commit()
            _queue_adds(carry, lock, token, {head + k: m for k, m in pending.items()})
            sent.append(list(pending))
            pending.clear()

        def carried(replies: list[Any]) -> None:
            for keys, short in zip(sent, replies, strict=True):
                for at in short if isinstance(short, list) else []:
                    key = keys[int(at) - 1]
                    prints[key] = SetPrint()
                    for member in client.smembers(head + key):
                        prints[key].add(member)
                    written.record(head + key, prints[key].text())
            written.commit()
            sent.clear()

        for pairs, count in self._records(client, request, ctx, "records indexed", carry, carried):
            for key, member in pairs:
                found = prints.get(key)
                if found is None:
                    found = prints[key] = SetPrint()
                found.add(member)
                expected[key] += 1
                pending.setdefault(key, []).append(member)
            size += len(pairs)
            records += count
            if size >= STAGING_MEMBERS:
                flush()
                size = 0
        if pending:
            flush()
        replies = carry.execute(raise_on_error=False)
        _raise_first(replies)
        carried(replies)
        if records == 0:
            raise NothingWritten(
                f"No record matches {do['source']!r}; the rebuild stopped before touching "
                "any index.",
                "Check the source pattern; the live indexes are as they were.",
            )
        # Validate every new index against the records that belong in it. Equal counts
        # also prove each index's fingerprint: a member added twice would leave it short.
        new_keys = sorted(expected)
        sizes = self._sizes(client, [head + k for k in new_keys], ctx)
        wrong = [k for k in new_keys if sizes.get(head + k, 0) != expected[k]]
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
        ctx: RunContext,
        written: Written,
    ) -> int:
        """One MULTI/EXEC, once every index the backup holds, or the swap creates, is
        checked to be as the backup saw it; WATCH makes EXEC fail if any of them is
        written (or one that did not exist appears) between that check and EXEC. Inside
        it, :data:`_SWAP` checks the lock, the old keys and the staging keys and renames
        live -> old, new -> live. What the swap leaves is recorded in ``written`` before
        EXEC goes out. A WATCH that fires means compare again, up to :data:`ATTEMPTS`.

        Raises:
            NothingWritten: something changed; nothing was swapped.
            LockLost: the lock is no longer this run's; nothing was swapped.
            SwapUnknown: EXEC went out and no answer came back.
        """
        prefix = request.do["prefix"].encode()
        head, old = _staging_head(request), _old_head(request)
        new_keys = sorted(prints)
        backed: dict[bytes, str | None] = plan.private.get("prints", {})
        saved: set[bytes] = plan.private.get("saved", set())
        compared = sorted(set(live) | saved | set(new_keys))
        olds = {key: old + key[len(prefix) :] for key in live}
        staged = {key: head + key for key in new_keys}
        retired = [key for key in live if key not in prints]
        keys = [request.lock_name.encode(), *live, *olds.values(), *new_keys, *staged.values()]
        sizes = [prints[key].count for key in new_keys]
        for _attempt in range(ATTEMPTS):
            ctx.check()
            stopped: BaseException | None = None
            with client.pipeline(transaction=True) as pipe:
                pipe.watch(*compared)
                self._compare_live(client, compared, backed)
                for key in new_keys:
                    written.record(key, prints[key].text())
                    # renamed away, left absent; or, if the swap (one script) never ran,
                    # as the build left it: a batch row says both are the run's
                    written.record(staged[key], None, batch=True)
                for key in retired:
                    written.record(key, None)
                for key, moved in olds.items():
                    written.record(moved, backed.get(key))  # the value compared just above
                written.commit()
                pipe.multi()
                pipe.eval(_SWAP, len(keys), *keys, self._token(), len(live), len(new_keys), *sizes)
                try:
                    (reply,) = pipe.execute(raise_on_error=False)
                except WatchError:
                    reply = None
                except Exception as exc:
                    # Cancelled (or cut off) with the swap on its way: find out, once an
                    # EXEC still on its way can no longer run, which it was.
                    went = self._did_swap(request, olds, staged)
                    if went is None:
                        raise SwapUnknown(
                            f"{_stopped_by(exc, ctx, request)} The swap had gone out and no "
                            "answer came back: it may or may not have gone through.",
                            "What it would change is recorded: roll this run back to put "
                            "back each index still as it left it, or run the dry run again "
                            "to see where the indexes stand.",
                        ) from None
                    if went:
                        raise SwapUnknown(
                            f"{_stopped_by(exc, ctx, request)} It came after the swap had gone "
                            "out, and the swap went through: the rebuilt indexes are live, "
                            f"the replaced ones kept under {shown(old)}:*. Nothing was "
                            "verified.",
                            "Run the verify diagnostics, then keep them or roll this run back.",
                        ) from None
                    reply, stopped = None, exc
            if isinstance(reply, list) and reply and reply[0] == b"swapped":
                ctx.progress(len(new_keys), len(new_keys), "indexes swapped", force=True)
                return len(new_keys)
            for key in [*new_keys, *retired, *olds.values()]:  # nothing was renamed
                written.skip(key)
            for key in new_keys:  # still as the build left it
                written.record(staged[key], prints[key].text())
            written.commit()
            if stopped is not None:
                raise stopped  # not swapped: the caller clears the staging keys
            if reply is not None:
                self._refused_swap(client, reply, request, live, olds, new_keys, staged)
        raise NothingWritten(
            f"The indexes kept changing during the swap ({ATTEMPTS} tries); the swap was "
            "abandoned, nothing was renamed.",
            "Stop whatever writes the indexes, then run the action again.",
        )

    def _did_swap(
        self, request: WriteRequest, olds: dict[bytes, bytes], staged: dict[bytes, bytes]
    ) -> bool | None:
        """Whether a swap whose answer never came went through: True when every staging
        key is gone and every old key there, False when every staging key is still
        there, None when it cannot tell (the server is out of reach, or someone moved
        them). The lock is rotated first (:class:`RedisLock`), so a swap still on its way
        is refused and what is read here stays true. A context of its own: the stage's
        was stopped."""
        ctx = RunContext(30.0, 5.0)
        try:
            client = self._client(request, ctx)
            try:
                if self._held is not None and not self._held.rotate():
                    return None  # no longer ours: a swap on its way is refused, but by whom
                pipe = client.pipeline(transaction=False)
                for key in [*staged.values(), *olds.values()]:
                    pipe.exists(key)
                found = pipe.execute()
            finally:
                client.close()
        except Exception:  # whatever it was, it cannot tell
            return None
        finally:
            ctx.finish()
        there, moved = found[: len(staged)], found[len(staged) :]
        if all(there):
            return False
        if not any(there) and all(moved):
            return True
        return None

    def _compare_live(
        self, client: redis.Redis, compared: list[bytes], backed: dict[bytes, str | None]
    ) -> None:
        """Under the swap's WATCH: every index it touches is as the backup saw it."""
        changed = [
            key
            for start in range(0, len(compared), BATCH)
            for key, value in redis_prints.read(client, compared[start : start + BATCH]).items()
            if value.fingerprint != backed.get(key)
        ]
        if changed:
            raise NothingWritten(
                f"{len(changed):,} indexes changed after the backup (first: "
                f"{shown(changed[0])}); swapping now would put a version without that "
                "change in their place. Nothing was swapped.",
                "Stop whatever writes them (the collector?), then run the action again "
                "from its dry run.",
            )

    def _refused_swap(
        self,
        client: redis.Redis,
        reply: Any,
        request: WriteRequest,
        live: list[bytes],
        olds: dict[bytes, bytes],
        new_keys: list[bytes],
        staged: dict[bytes, bytes],
    ) -> NoReturn:
        """Why :data:`_SWAP` renamed nothing, as the error to raise."""
        if isinstance(reply, Exception):
            if FENCED in str(reply):
                raise lost_message(request.lock_name, client.get(request.lock_name))
            raise NothingWritten(  # the script fails in its checks, before any RENAME
                f"Redis refused the swap: {scrub(str(reply), request.uri)}. Nothing was swapped.",
                "Run the action again from its dry run.",
            )
        what, at = reply[0], int(reply[1]) - 1
        if what == b"old":
            raise NothingWritten(
                f"A key the swap would move a live index to exists already "
                f"({shown(olds[live[at]])}); the swap would overwrite it, unsaved. Nothing "
                "was swapped.",
                "Find out who wrote it: this run's old keys are its own to make.",
            )
        raise NothingWritten(
            f"A new index changed after it was validated ({shown(staged[new_keys[at]])}). "
            "Nothing was swapped.",
            "Something writes to this run's staging keys; run the action again.",
        )

    def _unstaged(
        self, request: WriteRequest, written: Written, exc: BaseException, ctx: RunContext
    ) -> RunError | None:
        """After a build or swap that stopped before the swap went out: remove the
        staging keys the run wrote, and the error that says why it stopped and what is
        left. None for a surprise (the caller re-raises it as it was)."""
        head = _staging_head(request)
        staged = sorted(k for k in written.items if k.startswith(head))
        surprise = not isinstance(exc, RunError | RedisError) and ctx.stopped is None
        why = _stopped_by(exc, ctx, request)
        advice = exc.message if isinstance(exc, RunError) and ctx.stopped is None else ""
        if not staged:
            return None if surprise else NothingWritten(why, advice)
        where = f"{shown(head)}*"
        left, trouble = self._unstage(request, written, staged)
        if surprise:
            return None
        if not left:
            return NothingWritten(
                f"{why} The live indexes were never touched, and none of the staging keys "
                f"it recorded under {where} ({len(staged):,}) is left: nothing of this run "
                "remains.",
                advice,
            )
        return RunError(
            f"{why} The live indexes were never touched, but {len(left):,} of the "
            f"{len(staged):,} staging keys it built under {where} are still there "
            f"({trouble}; first: {shown(left[0])}).",
            "Roll this run back to remove them (each only if still as the run left it).",
        )

    def _unstage(
        self, request: WriteRequest, written: Written, staged: list[bytes]
    ) -> tuple[list[bytes], str]:
        """Remove ``staged`` where each is as the run left it, after fencing the lock so
        that a batch still on its way is refused (:class:`RedisLock`); record each as
        undone. The staging keys left, and why. A clean-up of its own, with a context
        of its own: the stage's was stopped (cancel, deadline) and its client closed."""
        ctx = RunContext(30.0, 5.0)
        try:
            client = self._client(request, ctx)
            try:
                if self._held is not None:
                    self._held.rotate()  # False: taken by someone else; refused either way
                undo = Undo(dict(written.items), was=dict(written.was))
                self._remove_own(
                    client, request, staged, undo, ctx, written.undone, check_lock=False
                )
            finally:
                client.close()
            trouble = "changed since the run wrote them"
        except Exception as exc:  # a clean-up that fails leaves them recorded, to roll back
            trouble = f"the clean-up failed: {_stopped_by(exc, ctx, request)}"
        finally:
            ctx.finish()
            written.commit()
        return [k for k in staged if k in written.items], trouble

    def _records(
        self,
        client: redis.Redis,
        request: WriteRequest,
        ctx: RunContext,
        unit: str = "records read",
        carry: redis.client.Pipeline | None = None,
        carried: Callable[[list[Any]], None] | None = None,
    ) -> Iterator[tuple[list[tuple[bytes, bytes]], int]]:
        """(live index key, member) pairs, as bytes, and the number of records, a batch
        at a time. Commands the caller queued on ``carry`` go with the next batch's reads;
        their replies go to ``carried``.
        """
        do = request.do
        prefix, indexes, member_field = do["prefix"], dict(do["indexes"]), do["member_field"]
        fields = [member_field, *indexes.values()]
        heads = [f"{prefix}:{name}:".encode() for name in indexes]
        total = int(client.dbsize())
        done = 0
        # SCAN may return a key twice (while the keyspace rehashes, which the staging
        # keys themselves can cause): a record read twice would be counted twice, fail
        # the validation, and put a staging set's fingerprint off from the server's. So
        # each record key is read once: about 80 bytes a key held until the walk ends
        # (19 MB for seed 001's 234,485 records).
        seen: set[bytes] = set()
        for keys in _batched(_once(self._scan(client, do["source"], ctx), seen), request.batch):
            pipe = carry if carry is not None else client.pipeline(transaction=False)
            skip = len(pipe)
            pipe.eval(_READ, len(keys), *keys, *fields)
            replies = pipe.execute(raise_on_error=False)
            _raise_first(replies)
            if carried is not None:
                carried(replies[:skip])
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
            doomed = self._drop_batch(client, request, chunk, backed, ctx, written)
            deleted += len(doomed)
            changed += len(chunk) - len(doomed)
            ctx.progress(start + len(chunk), len(keys), "keys deleted")
        return {"deleted": deleted, "changed": changed, "planned": len(plan.private["backup"])}

    def _drop_batch(
        self,
        client: redis.Redis,
        request: WriteRequest,
        chunk: list[bytes],
        backed: dict[bytes, str | None],
        ctx: RunContext,
        written: Written,
    ) -> list[bytes]:
        for _attempt in range(ATTEMPTS):
            ctx.check()
            with client.pipeline(transaction=True) as pipe:
                pipe.watch(*chunk, *self._lock_keys(request))
                self._check_lock(client, request)
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
        if exc is None or isinstance(exc, RunError | WatchError):
            return
        if isinstance(exc, Exception) and self.ctx.stopped is not None:
            # Whatever the driver raised once its socket was closed under it on purpose
            # (ConnectionError, or an AttributeError from a half-closed connection) says
            # nothing more than the stop itself.
            raise self.ctx.stop_error() from None
        if isinstance(exc, RedisError):
            raise self.writer._error(exc, self.request) from None


class SwapUnknown(RunError):
    """The swap's EXEC went out and no answer came back: it may have gone through."""


def _stopped_by(exc: BaseException, ctx: RunContext, request: WriteRequest) -> str:
    """Why a stage stopped, in one sentence: the stop (cancel, deadline, lost lock) when
    the context was stopped, whatever the driver raised then; else the error's own."""
    if ctx.stopped == "cancel":
        return "Cancelled by the responder."
    if ctx.stopped is not None:
        return ctx.stop_error().title
    if isinstance(exc, ResponseError) and FENCED in str(exc):
        return (
            "The action's lock was no longer this run's (it expired, maybe taken by "
            f"someone else): the server refused the batch ({request.lock_name})."
        )
    if isinstance(exc, RunError):
        return exc.title
    if isinstance(exc, RedisError):
        return f"Redis said: {scrub(str(exc), request.uri)}"
    return f"It stopped on an error playbook did not expect ({type(exc).__name__})."


def _staging_head(request: WriteRequest) -> bytes:
    """``playbook:staging:<run>:``: a live key's staging copy is this, then its name."""
    return f"{STAGING}:{request.run_id}:".encode()


def _old_head(request: WriteRequest) -> bytes:
    """``<prefix>:old-<run>``: a replaced live key moves here, followed by the part of
    its name after the prefix (``:project:p1``)."""
    return f"{request.do.get('prefix', '')}:old-{request.run_id}".encode()


def _infer_old_keys(
    undo: Undo, rows: list[dict[str, Any]], keys: list[bytes], olds: dict[bytes, bytes]
) -> None:
    """A run applied before old keys were recorded: each old key holds what its swap
    moved there, the backup's value (the swap checked that, under WATCH). Recorded as
    such, so that it is compared like any other item the run wrote."""
    if undo.written is None:
        return
    for key, row in zip(keys, rows, strict=True):
        moved = olds.get(key)
        known = moved is not None and key in undo.written and moved not in undo.written
        if known and "fp" in row:
            undo.written[moved] = row["fp"]  # type: ignore[index]


def _queue_adds(
    pipe: redis.client.Pipeline, lock: str, token: str, members: dict[bytes, list[bytes]]
) -> None:
    """SADD every key's members through one :data:`_ADD`, fenced by the lock (``token``:
    the value it must hold; '' for none)."""
    if not members:
        return
    args: list[bytes | int] = []
    for values in members.values():
        args.append(len(values))
        args.extend(values)
    pipe.eval(_ADD, 1 + len(members), lock, *members, token, *args)


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


def _once(batches: Iterable[list[bytes]], seen: set[bytes]) -> Iterator[list[bytes]]:
    """Each key of ``batches`` the first time it comes, never again."""
    for keys in batches:
        fresh = [k for k in dict.fromkeys(keys) if k not in seen]
        seen.update(fresh)
        if fresh:
            yield fresh


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
