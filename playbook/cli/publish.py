"""``playbook publish``: render a status message, check it, preview it per destination,
and (after confirmation) publish it to a status page or chat, recording each step."""

from __future__ import annotations

from typing import Any

import click

from playbook.cli.context import CliApp, json_option, parse_sets, pass_app
from playbook.cli.output import emit_json
from playbook.cli.terminal import confirm
from playbook.core.text import printable
from playbook.errors import ExitCode, UsageError


def _split(values: tuple[str, ...]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def _components(pairs: tuple[str, ...]) -> dict[str, str]:
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, status = pair.partition("=")
        if not sep or not name.strip() or not status.strip():
            raise UsageError(f"--component takes NAME=STATUS, got {pair!r}.")
        found[name.strip()] = status.strip()
    return found


def _echo(text: str, **style: Any) -> None:
    click.secho(printable(text), **style)


def _show_draft(draft: Any) -> None:
    for notice in draft.notices:
        click.secho(f"notice: {printable(notice)}", fg="yellow", err=True)
    for part in draft.parts:
        _echo(f"── {part.destination} ({part.kind}, {part.audience}) ──", bold=True)
        if part.refused:
            _echo(f"  refused: {part.refused}", fg="red")
        if part.unsettled:
            _echo(f"  held: {part.unsettled}", fg="yellow")
        for finding in part.check.findings:
            tag = "blocks" if finding.blocks else "warning"
            _echo(f"  check {tag}: {finding.describe()}", fg="red" if finding.blocks else "yellow")
        if not part.check.findings:
            _echo("  check: passed", fg="green")
        if part.request is not None:
            what = "update of " + part.external_id if part.external_id else "first post"
            _echo(f"  preview ({what}):")
            for line in part.request.shown().splitlines():
                _echo(f"    {line}")


def _ask_unknown(assume_no: bool) -> Any:
    def ask(pub: Any) -> bool:
        _echo(
            f"A '{pub.template}' message to {pub.destination} may have been sent before a "
            "crash: that destination keeps no record playbook can check.",
            fg="yellow",
            err=True,
        )
        if assume_no:
            _echo(
                "Not sending it again (--yes never re-sends a message that may be out).", err=True
            )
            return False
        return confirm("Send it again?")

    return ask


def _ask_resend(assume_no: bool) -> Any:
    def ask(pub: Any) -> bool:
        if assume_no:  # --yes never decides this: only --resend NAME does
            return False
        return confirm(
            f"The last '{pub.template}' message to {pub.destination} may already be out. "
            "Send this one to it anyway?"
        )

    return ask


def _report(outcomes: list[Any], as_json: bool) -> None:
    if as_json:
        emit_json([o.__dict__ for o in outcomes])
    else:
        for o in outcomes:
            where = f" {o.external_id}" if o.external_id else ""
            link = f" {o.url}" if o.url else ""
            colour = "green" if o.outcome in ("published", "reconciled") else "red"
            _echo(f"{o.destination}: {o.outcome}{where}{link} {o.detail}".rstrip(), fg=colour)
    if any(o.outcome == "failed" for o in outcomes):
        raise SystemExit(ExitCode.RUN_FAILED)
    if any(o.outcome == "held" for o in outcomes):  # nothing sent there; run it again
        raise SystemExit(ExitCode.REFUSED)


@click.command()
@click.argument("incident")
@click.argument("template", required=False)
@click.option(
    "--to", "to", multiple=True, metavar="NAME[,NAME…]", help="Destinations ([publish.NAME])."
)
@click.option(
    "--set", "sets", multiple=True, metavar="NAME=VALUE", help="A template variable. Repeatable."
)
@click.option(
    "--component",
    "components",
    multiple=True,
    metavar="NAME=STATUS",
    help="A Statuspage component's status (operational, degraded_performance, "
    "partial_outage, major_outage, under_maintenance). Repeatable.",
)
@click.option("--yes", is_flag=True, help="Publish without asking (the check still runs).")
@click.option(
    "--resume",
    is_flag=True,
    help="Settle publications a crash left unconfirmed (before anything new).",
)
@click.option(
    "--resend",
    "resend",
    multiple=True,
    metavar="NAME[,NAME…]",
    help="Send to NAME although its last message may be out (a crash left it unknown).",
)
@json_option
@pass_app
def publish(
    app: CliApp,
    incident: str,
    template: str | None,
    to: tuple[str, ...],
    sets: tuple[str, ...],
    components: tuple[str, ...],
    yes: bool,
    resume: bool,
    resend: tuple[str, ...],
    as_json: bool,
) -> None:
    """Publish status message TEMPLATE (initial, progress, resolution) for INCIDENT to
    the destinations of your own playbook.toml ([publish.NAME]).

    The message is rendered as `playbook status` renders it, the comms check runs
    (impact, current action, next update time, data loss on resolution; no secret,
    connection string, private address, internal host or stack trace), each
    destination's request is shown with secrets masked, and after you confirm it is
    sent. Each send is recorded before (intent) and after (result); a crash between
    them is settled by the next publish or --resume, never by posting twice.
    """
    from playbook.service import publishing

    ctx = app.service.context
    if resume or template is None:
        if template is None and not resume:
            raise UsageError("Name the message to publish (TEMPLATE), or pass --resume.")
        outcomes = publishing.resume(ctx, incident, confirm_unknown=_ask_unknown(yes))
        if outcomes:
            _report(outcomes, as_json and template is None)
        if template is None:
            # What is still in doubt, in the words `publish` uses when it holds a
            # destination for it: one source (the service), so the two never disagree.
            questions = publishing.open_questions(app.service.get(incident).state)
            for pub in questions:
                _echo(publishing.describe_unsettled(pub, ctx.actor), fg="yellow")
            if not outcomes and not questions:
                _echo("Nothing to resume: every publication has its result.")
            return
    draft = publishing.draft(
        ctx, incident, template, parse_sets(sets), _split(to), _components(components)
    )
    if not as_json:
        _show_draft(draft)
    if draft.blocked and as_json:
        emit_json(
            {
                "published": False,
                "findings": {
                    p.destination: [f.describe() for f in p.check.findings]
                    + ([p.refused] if p.refused else [])
                    for p in draft.parts
                },
            }
        )
    if not draft.blocked and not yes:
        names = ", ".join(p.destination for p in draft.parts)
        if not confirm(f"Publish to {names}?"):
            from playbook.publish.base import PublishRefused

            raise PublishRefused("Not published: not confirmed.", "Nothing was sent.")
    outcomes = publishing.publish(
        ctx,
        draft,
        confirm_unknown=_ask_unknown(yes),
        resend=_split(resend),
        confirm_resend=_ask_resend(yes),
    )
    _report(outcomes, as_json)
