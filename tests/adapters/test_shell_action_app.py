"""The shell action with ``backup: none`` in the app: the phrase asked for says "no
backup", a phrase without it writes nothing, and no rollback is offered or run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from textual.widgets import Input, OptionList, Static
from tui_support import make_app, on_incident, until

from playbook.adapters.plugins import load_playbook as load
from playbook.adapters.shell import sandbox_linux
from playbook.core.clock import FakeClock
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.tui.screens.action import ActionScreen

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(
    not sandbox_linux.support().complete,
    reason="the kernel's sandbox (Landlock ABI 6, seccomp) is what shell actions need",
)


@pytest.fixture
def service(tmp_path: Path, clock: FakeClock) -> Iterator[Service]:
    store = SQLiteStore(tmp_path / "data")
    yield Service(store, clock=clock, actor="alice")
    store.close()


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "a.log").write_text("old\n")
    return folder


@pytest.fixture
def playbook_file(tmp_path: Path, logs: Path) -> Path:
    text = yaml.safe_load((ROOT / "runbooks" / "stale-backup.yaml").read_text(encoding="utf-8"))
    text.pop("drill", None)
    for phase in [text["assessment"], *text["phases"]]:
        for step in phase.get("steps", []):
            step.pop("actions", None)
    text["phases"][2]["steps"][0]["actions"] = ["purge"]
    text["actions"] = {
        "purge": {
            "kind": "shell",
            "title": "Remove the logs, no way back",
            "target": "here",
            "do": {
                "operation": "commands",
                "plan": {"argv": ["find", str(logs), "-type", "f"]},
                "backup": "none",
                "apply": {"argv": ["/bin/sh", "-c", 'rm -f "$0"/*.log', str(logs)]},
                "writes": [str(logs)],
            },
        }
    }
    path = tmp_path / "purge.yaml"
    path.write_text(yaml.safe_dump(text, sort_keys=False), encoding="utf-8")
    return path


def body(app: Any) -> str:
    return str(app.screen.query_one("#action-body", Static).render())


async def test_g_asks_for_the_no_backup_phrase_and_offers_no_rollback(
    service: Service, playbook_file: Path, logs: Path
) -> None:
    loaded = load(playbook_file)
    incident = service.open(loaded, "disk full").id
    app = make_app(service, loaded, resume=incident)
    app.target_overrides = ("here=local://",)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_incident(pilot)
        await until(pilot, lambda: screen.playbook is not None, "the playbook read")
        screen.action_phase("recovery")
        checklist = screen.query_one("#checklist", OptionList)
        checklist.focus()
        ids = [checklist.get_option_at_index(i).id or "" for i in range(checklist.option_count)]
        checklist.highlighted = ids.index("act:recovery.reinsert:purge")
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, ActionScreen), "the action screen")
        phrase = app.screen.query_one("#phrase", Input)
        await until(pilot, lambda: not phrase.disabled, "the confirmation asked", rounds=20_000)
        assert "no backup" in body(app) and str(logs / "a.log") in body(app)
        assert (logs / "a.log").exists()

        await pilot.press(*"here", "enter")
        await until(pilot, lambda: "Not confirmed" in body(app), "the refusal")
        assert (logs / "a.log").exists()
        await pilot.press(*"here no backup", "enter")
        await until(pilot, lambda: "Applied" in body(app), "the apply", 20_000)
        assert not (logs / "a.log").exists()
        assert "Rollback is offered" not in body(app)
    (run,) = service.get(incident).state.actions.values()
    assert [s["stage"] for s in run.stages].count("rollback") == 0
