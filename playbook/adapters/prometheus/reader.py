"""Prometheus diagnostics: an instant query, its samples as rows, their values as numbers.

The target is the server's base URL, ``http(s)://host:port`` (a path prefix such as
``https://thanos.example/prometheus`` is kept): the same kind of target as an http
diagnostic, because it is read by the same client (:mod:`playbook.adapters.http.reader`)
with the same promises: GET only, redirects only within the target's scheme, host and
port, the body capped at 16 MB, the connect timeout and the run's deadline (also sent to
the server as the query's ``timeout``, so Prometheus stops evaluating when we stop
waiting), credentials from the URI's userinfo as Basic auth and never shown.

The answer's shapes are the ones the Prometheus HTTP API documents
(https://prometheus.io/docs/prometheus/latest/querying/api/, "Format overview",
"Instant queries" and "Expression query result formats"):

- ``vector``: one row per sample, its labels as columns (``__name__`` included), its value
  under ``value`` and its time under ``timestamp``. A label called ``value`` or
  ``timestamp`` is shown as ``label_value`` / ``label_timestamp``.
- ``scalar`` and ``string``: one row.
- ``matrix``: refused with a message; playbook runs instant queries only.

Prometheus sends each value as a string (``"0.93"``): it is read strictly, and the
special values ``NaN``, ``+Inf`` and ``-Inf`` are kept as text in the row and counted in
``non_finite``, never turned into a number an expectation could pass on. The numbers a
run gives (:func:`playbook.core.diagnostics.column_numbers`): ``count`` (samples),
``value`` when there is exactly one sample, ``value_min`` and ``value_max``,
``non_finite`` and ``warnings``. When any sample is NaN or an infinity, ``value``,
``value_min`` and ``value_max`` are undefined (``value_non_finite`` says how many), and
an expectation on them is an error saying so, never a verdict over the other samples.
A JSON number past a float's range (a timestamp of ``1e999``) is an error. A status ``error`` answer (400, 422, 503 with a JSON
body) is an error naming its ``errorType`` and message.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from playbook.adapters.base import Adapter, Refused, RunContext, RunError, RunRequest, Sink
from playbook.adapters.http.reader import MAX_BODY, Call, build_url, escaped, no_constant
from playbook.adapters.prometheus.models import MAX_PROMQL, VALUE, PrometheusDiagnostic

if TYPE_CHECKING:
    import http.client

API_PATH = "/api/v1/query"
NON_FINITE = frozenset({"NaN", "+Inf", "-Inf", "Inf"})
"""How Prometheus spells values that are no number (Go's formatting of them)."""
ERROR_STATUSES = frozenset({400, 422, 503})
"""The statuses whose body the API documents as a JSON error object worth quoting."""
_SHOWN = 200


class PrometheusAdapter(Adapter):
    """Runs an instant PromQL query; samples are rows, their values numbers."""

    kind = "prometheus"
    description = "An instant PromQL query over Prometheus' HTTP API (GET only)"
    diagnostic_model = PrometheusDiagnostic
    schemes = frozenset({"http", "https"})

    max_body: int = MAX_BODY

    def check(self, request: RunRequest) -> None:
        promql = request.query.get("promql")
        if not isinstance(promql, str) or not promql.strip():
            raise Refused("Refused: a prometheus diagnostic needs a PromQL expression (text).")
        if len(promql) > MAX_PROMQL:  # the model's bound, for a {$param: q} given here
            raise Refused(
                f"Refused: a PromQL expression is at most {MAX_PROMQL:,} characters; "
                f"this one has {len(promql):,}."
            )
        build_url(request.uri, API_PATH)  # an http(s) target; the path cannot move the host
        _time(request.query.get("time"))

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        self.check(request)
        params = {"query": request.query["promql"]}
        moment = _time(request.query.get("time"))
        if moment is not None:
            params["time"] = moment
        # The server stops evaluating when we stop waiting (a Prometheus duration).
        params["timeout"] = f"{max(1, int(ctx.remaining() * 1000))}ms"
        get = RunRequest(
            request.diagnostic_id, {"path": f"{API_PATH}?{urlencode(params)}"}, request.uri
        )
        call = _PromCall(get, ctx, self.max_body)
        try:
            status, body = call.fetch()
        finally:
            call.close()
        return _samples(status, body, call.clean, sink, request.limit)


class _PromCall(Call):
    """The HTTP reader's call, also reading the body of the API's documented errors."""

    def _ok(self, response: http.client.HTTPResponse) -> http.client.HTTPResponse:
        if response.status in ERROR_STATUSES and "json" in (
            response.getheader("Content-Type") or ""
        ):
            return response
        return super()._ok(response)


def _time(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise Refused("Refused: a prometheus query's time is RFC 3339 or seconds since the epoch.")


def _samples(status: int, body: bytes, clean: Any, sink: Sink, limit: int) -> dict[str, Any]:
    from playbook.core.diagnostics import column_numbers

    try:
        doc = json.loads(body, parse_constant=no_constant, parse_float=_float)
    except (ValueError, RecursionError):
        begins = clean(escaped(clean(body[:_SHOWN].decode("utf-8", "replace"))))
        raise RunError(
            f"The answer is not JSON ({len(body):,} bytes); it begins: {begins or '(nothing)'}",
            "Check that the target is the Prometheus server's base URL.",
        ) from None
    if not isinstance(doc, dict) or doc.get("status") not in ("success", "error"):
        raise RunError("The answer is JSON but not a Prometheus API answer (no status).")
    if doc["status"] == "error":
        kind = clean(escaped(str(doc.get("errorType") or "error"), 40))
        said = clean(escaped(str(doc.get("error") or ""), _SHOWN))
        raise RunError(
            f"Prometheus answered {status} {kind}: {said}",
            "A bad_data error is the expression itself; 503 is the server timing out.",
        )
    data = doc.get("data")
    if not isinstance(data, dict):
        raise RunError("The answer has no data.")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "matrix":
        raise RunError(
            "The query returned a range vector (matrix); playbook runs instant queries only.",
            "Drop the bare range selector ([5m]) or wrap it in a function: rate(x[5m]), "
            "max_over_time(x[5m]).",
        )
    if kind == "vector" and isinstance(result, list):
        rows = [_vector_row(sample) for sample in result]
    elif kind in ("scalar", "string") and isinstance(result, list) and len(result) == 2:
        rows = [_row({}, result[0], result[1], number=kind == "scalar")]
    else:
        raise RunError(
            f"The answer's result type {clean(escaped(str(kind), 40))!r} is not one "
            "playbook reads (vector, scalar, string)."
        )
    for row in rows[:limit]:
        sink.add(row)
    # A NaN or Inf sample counts as one that is no number: column_numbers then gives no
    # value, value_min or value_max at all (a maximum that skips it is of some samples).
    values = [{VALUE: math.nan if r.get(VALUE) in NON_FINITE else r.get(VALUE)} for r in rows]
    metrics: dict[str, Any] = {  # models.RUN_METRICS: the names validate is told
        "status": status,
        "count": len(rows),
        "rows": min(len(rows), limit),
        "non_finite": sum(1 for r in rows if r.get(VALUE) in NON_FINITE),
        "warnings": len(doc.get("warnings") or []),
    }
    numbers = column_numbers(values, [VALUE])
    if len(rows) != 1:
        numbers.pop(VALUE, None)  # one finite sample of many is not "the" value
    metrics.update(numbers)
    return metrics


class _Spelt(str):
    """A JSON number too large for a float (``1e999``), kept as the text it was: Python
    would read it as ``inf``, which no event or evidence file can hold, and which is
    no time or number of anything."""


def _float(text: str) -> float | str:
    number = float(text)
    return number if math.isfinite(number) else _Spelt(text)


def _vector_row(sample: object) -> dict[str, Any]:
    if not isinstance(sample, dict):
        raise RunError("A sample of the vector is not an object.")
    labels = sample.get("metric") if isinstance(sample.get("metric"), dict) else {}
    pair = sample.get("value")
    if not (isinstance(pair, list) and len(pair) == 2):
        # a native histogram sample carries "histogram", not "value": no one number
        row = _row(labels, None, None, number=False)
        row["value"] = "(histogram)" if "histogram" in sample else "(no value)"
        return row
    return _row(labels, pair[0], pair[1], number=True)


def _row(labels: dict[str, Any], at: object, value: object, *, number: bool) -> dict[str, Any]:
    from playbook.core.diagnostics import strict_number

    row: dict[str, Any] = {}
    for name, text in labels.items():
        key = f"label_{name}" if name in ("value", "timestamp") else str(name)
        row[key] = text
    if isinstance(at, _Spelt):
        raise RunError(
            f"A sample's timestamp is not a finite number of seconds: {escaped(at, 60)!r}.",
            "The server's answer is not one Prometheus sends; check the target.",
        )
    if isinstance(at, int | float) and not isinstance(at, bool):
        row["timestamp"] = at
    if not number:
        row["value"] = value
        return row
    if not isinstance(value, str):
        raise RunError(
            f"A sample's value is {type(value).__name__}, not the string Prometheus sends."
        )
    if value in NON_FINITE:
        row["value"] = value  # kept as text: no expectation compares with it
        return row
    parsed = strict_number(value)
    if parsed is None:
        raise RunError(f"A sample's value is not a number: {escaped(value, 60)!r}.")
    row["value"] = parsed
    return row
