"""The first screen: the open incidents to resume, and a new one to open."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static

from playbook.tui.follow import FollowsIncidents
from playbook.tui.host import host
from playbook.tui.messages import IncidentsListed
from playbook.tui.screens.base import HelpText
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.new_incident import NewIncidentScreen
from playbook.tui.widgets.incident_list import IncidentList
from playbook.tui.widgets.text import block, lit


class StartScreen(FollowsIncidents, HelpText, Screen[None]):
    """Open a new incident, or resume an open one."""

    HELP = (
        "Choose an incident to resume, or start a new one.\n"
        "Open incidents are listed with their severity, status and age, and the timer most "
        "at risk when one warns or is breached; closed ones are not (`playbook incidents "
        "--all` lists them). On a shared store, [names] before a title say who else has "
        "that incident open. q or Ctrl+Q quits."
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
        yield IncidentList(id="incidents")
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
        incidents = self.query_one(IncidentList)
        incidents.playbook_title = pb.title if pb is not None else None
        incidents.playbook_invalid = bool(app.playbook_problem)
        if incidents.states is not None:
            incidents.focus()

    def on_screen_resume(self) -> None:
        if self.query_one(IncidentList).states is not None:  # the mount read it already
            self.reload()

    def reload(self) -> None:
        app = host(self)
        app.submit("list incidents", app.service.incidents, self, IncidentsListed)

    def on_incidents_listed(self, message: IncidentsListed) -> None:
        incidents = self.query_one(IncidentList)
        incidents.states = message.states
        incidents.focus()

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
