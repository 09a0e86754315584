"""``playbook drill``: rehearse a runbook's incident on a sandbox, in the app or headless.

The drill package, the loader and the service are imported inside the functions: they
bring pydantic and the sandbox (a third of a second), which `import playbook.cli` must
not pay for (tests/test_architecture.py). The app is opened through
:func:`playbook.cli.run.open_app`, the one place the CLI imports it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from playbook.cli.context import CliApp, pass_app
from playbook.cli.output import emit_json
from playbook.cli.run import open_app
from playbook.cli.terminal import require_terminal
from playbook.core.text import inline
from playbook.errors import ExitCode, UsageError


def _drill_service(app: CliApp) -> Any:
    """A service over the drills' own store: drills never sit among real incidents."""
    from playbook.drill import drills_dir
    from playbook.resources import default_data_dir
    from playbook.service import Service
    from playbook.store.sqlite import SQLiteStore

    store = SQLiteStore(drills_dir(app.data_dir or default_data_dir()))
    return Service(store, actor=app.actor)


def _say(line: str) -> None:
    click.echo(f"  {line}", err=True)


@click.command()
@click.argument("runbook", required=False)
@click.option(
    "--speed",
    type=click.FloatRange(1, 3600),
    default=None,
    help="Run the incident clock N times faster (timers, warnings, breaches); "
    "evidence keeps real times. Default 1, or the script's.",
)
@click.option(
    "--headless", is_flag=True, help="No app: play a drill script and print the scorecard."
)
@click.option(
    "--script",
    type=click.Path(path_type=Path, dir_okay=False, exists=True),
    help="The drill script for --headless (default: the one the runbook names).",
)
@click.option(
    "--export",
    "export_to",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write the drill's Markdown export (timeline and scorecard) to this file at the end.",
)
@click.option("--list", "list_only", is_flag=True, help="List the runbooks that have a drill.")
@click.option("--json", "as_json", is_flag=True, help="With --headless or --list: print JSON.")
@pass_app
def drill(
    app: CliApp,
    runbook: str | None,
    speed: float | None,
    headless: bool,
    script: Path | None,
    export_to: Path | None,
    list_only: bool,
    as_json: bool,
) -> None:
    """Rehearse RUNBOOK's incident on a sandbox (default: the data-integrity playbook).

    Starts real servers on free local ports just for the drill (redis-server and
    PostgreSQL from PATH or the drill extra; mongomock stands in for MongoDB and says
    so), loads the drill's data, takes its fingerprint, injects the fault, and opens an
    incident marked as a drill, kept apart from real incidents. At the end the
    scorecard says how the response went and whether the data came back to its
    fingerprint. The sandbox is removed when the drill ends, however it ends.

    With --headless, plays a drill script (the runbook's own, or --script) for CI.
    Exit status: 0 every step found what it expected and the data was restored,
    1 it was not, 12 the sandbox could not be set up.
    """
    if list_only:
        _list(app, as_json)
        return
    if script is not None and not headless:
        raise UsageError("--script is for --headless; the app is driven by you.")
    from playbook.adapters.plugins import load_playbook as load
    from playbook.resources import resolve_playbook

    loaded = load(resolve_playbook(runbook))
    spec = loaded.playbook.drill
    if spec is None:
        raise UsageError(
            f"Playbook {loaded.playbook.id!r} has no drill.",
            "`playbook drill --list` lists the runbooks that have one.",
        )
    parsed_script = None
    if headless:
        parsed_script = _script_for(loaded, script)
        speed = speed or parsed_script.speed
    else:  # before the sandbox starts
        require_terminal("playbook drill", "--headless plays the drill's script without one.")
    service = _drill_service(app)
    from playbook.drill.run import DrillRun

    click.echo(f"Drill: {inline(spec.title)} ({loaded.playbook.id})", err=True)
    run = DrillRun.start(loaded, _say)
    try:
        state = run.open(service, speed or 1.0)
        _say(f"incident {state.id} opened (a drill; speed ×{speed or 1:g})")
        if headless:
            code = _headless(service, run, state.id, parsed_script, as_json)
        else:
            code = _in_app(service, run, state.id)
        if export_to is not None:
            from playbook.fileio import atomic_write

            atomic_write(export_to, service.export(state.id, "markdown"))
            click.echo(f"Wrote {export_to}.", err=True)
    finally:
        run.stop()
    sys.exit(code)


def _script_for(loaded: Any, script: Path | None) -> Any:
    """The drill script to play: ``--script`` (the responder's own choice), or the one the
    runbook names, which must stay inside the runbook's folder (checked again here, as
    the file is about to be read: it may have changed since `validate`)."""
    from playbook.core.loader import drill_script_path
    from playbook.drill.script import load_script

    spec = loaded.playbook.drill
    if script is None:
        if spec.script is None:
            raise UsageError(
                f"Playbook {loaded.playbook.id!r} names no drill script.",
                "Pass --script FILE, or add drill.script to the runbook.",
            )
        try:
            script = drill_script_path(loaded.path, spec.script)
        except ValueError as why:
            raise UsageError(
                f"{loaded.path}: drill.script: drill script {why}; a drill script must be "
                "inside the playbook's folder.",
                "Nothing was read from it. Move the script beside the runbook, or pass "
                "--script FILE yourself.",
            ) from None
    return load_script(script)


def _headless(service: Any, run: Any, incident_id: str, script: Any, as_json: bool) -> ExitCode:
    from playbook.drill.script import play

    verdict = play(service, run, incident_id, script, sys.stderr if as_json else sys.stdout)
    state = service.get(incident_id).state
    if as_json:
        emit_json(
            {
                "incident": incident_id,
                "ok": verdict.passed,
                "steps": [r.__dict__ for r in verdict.steps],
                "restored": verdict.restored,
                "scorecard": _scorecard(service, state),
                "setup": state.drill.setup if state.drill else {},
            }
        )
    else:
        click.echo(_scorecard_text(service, state))
        click.secho(
            "Drill passed: the runbook found the fault and brought the data back."
            if verdict.passed
            else "Drill FAILED: see the step marked FAIL above and the scorecard.",
            fg="green" if verdict.passed else "red",
            bold=True,
        )
    return ExitCode.OK if verdict.passed else ExitCode.PLAYBOOK_FAILED


def _in_app(service: Any, run: Any, incident_id: str) -> ExitCode:
    """The drill in the app; then the data is compared with its fingerprint. Exits as the
    app did: the responder, not a script, judges a drill played by hand."""
    code = open_app(service, run.loaded.path, incident_id, drill=run)
    click.echo("Comparing the data with its fingerprint…", err=True)
    state, _result = run.check(service, incident_id)
    click.echo(_scorecard_text(service, state))
    click.echo(
        f"The drill {incident_id} is kept apart from real incidents: `playbook drill --list` "
        f"lists it, `playbook --drills export {incident_id}` exports it.",
        err=True,
    )
    return code


def _scorecard(service: Any, state: Any) -> dict[str, Any]:
    from playbook.core.scorecard import scorecard

    return scorecard(state, service.clock.now()).to_dict()


def _scorecard_text(service: Any, state: Any) -> str:
    from playbook.core.scorecard import scorecard
    from playbook.render.scorecard import scorecard_text

    return scorecard_text(scorecard(state, service.clock.now()))


def _list(app: CliApp, as_json: bool) -> None:
    from playbook.adapters.plugins import load_playbook as load
    from playbook.core.loader import PlaybookInvalid
    from playbook.resources import builtin_runbooks

    rows = []
    for name, path in builtin_runbooks().items():
        try:
            spec = load(path).playbook.drill
        except PlaybookInvalid as exc:
            click.echo(f"{name}: invalid ({exc.title}); `playbook validate` says why.", err=True)
            continue
        if spec is None:
            continue
        rows.append(
            {
                "runbook": name,
                "title": spec.title,
                "services": dict(spec.services),
                "script": spec.script,
            }
        )
    past = []
    for state in _drill_service(app).incidents():
        last = state.drill_checks[-1] if state.drill_checks else None
        past.append(
            {
                "id": state.id,
                "runbook": state.playbook_id,
                "title": state.title,
                "status": state.status,
                "opened_at": state.opened_at.isoformat() if state.opened_at else None,
                "restored": None if last is None else last.restored,
            }
        )
    if as_json:
        emit_json({"runbooks": rows, "drills": past})
        return
    click.echo("Runbooks with a drill (playbook drill RUNBOOK):")
    for row in rows:
        services = ", ".join(f"{t}: {k}" for t, k in row["services"].items())
        click.echo(f"  {row['runbook']:<18} {inline(row['title'])}  [{services}]")
    if not past:
        click.echo("No drills run yet.")
        return
    click.echo("Drills run (kept apart from real incidents):")
    for d in past:
        data = {None: "not checked", True: "data restored", False: "data NOT restored"}
        click.echo(f"  {d['id']}  {d['runbook']:<18} {d['status']:<12} {data[d['restored']]}")
