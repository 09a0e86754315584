"""Status messages: an incident's templates found, filled in, and the exact text recorded.

The app's live preview, the CLI's ``--preview`` and what is recorded all come from
:func:`render_status`, so what a responder previews is what is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from playbook.core import events as ev
from playbook.core.state import IncidentState
from playbook.errors import NotFound, TemplateError
from playbook.resources import builtin_runbooks
from playbook.service.context import Context, Decision, command, get

DRILL_MARK = "[DRILL — not a real incident]"
"""The first line of every status message written in a drill."""


def template_dir(state: IncidentState) -> Path:
    """Where the incident's status templates are: inside the playbook's folder.

    The rule :func:`playbook.core.loader.confined` applied when the playbook was
    loaded is applied again here, on the snapshot the incident recorded (it may have
    been opened by an older version, or the folder changed since).

    Raises:
        TemplateError: ``template_dir`` leads outside the playbook's folder.
        NotFound: the templates are no longer where they were.
    """
    # Imported here for start-up speed: the loader needs pydantic.
    from playbook.core.loader import confined, template_root

    template_dir = state.snapshot.get("communications", {}).get("template_dir", "templates")
    places = [(Path(state.playbook_path), template_dir)] if state.playbook_path else []
    builtin = builtin_runbooks().get(state.playbook_id)
    if builtin is not None:
        # An incident opened before the shipped templates moved inside runbooks/
        # recorded ``../templates``: the packaged runbook's own folder says where now.
        from playbook.adapters.plugins import load_playbook as load

        places.append((builtin, template_dir))
        places.append((builtin, load(builtin).playbook.communications.template_dir))
    refused: ValueError | None = None
    for playbook_file, wanted in places:  # the playbook's folder, else the packaged one's
        try:
            found = confined(template_root(playbook_file), playbook_file.parent, wanted)
        except ValueError as why:
            refused = refused or why
            continue
        if found.is_dir():
            return found
    if refused is not None:
        raise TemplateError(
            f"Refused: the playbook's template_dir {refused}.",
            "Templates must be inside the playbook's folder.",
        )
    raise NotFound(
        f"The templates of playbook {state.playbook_id!r} are not where they were.",
        f"Expected them beside {state.playbook_path}.",
    )


def status_variables(
    ctx: Context, state: IncidentState, now: datetime | None = None
) -> dict[str, str]:
    """The variables an incident fills in by itself."""
    moment = now or ctx.clock.now()
    level = state.levels.get(state.severity)
    return {
        "service": state.service,
        "incident_id": state.id,
        "title": state.title,
        "severity": state.severity,
        "severity_name": level.name if level else "",
        "opened_at": f"{state.opened_at:%Y-%m-%d %H:%M} UTC" if state.opened_at else "",
        "current_time": f"{moment:%Y-%m-%d %H:%M} UTC",
    }


def _template(state: IncidentState, kind: str) -> dict[str, Any]:
    known = state.snapshot.get("communications", {}).get("templates", {})
    if kind not in known:
        raise NotFound(
            f"No status template {kind!r}.", f"This playbook has: {', '.join(known) or 'none'}."
        )
    return dict(known[kind])


def render_status(ctx: Context, state: IncidentState, kind: str, values: Mapping[str, str]) -> str:
    """The text of status message ``kind`` for ``state``.

    A drill's message starts with :data:`DRILL_MARK` on a line of its own, so a
    rehearsal's message can never be read as a real incident's, wherever it is pasted.
    """
    # Imported here for start-up speed: rendering needs Jinja.
    from playbook.render.template_worker import render_isolated

    tmpl = _template(state, kind)
    merged = {**status_variables(ctx, state), **values}
    # In a worker process killed at a hard deadline: a template is untrusted code.
    text = render_isolated(template_dir(state), tmpl["file"], merged, label=kind)
    return f"{DRILL_MARK}\n{text}" if state.drill is not None else text


def preview_status(ctx: Context, ref: str, kind: str, values: Mapping[str, str]) -> str:
    """Render a status message without recording it."""
    return render_status(ctx, get(ctx, ref).state, kind, values)


def send_status(
    ctx: Context, ref: str, kind: str, values: Mapping[str, str]
) -> tuple[IncidentState, str]:
    """Render a status message and record its exact text."""
    rendered: dict[str, str] = {}

    def decide(state: IncidentState) -> Decision:
        tmpl = _template(state, kind)
        text = render_status(ctx, state, kind, values)
        rendered["text"] = text
        return [
            (
                ev.STATUS_RENDERED,
                {
                    "template": kind,
                    "status": tmpl.get("status", ""),
                    "text": text,
                    "variables": dict(values),
                },
            )
        ]

    state = command(ctx, ref, decide)
    return state, rendered["text"]
