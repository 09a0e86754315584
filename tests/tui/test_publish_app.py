"""The app walks compose → check → preview → publish, and a blocked message is never
sent from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from publish_support import (
    SECRETS,
    SLACK_PATH,
    publishable_runbook,
    secret_env,
    start_standin,
    write_config,
)
from textual.widgets import Input, Static
from tui_support import SIZE, events, make_app, on_incident, until

from playbook import redaction
from playbook.adapters.plugins import load_playbook as load
from playbook.publish import http
from playbook.service import Service
from playbook.tui.screens.composer import ComposerScreen
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.publish import PublishScreen


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    state, server = start_standin()
    state.throttle_first = False
    write_config(tmp_path / "config", state.base)
    for name, value in secret_env(state.base).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(http, "sleep", lambda _s: None)
    yield state
    server.shutdown()
    server.server_close()
    redaction._forget_all()


@pytest.fixture
def runbook(tmp_path: Path):
    folder = tmp_path / "rb"
    folder.mkdir()
    return load(publishable_runbook(folder))


async def _to_preview(pilot, app, issue: str) -> PublishScreen:
    await on_incident(pilot)
    await pilot.press("s")
    await until(pilot, lambda: isinstance(app.screen, ComposerScreen), "composer")
    await until(pilot, lambda: isinstance(app.focused, Input), "a field focused")
    await pilot.press(*issue)
    await until(
        pilot, lambda: app.screen.text and app.screen.preview_current, "the composer's preview"
    )
    await pilot.press("f3")
    await until(pilot, lambda: isinstance(app.screen, PublishScreen), "the publish step")
    screen = app.screen
    assert isinstance(screen, PublishScreen)
    await until(pilot, lambda: screen.draft is not None, "the check and previews")
    return screen


async def test_compose_check_preview_publish(service: Service, runbook, standin) -> None:
    incident = service.open(runbook, "Chat history missing").id
    app = make_app(service, runbook, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _to_preview(pilot, app, "missing messages")
        shown = str(screen.query_one("#publish-preview", Static).render())
        assert "check: passed" in shown and "POST" in shown and "PATCH" not in shown
        assert not any(secret in shown for secret in SECRETS)
        assert not screen.draft.blocked
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "back on the incident")
    assert standin.errors == []
    assert len(standin.posts("/sp/")) == 1 and len(standin.posts(SLACK_PATH)) == 1
    kinds = events(service, incident)
    assert kinds.count("publish_intended") == 5 and kinds.count("publish_result") == 5
    assert any("published" in said for said in app.said)


async def test_a_blocked_message_is_not_sent_from_the_app(service: Service, runbook, standin):
    incident = service.open(runbook, "Chat history missing").id
    app = make_app(service, runbook, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _to_preview(pilot, app, "errors at 10.1.2.3")
        assert screen.draft.blocked
        shown = str(screen.query_one("#publish-preview", Static).render())
        assert "private-ip" in shown
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any("blocks" in s for s in app.said), "the refusal said")
        assert isinstance(app.screen, PublishScreen)
    assert standin.requests == []
    assert "publish_intended" not in events(service, incident)
