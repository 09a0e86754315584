"""What every screen of the app shares: its help text and the too-small notice."""

from __future__ import annotations

from typing import Any, ClassVar

from playbook.tui.widgets.too_small import TooSmallNotice


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
