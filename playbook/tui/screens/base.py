"""What every screen of the app shares: its help text and the too-small notice."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from playbook.core.durations import format_duration
from playbook.tui.widgets.too_small import TooSmallNotice

if TYPE_CHECKING:
    from playbook.core.model import Playbook
    from playbook.tui.app import PlaybookApp


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
