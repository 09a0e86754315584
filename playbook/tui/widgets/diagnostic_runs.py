"""The diagnostics running now: each prepared, run and recorded, with its progress shown."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from playbook.errors import PlaybookError
from playbook.service import defaults_from
from playbook.tui.host import host
from playbook.tui.messages import (
    DiagnosticFailed,
    DiagnosticFinished,
    DiagnosticNotPrepared,
    DiagnosticPrepared,
    DiagnosticProgress,
    DiagnosticRecorded,
    post_outcome,
)
from playbook.tui.widgets.text import lit

if TYPE_CHECKING:
    from playbook.core.model import Diagnostic
    from playbook.core.state import IncidentState
    from playbook.service import PreparedRun


def param_defaults(diagnostic: Diagnostic, last: dict[str, Any] | None) -> dict[str, str]:
    """What a parameter field starts with: the last value used, else the default."""
    out: dict[str, str] = {}
    for name, spec in diagnostic.params.items():
        value = (last or {}).get(name, spec.default)
        if value is None:
            out[name] = ""
        elif isinstance(value, list):
            out[name] = ",".join(
                v.get("$oid", str(v)) if isinstance(v, dict) else str(v) for v in value
            )
        elif isinstance(value, dict) and "$oid" in value:
            out[name] = str(value["$oid"])
        else:
            out[name] = str(value)
    return out


class DiagnosticRuns(Static):
    """One line per running diagnostic at the bottom of the incident screen (hidden when
    none runs), and the runs themselves.

    A run is prepared on the store thread (its parameters and target checked, the
    incident read there), runs in a thread worker of this widget (a slow server never
    holds up a key; k cancels it), and its evidence is recorded on the store thread.
    :class:`DiagnosticRecorded` then bubbles up to the screen, which shows it.
    """

    progress: reactive[dict[str, str]] = reactive(dict, always_update=True, layout=True)
    """What each running diagnostic said last, by id."""
    state: IncidentState | None = None
    """The incident as last read: where its targets are, its diagnostics' last runs."""

    class Changed(Message):
        """The diagnostics running now changed (one started, finished or failed)."""

        def __init__(self, running: frozenset[str]) -> None:
            super().__init__()
            self.running = running

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, markup=False)
        self.running: dict[str, PreparedRun] = {}
        """Diagnostics running now, by id (their prepared run, which can cancel)."""
        self._show: dict[str, bool] = {}

    def values_for(self, diag: Diagnostic, diag_id: str) -> dict[str, str] | None:
        """What ``diag_id``'s parameters start with: the last run's, else the defaults, and
        numbers other diagnostics found. None, after saying why, when it cannot run now."""
        if diag.writes:
            self.notify(
                f"{diag_id} changes data: it is never run as a diagnostic.",
                severity="error",
                markup=False,
            )
            return None
        if diag_id in self.running:
            self.notify(f"{diag_id} is already running (k stops it).", markup=False)
            return None
        state = self.state
        if state is None:
            return None
        last = state.last_runs().get(diag_id)
        values = param_defaults(diag, last.payload.get("params") if last else None)
        # A parameter that defaults from another diagnostic's number shows that number.
        filled = defaults_from(state, diag, {k: v for k, v in values.items() if v})
        values.update({k: str(v) for k, v in filled.items() if not values.get(k)})
        return values

    def start(self, diag_id: str, show: bool, given: dict[str, str] | None) -> None:
        """Run ``diag_id`` with the ``given`` parameters (None: the responder cancelled);
        ``show`` opens the result once it is recorded."""
        state = self.state
        if given is None or state is None:
            return
        app = host(self)
        incident_id = state.id
        path = Path(state.playbook_path) if state.playbook_path else None

        def prepare() -> PreparedRun:
            targets = app.targets(path, state)
            return app.service.prepare_diagnostic(incident_id, diag_id, given, targets)

        app.submit(
            f"prepare {diag_id}",
            prepare,
            self,
            partial(DiagnosticPrepared, show=show),
            partial(DiagnosticNotPrepared, diag_id),
            tells=(PlaybookError,),
            records=False,
        )

    def stop(self) -> None:
        """Cancel every running diagnostic (each still records what it got, as cancelled)."""
        if not self.running:
            self.notify("No diagnostic is running.", markup=False)
            return
        for prepared in self.running.values():
            prepared.cancel()
        self.notify(f"Stopping {', '.join(self.running)}…", markup=False)

    def on_diagnostic_not_prepared(self, message: DiagnosticNotPrepared) -> None:
        # Imported here for start-up speed: the module brings pydantic, which the first
        # frame must not wait for; a preparation that failed has loaded it already.
        from playbook.core.diagnostics import ParamError

        error = message.error
        if not isinstance(error, PlaybookError):
            return  # the app has said what failed
        hint = error.message
        if isinstance(error, ParamError):
            hint = "Highlight it and press d to give them."
        self.notify(
            f"{error.title}\n{hint}".strip(),
            title=f"{message.diagnostic_id} not run",
            severity="error",
            markup=False,
            timeout=12,
        )

    def on_diagnostic_prepared(self, message: DiagnosticPrepared) -> None:
        prepared = message.prepared
        diag_id = prepared.diagnostic_id
        self.running[diag_id] = prepared
        self._show[diag_id] = message.show
        self.post_message(self.Changed(frozenset(self.running)))
        self._say(diag_id, "connecting…")
        service = host(self).service

        def progress(p: Any) -> None:  # called on the worker's thread
            self.post_message(DiagnosticProgress(diag_id, p.describe()))

        run = partial(service.execute_diagnostic, prepared, progress)
        self.run_worker(
            partial(
                post_outcome,
                self,
                run,
                partial(DiagnosticFinished, diag_id),
                partial(DiagnosticFailed, diag_id),
            ),
            name=f"run {diag_id}",
            group="diagnostics",
            thread=True,
            exit_on_error=False,
        )

    def on_diagnostic_progress(self, message: DiagnosticProgress) -> None:
        self._say(message.diagnostic_id, message.text)

    def on_diagnostic_failed(self, message: DiagnosticFailed) -> None:
        diag_id = message.diagnostic_id
        self._ended(diag_id)
        self.notify(f"{diag_id} failed: {message.error}", severity="error", markup=False)

    def on_diagnostic_finished(self, message: DiagnosticFinished) -> None:
        diag_id, payload = message.diagnostic_id, message.payload
        prepared = self.running[diag_id]
        show = self._show.get(diag_id, False)
        self._ended(diag_id)
        service = host(self).service
        host(self).submit(
            f"record {diag_id}",
            partial(service.record_diagnostic, prepared.incident_id, payload),
            self,
            partial(DiagnosticRecorded, diag_id, payload, show),
        )

    def _ended(self, diag_id: str) -> None:
        self.running.pop(diag_id, None)
        self._show.pop(diag_id, None)
        self._say(diag_id, "")
        self.post_message(self.Changed(frozenset(self.running)))

    def _say(self, diag_id: str, text: str) -> None:
        said = dict(self.progress)
        if diag_id in self.running:
            said[diag_id] = text
        else:
            said.pop(diag_id, None)
        self.progress = said

    def watch_progress(self, progress: dict[str, str]) -> None:
        self.display = bool(progress)

    def render(self) -> Text:
        lines = Text()
        for name, said in self.progress.items():
            if lines:
                lines.append("\n")
            lines.append("⟳ ", style="bold yellow")
            lines.append_text(lit(f"{name}: {said}"))
        if lines:
            lines.append("   k stops", style="dim")
        return lines
