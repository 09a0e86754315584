"""The first screen: the open incidents to resume, and a new one to open."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from playbook.core.durations import format_duration
from playbook.core.state import IncidentState
from playbook.core.timers import BREACHED
from playbook.service import DRILL_PREFIX
from playbook.tui.host import host
from playbook.tui.messages import IncidentsListed
from playbook.tui.screens.base import HelpText
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.new_incident import NewIncidentScreen
from playbook.tui.widgets.text import DRILL_STYLE, block, lit


class StartScreen(HelpText, Screen[None]):
    """Open a new incident, or resume an open one."""

    HELP = (
        "Choose an incident to resume, or start a new one.\n"
        "Open incidents are listed with their severity, status and age, and the timer most "
        "at risk when one warns or is breached; closed ones are not (`playbook incidents "
        "--all` lists them). q or Ctrl+Q quits."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "choose", "Open", id="start.open", show=True),
        Binding("ctrl+n", "new", "New incident", id="start.new"),
        Binding("q", "app.quit", "Quit", id="start.quit"),
    ]

    def compose(self) -> ComposeResult:
        yield Static(id="start-title")
        yield Static(
            "Enter opens the highlighted line. Every change is written to disk before it "
            "is shown as done; quitting or a killed terminal loses nothing.",
            id="start-intro",
        )
        # Drawn at once: the first frame must not wait for the store thread's list.
        yield OptionList(Option(Text("＋ New incident", style="bold"), id="new"), id="incidents")
        yield Footer()

    def on_mount(self) -> None:
        self.playbook_ready()
        self.reload()
        host(self).load_playbook()

    def playbook_ready(self) -> None:
        """Show the playbook's title, or why it could not be loaded."""
        app = host(self)
        pb = app.playbook.playbook if app.playbook else None
        title = Text("playbook", style="bold")
        if pb is not None:
            title.append("  ·  ")
            title.append_text(lit(pb.title))
        elif app.playbook_problem:
            title.append("  ·  the playbook could not be loaded", style="bold red")
        else:
            title.append("  ·  loading the playbook…")
        self.query_one("#start-title", Static).update(title)
        if app.playbook_problem:
            intro = Text(
                "New incidents need a valid playbook; open incidents still work.\n", style="red"
            )
            intro.append_text(block(app.playbook_problem))
            self.query_one("#start-intro", Static).update(intro)
        if self.states is not None:
            self.show_incidents(self.states)

    def on_screen_resume(self) -> None:
        if self.states is not None:  # the first resume is the mount, which already read
            self.reload()

    def reload(self) -> None:
        app = host(self)
        app.submit("list incidents", app.service.incidents, self, IncidentsListed)

    def on_incidents_listed(self, message: IncidentsListed) -> None:
        self.show_incidents(message.states)

    states: list[IncidentState] | None = None

    def show_incidents(self, states: list[IncidentState]) -> None:
        self.states = states
        app = host(self)
        options = self.query_one("#incidents", OptionList)
        pb = app.playbook.playbook if app.playbook else None
        new_label = Text("＋ New incident", style="bold")
        if pb is not None:
            new_label.append(" on ")
            new_label.append_text(lit(pb.title))
        elif app.playbook_problem:
            new_label.append(" (the playbook is invalid: see above)", style="red")
        else:
            new_label.append(" (loading the playbook…)")
        items: list[Option] = [Option(new_label, id="new")]
        now = app.service.clock.now()
        for state in reversed(states):
            if state.closed_at is not None:
                continue
            timers = app.service.timers(state)
            line = Text(no_wrap=True, overflow="ellipsis")
            if state.drill is not None or state.id.startswith(DRILL_PREFIX):
                line.append(" DRILL ", style=DRILL_STYLE)
                line.append(" ")
            line.append(f"{state.id}  ", style="bold")
            line.append(f"{state.severity}  ", style="bold red" if state.severity == "P1" else "")
            line.append(f"{state.status:<12} ")
            age = (
                format_duration((now - state.opened_at).total_seconds()) if state.opened_at else "?"
            )
            line.append(f"{age:>8}  ")
            line.append_text(lit(state.title[:60]))
            alerts = timers.alerts()
            if alerts:
                style = "bold red" if alerts[0].state == BREACHED else "yellow"
                line.append(f"  {alerts[0].label} {alerts[0].state}", style=style)
            items.append(Option(line, id=f"incident:{state.id}"))
        keep = options.highlighted
        options.clear_options()
        options.add_options(items)
        options.highlighted = (
            keep if keep is not None and keep < len(items) else (1 if len(items) > 1 else 0)
        )
        options.focus()

    def action_choose(self) -> None:
        options = self.query_one("#incidents", OptionList)
        if options.highlighted is not None:
            self._open(options.get_option_at_index(options.highlighted).id or "")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self._open(event.option.id or "")

    def _open(self, option_id: str) -> None:
        if option_id == "new":
            self.action_new()
        elif option_id.startswith("incident:"):
            self.app.push_screen(IncidentScreen(option_id.split(":", 1)[1]))

    def action_new(self) -> None:
        if host(self).refuse_new_in_drill():
            return
        if host(self).playbook is None:
            self.notify(
                "No playbook was loaded; run `playbook run PLAYBOOK`.",
                severity="error",
                markup=False,
            )
            return
        self.app.push_screen(NewIncidentScreen())
