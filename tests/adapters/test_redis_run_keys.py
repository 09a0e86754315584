"""The keys a rebuild makes for itself are writes like any other (issue 13's attack B).

A rebuild writes staging keys (``playbook:staging:<run>:…``) a batch at a time, and its
swap moves each replaced live index to ``<prefix>:old-<run>:…``. Each is recorded with its
fingerprint when written; a rollback or a clean-up compares it before removing it or
renaming it back, and keeps and names one that someone changed since. Every test here
reads the server's own data afterwards.

The race a cancel used to lose (a batch still on its way when the clean-up looked, run
by the server afterwards) is made deterministic with a proxy that holds the batch's
bytes, from the apply's own progress callback, until the run has ended; no sleeps.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from servers import RedisServer, fingerprint

from playbook.adapters.redis import prints as redis_prints
from playbook.adapters.redis import writer as redis_writer
from playbook.adapters.writers import read_written_rows
from playbook.service import Service
from playbook.targets import Target

ROOT = Path(__file__).resolve().parents[2]
LOCK = "lock:test:rebuild"
STAGING = "playbook:staging"

ACTION = {
    "kind": "redis",
    "title": "Rebuild the test indexes",
    "target": "cache",
    "lock": {"name": LOCK},
    "batch": 2,
    "do": {
        "operation": "rebuild_indexes",
        "source": "msg:*",
        "member_field": "id",
        "prefix": "idx",
        "indexes": {"user": "authorId", "project": "projectId"},
    },
}


@pytest.fixture(scope="module")
def playbook_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """stale-backup's incident shape with one Redis rebuild (and no drill)."""
    text = yaml.safe_load((ROOT / "runbooks" / "stale-backup.yaml").read_text(encoding="utf-8"))
    text.pop("drill", None)
    for phase in [text["assessment"], *text["phases"]]:
        for step in phase.get("steps", []):
            step.pop("actions", None)
    text["actions"] = {"rebuild": ACTION}
    path = tmp_path_factory.mktemp("playbook") / "run-keys.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    return path


@pytest.fixture(autouse=True)
def small_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A staging write per read batch, as a rebuild of a large keyspace makes them: the
    handful of records here would otherwise go out in one write at the end."""
    monkeypatch.setattr(redis_writer, "STAGING_MEMBERS", 1)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    srv = RedisServer()
    yield srv
    srv.stop()


@pytest.fixture
def client(server: RedisServer) -> Iterator[Any]:
    """The data: five records (every one in project p1, so that every batch of the
    build adds to one staging key), a damaged index, a complete one, one no record
    points to."""
    with server.client() as c:
        c.flushall()
        for n, author, project in ((1, "u1", "p1"), (2, "u1", "p1"), (3, "u2", "p1")):
            c.hset(f"msg:{n}", mapping={"id": n, "authorId": author, "projectId": project})
        for n, author, project in ((4, "u3", "p1"), (5, "u3", "p1")):
            c.hset(f"msg:{n}", mapping={"id": n, "authorId": author, "projectId": project})
        c.sadd("idx:user:u1", 1)  # missing 2: replaced
        c.sadd("idx:project:p1", 1, 2, 3)  # complete: replaced by the same members
        c.sadd("idx:user:u9", 7)  # no record: retired
        yield c


def indexes(client: Any) -> dict[Any, Any]:
    return fingerprint(client, "idx:*")


def staging(client: Any, run: str) -> list[bytes]:
    return sorted(client.scan_iter(match=f"{STAGING}:{run}:*"))


def start(
    service: Service, playbook_file: Path, uri: str, progress: Callable[[Any], None] | None = None
) -> tuple[str, Any]:
    incident = service.open(playbook_file, "indexes").id
    run = service.start_action(
        incident, "rebuild", {}, {"cache": Target("cache", uri, "t")}, progress
    )
    return incident, run


def confirmed(run: Any) -> Any:
    run.dry_run()
    run.backup()
    run.confirm(run.phrase)
    return run


def apply_event(service: Service, incident: str, run: Any) -> dict[str, Any]:
    event = service.get(incident).state.actions[run.run_id].stage("apply")
    assert event is not None
    return event


def written_rows(event: dict[str, Any]) -> list[dict[str, Any]]:
    path = Path(event["written"]["file"])
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[1:]]


# --------------------------------------------------------------------------- break 1


def test_a_rollback_keeps_old_keys_written_after_the_apply_and_names_them(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    before = indexes(client)
    incident, run = start(sqlite_service, playbook_file, server.uri)
    assert confirmed(run).apply().ok
    old = f"idx:old-{run.run_id}"
    # the swap's old keys are recorded as written, holding the backup's value
    recorded, _was = read_written_rows(Path(apply_event(sqlite_service, incident, run)["written"]["file"]), None)  # fmt: skip
    assert {f"{old}:user:u1".encode(), f"{old}:user:u9".encode()} <= set(recorded)
    client.sadd(f"{old}:user:u1", "written after the apply")  # a replaced index's copy
    client.sadd(f"{old}:user:u9", "written after the apply")  # a retired index's copy
    late = {k: v for k, v in indexes(client).items() if k.endswith((b":u1", b":u9"))}
    late = {k: v for k, v in late.items() if k.startswith(old.encode())}

    later = sqlite_service.resume_action(incident, run.run_id, {"cache": run.target})
    numbers = later.rollback(later.phrase)

    after = indexes(client)
    for key, value in late.items():  # the writes made after the apply are all still there
        assert after[key] == value
    live = {k: v for k, v in after.items() if not k.startswith(b"idx:old-")}
    assert live == {k: v for k, v in before.items()}  # every live index as it was
    assert sorted(later.kept) == sorted(f"{k.decode()} changed after the apply" for k in late)
    assert numbers["kept"] == 2 and numbers["restored"] == 3
    assert not client.exists(f"{old}:project:p1")  # as the run left it: renamed back
    event = sqlite_service.get(incident).state.actions[run.run_id].stage("rollback")
    assert event is not None and event["kept_items"] == later.kept

    forced = sqlite_service.resume_action(incident, run.run_id, {"cache": run.target})
    forced.rollback(forced.force_phrase, force=True)
    assert indexes(client) == before  # forced: the old copies go, their writes with them
    assert sorted(forced.overwritten) == sorted(k.decode() for k in late)


def test_the_swap_never_moves_a_live_index_onto_a_key_someone_else_made(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    _incident, run = start(sqlite_service, playbook_file, server.uri)
    confirmed(run)
    theirs = f"idx:old-{run.run_id}:user:u1"
    client.sadd(theirs, "not the run's")  # RENAME would overwrite it, unsaved
    before = indexes(client)

    outcome = run.apply()

    assert not outcome.ok and not outcome.wrote
    assert "exists already" in outcome.error and theirs in outcome.error
    assert indexes(client) == before  # live indexes and their key as they were
    assert staging(client, run.run_id) == []
    assert not client.exists(LOCK)


# --------------------------------------------------------------------------- break 4


class Gate:
    """A TCP proxy in front of Redis that can hold a connection's requests.

    :meth:`hold_next` arms it: the next connection to send anything has its bytes held,
    not forwarded, from then on (other connections, old and new, go through). They go
    to the server at :meth:`release`, followed by the end of the connection if the
    client has closed its side; :meth:`wait_done` returns once the server has closed it,
    that is, once it has run every command it got.
    """

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.cond = threading.Condition()
        self.armed = False
        self.held = bytearray()
        self.holder: socket.socket | None = None
        self.holder_closed = False
        self.holder_done = threading.Event()
        self.sockets: list[socket.socket] = [self.listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                near, _ = self.listener.accept()
            except OSError:
                return
            far = socket.create_connection(("127.0.0.1", self.upstream))
            self.sockets += [near, far]
            threading.Thread(target=self._up, args=(near, far), daemon=True).start()
            threading.Thread(target=self._down, args=(near, far), daemon=True).start()

    def _up(self, near: socket.socket, far: socket.socket) -> None:
        while True:
            try:
                data = near.recv(65536)
            except OSError:
                data = b""
            with self.cond:
                if data and self.armed and self.holder is None:
                    self.holder, self.armed = far, False
                if self.holder is far:
                    self.held += data
                    self.holder_closed = not data
                    self.cond.notify_all()
                    if not data:
                        return
                    continue
            if not data:
                with contextlib.suppress(OSError):
                    far.shutdown(socket.SHUT_WR)
                return
            far.sendall(data)

    def _down(self, near: socket.socket, far: socket.socket) -> None:
        while True:
            try:
                data = far.recv(65536)
            except OSError:
                data = b""
            if not data:
                break
            with contextlib.suppress(OSError):
                near.sendall(data)
        if self.holder is far:
            self.holder_done.set()

    def hold_next(self) -> None:
        with self.cond:
            self.armed = True

    def wait_held(self, ready: Callable[[bytes], bool]) -> None:
        with self.cond:
            assert self.cond.wait_for(lambda: ready(bytes(self.held)), timeout=30), self.held

    def release(self) -> None:
        with self.cond:
            assert self.holder is not None
            assert self.cond.wait_for(lambda: self.holder_closed, timeout=30)
            self.holder.sendall(bytes(self.held))
            self.holder.shutdown(socket.SHUT_WR)

    def wait_done(self) -> None:
        assert self.holder_done.wait(30), "the server never finished the held requests"

    def close(self) -> None:
        for sock in self.sockets:
            with contextlib.suppress(OSError):
                sock.close()


def commands(data: bytes) -> int:
    """How many whole commands (RESP arrays of bulk strings) ``data`` holds."""
    count = at = 0
    while at < len(data):
        end = data.find(b"\r\n", at)
        if end < 0 or data[at : at + 1] != b"*":
            return count
        args, at = int(data[at + 1 : end]), end + 2
        for _ in range(args):
            end = data.find(b"\r\n", at)
            if end < 0:
                return count
            at = end + 2 + int(data[at + 1 : end]) + 2
            if at > len(data):
                return count
        count += 1
    return count


def test_a_cancel_with_a_batch_on_its_way_leaves_no_staging_key_and_says_so(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    """The attacker's race: Ctrl-C while a staging batch is on its way. The batch's bytes
    reach the server only after the run has cleaned up and ended; the fence (the lock's
    value, rotated by the clean-up) makes the server refuse it."""
    before = indexes(client)
    gate = Gate(server.port)
    cancelled = threading.Event()
    box: dict[str, Any] = {}

    def progress(p: Any) -> None:
        if p.unit == "records indexed" and not cancelled.is_set():
            cancelled.set()
            gate.hold_next()  # the next request is this run's next batch, with its adds

            def cancel_once_held() -> None:
                try:  # the batch's adds, then the next batch's read, both whole
                    gate.wait_held(lambda b: commands(b) == 2 and b"PLAYBOOK-FENCE" in b)
                    box["held"] = True
                finally:
                    box["run"].cancel()  # as Ctrl-C does: closes the connection under it

            threading.Thread(target=cancel_once_held, daemon=True).start()

    try:
        incident, run = start(sqlite_service, playbook_file, server.uri_via(gate.port), progress)
        box["run"] = run
        outcome = confirmed(run).apply()
        assert box.get("held"), "the batch was never held"
        gate.release()  # the held batch reaches the server now, after the run has ended
        gate.wait_done()
    finally:
        gate.close()

    assert staging(client, run.run_id) == []  # the late batch wrote nothing
    assert indexes(client) == before
    assert not client.exists(LOCK)
    assert not outcome.ok and not outcome.wrote
    assert outcome.error.startswith("Cancelled by the responder.")
    assert "nothing of this run remains" in outcome.error
    assert "Nothing was written" not in outcome.error
    event = apply_event(sqlite_service, incident, run)
    assert event["outcome"] == "cancelled" and event["wrote"] is False
    rows = written_rows(event)  # the staging keys were recorded ahead of each batch
    assert any(r.get("b") and r["k"].startswith(f"{STAGING}:{run.run_id}:") for r in rows)
    status = sqlite_service.get(incident).state.actions[run.run_id]
    assert status.status == "apply cancelled, nothing left to undo" and not status.can_roll_back


def test_a_staging_key_changed_by_someone_else_is_kept_named_and_rolled_back_later(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    before = indexes(client)
    box: dict[str, Any] = {}

    def progress(p: Any) -> None:
        if p.unit == "indexes validated":  # between the build and the swap
            box["theirs"] = f"{STAGING}:{box['run'].run_id}:idx:user:u1"
            client.sadd(box["theirs"], "not the run's")

    incident, run = start(sqlite_service, playbook_file, server.uri, progress)
    box["run"] = run
    outcome = confirmed(run).apply()

    theirs = box["theirs"]
    assert not outcome.ok and outcome.wrote and outcome.rollback_offered
    assert "changed after it was validated" in outcome.error
    assert "1 of the" in outcome.error and theirs in outcome.error
    assert indexes(client) == before  # nothing was swapped
    assert staging(client, run.run_id) == [theirs.encode()]  # the run's own ones removed
    assert b"not the run's" in client.smembers(theirs)

    later = sqlite_service.resume_action(incident, run.run_id, {"cache": run.target})
    later.rollback(later.phrase)
    assert later.kept == [f"{theirs} changed after the apply"]
    assert staging(client, run.run_id) == [theirs.encode()]
    assert b"not the run's" in client.smembers(theirs)
    assert indexes(client) == before


# --------------------------------------------------------------------------- the lock


@pytest.mark.parametrize("when", ["records indexed", "indexes validated"])
def test_a_lock_taken_over_mid_apply_stops_it_before_the_swap(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any, when: str
) -> None:
    """The lock expired and someone else took it (as a TTL shorter than a stall would
    allow): the run notices at its next write, on the server, not at its next renewal."""
    before = indexes(client)
    theirs = json.dumps({"holder": "bob@elsewhere pid 7, run r-bob", "since": "03:00"})
    taken = threading.Event()

    def progress(p: Any) -> None:
        if p.unit == when and not taken.is_set():
            taken.set()
            client.set(LOCK, theirs, px=60_000)

    incident, run = start(sqlite_service, playbook_file, server.uri, progress)
    outcome = confirmed(run).apply()

    assert taken.is_set()
    assert not outcome.ok and not outcome.wrote
    assert "lock" in outcome.error and "no longer this run's" in outcome.error
    assert indexes(client) == before  # nothing swapped
    assert staging(client, run.run_id) == []  # its own staging keys removed all the same
    assert client.get(LOCK) == theirs.encode()  # bob's lock left alone
    stages = [f"{s['stage']} {s['outcome']}" for s in sqlite_service.get(incident).state.actions[run.run_id].stages]  # fmt: skip
    assert stages[-2:] == ["apply failed", "unlock done"]


# --------------------------------------------------------------------------- a killed run


def test_a_run_killed_mid_build_is_rolled_back_to_no_staging_key(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    """Killed with a batch recorded but never sent: each staging key holds what its last
    batch or the one before left (the written file says both are the run's), and the
    rollback removes them all; none sits under the indexes' prefix meanwhile."""
    before = indexes(client)
    data_dir = Path(sqlite_service.store.data_dir)  # type: ignore[attr-defined]
    incident = sqlite_service.open(playbook_file, "killed").id
    small = (
        "import sys; from playbook.adapters.redis import writer as redis_writer; "
        "redis_writer.STAGING_MEMBERS = 1; import action_driver; "
        "sys.exit(action_driver.main(sys.argv[1:]))"
    )  # the driver with a staging write per read batch, as in this module
    driver = subprocess.Popen(
        [
            sys.executable,
            "-c",
            small,
            str(data_dir),
            incident,
            "rebuild",
            f"cache={server.uri}",
            "apply progress",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
    )
    try:
        assert driver.stdout is not None
        for line in driver.stdout:
            if line.strip() == "stopped":
                break
        else:
            raise AssertionError("the driver ended before the apply's third round trip")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate()
    (run,) = sqlite_service.get(incident).state.actions.values()
    left = staging(client, run.run)
    apply = run.stage("apply")
    assert apply is not None
    items, was = read_written_rows(Path(apply["written_file"]), None)
    now = redis_prints.read(client, left)
    # the case this test is for: a key whose last recorded batch never went out
    assert any(now[k].fingerprint == was.get(k) != items[k] for k in left), (items, was)
    assert indexes(client) == before  # never under idx:*, never swapped
    assert run.status == "interrupted during apply" and run.can_roll_back

    client.delete(LOCK)  # what its expiry would do
    again = sqlite_service.resume_action(
        incident, run.run, {"cache": Target("cache", server.uri, "t")}
    )
    numbers = again.rollback(again.phrase)

    assert staging(client, run.run) == []
    assert again.kept == [] and numbers["cleaned"] == len(left)
    assert indexes(client) == before


def test_a_record_scan_returns_twice_is_indexed_once(
    sqlite_service: Service,
    playbook_file: Path,
    server: RedisServer,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SCAN may return a key more than once (while the keyspace rehashes). Counted twice,
    a record failed the validation and put each staging set's fingerprint off from the
    server's, so a clean-up kept the run's own keys as "changed"."""
    from playbook.adapters.redis.writer import RedisWriter

    scan = RedisWriter._scan

    def twice(self: Any, c: Any, pattern: str, ctx: Any) -> Iterator[list[bytes]]:
        for keys in scan(self, c, pattern, ctx):
            yield keys
            if pattern == "msg:*":
                yield keys[:2]  # as SCAN may, during a rehash

    monkeypatch.setattr(RedisWriter, "_scan", twice)
    incident, run = start(sqlite_service, playbook_file, server.uri)
    outcome = confirmed(run).apply()
    assert outcome.ok, outcome.error
    assert client.smembers("idx:project:p1") == {b"1", b"2", b"3", b"4", b"5"}
    assert client.smembers("idx:user:u1") == {b"1", b"2"}
    later = sqlite_service.resume_action(incident, run.run_id, {"cache": run.target})
    later.rollback(later.phrase)
    assert later.kept == []  # every key the run made compared equal to what it recorded


SWAP_DRIVER = """
import sys, threading
from pathlib import Path
import redis
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.targets import Target

data_dir, incident, uri = sys.argv[1:]
execute = redis.client.Pipeline.execute

def stop_at_the_swap(self, *args, **kwargs):
    if any(a[0] == "EVAL" and "RENAME" in str(a[1]) for a, _ in self.command_stack):
        print("stopped", flush=True)  # the swap's records are on disk; EXEC is not sent
        threading.Event().wait()
    return execute(self, *args, **kwargs)

redis.client.Pipeline.execute = stop_at_the_swap
service = Service(SQLiteStore(Path(data_dir)), actor="driver")
run = service.start_action(incident, "rebuild", {}, {"cache": Target("cache", uri, "driver")})
run.dry_run()
run.backup()
run.confirm(run.phrase)
run.apply()
print("ended", flush=True)
"""


def test_a_run_killed_as_its_swap_goes_out_is_rolled_back_to_no_staging_key(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any, tmp_path: Path
) -> None:
    """Killed with the swap recorded (each staging key "renamed away") but never sent:
    the staging keys are as the build left them, which the record says is the run's too,
    so the rollback removes them rather than keeping them as changed by someone."""
    before = indexes(client)
    data_dir = Path(sqlite_service.store.data_dir)  # type: ignore[attr-defined]
    incident = sqlite_service.open(playbook_file, "killed at the swap").id
    script = tmp_path / "swap_driver.py"
    script.write_text(SWAP_DRIVER, encoding="utf-8")
    driver = subprocess.Popen(
        [sys.executable, str(script), str(data_dir), incident, server.uri],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert driver.stdout is not None
        assert driver.stdout.readline().strip() == "stopped"
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.communicate()
    (run,) = sqlite_service.get(incident).state.actions.values()
    left = staging(client, run.run)
    assert len(left) == 4 and indexes(client) == before  # built, never swapped

    client.delete(LOCK)  # what its expiry would do
    again = sqlite_service.resume_action(
        incident, run.run, {"cache": Target("cache", server.uri, "t")}
    )
    numbers = again.rollback(again.phrase)

    assert again.kept == [] and numbers["cleaned"] == 4
    assert staging(client, run.run) == []
    assert indexes(client) == before


def test_a_lock_taken_over_mid_rollback_stops_it_at_the_next_batch(
    sqlite_service: Service,
    playbook_file: Path,
    server: RedisServer,
    client: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playbook.adapters.redis import writer as redis_writer
    from playbook.adapters.redis.lock import LockLost

    incident, run = start(sqlite_service, playbook_file, server.uri)
    assert confirmed(run).apply().ok
    after_apply = indexes(client)
    monkeypatch.setattr(redis_writer, "BATCH", 1)  # one key per batch
    theirs = json.dumps({"holder": "bob@elsewhere pid 7, run r-bob", "since": "03:00"})

    def progress(p: Any) -> None:
        if p.unit == "keys compared and restored" and client.get(LOCK) != theirs.encode():
            client.set(LOCK, theirs, px=60_000)

    later = sqlite_service.resume_action(incident, run.run_id, {"cache": run.target}, progress)
    with pytest.raises(LockLost):
        later.rollback(later.phrase)

    now = indexes(client)
    changed = {k for k in set(now) | set(after_apply) if now.get(k) != after_apply.get(k)}
    # the first batch went through (its old copy renamed back); none after it
    assert changed == {b"idx:project:p1", f"idx:old-{run.run_id}:project:p1".encode()}
    assert client.get(LOCK) == theirs.encode()
    event = sqlite_service.get(incident).state.actions[run.run_id].stage("rollback")
    assert event is not None and event["outcome"] == "failed"


def test_records_sharing_a_member_id_fail_the_validation_and_leave_nothing(
    sqlite_service: Service, playbook_file: Path, server: RedisServer, client: Any
) -> None:
    """Two records with one member id: the set gets one member where two were sent, so
    the fingerprint taken as members were added is off. The writer reads that set back
    and records it as it is: the validation refuses, and the clean-up, comparing with
    the record, removes the run's keys instead of keeping them as changed by someone."""
    client.hset("msg:6", mapping={"id": 1, "authorId": "u1", "projectId": "p1"})  # id 1 again
    before = indexes(client)
    _incident, run = start(sqlite_service, playbook_file, server.uri)

    outcome = confirmed(run).apply()

    assert not outcome.ok and not outcome.wrote
    assert outcome.error.startswith("Validation failed")
    assert "nothing of this run remains" in outcome.error
    assert staging(client, run.run_id) == []
    assert indexes(client) == before
