"""Running a guarded action from the app: the same stages as `playbook action run`.

The screen drives a :class:`playbook.guarded.GuardedRun` in thread workers: the dry run
and the backup start at once; the responder reads what would change and types the
confirmation phrase; then lock, apply (with progress; k cancels) and verify. When apply
or verify fails and the apply wrote something, the same field takes the phrase again to
roll back; a run that wrote nothing offers nothing. A rollback restores only what is still
as the run left it and lists what it kept; ``force <phrase>`` then puts the backup over
those too. Each stage is recorded by the engine before the screen shows it done.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Label, Static
from textual.worker import Worker, WorkerState

from playbook.adapters.base import scrub
from playbook.errors import PlaybookError
from playbook.tui.screens.diagnostics import shown_state
from playbook.tui.widgets.text import lit, standin_line

ITEMS_LISTED = 20
"""Items a rollback kept, or overwrote, listed by name (the count covers them all)."""

if TYPE_CHECKING:
    from playbook.guarded import GuardedRun, Outcome


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

    def __init__(
        self,
        start: Callable[[Callable[[Any], None]], GuardedRun],
        title: str,
        rollback: bool = False,
    ) -> None:
        super().__init__()
        self._start = start
        self.title_text = title
        self.rollback_only = rollback
        """Open an earlier run to roll it back, rather than start a new one."""
        self.run: GuardedRun | None = None
        self.mode = "wait"
        """What the phrase field does: ``confirm``, ``rollback``, ``force`` (roll back over
        items kept as changed since the apply), or ``wait`` (nothing)."""
        self.busy = False
        self.log_text = Text()

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(lit(self.title_text, "bold"))
            with VerticalScroll(id="action-log"):
                yield Static(id="action-body")
            yield Static(id="action-progress")
            yield Input(id="phrase", disabled=True, placeholder="…")
            yield Footer()

    def on_mount(self) -> None:
        if self.rollback_only:
            self._work("resume", self._resume)
            return
        self._say("Dry run: reading what would change (nothing is written)…", "bold")
        self._work("prepare", self._prepare)

    def _resume(self) -> GuardedRun:
        run = self._start(self._progress)
        self.run = run
        self.app.call_from_thread(self._started, run)
        return run

    # ------------------------------------------------------------------ stages

    def _prepare(self) -> Any:
        run = self._start(self._progress)
        self.run = run
        self.app.call_from_thread(self._started, run)
        plan = run.dry_run()
        self.app.call_from_thread(self._planned, plan)
        if plan.empty:
            return "empty"
        self.app.call_from_thread(self._say, "Backup: saving everything it will touch…", "bold")
        return run.backup()

    def _started(self, run: GuardedRun) -> None:
        head = Text()
        head.append_text(lit(f"{run.action.kind} {run.request.do.get('operation')} on "))
        head.append_text(lit(f"{run.target.name} ({run.target.shown})", "bold"))
        head.append_text(lit(f", run {run.run_id}", "dim"))
        self._say(head)
        standin = standin_line(shown_state(self.app), run.target.name)
        if standin is not None:
            self._say(standin)
        if run.action.caution:
            self._say(lit(f"caution: {run.action.caution}", "yellow"))

    def _planned(self, plan: Any) -> None:
        counts = ", ".join(f"{k} {v:,}" for k, v in plan.counts.items())
        self._say(lit(f"✓ dry run: {counts}", "green"))
        for line in plan.items:
            self._say(lit(f"    {line}"))
        if plan.touches > len(plan.items):
            self._say(lit(f"    … {plan.touches:,} items in all", "dim"))
        for warning in plan.warnings:
            self._say(lit(f"  warning: {warning}", "bold yellow"))

    def _backed_up(self, info: dict[str, Any]) -> None:
        assert self.run is not None
        self._say(
            lit(
                f"✓ backup: {info['rows']:,} items, {info['bytes']:,} bytes -> {info['file']}",
                "green",
            )
        )
        self._say(lit(f"    sha256 {info['sha256']}", "dim"))
        self._ask("confirm", f"Type {self.run.phrase!r} and press Enter to apply (Esc leaves).")

    def _apply(self) -> Outcome:
        assert self.run is not None
        return self.run.apply()

    def _applied(self, outcome: Outcome) -> None:
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
            self._say(lit(f"✓ Applied and verified: {counts}", "bold green"))
            self._say(lit("Esc closes.", "dim"))
            return
        assert self.run is not None
        self._say(lit(f"✗ {outcome.stage} failed: {outcome.error}", "bold red"))
        if not outcome.rollback_offered:
            self._say(lit("Nothing was written, so there is nothing to roll back. Esc closes."))
            return
        self._ask(
            "rollback",
            f"Rollback is offered: type {self.run.phrase!r} and press Enter to restore "
            "from the backup (Esc keeps things as they are).",
        )

    def _rolled_back(self, numbers: dict[str, int]) -> None:
        assert self.run is not None
        run = self.run
        counts = ", ".join(f"{k} {v:,}" for k, v in numbers.items())
        self._say(lit(f"✓ Rolled back from the backup: {counts}", "bold yellow"))
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
        phrase = run.force_phrase if self.mode == "force" else run.phrase
        if typed.strip() != phrase:
            verb = {"confirm": "confirmed", "rollback": "rolled back", "force": "forced"}
            self._say(
                lit(
                    f"✗ Not {verb[self.mode]}: type {phrase!r} exactly. Nothing was written.",
                    "red",
                )
            )
            if self.mode == "confirm":
                self._work("refuse", lambda: _refused(run, typed))
            return
        mode, self.mode = self.mode, "wait"
        event.input.disabled = True
        event.input.placeholder = ""
        if mode == "confirm":
            self._say("Lock, apply, verify…", "bold")
            self._work("apply", lambda: (run.confirm(typed), run.apply())[1])
        else:
            force = mode == "force"
            self._say(
                "Putting the backup over the kept items too…"
                if force
                else "Rolling back what is still as the run left it…",
                "bold",
            )
            self._work("rollback", lambda: run.rollback(typed, force))

    def _ask(self, mode: str, prompt: str) -> None:
        self.mode = mode
        self._say(lit(prompt, "bold"))
        phrase = self.query_one("#phrase", Input)
        phrase.placeholder = prompt
        phrase.disabled = False
        phrase.focus()

    # ------------------------------------------------------------------ plumbing

    def _work(self, name: str, fn: Callable[[], Any]) -> None:
        self.busy = True
        self.run_worker(fn, name=name, group="action", thread=True, exit_on_error=False)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        worker = event.worker
        if worker.group != "action" or not worker.is_finished:
            return
        self.busy = False
        self.query_one("#action-progress", Static).update("")
        if worker.state != WorkerState.SUCCESS:
            error = worker.error
            if isinstance(error, PlaybookError):
                from playbook.core.diagnostics import ParamError

                self._say(lit(f"✗ {error.title}", "bold red"))
                hint = error.message
                if isinstance(error, ParamError):
                    hint = "Esc, then g on the action again, to give them."
                if hint:
                    self._say(lit(f"    {hint}"))
            else:
                text = f"{type(error).__name__}: {error}"
                if self.run is not None:
                    text = scrub(text, self.run.request.uri)
                self._say(lit(f"✗ {text}", "bold red"))
            return
        result = worker.result
        if worker.name == "resume":
            info = result.backup_info or {}
            self._say(lit(f"backup: {info.get('rows', 0):,} items -> {info.get('file')}", "bold"))
            self._say(lit(f"    sha256 {info.get('sha256')}", "dim"))
            self._ask(
                "rollback",
                f"Type {result.phrase!r} and press Enter to restore, from this backup, what "
                f"run {result.run_id} changed and is still as it left it (Esc leaves).",
            )
        elif worker.name == "prepare":
            if result == "empty":
                self._say(lit("Nothing to change; nothing was written. Esc closes.", "bold"))
            else:
                self._backed_up(result)
        elif worker.name == "apply":
            self._applied(result)
        elif worker.name == "rollback":
            self._rolled_back(result)

    def _progress(self, progress: Any) -> None:
        self.app.call_from_thread(
            self.query_one("#action-progress", Static).update,
            Text(f"⟳ {progress.describe()}   k cancels"),
        )

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


def _refused(run: GuardedRun, typed: str) -> None:
    from playbook.guarded import ConfirmationMismatch

    try:
        run.confirm(typed)
    except ConfirmationMismatch:
        return  # recorded as refused; the screen already said so
