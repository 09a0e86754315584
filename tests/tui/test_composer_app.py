"""The status composer as a responder types in it: letters land in fields, and a slow
render never stops the typing. Driven by Pilot; waits are on conditions, never on time."""

from __future__ import annotations

import threading
from collections.abc import Mapping

from textual.widgets import Input
from tui_support import SIZE, make_app, on_incident, until

from playbook.core.state import IncidentState
from playbook.service import Service
from playbook.tui.screens.composer import ComposerScreen
from playbook.tui.screens.dialogs import NoteDialog


async def test_letters_typed_after_tab_past_the_last_field_land_in_a_field(
    service: Service, loaded
) -> None:
    incident = service.open(loaded, "tab").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen), "composer")
        await until(pilot, lambda: isinstance(app.focused, Input), "a field")
        fields = list(app.screen.query(Input).results(Input))
        for _ in range(len(fields) + 1):  # past the last field, and round again
            await pilot.press("tab")
            assert isinstance(app.focused, Input), f"Tab went to {app.focused}"
        await pilot.press(*"no data lost")
        await pilot.pause()
        assert not isinstance(app.screen, NoteDialog)  # "n" did not open a note
        assert isinstance(app.focused, Input)
        assert app.focused.value.endswith("no data lost")


async def test_a_slow_preview_leaves_the_fields_live_and_copy_waits_for_it(
    service: Service, loaded
) -> None:
    incident = service.open(loaded, "slow").id
    rendered = service.render_status
    gate = threading.Event()
    on_the_loop: list[bool] = []

    def slow(state: IncidentState, kind: str, values: Mapping[str, str]) -> str:
        on_the_loop.append(threading.current_thread() is threading.main_thread())
        gate.wait(30)  # bounded, so that a render on the event loop fails the test
        return rendered(state, kind, values)

    service.render_status = slow  # type: ignore[method-assign]
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen), "composer")
        await until(pilot, lambda: isinstance(app.focused, Input), "a field")
        await until(pilot, lambda: on_the_loop, "the first render asked for")
        await pilot.press(*"orders")
        assert isinstance(app.focused, Input) and app.focused.value.endswith("orders")
        screen = app.screen
        assert isinstance(screen, ComposerScreen)
        assert not screen.preview_current
        await pilot.press("ctrl+y")
        assert any("still rendering" in said for said in app.said)
        gate.set()
        await until(pilot, lambda: screen.preview_current, "the preview of what was typed")
        assert "orders" in screen.text
        assert on_the_loop and not any(on_the_loop)
        # one render in flight, then one of the fields as they ended: not one per key
        assert len(on_the_loop) <= 3
