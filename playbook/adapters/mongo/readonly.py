"""What a read-only MongoDB diagnostic may send, decided before anything is sent.

The checks are structural: an operator that writes or runs JavaScript is refused at any
depth of the query, and every query gets a server-side time limit and a row limit, so a
diagnostic can neither change data nor run unbounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from playbook.adapters.base import Refused

FORBIDDEN_OPERATORS = frozenset(
    {
        "$where",  # JavaScript per document
        "$function",  # JavaScript in an expression
        "$accumulator",  # JavaScript accumulator
        "$out",  # writes a collection
        "$merge",  # writes into a collection
        "$eval",  # legacy server-side JavaScript
        "$currentOp",  # admin introspection, not a data read
        "$listSessions",
        "$planCacheStats",
    }
)
"""Operators refused wherever they appear in a filter, projection or pipeline."""

READ_OPS = frozenset(
    {"find", "count", "distinct", "aggregate", "list_indexes", "collection_stats", "db_stats"}
)
"""Query operations a diagnostic may run; `command` is allowed only for READ_COMMANDS."""

READ_COMMANDS = frozenset(
    {"dbStats", "collStats", "listIndexes", "count", "distinct", "buildInfo", "serverStatus"}
)
"""Database commands that only read."""

DEFAULT_LIMIT = 1000
DEFAULT_MAX_TIME_MS = 30_000


@dataclass(frozen=True)
class Bounded:
    """A query with its limits in force."""

    query: dict[str, Any]
    limit: int
    max_time_ms: int


def forbidden_paths(value: object, path: str = "") -> list[str]:
    """Where in ``value`` a forbidden operator appears (empty when none does)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, child in value.items():
            here = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and key in FORBIDDEN_OPERATORS:
                found.append(here)
            found += forbidden_paths(child, here)
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += forbidden_paths(child, f"{path}[{i}]")
    return found


def check(
    query: dict[str, Any], *, limit: int = DEFAULT_LIMIT, timeout_seconds: float = 30.0
) -> Bounded:
    """Refuse anything but a bounded read; return the query with its limits.

    Raises:
        Refused: the operation or an operator inside it could write or run code.
    """
    op = query.get("op")
    if op == "command":
        command = query.get("command") or {}
        name = next(iter(command), None)
        if name not in READ_COMMANDS:
            raise Refused(
                f"Refused: the command {name!r} is not a read.",
                f"Read-only diagnostics may run: {', '.join(sorted(READ_COMMANDS))}.",
            )
    elif op not in READ_OPS:
        raise Refused(f"Refused: {op!r} is not a read operation.")
    paths = forbidden_paths({k: v for k, v in query.items() if k != "op"})
    if paths:
        raise Refused(
            f"Refused: {paths[0]} writes or runs code on the server.",
            "Diagnostics only read; nothing was sent.",
        )
    wanted = query.get("limit")
    row_limit = min(int(wanted), limit) if isinstance(wanted, int) and wanted > 0 else limit
    max_time_ms = max(1, int(timeout_seconds * 1000))
    bounded = dict(query)
    if op in ("find", "aggregate"):
        bounded["limit"] = row_limit
    if op == "aggregate":
        pipeline = list(bounded.get("pipeline") or [])
        if not pipeline or "$limit" not in pipeline[-1]:
            pipeline.append({"$limit": row_limit})
        bounded["pipeline"] = pipeline
    bounded["max_time_ms"] = max_time_ms
    return Bounded(bounded, row_limit, max_time_ms)
