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

    def __init__(
        self,
        data_dir: Path | None,
        actor: str | None,
        store_url: str | None = None,
        *,
        drills: bool = False,
    ) -> None:
        self.data_dir = data_dir
        self.actor = actor
        self.store_url = store_url
        """``--store`` as given (None: PLAYBOOK_STORE, the responder's config, or SQLite)."""
        self.drills = drills
        """Drills are kept apart: always in the local drills folder, never shared."""
        self._service: Any = None
        self._choice: Any = None
        self.synced: Any = None
        """What the sync at the start of this command did (a shared store with events
        waiting in the outbox), or None."""

    @property
    def choice(self) -> Any:
        """Which store, and who chose it (:func:`playbook.store.choice.choose`)."""
        if self._choice is None:
            from playbook.store.choice import StoreChoice, choose

            self._choice = StoreChoice("", "--drills") if self.drills else choose(self.store_url)
        return self._choice

    @property
    def resolved_data_dir(self) -> Path:
        from playbook.resources import default_data_dir

        return self.data_dir or default_data_dir()

    @property
    def store(self) -> Any:
        """The store every command and the app use: the one choice
        (:func:`playbook.store.choice.open_store`)."""
        return self.service.store

    @property
    def service(self) -> Any:
        if self._service is None:
            from playbook.service import Service
            from playbook.store.choice import open_store

            data_dir = self.resolved_data_dir
            store = open_store(data_dir, self.choice)
            self._service = Service(store, actor=self.actor, evidence_dir=data_dir / "evidence")
            outbox = getattr(store, "pending", None)
            if outbox is not None and store.pending():  # sync at the start of each command
                self.synced = store.sync()
        return self._service

    def report_team(self) -> None:
        """After each command, on stderr: what the start's sync refused (never dropped:
        it stays in the outbox), and "offline: N events not yet shared"."""
        if self._service is None:
            return
        from playbook.service.team import offline_line

        store = self._service.store
        for refused in getattr(self.synced, "refused", []):
            click.secho(
                f"conflict: your {printable(refused.event.type)} was not shared: "
                f"{printable(refused.reason)}",
                fg="red",
                err=True,
            )
        if self.synced is not None and self.synced.refused:
            click.echo(
                "It is kept in the outbox: `playbook store status` lists it; redo the change "
                "on the incident as it is now if it still holds.",
                err=True,
            )
        line = offline_line(store)
        if line:
            click.secho(printable(line), fg="yellow", err=True)

    def close(self) -> None:
        """At the end of the command: report the team store's state, then release the
        store (a shared store's connection is closed, not left to the collector)."""
        try:
            self.report_team()
        finally:
            if self._service is not None and hasattr(self._service.store, "shared"):
                self._service.store.close()


pass_app = click.make_pass_decorator(CliApp)


def targets_for(
    service: Any, state: Any, overrides: Sequence[str], playbook_path: Path | None = None
) -> Any:
    """The targets a command may use for ``state``'s incident (None: no incident yet, as in
    `playbook run`), as the service decides (a drill: none; its sandbox runs only inside
    `playbook drill`). A configuration file that was ignored (an untrusted folder's
    playbook.toml) is said on stderr, with the command that would trust it.
    """
    from playbook.store.choice import folder_store_notice

    known = service.targets_for(state, overrides, playbook_path=playbook_path)
    if playbook_path is None and state is not None and state.playbook_path:
        playbook_path = Path(state.playbook_path)  # the folder the service read, too
    ignored_store = folder_store_notice(playbook_path)
    for notice in [*known.notices, *([ignored_store] if ignored_store else [])]:
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
