"""Team mode in the app: two responders' apps (two `App`s in one process, Pilot) on one
store see each other's changes live, with who made them; a severity change someone
superseded is refused and can be redone; the incident list shows who else has an
incident open; the header says when the shared store is out of reach, and the outbox is
shared when it is back. Real PostgreSQL (and SQLite, which can be followed too)."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from pgserver import PostgresServer, postgres_server
from servers import PASSWORD
from tui_support import SIZE, make_app, on_incident, until

from playbook.adapters.plugins import load_playbook
from playbook.service import Service
from playbook.store.outbox import OutboxStore
from playbook.store.postgres import PostgresStore, init
from playbook.store.sqlite import SQLiteStore
from playbook.tui.screens.conflict import StaleChangeDialog
from playbook.tui.screens.dialogs import SeverityDialog
from playbook.tui.screens.start import StartScreen
from playbook.tui.widgets.incident_list import IncidentList

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def team_url(pg: PostgresServer) -> str:
    url = pg.add_owner("team", PASSWORD, "team")
    init(url)
    return url


@pytest.fixture
def url(pg: PostgresServer, team_url: str) -> str:
    if pg.proc is None or pg.proc.poll() is not None:
        pg.proc = None
        pg.start()
    with pg.connect(team_url) as conn:
        conn.execute("TRUNCATE playbook.events, playbook.presence")
    return team_url


@pytest.fixture
def responders(url: str, tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    made = [
        Service(OutboxStore(PostgresStore(url), tmp_path / who), actor=who)
        for who in ("alice", "bob")
    ]
    yield made[0], made[1]
    for service in made:
        service.store.close()


def server_rows(pg: PostgresServer, url: str, incident: str) -> list[tuple]:
    with pg.connect(url) as conn:
        return conn.execute(
            "SELECT actor, type, payload::text FROM playbook.events WHERE incident_id = %s"
            " ORDER BY seq",
            (incident,),
        ).fetchall()


async def test_a_tick_in_one_app_shows_in_the_other_within_a_second_with_who(
    responders: tuple[Service, Service], loaded
) -> None:
    alice, bob = responders
    incident = alice.open(loaded, "Orders missing").id
    a_app, b_app = make_app(alice, loaded, incident), make_app(bob, loaded, incident)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(a_app.run_test(size=SIZE))
        b = await stack.enter_async_context(b_app.run_test(size=SIZE))
        a_screen, b_screen = await on_incident(a), await on_incident(b)
        await until(a, lambda: a_screen._following is not None, "alice follows")
        b_screen.checklist.focus()
        await until(b, lambda: b_screen.checklist.highlighted_id.startswith("item:"), "an item")
        ticked = b_screen.checklist.highlighted_id.split(":", 1)[1]
        await b.press("space")
        await until(b, lambda: ticked in bob.get(incident).state.done, "bob's tick recorded")
        committed = time.monotonic()
        await until(a, lambda: ticked in (a_screen.state.done if a_screen.state else ()), "seen")
        assert time.monotonic() - committed < 1.0, "another responder's tick took over 1 s"
        await until(a, lambda: any(s.startswith("bob ticked") for s in a_app.said), "who")
        assert f"bob ticked {ticked}" in a_app.said


async def test_a_severity_change_someone_superseded_is_refused_shown_and_redone(
    responders: tuple[Service, Service], pg: PostgresServer, url: str
) -> None:
    alice, bob = responders
    three_levels = load_playbook(ROOT / "runbooks" / "redis-index-loss.yaml")
    incident = alice.open(three_levels, "Index gone").id
    assert alice.get(incident).state.severity == "P2"
    app = make_app(alice, three_levels, incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, SeverityDialog), "severity dialog")
        bob.change_severity(incident, "P3", "only one shard")  # while alice's dialog is open
        await pilot.press("up", "enter")  # P1, then on to the reason
        await pilot.press(*"customers hit", "ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, StaleChangeDialog), "the conflict")
        shown = app.screen.error.title
        assert "bob set it to P3" in shown and "based on P2" in shown
        assert [r[1] for r in server_rows(pg, url, incident)].count("severity_changed") == 1
        await pilot.press("enter")  # redo on P3
        await until(pilot, lambda: alice.get(incident).state.severity == "P1", "redone")
        assert [(r[0], r[1]) for r in server_rows(pg, url, incident)][-2:] == [
            ("bob", "severity_changed"),
            ("alice", "severity_changed"),
        ]
        await until(pilot, lambda: not isinstance(app.screen, SeverityDialog), "dialog closed")


async def test_the_list_shows_who_else_has_an_incident_open(
    responders: tuple[Service, Service], loaded
) -> None:
    alice, bob = responders
    incident = alice.open(loaded, "Orders missing").id
    a_app, b_app = make_app(alice, loaded), make_app(bob, loaded, incident)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(a_app.run_test(size=SIZE))
        b = await stack.enter_async_context(b_app.run_test(size=SIZE))
        await on_incident(b)
        await until(a, lambda: isinstance(a_app.screen, StartScreen), "alice's list")
        listed = a_app.screen.query_one(IncidentList)
        await until(a, lambda: bob.store.presence(incident), "bob present on the server")
        a_app.screen.read_presence()
        await until(a, lambda: listed.presence.get(incident) == ["bob"], "bob in alice's list")
        line = str(listed.get_option(f"incident:{incident}").prompt)
        assert "[bob]" in line


async def test_offline_the_header_says_so_and_the_tick_is_shared_on_reconnect(
    responders: tuple[Service, Service], pg: PostgresServer, url: str, loaded
) -> None:
    alice, _bob = responders
    incident = alice.open(loaded, "Orders missing").id
    app = make_app(alice, loaded, incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        await until(pilot, lambda: screen._following is not None, "following")
        subprocess.run(
            [str(pg.bindir / "pg_ctl"), "stop", "-D", str(pg.data), "-m", "immediate"],
            check=True,
            capture_output=True,
            timeout=60,
            **pg._as_owner(),
        )
        pg.proc.wait(timeout=30)
        pg.proc = None
        await until(pilot, lambda: screen.view.header.offline.startswith("offline"), "offline")
        screen.checklist.focus()
        await until(pilot, lambda: screen.checklist.highlighted_id.startswith("item:"), "item")
        ticked = screen.checklist.highlighted_id.split(":", 1)[1]
        await pilot.press("space")
        await until(
            pilot,
            lambda: screen.view.header.offline == "offline: 1 event not yet shared",
            "the tick waits in the outbox",
        )
        pg.start()
        await until(pilot, lambda: screen.view.header.offline == "", "back online", 20000)
    assert [(r[0], r[1]) for r in server_rows(pg, url, incident)] == [
        ("alice", "opened"),
        ("alice", "item_checked"),
    ]
    assert ticked in server_rows(pg, url, incident)[1][2]


async def test_two_apps_on_one_sqlite_file_see_each_other(tmp_path: Path, loaded) -> None:
    alice = Service(SQLiteStore(tmp_path / "data"), actor="alice")
    bob = Service(SQLiteStore(tmp_path / "data"), actor="bob")
    incident = alice.open(loaded, "Orders missing").id
    a_app = make_app(alice, loaded, incident)
    async with a_app.run_test(size=SIZE) as a:
        screen = await on_incident(a)
        await until(a, lambda: screen._following is not None, "following")
        bob.note(incident, "replica is 2 h behind")
        await until(a, lambda: any("bob added a note" in s for s in a_app.said), "bob's note")
        await until(a, lambda: screen.state and screen.state.last_seq == 2, "the view read again")
    alice.store.close()
    bob.store.close()
