"""Roles, recorded: assignment and handover are events, and the timeline, the timers'
escalation notice and both exports show who holds what."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from playbook.core import events as ev
from playbook.core.timers import escalation_notice
from playbook.errors import Conflict, UsageError


def test_assign_offer_and_accept_are_events_and_move_the_role(service, clock) -> None:
    incident = service.open(None, "Orders missing").id
    service.assign_role(incident, "commander", "alice")
    service.assign_role(incident, "scribe", "carol")
    clock.advance(minutes=40)
    state = service.offer_handover(incident, "commander", "bob", "replica is read-only")
    assert state.roles["commander"] == "alice"  # not until bob accepts
    service.actor = "bob"
    state = service.accept_handover(incident, "commander")

    events = service.store.read(incident)
    kinds = [(e.type, e.actor, e.payload) for e in events[1:]]
    assert kinds[0] == (
        ev.ROLE_ASSIGNED,
        "alice",
        {"role": "commander", "person": "alice", "by": "alice"},
    )
    assert kinds[2][0] == ev.HANDOVER_OFFERED
    assert kinds[2][2] == {
        "role": "commander",
        "from": "alice",
        "to": "bob",
        "brief": "replica is read-only",
    }
    assert kinds[3] == (ev.HANDOVER_ACCEPTED, "bob", {"role": "commander", "person": "bob"})

    assert state.roles == {"commander": "bob", "scribe": "carol"}
    [handover] = state.handovers
    assert handover.accepted_at == handover.at  # the fake clock did not move in between
    assert [c.how for c in state.role_history] == ["assigned", "assigned", "handover"]


def test_an_undeclared_role_and_an_unoffered_acceptance_are_refused(service) -> None:
    incident = service.open(None, "Orders missing").id
    with pytest.raises(UsageError, match="No role 'chief'"):
        service.assign_role(incident, "chief", "alice")
    with pytest.raises(Conflict, match="Nobody offered commander to alice"):
        service.accept_handover(incident, "commander")
    assert [e.type for e in service.store.read(incident)] == [ev.OPENED]


def test_roles_show_in_the_timeline_and_both_exports(service) -> None:
    incident = service.open(None, "Orders missing").id
    service.assign_role(incident, "commander", "alice")
    service.offer_handover(incident, "commander", "bob")
    service.actor = "bob"
    service.accept_handover(incident, "commander")

    markdown = service.export(incident, "markdown")
    roles = markdown[markdown.index("## Roles") : markdown.index("## Timeline")]
    assert "| Incident commander (commander) | bob |" in roles
    assert "alice → bob, accepted" in roles
    timeline = markdown[markdown.index("## Timeline") :]
    assert "Role Incident commander (commander): alice (assigned by alice)" in timeline
    assert "Handover of Incident commander (commander) offered by alice to bob" in timeline
    assert "Handover accepted: bob is Incident commander (commander) now" in timeline

    document = json.loads(service.export(incident, "json"))
    assert document["roles"]["holders"] == {"commander": "bob"}
    assert document["roles"]["handovers"][0]["from"] == "alice"
    assert document["roles"]["handovers"][0]["accepted_at"] is not None


def test_the_escalation_notice_names_the_commander(service, clock) -> None:
    incident = service.open(None, "Orders missing").id
    state = service.assign_role(incident, "commander", "alice")
    clock.advance(hours=1, minutes=1)  # P2's response target breached
    timer = service.timers(state).response
    assert timer.escalate_to == "Technical Lead"
    assert escalation_notice(state, timer.escalate_to) == (
        "Escalate to Technical Lead — commander: alice"
    )
    assert clock.now() - state.opened_at == timedelta(hours=1, minutes=1)
