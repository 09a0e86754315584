"""A drill in the app: its briefing, the data check and the scorecard.

`playbook drill` runs the app over a sandbox made for one incident. Every screen of it
carries the drill bar (:class:`playbook.tui.widgets.DrillBanner`, put on each screen by
:meth:`playbook.tui.app.PlaybookApp.mark_drill`). The data check reads every
fingerprinted key or row of the sandbox (a second or two), so the incident screen runs it
in a thread worker and hands this module what it found. Names of keys and rows are data
from a database: shown literally, never as markup.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from playbook.core.state import DrillCheck, IncidentState
from playbook.tui.screens.base import HelpText
from playbook.tui.widgets.text import DRILL_STYLE, STANDIN, block, lit, speed_text

if TYPE_CHECKING:
    from playbook.drill import DrillRun

# ============================================================================ briefing


def briefing_text(state: IncidentState, sandbox: DrillRun | None) -> Text:
    """What the responder is told when the drill opens: the page, and what is real."""
    drill = state.drill
    assert drill is not None
    out = Text()
    out.append(" DRILL ", style="bold reverse")
    out.append(" ")
    out.append_text(lit(drill.title or state.title, "bold"))
    out.append(
        "\nA rehearsal on a sandbox made for it: nothing here touches your real systems.\n\n",
        style="dim",
    )
    briefing = drill.briefing.strip()
    out.append_text(block(briefing or "(This drill has no briefing: the incident's title is all.)"))
    out.append("\n\nWhat stands in for the runbook's targets\n", style="bold underline")
    width = max((len(t) for t in drill.services), default=0)
    for target, label in drill.services.items():
        out.append_text(lit(f"  {target:<{width}}  ", "bold"))
        out.append_text(lit(str(label), "bold yellow" if STANDIN in str(label) else ""))
        out.append("\n")
    if sandbox is None:
        out.append(
            "This drill's sandbox is not running in this app: its diagnostics and actions "
            "are refused (they never fall back on the configured targets), and F shows "
            "only the checks recorded earlier.\n",
            style="bold red",
        )
    if drill.speed != 1:
        out.append("\nThe clock runs ")
        out.append(f" {speed_text(drill.speed)} ", style=DRILL_STYLE)
        out.append(
            ": timers, warnings and breaches come that many times sooner; the timeline "
            "keeps real times."
        )
    if drill.source:
        out.append("\nShaped like: ", style="dim")
        out.append_text(lit(drill.source, "dim"))
    out.append("\n\nKeys of the drill\n", style="bold underline")
    out.append("  F       ", style="bold")
    out.append("compare the data with its fingerprint and show the scorecard\n")
    out.append("  Ctrl+P  ", style="bold")
    out.append("'drill: show the briefing' shows this again\n")
    out.append("  Ctrl+Q  ", style="bold")
    out.append("ends the drill: the data is compared once more and the scorecard printed")
    return out


class BriefingScreen(HelpText, ModalScreen[None]):
    """The drill's briefing: the page the responder would get, and what stands in for what."""

    HELP = (
        "The briefing of this drill: what happened, as the page would say it, and which "
        "sandbox service stands in for each of the runbook's targets. Enter or Esc closes "
        "it; Ctrl+P 'drill: show the briefing' opens it again."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Start the drill", id="briefing.close"),
        Binding("enter", "close", "Start the drill", show=False, id="briefing.enter"),
    ]
    DEFAULT_CSS = """
    BriefingScreen { align: center middle; }
    BriefingScreen > VerticalScroll {
        width: 90%; max-width: 100; height: auto; max-height: 90%; padding: 1 2;
        border: thick darkmagenta; background: $surface;
    }
    """
    AUTO_FOCUS = "#briefing-scroll"

    def __init__(self, state: IncidentState, sandbox: DrillRun | None) -> None:
        super().__init__()
        self.state = state
        self.sandbox = sandbox

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="briefing-scroll"):
            yield Static(briefing_text(self.state, self.sandbox), id="briefing", markup=False)
            yield Static(Text("Enter or Esc starts the drill.", style="dim"))
        yield Footer()

    def action_close(self) -> None:
        self.dismiss()


# ============================================================================ scorecard


@dataclass
class Card:
    """A scorecard ready to show: the incident as it was read, and the card's text."""

    state: IncidentState
    text: str
    markdown: str | None
    fresh: bool
    """True when a data check was made for it; False when it shows what was recorded."""


def make_card(state: IncidentState, now: datetime, fresh: bool) -> Card:
    """The scorecard of ``state`` at ``now`` (pure; runs on whichever thread read it)."""
    from playbook.core.scorecard import scorecard
    from playbook.render.scorecard import scorecard_markdown

    card = scorecard(state, now)
    return Card(state, card.to_text(), scorecard_markdown(card), fresh)


def check_text(check: DrillCheck | None) -> Text:
    """The latest data check's verdict in a line (the scorecard below has the detail)."""
    if check is None:
        return Text("No data check recorded yet: F on the incident screen makes one.")
    out = Text()
    if check.restored:
        out.append(" RESTORED ", style="bold black on green")
        out.append(" the data is exactly as it was before the fault")
    else:
        out.append(" NOT RESTORED ", style="bold white on red")
        out.append(" the data differs from the fingerprint taken before the fault")
    out.append(f"  (checked {check.at:%H:%M:%S}Z)", style="dim")
    return out


class ScorecardScreen(HelpText, ModalScreen[None]):
    """The drill's scorecard, after comparing the sandbox's data with its fingerprint."""

    HELP = (
        "F on the incident screen compares the sandbox's data with the fingerprint taken "
        "before the fault was injected, records the answer in the incident, and shows the "
        "scorecard here. Press F again after a repair to check again. c copies the "
        "scorecard; Esc goes back to the incident."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back", id="scorecard.close"),
        Binding("c", "copy", "Copy", id="scorecard.copy"),
    ]
    DEFAULT_CSS = """
    ScorecardScreen { align: center middle; }
    ScorecardScreen > Vertical {
        width: 95%; height: 90%; border: round darkmagenta; background: $surface;
    }
    ScorecardScreen #card-title { padding: 0 1; }
    ScorecardScreen #card-check { height: auto; max-height: 4; padding: 0 1; }
    ScorecardScreen #card-scroll { height: 1fr; padding: 0 1; border-top: hkey darkmagenta; }
    """
    AUTO_FOCUS = "#card-scroll"

    def __init__(self, incident_id: str, title: str) -> None:
        super().__init__()
        self.incident_id = incident_id
        self.drill_title = title
        self.card: Card | None = None
        self.head = Text("Reading the incident…")
        """The line over the scorecard: the check's verdict, its progress, or a problem."""

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(lit(f"Scorecard of the drill: {self.drill_title}", "bold"), id="card-title")
            yield Static(self.head, id="card-check", markup=False)
            with VerticalScroll(id="card-scroll"):
                yield Static(id="card-text", markup=False)
            yield Footer()

    def on_mount(self) -> None:
        self._show()

    def _show(self) -> None:
        # The check may end while the screen is still being composed and mounted: the
        # screen keeps what to show, shows it if its widgets exist, and again on mount.
        for head in self.query("#card-check").results(Static):
            head.update(self.head)
        for text in self.query("#card-text").results(Static):
            if self.card is not None:
                text.update(block(self.card.text))

    def show_pending(self) -> None:
        """Say the comparison is under way (it reads every fingerprinted item)."""
        self.head = Text(
            "⟳ Comparing the sandbox's data with the fingerprint taken before the fault…",
            style="bold yellow",
        )
        self._show()

    def show_card(self, card: Card, note: str = "") -> None:
        """Show ``card``: the latest check's verdict on top, the scorecard's text below."""
        self.card = card
        checks = card.state.drill_checks
        head = check_text(checks[-1] if checks else None)
        self.head = Text.assemble(Text(note + "\n", style="bold red"), head) if note else head
        self._show()

    def show_problem(self, text: str) -> None:
        self.head = Text.assemble(("The data check failed: ", "bold red"), lit(text, "red"))
        self._show()

    def action_copy(self) -> None:
        if self.card is None:
            self.notify("The scorecard is not ready yet.", markup=False)
            return
        self.app.copy_to_clipboard(self.card.markdown or self.card.text)
        kind = "Markdown" if self.card.markdown else "text"
        self.notify(f"Copied the scorecard ({kind}) to the clipboard (OSC 52).", markup=False)

    def action_close(self) -> None:
        self.dismiss()
