"""The incident's dialogs: note, severity, escalation, resolve, rename, export, copy.

A dialog is given what it shows (the incident's state, its playbook), records its change
on the store thread, and returns through ``dismiss()``: the incident as recorded, for
the screen that opened it to show. It stays open, with what was typed, when the change
is refused (a control character in a title, a store that failed), so nothing is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import (
    Button,
    Input,
    Label,
    OptionList,
    RadioButton,
    RadioSet,
    Static,
    TextArea,
)
from textual.widgets.option_list import Option

from playbook.core.state import IncidentState
from playbook.fileio import atomic_write
from playbook.tui.host import host
from playbook.tui.messages import ChangeRecorded, FileWritten
from playbook.tui.screens.base import HelpText
from playbook.tui.widgets.severity_list import SeverityList
from playbook.tui.widgets.text import block, lit

if TYPE_CHECKING:
    from playbook.core.model import Playbook

ResultT = TypeVar("ResultT")


def default_export_path(incident_id: str, fmt: str) -> Path:
    """Where an export goes unless the responder says otherwise: the current directory."""
    return Path.cwd() / f"incident-{incident_id}.{'md' if fmt == 'markdown' else 'json'}"


class _Dialog(HelpText, ModalScreen[ResultT]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("ctrl+s", "submit", "Save", id="dialog.submit"),
    ]

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


class _ChangeDialog(_Dialog[IncidentState]):
    """A dialog that records one change, then returns the incident as recorded."""

    def record(self, label: str, fn: Callable[[], IncidentState], said: str) -> None:
        """Record on the store thread; ``said`` tells the responder once it is on disk."""
        host(self).submit(label, fn, self, partial(ChangeRecorded, said=said))

    def on_change_recorded(self, message: ChangeRecorded) -> None:
        self.app.notify(message.said, markup=False)
        self.dismiss(message.state)


class NoteDialog(_ChangeDialog):
    """A note on the timeline, from anywhere (n)."""

    AUTO_FOCUS = "#note-text"
    HELP = "Write a note; Ctrl+S saves it to the incident's timeline, Esc cancels."

    def __init__(self, incident_id: str) -> None:
        super().__init__()
        self.incident_id = incident_id

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
        service = host(self).service
        self.record("note", partial(service.note, self.incident_id, text), "Note saved.")


class SeverityDialog(_ChangeDialog):
    """Escalate or downgrade the severity, with a reason."""

    AUTO_FOCUS = "#levels"
    HELP = "Choose a level, give the reason, Ctrl+S. Running timers take the new targets, measured from the opening."

    def __init__(self, state: IncidentState, playbook: Playbook) -> None:
        super().__init__()
        self.state = state
        self.playbook = playbook

    def compose(self) -> ComposeResult:
        state, pb = self.state, self.playbook
        with Vertical(classes="dialog"):
            yield Label(f"Severity is {state.severity}. Change it to (↑↓, Enter):")
            yield SeverityList(pb, state.severity, id="levels")
            yield Static(lit(pb.severity.escalation_rule), classes="hint")
            yield Input(placeholder="Reason (recorded)", id="reason")
            with Horizontal(classes="buttons"):
                yield Button("Change (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one(SeverityList).focus()

    def on_option_list_option_selected(self, _event: OptionList.OptionSelected) -> None:
        self.query_one("#reason", Input).focus()

    def action_submit(self) -> None:
        reason = self.query_one("#reason", Input).value
        level = self.query_one(SeverityList).chosen
        if level is None:
            return
        if self.required("#reason", "Give the reason for the change.") is None:
            return
        service = host(self).service
        self.record(
            "severity",
            partial(
                service.change_severity, self.state.id, level, reason, based_on=self.state.severity
            ),
            f"Severity is now {level}.",
        )


class EscalateDialog(_ChangeDialog):
    """Record an escalation to the next person on the path."""

    AUTO_FOCUS = "#reason"
    HELP = "Records who the incident was escalated to, and why. Enter the reason and press Enter."

    def __init__(self, state: IncidentState) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        state = self.state
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
        service = host(self).service
        self.record(
            "escalate",
            partial(service.escalate, self.state.id, to, reason),
            f"Escalated to {to}.",
        )


class ResolveDialog(_ChangeDialog):
    """Resolve the incident (stops the resolution timer)."""

    AUTO_FOCUS = "#summary"
    HELP = "A sentence on how it was resolved; Enter resolves. Post-incident work follows."

    def __init__(self, state: IncidentState) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        state = self.state
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
        service = host(self).service
        self.record(
            "resolve",
            partial(service.resolve, self.state.id, summary, based_on=self.state.status),
            "Resolved. Post-incident work is on the left; x exports the timeline.",
        )


class RenameDialog(_ChangeDialog):
    """Give the incident a new title; the old one stays in the timeline and the export."""

    AUTO_FOCUS = "#title"
    HELP = (
        "Type the new title; Enter records it (a 'renamed' event keeps the old one in the "
        "timeline and the export). A title is one line of plain text: control characters "
        "are refused. Esc cancels."
    )

    def __init__(self, state: IncidentState) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        state = self.state
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
        service = host(self).service
        self.record(
            "rename",
            partial(service.rename, self.state.id, title),
            f"Renamed: {title.strip()}",
        )


class ExportDialog(_Dialog[Path]):
    """Export the timeline to a file (written atomically)."""

    AUTO_FOCUS = "#path"
    HELP = "Choose the format and the file; Enter writes it (atomically: never half a file)."

    def __init__(self, incident_id: str, fmt: str = "markdown") -> None:
        super().__init__()
        self.incident_id = incident_id
        self.fmt = fmt

    def compose(self) -> ComposeResult:
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
                value=str(default_export_path(self.incident_id, self.fmt)),
                id="path",
                select_on_focus=False,
            )
            with Horizontal(classes="buttons"):
                yield Button("Export (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self.fmt = "markdown" if event.index == 0 else "json"
        self.query_one("#path", Input).value = str(default_export_path(self.incident_id, self.fmt))

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()

    def action_submit(self) -> None:
        typed = self.required("#path", "Give the file to write, e.g. incident.md.")
        if typed is None:
            return
        path = Path(typed.strip()).expanduser()
        service = host(self).service
        incident_id, fmt = self.incident_id, self.fmt

        def write() -> Path:
            return atomic_write(path, service.export(incident_id, fmt))

        host(self).submit("export", write, self, FileWritten, records=False)

    def on_file_written(self, message: FileWritten) -> None:
        self.app.notify(f"Wrote {message.path}", title="Exported", markup=False)
        self.dismiss(message.path)


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


class ResolvedDialog(HelpText, ModalScreen[str]):
    """The incident is resolved already: what can still be done, one key away.

    Returns the choice (``post``, ``export`` or ``close``) through ``dismiss()``; the
    incident screen does it once the dialog is gone.
    """

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

    def __init__(self, state: IncidentState) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        state = self.state
        assert state.resolved_at is not None
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
        """Leave the dialog with the choice; the incident screen acts on it."""
        self.dismiss(choice)

    async def action_dismiss(self, result: Any = None) -> None:
        self.dismiss(result)
