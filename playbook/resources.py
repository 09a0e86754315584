"""Where the built-in runbooks are (their templates inside), from a wheel or a checkout.

A wheel carries them as package data under ``playbook/_data`` (see pyproject.toml);
a checkout (or an editable install) has them beside the package.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from playbook.errors import NotFound

DEFAULT_PLAYBOOK = "data-integrity"


def data_root() -> Path:
    """The directory holding ``runbooks/`` (each playbook's templates are inside it)."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "_data", package.parent):
        if (candidate / "runbooks").is_dir():
            return candidate
    raise NotFound(
        "The built-in runbooks are missing from this installation.",
        f"Looked in {package / '_data'} and {package.parent}; reinstall playbook.",
    )


def builtin_runbooks() -> dict[str, Path]:
    """Built-in playbooks by name (file name without ``.yaml``)."""
    folder = data_root() / "runbooks"
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def resolve_playbook(ref: str | None) -> Path:
    """A playbook path from a path or a built-in name (the default when ``ref`` is None)."""
    if ref is None:
        ref = DEFAULT_PLAYBOOK
    path = Path(ref).expanduser()
    if path.is_file():
        return path
    builtins = builtin_runbooks()
    if ref in builtins:
        return builtins[ref]
    if path.suffix in (".yaml", ".yml") or os.sep in ref:
        raise NotFound(f"No playbook file at {ref}.")
    names = ", ".join(builtins) or "none"
    raise NotFound(f"No playbook named {ref!r}.", f"Built-in playbooks: {names}; or give a path.")


def default_data_dir() -> Path:
    """Where incidents are kept: ``$PLAYBOOK_HOME``, else the user's data directory."""
    home = os.environ.get("PLAYBOOK_HOME")
    if home:
        return Path(home).expanduser()
    return Path(platformdirs.user_data_dir("playbook", appauthor=False))
