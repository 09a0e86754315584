"""`playbook role`, `handover`, `updates` and `timers`, and `status ID` without a kind:
what the responder types and reads, checked against the events the store keeps."""

from __future__ import annotations

import json


def open_incident(cli) -> str:
    result = cli("open", "--title", "Orders missing", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.output)["id"]


def test_role_assign_list_and_handover(cli) -> None:
    incident = open_incident(cli)
    assert cli("role", incident, "commander", "alice").exit_code == 0
    offered = cli("handover", incident, "commander", "bob", "--brief", "replica lag 40s")
    assert offered.exit_code == 0 and "when they accept" in offered.output
    assert cli("--actor", "bob", "handover", incident, "commander", "--accept").exit_code == 0

    listed = cli("role", incident)
    assert listed.exit_code == 0
    line = next(ln for ln in listed.output.splitlines() if ln.startswith("commander"))
    assert "bob" in line and "Incident commander" in line
    held = json.loads(cli("role", incident, "--json").output)
    assert held["roles"] == {"commander": "bob"}
    assert held["handovers"][0]["brief"] == "replica lag 40s"

    timeline = cli("timeline", incident).output
    assert "Handover accepted: bob is Incident commander (commander) now" in timeline
    events = json.loads(cli("timeline", incident, "--json").output)
    assert [e["type"] for e in events][1:] == [
        "role_assigned",
        "handover_offered",
        "handover_accepted",
    ]
    assert events[3]["actor"] == "bob"


def test_an_unknown_role_is_refused_with_the_declared_ones(cli) -> None:
    incident = open_incident(cli)
    result = cli("role", incident, "chief", "alice")
    assert result.exit_code == 2
    assert "No role 'chief'" in result.output and "commander, deputy, scribe" in result.output


def test_updates_snooze_off_on_and_status_say_it(cli) -> None:
    incident = open_incident(cli)
    shown = cli("status", incident)
    assert shown.exit_code == 0 and "external update due" in shown.output
    snoozed = cli("updates", incident, "snooze", "15m", "--reason", "vendor call")
    assert snoozed.exit_code == 0 and "reminder snoozed until" in snoozed.output
    assert cli("updates", incident, "off").exit_code == 2  # a reason is required
    assert cli("updates", incident, "off", "--reason", "no status page").exit_code == 0
    cadence = json.loads(cli("updates", incident, "--json").output)
    assert cadence["external"] == {
        "on": False,
        "next_update_due": None,
        "snoozed_until": cadence["external"]["snoozed_until"],
    }
    assert "off since" in cli("timers", incident).output
    events = json.loads(cli("timeline", incident, "--json").output)
    reasons = [(e["type"], e["payload"].get("reason")) for e in events[1:]]
    assert reasons == [("update_snoozed", "vendor call"), ("updates_switched", "no status page")]


def test_status_and_timers_say_the_reminder_and_the_commander(cli) -> None:
    """An incident opened 80 minutes ago (its events written with a clock set back): the
    hourly update is a quarter hour late, and the response target has passed."""
    from datetime import UTC, datetime, timedelta

    from playbook.core.clock import FakeClock
    from playbook.service import Service
    from playbook.store.sqlite import SQLiteStore

    store = SQLiteStore(cli.home)
    earlier = Service(store, clock=FakeClock(datetime.now(UTC) - timedelta(minutes=80)), actor="a")
    incident = earlier.open(None, "Orders missing").id
    earlier.assign_role(incident, "commander", "alice")
    store.close()

    status = cli("status", incident)
    assert status.exit_code == 0
    assert "! Status update overdue: it was due at" in status.output
    timers = cli("timers", incident)
    assert "Escalate to Technical Lead — commander: alice" in timers.output
    assert "Status update overdue" in timers.output
    cli("updates", incident, "snooze", "30m", "--reason", "vendor call")
    assert "overdue" not in cli("status", incident).output  # quiet while snoozed
