"""Guarded actions on MongoDB: rebuild indexes, delete duplicates, fix a field's type.

(Over 600 lines: three operations, each with its plan, backup, apply and rollback side
by side, because they must agree on what each compares and records; splitting them by
stage would put apart what has to change together.)

:class:`MongoWriter` carries out the three MongoDB operations of the playbook format
(:mod:`playbook.adapters.mongo.models`: ``EnsureIndexes``, ``Dedupe``,
``ConvertType``) stage by stage for :mod:`playbook.service.actions`.

It builds its client with :attr:`playbook.adapters.mongo.reader.MongoAdapter.client_factory`
(the run's connect, server-selection and socket timeouts, retries off; tests put
mongomock there) and registers the client's ``close`` with :meth:`RunContext.on_stop`,
so a cancel or a deadline ends a blocked call at once.

Backups are canonical Extended JSON (``bson.json_util``), one document or index per
line: an ObjectId, a date, an int64 or a whole-number double comes back as exactly the
BSON type it was. (Relaxed Extended JSON writes int64 and int32 alike as a JSON number,
so it would not.)

What a process killed at any moment leaves behind:

* ``ensure_indexes``: each index either built or not; a replaced index can be missing
  between its drop and its new build. Applying again finishes the job; rolling back
  drops what was built and recreates the old specs.
* ``dedupe``: each duplicate document either deleted or intact. Applying again deletes
  the rest; rolling back inserts back every deleted one from the backup.
* ``convert_type``: each document either converted or not. Applying again converts the
  rest; rolling back sets the old values back.
* The lock document expires by itself (a TTL index on ``expires_at``), and is treated
  as free as soon as ``expires_at`` has passed even before the server removes it.

Values read from the database are data: they are shown as Extended JSON text and sent
back only as values, never as field names or operators.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import Int64
from bson.json_util import CANONICAL_JSON_OPTIONS, RELAXED_JSON_OPTIONS, JSONOptions
from bson.json_util import dumps as bson_dumps
from bson.json_util import loads as bson_loads

from playbook.adapters.base import Cancelled, DeadlineExceeded, RunContext, RunError, Sink, scrub
from playbook.adapters.mongo.reader import MongoAdapter
from playbook.adapters.writers import (
    NOT_WRITTEN,
    Lock,
    LockHeld,
    NothingWritten,
    Plan,
    Undo,
    Writer,
    WriteRequest,
    Written,
)
from playbook.redaction import shortened

LOCKS = "playbook_locks"
"""The collection holding one document per held lock (``_id`` = the lock's name)."""
ITEMS_KEPT = 20
"""Lines of a plan's ``items`` kept (the counts cover everything)."""

_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_INTEGER = re.compile(r"^-?(0|[1-9][0-9]*)$")
_INT32 = 2**31
_INT64 = 2**63
_SAFE = 2**53
"""The largest magnitude up to which a double holds every integer exactly."""
_BSON_TYPE = {"string": "string", "int": "int", "long": "long", "double": "double"}
_LOAD_OPTIONS = JSONOptions(tz_aware=True, tzinfo=UTC)


# --------------------------------------------------------------------------- helpers


def _canonical(value: Any) -> str:
    """``value`` as one line of canonical Extended JSON (every BSON type kept)."""
    return bson_dumps(value, json_options=CANONICAL_JSON_OPTIONS, ensure_ascii=False)


def _shown(value: Any, width: int = 80) -> str:
    """``value`` as relaxed Extended JSON for a responder to read (``"123"``, ``123``)."""
    text = bson_dumps(value, json_options=RELAXED_JSON_OPTIONS, ensure_ascii=True)
    return shortened(text, width, keep=width - 1)


def _from_row(row: Any) -> Any:
    """A backup row (as :func:`json.loads` read it) back as BSON values."""
    return bson_loads(json.dumps(row), json_options=_LOAD_OPTIONS)


def _field(do: dict[str, Any], key: str = "field") -> str:
    name = str(do.get(key) or "")
    if not _FIELD.match(name):
        raise RunError(f"{name!r} is not a field name (letters, digits, _ and dots).")
    return name


def _get(doc: dict[str, Any], path: str) -> Any:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), max(1, size)):
        yield items[start : start + size]


def _type_of(value: Any) -> str:
    """The BSON type alias a value read from the server is stored as."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Int64):
        return "long"
    if isinstance(value, int):
        return "int" if -_INT32 <= value < _INT32 else "long"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    return ""


def _exactly(field: str, value: Any) -> dict[str, Any]:
    """A filter on ``field`` holding ``value`` itself, not a number equal to it of
    another kind (MongoDB finds ``123`` equal to ``123.0``). An int32 and an int64 of
    the same value count as the same: both are whole numbers, and mongomock cannot tell
    them apart below 2**32."""
    kind = _type_of(value)
    if kind in ("int", "long"):
        return {
            "$and": [
                {field: value},
                {field: {"$not": {"$type": "double"}}},
                {field: {"$not": {"$type": "decimal"}}},
            ]
        }
    if kind in ("double", "string"):
        return {field: {"$eq": value, "$type": kind}}
    return {field: value}


def convert(value: Any, to: str) -> tuple[bool, Any]:
    """``(True, new)`` when ``value`` converts to BSON type ``to`` without loss.

    Only strings and numbers convert. A string converts to an integer only when it is
    one written plainly (``"123"``, ``"-4"``; not ``"007"``, ``" 5"`` or ``"1e3"``), so
    converting back gives the same text. A double converts to an integer only when it
    is whole and within 2**53 (beyond that it has already lost digits: a Discord id
    stored as a double is not the id any more). Anything else (bool, null, dates,
    objects, arrays, ObjectIds, decimals) is ``(False, None)`` and left alone.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return False, None
    if isinstance(value, float) and not math.isfinite(value):
        return False, None
    if to == "string":
        if isinstance(value, float):
            if value.is_integer():
                return (True, str(int(value))) if abs(value) <= _SAFE else (False, None)
            return True, repr(value)
        return (True, str(int(value))) if isinstance(value, int) else (False, None)
    if isinstance(value, str):
        if to == "double":
            try:
                number = float(value)
            except ValueError:
                return False, None
            ok = math.isfinite(number) and value.strip() == value and value != ""
            return (True, number) if ok else (False, None)
        if not _INTEGER.match(value):
            return False, None
        whole = int(value)
    elif isinstance(value, float):
        if not value.is_integer() or abs(value) > _SAFE:
            return False, None
        whole = int(value)
    else:
        whole = int(value)
    if to == "int":
        return (True, whole) if -_INT32 <= whole < _INT32 else (False, None)
    if to == "long":
        return (True, Int64(whole)) if -_INT64 <= whole < _INT64 else (False, None)
    if to == "double":
        return (True, float(whole)) if abs(whole) <= _SAFE else (False, None)
    return False, None


def _now() -> datetime:
    """Now, to the millisecond (what a BSON date holds), in UTC."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _when(value: Any) -> str:
    found = _aware(value)
    return f"{found.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC" if found else "an unknown time"


def _plain(text: Any, width: int = 200) -> str:
    """Text from the database, safe to print: no control characters, bounded length."""
    cleaned = "".join(ch if ch.isprintable() else "?" for ch in str(text))
    return shortened(cleaned, width, keep=width - 1)


def _describe(exc: BaseException, uri: str) -> str:
    """One line saying what went wrong, without the URI or its password."""
    import pymongo.errors as errors

    if isinstance(exc, RunError):
        return exc.title
    if isinstance(exc, errors.OperationFailure):
        details = exc.details if isinstance(exc.details, dict) else {}
        first = (details.get("writeErrors") or [{}])[0]  # a bulk write's first refusal
        text = str(details.get("errmsg") or first.get("errmsg") or exc)
        return scrub(f"MongoDB refused it: {text}", uri)[:300]
    if isinstance(exc, errors.PyMongoError):
        text = scrub(str(exc), uri).split(" (configured timeouts")[0].split(", Timeout")[0]
        return f"MongoDB could not be reached or stopped answering: {text[:200]}"
    if isinstance(exc, NotImplementedError):
        return f"This server does not support the operation: {exc}"
    return scrub(f"{type(exc).__name__}: {exc}", uri)[:300]


def _stopped(exc: BaseException, ctx: RunContext, uri: str, done: str, advice: str) -> RunError:
    """The error for an apply or rollback that stopped part-way, saying what was done."""
    if ctx.stopped and not isinstance(exc, RunError):
        exc = ctx.stop_error()  # the client was closed under the call: say why
    cls: type[RunError] = type(exc) if isinstance(exc, (Cancelled, DeadlineExceeded)) else RunError
    return cls(_describe(exc, uri), f"{done} {advice}".strip())


@contextmanager
def _database(request: WriteRequest, ctx: RunContext, doing: str) -> Iterator[Any]:
    """The target's database through a client bounded by ``ctx``; errors as RunError."""
    client = MongoAdapter.client_factory(request.uri, ctx)
    ctx.on_stop(client.close)
    try:
        db = client.get_default_database(default="test")
        ctx.connected()  # pymongo bounds server selection by the connect timeout itself
        ctx.check()
        yield db
    except RunError:
        raise
    except Exception as exc:
        if ctx.stopped:
            raise ctx.stop_error() from None
        import pymongo.errors as errors

        if not isinstance(exc, (errors.PyMongoError, NotImplementedError)):
            raise
        raise RunError(
            f"{doing.capitalize()} failed. {_describe(exc, request.uri)}",
            f"Check the target and that the server answers within {ctx.connect_timeout:g} s.",
        ) from None
    finally:
        client.close()


# --------------------------------------------------------------------------- the lock


class MongoLock(Lock):
    """A lock document in ``playbook_locks``, renewed every ttl/3 while held.

    Renewal and release both filter on this taking's random token, so neither ever
    touches a lock someone else took after ours expired.
    """

    def __init__(
        self, client: Any, collection: Any, name: str, token: str, ttl: float, expires: datetime
    ) -> None:
        self.name = name
        self.token = token
        self.ttl = ttl
        self.expires_at = expires
        self.gone = False
        """Set when a renewal found the lock no longer ours (it expired and was taken)."""
        self.renewed = threading.Event()
        """Set after each successful renewal (for whoever wants to know it happened)."""
        self._client = client
        self._collection = collection
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._keep, name=f"playbook-lock {name}", daemon=True
        )
        self._thread.start()

    def renew(self) -> bool:
        """Push ``expires_at`` one ttl ahead if the lock is still ours; False if not."""
        expires = _now() + timedelta(seconds=self.ttl)
        result = self._collection.update_one(
            {"_id": self.name, "token": self.token}, {"$set": {"expires_at": expires}}
        )
        if result.matched_count != 1:
            self.gone = True
            self.lost()
            return False
        self.expires_at = expires
        self.renewed.set()
        return True

    def _keep(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not self.renew():
                    return
            except Exception:  # try again next time; the lock expires on its own anyway
                continue

    def release(self) -> None:
        """Stop renewing and delete the lock document if it is still ours."""
        self._stop.set()
        # A renewal still in flight after this cannot bring the lock back: it only
        # updates a document holding our token, which the delete below removes.
        self._thread.join(timeout=5.0)
        try:
            self._collection.delete_one({"_id": self.name, "token": self.token})
        finally:
            self._client.close()


def _ensure_ttl_index(collection: Any) -> None:
    """A TTL index on ``expires_at`` (expire at that time), unless one exists already."""
    for index in collection.list_indexes():
        if list(index.get("key", {})) == ["expires_at"]:
            return
    collection.create_index([("expires_at", 1)], name="expires_at_ttl", expireAfterSeconds=0)


def _held(name: str, current: dict[str, Any]) -> LockHeld:
    holder = _plain(current.get("holder") or "an unnamed holder")
    return LockHeld(
        f"The lock {name!r} is held by {holder} since {_when(current.get('since'))}; "
        f"it expires at {_when(current.get('expires_at'))} unless renewed.",
        "Wait for that run to finish. If its process is gone, the lock frees itself "
        "when it expires.",
    )


# --------------------------------------------------------------------------- the writer


class MongoWriter(Writer):
    """Guarded changes to MongoDB: ``ensure_indexes``, ``dedupe`` and ``convert_type``."""

    kind = "mongo"
    operations = ("ensure_indexes", "dedupe", "convert_type")
    records_writes = True

    # ------------------------------------------------------------------ stages

    def plan(self, request: WriteRequest, ctx: RunContext) -> Plan:
        """Read what the action would change; nothing is written."""
        with _database(request, ctx, "the dry run") as db:
            return self._dispatch("plan", request)(db, request, ctx)

    def backup(self, request: WriteRequest, plan: Plan, ctx: RunContext, out: Sink) -> int:
        """Every index or document the apply will touch, as canonical Extended JSON."""
        with _database(request, ctx, "the backup") as db:
            return self._dispatch("backup", request)(db, request, plan, ctx, out)

    def apply(
        self, request: WriteRequest, plan: Plan, ctx: RunContext, written: Written | None = None
    ) -> dict[str, int]:
        """Make the planned change in batches of ``request.batch``, checking for a cancel
        between batches, each item only while it is as the backup saw it, and recording
        each in ``written`` before it goes out. A stop part-way says what was done."""
        written = written if written is not None else Written(None)
        with _database(request, ctx, "the apply") as db:
            return self._dispatch("apply", request)(db, request, plan, ctx, written)  # type: ignore[no-any-return]

    def rollback(
        self,
        request: WriteRequest,
        backup: Iterator[dict[str, Any]],
        ctx: RunContext,
        undo: Undo | None = None,
    ) -> dict[str, int]:
        """Put back what the backup holds where it is still as the run left it (each
        compare-and-set atomic per document); safe to run twice."""
        undo = undo if undo is not None else Undo(None, force=True)
        with _database(request, ctx, "the rollback") as db:
            return self._dispatch("rollback", request)(db, request, backup, ctx, undo)  # type: ignore[no-any-return]

    def lock(self, request: WriteRequest, ctx: RunContext) -> Lock:
        """Take ``request.lock_name`` with an insert into ``playbook_locks``.

        A duplicate key means someone holds it, unless their ``expires_at`` has passed:
        then their document is replaced, atomically, on condition that its
        ``expires_at`` is still the one read (so two takers of a stale lock cannot both
        win).

        Raises:
            LockHeld: another run holds it; says who, since when and until when.
        """
        import pymongo.errors as errors

        client = MongoAdapter.client_factory(request.uri, ctx)
        ctx.on_stop(client.close)
        name, ttl = request.lock_name, float(request.lock_ttl)
        token = secrets.token_hex(8)
        try:
            collection = client.get_default_database(default="test")[LOCKS]
            ctx.connected()
            _ensure_ttl_index(collection)
            for _attempt in range(5):
                ctx.check()
                now = _now()
                doc = {
                    "holder": request.holder,
                    "token": token,
                    "since": now,
                    "expires_at": now + timedelta(seconds=ttl),
                }
                try:
                    collection.insert_one({"_id": name, **doc})
                except errors.DuplicateKeyError:
                    pass
                else:
                    return MongoLock(client, collection, name, token, ttl, doc["expires_at"])
                current = collection.find_one({"_id": name})
                if current is None:
                    continue  # released, or removed by the TTL monitor, since the insert
                expires = _aware(current.get("expires_at"))
                if expires is not None and expires > now:
                    raise _held(name, current)
                taken = collection.replace_one(
                    {"_id": name, "expires_at": current.get("expires_at")}, doc
                )
                if taken.matched_count == 1:
                    return MongoLock(client, collection, name, token, ttl, doc["expires_at"])
            raise LockHeld(
                f"The lock {name!r} changed hands five times while it was being taken.",
                "Another run is taking it right now; try again in a moment.",
            )
        except LockHeld:
            client.close()
            raise
        except Exception as exc:
            client.close()
            if ctx.stopped:
                raise ctx.stop_error() from None
            if not isinstance(exc, (errors.PyMongoError, NotImplementedError)):
                raise
            raise RunError(
                f"The lock could not be taken. {_describe(exc, request.uri)}",
                "Nothing was written to the data.",
            ) from None

    def _dispatch(self, stage: str, request: WriteRequest) -> Callable[..., Any]:
        operation = request.do.get("operation")
        if operation not in self.operations:
            raise RunError(f"The mongo writer has no operation {operation!r}.")
        return getattr(self, f"_{stage}_{operation}")  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ ensure_indexes

    def _plan_ensure_indexes(self, db: Any, request: WriteRequest, ctx: RunContext) -> Plan:
        name = str(request.do["collection"])
        coll = db[name]
        existing = list(coll.list_indexes())
        by_keys = {_key_tuple(i.get("key", {})): i for i in existing}
        by_name = {i.get("name"): i for i in existing}
        changes: list[dict[str, Any]] = []
        items: list[str] = []
        warnings: list[str] = []
        unchanged = 0
        for spec in request.do["indexes"]:
            keys = _key_tuple(spec["keys"])
            index_name = spec.get("name") or _default_name(spec["keys"])
            unique = bool(spec.get("unique"))
            ttl = spec.get("expire_after_seconds")
            current = by_keys.get(keys) or by_name.get(index_name)
            described = _index_text(spec["keys"], unique, ttl)
            if current is None:
                changes.append({"action": "create", "name": index_name, "spec": spec})
                items.append(f"create {index_name} on {name}: {described}")
            else:
                diffs = _differences(current, keys, unique, ttl)
                if not diffs:
                    unchanged += 1
                    continue
                changes.append(
                    {"action": "replace", "name": index_name, "spec": spec, "old": current["name"]}
                )
                items.append(
                    f"replace {_plain(current['name'])} on {name} with {index_name} "
                    f"({'; '.join(diffs)})"
                )
            if unique and not (current is not None and current.get("unique")):
                ctx.check()
                groups = _duplicate_groups(coll, [k for k, _ in keys], ctx)
                if groups:
                    warnings.append(
                        f"Unique index {index_name} on {name}.{'+'.join(k for k, _ in keys)}: "
                        f"creating it will fail: {groups:,} values are duplicated; "
                        "run the dedupe action first."
                    )
        counts = {
            "create": sum(c["action"] == "create" for c in changes),
            "replace": sum(c["action"] == "replace" for c in changes),
            "unchanged": unchanged,
        }
        return Plan(counts, items[:ITEMS_KEPT], len(changes), warnings, {"changes": changes})

    def _backup_ensure_indexes(
        self, db: Any, request: WriteRequest, plan: Plan, ctx: RunContext, out: Sink
    ) -> int:
        collection = str(request.do["collection"])
        now = {i.get("name"): i for i in db[collection].list_indexes()}
        rows = 0
        for change in plan.private["changes"]:
            old = now.get(change.get("old")) if change["action"] == "replace" else None
            # What apply must still find before it drops or builds anything: this index
            # as backed up, and no index yet under the new name unless it is that one.
            change["backed_old"] = old
            change["backed_new"] = now.get(change["name"])
            row = {"collection": collection, "name": change["name"], "old": old}
            out.add_line(_canonical(row))
            rows += 1
        return rows

    def _apply_ensure_indexes(
        self, db: Any, request: WriteRequest, plan: Plan, ctx: RunContext, written: Written
    ) -> dict[str, int]:
        """Build each index, one at a time, each only if the collection's indexes it
        touches are as the backup saw them (MongoDB has no conditional drop or build: the
        compare is a read just before, under the action's lock)."""
        name = str(request.do["collection"])
        coll = db[name]
        done: list[str] = []
        numbers = {"create": 0, "replace": 0}
        changes = plan.private["changes"]
        for n, change in enumerate(changes):
            dropped: dict[str, Any] | None = None
            item = _index_item(name, change["name"])
            try:
                ctx.check()
                current = {i.get("name"): i for i in coll.list_indexes()}
                moved = _index_moved(change, current)
                if moved:
                    what = f"{change['action']} {change['name']} on {name}: {moved}"
                    if not done:
                        raise NothingWritten(
                            f"Stopped before {what}. Nothing was done.",
                            "Start again from the dry run, so the backup holds what apply "
                            "replaces.",
                        )
                    raise RunError(
                        f"Stopped at: {what}. Done before it: {', '.join(done)}.",
                        "Roll back to put the old indexes back, or apply again from the dry run.",
                    )
                written.record(item, _spec_print(change["spec"]))
                renamed = change["action"] == "replace" and change["old"] != change["name"]
                if renamed:  # the old index's name is left free: a write of its own
                    written.record(_index_item(name, change["old"]), None)
                written.commit()
                if change["action"] == "replace":
                    dropped = current.get(change["old"])
                    if dropped is not None:
                        coll.drop_index(change["old"])
                _create(coll, change["spec"], change["name"])
            except NothingWritten:
                raise
            except Exception as exc:
                restored = ""
                if dropped is not None:
                    restored = _recreate_quietly(coll, dropped)
                old_item = _index_item(name, change.get("old") or change["name"])
                if dropped is not None and "could not" in restored:
                    written.record(item, None)  # the run left it without the old index
                    written.commit()
                else:
                    written.skip(item)  # as it was: the build failed, the old one is back
                    if old_item != item and old_item in written.items:
                        written.skip(old_item)
                what = f"{change['action']} {change['name']} on {name}"
                so_far = f"Done before it: {', '.join(done)}." if done else "Nothing was done."
                error = _stopped(
                    exc,
                    ctx,
                    request.uri,
                    f"Stopped at: {what}. {so_far}{restored}",
                    "Roll back to put the old indexes back, or fix the cause and apply again.",
                )
                raise error from None
            numbers[change["action"]] += 1
            done.append(f"{change['action']}d {change['name']}")
            ctx.progress(n + 1, len(changes), "indexes built")
        return numbers

    def _rollback_ensure_indexes(
        self,
        db: Any,
        request: WriteRequest,
        rows: Iterator[dict[str, Any]],
        ctx: RunContext,
        undo: Undo,
    ) -> dict[str, int]:
        numbers = {"drop": 0, "restore": 0, "already": 0, "untouched": 0}
        for raw in rows:
            ctx.check()
            row = _from_row(raw)
            coll = db[row["collection"]]
            old = row.get("old")
            current = {i.get("name"): i for i in coll.list_indexes()}
            built = current.get(row["name"])
            before = _index_print(old) if old and old.get("name") == row["name"] else None
            verdict = undo.decide(
                _index_item(row["collection"], row["name"]),
                _index_print(built) if built is not None else None,
                before,
            )
            if verdict in ("restore", "force") and old and old["name"] != row["name"]:
                # A replace under a new name also left the old name free; an index
                # someone made under it since is theirs: keep it, and the run's new
                # index with it (the old one could not come back under its name).
                freed = _old_name_verdict(undo, row["collection"], old, current)
                if freed in ("keep", "force"):
                    undo.settle(f"index {old['name']} on {row['collection']}", freed)
                if freed == "keep":
                    continue
            undo.settle(f"index {row['name']} on {row['collection']}", verdict)
            if verdict not in ("restore", "force"):
                if verdict != "keep":
                    numbers[verdict] += 1
                continue
            if built is not None and not (old and _same_index(built, old)):
                coll.drop_index(row["name"])
                numbers["drop"] += 1
                current.pop(row["name"], None)
            if old:
                there = current.get(old["name"])
                if there is not None and _same_index(there, old):
                    continue
                if there is not None:
                    coll.drop_index(old["name"])
                _recreate(coll, old)
                numbers["restore"] += 1
        return numbers

    # ------------------------------------------------------------------ dedupe

    def _plan_dedupe(self, db: Any, request: WriteRequest, ctx: RunContext) -> Plan:
        field = _field(request.do)
        keep = request.do.get("keep", "oldest")
        coll = db[str(request.do["collection"])]
        pipeline = [
            {"$match": {field: {"$exists": True, "$ne": None}}},
            {"$sort": {"_id": 1}},
            {"$group": {"_id": "$" + field, "count": {"$sum": 1}, "ids": {"$push": "$_id"}}},
            {"$match": {"count": {"$gt": 1}}},
        ]
        delete: list[Any] = []
        items: list[str] = []
        groups = 0
        for group in coll.aggregate(
            pipeline, allowDiskUse=True, maxTimeMS=int(ctx.remaining() * 1000)
        ):
            groups += 1
            ids = list(group["ids"])  # in _id order: $sort before $group keeps it
            survivor = ids[0] if keep == "oldest" else ids[-1]
            doomed = ids[1:] if keep == "oldest" else ids[:-1]
            delete.extend(doomed)
            if len(items) < ITEMS_KEPT:
                items.append(
                    f"{field} = {_shown(group['_id'])}: {group['count']} documents; keep "
                    f"{_shown(survivor)} ({keep}), delete {len(doomed)}"
                )
            if groups % 500 == 0:
                ctx.check()
        warnings = []
        lacking = coll.count_documents({field: None}, maxTimeMS=int(ctx.remaining() * 1000))
        if lacking > 1:
            warnings.append(
                f"{lacking:,} documents have no {field} (missing or null). A unique index "
                f"counts each as the value null, so it cannot be built while more than one "
                "lacks it; this action leaves them alone."
            )
        counts = {"groups": groups, "delete": len(delete)}
        return Plan(counts, items, len(delete), warnings, {"delete": delete})

    def _backup_dedupe(
        self, db: Any, request: WriteRequest, plan: Plan, ctx: RunContext, out: Sink
    ) -> int:
        coll = db[str(request.do["collection"])]
        wanted = plan.private["delete"]
        saved: list[dict[str, Any]] = []
        for batch in _chunks(wanted, request.batch):
            ctx.check()
            for doc in coll.find({"_id": {"$in": batch}}):
                out.add_line(_canonical(doc))
                saved.append(doc)
            ctx.progress(len(saved), len(wanted), "documents saved")
        # Apply deletes only what is in the backup, and only as the backup holds it: a
        # document gone since the dry run is not deleted again, a document changed since
        # is not deleted at all, and nothing is ever deleted that could not be put back.
        plan.private["saved"] = saved
        return len(saved)

    def _apply_dedupe(
        self, db: Any, request: WriteRequest, plan: Plan, ctx: RunContext, written: Written
    ) -> dict[str, int]:
        """Delete the backed-up duplicates, a batch at a time, each only while it is the
        very document the backup holds (a filter on the whole document: the compare and
        the delete are one atomic step per document).

        Each document is either deleted or intact at any moment; a cancel, a deadline
        or a killed process between batches leaves some deleted and the rest intact.
        Running the action again deletes the rest; rolling back inserts the deleted
        ones back from the backup.
        """
        from pymongo import DeleteOne

        coll = db[str(request.do["collection"])]
        docs: list[dict[str, Any]] = list(plan.private.get("saved", []))
        deleted = changed = done = 0
        try:
            for batch in _chunks(docs, request.batch):
                ctx.check()
                ids = [d["_id"] for d in batch]
                there = {_canonical(d["_id"]) for d in coll.find({"_id": {"$in": ids}}, {"_id": 1})}
                batch = [d for d in batch if _canonical(d["_id"]) in there]  # gone: not ours
                for doc in batch:
                    written.record(_doc_item(doc["_id"]), None)
                written.commit()
                if batch:
                    result = coll.bulk_write(
                        [DeleteOne(_same_document(d)) for d in batch], ordered=False
                    )
                    deleted += result.deleted_count
                    if result.deleted_count < len(batch):  # changed since the backup: kept
                        changed += len(batch) - result.deleted_count
                        left = coll.find({"_id": {"$in": [d["_id"] for d in batch]}}, {"_id": 1})
                        for doc in left:
                            written.skip(_doc_item(doc["_id"]))
                done += len(ids)
                ctx.progress(done, len(docs), "documents deleted")
        except Exception as exc:
            raise _stopped(
                exc,
                ctx,
                request.uri,
                f"{deleted:,} of {len(docs):,} duplicates were deleted before it stopped; "
                "each document is either deleted or intact.",
                "Apply again to delete the rest, or roll back to insert them back.",
            ) from None
        return {"delete": deleted, "gone": done - deleted - changed, "changed": changed}

    def _rollback_dedupe(
        self,
        db: Any,
        request: WriteRequest,
        rows: Iterator[dict[str, Any]],
        ctx: RunContext,
        undo: Undo,
    ) -> dict[str, int]:
        """Insert back each deleted document that is still absent (an insert of an
        ``_id`` that exists fails: the compare-and-set is the unique ``_id``); one that
        came back since is someone else's and is kept."""
        import pymongo.errors as errors

        coll = db[str(request.do["collection"])]
        numbers = {"insert": 0, "replace": 0, "present": 0, "untouched": 0}
        refused: list[str] = []
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            ctx.check()
            keys = [d["_id"] for d in batch]
            now = {_canonical(d["_id"]): d for d in coll.find({"_id": {"$in": keys}})}
            verdicts = []
            for doc in batch:
                there = now.get(_canonical(doc["_id"]))
                verdicts.append(
                    undo.decide(
                        _doc_item(doc["_id"]),
                        None if there is None else _doc_print(there),
                        _doc_print(doc),
                    )
                )
            present = set(now)
            act = [
                (d, v) for d, v in zip(batch, verdicts, strict=True) if v in ("restore", "force")
            ]
            missing = [d for d, _v in act if _canonical(d["_id"]) not in present]
            lost: set[str] = set()
            if missing:
                try:
                    numbers["insert"] += len(coll.insert_many(missing, ordered=False).inserted_ids)
                except errors.BulkWriteError as exc:
                    numbers["insert"] += int(exc.details.get("nInserted", 0))
                    for error in exc.details.get("writeErrors", []):
                        if error.get("code") == 11000 and error.get("keyPattern") == {"_id": 1}:
                            lost.add(_canonical(missing[error["index"]]["_id"]))
                        else:
                            refused.append(str(error.get("errmsg", "")))
            for doc, _v in act:  # only forced: present, and changed since the apply
                if _canonical(doc["_id"]) in present:
                    coll.replace_one({"_id": doc["_id"]}, doc)
                    numbers["replace"] += 1
            for doc, verdict in zip(batch, verdicts, strict=True):
                name = f"{request.do['collection']} {_shown(doc['_id'])}"
                if verdict == "restore" and _canonical(doc["_id"]) in lost:
                    verdict = "keep"  # inserted by someone else between the read and ours
                undo.settle(name, verdict)
                if verdict == "already":
                    numbers["present"] += 1
                elif verdict == "untouched":
                    numbers["untouched"] += 1
            ctx.progress(sum(numbers.values()), None, "documents restored")
            batch.clear()

        for row in rows:
            batch.append(_from_row(row))
            if len(batch) >= request.batch:
                flush()
        if batch:
            flush()
        if refused:
            raise RunError(
                f"{len(refused):,} documents could not be inserted back; "
                f"{numbers['insert']:,} were. MongoDB: {_plain(scrub(refused[0], request.uri))}",
                "A unique index refuses the duplicates: roll back the index rebuild first, "
                "then roll this back again.",
            )
        return numbers

    # ------------------------------------------------------------------ convert_type

    def _plan_convert_type(self, db: Any, request: WriteRequest, ctx: RunContext) -> Plan:
        field = _field(request.do)
        to = str(request.do["to"])
        coll = db[str(request.do["collection"])]
        wrong = {field: {"$exists": True, "$ne": None, "$not": {"$type": _BSON_TYPE[to]}}}
        changes: list[tuple[Any, Any, Any]] = []
        items: list[str] = []
        stuck = 0
        examples: list[str] = []
        for n, doc in enumerate(coll.find(wrong, {field: 1}).sort("_id", 1), start=1):
            old = _get(doc, field)
            ok, new = convert(old, to)
            if ok:
                changes.append((doc["_id"], old, new))
                if len(items) < ITEMS_KEPT:
                    items.append(f"{_shown(doc['_id'])}: {_shown(old)} -> {_shown(new)}")
            else:
                stuck += 1
                if len(examples) < 3:
                    examples.append(_shown(old, 40))
            if n % 1000 == 0:
                ctx.check()
        warnings = []
        if stuck:
            warnings.append(
                f"{stuck:,} values of {field} cannot be converted to {to} without loss "
                f"(e.g. {', '.join(examples)}); they are left alone."
            )
        counts = {"convert": len(changes), "unconvertible": stuck}
        return Plan(counts, items, len(changes), warnings, {"changes": changes})

    def _backup_convert_type(
        self, db: Any, request: WriteRequest, plan: Plan, ctx: RunContext, out: Sink
    ) -> int:
        field = _field(request.do)
        rows = 0
        for _id, old, new in plan.private["changes"]:
            out.add_line(_canonical({"_id": _id, "field": field, "old": old, "new": new}))
            rows += 1
            if rows % 1000 == 0:
                ctx.check()
        return rows

    def _apply_convert_type(
        self, db: Any, request: WriteRequest, plan: Plan, ctx: RunContext, written: Written
    ) -> dict[str, int]:
        """Set the new values with ``bulk_write``, a batch at a time.

        Each update filters on the old value and its kind, so a document changed since
        the dry run is not overwritten (counted as ``skipped``). Each document is either
        converted or not at any moment: applying again converts the rest; rolling back
        sets the old values back.
        """
        from pymongo import UpdateOne

        field = _field(request.do)
        coll = db[str(request.do["collection"])]
        changes = plan.private["changes"]
        converted = skipped = done = 0
        try:
            for batch in _chunks(changes, request.batch):
                ctx.check()
                for _id, _old, new in batch:
                    written.record(_doc_item(_id), _print_value(new))
                written.commit()
                result = coll.bulk_write(
                    [
                        UpdateOne({"_id": _id, **_exactly(field, old)}, {"$set": {field: new}})
                        for _id, old, new in batch
                    ],
                    ordered=False,
                )
                converted += result.modified_count
                skipped += len(batch) - result.matched_count
                if result.matched_count < len(batch):  # which ones: those not holding new
                    holding = coll.find(
                        {"$or": [{"_id": i, **_exactly(field, new)} for i, _o, new in batch]},
                        {"_id": 1},
                    )
                    done_ids = {_canonical(d["_id"]) for d in holding}
                    for _id, _old, _new in batch:
                        if _canonical(_id) not in done_ids:
                            written.skip(_doc_item(_id))
                done += len(batch)
                ctx.progress(done, len(changes), "documents converted")
        except Exception as exc:
            raise _stopped(
                exc,
                ctx,
                request.uri,
                f"{converted:,} of {len(changes):,} documents were converted before it "
                "stopped; each is either converted or not.",
                "Apply again to convert the rest, or roll back to set the old values back.",
            ) from None
        return {"convert": converted, "skipped": skipped}

    def _rollback_convert_type(
        self,
        db: Any,
        request: WriteRequest,
        rows: Iterator[dict[str, Any]],
        ctx: RunContext,
        undo: Undo,
    ) -> dict[str, int]:
        """Set each old value back where the document still holds the new one: the
        update filters on the new value, so the compare and the set are one atomic step
        per document; one changed in between is counted kept, not overwritten."""
        from pymongo import UpdateOne

        coll = db[str(request.do["collection"])]
        numbers = {"restore": 0, "already": 0, "untouched": 0}
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            ctx.check()
            ids = [r["_id"] for r in batch]
            now = {_canonical(d["_id"]): d for d in coll.find({"_id": {"$in": ids}})}
            verdicts = []
            for r in batch:
                field = _field(r)
                there = now.get(_canonical(r["_id"]))
                verdicts.append(
                    undo.decide(
                        _doc_item(r["_id"]),
                        _value_print(there, field),
                        _print_value(r["old"]),
                    )
                )
            updates = [
                UpdateOne(
                    {"_id": r["_id"], **(_exactly(_field(r), r["new"]) if v == "restore" else {})},
                    {"$set": {_field(r): r["old"]}},
                )
                for r, v in zip(batch, verdicts, strict=True)
                if v in ("restore", "force")
            ]
            if updates:
                result = coll.bulk_write(updates, ordered=False)
                if result.modified_count < len(updates):  # changed between read and set
                    back = coll.find(
                        {
                            "$or": [
                                {"_id": r["_id"], **_exactly(_field(r), r["old"])} for r in batch
                            ]
                        },
                        {"_id": 1},
                    )
                    restored = {_canonical(d["_id"]) for d in back}
                    verdicts = [
                        "keep" if v == "restore" and _canonical(r["_id"]) not in restored else v
                        for r, v in zip(batch, verdicts, strict=True)
                    ]
            for r, verdict in zip(batch, verdicts, strict=True):
                undo.settle(f"{request.do['collection']} {_shown(r['_id'])}", verdict)
                if verdict in ("restore", "force"):
                    numbers["restore"] += 1
                elif verdict != "keep":
                    numbers[verdict] += 1
            ctx.progress(sum(numbers.values()), None, "documents restored")
            batch.clear()

        for row in rows:
            batch.append(_from_row(row))
            if len(batch) >= request.batch:
                flush()
        if batch:
            flush()
        return numbers


# --------------------------------------------------------------------------- document helpers


def _doc_item(_id: Any) -> bytes:
    """A document as a written-file item: its ``_id`` as canonical Extended JSON."""
    return _canonical(_id).encode("utf-8", "surrogatepass")


def _doc_print(doc: dict[str, Any]) -> str:
    """A document's fingerprint: its canonical Extended JSON (field order and BSON types
    included), hashed."""
    import hashlib

    return hashlib.sha256(_canonical(doc).encode("utf-8", "surrogatepass")).hexdigest()


def _same_document(doc: dict[str, Any]) -> dict[str, Any]:
    """A filter matching only ``doc`` exactly as it is: its ``_id`` and the whole
    document (``$literal``: values are data, never read as operators or field paths)."""
    return {"_id": doc["_id"], "$expr": {"$eq": ["$$ROOT", {"$literal": doc}]}}


def _value_print(doc: dict[str, Any] | None, field: str) -> str | None:
    """The fingerprint of ``field``'s value in ``doc`` (:func:`_print_value`); ``gone``
    without the document, None without the field."""
    if doc is None:
        return "gone"
    value: Any = doc
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return _print_value(value)


def _print_value(value: Any) -> str:
    """A value's fingerprint: a number by its kind (int and long alike, as
    :func:`_exactly` compares them) and value, anything else by its canonical JSON."""
    kind = _type_of(value)
    if kind in ("int", "long"):
        return f"integer:{int(value)}"
    return f"{kind or 'value'}:{_canonical({'v': value})}"


# --------------------------------------------------------------------------- index helpers


def _old_name_verdict(
    undo: Undo, collection: str, old: dict[str, Any], current: dict[str, Any]
) -> str:
    """How a rollback may treat the name a replace left free (see Undo.decide): the run
    left it absent; an apply from before it was recorded left it absent too."""
    item = _index_item(collection, str(old["name"]))
    if undo.written is not None and undo.wrote(item) is NOT_WRITTEN:
        undo.written[item] = None
    there = current.get(old["name"])
    return undo.decide(item, _index_print(there) if there else None, _index_print(old))


def _index_item(collection: str, name: str) -> bytes:
    """An index's name as a written-file item: ``<collection>.<index name>``."""
    return f"{collection}.{name}".encode("utf-8", "surrogatepass")


def _index_print(index: dict[str, Any]) -> str:
    """What makes an index the one it is, as text: keys, unique, TTL (as compared by
    :func:`_same_index`; the version, namespace and build options are not)."""
    keys = [[k, v] for k, v in _key_tuple(index.get("key", {}))]
    return json.dumps([keys, bool(index.get("unique")), _ttl(index)], default=str)


def _spec_print(spec: dict[str, Any]) -> str:
    """:func:`_index_print` of the index a spec of the action builds."""
    ttl = spec.get("expire_after_seconds")
    return _index_print(
        {
            "key": spec["keys"],
            "unique": bool(spec.get("unique")),
            "expireAfterSeconds": None if ttl is None else int(ttl),
        }
    )


def _index_moved(change: dict[str, Any], current: dict[str, Any]) -> str:
    """Why the indexes a change touches are not as the backup saw them ("" if they are)."""
    if "backed_old" not in change:  # no backup stage ran (tests calling apply directly)
        return ""
    old, there = change["backed_old"], current.get(change.get("old"))
    if change["action"] == "replace" and not (
        (old is None and there is None)
        or (old is not None and there is not None and _same_index(old, there))
    ):
        return f"index {change['old']} changed after the backup"
    new, named = change["backed_new"], current.get(change["name"])
    if change["name"] != change.get("old") and not (
        (new is None and named is None)
        or (new is not None and named is not None and _same_index(new, named))
    ):
        return f"an index {change['name']} appeared after the backup"
    return ""


def _key_tuple(keys: Any) -> tuple[tuple[str, Any], ...]:
    return tuple(
        (str(k), int(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
        for k, v in dict(keys).items()
    )


def _default_name(keys: dict[str, Any]) -> str:
    """The name MongoDB gives an index by default: ``guildId_1``, ``a_1_b_-1``."""
    return "_".join(f"{k}_{v}" for k, v in keys.items())


def _ttl(index: dict[str, Any]) -> int | None:
    value = index.get("expireAfterSeconds")
    return None if value is None else int(value)


def _differences(
    current: dict[str, Any], keys: tuple[tuple[str, Any], ...], unique: bool, ttl: int | None
) -> list[str]:
    diffs = []
    if _key_tuple(current.get("key", {})) != keys:
        diffs.append(f"keys {_shown(current.get('key'))} -> {_shown(dict(keys))}")
    if bool(current.get("unique")) != unique:
        diffs.append(f"unique {bool(current.get('unique'))} -> {unique}")
    if _ttl(current) != ttl:
        diffs.append(f"expireAfterSeconds {_ttl(current)} -> {ttl}")
    return diffs


def _same_index(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return not _differences(a, _key_tuple(b.get("key", {})), bool(b.get("unique")), _ttl(b))


def _index_text(keys: dict[str, Any], unique: bool, ttl: int | None) -> str:
    text = _shown(keys)
    if unique:
        text += ", unique"
    if ttl is not None:
        text += f", expireAfterSeconds {ttl}"
    return text


def _create(coll: Any, spec: dict[str, Any], name: str) -> None:
    options: dict[str, Any] = {"name": name}
    if spec.get("unique"):
        options["unique"] = True
    if spec.get("expire_after_seconds") is not None:
        options["expireAfterSeconds"] = int(spec["expire_after_seconds"])
    coll.create_index(list(spec["keys"].items()), **options)


def _recreate(coll: Any, old: dict[str, Any]) -> None:
    """Build an index again from the spec list_indexes gave for it."""
    options = {k: v for k, v in old.items() if k not in ("v", "key", "ns")}
    coll.create_index(list(dict(old["key"]).items()), **options)


def _recreate_quietly(coll: Any, old: dict[str, Any]) -> str:
    try:
        _recreate(coll, old)
    except Exception:
        return f" The old index {old.get('name')} was dropped and could not be rebuilt."
    return f" The old index {old.get('name')} was rebuilt as it was."


def _duplicate_groups(coll: Any, fields: list[str], ctx: RunContext) -> int:
    """How many values (of the key fields together) more than one document shares,
    counting a missing field as null, as a unique index does."""
    pipeline = [
        # $ifNull: a missing field would otherwise drop out of the key instead of being null
        {
            "$group": {
                "_id": {f"k{i}": {"$ifNull": ["$" + f, None]} for i, f in enumerate(fields)},
                "n": {"$sum": 1},
            }
        },
        {"$match": {"n": {"$gt": 1}}},
        {"$count": "groups"},
    ]
    found = list(coll.aggregate(pipeline, allowDiskUse=True, maxTimeMS=int(ctx.remaining() * 1000)))
    return int(found[0]["groups"]) if found else 0
