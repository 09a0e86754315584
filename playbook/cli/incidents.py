"""Driving an incident headless: open, acknowledge, check, change severity or phase,
follow a scenario, note, rename, escalate, resolve, close; list, show, print the
timeline, export.

Each command is one call to the service and a line (or JSON) saying what was recorded.
The export's renderer and the file writer are imported in the two commands that use
them, for start-up speed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from playbook.cli.context import CliApp, json_option, pass_app
from playbook.cli.output import emit_json, local_time, print_summary, report, state_json, timer_line
from playbook.core.durations import format_duration
from playbook.core.text import inline, one_line


@click.command("open")
@click.argument("playbook", required=False)
@click.option("--title", "-t", required=True, help="What is wrong, in a few words.")
@click.option("--severity", "-s", help="Severity level (default: the playbook's default, e.g. P2).")
@click.option(
    "--trigger",
    "triggers",
    multiple=True,
    help="What triggered it: a trigger id (e.g. automated-alerts.backup-verification-failures) or text. Repeatable.",
)
@json_option
@pass_app
def open_incident(
    app: CliApp,
    playbook: str | None,
    title: str,
    severity: str | None,
    triggers: tuple[str, ...],
    as_json: bool,
) -> None:
    """Open an incident on PLAYBOOK (a file or a built-in name; default data-integrity)."""
    state = app.service.open(playbook, title, severity, triggers)
    if as_json:
        emit_json(state_json(app, state))
        return
    level = state.levels[state.severity]
    click.echo(f"Opened incident {state.id} ({state.severity}): {inline(state.title)}")
    targets = [
        f"{verb} within {format_duration(seconds)}"
        for verb, seconds in (("Respond", level.response), ("resolve", level.resolution))
        if seconds is not None
    ]
    said = ", ".join(targets) + ". " if targets else "No targets at this level. "
    click.echo(f"{said}Next: playbook ack {state.id}")


@click.command()
@click.argument("incident")
@json_option
@pass_app
def ack(app: CliApp, incident: str, as_json: bool) -> None:
    """Acknowledge INCIDENT: the team has begun the response (stops the response timer)."""
    state = app.service.acknowledge(incident)
    timer = app.service.timers(state).response
    report(
        app,
        state,
        as_json,
        f"Acknowledged {state.id}: {timer_line(timer)}" if timer else "Acknowledged",
    )


@click.command()
@click.argument("incident")
@click.argument("level")
@click.option("--reason", "-r", required=True, help="Why the severity changes (recorded).")
@json_option
@pass_app
def severity(app: CliApp, incident: str, level: str, reason: str, as_json: bool) -> None:
    """Change INCIDENT's severity to LEVEL (e.g. P1); running timers take the new targets."""
    state = app.service.change_severity(incident, level, reason)
    report(app, state, as_json, f"{state.id} is now {state.severity}.")


@click.command()
@click.argument("incident")
@click.argument("phase")
@json_option
@pass_app
def phase(app: CliApp, incident: str, phase: str, as_json: bool) -> None:
    """Move INCIDENT to PHASE (checking an item of a later phase does this too)."""
    state = app.service.enter_phase(incident, phase)
    report(app, state, as_json, f"{state.id} is in phase {state.phase}.")


@click.command()
@click.argument("incident")
@click.argument("scenario")
@json_option
@pass_app
def scenario(app: CliApp, incident: str, scenario: str, as_json: bool) -> None:
    """Follow SCENARIO (e.g. data-loss) in INCIDENT: its signs, investigation and recovery join
    the checklist."""
    state = app.service.choose_scenario(incident, scenario)
    report(app, state, as_json, f"{state.id} follows: {', '.join(state.scenarios)}.")


@click.command()
@click.argument("incident")
@click.argument("items", nargs=-1, required=True, metavar="STEP_OR_ITEM...")
@json_option
@pass_app
def check(app: CliApp, incident: str, items: tuple[str, ...], as_json: bool) -> None:
    """Mark STEP_OR_ITEM of INCIDENT done (an item, or every item of a step; several may be
    given). `show` lists their ids."""
    state = None
    for item in items:
        state = app.service.check(incident, item)
    assert state is not None
    done = sum(1 for r in state.checklist if r in state.done)
    report(
        app,
        state,
        as_json,
        f"{state.id}: {done}/{len(state.checklist)} items done; phase {state.phase}.",
    )


@click.command()
@click.argument("incident")
@click.argument("items", nargs=-1, required=True, metavar="STEP_OR_ITEM...")
@json_option
@pass_app
def uncheck(app: CliApp, incident: str, items: tuple[str, ...], as_json: bool) -> None:
    """Mark STEP_OR_ITEM of INCIDENT not done again (recorded as its own event)."""
    state = None
    for item in items:
        state = app.service.uncheck(incident, item)
    assert state is not None
    done = sum(1 for r in state.checklist if r in state.done)
    report(app, state, as_json, f"{state.id}: {done}/{len(state.checklist)} items done.")


@click.command()
@click.argument("incident")
@click.argument("text")
@json_option
@pass_app
def note(app: CliApp, incident: str, text: str, as_json: bool) -> None:
    """Add a note to INCIDENT's timeline (TEXT of - reads standard input)."""
    if text == "-":
        text = sys.stdin.read()
    state = app.service.note(incident, text)
    report(app, state, as_json, f"Noted on {state.id} (event {state.last_seq}).")


@click.command()
@click.argument("incident")
@click.argument("title")
@json_option
@pass_app
def rename(app: CliApp, incident: str, title: str, as_json: bool) -> None:
    """Give INCIDENT a new TITLE (the old one stays in the timeline and the export).

    A title is one line of plain text: control characters and terminal escapes are
    refused, as when opening an incident.
    """
    state = app.service.rename(incident, title)
    report(app, state, as_json, f"Renamed {state.id}: {inline(state.title)}")


@click.command()
@click.argument("incident")
@click.option("--to", help="Who (default: the next person on the escalation path).")
@click.option("--reason", "-r", default="", help="Why.")
@json_option
@pass_app
def escalate(app: CliApp, incident: str, to: str | None, reason: str, as_json: bool) -> None:
    """Record an escalation of INCIDENT to the next person on the path (or --to)."""
    state = app.service.escalate(incident, to, reason)
    report(app, state, as_json, f"Escalated {state.id} to {inline(state.escalations[-1].to)}.")


@click.command()
@click.argument("incident")
@click.option("--summary", default="", help="How it was resolved, in a sentence.")
@json_option
@pass_app
def resolve(app: CliApp, incident: str, summary: str, as_json: bool) -> None:
    """Mark INCIDENT resolved (stops the resolution timer)."""
    state = app.service.resolve(incident, summary)
    timer = app.service.timers(state).resolution
    report(
        app, state, as_json, f"Resolved {state.id}: {timer_line(timer)}" if timer else "Resolved"
    )


@click.command()
@click.argument("incident")
@json_option
@pass_app
def close(app: CliApp, incident: str, as_json: bool) -> None:
    """Close a resolved INCIDENT once post-incident work is done."""
    state = app.service.close(incident)
    report(
        app,
        state,
        as_json,
        f"Closed {state.id}. Export it: playbook export {state.id} --format markdown",
    )


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Include closed incidents.")
@json_option
@pass_app
def incidents(app: CliApp, show_all: bool, as_json: bool) -> None:
    """List incidents: id, severity, status, age, timers."""
    states = [s for s in app.service.incidents() if show_all or s.closed_at is None]
    if as_json:
        emit_json([state_json(app, s) for s in states])
        return
    if not states:
        click.echo("No incidents. Open one: playbook open --title '…'")
        return
    now = app.service.clock.now()
    for s in states:
        alerts = app.service.timers(s).alerts()
        flag = f"  {alerts[0].label} {alerts[0].state}" if alerts else ""
        age = format_duration((now - s.opened_at).total_seconds()) if s.opened_at else "?"
        title = inline(s.title)[:50]
        click.echo(
            inline(f"{s.id}  {s.severity}  {s.status:<12} {age:>8}  ") + title + inline(flag)
        )


@click.command()
@click.argument("incident")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="List the items of every section, not only the current phase.",
)
@json_option
@pass_app
def show(app: CliApp, incident: str, show_all: bool, as_json: bool) -> None:
    """Show INCIDENT: timers, progress per phase, and the current phase's items with their ids."""
    state = app.service.get(incident).state
    if as_json:
        emit_json(state_json(app, state))
        return
    print_summary(app, state, items="all" if show_all else "phase")


@click.command("timeline")
@click.argument("incident")
@json_option
@pass_app
def timeline(app: CliApp, incident: str, as_json: bool) -> None:
    """Print every event of INCIDENT in order, with local and UTC times."""
    from playbook.render.export import describe

    found = app.service.get(incident)
    if as_json:
        emit_json([e.to_dict() for e in found.events])
        return
    for event in found.events:
        click.echo(
            f"{event.seq:>4}  {local_time(event.at)}  {inline(event.actor):<12} {one_line(describe(event, found.state))}"
        )


@click.command()
@click.argument("incident")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json", "postmortem"]),
    default="markdown",
    show_default=True,
    help="markdown: the post-incident document; json: every event, loadable again; "
    "postmortem: a postmortem draft (Markdown) with impact, root cause, follow-ups, "
    "highlights, status messages verbatim, the timeline as an appendix.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file (atomically).",
)
@pass_app
def export(app: CliApp, incident: str, fmt: str, output: Path | None) -> None:
    """Export INCIDENT's timeline for the post-incident review (open or closed)."""
    from playbook.fileio import atomic_write

    text = app.service.export(incident, fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write(output, text)
    click.echo(f"Wrote {output} ({len(text.encode()):,} bytes).", err=True)
