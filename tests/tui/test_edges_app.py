"""The small things of issue 13 in the app, asserted on the log, the files and the screen.

Renaming (T), r on a resolved incident, the export dialog's path, focus after the
timeline, the copy picker's place, drill checks and renames in the timeline, and a
drill's status message. Tests wait for conditions, never for time.
"""

from __future__ import annotations

from pathlib import Path

from drill_support import drill_payload
from helpers import append_raw
from textual.widgets import Input, OptionList
from tui_support import SIZE, events, make_app, on_incident, until

from playbook.core import events as ev
from playbook.service import DRILL_MARK, Service
from playbook.tui.screens.composer import ComposerScreen
from playbook.tui.screens.dialogs import ExportDialog, ResolveDialog
from playbook.tui.screens.help import HelpScreen
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.timeline import TimelineScreen


async def test_t_renames_the_incident_and_refuses_a_control_character(
    service: Service, loaded
) -> None:
    from playbook.tui.screens.dialogs import RenameDialog

    incident = service.open(loaded, "Orders missing").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        await pilot.press("T")
        await until(pilot, lambda: isinstance(app.screen, RenameDialog), "rename dialog")
        field = app.screen.query_one("#title", Input)
        assert field.value == "Orders missing" and field.cursor_position == len(field.value)
        field.value = "Orders missing\x1b[2J"  # as a paste would bring it
        await pilot.press("enter")
        await until(pilot, lambda: any("control character" in s for s in app.said), "refusal")
        assert isinstance(app.screen, RenameDialog)  # still open, the text kept
        assert events(service, incident) == [ev.OPENED]
        field.value = "Orders missing"
        await pilot.press(*" (EU)", "enter")
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "back")
        event = service.get(incident).events[-1]
        assert event.type == ev.RENAMED
        assert event.payload == {"from": "Orders missing", "to": "Orders missing (EU)"}
        await until(
            pilot,
            lambda: "Orders missing (EU)" in str(screen.query_one("#incident-header").render()),
            "header",
        )
        # In help and in the palette, by name.
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), "help")
        assert "Rename" in str(app.screen.query_one("#help-text").render())
        await pilot.press("escape")
        commands = [c.title for c in screen.palette_commands()]
        assert "incident: rename" in commands


async def test_r_on_a_resolved_incident_says_so_and_offers_what_is_next(
    service: Service, loaded
) -> None:
    from playbook.tui.screens.dialogs import ResolvedDialog

    incident = service.open(loaded, "done already").id
    service.resolve(incident, "restored from the 02:00 backup")
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        screen.action_phase("immediate-response")
        await pilot.press("r")
        await until(pilot, lambda: isinstance(app.screen, ResolvedDialog), "what is next")
        assert not isinstance(app.screen, ResolveDialog)
        said = " ".join(str(s.render()) for s in app.screen.query("Static"))
        assert "was resolved at" in said and "restored from the 02:00 backup" in said
        await pilot.press("enter")  # "Post-incident work" is focused
        await until(pilot, lambda: isinstance(app.screen, IncidentScreen), "back")
        await until(pilot, lambda: screen.section == "immediate-follow-up", "post-incident")
        await until(pilot, lambda: app.focused is screen.query_one("#checklist"), "checklist")
        await pilot.press("r", "x")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog), "export from it")
        assert events(service, incident) == [ev.OPENED, ev.RESOLVED]  # nothing recorded


async def test_the_export_dialog_keeps_its_path_on_space_and_refuses_a_blank_one(
    service: Service, loaded, tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    incident = service.open(loaded, "export").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ExportDialog), "export dialog")
        field = app.screen.query_one("#path", Input)
        await until(pilot, lambda: app.focused is field, "path focused")
        default = field.value
        assert default.endswith(f"incident-{incident}.md")
        await pilot.press("space")  # used to replace the whole selected path
        assert field.value == default + " "
        field.value = " "
        await pilot.press("enter")
        await until(pilot, lambda: any("Give the file" in s for s in app.said), "refusal")
        assert isinstance(app.screen, ExportDialog)
        assert sorted(p.name for p in tmp_path.iterdir()) == []  # no file named " "
        field.value = default + " "  # a trailing blank is not part of the name
        await pilot.press("enter")
        await until(pilot, lambda: (tmp_path / f"incident-{incident}.md").exists(), "written")
        assert sorted(p.name for p in tmp_path.iterdir()) == [f"incident-{incident}.md"]


async def test_focus_comes_back_where_it_was_after_the_timeline(service: Service, loaded) -> None:
    incident = service.open(loaded, "focus").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        checklist = screen.query_one("#checklist", OptionList)
        await pilot.press("tab")
        await until(pilot, lambda: app.focused is checklist, "checklist focused")
        for lose_focus in (False, True):
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, TimelineScreen), "timeline")
            if lose_focus:
                # What the terminal losing focus (or a rebuilt widget) does meanwhile.
                screen.set_focus(None)
                checklist.highlighted = None
            await pilot.press("escape")
            await until(pilot, lambda: app.screen is screen, "back")
            await until(pilot, lambda: app.focused is checklist, "focus where it was")
            assert checklist.highlighted is not None  # and visibly so
        before = len(service.get(incident).state.done)
        await pilot.press("space")  # keys work again
        await until(pilot, lambda: len(service.get(incident).state.done) == before + 1, "tick")


async def test_the_copy_picker_is_drawn_below_the_header(service: Service, loaded) -> None:
    incident = service.open(loaded, "copy").id
    app = make_app(service, loaded, resume=incident)
    async with app.run_test(size=SIZE) as pilot:
        screen = await on_incident(pilot)
        screen.action_phase("recovery-planning")
        await pilot.pause()
        checklist = screen.query_one("#checklist", OptionList)
        checklist.focus()
        checklist.highlighted = checklist.get_option_index(
            "step:recovery-planning.develop-recovery-strategy"
        )
        await pilot.press("c")
        await until(pilot, lambda: type(app.screen).__name__ == "CopyPicker", "picker")
        await pilot.pause()
        header = screen.query_one("#incident-header").region
        box = app.screen.query_one(".dialog").region
        assert box.y > header.bottom - 1  # the header's line stays readable
        assert box.x > 0 and box.right < SIZE[0]  # centred like every other dialog


async def test_the_timeline_shows_drill_checks_and_renames_in_words(
    service: Service, loaded
) -> None:
    incident = service.open(loaded, "words", drill=drill_payload()).id
    append_raw(
        service,
        incident,
        ev.DRILL_CHECKED,
        {"restored": False, "targets": {"cache": {"restored": False, "missing": 6049}}},
    )
    service.rename(incident, "words, renamed")
    app = make_app(service, loaded, resume=incident)
    app.briefed.add(incident)  # no briefing screen in the way
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        await pilot.press("t")
        await until(
            pilot, lambda: isinstance(app.screen, TimelineScreen) and app.screen.rows, "rows"
        )
        described = [row[-1] for row in app.screen.rows]
        assert described[1] == (
            "Drill data check: the data differs from its fingerprint (cache: 6,049 missing)"
        )
        assert described[2] == "Renamed from “words” to “words, renamed”"
        assert not any(line.startswith(("drill_checked", "renamed")) for line in described)


async def test_a_drill_status_message_says_drill_in_the_preview_and_the_record(
    service: Service, loaded
) -> None:
    incident = service.open(loaded, "rehearsal", drill=drill_payload()).id
    app = make_app(service, loaded, resume=incident)
    app.briefed.add(incident)  # no briefing screen in the way
    async with app.run_test(size=SIZE) as pilot:
        await on_incident(pilot)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ComposerScreen), "composer")
        await until(pilot, lambda: isinstance(app.focused, Input), "a field")
        await pilot.press(*"missing orders")
        await until(pilot, lambda: app.screen.text and app.screen.preview_current, "preview")
        assert app.screen.text.startswith(DRILL_MARK + "\n")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: service.get(incident).state.messages, "recorded")
        assert service.get(incident).state.messages[-1].text.startswith(DRILL_MARK + "\n")
