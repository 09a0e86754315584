"""The timeline's pin key: the highlighted event is pinned in the incident's log, and the
postmortem draft's highlights show it. Tests wait for conditions, never for time."""

from __future__ import annotations

from pathlib import Path

from tui_support import SIZE, make_app, until

from playbook.core.state import fold
from playbook.render.postmortem import to_postmortem
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.timeline import TimelineScreen
from playbook.tui.widgets.timeline_view import TimelineView


async def test_p_pins_the_highlighted_event(tmp_path: Path, loaded, clock) -> None:
    store = SQLiteStore(tmp_path / "data")
    service = Service(store, clock=clock, actor="alice")
    incident = service.open(loaded, "Orders missing").id
    service.acknowledge(incident)
    service.note(incident, "the index count fell to zero at 02:10")
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot,
            lambda: isinstance(app.screen, IncidentScreen) and app.screen.state is not None,
            "incident",
        )
        await pilot.press("t")
        await until(
            pilot, lambda: isinstance(app.screen, TimelineScreen) and app.screen.events, "timeline"
        )
        shown = app.screen.active_bindings["p"].binding  # in the footer, with its name
        assert shown.show and shown.description == "Pin"
        assert "p pins the highlighted event" in TimelineScreen.HELP
        view = app.screen.query_one(TimelineView)
        view.cursor_row = 2  # the note
        await pilot.press("p")
        await until(pilot, lambda: fold(store.read(incident)).pinned, "pin recorded")
    state = fold(store.read(incident))
    assert state.pinned == [3]
    draft = to_postmortem(store.read(incident), clock.now())
    assert "the index count fell to zero at 02:10 | pinned |" in draft
    store.close()
