"""Destinations, from the responder's own ``playbook.toml`` only.

::

    [publish.statuspage]
    page = "kctbh9vrtdwd"
    api_key = "${STATUSPAGE_KEY}"
    components = { api = "8kbf7d35c070", chat = "vtnh60py4yd7" }

    [publish.slack]
    url = "${SLACK_WEBHOOK}"

    [publish.drill-room]
    type = "slack"
    url = "${DRILL_SLACK_WEBHOOK}"
    drill_sink = true          # may receive drills (nothing else does)
    audience = "internal"      # the comms check only warns

Why the responder's file only: a destination is where the responder's credentials go.
A runbooks folder's ``playbook.toml`` could otherwise point ``statuspage`` at a host of
its choosing and receive the API key; a ``[publish]`` table there is ignored with a
notice (trusted or not). ``${ENV}`` is expanded by :func:`playbook.targets.expand`, and
every credential is registered with :mod:`playbook.redaction`: the API keys, every
webhook URL whole and its path and query (Slack's and Teams' URLs are the credential),
and custom header values.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from playbook import redaction, targets
from playbook.errors import UsageError
from playbook.publish.base import COMMON_KEYS, Publisher, make_publisher, publisher_classes

AUDIENCES = ("external", "internal")


@dataclass
class Destinations:
    """The configured destinations by name, and notices about files ignored."""

    publishers: dict[str, Publisher] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    path: Path | None = None

    def drill_sink(self, name: str) -> bool:
        return bool(self.publishers[name].settings.get("drill_sink", False))

    def audience(self, name: str) -> str:
        return str(self.publishers[name].settings.get("audience", "external"))


_AUTH_SCHEME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+ +(\S.*)")
"""An HTTP credential, RFC 9110 section 11.4: ``auth-scheme 1*SP ( token68 / auth-param )``."""


def _remember_secret(key: str, value: str) -> None:
    redaction.remember(value)
    if key == "headers" and (credential := _AUTH_SCHEME.fullmatch(value.strip())):
        # "Bearer TOKEN": the token alone too, as a server may echo it without the scheme
        # or the space (attacker round I), and a token typed literally has no ${ENV}.
        redaction.remember(credential.group(1))
    if key in ("url", "base_url") and "://" in value:
        parts = urlsplit(value)
        segments = [s for s in re.split(r"[/;]", parts.path) if len(s) >= 12]
        values = [v for _k, _s, v in (q.partition("=") for q in parts.query.split("&"))]
        # The path and query whole, each long path segment or path parameter (Slack's
        # token is the last; a classic Teams URL's secret is the one before its owner's
        # id, attacker round K), each query value (Teams' sig), the userinfo and the
        # fragment: a server may echo any one of them alone, and decoded (round L).
        found = [
            *(p for p in (parts.path, parts.query, *values) if len(p) > 1),
            *segments,
            # a user with a password is a name; alone (https://TOKEN@host) it is the key
            *(p for p in (parts.password or parts.username, parts.fragment) if p),
        ]
        redaction.remember(*found, *(unquote(p) for p in found))


_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _env_value(name: str, env: Mapping[str, str], where: str) -> str:
    if name not in env:
        raise UsageError(f"{where}: the environment variable {name} is not set.")
    redaction.remember(env[name])
    return env[name]


def _expand(value: Any, env: Mapping[str, str], where: str, key: str) -> Any:
    if isinstance(value, str):
        if "${" not in value:
            expanded = value
        elif "://" in value or _ENV.fullmatch(value.strip()):
            expanded = targets.expand(value, env, where)  # encoded for where it lands in a URI
        else:  # a header value ("Bearer ${TOKEN}"): plain text, put in as it is
            expanded = _ENV.sub(lambda m: _env_value(m.group(1), env, where), value)
        if key in ("api_key", "url", "headers"):
            _remember_secret(key, expanded)
        return expanded
    if isinstance(value, dict):
        return {k: _expand(v, env, f"{where}.{k}", key) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, env, where, key) for v in value]
    return value


def _folder_notice(playbook_path: Path | None) -> str | None:
    beside = targets.folder_file(playbook_path)
    if beside is None:
        return None
    try:
        data = targets.read_config(beside)
        doc = tomllib.loads((data or b"").decode("utf-8"))
    except (UsageError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None  # its own notice comes from load_targets
    if "publish" in doc:
        return (
            f"ignoring [publish] in {beside}: destinations come only from your own "
            f"{targets.responder_config()} (a runbooks folder cannot choose where your "
            "credentials are sent)"
        )
    return None


def load_destinations(
    playbook_path: Path | None = None, env: Mapping[str, str] | None = None
) -> Destinations:
    """Every ``[publish.NAME]`` of the responder's own config, ``${ENV}`` expanded.

    Raises:
        UsageError: naming the file and the key, for a malformed table, an unknown key,
            a missing setting or an unset variable.
    """
    env = os.environ if env is None else env
    found = Destinations()
    notice = _folder_notice(playbook_path)
    if notice:
        found.notices.append(notice)
    own = targets.responder_config()
    found.path = own
    data = targets.read_config(own)
    if data is None:
        return found
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{own}: {exc}") from None
    table = doc.get("publish", {})
    if not isinstance(table, dict):
        raise UsageError(f"{own}: [publish] must be a table of destinations.")
    kinds = publisher_classes()
    for name, raw in table.items():
        where = f"{own}: publish.{name}"
        if not isinstance(raw, dict):
            raise UsageError(f"{where} must be a table.")
        kind = str(raw.get("type", name))
        if kind not in kinds:
            raise UsageError(
                f"{where}.type: no publisher {kind!r}.",
                f"Installed: {', '.join(sorted(kinds))}. Name the table after one, or set type.",
            )
        cls = kinds[kind]
        allowed = (*COMMON_KEYS, *cls.keys)
        unknown = sorted(set(raw) - set(allowed))
        if unknown:
            raise UsageError(
                f"{where}.{unknown[0]}: unknown key.", f"{kind} takes {', '.join(allowed)}."
            )
        missing = [k for k in cls.required if k not in raw]
        if missing:
            raise UsageError(f"{where}.{missing[0]}: required for {kind}.")
        if not isinstance(raw.get("drill_sink", False), bool):
            raise UsageError(f"{where}.drill_sink must be true or false.")
        if raw.get("audience", "external") not in AUDIENCES:
            raise UsageError(f"{where}.audience must be external or internal.")
        settings = {k: _expand(v, env, f"{where}.{k}", k) for k, v in raw.items()}
        found.publishers[name] = make_publisher(name, settings)
    return found
