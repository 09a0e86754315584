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


SNAPSHOT_TYPES = ("string", "list", "set", "zset", "hash", "stream")
"""The Redis types a snapshot counts by name (``<type>_keys``); a module's type (such
as ``ReJSON-RL``) counts under ``other_keys``: its name is the server's, not one a
playbook could be checked against."""

OP_METRICS: dict[str, tuple[str, ...] | None] = {
    "count_keys": ("count",),
    "baseline": ("count", "baseline", "change_percent", "drop_percent"),
    "collection_sizes": ("count", "total_members", "largest", "smallest", "mean"),
    "ttl_audit": ("count", "with_ttl", "without_ttl", "with_ttl_percent"),
    "freshness": ("present", "age_seconds", "ahead_seconds"),
    "dbsize": ("count",),
    "info": None,  # the server's INFO fields, which differ by version and section
    "snapshot": (
        "count",
        "members",
        "streamed_keys",
        *(f"{t}_keys" for t in (*SNAPSHOT_TYPES, "other")),
    ),
}
"""The numbers each operation's run can give (None: known only to the server). The
reader's operations return these, and a test runs each against a real server to hold
them to it; ``freshness``'s two are :func:`playbook.core.diagnostics.age_metrics`'."""


class RedisDiagnostic(DiagnosticBase):
    """A diagnostic run against Redis."""

    kind: Literal["redis"]
    query: RedisQuery

    def result_metrics(self) -> frozenset[str] | None:
        """The numbers this diagnostic's run can give (for ``playbook validate``), or
        None for ``info``, whose fields only the server knows."""
        names = OP_METRICS[self.query.op]
        return None if names is None else frozenset(names)


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
