"""A scorecard as Markdown: the section a drill's export (and a review) opens with.

The numbers are :mod:`playbook.core.scorecard`'s; every value in them that came from
a person, a playbook or a database (scenario, labels, titles, reasons, differing keys)
is made literal by :mod:`playbook.render.markdown`.
"""

from __future__ import annotations

from playbook.core.durations import format_duration
from playbook.core.scorecard import Scorecard, Span, setup_text
from playbook.core.text import one_line
from playbook.render import markdown as md


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
