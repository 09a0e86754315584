"""A request that went out and got no answer may have arrived: it is "unknown" and held,
never "failed" and sent again (attacker round H, breaks 1 and 2). Each test counts what
the stand-in received and reads the results recorded in the log."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from publish_support import (
    HOOK_PATH,
    publishable_runbook,
    running_standin,
)

from playbook.core import events as ev
from playbook.publish import http
from playbook.publish.base import PublishRefused
from playbook.service import Service, publishing
from playbook.store.sqlite import SQLiteStore

VALUES = {"specific_issues": "slow pages"}


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_standin(tmp_path, monkeypatch) as state:
        yield state


def _incident(tmp_path: Path, clock) -> tuple[Service, str]:
    service = Service(SQLiteStore(tmp_path / "data"), clock=clock, actor="alice")
    folder = tmp_path / "rb"
    folder.mkdir()
    return service, service.open(publishable_runbook(folder), "Chat history missing").id


def _results(service: Service, incident: str) -> list[dict]:
    return [e.payload for e in service.get(incident).events if e.type == ev.PUBLISH_RESULT]


def test_a_webhook_whose_answer_is_lost_is_unknown_and_the_next_message_is_held(
    standin, tmp_path, clock
) -> None:
    service, incident = _incident(tmp_path, clock)
    standin.drop_answers = 1
    made = publishing.draft(service.context, incident, "initial", VALUES, ["hook"])
    (outcome,) = publishing.publish(service.context, made)
    assert outcome.outcome == "unknown", outcome
    assert "no answer came back" in outcome.detail
    assert len(standin.posts(HOOK_PATH)) == 1  # it did arrive
    (result,) = _results(service, incident)
    assert result["outcome"] == "unknown"
    state = service.get(incident).state
    assert [p.destination for p in publishing.open_questions(state)] == ["hook"]

    again = publishing.draft(service.context, incident, "initial", VALUES, ["hook"])
    with pytest.raises(PublishRefused):
        publishing.publish(service.context, again)
    assert len(standin.posts(HOOK_PATH)) == 1  # the old code sent it a second time


def test_a_statuspage_create_whose_answer_is_lost_is_found_and_then_updated(
    standin, tmp_path, clock
) -> None:
    service, incident = _incident(tmp_path, clock)
    standin.drop_answers = 1
    made = publishing.draft(service.context, incident, "initial", VALUES, ["statuspage"])
    (outcome,) = publishing.publish(service.context, made)
    (created,) = standin.incidents
    assert outcome.outcome == "reconciled" and outcome.external_id == created, outcome
    assert len([r for r in standin.posts("/sp/") if r.method == "POST"]) == 1

    later = publishing.draft(
        service.context, incident, "progress", {"estimated_time": "2 hours"}, ["statuspage"]
    )
    (update,) = publishing.publish(service.context, later)
    assert update.outcome == "published" and update.external_id == created
    sent = standin.posts("/sp/")
    assert [r.method for r in sent] == ["POST", "PATCH"]  # the old code: POST, POST
    assert sent[1].path.endswith(f"/incidents/{created}")


def test_an_answer_that_trickles_ends_at_the_timeout_as_unknown(
    standin, tmp_path, clock, monkeypatch
) -> None:
    monkeypatch.setattr(http, "TIMEOUT", 1.0)
    standin.dribble = threading.Event()
    service, incident = _incident(tmp_path, clock)
    made = publishing.draft(service.context, incident, "initial", VALUES, ["hook"])
    (outcome,) = publishing.publish(service.context, made)
    assert outcome.outcome == "unknown", outcome
    assert "no whole answer" in outcome.detail and "1 s" in outcome.detail
    assert len(standin.posts(HOOK_PATH)) == 1
