"""The publish step after the composer: the comms check, each destination's request as
it will be sent (secrets masked), Ctrl+S to publish, and Ctrl+R to resend where an
earlier message's outcome is unknown (the CLI's ``--resend``).

Everything is decided by the service (``playbook.service.publishing``): the draft is
built on the store thread, and publishing records an intent before each send and a
result after it, as ``playbook publish`` does.
"""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Static

from playbook.core.state import IncidentState
from playbook.errors import PlaybookError
from playbook.tui.host import host
from playbook.tui.screens.base import HelpText
from playbook.tui.widgets.text import block, lit


class DraftReady(Message, bubble=False):
    def __init__(self, draft: Any) -> None:
        super().__init__()
        self.draft = draft


class DraftFailed(Message, bubble=False):
    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class PublishStopped(Message, bubble=False):
    """Nothing more was sent: refused (a message in doubt, offline) or failed."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error


class Published(Message, bubble=False):
    def __init__(self, result: tuple[IncidentState, list[Any]]) -> None:
        super().__init__()
        self.state, self.outcomes = result


def _draft_for(service: Any, incident_id: str, kind: str, values: dict[str, str]) -> Any:
    """Every configured destination this incident may reach (in a drill: the drill
    sinks), drafted; runs on the store thread."""
    from pathlib import Path

    from playbook.errors import UsageError
    from playbook.publish.config import load_destinations
    from playbook.service import publishing

    state = service.get(incident_id).state
    dests = load_destinations(Path(state.playbook_path) if state.playbook_path else None)
    names = [n for n in dests.publishers if state.drill is None or dests.drill_sink(n)]
    if not names:
        raise UsageError(
            "No destination to publish to.",
            f"Add a [publish.NAME] table to {dests.path}"
            + (" with drill_sink = true (this is a drill)." if state.drill else "."),
        )
    return publishing.draft(service.context, incident_id, kind, values, names, destinations=dests)


def _publish(
    service: Any, draft: Any, resend: list[str] | None = None
) -> tuple[IncidentState, list[Any]]:
    """Publish ``draft``; ``resend`` names the destinations the responder chose to send
    to although their last message may be out (``playbook publish --resend``)."""
    from playbook.service import publishing

    outcomes = publishing.publish(service.context, draft, resend=resend or ())
    return service.get(draft.incident_id).state, outcomes


class PublishScreen(HelpText, Screen[IncidentState | None]):
    """Check, preview per destination, publish."""

    HELP = (
        "The message as each destination will receive it, after the comms check. A "
        "check that blocks (a secret, a connection string, a private address, an internal "
        "host, a stack trace, or a missing impact, action, next update time or data-loss "
        "statement) is shown in red and nothing can be sent until the message is fixed "
        "in the composer. Ctrl+S publishes to every destination shown; each send is "
        "recorded before and after. A destination whose last message may already be out "
        "(a crash or a teammate's send left its outcome unknown) is shown in yellow and "
        "holds the message: look at the destination, then Ctrl+R resends to it anyway "
        "(as `playbook publish --resend NAME`). Escape goes back to the composer; F1 "
        "shows this help."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "publish", "Publish", id="publish.send"),
        Binding("ctrl+r", "resend", "Resend", id="publish.resend"),
        Binding("f1", "app.help", "Help", id="publish.help"),
        Binding("escape", "leave", "Back", id="publish.leave"),
    ]

    def __init__(self, state: IncidentState, kind: str, values: dict[str, str]) -> None:
        super().__init__()
        self.state = state
        self.kind = kind
        self.values = values
        self.draft: Any = None
        self.busy = False

    def compose(self) -> ComposeResult:
        yield Static(lit(f"Publish: {self.kind}"), id="publish-title")
        with VerticalScroll(id="publish-body"):
            yield Static(lit("Checking the message…"), id="publish-preview")
        yield Footer()

    def on_mount(self) -> None:
        service = host(self).service
        incident_id, kind, values = self.state.id, self.kind, dict(self.values)
        host(self).submit(
            "draft publication",
            lambda: _draft_for(service, incident_id, kind, values),
            self,
            DraftReady,
            DraftFailed,
            tells=(PlaybookError,),
            records=False,
        )

    def on_draft_failed(self, message: DraftFailed) -> None:
        error = message.error
        out = Text(getattr(error, "title", str(error)), style="bold red")
        if getattr(error, "message", ""):
            out.append("\n")
            out.append_text(block(error.message, "red"))
        self.query_one("#publish-preview", Static).update(out)

    def on_draft_ready(self, message: DraftReady) -> None:
        self.draft = draft = message.draft
        out = Text()
        for notice in draft.notices:
            out.append_text(block(f"notice: {notice}", "yellow"))
            out.append("\n")
        for part in draft.parts:
            out.append(f"{part.destination} ({part.kind}, {part.audience})\n", style="bold")
            if part.refused:
                out.append_text(block(f"  refused: {part.refused}", "red"))
                out.append("\n")
            if part.unsettled:
                out.append_text(block(f"  held: {part.unsettled}", "yellow"))
                out.append("\n")
            for finding in part.check.findings:
                style = "red" if finding.blocks else "yellow"
                tag = "blocks" if finding.blocks else "warning"
                out.append_text(block(f"  check {tag}: {finding.describe()}", style))
                out.append("\n")
            if not part.check.findings:
                out.append("  check: passed\n", style="green")
            if part.request is not None:
                out.append_text(block(part.request.shown()))
                out.append("\n\n")
        if draft.blocked:
            verdict = "Blocked: fix the message in the composer (Escape)."
        elif any(part.unsettled for part in draft.parts):
            verdict = (
                "Held: an earlier message may be out (yellow above). Ctrl+R sends to every "
                "destination above, the held ones too; Ctrl+S once nothing is in doubt."
            )
        else:
            verdict = "Ctrl+S publishes to every destination above."
        out.append(verdict, style="bold red" if draft.blocked else "bold")
        self.query_one("#publish-preview", Static).update(out)

    def action_publish(self) -> None:
        self._send(resend=[])

    def action_resend(self) -> None:
        """Publish, resending to each destination held for a message in doubt: the
        responder's decision, as the CLI's ``--resend NAME``."""
        held = [p.destination for p in self.draft.parts if p.unsettled] if self.draft else []
        if self.draft is not None and not held:
            self.notify(
                "Nothing is held for resending: Ctrl+S publishes.",
                severity="warning",
                markup=False,
            )
            return
        self._send(resend=held)

    def _send(self, resend: list[str]) -> None:
        if self.draft is None or self.busy:
            self.notify("The preview is not ready yet.", severity="warning", markup=False)
            return
        if self.draft.blocked:
            self.notify(
                "Not published: the comms check blocks it (shown in red).",
                severity="error",
                markup=False,
            )
            return
        self.busy = True
        service, draft = host(self).service, self.draft
        host(self).submit(
            "publish",
            lambda: _publish(service, draft, resend),
            self,
            Published,
            PublishStopped,
            tells=(PlaybookError,),
        )

    def on_publish_stopped(self, message: PublishStopped) -> None:
        """Refused or failed: said here, and the screen stays so the responder can
        decide (resend, or go back); a bug is said by the app as any job's."""
        self.busy = False
        error = message.error
        if isinstance(error, PlaybookError):
            text = error.title + (f"\n{error.message}" if error.message else "")
            self.notify(text, title="Not published", severity="error", timeout=10, markup=False)

    def on_published(self, message: Published) -> None:
        summary = ", ".join(f"{o.destination}: {o.outcome}" for o in message.outcomes)
        failed = any(o.outcome == "failed" for o in message.outcomes)
        held = [o.detail for o in message.outcomes if o.outcome == "held"]
        self.app.notify(
            f"'{self.kind}' published ({summary})." + "".join(f"\n{d}" for d in held),
            severity="error" if failed else "warning" if held else "information",
            markup=False,
        )
        self.dismiss(message.state)

    def action_leave(self) -> None:
        self.dismiss(None)
