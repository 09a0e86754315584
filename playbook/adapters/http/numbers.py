"""A picked value declared ``as: number``: read strictly, or the run is an error.

Apart from :mod:`playbook.adapters.http.reader` so that module stays one screenful of
promises about the network; this one is only about text that should be a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from playbook.adapters.base import RunError
from playbook.redaction import scrub

SHOWN = 60
"""Characters of the offending text quoted back, escaped."""


def declared_number(name: str, value: Any, strip: str, clean: Callable[[str], str]) -> int | float:
    """``value`` as a number: a JSON number as it is, a string read strictly
    (:func:`playbook.core.diagnostics.strict_number`: ``"0.93"`` is 0.93, ``"0.9x"``,
    ``"NaN"`` and ``"1_000"`` are none).

    Raises:
        RunError: naming the pick and the value (escaped, cut, passed through ``clean``
            so no secret of the target is shown).
    """
    from playbook.core.diagnostics import strict_number  # only when a run has an answer

    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    number = strict_number(value, strip) if isinstance(value, str) else None
    if number is None:
        raise RunError(
            f"The value picked as {name!r} is declared a number, but the answer has "
            f"{_described(value, clean)}.",
            "Check the pick's path against the answer, or its `strip`.",
        )
    return number


def _described(value: Any, clean: Callable[[str], str]) -> str:
    if isinstance(value, str):
        value = scrub(value)  # before the cut, which would leave a secret's first characters
        text = repr(value[:SHOWN])[1:-1] + ("…" if len(value) > SHOWN else "")
        return repr(clean(text))
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return f"(a list of {len(value)})"
    if isinstance(value, dict):
        return f"(an object with {len(value)} keys)"
    return repr(value)
