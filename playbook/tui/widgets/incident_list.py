"""The start screen's list: a new incident, then the open ones."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from playbook.core.durations import format_duration
from playbook.core.timers import BREACHED
from playbook.service import DRILL_PREFIX
from playbook.tui.host import host
from playbook.tui.widgets.text import DRILL_STYLE, lit

if TYPE_CHECKING:
    from playbook.core.state import IncidentState


class IncidentList(OptionList):
    """ "＋ New incident" (and on which playbook, or why not), then the open incidents,
    newest first: id, severity, status, age, title, and the timer most at risk when one
    warns or is breached. A drill is marked as one. Line ids: ``new``, ``incident:ID``."""

    # repaint=False: the watchers below rebuild the lines, which redraws them.
    states: reactive[list[IncidentState] | None] = reactive(
        None, always_update=True, init=False, repaint=False
    )
    """Every incident in the log as last listed (None until it is); closed ones are left out."""
    playbook_title: reactive[str | None] = reactive(None, init=False, repaint=False)
    """The title of the playbook new incidents open on (None while it loads, or when invalid)."""
    playbook_invalid: reactive[bool] = reactive(False, init=False, repaint=False)
    """True when the playbook could not be loaded: no new incident can be opened."""
    presence: reactive[dict[str, list[str]]] = reactive(dict, init=False, repaint=False)
    """Who else has each incident open (team mode): incident id -> names."""

    def __init__(self, *, id: str | None = None) -> None:
        # Drawn at once: the first frame must not wait for the store thread's list.
        super().__init__(Option(Text("＋ New incident", style="bold"), id="new"), id=id)

    def watch_states(self) -> None:
        self.rebuild()

    def watch_playbook_title(self) -> None:
        self.rebuild()

    def watch_playbook_invalid(self) -> None:
        self.rebuild()

    def watch_presence(self) -> None:
        self.rebuild()

    def rebuild(self) -> None:
        """Draw the lines again, keeping the highlighted line (else the newest incident)."""
        if self.states is None:
            return
        new_label = Text("＋ New incident", style="bold")
        if self.playbook_title is not None:
            new_label.append(" on ")
            new_label.append_text(lit(self.playbook_title))
        elif self.playbook_invalid:
            new_label.append(" (the playbook is invalid: see above)", style="red")
        else:
            new_label.append(" (loading the playbook…)")
        items: list[Option] = [Option(new_label, id="new")]
        service = host(self).service
        now = service.clock.now()
        for state in reversed(self.states):
            if state.closed_at is not None:
                continue
            line = Text(no_wrap=True, overflow="ellipsis")
            if state.drill is not None or state.id.startswith(DRILL_PREFIX):
                line.append(" DRILL ", style=DRILL_STYLE)
                line.append(" ")
            line.append(f"{state.id}  ", style="bold")
            line.append(
                f"{state.severity}  ", style="bold red" if state.severity_rank() == 0 else ""
            )
            line.append(f"{state.status:<12} ")
            age = (
                format_duration((now - state.opened_at).total_seconds()) if state.opened_at else "?"
            )
            line.append(f"{age:>8}  ")
            here = self.presence.get(state.id)
            if here:  # before the title: a long title must not push it off the line
                line.append_text(lit(f"[{', '.join(here)}]", "bold cyan"))
                line.append(" ")
            line.append_text(lit(state.title[:60]))
            alerts = service.timers(state).alerts()
            if alerts:
                style = "bold red" if alerts[0].state == BREACHED else "yellow"
                line.append(f"  {alerts[0].label} {alerts[0].state}", style=style)
            items.append(Option(line, id=f"incident:{state.id}"))
        keep = self.highlighted
        self.clear_options()
        self.add_options(items)
        self.highlighted = (
            keep if keep is not None and keep < len(items) else (1 if len(items) > 1 else 0)
        )
