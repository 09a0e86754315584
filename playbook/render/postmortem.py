"""The postmortem draft (``playbook export ID --format postmortem``, issue 15 §6).

A pure function of the incident's events, a time and a zone, like the other exports. Its
sections follow what the PagerDuty and Google SRE postmortem templates ask for: summary,
impact, detection and trigger, root cause and contributing factors, resolution, roles,
action items, lessons learned (went well, went badly, where we got lucky), timeline
highlights, external messages verbatim, and the full timeline as an appendix.

A section with nothing recorded says what belongs in it and the command that records it,
so the draft is also the checklist of what the review still has to write.

Every value from outside goes through :mod:`playbook.render.markdown`, as in the Markdown
export. Two records belong to other parts of this round and may be absent:
``state.roles`` (roles, issue 15 §2) and ``publish_result`` events (publications, issue
17); both are read only when present, by attribute and by type name.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, tzinfo
from typing import Any

from playbook.core import events as ev
from playbook.core.durations import format_duration
from playbook.core.events import Event
from playbook.core.state import IncidentState, fold
from playbook.core.timers import BREACHED, compute
from playbook.errors import UsageError
from playbook.render import markdown as md
from playbook.render.export import _drill_banner, cycle_collector_paused, describe, timeline_table
from playbook.render.stamps import times as _times

PUBLISH_RESULT = "publish_result"
"""The type of a publication's outcome (issue 17), read by name: it may not exist here."""

_FIELD_TITLES = {
    "trigger": "Trigger",
    "detection": "Detection",
    "root_cause": "Root cause",
    "contributing": "Contributing factors",
    "resolution": "Resolution",
    "went_well": "What went well",
    "went_badly": "What went badly",
    "lucky": "Where we got lucky",
}
_FIELD_HINTS = {
    "trigger": "What set the incident off (a deploy, a config change, a traffic spike).",
    "detection": "How and when it was noticed: an alert, a customer, a colleague.",
    "root_cause": "Why it happened, beyond the trigger.",
    "contributing": "What made it worse, longer, or harder to see.",
    "resolution": "What ended the impact.",
    "went_well": "What helped.",
    "went_badly": "What hindered.",
    "lucky": "What went right by chance, and would not next time.",
}


@cycle_collector_paused
def to_postmortem(events: list[Event], now: datetime, tz: tzinfo | None = None) -> str:
    """The postmortem draft, as of ``now``; times in UTC and in ``tz``."""
    if not events:
        raise UsageError("This incident has no events to export.")
    state = fold(events)
    out: list[str] = []
    add = out.append
    ref = state.id
    if state.drill is not None:
        _drill_banner(add, state)
    add(f"# Postmortem: {md.text(state.id)}: {md.text(state.title)}")
    add("")
    add(
        f"Draft exported {now:%Y-%m-%d %H:%M}Z from the incident's log · playbook "
        f"{md.code(state.playbook_id)} · incident status **{md.text(state.status)}**"
    )
    add("")
    skipped = [u for u in state.unreadable if not u.kept]
    if skipped:
        add(
            f"> **{len(skipped)} unreadable event(s)** are missing from this draft (their "
            "rows are still in the log; the appendix names them)."
        )
        add("")

    _summary(add, state, now, tz)
    _impact(add, state, now, ref)
    _detection(add, state, ref)
    add("## Root cause and contributing factors")
    add("")
    _notes(add, state, "root_cause", ref, level="###")
    _notes(add, state, "contributing", ref, level="###")
    _resolution(add, state, ref)
    _roles(add, state, ref)
    _action_items(add, state, ref)
    add("## Lessons learned")
    add("")
    for name in ("went_well", "went_badly", "lucky"):
        _notes(add, state, name, ref, level="###")
    _highlights(add, events, state, now, tz, ref)
    _external_messages(add, events, state)
    add("## Appendix: the full timeline")
    add("")
    timeline_table(add, events, state, tz)
    add("")
    return "\n".join(out)


def _fill_in(
    add: Callable[[str], None], what: str, command: str, how: str = "Record it with"
) -> None:
    """What an empty section should hold, and the command that records it."""
    add(f"_To fill in:_ {what} {how} {md.code(command)}.")
    add("")


def _summary(
    add: Callable[[str], None], state: IncidentState, now: datetime, tz: tzinfo | None
) -> None:
    add("## Summary")
    add("")
    add("| | UTC | Local |")
    add("|---|---|---|")
    add(f"| Service | {md.text(state.service)} | |")
    levels = [p.level for p in state.severity_history]
    worst = _worst(state, levels)
    add(f"| Severity now | {md.text(state.severity)} | |")
    if worst:
        add(f"| Highest severity | {md.text(worst)} | |")
    for label, moment in (
        ("Opened", state.opened_at),
        ("Acknowledged", state.acknowledged_at),
        ("Resolved", state.resolved_at),
        ("Closed", state.closed_at),
    ):
        utc, local = _times(moment, tz)
        add(f"| {label} | {utc} | {local} |")
    if state.opened_at is not None:
        end = state.resolved_at or now
        running = "" if state.resolved_at else " (not resolved yet)"
        add(f"| Duration | {format_duration((end - state.opened_at).total_seconds())}{running} | |")
    if state.triggers:
        add(f"| Triggered by | {md.text('; '.join(state.triggers))} | |")
    add("")


def _worst(state: IncidentState, levels: list[str]) -> str:
    """The most severe level the incident reached: levels are listed most severe first in
    the playbook (P1 before P2), so the one with the lowest index."""
    order = {level: i for i, level in enumerate(state.levels)}
    known = [level for level in levels if level in order]
    return min(known, key=order.__getitem__) if known else ""


def _impact(add: Callable[[str], None], state: IncidentState, now: datetime, ref: str) -> None:
    add("## Impact")
    add("")
    if state.impact:
        add("| Figure | Value | Recorded (UTC) | By |")
        add("|---|---|---|---|")
        for figure in state.impact.values():
            add(
                f"| {md.text(figure.key)} | {md.text(figure.value)} | "
                f"{figure.at:%Y-%m-%d %H:%M}Z | {md.text(figure.actor)} |"
            )
        add("")
        add("Earlier values of a figure are in the appendix.")
        add("")
    else:
        _fill_in(
            add,
            "users or accounts affected, data lost, requests failed, support tickets.",
            f'playbook impact {ref} --set users=1200 --set data_lost="none"',
        )
    history = state.severity_history
    if history:
        end = state.resolved_at or now
        spent: dict[str, float] = {}
        for i, period in enumerate(history):
            until = history[i + 1].since if i + 1 < len(history) else end
            spent[period.level] = (
                spent.get(period.level, 0.0) + (until - period.since).total_seconds()
            )
        add(
            "Time at each severity: "
            + "; ".join(f"{md.text(level)} {format_duration(s)}" for level, s in spent.items())
            + "."
        )
        add("")
    timers = compute(state, now)
    for timer in (timers.response, timers.resolution):
        if timer is None:
            continue
        verdict = (
            "**breached**" if timer.state == BREACHED else ("met" if timer.stopped else "running")
        )
        add(
            f"- {md.text(timer.label)}: target {format_duration(timer.target)}, took "
            f"{format_duration(timer.elapsed)}: {verdict}"
        )
    add("")


def _notes(
    add: Callable[[str], None], state: IncidentState, name: str, ref: str, level: str = "##"
) -> None:
    add(f"{level} {_FIELD_TITLES[name]}")
    add("")
    notes = [n for n in state.retrospective if n.field == name]
    if not notes:
        flag = "--" + name.replace("_", "-")
        _fill_in(add, _FIELD_HINTS[name], f'playbook retro {ref} {flag} "…"')
        return
    for note in notes:
        add(f"- {md.lines(note.text)} ({note.at:%Y-%m-%d %H:%M}Z, {md.text(note.actor)})")
    add("")


def _detection(add: Callable[[str], None], state: IncidentState, ref: str) -> None:
    add("## Detection and trigger")
    add("")
    if state.triggers:
        add("Opened on: " + "; ".join(md.text(t) for t in state.triggers) + ".")
        add("")
    if state.opened_at is not None and state.acknowledged_at is not None:
        taken = (state.acknowledged_at - state.opened_at).total_seconds()
        add(f"Acknowledged {format_duration(taken)} after it was opened.")
        add("")
    _notes(add, state, "detection", ref, level="###")
    _notes(add, state, "trigger", ref, level="###")


def _resolution(add: Callable[[str], None], state: IncidentState, ref: str) -> None:
    add("## Resolution")
    add("")
    if state.resolution_summary:
        add(f"Resolved with: {md.lines(state.resolution_summary, indent='')}")
        add("")
    notes = [n for n in state.retrospective if n.field == "resolution"]
    for note in notes:
        add(f"- {md.lines(note.text)} ({note.at:%Y-%m-%d %H:%M}Z, {md.text(note.actor)})")
    if notes:
        add("")
    if not notes and not state.resolution_summary:
        _fill_in(add, _FIELD_HINTS["resolution"], f'playbook retro {ref} --resolution "…"')


def _holder(value: object) -> str:
    """Who holds a role, whatever shape the roles record has (a name, or a record with
    a ``person``, ``holder`` or ``name``)."""
    if isinstance(value, str):
        return value
    for attribute in ("person", "holder", "who", "name"):
        found = getattr(value, attribute, None)
        if isinstance(found, str):
            return found
    if isinstance(value, dict):
        for key in ("person", "holder", "who", "name"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return str(value)


def _roles(add: Callable[[str], None], state: IncidentState, ref: str) -> None:
    add("## Roles")
    add("")
    # Roles are recorded by issue 15 §2 (another part of this round): read only if present.
    roles: Any = getattr(state, "roles", {}) or {}
    if isinstance(roles, list | tuple):  # assignments, each naming its role
        roles = {str(getattr(r, "role", "") or "?"): r for r in roles}
    if isinstance(roles, dict) and roles:
        add("| Role | Held by |")
        add("|---|---|")
        for role, holder in roles.items():
            add(f"| {md.text(role)} | {md.text(_holder(holder))} |")
        add("")
    else:
        _fill_in(
            add,
            "who was incident commander, deputy, scribe, subject expert, liaison.",
            f"playbook role {ref} commander alice",
        )
    add(f"Everyone who recorded an event: {md.text(', '.join(state.actors))}.")
    add("")


def _action_items(add: Callable[[str], None], state: IncidentState, ref: str) -> None:
    add("## Action items")
    add("")
    if not state.followups:
        _fill_in(
            add,
            "what will be done so this does not happen again, or hurts less, with an owner, "
            "a due date and a ticket.",
            f'playbook followup add {ref} "…" --owner alice --due 2026-12-05 --ticket OPS-12',
        )
        return
    add("| # | Action | Owner | Due | Ticket | Status |")
    add("|---|---|---|---|---|---|")
    for f in state.followups:
        status = (
            f"done {f.done_at:%Y-%m-%d}, {md.text(f.done_by)}" if f.done_at is not None else "open"
        )
        add(
            f"| {f.number} | {md.text(f.title)} | {md.text(f.owner) or '—'} | "
            f"{md.text(f.due) or '—'} | {md.text(f.ticket) or '—'} | {status} |"
        )
    add("")
    missing = [f.number for f in state.followups if not (f.owner and f.due)]
    if missing:
        add(
            "Without an owner or a due date: "
            + ", ".join(str(n) for n in missing)
            + f" (add a new one with both; `playbook followup list {md.text(ref)}`)."
        )
        add("")


def _highlights(
    add: Callable[[str], None],
    events: list[Event],
    state: IncidentState,
    now: datetime,
    tz: tzinfo | None,
    ref: str,
) -> None:
    """Pinned events, every severity change and every breached target, in time order."""
    add("## Timeline highlights")
    add("")
    pinned = set(state.pinned)
    skipped = {u.seq for u in state.unreadable if not u.kept}  # the fold did not apply them
    rows: list[tuple[datetime, int, str, str, str]] = []
    for event in events:
        why = ""
        if event.seq in pinned:
            why = "pinned"
        elif event.type in (ev.OPENED, ev.SEVERITY_CHANGED) and event.seq not in skipped:
            why = "severity"
        if why:
            rows.append(
                (event.at, event.seq, md.text(event.actor), md.text(describe(event, state)), why)
            )
    timers = compute(state, now)
    for timer in (timers.response, timers.resolution, timers.status_update):
        if timer is not None and timer.state == BREACHED:
            rows.append(
                (
                    timer.deadline,
                    0,
                    "",
                    md.text(f"{timer.label} target breached"),
                    "target breached",
                )
            )
    rows.sort(key=lambda r: (r[0], r[1] or 10**18))
    add("| UTC | Local | # | Actor | Event | Why |")
    add("|---|---|---|---|---|---|")
    for at, seq, actor, text, why in rows:
        utc, local = _times(at, tz)
        add(f"| {utc} | {local} | {seq or '—'} | {actor} | {text} | {why} |")
    add("")
    if not pinned:
        _fill_in(
            add,
            "the moments the review should see (the cause began, the page, the first status "
            "post, the fix).",
            f"playbook pin {ref} SEQ",
            "Pin each with p in the app's timeline, or with",
        )


def _external_messages(
    add: Callable[[str], None], events: list[Event], state: IncidentState
) -> None:
    add("## External messages")
    add("")
    published = [e for e in events if e.type == PUBLISH_RESULT and isinstance(e.payload, dict)]
    if not state.messages and not published:
        add("None were sent.")
        add("")
        return
    for message in state.messages:
        add(
            f"### {md.text(message.template)} ({md.text(message.status)}), "
            f"{message.at:%Y-%m-%d %H:%M}Z by {md.text(message.actor)}"
        )
        add("")
        add(md.fence(message.text))
        add("")
    if published:
        # Publications (issue 17) are recorded by another part of this round: shown by
        # type name, every field as recorded, texts verbatim.
        add("### Publications")
        add("")
        for event in published:
            fields = ", ".join(
                f"{k}: {v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)}"
                for k, v in event.payload.items()
                if k not in ("text", "body")
            )
            add(f"- {event.at:%Y-%m-%d %H:%M}Z, {md.text(event.actor)}: {md.text(fields)}")
            for key in ("text", "body"):
                if isinstance(event.payload.get(key), str):
                    add("")
                    add(md.fence(event.payload[key]))
                    add("")
        add("")
