"""A drill in the app: its briefing, the data check and the scorecard.

`playbook drill` runs the app over a sandbox made for one incident. Every screen of it
carries the drill bar (:class:`playbook.tui.widgets.drill_banner.DrillBanner`, put on each
screen by :meth:`playbook.tui.app.PlaybookApp.mark_drill`). The data check reads every
fingerprinted key or row of the sandbox (a second or two), so the incident screen runs
:func:`check_data` in a thread worker and hands the scorecard screen the card it made
(:class:`playbook.tui.messages.DrillChecked`). Names of keys and rows are data from a
database: shown literally, never as markup.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Label, Static

from playbook.core.scorecard import scorecard
from playbook.core.state import DrillCheck, IncidentState
from playbook.errors import PlaybookError
from playbook.render.scorecard import scorecard_markdown, scorecard_text
from playbook.tui.host import host
from playbook.tui.messages import Card, CardMade
from playbook.tui.screens.base import HelpText
from playbook.tui.widgets.text import DRILL_STYLE, STANDIN, block, lit, speed_text

if TYPE_CHECKING:
    from playbook.drill.run import DrillRun
    from playbook.service import Service

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


def make_card(state: IncidentState, now: datetime, fresh: bool) -> Card:
    """The scorecard of ``state`` at ``now`` (pure; runs on whichever thread read it)."""
    card = scorecard(state, now)
    return Card(state, scorecard_text(card), scorecard_markdown(card), fresh)


def check_data(sandbox: DrillRun, service: Service, incident_id: str) -> Card:
    """Compare the sandbox's data with its fingerprint, record the answer, and make the
    card (runs in a thread worker: it reads every fingerprinted item, then appends to the
    store, whose writes are serialised by its own lock, as the action screen's are)."""
    checked, _result = sandbox.check(service, incident_id)
    return make_card(checked, service.clock.now(), fresh=True)


def recorded_card(service: Service, incident_id: str) -> Card:
    """The card from what was recorded, without a new check (runs on the store thread)."""
    return make_card(service.get(incident_id).state, service.clock.now(), fresh=False)


def drill_help(state: IncidentState | None) -> Text | None:
    """What help adds on a drill's incident screen: its keys, and what is not real."""
    if state is None or state.drill is None:
        return None
    out = Text("This incident is a DRILL", style="bold")
    out.append_text(lit(f" ({state.drill.title})", "bold"))
    out.append(
        ": a rehearsal on a sandbox made for it, marked on every screen by the bar on "
        "top. Diagnostics and guarded actions run on the sandbox only.\n"
    )
    out.append("F", style="bold")
    out.append(
        " compares the sandbox's data with the fingerprint taken before the fault (a "
        "second or two, in the background), records the answer, and shows the "
        "scorecard; press it again after a repair. Ctrl+P 'drill: show the briefing' "
        "shows the briefing again. Ctrl+Q ends the drill: the data is compared once "
        "more and the scorecard printed."
    )
    if state.drill.speed != 1:
        out.append(
            f"\nThe clock runs ×{state.drill.speed:g}: timers, warnings and breaches "
            "come that many times sooner; the timeline keeps real times."
        )
    return out


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


NO_SANDBOX = (
    "No new data check: this drill's sandbox is not running in this app (it "
    "ended with its `playbook drill`). The scorecard is from what was recorded."
)


class ScorecardScreen(HelpText, ModalScreen[None]):
    """The drill's scorecard, after comparing the sandbox's data with its fingerprint.

    The incident screen runs the check (it outlives this screen: closed early, the check
    still lands, and is said in a notice); this screen shows how it is going.
    """

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

    def show_recorded(self, note: str) -> None:
        """Show the card from what was recorded (read on the store thread), under ``note``."""
        service = host(self).service
        host(self).submit(
            "read incident",
            partial(recorded_card, service, self.incident_id),
            self,
            partial(CardMade, note=note),
            records=False,
        )

    def on_card_made(self, message: CardMade) -> None:
        self.show_card(message.card, message.note)

    def show_problem(self, text: str) -> None:
        self.head = Text.assemble(("The data check failed: ", "bold red"), lit(text, "red"))
        self._show()

    @classmethod
    def shown(cls, app: App[Any], incident_id: str) -> ScorecardScreen | None:
        """The scorecard open for ``incident_id``, if one is."""
        for screen in reversed(app.screen_stack):
            if isinstance(screen, cls) and screen.incident_id == incident_id:
                return screen
        return None

    @classmethod
    def report(cls, app: App[Any], card: Card) -> None:
        """Show a finished check on its open scorecard, or say what it found."""
        shown = cls.shown(app, card.state.id)
        if shown is not None:
            shown.show_card(card)
            return
        checks = card.state.drill_checks
        restored = checks[-1].restored if checks else False
        app.notify(
            "Data check recorded: "
            + ("restored." if restored else "NOT restored.")
            + " F shows the scorecard.",
            severity="information" if restored else "warning",
            markup=False,
        )

    @classmethod
    def report_failure(cls, app: App[Any], incident_id: str, error: BaseException) -> None:
        """Show why the check could not be made, on the open scorecard or in a notice."""
        if isinstance(error, PlaybookError):
            text = error.title + (f" {error.message}" if error.message else "")
        else:
            text = f"{type(error).__name__}: {error}"
        shown = cls.shown(app, incident_id)
        if shown is not None:
            shown.show_problem(text)
        else:
            app.notify(text, title="Data check failed", severity="error", markup=False)

    def action_copy(self) -> None:
        if self.card is None:
            self.notify("The scorecard is not ready yet.", markup=False)
            return
        self.app.copy_to_clipboard(self.card.markdown or self.card.text)
        kind = "Markdown" if self.card.markdown else "text"
        self.notify(f"Copied the scorecard ({kind}) to the clipboard (OSC 52).", markup=False)

    def action_close(self) -> None:
        self.dismiss()
