"""The postmortem's facts recorded from the command line land in the incident's log (read
back from the SQLite store itself), and the draft exported to a file holds them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from playbook.core.state import fold
from playbook.store.sqlite import SQLiteStore


def _open(cli) -> str:
    opened = cli("open", "data-integrity", "--title", "Orders missing", "--json")
    assert opened.exit_code == 0, opened.output
    return json.loads(opened.output)["id"]


def _logged(cli, incident: str) -> list:
    store = SQLiteStore(cli.home)
    try:
        return store.read(incident)
    finally:
        store.close()


def test_facts_recorded_during_and_after_the_incident_reach_the_log_and_the_draft(
    cli, tmp_path: Path
) -> None:
    incident = _open(cli)
    assert cli("ack", incident).exit_code == 0
    steps = [
        ("impact", incident, "--set", "users=1200", "--set", "data_lost=none"),
        ("impact", incident, "--set", "users=1500"),
        ("followup", "add", incident, "Alert on index drops", "--owner", "bob",
         "--due", "2026-12-05", "--ticket", "OPS-12"),
        ("followup", "add", incident, "Rewrite the rebuild job"),
        ("pin", incident, "2"),
        ("resolve", incident, "--summary", "restored from backup"),
        ("close", incident),
        # a postmortem is written after the incident: all of these work on a closed one
        ("followup", "done", incident, "1"),
        ("retro", incident, "--root-cause", "The nightly job dropped the index",
         "--contributing", "No alert on index count", "--contributing", "An old runbook",
         "--went-well", "Backups were fresh", "--went-badly", "Paging took 20 minutes",
         "--lucky", "Low traffic at night", "--trigger", "Deploy 4711",
         "--detection", "A customer e-mail", "--resolution", "Restored the index"),
    ]  # fmt: skip
    for args in steps:
        result = cli(*args)
        assert result.exit_code == 0, (args, result.output)

    state = fold(_logged(cli, incident))
    assert {k: f.value for k, f in state.impact.items()} == {"users": "1500", "data_lost": "none"}
    assert [(f.number, f.title, f.owner, f.due, f.ticket, f.done_at is not None)
            for f in state.followups] == [
        (1, "Alert on index drops", "bob", "2026-12-05", "OPS-12", True),
        (2, "Rewrite the rebuild job", "", "", "", False),
    ]  # fmt: skip
    assert state.pinned == [2]
    assert [(n.field, n.text) for n in state.retrospective if n.field == "contributing"] == [
        ("contributing", "No alert on index count"),
        ("contributing", "An old runbook"),
    ]
    assert len(state.retrospective) == 9

    listed = cli("followup", "list", incident)
    assert "  1 [x] Alert on index drops (owner bob, due 2026-12-05, OPS-12)" in listed.output
    assert "  2 [ ] Rewrite the rebuild job (no owner, no due date)" in listed.output

    out = tmp_path / "pm.md"
    assert cli("export", incident, "--format", "postmortem", "-o", str(out)).exit_code == 0
    draft = out.read_text(encoding="utf-8")
    assert "| users | 1500 |" in draft and "| data\\_lost | none |" in draft
    assert "| 1 | Alert on index drops | bob | 2026-12-05 | OPS-12 | done " in draft
    assert "| 2 | Rewrite the rebuild job | — | — | — | open |" in draft
    for text in ("The nightly job dropped the index", "An old runbook", "Low traffic at night",
                 "Deploy 4711", "A customer e-mail", "Paging took 20 minutes"):  # fmt: skip
        assert f"- {text} (" in draft, text
    assert "| 2 | tester | Acknowledged; response begun | pinned |" in draft
    assert "To fill in" not in draft.split("## Roles")[0]  # every section before roles is filled


@pytest.mark.parametrize(
    ("args", "code", "said"),
    [
        (("retro", "{id}", "--went-well", "bad\x1b[2J"), 2, "control character"),
        (("impact", "{id}", "--set", "users=12\u202e00"), 2, "control character"),
        (("impact", "{id}", "--set", "users"), 2, "has no '='"),
        (("followup", "add", "{id}", "x\x07"), 2, "control character"),
        (("followup", "add", "{id}", "x", "--due", "2026-13-01"), 2, "not a date"),
        (("followup", "done", "{id}", "1"), 3, "no follow-up 1"),
        (("pin", "{id}", "99"), 3, "no event 99"),
        (("retro", "{id}"), 2, "at least one note"),
    ],
)
def test_refused_input_records_nothing(cli, args: tuple[str, ...], code: int, said: str) -> None:
    incident = _open(cli)
    before = _logged(cli, incident)
    result = cli(*(a.replace("{id}", incident) for a in args))
    assert result.exit_code == code, result.output
    assert said in result.output
    assert "Traceback" not in result.output
    assert _logged(cli, incident) == before


def test_pinning_an_event_twice_is_refused(cli) -> None:
    incident = _open(cli)
    assert cli("pin", incident, "1").exit_code == 0
    again = cli("pin", incident, "1")
    assert again.exit_code != 0 and "already pinned" in again.output
    assert fold(_logged(cli, incident)).pinned == [1]
