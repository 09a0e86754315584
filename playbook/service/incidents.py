"""An incident's life: opened, acknowledged, worked through (severity, phases,
scenarios, the checklist, notes, escalations), renamed, resolved and closed; and reading
it back (the list, one incident, its timers, its playbook as it was)."""

from __future__ import annotations

import difflib
import secrets
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playbook.core import events as ev
from playbook.core.events import NewEvent
from playbook.core.state import IncidentState, fold
from playbook.core.text import unpaired_escaped
from playbook.core.timers import Timers, compute
from playbook.errors import Conflict, NotFound, UsageError
from playbook.redaction import scrub_data
from playbook.resources import resolve_playbook
from playbook.service.context import Context, Decision, check_actor, command, typed_text
from playbook.service.roles import require_commander
from playbook.store import ConcurrencyConflict

if TYPE_CHECKING:
    from playbook.core.loader import LoadedPlaybook
    from playbook.core.model import Playbook

MAX_RETRIES = 8
"""Attempts at drawing a free incident id."""
MAX_NOTE = 20_000
"""Characters a note may have; longer text belongs in a file the note points at."""
DRILL_PREFIX = "drill-"
"""Every drill's id starts with this, so no reference to one reads as a real incident."""


def new_incident_id(now: datetime, prefix: str = "") -> str:
    """``YYYYMMDD-xxxx``: sortable by day, short enough to type at 3 a.m."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    suffix = "".join(secrets.choice(alphabet) for _ in range(4))
    return f"{prefix}{now:%Y%m%d}-{suffix}"


def sections_payload(pb: Playbook) -> list[dict[str, Any]]:
    """The playbook's checklist, grouped, as stored in the ``opened`` event."""
    return [
        {
            "id": section_id,
            "title": title,
            "steps": [
                {
                    "id": step.id,
                    "title": step.title,
                    "items": [
                        {"ref": f"{section_id}.{step.id}.{item.key}", "text": item.text}
                        for item in step.items
                    ],
                }
                for step in steps
            ],
        }
        for section_id, title, steps in pb.sections()
    ]


# --------------------------------------------------------------------------- reading


def incidents(ctx: Context) -> list[IncidentState]:
    """Every incident in the store, folded."""
    return [fold(ctx.store.read(i), i) for i in ctx.store.incident_ids()]


def timers(ctx: Context, state: IncidentState, now: datetime | None = None) -> Timers:
    """The incident's timers at ``now`` (default: the context's clock)."""
    return compute(state, now or ctx.clock.now())


def playbook_of(state: IncidentState) -> Playbook:
    """The playbook as it was when the incident opened (from the snapshot).

    Durations past today's limits (an incident opened by an older version) are clamped
    to them rather than refused: the incident stays usable, and no run gets a deadline
    longer than ``validate`` allows. The snapshot keeps its keys' order as written, so
    a MongoDB ``sort`` comes back as the playbook said it.

    Raises:
        StoreError: the snapshot in the ``opened`` event cannot be read as a playbook.
    """
    # Imported here for start-up speed: the model needs pydantic, which the CLI and
    # the app's first frame must not wait for.
    from pydantic import ValidationError

    from playbook.adapters.plugins import playbook_model
    from playbook.core.model import CLAMP_DURATIONS
    from playbook.errors import StoreError

    try:
        return playbook_model().model_validate(
            state.snapshot, strict=False, context={CLAMP_DURATIONS: True}
        )
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise StoreError(
            f"Incident {state.id}'s playbook snapshot cannot be read: {where}: {first['msg']}.",
            "Its events still show and export; diagnostics and actions need a readable snapshot.",
        ) from None


# --------------------------------------------------------------------------- opening


def open_incident(
    ctx: Context,
    playbook: LoadedPlaybook | str | Path | None,
    title: str,
    severity: str | None = None,
    triggers: Iterable[str] = (),
    drill: Mapping[str, Any] | None = None,
) -> IncidentState:
    """Open a new incident on a playbook (a drill when ``drill`` describes one)."""
    # for speed, as in playbook_of
    from playbook.adapters.plugins import load_playbook as load
    from playbook.core.loader import LoadedPlaybook

    loaded = playbook if isinstance(playbook, LoadedPlaybook) else load(resolve_playbook(playbook))
    pb = loaded.playbook
    title = typed_text(title.strip(), "title")
    if not title:
        raise UsageError("An incident needs a title (--title).")
    check_actor(ctx)
    level = severity or pb.severity.default
    if pb.severity.level(level) is None:
        known = ", ".join(lvl.id for lvl in pb.severity.levels)
        raise UsageError(f"Unknown severity {level!r}.", f"This playbook has: {known}.")
    trigger_list = [typed_text(_trigger_text(pb, t), "trigger") for t in triggers]
    payload = {
        "title": title,
        "severity": level,
        "triggers": trigger_list,
        "playbook": {
            "id": pb.id,
            "title": pb.title,
            "version": pb.version,
            "path": str(loaded.path),
            "sha256": loaded.sha256,
        },
        "snapshot": pb.model_dump(mode="json", by_alias=True),
        "sections": sections_payload(pb),
    }
    if drill is not None:
        payload["drill"] = dict(drill)
    # The playbook's own content is recorded as it is, not scrubbed: the diagnostics run
    # from this snapshot and it must match the file's recorded SHA-256 (a query naming a
    # role whose name is also an ${ENV} value must keep that name).
    payload = {
        key: value if key in ("snapshot", "sections") else unpaired_escaped(scrub_data(value))
        for key, value in payload.items()
    }
    now = ctx.clock.now()
    for _attempt in range(MAX_RETRIES):
        incident_id = new_incident_id(now, DRILL_PREFIX if drill is not None else "")
        try:
            appended = ctx.store.append(
                incident_id, 0, [NewEvent(ev.OPENED, payload, ctx.actor, now)]
            )
        except ConcurrencyConflict:
            continue  # the random suffix collided; draw again
        return fold(appended, incident_id)
    raise Conflict("Could not find a free incident id; try again.")


def _trigger_text(pb: Playbook, trigger: str) -> str:
    """A trigger given as ``group.item`` id becomes its text; free text stays as is."""
    for group in pb.triggers:
        for item in group.items:
            if trigger in (f"{group.id}.{item.key}", item.key):
                return f"{group.title}: {item.text}"
    return trigger.strip()


# --------------------------------------------------------------------------- working it


def acknowledge(ctx: Context, ref: str) -> IncidentState:
    def decide(state: IncidentState) -> Decision:
        _require_open(state)
        if state.acknowledged_at is not None:
            raise Conflict(
                f"Incident {state.id} was already acknowledged at {state.acknowledged_at:%H:%M} UTC."
            )
        return [(ev.ACKNOWLEDGED, {})]

    return command(ctx, ref, decide)


def change_severity(ctx: Context, ref: str, level: str, reason: str) -> IncidentState:
    reason = typed_text(reason.strip(), "reason")
    if not reason:
        raise UsageError("A severity change needs a reason (--reason).")

    def decide(state: IncidentState) -> Decision:
        _require_open(state)
        if level not in state.levels:
            raise UsageError(
                f"Unknown severity {level!r}.",
                f"This incident's playbook has: {', '.join(state.levels)}.",
            )
        if level == state.severity:
            raise Conflict(f"Incident {state.id} is already {level}.")
        require_commander(state, ctx.actor, "change the severity")
        return [(ev.SEVERITY_CHANGED, {"from": state.severity, "to": level, "reason": reason})]

    return command(ctx, ref, decide)


def enter_phase(ctx: Context, ref: str, phase: str) -> IncidentState:
    def decide(state: IncidentState) -> Decision:
        _require_open(state)
        ids = [p.id for p in state.phases]
        if phase not in ids:
            raise NotFound(f"No phase {phase!r}.", f"Phases: {', '.join(ids)}.")
        if phase == state.phase:
            return []
        return [(ev.PHASE_ENTERED, {"phase": phase})]

    return command(ctx, ref, decide)


def choose_scenario(ctx: Context, ref: str, scenario: str) -> IncidentState:
    """Follow a scenario: its detection signs, investigation and recovery come into view."""

    def decide(state: IncidentState) -> Decision:
        _require_open(state)
        known = [s["id"] for s in state.snapshot.get("scenarios", [])]
        if scenario not in known:
            raise NotFound(f"No scenario {scenario!r}.", f"Scenarios: {', '.join(known)}.")
        if scenario in state.scenarios:
            return []
        return [(ev.SCENARIO_CHOSEN, {"scenario": scenario})]

    return command(ctx, ref, decide)


def _items_for(state: IncidentState, ref: str) -> list[str]:
    """Item refs named by ``ref``: an item, or every item of a step."""
    ref = ref.strip().strip(".")
    keys = list(state.checklist)
    if ref in state.checklist:
        return [ref]
    steps = {k.rsplit(".", 1)[0] for k in keys}
    step_matches = [s for s in steps if s == ref or s.endswith("." + ref)]
    item_matches = [k for k in keys if k.endswith("." + ref)]
    if len(item_matches) == 1 and not step_matches:
        return item_matches
    if len(step_matches) == 1 and not item_matches:
        return [k for k in keys if k.rsplit(".", 1)[0] == step_matches[0]]
    candidates = sorted(step_matches) + item_matches
    if candidates:
        raise UsageError(
            f"{ref!r} names more than one step or item.",
            "Say which:\n  " + "\n  ".join(candidates[:12]),
        )
    hint = difflib.get_close_matches(ref, keys + sorted(steps), n=3, cutoff=0.5)
    raise NotFound(
        f"No step or item {ref!r} in this incident's playbook.",
        ("Did you mean: " + ", ".join(hint)) if hint else "`playbook show INCIDENT` lists them.",
    )


def check(ctx: Context, ref: str, item: str) -> IncidentState:
    """Tick an item, or every item of a step; enters the item's phase if it is later.

    After resolution only the post-incident sections can still be ticked.
    """

    def decide(state: IncidentState) -> Decision:
        wanted = [k for k in _items_for(state, item) if k not in state.done]
        _require_checkable(state, wanted)
        decision: Decision = []
        if wanted:
            section = wanted[0].split(".", 1)[0]
            order = [p.id for p in state.phases]
            later = (
                section in order
                and state.phase in order
                and order.index(section) > order.index(state.phase)
            )
            if later:
                decision.append((ev.PHASE_ENTERED, {"phase": section}))
        decision += [(ev.ITEM_CHECKED, {"item": k}) for k in wanted]
        return decision

    return command(ctx, ref, decide)


def uncheck(ctx: Context, ref: str, item: str) -> IncidentState:
    def decide(state: IncidentState) -> Decision:
        wanted = [k for k in _items_for(state, item) if k in state.done]
        _require_checkable(state, wanted)
        return [(ev.ITEM_UNCHECKED, {"item": k}) for k in wanted]

    return command(ctx, ref, decide)


def note(ctx: Context, ref: str, text: str) -> IncidentState:
    if not text.strip():
        raise UsageError("A note needs some text.")
    if len(text) > MAX_NOTE:
        raise UsageError(
            f"A note is limited to {MAX_NOTE:,} characters; this one has {len(text):,}.",
            "Save the text as a file (a log excerpt, a query's output) where the team "
            "keeps evidence, and note its path with a line on what it shows; "
            "`sha256sum FILE` gives a digest to note with it.",
        )
    text = typed_text(text, "note", multiline=True)

    def decide(state: IncidentState) -> Decision:
        return [(ev.NOTE_ADDED, {"text": text})]  # notes are welcome even after closing

    return command(ctx, ref, decide)


def escalate(ctx: Context, ref: str, to: str | None = None, reason: str = "") -> IncidentState:
    to = typed_text(to or "", "name to escalate to")
    reason = typed_text(reason, "reason")

    def decide(state: IncidentState) -> Decision:
        _require_open(state)
        target = (to or "").strip() or state.next_escalation()
        if not target:
            raise Conflict(
                "Everyone on the escalation path has been escalated to.",
                "Name someone with --to.",
            )
        return [(ev.ESCALATED, {"to": target, "reason": reason.strip()})]

    return command(ctx, ref, decide)


def record_drill_check(ctx: Context, ref: str, payload: dict[str, Any]) -> IncidentState:
    """Append a drill's fingerprint comparison (refused for a real incident)."""

    def decide(state: IncidentState) -> Decision:
        if state.drill is None:
            raise UsageError(f"Incident {state.id} is not a drill; it has no fingerprint.")
        return [(ev.DRILL_CHECKED, payload)]

    return command(ctx, ref, decide)


# --------------------------------------------------------------------------- ending it


def resolve(ctx: Context, ref: str, summary: str = "") -> IncidentState:
    summary = typed_text(summary, "summary", multiline=True)

    def decide(state: IncidentState) -> Decision:
        _require_open(state)
        require_commander(state, ctx.actor, "resolve the incident")
        return [(ev.RESOLVED, {"summary": summary.strip()})]

    return command(ctx, ref, decide)


def rename(ctx: Context, ref: str, title: str) -> IncidentState:
    """Give the incident a new title; the old one stays in the timeline and exports.

    Allowed until the incident is closed (a title can be put right for the review).
    """
    title = typed_text(title.strip(), "title")
    if not title:
        raise UsageError("A new title needs some text.")

    def decide(state: IncidentState) -> Decision:
        if state.closed_at is not None:
            raise Conflict(
                f"Incident {state.id} is closed.",
                "Only notes can be added to a closed incident.",
            )
        if title == state.title:
            raise Conflict(f"Incident {state.id} already has that title.")
        return [(ev.RENAMED, {"from": state.title, "to": title})]

    return command(ctx, ref, decide)


def close(ctx: Context, ref: str) -> IncidentState:
    def decide(state: IncidentState) -> Decision:
        if state.closed_at is not None:
            raise Conflict(f"Incident {state.id} is already closed.")
        if state.resolved_at is None:
            raise Conflict(
                f"Incident {state.id} is not resolved.",
                "Resolve it first: playbook resolve ID.",
            )
        require_commander(state, ctx.actor, "close the incident")
        return [(ev.CLOSED, {})]

    return command(ctx, ref, decide)


# --------------------------------------------------------------------------- rules


def post_incident_ids(state: IncidentState) -> set[str]:
    """Ids of the post-incident sections, which stay open after resolution."""
    return {section["id"] for section in state.snapshot.get("post_incident", [])}


def _require_checkable(state: IncidentState, refs: list[str]) -> None:
    if state.closed_at is not None:
        raise Conflict(
            f"Incident {state.id} is closed.", "Only notes can be added to a closed incident."
        )
    if state.resolved_at is None:
        return
    post = post_incident_ids(state)
    blocked = [r for r in refs if r.split(".", 1)[0] not in post]
    if blocked:
        raise Conflict(
            f"Incident {state.id} is resolved: only post-incident items can be ticked now.",
            f"{blocked[0]} belongs to the response itself.",
        )


def _require_open(state: IncidentState) -> None:
    if state.closed_at is not None:
        raise Conflict(
            f"Incident {state.id} is closed.", "Only notes can be added to a closed incident."
        )
    if state.resolved_at is not None:
        raise Conflict(
            f"Incident {state.id} is resolved.",
            "What remains: post-incident items, notes, the export, and closing it.",
        )
