"""Exports of an incident's timeline: pure functions of its events, a time and a zone.

(Just over 600 lines: the one sentence each event type gets in every timeline lives here,
beside the two documents that use it; the sections other rooms add — roles, the
postmortem, the JSON layout — are in their own modules.)

Markdown is the post-incident document; JSON is versioned, holds every event, and
loads back into the same state. Nothing here reads a store or writes a file.

An event the fold could not read (see :class:`playbook.core.state.Unreadable`) is named in
both: the document still exports, and says which event is missing from it and why.
Payloads are written with their keys in the order they were recorded.

Every value in the Markdown that came from outside (titles, notes, actors, triggers,
diagnostic rows and messages, status texts, check texts) goes through
:mod:`playbook.render.markdown`, so none of it becomes markup when the document is
rendered.
"""

from __future__ import annotations

import functools
import gc
import json
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime, tzinfo
from itertools import repeat
from typing import Any, ParamSpec, TypeVar

from playbook.core import events as ev
from playbook.core.durations import format_duration
from playbook.core.events import Event, format_utc
from playbook.core.evidence import numbers_of, shown_of
from playbook.core.scorecard import scorecard
from playbook.core.state import IncidentState, fold
from playbook.core.timers import BREACHED, compute
from playbook.errors import UsageError
from playbook.render import levels as role_words
from playbook.render import markdown as md
from playbook.render.json_layout import dumps_indented, event_json, json_safe
from playbook.render.levels import LEVEL_EVENTS, describe_level_event, roles_json, roles_markdown
from playbook.render.scorecard import scorecard_markdown
from playbook.render.stamps import MinuteTimes, UtcStamps
from playbook.render.stamps import times as _times

EXPORT_FORMAT = "playbook.incident"
EXPORT_VERSION = 1


# --------------------------------------------------------------------------- JSON


_P = ParamSpec("_P")
_R = TypeVar("_R")


def cycle_collector_paused(export: Callable[_P, _R]) -> Callable[_P, _R]:
    """``export`` with Python's cycle collector paused while it runs (and resumed after,
    if it was on).

    An export reads every event and makes a few objects for each; the collector, started
    by the count of new objects, walks all 100,000 events again and again: a third of the
    time of a large export. Nothing an export makes needs it: every object is freed by its
    count of references when the export returns, and a cycle, if any, is collected once
    the collector resumes."""

    @functools.wraps(export)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        was_on = gc.isenabled()
        gc.disable()
        try:
            return export(*args, **kwargs)
        finally:
            if was_on:
                gc.enable()

    return paused


@cycle_collector_paused
def to_json(events: list[Event], exported_at: datetime) -> str:
    """Every event, versioned, plus a summary of the folded state for readers.

    A drill's export also has ``drill`` (what was rehearsed, on which services, at what
    speed) and ``scorecard``; a real incident's has neither.
    """
    state = fold(events)
    document: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": format_utc(exported_at),
        "incident": state.id,
        "summary": {
            "title": state.title,
            "playbook": state.playbook_id,
            "status": state.status,
            "severity": state.severity,
            "opened_at": _utc(state.opened_at),
            "acknowledged_at": _utc(state.acknowledged_at),
            "resolved_at": _utc(state.resolved_at),
            "closed_at": _utc(state.closed_at),
            "checked": len(state.done),
            "items": len(state.checklist),
        },
    }
    if state.unreadable:
        document["unreadable"] = [asdict(u) for u in state.unreadable]
    if state.drill is not None:
        document["drill"] = asdict(state.drill)
        document["scorecard"] = scorecard(state, exported_at).to_dict()
    if state.publications:
        document["publications"] = _publications(state)
    if state.role_history or state.handovers:  # absent when nobody was given a role
        document["roles"] = roles_json(state)
    document["events"] = []
    head = dumps_indented(document)
    # Control, format (every bidirectional control among them) and separator characters
    # and lone surrogates are written as \u escapes, as the Markdown export escapes
    # them: the same text once loaded, nothing live in an editor.
    if not events:
        return json_safe(head) + "\n"
    # The events, written one by one straight into their place (see event_json): the
    # document's last key, so its empty list is the last line but one. One join: each
    # concatenation of a 40 MB text copies it.
    body = ",\n".join(map(event_json, events, repeat(UtcStamps())))
    return "".join((json_safe(head.removesuffix("[]\n}")), "[\n", json_safe(body), "\n  ]\n}\n"))


def from_json(text: str) -> list[Event]:
    """The events of a JSON export.

    Raises:
        UsageError: the text is not a JSON export of a version this reads.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"Not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise UsageError("Not a playbook incident export (format is not playbook.incident).")
    if document.get("version") != EXPORT_VERSION:
        raise UsageError(f"Export version {document.get('version')!r} is not one this reads.")
    try:
        events = [Event.from_dict(e) for e in document["events"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"A malformed event in the export: {exc}") from None
    for expected, event in enumerate(events, start=1):
        if event.seq != expected:
            raise UsageError(f"Events out of sequence at {event.seq} (expected {expected}).")
    return events


def _utc(moment: datetime | None) -> str | None:
    return format_utc(moment) if moment else None


# --------------------------------------------------------------------------- Markdown

ROWS_IN_EXPORT = 10
"""A diagnostic's first rows printed in the document (the event keeps a few more)."""


def _minute(moment: datetime) -> str:
    """``2026-03-14 02:10``: isoformat (C) where strftime (slower) gives the same text."""
    if moment.year < 1000:
        return f"{moment:%Y-%m-%d %H:%M}"
    return moment.isoformat(" ", "minutes")[:16]


def describe(event: Event, state: IncidentState | None = None) -> str:
    """One line saying what an event recorded, in words (plain text: the caller escapes
    it for where it goes)."""
    p = event.payload
    kind = event.type
    problem = event.problem
    if problem is None and state is not None and state.unreadable:
        # The fold may skip an event whose payload is well formed but whose value is not
        # one the incident knows (a severity its playbook lacks): say so here too.
        problem = next((u.why for u in state.unreadable if u.seq == event.seq and not u.kept), None)
    if problem is not None:
        return f"Unreadable {kind} event, skipped: {problem}"
    # Notes and ticks first: most of a long incident's events are one or the other.
    if kind == ev.NOTE_ADDED:
        return f"Note{role_words.scribe_mark(state, event.seq, event.actor)}: {p.get('text')}"
    if kind in (ev.ITEM_CHECKED, ev.ITEM_UNCHECKED):
        text = state.checklist.get(p.get("item", ""), "") if state else ""
        verb = "Done" if kind == ev.ITEM_CHECKED else "Undone"
        return f"{verb}: {text or p.get('item')} ({p.get('item')})"
    if kind == ev.OPENED:
        return f"Opened at {p.get('severity')} on playbook {p.get('playbook', {}).get('id')}: {p.get('title')}"
    if kind == ev.ACKNOWLEDGED:
        return "Acknowledged; response begun"
    if kind == ev.SEVERITY_CHANGED:
        return f"Severity {p.get('from')} → {p.get('to')}: {p.get('reason')}"
    if kind == ev.PHASE_ENTERED:
        title = (
            state.phase_window(p.get("phase")).title
            if state and state.phase_window(p.get("phase"))
            else ""
        )
        return f"Entered phase {title or p.get('phase')}"
    if kind == ev.STATUS_RENDERED:
        return f"Status message '{p.get('template')}' ({p.get('status')})"
    if kind == ev.ESCALATED:
        reason = f": {p['reason']}" if p.get("reason") else ""
        return f"Escalated to {p.get('to')}{reason}"
    if kind == ev.RESOLVED:
        return "Resolved" + (f": {p['summary']}" if p.get("summary") else "")
    if kind == ev.CLOSED:
        return "Closed"
    if kind == ev.SCENARIO_CHOSEN:
        return f"Following scenario {p.get('scenario')}"
    if kind == ev.DIAGNOSTIC_RUN:
        return f"Diagnostic {p.get('diagnostic')} on {p.get('target')}: {str(p.get('verdict')).upper()}"
    if kind == ev.ACTION_STAGE:
        return (
            f"Action {p.get('action')} on {p.get('target')} (run {p.get('run')}): {_stage_line(p)}"
        )
    if kind == ev.DRILL_CHECKED:
        return _drill_check_line(p)
    if kind == ev.RENAMED:
        return f"Renamed from “{p.get('from')}” to “{p.get('to')}”"
    if kind in (ev.PUBLISH_INTENDED, ev.PUBLISH_RESULT):
        return _publication_line(kind, p)
    if kind in LEVEL_EVENTS:
        return describe_level_event(event, state)
    if kind in _POSTMORTEM_LINES:
        return _POSTMORTEM_LINES[kind](p)
    if kind == ev.PLAYBOOK_UPGRADED:
        diff = p.get("diff") if isinstance(p.get("diff"), dict) else {}
        parts = [
            f"{part} {kind_} {len(names)}"
            for part, change in diff.items()
            if isinstance(change, dict)
            for kind_, names in change.items()
            if isinstance(names, list)
        ]
        return (
            f"Playbook upgraded: {str(p.get('from_sha256'))[:12]} → {str(p.get('to_sha256'))[:12]}"
            + (f" ({', '.join(parts)})" if parts else "")
        )
    return f"{kind} {json.dumps(p, ensure_ascii=False)[:200]}"


def _followup_line(p: dict[str, Any]) -> str:
    facts = [
        f"owner {p['owner']}" if p.get("owner") else "",
        f"due {p['due']}" if p.get("due") else "",
    ]
    facts.append(str(p.get("ticket") or ""))
    shown = ", ".join(f for f in facts if f)
    return f"Follow-up added: {p.get('title')}" + (f" ({shown})" if shown else "")


_POSTMORTEM_LINES: dict[str, Callable[[dict[str, Any]], str]] = {
    ev.IMPACT_RECORDED: lambda p: (
        "Impact: " + ", ".join(f"{k} = {v}" for k, v in (p.get("set") or {}).items())
    ),
    ev.FOLLOWUP_ADDED: _followup_line,
    ev.FOLLOWUP_DONE: lambda p: f"Follow-up {p.get('number')} done",
    ev.EVENT_PINNED: lambda p: f"Pinned event {p.get('seq')} as a highlight",
    ev.RETROSPECTIVE_NOTED: lambda p: (
        f"Retrospective, {str(p.get('field')).replace('_', ' ')}: {p.get('text')}"
    ),
}
"""The postmortem's events in words (issue 15 §6)."""


def _stage_line(p: dict[str, object]) -> str:
    """A guarded action's stage in words, with what it found or did."""
    stage = str(p.get("stage", "")).replace("_", " ")
    text = f"{stage} {p.get('outcome')}"
    for key in ("counts", "numbers"):
        value = p.get(key)
        if isinstance(value, dict) and value:
            text += " (" + ", ".join(f"{k} {v}" for k, v in value.items()) + ")"
    if p.get("rows") is not None and p.get("stage") == "backup":
        text += f" ({p['rows']} items)"
    if p.get("verdict"):
        text += f": {str(p['verdict']).upper()}"
    for key in ("error", "reason"):
        if p.get(key):
            text += f": {p[key]}"
    return text


def _drill_check_line(p: dict[str, Any]) -> str:
    """A drill's data check in words: restored or not, and how each target differs."""
    verdict = "restored to its fingerprint" if p.get("restored") else "differs from its fingerprint"
    parts = []
    targets = p.get("targets")
    for name, t in (targets if isinstance(targets, dict) else {}).items():
        if not isinstance(t, dict):
            continue
        if t.get("restored"):
            parts.append(f"{name} as before")
            continue
        diffs = [f"{t[k]:,} {k}" for k in ("missing", "changed", "extra") if t.get(k)]
        parts.append(f"{name}: {', '.join(diffs) or 'differs'}")
    return f"Drill data check: the data {verdict}" + (f" ({'; '.join(parts)})" if parts else "")


@cycle_collector_paused
def to_markdown(events: list[Event], now: datetime, tz: tzinfo | None = None) -> str:
    """The post-incident document."""
    state = fold(events)
    if not events:
        raise UsageError("This incident has no events to export.")
    end = state.resolved_at or now
    timers = compute(state, now)
    out: list[str] = []
    add = out.append

    if state.drill is not None:
        _drill_banner(add, state)
    add(f"# Incident {md.text(state.id)}: {md.text(state.title)}")
    add("")
    add(
        f"Exported {now:%Y-%m-%d %H:%M}Z · playbook {md.code(state.playbook_id)} · "
        f"status **{md.text(state.status)}**"
    )
    add("")
    skipped = [u for u in state.unreadable if not u.kept]
    if skipped:
        add(
            f"> **{len(skipped)} unreadable event(s)** could not be read and are "
            "missing from this record (their rows are still in the log):"
        )
        for u in skipped:
            add(f"> - {_event_name(u.seq)} ({md.code(u.type)}): {md.text(u.why)}")
        add("")
    kept = [u for u in state.unreadable if u.kept]
    if kept:
        add(f"> **{len(kept)} event(s)** hold a value this incident does not know:")
        for u in kept:
            add(f"> - {_event_name(u.seq)} ({md.code(u.type)}): {md.text(u.why)}")
        add("")
    if state.drill is not None:
        add(scorecard_markdown(scorecard(state, now)))
    add("## Summary")
    add("")
    add("| | UTC | Local |")
    add("|---|---|---|")
    add(f"| Service | {md.text(state.service)} | |")
    add(f"| Severity now | {md.text(state.severity)} | |")
    for label, moment in (
        ("Opened", state.opened_at),
        ("Acknowledged", state.acknowledged_at),
        ("Resolved", state.resolved_at),
        ("Closed", state.closed_at),
    ):
        utc, local = _times(moment, tz)
        add(f"| {label} | {utc} | {local} |")
    add(f"| Responders | {md.text(', '.join(state.actors))} | |")
    if state.renames:
        earlier = "; ".join(f"“{r.old}” until {r.at:%Y-%m-%d %H:%M}Z" for r in state.renames)
        add(f"| Earlier titles | {md.text(earlier)} | |")
    if state.triggers:
        add(f"| Triggered by | {md.text('; '.join(state.triggers))} | |")
    if state.resolution_summary:
        add(f"| Resolution | {md.text(state.resolution_summary)} | |")
    add("")

    add("## Targets")
    add("")
    add("| Target | Goal | Actual | Result |")
    add("|---|---|---|---|")
    for timer in (timers.response, timers.resolution):
        if timer is None:
            continue
        if timer.stopped:
            result = "**BREACHED**" if timer.state == BREACHED else "met"
        else:
            result = (
                "**BREACHED** (still running)"
                if timer.state == BREACHED
                else f"running ({timer.state})"
            )
        add(
            f"| {md.text(timer.label)} | {format_duration(timer.target)} | "
            f"{format_duration(timer.elapsed)} | {result} |"
        )
    add("")

    add("## Severity")
    add("")
    add("| Level | From (UTC) | Until (UTC) | Time at level | Reason | By |")
    add("|---|---|---|---|---|---|")
    history = state.severity_history
    for i, period in enumerate(history):
        until = history[i + 1].since if i + 1 < len(history) else end
        spent = (until - period.since).total_seconds()
        until_text = (
            f"{until:%Y-%m-%d %H:%M}Z" if i + 1 < len(history) or state.resolved_at else "now"
        )
        add(
            f"| {md.text(period.level)} | {period.since:%Y-%m-%d %H:%M}Z | {until_text} | "
            f"{format_duration(spent)} | {md.text(period.reason)} | {md.text(period.actor)} |"
        )
    add("")
    if state.escalations:
        add(
            "Escalations: "
            + "; ".join(
                f"{e.at:%H:%M}Z to {md.text(e.to)}"
                + (f" ({md.text(e.reason)})" if e.reason else "")
                for e in state.escalations
            )
        )
        add("")

    roles_markdown(add, state)

    add("## Timeline")
    add("")
    timeline_table(add, events, state, tz)
    add("")

    add("## Status messages")
    add("")
    if not state.messages:
        add("None were sent.")
        add("")
    for message in state.messages:
        add(
            f"### {md.text(message.template)} ({md.text(message.status)}), "
            f"{message.at:%Y-%m-%d %H:%M}Z by {md.text(message.actor)}"
        )
        add("")
        add(md.fence(message.text))
        add("")

    _publications_section(add, state)

    add("## Diagnostics")
    add("")
    if not state.runs:
        add("None were run.")
        add("")
    for run in state.runs:
        _diagnostic_section(add, run.payload, run.actor)

    add("## Guarded actions")
    add("")
    if not state.actions:
        add("None were run.")
        add("")
    for action_run in state.actions.values():
        add(
            f"### {md.text(action_run.action)} on {md.text(action_run.target)}, "
            f"run {md.text(action_run.run)}: {md.text(action_run.status)}"
        )
        add("")
        for stage in action_run.stages:
            add(
                f"- {str(stage['at'])[11:19]}Z {md.text(stage.get('actor', ''))}: "
                f"{md.text(_stage_line(stage))}"
            )
        backup = action_run.backup
        if backup:
            add("")
            add(
                f"Backup: {md.code(backup.get('file', ''))}, {_count(backup.get('bytes'))} bytes, "
                f"sha256 {md.code(backup.get('sha256', ''))}"
            )
        add("")

    add("## Notes")
    add("")
    if not state.notes:
        add("None.")
    shown: dict[str, str] = {}  # a few responders write 100,000 notes: escape each once
    for note in state.notes:
        mark = role_words.scribe_mark(state, note.seq, note.actor)
        who = shown.get(note.actor + mark)
        if who is None:
            who = shown[note.actor + mark] = md.text(note.actor + mark)
        add(f"- **{_minute(note.at)}Z, {who}:** {md.lines(note.text)}")
    add("")

    add("## Checklist")
    add("")
    left_open: list[tuple[str, list[str]]] = []
    scenario_ids = {s.get("id") for s in state.snapshot.get("scenarios", [])}
    for section in state.sections:
        items = [i for step in section.get("steps", []) for i in step.get("items", [])]
        done = sum(1 for i in items if i["ref"] in state.done)
        if not items:
            continue
        if section["id"] in scenario_ids and section["id"] not in state.scenarios and not done:
            continue  # a scenario nobody followed is not part of this incident's record
        add(f"### {md.text(section['title'])}: {done}/{len(items)} done")
        add("")
        for step in section.get("steps", []):
            add(f"**{md.text(step['title'])}**")
            add("")
            for item in step.get("items", []):
                mark = "x" if item["ref"] in state.done else " "
                when = state.done.get(item["ref"])
                stamp = f" — {when[0]:%H:%M}Z, {md.text(when[1])}" if when else ""
                add(f"- [{mark}] {md.text(item['text'])}{stamp}")
            add("")
        missing = [i["text"] for i in items if i["ref"] not in state.done]
        if missing:
            left_open.append((section["title"], missing))

    add("## Left open")
    add("")
    if state.acknowledged_at is None:
        add("- The incident was never acknowledged.")
    if state.resolved_at is None:
        add("- The incident is not resolved.")
    if not left_open and state.resolved_at is not None and state.acknowledged_at is not None:
        add("Nothing: every item of every phase was done.")
    for title, missing in left_open:
        add(
            f"- {md.text(title)}: {len(missing)} not done — "
            + "; ".join(md.text(m) for m in missing)
        )
    add("")
    add("Scenarios that were not followed and had nothing ticked are left out of this record.")
    add("")
    return "\n".join(out)


def timeline_table(
    add: Callable[[str], None], events: list[Event], state: IncidentState, tz: tzinfo | None
) -> None:
    """Every event as a row of a Markdown table: number, UTC and local time, actor, what
    it recorded (the Markdown export's timeline and the postmortem's appendix)."""
    add("| # | UTC | Local | Actor | Event |")
    add("|---|---|---|---|---|")
    actors: dict[str, str] = {}  # a few responders write 100,000 events: escape each once
    times = MinuteTimes(tz)
    for event in events:
        utc, local = times(event.at)
        actor = actors.get(event.actor)
        if actor is None:
            actor = actors[event.actor] = md.text(event.actor)
        add(f"| {event.seq} | {utc} | {local} | {actor} | {md.text(describe(event, state))} |")


def _event_name(seq: int) -> str:
    """How an event is named: by its sequence number, which a damaged row may lack."""
    return f"event {seq}" if seq else "an event without a valid sequence number"


def _count(value: object) -> str:
    """A number from an event with thousands separators; anything else as literal text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return md.text(value)


def _drill_banner(add: Callable[[str], None], state: IncidentState) -> None:
    """The first lines of a drill's export: nobody may take it for a real incident."""
    drill = state.drill
    assert drill is not None
    add(f"# DRILL — not a real incident: {md.text(drill.title)} (speed ×{drill.speed:g})")
    add("")
    clock = (
        f" Its clock ran {drill.speed:g} times faster than real time: timers and the "
        f"scorecard's durations are real time × {drill.speed:g}; event times are real."
        if drill.speed != 1
        else ""
    )
    add(
        f"> **DRILL.** A rehearsal of runbook {md.code(state.playbook_id)} on a sandbox made "
        f"for it; nothing here happened to a production system.{clock}"
    )
    add("")
    add("Services of the sandbox:")
    add("")
    for target, label in drill.services.items():
        add(f"- {md.code(target)}: {md.text(label)}")
    add("")


def _diagnostic_section(add: Callable[[str], None], p: dict[str, Any], actor: str) -> None:
    add(
        f"### {md.text(p.get('diagnostic'))}: {md.text(str(p.get('verdict')).upper())}, "
        f"{md.text(p.get('started'))} by {md.text(actor)}"
    )
    add("")
    add(
        f"- What: {md.text(p.get('title'))} ({md.code(p.get('kind'))} on target "
        f"{md.code(p.get('target'))})"
    )
    params = p.get("params") or {}
    if params:
        shown = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in params.items())
        add(f"- Parameters: {md.text(shown)}")
    add(f"- Ran: {md.text(p.get('started'))} to {md.text(p.get('ended'))}")
    if p.get("message"):
        add(f"- {md.text(p['message'])}")
    for check in p.get("checks") or []:
        add(f"- Check: {md.text(check.get('text'))}")
    numbers = numbers_of(p)
    if numbers:
        add(f"- Numbers: {md.text(numbers)}")
    add(f"- Rows: {md.text(shown_of(p, ROWS_IN_EXPORT))}")
    if p.get("file"):
        add(f"- Full result: {md.code(p['file'])} (SHA-256 {md.code(p.get('sha256'))})")
    rows = p.get("rows") or []
    if rows:
        add("")
        add(
            md.fence(
                "\n".join(json.dumps(r, ensure_ascii=False)[:300] for r in rows[:ROWS_IN_EXPORT])
            )
        )
    add("")


# --------------------------------------------------------------------------- publications
# Issue 17: every message published outside the terminal, where it went, its id and status.


def _publication_line(kind: str, p: dict[str, Any]) -> str:
    where = f"{p.get('destination')}"
    if kind == ev.PUBLISH_INTENDED:
        update = f", update of {p['external_id']}" if p.get("external_id") else ""
        return f"Publishing '{p.get('template')}' ({p.get('status')}) to {where}{update}"
    ident = f" as {p['external_id']}" if p.get("external_id") else ""
    url = f" {p['url']}" if p.get("url") else ""
    http = f" (HTTP {p['http_status']})" if p.get("http_status") is not None else ""
    detail = f": {p['detail']}" if p.get("detail") else ""
    return f"Publication to {where}: {p.get('outcome')}{ident}{url}{http}{detail}"


def _publications(state: IncidentState) -> list[dict[str, Any]]:
    return [
        {
            "destination": pub.destination,
            "key": pub.key,
            "template": pub.template,
            "status": pub.status,
            "intended_at": _utc(pub.intended_at),
            "actor": pub.actor,
            "outcome": pub.outcome,
            "external_id": (pub.result or {}).get("external_id"),
            "url": (pub.result or {}).get("url"),
            "http_status": (pub.result or {}).get("http_status"),
            "text": (pub.result or {}).get("text"),
        }
        for pub in state.publications.values()
    ]


def _publications_section(add: Callable[[str], None], state: IncidentState) -> None:
    add("## Publications")
    add("")
    if not state.publications:
        add("Nothing was published outside playbook.")
        add("")
        return
    add("| UTC | Message | Destination | Outcome | Id | HTTP |")
    add("|---|---|---|---|---|---|")
    for pub in state.publications.values():
        result = pub.result or {}
        ident = str(result.get("external_id") or "")
        url = str(result.get("url") or "")
        add(
            f"| {pub.intended_at:%Y-%m-%d %H:%M:%S}Z | {md.text(pub.template)} "
            f"({md.text(pub.status)}) | {md.text(pub.destination)} | {md.text(pub.outcome)} | "
            f"{md.text(ident)}{' ' + md.text(url) if url else ''} | "
            f"{result.get('http_status') if result.get('http_status') is not None else ''} |"
        )
    add("")
