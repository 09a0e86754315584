"""The dialog for a change someone else made first: who set what, when, and what yours
was based on; Enter redoes it on the value as it is now, Esc leaves it."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

from playbook.tui.host import host
from playbook.tui.screens.base import HelpText
from playbook.tui.widgets.text import lit

if TYPE_CHECKING:
    from playbook.service.context import StaleChange
    from playbook.tui.messages import Job


def redo_on_current(job: Job, error: StaleChange) -> Any | None:
    """The job's call made again on the value that is current now (None when the job
    did not name the value it was based on, so it cannot be redone here)."""
    fn = job.fn
    if not isinstance(fn, partial) or "based_on" not in fn.keywords:
        return None
    return partial(fn.func, *fn.args, **{**fn.keywords, "based_on": error.current})


class StaleChangeDialog(HelpText, ModalScreen[None]):
    """Someone changed the value first: show it, offer to redo the change on it."""

    HELP = (
        "Another responder changed this before your change reached the log, so yours was "
        "refused and nothing was recorded. Enter redoes your change on the value as it is "
        "now; Esc leaves it as they set it."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "redo", "Redo", id="conflict.redo"),
        Binding("escape", "dismiss_dialog", "Leave it", id="conflict.leave"),
    ]

    def __init__(self, job: Job, error: StaleChange) -> None:
        super().__init__()
        self.job = job
        self.error = error

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(f"Someone changed the {self.error.field} first")
            yield Static(lit(self.error.title))
            with Horizontal(classes="buttons"):
                yield Button(
                    f"Redo on {self.error.current or '(none)'} (Enter)", variant="primary", id="ok"
                )
                yield Button("Leave it (Esc)", id="cancel")

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.action_redo()
        else:
            self.action_dismiss_dialog()

    def action_redo(self) -> None:
        again = redo_on_current(self.job, self.error)
        if again is not None:
            job = self.job
            host(self).submit(job.label, again, job.reply_to, job.done, job.failed, job.tells)
        self.dismiss()

    def action_dismiss_dialog(self) -> None:
        self.dismiss()
