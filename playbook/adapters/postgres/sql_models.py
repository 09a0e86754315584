"""What a playbook may say of a ``postgres-sql`` guarded action: one data-changing statement.

The kind has actions and no diagnostics (a read is a ``postgres`` diagnostic), so its
entry in the ``playbook.adapters`` group, :class:`PostgresSqlKind`, only contributes the
action model; the writer is :mod:`playbook.adapters.postgres.sql_action`. Nothing here
imports psycopg or pglast: the model is built whenever a playbook is read.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from playbook.adapters.base import Adapter, Refused, RunContext, RunRequest, Sink
from playbook.core.model import ActionBase, Model

KIND = "postgres-sql"


class SqlStatement(Model):
    """One UPDATE, DELETE or INSERT on a declared table, its rows keyed by ``key``."""

    operation: Literal["statement"]
    table: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
    """The one table the statement may change (PostgreSQL's parser and catalog check
    that it is this table, resolved on the target's search path as the statement is;
    later stages, the rollback included, use the relation the dry run found, by OID)."""
    key: list[str] = Field(min_length=1)
    """Columns of a unique index that name each changed row: the backup, the check
    before apply and the rollback find rows by them. The statement may not change them."""
    sql: str = Field(min_length=1)
    """The statement. Parameters are ``%(name)s``, each one of the action's ``params``,
    bound by the driver; never pasted into the text. No RETURNING (playbook adds its
    own), no WITH, no ON CONFLICT. An INSERT gives its key values itself."""


class PostgresSqlAction(ActionBase):
    """A guarded data change to PostgreSQL written as SQL: dry run in a transaction
    rolled back, backup of the rows it would change, apply only if they are still as
    backed up, rollback of each row only where it is as the run left it."""

    kind: Literal["postgres-sql"]
    do: SqlStatement


class PostgresSqlKind(Adapter):
    """The ``postgres-sql`` kind: actions only (see the module's docstring)."""

    kind: ClassVar[str] = KIND
    description: ClassVar[str] = "One SQL data change to PostgreSQL, as a guarded action"
    action_model: ClassVar[type[Any] | None] = PostgresSqlAction

    def check(self, request: RunRequest) -> None:
        raise Refused(
            "Refused: postgres-sql is a kind of guarded action, not of diagnostic.",
            "A read is a diagnostic of kind postgres.",
        )

    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        self.check(request)
        return {}
