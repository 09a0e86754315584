"""Roles enforced in team mode, in the app: two responders' apps (two `App`s in one
process, Pilot) on one shared PostgreSQL store. Bob's severity change is refused while
alice commands, with her name and how to take over shown, and nothing reaches the server;
alice's goes through and shows in bob's app; a scribe's note is marked in the app's
timeline; the action screen names who ran each stage."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from pgserver import PostgresServer, postgres_server
from roles_support import enforced_playbook
from servers import PASSWORD
from tui_support import SIZE, make_app, on_incident, until

from playbook.service import Service
from playbook.store.outbox import OutboxStore
from playbook.store.postgres import PostgresStore, init
from playbook.tui.screens.dialogs import SeverityDialog
from playbook.tui.screens.timeline import TimelineScreen
from playbook.tui.widgets.timeline_view import TimelineView


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    with postgres_server() as server:
        yield server


@pytest.fixture(scope="module")
def url(pg: PostgresServer) -> str:
    url = pg.add_owner("team", PASSWORD, "team")
    init(url)
    return url


@pytest.fixture
def responders(url: str, tmp_path: Path) -> Iterator[tuple[Service, Service]]:
    made = [
        Service(OutboxStore(PostgresStore(url), tmp_path / who), actor=who)
        for who in ("alice", "bob")
    ]
    yield made[0], made[1]
    for service in made:
        service.store.close()


def server_types(pg: PostgresServer, url: str, incident: str) -> list[tuple[str, str]]:
    with pg.connect(url) as conn:
        rows = conn.execute(
            "SELECT actor, type FROM playbook.events WHERE incident_id = %s ORDER BY seq",
            (incident,),
        ).fetchall()
    return [(r[0], r[1]) for r in rows]


async def change_severity_up(pilot, reason: str) -> None:
    app = pilot.app
    await pilot.press("v")
    await until(pilot, lambda: isinstance(app.screen, SeverityDialog), "severity dialog")
    await pilot.press("up", "enter")  # P1, then on to the reason
    await pilot.press(*reason, "ctrl+s")


async def test_only_the_commanders_app_changes_severity(
    responders: tuple[Service, Service], pg: PostgresServer, url: str, tmp_path: Path
) -> None:
    alice, bob = responders
    enforced = enforced_playbook(tmp_path / "pb")
    incident = alice.open(enforced, "Orders missing").id
    alice.assign_role(incident, "commander", "alice")
    before = server_types(pg, url, incident)
    a_app, b_app = make_app(alice, enforced, incident), make_app(bob, enforced, incident)
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(a_app.run_test(size=SIZE))
        b = await stack.enter_async_context(b_app.run_test(size=SIZE))
        a_screen, b_screen = await on_incident(a), await on_incident(b)
        await until(b, lambda: b_screen._following is not None, "bob follows")

        await change_severity_up(b, "customers hit")
        await until(b, lambda: any("incident commander" in s for s in b_app.said), "refused")
        said = next(s for s in b_app.said if "incident commander" in s)
        assert "alice is the incident commander" in said
        assert f"playbook handover {incident} commander bob" in said
        assert server_types(pg, url, incident) == before  # nothing reached the shared log
        assert bob.get(incident).state.severity == "P2"

        await until(a, lambda: a_screen.state is not None, "alice's incident")
        await change_severity_up(a, "customers hit")
        await until(a, lambda: alice.get(incident).state.severity == "P1", "alice's change")
        assert server_types(pg, url, incident)[-1] == ("alice", "severity_changed")
        await until(b, lambda: b_screen.state and b_screen.state.severity == "P1", "seen live")


async def test_a_scribes_note_is_marked_in_the_apps_timeline(
    responders: tuple[Service, Service], tmp_path: Path, loaded
) -> None:
    alice, bob = responders
    incident = alice.open(loaded, "Orders missing").id
    alice.note(incident, "before the role")
    alice.assign_role(incident, "scribe", "alice")
    alice.note(incident, "replica lag 40 s")
    app = make_app(bob, loaded, incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TimelineScreen), "the timeline")
        view = app.screen.query_one(TimelineView)
        await until(pilot, lambda: view.row_count > 0, "rows")
        events = [row[-1] for row in view.rows]
        assert "Note (scribe): replica lag 40 s" in events
        assert "Note: before the role" in events


async def test_the_action_screen_names_who_ran_each_stage(tmp_path: Path) -> None:
    """Alice applies a guarded action in the app; later bob, on the same log, rolls it
    back with G: his screen lists who ran the run's earlier stages, and names him on the
    rollback, and the stage events carry the same names."""
    from servers import load_seed_000, redis_server
    from textual.widgets import Input, OptionList, Static

    from playbook.adapters.plugins import load_playbook
    from playbook.store.sqlite import SQLiteStore
    from playbook.tui.screens.action import ActionScreen

    runbook = Path(__file__).resolve().parents[2] / "runbooks" / "redis-index-loss.yaml"
    loaded = load_playbook(runbook)
    store = SQLiteStore(tmp_path / "data")
    service = Service(store, actor="alice")

    def body(app) -> str:
        return str(app.screen.query_one("#action-body", Static).render())

    with redis_server() as redis:
        client = redis.client()
        try:
            load_seed_000(client, messages=2_100)
            for key in list(client.scan_iter(match="discord:messages:[pcu]*", count=10_000)):
                client.delete(key)
            incident = service.open(loaded, "indexes gone").id
            app = make_app(service, loaded, incident)
            app.target_overrides = (f"cache={redis.uri}",)
            async with app.run_test(size=(120, 40)) as pilot:
                screen = await on_incident(pilot)
                await until(pilot, lambda: screen.playbook is not None, "the playbook read")
                screen.action_phase("recovery")
                checklist = screen.query_one("#checklist", OptionList)
                checklist.focus()
                ids = [
                    checklist.get_option_at_index(i).id or "" for i in range(checklist.option_count)
                ]
                checklist.highlighted = ids.index("act:recovery.safe-rebuild:rebuild-indexes")
                await pilot.press("g")
                await until(pilot, lambda: isinstance(app.screen, ActionScreen), "action screen")
                phrase = app.screen.query_one("#phrase", Input)
                await until(pilot, lambda: not phrase.disabled, "the phrase asked", 20_000)
                assert "✓ dry run — alice" in body(app) and "✓ backup — alice" in body(app)
                await pilot.press(*"cache", "enter")
                await until(pilot, lambda: "Applied and verified — alice" in body(app), "applied")
                await pilot.press("escape")
                await until(pilot, lambda: not isinstance(app.screen, ActionScreen), "closed")

                service.actor = "bob"  # another responder on the same log, later
                await until(pilot, lambda: screen.state.actions, "the run shown")
                await pilot.press("G")
                await until(pilot, lambda: isinstance(app.screen, ActionScreen), "rollback")
                phrase = app.screen.query_one("#phrase", Input)
                await until(pilot, lambda: not phrase.disabled, "the phrase asked", 20_000)
                assert "dry run — alice" in body(app) and "apply — alice" in body(app)
                await pilot.press(*"cache", "enter")
                await until(pilot, lambda: "Rolled back" in body(app), "rolled back", 20_000)
                assert "Rolled back from the backup — bob" in body(app)
            (run,) = service.get(incident).state.actions.values()
            who = run.who_ran()
            assert ("apply", "alice") in who and ("rollback", "bob") in who
        finally:
            client.close()
            store.close()
