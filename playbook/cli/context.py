"""What the commands share: the app handle, the options every command spells the same
way, ``--set`` parsing, and which targets a command may reach.

The service is built on first use, so `validate`, `schema` and `--help` need no store and
`import playbook.cli` stays fast (the service, the store and the targets' parser are
imported inside the functions for that reason; tests/test_architecture.py checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from playbook.core.text import printable
from playbook.errors import UsageError


class CliApp:
    """What the commands share, built lazily so `validate` and `schema` need no store."""

    def __init__(self, data_dir: Path | None, actor: str | None) -> None:
        self.data_dir = data_dir
        self.actor = actor
        self._service: Any = None

    @property
    def service(self) -> Any:
        if self._service is None:
            from playbook.resources import default_data_dir
            from playbook.service import Service
            from playbook.store.sqlite import SQLiteStore

            store = SQLiteStore(self.data_dir or default_data_dir())
            self._service = Service(store, actor=self.actor)
        return self._service


pass_app = click.make_pass_decorator(CliApp)


def targets_for(
    service: Any, state: Any, overrides: Sequence[str], playbook_path: Path | None = None
) -> Any:
    """The targets a command may use for ``state``'s incident (None: no incident yet, as in
    `playbook run`), as the service decides (a drill: none; its sandbox runs only inside
    `playbook drill`). A configuration file that was ignored (an untrusted folder's
    playbook.toml) is said on stderr, with the command that would trust it.
    """
    known = service.targets_for(state, overrides, playbook_path=playbook_path)
    for notice in known.notices:
        click.secho(f"notice: {printable(notice)}", fg="yellow", err=True)
    return known


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
target_option = click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="NAME=URI",
    help="Where a named target is (overrides every playbook.toml). ${ENV} is expanded. Repeatable.",
)


def parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    """``--set name=value`` options as a mapping; a pair without ``=`` is a usage error."""
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set takes name=value, got {pair!r}.")
        values[name.strip()] = value
    return values
