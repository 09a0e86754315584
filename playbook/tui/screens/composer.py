"""The status-message composer: variables, a live preview, copy, save, send.

The service renders every preview and the text it records (``Service.render_status``,
``Service.status``): the composer only collects the variables and shows what comes back.

A render goes to the template worker process and may take up to its hard deadline (a
hostile template), or the worker's start-up at the first message, so the preview is
rendered on a thread worker, never on the event loop: typing stays live while it runs.
One render is in flight at a time; keystrokes meanwhile ask for one more, of the values
as they are when it starts, so a fast typist does not queue a render per key.
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
from playbook.tui.messages import FileWritten, PreviewRendered, StatusSent
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
        "Tab moves between the fields (it wraps; letters you type always go into a field); "
        "PageUp/PageDown scroll the preview; F2 switches the message kind; F1 shows this "
        "help. "
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
        Binding("pageup", "scroll_preview(-1)", "Scroll", show=False, id="composer.pageup"),
        Binding("pagedown", "scroll_preview(1)", "Scroll", show=False, id="composer.pagedown"),
    ]

    def __init__(self, state: IncidentState, kind: str) -> None:
        super().__init__()
        self.state = state
        """The incident as last read (the incident screen below keeps it current)."""
        self.kind = kind
        self.text = ""
        """The preview's text, for :attr:`shown_for`'s kind and values ("" when it does
        not render)."""
        self.shown_for: tuple[str, dict[str, str]] | None = None
        self.values: dict[str, dict[str, str]] = {}
        self._rendering = False

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
            # Neither column takes the focus: Tab cycles through the fields alone, so a
            # letter typed after Tab lands in a field, never on the app's bindings
            # ("n" would open a note). PageUp/PageDown scroll the preview instead.
            yield VerticalScroll(id="composer-fields", can_focus=False)
            with VerticalScroll(id="composer-preview-scroll", can_focus=False):
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
        """Ask for the preview of the fields as they are now (see the module's docstring)."""
        if self._templates().get(self.kind) is None:
            self.text, self.shown_for = "", (self.kind, self.current_values())
            self.query_one("#composer-preview", Static).update(
                lit(f"No template {self.kind!r} in this playbook.")
            )
            return
        if self._rendering:
            return  # the render in flight asks again when it comes back
        self._rendering = True
        state, kind, values = self.state, self.kind, self.current_values()
        service = host(self).service
        self.run_worker(
            partial(self._preview_in_thread, service, state, kind, values),
            group="composer-preview",
            thread=True,
            exit_on_error=False,
        )

    def _preview_in_thread(
        self, service: Any, state: IncidentState, kind: str, values: dict[str, str]
    ) -> None:
        """On the worker's thread: render, and post the outcome back to the screen."""
        try:
            text, error = service.render_status(state, kind, values), None
        except (TemplateError, PlaybookError) as caught:
            text, error = "", caught
        except Exception as caught:  # shown as the preview, not lost in a dead worker
            text, error = "", caught
        self.post_message(PreviewRendered(kind, values, text, error))

    def on_preview_rendered(self, message: PreviewRendered) -> None:
        self._rendering = False
        if (message.kind, message.values) != (self.kind, self.current_values()):
            self.render_preview()  # typed on meanwhile: render what the fields say now
            return
        self.text, self.shown_for = message.text, (message.kind, message.values)
        preview = self.query_one("#composer-preview", Static)
        error = message.error
        if error is None:
            preview.update(block(self.text))
            return
        title = getattr(error, "title", None) or f"The preview failed: {error}"
        out = Text(str(title), style="bold red")
        if detail := getattr(error, "message", ""):
            out.append("\n")
            out.append_text(block(str(detail), "red"))
        preview.update(out)

    @property
    def preview_current(self) -> bool:
        """Whether the preview shows the fields as they are now."""
        return self.shown_for == (self.kind, self.current_values())

    def _current_text(self, verb: str) -> str | None:
        """The preview's text when it shows the fields as they are, so that what the
        responder copies, saves, sends or publishes is what they read; else say why not."""
        if not self.preview_current:
            self.notify(
                f"Nothing to {verb} yet: the preview is still rendering what you typed.",
                severity="warning",
                markup=False,
            )
            return None
        if not self.text:
            self.notify(
                f"Nothing to {verb}: the message does not render yet; fill in what the "
                "preview names.",
                severity="error",
                markup=False,
            )
            return None
        return self.text

    def action_scroll_preview(self, pages: int) -> None:
        scroll = self.query_one("#composer-preview-scroll", VerticalScroll)
        if pages < 0:
            scroll.scroll_page_up(animate=False)
        else:
            scroll.scroll_page_down(animate=False)

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
        text = self._current_text("copy")
        if text is None:
            return
        self.app.copy_to_clipboard(text)
        self.notify("Copied the message to the clipboard (OSC 52).", markup=False)

    def action_save(self) -> None:
        text = self._current_text("save")
        if text is None:
            return
        path = Path.cwd() / f"status-{self.state.id}-{self.kind}.txt"
        host(self).submit("save message", lambda: atomic_write(path, text), self, FileWritten)

    def on_file_written(self, message: FileWritten) -> None:
        self.notify(f"Saved {message.path}", markup=False)

    def action_send(self) -> None:
        if self._current_text("send") is None:
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
        if self._current_text("publish") is None:
            return
        from playbook.tui.screens.publish import PublishScreen

        prefilled = getattr(self, "prefilled", {})
        values = {k: v for k, v in self.current_values().items() if prefilled.get(k) != v}
        self.app.push_screen(PublishScreen(self.state, self.kind, values), self._published)

    def _published(self, state: IncidentState | None) -> None:
        if state is not None:
            self.dismiss(state)
