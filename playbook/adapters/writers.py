"""The contract between playbook and a back end that changes data: guarded actions.

A :class:`Writer` carries out one kind of guarded action (``redis``, ``postgres``,
``mongo``) in stages that :mod:`playbook.service.actions` calls in a fixed order, recording each
in the incident's timeline:

1. :meth:`Writer.plan` — the dry run: what would change, nothing written.
2. :meth:`Writer.backup` — everything the action will touch, written to a file.
3. (the responder confirms; not the writer's business)
4. :meth:`Writer.lock` — a lock on the target that names its holder and expires.
5. :meth:`Writer.apply` — the change, in batches, with progress and cancel.
6. (verify: diagnostics re-run by the service)
7. :meth:`Writer.rollback` — put back what the backup holds, item by item, only where the
   item is still as this run left it.

Every writer promises that a process killed at any moment leaves the data either as it
was or as it should be (or, for changes that cannot be made in one step, each item
either changed or not, so that running it again or rolling back finishes the job), and
that its lock goes away on its own: after its TTL (Redis, MongoDB) or with its holder's
connection (a PostgreSQL advisory lock, which a live but hung holder keeps).

**Never make it worse.** A rollback that puts a backup over newer data is how seed 002
lost a staff record. So an apply records, in a :class:`Written` file beside the backup,
a fingerprint of every item it is about to write (the value it leaves there, or that it
leaves the item absent), *before* the write goes out: a process killed at any moment
leaves a file naming everything it may have written. A rollback compares each item's
current value with that fingerprint, in the same atomic unit as the restore where the
back end has one, and restores only the items still as the run left them; an item
changed by someone else since is *kept* and named (:class:`Undo`). An item the run never
wrote is never touched; ``force`` (a separately typed confirmation) restores the backup
over changed items too.

**What a run creates is written too.** A key or index the run makes for itself (a
staging copy it builds, the copy it moves a replaced value to) is an item like any other:
recorded with its fingerprint ahead of the write, compared before a rollback or a
clean-up removes or renames it, and kept and named when someone changed it since. When a
batch is one atomic unit on the server, its rows say so (``b``): if the batch never went
out, each of its items holds the value of its previous row (or is absent), and that value
is the run's too.

**Item names are bytes.** A Redis key need not be UTF-8; the backup and the written file
hold every item name as JSON: ``"k": "<text>"`` when the bytes are valid UTF-8, else
``"k_b64": "<base64>"`` (:func:`item_fields`, :func:`item_of`). Names are shown with
``\\xff``-style escapes (:func:`shown`), a decoding that cannot fail.

Writers are found through the ``playbook.writers`` entry-point group, like adapters. What
a playbook may write for an action of a kind is that kind's adapter's
(:attr:`playbook.adapters.base.Adapter.action_model`): the model is built whenever a
playbook is read, and a writer's module, with its driver, only when an action runs.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, ClassVar

from playbook.adapters.base import RunContext, RunError, Sink
from playbook.core.text import inline
from playbook.errors import ExitCode

ITEMS_SHOWN = 20
"""Items of a plan shown to the responder (the counts cover them all)."""


class LockHeld(RunError):
    """Someone else holds the action's lock; the title names them and since when."""

    exit_code = ExitCode.LOCK_HELD


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


# --------------------------------------------------------------------------- item names


def shown(raw: bytes) -> str:
    """An item name (bytes) as a person reads it: UTF-8 where it is, ``\\xff`` escapes
    for any other byte and for control characters. Never fails, whatever the bytes."""
    return inline(raw.decode("utf-8", "backslashreplace"))


def item_fields(raw: bytes) -> dict[str, str]:
    """An item name as a backup or written-file row holds it: ``{"k": text}`` when the
    bytes are valid UTF-8, else ``{"k_b64": base64}`` (a JSON file cannot hold them)."""
    try:
        return {"k": raw.decode("utf-8")}
    except UnicodeDecodeError:
        return {"k_b64": base64.b64encode(raw).decode("ascii")}


def item_of(row: dict[str, Any]) -> bytes:
    """The exact bytes of a row's item name; reads this format and the one before it
    (``key64``: base64 of the bytes, ``key``: text with surrogate escapes).

    Raises:
        BackupMismatch: the row names no item.
    """
    if "k_b64" in row:
        return base64.b64decode(row["k_b64"])
    if "k" in row:
        # surrogatepass: a row we did not write may hold a lone surrogate; keep it
        # rather than fail half-way through a rollback
        return str(row["k"]).encode("utf-8", "surrogatepass")
    if "key64" in row:
        return base64.b64decode(row["key64"])
    if "key" in row:
        return str(row["key"]).encode("utf-8", "surrogateescape")
    raise BackupMismatch(f"A backup row names no item: {shown(json.dumps(row)[:80].encode())}")


# --------------------------------------------------------------------------- written

WRITTEN_FORMAT = "playbook-written/2"
WRITTEN_RULE = (
    "One row per item the apply may have written, before the write went out; the last "
    "row of an item wins. k: the item's name when it is valid UTF-8, k_b64: its bytes in "
    "base64 otherwise. v: the fingerprint of the value the run left (null: the run left "
    "the item absent). b: true: the row is part of a batch that is atomic on the server; "
    "if that batch never went out, the item holds the value of its previous row instead "
    "(absent when there is none), also the run's. skip: true: the write did not happen "
    "after all. undone: true: the run removed the item again (a staging key it built and "
    "then cleared), so it left nothing there."
)


class Written:
    """What an apply is writing, item by item, kept in a file beside the backup.

    A writer calls :meth:`record` for every item of a batch *before* sending the batch,
    then :meth:`commit` (flush and fsync) — so a process killed at any moment leaves a
    file naming everything it may have written — and :meth:`skip` for an item it found
    it did not write after all. The engine names the file's SHA-256 in the apply event.
    A ``path`` of None keeps the rows in memory only (for tests and bench).
    """

    def __init__(self, path: Path | None, run: str = "", action: str = "") -> None:
        self.path = path
        self.items: dict[bytes, str | None] = {}
        """Every item recorded and not skipped, with its fingerprint."""
        self.was: dict[bytes, str | None] = {}
        """Items of the last atomic batch: the value each holds if that batch never went
        out (see :meth:`record`)."""
        self._hash = hashlib.sha256()
        self._file: IO[bytes] | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "xb")  # noqa: SIM115 - closed by close()
        self._line({"format": WRITTEN_FORMAT, "run": run, "action": action, "rule": WRITTEN_RULE})

    def record(self, item: bytes, fingerprint: str | None, *, batch: bool = False) -> None:
        """The run is about to leave ``item`` with a value whose fingerprint is
        ``fingerprint`` (None: absent). Call :meth:`commit` before the write goes out.

        ``batch``: the write is part of a batch the server applies whole or not at all
        (one script, or MULTI/EXEC), sent more than once to the same item (a staging set built a batch
        at a time). A process stopped while the batch was on its way cannot know which;
        the item then holds either this value or the one recorded before, and both are
        the run's (:attr:`was`, read back by :func:`read_written_rows`).
        """
        if batch:
            self.was[item] = self.items.get(item)
        else:
            self.was.pop(item, None)
        self.items[item] = fingerprint
        row: dict[str, Any] = {**item_fields(item), "v": fingerprint}
        if batch:
            row["b"] = True
        self._line(row)

    def skip(self, item: bytes) -> None:
        """``item`` was recorded, but the write did not happen (refused, aborted)."""
        self.items.pop(item, None)
        self.was.pop(item, None)
        self._line({**item_fields(item), "skip": True})

    def undone(self, item: bytes) -> None:
        """The run removed ``item`` again, after comparing it with what it had left
        there: the item is as it was before the run (absent). Call it once the removal
        has gone through; a process stopped before that leaves the earlier row, which a
        rollback compares and removes in turn."""
        self.items.pop(item, None)
        self.was.pop(item, None)
        self._line({**item_fields(item), "undone": True})

    def commit(self) -> None:
        """Make every row so far durable: the writes they describe may now go out.
        One fsync per batch: milliseconds, against a rollback that could not know."""
        if self._file is not None:
            self._file.flush()
            os.fsync(self._file.fileno())

    def close(self) -> dict[str, Any]:
        """Flush, fsync and close; ``{"file", "sha256", "items"}`` for the apply event."""
        if self._file is not None and not self._file.closed:
            self.commit()
            self._file.close()
        return {
            "file": str(self.path) if self.path else None,
            "sha256": self._hash.hexdigest(),
            "items": len(self.items),
        }

    def _line(self, row: dict[str, Any]) -> None:
        data = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        self._hash.update(data)
        if self._file is not None:
            self._file.write(data)


def read_written(path: Path, sha256: str | None) -> dict[bytes, str | None]:
    """The items a run's apply recorded, each with its fingerprint (see
    :func:`read_written_rows`, which also gives each batch row's earlier value)."""
    return read_written_rows(path, sha256)[0]


def read_written_rows(
    path: Path, sha256: str | None
) -> tuple[dict[bytes, str | None], dict[bytes, str | None]]:
    """The items a run's apply recorded, each with its fingerprint; and, for an item
    whose last row is part of an atomic batch, the value it holds if that batch never
    went out (its previous row's, or None: absent).

    ``sha256`` is the one the apply event named; None for an apply that was interrupted
    (killed before it could name it): then the file is read as far as it is whole, and a
    missing file means the apply recorded (so wrote) nothing.

    Raises:
        BackupMismatch: the file is missing or not the one recorded.
    """
    if not path.is_file():
        if sha256 is None:
            return {}, {}
        raise BackupMismatch(
            f"The file of what the run wrote, {path}, is missing; without it a rollback "
            "cannot tell the run's changes from newer ones.",
            "Restore the file from a copy, or roll back with --force (the backup goes over "
            "every item it holds, newer changes too).",
        )
    data = path.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise BackupMismatch(
            f"The file of what the run wrote, {path}, has changed since it was recorded "
            "(SHA-256 differs).",
            "Restore it from a copy, or roll back with --force.",
        )
    items: dict[bytes, str | None] = {}
    was: dict[bytes, str | None] = {}
    for line in data.split(b"\n"):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            if sha256 is None:
                break  # the last line of a killed apply, cut short
            raise
        if not isinstance(row, dict) or "format" in row:
            continue
        item = item_of(row)
        if row.get("skip") or row.get("undone"):
            items.pop(item, None)
            was.pop(item, None)
            continue
        if row.get("b"):
            was[item] = items.get(item)
        else:
            was.pop(item, None)
        items[item] = row.get("v")
    return items, was


NOT_WRITTEN = object()
"""What :meth:`Undo.wrote` returns for an item the run did not write."""


@dataclass
class Undo:
    """What a rollback knows of the apply it undoes, and what it left alone.

    A writer's rollback asks :meth:`decide` for each item of the backup, with the
    fingerprint of its value now (None: absent) and in the backup (None: absent; ``...``
    when the backup does not say), acts on the answer in the same atomic unit as the
    comparison where the back end allows, and once that unit has gone through calls
    :meth:`settle` (so a retried unit does not count an item twice).
    """

    written: dict[bytes, str | None] | None
    """Each item the apply wrote, with its fingerprint; None when the apply recorded
    nothing (a run from before fingerprints): then only ``force`` restores anything."""
    force: bool = False
    """Restore the backup over items changed since the apply too (typed separately)."""
    was: dict[bytes, str | None] = field(default_factory=dict)
    """Items whose last write was part of an atomic batch: the value each holds if that
    batch never went out (None: absent), which the run left there too."""
    kept: list[str] = field(default_factory=list)
    """``<item> changed after the apply``, for every item left alone."""
    forced: list[str] = field(default_factory=list)
    """Items restored over a change made after the apply (only with ``force``)."""

    def wrote(self, item: bytes) -> Any:
        """The fingerprint the run left on ``item``, or :data:`NOT_WRITTEN`."""
        if self.written is None:
            return NOT_WRITTEN
        return self.written.get(item, NOT_WRITTEN)

    def decide(self, item: bytes, now: str | None, before: Any = ...) -> str:
        """What to do with ``item``, whose value's fingerprint is ``now``:

        * ``restore``: it is as the run left it; put the backup back;
        * ``already``: it holds the backup's value (restored before, or never changed);
        * ``untouched``: the run never wrote it: not the rollback's to change;
        * ``keep``: changed by someone else since the apply: left alone;
        * ``force``: changed since, but ``force`` says restore it anyway.

        An item the run created for itself (absent before the run) is decided with
        ``before=None``: ``restore`` then means remove it.
        """
        left = self.wrote(item)
        if left is NOT_WRITTEN and self.written is not None:
            return "untouched"
        if left is not NOT_WRITTEN and now == left:
            return "restore"
        if before is not ... and now == before:
            return "already"
        if item in self.was and now == self.was[item]:
            return "restore"  # its last batch never went out: as the batch before left it
        return "force" if self.force else "keep"

    def settle(self, name: str, verdict: str) -> None:
        """Count a decision once its unit has gone through (``name`` as shown)."""
        if verdict == "keep":
            why = (
                "changed after the apply"
                if self.written is not None
                else ("not recorded as written by the run")
            )
            self.kept.append(f"{name} {why}")
        elif verdict == "force":
            self.forced.append(name)


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
    params: dict[str, Any] = field(default_factory=dict)
    """The action's parameters, resolved: for a writer that binds them itself (SQL
    ``%(name)s`` placeholders) rather than finding them in place in :attr:`do`."""
    declared: dict[str, Any] = field(default_factory=dict)
    """The ``do`` block as the playbook wrote it, ``{$param: name}`` where a parameter
    goes: a writer that must know which arguments came from a parameter (a shell
    command's, never an option) reads it here."""
    options: dict[str, Any] = field(default_factory=dict)
    """What the responder's own config says, never the playbook: ``target`` (as
    :attr:`playbook.targets.Target.options`: ``privileged``, trusted ``functions``) and
    ``unreadable`` (folders a sandboxed command must not read: the incidents' data)."""


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
    records_writes: ClassVar[bool] = False
    """True when :meth:`apply` records every item in its ``written`` file ahead of the
    write: then an apply that recorded nothing wrote nothing, and its rollback restores
    only what is still as it left it. A writer that does not can only roll back with
    ``force``."""

    def has_backup(self, request: WriteRequest) -> bool:
        """Whether this action keeps a backup to roll back from. False only where the
        playbook says so explicitly (a shell action's ``backup: none``): the engine then
        puts "no backup" in the confirmation phrase, offers no rollback and refuses one.
        The backup stage still runs and records what it saw (a file with no rows)."""
        return True

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
    def apply(
        self, request: WriteRequest, plan: Plan, ctx: RunContext, written: Written | None = None
    ) -> dict[str, int]:
        """Make the change, in batches, reporting progress; return what was done, counted.

        Before each batch goes out, :meth:`Written.record` every item it writes and
        :meth:`Written.commit`; an item the backup saw differently now is not written
        (someone changed it since: overwriting it would lose their change, and a rollback
        would put the stale backup over it).

        Raises:
            RunError: the change failed; what was written so far is described.
        """

    @abstractmethod
    def rollback(
        self,
        request: WriteRequest,
        backup: Iterator[dict[str, Any]],
        ctx: RunContext,
        undo: Undo | None = None,
    ) -> dict[str, int]:
        """Put back each item of ``backup`` (rows as :meth:`backup` wrote them) that is
        still as this run (``request.run_id``) left it, per :meth:`Undo.decide`, and
        clean up what the run created for itself. ``undo`` None restores every item (what
        ``force`` does). Counts include ``kept``. Safe to run twice."""


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
