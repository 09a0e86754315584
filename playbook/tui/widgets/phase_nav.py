"""The incident screen's left column: its sections, grouped by stage, with progress."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from playbook.tui.widgets.sections import progress_of
from playbook.tui.widgets.text import lit

if TYPE_CHECKING:
    from playbook.core.model import Playbook
    from playbook.core.state import IncidentState

NAV_TEXT = 28
"""Characters of text in a line of the left column (its width less border and padding)."""

STAGES = (
    ("containment", "CONTAINMENT"),
    ("investigation", "INVESTIGATION"),
    ("recovery", "RECOVERY"),
    ("restoration", "RESTORATION"),
)


class PhaseNav(OptionList):
    """The assessment, the phases under their stage's heading, the scenarios followed
    (and "Choose a scenario…"), then the post-incident work, each with ticked/total;
    ▶ marks the current phase, bold the section shown on the right."""

    # repaint=False: the watchers below redraw what changed; a repaint of the whole widget
    # on top doubled the garbage made per key (more collector pauses, bench/app_bench.py).
    state: reactive[IncidentState | None] = reactive(
        None, always_update=True, init=False, repaint=False
    )
    """The incident as last read (progress and the current phase come from it)."""
    playbook: reactive[Playbook | None] = reactive(None, init=False, repaint=False)
    """The incident's playbook (the sections and their titles come from it)."""
    section: reactive[str] = reactive("", always_update=True, init=False, repaint=False)
    """The section shown on the right; the list highlights it when it is rebuilt."""

    class SectionHighlighted(Message):
        """The responder moved the highlight to another section."""

        def __init__(self, section: str) -> None:
            super().__init__()
            self.section = section

    def watch_state(self) -> None:
        self.rebuild()

    def watch_playbook(self) -> None:
        self.rebuild()

    def watch_section(self) -> None:
        self.rebuild()

    def entries(self) -> list[tuple[str, str, bool]]:
        """(id, label, is_heading) for each line."""
        pb, state = self.playbook, self.state
        assert pb is not None and state is not None
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
                if scenario.id in state.scenarios:
                    entries.append((scenario.id, scenario.title, False))
        if pb.post_incident:
            entries.append(("heading:post", "POST-INCIDENT", True))
            entries += [(s.id, s.title, False) for s in pb.post_incident]
        return entries

    def rebuild(self) -> None:
        """Draw the lines again from the state (widths are fixed: see NAV_TEXT)."""
        state = self.state
        if state is None or self.playbook is None:
            return
        keep = self.section
        options = []
        for ident, label, heading in self.entries():
            if heading:
                options.append(Option(Text(label, style="bold dim"), id=ident, disabled=True))
                continue
            text = Text(no_wrap=True, overflow="ellipsis")
            current = ident == state.phase and state.resolved_at is None
            text.append("▶ " if current else "  ", style="bold green")
            done, total = progress_of(state, ident)
            counter = f"{done}/{total}" if total else ""
            room = NAV_TEXT - 3 - len(counter)
            shown = label if len(label) <= room else label[: room - 1] + "…"
            text.append_text(lit(shown, "bold" if ident == keep else ""))
            text.append(" " * max(1, room - len(shown) + 1))
            style = "green" if total and done == total else ""
            text.append(counter, style=style)
            options.append(Option(text, id=ident))
        highlighted = self.highlighted
        self.clear_options()
        self.add_options(options)
        index = next((i for i, o in enumerate(options) if o.id == keep), None)
        self.highlighted = index if index is not None else highlighted

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()  # the screen hears of a new section, not of every redraw
        if event.option_index != self.highlighted:
            return  # stale: posted while the list was being rebuilt
        ident = event.option.id or ""
        if ident and ident != self.section:
            self.post_message(self.SectionHighlighted(ident))
