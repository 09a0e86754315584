"""A playbook with one diagnostic, written to disk and run through the service as
`playbook diag run` does; shared by the extractor, ssh and scheme tests."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import yaml

from playbook.adapters.plugins import load_playbook as load
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.targets import Target

_COUNTER = itertools.count()

BASE: dict[str, Any] = {
    "version": 1,
    "id": "numbers",
    "title": "Numbers",
    "service": "a service",
    "severity": {
        "default": "P2",
        "levels": [
            {
                "id": "P2",
                "name": "High",
                "response": "1h",
                "resolution": "8h",
                "status_update_every": "1h",
            }
        ],
        "escalation_path": ["on-call"],
    },
    "assessment": {"id": "assessment", "title": "Assessment", "steps": [{"id": "a", "title": "A"}]},
    "phases": [
        {
            "id": "investigation",
            "title": "Investigation",
            "stage": "investigation",
            "starts": "0m",
            "ends": "1h",
            "steps": [{"id": "dig", "title": "Dig", "diagnostics": ["check"]}],
        }
    ],
}


class Harness:
    """Runs one diagnostic through the service; returns the recorded evidence."""

    def __init__(self, root: Path, targets: dict[str, str] | None = None) -> None:
        self.root = root
        self.service = Service(SQLiteStore(root / "data"), actor="tester")
        self.targets = {
            name: Target(name, uri, "test")
            for name, uri in (targets or {"local": "local:"}).items()
        }

    def playbook(self, diagnostic: dict[str, Any]) -> Path:
        path = self.root / f"pb-{next(_COUNTER)}.yaml"
        path.write_text(yaml.safe_dump({**BASE, "diagnostics": {"check": diagnostic}}))
        return path

    def run(
        self, diagnostic: dict[str, Any], given: dict[str, object] | None = None
    ) -> dict[str, Any]:
        """The evidence payload recorded for one run (prepare raises Refused/UsageError)."""
        state = self.service.open(load(self.playbook(diagnostic)), "numbers")
        prepared = self.service.prepare_diagnostic(state.id, "check", given or {}, self.targets)
        payload = self.service.execute_diagnostic(prepared)
        self.service.record_diagnostic(state.id, payload)
        recorded = [e for e in self.service.get(state.id).events if e.type == "diagnostic_run"]
        assert recorded[-1].payload["verdict"] == payload["verdict"]
        return dict(recorded[-1].payload)

    @staticmethod
    def file_rows(payload: dict[str, Any]) -> list[Any]:
        """The rows of the evidence file (all of them, as written to disk)."""
        return [json.loads(line) for line in Path(payload["file"]).read_text().splitlines()]
