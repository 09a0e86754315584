"""The incident screen's detail pane: everything about the highlighted line's step."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.reactive import reactive
from textual.widgets import Static

from playbook.core.evidence import shown_of
from playbook.tui.widgets.sections import step_of
from playbook.tui.widgets.text import block, lit, standin_line, verdict_text

if TYPE_CHECKING:
    from playbook.core.model import Playbook, Procedure, Step
    from playbook.core.state import IncidentState


class StepDetail(VerticalScroll):
    """Under the checklist: the highlighted item or scenario, then its step's guidance,
    diagnostics (what would run, on which target, what healthy looks like, the last
    verdict), guarded actions, recovery commands and status messages. Shown from the
    top each time it changes."""

    # repaint=False: the watchers below redraw what changed; a repaint of the whole widget
    # on top doubled the garbage made per key (more collector pauses, bench/app_bench.py).
    ident: reactive[str] = reactive("", init=False, repaint=False)
    """The id of the checklist line highlighted (see :class:`Checklist`)."""
    state: reactive[IncidentState | None] = reactive(
        None, always_update=True, init=False, repaint=False
    )
    """The incident as last read (last runs, stand-ins)."""
    playbook: reactive[Playbook | None] = reactive(None, init=False, repaint=False)
    """The incident's playbook (steps, diagnostics, actions, procedures)."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._text = Static(id="detail")

    def compose(self) -> ComposeResult:
        yield self._text

    def watch_ident(self) -> None:
        self._show()

    def watch_state(self) -> None:
        self._show()

    def watch_playbook(self) -> None:
        self._show()

    def _show(self) -> None:
        if self.playbook is None:
            return
        self._text.update(describe(self.ident, self.playbook, self.state))
        self.scroll_home(animate=False)


def describe(ident: str, pb: Playbook, state: IncidentState | None) -> Text | str:
    """What the detail pane says about checklist line ``ident`` (literal outside text)."""
    if ident.startswith("scenario:"):
        return _scenario(pb, ident.split(":", 1)[1])
    located = step_of(ident)
    step = pb.steps().get(".".join(located)) if located is not None else None
    if step is None:
        return ""
    out = Text()
    if ident.startswith("item:"):
        _item(out, step, ident.rsplit(".", 1)[1])
    out.append("Step: ", style="dim")
    out.append_text(lit(step.title, "bold"))
    out.append("\n")
    if step.guidance:
        out.append_text(block(step.guidance))
        out.append("\n")
    for diag_id in step.diagnostics:
        _diagnostic(out, diag_id, pb, state)
    for action_id in step.actions:
        _action(out, action_id, pb, state)
    for proc_id in step.procedures:
        _procedure(out, next(p for p in pb.recovery_procedures if p.id == proc_id))
    for template in step.templates:
        out.append("\nStatus message: ", style="bold")
        out.append_text(lit(f"{template} — press s to compose it"))
    return out


def _scenario(pb: Playbook, scenario_id: str) -> Text:
    scenario = next(s for s in pb.scenarios if s.id == scenario_id)
    out = Text()
    out.append_text(lit(scenario.title, "bold"))
    out.append("\nDetection signs:\n")
    for item in scenario.detection:
        out.append("  • ")
        out.append_text(lit(item.text))
        out.append("\n")
    out.append(
        "Enter or Space follows this scenario: its signs, investigation queries and recovery join the list."
    )
    return out


def _item(out: Text, step: Step, key: str) -> None:
    item = next((i for i in step.items if i.key == key), None)
    if item is None:
        return
    out.append_text(lit(item.text, "bold"))
    out.append("\n")
    if item.options:
        out.append("Options: ")
        out.append_text(lit("; ".join(item.options)))
        out.append("\n")
    if item.guidance:
        out.append_text(block(item.guidance))
        out.append("\n")
    out.append("\n")


def _diagnostic(out: Text, diag_id: str, pb: Playbook, state: IncidentState | None) -> None:
    diag = pb.diagnostics[diag_id]
    out.append("\nDiagnostic ", style="bold cyan")
    out.append_text(lit(f"{diag_id}: {diag.title}", "bold"))
    out.append_text(lit(f"  [{diag.kind} on target '{diag.target}']", "cyan"))
    standin = standin_line(state, diag.target)
    if standin is not None:
        out.append("\n  ")
        out.append_text(standin)
    if diag.writes:
        out.append("\n  WRITES DATA: never run as a diagnostic. ", style="bold red")
    if diag.caution:
        out.append("\n  ")
        out.append_text(lit(diag.caution, "yellow"))
    query = getattr(diag, "query", None)
    shown = (
        query.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        if query
        else {"argv": getattr(diag, "argv", [])}
    )
    out.append("\n  would run: ")
    # a shell diagnostic's argv holds {$param} models, which json cannot dump by itself
    dumped = json.dumps(shown, ensure_ascii=False, default=lambda o: o.model_dump(by_alias=True))
    out.append_text(lit(dumped))
    for expectation in diag.expect:
        out.append("\n  healthy: ")
        out.append_text(
            lit(
                f"{expectation.metric} {expectation.op} {expectation.value} (else {expectation.verdict})"
            )
        )
    last = state.last_runs().get(diag_id) if state else None
    if last is not None:
        out.append("\n  last run: ")
        out.append_text(verdict_text(last.verdict))
        out.append_text(lit(f" {last.at:%H:%M:%S}Z by {last.actor}; {shown_of(last.payload)}"))
    if not diag.writes:
        out.append(
            "\n  d runs it, D runs all of this step's, Enter shows the last result.",
            style="dim",
        )


def _action(out: Text, action_id: str, pb: Playbook, state: IncidentState | None) -> None:
    action = pb.actions[action_id]
    out.append("\nGuarded action ", style="bold yellow")
    out.append_text(lit(f"{action_id}: {action.title}", "bold"))
    out.append_text(
        lit(f"  [{action.kind} {action.do.operation} on target '{action.target}']", "yellow")
    )
    standin = standin_line(state, action.target)
    if standin is not None:
        out.append("\n  ")
        out.append_text(standin)
    if action.description:
        out.append("\n  ")
        out.append_text(lit(action.description))
    if action.caution:
        out.append("\n  ")
        out.append_text(lit(action.caution, "yellow"))
    if action.verify:
        out.append("\n  verified by: ")
        out.append_text(lit(", ".join(v.diagnostic for v in action.verify)))
    for run in (r for r in (state.actions.values() if state else []) if r.action == action_id):
        out.append("\n  run ")
        out.append_text(lit(f"{run.run}: {run.status}", "bold"))
    out.append(
        "\n  g runs it: dry run, backup, then you type "
        f"'{action.confirm or action.target}' to lock, apply and verify.",
        style="dim",
    )


def _procedure(out: Text, proc: Procedure) -> None:
    out.append("\nProcedure ", style="bold magenta")
    out.append_text(lit(proc.title, "bold"))
    out.append(" (shown and copied, never run by playbook)", style="dim")
    for command in proc.commands:
        if command.description:
            out.append("\n  # ")
            out.append_text(lit(command.description, "dim"))
        out.append("\n")
        out.append_text(block(command.code.rstrip("\n")))


def copy_choices(pb: Playbook, step: Step) -> list[tuple[str, str]]:
    """(label, text) of each recovery command and diagnostic query of ``step``, to copy
    one at a time (never run by playbook)."""
    choices: list[tuple[str, str]] = []
    for proc_id in step.procedures:
        proc = next(p for p in pb.recovery_procedures if p.id == proc_id)
        for command in proc.commands:
            label = f"{proc.title}: {command.description or command.code.splitlines()[0]}"
            choices.append((label, command.code.rstrip("\n") + "\n"))
    for diag_id in step.diagnostics:
        diag = pb.diagnostics[diag_id]
        query = getattr(diag, "query", None)
        text = (
            diag.source
            if diag.source
            else json.dumps(query.model_dump(mode="json", by_alias=True) if query else {})
        )
        choices.append((f"Query {diag_id}: {diag.title}", text.rstrip("\n") + "\n"))
    return choices
