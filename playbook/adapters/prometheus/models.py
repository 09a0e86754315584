"""What a playbook may ask of Prometheus: a diagnostic's ``query:``, an instant query."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from playbook.core.model import DiagnosticBase, Model, ParamRef

MAX_PROMQL = 10_000
"""Characters of one expression, written in the playbook or given as a parameter."""


class PrometheusQuery(Model):
    """An instant query: the PromQL expression evaluated at one moment."""

    # The length bounds belong to the text alone: on the union pydantic would apply
    # them to a {$param: q} too, and fail inside (a TypeError) instead of validating.
    promql: Annotated[str, Field(min_length=1, max_length=MAX_PROMQL)] | ParamRef
    """The expression (``100 * node_filesystem_avail_bytes / node_filesystem_size_bytes``).
    Instant queries only: a range selector left bare (``up[5m]``) is refused when the
    answer comes back as a matrix; wrap it in a function (``rate(x[5m])``)."""
    time: str | int | float | ParamRef | None = None
    """When to evaluate it: RFC 3339 or seconds since the epoch (a datetime parameter
    works); the server's now when absent."""


RUN_METRICS = ("status", "count", "rows", "non_finite", "warnings")
"""Numbers every run gives, whatever the answer."""
VALUE = "value"
"""The column of each sample's value, whose numbers (``value``, ``value_min``, …) come
from :func:`playbook.core.diagnostics.column_numbers`."""


def prometheus_metric_names() -> frozenset[str]:
    """Every number a prometheus run can give; the reader builds its numbers from the
    same two names, so ``validate`` and a run cannot disagree."""
    from playbook.core.diagnostics import column_metric_names

    return frozenset(RUN_METRICS) | column_metric_names([VALUE])


class PrometheusDiagnostic(DiagnosticBase):
    """A diagnostic that runs an instant query against Prometheus' HTTP API."""

    kind: Literal["prometheus"]
    query: PrometheusQuery

    def result_metrics(self) -> frozenset[str]:
        """The numbers this diagnostic's run can give (for ``playbook validate``)."""
        return prometheus_metric_names()
