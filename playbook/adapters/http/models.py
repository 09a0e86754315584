"""What a playbook may ask of an HTTP endpoint: a diagnostic's ``query:``.

:class:`~playbook.adapters.http.reader.HttpAdapter` contributes this model to the
playbook model. There is no action model: an HTTP target is only read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import Field

from playbook.core.model import DiagnosticBase, Model, ParamRef


class Pick(Model):
    """A value picked by path and declared a number: a JSON string such as ``"0.93"``
    (Prometheus, Thanos and many exporters send numbers so) becomes 0.93, and anything
    that is not a number is an error naming the pick and the text, never a pass."""

    path: str = Field(min_length=1)
    """Dotted path into the JSON, as for a plain pick."""
    as_: Literal["number"] = Field(alias="as")
    """``number``: a JSON number, or a string of ASCII digits with an optional fraction
    and exponent."""
    strip: str = Field("", max_length=8)
    """Removed once from the end and once from the start of a string first (``"%"``)."""


class HttpQuery(Model):
    """A GET of a JSON endpoint; numbers picked out of the answer by path."""

    path: str | ParamRef = ""
    """Appended to the target's URL (``/get_discord_data_backup?latest=true``)."""
    pick: dict[str, str | Pick] = Field(default_factory=dict)
    """Number name -> dotted path into the JSON (``data.timestamp``; ``items.#`` is a
    list's length). An ISO 8601 time becomes seconds since the epoch, and also gives
    ``<name>_age_seconds``: a time up to 5 s ahead of this machine's clock is age 0
    (rounding, drift); one further ahead gives ``<name>_ahead_seconds`` and no age, so an
    expectation on the age, or on the time itself, is an error saying the clocks
    disagree, never a pass (a time ahead by nature is checked through
    ``<name>_ahead_seconds``).
    ``{path: …, as: number}`` reads a string as a number."""


RUN_METRICS = ("status", "bytes")
"""Numbers every run gives, whatever it picks."""
RESERVED = (*RUN_METRICS, "missing")
"""Row and number names the adapter sets itself; a pick may not use them."""


def pick_metric_names(pick: Mapping[str, object]) -> frozenset[str]:
    """Every number a run with these picks can give: :data:`RUN_METRICS`, each pick's
    name, and for a plain pick (which may turn out to be a time) its age numbers
    (:func:`playbook.core.diagnostics.age_metric_names`). A pick declared ``as: number``
    is never a time. The reader asks this too, so the two cannot disagree."""
    from playbook.core.diagnostics import age_metric_names

    names = set(RUN_METRICS)
    for name, spec in pick.items():
        names.add(name)
        if isinstance(spec, str):
            names |= age_metric_names(f"{name}_")
    return frozenset(names)


class HttpDiagnostic(DiagnosticBase):
    """A diagnostic that reads a JSON endpoint over HTTP(S)."""

    kind: Literal["http"]
    query: HttpQuery

    def result_metrics(self) -> frozenset[str]:
        """The numbers this diagnostic's run can give (for ``playbook validate``)."""
        return pick_metric_names(self.query.pick)
