"""Driving the app in tests: wait for conditions, never for time."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from textual.pilot import Pilot

from playbook.service import Service
from playbook.tui.app import PlaybookApp
from playbook.tui.screens.incident import IncidentScreen

SIZE = (80, 24)


async def until(
    pilot: Pilot[Any], condition: Callable[[], object], what: str, rounds: int = 2000
) -> None:
    """Let the app run until ``condition`` holds (bounded by rounds, not by a clock)."""
    for _ in range(rounds):
        if condition():
            return
        await pilot.pause()
    raise AssertionError(f"never happened: {what}")


async def on_incident(pilot: Pilot[Any]) -> IncidentScreen:
    """Wait until the incident screen shows a loaded incident, and return it."""
    app = pilot.app
    await until(
        pilot,
        lambda: isinstance(app.screen, IncidentScreen) and app.screen.state is not None,
        "the incident screen",
    )
    assert isinstance(app.screen, IncidentScreen)
    return app.screen


def events(service: Service, incident: str) -> list[str]:
    return [e.type for e in service.get(incident).events]


class RecordingApp(PlaybookApp):
    """The app, with the notifications it showed kept for the test to read."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.said: list[str] = []

    def notify(self, message: str, **kwargs: Any) -> None:  # type: ignore[override]
        self.said.append(message)
        super().notify(message, **kwargs)


def make_app(service: Service, loaded, resume: str | None = None) -> RecordingApp:
    return RecordingApp(service, loaded, resume, tick_seconds=0.05, refresh_seconds=3600)
