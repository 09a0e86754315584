"""The app's screens. Each only calls the service through ``app.submit`` (the store thread)."""

from __future__ import annotations

import contextlib
import gc
import json
import textwrap
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import (
    Button,
    Footer,
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    SelectionList,
    Static,
    TextArea,
)
from textual.widgets.option_list import Option, OptionDoesNotExist
from textual.widgets.selection_list import Selection
from textual.worker import Worker, WorkerState

from playbook.core import events as ev
from playbook.core.durations import format_duration
from playbook.core.evidence import shown_of
from playbook.core.state import IncidentState
from playbook.core.text import inline
from playbook.core.timers import BREACHED, WARNING
from playbook.errors import PlaybookError, TemplateError
from playbook.fileio import atomic_write
from playbook.render.export import describe
from playbook.service import DRILL_PREFIX, defaults_from
from playbook.tui.diagnostics import ParamsDialog, ResultScreen, param_defaults, verdict_text
from playbook.tui.widgets import DRILL_STYLE, TimelineView, TimerBar, block, lit, standin_line

if TYPE_CHECKING:
    from playbook.core.model import Playbook
    from playbook.tui.app import PlaybookApp

from playbook.tui.app import TooSmallNotice

NAV_TEXT = 28
"""Characters of text in a line of the left column (its width less border and padding)."""

STAGES = (
    ("containment", "CONTAINMENT"),
    ("investigation", "INVESTIGATION"),
    ("recovery", "RECOVERY"),
    ("restoration", "RESTORATION"),
)


def _app(widget: Any) -> PlaybookApp:
    return widget.app  # type: ignore[no-any-return]


class HelpText:
    """Every screen of the app: says what it is for, and carries the too-small notice."""

    HELP: ClassVar[str] = ""

    def on_mount(self) -> None:
        # Textual calls this in addition to the screen's own on_mount (it walks the MRO).
        screen: Any = self
        screen.mount(TooSmallNotice())
        screen.call_after_refresh(screen.app.check_size)

    def on_resize(self) -> None:
        screen: Any = self
        screen.app.check_size()

    def on_screen_resume(self) -> None:
        screen: Any = self
        screen.call_after_refresh(screen.app.check_size)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """No key does anything behind the too-small notice."""
        screen: Any = self
        return not screen.app.too_small


def severity_options(pb: Playbook) -> list[Option]:
    """The severity levels with their targets; the highlighted one is the choice."""
    options = []
    for level in pb.severity.levels:
        label = Text(f"{level.id} {level.name}: ", style="bold")
        label.append(
            f"respond within {format_duration(level.response)}, "
            f"resolve within {format_duration(level.resolution)}"
        )
        if level.defined_by == "playbook":
            label.append(" (targets set by this playbook)", style="italic")
        options.append(Option(label, id=level.id))
    return options


def _chosen_level(options: OptionList) -> str | None:
    option = options.highlighted_option
    return option.id if option is not None else None


# ============================================================================ start


class StartScreen(HelpText, Screen[None]):
    """Open a new incident, or resume an open one."""

    HELP = (
        "Choose an incident to resume, or start a new one.\n"
        "Open incidents are listed with their severity, status and age, and the timer most "
        "at risk when one warns or is breached; closed ones are not (`playbook incidents "
        "--all` lists them). q or Ctrl+Q quits."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "choose", "Open", id="start.open", show=True),
        Binding("ctrl+n", "new", "New incident", id="start.new"),
        Binding("q", "app.quit", "Quit", id="start.quit"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="start-title")
        yield Static(
            "Enter opens the highlighted line. Every change is written to disk before it "
            "is shown as done; quitting or a killed terminal loses nothing.",
            id="start-intro",
        )
        # Drawn at once: the first frame must not wait for the store thread's list.
        yield OptionList(Option(Text("＋ New incident", style="bold"), id="new"), id="incidents")
        yield Footer()

    def on_mount(self) -> None:
        self.playbook_ready()
        self.reload()
        _app(self).load_playbook()

    def playbook_ready(self) -> None:
        """Show the playbook's title, or why it could not be loaded."""
        app = _app(self)
        pb = app.playbook.playbook if app.playbook else None
        title = Text("playbook", style="bold")
        if pb is not None:
            title.append("  ·  ")
            title.append_text(lit(pb.title))
        elif app.playbook_problem:
            title.append("  ·  the playbook could not be loaded", style="bold red")
        else:
            title.append("  ·  loading the playbook…")
        self.query_one("#start-title", Static).update(title)
        if app.playbook_problem:
            intro = Text(
                "New incidents need a valid playbook; open incidents still work.\n", style="red"
            )
            intro.append_text(block(app.playbook_problem))
            self.query_one("#start-intro", Static).update(intro)
        if self.states is not None:
            self.show_incidents(self.states)

    def on_screen_resume(self) -> None:
        if self.states is not None:  # the first resume is the mount, which already read
            self.reload()

    def reload(self) -> None:
        app = _app(self)
        app.submit("list incidents", app.service.incidents, self.show_incidents)

    states: list[IncidentState] | None = None

    def show_incidents(self, states: list[IncidentState]) -> None:
        self.states = states
        app = _app(self)
        options = self.query_one("#incidents", OptionList)
        pb = app.playbook.playbook if app.playbook else None
        new_label = Text("＋ New incident", style="bold")
        if pb is not None:
            new_label.append(" on ")
            new_label.append_text(lit(pb.title))
        elif app.playbook_problem:
            new_label.append(" (the playbook is invalid: see above)", style="red")
        else:
            new_label.append(" (loading the playbook…)")
        items: list[Option] = [Option(new_label, id="new")]
        now = app.service.clock.now()
        for state in reversed(states):
            if state.closed_at is not None:
                continue
            timers = app.service.timers(state)
            line = Text(no_wrap=True, overflow="ellipsis")
            if state.drill is not None or state.id.startswith(DRILL_PREFIX):
                line.append(" DRILL ", style=DRILL_STYLE)
                line.append(" ")
            line.append(f"{state.id}  ", style="bold")
            line.append(f"{state.severity}  ", style="bold red" if state.severity == "P1" else "")
            line.append(f"{state.status:<12} ")
            age = (
                format_duration((now - state.opened_at).total_seconds()) if state.opened_at else "?"
            )
            line.append(f"{age:>8}  ")
            line.append_text(lit(state.title[:60]))
            alerts = timers.alerts()
            if alerts:
                style = "bold red" if alerts[0].state == BREACHED else "yellow"
                line.append(f"  {alerts[0].label} {alerts[0].state}", style=style)
            items.append(Option(line, id=f"incident:{state.id}"))
        keep = options.highlighted
        options.clear_options()
        options.add_options(items)
        options.highlighted = (
            keep if keep is not None and keep < len(items) else (1 if len(items) > 1 else 0)
        )
        options.focus()

    def action_choose(self) -> None:
        options = self.query_one("#incidents", OptionList)
        if options.highlighted is not None:
            self._open(options.get_option_at_index(options.highlighted).id or "")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._open(event.option.id or "")

    def _open(self, option_id: str) -> None:
        if option_id == "new":
            self.action_new()
        elif option_id.startswith("incident:"):
            self.app.push_screen(IncidentScreen(option_id.split(":", 1)[1]))

    def action_new(self) -> None:
        if _app(self).refuse_new_in_drill():
            return
        if _app(self).playbook is None:
            self.notify(
                "No playbook was loaded; run `playbook run PLAYBOOK`.",
                severity="error",
                markup=False,
            )
            return
        self.app.push_screen(NewIncidentScreen())


class NewIncidentScreen(HelpText, Screen[None]):
    """A title, the severity (default from the playbook) and what triggered it."""

    HELP = (
        "Give the incident a title, check the severity (the playbook's default is "
        "selected; its targets are shown), tick what triggered it (Space), then Ctrl+S."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "open", "Open incident", id="new.open"),
        Binding("escape", "cancel", "Cancel", id="new.cancel"),
    ]

    def compose(self) -> ComposeResult:
        pb = self._playbook()
        with VerticalScroll(id="new-form"):
            yield Label("Title: what is wrong, in a few words")
            yield Input(placeholder="e.g. Orders missing since 02:10", id="title")
            yield Label(f"Severity (↑↓; the playbook's default is {pb.severity.default})")
            yield OptionList(*severity_options(pb), id="severity")
            path = " → ".join(pb.severity.escalation_path)
            yield Static(lit(f"Escalation: {path}. {pb.severity.escalation_rule}"), id="escalation")
            yield Label("What triggered it (Space ticks)")
            selections = [
                Selection(lit(f"{group.title}: {item.text}"), f"{group.id}.{item.key}")
                for group in pb.triggers
                for item in group.items
            ]
            yield SelectionList[str](*selections, id="triggers")
            with Horizontal(id="new-buttons"):
                yield Button("Open incident (Ctrl+S)", variant="primary", id="open")
                yield Button("Cancel (Esc)", id="cancel")
        yield Footer()

    def _playbook(self) -> Playbook:
        loaded = _app(self).playbook
        assert loaded is not None
        return loaded.playbook

    def on_mount(self) -> None:
        pb = self._playbook()
        levels = self.query_one("#severity", OptionList)
        levels.highlighted = [lvl.id for lvl in pb.severity.levels].index(pb.severity.default)
        self.query_one("#title", Input).focus()

    def on_option_list_option_selected(self, _event: OptionList.OptionSelected) -> None:
        self.query_one("#triggers", SelectionList).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "open":
            self.action_open()
        else:
            self.action_cancel()

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.query_one("#severity", OptionList).focus()

    def action_cancel(self) -> None:
        self.app.pop_screen()

    def action_open(self) -> None:
        app = _app(self)
        title = self.query_one("#title", Input).value.strip()
        if not title:
            self.notify("An incident needs a title.", severity="error", markup=False)
            self.query_one("#title", Input).focus()
            return
        pb = self._playbook()
        level = _chosen_level(self.query_one("#severity", OptionList)) or pb.severity.default
        triggers = list(self.query_one("#triggers", SelectionList).selected)
        loaded = app.playbook

        def opened(state: IncidentState) -> None:
            self.app.switch_screen(IncidentScreen(state.id, state))

        app.submit(
            "open incident", lambda: app.service.open(loaded, title, level, triggers), opened
        )


# ============================================================================ the incident


class IncidentScreen(HelpText, Screen[None]):
    """The incident: timers on top, phases on the left, the checklist and its details."""

    HELP = (
        "Left column: the assessment, the phases grouped into Containment, Investigation, "
        "Recovery and Restoration, the scenarios and the post-incident work, with progress "
        "(▶ marks the current phase). Enter or Tab moves to the checklist.\n"
        "Right, top: the checklist of the chosen section; Space ticks the highlighted item "
        "(only when the checklist has focus). An item shows ticked only after it is written "
        "to disk. Ticking an item of a later phase moves the incident into that phase.\n"
        "Right, bottom: the highlighted step's guidance, its diagnostics (what would run, on "
        "which target, and what healthy looks like) and recovery commands; c copies one.\n"
        "Diagnostics (⚙ lines under a step, with their last verdict): d runs the highlighted "
        "one (asking for its parameters), D runs all of the step's with their last or default "
        "parameters, k stops running ones, Enter opens the last result as a table. They only "
        "read, run in the background with progress, and each result is saved as evidence. "
        "Guarded actions (⚡ lines) are the only way to change data: g (or Enter) shows the "
        "dry run, makes the backup, then asks you to type the target's name before it locks, "
        "applies and verifies; if that fails it offers rollback from the backup, and G rolls "
        "back the highlighted action's latest run later. "
        "Targets come from playbook.toml or `playbook run --target name=URI`.\n"
        "Other keys: t timeline, x export, T renames the incident, Esc back to the "
        "incident list, Ctrl+Q quit. r on a resolved incident shows what is left to do.\n"
        "Timers: response and resolution (elapsed/target), the phase window, and when the "
        "next status update is due. When one warns or is breached, a message names who "
        "to escalate to next; e records the escalation.\n"
        "Ctrl+P lists every action, e.g. 'incident: export timeline'."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle", "Tick", id="incident.toggle"),
        # Only in a drill (check_action): first, so the footer shows it at 80 columns.
        Binding("F", "drill_check", "Check data", id="incident.drill_check"),
        Binding("a", "ack", "Ack", id="incident.ack"),
        Binding("v", "severity", "Sev", id="incident.severity"),
        Binding("e", "escalate", "Escal", id="incident.escalate"),
        Binding("s", "status", "Status", id="incident.status"),
        Binding("r", "resolve", "Resolve", id="incident.resolve"),
        Binding("d", "diagnose", "Diagnose", id="incident.diagnose"),
        Binding("D", "diagnose_all", "Run all", id="incident.diagnose_all", show=False),
        Binding("g", "guarded_action", "Act", id="incident.act"),
        Binding("G", "roll_back", "Roll back", id="incident.rollback", show=False),
        Binding("k", "stop_diagnostics", "Stop runs", id="incident.stop", show=False),
        Binding("t", "timeline", "Timeline", id="incident.timeline", show=False),
        Binding("c", "copy", "Copy", id="incident.copy", show=False),
        Binding("x", "export", "Export", id="incident.export", show=False),
        Binding("T", "rename", "Rename", id="incident.rename", show=False),
        Binding("escape", "leave", "Incidents", id="incident.leave", show=False),
    ]

    def __init__(self, incident_id: str, state: IncidentState | None = None) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.state: IncidentState | None = None
        self.playbook: Playbook | None = None
        self._playbook_sha = ""
        self.section = ""
        self.pending: set[str] = set()
        self.announced: set[tuple[str, str, str]] = set()
        self._initial = state
        self.running: dict[str, Any] = {}
        """Diagnostics running now, by id (their PreparedRun, which can cancel)."""
        self.show_running: dict[str, bool] = {}
        self.progress_text: dict[str, str] = {}
        self.checking = False
        """True while the drill's data is being compared with its fingerprint."""
        self.unreadable_shown: set[int] = set()
        """Sequence numbers of unreadable events the responder has been told about."""

    def compose(self) -> ComposeResult:
        yield Static("loading…", id="incident-header")
        yield TimerBar(id="timers")
        with Horizontal(id="body"):
            yield OptionList(id="nav")
            with Vertical(id="main"):
                yield OptionList(id="checklist")
                with VerticalScroll(id="detail-scroll"):
                    yield Static(id="detail")
        yield Static(id="diag-status")
        yield Footer()

    def on_mount(self) -> None:
        app = _app(self)
        if self._initial is not None:
            self.apply_state(self._initial)
        else:
            self.reload()
        self.set_interval(app.tick_seconds, self.tick)
        self.set_interval(app.refresh_seconds, self.reload)

    _focus_on_leave: Any = None
    """The widget that had focus when another screen covered this one."""

    def on_screen_suspend(self) -> None:
        self._focus_on_leave = self.focused

    def on_screen_resume(self) -> None:
        """Back from the timeline, a dialog or help: focus where it was, highlighted.

        Textual keeps a screen's focus while it is covered, unless something took it
        meanwhile (the terminal losing focus, a rebuilt widget); then it fell on the
        first focusable widget or nowhere, with no highlight, and keys like Space did
        nothing. This runs before Textual's own resume handler (it walks the MRO from
        here), so Textual's fallback only applies when this finds nothing either.
        """
        wanted, self._focus_on_leave = self._focus_on_leave, None
        if self.focused is None and not _app(self).too_small:
            if wanted is None or not wanted.is_attached or not wanted.focusable:
                wanted = self.query_one("#checklist", OptionList)
            self.set_focus(wanted, scroll_visible=False)
        focused = self.focused
        if not isinstance(focused, OptionList) or focused.highlighted is not None:
            return
        if self.state is not None and self.playbook is not None:
            # Rebuilt, each list highlights what it would on arrival: the section shown,
            # the first open item.
            self.build_nav() if focused.id == "nav" else self.build_checklist()

    # -------------------------------------------------------------- state

    def reload(self) -> None:
        app = _app(self)
        ref = self.incident_id
        app.submit("read incident", lambda: app.service.get(ref).state, self._reloaded)

    def _reloaded(self, state: IncidentState) -> None:
        if self.state is None or state.last_seq != self.state.last_seq:
            self.apply_state(state)

    def apply_state(self, state: IncidentState) -> None:
        """Show ``state``: called with every state the store thread hands back."""
        first = self.state is None
        self.incident_id = state.id
        self.state = state
        self._tell_unreadable(state)
        if first or state.drill is not None:
            self._drill_shown(state, first)
        if state.playbook_sha256 != self._playbook_sha or self.playbook is None:
            self._read_playbook(state)
            self.update_header()
            self.tick()
            return
        if not self.section:
            self.section = state.phase if not state.resolved_at else self._post_incident_first()
        self.build_nav()
        self.build_checklist()
        self.tick()

    def _tell_unreadable(self, state: IncidentState) -> None:
        """Say once, per event, that the log holds an event the fold had to skip."""
        new = [u for u in state.unreadable if u.seq not in self.unreadable_shown]
        if not new:
            return
        self.unreadable_shown.update(u.seq for u in new)
        lines = [inline(u.describe()) for u in new[:5]]  # reasons quote the log
        if len(new) > 5:
            lines.append(f"… and {len(new) - 5} more (playbook show lists them all)")
        self.notify(
            "\n".join(lines),
            title="Unreadable events in this incident",
            severity="warning",
            timeout=30,
            markup=False,
        )

    _reading_playbook = ""

    def _read_playbook(self, state: IncidentState) -> None:
        """Build the incident's playbook (from its snapshot) on the store thread."""
        sha = state.playbook_sha256
        if self._reading_playbook == sha:
            return
        self._reading_playbook = sha
        service = _app(self).service

        def built(playbook: Playbook) -> None:
            self.playbook = playbook
            self._playbook_sha = sha
            self._reading_playbook = ""
            if self.state is not None:
                self.apply_state(self.state)

        _app(self).submit("read playbook", lambda: service.playbook_of(state), built, records=False)

    def _post_incident_first(self) -> str:
        assert self.state is not None
        post = self.state.snapshot.get("post_incident", [])
        return post[0]["id"] if post else self.state.phase

    def _section(self, section_id: str) -> dict[str, Any] | None:
        assert self.state is not None
        return next((s for s in self.state.sections if s["id"] == section_id), None)

    def _progress(self, section_id: str) -> tuple[int, int]:
        assert self.state is not None
        section = self._section(section_id)
        if section is None:
            return 0, 0
        refs = [i["ref"] for step in section["steps"] for i in step["items"]]
        return sum(1 for r in refs if r in self.state.done), len(refs)

    # -------------------------------------------------------------- navigation

    def _nav_entries(self) -> list[tuple[str, str, bool]]:
        """(id, label, is_heading) for the left column."""
        assert self.state is not None and self.playbook is not None
        pb = self.playbook
        entries: list[tuple[str, str, bool]] = [(pb.assessment.id, pb.assessment.title, False)]
        for stage, heading in STAGES:
            phases = [p for p in pb.phases if p.stage == stage]
            if phases:
                entries.append((f"heading:{stage}", heading, True))
                entries += [(p.id, p.title, False) for p in phases]
        if pb.scenarios:
            entries.append(("heading:scenarios", "SCENARIOS", True))
            entries.append(("choose-scenario", "Choose a scenario…", False))
            for scenario in pb.scenarios:
                if scenario.id in self.state.scenarios:
                    entries.append((scenario.id, scenario.title, False))
        if pb.post_incident:
            entries.append(("heading:post", "POST-INCIDENT", True))
            entries += [(s.id, s.title, False) for s in pb.post_incident]
        return entries

    def build_nav(self) -> None:
        assert self.state is not None
        nav = self.query_one("#nav", OptionList)
        keep = self.section
        options = []
        for ident, label, heading in self._nav_entries():
            if heading:
                options.append(Option(Text(label, style="bold dim"), id=ident, disabled=True))
                continue
            text = Text(no_wrap=True, overflow="ellipsis")
            current = ident == self.state.phase and self.state.resolved_at is None
            text.append("▶ " if current else "  ", style="bold green")
            done, total = self._progress(ident)
            counter = f"{done}/{total}" if total else ""
            room = NAV_TEXT - 3 - len(counter)
            shown = label if len(label) <= room else label[: room - 1] + "…"
            text.append_text(lit(shown, "bold" if ident == keep else ""))
            text.append(" " * max(1, room - len(shown) + 1))
            style = "green" if total and done == total else ""
            text.append(counter, style=style)
            options.append(Option(text, id=ident))
        highlighted = nav.highlighted
        nav.clear_options()
        nav.add_options(options)
        index = next((i for i, o in enumerate(options) if o.id == keep), None)
        nav.highlighted = index if index is not None else highlighted

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "nav":
            if event.option_index != event.option_list.highlighted:
                return  # stale: posted while the list was being rebuilt
            ident = event.option.id or ""
            if ident and ident != self.section:
                self.section = ident
                self._same_section_rebuild = False  # a new section starts on its first open item
                self.build_checklist()
        elif event.option_list.id == "checklist":
            self.show_detail(event.option.id or "")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        ident = event.option.id or ""
        if event.option_list.id == "nav":
            self.query_one("#checklist", OptionList).focus()
        elif ident.startswith("scenario:"):
            self.choose_scenario(ident.split(":", 1)[1])
        elif ident.startswith("item:"):
            self.action_toggle()
        elif ident.startswith("diag:"):
            self.show_last_result(ident.rsplit(":", 1)[1])
        elif ident.startswith("act:"):
            self.start_action(ident.rsplit(":", 1)[1])

    # -------------------------------------------------------------- checklist

    def _item_prompt(self, ref: str, text: str) -> Text:
        assert self.state is not None
        line = Text("  ")
        if ref in self.pending:
            line.append("[…] ", style="yellow")
        elif ref in self.state.done:
            line.append("[x] ", style="bold green")
        else:
            line.append("[ ] ")
        options = self._item_options(ref)
        if options:
            text = f"{text} ({' / '.join(options)})"
        # Wrap by hand so continuation lines stay under the text, not under the box.
        width = max(
            20, self.query_one("#checklist", OptionList).scrollable_content_region.width - 8
        )
        lines = textwrap.wrap(inline(text), width) or [""]
        line.append(lines[0], style="dim" if ref in self.state.done else "")
        for rest in lines[1:]:
            line.append("\n      " + rest, style="dim" if ref in self.state.done else "")
        return line

    def _item_options(self, ref: str) -> list[str]:
        if self.playbook is None:
            return []
        section, step_id, key = [*ref.split(".", 2), "", ""][:3]
        step = self.playbook.steps().get(f"{section}.{step_id}")
        item = next((i for i in step.items if i.key == key), None) if step else None
        return list(item.options) if item else []

    def build_checklist(self) -> None:
        assert self.state is not None and self.playbook is not None
        checklist = self.query_one("#checklist", OptionList)
        previous = checklist.highlighted
        options: list[Option] = []
        if self.section == "choose-scenario":
            for scenario in self.playbook.scenarios:
                line = Text("● " if scenario.id in self.state.scenarios else "○ ", style="bold")
                line.append_text(lit(scenario.title, "bold"))
                if scenario.summary:
                    line.append(" — ")
                    line.append_text(lit(scenario.summary))
                options.append(Option(line, id=f"scenario:{scenario.id}"))
        else:
            section = self._section(self.section)
            for step in section["steps"] if section else []:
                heading = Text()
                heading.append_text(lit(step["title"], "bold underline"))
                step_ref = f"{self.section}.{step['id']}"
                options.append(Option(heading, id=f"step:{step_ref}"))
                pb_step = self.playbook.steps().get(step_ref)
                for diag_id in pb_step.diagnostics if pb_step else []:
                    options.append(
                        Option(self._diag_prompt(diag_id), id=f"diag:{step_ref}:{diag_id}")
                    )
                for action_id in pb_step.actions if pb_step else []:
                    options.append(
                        Option(self._action_prompt(action_id), id=f"act:{step_ref}:{action_id}")
                    )
                for item in step["items"]:
                    options.append(
                        Option(
                            self._item_prompt(item["ref"], item["text"]), id=f"item:{item['ref']}"
                        )
                    )
        checklist.clear_options()
        checklist.add_options(options)
        if options:
            first_open = next(
                (
                    i
                    for i, o in enumerate(options)
                    if (o.id or "").startswith("item:") and (o.id or "")[5:] not in self.state.done
                ),
                0,
            )
            same = previous is not None and previous < len(options)
            checklist.highlighted = previous if same and self._same_section_rebuild else first_open
            highlighted = checklist.highlighted
            if highlighted is not None:
                self.show_detail(options[highlighted].id or "")
        self._same_section_rebuild = True
        self.update_header()

    _same_section_rebuild = False

    # -------------------------------------------------------------- diagnostics

    def _diag_prompt(self, diag_id: str) -> Text:
        assert self.playbook is not None and self.state is not None
        diag = self.playbook.diagnostics[diag_id]
        line = Text("  ⚙ ", style="cyan")
        title = diag.title if len(diag.title) <= 44 else diag.title[:43] + "…"
        line.append_text(lit(title))
        line.append_text(lit(f"  [{diag.kind} → {diag.target}] ", "dim"))
        last = self.state.last_runs().get(diag_id)
        if diag_id in self.running:
            line.append(" running… ", style="bold yellow")
        elif diag.writes:
            line.append(" writes: not run ", style="dim red")
        elif last is not None:
            line.append_text(verdict_text(last.verdict))
            line.append(f" {last.at:%H:%M}Z", style="dim")
        else:
            line.append(" not run ", style="dim")
        return line

    def _action_prompt(self, action_id: str) -> Text:
        assert self.playbook is not None and self.state is not None
        action = self.playbook.actions[action_id]
        line = Text("  ⚡ ", style="bold yellow")
        title = action.title if len(action.title) <= 36 else action.title[:35] + "…"
        line.append_text(lit(title))
        line.append_text(lit(f"  [{action.do.operation} → {action.target}] ", "dim"))
        runs = [r for r in self.state.actions.values() if r.action == action_id]
        if runs:
            line.append_text(lit(f" {runs[-1].status} ", "bold"))
        else:
            line.append(" not run ", style="dim")
        return line

    def _highlighted_action(self) -> str | None:
        option = self.query_one("#checklist", OptionList).highlighted_option
        ident = (option.id or "") if option else ""
        located = self._highlighted_step()
        step = self.playbook.steps().get(".".join(located)) if self.playbook and located else None
        every = list(step.actions) if step else []
        chosen = ident.rsplit(":", 1)[1] if ident.startswith("act:") else next(iter(every), None)
        if chosen is None:
            self.notify("This step has no guarded action.", markup=False)
        return chosen

    def action_guarded_action(self) -> None:
        chosen = self._highlighted_action()
        if chosen is not None:
            self.start_action(chosen)

    def action_roll_back(self) -> None:
        """Roll back the latest run of the highlighted action from its backup."""
        from playbook.tui.actions import ActionScreen

        chosen = self._highlighted_action()
        if chosen is None or self.state is None:
            return
        runs = [r for r in self.state.actions.values() if r.action == chosen and r.can_roll_back]
        if not runs:
            self.notify(f"No run of {chosen} can be rolled back.", markup=False)
            return
        app = _app(self)
        incident, run_id = self.incident_id, runs[-1].run
        path = Path(self.state.playbook_path) if self.state.playbook_path else None

        state = self.state

        def resume(progress: Any) -> Any:
            targets = app.targets(path, state)
            return app.service.resume_action(incident, run_id, targets, progress)

        self.app.push_screen(
            ActionScreen(resume, f"⚡ roll back {chosen} run {run_id}", rollback=True),
            lambda _: self.reload(),
        )

    def start_action(self, action_id: str) -> None:
        """Open the guarded action's screen: dry run and backup start at once."""
        from playbook.tui.actions import ActionScreen

        if self.playbook is None or self.state is None:
            return
        app = _app(self)
        incident = self.incident_id
        path = Path(self.state.playbook_path) if self.state.playbook_path else None
        action = self.playbook.actions[action_id]
        defaults = param_defaults(action, None)  # type: ignore[arg-type]
        state = self.state

        def open_screen(given: dict[str, str] | None) -> None:
            if given is None:
                return

            def start(progress: Any) -> Any:
                targets = app.targets(path, state)
                return app.service.start_action(incident, action_id, given, targets, progress)

            self.app.push_screen(
                ActionScreen(start, f"⚡ {action_id}: {action.title}"), lambda _: self.reload()
            )

        if action.params:
            hint = f"guarded action on target {action.target}: the dry run comes first"
            self.app.push_screen(
                ParamsDialog(action_id, action, defaults, hint=hint, verb="Dry run"),  # type: ignore[arg-type]
                open_screen,
            )
        else:
            open_screen({})

    def _refresh_diag_lines(self) -> None:
        checklist = self.query_one("#checklist", OptionList)
        for index in range(checklist.option_count):
            ident = checklist.get_option_at_index(index).id or ""
            if ident.startswith("diag:"):
                checklist.replace_option_prompt_at_index(
                    index, self._diag_prompt(ident.rsplit(":", 1)[1])
                )

    def _highlighted_diagnostics(self) -> tuple[str | None, list[str]]:
        """(the highlighted diagnostic, every diagnostic of the highlighted step)."""
        option = self.query_one("#checklist", OptionList).highlighted_option
        ident = (option.id or "") if option else ""
        located = self._highlighted_step()
        step = self.playbook.steps().get(".".join(located)) if self.playbook and located else None
        every = list(step.diagnostics) if step else []
        one = (
            ident.rsplit(":", 1)[1] if ident.startswith("diag:") else (every[0] if every else None)
        )
        return one, every

    def action_diagnose(self) -> None:
        one, _every = self._highlighted_diagnostics()
        if one is None:
            self.notify("This step has no diagnostics.", markup=False)
            return
        self.start_diagnostic(one, ask=True)

    def action_diagnose_all(self) -> None:
        _one, every = self._highlighted_diagnostics()
        runnable = [d for d in every if self.playbook and not self.playbook.diagnostics[d].writes]
        if not runnable:
            self.notify("This step has no diagnostics that can run.", markup=False)
            return
        for diag_id in runnable:
            self.start_diagnostic(diag_id, ask=False)

    def action_stop_diagnostics(self) -> None:
        if not self.running:
            self.notify("No diagnostic is running.", markup=False)
            return
        for prepared in self.running.values():
            prepared.cancel()
        self.notify(f"Stopping {', '.join(self.running)}…", markup=False)

    def start_diagnostic(self, diag_id: str, ask: bool) -> None:
        """Ask for parameters (or take the last ones), prepare on the store thread, run."""
        if self.playbook is None or self.state is None:
            return
        diag = self.playbook.diagnostics[diag_id]
        if diag.writes:
            self.notify(
                f"{diag_id} changes data: it is never run as a diagnostic.",
                severity="error",
                markup=False,
            )
            return
        if diag_id in self.running:
            self.notify(f"{diag_id} is already running (k stops it).", markup=False)
            return
        last = self.state.last_runs().get(diag_id)
        values = param_defaults(diag, last.payload.get("params") if last else None)
        # A parameter that defaults from another diagnostic's number shows that number.
        filled = defaults_from(self.state, diag, {k: v for k, v in values.items() if v})
        values.update({k: str(v) for k, v in filled.items() if not values.get(k)})
        if ask and diag.params:

            def chosen(given: dict[str, str] | None) -> None:
                if given is not None:
                    self._prepare(diag_id, given, show=True)

            self.app.push_screen(ParamsDialog(diag_id, diag, values), chosen)
            return
        self._prepare(diag_id, {k: v for k, v in values.items() if v}, show=ask)

    def _prepare(self, diag_id: str, given: dict[str, str], show: bool) -> None:

        app = _app(self)
        incident = self.incident_id
        path = Path(self.state.playbook_path) if self.state and self.state.playbook_path else None

        state = self.state

        def prepare() -> Any:
            targets = app.targets(path, state)
            return app.service.prepare_diagnostic(incident, diag_id, given, targets)

        def failed(error: BaseException) -> bool:
            from playbook.core.diagnostics import ParamError

            if not isinstance(error, PlaybookError):
                return False
            hint = error.message
            if isinstance(error, ParamError):
                hint = "Highlight it and press d to give them."
            self.notify(
                f"{error.title}\n{hint}".strip(),
                title=f"{diag_id} not run",
                severity="error",
                markup=False,
                timeout=12,
            )
            return True

        app.submit(f"prepare {diag_id}", prepare, lambda p: self._launch(p, show), failed, False)

    def _launch(self, prepared: Any, show: bool) -> None:
        app = _app(self)
        diag_id = prepared.diagnostic_id
        self.running[diag_id] = prepared
        self.show_running[diag_id] = show
        self._refresh_diag_lines()
        self._status(diag_id, "connecting…")

        def progress(p: Any) -> None:
            app.call_from_thread(self._status, diag_id, p.describe())

        self.run_worker(
            lambda: app.service.execute_diagnostic(prepared, progress),
            name=f"diag:{diag_id}",
            group="diagnostics",
            thread=True,
            exit_on_error=False,
        )

    def _status(self, diag_id: str, text: str) -> None:
        if diag_id in self.running:
            self.progress_text[diag_id] = text
        else:
            self.progress_text.pop(diag_id, None)
        status = self.query_one("#diag-status", Static)
        lines = Text()
        for name, said in self.progress_text.items():
            if lines:
                lines.append("\n")
            lines.append("⟳ ", style="bold yellow")
            lines.append_text(lit(f"{name}: {said}"))
        if lines:
            lines.append("   k stops", style="dim")
        status.update(lines)
        status.display = bool(self.progress_text)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group == "drill" and worker.is_finished:
            self._drill_checked(worker)
            return
        if worker.group != "diagnostics" or not worker.is_finished:
            return
        diag_id = worker.name.split(":", 1)[1]
        self.running.pop(diag_id, None)
        show = self.show_running.pop(diag_id, False)
        self._status(diag_id, "")
        if worker.state != WorkerState.SUCCESS:
            self.notify(f"{diag_id} failed: {worker.error}", severity="error", markup=False)
            self._refresh_diag_lines()
            return
        payload = worker.result
        app = _app(self)

        def recorded(state: IncidentState) -> None:
            self.apply_state(state)
            verdict = str(payload["verdict"]).upper()
            self.notify(
                f"{diag_id}: {verdict}. {payload.get('message') or shown_of(payload)}",
                severity="error" if verdict in ("FAIL", "ERROR") else "information",
                markup=False,
            )
            if show:
                self.app.push_screen(ResultScreen(payload))

        app.submit(
            f"record {diag_id}",
            lambda: app.service.record_diagnostic(self.incident_id, payload),
            recorded,
        )

    def show_last_result(self, diag_id: str) -> None:
        last = self.state.last_runs().get(diag_id) if self.state else None
        if last is None:
            self.start_diagnostic(diag_id, ask=True)
        else:
            self.app.push_screen(ResultScreen(last.payload))

    def refresh_item(self, ref: str) -> None:
        assert self.state is not None
        text = self.state.checklist.get(ref, ref)
        checklist = self.query_one("#checklist", OptionList)
        # The item may be in another section than the one shown: nothing to redraw then.
        with contextlib.suppress(OptionDoesNotExist):
            checklist.replace_option_prompt(f"item:{ref}", self._item_prompt(ref, text))

    def action_toggle(self) -> None:
        if self.state is None:
            return
        checklist = self.query_one("#checklist", OptionList)
        if self.focused is not checklist:
            # Space on the left column chooses the section; it never ticks what is unseen.
            checklist.focus()
            return
        option = checklist.highlighted_option
        ident = option.id if option else ""
        if ident and ident.startswith("scenario:"):
            self.choose_scenario(ident.split(":", 1)[1])
            return
        if not ident or not ident.startswith("item:"):
            self.notify("Highlight an item to tick it (the headings are steps).", markup=False)
            return
        ref = ident[5:]
        if ref in self.pending:
            return
        app = _app(self)
        done = ref in self.state.done
        self.pending.add(ref)
        self.refresh_item(ref)
        method = app.service.uncheck if done else app.service.check
        incident = self.incident_id

        phase_before = self.state.phase

        def recorded(state: IncidentState) -> None:
            self.pending.discard(ref)
            self._same_section_rebuild = True
            self.apply_state(state)
            if not done:
                self._advance_from(ref)
            if state.phase != phase_before:
                window = state.phase_window()
                self.notify(
                    f"The incident moved to phase {window.title if window else state.phase}. "
                    "Ctrl+P, 'phase: make current' moves it back.",
                    timeout=8,
                    markup=False,
                )

        def failed(_error: BaseException) -> None:
            self.pending.discard(ref)
            self.refresh_item(ref)

        app.submit(f"tick {ref}", lambda: method(incident, ref), recorded, failed)

    def _advance_from(self, ref: str) -> None:
        checklist = self.query_one("#checklist", OptionList)
        if (
            checklist.highlighted_option is not None
            and checklist.highlighted_option.id == f"item:{ref}"
        ):
            index = checklist.highlighted or 0
            if index + 1 < checklist.option_count:
                checklist.highlighted = index + 1

    def choose_scenario(self, scenario: str) -> None:
        app = _app(self)
        incident = self.incident_id

        def chosen(state: IncidentState) -> None:
            self.section = scenario
            self._same_section_rebuild = False
            self.apply_state(state)
            self.notify(
                f"Following scenario: {scenario}. Its signs, queries and recovery are in the list.",
                markup=False,
            )

        app.submit(
            "choose scenario", lambda: app.service.choose_scenario(incident, scenario), chosen
        )

    # -------------------------------------------------------------- detail

    def _highlighted_step(self) -> tuple[str, str] | None:
        option = self.query_one("#checklist", OptionList).highlighted_option
        ident = (option.id or "") if option else ""
        if ident.startswith("step:"):
            section, step = ident[5:].split(".", 1)
            return section, step
        if ident.startswith("item:"):
            section, step, _item = ident[5:].split(".", 2)
            return section, step
        if ident.startswith(("diag:", "act:")):
            section, step = ident.split(":", 2)[1].split(".", 1)
            return section, step
        return None

    def show_detail(self, ident: str) -> None:
        detail = self.query_one("#detail", Static)
        pb = self.playbook
        if pb is None:
            return
        out = Text()
        if ident.startswith("scenario:"):
            scenario = next(s for s in pb.scenarios if s.id == ident.split(":", 1)[1])
            out.append_text(lit(scenario.title, "bold"))
            out.append("\nDetection signs:\n")
            for item in scenario.detection:
                out.append("  • ")
                out.append_text(lit(item.text))
                out.append("\n")
            out.append(
                "Enter or Space follows this scenario: its signs, investigation queries and recovery join the list."
            )
            detail.update(out)
            self.query_one("#detail-scroll").scroll_home(animate=False)
            return
        located = self._highlighted_step()
        if located is None:
            detail.update("")
            return
        section, step_id = located
        step = pb.steps().get(f"{section}.{step_id}")
        if step is None:
            detail.update("")
            return
        if ident.startswith("item:"):
            key = ident.rsplit(".", 1)[1]
            item = next((i for i in step.items if i.key == key), None)
            if item is not None:
                out.append_text(lit(item.text, "bold"))
                out.append("\n")
                if item.options:
                    out.append("Options: ")
                    out.append_text(lit("; ".join(item.options)))
                    out.append("\n")
                if item.guidance:
                    out.append_text(block(item.guidance))
                    out.append("\n")
                out.append("\n")
        out.append("Step: ", style="dim")
        out.append_text(lit(step.title, "bold"))
        out.append("\n")
        if step.guidance:
            out.append_text(block(step.guidance))
            out.append("\n")
        for diag_id in step.diagnostics:
            diag = pb.diagnostics[diag_id]
            out.append("\nDiagnostic ", style="bold cyan")
            out.append_text(lit(f"{diag_id}: {diag.title}", "bold"))
            out.append_text(lit(f"  [{diag.kind} on target '{diag.target}']", "cyan"))
            standin = standin_line(self.state, diag.target)
            if standin is not None:
                out.append("\n  ")
                out.append_text(standin)
            if diag.writes:
                out.append("\n  WRITES DATA: never run as a diagnostic. ", style="bold red")
            if diag.caution:
                out.append("\n  ")
                out.append_text(lit(diag.caution, "yellow"))
            query = getattr(diag, "query", None)
            shown = (
                query.model_dump(mode="json", by_alias=True, exclude_defaults=True)
                if query
                else {"argv": getattr(diag, "argv", [])}
            )
            out.append("\n  would run: ")
            out.append_text(lit(json.dumps(shown, ensure_ascii=False)))
            for expectation in diag.expect:
                out.append("\n  healthy: ")
                out.append_text(
                    lit(
                        f"{expectation.metric} {expectation.op} {expectation.value} (else {expectation.verdict})"
                    )
                )
            last = self.state.last_runs().get(diag_id) if self.state else None
            if last is not None:
                out.append("\n  last run: ")
                out.append_text(verdict_text(last.verdict))
                out.append_text(
                    lit(f" {last.at:%H:%M:%S}Z by {last.actor}; {shown_of(last.payload)}")
                )
            if not diag.writes:
                out.append(
                    "\n  d runs it, D runs all of this step's, Enter shows the last result.",
                    style="dim",
                )
        for action_id in step.actions:
            action = pb.actions[action_id]
            out.append("\nGuarded action ", style="bold yellow")
            out.append_text(lit(f"{action_id}: {action.title}", "bold"))
            out.append_text(
                lit(
                    f"  [{action.kind} {action.do.operation} on target '{action.target}']", "yellow"
                )
            )
            standin = standin_line(self.state, action.target)
            if standin is not None:
                out.append("\n  ")
                out.append_text(standin)
            if action.description:
                out.append("\n  ")
                out.append_text(lit(action.description))
            if action.caution:
                out.append("\n  ")
                out.append_text(lit(action.caution, "yellow"))
            if action.verify:
                out.append("\n  verified by: ")
                out.append_text(lit(", ".join(v.diagnostic for v in action.verify)))
            for run in (
                r
                for r in (self.state.actions.values() if self.state else [])
                if r.action == action_id
            ):
                out.append("\n  run ")
                out.append_text(lit(f"{run.run}: {run.status}", "bold"))
            out.append(
                "\n  g runs it: dry run, backup, then you type "
                f"'{action.confirm or action.target}' to lock, apply and verify.",
                style="dim",
            )
        for proc_id in step.procedures:
            proc = next(p for p in pb.recovery_procedures if p.id == proc_id)
            out.append("\nProcedure ", style="bold magenta")
            out.append_text(lit(proc.title, "bold"))
            out.append(" (shown and copied, never run by playbook)", style="dim")
            for command in proc.commands:
                if command.description:
                    out.append("\n  # ")
                    out.append_text(lit(command.description, "dim"))
                out.append("\n")
                out.append_text(block(command.code.rstrip("\n")))
        for template in step.templates:
            out.append("\nStatus message: ", style="bold")
            out.append_text(lit(f"{template} — press s to compose it"))
        detail.update(out)
        self.query_one("#detail-scroll").scroll_home(animate=False)
        self.update_header()

    def action_copy(self) -> None:
        pb = self.playbook
        located = self._highlighted_step()
        if pb is None or located is None:
            self.notify("Highlight a step or item first.", markup=False)
            return
        step = pb.steps().get(".".join(located))
        if step is None:
            return
        choices: list[tuple[str, str]] = []
        for proc_id in step.procedures:
            proc = next(p for p in pb.recovery_procedures if p.id == proc_id)
            for command in proc.commands:
                label = f"{proc.title}: {command.description or command.code.splitlines()[0]}"
                choices.append((label, command.code.rstrip("\n") + "\n"))
        for diag_id in step.diagnostics:
            diag = pb.diagnostics[diag_id]
            query = getattr(diag, "query", None)
            text = (
                diag.source
                if diag.source
                else json.dumps(query.model_dump(mode="json", by_alias=True) if query else {})
            )
            choices.append((f"Query {diag_id}: {diag.title}", text.rstrip("\n") + "\n"))
        if not choices:
            self.notify("This step has no commands or queries to copy.", markup=False)
            return
        self.app.push_screen(CopyPicker(choices))

    # -------------------------------------------------------------- drill

    @property
    def is_drill(self) -> bool:
        """True when this incident is a drill (known before it is read in `playbook drill`)."""
        if self.state is not None:
            return self.state.drill is not None
        return _app(self).sandbox_for(self.incident_id) is not None

    def shows_key(self, action: str) -> bool:
        """False for a drill's key outside a drill: it is neither in the footer nor in help."""
        return self.is_drill or action != "drill_check"

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if not self.shows_key(action):
            return False
        return super().check_action(action, parameters)

    def help_extra(self) -> Text | None:
        """What help adds for a drill: its keys, and what is not real."""
        state = self.state
        if state is None or state.drill is None:
            return None
        out = Text("This incident is a DRILL", style="bold")
        out.append_text(lit(f" ({state.drill.title})", "bold"))
        out.append(
            ": a rehearsal on a sandbox made for it, marked on every screen by the bar on "
            "top. Diagnostics and guarded actions run on the sandbox only.\n"
        )
        out.append("F", style="bold")
        out.append(
            " compares the sandbox's data with the fingerprint taken before the fault (a "
            "second or two, in the background), records the answer, and shows the "
            "scorecard; press it again after a repair. Ctrl+P 'drill: show the briefing' "
            "shows the briefing again. Ctrl+Q ends the drill: the data is compared once "
            "more and the scorecard printed."
        )
        if state.drill.speed != 1:
            out.append(
                f"\nThe clock runs ×{state.drill.speed:g}: timers, warnings and breaches "
                "come that many times sooner; the timeline keeps real times."
            )
        return out

    def _drill_shown(self, state: IncidentState, first: bool) -> None:
        """Mark the screens of a drill, and brief the responder the first time it opens."""
        app = _app(self)
        if first:
            self.refresh_bindings()  # the drill's key shows only now that it is known
        app.refresh_drill_marks()
        if state.drill is not None and state.id not in app.briefed:
            app.briefed.add(state.id)
            self.action_briefing()

    def action_briefing(self) -> None:
        from playbook.tui.drill import BriefingScreen

        if self.state is not None and self.state.drill is not None:
            sandbox = _app(self).sandbox_for(self.state.id)
            self.app.push_screen(BriefingScreen(self.state, sandbox))

    def _scorecard_screen(self) -> Any:
        from playbook.tui.drill import ScorecardScreen

        for screen in reversed(self.app.screen_stack):
            if isinstance(screen, ScorecardScreen) and screen.incident_id == self.incident_id:
                return screen
        return None

    def action_drill_check(self) -> None:
        """Compare the drill's data with its fingerprint, record it, show the scorecard."""
        from playbook.tui.drill import ScorecardScreen, make_card

        state = self.state
        if state is None:
            return
        if state.drill is None:
            self.notify("This incident is not a drill: it has no fingerprint.", markup=False)
            return
        app = _app(self)
        card = self._scorecard_screen()
        if card is None:
            card = ScorecardScreen(state.id, state.drill.title)
            self.app.push_screen(card, lambda _: self.reload())
        sandbox = app.sandbox_for(state.id)
        if sandbox is None:
            # Honest: no sandbox, no new check; the card shows what was recorded.
            note = (
                "No new data check: this drill's sandbox is not running in this app (it "
                "ended with its `playbook drill`). The scorecard is from what was recorded."
            )
            ref, service = state.id, app.service
            app.submit(
                "read incident",
                lambda: make_card(service.get(ref).state, service.clock.now(), fresh=False),
                lambda made: card.show_card(made, note),
                records=False,
            )
            return
        card.show_pending()
        if self.checking:
            return  # the running check fills in this card
        self.checking = True
        service, incident = app.service, state.id

        def check() -> Any:
            # Reads every fingerprinted item of the sandbox, then appends to the store
            # (whose writes are serialised by its own lock, as the action screen's are).
            checked, _result = sandbox.check(service, incident)
            return make_card(checked, service.clock.now(), fresh=True)

        self.run_worker(check, name="drill-check", group="drill", thread=True, exit_on_error=False)

    def _drill_checked(self, worker: Worker[Any]) -> None:
        self.checking = False
        card = self._scorecard_screen()
        if worker.state == WorkerState.CANCELLED:
            return
        if worker.state != WorkerState.SUCCESS:
            error = worker.error
            if isinstance(error, PlaybookError):
                text = error.title + (f" {error.message}" if error.message else "")
            else:
                text = f"{type(error).__name__}: {error}"
            if card is not None:
                card.show_problem(text)
            else:
                self.notify(text, title="Data check failed", severity="error", markup=False)
            return
        made = worker.result
        self.apply_state(made.state)
        if card is not None:
            card.show_card(made)
            return
        restored = made.state.drill_checks[-1].restored if made.state.drill_checks else False
        self.notify(
            "Data check recorded: "
            + ("restored." if restored else "NOT restored.")
            + " F shows the scorecard.",
            severity="information" if restored else "warning",
            markup=False,
        )

    # -------------------------------------------------------------- header and timers

    def update_header(self) -> None:
        state = self.state
        if state is None:
            return
        # Where the responder is comes first (severity, phase, step); the title last, as
        # much of it as fits: a long title must not push the phase off the line.
        header = Text()
        header.append(f" {state.id} ", style="bold reverse")
        header.append(
            f" {state.severity} ", style="bold white on red" if state.severity == "P1" else "bold"
        )
        if state.resolved_at is not None:
            header.append(f" {state.status.upper()} ", style="bold black on green")
        else:
            window = state.phase_window()
            header.append(" ")
            header.append_text(lit(window.title if window else state.phase, "bold"))
        shown = self._section(self.section) if self.state is not None else None
        if shown is not None and self.section != state.phase:
            header.append(" (viewing ")
            header.append_text(lit(shown["title"]))
            header.append(")")
        located = self._highlighted_step() if self.is_mounted else None
        if located and self.playbook is not None:
            step = self.playbook.steps().get(".".join(located))
            if step is not None:
                header.append(" › ")
                header.append_text(lit(step.title))
        header.append("  ")
        header.append_text(lit(state.title, "italic"))
        header.no_wrap = True
        header.overflow = "ellipsis"
        self.query_one("#incident-header", Static).update(header)

    def tick(self) -> None:
        state = self.state
        if state is None:
            return
        timers = _app(self).service.timers(state)
        bar = self.query_one(TimerBar)
        bar.timers = timers
        bar.speed = state.speed
        for timer in timers.alerts():
            key = (timer.name, timer.state, state.severity)
            if key in self.announced:
                continue
            self.announced.add(key)
            if timer.state == BREACHED:
                who = f" Escalate to {timer.escalate_to}: press e." if timer.escalate_to else ""
                self.notify(
                    f"{timer.label} target breached ({format_duration(timer.elapsed)} of {format_duration(timer.target)}).{who}",
                    title="Target breached",
                    severity="error",
                    timeout=12,
                    markup=False,
                )
            elif timer.state == WARNING:
                self.notify(
                    f"{timer.label}: {timer.used:.0%} of the target used, {format_duration(timer.remaining)} left.",
                    title="Target at risk",
                    severity="warning",
                    timeout=8,
                    markup=False,
                )

    # -------------------------------------------------------------- actions

    def _record(self, label: str, fn: Any, done_message: str = "") -> None:
        def recorded(state: IncidentState) -> None:
            self.apply_state(state)
            if done_message:
                self.notify(done_message, markup=False)

        _app(self).submit(label, fn, recorded)

    def action_ack(self) -> None:
        if self.state is not None and self.state.acknowledged_at is not None:
            self.notify("Already acknowledged.", markup=False)
            return
        service = _app(self).service
        self._record(
            "acknowledge",
            partial(service.acknowledge, self.incident_id),
            "Acknowledged: response begun.",
        )

    def action_severity(self) -> None:
        if self.state is not None:
            self.app.push_screen(SeverityDialog(self))

    def action_escalate(self) -> None:
        if self.state is not None:
            self.app.push_screen(EscalateDialog(self))

    def action_resolve(self) -> None:
        if self.state is None:
            return
        if self.state.resolved_at is not None:
            from playbook.tui.dialogs import ResolvedDialog

            self.app.push_screen(ResolvedDialog(self))
            return
        self.app.push_screen(ResolveDialog(self))

    def action_rename(self) -> None:
        if self.state is None:
            return
        if self.state.closed_at is not None:
            self.notify(
                "The incident is closed: its title stays as it is.", severity="error", markup=False
            )
            return
        from playbook.tui.dialogs import RenameDialog

        self.app.push_screen(RenameDialog(self))

    def show_post_incident(self) -> None:
        """Show the first post-incident section, its checklist focused."""
        self.action_phase(self._post_incident_first())
        self.query_one("#checklist", OptionList).focus()

    def action_status(self, kind: str = "") -> None:
        if self.state is None:
            return
        if not kind:
            sent = {m.template for m in self.state.messages}
            order = list(self.state.snapshot.get("communications", {}).get("templates", {}))
            kind = next((k for k in order if k not in sent), order[-1] if order else "")
        self.app.push_screen(ComposerScreen(self, kind))

    def action_timeline(self) -> None:
        if self.state is not None:
            self.app.push_screen(TimelineScreen(self))

    def action_export(self, fmt: str = "markdown") -> None:
        if self.state is not None:
            self.app.push_screen(ExportDialog(self, fmt))

    def action_leave(self) -> None:
        self.app.clear_notifications()  # this incident's toasts do not belong on the next screen
        self.app.pop_screen()

    def on_resize(self) -> None:
        # Widths changed: redraw the left column and re-wrap the checklist to fit.
        if self.state is not None and self.playbook is not None and not _app(self).too_small:
            self.call_after_refresh(self.build_nav)
            self.call_after_refresh(self.build_checklist)

    def action_make_current(self, phase: str) -> None:
        service = _app(self).service
        self._record(
            "phase",
            partial(service.enter_phase, self.incident_id, phase),
            f"Current phase: {phase}.",
        )

    def action_close_incident(self) -> None:
        service = _app(self).service
        self._record(
            "close",
            partial(service.close, self.incident_id),
            "Closed. Export the timeline for the review (x).",
        )

    def action_phase(self, phase: str) -> None:
        self.section = phase
        self._same_section_rebuild = False
        if self.state is not None and self.playbook is not None:
            self.build_nav()
            self.build_checklist()

    def palette_commands(self) -> Iterable[SystemCommand]:
        if self.is_drill:
            yield SystemCommand(
                "drill: check data and show scorecard",
                "Compare the data with its fingerprint (F)",
                self.action_drill_check,
            )
            yield SystemCommand(
                "drill: show the briefing",
                "What happened, and what stands in for what",
                self.action_briefing,
            )
        yield SystemCommand("incident: acknowledge", "Stop the response timer", self.action_ack)
        yield SystemCommand(
            "incident: change severity",
            "Escalate or downgrade, with a reason",
            self.action_severity,
        )
        yield SystemCommand(
            "incident: escalate", "Record an escalation to the next person", self.action_escalate
        )
        yield SystemCommand(
            "incident: add note", "A note on the timeline (n)", _app(self).action_note
        )
        yield SystemCommand(
            "incident: rename",
            "A new title; the old one stays in the timeline (T)",
            self.action_rename,
        )
        yield SystemCommand("incident: resolve", "Stop the resolution timer", self.action_resolve)
        yield SystemCommand(
            "incident: close", "After the post-incident work", self.action_close_incident
        )
        yield SystemCommand(
            "incident: show timeline", "Every event, with filters", self.action_timeline
        )
        yield SystemCommand(
            "incident: export timeline", "Markdown for the review", self.action_export
        )
        yield SystemCommand(
            "incident: export timeline as JSON",
            "Every event, loadable",
            partial(self.action_export, "json"),
        )
        for kind in ("initial", "progress", "resolution"):
            yield SystemCommand(
                f"status: compose {kind} update",
                "Status-page message",
                partial(self.action_status, kind),
            )
        if self.playbook is not None:
            for scenario in self.playbook.scenarios:
                yield SystemCommand(
                    f"scenario: follow {scenario.title}",
                    "Bring its checks into view",
                    partial(self.choose_scenario, scenario.id),
                )
            for phase in self.playbook.phases:
                yield SystemCommand(
                    f"phase: make current {phase.title}",
                    "Record that the response is in this phase",
                    partial(self.action_make_current, phase.id),
                )
                yield SystemCommand(
                    f"phase: show {phase.title}",
                    f"Stage {phase.stage}",
                    partial(self.action_phase, phase.id),
                )


# ============================================================================ dialogs


class _Dialog(HelpText, ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("ctrl+s", "submit", "Save", id="dialog.submit"),
    ]

    def __init__(self, incident: IncidentScreen) -> None:
        super().__init__()
        self.incident = incident

    def action_cancel(self) -> None:
        self.dismiss()

    def action_submit(self) -> None:  # pragma: no cover - each dialog has its own
        raise NotImplementedError

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_submit()
        else:
            self.action_cancel()

    def required(self, selector: str, why: str) -> str | None:
        """The field's text, or None after saying why it is needed and focusing it."""
        field = self.query_one(selector, Input)
        if field.value.strip():
            return field.value
        self.notify(why, severity="error", markup=False)
        field.focus()
        return None

    def record(self, label: str, fn: Any, message: str) -> None:
        def recorded(state: IncidentState) -> None:
            self.incident.apply_state(state)
            self.app.notify(message, markup=False)
            self.dismiss()

        _app(self).submit(label, fn, recorded)


class NoteDialog(_Dialog):
    """A note on the timeline, from anywhere (n)."""

    AUTO_FOCUS = "#note-text"
    HELP = "Write a note; Ctrl+S saves it to the incident's timeline, Esc cancels."

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Note for the timeline (Ctrl+S saves)")
            yield TextArea(id="note-text")
            with Horizontal(classes="buttons"):
                yield Button("Save (Ctrl+S)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(TextArea).focus()

    def action_submit(self) -> None:
        text = self.query_one(TextArea).text
        if not text.strip():
            self.notify("Empty note: nothing to save.", markup=False)
            return
        service = _app(self).service
        self.record("note", partial(service.note, self.incident.incident_id, text), "Note saved.")


class SeverityDialog(_Dialog):
    """Escalate or downgrade the severity, with a reason."""

    AUTO_FOCUS = "#levels"
    HELP = "Choose a level, give the reason, Ctrl+S. Running timers take the new targets, measured from the opening."

    def compose(self) -> ComposeResult:
        state = self.incident.state
        pb = self.incident.playbook
        assert state is not None and pb is not None
        with Vertical(classes="dialog"):
            yield Label(f"Severity is {state.severity}. Change it to (↑↓, Enter):")
            yield OptionList(*severity_options(pb), id="levels")
            yield Static(lit(pb.severity.escalation_rule), classes="hint")
            yield Input(placeholder="Reason (recorded)", id="reason")
            with Horizontal(classes="buttons"):
                yield Button("Change (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        state = self.incident.state
        pb = self.incident.playbook
        assert state is not None and pb is not None
        levels = self.query_one("#levels", OptionList)
        levels.highlighted = [lvl.id for lvl in pb.severity.levels].index(state.severity)
        levels.focus()

    def on_option_list_option_selected(self, _event: OptionList.OptionSelected) -> None:
        self.query_one("#reason", Input).focus()

    def action_submit(self) -> None:
        reason = self.query_one("#reason", Input).value
        level = _chosen_level(self.query_one("#levels", OptionList))
        if level is None:
            return
        if self.required("#reason", "Give the reason for the change.") is None:
            return
        service = _app(self).service
        self.record(
            "severity",
            partial(service.change_severity, self.incident.incident_id, level, reason),
            f"Severity is now {level}.",
        )


class EscalateDialog(_Dialog):
    """Record an escalation to the next person on the path."""

    AUTO_FOCUS = "#reason"
    HELP = "Records who the incident was escalated to, and why. Enter the reason and press Enter."

    def compose(self) -> ComposeResult:
        state = self.incident.state
        assert state is not None
        who = state.next_escalation() or ""
        with Vertical(classes="dialog"):
            yield Label(lit(f"Escalation path: {' → '.join(state.escalation_path)}"))
            yield Input(
                value=who,
                placeholder="Who (everyone on the path was reached: name someone)",
                id="to",
            )
            yield Input(
                placeholder="Reason (recorded), e.g. resolution target breached", id="reason"
            )
            with Horizontal(classes="buttons"):
                yield Button("Escalate (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def action_submit(self) -> None:
        to = self.query_one("#to", Input).value.strip()
        reason = self.query_one("#reason", Input).value
        if not to:
            self.notify("Say who to escalate to.", severity="error", markup=False)
            return
        if self.required("#reason", "Say why you escalate; it goes in the timeline.") is None:
            return
        self.app.clear_notifications()  # the "escalate to …" toast is answered now
        service = _app(self).service
        self.record(
            "escalate",
            partial(service.escalate, self.incident.incident_id, to, reason),
            f"Escalated to {to}.",
        )


class ResolveDialog(_Dialog):
    """Resolve the incident (stops the resolution timer)."""

    AUTO_FOCUS = "#summary"
    HELP = "A sentence on how it was resolved; Enter resolves. Post-incident work follows."

    def compose(self) -> ComposeResult:
        state = self.incident.state
        assert state is not None
        phases = {p.id for p in state.phases} | {"assessment"}
        open_items = [
            r for r in state.checklist if r.split(".", 1)[0] in phases and r not in state.done
        ]
        with Vertical(classes="dialog"):
            yield Label("Resolve the incident: how was it resolved?")
            if open_items:
                yield Static(
                    lit(
                        f"{len(open_items)} item(s) of the assessment and phases are not ticked; "
                        "they will be listed as left open in the export."
                    ),
                    classes="hint",
                )
            yield Input(
                placeholder="e.g. restored 1,204 orders from the 02:00 backup", id="summary"
            )
            with Horizontal(classes="buttons"):
                yield Button("Resolve (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_submit(self) -> None:
        summary = self.query_one("#summary", Input).value
        if not summary.strip():
            self.notify(
                "Say in a sentence how it was resolved; the review needs it.",
                severity="error",
                markup=False,
            )
            return
        service = _app(self).service
        incident = self.incident

        def recorded(state: IncidentState) -> None:
            incident.section = incident._post_incident_first()
            incident._same_section_rebuild = False
            incident.apply_state(state)
            self.app.notify(
                "Resolved. Post-incident work is on the left; x exports the timeline.", markup=False
            )
            self.dismiss()

        _app(self).submit(
            "resolve", partial(service.resolve, incident.incident_id, summary), recorded
        )


class ExportDialog(_Dialog):
    """Export the timeline to a file (written atomically)."""

    AUTO_FOCUS = "#path"
    HELP = "Choose the format and the file; Enter writes it (atomically: never half a file)."

    def __init__(self, incident: IncidentScreen, fmt: str = "markdown") -> None:
        super().__init__(incident)
        self.fmt = fmt

    def compose(self) -> ComposeResult:
        from playbook.tui.app import default_export_path

        with Vertical(classes="dialog"):
            yield Label("Export the timeline")
            with RadioSet(id="format"):
                yield RadioButton(
                    "Markdown: the post-incident document", value=self.fmt == "markdown"
                )
                yield RadioButton("JSON: every event, loadable again", value=self.fmt == "json")
            # The cursor goes to the end of the path: a first key (Space!) must not
            # replace all of it, as a selected value would be.
            yield Input(
                value=str(default_export_path(self.incident.incident_id, self.fmt)),
                id="path",
                select_on_focus=False,
            )
            with Horizontal(classes="buttons"):
                yield Button("Export (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        from playbook.tui.app import default_export_path

        self.fmt = "markdown" if event.index == 0 else "json"
        self.query_one("#path", Input).value = str(
            default_export_path(self.incident.incident_id, self.fmt)
        )

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def action_submit(self) -> None:
        typed = self.required("#path", "Give the file to write, e.g. incident.md.")
        if typed is None:
            return
        path = Path(typed.strip()).expanduser()
        service = _app(self).service
        incident_id = self.incident.incident_id
        fmt = self.fmt

        def write() -> Path:
            return atomic_write(path, service.export(incident_id, fmt))

        def written(where: Path) -> None:
            self.app.notify(f"Wrote {where}", title="Exported", markup=False)
            self.dismiss()

        _app(self).submit("export", write, written, records=False)


class CopyPicker(HelpText, ModalScreen[None]):
    """Choose one command or query to copy; one at a time, so a paste runs one thing."""

    AUTO_FOCUS = "#copy-choices"
    HELP = "↑↓ choose a command or query, Enter copies it to the clipboard (OSC 52), Esc cancels."
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Cancel", id="copy.cancel")
    ]

    def __init__(self, choices: list[tuple[str, str]]) -> None:
        super().__init__()
        self.choices = choices

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Copy which one? (Enter copies, Esc cancels)")
            options = [
                Option(lit(label), id=str(i)) for i, (label, _text) in enumerate(self.choices)
            ]
            yield OptionList(*options, id="copy-choices")
            yield Static(id="copy-preview", classes="hint")

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        text = self.choices[int(event.option.id or 0)][1]
        self.query_one("#copy-preview", Static).update(block("\n".join(text.splitlines()[:6])))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        label, text = self.choices[int(event.option.id or 0)]
        self.app.copy_to_clipboard(text)
        self.app.notify(f"Copied to the clipboard: {label}", timeout=5, markup=False)
        self.dismiss()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)


# ============================================================================ composer


class ComposerScreen(HelpText, Screen[None]):
    """Compose a status-page message: variables, live preview, copy, save, send."""

    HELP = (
        "Fill in the variables (those the incident knows are prefilled); the preview "
        "updates as you type. A missing variable is named instead of leaving a blank.\n"
        "Ctrl+S sends it: the exact text is recorded in the timeline. Ctrl+Y copies it "
        "to the clipboard (OSC 52); Ctrl+O saves it to a file in the current directory. "
        "Tab moves between fields; F2 switches the message kind; F1 shows this help. "
        "Variables the incident fills in (current_time, service) are taken at sending "
        "unless you changed them."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send & record", id="composer.send"),
        Binding("ctrl+y", "copy", "Copy", id="composer.copy"),
        Binding("ctrl+o", "save", "Save to file", id="composer.save"),
        Binding("f1", "app.help", "Help", id="composer.help"),
        Binding("f2", "next_kind", "Kind", id="composer.kind"),
        Binding("escape", "leave", "Back", id="composer.leave"),
    ]

    def __init__(self, incident: IncidentScreen, kind: str) -> None:
        super().__init__()
        self.incident = incident
        self.kind = kind
        self.text = ""
        self.values: dict[str, dict[str, str]] = {}

    def _templates(self) -> dict[str, Any]:
        assert self.incident.state is not None
        return dict(self.incident.state.snapshot.get("communications", {}).get("templates", {}))

    def compose(self) -> ComposeResult:
        yield Static(id="composer-title")
        yield TimerBar(id="timers")
        with Horizontal(id="composer-body"):
            yield VerticalScroll(id="composer-fields")
            with VerticalScroll(id="composer-preview-scroll"):
                yield Static(id="composer-preview")
        yield Footer()

    def on_mount(self) -> None:
        self.show_kind()
        self.set_interval(_app(self).tick_seconds, self.tick)
        self.tick()

    def tick(self) -> None:
        state = self.incident.state
        if state is not None:
            bar = self.query_one(TimerBar)
            bar.timers = _app(self).service.timers(state)
            bar.speed = state.speed

    def show_kind(self) -> None:
        state = self.incident.state
        assert state is not None
        tmpl = self._templates().get(self.kind, {})
        title = Text(f"Status message: {self.kind}", style="bold")
        if tmpl:
            title.append_text(
                lit(
                    f" — {tmpl.get('title', '')} (sets the status page to '{tmpl.get('status', '')}')"
                )
            )
        self.query_one("#composer-title", Static).update(title)
        fields = self.query_one("#composer-fields", VerticalScroll)
        fields.remove_children()
        service = _app(self).service
        prefill = service.status_variables(state)
        variables = tmpl.get("variables", {})
        saved = self.values.setdefault(self.kind, {})
        widgets = []
        for name, spec in variables.items():
            value = saved.get(
                name, prefill.get(name, "") if spec.get("source") == "incident" else ""
            )
            widgets.append(
                Static(lit(f"{name}: {spec.get('description', '')}"), classes="var-label")
            )
            widgets.append(Input(value=value, id=f"var-{name}", name=name))
        fields.mount_all(widgets)
        self.prefilled = {
            name: prefill.get(name, "")
            for name, spec in variables.items()
            if spec.get("source") == "incident"
        }
        fields.scroll_home(animate=False)
        self.render_preview()
        first_empty = next((w for w in widgets if isinstance(w, Input) and not w.value), None)
        target = first_empty or next((w for w in widgets if isinstance(w, Input)), None)
        if target is not None:
            self.call_after_refresh(target.focus)

    def current_values(self) -> dict[str, str]:
        return {w.name or "": w.value for w in self.query("#composer-fields Input").results(Input)}

    def on_input_changed(self, _event: Input.Changed) -> None:
        self.values[self.kind] = self.current_values()
        self.render_preview()

    def render_preview(self) -> None:
        state = self.incident.state
        assert state is not None
        preview = self.query_one("#composer-preview", Static)
        tmpl = self._templates().get(self.kind)
        if tmpl is None:
            preview.update(lit(f"No template {self.kind!r} in this playbook."))
            self.text = ""
            return
        service = _app(self).service
        try:
            # Rendering reads a small template file once (Jinja caches it): no store I/O.
            self.text = service.render_status(state, self.kind, self.current_values())
        except (TemplateError, PlaybookError) as error:
            self.text = ""
            out = Text(error.title, style="bold red")
            if error.message:
                out.append("\n")
                out.append_text(block(error.message, "red"))
            preview.update(out)
            return
        preview.update(block(self.text))

    def action_next_kind(self) -> None:
        kinds = list(self._templates())
        if kinds:
            self.kind = (
                kinds[(kinds.index(self.kind) + 1) % len(kinds)] if self.kind in kinds else kinds[0]
            )
            self.show_kind()

    def action_leave(self) -> None:
        self.app.pop_screen()

    def action_copy(self) -> None:
        if not self.text:
            self.notify(
                "Nothing to copy: the message does not render yet.", severity="error", markup=False
            )
            return
        self.app.copy_to_clipboard(self.text)
        self.notify("Copied the message to the clipboard (OSC 52).", markup=False)

    def action_save(self) -> None:
        if not self.text:
            self.notify(
                "Nothing to save: the message does not render yet.", severity="error", markup=False
            )
            return
        path = Path.cwd() / f"status-{self.incident.incident_id}-{self.kind}.txt"
        text = self.text

        def saved(where: Path) -> None:
            self.notify(f"Saved {where}", markup=False)

        _app(self).submit("save message", lambda: atomic_write(path, text), saved)

    def action_send(self) -> None:
        if not self.text:
            self.notify(
                "The message does not render yet; fill in what the preview names.",
                severity="error",
                markup=False,
            )
            return
        service = _app(self).service
        # A value the incident filled in and the responder left alone (current_time) is
        # taken afresh at sending, not from when the composer opened.
        prefilled = getattr(self, "prefilled", {})
        values = {k: v for k, v in self.current_values().items() if prefilled.get(k) != v}
        incident = self.incident
        kind = self.kind

        def sent(result: tuple[IncidentState, str]) -> None:
            state, _text = result
            incident.apply_state(state)
            self.app.notify(
                f"'{kind}' message recorded in the timeline. Publish it on the status page.",
                markup=False,
            )
            self.app.pop_screen()

        _app(self).submit(
            "send status", lambda: service.status(incident.incident_id, kind, values), sent
        )


# ============================================================================ timeline


FILTERS = (
    ("all", "everything", None),
    ("notes", "notes", {ev.NOTE_ADDED}),
    ("status", "status messages", {ev.STATUS_RENDERED}),
    ("checklist", "checklist", {ev.ITEM_CHECKED, ev.ITEM_UNCHECKED}),
    (
        "severity",
        "severity & escalation",
        {ev.SEVERITY_CHANGED, ev.ESCALATED, ev.ACKNOWLEDGED, ev.RESOLVED, ev.CLOSED, ev.OPENED},
    ),
    ("phases", "phases & scenarios", {ev.PHASE_ENTERED, ev.SCENARIO_CHOSEN}),
)


class TimelineScreen(HelpText, Screen[None]):
    """Every event in order, with local and UTC times."""

    HELP = (
        "Every event of the incident, oldest first; the line under the table shows the "
        "highlighted event in full. f cycles the filter; m and j export Markdown or JSON; "
        "n adds a note; Esc goes back."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "filter", "Filter", id="timeline.filter"),
        Binding("m", "export('markdown')", "Export MD", id="timeline.md"),
        Binding("j", "export('json')", "Export JSON", id="timeline.json"),
        Binding("escape", "leave", "Back", id="timeline.leave"),
    ]

    def __init__(self, incident: IncidentScreen) -> None:
        super().__init__()
        self.incident = incident
        self.filter_index = 0
        self.events: list[ev.Event] = []
        self.rows: list[tuple[str, ...]] = []
        self.shown_events: list[ev.Event] = []
        self._loaded = False

    def compose(self) -> ComposeResult:
        yield Static(id="timeline-title")
        yield TimerBar(id="timers")
        yield TimelineView(id="timeline")
        yield Static(id="event-detail")
        yield Footer()

    def on_mount(self) -> None:
        self.set_interval(_app(self).tick_seconds, self.tick)
        self.tick()
        self.reload()

    def tick(self) -> None:
        state = self.incident.state
        if state is not None:
            bar = self.query_one(TimerBar)
            bar.timers = _app(self).service.timers(state)
            bar.speed = state.speed

    def on_screen_resume(self) -> None:
        if self._loaded:  # the first resume is the mount itself
            self.reload()

    def reload(self) -> None:
        app = _app(self)
        ref = self.incident.incident_id
        known = len(self.events)

        def read() -> tuple[list[ev.Event], list[tuple[str, ...]]]:
            # Runs on the store thread: reading and formatting 10,000 rows never blocks keys.
            found = app.service.get(ref)
            if len(found.events) == known:
                return found.events, []
            return found.events, [_timeline_row(e, found.state) for e in found.events]

        def loaded(result: tuple[list[ev.Event], list[tuple[str, ...]]]) -> None:
            events, rows = result
            self._loaded = True
            if rows or not self.events:
                self.events, self.rows = events, rows
                self.show()
                # Tens of thousands of long-lived rows made each full garbage collection
                # take 100-300 ms (a visible stall while scrolling, bench/app_bench.py).
                # Freezing moves them out of the collector's scans; reference counting
                # still frees them when the timeline closes (they hold no cycles).
                gc.freeze()

        app.submit("read timeline", read, loaded, records=False)

    def show(self) -> None:
        _key, label, kinds = FILTERS[self.filter_index]
        picked = [i for i, e in enumerate(self.events) if kinds is None or e.type in kinds]
        self.shown_events = [self.events[i] for i in picked]
        table = self.query_one(TimelineView)
        table.set_rows([self.rows[i] for i in picked])
        title = Text(
            f"Timeline of {self.incident.incident_id}: {len(picked)} of {len(self.events)} events",
            style="bold",
        )
        title.append(f"  (filter: {label}; f changes it)")
        self.query_one("#timeline-title", Static).update(title)
        table.focus()

    def on_timeline_view_row_highlighted(self, event: TimelineView.RowHighlighted) -> None:
        if 0 <= event.row < len(self.shown_events):
            chosen = self.shown_events[event.row]
            text = Text(
                f"#{chosen.seq} {chosen.at:%Y-%m-%d %H:%M:%S}Z {chosen.actor}: ", style="bold"
            )
            text.append_text(block(describe(chosen, self.incident.state)))
            if chosen.type == ev.STATUS_RENDERED:
                text.append("\n")
                text.append_text(block(chosen.payload.get("text", "")))
            self.query_one("#event-detail", Static).update(text)

    def action_filter(self) -> None:
        self.filter_index = (self.filter_index + 1) % len(FILTERS)
        self.show()

    def action_export(self, fmt: str) -> None:
        self.app.push_screen(ExportDialog(self.incident, fmt))

    def action_leave(self) -> None:
        self.app.pop_screen()


def _timeline_row(event: ev.Event, state: IncidentState | None) -> tuple[str, ...]:
    """One timeline row as literal text (control characters escaped, newlines shown)."""
    local = event.at.astimezone()
    return (
        str(event.seq),
        f"{local:%m-%d %H:%M %Z}",
        f"{event.at:%H:%M:%S}Z",
        inline(event.actor),
        inline(describe(event, state).replace("\n", " ⏎ ")),
    )


# ============================================================================ help


class HelpScreen(HelpText, ModalScreen[None]):
    """What the screen underneath is for, and every key that works there."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "dismiss", "Close", id="help.close"),
        Binding("question_mark", "dismiss", "Close", key_display="?", id="help.close2"),
    ]

    def __init__(self, under: Screen[Any]) -> None:
        super().__init__()
        self.under = under

    def compose(self) -> ComposeResult:
        text = Text()
        text.append(f"{type(self.under).__doc__ or ''}\n\n", style="bold")
        extra = getattr(self.under, "help_extra", None)
        said = extra() if callable(extra) else None
        if said:  # first: what is different here matters more than what is usual
            text.append_text(said)
            text.append("\n\n")
        text.append(getattr(self.under, "HELP", "") + "\n\n")
        text.append("Keys here\n", style="bold underline")
        bindings: list[Any] = list(getattr(self.under, "BINDINGS", [])) + list(self.app.BINDINGS)
        shows = getattr(self.under, "shows_key", None)
        for binding in bindings:
            if isinstance(binding, Binding):
                if callable(shows) and not shows(binding.action):
                    continue  # a drill's key, outside a drill
                key = binding.key_display or binding.key
                text.append(f"  {key:<12}", style="bold")
                text.append(f"{binding.description}\n")
        text.append(f"  {'ctrl+p':<12}", style="bold")
        text.append("Command palette: every action, by name\n")
        text.append("\nEsc or ? closes this help.", style="dim")
        with VerticalScroll(classes="dialog help"):
            yield Static(text, id="help-text")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
