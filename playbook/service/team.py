"""Team mode: the shared store's state as a responder sees it, and the one check that
keeps outside effects from running on a stale view.

With a shared store the log sits behind a local outbox
(:class:`~playbook.store.outbox.OutboxStore`): while the server cannot be reached, work
goes on locally and is shared on reconnect. That is fine for ticks and notes, never for
what acts on the world: a guarded action (or a published status message) decided on a
view that misses a teammate's last minute is the seed 002 lesson. :func:`require_online`
is the single gate for those; it syncs first, and refuses while anything is unshared.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playbook.errors import ExitCode, PlaybookError, StoreError
from playbook.store import EventStore, StoreUnavailable


class Offline(PlaybookError):
    """An outside effect was refused: the shared store cannot be reached, or events are
    not yet shared."""

    exit_code = ExitCode.REFUSED


def outbox_of(store: EventStore) -> Any | None:
    """The store's outbox when it is the shared store (None: a local store)."""
    return store if hasattr(store, "sync") and hasattr(store, "shared") else None


def offline_line(store: EventStore, reachable: bool = True) -> str | None:
    """``offline: 3 events not yet shared`` (the header's and the CLI's words), or None
    when everything is shared (or the store is local). ``reachable`` False: a follower's
    feed lost the server (before any write noticed)."""
    outbox = outbox_of(store)
    if outbox is None:
        return None
    try:
        waiting = outbox.pending()
    except StoreError:
        return None
    offline = outbox.offline or not reachable
    if not offline and not waiting:
        return None
    state = "offline" if offline else "not yet synced"
    noun = "event" if waiting == 1 else "events"
    return f"{state}: {waiting} {noun} not yet shared"


def require_online(store: EventStore, what: str) -> None:
    """Return only when ``store`` is local, or shared, reachable and holding nothing
    unshared (it syncs first): call it before anything with an outside effect runs.

    Raises:
        Offline: naming ``what`` and why (the server's error, redacted; or how many
            events wait). Nothing was run.
    """
    outbox = outbox_of(store)
    if outbox is None:
        return
    report = outbox.sync() if outbox.pending() else None
    reason = report.error if report is not None else ""
    if not reason:
        try:
            outbox.shared.ping()
        except StoreUnavailable as exc:
            outbox._went_offline(exc)
            reason = exc.title
    waiting = outbox.pending()
    if reason or waiting:
        why = reason or f"{waiting} events are not yet shared"
        raise Offline(
            f"Refused to start {what} while offline: {why}",
            "Nothing was run. Acting on a view that misses a teammate's latest changes "
            "is how a fix becomes the next incident; run it again once the shared store "
            "answers (`playbook store status`).",
        )


@dataclass
class StoreStatus:
    """``playbook store status``."""

    store: str
    """The store as it may be shown (password masked)."""
    source: str
    shared: bool
    reachable: bool = True
    error: str = ""
    schema: int | None = None
    schema_expected: int | None = None
    pending: int = 0
    conflicts: list[Any] = field(default_factory=list)
    """Events refused on sync (:class:`playbook.store.merge.Refused`), not dismissed."""


def store_status(store: EventStore, shown: str, source: str) -> StoreStatus:
    """Which store, whether it answers, its schema, and what waits in the outbox."""
    outbox = outbox_of(store)
    if outbox is None:
        return StoreStatus(shown, source, shared=False)
    from playbook.store.pgschema import SCHEMA_VERSION

    out = StoreStatus(shown, source, shared=True, schema_expected=SCHEMA_VERSION)
    try:
        out.schema = outbox.shared.schema_version()
    except StoreUnavailable as exc:
        out.reachable, out.error = False, exc.title
    except StoreError as exc:
        out.error = exc.title
    out.pending = outbox.pending()
    out.conflicts = outbox.conflicts()
    return out


def push(local_dir: Path, store: EventStore) -> list[Any]:
    """Copy the local SQLite incidents in ``local_dir`` to the shared store (see
    :func:`playbook.store.merge.push`)."""
    from playbook.store.merge import push as merge_push
    from playbook.store.sqlite import SQLiteStore

    outbox = outbox_of(store)
    if outbox is None:
        raise StoreError(
            "`playbook store push` copies to a shared store, and none is chosen.",
            "Give one with --store, PLAYBOOK_STORE or [store] url in your own playbook.toml.",
        )
    local = SQLiteStore(local_dir)
    try:
        return merge_push(local, outbox.shared)
    finally:
        local.close()
