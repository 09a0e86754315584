"""``playbook status``: render a status-page message from the playbook's template and
record its exact text (or only preview it)."""

from __future__ import annotations

import click

from playbook.cli.context import CliApp, json_option, parse_sets, pass_app
from playbook.cli.output import emit_json
from playbook.core.text import printable


@click.command()
@click.argument("incident")
@click.argument("kind", required=False)
@click.option(
    "--set", "sets", multiple=True, metavar="NAME=VALUE", help="A template variable. Repeatable."
)
@click.option("--preview", is_flag=True, help="Render without recording.")
@json_option
@pass_app
def status(
    app: CliApp,
    incident: str,
    kind: str | None,
    sets: tuple[str, ...],
    preview: bool,
    as_json: bool,
) -> None:
    """Render status message KIND (initial, progress, resolution) for INCIDENT and record its
    exact text.

    Variables the incident knows (service, severity, current_time, …) are filled in;
    give the others with --set. A missing variable is an error naming it. Without KIND:
    when the next update is due, and the reminder if it fires now.
    """
    if kind is None:
        from playbook.cli.roles import cadence_json, cadence_lines

        state = app.service.get(incident).state
        if as_json:
            emit_json(cadence_json(app, state))
            return
        lines = cadence_lines(app, state, app.service.clock.now())
        for line in lines or ["No status update is due."]:
            click.echo(line)
        return
    values = parse_sets(sets)
    if preview:
        text = app.service.preview_status(incident, kind, values)
        recorded = None
    else:
        state, text = app.service.status(incident, kind, values)
        recorded = state.last_seq
    if as_json:
        emit_json({"kind": kind, "text": text, "recorded_as_event": recorded})
        return
    click.echo(printable(text), nl=not text.endswith("\n"))
