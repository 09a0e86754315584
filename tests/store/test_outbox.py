"""The offline outbox and `store push`, over a shared store that goes away on demand.

The shared store here is the memory twin behind a switch (PostgreSQL's own faults are in
``test_team_faults.py``); each test checks what the shared log and the outbox file hold.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import T0

from playbook.core.events import COMMUTING, EVENT_TYPES, REPLACES, Event, NewEvent
from playbook.store import ConcurrencyConflict, StoreUnavailable
from playbook.store.memory import MemoryStore
from playbook.store.merge import Pending, push, rebase
from playbook.store.outbox import OUTBOX_NAME, OutboxStore
from playbook.store.sqlite import DB_NAME, SQLiteStore

OPENED = {
    "title": "x",
    "severity": "P2",
    "triggers": [],
    "playbook": {"id": "p"},
    "snapshot": {},
    "sections": [],
}


def new(kind: str = "note_added", actor: str = "alice", minutes: int = 0, **payload) -> NewEvent:
    if kind == "opened":
        payload = {**OPENED, **payload}
    return NewEvent(kind, dict(payload), actor, T0 + timedelta(minutes=minutes))


def severity(frm: str, to: str, actor: str = "alice") -> NewEvent:
    return new("severity_changed", actor, **{"from": frm, "to": to, "reason": "r"})


class Shared(MemoryStore):
    """The memory store behind a switch: ``down`` refuses everything, as an unreachable
    server does; ``lose_replies`` records the change and then loses its reply."""

    server = "shared-test-store"

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.lose_replies = False

    def _gone(self, unconfirmed: Sequence[NewEvent] = (), seen=None) -> StoreUnavailable:
        return StoreUnavailable("Cannot reach the test store", "", unconfirmed, seen)

    def append(self, incident_id: str, expected_seq: int, events: Sequence[NewEvent]):
        if self.down:
            raise self._gone()
        appended = super().append(incident_id, expected_seq, events)
        if self.lose_replies:
            raise self._gone(events)
        return appended

    def update(self, incident_id: str, decide: Callable[[list[Event]], Sequence[NewEvent]]):
        if self.down:
            raise self._gone()
        made: list[NewEvent] = []

        def keep(events: list[Event]) -> Sequence[NewEvent]:
            made[:] = decide(events)
            return made

        before, appended = super().update(incident_id, keep)
        if self.lose_replies and appended:
            raise self._gone(made, before)
        return before, appended

    def read(self, incident_id: str) -> list[Event]:
        if self.down:
            raise self._gone()
        return super().read(incident_id)

    def incident_ids(self) -> list[str]:
        if self.down:
            raise self._gone()
        return super().incident_ids()


def note(text: str, actor: str = "alice") -> Callable[[list[Event]], list[NewEvent]]:
    return lambda events: [new(actor=actor, text=text)]


@pytest.fixture
def shared() -> Shared:
    shared = Shared()
    shared.append("i", 0, [new("opened")])
    return shared


def texts(events: Sequence[Event]) -> list[str]:
    return [e.payload.get("text", e.type) for e in events]


def test_offline_events_wait_in_the_outbox_and_are_shared_once(
    shared: Shared, tmp_path: Path
) -> None:
    outbox = OutboxStore(shared, tmp_path / "a")
    assert texts(outbox.read("i")) == ["opened"]  # cached while online
    shared.down = True
    for text in ("one", "two", "three"):
        outbox.update("i", note(text))
    assert outbox.offline and outbox.pending() == 3 and outbox.pending("i") == 3
    assert texts(outbox.read("i")) == ["opened", "one", "two", "three"]  # the local view
    shared.down = False
    assert texts(MemoryStore.read(shared, "i")) == ["opened"]  # nothing was sent yet
    report = outbox.sync()
    assert [e.seq for e in report.sent] == [2, 3, 4] and not report.refused
    assert not outbox.offline and outbox.pending() == 0
    shared_log = shared.read("i")
    assert texts(shared_log) == ["opened", "one", "two", "three"]
    assert outbox.sync().sent == [] and len(shared.read("i")) == 4  # idempotent
    assert outbox.read("i") == shared_log


def test_a_reopened_outbox_still_holds_its_events(shared: Shared, tmp_path: Path) -> None:
    outbox = OutboxStore(shared, tmp_path / "a")
    outbox.read("i")
    shared.down = True
    outbox.update("i", note("kept"))
    outbox.close()  # the process ends; its events are on disk
    again = OutboxStore(shared, tmp_path / "a")
    assert again.pending() == 1
    shared.down = False
    again.sync()
    assert texts(shared.read("i")) == ["opened", "kept"]


def test_commuting_events_are_rebased_after_what_others_appended(
    shared: Shared, tmp_path: Path
) -> None:
    outbox = OutboxStore(shared, tmp_path / "a")
    outbox.read("i")
    shared.down = True
    outbox.update("i", note("mine, offline"))
    outbox.update("i", lambda events: [new("item_checked", item="s.1")])
    shared.down = False
    shared.update("i", note("bob's, meanwhile", actor="bob"))
    report = outbox.sync()
    assert not report.refused
    log = shared.read("i")
    assert texts(log) == ["opened", "bob's, meanwhile", "mine, offline", "item_checked"]
    assert [e.actor for e in log] == ["alice", "bob", "alice", "alice"]


def test_a_stale_severity_change_is_refused_kept_and_shown(shared: Shared, tmp_path: Path) -> None:
    outbox = OutboxStore(shared, tmp_path / "a")
    outbox.read("i")
    shared.down = True
    outbox.update("i", lambda events: [severity("P2", "P1")])
    outbox.update("i", note("raised it"))
    shared.down = False
    shared.update("i", lambda events: [severity("P2", "P0", actor="bob")])
    report = outbox.sync()

    log = shared.read("i")
    assert [(e.type, e.actor) for e in log] == [
        ("opened", "alice"),
        ("severity_changed", "bob"),
        ("note_added", "alice"),  # the note commutes: merged
    ]
    (refused,) = report.refused
    assert refused.event.payload["to"] == "P1" and refused.event.payload["from"] == "P2"
    assert [(e.actor, e.payload["to"], e.seq) for e in refused.theirs] == [("bob", "P0", 2)]
    assert "bob changed the severity" in refused.reason and refused.base_seq == 1
    # Kept, across a restart, until dismissed; then still in the file.
    outbox.close()
    again = OutboxStore(shared, tmp_path / "a")
    (shown,) = again.conflicts("i")
    assert shown.event.event_id == refused.event.event_id and shown.theirs == refused.theirs
    again.dismiss(refused.event.event_id)
    assert again.conflicts() == [] and again.pending() == 0
    with sqlite3.connect(tmp_path / "a" / OUTBOX_NAME) as conn:
        states = conn.execute("SELECT type, state FROM outbox ORDER BY n").fetchall()
    assert states == [("severity_changed", "dismissed"), ("note_added", "sent")]


def test_a_change_whose_reply_was_lost_is_kept_and_never_doubled(
    shared: Shared, tmp_path: Path
) -> None:
    outbox = OutboxStore(shared, tmp_path / "a")
    shared.lose_replies = True
    _before, appended = outbox.update("i", note("landed, unconfirmed"))
    assert texts(appended) == ["landed, unconfirmed"] and outbox.pending() == 1
    assert texts(shared.read("i")) == ["opened", "landed, unconfirmed"]  # it did land
    shared.lose_replies = False
    report = outbox.sync()
    assert report.sent == [] and outbox.pending() == 0
    log = shared.read("i")
    assert texts(log) == ["opened", "landed, unconfirmed"]
    assert log[1].event_id == appended[0].event_id


def test_an_incident_opened_offline_is_listed_and_created_on_sync(
    shared: Shared, tmp_path: Path
) -> None:
    outbox = OutboxStore(shared, tmp_path / "a")
    assert outbox.incident_ids() == ["i"]
    outbox.read("i")  # the app reads every incident it lists: the cache has them
    shared.down = True
    opened = outbox.append("new", 0, [new("opened", minutes=5)])
    assert [e.seq for e in opened] == [1]
    assert outbox.incident_ids() == ["i", "new"]  # from the cache and the outbox
    with pytest.raises(ConcurrencyConflict):
        outbox.append("new", 0, [new(text="stale view")])
    outbox.append("new", 1, [new(text="first note")])
    shared.down = False
    outbox.sync()
    assert texts(shared.read("new")) == ["opened", "first note"]
    assert shared.incident_ids() == ["i", "new"]


def test_an_incident_whose_id_was_taken_meanwhile_is_not_merged(
    shared: Shared, tmp_path: Path
) -> None:
    outbox = OutboxStore(shared, tmp_path / "a")
    shared.down = True
    outbox.append("dup", 0, [new("opened", title="mine")])
    outbox.append("dup", 1, [new(text="my note")])
    shared.down = False
    shared.append("dup", 0, [new("opened", actor="bob", title="bob's")])
    report = outbox.sync()
    assert len(report.refused) == 2 and texts(shared.read("dup")) == ["opened"]
    assert shared.read("dup")[0].payload["title"] == "bob's"
    assert "already has an incident with this id" in report.refused[0].reason


@pytest.mark.parametrize("kind", sorted(EVENT_TYPES))
def test_which_events_merge_onto_a_log_that_moved(kind: str) -> None:
    """Each type against a log that another writer moved with a severity change."""
    shared = [
        Event("i", 1, T0, "alice", "opened", dict(OPENED), event_id="e1"),
        Event("i", 2, T0, "bob", "severity_changed", {"from": "P2", "to": "P0"}, event_id="e2"),
    ]
    mine = NewEvent(kind, {}, "alice", T0)
    merge, refused, _landed = rebase(shared, [Pending("i", mine, 1)], {"e1"})
    if kind in COMMUTING or (kind in REPLACES and REPLACES[kind] != "severity"):
        assert merge == [mine] and not refused
    else:  # severity_changed, and opened (any move at all)
        assert merge == [] and [r.theirs for r in refused] == [[shared[1]]]
    # Already there (its reply was lost): neither merged nor refused.
    merge, refused, landed = rebase(
        [*shared, Event("i", 3, T0, "a", kind, {}, event_id=mine.event_id)],
        [Pending("i", mine, 1)],
        {"e1"},
    )
    assert merge == [] and refused == [] and len(landed) == 1


# --------------------------------------------------------------------------- push


def test_push_copies_local_incidents_once(tmp_path: Path) -> None:
    local = SQLiteStore(tmp_path / "local")
    local.append("a", 0, [new("opened"), new(text="one")])
    local.append("b", 0, [new("opened", minutes=1)])
    shared = MemoryStore()
    first = push(local, shared)
    assert [(p.incident_id, p.copied, p.already) for p in first] == [("a", 2, 0), ("b", 1, 0)]
    assert shared.read("a") == local.read("a") and shared.read("b") == local.read("b")
    local.append("a", 2, [new(text="two")])
    second = push(local, shared)
    assert [(p.incident_id, p.copied, p.already) for p in second] == [("a", 1, 2), ("b", 0, 1)]
    assert texts(shared.read("a")) == ["opened", "one", "two"]


def test_push_merges_onto_a_shared_incident_and_reports_conflicts(tmp_path: Path) -> None:
    local = SQLiteStore(tmp_path / "local")
    shared = MemoryStore()
    local.append("a", 0, [new("opened")])
    push(local, shared)
    shared.update("a", lambda events: [severity("P2", "P0", actor="bob")])
    local.append("a", 1, [severity("P2", "P1"), new(text="mine")])
    (pushed,) = push(local, shared)
    assert pushed.copied == 1 and pushed.already == 1
    (refused,) = pushed.refused
    assert refused.event.payload["to"] == "P1" and refused.theirs[0].actor == "bob"
    assert [e.type for e in shared.read("a")] == ["opened", "severity_changed", "note_added"]
    assert len(local.read("a")) == 3  # the local log is never changed


def test_push_skips_an_incident_with_an_unreadable_event(tmp_path: Path) -> None:
    local = SQLiteStore(tmp_path / "local")
    local.append("a", 0, [new("opened")])
    with sqlite3.connect(tmp_path / "local" / DB_NAME) as conn:
        conn.execute(
            "INSERT INTO events (incident_id, seq, at, actor, type, payload, schema)"
            " VALUES ('a', 2, '2026-03-14T02:05:00.000000Z', 'm', 'note_added', '{', 1)"
        )
    shared = MemoryStore()
    (pushed,) = push(local, shared)
    assert pushed.copied == 0 and "event 2 (note_added) is unreadable" in pushed.skipped
    assert shared.incident_ids() == []


def test_an_outbox_refuses_another_shared_store(shared: Shared, tmp_path: Path) -> None:
    OutboxStore(shared, tmp_path / "a").close()
    with pytest.raises(Exception, match="belongs to another shared store"):
        OutboxStore(MemoryStore(), tmp_path / "a")
