"""A guarded action's runs on an incident: a new one started, an earlier one rebuilt
from its events for a rollback, and each stage recorded in the incident's log.

This is where a :class:`~playbook.service.actions.GuardedRun` gets its few
dependencies: an :class:`IncidentLog` for its stages, a verify runner bound to the
incident and its targets, the backup folder and the actor's name. The run itself never
sees the store or the service.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from playbook.adapters import plugins
from playbook.core import events as ev
from playbook.core.diagnostics import resolve
from playbook.core.state import ActionRun, IncidentState
from playbook.errors import Conflict, NotFound
from playbook.service.actions import (
    Cancellable,
    GuardedRun,
    NothingToRollBack,
    StageHook,
    must_have_written,
    new_run_id,
)
from playbook.service.context import Context, append_one, check_actor, get
from playbook.service.diagnostics import (
    execute_diagnostic,
    prepare_diagnostic,
    record_diagnostic,
)
from playbook.service.incidents import playbook_of
from playbook.service.targets import target_for
from playbook.targets import check_scheme

if TYPE_CHECKING:
    from playbook.adapters.base import Progress
    from playbook.targets import Target


@dataclass(frozen=True)
class IncidentLog:
    """The :class:`StageLog` of one incident in a store."""

    ctx: Context
    incident_id: str

    def append(self, payload: dict[str, Any]) -> IncidentState:
        return record_stage(self.ctx, self.incident_id, payload)

    def read(self) -> IncidentState:
        return get(self.ctx, self.incident_id).state


def record_stage(ctx: Context, ref: str, payload: dict[str, Any]) -> IncidentState:
    """Append one stage of a guarded action (also after the incident was resolved)."""
    return append_one(ctx, ref, ev.ACTION_STAGE, payload)


def start(
    ctx: Context,
    ref: str,
    action_id: str,
    given: Mapping[str, object],
    targets: Mapping[str, Target],
    progress: Callable[[Progress], None] | None = None,
    hook: StageHook | None = None,
    run_id: str | None = None,
) -> GuardedRun:
    """A new run of ``action_id`` on incident ``ref``: checked, nothing sent yet.

    Raises:
        NotFound: no such action in the incident's playbook.
        UsageError: a parameter or the target is missing or wrong.
        Conflict: the incident is closed.
    """
    check_actor(ctx)  # before anything runs: every stage is recorded under this name
    state = get(ctx, ref).state
    if state.closed_at is not None:
        raise Conflict(f"Incident {state.id} is closed.", "Open a new incident to change data.")
    pb = playbook_of(state)
    action = pb.actions.get(action_id)
    if action is None:
        hint = difflib.get_close_matches(action_id, list(pb.actions), n=1)
        raise NotFound(
            f"No action {action_id!r} in playbook {pb.id!r}.",
            f"Did you mean {hint[0]}?" if hint else "`playbook action list` lists them.",
        )
    values = resolve(action.params, given)
    target = target_for(state, action.target, targets)
    writer = plugins.load_writer(action.kind)
    # A writer that declares its schemes is held to them as a diagnostic is (a shell
    # action that runs only locally must declare {"local"}, so ssh:// is refused).
    check_scheme(target, action.kind, getattr(writer, "schemes", None))
    now = ctx.clock.now()
    incident_id = state.id

    def verify(
        diagnostic_id: str, given: Mapping[str, object], started: Callable[[Cancellable], None]
    ) -> dict[str, Any]:
        prepared = prepare_diagnostic(ctx, incident_id, diagnostic_id, given, targets)
        started(prepared)  # from here a cancel of the action stops this diagnostic
        payload = execute_diagnostic(ctx, prepared)
        record_diagnostic(ctx, prepared.incident_id, payload)
        return payload

    return GuardedRun(
        IncidentLog(ctx, incident_id),
        verify,
        incident_id,
        action_id,
        action,
        values,
        target,
        writer,
        run_id or new_run_id(f"{now:%Y%m%dt%H%M%S}"),
        ctx.backup_dir,
        ctx.actor,
        progress,
        hook,
    )


def resume(
    ctx: Context,
    ref: str,
    run_id: str,
    targets: Mapping[str, Target],
    progress: Callable[[Progress], None] | None = None,
    hook: StageHook | None = None,
) -> GuardedRun:
    """An earlier run, rebuilt from its events so it can be rolled back.

    Raises:
        NotFound: the incident has no run ``run_id``.
        NothingToRollBack: the run wrote nothing (or made no backup).
        Conflict: the target now points at another server.
    """
    check_actor(ctx)
    state = get(ctx, ref).state
    found: ActionRun | None = state.actions.get(run_id)
    if found is None:
        matches = [r for r in state.actions if r.startswith(run_id)]
        if len(matches) == 1:
            found = state.actions[matches[0]]
    if found is None:
        known = ", ".join(state.actions) or "none"
        raise NotFound(f"Incident {state.id} has no action run {run_id!r}.", f"Runs: {known}.")
    dry = found.stage("dry_run") or {}
    run = start(
        ctx,
        state.id,
        found.action,
        dry.get("params", {}),
        targets,
        progress,
        hook,
        run_id=found.run,
    )
    where = dry.get("where")
    if where and where != run.target.shown:
        raise Conflict(
            f"Run {found.run} was backed up from {where}, but target {run.target.name!r} is "
            f"now {run.target.shown}; its backup is not rolled back onto another server.",
            f"Point --target {run.target.name}=… (or playbook.toml) at {where} to roll back.",
        )
    run.backup_info = found.backup
    if run.backup_info is None:
        raise NothingToRollBack(
            f"Run {found.run} of {found.action} made no backup, so it cannot be rolled back.",
            "It never applied either: a run without a backup stops before apply.",
        )
    must_have_written(run, found)
    return run
