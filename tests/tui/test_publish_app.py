"""The app walks compose → check → preview → publish, and a blocked message is never
sent from it."""

from __future__ import annotations

from pathlib import Path

import pytest
from publish_support import (
    SECRETS,
    SLACK_PATH,
    publishable_runbook,
    running_standin,
)
from textual.widgets import Input, Static
from tui_support import SIZE, events, make_app, on_incident, until

from playbook.adapters.plugins import load_playbook as load
from playbook.service import Service
from playbook.tui.screens.composer import ComposerScreen
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.publish import PublishScreen


@pytest.fixture
def standin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with running_standin(tmp_path, monkeypatch) as state:
        yield state


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


class Crash(BaseException):
    """The process dying between a send and its result (nothing catches it)."""


async def test_the_app_resends_what_a_crash_left_unknown(
    service: Service, runbook, standin, monkeypatch
) -> None:
    from playbook.core import events as ev
    from playbook.service import publishing

    incident = service.open(runbook, "Chat history missing").id
    earlier = publishing.draft(
        service.context, incident, "initial", {"specific_issues": "slow"}, ["slack"]
    )

    def die(_dest: str) -> None:
        raise Crash

    monkeypatch.setattr(publishing, "after_send", die)
    with pytest.raises(Crash):
        publishing.publish(service.context, earlier)
    monkeypatch.setattr(publishing, "after_send", None)
    assert len(standin.posts(SLACK_PATH)) == 1  # out, with no result recorded

    app = make_app(service, runbook, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await _to_preview(pilot, app, "missing messages")
        shown = str(screen.query_one("#publish-preview", Static).render())
        assert "held: slack:" in shown and "Ctrl+R" in shown
        await until(pilot, lambda: screen.query("FooterKey"), "the footer's keys")
        footer = [key.description for key in screen.query("FooterKey")]
        assert "Resend" in footer
        await pilot.press("f1")
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen", "help")
        helped = str(app.screen.query_one("#help-text", Static).render())
        assert "Ctrl+R resends" in helped and "ctrl+r" in helped.lower()
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is screen, "back on the publish step")

        await pilot.press("ctrl+s")  # held: nothing goes out anywhere
        await until(pilot, lambda: any("may already be out" in s for s in app.said), "held")
        assert app.screen is screen and len(standin.posts(SLACK_PATH)) == 1
        assert standin.posts("/sp/") == []

        await pilot.press("ctrl+r")  # the responder's decision: send it anyway
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "published")
    assert len(standin.posts(SLACK_PATH)) == 2 and len(standin.posts("/sp/")) == 1
    results = [e.payload for e in service.get(incident).events if e.type == ev.PUBLISH_RESULT]
    slack = [r for r in results if r["destination"] == "slack"]
    assert [r["outcome"] for r in slack] == ["unknown", "published"]
    assert slack[1]["text"] in standin.posts(SLACK_PATH)[1].body["text"]  # what was resent
