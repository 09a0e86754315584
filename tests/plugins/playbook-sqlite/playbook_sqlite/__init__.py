"""A ``sqlite`` diagnostic kind for playbook: one read-only statement on a SQLite file.

A third-party adapter as small as one can be. It registers in the ``playbook.adapters``
entry-point group (see its ``pyproject.toml``) and says what a diagnostic of its kind
holds (:attr:`SqliteAdapter.query_model`); playbook does the rest (validation, the JSON
Schema, parameters, expectations, evidence).

Read only because SQLite says so: the file is opened with ``mode=ro``, so SQLite itself
refuses every write, and with no room for an attached database (``ATTACH`` of a new file,
or ``VACUUM INTO``, would otherwise create one). Python's sqlite3 runs one statement at a
time. The target is ``sqlite:///absolute/path.db``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field

from playbook.adapters.base import Adapter, Refused, RunContext, RunError, RunRequest, Sink
from playbook.core.model import Model


class SqliteQuery(Model):
    """One SQL statement, run on the database file opened read-only."""

    sql: str = Field(min_length=1)
    """The statement; the first row's numeric columns become the run's numbers."""


def database(uri: str) -> Path:
    """The file a ``sqlite:///path`` target names.

    Raises:
        Refused: not a ``sqlite:`` URI with an absolute path.
    """
    parts = urlsplit(uri)
    if parts.scheme != "sqlite" or parts.netloc or not parts.path.startswith("/"):
        raise Refused("Refused: a sqlite target is sqlite:///absolute/path/to/file.db.")
    return Path(unquote(parts.path))


class SqliteAdapter(Adapter):
    """Runs one statement on a SQLite file that SQLite opens read-only."""

    kind = "sqlite"
    description = "A SQLite database file, opened read-only by SQLite: one statement."
    query_model = SqliteQuery

    def check(self, request: RunRequest) -> None:
        database(request.uri)

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        path = database(request.uri)
        if not path.is_file():
            raise RunError(f"No SQLite database at {path}.")
        conn = sqlite3.connect(
            f"{path.as_uri()}?mode=ro",
            uri=True,
            timeout=ctx.connect_timeout,
            check_same_thread=False,  # the run's watchdog interrupts it from its thread
        )
        try:
            conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
            ctx.on_stop(conn.interrupt)
            ctx.connected()
            cursor = conn.execute(request.query["sql"])
            columns = [d[0] for d in cursor.description or ()]
            numbers: dict[str, Any] = {}
            count = 0
            for row in cursor:
                if count == 0:
                    numbers = {c: v for c, v in zip(columns, row, strict=True) if _number(v)}
                if count < request.limit:
                    sink.add(dict(zip(columns, row, strict=True)))
                count += 1
                if count % 500 == 0:
                    ctx.check()
        except sqlite3.Error as exc:
            if ctx.stopped:
                raise ctx.stop_error() from None
            raise RunError(f"SQLite refused the statement: {exc}.") from None
        finally:
            conn.close()
        return {**numbers, "rows": min(count, request.limit), "count": count}


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
