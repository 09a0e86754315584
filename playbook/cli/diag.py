"""``playbook diag``: list a playbook's diagnostics, and run one as an incident's evidence.

The loader, the service and the evidence helpers are imported inside the commands, so
`import playbook.cli` stays free of pydantic and the drivers (tests/test_architecture.py).
"""

from __future__ import annotations

import json
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
from playbook.core.text import inline
from playbook.errors import ExitCode


@click.group()
def diag() -> None:
    """Diagnostics: the read-only checks a playbook's steps carry.

    \b
    Ages (`<name>_age_seconds`, Redis freshness's `age_seconds`) are this machine's
    clock minus the time read. A time up to 5 s ahead is age 0 (a time rounded to the
    second, clocks drifting); further ahead, the age is unknown and `…ahead_seconds`
    says by how much: an expectation on the age, or on the time itself, is then an
    ERROR saying the clocks disagree, never a pass. A time ahead by nature (an expiry)
    is checked through its `…_ahead_seconds`.
    """


@diag.command("list")
@click.argument("playbook", required=False)
@click.option("--details", "-d", is_flag=True, help="Also each one's parameters and checks.")
@json_option
def diag_list(playbook: str | None, details: bool, as_json: bool) -> None:
    """List PLAYBOOK's diagnostics (default: data-integrity) as a table: id, kind, target,
    the step that uses it, title. --details adds parameters and healthy checks; --json
    gives everything, for scripts.

    Diagnostics marked as writing are listed but never run as diagnostics.
    """
    from playbook.adapters.plugins import load_playbook as load
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
                "expect": [
                    {
                        "metric": e.metric,
                        "op": e.op,
                        "value": _plain(e.value),
                        "verdict": e.verdict,
                    }
                    for e in d.expect
                ],
                "used_by": used.get(name, []),
            }
        )
    if as_json:
        emit_json(rows)
        return
    table = [
        (
            row["id"] + (" (writes)" if row["writes"] else ""),
            row["kind"],
            row["target"],
            _steps(row["used_by"]),
            row["title"],
        )
        for row in rows
    ]
    header = ("ID", "KIND", "TARGET", "STEP", "TITLE")
    widths = [max(len(inline(str(c))) for c in col) for col in zip(header, *table, strict=False)]
    for i, cells in enumerate([header, *table]):
        line = "  ".join(inline(str(c)).ljust(w) for c, w in zip(cells[:-1], widths, strict=False))
        click.echo(f"{line}  {inline(str(cells[-1]))}".rstrip())
        if details and i > 0:
            _details(rows[i - 1])
    if any(row["writes"] for row in rows):
        click.echo("(writes): listed, never run as a diagnostic.")


def _plain(value: Any) -> Any:
    """A value as a person writes it in the playbook (``{$param: name}``), not as Python
    shows it."""
    param = getattr(value, "param", None)
    return {"$param": param} if isinstance(param, str) else value


def _shown(value: Any) -> str:
    plain = _plain(value)
    if isinstance(plain, dict):
        return "{$param: " + str(plain["$param"]) + "}"
    if isinstance(plain, bool):
        return str(plain).lower()
    if isinstance(plain, list):
        return "[" + ", ".join(_shown(v) for v in plain) + "]"
    return str(plain)


def _steps(used_by: list[str]) -> str:
    if not used_by:
        return "—"
    return used_by[0] + (f" (+{len(used_by) - 1})" if len(used_by) > 1 else "")


def _details(row: dict[str, Any]) -> None:
    for p, spec in row["params"].items():
        default = "required" if spec["default"] is None else f"default {_shown(spec['default'])}"
        click.echo(f"    --set {inline(p)}=…  ({spec['type']}, {inline(default)})")
    for e in row["expect"]:
        click.echo(
            f"    healthy: {inline(e['metric'])} {e['op']} {inline(_shown(e['value']))} "
            f"(else {e['verdict']})"
        )
    if len(row["used_by"]) > 1:
        click.echo(f"    used by: {inline(', '.join(row['used_by']))}")


EXIT_BY_VERDICT = {
    "pass": ExitCode.OK,
    "warn": ExitCode.WARN,
    "fail": ExitCode.UNHEALTHY,
    "error": ExitCode.RUN_FAILED,
}
"""A run's verdict as `diag run`'s exit status."""
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
    app: CliApp,
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
    known = targets_for(service, state, targets)
    prepared = service.prepare_diagnostic(state.id, diagnostic, parse_sets(sets), known)
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
        result = cancellable(
            lambda: service.execute_diagnostic(prepared, progress), f"diag-{diagnostic}", cancel
        )
    finally:
        if live and shown:
            click.echo("", err=True)
    service.record_diagnostic(state.id, result)
    if as_json:
        emit_json(result)
    else:
        _print_run(result)
    sys.exit(EXIT_BY_VERDICT.get(result["verdict"], ExitCode.RUN_FAILED))


def _print_run(run: dict[str, Any]) -> None:
    from playbook.core.evidence import numbers_of, shown_of  # ~1 ms, only after a run

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
