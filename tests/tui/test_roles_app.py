"""Roles and the update reminder in the app (Pilot): o records a role or a handover, z
snoozes the reminder; checked on the events in the store and the notices shown."""

from __future__ import annotations

from textual.widgets import Input, RadioButton
from tui_support import SIZE, events, make_app, on_incident, until

from playbook.core.clock import FakeClock
from playbook.service import Service
from playbook.store.memory import MemoryStore
from playbook.tui.screens.roles import RolesDialog, SnoozeDialog
from playbook.tui.widgets.timers import TimerBar


async def test_o_assigns_a_role_then_offers_a_handover(loaded, clock: FakeClock) -> None:
    service = Service(MemoryStore(), clock=clock, actor="alice")
    incident = service.open(loaded, "Orders missing").id
    app = make_app(service, loaded, incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, RolesDialog), "roles dialog")
        assert app.screen.query_one("#role", Input).value == "commander"
        await pilot.press(*"alice", "enter")
        await until(pilot, lambda: "role_assigned" in events(service, incident), "assigned")
        assert service.get(incident).state.roles == {"commander": "alice"}

        await until(pilot, lambda: not isinstance(app.screen, RolesDialog), "dialog closed")
        await pilot.press("o")
        await until(pilot, lambda: isinstance(app.screen, RolesDialog), "roles dialog again")
        dialog = app.screen
        holders = str(dialog.query_one("#holders").render())
        assert "commander: alice" in holders.splitlines()  # a role a line, not "\x0a"
        assert "\\x0a" not in holders
        dialog.query(RadioButton)[1].value = True  # "Offer handover", as a click sets it
        await until(pilot, lambda: dialog.mode == "offer", "offer chosen")
        await pilot.press(*"bob", "enter")
        await until(pilot, lambda: "handover_offered" in events(service, incident), "offered")
        state = service.get(incident).state
        assert state.roles == {"commander": "alice"}  # until bob accepts
        assert state.handovers[0].to_person == "bob"


async def test_the_reminder_is_said_when_due_and_not_while_snoozed(
    loaded, clock: FakeClock
) -> None:
    service = Service(MemoryStore(), clock=clock, actor="alice")
    incident = service.open(loaded, "Orders missing").id  # P2: an update each hour
    app = make_app(service, loaded, incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        clock.advance(hours=1)
        await until(pilot, lambda: any("Status update due now" in s for s in app.said), "reminder")
        await pilot.press("z")
        await until(pilot, lambda: isinstance(app.screen, SnoozeDialog), "snooze dialog")
        app.screen.query_one("#length", Input).value = "30m"  # as typed over the 15m
        await pilot.press(*"vendor call", "enter")
        await until(pilot, lambda: "update_snoozed" in events(service, incident), "snoozed")
        payload = service.get(incident).events[-1].payload
        assert payload["reason"] == "vendor call" and payload["seconds"] == 1800

        screen = await on_incident(pilot)
        bar = screen.query_one(TimerBar)
        clock.advance(minutes=29)  # past the breach point (03:15, a quarter hour late)…

        def ticked() -> bool:
            return bar.timers is not None and bar.timers.status_update.elapsed >= 89 * 60

        await until(pilot, ticked, "a tick after the clock moved")
        assert not any("overdue" in s for s in app.said)  # …but snoozed until 03:30
        clock.advance(minutes=1)
        await until(pilot, lambda: any("overdue" in s for s in app.said), "breach reminder")


async def test_the_timer_bar_names_the_commander_beside_the_escalation(
    loaded, clock: FakeClock
) -> None:
    service = Service(MemoryStore(), clock=clock, actor="alice")
    incident = service.open(loaded, "Orders missing").id
    service.assign_role(incident, "commander", "alice")
    app = make_app(service, loaded, incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        bar = screen.query_one(TimerBar)
        clock.advance(hours=1, minutes=1)  # P2's response target breached
        wanted = "Escalate to Technical Lead — commander: alice (e)"
        await until(pilot, lambda: wanted in str(bar.render()), "escalation notice")
        await until(
            pilot,
            lambda: any("press e. — commander: alice" in s for s in app.said),
            "escalation toast",
        )
