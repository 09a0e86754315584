"""``playbook role``, ``playbook handover``, ``playbook updates`` and ``playbook timers``:
who holds which role, handing a role over, and the status-update cadence (reminders,
snooze, updates switched off).

Names and reasons come from the log (a hand edit can put anything there): every line
goes out through :func:`inline`/``printable``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from playbook.cli.context import CliApp, json_option, pass_app
from playbook.cli.output import emit_json, local_time, report, timer_color, timer_line
from playbook.core.durations import format_duration
from playbook.core.text import inline

if TYPE_CHECKING:
    from datetime import datetime

    from playbook.core.state import IncidentState

AUDIENCES = click.Choice(["all", "external", "internal"])


def roles_lines(state: IncidentState) -> list[str]:
    """Each declared role with its holder, then open handovers."""
    lines = []
    for role in dict.fromkeys([*state.role_names, *state.roles]):
        name = state.role_names.get(role, role)
        lines.append(f"{role:<16} {state.roles.get(role, '') or '—':<20} {name}")
    for h in state.handovers:
        if h.accepted_at is None:
            lines.append(
                f"handover of {h.role} offered to {h.to_person} by {h.from_person or '(nobody)'} "
                f"at {local_time(h.at)}: not yet accepted"
            )
    return [inline(line) for line in lines]


def cadence_lines(app: CliApp, state: IncidentState, now: datetime) -> list[str]:
    """When the next update of each audience is due, any reminder firing now, and any
    snooze or switch-off, in words."""
    from playbook.core.timers import next_update_due, reminders

    lines = []
    for audience in ("external", "internal"):
        due = next_update_due(state, audience)
        if not state.updates_on(audience):
            switch = next(
                s for s in reversed(state.updates_switches) if s.audience in ("all", audience)
            )
            lines.append(f"{audience} updates: off since {local_time(switch.at)}: {switch.reason}")
            continue
        if due is None:
            continue
        left = (due.due - now).total_seconds()
        when = f"in {format_duration(left)}" if left >= 0 else f"{format_duration(-left)} ago"
        lines.append(f"{audience} update due {local_time(due.due)} ({when})")
        snoozed = state.snoozed_until(audience)
        if snoozed is not None and now < snoozed:
            lines.append(f"  reminder snoozed until {local_time(snoozed)}")
    for reminder in reminders(state, now):
        lines.append(("! " if reminder.kind == "breach" else "* ") + reminder.text(now))
    return [inline(line) for line in lines]


@click.command()
@click.argument("incident")
@click.argument("role", required=False)
@click.argument("person", required=False)
@click.option("--release", is_flag=True, help="Nobody holds ROLE any more.")
@json_option
@pass_app
def role(
    app: CliApp,
    incident: str,
    role: str | None,
    person: str | None,
    release: bool,
    as_json: bool,
) -> None:
    """Record that PERSON holds ROLE in INCIDENT (commander, deputy, scribe, …); with only
    INCIDENT, list who holds each role."""
    if role is None or (person is None and not release):
        state = app.service.get(incident).state
        if as_json:
            emit_json(
                {
                    "roles": dict(state.roles),
                    "declared": dict(state.role_names),
                    "handovers": [h.as_dict() for h in state.handovers],
                }
            )
            return
        if role is not None:
            click.echo(inline(f"{role}: {state.roles.get(role, '') or 'nobody'}"))
            return
        for line in roles_lines(state) or ["No roles are declared or held."]:
            click.echo(line)
        return
    if release and person:
        raise click.UsageError("Give PERSON or --release, not both.")
    state = app.service.assign_role(incident, role, "" if release else person or "")
    held = state.roles.get(role, "")
    report(app, state, as_json, f"{role}: {held}" if held else f"{role}: released")


@click.command()
@click.argument("incident")
@click.argument("role")
@click.argument("person", required=False)
@click.option("--accept", is_flag=True, help="Take the role offered to you (or to PERSON).")
@click.option("--brief", default="", help="What the new holder needs to know.")
@json_option
@pass_app
def handover(
    app: CliApp,
    incident: str,
    role: str,
    person: str | None,
    accept: bool,
    brief: str,
    as_json: bool,
) -> None:
    """Offer ROLE of INCIDENT to PERSON; the role changes hands when they run this with
    --accept (binding when the playbook says enforce_roles: then only the commander
    offers the commander role, and only the new commander accepts it)."""
    if accept:
        state = app.service.accept_handover(incident, role, person)
        report(app, state, as_json, f"{state.roles.get(role, '')} is {role} now.")
        return
    if not person:
        raise click.UsageError("Say who to hand the role to: playbook handover ID ROLE PERSON.")
    state = app.service.offer_handover(incident, role, person, brief)
    report(
        app,
        state,
        as_json,
        f"{role} offered to {person}; it changes hands when they accept "
        f"(playbook handover {state.id} {role} --accept).",
    )


@click.command()
@click.argument("incident")
@click.argument("what", type=click.Choice(["snooze", "off", "on", "show"]), default="show")
@click.argument("length", required=False)
@click.option("--reason", default="", help="Why (required for snooze, off and on).")
@click.option(
    "--audience",
    type=AUDIENCES,
    default="all",
    show_default=True,
    help="Whose updates: the status page (external), the team (internal), or both.",
)
@json_option
@pass_app
def updates(
    app: CliApp,
    incident: str,
    what: str,
    length: str | None,
    reason: str,
    audience: str,
    as_json: bool,
) -> None:
    """The status-update cadence of INCIDENT. WHAT is `show` (the default), `snooze`
    (the reminder, for LENGTH such as 15m; the due time does not move), `off` or `on`
    (status updates expected or not). Snooze, off and on need --reason."""
    if what == "snooze":
        if not length:
            raise click.UsageError("How long? playbook updates ID snooze 15m --reason '…'")
        state = app.service.snooze_updates(incident, length, reason, audience)
        message = f"Reminder snoozed for {length}: {reason}"
    elif what in ("off", "on"):
        state = app.service.switch_updates(incident, what == "on", reason, audience)
        message = f"Status updates {what}: {reason}"
    else:
        state = app.service.get(incident).state
        message = ""
    if as_json:
        emit_json(cadence_json(app, state))
        return
    if message:
        click.echo(inline(message))
    for line in cadence_lines(app, state, app.service.clock.now()) or ["No update is due."]:
        click.echo(line)


def cadence_json(app: CliApp, state: IncidentState) -> dict[str, object]:
    from playbook.core.events import format_utc
    from playbook.core.timers import next_update_due, reminders

    now = app.service.clock.now()
    out: dict[str, object] = {"id": state.id}
    for audience in ("external", "internal"):
        due = next_update_due(state, audience)
        snoozed = state.snoozed_until(audience)
        out[audience] = {
            "on": state.updates_on(audience),
            "next_update_due": format_utc(due.due) if due else None,
            "snoozed_until": format_utc(snoozed) if snoozed and now < snoozed else None,
        }
    out["reminders"] = [
        {"audience": r.audience, "kind": r.kind, "text": r.text(now)} for r in reminders(state, now)
    ]
    return out


@click.command()
@click.argument("incident")
@json_option
@pass_app
def timers(app: CliApp, incident: str, as_json: bool) -> None:
    """INCIDENT's timers, update reminders and who holds each role."""
    from playbook.core.timers import escalation_notice

    state = app.service.get(incident).state
    if as_json:
        emit_json({**cadence_json(app, state), "roles": dict(state.roles)})
        return
    now = app.service.clock.now()
    for timer in app.service.timers(state, now).all():
        click.secho(timer_line(timer), fg=timer_color(timer))
    nxt = state.next_escalation()
    breached = [t for t in app.service.timers(state, now).alerts() if t.escalate_to]
    if breached and nxt:
        click.secho(inline(escalation_notice(state, nxt)), fg="red")
    for line in cadence_lines(app, state, now):
        click.echo(line)
    if state.roles:
        click.echo(inline("roles: " + state.roles_text()))
