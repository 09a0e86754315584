"""The drill's bar on top of every screen of a drill."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from playbook.core.text import inline
from playbook.tui.widgets.text import speed_text


@dataclass(frozen=True)
class DrillMark:
    """What a drill's bar says: which drill, how fast its clock runs, whether its
    sandbox runs in this app."""

    title: str
    speed: float | None = None
    """None while the incident is still being read."""
    sandbox: bool = True


class DrillBanner(Static):
    """One line on top of every screen of a drill, so none is taken for a real incident."""

    DEFAULT_CSS = """
    DrillBanner {
        dock: top; height: 1; width: 100%; background: darkmagenta; color: white;
        text-style: bold;
    }
    """

    mark: reactive[DrillMark | None] = reactive(None)
    """The drill shown; None hides the bar."""

    def __init__(self, mark: DrillMark) -> None:
        super().__init__(markup=False)
        self.set_reactive(DrillBanner.mark, mark)

    def watch_mark(self, mark: DrillMark | None) -> None:
        self.display = mark is not None

    def render(self) -> Text:
        mark = self.mark
        if mark is None:
            return Text()
        head = Text(" DRILL ", style="reverse")
        head.append(" not a real incident — ")
        tail = Text()
        if mark.speed is not None and mark.speed != 1:
            tail.append(f" — clock {speed_text(mark.speed)}")
        if not mark.sandbox:
            tail.append(" — no sandbox here")
        # The title gives way first: the mark and the clock always fit on one line.
        room = self.size.width - head.cell_len - tail.cell_len
        title = inline(mark.title) or "a drill"
        if len(title) > room:
            title = title[: max(0, room - 1)] + "…"
        out = head + Text(title) + tail
        out.no_wrap = True
        out.overflow = "ellipsis"
        return out
