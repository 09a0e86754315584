"""Diagnostics from the app: a key runs one in the background, its verdict and evidence show."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import LatencyProxy, RedisServer, SilentServer, load_seed_001, redis_server
from textual.pilot import Pilot
from textual.widgets import DataTable, OptionList
from tui_support import SIZE, make_app, on_incident, until

from playbook.core.clock import FakeClock
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.tui.screens.diagnostics import ParamsDialog, ResultScreen


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        client = srv.client()
        load_seed_001(client)
        client.set("discord:health:lastMessageCount", "6049")
        client.set("lock:discord:rebuild", "\x1b[2J[bold]held[/bold]")
        yield srv


async def highlight(pilot: Pilot[Any], screen: Any, diag_id: str, section: str) -> None:
    await until(pilot, lambda: screen.playbook is not None, "the playbook read")
    screen.action_phase(section)
    checklist = screen.query_one("#checklist", OptionList)
    checklist.focus()
    for index in range(checklist.option_count):
        if (checklist.get_option_at_index(index).id or "").endswith(f":{diag_id}"):
            checklist.highlighted = index
            return
    raise AssertionError(f"{diag_id} is not listed under {section}")


def runs(service: Service, incident: str) -> list[dict[str, Any]]:
    return [e.payload for e in service.get(incident).events if e.type == "diagnostic_run"]


async def opened(pilot: Pilot[Any], service: Service) -> Any:
    incident = service.open(None, "indexes gone")
    pilot.app.resume = incident.id
    return incident.id


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[Service]:
    store = SQLiteStore(tmp_path / "data")
    yield Service(store, clock=clock, actor="alice")
    store.close()


async def test_d_runs_the_highlighted_diagnostic_and_shows_its_rows_literally(
    service: Service, loaded: Any, redis: RedisServer
) -> None:
    incident = service.open(loaded, "indexes gone").id
    app = make_app(service, loaded, resume=incident)
    app.target_overrides = (f"cache={redis.uri}",)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_incident(pilot)
        await highlight(pilot, screen, "redis-rebuild-lock", "immediate-response")
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ParamsDialog), "parameters asked")
        await pilot.press("ctrl+s")  # the default pattern
        await until(pilot, lambda: isinstance(app.screen, ResultScreen), "the result")
        recorded = runs(service, incident)
        assert [r["verdict"] for r in recorded] == ["warn"]  # the lock is held
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        cell = str(table.get_row_at(0)[0])
        assert cell == "lock:discord:rebuild"
        await pilot.press("escape")
        line = str(screen.query_one("#checklist", OptionList).highlighted_option.prompt)
        assert "WARN" in line


async def test_a_snapshot_runs_in_the_background_while_the_app_stays_usable(
    service: Service, loaded: Any, redis: RedisServer
) -> None:
    incident = service.open(loaded, "indexes gone").id
    app = make_app(service, loaded, resume=incident)
    with LatencyProxy(redis.port, delay=0.25) as slow:  # a slow link: the run takes seconds
        app.target_overrides = (f"cache={redis.uri_via(slow.port)}",)
        async with app.run_test(size=SIZE) as pilot:
            screen = await on_incident(pilot)
            await highlight(pilot, screen, "redis-snapshot", "immediate-response")
            await pilot.press("D")  # run all of the step's: snapshot and lock check, defaults
            await until(pilot, lambda: "redis-snapshot" in screen.running, "the snapshot running")
            await pilot.press("a")  # acknowledging works meanwhile
            await until(
                pilot, lambda: service.get(incident).state.acknowledged_at is not None, "ack"
            )
            assert "redis-snapshot" in screen.running  # and the snapshot is still going
            await until(
                pilot, lambda: len(runs(service, incident)) == 2, "both recorded", rounds=50_000
            )
    snapshot = next(r for r in runs(service, incident) if r["diagnostic"] == "redis-snapshot")
    assert snapshot["metrics"]["count"] == 6049 and snapshot["verdict"] == "pass"
    assert Path(snapshot["file"]).stat().st_size > 10_000_000


async def test_k_cancels_a_run_stuck_on_a_silent_server(service: Service, loaded: Any) -> None:
    incident = service.open(loaded, "indexes gone").id
    app = make_app(service, loaded, resume=incident)
    with SilentServer() as silent:
        app.target_overrides = (f"cache=redis://127.0.0.1:{silent.port}/0",)
        async with app.run_test(size=SIZE) as pilot:
            screen = await on_incident(pilot)
            await highlight(pilot, screen, "redis-heartbeat", "assessment")
            await pilot.press("d")
            await until(pilot, lambda: isinstance(app.screen, ParamsDialog), "parameters asked")
            await pilot.press("ctrl+s")
            await until(pilot, lambda: silent.spoken.is_set(), "the client waiting on the server")
            await pilot.press("k")
            await until(pilot, lambda: runs(service, incident), "the cancelled run recorded")
            run = runs(service, incident)[0]
            assert run["verdict"] == "error" and "Cancelled" in run["error"]
            assert not screen.running


async def test_a_writing_diagnostic_is_refused_in_the_app(service: Service, loaded: Any) -> None:
    incident = service.open(loaded, "corrupt").id
    service.choose_scenario(incident, "database-corruption")
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        await highlight(pilot, screen, "reindex", "database-corruption")
        await pilot.press("d")
        await until(pilot, lambda: any("never run" in s for s in app.said), "the refusal")
        assert runs(service, incident) == []
