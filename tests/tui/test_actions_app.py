"""Guarded actions from the app: g shows the dry run and the backup, then waits for the
typed phrase before anything is written."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import RedisServer, fingerprint, load_seed_000, redis_server
from textual.widgets import Input, OptionList, Static
from tui_support import make_app, on_incident, until

from playbook.adapters.plugins import load_playbook as load
from playbook.core.clock import FakeClock
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.tui.screens.action import ActionScreen

RUNBOOK = Path(__file__).resolve().parents[2] / "runbooks" / "redis-index-loss.yaml"
LIVE = "discord:messages:[pcu]*"


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[Service]:
    store = SQLiteStore(tmp_path / "data")
    yield Service(store, clock=clock, actor="alice")
    store.close()


async def on_action(pilot: Any, ident: str) -> Any:
    """The incident screen, with the recovery checklist's action line ``ident`` highlighted."""
    screen = await on_incident(pilot)
    await until(pilot, lambda: screen.playbook is not None, "the playbook read")
    screen.action_phase("recovery")
    checklist = screen.query_one("#checklist", OptionList)
    checklist.focus()
    ids = [checklist.get_option_at_index(i).id or "" for i in range(checklist.option_count)]
    checklist.highlighted = ids.index(ident)
    return screen


def body(app: Any) -> str:
    return str(app.screen.query_one("#action-body", Static).render())


@pytest.mark.parametrize("typed_first", ["", "yes"])
async def test_g_runs_the_rebuild_only_after_the_phrase_is_typed(
    service: Service, redis: RedisServer, typed_first: str, request: pytest.FixtureRequest
) -> None:
    client = redis.client()
    request.addfinalizer(client.close)
    client.flushall()
    load_seed_000(client, messages=6_000)
    healthy = fingerprint(client, LIVE)
    for key in list(client.scan_iter(match=LIVE, count=10_000)):
        client.delete(key)
    loaded = load(RUNBOOK)
    incident = service.open(loaded, "indexes gone").id
    app = make_app(service, loaded, resume=incident)
    app.target_overrides = (f"cache={redis.uri}",)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_action(pilot, "act:recovery.safe-rebuild:rebuild-indexes")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, ActionScreen), "the action screen")
        phrase = app.screen.query_one("#phrase", Input)
        await until(pilot, lambda: not phrase.disabled, "the confirmation asked", rounds=20_000)
        assert "create 6,049" in body(app) and "sha256" in body(app)
        assert fingerprint(client, LIVE) == {}, "nothing may be written before the phrase"

        if typed_first:
            await pilot.press(*typed_first, "enter")
            await until(pilot, lambda: "Not confirmed" in body(app), "the refusal")
            assert fingerprint(client, LIVE) == {}
        await pilot.press(*"cache", "enter")
        await until(pilot, lambda: "Applied and verified" in body(app), "the apply", 20_000)

        assert fingerprint(client, LIVE) == healthy
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ActionScreen), "closed")
        (run,) = service.get(incident).state.actions.values()
        assert run.status == "applied and verified"
        stages = [f"{s['stage']} {s['outcome']}" for s in run.stages]
        assert ("confirm refused" in stages) == bool(typed_first)

        # Later, G rolls the run back from its backup, again only after the phrase.
        await until(pilot, lambda: screen.state.actions, "the run shown")
        await pilot.press("G")
        await until(pilot, lambda: isinstance(app.screen, ActionScreen), "the rollback screen")
        phrase = app.screen.query_one("#phrase", Input)
        await until(pilot, lambda: not phrase.disabled, "the phrase asked", rounds=20_000)
        assert fingerprint(client, LIVE) == healthy
        await pilot.press(*"cache", "enter")
        await until(pilot, lambda: "Rolled back" in body(app), "the rollback", 20_000)
        assert fingerprint(client, LIVE) == {}
    assert service.get(incident).state.actions[run.run].status == "rolled back"


async def test_an_action_with_parameters_asks_for_them_before_its_dry_run(
    service: Service, redis: RedisServer, request: pytest.FixtureRequest
) -> None:
    from playbook.tui.screens.diagnostics import ParamsDialog

    client = redis.client()
    request.addfinalizer(client.close)
    client.flushall()
    client.sadd("discord:messages:old-7:project:1", "kept by a rebuild")
    client.sadd("discord:messages:project:1", "live")
    client.set("discord:health:lastMessageCount", 1)  # verify's baseline: one live index
    loaded = load(RUNBOOK)
    incident = service.open(loaded, "clean up").id
    app = make_app(service, loaded, resume=incident)
    app.target_overrides = (f"cache={redis.uri}",)
    async with app.run_test(size=(120, 40)) as pilot:
        await on_action(pilot, "act:recovery.clean-up:drop-old-indexes")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, ParamsDialog), "the parameters")
        field = app.screen.query_one("#param-pattern", Input)
        assert field.value == "discord:messages:old-*"
        field.value = "discord:messages:old-7:*"
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, ActionScreen), "the action screen")
        phrase = app.screen.query_one("#phrase", Input)
        await until(pilot, lambda: not phrase.disabled, "the confirmation asked", rounds=20_000)
        assert "delete 1" in body(app)
        await pilot.press(*"cache", "enter")
        await until(pilot, lambda: "verify index-drop" in body(app), "the verify", 20_000)
        assert "Applied and verified" in body(app)
    assert not client.exists("discord:messages:old-7:project:1")
    assert client.smembers("discord:messages:project:1") == {b"live"}


def rebuild_with_collector(
    service: Service, redis: RedisServer, client: Any, when: str
) -> tuple[str, Any, bytes]:
    """Seed 000's rebuild run through the service, a collector writing to one index
    ``between`` the backup and the apply, or ``after`` the apply. (incident, run, key)"""
    from playbook.targets import Target

    client.flushall()
    load_seed_000(client, messages=6_000)
    key = next(iter(client.scan_iter(match="discord:messages:user:*", count=10_000)))
    for live in list(client.scan_iter(match=LIVE, count=10_000)):
        client.delete(live)
    loaded = load(RUNBOOK)
    incident = service.open(loaded, "indexes gone").id
    targets = {"cache": Target("cache", redis.uri, "test")}
    run = service.start_action(incident, "rebuild-indexes", {}, targets)
    run.dry_run()
    run.backup()
    run.confirm("cache")
    if when == "between":
        client.sadd(key, "written by the collector")
    run.apply()
    if when == "after":
        client.sadd(key, "written by the collector")
    return incident, run, key


async def test_g_offers_no_rollback_of_a_run_that_wrote_nothing(
    service: Service, redis: RedisServer, request: pytest.FixtureRequest
) -> None:
    client = redis.client()
    request.addfinalizer(client.close)
    incident, run, key = rebuild_with_collector(service, redis, client, "between")
    assert not service.get(incident).state.actions[run.run_id].wrote
    before = fingerprint(client, "*")
    app = make_app(service, load(RUNBOOK), resume=incident)
    app.target_overrides = (f"cache={redis.uri}",)
    async with app.run_test(size=(120, 40)) as pilot:
        await on_action(pilot, "act:recovery.safe-rebuild:rebuild-indexes")
        await pilot.press("G")
        await until(pilot, lambda: app.said, "a notice")
        assert app.said[-1] == "No run of rebuild-indexes can be rolled back."
        assert not isinstance(app.screen, ActionScreen)
    assert fingerprint(client, "*") == before
    assert client.smembers(key) == {b"written by the collector"}


async def test_g_keeps_what_changed_since_the_apply_and_force_needs_its_own_phrase(
    service: Service, redis: RedisServer, request: pytest.FixtureRequest
) -> None:
    client = redis.client()
    request.addfinalizer(client.close)
    incident, run, key = rebuild_with_collector(service, redis, client, "after")
    kept = client.smembers(key)
    app = make_app(service, load(RUNBOOK), resume=incident)
    app.target_overrides = (f"cache={redis.uri}",)
    async with app.run_test(size=(120, 40)) as pilot:
        await on_action(pilot, "act:recovery.safe-rebuild:rebuild-indexes")
        await pilot.press("G")
        await until(pilot, lambda: isinstance(app.screen, ActionScreen), "the rollback screen")
        phrase = app.screen.query_one("#phrase", Input)
        await until(pilot, lambda: not phrase.disabled, "the phrase asked", rounds=20_000)
        await pilot.press(*"cache", "enter")
        await until(pilot, lambda: "Rolled back" in body(app), "the rollback", 20_000)
        assert f"kept 1: {key.decode()} changed after the apply" in body(app)
        assert fingerprint(client, LIVE) == {key: (b"set", frozenset(kept))}

        await until(pilot, lambda: not phrase.disabled, "the force phrase asked")
        assert "'force cache'" in body(app)
        await pilot.press(*"cache", "enter")  # the ordinary phrase does not force
        await until(pilot, lambda: "Not forced" in body(app), "the refusal")
        assert fingerprint(client, LIVE) == {key: (b"set", frozenset(kept))}
        await pilot.press(*"force cache", "enter")
        await until(pilot, lambda: "overwritten 1" in body(app), "the forced rollback", 20_000)
        assert fingerprint(client, LIVE) == {}
    rollbacks = [
        s
        for s in service.get(incident).state.actions[run.run_id].stages
        if s["stage"] == "rollback"
    ]
    assert [(s["outcome"], s.get("forced")) for s in rollbacks] == [
        ("started", False),
        ("done", False),
        ("started", True),
        ("done", True),
    ]
