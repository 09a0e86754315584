"""Reconciling a crashed Statuspage send reads the whole incident list, page by page,
and gives up honestly (never re-sending) when the list does not end. Each test looks at
what the stand-in received and at the publication's result in the log."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from publish_support import (
    publishable_runbook,
    running_standin,
)

from playbook.core import events as ev
from playbook.publish import statuspage
from playbook.publish.base import PublishRefused
from playbook.service import Service, publishing
from playbook.store.sqlite import SQLiteStore

VALUES = {"specific_issues": "slow pages"}


class Crash(BaseException):
    """The process dying between the send and its result (nothing catches it)."""


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_standin(tmp_path, monkeypatch) as state:
        yield state


def _crashed_send(tmp_path: Path, clock, monkeypatch) -> tuple[Service, str]:
    """An incident whose first Statuspage post went out and whose result never landed."""
    service = Service(SQLiteStore(tmp_path / "data"), clock=clock, actor="alice")
    folder = tmp_path / "rb"
    folder.mkdir()
    incident = service.open(publishable_runbook(folder), "Chat history missing").id
    made = publishing.draft(service.context, incident, "initial", VALUES, ["statuspage"])

    def die(_dest: str) -> None:
        raise Crash

    monkeypatch.setattr(publishing, "after_send", die)
    with pytest.raises(Crash):
        publishing.publish(service.context, made)
    monkeypatch.setattr(publishing, "after_send", None)
    return service, incident


def _pages_read(standin) -> list[int]:
    return [
        int(parse_qs(urlsplit(r.path).query)["page"][0])
        for r in standin.requests
        if r.method == "GET"
    ]


def _results(service: Service, incident: str) -> list[dict]:
    return [e.payload for e in service.get(incident).events if e.type == ev.PUBLISH_RESULT]


def test_the_crashed_post_is_found_on_page_three(standin, tmp_path, clock, monkeypatch):
    service, incident = _crashed_send(tmp_path, clock, monkeypatch)
    (ours,) = standin.incidents
    # 250 incidents opened on the page since (by other tools, other teams): the list is
    # newest first, so ours is the 251st, on page 3 of 100.
    for k in range(250):
        standin.incidents[f"later{k:04d}"] = {"id": f"later{k:04d}", "metadata": {}}

    (outcome,) = publishing.resume(service.context, incident)

    assert outcome.outcome == "reconciled" and outcome.external_id == ours
    assert len(standin.posts("/sp/")) == 1  # exactly one POST: not posted again
    assert _pages_read(standin) == [1, 2, 3]
    assert all("limit=100" in r.path for r in standin.requests if r.method == "GET")
    (result,) = _results(service, incident)
    assert result["outcome"] == "reconciled" and result["external_id"] == ours


def test_a_list_that_never_ends_is_not_confirmed_and_not_resent(
    standin, tmp_path, clock, monkeypatch
):
    service, incident = _crashed_send(tmp_path, clock, monkeypatch)
    standin.endless_list = True

    (outcome,) = publishing.resume(service.context, incident)

    assert outcome.outcome == "unknown"
    assert "could not confirm" in outcome.detail and "Not re-sending" in outcome.detail
    assert _pages_read(standin) == list(range(1, statuspage.MAX_PAGES + 1))  # bounded
    assert len(standin.posts("/sp/")) == 1
    (result,) = _results(service, incident)
    assert result["outcome"] == "unknown"
    # The next message is held for the responder's decision, not sent on the guess.
    again = publishing.draft(service.context, incident, "initial", VALUES, ["statuspage"])
    assert "outcome is unknown" in again.parts[0].unsettled
    with pytest.raises(PublishRefused, match="may already be out"):
        publishing.publish(service.context, again)
    assert len(standin.posts("/sp/")) == 1


def test_a_server_repeating_page_one_stops_at_the_repeat(standin, tmp_path, clock, monkeypatch):
    service, incident = _crashed_send(tmp_path, clock, monkeypatch)
    # Page 1 holds other incidents, and the server answers it whatever `page` asks.
    for k in range(100):
        standin.incidents[f"later{k:04d}"] = {"id": f"later{k:04d}", "metadata": {}}
    standin.ignores_page = True

    (outcome,) = publishing.resume(service.context, incident)

    assert outcome.outcome == "unknown" and "repeats an earlier page" in outcome.detail
    assert _pages_read(standin) == [1, 2]
    assert len(standin.posts("/sp/")) == 1
