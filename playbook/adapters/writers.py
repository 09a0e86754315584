"""The contract between playbook and a back end that changes data: guarded actions.

A :class:`Writer` carries out one kind of guarded action (``redis``, ``postgres``,
``mongo``) in stages that :mod:`playbook.guarded` calls in a fixed order, recording each
in the incident's timeline:

1. :meth:`Writer.plan` — the dry run: what would change, nothing written.
2. :meth:`Writer.backup` — everything the action will touch, written to a file.
3. (the responder confirms; not the writer's business)
4. :meth:`Writer.lock` — a lock on the target that names its holder and expires.
5. :meth:`Writer.apply` — the change, in batches, with progress and cancel.
6. (verify: diagnostics re-run by the service)
7. :meth:`Writer.rollback` — put back what the backup holds.

Every writer promises that a process killed at any moment leaves the data either as it
was or as it should be (or, for changes that cannot be made in one step, each item
either changed or not, so that running it again or rolling back finishes the job), and
that its lock goes away on its own: after its TTL (Redis, MongoDB) or with its holder's
connection (a PostgreSQL advisory lock, which a live but hung holder keeps).

Writers are found through the ``playbook.writers`` entry-point group, like adapters.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from playbook.adapters.base import RunContext, RunError, Sink

ITEMS_SHOWN = 20
"""Items of a plan shown to the responder (the counts cover them all)."""


class LockHeld(RunError):
    """Someone else holds the action's lock; the title names them and since when."""

    exit_code = 9


class NothingWritten(RunError):
    """Apply stopped before it changed anything (the data moved since the backup, the
    new version did not validate, …): there is nothing to roll back, and rolling back
    would put the backup over newer data.

    A writer whose error must keep its own type (Cancelled, DeadlineExceeded) sets
    ``nothing_written = True`` on it instead; :func:`wrote_nothing` reads either.
    """


def wrote_nothing(exc: BaseException) -> bool:
    """Whether a failed apply is known to have changed nothing."""
    return isinstance(exc, NothingWritten) or getattr(exc, "nothing_written", False) is True


class BackupMismatch(RunError):
    """The backup file is missing or its SHA-256 is not the one recorded."""


@dataclass
class WriteRequest:
    """What a writer is asked to do."""

    action_id: str
    run_id: str
    """The run's id; names this run's temporary and kept keys where a writer needs to."""
    do: dict[str, Any]
    """The action's ``do`` block with its parameters in place (``operation`` first)."""
    uri: str
    """The target's URI. Never log it or put it in an error: use :func:`scrub`."""
    batch: int = 1000
    """Items written per round trip."""
    lock_name: str = ""
    lock_ttl: float = 600.0
    holder: str = ""
    """Who runs it: ``actor@host pid N, incident I, run R``; stored in the lock."""


@dataclass
class Plan:
    """A dry run's findings."""

    counts: dict[str, int]
    """What would change, counted (``create``, ``replace``, ``delete``, ``records``…)."""
    items: list[str]
    """The first changes, one line each, for the responder to read."""
    touches: int
    """How many items the backup must hold."""
    warnings: list[str] = field(default_factory=list)
    """Things the responder must know before confirming (an apply that would fail…)."""
    private: dict[str, Any] = field(default_factory=dict)
    """The writer's own working data, passed back to backup and apply (not recorded)."""

    @property
    def empty(self) -> bool:
        """Nothing to change."""
        return self.touches == 0 and not any(self.counts.get(k) for k in _CHANGE_COUNTS)


_CHANGE_COUNTS = ("create", "replace", "update", "insert", "delete", "convert", "swap")


class Lock(ABC):
    """A held lock: renewed in the background while held, released at the end.

    A lock that learns it is no longer held (it expired while the server was out of
    reach, and someone else took it) calls :attr:`on_lost`; the engine stops the stage
    in progress there, so a writer never goes on writing without its lock.
    """

    on_lost: Callable[[], None] | None = None

    def lost(self) -> None:
        """Say the lock is gone (called by a writer's renewal)."""
        if self.on_lost is not None:
            self.on_lost()

    @abstractmethod
    def release(self) -> None:
        """Free the lock if this run still holds it (never someone else's)."""


class Writer(ABC):
    """A back end that carries out guarded actions of one ``kind``.

    Construct without arguments; hold no connection between calls. Every method gets a
    :class:`RunContext` for its deadline, cancel switch and progress line, and must end
    promptly when it fires (register a stopper with :meth:`RunContext.on_stop`).
    """

    kind: ClassVar[str]
    operations: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def plan(self, request: WriteRequest, ctx: RunContext) -> Plan:
        """The dry run: read what the action would change; write nothing."""

    @abstractmethod
    def backup(self, request: WriteRequest, plan: Plan, ctx: RunContext, out: Sink) -> int:
        """Write every item the action will touch to ``out``, one JSON row each, enough
        for :meth:`rollback` to put it back (an item the action creates is recorded as
        absent). Returns the number of rows."""

    @abstractmethod
    def lock(self, request: WriteRequest, ctx: RunContext) -> Lock:
        """Take the lock ``request.lock_name`` on the target for ``request.lock_ttl``.

        Raises:
            LockHeld: another run holds it; the message names the holder and since when.
        """

    @abstractmethod
    def apply(self, request: WriteRequest, plan: Plan, ctx: RunContext) -> dict[str, int]:
        """Make the change, in batches, reporting progress; return what was done, counted.

        Raises:
            RunError: the change failed; what was written so far is described.
        """

    @abstractmethod
    def rollback(
        self, request: WriteRequest, backup: Iterator[dict[str, Any]], ctx: RunContext
    ) -> dict[str, int]:
        """Put back every item of ``backup`` (rows as :meth:`backup` wrote them) and undo
        what this run (``request.run_id``) created. Safe to run twice."""


def read_backup(path: Path, sha256: str) -> Iterator[dict[str, Any]]:
    """The rows of a backup file, after checking its SHA-256 against the recorded one.

    Raises:
        BackupMismatch: the file is missing, or not the file that was recorded.
    """
    import hashlib

    if not path.is_file():
        raise BackupMismatch(
            f"The backup file {path} is missing; nothing can be rolled back from it."
        )
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != sha256:
        raise BackupMismatch(
            f"The backup file {path} has changed since it was recorded (SHA-256 differs).",
            "Restore it from a copy, or roll back by hand; it will not be used as it is.",
        )

    def rows() -> Iterator[dict[str, Any]]:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)

    return rows()
