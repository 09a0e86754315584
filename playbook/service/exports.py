"""An incident's timeline exported: Markdown for people, JSON for tools.

The exporters themselves (:mod:`playbook.render.export`) are pure functions of the
events; this only reads the incident and picks one.
"""

from __future__ import annotations

from datetime import tzinfo

from playbook.errors import UsageError
from playbook.render import export as exporters
from playbook.service.context import Context, get


def export(ctx: Context, ref: str, fmt: str, tz: tzinfo | None = None) -> str:
    """The incident's timeline in ``fmt`` (``markdown``, ``json`` or ``postmortem``), as
    of now."""
    incident = get(ctx, ref)
    now = ctx.clock.now()
    if fmt == "json":
        return exporters.to_json(incident.events, now)
    if fmt == "markdown":
        return exporters.to_markdown(incident.events, now, tz)
    if fmt == "postmortem":
        from playbook.render.postmortem import to_postmortem

        return to_postmortem(incident.events, now, tz)
    raise UsageError(f"Unknown export format {fmt!r}.", "Use markdown, json or postmortem.")
