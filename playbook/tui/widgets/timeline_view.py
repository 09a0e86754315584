"""The timeline's rows, drawn one visible line at a time."""

from __future__ import annotations

from typing import ClassVar

from rich.segment import Segment
from textual.binding import Binding, BindingType
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip


class TimelineView(ScrollView, can_focus=True):
    """Rows of the timeline, drawn one visible line at a time.

    A table widget that builds and measures every cell stalled the app for seconds on
    10,000 events; this view formats rows once (off the event loop, by the caller) and
    draws only the lines on screen, so opening and scrolling cost the same at any size.
    """

    DEFAULT_CSS = """
    TimelineView { height: 1fr; }
    TimelineView > .timeline--cursor { background: $accent; color: $text; text-style: bold; }
    TimelineView > .timeline--header { text-style: bold; background: $panel; }
    """
    COMPONENT_CLASSES: ClassVar[set[str]] = {"timeline--cursor", "timeline--header"}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("up", "move(-1)", "Up", show=False),
        Binding("down", "move(1)", "Down", show=False),
        Binding("pageup", "page(-1)", "Page up", show=False),
        Binding("pagedown", "page(1)", "Page down", show=False),
        Binding("home,ctrl+home", "jump(0)", "First", show=False),
        Binding("end,ctrl+end", "jump(-1)", "Last", show=False),
    ]
    WIDTHS = (6, 17, 10, 11)
    """Widths of the #, local time, UTC time and actor columns; the event takes the rest."""

    cursor_row: reactive[int] = reactive(0, always_update=True)
    """The highlighted row."""

    class RowHighlighted(Message):
        """The cursor moved to ``row``."""

        def __init__(self, row: int) -> None:
            super().__init__()
            self.row = row

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows: list[tuple[str, ...]] = []

    @property
    def row_count(self) -> int:
        return len(self.rows)

    def set_rows(self, rows: list[tuple[str, ...]], cursor: int = 0) -> None:
        """Show ``rows`` (already literal text: see :func:`playbook.core.text.inline`)."""
        self.rows = rows
        self.virtual_size = Size(self.size.width, len(rows) + 1)
        self.cursor_row = max(0, min(cursor, len(rows) - 1))
        self.refresh()

    def watch_cursor_row(self, row: int) -> None:
        if not self.rows:
            return
        # Line 0 of the view is the header; rows start at line 1, from scroll_offset.y.
        top = self.scroll_offset.y
        room = max(1, self.scrollable_content_region.height - 1)
        if row < top:
            self.scroll_to(y=row, animate=False, immediate=True)
        elif row >= top + room:
            self.scroll_to(y=row - room + 1, animate=False, immediate=True)
        self.refresh()
        self.post_message(self.RowHighlighted(row))

    def action_move(self, delta: int) -> None:
        if self.rows:
            self.cursor_row = max(0, min(len(self.rows) - 1, self.cursor_row + delta))

    def action_page(self, direction: int) -> None:
        self.action_move(direction * max(1, self.scrollable_content_region.height - 2))

    def action_jump(self, row: int) -> None:
        if self.rows:
            self.cursor_row = row % len(self.rows)

    def _cells(self, values: tuple[str, ...], width: int) -> str:
        out = ""
        for value, size in zip(values, self.WIDTHS, strict=False):
            out += value[: size - 1].ljust(size)
        rest = max(0, width - len(out))
        event = values[len(self.WIDTHS)] if len(values) > len(self.WIDTHS) else ""
        return (out + event)[:width].ljust(width) if rest else out[:width]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        if y == 0:
            header = self._cells(("#", "Local", "UTC", "Actor", "Event"), width)
            return Strip([Segment(header, self.get_component_rich_style("timeline--header"))])
        index = self.scroll_offset.y + y - 1
        if index >= len(self.rows):
            return Strip.blank(width, self.rich_style)
        style = (
            self.get_component_rich_style("timeline--cursor")
            if index == self.cursor_row
            else self.rich_style
        )
        return Strip([Segment(self._cells(self.rows[index], width), style)])
