"""Writing playbooks: ``validate``, ``schema`` and ``playbooks``.

None of them needs a store. The loader and the model (pydantic) are imported inside the
commands: `import playbook.cli` must not pay for them (tests/test_architecture.py).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import click

from playbook.cli.context import json_option
from playbook.cli.output import emit_json
from playbook.core.text import printable
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
        if not quiet:
            pb = loaded.playbook
            click.echo(
                f"{file}: ok — {pb.title} (version {pb.version}): {len(pb.phases)} phases, "
                f"{len(pb.checklist())} checklist items, {len(pb.diagnostics)} diagnostics, "
                f"{len(pb.actions)} guarded action{'' if len(pb.actions) == 1 else 's'}, "
                f"{len(pb.communications.templates)} templates"
                + (f", a drill ({', '.join(pb.drill.services)})" if pb.drill else "")
            )
    sys.exit(ExitCode.PLAYBOOK_FAILED if bad else ExitCode.OK)


@click.command()
def schema() -> None:
    """Print the JSON Schema of the playbook format, for editors.

    Save it and point your editor's YAML support at it, e.g. with a first line
    `# yaml-language-server: $schema=playbook.schema.json`.
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
