"""What a screen or a widget may ask of the app that hosts it.

Screens and widgets reach the app through :func:`host`, typed by the :class:`Host`
protocol below rather than by :class:`playbook.tui.app.PlaybookApp` itself: the app
imports the screens, the screens import the widgets, and nothing imports back up. The
protocol is the whole contract; :class:`PlaybookApp` fulfils it (a test double may too).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

if TYPE_CHECKING:
    from textual.dom import DOMNode
    from textual.message import Message
    from textual.message_pump import MessagePump

    from playbook.core.loader import LoadedPlaybook
    from playbook.core.state import IncidentState
    from playbook.drill.run import DrillRun
    from playbook.service import Service
    from playbook.targets import Target
    from playbook.tui.messages import Job


class Host(Protocol):
    """The app's side of the contract: the service, its store thread, where targets are."""

    service: Service
    """Every use case; call its writing and reading methods only through :meth:`submit`."""
    playbook: LoadedPlaybook | None
    """The playbook given to `playbook run`, once loaded (None before, or when invalid)."""
    playbook_problem: str
    """Why that playbook could not be loaded ("" when it could, or is still loading)."""
    tick_seconds: float
    """How often timers are redrawn."""
    refresh_seconds: float
    """How often an open incident is read again (another terminal may have changed it)."""
    briefed: set[str]
    """Drills whose briefing was shown in this run of the app."""

    @property
    def too_small(self) -> bool:
        """True while the terminal is under 80×24 (no key acts then)."""
        ...

    def submit(
        self,
        label: str,
        fn: Callable[[], Any],
        reply_to: MessagePump | None = None,
        done: Callable[[Any], Message] | None = None,
        failed: Callable[[BaseException], Message] | None = None,
        tells: tuple[type[BaseException], ...] = (),
        records: bool = True,
    ) -> Job:
        """Run ``fn`` on the store thread, in order; ``reply_to`` hears how it went."""
        ...

    def load_playbook(self) -> None:
        """Load the playbook on the store thread, once (the start screen asks for it)."""
        ...

    def check_size(self) -> None:
        """Cover every screen with the too-small notice while the terminal is too small."""
        ...

    def refuse_new_in_drill(self) -> bool:
        """In a drill, say why no other incident can be opened, and return True."""
        ...

    def targets(
        self, playbook_path: Path | None, state: IncidentState | None = None
    ) -> Mapping[str, Target]:
        """Where ``state``'s targets are (the drill's sandbox, or the configuration);
        safe to call from the store thread or a worker."""
        ...

    def sandbox_for(self, incident_id: str) -> DrillRun | None:
        """The drill's sandbox when it was made for ``incident_id``, else None."""
        ...

    def refresh_drill_marks(self) -> None:
        """Bring every screen's drill bar up to date (an incident was read)."""
        ...

    def shown_state(self) -> IncidentState | None:
        """The incident under the screens on top (None outside an incident)."""
        ...

    def action_note(self) -> None:
        """Add a note to the incident shown (n, from anywhere)."""
        ...


def host(node: DOMNode) -> Host:
    """The app ``node`` runs in, as the :class:`Host` it is."""
    return cast("Host", node.app)
