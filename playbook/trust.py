"""Which folders' ``playbook.toml`` the responder trusts, and with which contents.

A ``playbook.toml`` beside a playbook sits in a runbooks repository that other people
can edit. It is used only after the responder ran ``playbook trust DIR``, which records
the folder's real path and the SHA-256 of the file's bytes as they were then. A file
that changed since (a pull, someone's edit) is ignored again until it is trusted again.

The record lives in the responder's own config directory
(``~/.config/playbook/trusted.json``), not in the data directory: the config directory is
the one place the threat model trusts, while the data directory can be moved with
``--data-dir`` or ``PLAYBOOK_HOME`` onto a folder other people can write to, where a
forged record would defeat the check.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import platformdirs

from playbook.errors import UsageError
from playbook.fileio import atomic_write

CONFIG_NAME = "playbook.toml"
RECORD_NAME = "trusted.json"
FORMAT_VERSION = 1

Status = Literal["trusted", "changed", "untrusted"]


def config_dir() -> Path:
    """The responder's own config directory (``$XDG_CONFIG_HOME/playbook`` on Linux)."""
    return Path(platformdirs.user_config_dir("playbook", appauthor=False))


def record_file() -> Path:
    return config_dir() / RECORD_NAME


@dataclass(frozen=True)
class Trusted:
    """One trusted folder: its real path, its file's SHA-256 then, when and by whom."""

    folder: str
    sha256: str
    trusted_at: str
    by: str


def real_folder(folder: Path | str) -> Path:
    """The folder's real path: symlinks resolved, so one folder has one record."""
    return Path(os.path.realpath(Path(folder).expanduser()))


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def records() -> list[Trusted]:
    """Every trusted folder, as recorded (an unreadable record file is an error)."""
    path = record_file()
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}.") from None
    try:
        data = json.loads(raw)
        if data.get("version") != FORMAT_VERSION:
            raise ValueError(f"version {data.get('version')!r}, expected {FORMAT_VERSION}")
        return [Trusted(**entry) for entry in data["folders"]]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(
            f"{path}: the trust record is damaged ({exc}).",
            "Nothing is trusted until it is repaired or removed; then trust the folders again.",
        ) from None


def _save(entries: list[Trusted]) -> None:
    path = record_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "version": FORMAT_VERSION,
        "about": "Folders whose playbook.toml you trusted (playbook trust DIR); "
        "a file whose SHA-256 differs is ignored.",
        "folders": [asdict(e) for e in sorted(entries, key=lambda e: e.folder)],
    }
    atomic_write(path, json.dumps(document, indent=2, ensure_ascii=False) + "\n")


def status(folder: Path, data: bytes) -> Status:
    """Whether ``data`` (the bytes of ``folder``'s playbook.toml, as read for use) is
    what the responder trusted in that folder."""
    where = str(real_folder(folder))
    for entry in records():
        if entry.folder == where:
            return "trusted" if entry.sha256 == digest(data) else "changed"
    return "untrusted"


def trust(folder: Path, data: bytes, by: str) -> Trusted:
    """Record ``folder`` as trusted with ``data`` as its playbook.toml's content."""
    where = str(real_folder(folder))
    entry = Trusted(where, digest(data), datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), by)
    _save([e for e in records() if e.folder != where] + [entry])
    return entry


def revoke(folder: Path) -> bool:
    """Forget ``folder``; False when it was not trusted."""
    where = str(real_folder(folder))
    kept = records()
    remaining = [e for e in kept if e.folder != where]
    if len(remaining) == len(kept):
        return False
    _save(remaining)
    return True
