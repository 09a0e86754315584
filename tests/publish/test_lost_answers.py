"""A request that went out and got no answer may have arrived: it is "unknown" and held,
never "failed" and sent again (attacker round H, breaks 1 and 2). Each test counts what
the stand-in received and reads the results recorded in the log."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from publish_support import (
    HOOK_PATH,
    SP_KEY,
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


@pytest.mark.parametrize(
    "odd",
    [(200, b"<html>ok</html>"), (200, b""), (204, b""), (201, b'{"name": "no id here"}')],
)
def test_a_statuspage_create_taken_without_an_id_is_found_not_made_twice(
    standin, tmp_path, clock, odd
) -> None:
    """Attacker round I, break 1: a create the page took (2xx) whose answer names no
    incident was recorded as published with no id, so the next message made a second
    incident. It is looked up by its key now, and the next message updates it."""
    service, incident = _incident(tmp_path, clock)
    standin.odd_answers = [odd]
    made = publishing.draft(service.context, incident, "initial", VALUES, ["statuspage"])
    (outcome,) = publishing.publish(service.context, made)
    (created,) = standin.incidents
    assert outcome.outcome == "reconciled" and outcome.external_id == created, outcome

    later = publishing.draft(
        service.context, incident, "progress", {"estimated_time": "2 hours"}, ["statuspage"]
    )
    publishing.publish(service.context, later)
    assert [r.method for r in standin.posts("/sp/")] == ["POST", "PATCH"]


def test_an_openstatus_create_taken_without_an_id_is_held(standin, tmp_path, clock) -> None:
    service, incident = _incident(tmp_path, clock)
    standin.odd_answers = [(202, b"")]
    made = publishing.draft(service.context, incident, "initial", VALUES, ["openstatus"])
    (outcome,) = publishing.publish(service.context, made)
    assert outcome.outcome == "unknown" and "does not say which record" in outcome.detail
    again = publishing.draft(service.context, incident, "initial", VALUES, ["openstatus"])
    with pytest.raises(PublishRefused):
        publishing.publish(service.context, again)
    assert len(standin.posts("/os/")) == 1  # the old code: failed, then a second report


@pytest.mark.parametrize(
    ("destination", "odd"), [("slack", (200, b'{"ok": true}')), ("teams", (204, b""))]
)
def test_a_chat_that_answered_2xx_took_the_message(
    standin, tmp_path, clock, destination, odd
) -> None:
    """Attacker round I, break 2: a 2xx was recorded as failed (not sent), so the message
    stood ready to be sent again without --resend."""
    service, incident = _incident(tmp_path, clock)
    standin.odd_answers = [odd]
    made = publishing.draft(service.context, incident, "initial", VALUES, [destination])
    (outcome,) = publishing.publish(service.context, made)
    assert outcome.outcome == "published", outcome
    (result,) = _results(service, incident)
    assert result["outcome"] == "published" and result["http_status"] == odd[0]


def test_a_rate_limit_past_the_budget_is_not_waited_out(
    standin, tmp_path, clock, monkeypatch
) -> None:
    """Attacker round I, break 3: Retry-After 60, four tries: 90 s a destination."""
    monkeypatch.setattr(http, "BUDGET", 5.0)
    standin.rate_limited = "9"
    service, incident = _incident(tmp_path, clock)
    made = publishing.draft(service.context, incident, "initial", VALUES, ["hook"])
    (outcome,) = publishing.publish(service.context, made)
    assert outcome.outcome == "failed" and "still rate-limited" in outcome.detail
    assert len(standin.posts(HOOK_PATH)) == 1  # asked once, then no 9 s wait past 5 s
    assert 9.0 not in standin.waits


TOKEN = "WhHeaderMarker4242"


def _echoed(
    standin, tmp_path: Path, clock, table: str, answer: str, status: int = 400
) -> tuple[publishing.Outcome, str, Service, str]:
    """Publish to ``[publish.echo]`` (``table`` is the rest of its TOML, appended to the
    responder's config) whose destination answers ``status`` with ``answer``: the
    outcome, the incident's events as JSON, the service and the incident."""
    config = tmp_path / "config" / "playbook" / "playbook.toml"
    config.write_text(config.read_text() + "\n[publish.echo]\n" + table)
    service, incident = _incident(tmp_path, clock)
    standin.odd_answers = [(status, answer.encode())]
    made = publishing.draft(service.context, incident, "initial", VALUES, ["echo"])
    (outcome,) = publishing.publish(service.context, made)
    recorded = json.dumps([e.payload for e in service.get(incident).events])
    return outcome, recorded, service, incident


@pytest.mark.parametrize(
    "echoed",
    [
        f"Bearer{TOKEN}",  # round I: the token alone, without the scheme's space
        f"BEARER{TOKEN.upper()}",  # round J: a server that normalises case
        TOKEN.lower(),
        TOKEN.encode().hex(),  # round J: as hex
    ],
)
def test_a_token_typed_in_a_header_is_masked_when_the_server_echoes_it_alone(
    standin, tmp_path, clock, echoed
) -> None:
    """Attacker round I, break 4: `Bearer TOKEN` typed literally was masked only whole;
    a server echoing `BearerTOKEN` put the token in the log and the exports. Round J:
    upper-cased or as hex, too."""
    table = (
        f'type = "webhook"\nurl = "{standin.base}{HOOK_PATH}"\n'
        f'headers = {{ Authorization = "Bearer {TOKEN}" }}\n'
    )
    outcome, recorded, service, incident = _echoed(
        standin, tmp_path, clock, table, f'{{"error": "bad credential {echoed}"}}'
    )
    assert outcome.outcome == "failed" and "bad credential" in outcome.detail
    assert echoed not in outcome.detail
    assert "bad credential" in recorded and echoed not in recorded
    assert echoed not in service.export(incident, "markdown")


def test_a_credential_echoed_across_the_cut_of_an_error_is_masked_whole(
    standin, tmp_path, clock
) -> None:
    """Attacker round K: the answer was cut at 300 characters before it was scrubbed, so
    a token echoed across the cut showed all but its last character, for good."""
    table = (
        f'type = "webhook"\nurl = "{standin.base}{HOOK_PATH}"\n'
        f'headers = {{ X-Api-Key = "{TOKEN}" }}\n'
    )
    echo = "E" * (300 - len(TOKEN) + 1) + TOKEN
    outcome, recorded, _service, _incident_id = _echoed(standin, tmp_path, clock, table, echo)
    assert outcome.outcome == "failed"
    assert "EEEE" in recorded  # the answer is there, cut
    assert TOKEN[:-1] not in recorded and TOKEN[:-1] not in outcome.detail


def test_every_long_segment_of_a_webhook_url_is_a_secret(standin, tmp_path, clock) -> None:
    """Attacker round K: in a classic Teams URL the secret is the segment before the
    owner's id; only the last segment was registered."""
    secret = "TeamsSecretHash9876abcd"
    owner = "5f0e2c1a-8b7d-4e6f-9a3b-2c1d0e9f8a7b"
    table = (
        f'type = "teams"\nurl = "{standin.base}/webhook/g1@t1/IncomingWebhook/{secret}/{owner}"\n'
    )
    outcome, recorded, service, incident = _echoed(
        standin, tmp_path, clock, table, f'{{"error": "Webhook {secret} not found"}}'
    )
    assert outcome.outcome == "failed" and "not found" in outcome.detail
    assert "not found" in recorded and secret not in recorded
    assert secret not in service.export(incident, "json")


def test_an_id_or_link_that_echoes_the_api_key_is_masked_in_the_live_result(
    standin, tmp_path, clock
) -> None:
    """Attacker round L: a Statuspage answering with the API key as the incident's id
    and link showed it in the result line and --json, while the log masked it."""
    service, incident = _incident(tmp_path, clock)
    body = json.dumps({"id": SP_KEY, "shortlink": f"https://stspg.io/{SP_KEY}"})
    standin.odd_answers = [(201, body.encode())]
    made = publishing.draft(service.context, incident, "initial", VALUES, ["statuspage"])
    (outcome,) = publishing.publish(service.context, made)
    assert outcome.outcome == "published"
    assert SP_KEY not in f"{outcome.external_id} {outcome.url}"


@pytest.mark.parametrize(
    ("url_tail", "marker"),
    [
        ("/hook?b=Val%2BSecret%2F99xx", "Val+Secret/99xx"),  # a query value, decoded
        ("/hook/Seg%41bcdefghijk", "SegAbcdefghijk"),  # a path segment, decoded
        ("/h;SemiSecretValue12/x", "SemiSecretValue12"),  # a path parameter
        ("/hook#FragSecretValue88", "FragSecretValue88"),  # the fragment
    ],
)
def test_every_part_of_a_webhook_url_is_masked_as_a_server_echoes_it(
    standin, tmp_path, clock, url_tail, marker
) -> None:
    """Attacker round L: a server echoes a URL's parts decoded, or its parameters,
    password and fragment, which were never registered."""
    table = f'type = "webhook"\nurl = "{standin.base}{url_tail}"\n'
    outcome, recorded, _service, _incident_id = _echoed(
        standin, tmp_path, clock, table, f'{{"error": "no such hook: {marker}"}}'
    )
    assert outcome.outcome == "failed" and "no such hook" in outcome.detail
    assert "no such hook" in recorded
    assert marker not in recorded and marker not in outcome.detail
