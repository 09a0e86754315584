"""A drill in the app: marked on every screen, briefed once, checked with F.

The drill is real: a tiny runbook's drill starts a redis-server and a mongomock stand-in,
loads a few index sets, takes their fingerprint and deletes them, as `playbook drill` does.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT
from textual.pilot import Pilot
from textual.widgets import OptionList, Static
from tui_support import RecordingApp, on_incident, until

from playbook.adapters.plugins import load_playbook as load
from playbook.core.clock import FakeClock
from playbook.core.loader import LoadedPlaybook
from playbook.drill.run import DrillRun
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.tui.screens.diagnostics import ResultScreen
from playbook.tui.screens.drill import BriefingScreen, ScorecardScreen
from playbook.tui.screens.help import HelpScreen
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.start import StartScreen
from playbook.tui.screens.timeline import TimelineScreen
from playbook.tui.widgets.drill_banner import DrillBanner

MARKUP_KEY = "discord:messages:[b]x[/b]"
INDEXES = [
    ["SADD", "discord:messages:project:1", "m1", "m2"],
    ["SADD", "discord:messages:channel:7", "m1"],
    ["SADD", MARKUP_KEY, "m2"],
]
TITLE = "The tiny rebuild deleted three indexes"
BRIEFING = "The dashboards are empty. [red]Nothing[/red] else is known."


@pytest.fixture(scope="module")
def drill_runbook(tmp_path_factory: pytest.TempPathFactory) -> LoadedPlaybook:
    """The data-integrity runbook with a drill small enough to start in a second."""
    raw = yaml.safe_load((ROOT / "runbooks" / "data-integrity.yaml").read_text())
    folder = tmp_path_factory.mktemp("runbook")
    shutil.copytree(ROOT / "runbooks" / "templates", folder / "templates")
    raw["drill"] = {
        "title": TITLE,
        "source": "a test",
        "briefing": BRIEFING,
        "services": {"cache": "redis", "app-db": "mongo"},
        "load": [
            {"target": "cache", "title": "three index sets", "redis": INDEXES},
            {
                "target": "app-db",
                "mongo": [{"op": "insert", "collection": "users", "documents": [{"_id": 1}]}],
            },
        ],
        "fault": [{"target": "cache", "delete": "discord:messages:*"}],
        "fingerprint": [{"target": "cache", "keys": ["discord:messages:*"]}],
    }
    path = folder / "tiny-drill.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return load(path)


@pytest.fixture
def run(drill_runbook: LoadedPlaybook) -> Iterator[DrillRun]:
    started = DrillRun.start(drill_runbook)
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[Service]:
    store = SQLiteStore(tmp_path / "drills")
    yield Service(store, clock=clock, actor="alice")
    store.close()


def drill_app(service: Service, run: DrillRun | None, incident: str | None) -> RecordingApp:
    """The app as `playbook drill` runs it (``run``), or opening a drill without it."""
    loaded = run.loaded if run is not None else None
    return RecordingApp(
        service, loaded, incident, tick_seconds=0.05, refresh_seconds=3600, drill=run
    )


def banner(screen: Any) -> str:
    """The drill bar on ``screen``, as shown ('' when it has none, or it is hidden)."""
    found = list(screen.query_children(DrillBanner))
    if not found or not found[0].display:
        return ""
    return str(found[0].render())


def footer_key(app: Any, key: str) -> bool:
    """True when the footer offers ``key`` (check_action hides a key that is off for good)."""
    found = app.active_bindings.get(key)
    return found is not None and found.enabled and found.binding.show


def shown(screen: Any, selector: str) -> str:
    """The text of ``selector`` on ``screen`` ('' until the screen has composed it)."""
    found = screen.query(selector).results(Static)
    return next((str(w.render()) for w in found), "")


def verdict(screen: Any) -> str:
    """The scorecard's top line once the check is done ('' while it runs)."""
    head = shown(screen, "#card-check")
    return "" if "Comparing" in head else head


async def briefed(pilot: Pilot[Any]) -> IncidentScreen:
    """Wait for the briefing over the incident, close it, and return the incident screen."""
    app = pilot.app
    await until(pilot, lambda: isinstance(app.screen, BriefingScreen), "the briefing")
    await pilot.press("escape")
    return await on_incident(pilot)


async def test_a_drill_is_briefed_once_and_marked_on_every_screen(
    service: Service, run: DrillRun
) -> None:
    incident = run.open(service, speed=10).id
    app = drill_app(service, run, incident)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(
            pilot,
            lambda: isinstance(app.screen, BriefingScreen) and app.screen.query("#briefing"),
            "the briefing",
        )
        brief = shown(app.screen, "#briefing")
        assert BRIEFING in brief, "the briefing is shown literally, markup and all"
        assert "redis-server" in brief and "(sandbox, 127.0.0.1:" in brief
        assert "app-db" in brief and "mongomock: a MongoDB stand-in" in brief
        await until(pilot, lambda: "DRILL" in banner(app.screen), "the bar on the briefing")

        screen = await briefed(pilot)
        await until(pilot, lambda: "clock ×10" in banner(screen), "the bar on the incident")
        bar = banner(screen)
        assert bar.startswith(" DRILL ") and "\n" not in bar and len(bar) <= 80
        assert TITLE[:20] in bar
        assert "clock ×10" in str(screen.query_one("#timers").render())
        assert footer_key(app, "F")

        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        await until(pilot, lambda: "DRILL" in banner(app.screen), "the bar on help")
        help_text = shown(app.screen, "#help-text")
        assert "This incident is a DRILL" in help_text and "F compares" in help_text
        await pilot.press("escape")

        await on_incident(pilot)
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, TimelineScreen), "the timeline")
        await until(pilot, lambda: "DRILL" in banner(app.screen), "the bar on the timeline")
        await pilot.press("escape")

        # A stand-in is named as one where a result names its target.
        await on_incident(pilot)
        app.push_screen(
            ResultScreen(
                {"diagnostic": "users", "target": "app-db", "verdict": "pass", "title": "t"}
            )
        )
        await until(pilot, lambda: isinstance(app.screen, ResultScreen), "a result")
        await until(pilot, lambda: "DRILL" in banner(app.screen), "the bar on a result")
        head = str(app.screen.query_one("#result-head Static", Static).render())
        assert "target app-db is a stand-in: mongomock" in head
        await pilot.press("escape")

        # Leaving and coming back does not brief again.
        await on_incident(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, StartScreen), "the incident list")
        assert "DRILL" in banner(app.screen), "every screen of `playbook drill` is the drill's"
        app.screen.query_one("#incidents", OptionList).highlighted = 1
        await pilot.press("enter")
        await on_incident(pilot)
        await pilot.pause()
        assert not isinstance(app.screen, BriefingScreen)


async def test_F_compares_the_data_records_the_check_and_shows_the_scorecard(
    service: Service, run: DrillRun
) -> None:
    incident = run.open(service).id
    app = drill_app(service, run, incident)
    async with app.run_test(size=(80, 24)) as pilot:
        await briefed(pilot)
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, ScorecardScreen), "the scorecard")
        card = app.screen
        await until(pilot, lambda: verdict(card), "the check", rounds=20_000)
        assert "DRILL" in banner(card)
        assert "NOT RESTORED" in verdict(card)
        text = shown(card, "#card-text")
        assert MARKUP_KEY in text, "a key from the database is shown literally, not as markup"
        (check,) = service.get(incident).state.drill_checks
        assert not check.restored and check.targets["cache"]["missing"] == 3

        await pilot.press("escape")
        await on_incident(pilot)
        with run.sandbox.handle("cache") as client:  # the responder repairs the indexes
            for command in INDEXES:
                client.execute_command(*command)
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, ScorecardScreen), "the scorecard")
        card = app.screen
        await until(pilot, lambda: verdict(card), "the check", rounds=20_000)
        assert "RESTORED" in verdict(card) and "NOT RESTORED" not in verdict(card)
    assert [c.restored for c in service.get(incident).state.drill_checks] == [False, True]


async def test_a_drill_without_its_sandbox_says_so_and_reaches_no_target(
    service: Service, run: DrillRun
) -> None:
    incident = run.open(service, speed=5).id
    app = drill_app(service, None, None)  # e.g. opened later with `playbook run`
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, StartScreen), "the incident list")
        options = app.screen.query_one("#incidents", OptionList)
        await until(pilot, lambda: options.option_count > 1, "the list read")
        line = str(options.get_option_at_index(1).prompt)
        assert line.startswith(" DRILL ") and incident in line

        options.highlighted = 1
        await pilot.press("enter")
        screen = await briefed(pilot)
        await until(pilot, lambda: "no sandbox here" in banner(screen), "the bar")
        with pytest.raises(Exception, match="sandbox is not running"):
            app.targets(None, screen.state)

        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, ScorecardScreen), "the scorecard")
        card = app.screen
        await until(pilot, lambda: "No new data check" in verdict(card), "the recorded card")
    assert service.get(incident).state.drill_checks == []


async def test_a_real_incident_has_no_drill_mark_and_no_drill_key(
    service: Service, drill_runbook: LoadedPlaybook
) -> None:
    incident = service.open(drill_runbook, "a real one").id
    app = drill_app(service, None, incident)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await on_incident(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        assert "DRILL" not in shown(app.screen, "#help-text")
        assert "Check data" not in shown(app.screen, "#help-text")
        assert banner(app.screen) == "" and banner(screen) == ""
        await pilot.press("escape")
        await on_incident(pilot)
        assert not footer_key(app, "F")
        await pilot.press("F")
        await pilot.pause()
        assert not isinstance(app.screen, ScorecardScreen)


async def test_no_other_incident_is_opened_in_a_drill(service: Service, run: DrillRun) -> None:
    incident = run.open(service).id
    app = drill_app(service, run, incident)
    async with app.run_test(size=(80, 24)) as pilot:
        await briefed(pilot)
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, StartScreen), "the incident list")
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, StartScreen)
        assert any("This app runs a drill" in said for said in app.said)
    assert [s.id for s in service.incidents()] == [incident]


async def test_a_check_still_lands_when_its_scorecard_was_closed_first(
    service: Service, run: DrillRun, monkeypatch: pytest.MonkeyPatch
) -> None:
    incident = run.open(service).id
    gate = threading.Event()
    check = run.check

    def held(*args: Any) -> Any:  # the comparison waits until the test lets it go
        assert gate.wait(timeout=60), "the test never let the check go"
        return check(*args)

    monkeypatch.setattr(run, "check", held)
    app = drill_app(service, run, incident)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await briefed(pilot)
        await pilot.press("F")
        await until(pilot, lambda: isinstance(app.screen, ScorecardScreen), "the scorecard")
        await pilot.press("escape")  # closed while the comparison runs
        await until(pilot, lambda: app.screen is screen, "back on the incident")
        gate.set()
        await until(pilot, lambda: any("Data check recorded" in s for s in app.said), "notice")
        assert "Data check recorded: NOT restored. F shows the scorecard." in app.said
        assert [c.restored for c in screen.state.drill_checks] == [False]  # shown at once
    assert [c.restored for c in service.get(incident).state.drill_checks] == [False]
