"""The Textual app: a thin shell over :mod:`playbook.service`.

Every call that may wait on the store runs in one long-lived thread worker that takes
jobs from a queue in the order the responder made them and posts the result back as
a message; the event loop never blocks on SQLite, and a checkbox is shown ticked only
once the event is committed.
"""

from __future__ import annotations

import gc
import queue
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen, SystemModalScreen
from textual.worker import get_current_worker

from playbook.core.clock import SteadyClock
from playbook.errors import PlaybookError, UsageError
from playbook.service import Service
from playbook.tui.messages import ConfigIgnored, Job, JobDone, JobFailed
from playbook.tui.widgets.drill_banner import DrillBanner, DrillMark
from playbook.tui.widgets.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallNotice

if TYPE_CHECKING:
    from playbook.core.loader import LoadedPlaybook
    from playbook.core.state import IncidentState
    from playbook.drill import DrillRun
    from playbook.targets import Target


class PlaybookApp(App[int]):
    """Walks a responder through an incident on a playbook."""

    TITLE = "playbook"
    CSS_PATH = Path(__file__).with_name("app.tcss")
    ENABLE_COMMAND_PALETTE = True
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help", key_display="?", id="app.help"),
        Binding("f1", "help", "Help", show=False, id="app.help.f1"),
        Binding("n", "note", "Note", id="app.note"),
        Binding("ctrl+q", "quit", "Quit", show=False, id="app.quit"),
    ]

    def __init__(
        self,
        service: Service,
        playbook: LoadedPlaybook | None = None,
        resume: str | None = None,
        tick_seconds: float = 1.0,
        refresh_seconds: float = 5.0,
        playbook_path: Path | None = None,
        target_overrides: tuple[str, ...] = (),
        drill: DrillRun | None = None,
    ) -> None:
        super().__init__()
        self.service = service
        self.drill = drill
        """The drill's sandbox when this app runs a drill (`playbook drill`)."""
        self.drill_incident = resume if drill is not None else None
        """The incident the sandbox was made for: the only one it serves."""
        self.briefed: set[str] = set()
        """Drills whose briefing was shown in this run of the app."""
        self.target_overrides = target_overrides
        """``--target name=URI`` pairs given to `playbook run`."""
        self.playbook = playbook
        self.playbook_path = playbook_path
        self.playbook_problem = ""
        """Why the playbook could not be loaded, when it could not."""
        self.resume = resume
        self.tick_seconds = tick_seconds
        self.refresh_seconds = refresh_seconds
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self.pending_jobs = 0
        self._focus_before: dict[int, Any] = {}
        self._notices_shown: set[str] = set()

    # ------------------------------------------------------------------ store jobs

    def submit(
        self,
        label: str,
        fn: Callable[[], Any],
        on_done: Callable[[Any], None] | None = None,
        on_error: Callable[[BaseException], bool | None] | None = None,
        records: bool = True,
    ) -> Job:
        """Queue ``fn`` for the store thread; ``on_done`` runs on the event loop.

        ``on_error`` runs on the event loop too; when it returns True it has told the
        responder itself, and the generic "not recorded" message is not shown.
        """
        job = Job(label, fn, on_done, on_error, records)
        self.pending_jobs += 1
        self._jobs.put(job)
        return job

    @work(thread=True, exclusive=True, exit_on_error=False, group="store", name="store-writer")
    def _store_worker(self) -> None:
        worker = get_current_worker()
        while not worker.is_cancelled:
            try:
                job = self._jobs.get(timeout=0.25)
            except queue.Empty:
                continue
            if job is None:
                return
            try:
                result = job.fn()
            except Exception as error:
                self.post_message(JobFailed(job, error))
            else:
                self.post_message(JobDone(job, result))

    def on_job_done(self, message: JobDone) -> None:
        self.pending_jobs -= 1
        if message.job.on_done is not None:
            message.job.on_done(message.result)

    def on_job_failed(self, message: JobFailed) -> None:
        self.pending_jobs -= 1
        error = message.error
        if message.job.on_error is not None and message.job.on_error(error):
            return  # the caller said it all
        if isinstance(error, PlaybookError):
            text = error.title + (f"\n{error.message}" if error.message else "")
        else:
            from playbook.redaction import scrub  # a driver's message may quote a secret

            text = scrub(f"{message.job.label} failed: {type(error).__name__}: {error}")
        title = "Not recorded" if message.job.records else f"{message.job.label} failed"
        self.notify(text, title=title, severity="error", timeout=10, markup=False)

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        from playbook.tui.screens.incident import IncidentScreen
        from playbook.tui.screens.start import StartScreen

        self._store_worker()
        self.screen_change_signal.subscribe(self, self._screen_changed)
        self.push_screen(StartScreen())
        if self.resume:
            ref = self.resume

            def opened(incident_id: str) -> None:
                if self.drill is not None and self.drill_incident == ref:
                    self.drill_incident = incident_id
                self.push_screen(IncidentScreen(incident_id))

            def failed(_error: BaseException) -> None:
                self.resume = None

            self.submit("resume", lambda: self.service.resolve_id(ref), opened, failed)
        self.check_size()

    def load_playbook(self) -> None:
        """Validate the playbook on the store thread, once, after the first frame.

        It imports pydantic and builds the model (a third of a second); the start screen
        queues it after reading the incident list, so the list is never kept waiting.
        """
        if self.playbook is not None or self.playbook_path is None or self._playbook_queued:
            return
        self._playbook_queued = True
        path = self.playbook_path

        def load() -> LoadedPlaybook:
            from playbook.core.loader import load  # the import itself runs here, off the loop

            return load(path)

        self.submit(
            "load playbook",
            load,
            self._playbook_loaded,
            self._playbook_failed,
            records=False,
        )

    _playbook_queued = False

    def _playbook_loaded(self, loaded: LoadedPlaybook) -> None:
        from playbook.tui.screens.start import StartScreen

        self.playbook = loaded
        # Start-up is over: what exists now (Textual, the model classes) lives as long as
        # the app. Keep it out of every later full collection.
        gc.freeze()
        for screen in self.screen_stack:
            if isinstance(screen, StartScreen):
                screen.playbook_ready()

    def _playbook_failed(self, error: BaseException) -> None:
        from playbook.tui.screens.start import StartScreen

        self.playbook_problem = str(error)
        for screen in self.screen_stack:
            if isinstance(screen, StartScreen):
                screen.playbook_ready()

    def on_unmount(self) -> None:
        self._jobs.put(None)
        gc.unfreeze()  # give frozen objects back to the collector (tests run many apps)

    @property
    def too_small(self) -> bool:
        return self.size.width < MIN_WIDTH or self.size.height < MIN_HEIGHT

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return not (action in ("note", "help") and self.too_small)

    def check_size(self) -> None:
        """Cover every screen with the size notice while the terminal is too small."""
        small = self.too_small
        self.set_class(small, "-too-small")
        width, height = self.size
        for screen in self.screen_stack:
            notice = next(iter(screen.query(TooSmallNotice)), None) if screen.is_mounted else None
            if notice is None:
                continue
            notice.show_size(width, height)
            if small and screen.focused is not notice:
                self._focus_before[id(screen)] = screen.focused
                screen.set_focus(notice)
            elif not small and screen.focused is notice:
                screen.set_focus(self._focus_before.pop(id(screen), None))

    # ------------------------------------------------------------------ actions

    def action_help(self) -> None:
        from playbook.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_note(self) -> None:
        from playbook.tui.screens.dialogs import NoteDialog

        incident = self.current_incident()
        if incident is None:
            self.notify("Open an incident first; notes belong to an incident.", markup=False)
            return
        self.push_screen(NoteDialog(incident))

    def sandbox_for(self, incident_id: str) -> DrillRun | None:
        """The drill's sandbox when it was made for ``incident_id``, else None."""
        if self.drill is not None and incident_id == self.drill_incident:
            return self.drill
        return None

    def targets(
        self, playbook_path: Path | None, state: IncidentState | None = None
    ) -> Mapping[str, Target]:
        """Where the playbook's targets are: the drill's sandbox, else the configured
        targets with ``--target`` overrides (a bad configuration raises UsageError).

        Given the incident's ``state``, a drill never reaches the configured targets
        (they may be production) and a sandbox serves only the drill it was made for.
        """
        if state is not None and state.drill is not None:
            sandbox = self.sandbox_for(state.id)
            if sandbox is None:
                raise UsageError(
                    f"{state.id} is a drill, and its sandbox is not running in this app.",
                    "A drill's diagnostics and actions run only on its own sandbox, inside "
                    "`playbook drill`; they never reach the configured targets.",
                )
            return sandbox.targets
        if self.drill is not None:
            if state is not None and state.id != self.drill_incident:
                raise UsageError(
                    f"This app runs a drill; its sandbox serves {self.drill_incident} only.",
                    "Open other incidents with `playbook run` or `playbook resume`.",
                )
            return self.drill.targets
        from playbook.targets import load_targets

        known = load_targets(playbook_path, self.target_overrides)
        for notice in known.notices:  # loaded on the store thread: post, never touch the UI
            self.post_message(ConfigIgnored(notice))
        return known

    def on_config_ignored(self, message: ConfigIgnored) -> None:
        if message.notice not in self._notices_shown:  # said once per run of the app
            self._notices_shown.add(message.notice)
            self.notify(
                message.notice, title="Ignored", severity="warning", timeout=15, markup=False
            )

    def current_incident(self) -> Any:
        from playbook.tui.screens.incident import IncidentScreen

        for screen in reversed(self.screen_stack):
            if isinstance(screen, IncidentScreen):
                return screen
        return None

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        incident = self.current_incident()
        if incident is None:
            if self.drill is None:
                yield SystemCommand("incident: open new", "Start a new incident", self.new_incident)
            return
        yield from incident.palette_commands()

    def new_incident(self) -> None:
        from playbook.tui.screens.new_incident import NewIncidentScreen

        if self.refuse_new_in_drill():
            return
        self.push_screen(NewIncidentScreen())

    def refuse_new_in_drill(self) -> bool:
        """In a drill, say why no other incident can be opened here, and return True."""
        if self.drill is None:
            return False
        self.notify(
            "This app runs a drill: its one incident is the drill's, and its sandbox "
            "serves no other. Open real incidents with `playbook run`.",
            severity="warning",
            markup=False,
        )
        return True

    # ------------------------------------------------------------------ drill marks

    def drill_mark(self) -> DrillMark | None:
        """What the drill bar says now, or None when nothing shown is a drill."""
        incident = self.current_incident()
        state = incident.state if incident is not None else None
        if state is not None and state.drill is not None:
            live = self.sandbox_for(state.id) is not None
            return DrillMark(state.drill.title, state.drill.speed, live)
        if self.drill is not None:  # every screen of `playbook drill` is the drill's
            return DrillMark(self.drill.spec.title)
        return None

    def _screen_changed(self, screen: Screen[Any]) -> None:
        # A screen just pushed is not mounted yet; its queue runs this after its mount.
        screen.call_later(self.mark_drill, screen)

    def mark_drill(self, screen: Screen[Any]) -> None:
        """Put the drill bar on ``screen`` (or take it off), whatever kind of screen it is."""
        if isinstance(screen, SystemModalScreen) or not screen.is_attached:
            return  # the command palette lies over a screen that is marked already
        mark = self.drill_mark()
        banner = next(iter(screen.query_children(DrillBanner)), None)
        if banner is not None:
            banner.mark = mark
        elif mark is not None:
            screen.mount(DrillBanner(mark))

    def refresh_drill_marks(self) -> None:
        """Bring every screen's drill bar up to date (an incident was read)."""
        for screen in self.screen_stack:
            self.mark_drill(screen)


def run_app(
    service: Service,
    playbook_path: Path,
    resume: str | None,
    targets: tuple[str, ...] = (),
    drill: DrillRun | None = None,
) -> int:
    """Run the app until the responder quits; returns the exit code."""
    service.clock = SteadyClock()
    app = PlaybookApp(
        service,
        drill.loaded if drill is not None else None,
        resume,
        playbook_path=playbook_path,
        target_overrides=targets,
        drill=drill,
    )
    app.run()
    return app.return_code or 0
