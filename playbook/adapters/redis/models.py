"""What a playbook may ask of Redis: a diagnostic's ``query:`` and a guarded action's ``do:``.

:class:`~playbook.adapters.redis.reader.RedisAdapter` contributes these two models to the
playbook model; validating a playbook reads them, and nothing here imports redis-py.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from playbook.core.model import ActionBase, DiagnosticBase, Model, ParamRef


class RedisQuery(Model):
    """A Redis read, as data."""

    op: Literal[
        "count_keys",
        "collection_sizes",
        "ttl_audit",
        "freshness",
        "dbsize",
        "info",
        "baseline",
        "snapshot",
    ]
    pattern: str | ParamRef | None = None
    """Key pattern for SCAN."""
    key: str | ParamRef | None = None
    """A single key (freshness, baseline)."""
    section: str | None = None
    """INFO section."""
    baseline_key: str | ParamRef | None = None
    """Where the recorded baseline count lives (a Redis key holding a number)."""
    baseline: int | ParamRef | None = None
    """The baseline count itself, when it is not kept in Redis."""
    scan_count: int = Field(20_000, ge=100, le=100_000)
    """Keys the server examines per SCAN call. Larger means fewer round trips; each call
    holds a single-threaded server for longer (about 30 ms per 20,000 keys)."""


class RedisDiagnostic(DiagnosticBase):
    """A diagnostic run against Redis."""

    kind: Literal["redis"]
    query: RedisQuery


class RebuildIndexes(Model):
    """Seed 000's safe rebuild: index sets rebuilt from the records, under a new version,
    validated against the records, then swapped in atomically. The replaced indexes are
    kept under ``<prefix>:old-<run>:`` until a responder drops them."""

    operation: Literal["rebuild_indexes"]
    source: str = Field(min_length=1)
    """SCAN pattern of the records the indexes are built from (``message:discord:*``)."""
    member_field: str = "id"
    """The record's field whose value is the index member."""
    prefix: str = Field(min_length=1, pattern=r"^[^*?\[\]]+$")
    """Live index keys are ``<prefix>:<index>:<value>`` (``discord:messages``)."""
    indexes: dict[str, str] = Field(min_length=1)
    """Index name -> the record's field it is keyed by (``project: projectId``)."""


class DropKeys(Model):
    """Delete the keys matching a pattern, after backing them up."""

    operation: Literal["drop_keys"]
    pattern: str | ParamRef
    """SCAN pattern of the keys to delete."""


class RedisAction(ActionBase):
    """A guarded change to Redis."""

    kind: Literal["redis"]
    do: Annotated[RebuildIndexes | DropKeys, Field(discriminator="operation")]
