"""Helpers shared by tests (importable because pytest puts tests/ on the path)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNBOOK = ROOT / "runbooks" / "data-integrity.yaml"
T0 = datetime(2026, 3, 14, 2, 0, tzinfo=UTC)


def run_playbook(
    *args: str, env: dict[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run `python -m playbook` in a real subprocess (real exit codes, real stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "playbook", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        **kw,  # type: ignore[arg-type]
    )


def append_raw(service, incident: str, kind: str, payload: dict, actor: str = "alice") -> None:
    """Append an event straight to the store, past the service's input checks: text an
    older version (or an imported log) recorded before typed control characters were
    refused, which every reader must still show literally."""
    from playbook.core.events import NewEvent

    def decide(events: list) -> list:
        return [NewEvent(kind, payload, actor, events[-1].at if events else T0)]

    service.store.update(incident, decide)
