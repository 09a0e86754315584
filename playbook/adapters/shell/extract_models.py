"""What a playbook may say of how a shell diagnostic's output becomes a table: ``extract:``.

Exactly one way of cutting the output (``regex``, ``columns`` or ``json``), and for each
column how its text is read (``as: number`` with an optional ``strip``, or ``text``).
The numbers then reach the expectations like any other diagnostic's (see
:mod:`playbook.adapters.shell.extract`)::

    extract:
      columns: [use_percent]
      skip: 1                       # df prints a header line
      fields: {use_percent: {as: number, strip: "%"}}
    expect:
      - {metric: use_percent, op: le, value: 90}
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, Field, model_validator

from playbook.core.model import Model

RESERVED = frozenset(
    {"exit_code", "count", "lines", "rows", "bytes", "sandboxed", "stderr", "lines_cut"}
    | {"background_killed", "line", "remote"}
)
"""Numbers a shell run sets itself; a column may not take their names."""

_NAME = r"^[a-z_][a-z0-9_]{0,62}$"


def _not_reserved(name: str) -> str:
    if name in RESERVED:
        raise ValueError(f"{name!r} is a number the run sets itself; choose another name")
    return name


ColumnName = Annotated[str, Field(pattern=_NAME), AfterValidator(_not_reserved)]
"""A column's name: lower-case letters, digits and ``_`` (it becomes a metric's name)."""


def _compiles(pattern: str) -> str:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"not a regular expression: {exc}") from None
    if not compiled.groupindex:
        raise ValueError("name each group whose text you want: (?P<use_percent>[0-9]+)")
    for name in compiled.groupindex:
        if not re.match(_NAME, name):
            raise ValueError(f"group name {name!r}: use lower-case letters, digits and _")
        _not_reserved(name)
    return pattern


class Column(Model):
    """How one column's text is read."""

    as_: Literal["number", "text"] = Field("text", alias="as")
    """``number``: ASCII digits with an optional fraction and exponent, else the run is an
    error naming the column and the text; ``text``: kept as it is."""
    strip: str = Field("", max_length=8)
    """Removed once from the end and once from the start before a number is read
    (``"%"`` makes ``95%`` 95)."""
    path: str = Field("", max_length=200)
    """For ``json`` only: the dotted path of the value inside each item (default: the
    column's name)."""


class JsonRows(Model):
    """Which values of a JSON output are the rows."""

    path: str = Field("", max_length=200)
    """Dotted: ``items.*.spec``. A name is an object's key, a whole number a list's index
    (``-1`` the last), ``*`` every item of a list (or value of an object), each a row;
    empty is the document itself."""


class Extract(Model):
    """How a shell diagnostic's stdout becomes rows with named columns."""

    regex: Annotated[str, AfterValidator(_compiles)] | None = Field(None, max_length=1000)
    """Matched against each line; every match is a row and its named groups
    ``(?P<name>…)`` the columns. Lines are at most 4,000 characters, and a match never
    spans two."""
    columns: list[ColumnName] | None = Field(None, min_length=1, max_length=64)
    """Each line split at runs of blanks into these columns; the last takes the rest of
    the line (a mount point with spaces). A line with fewer fields is an error."""
    json_: JsonRows | None = Field(None, alias="json")
    """The output is one JSON document; ``path`` picks the rows."""
    skip: int = Field(0, ge=0, le=1000)
    """Lines dropped from the start before ``regex`` or ``columns`` (a header)."""
    fields: dict[ColumnName, Column] = Field(default_factory=dict)
    """How each column is read; a column not listed is text."""

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        ways = [w for w in ("regex", "columns", "json_") if getattr(self, w) is not None]
        if len(ways) != 1:
            raise ValueError("give exactly one of regex, columns or json")
        if self.json_ is not None and self.skip:
            raise ValueError("skip is for regex and columns; a JSON document has no header")
        known: set[str] | None = None
        if self.columns is not None:
            known = set(self.columns)
        elif self.regex is not None:
            known = set(re.compile(self.regex).groupindex)
        if known is not None:
            unknown = sorted(set(self.fields) - known)
            if unknown:
                raise ValueError(f"fields names {unknown[0]!r}, which is not a column")
            if any(f.path for f in self.fields.values()):
                raise ValueError("a field's path is for json only")
        return self
