"""The contract between playbook and a back end that runs diagnostics.

An adapter turns one diagnostic's query (already checked and with its parameters in
place) into rows and numbers. It does not decide verdicts, write events or touch the
screen: :mod:`playbook.service` does that with what the adapter returns.

Three things every adapter honours, because a responder depends on them:

* **Read only.** :meth:`Adapter.check` refuses, before anything is sent, a query that
  could write, run code or block the server. A diagnostic marked ``writes`` never
  reaches an adapter at all.
* **Bounded.** :class:`RunContext` carries the run's deadline and its cancel switch. An
  adapter calls :meth:`RunContext.check` between round trips and registers, with
  :meth:`RunContext.on_stop`, a way to close its connection, so that a call blocked on a
  silent server ends at the deadline or at cancel rather than at the driver's own
  timeout.
* **Streamed.** Rows go to :class:`Sink` one at a time; it writes them all to the
  result file and keeps only the first few in memory. In evidence, every secret the
  process knows (:mod:`playbook.redaction`) is masked in them on the way.

Adapters are found through the ``playbook.adapters`` entry-point group; the built-in
ones (``redis``, ``mongo``, ``postgres``, ``http``, ``shell``) are registered there like
any third-party one. Each also says what a playbook may write for its kind
(:attr:`Adapter.query_model` or :attr:`Adapter.diagnostic_model`, and
:attr:`Adapter.action_model`): the playbook model, ``playbook validate`` and
``playbook schema`` are assembled from the installed adapters
(:func:`playbook.adapters.plugins.playbook_model`).

So an adapter's module is imported whenever a playbook is read, not only when one of its
diagnostics runs: it must import its driver inside :meth:`Adapter.run`, not at the top
(a driver costs tens of milliseconds on every command otherwise).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, ClassVar

from playbook.core.durations import MAX_RUN_SECONDS, MIN_RUN_SECONDS, clamp_seconds
from playbook.core.text import first_unpaired, unpaired_json_escaped
from playbook.errors import ExitCode, PlaybookError
from playbook.redaction import scrub_json_bytes

if TYPE_CHECKING:  # pydantic is imported when the playbook model is built, not here
    from pydantic import BaseModel

    from playbook.core.model import ActionBase, DiagnosticBase

ROWS_KEPT = 20
"""Rows kept in memory (and in the event) from a result; the file has them all."""
KEPT_WHOLE = 64 * 1024
"""A kept row whose line is longer than this is kept cut down (as the event would cut it),
so twenty rows of a few MB each are not held for the whole run."""


class RunError(PlaybookError):
    """A diagnostic run failed; the title says why in words a responder can act on."""

    exit_code = ExitCode.RUN_FAILED


class Refused(PlaybookError):
    """The query would write, run code, or is not a known read: nothing was sent."""

    exit_code = ExitCode.REFUSED


class DeadlineExceeded(RunError):
    """The run's deadline passed; what was collected so far is kept as partial."""


class Cancelled(RunError):
    """The responder cancelled the run."""


@dataclass(frozen=True)
class Progress:
    """How far a run has got: ``done`` of ``total`` (None when unknown) ``unit``."""

    done: int
    total: int | None
    unit: str

    def describe(self) -> str:
        if self.total:
            share = min(100, self.done * 100 // max(1, self.total))
            return f"{self.done:,} of ~{self.total:,} {self.unit} ({share} %)"
        return f"{self.done:,} {self.unit}"


class RunContext:
    """The deadline, cancel switch and progress line of one run.

    A watchdog fires at the deadline and calls every function registered with
    :meth:`on_stop` (an adapter closes its connection there), so a read blocked on a
    silent server returns at once; :meth:`cancel` does the same from another thread.

    Both timeouts are clamped to at most :data:`~playbook.core.durations.MAX_RUN_SECONDS`
    whatever the caller asked: ``validate`` refuses longer ones, but a parameter or an
    old incident's snapshot could still carry one, and a ``threading.Timer`` given
    ``99999999999999d`` dies with an OverflowError in its own thread, leaving the run with
    no watchdog at all.
    """

    def __init__(
        self,
        timeout: float,
        connect_timeout: float,
        progress: Callable[[Progress], None] | None = None,
    ) -> None:
        timeout = clamp_seconds(float(timeout), MAX_RUN_SECONDS, MIN_RUN_SECONDS)
        connect_timeout = clamp_seconds(float(connect_timeout), timeout, MIN_RUN_SECONDS)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.started = time.monotonic()
        self.deadline = self.started + timeout
        self._progress = progress
        self._stoppers: list[Callable[[], None]] = []
        self._lock = threading.Lock()
        self._why: str | None = None
        self._connected = False
        self._last_report = 0.0
        self._timer = threading.Timer(timeout, self._stop, args=("deadline",))
        self._timer.daemon = True
        self._timer.start()
        self._connect_timer = threading.Timer(self.connect_timeout, self._stop, args=("connect",))
        self._connect_timer.daemon = True
        self._connect_timer.start()

    # ----------------------------------------------------------------- state

    @property
    def stopped(self) -> str | None:
        """``"deadline"``, ``"connect"``, ``"cancel"`` or ``"lock"`` once stopped, else None."""
        return self._why

    def connected(self) -> None:
        """The server has answered: the connect deadline no longer applies.

        Until an adapter calls this, the run ends at ``connect_timeout``: a server that
        accepts the connection and never answers costs seconds, not the whole deadline.
        """
        self._connected = True
        self._connect_timer.cancel()

    def remaining(self) -> float:
        """Seconds left before the deadline (never below a millisecond)."""
        return max(0.001, self.deadline - time.monotonic())

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def check(self) -> None:
        """Raise if the run was cancelled or is past its deadline.

        Raises:
            Cancelled: the responder cancelled.
            DeadlineExceeded: the deadline has passed.
        """
        if self._why is None and time.monotonic() >= self.deadline:
            self._stop("deadline")
        if self._why is not None:
            raise self.stop_error()

    def stop_error(self) -> RunError:
        """The error that says why the run stopped (call once :attr:`stopped` is set)."""
        if self._why == "cancel":
            return Cancelled("Cancelled by the responder; the result is partial.")
        if self._why == "lock":
            return RunError(
                "The action's lock was lost (it expired and may have been taken): the "
                "stage stopped.",
                "Check who holds it now before running the action again.",
            )
        if self._why == "connect":
            return DeadlineExceeded(
                f"The server did not answer within the connect timeout of "
                f"{self.connect_timeout:g} s.",
                "Check the target's address and that the server is up and not overloaded.",
            )
        return DeadlineExceeded(
            f"The run passed its deadline of {self.timeout:g} s; the result is partial.",
            "Raise the diagnostic's timeout, or narrow its pattern or filter.",
        )

    # -------------------------------------------------------------- controls

    def on_stop(self, stopper: Callable[[], None]) -> None:
        """Call ``stopper`` (e.g. close a socket) when the run is cancelled or times out."""
        with self._lock:
            if self._why is None:
                self._stoppers.append(stopper)
                return
        _quietly(stopper)

    def cancel(self) -> None:
        """Stop the run from another thread; a blocked read returns at once."""
        self._stop("cancel")

    def lock_lost(self) -> None:
        """Stop the run because the lock it works under is no longer held."""
        self._stop("lock")

    def finish(self) -> None:
        """The run is over: the watchdogs stand down."""
        self._timer.cancel()
        self._connect_timer.cancel()

    def _stop(self, why: str) -> None:
        if why == "deadline" and not self._connected:
            # The connect timeout is clamped to the deadline, so when the two are equal
            # both watchdogs fire at once. The server never answered either way: say that,
            # whichever timer the scheduler ran first.
            why = "connect"
        with self._lock:
            if self._why is not None:
                return
            self._why = why
            stoppers, self._stoppers = self._stoppers, []
        for stopper in stoppers:
            _quietly(stopper)

    def progress(self, done: int, total: int | None, unit: str, *, force: bool = False) -> None:
        """Report progress, at most ten times a second unless ``force``."""
        if self._progress is None:
            return
        now = time.monotonic()
        if force or now - self._last_report >= 0.1:
            self._last_report = now
            self._progress(Progress(done, total, unit))


def _quietly(fn: Callable[[], None]) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection may fail; fine
        fn()


class Sink:
    """Where an adapter puts its rows: all to a JSON Lines file, the first few in memory.

    The file's SHA-256 is computed as it is written, so the evidence can name it
    without reading the file again.

    With ``redact=True`` (evidence: it is shown and exported) every secret the process
    knows is masked in the rows (:func:`playbook.redaction.scrub_json_bytes`), and a lone
    surrogate in a row (an HTTP endpoint's ``"\\ud800"``) is written as its six-character
    escape, as the event records it, so the file is UTF-8 text. A guarded action's backup
    leaves both off: it is the data itself, restored byte for byte by a rollback, and a
    value that happens to equal a secret must come back as it was.
    """

    def __init__(self, path: Path | None, keep: int = ROWS_KEPT, *, redact: bool = False) -> None:
        self.path = path
        self.keep = keep
        self._clean = scrub_json_bytes if redact else _as_is
        self._evidence = redact
        self.rows: list[Any] = []
        self.count = 0
        self._hash = hashlib.sha256()
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "xb")  # noqa: SIM115 - closed by close()

    def add(self, row: Any) -> None:
        """One row (JSON-ready: str, numbers, bools, None, lists and dicts of those)."""
        try:
            line = _dumps(row)
        except ValueError:  # a NaN or an infinity: JSON has neither
            if not self._evidence:  # a backup is restored as it is: no quiet change
                raise RunError(
                    "A row holds a number that is not finite (NaN or infinity), which a "
                    "backup file (JSON) cannot hold; nothing more was backed up."
                ) from None
            line = _dumps(_finite(row))  # evidence: written as its text ("inf")
        self.add_line(line, row)

    def add_line(self, line: str, row: Any = None) -> None:
        """A row already encoded as one line of JSON (the fast path for big results)."""
        if self._evidence and first_unpaired(line) is not None:
            # Outside its strings JSON is ASCII, so each surrogate is inside a string:
            # ``\\ud800`` there reads back as the six characters the event shows.
            line = unpaired_json_escaped(line)
            row = None  # keep what the file says
        data = line.encode("utf-8", "surrogatepass")
        clean = self._clean(data)  # a secret a row quotes never reaches the evidence
        if self.count < self.keep:
            self.rows.append(_kept(clean) if row is None or clean is not data else row)
        self.count += 1
        if self._file is not None:
            self._hash.update(clean)
            self._hash.update(b"\n")
            self._file.write(clean)
            self._file.write(b"\n")

    def add_bytes(self, line: bytes) -> None:
        """A row already encoded as one line of UTF-8 JSON, without its newline."""
        line = self._clean(line)
        if self.count < self.keep:
            self.rows.append(_kept(line))
        self.count += 1
        if self._file is not None:
            self._hash.update(line)
            self._hash.update(b"\n")
            self._file.write(line)
            self._file.write(b"\n")

    def add_block(self, block: bytes, rows: int) -> None:
        """``rows`` rows already encoded as UTF-8 JSON lines joined by newlines."""
        if not rows:
            return
        block = self._clean(block)
        room = self.keep - self.count
        if room > 0:
            self.rows.extend(json.loads(line) for line in block.split(b"\n", room)[:room])
        self.count += rows
        if self._file is not None:
            self._hash.update(block)
            self._hash.update(b"\n")
            self._file.write(block)
            self._file.write(b"\n")

    def add_parts(self, parts: Iterable[bytes], row: Any) -> None:
        """One row too large to hold: its line (UTF-8 JSON, no newline) written to the file
        as ``parts`` produces it; memory keeps ``row`` (a stub saying what it was).

        If ``parts`` raises (the deadline, a cancel, a dropped connection), the unfinished
        line is cut off the file and out of the hash again, so a partial result is still
        whole lines; the error propagates.
        """
        start = self._file.tell() if self._file is not None else 0
        hashed = self._hash.copy()
        try:
            for raw in parts:
                # Each part is cleaned on its own: a secret split across two parts is
                # missed, but a streamed part is base64 of a value, not quoted text.
                part = self._clean(raw)
                if self._file is not None:
                    self._hash.update(part)
                    self._file.write(part)
            if self._file is not None:
                self._hash.update(b"\n")
                self._file.write(b"\n")
        except BaseException:
            if self._file is not None:
                self._file.flush()
                self._file.truncate(start)
                self._file.seek(start)
            self._hash = hashed
            raise
        if self.count < self.keep:
            self.rows.append(row)
        self.count += 1

    def close(self) -> str | None:
        """Flush and fsync the file; its SHA-256 (None when there is no file)."""
        if self._file is None:
            return None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        return self._hash.hexdigest()


def _kept(line: str | bytes) -> Any:
    """A row to keep in memory from its line: whole, or cut down when the line is long."""
    row = json.loads(line)
    if len(line) > KEPT_WHOLE:
        from playbook.core.evidence import cap

        return cap(row)
    return row


def _as_is(data: bytes) -> bytes:
    return data


def _dumps(value: Any) -> str:
    """One JSON line; raises ValueError for a NaN or an infinity, which Python would
    otherwise write as ``NaN``/``Infinity``: no JSON, and unreadable by other tools."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), default=str, allow_nan=False
    )


def _finite(value: Any) -> Any:
    """``value`` with each float that is no finite number written as its text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


@dataclass
class RunRequest:
    """What an adapter is asked to run."""

    diagnostic_id: str
    query: dict[str, Any]
    """The query with parameters in place (for `shell`: ``{"argv": [...]}``)."""
    uri: str
    """The target's URI. Never log it or put it in an error: use :func:`scrub`."""
    limit: int = 1000
    """Most rows a query may return."""
    options: Mapping[str, Any] = field(default_factory=dict)


class Adapter(ABC):
    """A back end that runs diagnostics of one ``kind``.

    Subclasses set :attr:`kind`, say what a diagnostic of their kind holds
    (:attr:`query_model`, or :attr:`diagnostic_model`) and implement :meth:`check` and
    :meth:`run`. Construct without arguments; hold no connection between runs.
    """

    kind: ClassVar[str]
    """The diagnostic kind this adapter runs, as written in playbooks (``redis``). The
    name it is registered under in the entry-point group is the one that counts."""
    description: ClassVar[str] = ""
    """One line saying what it reads; the JSON Schema's description of a diagnostic
    built from :attr:`query_model`."""

    query_model: ClassVar[type[BaseModel] | None] = None
    """The shape of ``query:`` in a diagnostic of this kind, as a pydantic model. Subclass
    :class:`playbook.core.model.Model` to get the playbook's strictness (unknown keys
    refused, ``"1"`` not taken for 1); a value may be ``{$param: name}`` where the
    field's type allows :class:`playbook.core.model.ParamRef`. The playbook model adds
    the fields every diagnostic has (title, target, params, expect, timeouts, …) and
    ``kind`` (:func:`playbook.core.model.diagnostic_model`). :attr:`RunRequest.query` is
    this block, parameters in place."""
    diagnostic_model: ClassVar[type[BaseModel] | None] = None
    """The whole model of a diagnostic of this kind, when a query model is not enough (the
    built-in kinds keep their documented names, and may check across fields with
    :meth:`~playbook.core.model.DiagnosticBase.problems`): a subclass of
    :class:`playbook.core.model.DiagnosticBase` declaring ``kind: Literal["<kind>"]`` and
    ``query:``, the block :attr:`RunRequest.query` holds. Takes precedence over
    :attr:`query_model`. (Only the built-in shell kind puts its fields beside the common
    ones, ``argv:`` rather than ``query: {argv:}``; the service knows that one.)"""
    schemes: ClassVar[frozenset[str] | None] = None
    """The target URI schemes this kind can honour (``{"redis", "rediss", "unix"}``), lower
    case; ``""`` stands for a URI without one (libpq's ``host=… dbname=…``). A target
    of any other scheme is refused before anything runs, by
    :func:`playbook.targets.check_scheme`, so nothing silently runs somewhere else (a
    shell diagnostic given ``redis://`` used to run locally). None: the adapter checks
    its targets itself (a third-party adapter written before this existed)."""
    action_model: ClassVar[type[BaseModel] | None] = None
    """The model of a guarded action of this kind, or None when it has none: a subclass of
    :class:`playbook.core.model.ActionBase` declaring ``kind: Literal["<kind>"]`` and
    ``do:`` (a union of operations discriminated by ``operation``). It counts only while
    a writer for the kind is installed (the ``playbook.writers`` group)."""

    @classmethod
    def diagnostic_shape(cls, kind: str) -> type[DiagnosticBase] | None:
        """The model a playbook's diagnostic of this kind is validated against.

        Args:
            kind: the name this adapter is registered under, which playbooks write as
                the diagnostic's ``kind``.

        Returns:
            :attr:`diagnostic_model`, else :attr:`query_model` with the common fields
            added; None when the adapter declares neither (its kind cannot be used in a
            playbook then).

        Raises:
            TypeError: the model declares another kind, or is not a diagnostic model.
        """
        from playbook.core.model import DiagnosticBase, diagnostic_model, kind_of

        if cls.diagnostic_model is not None:
            shape = cls.diagnostic_model
            if not issubclass(shape, DiagnosticBase):
                raise TypeError(f"{shape.__name__} is not a DiagnosticBase subclass")
        elif cls.query_model is not None:
            shape = diagnostic_model(kind, cls.query_model, cls.description)
        else:
            return None
        if kind_of(shape) != kind:
            raise TypeError(f"{shape.__name__} declares kind {kind_of(shape)!r}, not {kind!r}")
        return shape

    @classmethod
    def action_shape(cls, kind: str) -> type[ActionBase] | None:
        """The model a playbook's guarded action of this kind is validated against.

        Args:
            kind: the name this adapter (and its writer) is registered under.

        Returns:
            :attr:`action_model`, or None when the kind has no actions.

        Raises:
            TypeError: the model declares another kind, or is not an action model.
        """
        from playbook.core.model import ActionBase, kind_of

        shape = cls.action_model
        if shape is None:
            return None
        if not issubclass(shape, ActionBase):
            raise TypeError(f"{shape.__name__} is not an ActionBase subclass")
        if kind_of(shape) != kind:
            raise TypeError(f"{shape.__name__} declares kind {kind_of(shape)!r}, not {kind!r}")
        return shape

    @abstractmethod
    def check(self, request: RunRequest) -> None:
        """Refuse, before connecting, a query that could write, run code or block.

        Raises:
            Refused: with the reason; nothing was sent.
        """

    @abstractmethod
    def run(self, request: RunRequest, ctx: RunContext, sink: Sink) -> dict[str, Any]:
        """Run the query, streaming rows into ``sink``; return the run's numbers.

        The numbers (``count``, ``age_seconds``, ``drop_percent``, …) are what the
        diagnostic's expectations are checked against.

        Raises:
            RunError: the back end could not be reached or answered with an error;
                its message must not contain the URI (use :func:`scrub`).
            Cancelled | DeadlineExceeded: from :meth:`RunContext.check`.
        """


def scrub(text: str, uri: str) -> str:
    """``text`` with the URI shown redacted and every known secret replaced by ``***``
    (:func:`playbook.redaction.scrub`: the one redaction, here for adapters)."""
    from playbook.redaction import scrub as scrub_text

    return scrub_text(text, uri)
