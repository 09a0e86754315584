"""Help (? or F1): what the screen underneath is for, and every key that works there."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from playbook.tui.screens.base import HelpText

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
