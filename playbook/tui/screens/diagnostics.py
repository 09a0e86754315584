"""A diagnostic's screens: its parameters before it runs, and its result as a table.

The runs themselves (prepared and recorded on the store thread, run in a thread worker,
progress and k to cancel) belong to :class:`playbook.tui.widgets.diagnostic_runs.DiagnosticRuns`.
Values from the database are shown with :func:`lit`: never as markup, never as terminal
control codes.
"""

from __future__ import annotations

import json
from functools import partial
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, DataTable, Footer, Input, Label, Static

from playbook.core.evidence import numbers_of, shown_of
from playbook.core.text import one_line
from playbook.tui.host import host
from playbook.tui.widgets.text import lit, standin_line, verdict_text

if TYPE_CHECKING:
    from playbook.core.model import Diagnostic, Playbook
    from playbook.tui.widgets.diagnostic_runs import DiagnosticRuns

MAX_CELL = 120


def start_diagnostic(
    app: App[Any], runs: DiagnosticRuns, playbook: Playbook, diag_id: str, ask: bool
) -> None:
    """Run ``diag_id`` in the background: with ``ask``, after the responder has seen (and
    may change) its parameters, else with the last or default ones; ``ask`` also opens the
    result once it is recorded."""
    diag = playbook.diagnostics[diag_id]
    values = runs.values_for(diag, diag_id)
    if values is None:
        return  # it said why not
    if ask and diag.params:
        app.push_screen(ParamsDialog(diag_id, diag, values), partial(runs.start, diag_id, True))
    else:
        runs.start(diag_id, ask, {k: v for k, v in values.items() if v})


class ParamsDialog(ModalScreen[dict[str, str] | None]):
    """Asks for a diagnostic's parameters before it runs."""

    DEFAULT_CSS = "ParamsDialog { align: center middle; }"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="params.cancel"),
        Binding("ctrl+s", "submit", "Run", id="params.submit"),
    ]

    def __init__(
        self,
        diagnostic_id: str,
        diagnostic: Diagnostic,
        values: dict[str, str],
        hint: str | None = None,
        verb: str = "Run",
    ) -> None:
        super().__init__()
        self.diagnostic_id = diagnostic_id
        self.diagnostic = diagnostic
        self.values = values
        self.hint = hint or (
            f"{diagnostic.kind} on target {diagnostic.target}; read-only; "
            f"deadline {diagnostic.timeout} s"
        )
        self.verb = verb

    def compose(self) -> ComposeResult:
        d = self.diagnostic
        with Vertical(classes="dialog"):
            yield Label(lit(f"{self.verb} {self.diagnostic_id}: {d.title}", "bold"))
            yield Static(lit(self.hint), classes="hint")
            standin = standin_line(host(self).shown_state(), d.target)
            if standin is not None:
                yield Static(standin, classes="hint")
            for name, spec in d.params.items():
                need = ""
                if getattr(spec, "default_from", None):
                    need = f", from {spec.default_from}'s last run"
                elif spec.default is None:
                    need = ", required"
                hint = f"{name} ({spec.type}{need})"
                if spec.description:
                    hint += f": {spec.description}"
                yield Label(lit(hint))
                yield Input(value=self.values.get(name, ""), id=f"param-{name}")
            with Horizontal(classes="buttons"):
                yield Button(f"{self.verb} (Ctrl+S)", variant="primary", id="ok")
                yield Button("Cancel (Esc)", id="cancel")

    def on_mount(self) -> None:
        inputs = list(self.query(Input))
        empty = next((i for i in inputs if not i.value), None)
        (empty or inputs[0]).focus() if inputs else None

    def on_input_submitted(self, _event: Input.Submitted) -> None:
        self.action_submit()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.action_submit() if event.button.id == "ok" else self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_submit(self) -> None:
        values = {}
        for name in self.diagnostic.params:
            text = self.query_one(f"#param-{name}", Input).value.strip()
            if text:
                values[name] = text
        self.dismiss(values)


class ResultScreen(ModalScreen[None]):
    """A run's evidence: verdict, the numbers that decided it, and its rows as a table."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="result.close"),
        Binding("q", "close", "Close", show=False, id="result.quit"),
    ]
    DEFAULT_CSS = """
    ResultScreen { align: center middle; }
    ResultScreen > Vertical { width: 95%; height: 90%; border: round $primary; background: $surface; }
    ResultScreen #result-head { height: auto; max-height: 12; padding: 0 1; }
    ResultScreen DataTable { height: 1fr; }
    """

    def __init__(self, payload: dict[str, Any]) -> None:
        super().__init__()
        self.payload = payload

    def compose(self) -> ComposeResult:
        with Vertical():
            with VerticalScroll(id="result-head"):
                yield Static(self._head())
            yield DataTable(id="result-rows", zebra_stripes=True, cursor_type="row")
            yield Footer()

    def _head(self) -> Text:
        p = self.payload
        head = Text()
        head.append_text(verdict_text(str(p.get("verdict"))))
        head.append(" ")
        head.append_text(
            lit(f"{p.get('diagnostic')} on {p.get('target')}: {p.get('title')}", "bold")
        )
        standin = standin_line(host(self).shown_state(), str(p.get("target")))
        if standin is not None:
            head.append("\n")
            head.append_text(standin)
        if p.get("message"):
            head.append("\n")
            head.append_text(lit(str(p["message"])))
        for check in p.get("checks") or []:
            head.append("\n  ")
            head.append_text(lit(str(check.get("text")), "green" if check.get("ok") else "red"))
        numbers = numbers_of(p)
        if numbers:
            head.append("\n")
            head.append_text(lit(f"numbers: {numbers}"[:600], "dim"))
        params = p.get("params") or {}
        if params:
            head.append("\n")
            head.append_text(
                lit("parameters: " + json.dumps(params, ensure_ascii=False)[:300], "dim")
            )
        head.append("\n")
        head.append_text(lit(f"{shown_of(p)}; ran {p.get('started')} to {p.get('ended')}"))
        if p.get("file"):
            head.append("\n")
            head.append_text(lit(f"full result: {p['file']}", "dim"))
            head.append("\n")
            head.append_text(lit(f"sha256: {p.get('sha256')}", "dim"))
        return head

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        rows = list(self.payload.get("rows") or [])
        columns: list[str] = []
        for row in rows:
            for key in row if isinstance(row, dict) else ["value"]:
                if key not in columns:
                    columns.append(str(key))
        if not columns:
            columns = ["(no rows)"]
        for name in columns:
            table.add_column(lit(name, "bold"), key=name)
        for row in rows:
            cells = row if isinstance(row, dict) else {"value": row}
            table.add_row(*(cell_text(cells.get(c, "")) for c in columns))
        table.focus()

    def action_close(self) -> None:
        self.dismiss()


def cell_text(value: Any) -> Text:
    """A database value as one literal line: JSON for structures, escapes for controls."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = one_line(text)
    if len(text) > MAX_CELL:
        text = text[: MAX_CELL - 1] + "…"
    return Text(text)
