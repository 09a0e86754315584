"""MongoDB diagnostics: find, count, distinct, aggregate, indexes and stats, read only.

:func:`playbook.adapters.mongo.readonly.check` refuses writes and server-side JavaScript at any
depth before a client is even built, and gives every query ``maxTimeMS`` and a row limit.
The client is built with the run's deadline as its connect, server-selection and socket
timeouts and with retries off, so an unreachable or silent server ends the run at the
deadline, not at the driver's 30-second default. Rows are written as relaxed Extended
JSON, so dates and ids survive the trip into the evidence file.

The driver (``bson``, ``pymongo``) is imported when a diagnostic runs, not with this
module: the playbook model reads :class:`MongoAdapter` on every load.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from playbook.adapters.base import Adapter, RunContext, RunError, RunRequest, Sink, scrub
from playbook.adapters.mongo.models import (
    INDEX_PREFIX,
    STATS_FIELDS,
    STATS_METRICS,
    MongoAction,
    MongoDiagnostic,
)
from playbook.adapters.mongo.readonly import Bounded, check
from playbook.core.values import ObjectIdValue

__all__ = ["STATS_FIELDS", "MongoAdapter", "to_bson"]


def to_bson(value: Any) -> Any:
    """Typed parameter values as the driver's types (ObjectId); the rest unchanged."""
    from bson import ObjectId  # deferred: see the module's docstring

    if isinstance(value, ObjectIdValue):
        return ObjectId(value.hex)
    if isinstance(value, dict):
        return {k: to_bson(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_bson(v) for v in value]
    return value


def _line_writer() -> Callable[[Any], str]:
    """Writes a document as one line of relaxed Extended JSON (bound once per run)."""
    from bson.json_util import RELAXED_JSON_OPTIONS, dumps  # deferred: see the docstring

    return functools.partial(dumps, json_options=RELAXED_JSON_OPTIONS, ensure_ascii=False)


def _client(uri: str, ctx: RunContext) -> Any:
    from playbook.adapters.mongo import standin

    if standin.is_standin(uri):
        return standin.client(uri)
    import pymongo

    ms = int(ctx.connect_timeout * 1000)
    return pymongo.MongoClient(
        uri,
        serverSelectionTimeoutMS=ms,
        connectTimeoutMS=ms,
        socketTimeoutMS=int(ctx.timeout * 1000),
        retryReads=False,
        retryWrites=False,
        maxPoolSize=2,
        appname="playbook-diagnostic",
        tz_aware=True,
    )


class MongoAdapter(Adapter):
    """Reads MongoDB through pymongo; refuses anything that writes or runs code."""

    kind = "mongo"
    description = "MongoDB (pymongo): find, count, distinct, aggregate, indexes, stats"
    diagnostic_model = MongoDiagnostic
    action_model = MongoAction

    client_factory: Callable[[str, RunContext], Any] = staticmethod(_client)  # type: ignore[assignment]
    """Builds the client; tests put mongomock here."""
    _line: Callable[[Any], str]
    """A document as one line of relaxed Extended JSON (set when a run starts)."""

    def check(self, request: RunRequest) -> None:
        check(request.query, limit=request.limit, timeout_seconds=1.0)
        if request.query.get("op") not in ("db_stats", "command") and not request.query.get(
            "collection"
        ):
            raise RunError(f"The {request.query.get('op')} diagnostic needs a collection.")

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        import pymongo.errors as errors

        bounded = check(request.query, limit=request.limit, timeout_seconds=ctx.remaining())
        self._line = _line_writer()
        query = to_bson(bounded.query)
        client = self.client_factory(request.uri, ctx)
        ctx.on_stop(client.close)
        try:
            db = client.get_default_database(default="test")
            ctx.connected()  # pymongo bounds server selection by the connect timeout itself
            ctx.check()
            return getattr(self, f"_{query['op']}")(db, query, bounded, ctx, sink)
        except errors.OperationFailure as exc:
            if exc.code == 50:  # MaxTimeMSExpired
                raise (
                    ctx.stop_error()
                    if ctx.stopped
                    else RunError(
                        f"MongoDB stopped the query at its time limit ({bounded.max_time_ms} ms).",
                        "The result is partial. Narrow the filter or raise the timeout.",
                    )
                ) from None
            raise RunError(
                f"MongoDB refused the query: {scrub(str(exc.details or exc), request.uri)}"
            ) from None
        except errors.PyMongoError as exc:
            if ctx.stopped:
                raise ctx.stop_error() from None
            detail = scrub(str(exc), request.uri).split(" (configured timeouts")[0]
            raise RunError(
                f"MongoDB could not be reached or stopped answering: {detail.split(', Timeout')[0][:200]}.",
                f"Check the target and that the server answers within {ctx.connect_timeout:g} s.",
            ) from None
        except NotImplementedError as exc:  # mongomock: the operation has no emulation
            raise RunError(f"This server does not support the operation: {exc}") from None
        finally:
            client.close()

    # ------------------------------------------------------------------ operations

    def _rows(self, cursor: Any, ctx: RunContext, sink: Sink, unit: str) -> int:
        n = 0
        for doc in cursor:
            sink.add_line(self._line(doc))
            n += 1
            if n % 500 == 0:
                ctx.check()
                ctx.progress(n, None, unit)
        return n

    def _find(
        self, db: Any, q: dict[str, Any], b: Bounded, ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        coll = db[q["collection"]]
        cursor = coll.find(
            q.get("filter") or {},
            q.get("projection"),
            sort=list((q.get("sort") or {}).items()) or None,
            limit=b.limit,
            max_time_ms=b.max_time_ms,
        )
        rows = self._rows(cursor, ctx, sink, "documents read")
        metrics: dict[str, Any] = {"rows": rows, "count": rows}
        if rows >= b.limit:  # more may match: ask how many, within what time is left
            ctx.check()
            metrics["count"] = coll.count_documents(
                q.get("filter") or {}, maxTimeMS=int(ctx.remaining() * 1000)
            )
        return metrics

    def _count(
        self, db: Any, q: dict[str, Any], b: Bounded, ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        count = db[q["collection"]].count_documents(q.get("filter") or {}, maxTimeMS=b.max_time_ms)
        sink.add({"count": count})
        return {"count": count}

    def _distinct(
        self, db: Any, q: dict[str, Any], b: Bounded, ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        if not q.get("field"):
            raise RunError("The distinct diagnostic needs a field.")
        values = db[q["collection"]].distinct(
            q["field"], q.get("filter") or {}, maxTimeMS=b.max_time_ms
        )
        for value in values[: b.limit]:
            sink.add_line(self._line({"value": value}))
        return {"count": len(values), "rows": min(len(values), b.limit)}

    def _aggregate(
        self, db: Any, q: dict[str, Any], b: Bounded, ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        cursor = db[q["collection"]].aggregate(q["pipeline"], maxTimeMS=b.max_time_ms)
        rows = self._rows(cursor, ctx, sink, "results read")
        return {"count": rows, "rows": rows}

    def _list_indexes(
        self, db: Any, q: dict[str, Any], b: Bounded, ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        metrics: dict[str, Any] = {"unique": 0, "ttl": 0}
        count = 0
        for index in db[q["collection"]].list_indexes():
            count += 1
            sink.add_line(self._line(index))
            metrics[f"{INDEX_PREFIX}{index.get('name')}"] = True
            metrics["unique"] += bool(index.get("unique"))
            metrics["ttl"] += "expireAfterSeconds" in index
        metrics["count"] = count
        return metrics

    def _stats(self, db: Any, command: dict[str, Any], b: Bounded, sink: Sink) -> dict[str, Any]:
        reply = db.command({**command, "maxTimeMS": b.max_time_ms})
        metrics: dict[str, Any] = {}
        for name, value in reply.items():
            if isinstance(value, dict):
                continue
            sink.add_line(self._line({"field": name, "value": value}))
            if name in STATS_METRICS:
                metrics[name] = value
        if "objects" in metrics:
            metrics.setdefault("count", metrics["objects"])
        return metrics

    def _collection_stats(
        self, db: Any, q: dict[str, Any], b: Bounded, ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        return self._stats(db, {"collStats": q["collection"]}, b, sink)

    def _db_stats(
        self, db: Any, q: dict[str, Any], b: Bounded, ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        return self._stats(db, {"dbStats": 1}, b, sink)

    def _command(
        self, db: Any, q: dict[str, Any], b: Bounded, ctx: RunContext, sink: Sink
    ) -> dict[str, Any]:
        return self._stats(db, dict(q["command"]), b, sink)
