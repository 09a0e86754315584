"""Timers: warn at 75 %, breach past 100 %, name who is next, follow severity changes."""

from __future__ import annotations

from datetime import timedelta

from helpers import T0

from playbook.core.timers import BREACHED, OK, WARNING


def open_p2(service):
    return service.open(None, "Orders missing").id


def test_response_timer_warns_then_breaches_and_names_next_escalation(service, clock) -> None:
    incident = open_p2(service)
    state = service.get(incident).state
    assert service.timers(state).response.state == OK
    clock.advance(minutes=44)
    assert service.timers(state).response.state == OK
    clock.advance(minutes=1)  # 45 of 60 minutes: 75 %
    assert service.timers(state).response.state == WARNING
    clock.advance(minutes=16)
    timer = service.timers(state).response
    assert timer.state == BREACHED
    assert timer.escalate_to == "Technical Lead"
    service.escalate(incident, reason="response target missed")
    state = service.get(incident).state
    assert service.timers(state).response.escalate_to == "Engineering Manager"


def test_acknowledging_stops_the_response_timer(service, clock) -> None:
    incident = open_p2(service)
    clock.advance(minutes=20)
    state = service.acknowledge(incident)
    clock.advance(hours=5)
    timer = service.timers(state).response
    assert timer.stopped and timer.state == OK
    assert timer.elapsed == 20 * 60


def test_escalating_to_p1_retargets_running_timers_from_the_opening(service, clock) -> None:
    incident = open_p2(service)
    clock.advance(minutes=10)
    service.acknowledge(incident)
    clock.advance(hours=2)
    state = service.change_severity(incident, "P1", "user accounts affected")
    timers = service.timers(state)
    assert timers.resolution.target == 4 * 3600  # P1's target, measured from the opening
    assert timers.resolution.remaining == 4 * 3600 - (2 * 3600 + 600)
    assert timers.response.target == 3600 and timers.response.state == OK  # judged at P2
    clock.advance(hours=2)
    assert service.timers(state).resolution.state == BREACHED


def test_a_clock_stepped_back_never_shrinks_elapsed_time(service, clock) -> None:
    incident = open_p2(service)
    clock.advance(minutes=50)
    state = service.note(incident, "still looking")
    clock.set(T0 - timedelta(hours=3))  # NTP step, or a bad manual change
    timers = service.timers(state)
    assert timers.resolution.elapsed == 50 * 60
    later = service.note(incident, "clock went back")
    assert later.last_event_at >= state.last_event_at


def test_phase_window_and_status_update_due(service, clock) -> None:
    incident = open_p2(service)
    state = service.get(incident).state
    timers = service.timers(state)
    assert timers.phase.label == "Phase: Immediate Response"
    assert timers.phase.deadline == T0 + timedelta(hours=1)
    clock.advance(minutes=61)
    assert service.timers(state).phase.state == BREACHED
    assert service.timers(state).status_update.state == BREACHED
    state, _ = service.status(incident, "initial", {"specific_issues": "missing orders"})
    assert service.timers(state).status_update.state == OK
    assert service.timers(state).status_update.started == clock.now()


def test_resolved_incident_has_no_running_timers(service, clock) -> None:
    incident = open_p2(service)
    service.acknowledge(incident)
    clock.advance(hours=9)
    state = service.resolve(incident)
    timers = service.timers(state)
    assert timers.resolution.stopped and timers.resolution.state == BREACHED
    assert timers.phase is None and timers.status_update is None
    assert timers.alerts() == []


def test_resolving_without_acknowledging_stops_the_response_timer(service, clock) -> None:
    incident = open_p2(service)
    clock.advance(minutes=20)
    state = service.resolve(incident, "false alarm")
    clock.advance(hours=3)  # long past the 1 h response target
    timers = service.timers(state)
    assert timers.response.stopped and timers.response.state == OK
    assert timers.response.elapsed == 20 * 60
    assert timers.alerts() == []


def test_a_drill_at_speed_ten_breaches_the_hour_to_respond_in_six_real_minutes(
    service, clock
) -> None:
    incident = service.open(None, "Drill: orders missing", drill={"title": "t", "speed": 10}).id
    assert incident.startswith("drill-")
    opened = clock.now()
    clock.advance(minutes=4)  # 40 drill minutes: under 45, still ok
    state = service.get(incident).state
    timer = service.timers(state).response
    assert (timer.state, timer.elapsed, timer.target) == (OK, 40 * 60, 3600)
    assert timer.deadline == opened + timedelta(minutes=6)  # the real moment it falls due
    clock.advance(minutes=1)  # 50 drill minutes
    assert service.timers(state).response.state == WARNING
    clock.advance(minutes=2)  # 70 drill minutes
    timer = service.timers(state).response
    assert timer.state == BREACHED and timer.escalate_to == "Technical Lead"
    state = service.acknowledge(incident)
    assert state.acknowledged_at == opened + timedelta(minutes=7)  # events keep real time
    assert service.timers(state).response.elapsed == 70 * 60


def test_a_real_incident_runs_at_real_time(service, clock) -> None:
    state = service.get(open_p2(service)).state
    clock.advance(minutes=7)
    assert state.drill is None and service.timers(state).response.elapsed == 7 * 60
