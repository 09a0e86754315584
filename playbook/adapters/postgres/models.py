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


RUN_METRICS = ("rows",)
"""The number every run gives: how many rows it read."""


def unique_names(names: list[str]) -> list[str]:
    """Column names as a run's rows and numbers use them: a repeated name gets ``_2``,
    ``_3``… (``SELECT a, a``)."""
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}_{seen[name]}")
    return out


def column_metrics(columns: list[str]) -> frozenset[str]:
    """Every number a run whose result has ``columns`` can give: ``rows``, each column
    (a number, a true/false, an interval in seconds, a time as epoch seconds) and a time
    column's age numbers (:func:`playbook.core.diagnostics.age_metric_names`), as the
    reader's ``first_row_numbers`` names them."""
    from playbook.core.diagnostics import age_metric_names

    names = set(RUN_METRICS)
    for column in unique_names(columns):
        names.add(column)
        names |= age_metric_names(f"{column}_")
    return frozenset(names)


def result_columns(sql: str) -> list[str] | None:
    """The names of the columns ``sql`` returns, as PostgreSQL's parser (pglast) says,
    or None when only the server could say.

    Known: an alias (``AS name``, folded as the parser folds it), a plain column
    reference (``t.col`` is ``col``), ``VALUES`` (``column1``…), and the first branch of
    a ``UNION``; SHOW and EXPLAIN give text only, so no column of theirs is a number.
    Unknown: ``*``, ``TABLE t``, and an expression without an alias (its name is the
    server's rule, e.g. ``count``, ``?column?``): give it an alias to have it checked.
    """
    from pglast import parse_sql

    from playbook.adapters.base import Refused
    from playbook.adapters.postgres.sql import check_sql

    try:
        statement = check_sql(sql)
    except Refused:
        return None  # validate's SQL check says why; here only the names are asked
    if statement.kind != "SELECT":
        return []
    node = parse_sql(statement.sent or statement.text)[0].stmt
    while node.larg is not None:  # UNION, INTERSECT, EXCEPT: the first branch names them
        node = node.larg
    if node.valuesLists:
        return [f"column{i}" for i in range(1, len(node.valuesLists[0]) + 1)]
    columns: list[str] = []
    for target in node.targetList or ():
        if target.name:
            columns.append(target.name)
            continue
        fields = getattr(target.val, "fields", None)
        if type(target.val).__name__ != "ColumnRef" or not fields:
            return None
        last = fields[-1]
        if type(last).__name__ != "String":
            return None  # t.* or *
        columns.append(last.sval)
    return columns


class PostgresDiagnostic(DiagnosticBase):
    """A diagnostic run against PostgreSQL, read-only, under `statement_timeout`."""

    kind: Literal["postgres"]
    query: PostgresQuery

    def result_metrics(self) -> frozenset[str] | None:
        """The numbers this diagnostic's run can give (for ``playbook validate``), or
        None when the SQL's columns are known only at run time (:func:`result_columns`)."""
        columns = result_columns(self.query.sql)
        return None if columns is None else column_metrics(columns)

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
