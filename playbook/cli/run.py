"""``playbook run``: the app. The only module of the CLI that imports :mod:`playbook.tui`,
and only when the app starts: Textual costs most of start-up, and every other command
runs without it (tests/test_architecture.py checks that `import playbook.cli` does not
load it).
"""

from __future__ import annotations

import sys

import click

from playbook.cli.context import CliApp, pass_app, select_targets, target_option
from playbook.cli.terminal import require_terminal


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
    from playbook.tui.app import run_app

    if targets:
        select_targets(path, targets)  # a malformed --target is an error here, not in the app
    sys.exit(run_app(service, path, resume, targets))
