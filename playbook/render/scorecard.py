"""A scorecard in words: plain text for a terminal, Markdown for an export.

The numbers are :mod:`playbook.core.scorecard`'s. Every value in them that came from
a person, a playbook or a database (scenario, labels, titles, reasons, check texts,
differing keys) is shown literally: control characters escaped in the text
(:func:`scorecard_text`), made literal by :mod:`playbook.render.markdown` in the
Markdown (:func:`scorecard_markdown`, the section a drill's export opens with).
"""

from __future__ import annotations

import textwrap
from typing import Any

from playbook.core.durations import format_duration
from playbook.core.scorecard import Scorecard, Span
from playbook.core.text import one_line
from playbook.render import markdown as md

WIDTH = 80
"""The text rendering's width; long values are cut with an ellipsis to fit."""

SETUP_FIGURES = (
    ("sandbox_seconds", "sandbox"),
    ("load_seconds", "load"),
    ("fingerprint_seconds", "fingerprint"),
    ("fault_seconds", "fault"),
)

_TIMER_TEXT = {
    "met": "met",
    "breached": "BREACHED",
    "running": "still running",
    "overdue": "BREACHED, still running",
}
_PHASE_TEXT = {
    "in time": "left in time",
    "late": "left LATE",
    "current": "current",
    "overdue": "current, OVERDUE",
}


# --------------------------------------------------------------------------- text


def _took(card: Scorecard, span: Span) -> str:
    """A duration on the incident's clock, with real time when the clock is faster."""
    text = format_duration(span.drill)
    return text if card.speed == 1 else f"{text} (real {format_duration(span.real)})"


def _after(card: Scorecard, span: Span) -> str:
    text = "+" + format_duration(span.drill)
    return text if card.speed == 1 else f"{text} (real +{format_duration(span.real)})"


def scorecard_text(card: Scorecard) -> str:
    """A compact plain-text rendering for a terminal (about 80 columns, no markup)."""
    out: list[str] = []
    add = out.append
    head = "Drill scorecard" if card.drill else "Response review"
    add(_clip(f"{head}: {one_line(card.scenario or card.title)}"))
    facts = [card.incident, card.playbook, card.status, card.severity]
    if card.drill:
        facts.append(f"speed ×{card.speed:g}")
    add(_clip(" · ".join(one_line(f) for f in facts if f)))
    if card.speed != 1:
        add(f"  times on the drill clock (real × {card.speed:g}), real time in brackets")
    for target, label in card.services.items():
        add(_clip(f"  {one_line(target)}: {one_line(label)}"))
    if card.setup:
        add(_clip("  set-up: " + one_line(setup_text(card.setup))))
    add("")

    if card.recovery is not None:
        rec = card.recovery
        if not rec.checked or rec.at is None:
            add("Data: not checked (never compared with its fingerprint)")
        else:
            verdict = "RESTORED" if rec.restored else "NOT RESTORED"
            checks = "checked" if rec.checks == 1 else f"{rec.checks} checks; last"
            add(_clip(f"Data: {verdict} to its fingerprint ({checks} {_after(card, rec.at)})"))
            for t in rec.targets:
                add(
                    _clip(
                        f"  {one_line(t.target)}: {t.found:,} items found, {t.expected:,} expected; "
                        f"{t.missing:,} missing, {t.changed:,} changed, {t.extra:,} extra"
                    )
                )
                for example in t.examples:
                    add(_clip(f"    {one_line(example)}"))
        add("")

    for timer in (card.response, card.resolution):
        if timer is None:
            continue
        name = f"{timer.name.capitalize()} ({one_line(timer.level)})"
        add(
            _clip(
                f"{name:<17} {_took(card, timer.took):<22} "
                f"target {format_duration(timer.target):<7}  {_TIMER_TEXT[timer.result]}"
            )
        )
    add("")

    add("Phases")
    if not card.phases:
        add("  none entered")
    for visit in card.phases:
        due = f"due by {format_duration(visit.ends)}" if visit.ends is not None else "no window"
        add(
            _clip(
                f"  {one_line(visit.title):<19} {_took(card, visit.spent):<22} "
                f"{due:<16} {_PHASE_TEXT[visit.result]}"
            )
        )
    if card.phases_not_entered:
        add(_wrap("  not entered: ", [p.title for p in card.phases_not_entered]))
    add("")

    if not card.escalations:
        add("Escalations: none")
    for e in card.escalations:
        reason = f": {one_line(e.reason)}" if e.reason else ""
        add(_wrap(f"Escalated to {one_line(e.to)} at {_after(card, e.after)}{reason}"))
    cadence = card.status_messages
    add(f"Status messages: {cadence.sent} sent, {cadence.due} due")
    add("")

    ran = len(card.diagnostics)
    add(f"Diagnostics: {ran} of {ran + len(card.diagnostics_not_run)} run")
    for d in card.diagnostics:
        line = f"  {one_line(d.id):<19} ×{d.runs:<2} {one_line(d.verdict.upper()):<5}"
        add(_clip(f"{line} {one_line(d.found)}".rstrip()))
    if card.diagnostics_not_run:
        add(_wrap("  not run: ", [d.id for d in card.diagnostics_not_run]))
    if not card.actions:
        add("Guarded actions: none run")
    else:
        add("Guarded actions")
    for a in card.actions:
        add(_clip(f"  {one_line(a.action)} on {one_line(a.target)}: {one_line(a.status)}"))
    add("")

    left = sum(s.not_ticked for s in card.checklist_left)
    add(f"Checklist items not ticked: {left or 'none'}")
    for s in card.checklist_left:
        note = " (post-incident)" if s.post_incident else ""
        add(_clip(f"  {one_line(s.title)}{note}: {s.not_ticked} of {s.total}"))
    return "\n".join(out) + "\n"


def setup_text(setup: dict[str, Any]) -> str:
    """The set-up's figures in a line: ``sandbox 1.2 s, load 0.4 s, …``."""
    parts = [
        f"{label} {setup[key]:.1f} s"
        for key, label in SETUP_FIGURES
        if isinstance(setup.get(key), int | float)
    ]
    parts += [
        f"{k} {v}" for k, v in setup.items() if k not in dict(SETUP_FIGURES) and v is not None
    ]
    return ", ".join(parts)


def _wrap(head: str, items: list[str] | None = None) -> str:
    """``head`` (and ``items``, comma-separated) wrapped to :data:`WIDTH`, indented."""
    text = head + ", ".join(one_line(i) for i in items) if items is not None else head
    lines = textwrap.wrap(
        text, WIDTH, subsequent_indent="    ", break_on_hyphens=False, break_long_words=True
    )
    return "\n".join(lines)


def _clip(line: str, width: int = WIDTH) -> str:
    return line if len(line) <= width else line[: width - 1] + "…"


# --------------------------------------------------------------------------- Markdown


def _span(span: Span | None) -> str:
    return "—" if span is None else format_duration(span.drill)


def _real(span: Span | None) -> str:
    return "—" if span is None else format_duration(span.real)


def scorecard_markdown(card: Scorecard) -> str:
    """The scorecard as a Markdown section (``## Drill scorecard``, or ``## Response
    review`` for a real incident)."""
    real = card.speed != 1
    out: list[str] = []
    add = out.append
    add("## Drill scorecard" if card.drill else "## Response review")
    add("")
    if card.drill:
        add(
            f"Scenario: {md.text(card.scenario)} · speed ×{card.speed:g}"
            + (
                f" (durations are on the drill clock, real time × {card.speed:g}; "
                "real times beside them)"
                if real
                else ""
            )
        )
        add("")
    if card.setup:
        add(f"Set-up: {md.text(setup_text(card.setup))}")
        add("")

    if card.recovery is not None:
        add("### Data against its fingerprint")
        add("")
        rec = card.recovery
        if not rec.checked:
            add("**Not checked**: the data was never compared with its fingerprint.")
            add("")
        else:
            at = _span(rec.at) + (f" (real {_real(rec.at)})" if real else "")
            verdict = (
                "**Restored**: the data is as its fingerprint says"
                if rec.restored
                else "**NOT restored**: the data differs from its fingerprint"
            )
            checks = "1 check" if rec.checks == 1 else f"last of {rec.checks} checks"
            add(f"{verdict} ({checks}, at +{at}).")
            add("")
            add("| Target | Service | Expected | Found | Missing | Changed | Extra | Restored |")
            add("|---|---|---|---|---|---|---|---|")
            for t in rec.targets:
                add(
                    f"| {md.code(t.target, True)} | {md.text(t.service)} | "
                    f"{t.expected:,} | {t.found:,} | {t.missing:,} | {t.changed:,} | "
                    f"{t.extra:,} | {'yes' if t.restored else '**no**'} |"
                )
            add("")
            for t in rec.targets:
                if t.examples:
                    add(f"Differences in {md.code(t.target)} (a few of each kind):")
                    add("")
                    add(md.fence("\n".join(one_line(e) for e in t.examples)))
                    add("")

    add("### Targets")
    add("")
    add("| Target | Goal | Took |" + (" Real |" if real else "") + " Result |")
    add("|---|---|---|" + ("---|" if real else "") + "---|")
    for timer in (card.response, card.resolution):
        if timer is None:
            continue
        result = {
            "met": "met",
            "breached": "**BREACHED**",
            "running": "still running",
            "overdue": "**BREACHED** (still running)",
        }[timer.result]
        add(
            f"| {timer.name.capitalize()} ({md.text(timer.level)}) | "
            f"{format_duration(timer.target)} | {format_duration(timer.took.drill)} |"
            + (f" {format_duration(timer.took.real)} |" if real else "")
            + f" {result} |"
        )
    add("")

    add("### Phases")
    add("")
    if card.phases:
        add(
            "| Phase | Window | Entered | Left | Time in phase |"
            + (" Real |" if real else "")
            + " Result |"
        )
        add("|---|---|---|---|---|" + ("---|" if real else "") + "---|")
        for v in card.phases:
            window = (
                f"{format_duration(v.starts)}–{format_duration(v.ends)}"
                if v.starts is not None and v.ends is not None
                else "—"
            )
            result = {
                "in time": "left in time",
                "late": "**left late**",
                "current": "current",
                "overdue": "**overdue** (current)",
            }[v.result]
            left = "—" if v.left is None else "+" + _span(v.left)
            add(
                f"| {md.text(v.title)} | {window} | +{_span(v.entered)} | "
                f"{left} | {_span(v.spent)} |"
                + (f" {_real(v.spent)} |" if real else "")
                + f" {result} |"
            )
        add("")
    else:
        add("No phase was entered.")
        add("")
    if card.phases_not_entered:
        add("Not entered: " + ", ".join(md.text(p.title) for p in card.phases_not_entered))
        add("")

    add("### Escalations and status messages")
    add("")
    if not card.escalations:
        add("- No escalation.")
    for e in card.escalations:
        at = _span(e.after) + (f" (real +{_real(e.after)})" if real else "")
        reason = f": {md.text(e.reason)}" if e.reason else ""
        add(f"- Escalated to {md.text(e.to)} at +{at} by {md.text(e.actor)}{reason}")
    cadence = card.status_messages
    add(f"- Status messages: {cadence.sent} sent, {cadence.due} due.")
    add("")

    add("### Diagnostics")
    add("")
    if card.diagnostics:
        add("| Diagnostic | Runs | Last verdict | Last run | What it found |")
        add("|---|---|---|---|---|")
        for d in card.diagnostics:
            found = md.code(d.found, True) if d.found else ""
            add(
                f"| {md.code(d.id, True)} | {d.runs} | {md.text(d.verdict.upper())} | "
                f"+{_span(d.last)} | {found} |"
            )
        add("")
    else:
        add("None were run.")
        add("")

    add("### Guarded actions")
    add("")
    if not card.actions:
        add("None were run.")
    for a in card.actions:
        started = f" (started +{_span(a.started)})" if a.started else ""
        add(
            f"- {md.code(a.action)} on {md.code(a.target)}, run "
            f"{md.code(a.run)}: **{md.text(a.status)}**{started}"
        )
    add("")

    add("### Skipped")
    add("")
    if card.diagnostics_not_run:
        add(
            "Diagnostics not run: "
            + ", ".join(f"{md.code(d.id)} ({md.text(d.title)})" for d in card.diagnostics_not_run)
        )
        add("")
    if card.checklist_left:
        add("| Section | Not ticked | Of |")
        add("|---|---|---|")
        for s in card.checklist_left:
            note = " (post-incident)" if s.post_incident else ""
            add(f"| {md.text(s.title)}{note} | {s.not_ticked} | {s.total} |")
        add("")
    if not card.diagnostics_not_run and not card.checklist_left:
        add("Nothing: every diagnostic was run and every item ticked.")
        add("")
    return "\n".join(out)
