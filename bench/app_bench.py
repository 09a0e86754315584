"""How fast the app feels: start-up, keys under a busy store thread, a 10,000-event timeline.

Run it with ``python bench/app_bench.py`` (``--help`` for options). It prints figures and
never fails a build: bench/ is not part of the test run. bench/README.md says what each
figure means and how it is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import gc
import os
import platform
import pty
import select
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import textual
from figures import Figure  # bench/figures.py: this script's folder is on the path
from textual import events
from textual._compositor import ChopsUpdate, CompositorUpdate, LayoutUpdate
from textual.geometry import Region
from textual.screen import Screen
from textual.widgets import OptionList

from playbook.adapters.plugins import load_playbook as load
from playbook.core import events as ev
from playbook.core.clock import SteadyClock
from playbook.core.events import NewEvent
from playbook.service import Service
from playbook.store.sqlite import SQLiteStore
from playbook.tui.app import PlaybookApp
from playbook.tui.messages import JobDone
from playbook.tui.screens.incident import IncidentScreen
from playbook.tui.screens.timeline import TimelineScreen

ROOT = Path(__file__).resolve().parent.parent
RUNBOOK = ROOT / "runbooks" / "data-integrity.yaml"
PLAYBOOK_BIN = Path(sys.executable).with_name("playbook")
SIZE = (80, 24)
FIRST_FRAME_TEXT = b"New incident"
"""The start screen's first option: once it is on the terminal, the app can be used."""

TARGET_STARTUP = 1.0
TARGET_KEY = 0.050
TARGET_FRAME = 0.100
WAIT = 15.0
"""Longest wait for any one frame before the sample is recorded as a timeout."""


# ================================================================================ helpers


def ms(seconds: float) -> str:
    return "timeout" if seconds == float("inf") else f"{seconds * 1000:.1f} ms"


def secs(seconds: float) -> str:
    return "timeout" if seconds == float("inf") else f"{seconds:.3f} s"


def touches(update: CompositorUpdate, region: Region) -> bool:
    """Whether a frame written to the terminal repaints any cell of ``region``."""
    if isinstance(update, LayoutUpdate):
        return update.region.overlaps(region)
    if isinstance(update, ChopsUpdate):
        return any(
            region.y <= y < region.bottom and x1 < region.right and x2 >= region.x
            for y, x1, x2 in update.spans
        )
    return True


# ================================================================================ 1. start-up


@dataclass
class StartupRun:
    alt_screen: float = float("inf")
    first_frame: float = float("inf")
    exit_code: int | None = None
    killed: bool = False


def child_env(home: Path, cache: Path | None) -> dict[str, str]:
    """The environment of `playbook run`: this one, or this one with a bytecode cache.

    With ``cache``, Python may write .pyc files (under ``cache``, never beside the
    sources), as it does for an installed package; without, it runs as this shell does.
    """
    env = {**os.environ, "PLAYBOOK_HOME": str(home), "TERM": "xterm-256color"}
    for name in ("COLUMNS", "LINES", "TEXTUAL", "TEXTUAL_DRIVER"):
        env.pop(name, None)
    if cache is not None:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def launch_once(env: dict[str, str]) -> StartupRun:
    """``playbook run`` in a fresh 80×24 pseudo-terminal, until "New incident" is drawn."""
    run = StartupRun()
    started = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: size the terminal it was given, then become `playbook run`
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", SIZE[1], SIZE[0], 0, 0))
            os.execve(PLAYBOOK_BIN, [str(PLAYBOOK_BIN), "run"], env)
        finally:
            os._exit(127)
    output = b""
    try:
        while time.perf_counter() - started < WAIT:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:
                break  # the child closed the terminal
            if not data:
                break
            now = time.perf_counter() - started
            output += data
            if b"\x1b[?1049h" in output:  # Textual switched to the alternate screen
                run.alt_screen = min(run.alt_screen, now)
            if FIRST_FRAME_TEXT in output:
                run.first_frame = now
                break
        run.exit_code, run.killed = _quit(pid, fd)
    finally:
        os.close(fd)
    return run


def _quit(pid: int, fd: int) -> tuple[int | None, bool]:
    """Press q, drain the terminal, and reap the child (killing it after 5 s)."""
    with contextlib.suppress(OSError):
        os.write(fd, b"q")
    deadline = time.perf_counter() + 5.0
    while time.perf_counter() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            with contextlib.suppress(OSError):
                os.read(fd, 65536)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), True


def import_cost(env: dict[str, str]) -> tuple[float, float]:
    """Seconds to import the CLI, then the app and its screens, in a fresh interpreter."""
    code = (
        "import time\n"
        "t0 = time.perf_counter()\n"
        "import playbook.cli\n"
        "t1 = time.perf_counter()\n"
        "import playbook.tui.app, playbook.tui.screens.start\n"
        "t2 = time.perf_counter()\n"
        "print(t1 - t0, t2 - t1)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    cli, app = (float(x) for x in out.split())
    return cli, app


def bench_startup(runs: int) -> list[Figure]:
    print(f"\n[1] `playbook run` to first frame: real pty {SIZE[0]}x{SIZE[1]}, {runs} runs each")
    home = Path(tempfile.mkdtemp(prefix="playbook-bench-home-"))
    cache = Path(tempfile.mkdtemp(prefix="playbook-bench-pycache-"))
    modes = {"as is": child_env(home, None), ".pyc cached": child_env(home, cache)}
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        print(
            "  this shell sets PYTHONDONTWRITEBYTECODE, so 'as is' compiles playbook's own "
            "modules (an editable install, no .pyc) on every start; '.pyc cached' lets "
            "Python keep .pyc files in a temporary PYTHONPYCACHEPREFIX, as an installed "
            "package has them"
        )
    results: dict[str, list[StartupRun]] = {mode: [] for mode in modes}
    try:
        SQLiteStore(home).close()  # an existing (empty) log, as on any run after the first
        print("  one warm-up run per mode (not counted: fills the OS file cache and .pyc files)")
        for env in modes.values():
            launch_once(env)
        for i in range(runs):
            for mode, env in modes.items():  # interleaved, so a load spike hits both
                run = launch_once(env)
                results[mode].append(run)
                print(
                    f"  run {i + 1} {mode:>10}: alternate screen {secs(run.alt_screen)}, "
                    f"first frame {secs(run.first_frame)}; "
                    f"exit {run.exit_code}{' (killed)' if run.killed else ' after q'}"
                )
        for mode, env in modes.items():
            imports = [import_cost(env) for _ in range(3)]
            cli = statistics.median(i[0] for i in imports)
            app = statistics.median(i[1] for i in imports)
            rest = statistics.median(r.first_frame - r.alt_screen for r in results[mode])
            print(
                f"  where it goes ({mode}): import playbook.cli {ms(cli)}, then "
                f"playbook.tui.app + screens {ms(app)} (median of 3 fresh interpreters); "
                f"alternate screen -> first frame (mount, incident list read on the store "
                f"thread, first paint) {ms(rest)}"
            )
    finally:
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(cache, ignore_errors=True)
    figures = []
    for mode, samples in results.items():
        figures += [
            Figure(
                f"startup, {mode}: run -> first frame",
                [r.first_frame for r in samples],
                TARGET_STARTUP,
                secs,
            ),
            Figure(
                f"startup, {mode}: run -> alt. screen",
                [r.alt_screen for r in samples],
                None,
                secs,
            ),
        ]
    return figures


# ================================================================================ headless app


class BenchApp(PlaybookApp):
    """The app, unchanged, with a probe on every frame it writes.

    ``App._display`` is where Textual hands each compositor update to the driver. Headless
    it writes nothing, so the probe also encodes the update to terminal bytes, the work a
    real terminal would cost, before it stamps the frame.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.jobs_done: list[tuple[str, float]] = []
        self._expect: tuple[Callable[[CompositorUpdate], bool], asyncio.Future[float]] | None = None

    def expect(self, predicate: Callable[[CompositorUpdate], bool]) -> asyncio.Future[float]:
        """A future that gets the time of the first frame from now on that ``predicate`` accepts."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._expect = (predicate, future)
        return future

    def _display(self, screen: Screen[Any], renderable: Any) -> None:
        super()._display(screen, renderable)
        if renderable is None or self._batch_count or not self._running:
            return
        if isinstance(renderable, CompositorUpdate):
            renderable.render_segments(self.console)
        now = time.perf_counter()
        if self._expect is not None:
            predicate, future = self._expect
            if (
                not future.done()
                and isinstance(renderable, CompositorUpdate)
                and predicate(renderable)
            ):
                future.set_result(now)
                self._expect = None

    def on_job_done(self, message: JobDone) -> None:
        # Textual calls every class's own handler along the MRO, so PlaybookApp's runs
        # after this one by itself; calling super() here would run the job's on_done twice.
        self.jobs_done.append((message.job.label, time.perf_counter()))


@dataclass
class PaintCost:
    """Durations of Screen._on_timer_update: layout + compositor for one frame."""

    samples: list[tuple[float, float]] = field(default_factory=list)

    def worst_between(self, start: float, end: float) -> float:
        return max((d for t, d in self.samples if start <= t <= end), default=0.0)


@contextlib.contextmanager
def paint_cost() -> Iterator[PaintCost]:
    """Time every screen update (the bench process only; Textual is restored afterwards)."""
    cost = PaintCost()
    original = Screen._on_timer_update

    def timed(self: Screen[Any]) -> None:
        start = time.perf_counter()
        original(self)
        cost.samples.append((start, time.perf_counter() - start))

    Screen._on_timer_update = timed  # type: ignore[method-assign]
    try:
        yield cost
    finally:
        Screen._on_timer_update = original  # type: ignore[method-assign]


class LoopLag:
    """Asks the event loop for a 5 ms nap, over and over; oversleeping is a stall."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.005)
            now = time.perf_counter()
            self.samples.append((now, now - start - 0.005))

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def worst_between(self, start: float, end: float) -> float:
        """The longest stall that overlaps ``start``..``end``."""
        return max(
            (lag for t, lag in self.samples if t >= start and t - lag - 0.005 <= end),
            default=0.0,
        )


class GcWatch:
    """Every pause of Python's cyclic garbage collector: (start, seconds, generation)."""

    def __init__(self) -> None:
        self.pauses: list[tuple[float, float, int]] = []
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            now = time.perf_counter()
            self.pauses.append((self._started, now - self._started, info["generation"]))

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self._callback)

    def between(self, start: float, end: float) -> list[tuple[float, float, int]]:
        return [p for p in self.pauses if p[0] + p[1] >= start and p[0] <= end]


def explain(app: BenchApp, gcw: GcWatch, sent: float, latency: float) -> str:
    """What else happened between a key and its frame: GC pauses, store jobs landing."""
    end = sent + latency
    parts = [
        f"gen-{gen} GC {seconds * 1000:.0f} ms"
        for _, seconds, gen in gcw.between(sent, end)
        if seconds >= 0.005
    ]
    jobs = [label for label, t in app.jobs_done if sent <= t <= end]
    if jobs:
        parts.append("store job(s) landed: " + ", ".join(sorted(set(jobs))))
    return "; ".join(parts) or "no GC pause >= 5 ms and no store job landed meanwhile"


def send_key(app: PlaybookApp, key: str) -> float:
    """Hand a key to the app the way its driver does; returns when it was sent.

    ``Pilot.press`` does the same and then waits for the app to go idle; the bench does
    not wait on it, it waits for the frame.
    """
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    sent = time.perf_counter()
    assert app._driver is not None
    app._driver.send_message(event)
    return sent


async def key_to_frame(
    app: BenchApp, key: str, predicate: Callable[[CompositorUpdate], bool]
) -> tuple[float, float]:
    """Press ``key``; (when it was sent, seconds until a frame that ``predicate`` accepts)."""
    future = app.expect(predicate)
    sent = send_key(app, key)
    try:
        drawn = await asyncio.wait_for(future, WAIT)
    except TimeoutError:
        return sent, float("inf")
    return sent, drawn - sent


async def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while not condition():
        if time.perf_counter() > deadline:
            raise TimeoutError("the app never reached the expected state")
        await asyncio.sleep(0.01)


def make_incident(data_dir: Path, notes: int) -> tuple[Service, str]:
    """An incident on the data-integrity playbook, with ``notes`` notes, in SQLite."""
    loaded = load(RUNBOOK)
    store = SQLiteStore(data_dir)
    service = Service(store, actor="bench")
    state = service.open(loaded, "Bench: orders missing since 02:10")
    if notes:
        start = datetime.now(UTC)
        batch = [
            NewEvent(
                ev.NOTE_ADDED,
                {"text": f"Note {i}: replica lag {i % 97} s on shard {i % 12}; still checking."},
                "bench",
                start + timedelta(milliseconds=i),
            )
            for i in range(notes)
        ]
        store.append(state.id, state.last_seq, batch)  # one transaction, not 10,000 fsyncs
    service.clock = SteadyClock()  # as run_app does
    return service, state.id


async def open_incident(app: BenchApp) -> IncidentScreen:
    await wait_until(
        lambda: (
            isinstance(app.screen, IncidentScreen)
            and app.screen.state is not None
            and app.screen.query_one("#checklist", OptionList).option_count > 1
        )
    )
    screen = app.screen
    assert isinstance(screen, IncidentScreen)
    return screen


# ================================================================================ 2. keys


async def press_series(
    app: BenchApp, checklist: OptionList, presses: int, gap: float
) -> list[tuple[float, float]]:
    """Move the checklist highlight ``presses`` times; (sent, latency) for each."""
    results = []
    for _ in range(presses):
        current = checklist.highlighted or 0
        key, target = ("down", current + 1)
        if target >= checklist.option_count:
            key, target = ("up", current - 1)
        region = checklist.region

        def drawn(update: CompositorUpdate, target: int = target, region: Region = region) -> bool:
            return checklist.highlighted == target and touches(update, region)

        results.append(await key_to_frame(app, key, drawn))
        await asyncio.sleep(gap)
    return results


async def bench_keys_async(rounds: int, presses: int) -> list[Figure]:
    print(
        f"\n[2] keypress -> repaint on the checklist, headless {SIZE[0]}x{SIZE[1]}, SQLite; "
        f"{rounds} rounds of {presses} presses without, then with, a 2 s job on the store thread"
    )
    gap = 0.12
    with (
        tempfile.TemporaryDirectory(prefix="playbook-bench-keys-") as tmp,
        GcWatch() as gcw,
    ):
        service, incident_id = make_incident(Path(tmp), notes=0)
        app = BenchApp(service, load(RUNBOOK), incident_id)
        lag = LoopLag()
        async with app.run_test(size=SIZE) as pilot:
            screen = await open_incident(app)
            checklist = screen.query_one("#checklist", OptionList)
            checklist.focus()
            await pilot.pause()
            lag.start()

            baseline: list[tuple[float, float]] = []
            for r in range(rounds):
                series = await press_series(app, checklist, presses, gap)
                baseline += series
                print(
                    f"  baseline round {r + 1}: "
                    f"{', '.join(f'{lat * 1000:.0f}' for _, lat in series)} ms"
                )

            blocked: list[tuple[float, float]] = []
            outside = 0
            worst_stall = 0.0
            for r in range(rounds):
                span: dict[str, float] = {}

                def block(span: dict[str, float] = span) -> None:
                    span["start"] = time.perf_counter()
                    time.sleep(2.0)
                    span["end"] = time.perf_counter()

                app.submit("block", block)
                await wait_until(lambda span=span: "start" in span, 10.0)
                series = await press_series(app, checklist, presses, gap)
                await wait_until(lambda span=span: "end" in span, 10.0)
                start, end = span["start"], span["end"]
                outside += sum(1 for sent, lat in series if sent < start or sent + lat > end)
                blocked += series
                worst_stall = max(worst_stall, lag.worst_between(start, end))
                first, last = series[0][0], series[-1][0] + series[-1][1]
                print(
                    f"  job round {r + 1}: job ran {end - start:.3f} s (store thread); presses "
                    f"+{first - start:.3f} s .. +{last - start:.3f} s into it: "
                    f"{', '.join(f'{lat * 1000:.0f}' for _, lat in series)} ms"
                )
            await lag.stop()
        service.store.close()
        inside = len(blocked) - outside
        print(
            f"  {inside}/{len(blocked)} presses were sent and repainted while the job ran; "
            f"worst event-loop stall during the jobs {ms(worst_stall)}"
        )
        for name, series in (("baseline", baseline), ("with job", blocked)):
            sent, lat = max(series, key=lambda s: s[1])
            print(f"  slowest {name} press ({ms(lat)}): {explain(app, gcw, sent, lat)}")
    return [
        Figure("keys: repaint, no job (baseline)", [lat for _, lat in baseline], TARGET_KEY),
        Figure("keys: repaint, 2 s job running", [lat for _, lat in blocked], TARGET_KEY),
    ]


# ================================================================================ 3. timeline


async def scroll_series(
    app: BenchApp, table: Any, keys: list[str], gap: float
) -> list[tuple[float, float]]:
    """Press each key on the timeline table; (sent, latency) until the moved table is drawn."""
    results = []
    for key in keys:
        before = table.cursor_row
        want = {"ctrl+end": table.row_count - 1, "ctrl+home": 0}.get(key)
        region = table.region

        def moved(
            update: CompositorUpdate,
            before: int = before,
            want: int | None = want,
            region: Region = region,
        ) -> bool:
            row = table.cursor_row
            return (row == want if want is not None else row != before) and touches(update, region)

        results.append(await key_to_frame(app, key, moved))
        await asyncio.sleep(gap)
    return results


def timeline_reads(app: BenchApp) -> int:
    return sum(1 for label, _ in app.jobs_done if label == "read timeline")


async def bench_timeline_async(notes: int, rounds: int, pages: int) -> list[Figure]:
    print(
        f"\n[3] timeline of {notes:,} notes (+1 opened event), headless {SIZE[0]}x{SIZE[1]}, "
        f"SQLite; {rounds} rounds of: t, {pages}x pagedown, ctrl+end, ctrl+home, escape"
    )
    gap = 0.08
    rows = notes + 1
    opens: list[float] = []
    settles: list[float] = []
    scrolls: list[tuple[float, float]] = []
    paint_worst: list[float] = []
    stall_scroll: list[float] = []
    stall_open: list[float] = []
    reads_per_open: list[int] = []
    with (
        tempfile.TemporaryDirectory(prefix="playbook-bench-timeline-") as tmp,
        paint_cost() as cost,
        GcWatch() as gcw,
    ):
        built = time.perf_counter()
        service, incident_id = make_incident(Path(tmp), notes=notes)
        print(f"  built the incident in {time.perf_counter() - built:.2f} s")
        app = BenchApp(service, load(RUNBOOK), incident_id)
        lag = LoopLag()
        async with app.run_test(size=SIZE) as pilot:
            loaded = time.perf_counter()
            incident = await open_incident(app)
            print(f"  the incident screen showed it after {time.perf_counter() - loaded:.2f} s")
            await pilot.pause()
            lag.start()
            for r in range(rounds):

                def populated(update: CompositorUpdate) -> bool:
                    screen = app.screen
                    if not isinstance(screen, TimelineScreen):
                        return False
                    table = screen.query_one("#timeline")
                    return table.row_count == rows and touches(update, table.region)

                reads_before = timeline_reads(app)
                sent, opened = await key_to_frame(app, "t", populated)
                opens.append(opened)
                # The screen may load more than once: scroll only once every load is done.
                await wait_until(lambda: app.pending_jobs == 0, 60.0)
                await pilot.pause()
                settled = time.perf_counter()
                settles.append(settled - sent)
                stall_open.append(lag.worst_between(sent, settled))
                reads_per_open.append(timeline_reads(app) - reads_before)
                screen = app.screen
                assert isinstance(screen, TimelineScreen)
                table = screen.query_one("#timeline")

                scroll_start = time.perf_counter()
                series = await scroll_series(
                    app, table, ["pagedown"] * pages + ["ctrl+end", "ctrl+home"], gap
                )
                scroll_end = time.perf_counter()
                scrolls += series
                paint_worst.append(cost.worst_between(scroll_start, scroll_end))
                stall_scroll.append(lag.worst_between(scroll_start, scroll_end))
                gc_worst = max((p[1] for p in gcw.between(sent, scroll_end)), default=0.0)
                print(
                    f"  round {r + 1}: t -> rows drawn {secs(opened)}, settled "
                    f"{secs(settled - sent)} ({reads_per_open[-1]} timeline reads); scroll "
                    f"{', '.join(f'{lat * 1000:.0f}' for _, lat in series)} ms; "
                    f"longest GC pause {ms(gc_worst)}"
                )
                if r == 0:
                    print(
                        f"    (objects tracked by the GC with the timeline open: "
                        f"{len(gc.get_objects()):,})"
                    )
                await key_to_frame(app, "escape", lambda _u: app.screen is incident)
                await wait_until(lambda: app.pending_jobs == 0, 60.0)
                await pilot.pause()
            await lag.stop()
        service.store.close()
        sent, lat = max(scrolls, key=lambda s: s[1])
        print(f"  slowest scroll key ({ms(lat)}): {explain(app, gcw, sent, lat)}")
        big = [p for p in gcw.pauses if p[1] >= 0.05]
        if big:
            print(
                f"  GC pauses >= 50 ms during this part: {len(big)}, longest "
                f"{max(p[1] for p in big) * 1000:.0f} ms"
            )
    if any(n > 1 for n in reads_per_open):
        print(
            f"  note: each open read the events and rebuilt the table {max(reads_per_open)} "
            "times (TimelineScreen.reload runs on mount and again on screen resume)"
        )
    return [
        Figure("timeline: t -> rows drawn", opens, None, secs),
        Figure("timeline: t -> settled (all loads)", settles, None, secs),
        Figure("timeline: loop stall while opening", stall_open, TARGET_FRAME),
        Figure("timeline: scroll key -> repaint", [lat for _, lat in scrolls], TARGET_FRAME),
        Figure("timeline: worst paint while scrolling", paint_worst, None),
        Figure("timeline: loop stall while scrolling", stall_scroll, TARGET_FRAME),
    ]


# ================================================================================ report


def machine() -> str:
    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0))
    load1, load5, _ = os.getloadavg()
    return (
        f"machine: {platform.machine()} {platform.system()} {platform.release()}; nproc {usable} "
        f"(cpu_count {cpus}); load average {load1:.2f} / {load5:.2f} (1 / 5 min)\n"
        f"python {platform.python_version()} ({sys.executable}); textual {textual.__version__}"
    )


def summary(figures: list[Figure]) -> str:
    head = (
        f"{'measurement':<42} {'n':>3} {'median':>10} {'worst':>10} {'target':>9} "
        f"{'med/tgt':>7} {'worst/tgt':>9}  verdict"
    )
    lines = ["", "=" * len(head), "SUMMARY", head, "-" * len(head)]
    for f in figures:
        if f.target is None:
            target, med, worst, verdict = "-", "-", "-", "context"
        else:
            target = f.unit(f.target)
            med, worst = f"{f.median / f.target:.2f}", f"{f.worst / f.target:.2f}"
            verdict = "ok" if f.worst < f.target else "MISSED"
            if verdict == "MISSED" and f.median < f.target:
                verdict = "MISSED (worst only)"
        lines.append(
            f"{f.name:<42} {len(f.samples):>3} {f.unit(f.median):>10} {f.unit(f.worst):>10} "
            f"{target:>9} {med:>7} {worst:>9}  {verdict}"
        )
    lines.append("=" * len(head))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="start-up runs (default 7)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of key presses (3)")
    parser.add_argument("--presses", type=int, default=8, help="presses per round (8)")
    parser.add_argument("--notes", type=int, default=10_000, help="timeline notes (10,000)")
    parser.add_argument("--timeline-rounds", type=int, default=5, help="timeline opens (5)")
    parser.add_argument("--pages", type=int, default=10, help="pagedowns per open (10)")
    parser.add_argument(
        "--only", choices=("startup", "keys", "timeline"), action="append", help="run only these"
    )
    args = parser.parse_args()
    only = set(args.only or ("startup", "keys", "timeline"))

    print("playbook app benchmark")
    print(machine())
    began = time.perf_counter()
    figures: list[Figure] = []
    if "startup" in only:
        figures += bench_startup(args.runs)  # before any thread exists: it forks
    if "keys" in only:
        figures += asyncio.run(bench_keys_async(args.rounds, args.presses))
    if "timeline" in only:
        figures += asyncio.run(bench_timeline_async(args.notes, args.timeline_rounds, args.pages))
    print(summary(figures))
    print(f"(the bench took {time.perf_counter() - began:.0f} s)")


if __name__ == "__main__":
    main()
