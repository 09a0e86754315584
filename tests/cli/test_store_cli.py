"""Team mode from the command line, on a real PostgreSQL: choosing the store, `playbook
store init/status/push/sync`, working offline through a server stop, and a severity
change someone else superseded. Each checks the rows on the server or the files on disk,
not only what was printed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from helpers import RUNBOOK
from pgserver import PostgresServer, postgres_server
from servers import PASSWORD

from playbook.cli import main
from playbook.service import Service
from playbook.service.context import StaleChange
from playbook.service.team import Offline
from playbook.store.outbox import OutboxStore
from playbook.store.postgres import PostgresStore, init
from playbook.targets import Target


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def team_url(pg: PostgresServer) -> str:
    return pg.add_owner("team", PASSWORD, "team")


@pytest.fixture
def url(pg: PostgresServer, team_url: str) -> str:
    """The team's database, empty, its schema made (the server started again if a test
    stopped it)."""
    if pg.proc is None or pg.proc.poll() is not None:
        pg.proc = None
        pg.start()
    init(team_url)
    with pg.connect(team_url) as conn:
        conn.execute("TRUNCATE playbook.events, playbook.presence")
    return team_url


def rows(pg: PostgresServer, url: str, incident: str | None = None) -> list[tuple]:
    with pg.connect(url) as conn:
        return conn.execute(
            "SELECT incident_id, seq, actor, device, type, payload::text FROM playbook.events"
            " WHERE %s::text IS NULL OR incident_id = %s ORDER BY incident_id, seq",
            (incident, incident),
        ).fetchall()


class Responder:
    """One responder's `playbook`: their own data folder and name, one shared store."""

    def __init__(self, home: Path, actor: str, env: dict[str, str]) -> None:
        self.home, self.actor, self.env = home, actor, env
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        return self.runner.invoke(
            main,
            ["--data-dir", str(self.home), "--actor", self.actor, *args],
            env=self.env,
            catch_exceptions=False,
        )


def pg_ctl_stop_immediate(pg: PostgresServer) -> None:
    subprocess.run(
        [str(pg.bindir / "pg_ctl"), "stop", "-D", str(pg.data), "-m", "immediate"],
        check=True,
        capture_output=True,
        timeout=60,
        **pg._as_owner(),
    )
    pg.proc.wait(timeout=30)
    pg.proc = None


def test_a_whole_incident_lands_on_the_server_with_who_and_where(
    url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    alice = Responder(tmp_path / "alice", "alice", {"PLAYBOOK_STORE": url})
    opened = alice("open", "data-integrity", "--title", "Orders missing", "--json")
    assert opened.exit_code == 0, opened.output
    incident = json.loads(opened.stdout)["id"]
    assert alice("ack", incident).exit_code == 0
    assert alice("note", incident, "looking at the replica").exit_code == 0

    on_server = rows(pg, url, incident)
    assert [r[4] for r in on_server] == ["opened", "acknowledged", "note_added"]
    assert {r[2] for r in on_server} == {"alice"}
    assert all(r[3] for r in on_server), "every event names the device it was made on"
    assert not (tmp_path / "alice" / "incidents.sqlite3").exists(), "nothing went to SQLite"

    status = alice("store", "status", "--json")
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    assert shown["reachable"] is True and shown["schema"] == shown["schema_expected"] == 2
    assert shown["pending"] == 0 and shown["source"] == "PLAYBOOK_STORE"
    assert PASSWORD not in status.output and "***" in shown["store"]


def test_the_store_comes_from_the_responders_own_config_never_a_runbooks_folder(
    url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    config = tmp_path / "config" / "playbook"
    config.mkdir(parents=True)
    templated = url.replace(PASSWORD, "${TEAM_PW}")
    assert templated != url
    (config / "playbook.toml").write_text(f'[store]\nurl = "{templated}"\n')
    # A runbooks folder that tries to send the log elsewhere (a server that is not there).
    folder = tmp_path / "runbooks"
    shutil.copytree(RUNBOOK.parent, folder)
    (folder / "playbook.toml").write_text('[store]\nurl = "postgresql://evil@127.0.0.1:9/x"\n')

    env = {"TEAM_PW": PASSWORD, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    bob = Responder(tmp_path / "bob", "bob", env)
    opened = bob("open", str(folder / "data-integrity.yaml"), "--title", "Lag", "--json")
    assert opened.exit_code == 0, opened.output
    incident = json.loads(opened.stdout)["id"]
    assert [r[2] for r in rows(pg, url, incident)] == ["bob"]

    # A command that reads the folder's file says its [store] is ignored.
    ran = bob("diag", "run", incident, "db-check")
    assert "ignoring [store]" in ran.stderr and str(folder) in ran.stderr
    assert "evil" not in ran.stderr
    status = bob("store", "status", "--json")
    assert json.loads(status.stdout)["source"].endswith("store.url")
    assert PASSWORD not in status.output


def test_a_url_that_is_not_postgresql_is_refused_without_showing_it(tmp_path: Path) -> None:
    who = Responder(tmp_path / "x", "x", {})
    result = who("--store", "redis://:s3cretpass@host/0", "incidents")
    assert result.exit_code == 2
    assert "not a PostgreSQL URL" in result.stderr and "s3cretpass" not in result.output


def test_the_server_stopped_mid_incident_the_cli_works_offline_then_syncs_equal_logs(
    url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    env = {"PLAYBOOK_STORE": url}
    alice = Responder(tmp_path / "alice", "alice", env)
    bob = Responder(tmp_path / "bob", "bob", env)
    incident = json.loads(alice("open", "data-integrity", "--title", "T", "--json").stdout)["id"]
    assert bob("ack", incident).exit_code == 0
    assert bob("show", incident).exit_code == 0  # bob's cache holds the log so far

    pg_ctl_stop_immediate(pg)
    first = alice("note", incident, "offline note one")
    assert first.exit_code == 0, first.output
    assert "offline: 1 event not yet shared" in first.stderr
    second = alice("check", incident, "immediate-response.containment")
    assert second.exit_code == 0, second.output
    waiting = re.search(r"offline: (\d+) events not yet shared", second.stderr)
    assert waiting and int(waiting.group(1)) > 1, second.stderr  # the note + the step's ticks
    assert bob("note", incident, "bob offline too").exit_code == 0
    # A guarded action never starts on a stale view.
    # A guarded action never starts on a stale view: refused before anything runs or
    # is recorded (the target given would be written to otherwise).
    offline = alice_store(url, tmp_path / "alice")
    waiting = offline.pending()
    with pytest.raises(Offline) as refused:
        Service(offline, actor="alice").start_action(
            incident,
            "rebuild-indexes",
            {},
            {"cache": Target("cache", "redis://127.0.0.1:9/0", "t")},
        )
    assert refused.value.exit_code == 7 and "offline" in refused.value.title
    assert offline.pending() == waiting, "nothing of the action was recorded"
    offline.close()

    pg.start()
    synced = alice("show", incident)  # any command syncs first
    assert synced.exit_code == 0, synced.output
    assert "not yet shared" not in synced.stderr
    assert bob("store", "sync").exit_code == 0

    on_server = rows(pg, url, incident)
    assert [r[1] for r in on_server] == list(range(1, len(on_server) + 1)), "no fork, no gap"
    notes = [json.loads(r[5])["text"] for r in on_server if r[4] == "note_added"]
    assert sorted(notes) == ["bob offline too", "offline note one"], "nothing lost or doubled"
    logs = [json.loads(who("export", incident, "--format", "json").stdout) for who in (alice, bob)]
    assert logs[0]["events"] == logs[1]["events"] and len(logs[0]["events"]) == len(on_server)
    assert alice("store", "sync").stdout.startswith("0 sent, 0 refused, 0 waiting")


def alice_store(url: str, home: Path) -> OutboxStore:
    from playbook.store.choice import StoreChoice, outbox_dir

    return OutboxStore(PostgresStore(url), outbox_dir(home, StoreChoice(url, "test")))


def test_an_offline_severity_change_someone_superseded_is_refused_and_shown(
    url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    env = {"PLAYBOOK_STORE": url}
    alice = Responder(tmp_path / "alice", "alice", env)
    bob = Responder(tmp_path / "bob", "bob", env)
    incident = json.loads(alice("open", "data-integrity", "--title", "T", "--json").stdout)["id"]
    pg_ctl_stop_immediate(pg)
    changed = alice("severity", incident, "P1", "--reason", "orders lost")
    assert changed.exit_code == 0, changed.output
    assert "offline: 1 event" in changed.stderr
    pg.start()
    assert bob("severity", incident, "P1", "--reason", "orders lost").exit_code == 0
    assert bob("severity", incident, "P2", "--reason", "only one shop").exit_code == 0

    synced = alice("store", "sync")
    assert synced.exit_code == 4, synced.output
    assert "bob changed the severity" in synced.output
    assert [
        json.loads(r[5])["to"] for r in rows(pg, url, incident) if r[4] == "severity_changed"
    ] == ["P1", "P2"], "the stale change never reached the shared log"
    status = json.loads(alice("store", "status", "--json").stdout)
    assert [c["type"] for c in status["conflicts"]] == ["severity_changed"]
    assert status["pending"] == 0
    # Seen: dismissed, it is no longer listed, and kept in the outbox file.
    refused_id = status["conflicts"][0]["event_id"]
    assert alice("store", "dismiss", refused_id).exit_code == 0
    assert json.loads(alice("store", "status", "--json").stdout)["conflicts"] == []
    assert alice("store", "dismiss", refused_id).exit_code == 3


def test_a_change_based_on_a_stale_value_is_refused_with_who_set_what(
    url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    alice = Service(alice_store(url, tmp_path / "a"), actor="alice")
    bob = Service(alice_store(url, tmp_path / "b"), actor="bob")
    state = alice.open("data-integrity", "T")
    seen = state.severity
    bob.change_severity(state.id, "P1", "worse")
    with pytest.raises(StaleChange) as refused:
        alice.change_severity(state.id, "P1", "worse", based_on=seen)
    assert "bob set it to P1" in refused.value.title and f"based on {seen}" in refused.value.title
    assert refused.value.exit_code == 4
    kinds = [r[4] for r in rows(pg, url, state.id)]
    assert kinds.count("severity_changed") == 1
    # Redone on the current value, it lands.
    alice.change_severity(state.id, "P2", "better", based_on="P1")
    assert alice.get(state.id).state.severity == "P2"
    alice.store.close()
    bob.store.close()


def test_push_copies_local_incidents_once(url: str, pg: PostgresServer, tmp_path: Path) -> None:
    local = Responder(tmp_path / "laptop", "carol", {})
    incident = json.loads(local("open", "data-integrity", "--title", "T", "--json").stdout)["id"]
    assert local("note", incident, "from the laptop").exit_code == 0
    shared = Responder(tmp_path / "laptop", "carol", {"PLAYBOOK_STORE": url})
    pushed = shared("store", "push")
    assert pushed.exit_code == 0, pushed.output
    assert f"{incident}: 2 copied" in pushed.stdout
    again = shared("store", "push")
    assert f"{incident}: 0 copied, 2 already there" in again.stdout
    assert [r[4] for r in rows(pg, url, incident)] == ["opened", "note_added"]


def test_an_unreachable_store_is_named_with_its_password_masked(url: str, tmp_path: Path) -> None:
    dead = url.rsplit("@", 1)[0] + "@127.0.0.1:9/team"  # nothing listens on port 9
    who = Responder(tmp_path / "x", "x", {"PLAYBOOK_STORE": dead})
    status = who("store", "status")
    assert status.exit_code == 5, status.output
    assert "reachable: no" in status.stdout and "127.0.0.1" in status.stdout
    assert PASSWORD not in status.output and "***" in status.output
    # Work goes on, offline, and says so.
    opened = who("open", "data-integrity", "--title", "T")
    assert opened.exit_code == 0, opened.output
    assert "offline: 1 event not yet shared" in opened.stderr
    assert PASSWORD not in opened.output


def test_tls_parameters_in_the_url_are_honoured(url: str, tmp_path: Path) -> None:
    """The test server has no TLS: a URL that requires it must fail to connect, saying
    why, instead of the parameter being dropped and the password sent in clear."""
    sep = "&" if "?" in url else "?"
    who = Responder(tmp_path / "x", "x", {"PLAYBOOK_STORE": f"{url}{sep}sslmode=require"})
    status = who("store", "status")
    assert status.exit_code == 5, status.output
    assert "SSL" in status.stdout
    assert PASSWORD not in status.output


# --------------------------------------------------------------------------- round 3: D's breaks


def _files_holding(root: Path, pieces: list[str]) -> list[str]:
    """Every file under ``root`` whose bytes hold one of ``pieces``."""
    return [
        f"{path}: {piece}"
        for path in root.rglob("*")
        if path.is_file()
        for piece in pieces
        if piece.encode() in path.read_bytes()
    ]


def test_every_spelling_of_one_store_finds_the_events_waiting_for_it(
    url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    """The outbox is keyed by what libpq says the URL reaches (hosts, ports, database,
    user), not by its spelling: a TLS parameter added, or libpq's key=value form."""
    alice = Responder(tmp_path / "alice", "alice", {"PLAYBOOK_STORE": url})
    incident = json.loads(alice("open", "data-integrity", "--title", "T", "--json").stdout)["id"]
    pg_ctl_stop_immediate(pg)
    assert alice("severity", incident, "P1", "--reason", "customer data lost").exit_code == 0
    assert alice("note", incident, "restored table X").exit_code == 0

    user, password = url.split("://")[1].split("@")[0].split(":")
    port = url.rsplit(":", 1)[1].split("/")[0]
    spellings = [
        f"{url}?sslmode=disable&connect_timeout=5",
        f"host=127.0.0.1 port={port} dbname=team user={user} password={password}",
    ]
    for spelling in spellings:
        status = alice("--store", spelling, "store", "status", "--json")
        assert json.loads(status.stdout)["pending"] == 2, (spelling, status.output)
    assert len(list((tmp_path / "alice" / "outbox").iterdir())) == 1, "one outbox, one store"

    pg.start()
    synced = alice("--store", spellings[0], "store", "sync")
    assert synced.exit_code == 0, synced.output
    assert synced.stdout.startswith("2 sent"), synced.stdout
    assert [r[4] for r in rows(pg, url, incident)] == ["opened", "severity_changed", "note_added"]


def test_an_outbox_from_an_earlier_playbook_is_taken_over_with_its_events(
    url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    """Before, an outbox was named by a hash of the redacted URL and kept that URL
    inside: after the upgrade its waiting events are still found (and sent), and the
    URL inside is replaced by the store's key."""
    import hashlib
    import sqlite3

    from playbook.redaction import redact
    from playbook.store.choice import StoreChoice, outbox_dir

    home = tmp_path / "alice"
    alice = Responder(home, "alice", {"PLAYBOOK_STORE": url})
    incident = json.loads(alice("open", "data-integrity", "--title", "T", "--json").stdout)["id"]
    pg_ctl_stop_immediate(pg)
    assert alice("note", incident, "written by the old playbook").exit_code == 0
    # Make it what the earlier playbook left: its folder name, its meta.
    folder = outbox_dir(home, StoreChoice(url, "test"))
    legacy = folder.parent / hashlib.sha256(redact(url).encode()).hexdigest()[:16]
    folder.rename(legacy)
    with sqlite3.connect(legacy / "outbox.sqlite3") as conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'server'", (redact(url),))
    conn.close()

    pg.start()
    synced = alice("store", "sync")
    assert synced.exit_code == 0 and synced.stdout.startswith("1 sent"), synced.output
    assert [r[4] for r in rows(pg, url, incident)] == ["opened", "note_added"]
    assert not legacy.exists() and folder.is_dir()
    assert _files_holding(home, [redact(url)]) == [], "the URL is no longer kept on disk"


def test_a_store_password_holding_uri_delimiters_is_hidden_whole(
    url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    """libpq reads ``#`` and ``?`` in the userinfo as part of the password (``/`` and
    ``@`` percent-encoded): no piece of it is shown, in the status, in the error of a
    server that is down, from --store or PLAYBOOK_STORE, or written to any local file."""
    from urllib.parse import quote

    from psycopg import sql

    secret = "CAROLpwLEAK#tail9?qu/ery@end55"
    pieces = [secret, "CAROLpwLEAK", "tail9", "end55", quote(secret, safe="")]
    with pg.connect() as admin:
        admin.execute("DROP ROLE IF EXISTS carol")
        admin.execute(sql.SQL("CREATE ROLE carol LOGIN PASSWORD {}").format(sql.Literal(secret)))
    init(url, grant_to=["carol"])
    carol_url = url.replace(url.split("://")[1].split("@")[0], f"carol:{quote(secret, '#?')}")
    assert "#" in carol_url and "?" in carol_url.split("@")[0]

    home = tmp_path / "carol"
    for how in ("--store", "PLAYBOOK_STORE"):
        args, env = (("--store", carol_url), {}) if how == "--store" else ((), {how: carol_url})
        carol = Responder(home, "carol", env)
        status = carol(*args, "store", "status")
        assert status.exit_code == 0 and "reachable: yes" in status.stdout, status.output
        opened = carol(*args, "open", "data-integrity", "--title", "T", "--json")
        assert opened.exit_code == 0, opened.output
        assert not any(p in status.output + opened.output for p in pieces), status.output
    assert {r[2] for r in rows(pg, url)} == {"carol"}, "libpq connected with the password"

    pg_ctl_stop_immediate(pg)
    for how in ("--store", "PLAYBOOK_STORE"):
        args, env = (("--store", carol_url), {}) if how == "--store" else ((), {how: carol_url})
        down = Responder(home, "carol", env)(*args, "store", "status")
        assert down.exit_code == 5 and "Cannot reach" in down.stdout, down.output
        assert not any(p in down.output for p in pieces), down.output
    assert _files_holding(home, pieces) == []


@pytest.mark.parametrize("source", ["--store", "PLAYBOOK_STORE", "config"])
def test_env_placeholders_are_expanded_in_every_source_of_the_store(
    source: str, url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    templated = url.replace(PASSWORD, "${TEAM_PW}")
    env = {"TEAM_PW": PASSWORD, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    args: tuple[str, ...] = ()
    if source == "--store":
        args = ("--store", templated)
    elif source == "PLAYBOOK_STORE":
        env[source] = templated
    else:
        (tmp_path / "config" / "playbook").mkdir(parents=True)
        (tmp_path / "config" / "playbook" / "playbook.toml").write_text(
            f'[store]\nurl = "{templated}"\n'
        )
    dana = Responder(tmp_path / "dana", "dana", env)
    opened = dana(*args, "open", "data-integrity", "--title", "T", "--json")
    assert opened.exit_code == 0, opened.output
    assert "not yet shared" not in opened.stderr, "it reached the server"
    assert [r[2] for r in rows(pg, url, json.loads(opened.stdout)["id"])] == ["dana"]


def test_a_note_after_a_gap_left_before_the_order_check_lands_and_is_reported_as_written(
    url: str, pg: PostgresServer, tmp_path: Path
) -> None:
    """A log from before the server checked the order may hold a planted row at seq 50:
    the next event is 51 (the server accepts nothing else), and the CLI says 51."""
    alice = Responder(tmp_path / "alice", "alice", {"PLAYBOOK_STORE": url})
    incident = json.loads(alice("open", "data-integrity", "--title", "T", "--json").stdout)["id"]
    with pg.connect(url) as owner:  # as a log written before migration 2 could be
        owner.execute("ALTER TABLE playbook.events DISABLE TRIGGER events_in_order")
        owner.execute(
            "INSERT INTO playbook.events (incident_id, seq, event_id, at, actor, type,"
            " payload, schema) VALUES (%s, 50, gen_random_uuid(), now(), 'bob',"
            " 'note_added', '{\"text\": \"planted\"}', 1)",
            (incident,),
        )
        owner.execute("ALTER TABLE playbook.events ENABLE TRIGGER events_in_order")
    noted = alice("note", incident, "P1 confirmed with the DBA")
    assert noted.exit_code == 0, noted.output
    assert f"Noted on {incident} (event 51)." in noted.stdout
    assert [(r[1], r[2], r[4]) for r in rows(pg, url, incident)][-1] == (51, "alice", "note_added")
