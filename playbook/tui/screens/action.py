"""Running a guarded action from the app: the same stages as `playbook action run`.

The screen drives a :class:`playbook.service.actions.GuardedRun` in thread workers, each of which
reports by message (:mod:`playbook.tui.messages`: ``ActionStarted``, ``ActionPlanned``,
``ActionBackedUp``, ``ActionApplied``…) and never touches a widget: the dry run and the
backup start at once; the responder reads what would change and types the
confirmation phrase; then lock, apply (with progress; k cancels) and verify. When apply
or verify fails and the apply wrote something, the same field takes the phrase again to
roll back; a run that wrote nothing offers nothing. A rollback restores only what is still
as the run left it and lists what it kept; ``force <phrase>`` then puts the backup over
those too. Each stage is recorded by the engine before the screen shows it done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static

from playbook.errors import PlaybookError
from playbook.tui.host import Host, host
from playbook.tui.messages import (
    ActionApplied,
    ActionBackedUp,
    ActionPlanned,
    ActionProgress,
    ActionRefusalRecorded,
    ActionResumed,
    ActionRolledBack,
    ActionStageFailed,
    ActionStarted,
    post_outcome,
)
from playbook.tui.screens.diagnostics import ParamsDialog
from playbook.tui.widgets.diagnostic_runs import param_defaults
from playbook.tui.widgets.text import lit, standin_line

if TYPE_CHECKING:
    from playbook.core.model import Playbook
    from playbook.core.state import IncidentState
    from playbook.service.actions import GuardedRun, Outcome

ITEMS_LISTED = 20
"""Items a rollback kept, or overwrote, listed by name (the count covers them all)."""


@dataclass(frozen=True)
class ActionRequest:
    """What the action screen is asked to do: start ``action_id`` of the incident with
    ``params``, or, with ``rollback_run``, reopen that earlier run to roll it back."""

    state: IncidentState
    action_id: str
    params: dict[str, str] = field(default_factory=dict)
    rollback_run: str | None = None


class ActionScreen(ModalScreen[None]):
    """One run of a guarded action: dry run, backup, confirm, lock, apply, verify."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Close", id="action.close"),
        Binding("k", "cancel", "Cancel stage", id="action.cancel"),
    ]
    DEFAULT_CSS = """
    ActionScreen { align: center middle; }
    ActionScreen > Vertical { width: 95%; height: 90%; border: round $warning; background: $surface; }
    ActionScreen #action-log { height: 1fr; padding: 0 1; }
    ActionScreen #action-progress { height: auto; color: $warning; padding: 0 1; }
    ActionScreen Input { margin: 0 1; }
    """

    def __init__(self, request: ActionRequest, title: str) -> None:
        super().__init__()
        self.request = request
        self.title_text = title
        self.run: GuardedRun | None = None
        self.mode = "wait"
        """What the phrase field does: ``confirm``, ``rollback``, ``force`` (roll back over
        items kept as changed since the apply), or ``wait`` (nothing)."""
        self.busy = False
        self.log_text = Text()
        self.who = ""
        """Who runs the stages from this screen (each stage line names them: in team mode
        the apply and a later rollback may be different responders')."""

    @classmethod
    def open(
        cls,
        app: App[Any],
        state: IncidentState,
        playbook: Playbook,
        action_id: str,
        closed: Callable[[None], None],
    ) -> None:
        """Start a run of ``action_id``, asking for its parameters first when it has any;
        ``closed`` is called when the screen closes."""
        action = playbook.actions[action_id]
        title = f"⚡ {action_id}: {action.title}"

        def given(params: dict[str, str] | None) -> None:
            if params is not None:
                app.push_screen(cls(ActionRequest(state, action_id, params), title), closed)

        if not action.params:
            given({})
            return
        hint = f"guarded action on target {action.target}: the dry run comes first"
        defaults = param_defaults(action, None)  # type: ignore[arg-type]
        app.push_screen(
            ParamsDialog(action_id, action, defaults, hint=hint, verb="Dry run"),  # type: ignore[arg-type]
            given,
        )

    @classmethod
    def roll_back(
        cls, app: App[Any], state: IncidentState, action_id: str, closed: Callable[[None], None]
    ) -> None:
        """Reopen the latest run of ``action_id`` that can be rolled back, to roll it back."""
        runs = [r for r in state.actions.values() if r.action == action_id and r.can_roll_back]
        if not runs:
            app.notify(f"No run of {action_id} can be rolled back.", markup=False)
            return
        run_id = runs[-1].run
        request = ActionRequest(state, action_id, rollback_run=run_id)
        app.push_screen(cls(request, f"⚡ roll back {action_id} run {run_id}"), closed)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(lit(self.title_text, "bold"))
            with VerticalScroll(id="action-log"):
                yield Static(id="action-body")
            yield Static(id="action-progress")
            yield Input(id="phrase", disabled=True, placeholder="…")
            yield Footer()

    def on_mount(self) -> None:
        app = host(self)  # read here: the stages below run on a worker's thread
        self.who = app.service.actor
        if self.request.rollback_run is not None:
            self._stage(partial(self._open, app), ActionResumed)
            return
        self._say("Dry run: reading what would change (nothing is written)…", "bold")
        self._stage(partial(self._prepare, app), ActionBackedUp)

    # ------------------------------------------------------------------ stages (worker threads)

    def _open(self, app: Host) -> GuardedRun:
        """Start the run, or reopen the earlier one (on the worker's thread)."""
        request = self.request
        state = request.state
        path = Path(state.playbook_path) if state.playbook_path else None
        targets = app.targets(path, state)
        if request.rollback_run is not None:
            run = app.service.resume_action(state.id, request.rollback_run, targets, self._progress)
        else:
            run = app.service.start_action(
                state.id, request.action_id, request.params, targets, self._progress
            )
        self.post_message(ActionStarted(run))
        return run

    def _prepare(self, app: Host) -> dict[str, Any] | None:
        """Start, dry run, back up (on the worker's thread); None: nothing to change."""
        run = self._open(app)
        plan = run.dry_run()
        self.post_message(ActionPlanned(plan))
        if plan.empty:
            return None
        return run.backup()

    def _progress(self, progress: Any) -> None:  # called on a worker's thread
        self.post_message(ActionProgress(f"⟳ {progress.describe()}   k cancels"))

    # ------------------------------------------------------------------ what the stages said

    def on_action_started(self, message: ActionStarted) -> None:
        self.run = run = message.run
        head = Text()
        head.append_text(lit(f"{run.action.kind} {run.request.do.get('operation')} on "))
        head.append_text(lit(f"{run.target.name} ({run.target.shown})", "bold"))
        head.append_text(lit(f", run {run.run_id}", "dim"))
        self._say(head)
        standin = standin_line(host(self).shown_state(), run.target.name)
        if standin is not None:
            self._say(standin)
        if run.action.caution:
            self._say(lit(f"caution: {run.action.caution}", "yellow"))

    def on_action_planned(self, message: ActionPlanned) -> None:
        plan = message.plan
        counts = ", ".join(f"{k} {v:,}" for k, v in plan.counts.items())
        self._say(lit(f"✓ dry run — {self.who}: {counts}", "green"))
        for line in plan.items:
            self._say(lit(f"    {line}"))
        if plan.touches > len(plan.items):
            self._say(lit(f"    … {plan.touches:,} items in all", "dim"))
        for warning in plan.warnings:
            self._say(lit(f"  warning: {warning}", "bold yellow"))
        if not plan.empty:
            self._say("Backup: saving everything it will touch…", "bold")

    def on_action_backed_up(self, message: ActionBackedUp) -> None:
        self._stage_over()
        info = message.info
        if info is None:
            self._say(lit("Nothing to change; nothing was written. Esc closes.", "bold"))
            return
        assert self.run is not None
        self._say(
            lit(
                f"✓ backup — {self.who}: {info['rows']:,} items, {info['bytes']:,} bytes -> "
                f"{info['file']}",
                "green",
            )
        )
        self._say(lit(f"    sha256 {info['sha256']}", "dim"))
        self._ask("confirm", f"Type {self.run.phrase!r} and press Enter to apply (Esc leaves).")

    def on_action_resumed(self, message: ActionResumed) -> None:
        self._stage_over()
        run = message.run
        info = run.backup_info or {}
        earlier = self.request.state.actions.get(run.run_id)
        if earlier is not None and earlier.who_ran():
            ran = ", ".join(f"{stage} — {actor}" for stage, actor in earlier.who_ran())
            self._say(lit(f"run {run.run_id} so far: {ran}", "dim"))
        self._say(lit(f"backup: {info.get('rows', 0):,} items -> {info.get('file')}", "bold"))
        self._say(lit(f"    sha256 {info.get('sha256')}", "dim"))
        self._ask(
            "rollback",
            f"Type {run.phrase!r} and press Enter to restore, from this backup, what "
            f"run {run.run_id} changed and is still as it left it (Esc leaves).",
        )

    def on_action_applied(self, message: ActionApplied) -> None:
        self._stage_over()
        outcome = message.outcome
        for result in outcome.verify:
            ok = result["verdict"] == "pass"
            self._say(
                lit(
                    f"{'✓' if ok else '✗'} verify {result['diagnostic']}: {result['verdict'].upper()}"
                ),
                "green" if ok else "bold red",
            )
            for line in result.get("checks", []):
                self._say(lit(f"    {line}"))
        if outcome.ok:
            counts = ", ".join(f"{k} {v:,}" for k, v in outcome.numbers.items())
            self._say(lit(f"✓ Applied and verified — {self.who}: {counts}", "bold green"))
            self._say(lit("Esc closes.", "dim"))
            return
        assert self.run is not None
        self._say(lit(f"✗ {outcome.stage} failed: {outcome.error}", "bold red"))
        if not outcome.rollback_offered:
            self._say(
                lit(
                    "Nothing of this run is left on the target, so there is nothing to "
                    "roll back. Esc closes."
                )
            )
            return
        if self.run.cancelled:
            # As in the CLI: after a cancel nothing more runs on its own; the rollback
            # stays on offer with G on the step, as a decision of its own.
            self._say(
                lit(
                    "Cancelled. The rollback stays on offer: G on the action's step "
                    "rolls this run back. Esc closes."
                )
            )
            return
        self._ask(
            "rollback",
            f"Rollback is offered: type {self.run.phrase!r} and press Enter to restore "
            "from the backup (Esc keeps things as they are).",
        )

    def on_action_rolled_back(self, message: ActionRolledBack) -> None:
        self._stage_over()
        numbers = message.numbers
        assert self.run is not None
        run = self.run
        counts = ", ".join(f"{k} {v:,}" for k, v in numbers.items())
        self._say(lit(f"✓ Rolled back from the backup — {self.who}: {counts}", "bold yellow"))
        for label, names, style in (
            ("kept", run.kept, "bold yellow"),
            ("overwritten", run.overwritten, "bold red"),
        ):
            for n, name in enumerate(names[:ITEMS_LISTED]):
                head = f"{label} {len(names):,}: " if n == 0 else "    "
                self._say(lit(f"{head}{name}", style))
            if len(names) > ITEMS_LISTED:
                self._say(lit(f"    … {len(names):,} in all", "dim"))
        if run.kept and not run.overwritten:
            self._ask(
                "force",
                f"Those were changed after the apply and left as they are. To put the backup "
                f"over them too (their newer data is lost), type {run.force_phrase!r} and "
                "press Enter; Esc keeps them.",
            )
            return
        self._say(lit("Esc closes.", "dim"))

    # ------------------------------------------------------------------ input

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.run is None or self.busy or self.mode == "wait":
            return
        typed = event.value
        event.input.value = ""
        run = self.run
        force = self.mode == "force"
        phrase = run.force_phrase if force else run.phrase
        if not run.confirms(typed, force):
            verb = {"confirm": "confirmed", "rollback": "rolled back", "force": "forced"}
            self._say(
                lit(
                    f"✗ Not {verb[self.mode]}: type {phrase!r} exactly. Nothing was "
                    f"written.{run.mismatch_hint(typed, force)}",
                    "red",
                )
            )
            if self.mode == "confirm":
                self._stage(partial(_refused, run, typed), ActionRefusalRecorded)
            return
        mode, self.mode = self.mode, "wait"
        event.input.disabled = True
        event.input.placeholder = ""
        if mode == "confirm":
            self._say("Lock, apply, verify…", "bold")
            self._stage(partial(_confirm_and_apply, run, typed), ActionApplied)
        else:
            self._say(
                "Putting the backup over the kept items too…"
                if force
                else "Rolling back what is still as the run left it…",
                "bold",
            )
            self._stage(partial(run.rollback, typed, force), ActionRolledBack)

    def _ask(self, mode: str, prompt: str) -> None:
        self.mode = mode
        self._say(lit(prompt, "bold"))
        phrase = self.query_one("#phrase", Input)
        phrase.placeholder = prompt
        phrase.disabled = False
        phrase.focus()

    # ------------------------------------------------------------------ plumbing

    def _stage(self, work: Callable[[], Any], done: Callable[[Any], Message]) -> None:
        """Run one stage in a thread worker; it reports ``done(result)`` or a failure."""
        self.busy = True
        self.run_worker(
            partial(post_outcome, self, work, done, ActionStageFailed),
            group="action",
            thread=True,
            exit_on_error=False,
        )

    def _stage_over(self) -> None:
        self.busy = False
        self.query_one("#action-progress", Static).update("")

    def on_action_refusal_recorded(self, _message: ActionRefusalRecorded) -> None:
        self._stage_over()

    def on_action_stage_failed(self, message: ActionStageFailed) -> None:
        self._stage_over()
        error = message.error
        if isinstance(error, PlaybookError):
            # Imported here for start-up speed: the module brings pydantic (loaded by
            # then: a stage that failed on its parameters has validated them).
            from playbook.core.diagnostics import ParamError

            self._say(lit(f"✗ {error.title}", "bold red"))
            hint = error.message
            if isinstance(error, ParamError):
                hint = "Esc, then g on the action again, to give them."
            if hint:
                self._say(lit(f"    {hint}"))
            return
        text = f"{type(error).__name__}: {error}"
        if self.run is not None:
            # Imported here for start-up speed: the adapters' base is not needed for the
            # first frame, only when a driver's message may quote the target's password.
            from playbook.adapters.base import scrub

            text = scrub(text, self.run.request.uri)
        self._say(lit(f"✗ {text}", "bold red"))

    def on_action_progress(self, message: ActionProgress) -> None:
        self.query_one("#action-progress", Static).update(Text(message.text))

    def _say(self, text: Text | str, style: str = "") -> None:
        if self.log_text:
            self.log_text.append("\n")
        self.log_text.append_text(text if isinstance(text, Text) else Text(text, style=style))
        if isinstance(text, Text) and style:
            self.log_text.stylize(style, len(self.log_text) - len(text))
        self.query_one("#action-body", Static).update(self.log_text)
        self.query_one("#action-log", VerticalScroll).scroll_end(animate=False)

    def action_cancel(self) -> None:
        if self.run is not None and self.busy:
            self.run.cancel()
            self._say(lit("Cancelling…", "yellow"))

    def action_close(self) -> None:
        if self.busy:
            self.notify("A stage is running: k cancels it first.", markup=False)
            return
        self.dismiss(None)


def _confirm_and_apply(run: GuardedRun, typed: str) -> Outcome:
    run.confirm(typed)
    return run.apply()


def _refused(run: GuardedRun, typed: str) -> None:
    """Record the mistyped phrase as refused (the engine records it, then raises)."""
    # Imported here for start-up speed: guarded brings pydantic and the playbook model
    # (half a second), which the first frame must not wait for.
    from playbook.service.actions import ConfirmationMismatch

    try:
        run.confirm(typed)
    except ConfirmationMismatch:
        return  # recorded as refused; the screen already said so
