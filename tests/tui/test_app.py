"""The app, driven by Pilot: the whole flow, asserted on the incident's events and state.

Tests wait for conditions (an event recorded, a screen shown), never for time.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from helpers import append_raw
from textual.widgets import Input, OptionList, Static
from tui_support import SIZE, RecordingApp, events, make_app, on_incident, until

from playbook.core.clock import FakeClock
from playbook.service import Service
from playbook.store.memory import MemoryStore
from playbook.store.sqlite import SQLiteStore
from playbook.tui.screens.composer import ComposerScreen
from playbook.tui.screens.dialogs import ExportDialog, NoteDialog, ResolveDialog, SeverityDialog
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.new_incident import NewIncidentScreen
from playbook.tui.screens.start import StartScreen
from playbook.tui.screens.timeline import TimelineScreen
from playbook.tui.widgets.timeline_view import TimelineView
from playbook.tui.widgets.too_small import TooSmallNotice


async def test_the_whole_flow_then_resume_after_restart(
    tmp_path: Path, loaded, clock: FakeClock
) -> None:
    store = SQLiteStore(tmp_path / "data")
    service = Service(store, clock=clock, actor="alice")
    app = make_app(service, loaded)
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot,
            lambda: (
                isinstance(app.screen, StartScreen)
                and app.screen.query_one(OptionList).option_count
            ),
            "start list",
        )
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, NewIncidentScreen), "new incident form")
        await pilot.press(*"Orders missing")
        await pilot.press("ctrl+s")
        await until(
            pilot,
            lambda: isinstance(app.screen, IncidentScreen) and app.screen.state is not None,
            "incident screen",
        )
        screen = app.screen
        assert isinstance(screen, IncidentScreen)
        incident = screen.incident_id
        state = service.get(incident).state
        assert state.title == "Orders missing" and state.severity == "P2"

        await pilot.press("a")
        await until(pilot, lambda: "acknowledged" in events(service, incident), "acknowledged")

        # severity: P2 -> P1 with a reason
        await pilot.press("v")
        await until(pilot, lambda: isinstance(app.screen, SeverityDialog), "severity dialog")
        await pilot.press("up", "enter")  # P1, then on to the reason
        await pilot.press(*"accounts hit", "ctrl+s")
        await until(pilot, lambda: service.get(incident).state.severity == "P1", "severity P1")
        assert service.get(incident).events[-1].payload["reason"] == "accounts hit"

        # one item in every section of the assessment and the phases, with Space
        sections = ["assessment", *[p.id for p in loaded.playbook.phases]]
        for section in sections:
            screen.action_phase(section)
            await pilot.pause()
            screen.query_one("#checklist", OptionList).focus()
            before = len(service.get(incident).state.done)
            await pilot.press("space")
            await until(
                pilot,
                lambda before=before: len(service.get(incident).state.done) == before + 1,
                f"tick in {section}",
            )
        done = service.get(incident).state.done
        assert {ref.split(".")[0] for ref in done} == set(sections)

        # the three status messages
        for kind, values in (
            ("initial", ["missing orders"]),
            ("progress", ["2 hours"]),
            ("resolution", ["a migration", "a restore", "none"]),
        ):
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, ComposerScreen), "composer")
            assert app.screen.kind == kind
            await until(pilot, lambda: isinstance(app.focused, Input), "a field focused")
            for value in values:
                assert isinstance(app.focused, Input) and not app.focused.value
                await pilot.press(*value)
                await pilot.press("tab")
            await until(
                pilot, lambda: app.screen.text and app.screen.preview_current, "preview renders"
            )
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "back from composer")
        messages = service.get(incident).state.messages
        assert [m.template for m in messages] == ["initial", "progress", "resolution"]
        assert "Some users may experience missing orders." in messages[0].text
        assert "caused by a migration and was resolved by a restore" in messages[2].text

        # a note from anywhere
        await pilot.press("n")
        await until(pilot, lambda: isinstance(app.screen, NoteDialog), "note dialog")
        await pilot.press(*"restore verified", "ctrl+s")
        await until(pilot, lambda: service.get(incident).state.notes, "note recorded")
        assert service.get(incident).state.notes[-1].text == "restore verified"

        # resolve, then export from the app
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ResolveDialog), "resolve dialog")
        await pilot.press(*"restored from backup", "enter")
        await until(pilot, lambda: service.get(incident).state.resolved_at is not None, "resolved")
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog), "export dialog")
        target = tmp_path / "review.md"
        app.screen.query_one("#path", Input).value = str(target)
        await pilot.press("enter")
        await until(pilot, target.exists, "export written")
        assert f"# Incident {incident}: Orders missing" in target.read_text()

        # the timeline, filtered
        await pilot.press("t")
        await until(
            pilot, lambda: isinstance(app.screen, TimelineScreen) and app.screen.events, "timeline"
        )
        table = app.screen.query_one("#timeline", TimelineView)
        assert table.row_count == len(service.get(incident).events)
        await pilot.press("f")  # notes only
        assert table.row_count == 1
        done_before = dict(service.get(incident).state.done)
    store.close()

    # a new process: the same incident, everything that was shown as done
    store = SQLiteStore(tmp_path / "data")
    service = Service(store, clock=clock, actor="alice")
    app = make_app(service, loaded, resume=incident[-4:])
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot,
            lambda: isinstance(app.screen, IncidentScreen) and app.screen.state is not None,
            "resumed",
        )
        assert app.screen.state.done == done_before
        assert app.screen.state.resolved_at is not None
    store.close()


async def test_outside_text_is_shown_literally_and_never_acted_on(service: Service, loaded) -> None:
    nasty = "[bold]x[/] [@click=app.quit]quit[/] \x1b[2J\x1b]52;c;ZXZpbA==\x07 [/"
    # Markup is plain text to the service; control characters are refused at input, so
    # they come from a log written before that (or imported), which must show them too.
    incident = service.open(loaded, "t [bold]x[/] [@click=app.quit]quit[/] [/").id
    append_raw(service, incident, "renamed", {"from": "t", "to": f"t {nasty}"})
    append_raw(service, incident, "note_added", {"text": nasty})
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        header = str(app.screen.query_one("#incident-header", Static).render())
        assert "[bold]x[/]" in header and "\x1b" not in header
        await pilot.press("t")
        await until(
            pilot, lambda: isinstance(app.screen, TimelineScreen) and app.screen.events, "timeline"
        )
        table = app.screen.query_one("#timeline", TimelineView)
        await pilot.press("end")
        await pilot.pause()
        drawn = "\n".join(str(table.render_line(y).text) for y in range(table.size.height))
        assert "Note: [bold]x[/] [@click=app.quit]" in drawn and "\x1b" not in drawn
        detail = str(app.screen.query_one("#event-detail", Static).render())
        assert "[@click=app.quit]quit[/]" in detail and "\\x1b[2J" in detail
        assert "\x1b" not in detail
        await pilot.click("#timeline", offset=(40, 2))
        await pilot.pause()
        assert app.is_running


async def test_a_small_terminal_gets_a_message_and_no_key_acts(service: Service, loaded) -> None:
    incident = service.open(loaded, "small").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=(70, 20)) as pilot:
        await on_incident(pilot)
        notice = app.screen.query_one(TooSmallNotice)
        await until(pilot, lambda: notice.display, "notice shown")
        assert "at least 80×24" in str(notice.render()) and "70×20" in str(notice.render())
        await pilot.press("space", "a", "n")
        await pilot.pause()
        assert events(service, incident) == ["opened"]
        await pilot.resize_terminal(*SIZE)
        await until(pilot, lambda: not notice.display, "notice hidden")
        await pilot.press("a")
        await until(pilot, lambda: "acknowledged" in events(service, incident), "ack after resize")


class GatedStore(MemoryStore):
    """A store whose writes wait until the test opens the gate (a slow or stuck disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def update(self, incident_id, decide):  # type: ignore[no-untyped-def]
        self.waiting.set()
        assert self.gate.wait(timeout=60), "the test never opened the gate"
        return super().update(incident_id, decide)


async def test_a_slow_store_never_freezes_the_app_and_nothing_shows_done_early(
    loaded, clock: FakeClock
) -> None:
    store = GatedStore()
    service = Service(store, clock=clock, actor="alice")
    incident = service.open(loaded, "slow disk").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        screen = app.screen
        checklist = screen.query_one("#checklist", OptionList)
        checklist.focus()
        await pilot.pause()
        store.gate.clear()
        first = checklist.highlighted
        ref = (checklist.highlighted_option.id or "")[5:]
        await pilot.press("space")
        await until(pilot, store.waiting.is_set, "write started")
        assert "[…]" in str(checklist.get_option_at_index(first).prompt)  # pending, not done
        assert ref not in screen.state.done
        await pilot.press("down")  # the event loop still answers keys
        assert checklist.highlighted == first + 1
        store.gate.set()
        await until(pilot, lambda: ref in screen.state.done, "tick recorded")
        assert "[x]" in str(checklist.get_option_at_index(first).prompt)


async def test_timers_warn_then_breach_once_and_name_who_is_next(
    service: Service, loaded, clock: FakeClock
) -> None:
    incident = service.open(loaded, "clock").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        clock.advance(minutes=46)
        await until(pilot, lambda: any("Response (P2): 7" in s for s in app.said), "warning")
        clock.advance(minutes=15)
        await until(
            pilot, lambda: any("Escalate to Technical Lead" in s for s in app.said), "breach"
        )
        for _ in range(20):
            await pilot.pause()
        assert sum("Response (P2) target breached" in s for s in app.said) == 1


@pytest.mark.parametrize("start", ["start", "incident"])
async def test_help_is_on_every_screen(service: Service, loaded, start: str) -> None:
    incident = service.open(loaded, "help").id if start == "incident" else None
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        expected = IncidentScreen if incident else StartScreen
        await until(pilot, lambda: isinstance(app.screen, expected), "screen")
        await pilot.press("question_mark")
        await until(pilot, lambda: type(app.screen).__name__ == "HelpScreen", "help")
        text = str(app.screen.query_one("#help-text", Static).render())
        assert "Keys here" in text and "Command palette" in text
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, expected), "help closed")


async def test_the_palette_offers_every_incident_action(service: Service, loaded) -> None:
    incident = service.open(loaded, "palette").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await until(
            pilot,
            lambda: isinstance(app.screen, IncidentScreen) and app.screen.playbook is not None,
            "incident",
        )
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for wanted in (
            "incident: export timeline",
            "status: compose progress update",
            "incident: change severity",
            "incident: add note",
            "scenario: follow Data Loss",
        ):
            assert wanted in titles


async def test_space_on_the_left_column_never_ticks_an_unseen_item(
    service: Service, loaded
) -> None:
    incident = service.open(loaded, "focus").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        nav = app.screen.query_one("#nav", OptionList)
        nav.focus()
        await pilot.press("down", "down", "space")
        await until(
            pilot, lambda: app.focused is app.screen.query_one("#checklist"), "checklist focused"
        )
        assert events(service, incident) == ["opened"]
        checklist = app.screen.query_one("#checklist", OptionList)
        assert (checklist.highlighted_option.id or "").startswith("item:")  # the first open item


async def test_resolving_needs_a_summary_and_post_incident_work_stays_open(
    service: Service, loaded
) -> None:
    incident = service.open(loaded, "resolve").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ResolveDialog), "resolve dialog")
        await pilot.press("enter")  # empty summary
        await pilot.pause()
        assert "resolved" not in events(service, incident)
        await pilot.press(*"fixed", "enter")
        await until(pilot, lambda: "resolved" in events(service, incident), "resolved")
        screen = app.screen
        assert isinstance(screen, IncidentScreen) and screen.section == "immediate-follow-up"
        screen.query_one("#checklist", OptionList).focus()
        await pilot.press("space")
        await until(
            pilot, lambda: events(service, incident)[-1] == "item_checked", "post-incident tick"
        )


async def test_copy_offers_one_command_at_a_time(service: Service, loaded) -> None:
    incident = service.open(loaded, "copy").id
    app = make_app(service, loaded, resume=incident)
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        app.screen.action_phase("recovery-planning")
        await pilot.pause()
        checklist = app.screen.query_one("#checklist", OptionList)
        checklist.focus()
        checklist.highlighted = checklist.get_option_index(
            "step:recovery-planning.develop-recovery-strategy"
        )
        await pilot.pause()
        await pilot.press("c")
        await until(pilot, lambda: type(app.screen).__name__ == "CopyPicker", "picker")
        assert app.screen.query_one("#copy-choices", OptionList).option_count >= 4
        await pilot.press("enter")
        await until(pilot, lambda: copied, "copied")
        assert copied[0].startswith("mongodump ") and "mongorestore" not in copied[0]


async def test_a_broken_playbook_file_still_lets_open_incidents_be_resumed(
    service: Service, loaded, tmp_path: Path
) -> None:
    incident = service.open(loaded, "before the file broke").id
    broken = tmp_path / "broken.yaml"
    broken.write_text(loaded.path.read_text().replace("summary:", "sumary:", 1))
    app = RecordingApp(
        service, None, None, tick_seconds=0.05, refresh_seconds=3600, playbook_path=broken
    )
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.playbook_problem, "the playbook's problems")
        intro = str(app.screen.query_one("#start-intro", Static).render())
        assert "did you mean 'summary'" in intro and str(broken) in intro
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert isinstance(app.screen, StartScreen)  # no new incident on an invalid playbook
        options = app.screen.query_one(OptionList)
        options.highlighted = options.get_option_index(f"incident:{incident}")
        await pilot.press("enter")
        screen = await on_incident(pilot)
        assert screen.state is not None and screen.state.title == "before the file broke"
