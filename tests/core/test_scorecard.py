"""The drill scorecard: what an on-call engineer and the review after a drill read."""

from __future__ import annotations

import json
from typing import Any

import pytest
from drill_support import REDIS_LABEL, drill_payload
from helpers import ROOT

from playbook.adapters.plugins import load_playbook as load
from playbook.core.loader import LoadedPlaybook
from playbook.core.scorecard import scorecard
from playbook.core.text import one_line
from playbook.render.scorecard import scorecard_markdown, scorecard_text

DIAGNOSTICS = [
    "index-drop",
    "project-indexes",
    "index-sizes",
    "message-count",
    "message-ttl",
    "heartbeat",
    "rebuild-lock",
]


@pytest.fixture(scope="module")
def redis_runbook() -> LoadedPlaybook:
    return load(ROOT / "runbooks" / "redis-index-loss.yaml")


def open_drill(service, runbook: LoadedPlaybook, speed: float = 10) -> str:
    return service.open(runbook, "Drill: indexes gone", drill=drill_payload(speed)).id


def check_payload(
    found: int, missing: int = 0, changed: int = 0, extra: int = 0, examples: list[str] = ()
) -> dict[str, Any]:
    """A ``drill_checked`` payload shaped as playbook.drill.fingerprint.compare() makes it."""
    restored = not (missing or changed or extra)
    return {
        "restored": restored,
        "seconds": 1.2,
        "targets": {
            "cache": {
                "expected": {"items": 6049, "sha256": "ab" * 32},
                "found": {"items": found, "sha256": "cd" * 32},
                "missing": missing,
                "changed": changed,
                "extra": extra,
                "examples": list(examples),
                "restored": restored,
            }
        },
    }


def diagnostic_payload(diagnostic: str, verdict: str, failing: str = "") -> dict[str, Any]:
    checks = [{"metric": "count", "op": "ge", "ok": True, "text": "count = 3 (healthy: >= 1)"}]
    if failing:
        checks.append({"metric": "drop_percent", "op": "le", "ok": False, "text": failing})
    return {
        "diagnostic": diagnostic,
        "title": diagnostic.replace("-", " "),
        "kind": "redis",
        "target": "cache",
        "params": {},
        "started": "2026-03-14T02:00:00Z",
        "ended": "2026-03-14T02:00:01Z",
        "verdict": verdict,
        "message": "",
        "checks": checks,
        "metrics": {},
        "rows": [],
        "rows_total": 0,
        "partial": False,
        "error": "",
        "file": None,
        "sha256": None,
    }


def stage(run: str, name: str, outcome: str, **more: Any) -> dict[str, Any]:
    return {
        "run": run,
        "action": "rebuild-indexes",
        "target": "cache",
        "stage": name,
        "outcome": outcome,
        **more,
    }


def card_of(service, incident: str, clock):
    return scorecard(service.get(incident).state, clock.now())


# --------------------------------------------------------------------------- targets


def test_acknowledging_after_seven_real_minutes_at_speed_ten_breaches_p2(
    service, clock, redis_runbook
) -> None:
    incident = open_drill(service, redis_runbook, speed=10)
    clock.advance(minutes=7)
    service.acknowledge(incident)
    card = card_of(service, incident, clock)

    assert card.response.level == "P2" and card.response.target == 3600
    assert card.response.took.drill == 70 * 60 and card.response.took.real == 7 * 60
    assert card.response.result == "breached"
    text = scorecard_text(card)
    response = next(line for line in text.splitlines() if line.startswith("Response (P2)"))
    assert "1h 10m (real 7m 00s)" in response and "target 1h 00m" in response
    assert response.endswith("BREACHED")
    assert card.to_dict()["response"]["result"] == "breached"
    assert card.to_dict()["response"]["took"] == {"drill": 4200.0, "real": 420.0}


def test_a_quick_acknowledgement_meets_the_target_and_real_time_is_hidden_at_speed_one(
    service, clock, redis_runbook
) -> None:
    incident = open_drill(service, redis_runbook, speed=1)
    clock.advance(minutes=7)
    service.acknowledge(incident)
    text = scorecard_text(card_of(service, incident, clock))
    response = next(line for line in text.splitlines() if line.startswith("Response (P2)"))
    assert "7m 00s" in response and response.endswith("met")
    assert "real" not in text


def test_resolution_is_met_still_running_or_breached_while_running(
    service, clock, redis_runbook
) -> None:
    incident = open_drill(service, redis_runbook, speed=10)
    clock.advance(minutes=30)  # 5 h on the drill clock, of P2's 8 h
    assert card_of(service, incident, clock).resolution.result == "running"
    clock.advance(minutes=20)  # 8 h 20 m
    card = card_of(service, incident, clock)
    assert card.resolution.result == "overdue"
    assert "BREACHED, still running" in scorecard_text(card)

    other = open_drill(service, redis_runbook, speed=10)
    clock.advance(minutes=12)  # 2 h on the drill clock
    service.resolve(other, "rebuilt")
    clock.advance(hours=5)  # reading it later does not move a stopped timer
    card = card_of(service, other, clock)
    assert card.resolution.result == "met"
    assert card.resolution.took.drill == 2 * 3600
    # resolving without an acknowledgement stops the response timer too, 1 h late
    assert card.response.result == "breached"
    assert card.response.at == service.get(other).state.resolved_at


# --------------------------------------------------------------------------- phases


def test_time_in_each_phase_on_both_clocks_against_its_window(
    service, clock, redis_runbook
) -> None:
    incident = open_drill(service, redis_runbook, speed=10)
    clock.advance(minutes=5)  # 50 m: containment's window ends at 1 h
    service.enter_phase(incident, "investigation")
    clock.advance(minutes=30)  # 5 h 50 m: investigation's window ended at 4 h
    service.enter_phase(incident, "recovery")
    clock.advance(minutes=6)  # 6 h 50 m, still in recovery (window ends at 8 h)
    card = card_of(service, incident, clock)

    containment, investigation, recovery = card.phases
    assert (containment.id, containment.result) == ("containment", "in time")
    assert containment.spent.drill == 50 * 60 and containment.spent.real == 5 * 60
    assert (investigation.result, investigation.ends) == ("late", 4 * 3600)
    assert investigation.entered.drill == 50 * 60 and investigation.left.drill == 350 * 60
    assert investigation.spent.drill == 5 * 3600 and investigation.spent.real == 30 * 60
    assert recovery.result == "current" and recovery.left is None
    assert recovery.spent.drill == 60 * 60
    assert [p.title for p in card.phases_not_entered] == ["Restoration"]

    lines = scorecard_text(card).splitlines()
    row = next(line for line in lines if line.strip().startswith("Investigation"))
    assert "5h 00m (real 30m 00s)" in row and "due by 4h 00m" in row and "left LATE" in row
    assert "not entered: Restoration" in scorecard_text(card)

    clock.advance(minutes=20)  # 8 h 50 m: recovery is overdue
    assert card_of(service, incident, clock).phases[-1].result == "overdue"


# --------------------------------------------------------------------------- people


def test_escalations_and_status_messages_against_the_cadence(service, clock, loaded) -> None:
    # data-integrity has status templates; P2 asks for an update every hour
    incident = service.open(loaded, "Drill: orders", drill=drill_payload(speed=10)).id
    clock.advance(minutes=3)  # 30 m
    service.acknowledge(incident)
    service.status(incident, "initial", {"specific_issues": "orders"})
    clock.advance(minutes=6)  # 1 h 30 m
    service.escalate(incident, reason="no owner found")
    clock.advance(minutes=16)  # 4 h 10 m: four updates were due
    card = card_of(service, incident, clock)

    assert (card.status_messages.sent, card.status_messages.due) == (1, 4)
    assert [(e.to, e.after.drill, e.after.real) for e in card.escalations] == [
        ("Technical Lead", 90 * 60, 9 * 60)
    ]
    text = scorecard_text(card)
    assert "Status messages: 1 sent, 4 due" in text
    assert "Escalated to Technical Lead at +1h 30m (real +9m 00s): no owner found" in text


def test_a_severity_change_changes_the_cadence_of_updates_due(service, clock, loaded) -> None:
    incident = service.open(loaded, "Drill: orders", drill=drill_payload(speed=1)).id
    clock.advance(hours=2)  # two P2 updates due (one an hour)
    service.change_severity(incident, "P1", "accounts affected")
    clock.advance(hours=1)  # P1 asks every 30 m: two more
    assert card_of(service, incident, clock).status_messages.due == 4


# --------------------------------------------------------------------------- diagnostics, actions


def test_diagnostics_run_with_what_they_found_and_those_skipped(
    service, clock, redis_runbook
) -> None:
    incident = open_drill(service, redis_runbook)
    drop = "drop_percent = 100.0 (healthy: <= 10): FAIL"
    service.record_diagnostic(incident, diagnostic_payload("index-drop", "fail", drop))
    clock.advance(minutes=1)
    service.record_diagnostic(incident, diagnostic_payload("message-count", "pass"))
    service.record_diagnostic(incident, diagnostic_payload("index-drop", "pass"))
    card = card_of(service, incident, clock)

    assert [(d.id, d.runs, d.verdict) for d in card.diagnostics] == [
        ("index-drop", 2, "pass"),
        ("message-count", 1, "pass"),
    ]
    assert card.diagnostics[0].found == ""  # the last run passed
    assert card.diagnostics[0].last.drill == 10 * 60
    skipped = [d.id for d in card.diagnostics_not_run]
    assert sorted(skipped) == sorted(set(DIAGNOSTICS) - {"index-drop", "message-count"})
    assert card.to_dict()["skipped"]["diagnostics"] == skipped
    assert "Diagnostics: 2 of 7 run" in scorecard_text(card)
    assert "not run: " in scorecard_text(card)

    service.record_diagnostic(incident, diagnostic_payload("index-drop", "fail", drop))
    card = card_of(service, incident, clock)
    assert card.diagnostics[0].found == drop  # the first failing check of the last run
    row = next(line for line in scorecard_text(card).splitlines() if "index-drop" in line)
    assert "×3" in row and "FAIL" in row and drop[:40] in row


def test_guarded_actions_say_how_each_ended(service, clock, redis_runbook) -> None:
    incident = open_drill(service, redis_runbook)
    for name in ("dry_run", "backup", "confirm", "lock", "apply", "verify", "unlock"):
        service.record_action_stage(incident, stage("r1", name, "done"))
    service.record_action_stage(incident, stage("r2", "dry_run", "done"))
    service.record_action_stage(incident, stage("r2", "apply", "started"))
    card = card_of(service, incident, clock)
    assert [(a.run, a.status) for a in card.actions] == [
        ("r1", "applied and verified"),
        ("r2", "interrupted during apply"),
    ]
    text = scorecard_text(card)
    assert "rebuild-indexes on cache: applied and verified" in text
    assert "rebuild-indexes on cache: interrupted during apply" in text


# --------------------------------------------------------------------------- the data


def test_recovery_is_not_checked_then_not_restored_then_restored(
    service, clock, redis_runbook
) -> None:
    incident = open_drill(service, redis_runbook)
    card = card_of(service, incident, clock)
    assert card.recovery.checked is False and card.recovery.restored is None
    assert "Data: not checked" in scorecard_text(card)
    assert card.to_dict()["recovery"]["restored"] is None

    examples = ["missing discord:messages:channel:0", "missing discord:messages:channel:1"]
    service.record_drill_check(incident, check_payload(0, missing=6049, examples=examples))
    card = card_of(service, incident, clock)
    assert card.recovery.restored is False
    (cache,) = card.recovery.targets
    assert (cache.expected, cache.found, cache.missing, cache.changed, cache.extra) == (
        6049,
        0,
        6049,
        0,
        0,
    )
    assert cache.service == REDIS_LABEL
    text = scorecard_text(card)
    assert "Data: NOT RESTORED to its fingerprint (checked +0s (real +0s))" in text
    assert "cache: 0 items found, 6,049 expected; 6,049 missing, 0 changed, 0 extra" in text
    assert "    missing discord:messages:channel:0" in text

    clock.advance(minutes=2)
    service.record_drill_check(incident, check_payload(6049))
    card = card_of(service, incident, clock)
    assert card.recovery.restored is True and card.recovery.checks == 2
    text = scorecard_text(card)
    assert "Data: RESTORED to its fingerprint (2 checks; last +20m 00s (real +2m 00s))" in text
    assert "cache: 6,049 items found, 6,049 expected; 0 missing, 0 changed, 0 extra" in text


def test_values_from_the_database_are_shown_literally_in_text(
    service, clock, redis_runbook
) -> None:
    incident = open_drill(service, redis_runbook)
    # an older or imported check may hold raw control characters; markup stays text
    nasty = "changed user:[bold red]x[/] *y* \x1b[2J\u202e"
    service.record_drill_check(incident, check_payload(6049, changed=1, examples=[nasty]))
    failing = "name = '\x1b]8;;http://evil\x07' [link](x)"
    service.record_diagnostic(incident, diagnostic_payload("heartbeat", "fail", failing))
    text = scorecard_text(card_of(service, incident, clock))

    assert "\x1b" not in text and "\u202e" not in text and "\x07" not in text
    assert one_line(nasty) in text
    assert "changed user:[bold red]x[/] *y* \\x1b[2J\\u202e" in text
    assert one_line(failing)[:30] in text
    assert all(len(line) <= 80 for line in text.splitlines())


# --------------------------------------------------------------------------- the rest


def test_checklist_items_not_ticked_are_counted_per_section(service, clock, redis_runbook) -> None:
    incident = open_drill(service, redis_runbook)
    service.check(incident, "assessment.how-much")  # all three of that step
    service.check(
        incident, "containment.stop-the-loss.pause-deploys-of-the-collector-and-the-analytics-jobs"
    )
    service.choose_scenario(incident, "index-rebuild-deleted-everything")
    card = card_of(service, incident, clock)

    left = {s.title: (s.not_ticked, s.total) for s in card.checklist_left}
    assert left["Initial Assessment"] == (3, 6)
    assert left["Containment"] == (2, 3)
    assert left["Scenario: A rebuild deleted the indexes (seed 000)"] == (7, 7)
    # a scenario nobody chose did not apply: it was not skipped
    assert "Scenario: Far too many indexes (seed 001)" not in left
    assert card.to_dict()["skipped"]["items"] == sum(n for n, _ in left.values())
    text = scorecard_text(card)
    assert f"Checklist items not ticked: {sum(n for n, _ in left.values())}" in text
    assert "  Initial Assessment: 3 of 6" in text


def test_setup_figures_speed_and_services_are_stated(service, clock, redis_runbook) -> None:
    incident = open_drill(service, redis_runbook, speed=10)
    card = card_of(service, incident, clock)
    text = scorecard_text(card)
    assert text.startswith("Drill scorecard: The rebuild script deleted every index\n")
    assert "speed ×10" in text.splitlines()[1]
    assert f"cache: {REDIS_LABEL}" in text
    assert "set-up: sandbox 0.3 s, load 9.8 s, fingerprint 1.1 s, fault 0.3 s" in text
    data = card.to_dict()
    assert data["speed"] == 10 and data["drill"] is True
    assert data["setup"]["load_seconds"] == 9.84
    assert json.loads(json.dumps(data)) == data  # JSON-able as it is


def test_a_real_incident_gets_a_response_review_without_the_drill_parts(
    service, clock, loaded
) -> None:
    incident = service.open(loaded, "Orders missing").id
    clock.advance(minutes=70)
    service.acknowledge(incident)
    card = card_of(service, incident, clock)
    assert card.drill is False and card.recovery is None and card.speed == 1
    assert card.response.result == "breached" and card.response.took.drill == 70 * 60
    text = scorecard_text(card)
    assert text.startswith("Response review: Orders missing\n")
    assert "Data:" not in text and "speed" not in text and "real" not in text
    assert scorecard_markdown(card).startswith("## Response review\n")
    json.dumps(card.to_dict())


def test_a_diagnostic_that_writes_is_never_counted_as_skipped(service, clock, loaded) -> None:
    incident = service.open(loaded, "Drill: analytics empty", drill=drill_payload()).id
    card = card_of(service, incident, clock)
    skipped = {d.id for d in card.diagnostics_not_run}
    assert "redis-index-drop" in skipped
    assert not {"db-check", "reindex"} & skipped  # never run as diagnostics: they write
    assert "db-check" not in scorecard_text(card)
