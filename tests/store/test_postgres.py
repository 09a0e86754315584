"""The PostgreSQL store against a real server: what lands in its rows, what a listener
hears, a reply lost after the commit, concurrent processes, TLS, roles and migrations."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from helpers import ROOT, T0
from pgserver import PostgresServer
from psycopg import sql
from servers import PASSWORD

from playbook.core.events import NewEvent
from playbook.errors import StoreError
from playbook.store import InvalidEvent, StoreUnavailable, pgfeed, postgres
from playbook.store.postgres import PostgresStore, init

OPENED = {
    "title": "x",
    "severity": "P2",
    "triggers": [],
    "playbook": {"id": "p"},
    "snapshot": {"z": 1, "sort": {"role": 1, "_id": -1}},
    "sections": [],
}


def new(kind: str = "note_added", minutes: int = 0, **payload: object) -> NewEvent:
    if kind == "opened":
        payload = {**OPENED, **payload}
    return NewEvent(kind, dict(payload), "alice", T0 + timedelta(minutes=minutes))


def until(predicate, what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling a condition, not a synchronisation sleep


@contextlib.contextmanager
def opened(url: str):
    store = PostgresStore(url)
    try:
        yield store
    finally:
        store.close()


def rows(pg: PostgresServer, url: str, sql: str, *args: object) -> list[tuple]:
    with pg.connect(url) as conn:
        return conn.execute(sql, args).fetchall()


# --------------------------------------------------------------------------- rows, notifications


def test_rows_keep_the_payload_as_written_and_notify_on_commit(
    pg: PostgresServer, pg_url: str
) -> None:
    store = PostgresStore(pg_url)
    with pg.connect(pg_url) as listener:
        listener.execute("LISTEN playbook")
        store.append("inc", 0, [new("opened"), new(text="one")])
        with pytest.raises(RuntimeError):  # decided nothing: no row, no notification

            def refuse(events: list) -> list:
                raise RuntimeError("changed my mind")

            store.update("inc", refuse)
        store.update("inc", lambda events: [new(text="two")])
        heard = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
        heard += [n.payload for n in listener.notifies(timeout=0.3)]
    assert heard == ["inc:2", "inc:3"]  # one per transaction, its last sequence
    (payload,) = rows(pg, pg_url, "SELECT payload::text FROM playbook.events WHERE seq = 1")[0]
    assert '"snapshot": {"z": 1, "sort": {"role": 1, "_id": -1}}' in payload
    kinds = rows(
        pg, pg_url, "SELECT seq, type, actor, device <> '' FROM playbook.events ORDER BY seq"
    )
    assert kinds == [
        (1, "opened", "alice", True),
        (2, "note_added", "alice", True),
        (3, "note_added", "alice", True),
    ]
    store.close()


def test_a_long_incident_id_is_refused_before_it_reaches_a_notification(pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.append("x" * 200, 0, [new("opened")])
    with pytest.raises(InvalidEvent, match="1 to 200 printable characters"):
        store.append("x" * 201, 0, [new("opened")])
    assert store.incident_ids() == ["x" * 200]
    store.close()


def test_a_listener_gets_each_event_once_closing_gaps_and_dropping_repeats(
    pg: PostgresServer, pg_url: str
) -> None:
    store = PostgresStore(pg_url)
    store.append("a", 0, [new("opened")])
    with store.follow("a", after=1) as feed, pg.connect(pg_url) as other:
        # Two events whose notifications are lost (written without NOTIFY) ...
        for seq in (2, 3):
            other.execute(
                "INSERT INTO playbook.events (incident_id, seq, event_id, at, actor, type,"
                " payload, schema) VALUES ('a', %s, %s, now(), 'bob', 'note_added',"
                " %s, 1)",
                (seq, uuid.uuid4(), f'{{"text": "silent {seq}"}}'),
            )
        assert feed.get(0.3) == []
        store.append("a", 3, [new(text="heard")])  # ... then one that is heard
        got = []
        until(lambda: got.extend(feed.get(0.1)) or len(got) >= 3, "three events")
        assert [(e.seq, e.payload["text"]) for e in got] == [
            (2, "silent 2"),
            (3, "silent 3"),
            (4, "heard"),
        ]
        other.execute("NOTIFY playbook, 'a:4'")  # a repeat, and a stale one
        other.execute("NOTIFY playbook, 'a:2'")
        other.execute("NOTIFY playbook, 'nonsense'")
        assert feed.get(0.5) == []
        store.append("a", 4, [new(text="next")])
        assert [e.seq for e in feed.get(5)] == [5]
    store.close()


def test_an_event_whose_notification_was_lost_still_arrives(
    pg: PostgresServer, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No later event closes the gap: the feed's periodic catch-up does."""
    monkeypatch.setattr(pgfeed, "SWEEP", 0.3)
    store = PostgresStore(pg_url)
    store.append("a", 0, [new("opened")])
    with store.follow("a", after=1) as feed, pg.connect(pg_url) as other:
        other.execute(
            "INSERT INTO playbook.events (incident_id, seq, event_id, at, actor, type,"
            " payload, schema) VALUES ('a', 2, %s, now(), 'bob', 'note_added',"
            ' \'{"text": "never announced"}\', 1)',
            (uuid.uuid4(),),
        )
        got: list = []
        until(lambda: got.extend(feed.get(0.1)) or bool(got), "the unannounced event")
        assert [(e.seq, e.payload["text"]) for e in got] == [(2, "never announced")]
    store.close()


# --------------------------------------------------------------------------- a lost reply


class ReplyCutter:
    """Forwards TCP to the server. Once :meth:`arm` is called, the next connection's
    replies are swallowed (its requests still reach the server) until :meth:`cut` hangs
    it up: a commit the server made whose reply never reached the client."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.armed = False
        self._held: list[socket.socket] = []
        self.swallowed = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def arm(self) -> None:
        self.armed = True

    def cut(self) -> None:
        self.armed = False
        for sock in self._held:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        self._held.clear()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pump, args=(client, server), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)

    def _down(self, server: socket.socket, client: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := server.recv(65536):
                if self.armed:
                    self._held += [client, server]  # held before counted: cut() closes them
                    self.swallowed += len(data)
                    continue
                client.sendall(data)

    def close(self) -> None:
        self.listener.close()
        self.cut()


def via(url: str, pg: PostgresServer, port: int) -> str:
    return url.replace(f":{pg.port}/", f":{port}/")


def count(pg: PostgresServer, url: str, event_id: str) -> int:
    sql = "SELECT count(*) FROM playbook.events WHERE event_id = %s"
    return rows(pg, url, sql, uuid.UUID(event_id))[0][0]


def lose_the_reply(pg: PostgresServer, url: str, proxy: ReplyCutter, call, event_id: str):
    """Run ``call`` with its reply lost once its event is committed; what it returned or
    raised."""
    proxy.arm()
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = call()
        except Exception as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # The server's commit is visible before its reply reaches the proxy: wait for both.
    until(
        lambda: count(pg, url, event_id) == 1 and proxy.swallowed > 0,
        "the commit on the server and its reply held at the proxy",
    )
    assert thread.is_alive()  # committed, reply not delivered
    proxy.cut()
    thread.join(30)
    return outcome


def test_an_append_whose_reply_is_lost_is_retried_and_recorded_once(
    pg: PostgresServer, pg_url: str
) -> None:
    proxy = ReplyCutter(pg.port)
    store = PostgresStore(via(pg_url, pg, proxy.port))
    store.append("a", 0, [new("opened")])  # connected before the cut
    batch = [new(text="once"), new(text="and once")]
    outcome = lose_the_reply(
        pg, pg_url, proxy, lambda: store.append("a", 1, batch), batch[0].event_id
    )
    assert [e.payload["text"] for e in outcome["value"]] == ["once", "and once"]
    assert [count(pg, pg_url, e.event_id) for e in batch] == [1, 1]
    assert [e.seq for e in store.read("a")] == [1, 2, 3]
    store.close()
    proxy.close()


def test_without_retries_the_lost_reply_says_so_and_a_later_retry_is_safe(
    pg: PostgresServer, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(postgres, "ATTEMPTS", 1)
    proxy = ReplyCutter(pg.port)
    store = PostgresStore(via(pg_url, pg, proxy.port))
    store.append("a", 0, [new("opened")])
    batch = [new(text="unconfirmed")]
    outcome = lose_the_reply(
        pg, pg_url, proxy, lambda: store.append("a", 1, batch), batch[0].event_id
    )
    error = outcome["error"]
    assert isinstance(error, StoreUnavailable) and error.unconfirmed == batch
    assert "may or may not be recorded" in str(error) and "sending it again is safe" in str(error)
    assert PASSWORD not in str(error) and "team:***@" in str(error)
    # The commit happened; sending the batch again returns it, recorded once.
    with opened(pg_url) as direct:
        again = direct.append("a", 1, batch)
    assert [e.seq for e in again] == [2] and count(pg, pg_url, batch[0].event_id) == 1
    store.close()
    proxy.close()


def test_an_update_whose_reply_is_lost_is_not_decided_twice(
    pg: PostgresServer, pg_url: str
) -> None:
    proxy = ReplyCutter(pg.port)
    store = PostgresStore(via(pg_url, pg, proxy.port))
    store.append("a", 0, [new("opened")])
    made: list[NewEvent] = []

    def decide(events: list) -> list[NewEvent]:
        made.append(new(text=f"decided on {len(events)}"))
        proxy.arm()  # the read's reply came; the commit's will be lost
        return [made[-1]]

    outcome: dict = {}
    thread = threading.Thread(
        target=lambda: outcome.update(value=store.update("a", decide)), daemon=True
    )
    thread.start()
    until(
        lambda: bool(made) and count(pg, pg_url, made[0].event_id) == 1 and proxy.swallowed > 0,
        "the commit on the server and its reply held at the proxy",
    )
    assert thread.is_alive()
    proxy.cut()
    thread.join(30)
    before, appended = outcome["value"]
    assert len(made) == 1  # the retry found the first try's event: no second decision
    assert [e.seq for e in before] == [1] and [e.event_id for e in appended] == [made[0].event_id]
    with opened(pg_url) as direct:
        assert [e.payload.get("text") for e in direct.read("a")] == [None, "decided on 1"]
    store.close()
    proxy.close()


# --------------------------------------------------------------------------- processes

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from playbook.core.events import NewEvent
    from playbook.store.postgres import PostgresStore

    url, incident, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    store = PostgresStore(url)
    for k in range(count):
        note = NewEvent("note_added", {"text": f"{tag}:{k}"}, tag, datetime.now(UTC))
        store.update(incident, lambda events: [note])
        print(f"ack {tag}:{k}", flush=True)
    """
)


def test_five_processes_appending_at_once_lose_nothing_and_fork_nothing(
    pg: PostgresServer, pg_url: str
) -> None:
    with opened(pg_url) as opener:
        opener.append("team", 0, [new("opened")])
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, pg_url, "team", f"w{n}", "40"],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for n in range(5)
    ]
    acked = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        acked += [line.split()[1] for line in out.splitlines()]
    stored = rows(
        pg,
        pg_url,
        "SELECT seq, payload->>'text', event_id FROM playbook.events"
        " WHERE incident_id = 'team' ORDER BY seq",
    )
    assert [s for s, _t, _i in stored] == list(range(1, 202))  # dense: nothing forked
    texts = [t for _s, t, _i in stored[1:]]
    assert sorted(texts) == sorted(acked) and len(acked) == 200
    assert len({i for _s, _t, i in stored}) == 201
    for n in range(5):
        assert [t for t in texts if t.startswith(f"w{n}:")] == [f"w{n}:{k}" for k in range(40)]


FOLLOWER = textwrap.dedent(
    """
    import sys
    from playbook.store.postgres import PostgresStore

    feed = PostgresStore(sys.argv[1]).follow("a", after=1, present_as=("carol", "desk"))
    print("following", flush=True)
    while True:
        feed.get(1)
    """
)


def test_a_killed_client_leaves_the_incident_at_once(pg: PostgresServer, pg_url: str) -> None:
    store = PostgresStore(pg_url)
    store.append("a", 0, [new("opened")])
    with subprocess.Popen(
        [sys.executable, "-c", FOLLOWER, pg_url], stdout=subprocess.PIPE, text=True, cwd=ROOT
    ) as proc:
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "following\n"
            assert [(p.actor, p.device) for p in store.presence("a")] == [("carol", "desk")]
        finally:
            proc.kill()
    until(lambda: store.presence("a") == [], "the killed client's presence to go")
    store.close()


# --------------------------------------------------------------------------- connection, TLS


def test_an_unreachable_server_is_named_without_its_password(
    pg: PostgresServer, pg_url: str
) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    down = PostgresStore(via(pg_url, pg, port))
    with pytest.raises(StoreUnavailable) as caught:
        down.append("a", 0, [new("opened")])
    text = str(caught.value)
    assert f"postgresql://team:***@127.0.0.1:{port}/team" in text
    assert "NOT recorded" in text and caught.value.unconfirmed == []
    wrong = pg_url.replace(PASSWORD, "not-the-PASSWORD-9a8b")
    with pytest.raises(StoreUnavailable) as refused:
        PostgresStore(wrong).read("a")
    assert "password authentication failed" in str(refused.value)
    for shown in (text, str(refused.value)):
        assert PASSWORD not in shown and "not-the-PASSWORD-9a8b" not in shown


@pytest.fixture
def tls(pg: PostgresServer, tmp_path: Path):
    """The test server with TLS on (a certificate for 127.0.0.1), and another CA."""
    made = {}
    for name in ("server", "other"):
        key, crt = pg.dir / f"{name}.key", pg.dir / f"{name}.crt"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", str(key), "-out", str(crt), "-subj", "/CN=127.0.0.1",
             "-addext", "subjectAltName=IP:127.0.0.1"],
            check=True, capture_output=True,
        )  # fmt: skip
        key.chmod(0o600)
        pg._chown(key)
        pg._chown(crt)
        made[name] = crt
    with pg.connect() as admin:
        for setting, path in (
            ("ssl_cert_file", made["server"]),
            ("ssl_key_file", pg.dir / "server.key"),
        ):
            query = sql.SQL("ALTER SYSTEM SET {} = {}")
            admin.execute(query.format(sql.Identifier(setting), sql.Literal(str(path))))
        admin.execute("ALTER SYSTEM SET ssl = on")
        admin.execute("SELECT pg_reload_conf()")
    until(lambda: rows(pg, pg.superuser_uri, "SHOW ssl") == [("on",)], "TLS to be on")
    yield made
    with pg.connect() as admin:
        admin.execute("ALTER SYSTEM RESET ssl")
        admin.execute("SELECT pg_reload_conf()")


def test_tls_parameters_in_the_url_are_honoured(pg: PostgresServer, pg_url: str, tls) -> None:
    def ssl_of(url: str) -> bool:
        with PostgresStore(url).connect() as conn:
            return conn.execute(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()[0]

    verified = f"{pg_url}?sslmode=verify-full&sslrootcert={tls['server']}"
    assert ssl_of(verified) is True  # the server's own view of our connection
    assert ssl_of(f"{pg_url}?sslmode=disable") is False
    store = PostgresStore(verified)
    store.append("tls", 0, [new("opened")])
    assert [e.seq for e in store.read("tls")] == [1]
    store.close()
    with pytest.raises(StoreUnavailable, match="certificate verify failed") as caught:
        PostgresStore(f"{pg_url}?sslmode=verify-full&sslrootcert={tls['other']}").read("tls")
    assert PASSWORD not in str(caught.value)


# --------------------------------------------------------------------------- roles, migrations


def test_a_responder_role_can_append_but_never_change_or_delete(
    pg: PostgresServer, pg_url: str
) -> None:
    with pg.connect() as admin:
        admin.execute("DROP ROLE IF EXISTS responder")
        admin.execute("CREATE ROLE responder LOGIN PASSWORD 'responder-pw-1234'")
    assert init(pg_url, grant_to=["responder"]) == []  # up to date: only the grants
    responder = pg_url.replace(f"team:{PASSWORD}", "responder:responder-pw-1234")
    store = PostgresStore(responder)
    store.append("a", 0, [new("opened")])
    with store.follow("a", present_as=("r", "d")) as feed:
        assert [e.seq for e in feed.get(2)] == [1]
        assert len(store.presence("a")) == 1
    for change in ("UPDATE playbook.events SET actor = 'x'", "DELETE FROM playbook.events"):
        with pg.connect(responder) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(change)
    assert rows(pg, pg_url, "SELECT seq, actor FROM playbook.events") == [(1, "alice")]
    store.close()


def test_migrations_run_once_when_two_clients_start_together(pg: PostgresServer) -> None:
    url = pg.add_owner("fresh", "fresh-pw-5678", "fresh")
    with pytest.raises(StoreError, match="not set up") as caught:
        PostgresStore(url).read("a")
    assert "playbook store init" in caught.value.message
    results: list = []
    threads = [
        threading.Thread(target=lambda: results.append(init(url)), daemon=True) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [[], [1, 2]]
    assert rows(pg, url, "SELECT version FROM playbook.schema_migrations") == [(1,), (2,)]
    with pg.connect(url) as conn:
        conn.execute("INSERT INTO playbook.schema_migrations VALUES (99, 'from the future')")
    with pytest.raises(StoreError, match="set up by a newer playbook"):
        PostgresStore(url).read("a")


# --------------------------------------------------------------------------- the server keeps the order


def _plant(conn: psycopg.Connection, incident: str, seq: int, at: str = "now()") -> None:
    conn.execute(
        "INSERT INTO playbook.events (incident_id, seq, event_id, at, actor, type, payload,"
        f" schema, recorded_at) VALUES (%s, %s, %s, {at}, 'mallory', 'note_added',"
        " '{\"text\": \"planted\"}', 1, '2000-01-01')",
        (incident, seq, uuid.uuid4()),
    )


def test_a_role_with_insert_can_only_add_the_next_event(pg: PostgresServer, pg_url: str) -> None:
    """Not a row in the past, not one past a gap: the server refuses both, whoever sends
    them; the next one lands, stamped with the server's time."""
    with pg.connect() as admin:
        admin.execute("DROP ROLE IF EXISTS mallory")
        admin.execute("CREATE ROLE mallory LOGIN PASSWORD 'mallory-pw-1234'")
    assert init(pg_url, grant_to=["mallory"]) == []
    mallory = pg_url.replace(f"team:{PASSWORD}", "mallory:mallory-pw-1234")
    store = PostgresStore(pg_url)
    store.append("a", 0, [new("opened"), new(text="one"), new(text="two")])
    with pg.connect(mallory) as conn:
        for seq in (50, 5, 2, 1):
            with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="not the next"):
                _plant(conn, "a", seq)
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation):
            _plant(conn, "new-incident", 2)
        _plant(conn, "a", 4)
    assert rows(pg, pg_url, "SELECT seq, actor FROM playbook.events ORDER BY seq") == [
        (1, "alice"),
        (2, "alice"),
        (3, "alice"),
        (4, "mallory"),
    ]
    ((stamped,),) = rows(
        pg,
        pg_url,
        "SELECT recorded_at > now() - interval '1 hour' FROM playbook.events WHERE seq = 4",
    )
    assert stamped, "recorded_at is the server's clock, not the writer's"
    # The store, which numbers after what it read, goes on after the planted row.
    before, added = store.update("a", lambda events: [new(text="after")])
    assert [e.seq for e in added] == [5] and before[-1].actor == "mallory"
    store.close()


def test_a_log_written_before_the_order_check_migrates_and_goes_on(
    pg: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from playbook.store import pgschema

    url = pg.add_owner("older", "older-pw-5678", "older")
    with monkeypatch.context() as old:  # the playbook that knew only step 1
        old.setattr(pgschema, "MIGRATIONS", pgschema.MIGRATIONS[:1])
        old.setattr(pgschema, "SCHEMA_VERSION", 1)
        assert init(url) == [1]
        with pg.connect(url) as conn:
            for seq in (1, 2, 50):  # a gap, as a planted row left it
                _plant(conn, "old", seq)
    assert init(url) == [2]
    assert rows(pg, url, "SELECT seq FROM playbook.events ORDER BY seq") == [(1,), (2,), (50,)]
    store = PostgresStore(url)
    _before, added = store.update("old", lambda events: [new(text="after the gap")])
    assert [e.seq for e in added] == [51]
    with pg.connect(url) as conn, pytest.raises(psycopg.errors.IntegrityConstraintViolation):
        _plant(conn, "old", 3)
    store.close()
