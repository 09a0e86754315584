"""A drill's scorecard (stub until the real one lands)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from playbook.core.state import IncidentState


@dataclass
class Scorecard:
    state: IncidentState

    def to_dict(self) -> dict[str, Any]:
        return {"restored": bool(self.state.drill_checks and self.state.drill_checks[-1].restored)}

    def to_text(self) -> str:
        return f"Scorecard: restored={self.to_dict()['restored']}"


def scorecard(state: IncidentState, now: datetime) -> Scorecard:
    return Scorecard(state)
