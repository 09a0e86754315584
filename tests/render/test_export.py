"""Exports: the JSON loads back into the same state; the Markdown tells the whole story."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import append_raw

from playbook.core.state import fold
from playbook.errors import UsageError
from playbook.fileio import atomic_write
from playbook.render.export import from_json, to_json, to_markdown


@pytest.fixture
def worked(service, clock):
    incident = service.open(
        None, "Orders missing", triggers=["user-reports.users-reporting-missing-or-incorrect-data"]
    ).id
    clock.advance(minutes=70)  # the response target (1 h) is missed
    service.acknowledge(incident)
    service.check(incident, "assemble-response-team")
    service.status(incident, "initial", {"specific_issues": "``` missing orders | [bold]"})
    clock.advance(minutes=30)
    service.change_severity(incident, "P1", "user accounts affected")
    append_raw(service, incident, "note_added", {"text": "line one\nline two \x1b[2J"})
    clock.advance(minutes=20)
    service.resolve(incident, "restored")
    return incident


def test_json_export_loads_back_into_the_same_state(service, worked, clock) -> None:
    events = service.get(worked).events
    document = json.loads(to_json(events, clock.now()))
    assert document["format"] == "playbook.incident" and document["version"] == 1
    assert len(document["events"]) == len(events)
    assert fold(from_json(json.dumps(document))) == fold(events)


def test_json_import_refuses_what_it_cannot_trust() -> None:
    with pytest.raises(UsageError, match="Not JSON"):
        from_json("{")
    with pytest.raises(UsageError, match="format"):
        from_json('{"format": "other"}')
    with pytest.raises(UsageError, match="version"):
        from_json('{"format": "playbook.incident", "version": 99}')


def test_markdown_is_the_post_incident_document(service, worked, clock) -> None:
    events = service.get(worked).events
    state = fold(events)
    md = to_markdown(events, clock.now())
    assert md.startswith(f"# Incident {worked}: Orders missing\n")
    assert re.search(r"\| Response \(P2\) \| 1h 00m \| 1h 10m \| \*\*BREACHED\*\* \|", md)
    assert re.search(r"\| Resolution \(P1\) \| 4h 00m \| 2h 00m \| met \|", md)
    assert re.search(r"\| P2 \| .* \| 1h 40m \| opened at this severity \|", md)
    assert re.search(r"\| P1 \| .* \| 20m 00s \| user accounts affected \|", md)
    # every event has a row, in order
    rows = re.findall(r"^\| (\d+) \| ", md, flags=re.M)
    assert [int(r) for r in rows] == [e.seq for e in events]
    # the status message verbatim, in a fence longer than any backtick run inside it
    message = state.messages[0].text
    assert "````text\n" + message.rstrip("\n") + "\n````" in md
    # control characters are escaped, never emitted
    assert "\x1b" not in md and "\\\\x1b\\[2J" in md  # shown as \x1b[2J once rendered
    assert "### Immediate Response: 4/11 done" in md
    assert "## Left open" in md and "Service Restoration: 12 not done" in md
    assert "Users reporting missing or incorrect data" in md


def test_markdown_of_an_open_incident_says_what_is_running(service, clock) -> None:
    incident = service.open(None, "still going").id
    clock.advance(minutes=50)
    md = to_markdown(service.get(incident).events, clock.now())
    assert "| Response (P2) | 1h 00m | 50m 00s | running (warning) |" in md
    assert "- The incident was never acknowledged." in md


def test_atomic_write_replaces_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "out.md"
    target.write_text("old")
    atomic_write(target, "new text")
    assert target.read_text() == "new text"
    assert [p.name for p in tmp_path.iterdir()] == ["out.md"]  # no temporary left behind


def test_only_followed_scenarios_are_in_the_record_and_notes_keep_their_lines(
    service, clock
) -> None:
    incident = service.open(None, "scenarios").id
    service.choose_scenario(incident, "data-loss")
    service.note(incident, "first line\nsecond line")
    md = to_markdown(service.get(incident).events, clock.now())
    assert "### Scenario: Data Loss: 0/" in md
    assert "Scenario: Database Corruption" not in md
    assert "Note: first line ⏎ second line" in md  # one table row, the break visible
    assert "first line\\\n  second line" in md  # the notes section keeps the lines
    assert "Following scenario data-loss" in md
