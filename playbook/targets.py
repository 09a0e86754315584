"""Targets: the names a playbook uses, resolved to connection URIs at run time.

URIs come from `playbook.toml` (beside the playbook, then the user's config directory)
or from `--target name=URI`, with `${ENV}` replaced from the environment. A password
in a URI never leaves this module in clear: everything shown or recorded uses
:func:`redact`.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import platformdirs

from playbook.errors import UsageError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CONFIG_NAME = "playbook.toml"


@dataclass(frozen=True)
class Target:
    """A resolved target: its name, its URI, and where the URI came from."""

    name: str
    uri: str
    source: str

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"Target(name={self.name!r}, uri={redact(self.uri)!r}, source={self.source!r})"

    @property
    def shown(self) -> str:
        return redact(self.uri)


def redact(uri: str) -> str:
    """``uri`` with any password (and query-string secrets) replaced by ***."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "***"
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:***@{host}" if ":" in userinfo else f"{user}@{host}"
    query = re.sub(r"(?i)\b(password|passwd|pwd|secret|token|key)=([^&]*)", r"\1=***", parts.query)
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def interpolate(text: str, env: Mapping[str, str], where: str) -> str:
    """Replace ``${NAME}`` from ``env``; a missing variable is an error naming it."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise UsageError(f"{where}: the environment variable {name} is not set.")
        return env[name]

    return _ENV.sub(value, text)


def config_files(playbook_path: Path | None) -> list[Path]:
    """Where targets are looked for, first match wins."""
    files = []
    if playbook_path is not None:
        files.append(playbook_path.parent / CONFIG_NAME)
    files.append(Path(platformdirs.user_config_dir("playbook", appauthor=False)) / CONFIG_NAME)
    return files


def load_targets(
    playbook_path: Path | None,
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> dict[str, Target]:
    """Every target known from configuration files and ``--target name=URI`` overrides."""
    env = os.environ if env is None else env
    found: dict[str, Target] = {}
    for file in reversed(config_files(playbook_path)):  # nearer files override
        if not file.is_file():
            continue
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise UsageError(f"{file}: {exc}") from None
        table = data.get("targets", {})
        if not isinstance(table, dict):
            raise UsageError(f'{file}: [targets] must be a table of name = "URI".')
        for name, raw in table.items():
            if not isinstance(raw, str):
                raise UsageError(f"{file}: targets.{name} must be a URI string.")
            found[name] = Target(name, interpolate(raw, env, f"{file}: targets.{name}"), str(file))
    for pair in overrides:
        name, sep, uri = pair.partition("=")
        if not sep or not name.strip() or not uri.strip():
            # The value is not echoed: a malformed one may still hold a password.
            raise UsageError("--target takes name=URI (the value given is not shown).")
        found[name.strip()] = Target(
            name.strip(), interpolate(uri.strip(), env, "--target"), "--target"
        )
    return found


SANDBOX = "drill sandbox"
"""The source of every target a drill's sandbox gives (and of no other)."""


def resolve_target(name: str, targets: Mapping[str, Target], drill: bool = False) -> Target:
    """The target called ``name``; for a drill (``drill=True``) only the sandbox's, so a
    drill never reaches a configured, possibly production, server."""
    if name in targets:
        if drill and targets[name].source != SANDBOX:
            raise UsageError(
                f"Refused: this incident is a drill, and target {name!r} is not its sandbox's.",
                "A drill's diagnostics and actions run only inside `playbook drill`, "
                "on the servers started for it.",
            )
        return targets[name]
    known = ", ".join(sorted(targets)) or "none configured"
    raise UsageError(
        f"No target named {name!r}.",
        f"Known: {known}. Add it to {CONFIG_NAME} under [targets], or pass --target {name}=URI.",
    )
