"""A few snapshots of the main screens (Textual is pinned exactly in the test extra).

Review a snapshot diff before accepting it: `pytest tests/tui/test_snapshots.py
--snapshot-update` rewrites them, and `git diff` shows what changed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import pytest
from helpers import T0
from textual.widgets import Input
from tui_support import until

from playbook.core.clock import FakeClock
from playbook.service import Service
from playbook.service import incidents as service_module
from playbook.store.memory import MemoryStore
from playbook.tui.app import PlaybookApp

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def _utc_and_fixed_ids(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(
        service_module, "new_incident_id", lambda now, prefix="": f"{prefix}20260314-demo"
    )
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    yield
    if old is None:
        os.environ.pop("TZ", None)
    else:
        os.environ["TZ"] = old
    time.tzset()


@pytest.fixture(autouse=True)
def _no_cursor_blink(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs start without a blinking cursor, so a snapshot is the same every time."""

    # A plain class attribute in place of the reactive: read as False, never toggled.
    monkeypatch.setattr(Input, "cursor_blink", False)


def make(loaded, *, open_incident: bool, minutes: int = 0) -> tuple[PlaybookApp, Service]:
    clock = FakeClock(T0)
    service = Service(MemoryStore(), clock=clock, actor="alice")
    resume = None
    if open_incident:
        resume = service.open(loaded, "Orders missing since 02:10").id
        service.acknowledge(resume)
        service.check(resume, "assemble-response-team")
        clock.advance(minutes=minutes)
    return PlaybookApp(service, loaded, resume, tick_seconds=3600, refresh_seconds=3600), service


async def _settle(pilot: Any) -> None:
    for _ in range(5):
        await pilot.pause()


def test_start_screen(snap_compare, loaded) -> None:
    app, _ = make(loaded, open_incident=False)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


def test_incident_screen_with_a_warning_timer(snap_compare, loaded) -> None:
    app, _ = make(loaded, open_incident=True, minutes=50)
    assert snap_compare(app, terminal_size=SIZE, run_before=_settle)


def test_status_composer(snap_compare, loaded) -> None:
    app, _ = make(loaded, open_incident=True, minutes=5)

    async def compose(pilot: Any) -> None:
        await _settle(pilot)
        await pilot.press("s")
        await _settle(pilot)
        await pilot.press(*"some orders are missing")
        await until(pilot, lambda: pilot.app.screen.preview_current, "the preview")
        await _settle(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=compose)


def test_too_small_terminal(snap_compare, loaded) -> None:
    app, _ = make(loaded, open_incident=True)
    assert snap_compare(app, terminal_size=(60, 18), run_before=_settle)
