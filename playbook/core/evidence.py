"""What a diagnostic run leaves in the incident's log: a capped, JSON-ready record.

The full result lives in a file beside the incident (named in the event with its
SHA-256); the event keeps the numbers that decided the verdict and the first rows, cut
to a size that keeps the log and its exports readable.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from playbook.core.events import format_utc
from playbook.core.values import ObjectIdValue

if TYPE_CHECKING:
    from playbook.core.diagnostics import Verdict

ROWS_IN_EVENT = 20
MAX_TEXT = 200
MAX_ITEMS = 20


def json_value(value: Any) -> Any:
    """A typed parameter value as JSON (times as ISO 8601 UTC, ids as ``{"$oid": …}``)."""
    if isinstance(value, datetime):
        return format_utc(value)
    if isinstance(value, ObjectIdValue):
        return {"$oid": value.hex}
    if isinstance(value, list):
        return [json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): json_value(v) for k, v in value.items()}
    return value


def cap(value: Any, depth: int = 0) -> Any:
    """``value`` cut down for an event: long text, long lists and deep nesting trimmed,
    and a float that is no finite number written as its text (``"inf"``, ``"nan"``):
    JSON has neither, and the store refuses an event holding one, so a run whose
    numbers include one would otherwise leave no record at all."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return (
            value
            if len(value) <= MAX_TEXT
            else value[:MAX_TEXT] + f"… (+{len(value) - MAX_TEXT} chars)"
        )
    if depth >= 4 and isinstance(value, list | dict):
        return f"… ({len(value)} items)"
    if isinstance(value, list):
        out = [cap(v, depth + 1) for v in value[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            out.append(f"… (+{len(value) - MAX_ITEMS} more)")
        return out
    if isinstance(value, dict):
        items = list(value.items())
        capped = {str(k): cap(v, depth + 1) for k, v in items[:MAX_ITEMS]}
        if len(items) > MAX_ITEMS:
            capped["…"] = f"+{len(items) - MAX_ITEMS} more fields"
        return capped
    return value


def run_payload(
    *,
    diagnostic: str,
    title: str,
    kind: str,
    target: str,
    params: Mapping[str, Any],
    started: datetime,
    ended: datetime,
    verdict: Verdict,
    metrics: Mapping[str, Any],
    rows: list[Any],
    rows_total: int,
    partial: bool,
    error: str,
    file: str | None,
    sha256: str | None,
    cancelled: bool = False,
) -> dict[str, Any]:
    """The ``diagnostic_run`` event's payload (``cancelled``: the responder, Ctrl-C or
    SIGTERM stopped it; the rows are what arrived before)."""
    return {
        "diagnostic": diagnostic,
        "title": title,
        "kind": kind,
        "target": target,
        "params": json_value(dict(params)),
        "started": format_utc(started),
        "ended": format_utc(ended),
        "verdict": verdict.verdict,
        "message": verdict.message,
        "checks": [
            {
                "metric": c.metric,
                "op": c.op,
                "expected": cap(c.expected),
                "actual": cap(c.actual),
                "ok": c.ok,
                "verdict": c.verdict,
                "because": c.because,
                "text": c.describe(),
            }
            for c in verdict.checks
        ],
        "metrics": {k: cap(v) for k, v in sorted(metrics.items())},
        "rows": [cap(r) for r in rows[:ROWS_IN_EVENT]],
        "rows_total": rows_total,
        "partial": partial,
        "cancelled": cancelled,
        "error": error,
        "file": file,
        "sha256": sha256,
    }


def shown_of(payload: Mapping[str, Any], limit: int | None = None) -> str:
    """``"showing N of M rows"``, with ``partial`` said when the run did not finish.

    ``limit``: how many of the event's rows the caller prints, when it prints fewer
    than the event keeps (N is what the reader sees, never more).
    """
    shown = len(payload.get("rows") or [])
    if limit is not None:
        shown = min(shown, limit)
    total = int(payload.get("rows_total") or 0)
    if payload.get("partial"):
        if not total:
            return "no rows: the run did not finish"
        return f"showing {shown:,} of the {total:,} rows that arrived (partial: the run did not finish)"
    return f"showing {shown:,} of {total:,} rows"


def numbers_of(payload: Mapping[str, Any]) -> str:
    """The run's plain numbers as ``name=value, …`` (lists and tables left out)."""
    metrics = payload.get("metrics") or {}
    return ", ".join(f"{k}={v}" for k, v in metrics.items() if not isinstance(v, list | dict))
