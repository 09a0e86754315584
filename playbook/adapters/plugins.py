"""Finding adapters (the ``playbook.adapters`` entry-point group) and writers
(``playbook.writers``), and the playbook model they make together.

The built-in adapters are registered in ``pyproject.toml`` exactly as a third-party
package registers its own, so there is one way in. Listing names imports nothing; an
adapter's class is imported when a playbook is read (it says what a diagnostic of its
kind holds: :meth:`~playbook.adapters.base.Adapter.diagnostic_shape`), and its driver
only when one of its diagnostics runs. A writer's module (and its driver) is imported only
when one of its actions runs: for the model, only its name counts.

:func:`playbook_model` is the one place the kinds meet the playbook format:
:mod:`playbook.core.model` names no kind, and everything that reads a playbook goes
through :func:`load_playbook`, :func:`parse_playbook` or :func:`playbook_model`.
"""

from __future__ import annotations

import functools
import threading
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from playbook.adapters.base import Adapter
from playbook.adapters.writers import Writer
from playbook.errors import UsageError

if TYPE_CHECKING:  # pydantic: imported when the model is built, not when names are listed
    from playbook.core.loader import LoadedPlaybook
    from playbook.core.model import ActionBase, DiagnosticBase, Playbook

GROUP = "playbook.adapters"
WRITERS = "playbook.writers"
_T = TypeVar("_T", Adapter, Writer)

KINDS_HELP = {
    "diagnostics": f"an adapter package adds its kind through the {GROUP!r} entry-point group",
    "actions": (
        f"an action kind needs an adapter that describes its actions and a writer in the "
        f"{WRITERS!r} entry-point group"
    ),
}
"""What the loader adds to the message for an unknown kind, by field."""


def _entry_points(group: str = GROUP) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def names() -> list[str]:
    """The kinds an adapter is installed for, without importing any of them."""
    return sorted(_entry_points())


def writer_names() -> list[str]:
    """The kinds a writer is installed for, without importing any of them."""
    return sorted(_entry_points(WRITERS))


def load(kind: str) -> Adapter:
    """A fresh adapter for diagnostics of ``kind``.

    Raises:
        UsageError: no adapter is installed for ``kind``, or it failed to load.
    """
    return _class(GROUP, kind, Adapter, "adapter", "diagnostics")()


def load_writer(kind: str) -> Writer:
    """A fresh writer for guarded actions of ``kind``.

    Raises:
        UsageError: no writer is installed for ``kind``, or it failed to load.
    """
    return _class(WRITERS, kind, Writer, "writer", "actions")()


def _class(group: str, kind: str, base: type[_T], what: str, of: str) -> type[_T]:
    registered = _entry_points(group)
    found = registered.get(kind)
    if found is None:
        installed = ", ".join(sorted(registered)) or "none"
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
    return cls


_building = threading.Lock()
"""Held while the model is assembled: two threads asking at once get one model."""


def playbook_model() -> type[Playbook]:
    """The playbook model: a diagnostic kind for every installed adapter, and an action
    kind for every one that describes its actions and has a writer installed.

    Built once per process and kept (a few hundredths of a second: the adapters' classes
    are imported, not their drivers). An adapter that cannot be loaded, or whose model
    does not fit, is left out; a playbook using its kind is told why
    (``Playbook.unavailable``) instead of every playbook failing to load.
    """
    with _building:
        return _assembled()


@functools.cache
def _assembled() -> type[Playbook]:
    from playbook.core.model import playbook_model as assemble  # deferred: pydantic

    diagnostics: list[type[DiagnosticBase]] = []
    actions: list[type[ActionBase]] = []
    unavailable: dict[str, str] = {}
    # Each look at the installed packages' metadata costs milliseconds: once per group.
    adapters, writers = _entry_points(GROUP), set(_entry_points(WRITERS))
    for kind in sorted(adapters):
        try:
            cls = adapters[kind].load()
        except Exception as exc:  # a third party's module: its failure must not stop ours
            unavailable[kind] = f"its module cannot be imported ({type(exc).__name__}: {exc})"
            continue
        if not (isinstance(cls, type) and issubclass(cls, Adapter)):
            unavailable[kind] = f"{adapters[kind].value} is not an Adapter class"
            continue
        try:
            diagnostic = cls.diagnostic_shape(kind)
            action = cls.action_shape(kind) if kind in writers else None
        except (TypeError, ValueError) as exc:  # a model that does not fit (a plugin's bug)
            unavailable[kind] = f"its model does not fit ({exc})"
            continue
        if diagnostic is not None:
            diagnostics.append(diagnostic)
        if action is not None:
            actions.append(action)
    return assemble(diagnostics, actions, kinds_help=KINDS_HELP, unavailable=unavailable)


def refresh() -> None:
    """Forget the model built so far: the next :func:`playbook_model` looks at the
    installed adapters again (after one is installed into a running process, as the
    tests do)."""
    with _building:
        _assembled.cache_clear()


def load_playbook(path: Path | str) -> LoadedPlaybook:
    """Read and validate a playbook file against :func:`playbook_model`.

    Raises:
        PlaybookInvalid: every problem, each with file, line and key.
    """
    from playbook.core.loader import load

    return load(path, playbook_model())


def parse_playbook(text: str, file: str = "<playbook>", base: Path | None = None) -> Playbook:
    """Validate playbook text against :func:`playbook_model` (``base``: the file it came
    from, for the checks that look beside it).

    Raises:
        PlaybookInvalid: every problem, each with file, line and key.
    """
    from playbook.core.loader import parse

    return parse(text, file, base, model=playbook_model())
