"""Use cases on the in-memory store: what the CLI and the app both call."""

from __future__ import annotations

import pytest

from playbook.core import events as ev
from playbook.core.state import fold
from playbook.errors import Conflict, NotFound, UsageError


def test_open_records_playbook_snapshot_and_triggers(service, loaded) -> None:
    state = service.open(
        loaded, "Orders missing", triggers=["backup-verification-failures", "a pager alert"]
    )
    assert state.severity == "P2" and state.status == "open"
    assert state.triggers == ["Automated Alerts: Backup verification failures", "a pager alert"]
    assert state.playbook_sha256 == loaded.sha256
    assert len(state.checklist) == len(loaded.playbook.checklist())
    assert state.levels["P2"].response == 3600 and state.levels["P2"].resolution == 8 * 3600


def test_check_a_step_ticks_its_items_and_enters_its_phase(service) -> None:
    incident = service.open(None, "x").id
    state = service.check(incident, "investigation.detailed-data-analysis")
    assert state.phase == "investigation"
    assert sum(1 for r in state.done if r.startswith("investigation.detailed-data-analysis.")) == 5
    events = service.get(incident).events
    assert [e.type for e in events[1:3]] == [ev.PHASE_ENTERED, ev.ITEM_CHECKED]
    state = service.uncheck(incident, "verify-backup-integrity")
    assert "investigation.detailed-data-analysis.verify-backup-integrity" not in state.done


def test_ambiguous_and_unknown_items_are_explained(service) -> None:
    incident = service.open(None, "x").id
    with pytest.raises(UsageError, match="more than one"):
        service.check(incident, "identify-contributing-factors")  # in two sections
    with pytest.raises(NotFound, match="Did you mean"):
        service.check(incident, "immediate-response.containment.preserve-evidenc")


def test_state_rules(service) -> None:
    incident = service.open(None, "x").id
    service.acknowledge(incident)
    with pytest.raises(Conflict, match="already acknowledged"):
        service.acknowledge(incident)
    with pytest.raises(Conflict, match="not resolved"):
        service.close(incident)
    with pytest.raises(UsageError, match="reason"):
        service.change_severity(incident, "P1", " ")
    with pytest.raises(UsageError, match="Unknown severity"):
        service.change_severity(incident, "P7", "why not")
    service.resolve(incident)
    with pytest.raises(Conflict, match="resolved"):
        service.check(incident, "assemble-response-team")
    service.close(incident)
    state = service.note(incident, "review: add an alert on index counts")
    assert state.notes[-1].text.startswith("review")


def test_incident_ids_resolve_from_a_unique_part(service) -> None:
    first = service.open(None, "one").id
    assert service.resolve_id(first[-4:]) == first
    with pytest.raises(NotFound):
        service.resolve_id("zzzz-not-there")


def test_escalation_walks_the_path_then_needs_a_name(service) -> None:
    incident = service.open(None, "x").id
    for who in ("Technical Lead", "Engineering Manager", "CTO"):
        assert service.escalate(incident).escalations[-1].to == who
    with pytest.raises(Conflict, match="Name someone"):
        service.escalate(incident)
    assert service.escalate(incident, to="CEO").escalations[-1].to == "CEO"


def test_state_is_a_fold_of_the_events(service) -> None:
    incident = service.open(None, "x").id
    service.acknowledge(incident)
    service.check(incident, "assemble-response-team")
    service.note(incident, "n")
    found = service.get(incident)
    assert fold(found.events) == found.state
    assert [e.seq for e in found.events] == list(range(1, len(found.events) + 1))
    assert all(e.actor == "alice" for e in found.events)


def test_post_incident_work_stays_open_after_resolving(service) -> None:
    incident = service.open(None, "x").id
    service.resolve(incident, "fixed")
    state = service.check(incident, "immediate-follow-up.monitoring")
    assert sum(1 for r in state.done if r.startswith("immediate-follow-up.monitoring.")) == 4
    with pytest.raises(Conflict, match="only post-incident items"):
        service.check(incident, "immediate-response.containment")
    service.uncheck(incident, "immediate-follow-up.monitoring")
    service.close(incident)
    with pytest.raises(Conflict, match="closed"):
        service.check(incident, "immediate-follow-up.monitoring")


def test_rename_records_old_and_new_title_until_the_incident_is_closed(service, clock) -> None:
    from playbook.render.export import describe

    incident = service.open(None, "Orders misisng").id
    clock.advance(minutes=5)
    state = service.rename(incident, "  Orders missing since 02:10 ")
    assert state.title == "Orders missing since 02:10"
    event = service.get(incident).events[-1]
    assert event.type == ev.RENAMED
    assert event.payload == {"from": "Orders misisng", "to": "Orders missing since 02:10"}
    assert describe(event) == "Renamed from “Orders misisng” to “Orders missing since 02:10”"
    assert [(r.old, r.new, r.actor) for r in state.renames] == [
        ("Orders misisng", "Orders missing since 02:10", "alice")
    ]
    with pytest.raises(Conflict, match="already has that title"):
        service.rename(incident, "Orders missing since 02:10")
    with pytest.raises(UsageError, match="needs some text"):
        service.rename(incident, "   ")
    service.resolve(incident, "restored")
    assert service.rename(incident, "Orders lost at 02:10").title == "Orders lost at 02:10"
    service.close(incident)
    with pytest.raises(Conflict, match="is closed"):
        service.rename(incident, "too late")
    assert fold(service.get(incident).events).title == "Orders lost at 02:10"


def test_every_event_type_is_described_in_words(service, loaded) -> None:
    """No timeline (CLI, app, export) shows a raw ``type {json}`` line for our own events:
    an incident with one event of every type, each as the service records it."""
    from drill_support import drill_payload

    from playbook.render.export import describe

    incident = service.open(loaded, "x", drill=drill_payload()).id
    service.acknowledge(incident)
    service.change_severity(incident, "P1", "accounts hit")
    service.check(incident, "investigation.detailed-data-analysis.verify-backup-integrity")
    service.uncheck(incident, "verify-backup-integrity")
    service.note(incident, "a note")
    service.status(incident, "initial", {"specific_issues": "orders"})
    service.escalate(incident)
    service.choose_scenario(incident, "data-loss")
    service.record_diagnostic(
        incident,
        {
            "diagnostic": "index-drop",
            "kind": "redis",
            "target": "cache",
            "params": {},
            "started": "2026-03-14T02:01:00.000000Z",
            "ended": "2026-03-14T02:01:01.000000Z",
            "verdict": "pass",
            "message": "",
            "checks": [],
            "metrics": {},
            "rows": [],
            "rows_total": 0,
            "partial": False,
            "error": "",
            "file": None,
            "sha256": None,
        },
    )
    service.record_action_stage(
        incident,
        {"run": "r1", "action": "rebuild", "target": "cache", "stage": "apply", "outcome": "done"},
    )
    service.record_drill_check(
        incident,
        {
            "restored": False,
            "targets": {
                "cache": {"restored": False, "missing": 1200, "changed": 3, "extra": 0},
                "app-db": {"restored": True, "missing": 0, "changed": 0, "extra": 0},
            },
        },
    )
    # Issue 17: a publication's two events, as the publish flow records them.
    from playbook.service.context import append_one

    intent = {"destination": "statuspage", "key": "k1", "digest": "d"}
    intent |= {"template": "initial", "status": "investigating"}
    append_one(service.context, incident, ev.PUBLISH_INTENDED, intent)
    result = {"outcome": "published", "external_id": "p1", "url": None, "http_status": 201}
    append_one(service.context, incident, ev.PUBLISH_RESULT, {**intent, **result, "text": "t"})
    service.rename(incident, "y")
    service.assign_role(incident, "commander", "alice")
    service.offer_handover(incident, "commander", "bob")
    service.accept_handover(incident, "commander", "bob")
    service.snooze_updates(incident, "15m", "on a call with the vendor")
    service.switch_updates(incident, False, "status page is down")
    from playbook.core.loader import LoadedPlaybook
    from playbook.service import upgrade

    edited = LoadedPlaybook(loaded.playbook, loaded.path, "0" * 64)  # as if the file changed
    upgrade.upgrade(
        service.context, upgrade.UpgradePlan(service.get(incident).state, edited, {}, [])
    )
    service.resolve(incident, "done")
    service.close(incident)
    from playbook.service import postmortem  # issue 15 §6: recorded after closing too

    postmortem.record_impact(service.context, incident, {"users": "1200"})
    postmortem.add_followup(service.context, incident, "Alert on drops", "bob", "2026-12-05")
    postmortem.followup_done(service.context, incident, 1)
    postmortem.pin(service.context, incident, 2)
    postmortem.note_retrospective(service.context, incident, [("lucky", "low traffic")])
    found = service.get(incident)
    assert {e.type for e in found.events} == set(ev.EVENT_TYPES)  # every type is here
    lines = {e.type: describe(e, found.state) for e in found.events}
    for kind, text in lines.items():
        assert not text.startswith(kind + " "), text
    assert lines[ev.DRILL_CHECKED] == (
        "Drill data check: the data differs from its fingerprint "
        "(cache: 1,200 missing, 3 changed; app-db as before)"
    )
    assert lines[ev.RENAMED] == "Renamed from “x” to “y”"


def test_a_status_message_written_in_a_drill_says_drill_first(service, loaded) -> None:
    from drill_support import drill_payload

    from playbook.service import DRILL_MARK

    values = {"specific_issues": "missing orders"}
    drill = service.open(loaded, "rehearsal", drill=drill_payload()).id
    preview = service.preview_status(drill, "initial", values)
    state, text = service.status(drill, "initial", values)
    assert DRILL_MARK == "[DRILL — not a real incident]"
    assert text == preview and text.startswith(DRILL_MARK + "\n[SERVICE ISSUE] ")
    assert state.messages[-1].text == text  # recorded as shown
    assert service.get(drill).events[-1].payload["text"].startswith(DRILL_MARK + "\n")
    real = service.open(loaded, "real").id
    _state, text = service.status(real, "initial", values)
    assert text.startswith("[SERVICE ISSUE] ") and "DRILL" not in text
