"""The Textual app: a thin shell over :mod:`playbook.service`.

Every call that may wait on the store runs in one long-lived thread worker that takes
jobs from a queue in the order the responder made them and posts the result back as
a message (:mod:`playbook.tui.messages`); the event loop never blocks on SQLite, and a
checkbox is shown ticked only once the event is committed.

The app imports its screens (:mod:`playbook.tui.screens`), which import their widgets
(:mod:`playbook.tui.widgets`); screens and widgets reach back only through the
:class:`playbook.tui.host.Host` protocol, which this app fulfils, and through messages.
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
from textual.message import Message
from textual.message_pump import MessagePump
from textual.screen import Screen, SystemModalScreen
from textual.worker import get_current_worker

from playbook.core.clock import SteadyClock
from playbook.errors import PlaybookError
from playbook.service import Service
from playbook.service.context import StaleChange
from playbook.tui.commands import start_commands
from playbook.tui.messages import (
    ConfigIgnored,
    IncidentFound,
    IncidentNotFound,
    Job,
    JobDone,
    JobFailed,
    PlaybookLoaded,
    PlaybookNotLoaded,
)
from playbook.tui.screens.conflict import StaleChangeDialog, redo_on_current
from playbook.tui.screens.dialogs import NoteDialog
from playbook.tui.screens.help import HelpScreen
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.new_incident import NewIncidentScreen
from playbook.tui.screens.start import StartScreen
from playbook.tui.widgets.drill_banner import DrillBanner, DrillMark
from playbook.tui.widgets.too_small import MIN_HEIGHT, MIN_WIDTH, TooSmallNotice

if TYPE_CHECKING:
    from playbook.core.loader import LoadedPlaybook
    from playbook.core.state import IncidentState
    from playbook.drill.run import DrillRun
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
        reply_to: MessagePump | None = None,
        done: Callable[[Any], Message] | None = None,
        failed: Callable[[BaseException], Message] | None = None,
        tells: tuple[type[BaseException], ...] = (),
        records: bool = True,
    ) -> Job:
        """Queue ``fn`` for the store thread; ``reply_to`` gets ``done(result)``.

        When ``fn`` raises, ``reply_to`` gets ``failed(error)`` (if given) and the app
        says what was not recorded, unless the error is one of ``tells``: the asker
        says those itself. See :class:`playbook.tui.messages.Job`.
        """
        job = Job(label, fn, reply_to, done, failed, tells, records)
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
        job = message.job
        if job.reply_to is not None and job.done is not None:
            job.reply_to.post_message(job.done(message.result))

    def on_job_failed(self, message: JobFailed) -> None:
        self.pending_jobs -= 1
        job, error = message.job, message.error
        if job.reply_to is not None and job.failed is not None:
            job.reply_to.post_message(job.failed(error))
        if isinstance(error, job.tells):
            return  # the asker says it all
        if isinstance(error, StaleChange) and redo_on_current(job, error) is not None:
            self.push_screen(StaleChangeDialog(job, error))  # who set what; redo on it
            return
        if isinstance(error, PlaybookError):
            text = error.title + (f"\n{error.message}" if error.message else "")
        else:
            from playbook.redaction import scrub  # a driver's message may quote a secret

            text = scrub(f"{job.label} failed: {type(error).__name__}: {error}")
        title = "Not recorded" if job.records else f"{job.label} failed"
        self.notify(text, title=title, severity="error", timeout=10, markup=False)

    # ------------------------------------------------------------------ lifecycle

    def on_mount(self) -> None:
        self._store_worker()
        self.screen_change_signal.subscribe(self, self._screen_changed)
        self.push_screen(StartScreen())
        if self.resume:
            ref = self.resume
            self.submit(
                "resume",
                lambda: self.service.resolve_id(ref),
                self,
                IncidentFound,
                IncidentNotFound,
            )
        self.check_size()

    def on_incident_found(self, message: IncidentFound) -> None:
        if self.drill is not None and self.drill_incident == self.resume:
            self.drill_incident = message.incident_id
        self.push_screen(IncidentScreen(message.incident_id))

    def on_incident_not_found(self, _message: IncidentNotFound) -> None:
        self.resume = None  # the app has said why; the incident list is what remains

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
            # the import itself runs here, off the loop
            from playbook.adapters.plugins import load_playbook as load

            return load(path)

        self.submit("load playbook", load, self, PlaybookLoaded, PlaybookNotLoaded, records=False)

    _playbook_queued = False

    def on_playbook_loaded(self, message: PlaybookLoaded) -> None:
        self.playbook = message.loaded
        # Start-up is over: what exists now (Textual, the model classes) lives as long as
        # the app. Keep it out of every later full collection.
        gc.freeze()
        self._playbook_ready()

    def on_playbook_not_loaded(self, message: PlaybookNotLoaded) -> None:
        self.playbook_problem = str(message.error)
        self._playbook_ready()

    def _playbook_ready(self) -> None:
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
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def action_note(self) -> None:
        incident = self.current_incident()
        if incident is None:
            self.notify("Open an incident first; notes belong to an incident.", markup=False)
            return
        # The dialog returns the incident as recorded; the incident screen shows it.
        self.push_screen(NoteDialog(incident.incident_id), incident.show_recorded)

    def sandbox_for(self, incident_id: str) -> DrillRun | None:
        """The drill's sandbox when it was made for ``incident_id``, else None."""
        if self.drill is not None and incident_id == self.drill_incident:
            return self.drill
        return None

    def targets(
        self, playbook_path: Path | None, state: IncidentState | None = None
    ) -> Mapping[str, Target]:
        """The targets ``state``'s incident may reach, as the service decides it (a drill:
        its sandbox only); a bad configuration raises UsageError."""
        known = self.service.targets_for(
            state,
            self.target_overrides,
            self.drill,
            serves=self.drill_incident,
            playbook_path=playbook_path,
        )
        for notice in known.notices:  # loaded on the store thread: post, never touch the UI
            self.post_message(ConfigIgnored(notice))
        return known

    def on_config_ignored(self, message: ConfigIgnored) -> None:
        if message.notice not in self._notices_shown:  # said once per run of the app
            self._notices_shown.add(message.notice)
            self.notify(
                message.notice, title="Ignored", severity="warning", timeout=15, markup=False
            )

    def current_incident(self) -> IncidentScreen | None:
        """The incident screen under whatever is on top (None outside an incident)."""
        for screen in reversed(self.screen_stack):
            if isinstance(screen, IncidentScreen):
                return screen
        return None

    def shown_state(self) -> IncidentState | None:
        """The incident under the screens on top (None outside an incident)."""
        incident = self.current_incident()
        return incident.state if incident is not None else None

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        incident = self.current_incident()
        if incident is None:
            if self.drill is None:
                yield from start_commands(self.new_incident)
            return
        yield from incident.palette_commands()

    def new_incident(self) -> None:
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
