"""Finding adapters: the ``playbook.adapters`` entry-point group.

The built-in adapters are registered in ``pyproject.toml`` exactly as a third-party
package would register its own, so there is one way in. Listing names imports nothing;
an adapter's module (and its driver) is imported only when a diagnostic of its kind runs.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from playbook.adapters.base import Adapter
from playbook.adapters.writers import Writer
from playbook.errors import UsageError

GROUP = "playbook.adapters"
WRITERS = "playbook.writers"


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
    found = _entry_points().get(kind)
    if found is None:
        installed = ", ".join(names()) or "none"
        raise UsageError(
            f"No adapter for {kind!r} diagnostics is installed.",
            f"Installed: {installed}. Adapters register in the {GROUP!r} entry-point group.",
        )
    try:
        cls = found.load()
    except ImportError as exc:
        raise UsageError(
            f"The {kind!r} adapter cannot be loaded: {exc}.",
            "Reinstall playbook (pip install playbook) so its drivers are present.",
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise UsageError(f"The {kind!r} entry point ({found.value}) is not an Adapter class.")
    return cls()


def load_writer(kind: str) -> Writer:
    """A fresh writer for guarded actions of ``kind``.

    Raises:
        UsageError: no writer is installed for ``kind``, or it failed to load.
    """
    found = _entry_points(WRITERS).get(kind)
    if found is None:
        installed = ", ".join(sorted(_entry_points(WRITERS))) or "none"
        raise UsageError(
            f"No writer for {kind!r} actions is installed.",
            f"Installed: {installed}. Writers register in the {WRITERS!r} entry-point group.",
        )
    try:
        cls = found.load()
    except ImportError as exc:
        raise UsageError(
            f"The {kind!r} writer cannot be loaded: {exc}.",
            "Reinstall playbook (pip install playbook) so its drivers are present.",
        ) from None
    if not (isinstance(cls, type) and issubclass(cls, Writer)):
        raise UsageError(f"The {kind!r} entry point ({found.value}) is not a Writer class.")
    return cls()
