"""Reading an incident's sections (assessment, phases, scenarios, post-incident) as the
left column and the checklist show them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playbook.core.state import IncidentState


def section_of(state: IncidentState, section_id: str) -> dict[str, Any] | None:
    """The section ``section_id`` of the incident's checklist (None when it has none)."""
    return next((s for s in state.sections if s["id"] == section_id), None)


def progress_of(state: IncidentState, section_id: str) -> tuple[int, int]:
    """(items ticked, items) of a section."""
    section = section_of(state, section_id)
    if section is None:
        return 0, 0
    refs = [i["ref"] for step in section["steps"] for i in step["items"]]
    return sum(1 for r in refs if r in state.done), len(refs)


def post_incident_first(state: IncidentState) -> str:
    """The first post-incident section (the current phase when the playbook has none)."""
    post = state.snapshot.get("post_incident", [])
    return post[0]["id"] if post else state.phase


def step_of(ident: str) -> tuple[str, str] | None:
    """(section, step) of a checklist line's id: ``step:``, ``item:``, ``diag:``, ``act:``."""
    if ident.startswith("step:"):
        section, step = ident[5:].split(".", 1)
        return section, step
    if ident.startswith("item:"):
        section, step, _item = ident[5:].split(".", 2)
        return section, step
    if ident.startswith(("diag:", "act:")):
        section, step = ident.split(":", 2)[1].split(".", 1)
        return section, step
    return None
