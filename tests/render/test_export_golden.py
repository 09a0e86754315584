"""The exports of two fixed incidents are byte for byte what they were before the
100,000-event speed-up (issue 15 §6): the golden files were made with the code before it.

``golden/*.events.json`` hold the incidents' events (one made of hostile values everywhere
text goes, one of 1,209 events of every kind, some damaged or unknown); the other files
hold their exports at a fixed time, in two zones. Regenerating them is a decision, not a
fix for a failing test: the export's readers (wikis, tools loading the JSON) see any change.
They were regenerated once, when the Markdown export gained its "Roles" and "Publications"
sections (issues 15 and 17); that diff added those two sections and nothing else.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from playbook.core.events import Event
from playbook.render.export import to_json, to_markdown

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 3, 15, 9, 30, 15, 250000, tzinfo=UTC)


def _events(name: str) -> list[Event]:
    return [Event.from_dict(d) for d in json.loads((GOLDEN / f"{name}.events.json").read_text())]


def _golden(name: str) -> str:
    return (GOLDEN / name).read_text(encoding="utf-8")


@pytest.mark.parametrize("incident", ["hostile", "long"])
@pytest.mark.parametrize("zone", ["UTC", "Europe/Paris"])
def test_the_markdown_export_is_unchanged(incident: str, zone: str) -> None:
    made = to_markdown(_events(incident), NOW, ZoneInfo(zone))
    assert made == _golden(f"{incident}.{zone.replace('/', '-')}.md")


@pytest.mark.parametrize("incident", ["hostile", "long"])
def test_the_json_export_is_unchanged(incident: str) -> None:
    assert to_json(_events(incident), NOW) == _golden(f"{incident}.json")
