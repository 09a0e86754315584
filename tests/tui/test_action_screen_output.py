"""The action screen shows what the timeline records: a secret planted in the data is
masked in the plan and in what a rollback kept; the phrase is taken only exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_actions_support import DROP_STEP, write_playbook
from servers import PASSWORD, RedisServer, redis_server
from textual.widgets import Input, OptionList, Static
from tui_support import make_app, on_incident, until

from playbook import redaction
from playbook.adapters.plugins import load_playbook as load
from playbook.core.clock import FakeClock
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.tui.screens.action import ActionScreen

PLANTED = PASSWORD.encode()


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as srv:
        yield srv


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[Service]:
    redaction._forget_all()  # as a new process: the target's password is learnt from it
    store = SQLiteStore(tmp_path / "data")
    yield Service(store, clock=clock, actor="alice")
    store.close()
    redaction._forget_all()


def body(app: Any) -> str:
    return str(app.screen.query_one("#action-body", Static).render())


async def asked(pilot: Any) -> Input:
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, ActionScreen), "the action screen")
    phrase = app.screen.query_one("#phrase", Input)
    await until(pilot, lambda: not phrase.disabled, "the phrase asked", rounds=20_000)
    return phrase


async def test_the_screen_masks_a_planted_secret_and_takes_only_the_exact_phrase(
    service: Service, redis: RedisServer, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    client = redis.client()
    request.addfinalizer(client.close)
    client.flushall()
    client.set(b"k:" + PLANTED, b"v")
    client.set(b"k:\xff" + PLANTED, b"odd")
    loaded = load(write_playbook(tmp_path / "pb"))
    incident = service.open(loaded, "t").id
    app = make_app(service, loaded, resume=incident)
    app.target_overrides = (f"cache={redis.uri}",)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_incident(pilot)
        await until(pilot, lambda: screen.playbook is not None, "the playbook read")
        screen.action_phase("recovery")
        checklist = screen.query_one("#checklist", OptionList)
        checklist.focus()
        ids = [checklist.get_option_at_index(i).id for i in range(checklist.option_count)]
        checklist.highlighted = ids.index(DROP_STEP)
        await pilot.press("g")
        await asked(pilot)
        shown = body(app)
        assert "delete k:***" in shown and "delete k:\\xff***" in shown
        assert PASSWORD not in shown

        await pilot.press(*" cache", "enter")  # a space before the phrase
        await until(pilot, lambda: "Not confirmed" in body(app), "the refusal")
        assert "without the spaces" in body(app)
        assert client.get(b"k:" + PLANTED) == b"v"  # nothing written
        await pilot.press(*"cache", "enter")
        await until(pilot, lambda: "Applied and verified" in body(app), "the apply", 20_000)
        assert client.exists(b"k:" + PLANTED) == 0
        client.set(b"k:" + PLANTED, b"newer")  # after the apply: the rollback keeps it
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ActionScreen), "closed")

        await until(pilot, lambda: screen.state.actions, "the run shown")
        await pilot.press("G")
        await asked(pilot)
        await pilot.press(*"cache", "enter")
        await until(pilot, lambda: "Rolled back" in body(app), "the rollback", 20_000)
        assert "kept 1: k:*** changed after the apply" in body(app)
        assert PASSWORD not in body(app)
        assert client.get(b"k:" + PLANTED) == b"newer"
        assert client.get(b"k:\xff" + PLANTED) == b"odd"  # restored
