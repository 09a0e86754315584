"""Which targets an incident may reach: the one place that decides it.

Where a target's URI comes from is :mod:`playbook.targets`' business (the command line,
the responder's own config, a trusted folder). Which of them a command may use *for an
incident* is decided here, for the CLI and the app alike:

- a real incident reaches the configured targets, with ``--target`` overrides;
- a drill reaches only the servers of its own sandbox, running in this process, and
  never a configured target (they may be production): without its sandbox, nothing;
- a drill's sandbox serves only the incident it was made for.

:func:`targets_for` applies the rule to the whole set before a command starts, and
:func:`target_for` again to the one target a diagnostic or an action names, so a caller
that built its own set of targets cannot send a drill to a configured server either.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from playbook.core.state import IncidentState
from playbook.errors import UsageError
from playbook.targets import SANDBOX, Target, Targets, load_targets, resolve_target


class Sandbox(Protocol):
    """A drill's sandbox running in this process (a :class:`playbook.drill.run.DrillRun`)."""

    @property
    def targets(self) -> Targets:
        """Its servers, each a target whose source is :data:`playbook.targets.SANDBOX`."""
        ...


def targets_for(
    state: IncidentState | None,
    overrides: Sequence[str] = (),
    sandbox: Sandbox | None = None,
    *,
    serves: str | None = None,
    playbook_path: Path | None = None,
) -> Targets:
    """The targets a command on ``state``'s incident may use.

    Args:
        state: the incident, or None before there is one (``playbook run`` checking its
            ``--target`` options, a new incident in a drill's app).
        overrides: ``--target name=URI`` pairs.
        sandbox: the drill's sandbox running in this process, if any.
        serves: the incident ``sandbox`` was made for: the only one it serves.
        playbook_path: the playbook whose folder may hold a ``playbook.toml``
            (default: the incident's own playbook).

    Returns:
        The targets, with the notices loading them produced (an untrusted folder's
        ``playbook.toml`` ignored): the caller shows them.

    Raises:
        UsageError: the incident is a drill whose sandbox is not running here, or
            another incident than the sandbox's asks for it; a ``--target`` is malformed.
    """
    if state is not None and state.drill is not None:
        if sandbox is None or state.id != serves:
            raise UsageError(
                f"Refused: {state.id} is a drill, and its sandbox is not running here.",
                "A drill's diagnostics and actions run only on its own sandbox, inside "
                "`playbook drill`; the configured targets are not its sandbox's, and it "
                "never reaches them.",
            )
        return sandbox.targets
    if sandbox is not None:
        if state is not None and state.id != serves:
            raise UsageError(
                f"This app runs a drill; its sandbox serves {serves} only.",
                "Open other incidents with `playbook run` or `playbook resume`.",
            )
        return sandbox.targets
    if playbook_path is None and state is not None and state.playbook_path:
        playbook_path = Path(state.playbook_path)
    return load_targets(playbook_path, overrides)


def target_for(state: IncidentState, name: str, targets: Mapping[str, Target]) -> Target:
    """The target called ``name`` for ``state``'s incident: for a drill, only one of its
    sandbox's (see the module's docstring).

    Raises:
        UsageError: no such target, or a drill names one that is not its sandbox's.
    """
    target = resolve_target(name, targets)
    if state.drill is not None and target.source != SANDBOX:
        raise UsageError(
            f"Refused: this incident is a drill, and target {name!r} is not its sandbox's.",
            "A drill's diagnostics and actions run only inside `playbook drill`, "
            "on the servers started for it.",
        )
    return target
