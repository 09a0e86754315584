"""``playbook run``: the app. The only module of the CLI that imports :mod:`playbook.tui`,
and only when the app starts: Textual costs most of start-up, and every other command
runs without it (tests/test_architecture.py checks that `import playbook.cli` does not
load it).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from playbook.cli.context import CliApp, pass_app, target_option, targets_for
from playbook.cli.terminal import require_terminal
from playbook.errors import ExitCode


@click.command()
@click.argument("playbook", required=False)
@click.option("--resume", "resume", metavar="INCIDENT", help="Go straight into this incident.")
@target_option
@pass_app
def run(app: CliApp, playbook: str | None, resume: str | None, targets: tuple[str, ...]) -> None:
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
    if targets:
        targets_for(
            service, None, targets, path
        )  # a malformed --target is an error here, not in the app
    sys.exit(open_app(service, path, resume, targets))


def open_app(
    service: Any,
    playbook_path: Path,
    resume: str | None,
    targets: tuple[str, ...] = (),
    drill: Any = None,
) -> ExitCode:
    """Run the app until the responder quits (`playbook run`, and `playbook drill` in the
    app); how it ended, as an exit code.

    Textual is imported here, not at the top: it is most of the app's start-up cost, and
    no other command needs it. An app that ends with a non-zero code has crashed (Textual
    printed the traceback and set 1): that is a bug in playbook, ``INTERNAL``, never the
    ``PLAYBOOK_FAILED`` that 1 means for `validate` and `drill`.
    """
    from playbook.tui.app import run_app

    code = run_app(service, playbook_path, resume, targets, drill=drill)
    return ExitCode.OK if code == 0 else ExitCode.INTERNAL
