"""Roles and the update reminder from the incident screen: who holds which role (o), and
snoozing the status-update reminder (z). Each records one event, as the CLI's ``playbook
role``/``handover``/``updates`` do, through the same service calls."""

from __future__ import annotations

from functools import partial

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Input, Label, RadioButton, RadioSet, Static

from playbook.core.state import IncidentState
from playbook.tui.host import host
from playbook.tui.screens.dialogs import _ChangeDialog
from playbook.tui.widgets.text import block

ROLE_ACTIONS = ("assign", "offer", "accept")


def holders_text(state: IncidentState) -> str:
    """Each declared role and who holds it, one a line; open handovers after."""
    lines = [
        f"{role}: {state.roles.get(role, '') or '—'}"
        for role in dict.fromkeys([*state.role_names, *state.roles])
    ]
    lines += [
        f"{h.role} offered to {h.to_person} (not yet accepted)"
        for h in state.handovers
        if h.accepted_at is None
    ]
    return "\n".join(lines) or "No roles declared."


class RolesDialog(_ChangeDialog):
    """Assign a role, offer a handover, or accept one offered to you (o)."""

    AUTO_FOCUS = "#person"
    HELP = (
        "Who holds which role. Choose Assign (PERSON holds ROLE now), Offer handover (the "
        "role changes hands when PERSON accepts) or Accept (PERSON, by default you, takes "
        "the role offered). Enter records it in the timeline; Esc cancels."
    )

    def __init__(self, state: IncidentState) -> None:
        super().__init__()
        self.state = state
        self.mode = "assign"

    def compose(self) -> ComposeResult:
        state = self.state
        first = next(iter(state.role_names), "commander")
        with Vertical(classes="dialog"):
            yield Label("Roles")
            yield Static(block(holders_text(state)), id="holders")
            with RadioSet(id="mode"):
                yield RadioButton("Assign", value=True)
                yield RadioButton("Offer handover")
                yield RadioButton("Accept handover")
            yield Input(value=first, placeholder="Role (commander, scribe, …)", id="role")
            yield Input(placeholder="Person", id="person")
            with Horizontal(classes="buttons"):
                yield Button("Record (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_radio_set_changed(self, event: RadioSet.Changed) -> None:
        self.mode = ROLE_ACTIONS[event.index]

    def on_mount(self) -> None:
        self.query_one("#person", Input).focus()

    def action_submit(self) -> None:
        role = self.required("#role", "Name the role (commander, scribe, …).")
        if role is None:
            return
        person = self.query_one("#person", Input).value.strip()
        service, ref = host(self).service, self.state.id
        if self.mode == "accept":
            self.record(
                "accept handover",
                partial(service.accept_handover, ref, role, person or None),
                f"{person or service.actor} is {role} now.",
            )
            return
        if not person:
            self.notify("Say who.", severity="error", markup=False)
            self.query_one("#person", Input).focus()
            return
        if self.mode == "offer":
            self.record(
                "offer handover",
                partial(service.offer_handover, ref, role, person),
                f"{role} offered to {person}; it changes hands when they accept.",
            )
            return
        self.record(
            "assign role", partial(service.assign_role, ref, role, person), f"{role}: {person}."
        )


class SnoozeDialog(_ChangeDialog):
    """Quiet the status-update reminder for a while, with a reason (z)."""

    AUTO_FOCUS = "#reason"
    HELP = (
        "Quiet the status-update reminder for a while (15m, 1h). The update's due time "
        "does not move; the reason goes in the timeline. Enter records it; Esc cancels."
    )

    def __init__(self, state: IncidentState) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label("Snooze the update reminder")
            yield Input(value="15m", placeholder="For how long: 15m, 1h", id="length")
            yield Input(placeholder="Why (recorded), e.g. on a call with the vendor", id="reason")
            with Horizontal(classes="buttons"):
                yield Button("Snooze (Enter)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#reason", Input).focus()

    def action_submit(self) -> None:
        length = self.required("#length", "Say for how long, e.g. 15m.")
        if length is None:
            return
        reason = self.required("#reason", "Say why; it goes in the timeline.")
        if reason is None:
            return
        service = host(self).service
        self.record(
            "snooze updates",
            partial(service.snooze_updates, self.state.id, length, reason),
            f"Update reminder snoozed for {length.strip()}.",
        )
