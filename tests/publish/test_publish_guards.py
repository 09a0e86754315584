"""What goes out is what was checked and shown, and a message goes out once, with its
intent in the shared log (attacker D, round 3): every field of a request is checked (the
title too), the preview is the body byte for byte, escaped text is read as its readers
see it, a crash's unknown outcome holds that destination, and a store lost mid-publish
stops the next send. Each test looks at what the stand-in received and what the logs
hold."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from publish_support import (
    HOOK_PATH,
    SP_KEY,
    publishable_runbook,
    running_standin,
)

from playbook.core import events as ev
from playbook.core.events import NewEvent
from playbook.errors import ExitCode
from playbook.service import Service, publishing, team
from playbook.store import StoreUnavailable
from playbook.store.memory import MemoryStore
from playbook.store.outbox import OutboxStore

INITIAL = ("--set", "specific_issues=missing messages in their chat history")


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_standin(tmp_path, monkeypatch) as state:
        yield state


def _open(cli, tmp_path: Path, title: str) -> str:
    folder = tmp_path / "rb"
    folder.mkdir(exist_ok=True)
    opened = cli("open", str(publishable_runbook(folder)), "--title", title, "--json")
    assert opened.exit_code == 0, opened.output
    return json.loads(opened.output)["id"]


def _events(cli, incident: str, kind: str) -> list[dict]:
    data = json.loads(cli("export", incident, "--format", "json").output)
    return [e["payload"] for e in data["events"] if e["type"] == kind]


@pytest.mark.parametrize(
    "title",
    [
        "orders-db 10.0.0.5 down",
        f"orders-db down, key {SP_KEY}",
        "orders-db down postgresql://u:p4ss@db.example.com/x",
        "orders-db.internal down",
    ],
)
def test_the_title_is_checked_as_every_field_sent(cli, standin, tmp_path, title):
    incident = _open(cli, tmp_path, title)
    refused = cli("publish", incident, "initial", "--to", "statuspage,hook", *INITIAL, "--yes")
    assert refused.exit_code == ExitCode.REFUSED, refused.output
    assert "check: passed" not in refused.output
    assert SP_KEY not in refused.output  # blocked, and still never on the screen
    assert standin.requests == []
    assert _events(cli, incident, ev.PUBLISH_INTENDED) == []


def test_the_preview_is_the_body_sent_byte_for_byte(cli, standin, tmp_path):
    incident = _open(cli, tmp_path, "Chat history missing")
    sent = cli("publish", incident, "initial", "--to", "hook", *INITIAL, input="y\n")
    assert sent.exit_code == 0, sent.output
    (received,) = standin.posts(HOOK_PATH)
    body = json.dumps(received.body, indent=2, ensure_ascii=False)
    shown = "\n".join(
        line[4:] for line in sent.output.splitlines() if line.startswith("    ")
    )  # the preview's lines, as the CLI indents them
    assert body in shown
    assert "***" not in body and received.body["title"] == "Chat history missing"


@pytest.mark.parametrize(
    "typed",
    [
        r"errors from 10\.0\.0\.5",
        r"errors from orders\.db\.internal",
        "errors from postgres&#58;//app&#58;Hunter2pw&#64;db.example.com/x",
        "errors from 10.0.**0**.5",
        "errors from 0x0a000005",
        "errors from localhost:5432",
        "errors: PGPASSWORD=Hunter2pw",
        "errors\n    at f (/app/x.js:10:5)\n    at g (/app/y.js:2:1)",
    ],
)
def test_what_readers_would_see_is_checked(cli, standin, tmp_path, typed):
    incident = _open(cli, tmp_path, "Chat history missing")
    refused = cli(
        "publish",
        incident,
        "initial",
        "--to",
        "statuspage,slack,teams,hook",
        "--set",
        f"specific_issues={typed}",
        "--yes",
    )
    assert refused.exit_code == ExitCode.REFUSED, refused.output
    assert standin.requests == []


def _crash_child(home: Path, incident: str) -> subprocess.CompletedProcess[str]:
    script = (
        "import os, signal\n"
        "from playbook.service import publishing\n"
        "from playbook.cli import main\n"
        "publishing.after_send = lambda dest: os.kill(os.getpid(), signal.SIGKILL)\n"
        f"main(['--data-dir', {str(home)!r}, 'publish', {incident!r}, 'initial', '--to', "
        "'hook', '--set', 'specific_issues=slow pages', '--yes'])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


def test_after_a_crash_yes_never_posts_the_message_again(cli, standin, tmp_path):
    incident = _open(cli, tmp_path, "Chat history missing")
    killed = _crash_child(cli.home, incident)
    assert killed.returncode == -9, killed.stderr
    assert len(standin.posts(HOOK_PATH)) == 1

    again = cli("publish", incident, "initial", "--to", "hook", *INITIAL, "--yes")
    assert again.exit_code == ExitCode.REFUSED, again.output
    assert "--resend hook" in again.output
    assert len(standin.posts(HOOK_PATH)) == 1  # exactly one POST
    results = _events(cli, incident, ev.PUBLISH_RESULT)
    assert [r["outcome"] for r in results] == ["unknown"]
    assert len(_events(cli, incident, ev.PUBLISH_INTENDED)) == 1

    declined = cli("publish", incident, "initial", "--to", "hook", *INITIAL, input="y\nn\n")
    assert declined.exit_code == ExitCode.REFUSED and len(standin.posts(HOOK_PATH)) == 1

    decided = cli(
        "publish", incident, "initial", "--to", "hook", *INITIAL, "--yes", "--resend", "hook"
    )
    assert decided.exit_code == 0, decided.output
    assert len(standin.posts(HOOK_PATH)) == 2  # the responder's explicit decision
    then = cli(
        "publish", incident, "progress", "--to", "hook", "--yes", "--set", "estimated_time=2 hours"
    )
    assert then.exit_code == 0, then.output  # settled: the hold is over
    assert len(standin.posts(HOOK_PATH)) == 3


class Shared(MemoryStore):
    """The memory store behind a switch (``down``), or one that goes away when a
    ``publish_intended`` reaches it (``drop_intents``)."""

    server = "shared-test-store"

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.drop_intents = False

    def _check(self, events: Sequence[NewEvent] = ()) -> None:
        if self.drop_intents and any(e.type == ev.PUBLISH_INTENDED for e in events):
            self.down = True
        if self.down:
            raise StoreUnavailable("Cannot reach the test store", "")

    def ping(self) -> None:
        self._check()

    def append(self, incident_id, expected_seq, events):
        self._check(events)
        return super().append(incident_id, expected_seq, events)

    def update(self, incident_id, decide):
        if self.down:
            self._check()
        made: list[NewEvent] = []

        def keep(events):
            made[:] = decide(events)
            self._check(made)
            return made

        return super().update(incident_id, keep)

    def read(self, incident_id):
        self._check()
        return super().read(incident_id)

    def incident_ids(self):
        self._check()
        return super().incident_ids()


def _team(tmp_path: Path, clock) -> tuple[Shared, Service, str]:
    shared = Shared()
    service = Service(OutboxStore(shared, tmp_path / "outbox"), clock=clock, actor="alice")
    folder = tmp_path / "rb"
    folder.mkdir()
    state = service.open(publishable_runbook(folder), "Chat history missing")
    return shared, service, state.id


def _shared_types(shared: Shared, incident: str) -> list[tuple[str, str]]:
    return [
        (e.type, str(e.payload.get("destination", "")))
        for e in MemoryStore.read(shared, incident)
        if e.type in (ev.PUBLISH_INTENDED, ev.PUBLISH_RESULT)
    ]


VALUES = {"specific_issues": "slow pages"}


def test_store_lost_during_a_send_stops_the_next_destination(standin, tmp_path, clock, monkeypatch):
    shared, service, incident = _team(tmp_path, clock)
    made = publishing.draft(service.context, incident, "initial", VALUES, ["hook", "statuspage"])

    def lose(dest: str) -> None:
        shared.down = True

    monkeypatch.setattr(publishing, "after_send", lose)
    with pytest.raises(team.Offline):
        publishing.publish(service.context, made)
    assert len(standin.posts(HOOK_PATH)) == 1
    assert standin.posts("/sp/") == []  # Statuspage got nothing
    assert _shared_types(shared, incident) == [(ev.PUBLISH_INTENDED, "hook")]


def test_an_intent_that_stays_in_the_outbox_is_not_followed_by_a_send(standin, tmp_path, clock):
    shared, service, incident = _team(tmp_path, clock)
    made = publishing.draft(service.context, incident, "initial", VALUES, ["hook"])
    shared.drop_intents = True
    with pytest.raises(team.Offline, match="not in the shared log"):
        publishing.publish(service.context, made)
    assert standin.requests == []
    assert _shared_types(shared, incident) == []
    shared.down = shared.drop_intents = False
    service.context.store.sync()  # the intent and its "not sent" result are shared
    assert _shared_types(shared, incident) == [
        (ev.PUBLISH_INTENDED, "hook"),
        (ev.PUBLISH_RESULT, "hook"),
    ]
    (result,) = (
        e.payload for e in MemoryStore.read(shared, incident) if e.type == ev.PUBLISH_RESULT
    )
    assert result["outcome"] == "failed" and "not sent" in result["detail"]
    again = publishing.draft(service.context, incident, "initial", VALUES, ["hook"])
    (outcome,) = publishing.publish(service.context, again)  # not held: nothing went out
    assert outcome.outcome == "published" and len(standin.posts(HOOK_PATH)) == 1


def test_a_clean_message_passes_every_destinations_fields(standin, tmp_path, clock):
    service = Service(MemoryStore(), clock=clock, actor="alice")
    folder = tmp_path / "rb"
    folder.mkdir()
    state = service.open(publishable_runbook(folder), "Chat history missing")
    made = publishing.draft(
        service.context, state.id, "initial", VALUES, ["statuspage", "slack", "teams", "hook"]
    )
    assert not made.blocked, [(p.destination, p.check.blocking) for p in made.parts]
