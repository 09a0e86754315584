"""What a playbook may ask of PostgreSQL: a diagnostic's ``query:`` and a guarded action's ``do:``.

:class:`~playbook.adapters.postgres.reader.PostgresAdapter` contributes these two models
to the playbook model; validating a playbook reads them, and nothing here imports psycopg.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field

from playbook.core.model import ActionBase, DiagnosticBase, Model

_PLACEHOLDER = re.compile(r"%\(([A-Za-z_][A-Za-z0-9_]*)\)s")
"""A parameter's place in the SQL, as the driver binds it: ``%(name)s``."""


class PostgresQuery(Model):
    """A PostgreSQL read: one SQL statement, run in a read-only transaction."""

    sql: str = Field(min_length=1)
    """One statement. Parameters are written ``%(name)s`` and bound by the driver, never
    pasted into the text. The first row's numeric columns become the run's numbers."""


class PostgresDiagnostic(DiagnosticBase):
    """A diagnostic run against PostgreSQL, read-only, under `statement_timeout`."""

    kind: Literal["postgres"]
    query: PostgresQuery

    def problems(self) -> Iterator[tuple[tuple[str | int, ...], str]]:
        """Every ``%(name)s`` of the SQL must be one of the diagnostic's ``params``: the
        driver would otherwise fail at run time, at 3 a.m., instead of now."""
        used = set(_PLACEHOLDER.findall(self.query.sql))
        for missing in sorted(used - set(self.params)):
            yield (
                ("query", "sql"),
                f"the SQL uses %({missing})s, which is not one of the diagnostic's params",
            )


class Upsert(Model):
    """``INSERT … ON CONFLICT (key) DO UPDATE`` of a few rows, in one transaction."""

    operation: Literal["upsert"]
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
    key: list[str] = Field(min_length=1)
    """The conflict columns (a unique or primary key)."""
    rows: list[dict[str, Any]] = Field(min_length=1)
    """Column -> value; values may be ``{$param: name}``."""


class PostgresAction(ActionBase):
    """A guarded change to PostgreSQL."""

    kind: Literal["postgres"]
    do: Upsert
