"""The incident screen's top line: where the responder is, then the title."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from playbook.tui.widgets.sections import section_of
from playbook.tui.widgets.text import lit

if TYPE_CHECKING:
    from playbook.core.state import IncidentState


class IncidentHeader(Static):
    """Id, severity, phase (or status once resolved), the section viewed, the step
    highlighted, and as much of the title as fits.

    Where the responder is comes first; the title last, so a long title never pushes
    the phase off the line.
    """

    state: reactive[IncidentState | None] = reactive(None, always_update=True)
    """The incident as last read; None while it is being read."""
    section: reactive[str] = reactive("")
    """The section shown on the right (named when it is not the current phase)."""
    step: reactive[str] = reactive("")
    """The title of the step highlighted in the checklist ("" when none is)."""
    offline: reactive[str] = reactive("")
    """``offline: 3 events not yet shared`` while the team's store is out of reach."""

    def render(self) -> Text:
        state = self.state
        if state is None:
            return Text("loading…")
        header = Text()
        if self.offline:  # first: the one thing that changes what every key means
            header.append(f" {self.offline} ", style="bold black on yellow")
            header.append(" ")
        header.append(f" {state.id} ", style="bold reverse")
        header.append(
            f" {state.severity} ",
            style="bold white on red" if state.severity_rank() == 0 else "bold",
        )
        if state.resolved_at is not None:
            header.append(f" {state.status.upper()} ", style="bold black on green")
        else:
            window = state.phase_window()
            header.append(" ")
            header.append_text(lit(window.title if window else state.phase, "bold"))
        shown = section_of(state, self.section)
        if shown is not None and self.section != state.phase:
            header.append(" (viewing ")
            header.append_text(lit(shown["title"]))
            header.append(")")
        if self.step:
            header.append(" › ")
            header.append_text(lit(self.step))
        header.append("  ")
        header.append_text(lit(state.title, "italic"))
        header.no_wrap = True
        header.overflow = "ellipsis"
        return header
