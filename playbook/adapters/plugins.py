"""Finding adapters: the ``playbook.adapters`` entry-point group.

The built-in adapters are registered in ``pyproject.toml`` exactly as a third-party
package would register its own, so there is one way in. Listing names imports nothing;
an adapter's module (and its driver) is imported only when a diagnostic of its kind runs.
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from playbook.adapters.base import Adapter
from playbook.errors import UsageError

GROUP = "playbook.adapters"


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


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
