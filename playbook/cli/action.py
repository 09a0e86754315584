"""``playbook action``: guarded actions, the only way playbook changes data.

Each stage runs in a thread (:func:`~playbook.cli.cancel.cancellable`) so Ctrl-C or
SIGTERM cancels it; the stage records its own events, each one complete. The loader,
the service and the adapters are imported inside the commands for start-up speed.
"""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

import click

from playbook.cli.cancel import cancellable
from playbook.cli.context import (
    CliApp,
    json_option,
    parse_sets,
    pass_app,
    target_option,
    targets_for,
)
from playbook.cli.output import emit_json
from playbook.cli.terminal import ask
from playbook.core.text import inline
from playbook.errors import ExitCode, PlaybookError

ITEMS_LISTED = 20
"""Items a rollback kept, or overwrote, listed by name (the count covers them all)."""


@click.group()
def action() -> None:
    """Guarded actions: the only way playbook changes data.

    Every run goes through the same stages, each recorded in the incident's timeline:
    dry run, backup, typed confirmation, lock, apply, verify, and rollback when apply or
    verify fails (or later, with `playbook action rollback`).
    """


@action.command("list")
@click.argument("playbook", required=False)
@json_option
def action_list(playbook: str | None, as_json: bool) -> None:
    """List PLAYBOOK's guarded actions (default: data-integrity): what, where, how verified."""
    from playbook.adapters.plugins import load_playbook as load
    from playbook.resources import resolve_playbook

    pb = load(resolve_playbook(playbook)).playbook
    rows = [
        {
            "id": name,
            "title": a.title,
            "kind": a.kind,
            "operation": a.do.operation,
            "target": a.target,
            # as the run asks it (GuardedRun.phrase): an action that keeps no backup
            # says so in its phrase
            "confirm": (a.confirm or a.target)
            + (" no backup" if getattr(a.do, "backup", None) == "none" else ""),
            "lock": a.lock.name or f"playbook:action:{name}",
            "verify": [v.diagnostic for v in a.verify],
            "params": {p: spec.type for p, spec in a.params.items()},
            "caution": a.caution,
        }
        for name, a in pb.actions.items()
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"{pb.id} has no guarded actions.")
    for row in rows:
        click.secho(
            f"{row['id']}  [{row['kind']} {row['operation']} on {row['target']}]", bold=True
        )
        click.echo(f"  {inline(row['title'])}")
        click.echo(f"  confirm by typing: {inline(row['confirm'])}    lock: {inline(row['lock'])}")
        if row["verify"]:
            click.echo(f"  verified by: {', '.join(row['verify'])}")
        if row["caution"]:
            click.echo(f"  caution: {inline(row['caution'])}")


@action.command("run")
@click.argument("incident")
@click.argument("action_id", metavar="ACTION")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="A parameter. Repeatable.")
@target_option
@click.option("--dry-run", is_flag=True, help="Stop after the dry run; nothing is written.")
@click.option(
    "--confirm",
    "phrase",
    metavar="PHRASE",
    help="The confirmation phrase (the target's name unless the action names one).",
)
@click.option("--yes", "-y", is_flag=True, help="Not enough on its own for an action that writes.")
@click.option(
    "--rollback-on-failure",
    is_flag=True,
    help="Without asking, roll back from the backup if apply or verify fails.",
)
@pass_app
def action_run(
    app: CliApp,
    incident: str,
    action_id: str,
    sets: tuple[str, ...],
    targets: tuple[str, ...],
    dry_run: bool,
    phrase: str | None,
    yes: bool,
    rollback_on_failure: bool,
) -> None:
    """Run the guarded ACTION for INCIDENT: dry run, backup, confirm, lock, apply, verify.

    The dry run shows what would change. The backup saves everything the action will
    touch beside the incident (file, size and SHA-256 recorded); no backup, no apply.
    Then you type the target's name (or --confirm it); --yes alone is refused. The lock
    keeps two responders (or a responder and a script) from running it at once. Apply
    runs in batches with progress; Ctrl-C cancels. Verify re-runs the action's
    diagnostics; if apply or verify fails, rollback from the backup is offered.

    Exit status: 0 applied and verified (or dry run shown), 7 not confirmed, 9 lock held
    by someone else, 8 apply (or a rollback) failed, 11 verify failed.
    """
    service = app.service
    state = service.get(incident).state
    known = targets_for(service, state, targets)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if yes and not phrase and not dry_run:
        raise _refused(
            "--yes is not enough for an action that writes.",
            "Pass --confirm with the target's name; `playbook action list` shows the phrase.",
        )
    run = service.start_action(state.id, action_id, parse_sets(sets), known, _progress_line())
    if phrase is not None and not run.confirms(phrase) and not dry_run:
        # Known wrong before anything runs: say so now rather than after the backup.
        raise _refused(
            f"Not confirmed: --confirm must be {run.phrase!r}, exactly; nothing was run.",
            run.mismatch_hint(phrase).strip(),
        )
    click.echo(
        f"{run.action_id} on {run.target.name} ({run.target.shown}), run {run.run_id}", err=True
    )
    if run.action.caution:
        click.secho(f"caution: {inline(run.action.caution)}", fg="yellow", err=True)
    plan = _staged(run, run.dry_run, "dry run")
    _print_plan(plan)
    if dry_run:
        click.echo("Dry run only: nothing was written.")
        return
    if plan.empty:
        click.echo("Nothing to change; nothing was written.")
        return
    backup = _staged(run, run.backup, "backup")
    click.echo(
        f"backup: {backup['rows']:,} items, {backup['bytes']:,} bytes -> {backup['file']}\n"
        f"        sha256 {backup['sha256']}"
    )
    if phrase is None:
        if not interactive:
            raise _refused(
                f"Not confirmed: pass --confirm {run.phrase} to apply (nothing was written).",
                "The dry run and the backup are recorded in the incident.",
            )
        phrase = ask(f"Type {run.phrase!r} to apply (anything else stops here)")
    run.confirm(phrase)
    outcome = _staged(run, run.apply, "apply")  # a held lock ends here, exit 9
    for result in outcome.verify:
        colour = "green" if result["verdict"] == "pass" else "red"
        click.secho(f"verify {result['verdict'].upper():5} {result['diagnostic']}", fg=colour)
        for line in result.get("checks", []):
            click.echo(f"  {inline(line)}")
    if outcome.ok:
        click.secho(f"Applied and verified: {_counts(outcome.numbers)}", fg="green", bold=True)
        return
    click.secho(f"{outcome.stage} failed: {inline(outcome.error)}", fg="red", bold=True)
    code = ExitCode.UNHEALTHY if outcome.stage == "verify" else ExitCode.RUN_FAILED
    # After Ctrl-C nothing more runs: a rollback is only offered for later.
    wanted = rollback_on_failure and not run.cancelled
    if not wanted and interactive and outcome.rollback_offered and not run.cancelled:
        typed = ask(f"Roll back from the backup? Type {run.phrase!r} to roll back (Enter to keep)")
        wanted = run.confirms(typed)
    if not outcome.rollback_offered:
        click.echo("Nothing of this run is left on the target, so there is nothing to roll back.")
    elif wanted:
        numbers = _staged(run, run.rollback, "rollback")
        click.secho(f"Rolled back from the backup: {_counts(numbers)}", fg="yellow", bold=True)
        _print_left_alone(run, state.id)
    else:
        click.echo(
            f"To roll back later: playbook action rollback {state.id} {run.run_id} "
            f"--confirm {run.phrase}"
        )
    sys.exit(code)


@action.command("rollback")
@click.argument("incident")
@click.argument("run_id", metavar="RUN")
@target_option
@click.option("--confirm", "phrase", metavar="PHRASE", help="The confirmation phrase.")
@click.option(
    "--force",
    is_flag=True,
    help="Also restore items changed since the apply (their newer data is lost); "
    "confirmed with its own phrase, 'force <phrase>'.",
)
@pass_app
def action_rollback(
    app: CliApp,
    incident: str,
    run_id: str,
    targets: tuple[str, ...],
    phrase: str | None,
    force: bool,
) -> None:
    """Put back what run RUN of a guarded action on INCIDENT changed, from its backup.

    Only items still as the run left them are restored: each is compared with the
    fingerprint its apply recorded, under the lock, and one changed since (a collector
    wrote to it) is kept and named. A run that wrote nothing has nothing to roll back.
    The backup file's SHA-256 must match the one recorded; you confirm with the same
    phrase as for the action, or with 'force <phrase>' for --force. `playbook action
    status` lists the runs.

    Exit status: 0 rolled back (any item kept is listed), 4 nothing to roll back (the
    run wrote nothing) or the target now points elsewhere, 7 not confirmed, 9 lock held,
    8 the rollback failed.
    """
    service = app.service
    state = service.get(incident).state
    known = targets_for(service, state, targets)
    run = service.resume_action(state.id, run_id, known, _progress_line())
    wanted = run.force_phrase if force else run.phrase
    if phrase is None:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise _refused(f"Not confirmed: pass --confirm {shlex.quote(wanted)} to roll back.")
        why = " over changes made since the apply (they are lost)" if force else ""
        phrase = ask(f"Type {wanted!r} to roll back {run.action_id} run {run.run_id}{why}")
    numbers = _staged(run, lambda: run.rollback(phrase, force), "rollback")
    click.secho(f"Rolled back from the backup: {_counts(numbers)}", fg="yellow", bold=True)
    _print_left_alone(run, state.id)


def _print_left_alone(run: Any, incident: str) -> None:
    """The items a rollback kept (changed since the apply) or, forced, overwrote."""
    for label, names, colour in (
        ("kept", run.kept, "yellow"),
        ("overwritten", run.overwritten, "red"),
    ):
        if not names:
            continue
        head = f"{label} {len(names):,}: "
        for n, name in enumerate(names[:ITEMS_LISTED]):
            click.secho(f"{head if n == 0 else ' ' * len(head)}{inline(name)}", fg=colour)
        if len(names) > ITEMS_LISTED:
            click.echo(f"{' ' * len(head)}… {len(names):,} in all")
    if run.kept:
        click.echo(
            "They were left as they are. To restore them anyway (their newer data is "
            f"lost): playbook action rollback {incident} {run.run_id} --force --confirm "
            f"{shlex.quote(run.force_phrase)}"
        )


@action.command("status")
@click.argument("incident")
@json_option
@pass_app
def action_status(app: CliApp, incident: str, as_json: bool) -> None:
    """List INCIDENT's guarded action runs: how far each got, and whether it can roll back."""
    state = app.service.get(incident).state
    rows = [
        {
            "run": r.run,
            "action": r.action,
            "target": r.target,
            "status": r.status,
            "can_roll_back": r.can_roll_back,
            "backup": r.backup,
            "stages": [f"{s['stage']} {s['outcome']}" for s in r.stages],
            "who": [{"stage": stage, "actor": actor} for stage, actor in r.who_ran()],
        }
        for r in state.actions.values()
    ]
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo(f"Incident {state.id} has no guarded action runs.")
    for row in rows:
        click.secho(
            inline(f"{row['run']}  {row['action']} on {row['target']}: {row['status']}"), bold=True
        )
        click.echo(f"  {' -> '.join(row['stages'])}")
        click.echo(inline("  by: " + ", ".join(f"{w['stage']} — {w['actor']}" for w in row["who"])))
        if row["can_roll_back"]:
            click.echo(f"  roll back: playbook action rollback {state.id} {row['run']}")


def _progress_line() -> Any:
    live = sys.stderr.isatty()

    def progress(p: Any) -> None:
        if live:
            click.echo(f"\r{p.describe()[:100]:<100}", nl=False, err=True)

    return progress


def _staged(run: Any, stage: Any, name: str) -> Any:
    """Run one stage in a thread so Ctrl-C (or SIGTERM) can cancel it; its result, or its
    error. The stage records its own events from the thread, each one complete. With
    PLAYBOOK_DEBUG set, an error the writer did not expect (recorded as a sentence that
    names its class) is shown with its traceback."""

    def cancel() -> None:
        click.echo(f"\ncancelling the {name}…", err=True)
        run.cancel()

    try:
        return cancellable(stage, f"action-{name}", cancel)
    finally:
        if sys.stderr.isatty():
            click.echo("", err=True)
        if run.surprise is not None and os.environ.get("PLAYBOOK_DEBUG"):
            import traceback

            traceback.print_exception(run.surprise, file=sys.stderr)
            run.surprise = None  # shown once


def _refused(title: str, message: str = "") -> PlaybookError:
    """A refusal before anything was written (exit 7). The adapters package is imported
    here, when one is raised: at start-up it would cost about a millisecond and a half."""
    from playbook.adapters.base import Refused

    return Refused(title, message)


def _print_plan(plan: Any) -> None:
    click.secho(f"dry run: {_counts(plan.counts)}", bold=True)
    for line in plan.items:
        click.echo(f"  {inline(line)}")
    if plan.touches > len(plan.items):
        click.echo(f"  … {plan.touches:,} items in all")
    for warning in plan.warnings:
        click.secho(f"  warning: {inline(warning)}", fg="yellow")


def _counts(numbers: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in numbers.items())
