"""``playbook store``: set up the team's shared log, copy local incidents to it, see it.

- ``init [--grant ROLE…]``: create (or upgrade) the schema; the roles get what a responder
  needs (read and append, never change or delete an event);
- ``push``: copy the local SQLite incidents to the shared store (idempotent; what
  conflicted is listed and left in the local file);
- ``status``: which store, whether it answers, its schema's version, and the outbox;
- ``sync``: send the outbox now (every command also does it when it starts).

The URL is never printed as given: only its redacted form. The store modules are
imported inside the commands (psycopg is not a start-up cost of the CLI).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from playbook.cli.context import CliApp, json_option, pass_app
from playbook.cli.output import emit_json
from playbook.core.text import printable
from playbook.errors import ExitCode, UsageError


@click.group("store")
def store() -> None:
    """The team's shared incident log (PostgreSQL): set it up, fill it, check it.

    Choose it with --store postgresql://…, PLAYBOOK_STORE, or [store] url = "…" in your
    own playbook.toml (never a runbooks folder's). Without one, incidents stay in the
    local SQLite file.
    """


def _shared_url(app: CliApp) -> str:
    choice = app.choice
    if not choice.shared:
        raise UsageError(
            "No shared store is chosen: this command works on the team's PostgreSQL log.",
            "Give it with --store postgresql://…, PLAYBOOK_STORE, or [store] url in your "
            "own playbook.toml.",
        )
    return str(choice.url)


def _refused_lines(refused: list[Any]) -> list[str]:
    return [
        f"  refused: {printable(r.incident_id)} {printable(r.event.type)} by "
        f"{printable(r.event.actor)}: {printable(r.reason)}"
        for r in refused
    ]


@store.command("init")
@click.option(
    "--grant",
    "roles",
    multiple=True,
    metavar="ROLE",
    help="A role responders log in as: may read and append events, never change one. Repeatable.",
)
@pass_app
def init_command(app: CliApp, roles: tuple[str, ...]) -> None:
    """Create or upgrade the shared store's schema (safe to run again)."""
    from playbook.store.postgres import init

    url = _shared_url(app)
    applied = init(url, roles)
    shown = printable(app.choice.shown)
    if applied:
        click.echo(f"{shown}: schema steps applied: {', '.join(map(str, applied))}.")
    else:
        click.echo(f"{shown}: the schema is up to date; nothing to do.")
    for role in roles:
        click.echo(f"granted {printable(role)}: read and append events, keep presence.")


@store.command("push")
@pass_app
def push_command(app: CliApp) -> None:
    """Copy this machine's local incidents to the shared store.

    Idempotent: what is there already is not copied again. An incident the shared store
    also has gets the local ticks, notes and evidence merged; a local severity, status or
    phase change that someone else superseded there is refused, listed, and left in the
    local file. Exits 4 when something was refused.
    """
    from playbook.service.team import push

    _shared_url(app)
    report = push(app.resolved_data_dir, app.store)
    refused: list[Any] = []
    for done in report:
        line = f"{printable(done.incident_id)}: {done.copied} copied, {done.already} already there"
        if done.refused:
            line += f", {len(done.refused)} refused"
        if done.skipped:
            line = f"{printable(done.incident_id)}: skipped ({printable(done.skipped)})"
        click.echo(line)
        refused += done.refused
    for line in _refused_lines(refused):
        click.secho(line, fg="red")
    if not report:
        click.echo("No local incidents to copy.")
    if refused:
        sys.exit(ExitCode.CONFLICT)


@store.command("sync")
@pass_app
def sync_command(app: CliApp) -> None:
    """Send the events waiting in the outbox now. Exits 4 when one was refused (someone
    else changed the same value first: it stays in the outbox), 5 when the shared store
    cannot be reached."""
    from playbook.errors import StoreError

    _shared_url(app)
    store_ = app.store
    report = app.synced or store_.sync()
    app.synced = None  # shown here, not again after the command
    click.echo(f"{len(report.sent)} sent, {len(report.refused)} refused, {report.pending} waiting.")
    for line in _refused_lines(report.refused):
        click.secho(line, fg="red")
    if report.error:
        raise StoreError(report.error, "The events wait in the outbox; nothing was lost.")
    if report.refused:
        sys.exit(ExitCode.CONFLICT)


@store.command("status")
@json_option
@pass_app
def status_command(app: CliApp, as_json: bool) -> None:
    """Which store, whether it answers, its schema's version, and what is not yet shared.
    Exits 5 when the shared store cannot be reached."""
    from playbook.service.team import store_status

    choice = app.choice
    status = store_status(app.store, choice.shown, choice.source)
    conflicts = [
        {
            "incident": r.incident_id,
            "type": r.event.type,
            "event_id": r.event.event_id,
            "actor": r.event.actor,
            "reason": r.reason,
        }
        for r in status.conflicts
    ]
    if as_json:
        emit_json(
            {
                "store": status.store,
                "source": status.source,
                "shared": status.shared,
                "reachable": status.reachable,
                "error": status.error,
                "schema": status.schema,
                "schema_expected": status.schema_expected,
                "pending": status.pending,
                "conflicts": conflicts,
            }
        )
    else:
        click.echo(f"store:     {printable(status.store)} (from {printable(status.source)})")
        if status.shared:
            click.echo(f"reachable: {'yes' if status.reachable else 'no'}")
            if status.error:
                click.echo(f"error:     {printable(status.error)}")
            schema = "unknown" if status.schema is None else str(status.schema)
            click.echo(f"schema:    {schema} (this playbook needs {status.schema_expected})")
            noun = "event" if status.pending == 1 else "events"
            click.echo(f"pending:   {status.pending} {noun} not yet shared")
            for c in conflicts:
                click.secho(
                    f"refused:   {printable(c['incident'])} {printable(c['type'])}: "
                    f"{printable(c['reason'])}",
                    fg="red",
                )
    if status.shared and not status.reachable:
        sys.exit(ExitCode.STORE)


@store.command("dismiss")
@click.argument("event_id")
@pass_app
def dismiss_command(app: CliApp, event_id: str) -> None:
    """Stop listing the refused change EVENT_ID (its id is in `playbook store status
    --json`): you have seen it, and redone it or not. It stays in the outbox file."""
    from playbook.errors import NotFound

    _shared_url(app)
    outbox = app.store
    if event_id not in {r.event.event_id for r in outbox.conflicts()}:
        raise NotFound(
            f"No refused change {event_id!r} waits to be seen.",
            "`playbook store status --json` lists them with their event ids.",
        )
    outbox.dismiss(event_id)
    click.echo(f"dismissed {printable(event_id)}; it stays in the outbox file.")
