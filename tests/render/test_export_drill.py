"""A drill's exports say it is a drill before anything else, and carry its scorecard."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from drill_support import MONGO_LABEL, REDIS_LABEL
from drill_support import drill_payload as shared_payload
from helpers import ROOT

from playbook.adapters.plugins import load_playbook as load
from playbook.core.loader import LoadedPlaybook
from playbook.core.state import fold
from playbook.core.text import one_line
from playbook.render.export import from_json, to_json, to_markdown


@pytest.fixture(scope="module")
def redis_runbook() -> LoadedPlaybook:
    return load(ROOT / "runbooks" / "redis-index-loss.yaml")


def drill_payload(speed: float = 10) -> dict[str, Any]:
    """A drill with a Redis target and a Mongo stand-in."""
    return shared_payload(speed, {"cache": REDIS_LABEL, "archive": MONGO_LABEL})


def check_payload(found: int, missing: int = 0, examples: list[str] = ()) -> dict[str, Any]:
    """A ``drill_checked`` payload shaped as playbook.drill.fingerprint.compare() makes it."""
    return {
        "restored": not missing,
        "targets": {
            "cache": {
                "expected": {"items": 6049, "sha256": "ab" * 32},
                "found": {"items": found, "sha256": "cd" * 32},
                "missing": missing,
                "changed": 0,
                "extra": 0,
                "examples": list(examples),
                "restored": not missing,
            }
        },
    }


def failing_run(diagnostic: str, text: str) -> dict[str, Any]:
    return {
        "diagnostic": diagnostic,
        "title": diagnostic,
        "kind": "redis",
        "target": "cache",
        "params": {},
        "started": "2026-03-14T02:01:00Z",
        "ended": "2026-03-14T02:01:01Z",
        "verdict": "fail",
        "message": "",
        "checks": [{"metric": "drop_percent", "op": "le", "ok": False, "text": text}],
        "metrics": {},
        "rows": [],
        "rows_total": 0,
        "partial": False,
        "error": "",
        "file": None,
        "sha256": None,
    }


@pytest.fixture
def drill(service, clock, redis_runbook) -> str:
    """A drill at speed 10: acknowledged after 7 real minutes, data lost, then restored."""
    incident = service.open(redis_runbook, "Drill: indexes gone", drill=drill_payload()).id
    service.record_diagnostic(
        incident, failing_run("index-drop", "drop_percent = 100.0 (healthy: <= 10): FAIL")
    )
    clock.advance(minutes=7)
    service.acknowledge(incident)
    service.record_drill_check(
        incident, check_payload(0, missing=6049, examples=["missing discord:messages:channel:0"])
    )
    service.enter_phase(incident, "recovery")
    clock.advance(minutes=5)
    service.record_drill_check(incident, check_payload(6049))
    service.resolve(incident, "rebuilt from the messages")
    return incident


def test_a_drill_markdown_says_drill_at_the_very_top(service, clock, drill) -> None:
    md = to_markdown(service.get(drill).events, clock.now())
    first, *rest = md.splitlines()
    assert first == (
        "# DRILL — not a real incident: The rebuild script deleted every index (speed ×10)"
    )
    top = "\n".join(rest[:12])
    assert "not a real incident" in first and "production" in top
    assert f"- `cache`: {REDIS_LABEL}" in top
    assert f"- `archive`: {MONGO_LABEL}" in top  # the stand-in says what it is, as is
    assert md.index("# DRILL") < md.index(f"# Incident {drill}")


def test_a_drill_markdown_has_its_scorecard(service, clock, drill) -> None:
    md = to_markdown(service.get(drill).events, clock.now())
    assert md.count("## Drill scorecard") == 1
    card = md[md.index("## Drill scorecard") : md.index("## Summary")]
    assert "**Restored**" in card and "last of 2 checks" in card
    assert "| `cache` | redis-server 7.2.4 (sandbox, 127.0.0.1:40001) | 6,049 | 6,049 | 0 |" in card
    # 7 real minutes at speed 10: 1h 10m on the drill clock, P2 wants 1h
    assert re.search(
        r"\| Response \(P2\) \| 1h 00m \| 1h 10m \| 7m 00s \| \*\*BREACHED\*\* \|", card
    )
    assert re.search(
        r"\| Containment \| 0s–1h 00m \| \+0s \| \+1h 10m \| 1h 10m \| 7m 00s \|", card
    )
    assert "**left late**" in card
    assert "Diagnostics not run: `project-indexes`" in card
    assert "| Initial Assessment | 6 | 6 |" in card
    assert "Set-up: sandbox 0.3 s, load 9.8 s, fingerprint 1.1 s, fault 0.3 s" in card


def test_a_drill_not_restored_shows_its_counts_and_examples(service, clock, redis_runbook) -> None:
    incident = service.open(redis_runbook, "Drill", drill=drill_payload(speed=1)).id
    service.record_drill_check(
        incident,
        check_payload(6000, missing=49, examples=["missing discord:messages:user:7"]),
    )
    md = to_markdown(service.get(incident).events, clock.now())
    assert "**NOT restored**" in md
    assert "| `cache` | " in md and "| 6,049 | 6,000 | 49 | 0 | 0 | **no** |" in md
    assert "```text\nmissing discord:messages:user:7\n```" in md
    assert "(speed ×1)" in md.splitlines()[0] and "times faster" not in md


def test_values_from_the_database_are_literal_in_the_markdown(
    service, clock, redis_runbook
) -> None:
    incident = service.open(redis_runbook, "Drill", drill=drill_payload()).id
    example = "missing user:<img src=x onerror=alert(1)> *b* [l](http://x) ``` | \x1b[2J"
    service.record_drill_check(incident, check_payload(6048, missing=1, examples=[example]))
    check = "name = '<b>x</b>' | `tick` [l](http://x) \x1b[31m"
    service.record_diagnostic(incident, failing_run("heartbeat", check))
    md = to_markdown(service.get(incident).events, clock.now())

    assert "\x1b" not in md
    card = md[md.index("## Drill scorecard") : md.index("## Summary")]
    # the example sits in a fence longer than the backtick run inside it, as it was
    assert "````text\n" + one_line(example) + "\n````" in card
    # the check text is a code span in its table cell, its pipe escaped for the table
    shown = one_line(check).replace("|", "\\|")
    assert f"| ``{shown}`` |" in card
    # nowhere in the scorecard does the markup stand outside a code span or a fence
    outside = re.sub(r"(`{3,})text\n.*?\n\1", "", card, flags=re.S)
    outside = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", outside)
    assert "<img" not in outside and "<b>" not in outside and "](http" not in outside


def test_a_real_incident_export_is_unchanged(service, clock, loaded) -> None:
    incident = service.open(loaded, "Orders missing").id
    clock.advance(minutes=10)
    service.acknowledge(incident)
    events = service.get(incident).events
    md = to_markdown(events, clock.now())
    assert md.startswith(f"# Incident {incident}: Orders missing\n")
    assert "DRILL" not in md and "scorecard" not in md.lower() and "sandbox" not in md
    document = json.loads(to_json(events, clock.now()))
    assert list(document) == ["format", "version", "exported_at", "incident", "summary", "events"]


def test_a_drill_json_export_has_drill_and_scorecard(service, clock, drill) -> None:
    events = service.get(drill).events
    document = json.loads(to_json(events, clock.now()))
    assert document["drill"]["title"] == "The rebuild script deleted every index"
    assert document["drill"]["speed"] == 10
    assert document["drill"]["services"] == {"cache": REDIS_LABEL, "archive": MONGO_LABEL}
    assert document["drill"]["setup"]["load_seconds"] == 9.84
    card = document["scorecard"]
    assert card["response"]["result"] == "breached"
    assert card["response"]["took"] == {"drill": 4200.0, "real": 420.0}
    assert card["recovery"]["restored"] is True and card["recovery"]["checks"] == 2
    assert "project-indexes" in card["skipped"]["diagnostics"]
    # still an export that loads back into the same state
    assert fold(from_json(json.dumps(document))) == fold(events)
