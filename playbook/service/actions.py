"""Guarded actions: the only way `playbook` changes data.

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

The CLI and the app both drive this class; neither talks to a writer directly. A run
gets what it needs and no more: a :class:`StageLog` (the incident's log, to append its
stages to and read them back) and a :data:`VerifyRunner` (to run the verify diagnostics).
It imports nothing else of the service: :mod:`playbook.service.action_runs` builds one
from an incident.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from playbook.adapters.base import Progress, Refused, RunContext, RunError, Sink, scrub
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
    read_written,
    wrote_nothing,
)
from playbook.core.diagnostics import ERROR, FAIL, PASS, WARN, substitute
from playbook.core.model import Action
from playbook.core.state import ActionRun, IncidentState
from playbook.errors import Conflict, NotFound, UsageError
from playbook.targets import Target

_RANK = {PASS: 0, WARN: 1, FAIL: 2, ERROR: 3}

StageHook = Callable[[str, str], None]
"""Called as ``hook(stage, outcome)`` after each stage event is recorded."""

VerifyRunner = Callable[[str, Mapping[str, object]], dict[str, Any]]
"""Runs ``diagnostic`` with ``params`` on the run's incident and targets, records it, and
returns its evidence payload (see :func:`playbook.service.diagnostics.run_diagnostic`)."""


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

    @property
    def rollback_offered(self) -> bool:
        return not self.ok and self.wrote


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
        """After :meth:`rollback`: ``<item> changed after the apply``, each left alone."""
        self.overwritten: list[str] = []
        """After a forced :meth:`rollback`: items restored over a newer change."""
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
        )

    # ------------------------------------------------------------------ facts

    @property
    def phrase(self) -> str:
        """What the responder must type to confirm: the action's phrase or the target."""
        return self.action.confirm or self.target.name

    @property
    def force_phrase(self) -> str:
        """What a forced rollback needs typed: ``force <phrase>``. A phrase of its own, so
        that the one typed for an ordinary rollback can never overwrite newer data."""
        return f"force {self.phrase}"

    # ------------------------------------------------------------------ stages

    def dry_run(self) -> Plan:
        """Stage 1: what would change; nothing is written."""
        ctx = self._context()
        try:
            plan = self.writer.plan(self.request, ctx)
        except Exception as exc:
            self._record("dry_run", "failed", error=self._why(exc))
            raise self._as_run_error(exc) from None
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
        return plan

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
        sink = Sink(path, keep=0)
        ctx = self._context()
        try:
            rows = self.writer.backup(self.request, self.plan, ctx, sink)
        except Exception as exc:
            sink.close()
            self._record("backup", "failed", error=self._why(exc), file=str(path))
            raise self._as_run_error(exc) from None
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
        if typed.strip() != self.phrase:
            self._record("confirm", "refused", reason="the confirmation did not match")
            raise ConfirmationMismatch(
                f"Not confirmed: type {self.phrase!r} exactly to apply {self.action_id}.",
                "Nothing was written.",
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
        return outcome

    def rollback(self, typed: str | None = None, force: bool = False) -> dict[str, int]:
        """Stage 7: put back, under the lock, each item still as this run left it.

        ``typed`` must be the confirmation phrase unless this run's apply was confirmed
        in this same session; with ``force`` (restore over newer changes too) it must be
        :attr:`force_phrase`, always. Items left alone are in :attr:`kept` afterwards.

        Raises:
            NothingToRollBack: the run wrote nothing.
            ConfirmationMismatch: the phrase was not typed exactly.
        """
        return rollback(self, typed, force)

    def cancel(self) -> None:
        """Stop the stage in progress (from any thread); later stages refuse to start."""
        with self._lock:
            self.cancelled = True
            ctx = self.context
        if ctx is not None:
            ctx.cancel()

    # ----------------------------------------------------------------- inside

    def _apply_and_verify(self, plan: Plan, lock: Lock) -> Outcome:
        path = self._written_path()
        self._record(
            "apply", "started", counts=plan.counts, written_file=str(path) if path else None
        )
        self.applied = True
        written = Written(path, self.run_id, self.action_id)
        ctx = self._context()
        lock.on_lost = ctx.lock_lost
        try:
            if self.writer.records_writes:
                numbers = self.writer.apply(self.request, plan, ctx, written)
            else:  # a writer from before ``written``: called as it was written to be
                numbers = self.writer.apply(self.request, plan, ctx)
        except Exception as exc:
            if isinstance(exc, RunError):
                error = self._why(exc)
            else:  # a driver's surprise: stop cleanly, offer rollback if it wrote
                error = scrub(f"{type(exc).__name__}: {exc}", self.request.uri)
            wrote = not wrote_nothing(exc) and self._recorded(written)
            info = written.close()
            self._record("apply", "failed", error=error, wrote=wrote, written=info)
            return Outcome(False, "apply", error=error, wrote=wrote)
        finally:
            ctx.finish()
        wrote = self._recorded(written)
        self._record("apply", "done", numbers=numbers, wrote=wrote, written=written.close())
        results = self._verify()
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
        results: list[dict[str, Any]] = []
        for check in self.action.verify:
            given = substitute(check.params, self.values)
            try:
                payload = self.verify_with(check.diagnostic, given)  # type: ignore[arg-type]
            except (RunError, UsageError, Refused, NotFound) as exc:
                results.append(
                    {"diagnostic": check.diagnostic, "verdict": ERROR, "error": exc.title}
                )
                continue
            results.append(
                {
                    "diagnostic": check.diagnostic,
                    "verdict": payload["verdict"],
                    "metrics": payload.get("metrics", {}),
                    "checks": [c["text"] for c in payload.get("checks", [])],
                }
            )
        return results

    def _take_lock(self) -> Lock:
        ctx = self._context()
        try:
            lock = self.writer.lock(self.request, ctx)
        except Exception as exc:
            outcome = "refused" if isinstance(exc, LockHeld) else "failed"
            self._record("lock", outcome, error=self._why(exc), name=self.request.lock_name)
            raise self._as_run_error(exc) from None
        finally:
            ctx.finish()
        self._record("lock", "done", name=self.request.lock_name, ttl=self.request.lock_ttl)
        return lock

    def _release(self, lock: Lock) -> None:
        try:
            lock.release()
        except Exception as exc:  # the lock still expires on its own
            self._record("unlock", "failed", error=scrub(str(exc), self.request.uri))
        else:
            self._record("unlock", "done", name=self.request.lock_name)

    def _context(self) -> RunContext:
        with self._lock:
            if self.cancelled:
                raise RunError("Cancelled by the responder.", "Nothing more was done.")
            ctx = RunContext(
                float(self.action.timeout), float(self.action.connect_timeout), self.progress
            )
            self.context = ctx
        return ctx

    def _why(self, exc: BaseException) -> str:
        if isinstance(exc, RunError):
            text = exc.title + (f" {exc.message}" if exc.message else "")
        else:
            text = f"{type(exc).__name__}: {exc}"
        return scrub(text, self.request.uri)

    def _as_run_error(self, exc: BaseException) -> RunError:
        """``exc`` itself when it is a RunError; otherwise one that carries its text,
        scrubbed (a driver's message may hold the URI)."""
        return exc if isinstance(exc, RunError) else RunError(self._why(exc))

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
    found = run.log.read().actions.get(run.run_id)
    must_have_written(run, found)
    phrase = run.force_phrase if force else run.phrase
    if (force or not run.confirmed or typed is not None) and (typed or "").strip() != phrase:
        run._record("rollback", "refused", reason="the confirmation did not match", forced=force)
        why = (
            " (a forced rollback puts the backup over changes made since the apply, so it "
            "has a phrase of its own)"
            if force
            else ""
        )
        raise ConfirmationMismatch(
            f"Not rolled back: type {phrase!r} exactly to roll back {run.action_id}{why}.",
            "Nothing was written.",
        )
    info = run.backup_info
    if info is None:
        raise Conflict(f"Run {run.run_id} has no recorded backup; there is nothing to restore.")
    rows = read_backup(Path(info["file"]), info["sha256"])
    undo = Undo(_what_it_wrote(run, found, force), force)
    lock = run._take_lock()
    try:
        run._record("rollback", "started", file=info["file"], forced=force)
        ctx = run._context()
        lock.on_lost = ctx.lock_lost
        try:
            if run.writer.records_writes:
                numbers = run.writer.rollback(run.request, rows, ctx, undo)
            else:  # only reached with force (see _what_it_wrote): its own, blind restore
                numbers = run.writer.rollback(run.request, rows, ctx)
        except Exception as exc:
            run._record("rollback", "failed", error=run._why(exc), **_left_alone(undo))
            raise run._as_run_error(exc) from None
        finally:
            ctx.finish()
        numbers = {**numbers, "kept": len(undo.kept)}
        if force:
            numbers["overwritten"] = len(undo.forced)
        run.kept, run.overwritten = list(undo.kept), list(undo.forced)
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
        why = f"its apply stopped before writing ({apply.get('error') or 'no reason given'})"
    raise NothingToRollBack(
        f"Run {run.run_id} of {run.action_id} wrote nothing, so there is nothing to roll "
        f"back: {why}.",
        "Rolling back would only put its backup over the data as it is now, newer writes "
        "included. Nothing was done.",
    )


def _what_it_wrote(
    run: GuardedRun, found: ActionRun | None, force: bool
) -> dict[bytes, str | None] | None:
    """The items the run's apply recorded, with their fingerprints; None when it did
    not record them (then only ``force`` restores anything)."""
    apply = (found.stage("apply") if found is not None else None) or {}
    written = apply.get("written") or {}
    path = written.get("file") or apply.get("written_file")
    if run.writer.records_writes and path:
        try:
            return read_written(Path(path), written.get("sha256"))
        except BackupMismatch:
            if not force:
                raise
            return None
    if force:
        return None
    raise Conflict(
        f"Run {run.run_id} did not record what it wrote (applied by an older playbook, or "
        "by a writer that does not record), so a rollback cannot tell its changes from "
        "newer ones.",
        f"To put the backup over every item it holds anyway, newer changes included, roll "
        f"back with --force and type {run.force_phrase!r}.",
    )


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
