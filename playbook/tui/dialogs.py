"""Dialogs of the incident screen that live beside it: renaming, and what a resolved
incident offers instead of the resolve dialog.

They are imported when first used (``screens`` imports this module inside its actions),
so ``screens`` stays the one place the incident screen is built.
"""

from __future__ import annotations

from functools import partial
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from playbook.tui.screens import HelpText, IncidentScreen, _app, _Dialog
from playbook.tui.widgets import lit


class RenameDialog(_Dialog):
    """Give the incident a new title; the old one stays in the timeline and the export."""

    AUTO_FOCUS = "#title"
    HELP = (
        "Type the new title; Enter records it (a 'renamed' event keeps the old one in the "
        "timeline and the export). A title is one line of plain text: control characters "
        "are refused. Esc cancels."
    )

    def compose(self) -> ComposeResult:
        state = self.incident.state
        assert state is not None
        with Vertical(classes="dialog"):
            yield Label("Rename the incident (Enter records it)")
            yield Static(lit(f"Now: {state.title}"), classes="hint")
            # The cursor goes to the end: a first key must not replace the whole title.
            yield Input(value=state.title, id="title", select_on_focus=False)
            with Horizontal(classes="buttons"):
                yield Button("Rename (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def action_submit(self) -> None:
        title = self.required("#title", "A title needs some text.")
        if title is None:
            return
        service = _app(self).service
        self.record(
            "rename",
            partial(service.rename, self.incident.incident_id, title),
            f"Renamed: {title.strip()}",
        )


class ResolvedDialog(HelpText, ModalScreen[None]):
    """The incident is resolved already: what can still be done, one key away."""

    AUTO_FOCUS = "#post"
    HELP = (
        "The incident is resolved: the response timers have stopped. What remains is the "
        "post-incident work (the left column's last sections), notes (n), the export for "
        "the review (x), and closing the incident once the work is done. Esc goes back."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "choose('export')", "Export", id="resolved.export"),
        Binding("escape", "dismiss", "Back", id="resolved.back"),
    ]

    def __init__(self, incident: IncidentScreen) -> None:
        super().__init__()
        self.incident = incident

    def compose(self) -> ComposeResult:
        state = self.incident.state
        assert state is not None and state.resolved_at is not None
        closed = state.closed_at is not None
        with Vertical(classes="dialog"):
            head = Text(f"Incident {state.id} ", style="bold")
            if closed:
                head.append("is closed; it ", style="bold")
            head.append(f"was resolved at {state.resolved_at:%Y-%m-%d %H:%M} UTC", style="bold")
            if state.resolution_summary:
                head.append(": ")
                head.append_text(lit(state.resolution_summary))
            head.append(".")
            yield Static(head)
            if closed:
                yield Static(
                    "It is closed: only notes can be added (n). The export has everything.",
                    classes="hint",
                )
            else:
                yield Static(
                    "What's next: the post-incident checklist, notes (n), the export for the "
                    "review (x), and closing it once the work is done.",
                    classes="hint",
                )
            with Horizontal(classes="buttons"):
                if not closed:
                    yield Button("Post-incident work", variant="primary", id="post")
                yield Button(
                    "Export (x)", id="export", variant="default" if not closed else "primary"
                )
                if not closed:
                    yield Button("Close the incident", id="close")
                yield Button("Back (Esc)", id="back")

    def on_mount(self) -> None:
        first = self.query(Button).first()
        first.focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_choose(event.button.id or "back")

    def action_choose(self, choice: str) -> None:
        """Leave the dialog, then do what was chosen on the incident screen."""
        incident = self.incident
        self.dismiss()
        if choice == "post":
            incident.show_post_incident()
        elif choice == "export":
            incident.action_export()
        elif choice == "close":
            incident.action_close_incident()

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
