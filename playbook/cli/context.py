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


def select_targets(playbook_path: Path | None, overrides: Sequence[str]) -> Any:
    """The targets a command may use; a configuration file that was ignored (an untrusted
    folder's playbook.toml) is said on stderr, with the command that would trust it."""
    from playbook.targets import load_targets

    known = load_targets(playbook_path, overrides)
    for notice in known.notices:
        click.secho(f"notice: {printable(notice)}", fg="yellow", err=True)
    return known


def targets_for_incident(state: Any, overrides: Sequence[str]) -> Any:
    """The targets a command on this incident may reach: its playbook's folder decides
    which playbook.toml is read (`diag run`, `action run`, `action rollback`).

    Target selection for the CLI happens here and in :func:`select_targets` only, so a
    change of who decides it (the service) lands in this module.
    """
    return select_targets(Path(state.playbook_path) if state.playbook_path else None, overrides)


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
