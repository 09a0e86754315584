"""Which store a responder's `playbook` writes to: the one choice the CLI and the app share.

Most trusted first, the first one given wins:

1. ``--store URL`` on the command line;
2. the ``PLAYBOOK_STORE`` environment variable;
3. ``[store] url = "…"`` in the responder's **own** ``playbook.toml``
   (:func:`playbook.targets.responder_config`).

In all three, ``${ENV}`` is expanded as for targets, by one call in :func:`choose` (the
variable's value is then remembered as a secret), so no source is read differently.

Never a runbooks folder's ``playbook.toml``: a repository must not redirect the incident
log (and with it every note and piece of evidence) to a server of its choosing, trusted
folder or not. :func:`folder_store_notice` says so when such a file has a ``[store]``.

Nothing given: the local SQLite file in the data directory, as always. A
``postgresql://`` URL (or a libpq ``key=value`` string) gives the team's shared log behind
a local outbox (:class:`~playbook.store.outbox.OutboxStore`), so a responder keeps working
when the server cannot be reached. Every URL's secrets are remembered by
:mod:`playbook.redaction` before anything can print it.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from playbook import redaction
from playbook.errors import StoreError, UsageError
from playbook.targets import expand, folder_file, read_config, responder_config

if TYPE_CHECKING:
    from playbook.store import EventStore

ENV_VAR = "PLAYBOOK_STORE"
OUTBOX_DIR = "outbox"
"""Under the data directory: one folder per shared store (an outbox remembers its store)."""


@dataclass(frozen=True)
class StoreChoice:
    """Where the log is, and who said so."""

    url: str
    """The URL as given, secrets included ("" for the local SQLite file). Never shown."""
    source: str
    """``--store``, ``PLAYBOOK_STORE``, the config file's path and key, or "default"."""

    @property
    def shared(self) -> bool:
        return bool(self.url)

    @property
    def shown(self) -> str:
        """The URL as it may be shown: password and secret parameters masked."""
        return redaction.redact(self.url) if self.url else "local SQLite file"


def _own_config_url() -> tuple[str, str] | None:
    """The ``[store] url`` of the responder's own config, unexpanded, and where it is."""
    path = responder_config()
    data = read_config(path)
    if data is None:
        return None
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: {exc}") from None
    table = doc.get("store")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise UsageError(f'{path}: [store] must be a table with url = "…".')
    unknown = sorted(set(table) - {"url"})
    if unknown:
        raise UsageError(f"{path}: store.{unknown[0]}: unknown key.", "[store] takes url.")
    raw = table.get("url", "")
    if not isinstance(raw, str):
        raise UsageError(f'{path}: store.url must be a string, e.g. url = "postgresql://…".')
    return (raw.strip(), f"{path}: store.url") if raw.strip() else None


def choose(flag: str | None = None, env: Mapping[str, str] | None = None) -> StoreChoice:
    """The store the responder chose (see the module's docstring).

    Raises:
        UsageError: the config file is malformed, a ``${ENV}`` is unset, or the URL is
            not one of a store we have (naming where it came from, never its value).
    """
    env = os.environ if env is None else env
    given: tuple[str, str] | None
    if flag is not None and flag.strip():
        given = (flag.strip(), "--store")
    elif env.get(ENV_VAR, "").strip():
        given = (env[ENV_VAR].strip(), ENV_VAR)
    else:
        given = _own_config_url()
    # One expansion for the three sources: PLAYBOOK_STORE once sent "${ALICE_PW}" as the
    # password while --store expanded it.
    choice = StoreChoice(expand(given[0], env, given[1]), given[1]) if given else None
    choice = choice or StoreChoice("", "default")
    if choice.url:
        redaction.remember_uri(choice.url)  # before anything could print it
        scheme = choice.url.partition("://")[0].lower() if "://" in choice.url else ""
        if scheme not in ("postgresql", "postgres") and (scheme or "=" not in choice.url):
            raise UsageError(
                f"The store given by {choice.source} is not a PostgreSQL URL "
                f"({scheme or 'no scheme'}://…; the value is not shown).",
                "Give postgresql://user@host/database (TLS: add ?sslmode=verify-full), or "
                "nothing for the local SQLite file.",
            )
    return choice


def outbox_dir(data_dir: Path, choice: StoreChoice) -> Path:
    """The local folder of ``choice``'s outbox: one per shared store, named by a hash of
    what identifies it as libpq reads the URL (:func:`playbook.store.postgres.identity`:
    hosts, ports, database, user), so every spelling of one store (``?sslmode=…`` added,
    a default port written out, ``key=value`` instead of a URI) finds the same waiting
    events, and the name holds no secret.

    An outbox made by an earlier playbook (named by a hash of the redacted URL, which it
    also kept inside) is taken over when this store has none yet: the first such folder
    whose URL names the same store is renamed, and the URL inside it replaced by the key,
    so events waiting in it are not left behind by an upgrade.

    Raises:
        StoreError: libpq cannot read the URL.
    """
    # Imported here: psycopg costs start-up time that a SQLite user must not pay.
    from playbook.store.outbox import adopt, kept_server
    from playbook.store.postgres import identity

    key = identity(choice.url)
    root = data_dir / OUTBOX_DIR
    folder = root / hashlib.sha256(key.encode()).hexdigest()[:16]
    if not folder.exists() and root.is_dir():
        for older in sorted(root.iterdir()):
            kept = kept_server(older)
            if kept is not None and kept != key and _names(kept, key, identity):
                adopt(older, folder, key)
                break
    return folder


def _names(kept: str, key: str, identity: Callable[[str], str]) -> bool:
    """Whether the (redacted) URL an older outbox kept names the store ``key`` names."""
    try:
        return identity(kept) == key
    except StoreError:
        return False


def open_store(data_dir: Path, choice: StoreChoice) -> EventStore:
    """The store ``choice`` names: SQLite in ``data_dir``, or the shared PostgreSQL log
    behind an outbox in ``data_dir`` (nothing is connected yet: a server that is down
    makes the first command work offline, not fail)."""
    if not choice.shared:
        from playbook.store.sqlite import SQLiteStore

        return SQLiteStore(data_dir)
    # Imported here: psycopg costs start-up time that a SQLite user must not pay.
    from playbook.store.outbox import OutboxStore
    from playbook.store.postgres import PostgresStore

    return OutboxStore(PostgresStore(choice.url), outbox_dir(data_dir, choice))


def folder_store_notice(playbook_path: Path | None) -> str | None:
    """A notice when the ``playbook.toml`` beside a playbook has a ``[store]`` table,
    which is never used (see the module's docstring); None otherwise."""
    beside = folder_file(playbook_path)
    if beside is None:
        return None
    try:
        data = read_config(beside)
        doc = tomllib.loads(data.decode("utf-8")) if data else {}
    except (UsageError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # the targets' loader already says why this file is ignored
    if "store" not in doc:
        return None
    return (
        f"ignoring [store] in {beside}: a runbooks folder never chooses where incidents are "
        f"logged (use --store, {ENV_VAR} or [store] in {responder_config()})"
    )
