"""What the app shows when work comes back from the store thread or a worker, good or bad.

Each test checks the outcome where it lands (the incident's log, the line on screen, the
notice the responder reads), for the paths the typed messages carry: a dialog returning
what it recorded, a tick the store refused, a diagnostic that raised, a guarded action
whose first stage failed. Tests wait for conditions, never for time.
"""

from __future__ import annotations

from typing import Any

from helpers import ROOT
from textual.widgets import Input, OptionList, Static
from tui_support import SIZE, events, make_app, on_incident, until

from playbook.adapters.plugins import load_playbook as load
from playbook.core import events as ev
from playbook.service import Service
from playbook.store.memory import MemoryStore
from playbook.tui.screens.action import ActionScreen
from playbook.tui.screens.diagnostics import ParamsDialog
from playbook.tui.screens.dialogs import EscalateDialog


async def test_a_dialog_hands_back_what_it_recorded_and_the_screen_shows_it_at_once(
    service: Service, loaded
) -> None:
    incident = service.open(loaded, "escalate me").id
    app = make_app(service, loaded, resume=incident)  # no periodic re-read (an hour)
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        await pilot.press("e")
        await until(pilot, lambda: isinstance(app.screen, EscalateDialog), "escalation dialog")
        await pilot.press(*"resolution target breached", "enter")
        await until(pilot, lambda: app.screen is screen, "back on the incident")
        assert events(service, incident)[-1] == ev.ESCALATED
        # Shown from what the dialog returned, not from a later read of the log.
        await until(pilot, lambda: screen.state.escalations, "the escalation shown")
        (recorded,) = service.get(incident).state.escalations
        assert screen.state.escalations[-1].to == recorded.to == "Technical Lead"
        assert any(s.startswith("Escalated to ") for s in app.said)


class RefusingStore(MemoryStore):
    """A store whose disk is full once the incident exists: every later append fails."""

    refuse = False

    def update(self, incident_id, decide):  # type: ignore[no-untyped-def]
        if self.refuse:
            raise OSError(28, "No space left on device")
        return super().update(incident_id, decide)


async def test_a_tick_the_store_refuses_shows_unticked_and_says_so(loaded, clock) -> None:
    store = RefusingStore()
    service = Service(store, clock=clock, actor="alice")
    incident = service.open(loaded, "disk full").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        checklist = screen.query_one("#checklist", OptionList)
        checklist.focus()
        await until(pilot, lambda: (checklist.highlighted_id or "").startswith("item:"), "an item")
        index = checklist.highlighted
        store.refuse = True
        await pilot.press("space")
        await until(pilot, lambda: any("No space left on device" in s for s in app.said), "notice")
        await until(pilot, lambda: not screen.checklist.pending, "the write given up")
        line = str(checklist.get_option_at_index(index).prompt)
        assert "[ ]" in line and "[…]" not in line and "[x]" not in line
        assert events(service, incident) == [ev.OPENED]


async def test_a_diagnostic_that_raises_is_said_and_nothing_is_recorded(
    service: Service, loaded, monkeypatch
) -> None:
    incident = service.open(loaded, "a bug in a driver").id

    def broken(_prepared: Any, _progress: Any = None) -> dict[str, Any]:
        raise RuntimeError("the driver fell over")

    monkeypatch.setattr(service, "execute_diagnostic", broken)
    app = make_app(service, loaded, resume=incident)
    app.target_overrides = ("cache=redis://127.0.0.1:1/0",)  # never reached: the run raises
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        await until(pilot, lambda: screen.playbook is not None, "the playbook read")
        screen.action_phase("assessment")
        checklist = screen.query_one("#checklist", OptionList)
        checklist.focus()
        ident = next(
            checklist.get_option_at_index(i).id or ""
            for i in range(checklist.option_count)
            if (checklist.get_option_at_index(i).id or "").endswith(":redis-heartbeat")
        )
        checklist.highlighted = checklist.get_option_index(ident)
        await pilot.press("d")
        await until(pilot, lambda: isinstance(app.screen, ParamsDialog), "parameters asked")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: any("the driver fell over" in s for s in app.said), "notice")
        assert "redis-heartbeat failed: the driver fell over" in app.said
        assert not screen.running
        await until(
            pilot,
            lambda: "running" not in str(checklist.get_option(ident).prompt),
            "the line free again",
        )
        assert ev.DIAGNOSTIC_RUN not in events(service, incident)


async def test_an_action_whose_target_is_unknown_says_so_and_writes_nothing(
    service: Service,
) -> None:
    loaded = load(ROOT / "runbooks" / "redis-index-loss.yaml")
    incident = service.open(loaded, "no target configured").id
    app = make_app(service, loaded, resume=incident)  # no --target, no playbook.toml
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await on_incident(pilot)
        await until(pilot, lambda: screen.playbook is not None, "the playbook read")
        screen.action_phase("recovery")
        checklist = screen.query_one("#checklist", OptionList)
        checklist.focus()
        checklist.highlighted = checklist.get_option_index(
            "act:recovery.safe-rebuild:rebuild-indexes"
        )
        await pilot.press("g")
        await until(pilot, lambda: isinstance(app.screen, ActionScreen), "the action screen")
        body = app.screen.query_one("#action-body", Static)
        await until(pilot, lambda: "No target named 'cache'" in str(body.render()), "refusal")
        assert "--target cache=URI" in str(body.render())
        assert app.screen.query_one("#phrase", Input).disabled  # nothing to confirm
        await pilot.press("escape")  # the stage is over: the screen closes
        await until(pilot, lambda: app.screen is screen, "closed")
    assert events(service, incident) == [ev.OPENED]  # no run started, nothing recorded
