"""Recording the postmortem's facts headless (issue 15 §6): ``impact``, ``followup add /
done / list``, ``pin`` and ``retro``. ``playbook export ID --format postmortem`` writes
the draft they fill in.

Each command is one call to :mod:`playbook.service.postmortem` and a line (or JSON) saying
what was recorded. Every one works on a resolved or closed incident too.
"""

from __future__ import annotations

import click

from playbook.cli.context import CliApp, json_option, pass_app
from playbook.cli.output import emit_json, report
from playbook.core.events import RETROSPECTIVE_FIELDS
from playbook.core.text import inline


@click.command()
@click.argument("incident")
@click.option(
    "--set",
    "pairs",
    multiple=True,
    required=True,
    metavar="KEY=VALUE",
    help='An impact figure, e.g. --set users=1200 --set data_lost="none". Repeatable; '
    "a later value of a key replaces the earlier one in the postmortem.",
)
@json_option
@pass_app
def impact(app: CliApp, incident: str, pairs: tuple[str, ...], as_json: bool) -> None:
    """Record INCIDENT's impact figures (users affected, data lost, revenue, …)."""
    from playbook.service import postmortem  # at use: the service is not a start-up cost

    figures = postmortem.parse_figures(pairs)
    state = postmortem.record_impact(app.service.context, incident, figures)
    shown = ", ".join(f"{k}={v}" for k, v in figures.items())
    report(app, state, as_json, f"Impact recorded on {state.id} (event {state.last_seq}): {shown}")


@click.group()
def followup() -> None:
    """Follow-up actions of the postmortem: add, mark done, list."""


@followup.command("add")
@click.argument("incident")
@click.argument("title")
@click.option("--owner", default="", help="Who will do it.")
@click.option("--due", default="", metavar="YYYY-MM-DD", help="When it is due.")
@click.option("--ticket", default="", help="The tracker's ticket, e.g. OPS-12.")
@json_option
@pass_app
def followup_add(
    app: CliApp, incident: str, title: str, owner: str, due: str, ticket: str, as_json: bool
) -> None:
    """Add a follow-up action TITLE to INCIDENT; it gets the next number."""
    from playbook.service import postmortem  # at use: the service is not a start-up cost

    state = postmortem.add_followup(app.service.context, incident, title, owner, due, ticket)
    number = len(state.followups)
    report(app, state, as_json, f"Follow-up {number} added to {state.id}: {title}")


@followup.command("done")
@click.argument("incident")
@click.argument("number", type=click.IntRange(min=1))
@json_option
@pass_app
def followup_done(app: CliApp, incident: str, number: int, as_json: bool) -> None:
    """Mark follow-up NUMBER of INCIDENT done."""
    from playbook.service import postmortem  # at use: the service is not a start-up cost

    state = postmortem.followup_done(app.service.context, incident, number)
    report(app, state, as_json, f"Follow-up {number} of {state.id} is done.")


@followup.command("list")
@click.argument("incident")
@json_option
@pass_app
def followup_list(app: CliApp, incident: str, as_json: bool) -> None:
    """List INCIDENT's follow-up actions."""
    state = app.service.get(incident).state
    if as_json:
        emit_json(
            [
                {
                    "number": f.number,
                    "title": f.title,
                    "owner": f.owner,
                    "due": f.due,
                    "ticket": f.ticket,
                    "done": f.done_at is not None,
                }
                for f in state.followups
            ]
        )
        return
    if not state.followups:
        click.echo(f'{state.id} has no follow-ups. Add one: playbook followup add {state.id} "…"')
    for f in state.followups:
        mark = "x" if f.done_at is not None else " "
        facts = [
            f"owner {f.owner}" if f.owner else "no owner",
            f"due {f.due}" if f.due else "no due date",
        ]
        if f.ticket:
            facts.append(f.ticket)
        click.echo(inline(f"{f.number:>3} [{mark}] {f.title} ({', '.join(facts)})"))


@click.command()
@click.argument("incident")
@click.argument("seq", type=click.IntRange(min=1))
@json_option
@pass_app
def pin(app: CliApp, incident: str, seq: int, as_json: bool) -> None:
    """Pin event SEQ of INCIDENT as a highlight of the postmortem's timeline."""
    from playbook.service import postmortem  # at use: the service is not a start-up cost

    state = postmortem.pin(app.service.context, incident, seq)
    report(app, state, as_json, f"Event {seq} of {state.id} is pinned.")


def _retro_options(command: click.Command) -> click.Command:
    for name in reversed(RETROSPECTIVE_FIELDS):
        flag = "--" + name.replace("_", "-")
        words = name.replace("_", " ")
        click.option(
            flag, name, multiple=True, metavar="TEXT", help=f"A {words} note. Repeatable."
        )(command)
    return command


@click.command()
@click.argument("incident")
@_retro_options
@json_option
@pass_app
def retro(app: CliApp, incident: str, as_json: bool, **fields: tuple[str, ...]) -> None:
    """Record INCIDENT's retrospective: trigger, detection, root cause, contributing
    factors, resolution, what went well, badly, and where we were lucky."""
    notes = [(name, text) for name in RETROSPECTIVE_FIELDS for text in fields.get(name, ())]
    from playbook.service import postmortem  # at use: the service is not a start-up cost

    state = postmortem.note_retrospective(app.service.context, incident, notes)
    report(app, state, as_json, f"{len(notes)} retrospective note(s) recorded on {state.id}.")
