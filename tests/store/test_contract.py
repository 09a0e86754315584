"""One contract, every store: the in-memory twin must behave exactly like SQLite."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from helpers import T0

from playbook.core.events import NewEvent
from playbook.store import ConcurrencyConflict
from playbook.store.memory import MemoryStore
from playbook.store.sqlite import SQLiteStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    made = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "s")
    yield made
    made.close()


def new(kind: str = "note_added", minutes: int = 0, **payload: object) -> NewEvent:
    return NewEvent(kind, dict(payload), "alice", T0 + timedelta(minutes=minutes))


def test_append_numbers_events_and_reads_them_back(store) -> None:
    appended = store.append("a", 0, [new("opened", title="x"), new(text="é ✓ \x1b[31m")])
    assert [e.seq for e in appended] == [1, 2]
    more = store.append("a", 2, [new(minutes=5, text="later")])
    assert more[0].seq == 3
    events = store.read("a")
    assert [(e.seq, e.type) for e in events] == [
        (1, "opened"),
        (2, "note_added"),
        (3, "note_added"),
    ]
    assert events[1].payload == {"text": "é ✓ \x1b[31m"}
    assert events[2].at == T0 + timedelta(minutes=5)
    assert events[0].actor == "alice" and events[0].incident_id == "a"


def test_a_stale_append_fails_instead_of_forking(store) -> None:
    store.append("a", 0, [new("opened")])
    store.append("a", 1, [new(text="first writer")])
    with pytest.raises(ConcurrencyConflict):
        store.append("a", 1, [new(text="second writer, stale")])
    assert [e.payload.get("text") for e in store.read("a")] == [None, "first writer"]


def test_an_incident_cannot_be_created_twice(store) -> None:
    store.append("a", 0, [new("opened")])
    with pytest.raises(ConcurrencyConflict):
        store.append("a", 0, [new("opened")])
    assert len(store.read("a")) == 1


def test_incidents_are_listed_oldest_first_and_kept_apart(store) -> None:
    store.append("b", 0, [new("opened", minutes=1)])
    store.append("a", 0, [new("opened", minutes=2)])
    store.append("b", 1, [new(text="only b")])
    assert store.incident_ids() == ["b", "a"]
    assert len(store.read("a")) == 1 and len(store.read("b")) == 2
    assert store.read("missing") == []


def test_events_read_are_copies(store) -> None:
    store.append("a", 0, [new("opened", title="x")])
    store.read("a")[0].payload["title"] = "changed"
    assert store.read("a")[0].payload["title"] == "x"
