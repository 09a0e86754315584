"""The two playbooks written from public runbooks, in the app: each drill opens on its
briefing, and d on a diagnostic runs it against the drill's sandbox and records the fault
it finds (issue 15 §7, "in the app")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import OptionList
from tui_support import RecordingApp, on_incident, until

from playbook.adapters.plugins import load_playbook as load
from playbook.core.clock import FakeClock
from playbook.drill.run import DrillRun
from playbook.resources import builtin_runbooks
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.tui.screens.drill import BriefingScreen


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[Service]:
    store = SQLiteStore(tmp_path / "drills")
    yield Service(store, clock=clock, actor="alice")
    store.close()


def _runs(service: Service, incident: str) -> list[dict[str, Any]]:
    return [e.payload for e in service.get(incident).events if e.type == "diagnostic_run"]


@pytest.mark.parametrize(
    ("name", "diagnostic", "found"),
    [
        ("disk-full", "free-space-ratio", {"value_min": 0.04}),
        ("postgres-replication", "inactive-slots", {"rows": 1}),
    ],
)
async def test_the_drill_opens_and_d_finds_the_fault(
    service: Service, name: str, diagnostic: str, found: dict[str, float]
) -> None:
    run = DrillRun.start(load(builtin_runbooks()[name]))
    try:
        incident = run.open(service).id
        app = RecordingApp(
            service, run.loaded, incident, tick_seconds=0.05, refresh_seconds=3600, drill=run
        )
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, BriefingScreen), "the briefing")
            await pilot.press("escape")
            screen = await on_incident(pilot)
            await until(pilot, lambda: screen.playbook is not None, "the playbook read")
            screen.action_phase("assessment")
            checklist = screen.query_one("#checklist", OptionList)
            checklist.focus()
            ids = [checklist.get_option_at_index(i).id or "" for i in range(checklist.option_count)]
            checklist.highlighted = next(
                i for i, o in enumerate(ids) if o.endswith(f":{diagnostic}")
            )
            await pilot.press("d")
            await until(pilot, lambda: _runs(service, incident), "the run recorded", rounds=50_000)
        recorded = _runs(service, incident)[0]
        assert recorded["diagnostic"] == diagnostic and recorded["verdict"] == "fail"
        for metric, value in found.items():
            assert recorded["metrics"][metric] == pytest.approx(value)
    finally:
        run.stop()
