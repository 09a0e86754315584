"""Shared printing: JSON on standard output, local and UTC times, timer lines, and the
summary of an incident that `show` prints.

Text that came from a playbook, a note or a database is printed through
:func:`~playbook.core.text.inline` or :func:`~playbook.core.text.printable`, with control
characters escaped.

The incident state, its timers and events are imported where they are used: loading them
costs about 12 ms (the state's dataclasses), which `playbook --help`, `validate` and
`schema` need not pay; every command that prints an incident has them loaded already.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from playbook.cli.context import CliApp
from playbook.core.durations import format_duration
from playbook.core.text import inline, json_escaped, printable

if TYPE_CHECKING:  # at run time, imported where used: see the module's docstring
    from playbook.core.state import IncidentState
    from playbook.core.timers import Timer


def emit_json(data: Any) -> None:
    """``data`` as JSON on standard output; control, format and separator characters
    written as ``\\u`` escapes, as in the JSON export (:func:`json_escaped`)."""
    click.echo(json_escaped(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


def local_time(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S %Z} ({moment:%H:%M}Z)"


def state_json(app: CliApp, state: IncidentState) -> dict[str, Any]:
    from playbook.core.events import format_utc

    timers = app.service.timers(state)

    def t(timer: Timer | None) -> dict[str, Any] | None:
        if timer is None:
            return None
        return {
            "label": timer.label,
            "state": timer.state,
            "stopped": timer.stopped,
            "elapsed_seconds": round(timer.elapsed, 3),
            "target_seconds": timer.target,
            "remaining_seconds": round(timer.remaining, 3),
            "deadline": format_utc(timer.deadline),
            "escalate_to": timer.escalate_to,
        }

    return {
        "id": state.id,
        "title": state.title,
        "playbook": state.playbook_id,
        "status": state.status,
        "severity": state.severity,
        "phase": state.phase,
        "opened_at": format_utc(state.opened_at) if state.opened_at else None,
        "acknowledged_at": format_utc(state.acknowledged_at) if state.acknowledged_at else None,
        "resolved_at": format_utc(state.resolved_at) if state.resolved_at else None,
        "closed_at": format_utc(state.closed_at) if state.closed_at else None,
        "triggers": state.triggers,
        "done": sorted(state.done),
        "items": len(state.checklist),
        "notes": len(state.notes),
        "status_messages": len(state.messages),
        "escalations": [e.to for e in state.escalations],
        "next_escalation": state.next_escalation(),
        "timers": {
            "response": t(timers.response),
            "resolution": t(timers.resolution),
            "phase": t(timers.phase),
            "status_update": t(timers.status_update),
            "internal_update": t(timers.internal_update),
        },
        "roles": dict(state.roles),
        "last_seq": state.last_seq,
        "unreadable": [
            {"seq": u.seq, "type": u.type, "why": u.why, "kept": u.kept} for u in state.unreadable
        ],
    }


def timer_line(timer: Timer) -> str:
    """A timer on one line; its label (a level id, a phase title) and the person to
    escalate to come from the playbook's snapshot, so the line is shown literally."""
    return inline(_timer_text(timer))


def _timer_text(timer: Timer) -> str:
    from playbook.core.timers import BREACHED

    if timer.stopped:
        verdict = "BREACHED" if timer.state == BREACHED else "met"
        return f"{timer.label:<28} {verdict:<9} took {format_duration(timer.elapsed)} of {format_duration(timer.target)}"
    left = timer.remaining
    when = f"{format_duration(left)} left" if left >= 0 else f"{format_duration(-left)} over"
    line = (
        f"{timer.label:<28} {timer.state.upper():<9} {format_duration(timer.elapsed)} used, {when}"
    )
    if timer.escalate_to:
        line += f" — escalate to {timer.escalate_to}"
    return line


def timer_color(timer: Timer) -> str | None:
    from playbook.core.timers import BREACHED, WARNING

    return {BREACHED: "red", WARNING: "yellow"}.get(timer.state)


def print_summary(app: CliApp, state: IncidentState, *, items: str = "phase") -> None:
    # Everything here was read from the log (a hand edit can put anything in it).
    click.secho(f"{inline(state.id)}  {inline(state.title)}", bold=True)
    click.echo(
        inline(
            f"  playbook {state.playbook_id} · {state.severity} · {state.status} · "
            f"phase {state.phase}"
        )
    )
    click.echo(f"  opened {local_time(state.opened_at)}")
    for problem in state.unreadable:
        click.secho(f"  ! {printable(problem.describe())}", fg="yellow")
    if state.acknowledged_at:
        click.echo(f"  acknowledged {local_time(state.acknowledged_at)}")
    if state.resolved_at:
        click.echo(f"  resolved {local_time(state.resolved_at)}")
    click.echo("")
    for timer in app.service.timers(state).all():
        click.secho("  " + timer_line(timer), fg=timer_color(timer))
    if state.roles:
        click.echo(inline(f"  roles: {state.roles_text()}"))
    click.echo("")
    scenario_ids = {s.get("id") for s in state.snapshot.get("scenarios", [])}
    for section in state.sections:
        refs = [i["ref"] for s in section["steps"] for i in s["items"]]
        done = sum(1 for r in refs if r in state.done)
        unfollowed = section["id"] in scenario_ids and section["id"] not in state.scenarios
        if unfollowed and not done and items != "all":
            continue
        marker = "▶" if section["id"] == state.phase else " "
        click.echo(f" {marker} {inline(section['title']):<52} {done:>3}/{len(refs)}")
        show = items == "all" or (items == "phase" and section["id"] == state.phase)
        if show:
            for step in section["steps"]:
                click.echo(inline(f"      {step['title']}  [{section['id']}.{step['id']}]"))
                for item in step["items"]:
                    mark = "x" if item["ref"] in state.done else " "
                    click.echo(
                        inline(f"        [{mark}] {item['text']}  ({item['ref'].split('.')[-1]})")
                    )
    if state.notes:
        click.echo("")
        click.echo(f"  {len(state.notes)} note(s); last: {inline(state.notes[-1].text)[:70]}")


def report(app: CliApp, state: IncidentState, as_json: bool, message: str) -> None:
    if as_json:
        emit_json(state_json(app, state))
    else:
        click.echo(printable(message))  # it quotes the state: ids and levels from the log
