"""Publications in the incident's state: each message sent outside the terminal, by
idempotency key, folded from ``publish_intended`` and ``publish_result`` (issue 17).

Kept beside :mod:`playbook.core.state` (which registers the two fold functions and
holds the ``publications`` field) so that module stays one reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from playbook.core.events import Event


@dataclass
class Publication:
    """One message to one destination: intended, then (unless a crash came between)
    its result."""

    key: str
    """The idempotency key, also set in the destination's own record where it has one."""
    destination: str
    template: str
    status: str
    digest: str
    intended_at: datetime
    actor: str
    result: dict[str, Any] | None = None
    """The ``publish_result`` payload, with ``at`` and ``actor``; None while the outcome
    is unknown."""

    @property
    def outcome(self) -> str:
        return str(self.result.get("outcome", "")) if self.result else "unknown"


def publish_intended(state: Any, event: Event) -> None:
    """Fold a ``publish_intended`` event into ``state.publications``."""
    p = event.payload
    state.publications[p["key"]] = Publication(
        p["key"], p["destination"], p["template"], p["status"], p["digest"], event.at, event.actor
    )


def publish_result(state: Any, event: Event) -> None:
    """Fold a ``publish_result`` event; a result whose intent is missing (a hand-edited
    log) is still shown."""
    p = event.payload
    pub = state.publications.get(p["key"])
    if pub is None:
        pub = state.publications[p["key"]] = Publication(
            p["key"], p["destination"], p["template"], p["status"], "", event.at, event.actor
        )
    pub.result = {**p, "at": event.at.isoformat(), "actor": event.actor}
