"""``playbook trust``: use a runbooks folder's ``playbook.toml``, as it is now.

A ``playbook.toml`` beside a playbook is ignored until the responder trusts its folder
(see :mod:`playbook.trust` and SECURITY.md). This command records the trust, lists it,
and revokes it; it shows what the file will be allowed to do before anything uses it.
The trust record and the config parser are imported inside the command, for start-up
speed: no other command needs them here.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from playbook.cli.context import CliApp, json_option, pass_app
from playbook.cli.output import emit_json
from playbook.core.text import printable
from playbook.errors import NotFound, UsageError


def _folder_of(given: Path) -> Path:
    """The folder meant: FOLDER itself, or the folder of a file inside it."""
    path = given.expanduser()
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise NotFound(f"No folder {given}.")
    return path


def _describe(config: Any) -> dict[str, Any]:
    from playbook.targets import redact

    return {
        "targets": {e.name: redact(e.uri) for e in config.entries},
        "variables": config.variables,
    }


@click.command("trust")
@click.argument("folder", required=False, type=click.Path(path_type=Path))
@click.option(
    "--list",
    "list_only",
    is_flag=True,
    help="List the trusted folders, and whether each file is still as it was trusted.",
)
@click.option("--revoke", is_flag=True, help="Stop trusting FOLDER: its file is ignored again.")
@json_option
@pass_app
def trust_command(
    app: CliApp, folder: Path | None, list_only: bool, revoke: bool, as_json: bool
) -> None:
    """Trust FOLDER's playbook.toml: use its targets and expand its ${ENV} placeholders.

    A playbook.toml beside a playbook usually sits in a runbooks repository that others
    can edit; it could point a target at a host of their choosing and have your
    environment's secrets expanded into it. So it is ignored (with a notice) until you
    read it and trust its folder. The trust is recorded in your config directory with
    the folder's real path and the file's SHA-256: if the file changes, it is ignored
    again until you trust it again.

    A trusted file may name targets and their URIs; it cannot mark a target privileged,
    allow functions or set [shell] (only your own config can), and a name your own
    config defines keeps your own URI. --target on the command line wins over both.

    \b
    playbook trust ~/runbooks          trust the folder's playbook.toml as it is now
    playbook trust --list              what is trusted, and what changed since
    playbook trust --revoke ~/runbooks stop trusting it
    """
    from playbook import trust
    from playbook.targets import CONFIG_NAME, parse_config, read_config, responder_config

    if list_only:
        if folder is not None or revoke:
            raise UsageError("--list takes no FOLDER and no --revoke.")
        rows = []
        for entry in trust.records():
            path = Path(entry.folder) / CONFIG_NAME
            try:
                state = "ok" if trust.digest(path.read_bytes()) == entry.sha256 else "changed"
            except OSError:
                state = "missing"
            rows.append({**asdict(entry), "status": state})
        if as_json:
            emit_json({"record": str(trust.record_file()), "folders": rows})
            return
        if not rows:
            click.echo("No folder is trusted; only your own config is used.")
            return
        for row in rows:
            click.echo(
                f"{row['status']:<8} {printable(row['folder'])}  sha256 {row['sha256'][:16]}…  "
                f"trusted {row['trusted_at']} by {printable(row['by'])}"
            )
        if any(row["status"] != "ok" for row in rows):
            click.echo("A changed or missing file is ignored until you trust its folder again.")
        return
    if folder is None:
        raise UsageError("Name a FOLDER (or use --list).", "playbook trust --help shows how.")
    where = _folder_of(folder)
    if revoke:
        gone = trust.revoke(where)
        real = trust.real_folder(where)
        if as_json:
            emit_json({"folder": str(real), "revoked": gone})
        elif gone:
            click.echo(f"No longer trusted: {printable(str(real))} (its {CONFIG_NAME} is ignored).")
        else:
            click.echo(f"{printable(str(real))} was not trusted; nothing to revoke.")
        return
    file = where / CONFIG_NAME
    own = responder_config()
    if file.is_file() and own.is_file() and file.resolve() == own.resolve():
        raise UsageError(f"{file} is your own config: it is always used, nothing to trust.")
    data = read_config(file) if file.is_file() else None  # not a FIFO, nor a device
    if data is None:
        raise NotFound(f"No {CONFIG_NAME} file in {where}.", "Nothing to trust there.")
    config = parse_config(file, data, own=False)  # refuses what only your config may grant
    entry = trust.trust(where, data, app.actor or _actor())
    described = _describe(config)
    if as_json:
        emit_json({"folder": entry.folder, "sha256": entry.sha256, **described})
        return
    click.echo(f"Trusted {printable(entry.folder)}")
    click.echo(f"  {CONFIG_NAME} sha256 {entry.sha256}")
    for name, shown in described["targets"].items():
        click.echo(f"  target {printable(name)} = {printable(shown)}")
    if described["variables"]:
        names = ", ".join("${" + v + "}" for v in described["variables"])
        click.echo(f"  expands from your environment: {names}")
    click.echo(
        f"Your own {own} still wins for a name it defines. If the file changes, it is "
        "ignored until you trust the folder again."
    )


def _actor() -> str:
    from playbook.service import default_actor

    return default_actor()
