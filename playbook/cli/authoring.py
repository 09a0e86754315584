"""Writing playbooks: ``validate``, ``schema``, ``playbooks``, ``vars``, ``new`` and ``upgrade``.

None of them needs a store. The loader and the model (pydantic) are imported inside the
commands: `import playbook.cli` must not pay for them (tests/test_architecture.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from playbook.cli.context import CliApp, json_option, pass_app
from playbook.cli.output import emit_json
from playbook.cli.terminal import confirm
from playbook.core.text import inline, printable
from playbook.errors import ExitCode


@click.command()
@click.argument(
    "files",
    nargs=-1,
    required=True,
    metavar="FILE...",
    type=click.Path(path_type=Path, dir_okay=False),
)
@click.option("--quiet", "-q", is_flag=True, help="Print only problems.")
def validate(files: Sequence[Path], quiet: bool) -> None:
    """Check each playbook FILE; print every problem as file:line:column: key: message.

    Exits 0 when all are valid, 1 when any is not, 2 on usage errors.
    """
    from playbook.adapters.plugins import load_playbook as load
    from playbook.core.loader import PlaybookInvalid

    bad = 0
    for file in files:
        try:
            loaded = load(file)
        except PlaybookInvalid as invalid:
            bad += 1
            for problem in invalid.problems:
                click.echo(printable(str(problem)), err=True)
            continue
        template_problems = _template_problems(loaded) or _authoring_problems(loaded, quiet)
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
    sys.exit(ExitCode.PLAYBOOK_FAILED if bad else ExitCode.OK)


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


def _authoring_problems(loaded: Any, quiet: bool) -> list[str]:
    """What only parsing the templates and knowing the kinds finds: a variable nobody
    provides, an expectation on a metric the diagnostic never returns. Where a kind does
    not say which metrics it returns, that is said (unless --quiet), not passed silently."""
    from playbook.service.authoring import metric_problems, template_problems

    problems = template_problems(loaded)
    wrong, unknown = metric_problems(loaded)
    if unknown and not quiet:
        click.echo(
            f"{inline(str(loaded.path))}: note: the metrics of {len(unknown)} diagnostic"
            f"{'' if len(unknown) == 1 else 's'} ({inline(', '.join(unknown[:5]))}"
            f"{', …' if len(unknown) > 5 else ''}) are not "
            "declared by their kind: their expectations' metric names are not checked",
            err=True,
        )
    return problems + wrong


@click.command("vars")
@click.argument("playbook")
@click.argument("template", required=False)
@json_option
def variables(playbook: str, template: str | None, as_json: bool) -> None:
    """List the variables each status template of PLAYBOOK reads, and where each comes
    from: the incident (which field), the responder (asked when the message is written),
    or nowhere (an error: `validate` reports it too). TEMPLATE: only that one.

    Exits 0 when every variable has a source, 1 when one has none.
    """
    from playbook.adapters.plugins import load_playbook as load
    from playbook.errors import UsageError
    from playbook.resources import resolve_playbook
    from playbook.service.authoring import INCIDENT_VARIABLES, template_variables

    loaded = load(resolve_playbook(playbook))
    try:
        found = template_variables(loaded, template)
    except KeyError:
        known = ", ".join(loaded.playbook.communications.templates) or "none"
        raise UsageError(
            f"No status template {template!r}.", f"This playbook has: {known}."
        ) from None
    bad = any(entry.error or any(v.is_error for v in entry.variables) for entry in found)
    if as_json:
        emit_json(
            {
                "templates": {
                    e.name: {
                        "file": str(e.file),
                        "error": e.error or None,
                        "variables": [
                            {"name": v.name, "from": v.origin, "detail": v.detail, "line": v.line}
                            for v in e.variables
                        ],
                        "declared_unused": e.unused,
                    }
                    for e in found
                },
                "incident_variables": {
                    k: {"from": w, "what": d} for k, (w, d) in INCIDENT_VARIABLES.items()
                },
            }
        )
        sys.exit(ExitCode.PLAYBOOK_FAILED if bad else ExitCode.OK)
    if not found:
        click.echo(f"{inline(str(loaded.path))}: no status templates.")
    for entry in found:
        click.secho(f"{inline(entry.name)}  ({inline(str(entry.file))})", bold=True)
        if entry.error:
            click.echo(f"  error: {inline(entry.error)}")
        width = max((len(v.name) for v in entry.variables), default=0)
        for v in entry.variables:
            origin = "ERROR " + v.origin if v.is_error else v.origin
            click.echo(f"  {inline(v.name):<{width}}  {origin}: {inline(v.detail)} (line {v.line})")
        for name in entry.unused:
            click.echo(f"  {inline(name):<{width}}  declared, never read by the template")
    sys.exit(ExitCode.PLAYBOOK_FAILED if bad else ExitCode.OK)


@click.command("new")
@click.argument("name")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("."),
    show_default=True,
    help="The folder to write into (created if missing).",
)
def new(name: str, folder: Path) -> None:
    """Write a small, valid playbook NAME.yaml to start from: one severity policy, one
    phase with one step, one status template in templates/, and a commented
    playbook.toml. Never overwrites a file.
    """
    from playbook.service.authoring import new_playbook

    for path in new_playbook(name, folder):
        click.echo(f"wrote {inline(str(path))}")
    click.echo(f"next: playbook validate {inline(str(folder / (name + '.yaml')))}")


@click.command("upgrade")
@click.argument("incident")
@click.option(
    "--playbook",
    "playbook_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="The edited playbook (default: the file the incident was opened from).",
)
@click.option("--yes", "-y", is_flag=True, help="Record the upgrade without asking.")
@json_option
@pass_app
def upgrade(
    app: CliApp, incident: str, playbook_file: Path | None, yes: bool, as_json: bool
) -> None:
    """Move open INCIDENT to its edited playbook: show what was added, removed and changed,
    then record a playbook_upgraded event (both SHA-256 digests and the difference).

    Refused when the edited playbook would drop an item already ticked, the phase the
    incident is in or its severity level; each is named. Exit 0 when upgraded or already
    current, 2 when refused for want of --yes, 4 when it would orphan something.
    """
    from playbook.service import upgrade as upgrading

    ctx = app.service.context
    found = upgrading.plan(ctx, incident, playbook_file)
    state = found.state
    if found.unchanged:
        click.echo(f"{state.id} already follows {inline(str(found.loaded.path))}.")
        return
    if as_json:
        emit_json({"incident": state.id, "diff": found.diff, "orphans": found.orphans})
    else:
        click.echo(
            f"{state.id}: {state.playbook_sha256[:12]} → {found.loaded.sha256[:12]} "
            f"({inline(str(found.loaded.path))})"
        )
        for part, change in found.diff.items():
            for kind, names in change.items():
                click.echo(f"  {part} {kind}: {inline(', '.join(names))}")
        if not found.diff:
            click.echo("  (no section, item, phase, level, diagnostic, action or template changed)")
    if found.orphans:
        from playbook.errors import Conflict

        raise Conflict(
            f"Upgrading incident {state.id} would orphan what the responders did or are in.",
            "Keep them in the edited playbook (or untick the items first):\n  "
            + "\n  ".join(found.orphans),
        )
    interactive = sys.stdin.isatty() and not as_json
    upgrading.check_usage(yes, interactive)
    if not yes and not confirm("Move the incident to this playbook?"):
        sys.exit(ExitCode.USAGE)
    after = upgrading.upgrade(ctx, found)
    click.echo(f"Upgraded {after.id}: it now follows {after.playbook_sha256[:12]}.", err=as_json)


@click.command()
def schema() -> None:
    """Print the JSON Schema of the playbook format, for editors.

    Save it and point your editor's YAML support at it, e.g. with a first line
    `# yaml-language-server: $schema=./playbook.schema.json`.
    """
    from playbook.adapters.plugins import playbook_model

    document = playbook_model().model_json_schema()
    document["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    document["title"] = "playbook"
    emit_json(document)


@click.command("playbooks")
@json_option
def list_playbooks(as_json: bool) -> None:
    """List the built-in playbooks."""
    from playbook.resources import builtin_runbooks

    found = builtin_runbooks()
    if as_json:
        emit_json({name: str(path) for name, path in found.items()})
        return
    for name, path in found.items():
        click.echo(f"{name:<24} {path}")
