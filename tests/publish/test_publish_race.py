"""Two responders on one shared log publish the first update of an incident at the same
moment: Statuspage gets one incident, not two. Checked where it lands: the POSTs the
stand-in received and the intents and results in the log."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from publish_support import (
    publishable_runbook,
    running_standin,
)

from playbook.core import events as ev
from playbook.publish.base import PublishRefused
from playbook.service import Service, publishing
from playbook.store.sqlite import SQLiteStore

VALUES = {"specific_issues": "slow pages"}


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_standin(tmp_path, monkeypatch) as state:
        state.post_gate = threading.Event()
        yield state


def _two_responders(tmp_path: Path, clock) -> tuple[Service, Service, str]:
    """Alice and Bob, each with their own connection to one SQLite log."""
    alice = Service(SQLiteStore(tmp_path / "shared"), clock=clock, actor="alice")
    bob = Service(SQLiteStore(tmp_path / "shared"), clock=clock, actor="bob")
    folder = tmp_path / "rb"
    folder.mkdir()
    incident = alice.open(publishable_runbook(folder), "Chat history missing").id
    return alice, bob, incident


def _wait(condition, what: str, timeout: float = 20.0) -> None:
    done = threading.Event()
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        done.wait(0.01)  # polling a condition, not sleeping for one
    raise AssertionError(f"timed out waiting for {what}")


def test_two_first_posts_at_once_make_one_statuspage_incident(
    standin, tmp_path, clock, monkeypatch
):
    alice, bob, incident = _two_responders(tmp_path, clock)
    drafts = {
        s.context.actor: publishing.draft(s.context, incident, "initial", VALUES, ["statuspage"])
        for s in (alice, bob)
    }
    assert all(d.parts[0].external_id is None for d in drafts.values())  # both would POST

    # Both pass every check before either records its intent: the gate before each
    # intent is where they meet.
    barrier = threading.Barrier(2, timeout=20)
    gate = publishing._require_online

    def together(ctx) -> None:
        barrier.wait()
        gate(ctx)

    monkeypatch.setattr(publishing, "_require_online", together)
    outcomes: dict[str, object] = {}

    def run(service: Service) -> None:
        actor = service.context.actor
        try:
            outcomes[actor] = publishing.publish(service.context, drafts[actor])
        except Exception as exc:  # reported by the assertions below
            outcomes[actor] = exc

    threads = [threading.Thread(target=run, args=(s,)) for s in (alice, bob)]
    for t in threads:
        t.start()
    # The first POST is held at Statuspage (in flight) until the other responder has
    # decided; two POSTs arriving means both decided to create.
    _wait(lambda: outcomes or len(standin.posts("/sp/")) == 2, "one responder to decide")
    standin.post_gate.set()
    for t in threads:
        t.join(30)

    assert standin.errors == []
    assert [r.method for r in standin.posts("/sp/")] == ["POST"]  # exactly one
    assert len(standin.incidents) == 1
    (published,) = (
        o for o in outcomes.values() if isinstance(o, list) and o[0].outcome == "published"
    )
    (held,) = (o for o in outcomes.values() if o is not published)
    assert isinstance(held, list) and held[0].outcome == "held", held
    creator = next(a for a, o in outcomes.items() if o is published)
    assert f"message {creator} started sending" in held[0].detail
    assert "Run it again in a moment" in held[0].detail

    events = alice.get(incident).events
    intents = [e for e in events if e.type == ev.PUBLISH_INTENDED]
    results = [e for e in events if e.type == ev.PUBLISH_RESULT]
    assert [e.actor for e in intents] == [creator]  # the other recorded no intent
    assert [(e.actor, e.payload["outcome"]) for e in results] == [(creator, "published")]

    # The one held runs again and updates the incident the other created.
    monkeypatch.setattr(publishing, "_require_online", gate)
    other = bob if creator == "alice" else alice
    again = publishing.draft(
        other.context, incident, "progress", {"estimated_time": "1h"}, ["statuspage"]
    )
    (outcome,) = publishing.publish(other.context, again)
    assert outcome.outcome == "published"
    assert [r.method for r in standin.posts("/sp/")] == ["POST", "PATCH"]
    assert standin.posts("/sp/")[1].path.endswith(next(iter(standin.incidents)))


def test_a_teammates_send_in_flight_is_not_resent_by_resume(standin, tmp_path, clock):
    alice, bob, incident = _two_responders(tmp_path, clock)
    made = publishing.draft(alice.context, incident, "initial", VALUES, ["statuspage"])
    sending = threading.Thread(target=publishing.publish, args=(alice.context, made))
    sending.start()
    _wait(lambda: len(standin.posts("/sp/")) == 1, "alice's POST in flight")

    # Bob starts the same update while Alice's POST has not answered: his resume finds
    # no incident with her key yet, and must not send her message itself.
    mine = publishing.draft(bob.context, incident, "initial", VALUES, ["statuspage"])
    assert "alice started sending" in mine.parts[0].unsettled
    with pytest.raises(PublishRefused) as refused:
        publishing.publish(bob.context, mine)
    assert "alice started sending" in refused.value.message
    standin.post_gate.set()
    sending.join(30)

    assert [r.method for r in standin.posts("/sp/")] == ["POST"]
    results = [e for e in bob.get(incident).events if e.type == ev.PUBLISH_RESULT]
    assert [(e.actor, e.payload["outcome"]) for e in results] == [("alice", "published")]
