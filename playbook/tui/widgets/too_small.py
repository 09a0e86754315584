"""The notice that covers a screen while the terminal is too small."""

from __future__ import annotations

from textual.widgets import Static

MIN_WIDTH = 80
MIN_HEIGHT = 24


class TooSmallNotice(Static, can_focus=True):
    """Covers a screen, and takes the keys, while the terminal is under 80×24."""

    DEFAULT_CSS = """
    TooSmallNotice {
        display: none; layer: notice; dock: top; width: 100%; height: 100%;
        content-align: center middle; text-align: center; background: $background;
        color: $text; text-style: bold;
    }
    """

    def show_size(self, width: int, height: int) -> None:
        self.update(
            f"playbook needs a terminal of at least {MIN_WIDTH}×{MIN_HEIGHT}.\n"
            f"This one is {width}×{height}.\nEnlarge it; nothing is lost meanwhile."
        )
