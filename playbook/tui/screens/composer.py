"""The status-message composer: variables, a live preview, copy, save, send.

The service renders every preview and the text it records (``Service.render_status``,
``Service.status``): the composer only collects the variables and shows what comes back.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Input, Static

from playbook.core.state import IncidentState
from playbook.errors import PlaybookError, TemplateError
from playbook.fileio import atomic_write
from playbook.tui.host import host
from playbook.tui.messages import FileWritten, StatusSent
from playbook.tui.screens.base import HelpText
from playbook.tui.widgets.text import block, lit
from playbook.tui.widgets.timers import TimerBar


class ComposerScreen(HelpText, Screen[IncidentState | None]):
    """Compose a status-page message: variables, live preview, copy, save, send."""

    HELP = (
        "Fill in the variables (those the incident knows are prefilled); the preview "
        "updates as you type. A missing variable is named instead of leaving a blank.\n"
        "Ctrl+S sends it: the exact text is recorded in the timeline. Ctrl+Y copies it "
        "to the clipboard (OSC 52); Ctrl+O saves it to a file in the current directory. "
        "F3 goes on to publish it: the comms check, then each destination's preview. "
        "Tab moves between fields; F2 switches the message kind; F1 shows this help. "
        "Variables the incident fills in (current_time, service) are taken at sending "
        "unless you changed them."
    )
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "send", "Send & record", id="composer.send"),
        # Second, so the footer shows it at 80 columns.
        Binding("f3", "publish", "Publish", id="composer.publish"),
        Binding("ctrl+y", "copy", "Copy", id="composer.copy"),
        Binding("ctrl+o", "save", "Save to file", id="composer.save"),
        Binding("f1", "app.help", "Help", id="composer.help"),
        Binding("f2", "next_kind", "Kind", id="composer.kind"),
        Binding("escape", "leave", "Back", id="composer.leave"),
    ]

    def __init__(self, state: IncidentState, kind: str) -> None:
        super().__init__()
        self.state = state
        """The incident as last read (the incident screen below keeps it current)."""
        self.kind = kind
        self.text = ""
        self.values: dict[str, dict[str, str]] = {}

    @staticmethod
    def next_kind(state: IncidentState) -> str:
        """The first kind of message not sent yet (the last kind once all were)."""
        sent = {m.template for m in state.messages}
        order = list(state.snapshot.get("communications", {}).get("templates", {}))
        return next((k for k in order if k not in sent), order[-1] if order else "")

    def _templates(self) -> dict[str, Any]:
        return dict(self.state.snapshot.get("communications", {}).get("templates", {}))

    def compose(self) -> ComposeResult:
        yield Static(id="composer-title")
        yield TimerBar(id="timers")
        with Horizontal(id="composer-body"):
            yield VerticalScroll(id="composer-fields")
            with VerticalScroll(id="composer-preview-scroll"):
                yield Static(id="composer-preview")
        yield Footer()

    def on_mount(self) -> None:
        self.show_kind()
        self.set_interval(host(self).tick_seconds, self.tick)
        self.tick()

    def tick(self) -> None:
        bar = self.query_one(TimerBar)
        bar.timers = host(self).service.timers(self.state)
        bar.speed = self.state.speed

    def show_kind(self) -> None:
        state = self.state
        tmpl = self._templates().get(self.kind, {})
        title = Text(f"Status message: {self.kind}", style="bold")
        if tmpl:
            title.append_text(
                lit(
                    f" — {tmpl.get('title', '')} (sets the status page to '{tmpl.get('status', '')}')"
                )
            )
        self.query_one("#composer-title", Static).update(title)
        fields = self.query_one("#composer-fields", VerticalScroll)
        fields.remove_children()
        service = host(self).service
        prefill = service.status_variables(state)
        variables = tmpl.get("variables", {})
        saved = self.values.setdefault(self.kind, {})
        widgets = []
        for name, spec in variables.items():
            value = saved.get(
                name, prefill.get(name, "") if spec.get("source") == "incident" else ""
            )
            widgets.append(
                Static(lit(f"{name}: {spec.get('description', '')}"), classes="var-label")
            )
            widgets.append(Input(value=value, id=f"var-{name}", name=name))
        fields.mount_all(widgets)
        self.prefilled = {
            name: prefill.get(name, "")
            for name, spec in variables.items()
            if spec.get("source") == "incident"
        }
        fields.scroll_home(animate=False)
        self.render_preview()
        first_empty = next((w for w in widgets if isinstance(w, Input) and not w.value), None)
        target = first_empty or next((w for w in widgets if isinstance(w, Input)), None)
        if target is not None:
            self.call_after_refresh(target.focus)

    def current_values(self) -> dict[str, str]:
        return {w.name or "": w.value for w in self.query("#composer-fields Input").results(Input)}

    def on_input_changed(self, _event: Input.Changed) -> None:
        self.values[self.kind] = self.current_values()
        self.render_preview()

    def render_preview(self) -> None:
        state = self.state
        preview = self.query_one("#composer-preview", Static)
        tmpl = self._templates().get(self.kind)
        if tmpl is None:
            preview.update(lit(f"No template {self.kind!r} in this playbook."))
            self.text = ""
            return
        service = host(self).service
        try:
            # Rendering reads a small template file once (Jinja caches it): no store I/O.
            self.text = service.render_status(state, self.kind, self.current_values())
        except (TemplateError, PlaybookError) as error:
            self.text = ""
            out = Text(error.title, style="bold red")
            if error.message:
                out.append("\n")
                out.append_text(block(error.message, "red"))
            preview.update(out)
            return
        preview.update(block(self.text))

    def action_next_kind(self) -> None:
        kinds = list(self._templates())
        if kinds:
            self.kind = (
                kinds[(kinds.index(self.kind) + 1) % len(kinds)] if self.kind in kinds else kinds[0]
            )
            self.show_kind()

    def action_leave(self) -> None:
        self.dismiss(None)

    def action_copy(self) -> None:
        if not self.text:
            self.notify(
                "Nothing to copy: the message does not render yet.", severity="error", markup=False
            )
            return
        self.app.copy_to_clipboard(self.text)
        self.notify("Copied the message to the clipboard (OSC 52).", markup=False)

    def action_save(self) -> None:
        if not self.text:
            self.notify(
                "Nothing to save: the message does not render yet.", severity="error", markup=False
            )
            return
        path = Path.cwd() / f"status-{self.state.id}-{self.kind}.txt"
        text = self.text
        host(self).submit("save message", lambda: atomic_write(path, text), self, FileWritten)

    def on_file_written(self, message: FileWritten) -> None:
        self.notify(f"Saved {message.path}", markup=False)

    def action_send(self) -> None:
        if not self.text:
            self.notify(
                "The message does not render yet; fill in what the preview names.",
                severity="error",
                markup=False,
            )
            return
        service = host(self).service
        # A value the incident filled in and the responder left alone (current_time) is
        # taken afresh at sending, not from when the composer opened.
        prefilled = getattr(self, "prefilled", {})
        values = {k: v for k, v in self.current_values().items() if prefilled.get(k) != v}
        incident_id, kind = self.state.id, self.kind
        host(self).submit(
            "send status",
            lambda: service.status(incident_id, kind, values),
            self,
            partial(StatusSent, kind),
        )

    def on_status_sent(self, message: StatusSent) -> None:
        self.app.notify(
            f"'{message.kind}' message recorded in the timeline. Publish it on the status page.",
            markup=False,
        )
        self.dismiss(message.state)

    # ----------------------------------------------------------------- publish hand-off

    def action_publish(self) -> None:
        """Hand the message to the publish step (check, preview per destination, send)."""
        if not self.text:
            self.notify(
                "The message does not render yet; fill in what the preview names.",
                severity="error",
                markup=False,
            )
            return
        from playbook.tui.screens.publish import PublishScreen

        prefilled = getattr(self, "prefilled", {})
        values = {k: v for k, v in self.current_values().items() if prefilled.get(k) != v}
        self.app.push_screen(PublishScreen(self.state, self.kind, values), self._published)

    def _published(self, state: IncidentState | None) -> None:
        if state is not None:
            self.dismiss(state)
