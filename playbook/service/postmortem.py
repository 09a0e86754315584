"""Recording the postmortem's facts (issue 15 §6): impact figures, follow-up actions,
pinned events, retrospective notes.

Each may be recorded during the incident or after it is resolved or closed (the review
happens then). Every text is typed text: refused, never altered, when it holds a control
or format character (:func:`playbook.service.context.typed_text`, the rule for notes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date

from playbook.core import events as ev
from playbook.core.state import IncidentState
from playbook.errors import Conflict, NotFound, UsageError
from playbook.service.context import Context, Decision, command, typed_text

MAX_TEXT = 20_000
"""The longest retrospective note, as a note (a longer text belongs in a document)."""
MAX_LINE = 500
"""The longest impact value, follow-up title, owner or ticket: one line each."""


def _line(value: str, what: str) -> str:
    value = typed_text(value.strip(), what)
    if len(value) > MAX_LINE:
        raise UsageError(f"The {what} is limited to {MAX_LINE} characters; it has {len(value):,}.")
    return value


def record_impact(ctx: Context, ref: str, figures: Mapping[str, str]) -> IncidentState:
    """Record impact figures (``users=1200``): a later value of a key replaces the earlier
    in the postmortem; both stay in the timeline."""
    if not figures:
        raise UsageError("Give at least one figure: --set KEY=VALUE (e.g. --set users=1200).")
    checked: dict[str, str] = {}
    for key, value in figures.items():
        name = _line(key, "impact figure's name")
        if not name:
            raise UsageError("An impact figure needs a name before '=' (e.g. users=1200).")
        checked[name] = _line(value, f"value of impact figure {name!r}")

    def decide(state: IncidentState) -> Decision:
        return [(ev.IMPACT_RECORDED, {"set": checked})]

    return command(ctx, ref, decide)


def parse_figures(pairs: Iterable[str]) -> dict[str, str]:
    """``KEY=VALUE`` pairs as typed on the command line; a later pair of a key wins.

    Raises:
        UsageError: a pair without ``=``.
    """
    figures: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise UsageError(
                f"Impact figure {pair!r} has no '='.",
                'Write KEY=VALUE, e.g. --set users=1200 --set data_lost="none".',
            )
        figures[key.strip()] = value
    return figures


def add_followup(
    ctx: Context, ref: str, title: str, owner: str = "", due: str = "", ticket: str = ""
) -> IncidentState:
    """Add a follow-up action; it gets the next number (1, 2, …)."""
    title = _line(title, "follow-up's title")
    if not title:
        raise UsageError("A follow-up needs a title.")
    owner = _line(owner, "follow-up's owner")
    ticket = _line(ticket, "follow-up's ticket")
    due = due.strip()
    if due:
        try:
            due = date.fromisoformat(due).isoformat()
        except ValueError:
            raise UsageError(
                f"The due date {due!r} is not a date.", "Write it as YYYY-MM-DD, e.g. 2026-12-05."
            ) from None

    def decide(state: IncidentState) -> Decision:
        return [(ev.FOLLOWUP_ADDED, {"title": title, "owner": owner, "due": due, "ticket": ticket})]

    return command(ctx, ref, decide)


def followup_done(ctx: Context, ref: str, number: int) -> IncidentState:
    """Mark follow-up ``number`` done."""

    def decide(state: IncidentState) -> Decision:
        if not 1 <= number <= len(state.followups):
            raise NotFound(
                f"Incident {state.id} has no follow-up {number} (it has {len(state.followups)}).",
                f"List them: playbook followup list {state.id}",
            )
        if state.followups[number - 1].done_at is not None:
            raise Conflict(f"Follow-up {number} of {state.id} is already done.")
        return [(ev.FOLLOWUP_DONE, {"number": number})]

    return command(ctx, ref, decide)


def pin(ctx: Context, ref: str, seq: int) -> IncidentState:
    """Pin event ``seq`` as a highlight of the postmortem's timeline."""

    def decide(state: IncidentState) -> Decision:
        if not 1 <= seq <= state.last_seq:
            raise NotFound(
                f"Incident {state.id} has no event {seq} (its events are 1 to {state.last_seq}).",
                f"See them: playbook timeline {state.id}",
            )
        if seq in state.pinned:
            raise Conflict(f"Event {seq} of {state.id} is already pinned.")
        return [(ev.EVENT_PINNED, {"seq": seq})]

    return command(ctx, ref, decide)


def note_retrospective(ctx: Context, ref: str, notes: Iterable[tuple[str, str]]) -> IncidentState:
    """Record retrospective notes, each ``(field, text)``; several per field are kept."""
    checked: list[tuple[str, str]] = []
    for name, text in notes:
        if name not in ev.RETROSPECTIVE_FIELDS:
            raise UsageError(
                f"{name!r} is not a retrospective field.",
                f"Use one of {', '.join(ev.RETROSPECTIVE_FIELDS)}.",
            )
        what = f"{name.replace('_', ' ')} note"
        if not text.strip():
            raise UsageError(f"The {what} needs some text.")
        if len(text) > MAX_TEXT:
            raise UsageError(
                f"A {what} is limited to {MAX_TEXT:,} characters; it has {len(text):,}."
            )
        checked.append((name, typed_text(text, what, multiline=True)))
    if not checked:
        raise UsageError('Give at least one note, e.g. --went-well "…" or --root-cause "…".')

    def decide(state: IncidentState) -> Decision:
        return [(ev.RETROSPECTIVE_NOTED, {"field": f, "text": t}) for f, t in checked]

    return command(ctx, ref, decide)
