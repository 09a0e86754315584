"""A new incident: its title, its severity (the playbook's default first) and its triggers."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, OptionList, SelectionList, Static
from textual.widgets.selection_list import Selection

from playbook.tui.host import host
from playbook.tui.messages import IncidentOpened
from playbook.tui.screens.base import HelpText
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.widgets.severity_list import SeverityList
from playbook.tui.widgets.text import lit

if TYPE_CHECKING:
    from playbook.core.model import Playbook


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
            yield SeverityList(pb, pb.severity.default, id="severity")
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
        loaded = host(self).playbook
        assert loaded is not None
        return loaded.playbook

    def on_mount(self) -> None:
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
        app = host(self)
        title = self.query_one("#title", Input).value.strip()
        if not title:
            self.notify("An incident needs a title.", severity="error", markup=False)
            self.query_one("#title", Input).focus()
            return
        pb = self._playbook()
        level = self.query_one(SeverityList).chosen or pb.severity.default
        triggers = list(self.query_one("#triggers", SelectionList).selected)
        loaded = app.playbook
        app.submit(
            "open incident",
            lambda: app.service.open(loaded, title, level, triggers),
            self,
            IncidentOpened,
        )

    def on_incident_opened(self, message: IncidentOpened) -> None:
        self.app.switch_screen(IncidentScreen(message.state.id, message.state))
