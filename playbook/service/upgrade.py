"""Moving an open incident to its edited playbook (`playbook upgrade`).

An incident keeps the playbook it was opened with: the ``opened`` event holds its
snapshot and SHA-256, and everything after reads that snapshot, so an edit to the file
mid-incident changes nothing by itself. Upgrading is a recorded decision: the difference
is shown, a ``playbook_upgraded`` event carries both digests, the difference and the new
snapshot, and the fold reads the incident against the new playbook from then on.

What a responder already did must survive the move, so an upgrade is refused when it
would remove an item they ticked, the phase they are in, or the severity level the
incident is at; the refusal names each.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from playbook.core import events as ev
from playbook.core.events import NewEvent
from playbook.core.state import IncidentState, fold
from playbook.core.text import unpaired_escaped
from playbook.errors import Conflict, NotFound, UsageError
from playbook.redaction import scrub_data
from playbook.service.context import Context, check_actor, resolve_id

if TYPE_CHECKING:
    from playbook.core.loader import LoadedPlaybook


@dataclass(frozen=True)
class UpgradePlan:
    """What `upgrade` would do: the incident, the playbook it would move to, the
    difference by part, and what the move would orphan (empty when it may go ahead)."""

    state: IncidentState
    loaded: LoadedPlaybook
    diff: dict[str, dict[str, list[str]]]
    orphans: list[str]

    @property
    def unchanged(self) -> bool:
        return self.loaded.sha256 == self.state.playbook_sha256


def file_changed(state: IncidentState) -> str | None:
    """A one-line notice when the incident's playbook file no longer has the SHA-256 it
    had when the incident opened (or was last upgraded); None when it has, or when it
    cannot be read (a notice, never an error: the incident runs on its snapshot)."""
    if not state.playbook_path or not state.playbook_sha256:
        return None
    try:
        digest = hashlib.sha256(Path(state.playbook_path).read_bytes()).hexdigest()
    except OSError:
        return None
    if digest == state.playbook_sha256:
        return None
    return (
        f"The playbook file changed since this incident took it ({state.playbook_path}); "
        f"the incident still follows the old one: `playbook upgrade {state.id}` moves it."
    )


def plan(ctx: Context, ref: str, playbook_file: str | Path | None = None) -> UpgradePlan:
    """The upgrade of incident ``ref`` to ``playbook_file`` (default: the file it was
    opened from), not yet recorded.

    Raises:
        NotFound: the incident's playbook file is gone and no other was given.
        PlaybookInvalid: the edited playbook does not validate.
        Conflict: the incident is resolved or closed, or the playbook is another one.
    """
    from playbook.adapters.plugins import load_playbook  # deferred: pydantic
    from playbook.service.incidents import sections_payload

    incident_id = resolve_id(ctx, ref)
    state = fold(ctx.store.read(incident_id), incident_id)
    _require_open(state)
    wanted = playbook_file or state.playbook_path
    if not wanted:
        raise NotFound(
            f"Incident {state.id} records no playbook file.", "Name one: --playbook FILE."
        )
    loaded = load_playbook(wanted)
    pb = loaded.playbook
    if state.playbook_id and pb.id != state.playbook_id:
        raise Conflict(
            f"{loaded.path} is playbook {pb.id!r}; incident {state.id} follows {state.playbook_id!r}.",
            "An upgrade moves an incident to an edited version of its own playbook.",
        )
    new_snapshot = pb.model_dump(mode="json", by_alias=True)
    new_sections = sections_payload(pb)
    diff = difference(state.snapshot, state.sections, new_snapshot, new_sections)
    return UpgradePlan(state, loaded, diff, orphans(state, new_snapshot, new_sections))


def orphans(
    state: IncidentState, snapshot: dict[str, Any], sections: list[dict[str, Any]]
) -> list[str]:
    """What the incident holds that the new playbook would lose, one line each."""
    refs = _items(sections)
    lost = [
        f"ticked item {ref} ({state.checklist.get(ref, '')})"
        for ref in state.done
        if ref not in refs
    ]
    phases = {p["id"] for p in snapshot.get("phases", [])}
    if state.phase and state.phase not in phases:
        lost.append(f"phase {state.phase}, the phase the incident is in")
    levels = {lvl["id"] for lvl in snapshot.get("severity", {}).get("levels", [])}
    if state.severity and state.severity not in levels:
        lost.append(f"severity level {state.severity}, the incident's severity now")
    return lost


def upgrade(ctx: Context, plan_: UpgradePlan) -> IncidentState:
    """Record the upgrade ``plan_`` describes. Decided again on the incident's events
    inside the store's transaction: an item ticked since the plan was shown is checked.

    Raises:
        Conflict: the move would orphan something (named), the incident was resolved
            meanwhile, or it already follows this playbook.
    """
    check_actor(ctx)
    loaded = plan_.loaded
    pb = loaded.playbook
    from playbook.service.incidents import sections_payload

    snapshot = pb.model_dump(mode="json", by_alias=True)
    sections = sections_payload(pb)

    def make(events: list[Any]) -> list[NewEvent]:
        state = fold(events, plan_.state.id)
        _require_open(state)
        if state.playbook_sha256 == loaded.sha256:
            raise Conflict(
                f"Incident {state.id} already follows this playbook ({loaded.sha256[:12]})."
            )
        lost = orphans(state, snapshot, sections)
        if lost:
            raise Conflict(
                f"Upgrading incident {state.id} would orphan {len(lost)} thing"
                f"{'' if len(lost) == 1 else 's'} the responders did or are in.",
                "Keep them in the edited playbook (or untick the items first):\n  "
                + "\n  ".join(lost),
            )
        payload = {
            "playbook": {
                "id": pb.id,
                "title": pb.title,
                "version": pb.version,
                "path": str(loaded.path),
                "sha256": loaded.sha256,
            },
            "from_sha256": state.playbook_sha256,
            "to_sha256": loaded.sha256,
            "diff": difference(state.snapshot, state.sections, snapshot, sections),
            # As in the opened event: the snapshot is recorded as the file says, unscrubbed,
            # so it matches the SHA-256 recorded beside it.
            "snapshot": snapshot,
            "sections": sections,
        }
        # The rest is masked and escaped as every event's payload is (the file's path may
        # hold anything), as the opened event does.
        payload = {
            key: value if key in ("snapshot", "sections") else unpaired_escaped(scrub_data(value))
            for key, value in payload.items()
        }
        now = ctx.clock.now()
        if state.last_event_at is not None and now < state.last_event_at:
            now = state.last_event_at
        return [NewEvent(ev.PLAYBOOK_UPGRADED, payload, ctx.actor, now)]

    before, appended = ctx.store.update(plan_.state.id, make)
    return fold([*before, *appended], plan_.state.id)


def _require_open(state: IncidentState) -> None:
    if state.opened_at is None:
        raise NotFound(f"No incident {state.id}.")
    if state.resolved_at is not None or state.closed_at is not None:
        raise Conflict(
            f"Incident {state.id} is {state.status}; only an open incident moves to an edited playbook."
        )


# --------------------------------------------------------------------------- the difference


def _items(sections: list[dict[str, Any]]) -> dict[str, str]:
    return {
        item["ref"]: item["text"]
        for section in sections
        for step in section.get("steps", [])
        for item in step.get("items", [])
    }


def _keyed(values: Any, key: str = "id") -> dict[str, Any]:
    if isinstance(values, dict):
        return values
    return {str(v.get(key)): v for v in values or [] if isinstance(v, dict)}


def _compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[str]]:
    found = {
        "added": sorted(set(new) - set(old)),
        "removed": sorted(set(old) - set(new)),
        "changed": sorted(k for k in set(old) & set(new) if old[k] != new[k]),
    }
    return {kind: names for kind, names in found.items() if names}


def difference(
    old_snapshot: dict[str, Any],
    old_sections: list[dict[str, Any]],
    new_snapshot: dict[str, Any],
    new_sections: list[dict[str, Any]],
) -> dict[str, dict[str, list[str]]]:
    """What changed between two playbooks, by part: sections, checklist items (by ref),
    phases, severity levels, diagnostics, actions, status templates; each with the ids
    added, removed and changed. Parts that did not change are left out."""
    parts = {
        "sections": (_keyed(old_sections), _keyed(new_sections)),
        "items": (_items(old_sections), _items(new_sections)),
        "phases": (_keyed(old_snapshot.get("phases")), _keyed(new_snapshot.get("phases"))),
        "severity_levels": (
            _keyed(old_snapshot.get("severity", {}).get("levels")),
            _keyed(new_snapshot.get("severity", {}).get("levels")),
        ),
        "diagnostics": (
            _keyed(old_snapshot.get("diagnostics")),
            _keyed(new_snapshot.get("diagnostics")),
        ),
        "actions": (_keyed(old_snapshot.get("actions")), _keyed(new_snapshot.get("actions"))),
        "templates": (
            _keyed(old_snapshot.get("communications", {}).get("templates")),
            _keyed(new_snapshot.get("communications", {}).get("templates")),
        ),
    }
    found = {part: _compare(old, new) for part, (old, new) in parts.items()}
    return {part: change for part, change in found.items() if change}


def check_usage(yes: bool, interactive: bool) -> None:
    """Refuse to record without a confirmation a person gave (``--yes`` or a prompt)."""
    if not yes and not interactive:
        raise UsageError(
            "Not upgrading without a confirmation.",
            "Read the difference above, then run again with --yes.",
        )
