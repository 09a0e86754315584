"""The `playbook` command: thin click commands over :mod:`playbook.service`.

Errors are mapped to exit codes in one place (:class:`_Group`): a
:class:`~playbook.errors.PlaybookError` prints its title and advice and exits with its
code; click's usage errors exit 2; anything unexpected prints one line (set
``PLAYBOOK_DEBUG=1`` for the traceback) and exits 70. Text that came from a playbook,
a note or a database is printed with control characters escaped.

SIGTERM and SIGHUP (the terminal closed) are handled like Ctrl-C, in the same place: they
raise :class:`Terminated` (a ``KeyboardInterrupt``) in the main thread, so a command that
cancels on Ctrl-C cancels on them too, cleans up (a shell diagnostic's private folder)
and appends nothing or complete events (each store append is one transaction, and the
store refuses an incomplete payload). Exit 130 after Ctrl-C, 143 after SIGTERM, 129
after SIGHUP. A SIGHUP that was ignored when playbook started (``nohup``) stays ignored.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click

from playbook.cli.terminal import (
    refuse_undecodable,
    require_terminal,
    safe_output,
    strict_stdin,
)
from playbook.core.durations import format_duration
from playbook.core.state import IncidentState
from playbook.core.text import inline, json_escaped, one_line, printable
from playbook.core.timers import BREACHED, WARNING, Timer
from playbook.errors import PlaybookError, UsageError

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_SIGNAL_BASE = 128
"""A command ended by signal N exits 128 + N, as a shell reports it: 143 SIGTERM, 129 SIGHUP."""


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP arrived: handled exactly like Ctrl-C, with its own exit code."""

    def __init__(self, signum: int = signal.SIGTERM) -> None:
        super().__init__()
        self.signum = signum


def _terminated(signum: int, frame: object) -> NoReturn:
    raise Terminated(signum)


ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)
"""Signals that end a command the way Ctrl-C does (see the module's docstring)."""


ITEMS_LISTED = 20
"""Items a rollback kept, or overwrote, listed by name (the count covers them all)."""


def _fail(error: PlaybookError) -> NoReturn:
    click.secho(f"error: {printable(error.title)}", fg="red", err=True)
    if error.message:
        click.echo(printable(error.message), err=True)
    sys.exit(error.exit_code)


class _Group(click.Group):
    """The one place errors become messages and exit codes, and the one place text that
    is not UTF-8 (in the arguments, on standard input) is refused."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        refuse_undecodable(ctx, args)
        strict_stdin()
        safe_output()
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for signum in ENDING_SIGNALS:
                if signal.getsignal(signum) is not signal.SIG_IGN:  # nohup keeps it ignored
                    previous[signum] = signal.signal(signum, _terminated)
        try:
            return super().invoke(ctx)
        except PlaybookError as error:
            _fail(error)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # The reader (head, less) went away: not an error of ours.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(0)
        except KeyboardInterrupt as exc:
            if isinstance(exc, Terminated):
                name = signal.Signals(exc.signum).name
                with contextlib.suppress(OSError):  # after SIGHUP the terminal may be gone
                    click.echo(
                        f"terminated ({name}); everything shown as recorded was recorded.",
                        err=True,
                    )
                sys.exit(EXIT_SIGNAL_BASE + exc.signum)
            click.echo("interrupted; everything shown as recorded was recorded.", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except Exception as exc:
            if os.environ.get("PLAYBOOK_DEBUG"):
                raise
            from playbook.redaction import scrub

            click.secho(
                f"internal error: {type(exc).__name__}: {inline(scrub(str(exc)))}",
                fg="red",
                err=True,
            )
            click.echo("This is a bug in playbook; PLAYBOOK_DEBUG=1 shows the traceback.", err=True)
            sys.exit(EXIT_INTERNAL)
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)


class _App:
    """What the commands share, built lazily so `validate` and `schema` need no store."""

    def __init__(self, data_dir: Path | None, actor: str | None) -> None:
        self.data_dir = data_dir
        self.actor = actor
        self._service: Any = None

    @property
    def service(self) -> Any:
        if self._service is None:
            from playbook.resources import default_data_dir
            from playbook.service import Service
            from playbook.store.sqlite import SQLiteStore

            store = SQLiteStore(self.data_dir or default_data_dir())
            self._service = Service(store, actor=self.actor)
        return self._service


pass_app = click.make_pass_decorator(_App)


def _load_targets(playbook_path: Path | None, overrides: Sequence[str]) -> Any:
    """The targets a command may use; a configuration file that was ignored (an untrusted
    folder's playbook.toml) is said on stderr, with the command that would trust it."""
    from playbook.targets import load_targets

    known = load_targets(playbook_path, overrides)
    for notice in known.notices:
        click.secho(f"notice: {printable(notice)}", fg="yellow", err=True)
    return known


def _emit_json(data: Any) -> None:
    """``data`` as JSON on standard output; control, format and separator characters
    written as ``\\u`` escapes, as in the JSON export (:func:`json_escaped`)."""
    click.echo(json_escaped(json.dumps(data, indent=2, ensure_ascii=False, default=str)))


def _local(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return f"{moment.astimezone():%Y-%m-%d %H:%M:%S %Z} ({moment:%H:%M}Z)"


def _state_json(app: _App, state: IncidentState) -> dict[str, Any]:
    from playbook.core.events import format_utc

    timers = app.service.timers(state)

    def t(timer: Timer | None) -> dict[str, Any] | None:
        if timer is None:
            return None
        return {
            "label": timer.label,
            "state": timer.state,
            "stopped": timer.stopped,
            "elapsed_seconds": round(timer.elapsed, 3),
            "target_seconds": timer.target,
            "remaining_seconds": round(timer.remaining, 3),
            "deadline": format_utc(timer.deadline),
            "escalate_to": timer.escalate_to,
        }

    return {
        "id": state.id,
        "title": state.title,
        "playbook": state.playbook_id,
        "status": state.status,
        "severity": state.severity,
        "phase": state.phase,
        "opened_at": format_utc(state.opened_at) if state.opened_at else None,
        "acknowledged_at": format_utc(state.acknowledged_at) if state.acknowledged_at else None,
        "resolved_at": format_utc(state.resolved_at) if state.resolved_at else None,
        "closed_at": format_utc(state.closed_at) if state.closed_at else None,
        "triggers": state.triggers,
        "done": sorted(state.done),
        "items": len(state.checklist),
        "notes": len(state.notes),
        "status_messages": len(state.messages),
        "escalations": [e.to for e in state.escalations],
        "next_escalation": state.next_escalation(),
        "timers": {
            "response": t(timers.response),
            "resolution": t(timers.resolution),
            "phase": t(timers.phase),
            "status_update": t(timers.status_update),
        },
        "last_seq": state.last_seq,
        "unreadable": [
            {"seq": u.seq, "type": u.type, "why": u.why, "kept": u.kept} for u in state.unreadable
        ],
    }


def _timer_line(timer: Timer) -> str:
    """A timer on one line; its label (a level id, a phase title) and the person to
    escalate to come from the playbook's snapshot, so the line is shown literally."""
    return inline(_timer_text(timer))


def _timer_text(timer: Timer) -> str:
    if timer.stopped:
        verdict = "BREACHED" if timer.state == BREACHED else "met"
        return f"{timer.label:<28} {verdict:<9} took {format_duration(timer.elapsed)} of {format_duration(timer.target)}"
    left = timer.remaining
    when = f"{format_duration(left)} left" if left >= 0 else f"{format_duration(-left)} over"
    line = (
        f"{timer.label:<28} {timer.state.upper():<9} {format_duration(timer.elapsed)} used, {when}"
    )
    if timer.escalate_to:
        line += f" — escalate to {timer.escalate_to}"
    return line


def _timer_color(timer: Timer) -> str | None:
    return {BREACHED: "red", WARNING: "yellow"}.get(timer.state)


def _print_summary(app: _App, state: IncidentState, *, items: str = "phase") -> None:
    # Everything here was read from the log (a hand edit can put anything in it).
    click.secho(f"{inline(state.id)}  {inline(state.title)}", bold=True)
    click.echo(
        inline(
            f"  playbook {state.playbook_id} · {state.severity} · {state.status} · "
            f"phase {state.phase}"
        )
    )
    click.echo(f"  opened {_local(state.opened_at)}")
    for problem in state.unreadable:
        click.secho(f"  ! {printable(problem.describe())}", fg="yellow")
    if state.acknowledged_at:
        click.echo(f"  acknowledged {_local(state.acknowledged_at)}")
    if state.resolved_at:
        click.echo(f"  resolved {_local(state.resolved_at)}")
    click.echo("")
    for timer in app.service.timers(state).all():
        click.secho("  " + _timer_line(timer), fg=_timer_color(timer))
    click.echo("")
    scenario_ids = {s.get("id") for s in state.snapshot.get("scenarios", [])}
    for section in state.sections:
        refs = [i["ref"] for s in section["steps"] for i in s["items"]]
        done = sum(1 for r in refs if r in state.done)
        unfollowed = section["id"] in scenario_ids and section["id"] not in state.scenarios
        if unfollowed and not done and items != "all":
            continue
        marker = "▶" if section["id"] == state.phase else " "
        click.echo(f" {marker} {inline(section['title']):<52} {done:>3}/{len(refs)}")
        show = items == "all" or (items == "phase" and section["id"] == state.phase)
        if show:
            for step in section["steps"]:
                click.echo(inline(f"      {step['title']}  [{section['id']}.{step['id']}]"))
                for item in step["items"]:
                    mark = "x" if item["ref"] in state.done else " "
                    click.echo(
                        inline(f"        [{mark}] {item['text']}  ({item['ref'].split('.')[-1]})")
                    )
    if state.notes:
        click.echo("")
        click.echo(f"  {len(state.notes)} note(s); last: {inline(state.notes[-1].text)[:70]}")


def _report(app: _App, state: IncidentState, as_json: bool, message: str) -> None:
    if as_json:
        _emit_json(_state_json(app, state))
    else:
        click.echo(printable(message))  # it quotes the state: ids and levels from the log


json_option = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
target_option = click.option(
    "--target",
    "targets",
    multiple=True,
    metavar="NAME=URI",
    help="Where a named target is (overrides every playbook.toml). ${ENV} is expanded. Repeatable.",
)


@click.group(
    cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path, file_okay=False),
    envvar="PLAYBOOK_HOME",
    help="Where incidents are kept (default: the user's data directory; env PLAYBOOK_HOME).",
)
@click.option("--actor", envvar="PLAYBOOK_ACTOR", help="Who is acting (default: $USER).")
@click.option(
    "--drills",
    is_flag=True,
    help="Work on drills instead of real incidents (they are kept apart), "
    "e.g. `playbook --drills export ID`.",
)
@click.version_option(package_name="playbook", message="%(prog)s %(version)s")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None, actor: str | None, drills: bool) -> None:
    """Run incident-response playbooks from the terminal.

    Every change to an incident is an event, written to disk before it is shown
    as done. `playbook run` opens the app; the other commands drive an incident
    headless, for scripts and for when the app is not at hand.
    """
    if drills:
        from playbook.drill import drills_dir
        from playbook.resources import default_data_dir

        data_dir = drills_dir(data_dir or default_data_dir())
    ctx.obj = _App(data_dir, actor)


# ------------------------------------------------------------------------------ playbooks


@main.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
def validate(files: Sequence[Path], quiet: bool) -> None:
    """Check playbook files; print every problem as file:line:column: key: message.

    Exits 0 when all are valid, 1 when any is not, 2 on usage errors.
    """
    from playbook.core.loader import PlaybookInvalid, load

    bad = 0
    for file in files:
        try:
            loaded = load(file)
        except PlaybookInvalid as invalid:
            bad += 1
            for problem in invalid.problems:
                click.echo(printable(str(problem)), err=True)
            continue
        template_problems = _template_problems(loaded)
        if template_problems:
            bad += 1
            for problem in template_problems:
                click.echo(inline(problem), err=True)
            continue
        if not quiet:
            pb = loaded.playbook
            # The title and the file name come from a runbook repository: shown literally.
            click.echo(
                f"{inline(str(file))}: ok — {inline(pb.title)} (version {pb.version}): "
                f"{len(pb.phases)} phases, "
                f"{len(pb.checklist())} checklist items, {len(pb.diagnostics)} diagnostics, "
                f"{len(pb.actions)} guarded action{'' if len(pb.actions) == 1 else 's'}, "
                f"{len(pb.communications.templates)} templates"
                + (f", a drill ({inline(', '.join(pb.drill.services))})" if pb.drill else "")
            )
    sys.exit(1 if bad else 0)


def _template_problems(loaded: Any) -> list[str]:
    """Problems in a valid playbook's status templates that only parsing them finds (the
    loader, in the pure core, checks that they exist): a syntax error, or a lone
    surrogate written as an escape, which every render would refuse."""
    from playbook.errors import TemplateError
    from playbook.render.templates import unpaired_literals

    pb = loaded.playbook
    if not pb.communications.templates:
        return []
    problems: list[str] = []
    folder = loaded.template_dir
    for name, tmpl in pb.communications.templates.items():
        key = f"communications.templates.{name}.file"
        try:
            found = unpaired_literals(folder, tmpl.file)
        except TemplateError as error:
            why = f"{error.title}: {error.message}" if error.message else error.title
            problems.append(f"{folder / tmpl.file}:1:1: {key}: {why}")
            continue
        problems.extend(
            f"{folder / tmpl.file}:{line}:1: {key}: the template writes {shown}, a lone "
            "UTF-16 surrogate, which is not text; write the character itself"
            for line, shown in found
        )
    return problems


@main.command()
def schema() -> None:
    """Print the JSON Schema of the playbook format, for editors.

    Save it and point your editor's YAML support at it, e.g. with a first line
    `# yaml-language-server: $schema=playbook.schema.json`.
    """
    from playbook.core.model import Playbook

    document = Playbook.model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "playbook"
    _emit_json(document)


@main.command("playbooks")
@json_option
def list_playbooks(as_json: bool) -> None:
    """List the built-in playbooks."""
    from playbook.resources import builtin_runbooks

    found = builtin_runbooks()
    if as_json:
        _emit_json({name: str(path) for name, path in found.items()})
        return
    for name, path in found.items():
        click.echo(f"{name:<24} {path}")


@main.group()
def diag() -> None:
    """Diagnostics: the read-only checks a playbook's steps carry."""


@diag.command("list")
@click.argument("playbook", required=False)
@json_option
def diag_list(playbook: str | None, as_json: bool) -> None:
    """List PLAYBOOK's diagnostics (default: data-integrity): kind, target, parameters, checks.

    Diagnostics marked as writing are listed but never run as diagnostics.
    """
    from playbook.core.loader import load
    from playbook.resources import resolve_playbook

    pb = load(resolve_playbook(playbook)).playbook
    used: dict[str, list[str]] = {}
    for ref, step in pb.steps().items():
        for name in step.diagnostics:
            used.setdefault(name, []).append(ref)
    rows = []
    for name, d in pb.diagnostics.items():
        rows.append(
            {
                "id": name,
                "title": d.title,
                "kind": d.kind,
                "target": d.target,
                "writes": d.writes,
                "params": {
                    p: {"type": spec.type, "default": spec.default, "description": spec.description}
                    for p, spec in d.params.items()
                },
                "expect": [f"{e.metric} {e.op} {e.value} (else {e.verdict})" for e in d.expect],
                "used_by": used.get(name, []),
            }
        )
    if as_json:
        _emit_json(rows)
        return
    for row in rows:
        flag = "  WRITES: never run as a diagnostic" if row["writes"] else ""
        click.secho(f"{row['id']}  [{row['kind']} on {row['target']}]{flag}", bold=True)
        click.echo(f"  {inline(row['title'])}")
        for p, spec in row["params"].items():
            default = "required" if spec["default"] is None else f"default {spec['default']!r}"
            click.echo(f"  --set {p}=…  ({spec['type']}, {default})")
        for line in row["expect"]:
            click.echo(f"  healthy: {line}")
        if row["used_by"]:
            click.echo(f"  used by: {', '.join(row['used_by'])}")


# ------------------------------------------------------------------------------ the app


@main.command()
@click.argument("playbook", required=False)
@click.option("--resume", "resume", metavar="INCIDENT", help="Go straight into this incident.")
@target_option
@pass_app
def run(app: _App, playbook: str | None, resume: str | None, targets: tuple[str, ...]) -> None:
    """Open the app on PLAYBOOK (default: the data-integrity playbook).

    Start a new incident or resume an open one; the app walks you through severity,
    containment, investigation, recovery and restoration, keeps the timers, composes
    status messages and exports the timeline. Press ? on any screen for its keys.
    """
    from playbook.resources import resolve_playbook

    require_terminal(
        "playbook run",
        "The commands `playbook open`, `check`, `note`, … do "
        "everything the app does without one (`playbook --help` lists them).",
    )
    path = resolve_playbook(playbook)  # a missing file is an error here, not in the app
    service = app.service
    if resume:
        service.resolve_id(resume)  # so is an unknown incident
    from playbook.tui.app import run_app

    if targets:
        _load_targets(path, targets)  # a malformed --target is an error here, not in the app
    sys.exit(run_app(service, path, resume, targets))


EXIT_BY_VERDICT = {"pass": 0, "warn": 10, "fail": 11, "error": 8}
ROWS_PRINTED = 10
"""A run's first rows printed by `diag run` (the event keeps a few more; the file all)."""


@diag.command("run")
@click.argument("incident")
@click.argument("diagnostic")
@click.option("--set", "sets", multiple=True, metavar="NAME=VALUE", help="A parameter. Repeatable.")
@target_option
@json_option
@pass_app
def diag_run(
    app: _App,
    incident: str,
    diagnostic: str,
    sets: tuple[str, ...],
    targets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Run DIAGNOSTIC against its target and record the result as INCIDENT's evidence.

    Read-only: a query that could write or run code is refused before anything is sent,
    and a diagnostic the playbook marks as writing is never run. Targets come from
    --target, your config directory's playbook.toml ([targets] name = "URI"), or a
    playbook.toml beside the playbook once you trusted its folder (`playbook trust`).
    The full result is saved beside the incident with its SHA-256; the event keeps the
    verdict, the numbers and the first rows.

    Progress goes to stderr; Ctrl-C (or SIGTERM) cancels and records what arrived, marked
    partial and cancelled; a second one leaves without recording anything.
    Exit status: 0 pass, 10 warn, 11 fail, 8 error (unreachable, deadline, cancelled).
    """

    service = app.service
    state = service.get(incident).state
    known = _load_targets(Path(state.playbook_path) if state.playbook_path else None, targets)
    prepared = service.prepare_diagnostic(state.id, diagnostic, _parse_sets(sets), known)
    live = sys.stderr.isatty()
    shown: list[str] = []

    def progress(p: Any) -> None:
        text = f"{diagnostic}: {p.describe()}"
        if live:
            click.echo(f"\r{text[:100]:<100}", nl=False, err=True)
        shown.append(text)

    click.echo(
        f"Running {diagnostic} on {prepared.target} "
        f"(deadline {prepared.diagnostic.timeout} s; Ctrl-C cancels)…",
        err=True,
    )

    def cancel() -> None:
        # Ctrl-C or SIGTERM: the run stops and its evidence, complete and marked
        # cancelled, is recorded below.
        click.echo(f"\ncancelling {diagnostic}…", err=True)
        prepared.cancel()

    try:
        result = _cancellable(
            lambda: service.execute_diagnostic(prepared, progress), f"diag-{diagnostic}", cancel
        )
    finally:
        if live and shown:
            click.echo("", err=True)
    service.record_diagnostic(state.id, result)
    if as_json:
        _emit_json(result)
    else:
        _print_run(result)
    sys.exit(EXIT_BY_VERDICT.get(result["verdict"], 8))


def _print_run(run: dict[str, Any]) -> None:
    from playbook.core.evidence import numbers_of, shown_of

    colour = {"pass": "green", "warn": "yellow", "fail": "red", "error": "red"}
    verdict = run["verdict"]
    click.secho(
        f"{verdict.upper()}  {run['diagnostic']} on {run['target']}",
        fg=colour.get(verdict),
        bold=True,
    )
    if run["message"]:
        click.echo(f"  {inline(run['message'])}")
    for check in run["checks"]:
        click.echo(f"  {inline(check['text'])}")
    numbers = numbers_of(run)
    if numbers:
        click.echo(f"  numbers: {inline(numbers)[:400]}")
    click.echo(f"  {shown_of(run, ROWS_PRINTED)}")
    for row in run["rows"][:ROWS_PRINTED]:
        click.echo(f"    {inline(json.dumps(row, ensure_ascii=False))[:160]}")
    if run["file"]:
        click.echo(f"  full result: {run['file']}")
        click.echo(f"  sha256: {run['sha256']}")


# ------------------------------------------------------------------------------ actions


@main.group()
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
    from playbook.core.loader import load
    from playbook.resources import resolve_playbook

    pb = load(resolve_playbook(playbook)).playbook
    rows = [
        {
            "id": name,
            "title": a.title,
            "kind": a.kind,
            "operation": a.do.operation,
            "target": a.target,
            "confirm": a.confirm or a.target,
            "lock": a.lock.name or f"playbook:action:{name}",
            "verify": [v.diagnostic for v in a.verify],
            "params": {p: spec.type for p, spec in a.params.items()},
            "caution": a.caution,
        }
        for name, a in pb.actions.items()
    ]
    if as_json:
        _emit_json(rows)
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
    app: _App,
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
    known = _load_targets(Path(state.playbook_path) if state.playbook_path else None, targets)
    interactive = sys.stdin.isatty() and sys.stderr.isatty()
    if yes and not phrase and not dry_run:
        raise _refused(
            "--yes is not enough for an action that writes.",
            "Pass --confirm with the target's name; `playbook action list` shows the phrase.",
        )
    run = service.start_action(state.id, action_id, _parse_sets(sets), known, _progress_line())
    if phrase is not None and phrase.strip() != run.phrase and not dry_run:
        # Known wrong before anything runs: say so now rather than after the backup.
        raise _refused(f"Not confirmed: --confirm must be {run.phrase!r}; nothing was run.")
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
        phrase = click.prompt(
            f"Type {run.phrase!r} to apply (anything else stops here)",
            default="",
            show_default=False,
            err=True,
        )
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
    code = 11 if outcome.stage == "verify" else 8
    # After Ctrl-C nothing more runs: a rollback is only offered for later.
    wanted = rollback_on_failure and not run.cancelled
    if not wanted and interactive and outcome.rollback_offered and not run.cancelled:
        typed = click.prompt(
            f"Roll back from the backup? Type {run.phrase!r} to roll back (Enter to keep)",
            default="",
            show_default=False,
            err=True,
        )
        wanted = typed.strip() == run.phrase
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
    app: _App,
    incident: str,
    run_id: str,
    targets: tuple[str, ...],
    phrase: str | None,
    force: bool,
) -> None:
    """Put back what run RUN of a guarded action changed, from its recorded backup.

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
    known = _load_targets(Path(state.playbook_path) if state.playbook_path else None, targets)
    run = service.resume_action(state.id, run_id, known, _progress_line())
    wanted = run.force_phrase if force else run.phrase
    if phrase is None:
        if not (sys.stdin.isatty() and sys.stderr.isatty()):
            raise _refused(f"Not confirmed: pass --confirm {shlex.quote(wanted)} to roll back.")
        why = " over changes made since the apply (they are lost)" if force else ""
        phrase = click.prompt(
            f"Type {wanted!r} to roll back {run.action_id} run {run.run_id}{why}",
            default="",
            show_default=False,
            err=True,
        )
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
def action_status(app: _App, incident: str, as_json: bool) -> None:
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
        }
        for r in state.actions.values()
    ]
    if as_json:
        _emit_json(rows)
        return
    if not rows:
        click.echo(f"Incident {state.id} has no guarded action runs.")
    for row in rows:
        click.secho(
            inline(f"{row['run']}  {row['action']} on {row['target']}: {row['status']}"), bold=True
        )
        click.echo(f"  {' -> '.join(row['stages'])}")
        if row["can_roll_back"]:
            click.echo(f"  roll back: playbook action rollback {state.id} {row['run']}")


def _refused(title: str, message: str = "") -> PlaybookError:
    from playbook.adapters.readonly import Refused

    return Refused(title, message)


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
        return _cancellable(stage, f"action-{name}", cancel)
    finally:
        if sys.stderr.isatty():
            click.echo("", err=True)
        if run.surprise is not None and os.environ.get("PLAYBOOK_DEBUG"):
            import traceback

            traceback.print_exception(run.surprise, file=sys.stderr)
            run.surprise = None  # shown once


def _cancellable(work: Any, name: str, cancel: Any) -> Any:
    """``work()`` in a thread; on Ctrl-C or SIGTERM, ``cancel()`` and wait for it to end.

    Returns its result or raises its error, in this (the main) thread. A second signal
    while it winds down propagates: the command then leaves without recording anything
    more. It waits on an Event, never on ``Thread.join``: in Python before 3.13 a join
    interrupted by a signal marks the thread finished while it still runs, so the next
    join returned at once and ``diag run`` recorded an empty result.
    """
    outcome: dict[str, Any] = {}
    done = threading.Event()

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as exc:  # handed back to the main thread below
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while not done.wait(0.2):
            pass
    except KeyboardInterrupt:
        cancel()
        while not done.wait(0.2):
            pass
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


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


# ------------------------------------------------------------------------------ incidents


@main.command("open")
@click.argument("playbook", required=False)
@click.option("--title", "-t", required=True, help="What is wrong, in a few words.")
@click.option("--severity", "-s", help="Severity level (default: the playbook's default, e.g. P2).")
@click.option(
    "--trigger",
    "triggers",
    multiple=True,
    help="What triggered it: a trigger id (e.g. automated-alerts.backup-verification-failures) or text. Repeatable.",
)
@json_option
@pass_app
def open_incident(
    app: _App,
    playbook: str | None,
    title: str,
    severity: str | None,
    triggers: tuple[str, ...],
    as_json: bool,
) -> None:
    """Open an incident on PLAYBOOK (a file or a built-in name; default data-integrity)."""
    state = app.service.open(playbook, title, severity, triggers)
    if as_json:
        _emit_json(_state_json(app, state))
        return
    level = state.levels[state.severity]
    click.echo(f"Opened incident {state.id} ({state.severity}): {inline(state.title)}")
    click.echo(
        f"Respond within {format_duration(level.response)}, resolve within "
        f"{format_duration(level.resolution)}. Next: playbook ack {state.id}"
    )


@main.command()
@click.argument("incident")
@json_option
@pass_app
def ack(app: _App, incident: str, as_json: bool) -> None:
    """Acknowledge INCIDENT: the team has begun the response (stops the response timer)."""
    state = app.service.acknowledge(incident)
    timer = app.service.timers(state).response
    _report(
        app,
        state,
        as_json,
        f"Acknowledged {state.id}: {_timer_line(timer)}" if timer else "Acknowledged",
    )


@main.command()
@click.argument("incident")
@click.argument("level")
@click.option("--reason", "-r", required=True, help="Why the severity changes (recorded).")
@json_option
@pass_app
def severity(app: _App, incident: str, level: str, reason: str, as_json: bool) -> None:
    """Change INCIDENT's severity to LEVEL (e.g. P1); running timers take the new targets."""
    state = app.service.change_severity(incident, level, reason)
    _report(app, state, as_json, f"{state.id} is now {state.severity}.")


@main.command()
@click.argument("incident")
@click.argument("phase")
@json_option
@pass_app
def phase(app: _App, incident: str, phase: str, as_json: bool) -> None:
    """Move INCIDENT to PHASE (checking an item of a later phase does this too)."""
    state = app.service.enter_phase(incident, phase)
    _report(app, state, as_json, f"{state.id} is in phase {state.phase}.")


@main.command()
@click.argument("incident")
@click.argument("scenario")
@json_option
@pass_app
def scenario(app: _App, incident: str, scenario: str, as_json: bool) -> None:
    """Follow SCENARIO (e.g. data-loss): its signs, investigation and recovery join the checklist."""
    state = app.service.choose_scenario(incident, scenario)
    _report(app, state, as_json, f"{state.id} follows: {', '.join(state.scenarios)}.")


@main.command()
@click.argument("incident")
@click.argument("items", nargs=-1, required=True)
@json_option
@pass_app
def check(app: _App, incident: str, items: tuple[str, ...], as_json: bool) -> None:
    """Mark STEP_OR_ITEM done (an item, or every item of a step). `show` lists their ids."""
    state = None
    for item in items:
        state = app.service.check(incident, item)
    assert state is not None
    done = sum(1 for r in state.checklist if r in state.done)
    _report(
        app,
        state,
        as_json,
        f"{state.id}: {done}/{len(state.checklist)} items done; phase {state.phase}.",
    )


@main.command()
@click.argument("incident")
@click.argument("items", nargs=-1, required=True)
@json_option
@pass_app
def uncheck(app: _App, incident: str, items: tuple[str, ...], as_json: bool) -> None:
    """Mark STEP_OR_ITEM not done again (recorded as its own event)."""
    state = None
    for item in items:
        state = app.service.uncheck(incident, item)
    assert state is not None
    done = sum(1 for r in state.checklist if r in state.done)
    _report(app, state, as_json, f"{state.id}: {done}/{len(state.checklist)} items done.")


@main.command()
@click.argument("incident")
@click.argument("text")
@json_option
@pass_app
def note(app: _App, incident: str, text: str, as_json: bool) -> None:
    """Add a note to INCIDENT's timeline (TEXT of - reads standard input)."""
    if text == "-":
        text = sys.stdin.read()
    state = app.service.note(incident, text)
    _report(app, state, as_json, f"Noted on {state.id} (event {state.last_seq}).")


@main.command()
@click.argument("incident")
@click.argument("title")
@json_option
@pass_app
def rename(app: _App, incident: str, title: str, as_json: bool) -> None:
    """Give INCIDENT a new TITLE (the old one stays in the timeline and the export).

    A title is one line of plain text: control characters and terminal escapes are
    refused, as when opening an incident.
    """
    state = app.service.rename(incident, title)
    _report(app, state, as_json, f"Renamed {state.id}: {inline(state.title)}")


@main.command()
@click.argument("incident")
@click.option("--to", help="Who (default: the next person on the escalation path).")
@click.option("--reason", "-r", default="", help="Why.")
@json_option
@pass_app
def escalate(app: _App, incident: str, to: str | None, reason: str, as_json: bool) -> None:
    """Record an escalation of INCIDENT to the next person on the path (or --to)."""
    state = app.service.escalate(incident, to, reason)
    _report(app, state, as_json, f"Escalated {state.id} to {inline(state.escalations[-1].to)}.")


@main.command()
@click.argument("incident")
@click.option("--summary", default="", help="How it was resolved, in a sentence.")
@json_option
@pass_app
def resolve(app: _App, incident: str, summary: str, as_json: bool) -> None:
    """Mark INCIDENT resolved (stops the resolution timer)."""
    state = app.service.resolve(incident, summary)
    timer = app.service.timers(state).resolution
    _report(
        app, state, as_json, f"Resolved {state.id}: {_timer_line(timer)}" if timer else "Resolved"
    )


@main.command()
@click.argument("incident")
@json_option
@pass_app
def close(app: _App, incident: str, as_json: bool) -> None:
    """Close a resolved INCIDENT once post-incident work is done."""
    state = app.service.close(incident)
    _report(
        app,
        state,
        as_json,
        f"Closed {state.id}. Export it: playbook export {state.id} --format markdown",
    )


@main.command()
@click.option("--all", "show_all", is_flag=True, help="Include closed incidents.")
@json_option
@pass_app
def incidents(app: _App, show_all: bool, as_json: bool) -> None:
    """List incidents: id, severity, status, age, timers."""
    states = [s for s in app.service.incidents() if show_all or s.closed_at is None]
    if as_json:
        _emit_json([_state_json(app, s) for s in states])
        return
    if not states:
        click.echo("No incidents. Open one: playbook open --title '…'")
        return
    now = app.service.clock.now()
    for s in states:
        alerts = app.service.timers(s).alerts()
        flag = f"  {alerts[0].label} {alerts[0].state}" if alerts else ""
        age = format_duration((now - s.opened_at).total_seconds()) if s.opened_at else "?"
        title = inline(s.title)[:50]
        click.echo(
            inline(f"{s.id}  {s.severity}  {s.status:<12} {age:>8}  ") + title + inline(flag)
        )


@main.command()
@click.argument("incident")
@click.option(
    "--all",
    "show_all",
    is_flag=True,
    help="List the items of every section, not only the current phase.",
)
@json_option
@pass_app
def show(app: _App, incident: str, show_all: bool, as_json: bool) -> None:
    """Show INCIDENT: timers, progress per phase, and the current phase's items with their ids."""
    state = app.service.get(incident).state
    if as_json:
        _emit_json(_state_json(app, state))
        return
    _print_summary(app, state, items="all" if show_all else "phase")


@main.command("timeline")
@click.argument("incident")
@json_option
@pass_app
def timeline(app: _App, incident: str, as_json: bool) -> None:
    """Print every event of INCIDENT in order, with local and UTC times."""
    from playbook.render.export import describe

    found = app.service.get(incident)
    if as_json:
        _emit_json([e.to_dict() for e in found.events])
        return
    for event in found.events:
        click.echo(
            f"{event.seq:>4}  {_local(event.at)}  {inline(event.actor):<12} {one_line(describe(event, found.state))}"
        )


def _parse_sets(pairs: Sequence[str]) -> dict[str, str]:
    values: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"--set takes name=value, got {pair!r}.")
        values[name.strip()] = value
    return values


@main.command()
@click.argument("incident")
@click.argument("kind")
@click.option(
    "--set", "sets", multiple=True, metavar="NAME=VALUE", help="A template variable. Repeatable."
)
@click.option("--preview", is_flag=True, help="Render without recording.")
@json_option
@pass_app
def status(
    app: _App, incident: str, kind: str, sets: tuple[str, ...], preview: bool, as_json: bool
) -> None:
    """Render status message KIND (initial, progress, resolution) and record its exact text.

    Variables the incident knows (service, severity, current_time, …) are filled in;
    give the others with --set. A missing variable is an error naming it.
    """
    values = _parse_sets(sets)
    if preview:
        text = app.service.preview_status(incident, kind, values)
        recorded = None
    else:
        state, text = app.service.status(incident, kind, values)
        recorded = state.last_seq
    if as_json:
        _emit_json({"kind": kind, "text": text, "recorded_as_event": recorded})
        return
    click.echo(printable(text), nl=not text.endswith("\n"))


@main.command()
@click.argument("incident")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
    help="markdown: the post-incident document; json: every event, loadable again.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write to this file (atomically).",
)
@pass_app
def export(app: _App, incident: str, fmt: str, output: Path | None) -> None:
    """Export INCIDENT's timeline for the post-incident review (open or closed)."""
    from playbook.fileio import atomic_write

    text = app.service.export(incident, fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    atomic_write(output, text)
    click.echo(f"Wrote {output} ({len(text.encode()):,} bytes).", err=True)


from playbook.cli import drill as _drill  # noqa: E402, F401  (registers `playbook drill`)
from playbook.cli import trust as _trust  # noqa: E402, F401  (registers `playbook trust`)
