"""The severity levels to choose from, each with its targets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from playbook.core.durations import format_duration

if TYPE_CHECKING:
    from playbook.core.model import Playbook


class SeverityList(OptionList):
    """The playbook's severity levels with their targets; the highlighted one is the choice."""

    def __init__(self, playbook: Playbook, chosen: str, *, id: str | None = None) -> None:
        options = []
        for level in playbook.severity.levels:
            label = Text(f"{level.id} {level.name}: ", style="bold")
            targets = [
                f"{verb} within {format_duration(seconds)}"
                for verb, seconds in (("respond", level.response), ("resolve", level.resolution))
                if seconds is not None
            ]
            label.append(", ".join(targets) or f"no targets ({level.notify})")
            if level.defined_by == "playbook":
                label.append(" (targets set by this playbook)", style="italic")
            options.append(Option(label, id=level.id))
        super().__init__(*options, id=id)
        self._first = [level.id for level in playbook.severity.levels].index(chosen)

    def on_mount(self) -> None:
        self.highlighted = self._first

    @property
    def chosen(self) -> str | None:
        """The highlighted level's id (None when nothing is highlighted)."""
        option = self.highlighted_option
        return option.id if option is not None else None
