"""Finding adapters: the ``playbook.adapters`` entry-point group.

The built-in adapters are registered in ``pyproject.toml`` exactly as a third-party
package would register its own, so there is one way in. Listing names imports nothing;
an adapter's module (and its driver) is imported only when a diagnostic of its kind runs.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points
from typing import TypeVar

from playbook.adapters.base import Adapter
from playbook.adapters.writers import Writer
from playbook.errors import UsageError

GROUP = "playbook.adapters"
WRITERS = "playbook.writers"
_T = TypeVar("_T", Adapter, Writer)


def _entry_points(group: str = GROUP) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names() -> list[str]:
    """The kinds an adapter is installed for, without importing any of them."""
    return sorted(_entry_points())


def load(kind: str) -> Adapter:
    """A fresh adapter for diagnostics of ``kind``.

    Raises:
        UsageError: no adapter is installed for ``kind``, or it failed to load.
    """
    return _load(GROUP, kind, Adapter, "adapter", "diagnostics")


def load_writer(kind: str) -> Writer:
    """A fresh writer for guarded actions of ``kind``.

    Raises:
        UsageError: no writer is installed for ``kind``, or it failed to load.
    """
    return _load(WRITERS, kind, Writer, "writer", "actions")


def _load(group: str, kind: str, base: type[_T], what: str, of: str) -> _T:
    found = _entry_points(group).get(kind)
    if found is None:
        installed = ", ".join(sorted(_entry_points(group))) or "none"
        raise UsageError(
            f"No {what} for {kind!r} {of} is installed.",
            f"Installed: {installed}. {what.capitalize()}s register in the {group!r} "
            "entry-point group.",
        )
    try:
        cls = found.load()
    except ImportError as exc:
        raise UsageError(
            f"The {kind!r} {what} cannot be loaded: {exc}.",
            "Reinstall playbook (pip install playbook) so its drivers are present.",
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise UsageError(
            f"The {kind!r} entry point ({found.value}) is not {'an' if what[0] in 'aeiou' else 'a'} "
            f"{base.__name__} class."
        )
    return cls()
