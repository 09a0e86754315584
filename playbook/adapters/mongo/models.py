"""What a playbook may ask of MongoDB: a diagnostic's ``query:`` and a guarded action's ``do:``.

:class:`~playbook.adapters.mongo.reader.MongoAdapter` contributes these two models to the
playbook model; validating a playbook reads them, and nothing here imports the driver.
(:class:`~playbook.core.model.IndexSpec` stays in the core: a drill's MongoDB steps
create indexes too.)
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from playbook.core.model import ActionBase, DiagnosticBase, IndexSpec, Model, ParamRef


class MongoQuery(Model):
    """A MongoDB read, as data. Values may be ``{$param: name}``."""

    op: Literal[
        "find",
        "count",
        "distinct",
        "aggregate",
        "list_indexes",
        "collection_stats",
        "db_stats",
        "command",
    ]
    collection: str | ParamRef | None = None
    filter: dict[str, Any] = {}
    projection: dict[str, Any] | None = None
    sort: dict[str, Literal[1, -1]] | None = None
    limit: int | None = None
    field: str | ParamRef | None = None
    """The field for `distinct`."""
    pipeline: list[dict[str, Any]] = []
    """Stages for `aggregate`."""
    command: dict[str, Any] | None = None
    """The command document for `command`."""


STATS_FIELDS = ("count", "size", "avgObjSize", "storageSize", "nindexes", "totalIndexSize")
"""Fields of a stats reply (collStats, dbStats, or a command's) kept as numbers."""
STATS_METRICS = (*STATS_FIELDS, "objects", "collections", "indexes", "dataSize")
"""Every field of a stats or command reply that becomes a number (``count`` is also
``objects`` when the reply has no ``count``)."""
INDEX_PREFIX = "index:"
"""``index:<name>`` is true for each index a ``list_indexes`` run found."""

OP_METRICS: dict[str, tuple[str, ...]] = {
    "find": ("rows", "count"),
    "count": ("count",),
    "distinct": ("count", "rows"),
    "aggregate": ("count", "rows"),
    "list_indexes": ("count", "unique", "ttl", f"{INDEX_PREFIX}*"),
    "collection_stats": STATS_METRICS,
    "db_stats": STATS_METRICS,
    "command": STATS_METRICS,
}
"""The numbers each operation's run can give; a name ending in ``*`` stands for every
name it begins (an index's name is the server's). The reader's operations return these
and a test runs each to hold them to it."""


class MongoDiagnostic(DiagnosticBase):
    """A diagnostic run against MongoDB."""

    kind: Literal["mongo"]
    query: MongoQuery

    def result_metrics(self) -> frozenset[str]:
        """The numbers this diagnostic's run can give (for ``playbook validate``)."""
        return frozenset(OP_METRICS[self.query.op])


class EnsureIndexes(Model):
    """Create the indexes a collection should have; rebuild those with the wrong options."""

    operation: Literal["ensure_indexes"]
    collection: str
    indexes: list[IndexSpec] = Field(min_length=1)


class Dedupe(Model):
    """Delete all but one document of each group sharing a value that should be unique."""

    operation: Literal["dedupe"]
    collection: str
    field: str
    keep: Literal["oldest", "newest"] = "oldest"
    """Which document of a group stays, by `_id` order."""


class ConvertType(Model):
    """Rewrite a field stored with the wrong type (``"123"`` where an int belongs)."""

    operation: Literal["convert_type"]
    collection: str
    field: str
    to: Literal["string", "int", "long", "double"]


class MongoAction(ActionBase):
    """A guarded change to MongoDB."""

    kind: Literal["mongo"]
    do: Annotated[EnsureIndexes | Dedupe | ConvertType, Field(discriminator="operation")]
