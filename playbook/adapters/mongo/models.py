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


class MongoDiagnostic(DiagnosticBase):
    """A diagnostic run against MongoDB."""

    kind: Literal["mongo"]
    query: MongoQuery


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
