"""The update cadence: reminders at due time and at breach, snooze and switch-off as
events with their reasons, and the timer honouring them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import T0

from playbook.core import events as ev
from playbook.core.timers import next_update_due, reminders
from playbook.errors import UsageError


def test_the_reminder_fires_when_due_and_again_at_breach(service, clock) -> None:
    state = service.open(None, "Orders missing")  # P2: an update every hour
    clock.advance(minutes=59)
    assert reminders(state, clock.now()) == []
    clock.advance(minutes=1)
    [due] = reminders(state, clock.now())
    assert (due.kind, due.update.due) == ("due", T0 + timedelta(hours=1))
    assert due.text(clock.now()) == "Status update due now (at 03:00 UTC)."
    clock.advance(minutes=15)  # a quarter of the hour later
    [late] = reminders(state, clock.now())
    assert late.kind == "breach"
    assert late.text(clock.now()) == "Status update overdue: it was due at 03:00 UTC (15m 00s ago)."


def test_a_snoozed_reminder_stays_quiet_until_the_snooze_ends(service, clock) -> None:
    incident = service.open(None, "Orders missing").id
    clock.advance(hours=1)
    state = service.snooze_updates(incident, "15m", "on a bridge call with the vendor")
    [event] = [e for e in service.store.read(incident) if e.type == ev.UPDATE_SNOOZED]
    assert event.payload["reason"] == "on a bridge call with the vendor"
    assert event.payload["seconds"] == 900
    assert event.payload["until"] == (T0 + timedelta(hours=1, minutes=15)).isoformat()
    clock.advance(minutes=14)
    assert reminders(state, clock.now()) == []
    # the due time itself did not move: the timer still says the update is late
    assert service.timers(state).status_update.state == "breached"
    clock.advance(minutes=1)
    assert [r.kind for r in reminders(state, clock.now())] == ["breach"]


def test_updates_switched_off_then_on_are_events_the_timer_honours(service, clock) -> None:
    incident = service.open(None, "Orders missing").id
    state = service.switch_updates(incident, False, "status page not used for this service")
    clock.advance(hours=3)
    assert service.timers(state).status_update is None
    assert next_update_due(state) is None and reminders(state, clock.now()) == []
    state = service.switch_updates(incident, True, "customers noticed")
    assert service.timers(state).status_update is not None
    payloads = [e.payload for e in service.store.read(incident) if e.type == ev.UPDATES_SWITCHED]
    assert payloads == [
        {"on": False, "audience": "all", "reason": "status page not used for this service"},
        {"on": True, "audience": "all", "reason": "customers noticed"},
    ]


def test_snooze_and_off_need_a_reason(service) -> None:
    incident = service.open(None, "Orders missing").id
    with pytest.raises(UsageError, match="Give a reason"):
        service.snooze_updates(incident, "15m", "  ")
    with pytest.raises(UsageError, match="Give a reason"):
        service.switch_updates(incident, False, "")
    with pytest.raises(UsageError, match="Snooze length"):
        service.snooze_updates(incident, "soon", "x")
    assert [e.type for e in service.store.read(incident)] == [ev.OPENED]


def test_template_variables_come_from_the_incident(service, clock) -> None:
    incident = service.open(None, "Orders missing").id
    service.assign_role(incident, "commander", "alice")
    state = service.enter_phase(incident, "investigation")
    clock.advance(minutes=10)
    variables = service.status_variables(state)
    assert variables["severity"] == "P2" and variables["severity_name"] == "High"
    assert variables["phase"] == "investigation"
    assert variables["roles"] == "commander: alice"
    assert variables["commander"] == "alice"
    # the update being written starts the next wait: an hour from now
    assert variables["next_update_due"] == "2026-03-14T03:10:00Z"
    assert variables["next_update_due_human"] == "03:10 UTC"
