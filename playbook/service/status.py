"""Status messages: an incident's templates found, filled in, and the exact text recorded.

The app's live preview, the CLI's ``--preview`` and what is recorded all come from
:func:`render_status`, so what a responder previews is what is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

from playbook.core import events as ev
from playbook.core.durations import format_duration
from playbook.core.state import IncidentState, StatusMessage
from playbook.core.timers import next_update_due
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


NONE_DUE = "none scheduled"
"""What the human forms of ``next_update_due`` say when no update is expected (a
template that uses one still renders; the ISO form is then empty, which refuses)."""

INCIDENT_VARIABLES: dict[str, str] = {
    "service": "The affected service, as the playbook names it.",
    "incident_id": "The incident's id.",
    "title": "The incident's title now.",
    "severity": "The severity level's id now (SEV-1, P2, …).",
    "severity_name": "The severity level's name now (Critical, High, …).",
    "opened_at": "When the incident was opened (YYYY-MM-DD HH:MM UTC).",
    "current_time": "When the message is rendered (YYYY-MM-DD HH:MM UTC).",
    "phase": "The id of the phase the incident is in.",
    "phase_title": "The title of that phase.",
    "next_update_due": "When the next update of this template's audience is due once this "
    "one is posted, ISO 8601 UTC; empty when none is expected.",
    "next_update_due_human": "The same as HH:MM UTC (e.g. 14:25 UTC); 'none scheduled' "
    "when none is due.",
    "next_update_in": "The same as a length from now (e.g. 20m 00s); 'none scheduled' "
    "when none is due.",
    "roles": "Who holds which role, e.g. 'commander: alice, scribe: bob' ('no roles "
    "assigned' when nobody holds one).",
    "commander": "Who holds the commander role ('not assigned' when nobody does).",
}
"""Every variable an incident fills in by itself, with what it holds (``playbook vars``,
the README and the playbook's ``source: incident`` variables say the same)."""


def status_variables(
    ctx: Context, state: IncidentState, now: datetime | None = None, audience: str = "external"
) -> dict[str, str]:
    """The variables an incident fills in by itself.

    ``next_update_due`` is when the next update is due *after* the one being written:
    the message that says "next update at 14:25" is the post that starts that wait.
    """
    moment = now or ctx.clock.now()
    level = state.levels.get(state.severity)
    window = state.phase_window()
    posted = replace(
        state,
        messages=[*state.messages, StatusMessage(moment, ctx.actor, "", "", "", audience)],
    )
    due = next_update_due(posted, audience)
    return {
        "service": state.service,
        "incident_id": state.id,
        "title": state.title,
        "severity": state.severity,
        "severity_name": level.name if level else "",
        "opened_at": f"{state.opened_at:%Y-%m-%d %H:%M} UTC" if state.opened_at else "",
        "current_time": f"{moment:%Y-%m-%d %H:%M} UTC",
        "phase": state.phase,
        "phase_title": window.title if window else "",
        "next_update_due": due.due.isoformat().replace("+00:00", "Z") if due else "",
        "next_update_due_human": due.human if due else NONE_DUE,
        "next_update_in": format_duration((due.due - moment).total_seconds()) if due else NONE_DUE,
        "roles": state.roles_text() or "no roles assigned",
        "commander": state.roles.get("commander", "") or "not assigned",
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
    audience = str(tmpl.get("audience", "external"))
    merged = {**status_variables(ctx, state, audience=audience), **values}
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
