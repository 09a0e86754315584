"""Severity levels as the playbook defines them: any id, optional targets, a level's own
notification and update schedule, and old incidents that still fold.

Each test checks where the promise lands: the timer's due time, the events in the
store, the rendered message, what `validate` prints."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import ROOT, T0

from playbook.adapters.plugins import load_playbook as load
from playbook.core.state import fold
from playbook.core.timers import compute, next_update_due, reminders
from playbook.render.export import from_json

SEV_LEVELS = """\
severity:
  default: SEV-2
  levels:
    - id: SEV-1
      name: Critical
      response: 5m
      resolution: 4h
      notify: page
      escalation: [Incident commander on call, VP Engineering]
      updates:
        external: [{within: 5m}, {every: 20m, until: 2h}, {every: 1h}]
        internal: [{every: 30m}]
      description: Warrants public notification and liaison with executive teams.
    - id: SEV-2
      name: Major
      response: 15m
      resolution: 8h
      notify: page
      updates: [{within: 5m}, {every: 20m, until: 2h}, {every: 1h}]
    - id: SEV-3
      name: Minor
      notify: none
      updates: none
      description: Ticket only, no page, no updates.
  escalation_path: [Technical Lead, Engineering Manager, CTO]
"""

NEXT_LINE = "Next update at {{ next_update_due_human }} ({{ severity }} {{ severity_name }}).\n"
INTERNAL = """\
    internal:
      title: Internal summary
      file: data-integrity/internal.txt.j2
      status: investigating
      audience: internal
      phase: immediate-response
      variables: {}
"""


def sev_playbook(tmp_path: Path) -> Path:
    """The shipped data-integrity playbook with PagerDuty's SEV-n levels and schedule,
    and an internal template; its templates say when the next update is due."""
    folder = tmp_path / "runbooks"
    shutil.copytree(ROOT / "runbooks", folder)
    path = folder / "data-integrity.yaml"
    text = path.read_text(encoding="utf-8")
    start, end = text.index("severity:\n"), text.index("# ------", text.index("severity:\n"))
    text = text[:start] + SEV_LEVELS + "\n" + text[end:]
    text = text.replace("  templates:\n", "  templates:\n" + INTERNAL, 1)
    path.write_text(text, encoding="utf-8")
    templates = folder / "templates" / "data-integrity"
    for name in ("initial", "progress"):
        file = templates / f"{name}.txt.j2"
        file.write_text(file.read_text(encoding="utf-8") + NEXT_LINE, encoding="utf-8")
    (templates / "internal.txt.j2").write_text(
        "{{ severity }} — {{ roles }} — next internal update {{ next_update_due }}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def sev(tmp_path: Path):
    return load(sev_playbook(tmp_path))


def test_the_pagerduty_schedule_drives_next_update_due(service, clock, sev) -> None:
    state = service.open(sev, "Checkout failing", "SEV-2")
    # t=0: the first post is due within 5 minutes of the opening.
    assert next_update_due(state).due == T0 + timedelta(minutes=5)
    assert service.timers(state).status_update.deadline == T0 + timedelta(minutes=5)

    clock.advance(minutes=6)  # posted a minute late
    state, text = service.status(state.id, "initial", {"specific_issues": "failed payments"})
    # then every 20 minutes for the first two hours: due 20 minutes after that post,
    assert next_update_due(state).due == T0 + timedelta(minutes=26)
    # and the message just posted said so.
    assert "Next update at 02:26 UTC (SEV-2 Major)." in text

    clock.advance(hours=2, minutes=24)  # t = 2h30: past `until: 2h`, hourly now
    state, text = service.status(state.id, "progress", {"estimated_time": "1 hour"})
    assert next_update_due(state).due == T0 + timedelta(hours=3, minutes=30)
    assert "Next update at 05:30 UTC" in text
    timer = service.timers(state).status_update
    assert timer.target == 3600 and timer.deadline == T0 + timedelta(hours=3, minutes=30)


def test_a_quiet_level_has_no_timers_no_escalation_and_no_reminder(service, clock, sev) -> None:
    state = service.open(sev, "Typo on the pricing page", "SEV-3")
    clock.advance(days=3)
    timers = service.timers(state)
    assert timers.response is None and timers.resolution is None
    assert timers.status_update is None and timers.internal_update is None
    assert state.next_escalation() is None
    assert reminders(state, clock.now()) == []
    assert service.status_variables(state)["next_update_due"] == ""


def test_a_level_escalates_along_its_own_path(service, clock, sev) -> None:
    state = service.open(sev, "Everything down", "SEV-1")
    clock.advance(minutes=6)  # SEV-1's 5-minute response target is breached
    timer = service.timers(state).response
    assert timer.escalate_to == "Incident commander on call"
    state = service.change_severity(state.id, "SEV-2", "only checkout")
    assert state.next_escalation() == "Technical Lead"  # SEV-2 has the policy's path


def test_levels_rank_by_their_order_not_their_digits(service, sev) -> None:
    state = service.open(sev, "x", "SEV-2")
    assert [state.severity_rank(level) for level in ("SEV-1", "SEV-2", "SEV-3")] == [0, 1, 2]
    assert sev.playbook.severity.rank("SEV-3") == 2


def test_each_audience_counts_only_its_own_posts(service, clock, sev) -> None:
    state = service.open(sev, "Everything down", "SEV-1")
    assert next_update_due(state, "internal").due == T0 + timedelta(minutes=30)
    clock.advance(minutes=3)
    state, text = service.status(state.id, "internal", {})
    assert "next internal update 2026-03-14T02:33:00Z" in text
    assert next_update_due(state, "internal").due == T0 + timedelta(minutes=33)
    # the internal post does not satisfy the external schedule
    assert next_update_due(state, "external").due == T0 + timedelta(minutes=5)
    assert service.timers(state).internal_update.deadline == T0 + timedelta(minutes=33)


def test_the_shipped_playbook_keeps_its_p1_p2_meaning(loaded) -> None:
    levels = {lvl.id: lvl for lvl in loaded.playbook.severity.levels}
    assert [lvl.id for lvl in loaded.playbook.severity.levels] == ["P1", "P2"]
    assert (levels["P1"].response, levels["P1"].resolution) == (15 * 60, 4 * 3600)
    assert (levels["P2"].response, levels["P2"].resolution) == (3600, 8 * 3600)
    assert [s.every for s in levels["P1"].schedule()] == [30 * 60]
    assert [s.every for s in levels["P2"].schedule()] == [3600]
    assert {r.id for r in loaded.playbook.roles} >= {"commander", "scribe", "liaison"}


def test_an_incident_opened_before_levels_had_schedules_still_folds() -> None:
    """The log was written by the code before this change (tests/core/fixtures, made by
    main's `Service` and exported as JSON): P2, acknowledged, one update at 02:30."""
    fixture = Path(__file__).parent / "fixtures" / "incident-before-levels.json"
    events = from_json(fixture.read_text(encoding="utf-8"))
    state = fold(events)
    assert state.unreadable == []
    assert state.levels["P2"].status_update_every == 3600
    timers = compute(state, T0 + timedelta(hours=1))
    assert timers.response.stopped and timers.response.target == 3600
    assert timers.resolution.target == 8 * 3600
    # the old single cadence is a one-step schedule: next update an hour after the post
    assert timers.status_update.deadline == T0 + timedelta(minutes=30 + 60)
    assert next_update_due(state).due == T0 + timedelta(minutes=90)


BAD = """\
    - id: SEV-1
      name: Critical
      response: 9h
      resolution: 4h
      status_update_every: 0m
"""


def test_validate_refuses_a_long_response_and_a_zero_cadence(tmp_path: Path, cli) -> None:
    path = sev_playbook(tmp_path)
    text = path.read_text(encoding="utf-8")
    start = text.index("    - id: SEV-1")
    end = text.index("    - id: SEV-2")
    text = text[:start] + BAD + text[end:]
    path.write_text(text, encoding="utf-8")
    lines = text.splitlines()

    def line_of(snippet: str, after: int = 0) -> int:
        return next(i for i, line in enumerate(lines, 1) if i > after and snippet in line)

    result = cli("validate", str(path))
    assert result.exit_code == 1
    out = result.output
    assert re.search(
        rf"data-integrity\.yaml:{line_of('resolution: 4h')}:\d+: severity\.levels\[0\]\.resolution: "
        r".*response target \(9h 00m\) is longer than the resolution target \(4h 00m\)",
        out,
    ), out
    assert re.search(
        rf"data-integrity\.yaml:{line_of('status_update_every: 0m')}:\d+: "
        r"severity\.levels\[0\]\.status_update_every: .*at least 1s",
        out,
    ), out


def test_validate_refuses_duplicate_levels_and_an_unknown_default(tmp_path: Path, cli) -> None:
    path = sev_playbook(tmp_path)
    text = path.read_text(encoding="utf-8").replace("- id: SEV-2", "- id: SEV-1")
    text = text.replace("default: SEV-2", "default: SEV-9")
    path.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    second = [i for i, line in enumerate(lines, 1) if "- id: SEV-1" in line][1]
    default = next(i for i, line in enumerate(lines, 1) if "default: SEV-9" in line)
    out = cli("validate", str(path)).output
    assert re.search(
        rf"data-integrity\.yaml:{second}:\d+: severity\.levels\[1\]\.id: "
        r"duplicate severity level 'SEV-1'",
        out,
    ), out
    assert re.search(
        rf"data-integrity\.yaml:{default}:\d+: severity\.default: default severity 'SEV-9'",
        out,
    ), out


def test_validate_refuses_a_zero_step_and_a_step_with_two_cadences(tmp_path: Path, cli) -> None:
    path = sev_playbook(tmp_path)
    text = path.read_text(encoding="utf-8")
    text = text.replace("{every: 20m, until: 2h}", "{every: 0s, until: 2h}", 1)
    text = text.replace("[{within: 5m}, {every: 20m", "[{within: 5m, every: 20m", 1)
    path.write_text(text, encoding="utf-8")
    out = cli("validate", str(path)).output
    # both are reported in one run, each at its own key
    assert re.search(r"severity\.levels\[0\]\.updates\.external\[1\]\.every: .*at least 1s", out)
    assert re.search(r"severity\.levels\[1\]\.updates\[0\]: .*either `within` or `every`", out), out
