"""One contract, every store: the in-memory twin, SQLite and PostgreSQL behave alike.

That includes the schema rule: every store refuses an event whose payload does not match
its type's schema (``playbook.core.events.SCHEMAS``), and appends nothing of the batch.
The ``store`` fixture (``conftest.py``) gives each test every store in turn, PostgreSQL a
real server's.
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from helpers import T0

from playbook.core.events import SCHEMAS, NewEvent
from playbook.store import ConcurrencyConflict, InvalidEvent

OPENED = {
    "title": "x",
    "severity": "P2",
    "triggers": [],
    "playbook": {"id": "p"},
    "snapshot": {},
    "sections": [],
}


def new(kind: str = "note_added", minutes: int = 0, **payload: object) -> NewEvent:
    if kind == "opened":
        payload = {**OPENED, **payload}
    return NewEvent(kind, dict(payload), "alice", T0 + timedelta(minutes=minutes))


def test_append_numbers_events_and_reads_them_back(store) -> None:
    appended = store.append("a", 0, [new("opened"), new(text="é ✓ \x1b[31m")])
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


# --------------------------------------------------------------------------- the schema rule


@pytest.mark.parametrize(
    ("kind", "payload", "why"),
    [
        ("note_added", {}, "has no 'text'"),
        ("note_added", {"text": 5}, "'text' is an integer, not a string"),
        ("diagnostic_run", {}, "has no 'diagnostic'"),
        ("severity_changed", {"from": "P2", "to": None, "reason": "r"}, "'to' is null"),
        ("drill_checked", {"restored": "yes", "targets": {}}, "'restored' is a string"),
        ("no_such_type", {"text": "x"}, "unknown event type 'no_such_type'"),
    ],
)
def test_an_event_that_does_not_match_its_schema_is_refused_whole(
    store, kind: str, payload: dict[str, object], why: str
) -> None:
    store.append("a", 0, [new("opened")])
    with pytest.raises(InvalidEvent, match=why):
        store.append("a", 1, [new(text="fine"), NewEvent(kind, payload, "alice", T0)])
    with pytest.raises(InvalidEvent, match=why):
        store.update("a", lambda events: [NewEvent(kind, payload, "alice", T0)])
    assert [e.type for e in store.read("a")] == ["opened"]  # not even the valid one


def test_an_integer_field_refuses_a_bool_and_a_payload_must_be_plain_json(store) -> None:
    with pytest.raises(InvalidEvent, match="'title' is an integer"):
        store.append("a", 0, [new("opened", title=3)])
    run = {k: "" for k in SCHEMAS["diagnostic_run"]} | {"params": {}, "checks": [], "metrics": {}}
    run |= {"rows": [], "partial": False, "file": None, "sha256": None}
    with pytest.raises(InvalidEvent, match="'rows_total' is true or false, not an integer"):
        store.append(
            "a", 0, [new("opened"), NewEvent("diagnostic_run", run | {"rows_total": True}, "a", T0)]
        )
    store.append(
        "b", 0, [new("opened"), NewEvent("diagnostic_run", run | {"rows_total": 3}, "a", T0)]
    )
    with pytest.raises(InvalidEvent, match="not plain JSON"):
        store.append("a", 0, [new("opened", when=T0)])
    assert store.read("a") == [] and store.incident_ids() == ["b"]


def test_extra_keys_are_kept_so_later_versions_can_add_fields(store) -> None:
    store.append("a", 0, [new("opened"), new(text="n", added_later={"x": 1})])
    assert store.read("a")[1].payload == {"text": "n", "added_later": {"x": 1}}


def test_payload_keys_keep_the_order_they_were_written_in(store) -> None:
    sort = {"role": 1, "_id": -1, "a": 1}
    store.append("a", 0, [new("opened", snapshot={"z": 1, "a": 2, "sort": sort})])
    payload = store.read("a")[0].payload
    assert list(payload) == ["title", "severity", "triggers", "playbook", "snapshot", "sections"]
    assert list(payload["snapshot"]) == ["z", "a", "sort"]
    assert list(payload["snapshot"]["sort"]) == ["role", "_id", "a"]


def test_every_event_type_has_a_schema_that_is_plain_data() -> None:
    from playbook.core.events import EVENT_TYPES

    assert set(SCHEMAS) == set(EVENT_TYPES)
    for fields in SCHEMAS.values():
        assert all(isinstance(k, str) for k in fields)


# --------------------------------------------------------------------------- event ids


def test_a_batch_sent_again_is_recorded_once_and_returned_as_recorded(store) -> None:
    batch = [new("opened"), new(text="one")]
    first = store.append("a", 0, batch)
    assert store.append("a", 0, batch) == first  # the retry after a lost reply
    store.append("a", 2, [new(text="two")])
    assert store.append("a", 0, batch) == first  # a late retry: recognised, no conflict
    events = store.read("a")
    assert [e.payload.get("text") for e in events] == [None, "one", "two"]
    assert [e.event_id for e in events[:2]] == [e.event_id for e in batch]


def test_an_event_id_cannot_be_reused(store) -> None:
    opened = new("opened")
    store.append("a", 0, [opened])
    with pytest.raises(InvalidEvent, match="already recorded"):
        store.append("a", 1, [new(text="fresh"), opened])  # part of the batch is there
    with pytest.raises(InvalidEvent, match="already recorded"):
        store.append("b", 0, [opened])  # it is another incident's
    with pytest.raises(InvalidEvent, match="already recorded"):
        store.update("a", lambda events: [opened])
    twice = new(text="twice")
    with pytest.raises(InvalidEvent, match="same event id twice"):
        store.append("a", 1, [twice, twice])
    assert [e.type for e in store.read("a")] == ["opened"] and store.read("b") == []


def test_each_event_keeps_its_id_and_the_device_it_was_made_on(store) -> None:
    sent = NewEvent("opened", dict(OPENED), "alice", T0, device="laptop:pts/3")
    store.append("a", 0, [sent])
    (got,) = store.read("a")
    assert (got.event_id, got.device, got.actor) == (sent.event_id, "laptop:pts/3", "alice")


def test_a_number_json_cannot_hold_is_refused(store) -> None:
    with pytest.raises(InvalidEvent, match="not plain JSON"):
        store.append("a", 0, [new("opened", ratio=float("nan"))])
    assert store.read("a") == []


# --------------------------------------------------------------------------- following


def collect(feed, count: int, seconds: float = 15.0) -> list:
    """What ``feed`` delivers until ``count`` events came (or ``seconds`` passed)."""
    got: list = []
    deadline = time.monotonic() + seconds
    while len(got) < count and time.monotonic() < deadline:
        got += feed.get(0.2)
    return got


def test_a_follower_gets_every_append_once_and_in_order(make_store) -> None:
    writer, reader = make_store(), make_store()
    writer.append("a", 0, [new("opened")])
    with reader.follow("a", after=0) as feed:
        assert [e.seq for e in feed.get(5)] == [1]  # caught up first

        def write() -> None:
            seq = 1
            for k in range(12):
                batch = [new(text=f"{k}.{j}") for j in range(k % 3 + 1)]
                writer.append("a", seq, batch)
                seq += len(batch)

        thread = threading.Thread(target=write, daemon=True)
        thread.start()
        got = collect(feed, 24)
        thread.join()
        assert feed.get(0.3) == []  # nothing more, nothing twice
    texts = [f"{k}.{j}" for k in range(12) for j in range(k % 3 + 1)]
    assert [e.seq for e in got] == list(range(2, 26))
    assert [e.payload["text"] for e in got] == texts
    assert [e.event_id for e in got] == [e.event_id for e in writer.read("a")[1:]]


def test_following_every_incident_starts_from_now_and_sees_new_ones(make_store) -> None:
    writer, reader = make_store(), make_store()
    writer.append("a", 0, [new("opened"), new(text="old")])
    with reader.follow() as feed:
        writer.append("a", 2, [new(text="new in a")])
        writer.append("b", 0, [new("opened", minutes=1)])
        got = collect(feed, 2)
    assert sorted((e.incident_id, e.seq) for e in got) == [("a", 3), ("b", 1)]


def test_a_stopped_feed_returns_at_once(make_store) -> None:
    store = make_store()
    store.append("a", 0, [new("opened")])
    with store.follow("a", after=1) as feed:
        threading.Timer(0.2, feed.stop).start()
        started = time.monotonic()
        assert feed.get(30) == []
        assert time.monotonic() - started < 2


def test_a_follower_is_present_while_its_feed_is_open(make_store) -> None:
    store = make_store()
    store.append("a", 0, [new("opened")])
    store.append("b", 0, [new("opened")])
    assert store.presence() == []
    feed = make_store().follow("a", after=1, present_as=("bob", "tablet"))
    try:
        shown = store.presence()
        assert [(p.incident_id, p.actor, p.device) for p in shown] == [("a", "bob", "tablet")]
        assert store.presence("b") == [] and len(store.presence("a")) == 1
    finally:
        feed.close()
    assert store.presence() == []


def test_a_payload_the_store_could_not_read_back_is_refused(store) -> None:
    """Every store refuses what a read would call unreadable, so playbook never writes
    an event it cannot show: nesting past MAX_DEPTH, and a lone surrogate (which SQLite
    could not even encode; the service escapes those from databases first)."""
    from playbook.core.events import MAX_DEPTH

    deep: object = "bottom"
    for _ in range(MAX_DEPTH):
        deep = [deep]
    store.append("a", 0, [new("opened")])
    with pytest.raises(InvalidEvent, match=f"nested more than {MAX_DEPTH} levels"):
        store.append("a", 1, [new(text="x", extra=deep)])
    with pytest.raises(InvalidEvent, match="lone surrogate"):
        store.append("a", 1, [new(text="a\ud800b")])
    with pytest.raises(InvalidEvent, match="lone surrogate"):
        store.append("a", 1, [new(text="x", extra={"k\udfff": 1})])
    store.append("a", 1, [new(text="x", extra=deep[0])])  # one level less is fine
    assert [e.type for e in store.read("a")] == ["opened", "note_added"]
    assert store.read("a")[1].problem is None


def test_nested_parts_the_readers_use_are_part_of_the_schema(store) -> None:
    store.append("a", 0, [new("opened")])
    with pytest.raises(InvalidEvent, match=r"'sections\[0\]' has no 'title'"):
        store.append("b", 0, [new("opened", sections=[{"id": "s", "steps": []}])])
    with pytest.raises(InvalidEvent, match=r"'snapshot.severity.levels\[0\].response' is"):
        level = {"id": "P1", "response": float("inf"), "resolution": 1, "status_update_every": 1}
        store.append("b", 0, [new("opened", snapshot={"severity": {"levels": [level]}})])
    with pytest.raises(InvalidEvent, match=r"'targets.cache' is an integer, not an object"):
        store.append(
            "a",
            1,
            [NewEvent("drill_checked", {"restored": True, "targets": {"cache": 1}}, "a", T0)],
        )
    assert store.incident_ids() == ["a"]
