"""Guarded actions: the only way `playbook` changes data.

(Over 600 lines: the stages, how each ends (done, failed, cancelled) and the rollback's
rules (nothing written, fingerprints, force) are one state machine, read best in one
place.)

A :class:`GuardedRun` walks one action through its stages, in this order and no other:
dry run, backup, confirmation, lock, apply, verify, and (when apply or verify fails, or
later on request) rollback. Every stage is an ``action_stage`` event in the incident's
timeline, appended and fsynced before the caller hears of it; a stage that writes
records ``started`` before it begins, so a process killed half-way leaves a timeline
that says how far it got.

A rollback never makes things worse. A run that wrote nothing has nothing to roll back
(:class:`NothingToRollBack`): putting its backup over the data now would lose whatever
was written since, which is how seed 002 lost a record. A run that wrote is rolled back
item by item, only where the item is still as the run left it (the apply recorded a
fingerprint of each, ahead of the write, in a file beside the backup); an item changed
since is kept and named. ``force``, confirmed with its own phrase, restores those too.

**Every stage records its end.** A stage ends ``done``, ``failed``, ``refused`` or
``cancelled``; a cancel that arrives between stages is recorded as the next stage,
cancelled before it began, so the timeline never stops at the stage before with a file
or a lock of the next one left behind. A backup that did not finish is deleted: it is
not a backup, and nothing will ever restore from it.

**A surprise is named, not quoted.** An exception playbook does not expect from a writer
or its driver is recorded as a sentence that names the stage and the exception's class:
a responder learns that it is a bug and not their data, and whether anything was
written; the driver's own text (internals, sometimes values) stays out of the timeline.
An exception that follows a cancel, a deadline or a lost lock is that stop, not a
surprise: the connection was closed under the driver on purpose.

The CLI and the app both drive this class; neither talks to a writer directly. A run
gets what it needs and no more: a :class:`StageLog` (the incident's log, to append its
stages to and read them back) and a :data:`VerifyRunner` (to run the verify diagnostics).
It imports nothing else of the service: :mod:`playbook.service.action_runs` builds one
from an incident.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from playbook.adapters.base import (
    Cancelled,
    Progress,
    Refused,
    RunContext,
    RunError,
    Sink,
    scrub,
)
from playbook.adapters.writers import (
    ITEMS_SHOWN,
    BackupMismatch,
    Lock,
    LockHeld,
    Plan,
    Undo,
    Writer,
    WriteRequest,
    Written,
    read_backup,
    read_written_rows,
    wrote_nothing,
)
from playbook.core.diagnostics import ERROR, FAIL, PASS, WARN, substitute
from playbook.core.model import Action
from playbook.core.state import ActionRun, IncidentState
from playbook.core.text import unpaired_escaped
from playbook.errors import Conflict, NotFound, PlaybookError, UsageError
from playbook.redaction import remember_uri, scrub_data
from playbook.targets import Target

_RANK = {PASS: 0, WARN: 1, FAIL: 2, ERROR: 3}

StageHook = Callable[[str, str], None]
"""Called as ``hook(stage, outcome)`` after each stage event is recorded."""

CANCELLED = "Cancelled by the responder."


class Cancellable(Protocol):
    """A verify diagnostic once prepared: what a cancel of the run stops."""

    def cancel(self) -> None: ...


VerifyRunner = Callable[[str, Mapping[str, object], Callable[[Cancellable], None]], dict[str, Any]]
"""Runs ``diagnostic`` with ``params`` on the run's incident and targets, records it, and
returns its evidence payload (see :func:`playbook.service.diagnostics.run_diagnostic`).
It calls its third argument with the prepared run before it starts, so that a cancel of
the action stops the diagnostic that is running."""


class StageLog(Protocol):
    """Where a run's stages go: its incident's log."""

    def append(self, payload: dict[str, Any]) -> IncidentState:
        """Append one ``action_stage`` event (fsynced before it returns); the state after."""
        ...

    def read(self) -> IncidentState:
        """The incident as recorded now (another process may have appended since)."""
        ...


class ConfirmationMismatch(Refused):
    """What the responder typed is not the confirmation phrase."""


class NothingToRollBack(Conflict):
    """The run wrote nothing, so there is nothing of its own to undo: "rolling it back"
    would only put its backup over whatever is there now (seed 002's stale restore).
    Exit 4, like every request that contradicts the incident's state."""


@dataclass
class Outcome:
    """How an apply (with its verify) ended."""

    ok: bool
    stage: str
    """The last stage reached: ``apply`` or ``verify``."""
    numbers: dict[str, int] = field(default_factory=dict)
    error: str = ""
    verify: list[dict[str, Any]] = field(default_factory=list)
    """Each verify diagnostic's id, verdict and numbers."""

    wrote: bool = True
    """False when apply stopped before writing anything (then nothing is rolled back)."""
    backup: bool = True
    """False for an action that keeps no backup (``backup: none``): no rollback."""

    @property
    def rollback_offered(self) -> bool:
        return not self.ok and self.wrote and self.backup


def new_run_id(now_text: str) -> str:
    """A short id that sorts by time: ``20261122t031500-a1b2``."""
    return f"{now_text}-{secrets.token_hex(2)}"


class GuardedRun:
    """One run of a guarded action, stage by stage; built by
    :func:`playbook.service.action_runs.start` (``Service.start_action``).

    Call :meth:`dry_run`, :meth:`backup`, :meth:`confirm` and :meth:`apply` in that
    order (each refuses to run out of turn), then :meth:`rollback` if apply or verify
    failed. :meth:`cancel` stops the stage in progress from any thread.
    """

    def __init__(
        self,
        log: StageLog,
        verify: VerifyRunner,
        incident_id: str,
        action_id: str,
        action: Action,
        values: dict[str, object],
        target: Target,
        writer: Writer,
        run_id: str,
        backup_dir: Path | None,
        actor: str,
        progress: Callable[[Progress], None] | None = None,
        hook: StageHook | None = None,
    ) -> None:
        self.log = log
        self.verify_with = verify
        self.incident_id = incident_id
        self.action_id = action_id
        self.action = action
        self.values = values
        self.target = target
        self.writer = writer
        self.run_id = run_id
        self.backup_dir = backup_dir
        """Where the backup goes (None: this store has no data directory, no apply)."""
        self.progress = progress
        self.hook = hook
        self.plan: Plan | None = None
        self.backup_info: dict[str, Any] | None = None
        self.confirmed = False
        self.applied = False
        self.context: RunContext | None = None
        self.cancelled = False
        self.kept: list[str] = []
        """After :meth:`rollback`: ``<item> changed after the apply``, each left alone
        (as recorded and shown: :meth:`shown`)."""
        self.overwritten: list[str] = []
        """After a forced :meth:`rollback`: items restored over a newer change (shown)."""
        self.surprise: BaseException | None = None
        """The last exception playbook did not expect from the writer or its driver
        (recorded as a sentence; kept here for a front end's debug output)."""
        self._diagnostic: Cancellable | None = None
        """The verify diagnostic running now (a PreparedRun), for :meth:`cancel`."""
        self._lock = threading.Lock()
        do = action.do.model_dump(by_alias=True, exclude_none=True)
        self.request = WriteRequest(
            action_id=action_id,
            run_id=run_id,
            do=substitute(do, values),  # type: ignore[arg-type]
            uri=target.uri,
            batch=action.batch,
            lock_name=action.lock.name or f"playbook:action:{action_id}",
            lock_ttl=float(action.lock.ttl),
            holder=(
                f"{actor}@{socket.gethostname()} pid {os.getpid()}, "
                f"incident {incident_id}, run {run_id}"
            ),
            params=dict(values),
            declared=do,
            # the responder's config only; the backups stay out of a sandboxed command's reach
            options={
                "target": target.options,
                "unreadable": [str(backup_dir)] if backup_dir is not None else [],
            },
        )

    # ------------------------------------------------------------------ facts

    @property
    def phrase(self) -> str:
        """What the responder must type to confirm: the action's phrase or the target,
        followed by ``no backup`` for an action that keeps none (so nobody confirms it
        believing they can roll it back)."""
        phrase = self.action.confirm or self.target.name
        return phrase if self.writer.has_backup(self.request) else f"{phrase} no backup"

    @property
    def force_phrase(self) -> str:
        """What a forced rollback needs typed: ``force <phrase>``. A phrase of its own, so
        that the one typed for an ordinary rollback can never overwrite newer data."""
        return f"force {self.phrase}"

    def confirms(self, typed: str | None, force: bool = False) -> bool:
        """Whether ``typed`` is the phrase (:attr:`force_phrase` with ``force``), exactly.

        Nothing is stripped: ``' cache'`` or ``'cache\\n'`` is not ``cache``. A phrase
        is typed to prove the responder read it, and the app's prompt says "exactly";
        the terminal's reader already removed the line's own line break. The CLI and the
        app ask here, so neither can be looser than the engine."""
        return typed == (self.force_phrase if force else self.phrase)

    def mismatch_hint(self, typed: str | None, force: bool = False) -> str:
        """Why ``typed`` was refused when it was only the spacing: the phrase with spaces
        or a line break around it reads as right to a person, so say what differs."""
        bare = typed.strip() if typed is not None else None
        if bare != typed and bare == (self.force_phrase if force else self.phrase):
            return " It must be typed without the spaces or line breaks around it."
        return ""

    # ------------------------------------------------------------------ stages

    def dry_run(self) -> Plan:
        """Stage 1: what would change; nothing is written."""
        ctx = self._context("dry_run")
        try:
            plan = self.writer.plan(self.request, ctx)
        except Exception as exc:
            self._record("dry_run", self._ended(ctx), error=self._why(exc, ctx, "dry run"))
            raise self._as_run_error(exc, ctx, "dry run") from None
        finally:
            ctx.finish()
        self.plan = plan
        self._record(
            "dry_run",
            "done",
            counts=plan.counts,
            items=plan.items[:ITEMS_SHOWN],
            touches=plan.touches,
            warnings=plan.warnings,
            params={k: _jsonable(v) for k, v in self.values.items()},
            operation=self.request.do.get("operation"),
            where=self.target.shown,
        )
        return self.shown_plan(plan)

    def shown_plan(self, plan: Plan) -> Plan:
        """``plan`` as a front end may show it: its lines and warnings as its
        ``dry_run`` event records them (:meth:`shown`). The writer keeps the plan it made
        (:attr:`plan`): its private data names the real items."""
        return dataclasses.replace(
            plan, items=self.shown(plan.items), warnings=self.shown(plan.warnings)
        )

    def shown(self, value: Any) -> Any:
        """``value`` (a line, a list of lines, a result) exactly as its event records it:
        undecodable bytes escaped, every known secret masked. What a run hands to the CLI
        and the app goes through here, so the screen shows what the timeline and the
        exports do (an item named after a planted password reads ``k:***`` in all
        three), and the two front ends cannot differ."""
        remember_uri(self.request.uri)  # a no-op once known; the target's secrets first
        return unpaired_escaped(scrub_data(_clean(value)))

    def backup(self) -> dict[str, Any]:
        """Stage 2: everything the action will touch, saved beside the incident."""
        if self.plan is None:
            raise Conflict("Back up after the dry run: the dry run says what to save.")
        folder = self.backup_dir
        if folder is None:
            raise UsageError(
                "There is nowhere to keep a backup (this store has no data directory).",
                "Run with a data directory (--data-dir); no backup, no apply.",
            )
        path = Path(folder) / self.incident_id / f"{self.run_id}-{self.action_id}.jsonl"
        ctx = self._context("backup")  # before the file: a cancelled backup leaves none
        try:
            sink = Sink(path, keep=0)
        except OSError as exc:
            ctx.finish()
            why = f"The backup file {path} cannot be created: {exc.strerror or exc}."
            self._record("backup", "failed", error=why)
            raise UsageError(
                why, "Free some space or fix the data directory; no backup, no apply."
            ) from None
        except BaseException:
            ctx.finish()
            raise
        try:
            rows = self.writer.backup(self.request, self.plan, ctx, sink)
        except Exception as exc:
            self._record(
                "backup",
                self._ended(ctx),
                error=self._why(exc, ctx, "backup"),
                **_discard_partial(sink, path),
            )
            raise self._as_run_error(exc, ctx, "backup") from None
        finally:
            ctx.finish()
        sha = sink.close()
        info = {"file": str(path), "sha256": sha, "bytes": path.stat().st_size, "rows": rows}
        self.backup_info = info
        self._record("backup", "done", **info)
        return info

    def confirm(self, typed: str) -> None:
        """Stage 3: the responder typed the phrase (the target's name, by default).

        Raises:
            ConfirmationMismatch: it was not the phrase; recorded as refused.
        """
        if self.backup_info is None:
            raise Conflict("Confirm after the backup: no backup, no apply.")
        if not self.confirms(typed):
            self._record("confirm", "refused", reason="the confirmation did not match")
            raise ConfirmationMismatch(
                f"Not confirmed: type {self.phrase!r} exactly to apply {self.action_id}.",
                "Nothing was written." + self.mismatch_hint(typed),
            )
        self.confirmed = True
        self._record("confirm", "done", phrase=self.phrase)

    def apply(self) -> Outcome:
        """Stages 4-6: take the lock, apply, verify, release the lock.

        Raises:
            LockHeld: someone else holds the lock; recorded as refused, nothing written.
        """
        if not self.confirmed or self.plan is None:
            raise Conflict("Apply only after the dry run, the backup and the confirmation.")
        lock = self._take_lock()
        try:
            outcome = self._apply_and_verify(self.plan, lock)
        finally:
            self._release(lock)
        outcome.backup = self.writer.has_backup(self.request)
        return outcome

    def rollback(self, typed: str | None = None, force: bool = False) -> dict[str, int]:
        """Stage 7: put back, under the lock, each item still as this run left it.

        ``typed`` must be the confirmation phrase unless this run's apply was confirmed
        in this same session; with ``force`` (restore over newer changes too) it must be
        :attr:`force_phrase`, always. Items left alone are in :attr:`kept` afterwards.

        A rollback is a request of its own: one asked for after a cancel of the apply
        (the app offers it then) runs; a cancel during it stops it.

        Raises:
            NothingToRollBack: the run wrote nothing.
            ConfirmationMismatch: the phrase was not typed exactly.
        """
        with self._lock:
            self.cancelled = False  # a rollback asked for after a cancel is a request of its own
        return rollback(self, typed, force)

    def cancel(self) -> None:
        """Stop the stage in progress (from any thread), a verify diagnostic included;
        later stages refuse to start, each recorded as cancelled."""
        with self._lock:
            self.cancelled = True
            ctx = self.context
            diagnostic = self._diagnostic
        if ctx is not None:
            ctx.cancel()
        if diagnostic is not None:
            diagnostic.cancel()

    # ----------------------------------------------------------------- inside

    def _apply_and_verify(self, plan: Plan, lock: Lock) -> Outcome:
        ctx = self._context("apply", wrote=False)
        path = self._written_path()
        self._record(
            "apply", "started", counts=plan.counts, written_file=str(path) if path else None
        )
        self.applied = True
        written = Written(path, self.run_id, self.action_id)
        lock.on_lost = ctx.lock_lost
        try:
            if self.writer.records_writes:
                numbers = self.writer.apply(self.request, plan, ctx, written)
            else:  # a writer from before ``written``: called as it was written to be
                numbers = self.writer.apply(self.request, plan, ctx)
        except Exception as exc:
            # A surprise stops cleanly too: rollback is offered if anything was written.
            error = self._why(exc, ctx, "apply")
            wrote = not wrote_nothing(exc) and self._recorded(written)
            info = written.close()
            self._record("apply", self._ended(ctx), error=error, wrote=wrote, written=info)
            return Outcome(False, "apply", error=error, wrote=wrote)
        finally:
            ctx.finish()
        wrote = self._recorded(written)
        self._record("apply", "done", numbers=numbers, wrote=wrote, written=written.close())
        results = self._verify()
        if any(r.get("cancelled") for r in results):
            self._record("verify", "cancelled", verdict=ERROR, results=results)
            error = "verify cancelled by the responder"
            return Outcome(False, "verify", numbers, error, results, wrote)
        worst = max((r["verdict"] for r in results), key=_RANK.__getitem__, default=PASS)
        ok = worst == PASS
        self._record("verify", "done" if ok else "failed", verdict=worst, results=results)
        return Outcome(ok, "verify", numbers, "" if ok else f"verify: {worst}", results, wrote)

    def _written_path(self) -> Path | None:
        """Where the apply records what it writes: beside the backup."""
        if self.backup_info is None or not self.backup_info.get("file"):
            return None
        backup = Path(self.backup_info["file"])
        path = backup.with_name(f"{self.run_id}-{self.action_id}.written.jsonl")
        n = 1
        while path.exists():  # an apply tried again in the same run: a file of its own
            n += 1
            path = backup.with_name(f"{self.run_id}-{self.action_id}.written-{n}.jsonl")
        return path

    def _recorded(self, written: Written) -> bool:
        """Whether the apply may have written: a writer that records ahead of every
        write and recorded nothing wrote nothing; any other is assumed to have."""
        return bool(written.items) if self.writer.records_writes else True

    def _verify(self) -> list[dict[str, Any]]:
        """Each verify diagnostic's result. A cancel stops the one running (its evidence
        is recorded, marked cancelled) and the rest are not run."""
        results: list[dict[str, Any]] = []
        for check in self.action.verify:
            if self.cancelled:
                results.append(
                    {
                        "diagnostic": check.diagnostic,
                        "verdict": ERROR,
                        "error": "not run: the verify was cancelled",
                        "cancelled": True,
                    }
                )
                continue
            given = substitute(check.params, self.values)
            try:
                payload = self.verify_with(
                    check.diagnostic,
                    given,  # type: ignore[arg-type]
                    self._verifying,
                )
            except (RunError, UsageError, Refused, NotFound) as exc:
                results.append(
                    {"diagnostic": check.diagnostic, "verdict": ERROR, "error": exc.title}
                )
                continue
            except Exception as exc:
                # Its run could not be recorded (the store refused the event) or a
                # plug-in failed: the write happened, so the action still needs a
                # verdict, and an error one offers the rollback. Never left "applied".
                said = exc.title if isinstance(exc, PlaybookError) else type(exc).__name__
                results.append({"diagnostic": check.diagnostic, "verdict": ERROR, "error": said})
                continue
            finally:
                with self._lock:
                    self._diagnostic = None
            result = {
                "diagnostic": check.diagnostic,
                "verdict": payload["verdict"],
                "metrics": payload.get("metrics", {}),
                "checks": [c["text"] for c in payload.get("checks", [])],
            }
            if payload.get("cancelled"):
                result["cancelled"] = True
            results.append(result)
        return self.shown(results)  # as recorded; a check's text may quote a row

    def _verifying(self, prepared: Cancellable) -> None:
        """The verify diagnostic ``prepared`` is about to run: a cancel stops it."""
        with self._lock:
            self._diagnostic = prepared
            if self.cancelled:
                prepared.cancel()

    def _take_lock(self) -> Lock:
        ctx = self._context("lock", name=self.request.lock_name)
        try:
            lock = self.writer.lock(self.request, ctx)
        except Exception as exc:
            outcome = "refused" if isinstance(exc, LockHeld) else self._ended(ctx)
            error = self._why(exc, ctx, "lock")
            self._record("lock", outcome, error=error, name=self.request.lock_name)
            raise self._as_run_error(exc, ctx, "lock") from None
        finally:
            ctx.finish()
        self._record("lock", "done", name=self.request.lock_name, ttl=self.request.lock_ttl)
        return lock

    def _release(self, lock: Lock) -> None:
        try:
            lock.release()
        except Exception as exc:  # the lock still expires on its own
            error = (
                f"The lock could not be released ({type(exc).__name__}); it goes away on "
                "its own, after its TTL or with its holder's connection."
            )
            self._record("unlock", "failed", error=error)
        else:
            self._record("unlock", "done", name=self.request.lock_name)

    def _context(self, stage: str, **details: Any) -> RunContext:
        """The context of ``stage``, about to begin; if the responder has cancelled,
        ``stage`` is recorded as cancelled before it began (with ``details``) and
        :class:`Cancelled` raised."""
        with self._lock:
            cancelled = self.cancelled
            if not cancelled:
                ctx = RunContext(
                    float(self.action.timeout), float(self.action.connect_timeout), self.progress
                )
                self.context = ctx
        if cancelled:
            why = f"{CANCELLED} The {stage.replace('_', ' ')} did not begin."
            self._record(stage, "cancelled", error=why, **details)
            raise Cancelled(why, "Nothing more was done.")
        return ctx

    @staticmethod
    def _ended(ctx: RunContext) -> str:
        """How a stage that raised ended: ``cancelled`` when the responder stopped it."""
        return "cancelled" if ctx.stopped == "cancel" else "failed"

    def _why(self, exc: BaseException, ctx: RunContext | None, stage: str) -> str:
        """Why ``stage`` stopped, in words for the timeline: a RunError's own; the stop's
        when the context was stopped (the driver then fails on a socket closed under it
        on purpose: its error says nothing more); else a sentence naming a surprise."""
        stopped = ctx.stop_error().title if ctx is not None and ctx.stopped else None
        cancelled = ctx is not None and ctx.stopped == "cancel"
        if isinstance(exc, RunError) and not (cancelled and exc.title == stopped):
            text = exc.title + (f" {exc.message}" if exc.message else "")
        elif cancelled:  # its stock wording speaks of diagnostics ("the result is partial")
            text = CANCELLED
        elif stopped is not None:
            text = stopped
        else:
            self.surprise = exc
            text = (
                f"The {stage} stage stopped on an error playbook did not expect from the "
                f"{self.action.kind} writer or its driver ({type(exc).__name__}). This is a "
                "bug in playbook or the driver, not a problem with the data."
            )
        return scrub(text, self.request.uri)

    def _as_run_error(self, exc: BaseException, ctx: RunContext | None, stage: str) -> RunError:
        """``exc`` itself when it is a RunError; otherwise one that says why, as the
        timeline does (:meth:`_why`)."""
        if isinstance(exc, RunError):
            return exc
        if ctx is not None and ctx.stopped == "cancel":
            return Cancelled(self._why(exc, ctx, stage), "Nothing more was done.")
        return RunError(self._why(exc, ctx, stage))

    def _record(self, stage: str, outcome: str, **details: Any) -> IncidentState:
        payload = {
            "run": self.run_id,
            "action": self.action_id,
            "target": self.target.name,
            "stage": stage,
            "outcome": outcome,
            **details,
        }
        state = self.log.append(_clean(payload))
        if self.hook is not None:
            self.hook(stage, outcome)
        return state


def rollback(run: GuardedRun, typed: str | None, force: bool) -> dict[str, int]:
    """Roll ``run`` back from its recorded backup, under its lock (see GuardedRun)."""
    if not run.writer.has_backup(run.request):
        raise NothingToRollBack(
            f"{run.action_id} keeps no backup (its playbook says backup: none), so run "
            f"{run.run_id} cannot be rolled back.",
            "Its confirmation said so ('no backup'). Nothing was done.",
        )
    found = run.log.read().actions.get(run.run_id)
    must_have_written(run, found)
    phrase = run.force_phrase if force else run.phrase
    if (force or not run.confirmed or typed is not None) and not run.confirms(typed, force):
        run._record("rollback", "refused", reason="the confirmation did not match", forced=force)
        why = (
            " (a forced rollback puts the backup over changes made since the apply, so it "
            "has a phrase of its own)"
            if force
            else ""
        )
        raise ConfirmationMismatch(
            f"Not rolled back: type {phrase!r} exactly to roll back {run.action_id}{why}.",
            "Nothing was written." + run.mismatch_hint(typed, force),
        )
    info = run.backup_info
    if info is None:
        raise Conflict(f"Run {run.run_id} has no recorded backup; there is nothing to restore.")
    rows = read_backup(Path(info["file"]), info["sha256"])
    written, was = _what_it_wrote(run, found, force)
    undo = Undo(written, force, was=was)
    lock = run._take_lock()
    try:
        ctx = run._context("rollback", forced=force)
        run._record("rollback", "started", file=info["file"], forced=force)
        lock.on_lost = ctx.lock_lost
        try:
            if run.writer.records_writes:
                numbers = run.writer.rollback(run.request, rows, ctx, undo)
            else:  # only reached with force (see _what_it_wrote): its own, blind restore
                numbers = run.writer.rollback(run.request, rows, ctx)
        except Exception as exc:
            error = run._why(exc, ctx, "rollback")
            run._record("rollback", run._ended(ctx), error=error, **_left_alone(undo))
            raise run._as_run_error(exc, ctx, "rollback") from None
        finally:
            ctx.finish()
        numbers = {**numbers, "kept": len(undo.kept)}
        if force:
            numbers["overwritten"] = len(undo.forced)
        run.kept, run.overwritten = run.shown(list(undo.kept)), run.shown(list(undo.forced))
        run._record("rollback", "done", numbers=numbers, forced=force, **_left_alone(undo))
    finally:
        run._release(lock)
    return numbers


def must_have_written(run: GuardedRun, found: ActionRun | None) -> None:
    """Raise :class:`NothingToRollBack` unless the run wrote, or may have written."""
    if found is not None and found.wrote:
        return
    apply = found.stage("apply") if found is not None else None
    if apply is None:
        status = found.status if found is not None else "never recorded"
        why = f"it never reached its apply ({status})"
    elif apply.get("outcome") == "done":
        why = "its apply wrote no item (each had changed since the backup)"
    else:
        why = f"its apply left nothing to undo ({apply.get('error') or 'no reason given'})"
    raise NothingToRollBack(
        f"Run {run.run_id} of {run.action_id} wrote nothing, so there is nothing to roll "
        f"back: {why}.",
        "Rolling back would only put its backup over the data as it is now, newer writes "
        "included. Nothing was done.",
    )


def _what_it_wrote(
    run: GuardedRun, found: ActionRun | None, force: bool
) -> tuple[dict[bytes, str | None] | None, dict[bytes, str | None]]:
    """The items the run's apply recorded, with their fingerprints, and the earlier
    value of each whose last batch may not have gone out; None when it did not record
    them (then only ``force`` restores anything)."""
    apply = (found.stage("apply") if found is not None else None) or {}
    written = apply.get("written") or {}
    path = written.get("file") or apply.get("written_file")
    if run.writer.records_writes and path:
        try:
            return read_written_rows(Path(path), written.get("sha256"))
        except BackupMismatch:
            if not force:
                raise
            return None, {}
    if force:
        return None, {}
    raise Conflict(
        f"Run {run.run_id} did not record what it wrote (applied by an older playbook, or "
        "by a writer that does not record), so a rollback cannot tell its changes from "
        "newer ones.",
        f"To put the backup over every item it holds anyway, newer changes included, roll "
        f"back with --force and type {run.force_phrase!r}.",
    )


def _discard_partial(sink: Sink, path: Path) -> dict[str, Any]:
    """Close and delete a backup that did not finish: it is not a backup (no SHA-256 is
    recorded, nothing restores from it), and a file left beside the incident would look
    like one. The event's view of what became of it."""
    with contextlib.suppress(OSError):  # the disk that failed the backup may fail this too
        sink.close()
    try:
        path.unlink(missing_ok=True)
    except OSError:
        return {"file": str(path), "partial": True}
    return {"partial_removed": str(path)}


def _left_alone(undo: Undo) -> dict[str, Any]:
    """The event's view of what a rollback did not restore (and, forced, overwrote):
    the first few names; the counts are in the numbers."""
    out: dict[str, Any] = {}
    if undo.kept:
        out["kept_items"] = undo.kept[:ITEMS_SHOWN]
    if undo.forced:
        out["overwritten_items"] = undo.forced[:ITEMS_SHOWN]
    return out


def _clean(value: Any) -> Any:
    """``value`` with every string valid UTF-8: a key or value read as bytes that are not
    (kept with surrogate escapes) is shown with backslash escapes instead."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {_clean(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _jsonable(value: object) -> object:
    from playbook.core.evidence import json_value

    return json_value(value)
