"""What a playbook may ask of an HTTP endpoint: a diagnostic's ``query:``.

:class:`~playbook.adapters.http.reader.HttpAdapter` contributes this model to the
playbook model. There is no action model: an HTTP target is only read.
"""

from __future__ import annotations

from typing import Literal

from playbook.core.model import DiagnosticBase, Model, ParamRef


class HttpQuery(Model):
    """A GET of a JSON endpoint; numbers picked out of the answer by path."""

    path: str | ParamRef = ""
    """Appended to the target's URL (``/get_discord_data_backup?latest=true``)."""
    pick: dict[str, str] = {}
    """Number name -> dotted path into the JSON (``data.timestamp``; ``items.#`` is a
    list's length). An ISO 8601 time becomes seconds since the epoch, and also gives
    ``<name>_age_seconds``."""


class HttpDiagnostic(DiagnosticBase):
    """A diagnostic that reads a JSON endpoint over HTTP(S)."""

    kind: Literal["http"]
    query: HttpQuery
