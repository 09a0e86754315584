"""A team's shared log when things break: the server is killed mid-stream, a client is
killed mid-sync, another process writes on the same machine. Real servers and processes;
each test checks the server's rows and what every client holds."""

from __future__ import annotations

import random
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from helpers import ROOT
from pgserver import PostgresServer

from playbook.core.events import NewEvent
from playbook.store.outbox import OUTBOX_NAME, OutboxStore
from playbook.store.postgres import PostgresStore
from playbook.store.sqlite import SQLiteStore

OPENED = {
    "title": "x",
    "severity": "P2",
    "triggers": [],
    "playbook": {"id": "p"},
    "snapshot": {},
    "sections": [],
}


def event(kind: str, actor: str, **payload: object) -> NewEvent:
    if kind == "opened":
        payload = {**OPENED, **payload}
    return NewEvent(kind, dict(payload), actor, datetime.now(UTC))


def until(predicate, what: str, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling a condition, not a synchronisation sleep


def pg_ctl_stop_immediate(pg: PostgresServer) -> None:
    """``pg_ctl stop -m immediate``: the postmaster quits without a checkpoint, every
    backend is cut, the next start runs crash recovery."""
    subprocess.run(
        [str(pg.bindir / "pg_ctl"), "stop", "-D", str(pg.data), "-m", "immediate"],
        check=True,
        capture_output=True,
        env=pg._env(),
        **pg._as_owner(),
    )
    assert pg.proc is not None
    pg.proc.wait(30)
    pg.proc = None


def server_rows(url: str, incident_id: str) -> list:
    store = PostgresStore(url)
    try:
        return store.read(incident_id)
    finally:
        store.close()


class Writer(threading.Thread):
    """A responder adding notes as fast as the store acknowledges them."""

    def __init__(self, outbox: OutboxStore, incident_id: str, name: str) -> None:
        super().__init__(daemon=True)
        self.outbox, self.incident_id, self.tag = outbox, incident_id, name
        self.acked: list[str] = []
        self.stop = threading.Event()
        self.errors: list[Exception] = []

    def run(self) -> None:
        while not self.stop.is_set():
            text = f"{self.tag}:{len(self.acked)}"
            try:
                self.outbox.update(
                    self.incident_id, lambda e, t=text: [event("note_added", self.tag, text=t)]
                )
            except Exception as exc:  # nothing may fail: offline work goes to the outbox
                self.errors.append(exc)
                return
            self.acked.append(text)


def test_the_server_killed_mid_stream_then_offline_work_syncs_to_equal_logs(
    pg: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    alice = OutboxStore(PostgresStore(pg_url), tmp_path / "alice")
    bob = OutboxStore(PostgresStore(pg_url), tmp_path / "bob")
    alice.append("inc", 0, [event("opened", "alice")])
    bob.read("inc")  # bob has the incident open: it is in his cache
    feed = bob.follow("inc", after=1, present_as=("bob", "desk"))
    writers = [Writer(alice, "inc", "alice"), Writer(bob, "inc", "bob")]
    for writer in writers:
        writer.start()
    until(lambda: all(len(w.acked) >= 10 for w in writers), "both writing online")
    pg_ctl_stop_immediate(pg)
    until(lambda: alice.offline and bob.offline, "both clients to notice")
    until(lambda: alice.pending() >= 5 and bob.pending() >= 5, "work offline")
    for writer in writers:
        writer.stop.set()
        writer.join(30)
        assert not writer.errors, writer.errors
    # Both change the severity offline, from the same P2: only one can win.
    alice.update(
        "inc",
        lambda e: [event("severity_changed", "alice", **{"from": "P2", "to": "P1", "reason": "a"})],
    )
    bob.update(
        "inc",
        lambda e: [event("severity_changed", "bob", **{"from": "P2", "to": "P0", "reason": "b"})],
    )
    until(lambda: feed.get(0.1) is not None and not feed.connected, "the feed to notice")
    assert "Lost the shared incident log at postgresql://team:***@" in feed.error
    pg.start()
    first, second = alice.sync(), bob.sync()
    assert not first.refused and first.pending == 0 and second.pending == 0
    (refused,) = second.refused
    assert refused.event.payload["to"] == "P0" and refused.theirs[0].actor == "alice"
    assert [r.event.event_id for r in bob.conflicts()] == [refused.event.event_id]

    shared = server_rows(pg_url, "inc")
    assert [e.seq for e in shared] == list(range(1, len(shared) + 1))
    assert alice.read("inc") == shared and bob.read("inc") == shared  # equal logs
    texts = [e.payload.get("text") for e in shared if e.type == "note_added"]
    for writer in writers:  # every acknowledged note, once, in its writer's order
        assert [t for t in texts if t.startswith(f"{writer.tag}:")] == writer.acked
    assert [e.payload["to"] for e in shared if e.type == "severity_changed"] == ["P1"]
    # Bob's feed reconnected and delivered the whole log once, in order.
    got: list = []
    until(lambda: got.extend(feed.get(0.2)) or (got and got[-1].seq == shared[-1].seq), "feed")
    assert [e.seq for e in got] == list(range(2, len(shared) + 1))
    feed.close()
    alice.close()
    bob.close()


SYNC = textwrap.dedent(
    """
    import sys
    from playbook.store.outbox import OutboxStore
    from playbook.store.postgres import PostgresStore

    outbox = OutboxStore(PostgresStore(sys.argv[1]), sys.argv[2])
    print("syncing", flush=True)
    outbox.sync()
    print("synced", flush=True)
    """
)


def test_a_client_killed_during_sync_syncs_again_without_doubles(
    pg: PostgresServer, pg_url: str, tmp_path: Path
) -> None:
    local = tmp_path / "carol"
    carol = OutboxStore(PostgresStore(pg_url), local)
    pg_ctl_stop_immediate(pg)
    incidents = [f"inc-{n:03d}" for n in range(120)]
    for incident_id in incidents:
        carol.append(
            incident_id,
            0,
            [
                event("opened", "carol"),
                *(event("note_added", "carol", text=f"{k}") for k in range(3)),
            ],
        )
    assert carol.pending() == 480
    carol.close()
    pg.start()
    seed = random.randrange(1_000_000)
    landed_before_kill = random.Random(seed).randint(20, 300)
    with subprocess.Popen(
        [sys.executable, "-c", SYNC, pg_url, str(local)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    ) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == "syncing\n"
        until(lambda: count(pg, pg_url) >= landed_before_kill, f"{landed_before_kill} rows")
        proc.kill()  # SIGKILL, in the middle of the sync
    landed = count(pg, pg_url)
    assert 0 < landed < 480, f"the kill did not land mid-sync (seed {seed})"
    carol = OutboxStore(PostgresStore(pg_url), local)
    report = carol.sync()
    assert report.pending == 0 and not report.refused and not report.error
    assert len(report.sent) == 480 - landed  # only what had not landed was sent
    with pg.connect(pg_url) as conn:
        per_incident = conn.execute(
            "SELECT incident_id, array_agg(seq ORDER BY seq), count(DISTINCT event_id)"
            " FROM playbook.events GROUP BY incident_id ORDER BY incident_id"
        ).fetchall()
    assert [i for i, _s, _n in per_incident] == incidents
    assert all(seqs == [1, 2, 3, 4] and ids == 4 for _i, seqs, ids in per_incident)
    with carol._lock:
        states = carol._conn.execute("SELECT state, count(*) FROM outbox GROUP BY state").fetchall()
    assert states == [("sent", 480)] and (local / OUTBOX_NAME).exists()
    carol.close()


def count(pg: PostgresServer, url: str) -> int:
    with pg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM playbook.events").fetchone()[0]


APPENDER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from playbook.core.events import NewEvent
    from playbook.store.sqlite import SQLiteStore

    store = SQLiteStore(sys.argv[1])
    for k in range(20):
        note = NewEvent("note_added", {"text": f"from another process {k}"}, "dan", datetime.now(UTC))
        store.update("local", lambda events: [note])
    """
)


def test_a_sqlite_feed_shows_another_process_appends(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "data")
    store.append("local", 0, [event("opened", "erin")])
    with store.follow("local", after=1) as feed:
        subprocess.run(
            [sys.executable, "-c", APPENDER, str(tmp_path / "data")], check=True, cwd=ROOT
        )
        got: list = []
        until(lambda: got.extend(feed.get(0.2)) or len(got) >= 20, "twenty events")
    assert [e.payload["text"] for e in got] == [f"from another process {k}" for k in range(20)]
    assert [e.actor for e in got] == ["dan"] * 20
    store.close()
