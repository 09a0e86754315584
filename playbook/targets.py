"""Targets: the names a playbook uses, resolved to connection URIs at run time.

Where a target's URI comes from, most trusted first (see SECURITY.md):

1. ``--target name=URI`` on the command line;
2. the responder's own ``playbook.toml`` in their config directory
   (``~/.config/playbook/playbook.toml``);
3. a ``playbook.toml`` beside the playbook, **only** if the responder trusted that folder
   with ``playbook trust DIR`` and the file is byte for byte what they trusted
   (:mod:`playbook.trust`). Otherwise it is ignored with a notice, unread: none of its
   ``${ENV}`` placeholders is expanded, so a runbooks repository cannot send a secret of
   the responder's environment to a host of its choosing.

A name defined at a more trusted level is never redefined by a less trusted one. Per-target
options (``privileged``, ``functions``) and the ``[shell]`` table are honoured only from
the responder's own config: a runbooks folder can name where a target is, never what it
may do there.

``${ENV}`` is replaced from the environment and encoded for where it lands: percent-
encoded in a URI's userinfo, path, query or fragment; quoted by libpq in a ``key=value``
string; in a URI's host part it must not change the URI's shape. Every value expanded is
remembered by :mod:`playbook.redaction` and searched for in everything that leaves.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from playbook import redaction, trust
from playbook.core.text import inline
from playbook.errors import ExitCode, PlaybookError, UsageError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
CONFIG_NAME = trust.CONFIG_NAME
TARGET_KEYS = ("uri", "privileged", "functions")
RESPONDER_ONLY = ("privileged", "functions")
SHELL_KEYS = ("allow_unsandboxed",)

SANDBOX = "drill sandbox"
"""The source of every target a drill's sandbox gives (and of no other)."""


def redact(uri: str) -> str:
    """``uri`` as it may be shown (see :func:`playbook.redaction.redact`)."""
    return redaction.redact(uri)


@dataclass(frozen=True)
class Target:
    """A resolved target: its name, its URI, where the URI came from, and what the
    responder's own config allows on it."""

    name: str
    uri: str
    source: str
    privileged: bool = False
    """The responder accepts a privileged login here (PostgreSQL: a superuser, a
    replication role, a member of pg_write_server_files…). Only from their own config."""
    functions: tuple[str, ...] = ()
    """User-defined functions (``schema.name``) a diagnostic may call on this target.
    Only from the responder's own config."""

    def __post_init__(self) -> None:
        redaction.remember_uri(self.uri)  # its password is hunted in all that leaves

    def __repr__(self) -> str:  # never print the secret, even by accident
        return f"Target(name={self.name!r}, uri={redact(self.uri)!r}, source={self.source!r})"

    @property
    def shown(self) -> str:
        return redact(self.uri)

    @property
    def options(self) -> dict[str, Any]:
        """What adapters read as ``RunRequest.options["target"]``."""
        return {"privileged": self.privileged, "functions": list(self.functions)}


class Targets(dict[str, Target]):
    """Targets by name, with the machine-wide settings of the responder's own config and
    the notices loading them produced. ``dict(targets)`` keeps only the targets."""

    def __init__(
        self,
        items: Mapping[str, Target] | Iterable[tuple[str, Target]] = (),
        *,
        allow_unsandboxed_shell: bool = False,
        notices: Sequence[str] = (),
    ) -> None:
        super().__init__(items)
        self.allow_unsandboxed_shell = allow_unsandboxed_shell
        """``[shell] allow_unsandboxed = true`` in the responder's own config: shell
        diagnostics may run where the kernel cannot sandbox them."""
        self.notices = list(notices)
        """One line per configuration file that was ignored, and why."""


@dataclass
class _Entry:
    name: str
    uri: str
    privileged: bool = False
    functions: tuple[str, ...] = ()


@dataclass
class ConfigFile:
    """One ``playbook.toml`` read and checked, its ``${ENV}`` not yet expanded."""

    path: Path
    own: bool
    entries: list[_Entry] = field(default_factory=list)
    allow_unsandboxed_shell: bool = False

    @property
    def variables(self) -> list[str]:
        """The environment variables its targets would expand, in order."""
        seen: dict[str, None] = {}
        for entry in self.entries:
            for match in _ENV.finditer(entry.uri):
                seen.setdefault(match.group(1), None)
        return list(seen)


def responder_config() -> Path:
    """The responder's own ``playbook.toml``: always used, never needs trusting."""
    return trust.config_dir() / CONFIG_NAME


def parse_config(path: Path, data: bytes, own: bool) -> ConfigFile:
    """Check a ``playbook.toml``'s shape; ``own`` is True for the responder's own file.

    Raises:
        UsageError: naming the file and the key, for a malformed file, or for a folder's
            file that asks for what only the responder's own config may grant.
    """
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not UTF-8 text.") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}") from None
    found = ConfigFile(path, own)
    own_file = responder_config()
    table = doc.get("targets", {})
    if not isinstance(table, dict):
        raise UsageError(f'{path}: [targets] must be a table of name = "URI".')
    for name, raw in table.items():
        key = f"{path}: targets.{name}"
        if isinstance(raw, str):
            found.entries.append(_Entry(name, raw))
            continue
        if not isinstance(raw, dict):
            raise UsageError(f'{key} must be a URI string or a table {{ uri = "…" }}.')
        unknown = sorted(set(raw) - set(TARGET_KEYS))
        if unknown:
            raise UsageError(
                f"{key}.{unknown[0]}: unknown key.", f"A target takes {', '.join(TARGET_KEYS)}."
            )
        if not own:
            granted = [k for k in RESPONDER_ONLY if k in raw]
            if granted:
                raise UsageError(
                    f"{key}.{granted[0]}: only your own config can grant this, "
                    "not a runbooks folder.",
                    f"Move the option to {own_file} (it may name the same target).",
                )
        uri = raw.get("uri")
        if not isinstance(uri, str) or not uri.strip():
            raise UsageError(f'{key}.uri: a target\'s table needs uri = "…".')
        privileged = raw.get("privileged", False)
        if not isinstance(privileged, bool):
            raise UsageError(f"{key}.privileged must be true or false.")
        functions = raw.get("functions", [])
        if not isinstance(functions, list) or not all(
            isinstance(f, str) and f.strip() for f in functions
        ):
            raise UsageError(
                f'{key}.functions must be a list of function names, e.g. ["reports.daily_total"].'
            )
        found.entries.append(_Entry(name, uri, privileged, tuple(f.strip() for f in functions)))
    if "shell" in doc:
        shell = doc["shell"]
        if not own:
            raise UsageError(
                f"{path}: shell: only your own config can set this, not a runbooks folder.",
                f"Move [shell] to {own_file}.",
            )
        if not isinstance(shell, dict):
            raise UsageError(f"{path}: [shell] must be a table.")
        unknown = sorted(set(shell) - set(SHELL_KEYS))
        if unknown:
            raise UsageError(
                f"{path}: shell.{unknown[0]}: unknown key.",
                f"[shell] takes {', '.join(SHELL_KEYS)}.",
            )
        allow = shell.get("allow_unsandboxed", False)
        if not isinstance(allow, bool):
            raise UsageError(f"{path}: shell.allow_unsandboxed must be true or false.")
        found.allow_unsandboxed_shell = allow
    return found


MAX_CONFIG_BYTES = 256 * 1024
"""A playbook.toml larger than this is refused unread (a repository's file could be a
symlink to something endless)."""


def read_config(path: Path) -> bytes | None:
    """A playbook.toml's bytes (None when there is none), refused past the size cap."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a folder, not a file.") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read it: {exc.strerror}.") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise UsageError(f"{path}: over the {MAX_CONFIG_BYTES:,}-byte limit of a playbook.toml.")
    return data


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def folder_file(playbook_path: Path | None) -> Path | None:
    """The ``playbook.toml`` beside a playbook, unless it is the responder's own."""
    if playbook_path is None:
        return None
    candidate = playbook_path.parent / CONFIG_NAME
    if not candidate.is_file() or _same_file(candidate, responder_config()):
        return None
    return candidate


def trust_command(folder: Path) -> str:
    """The command that trusts ``folder``, quoted so that it can be pasted."""
    return f"playbook trust {shlex.quote(str(trust.real_folder(folder)))}"


def load_targets(
    playbook_path: Path | None,
    overrides: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> Targets:
    """Every target known from the command line, the responder's own config and a
    trusted folder's file, most trusted first; see the module's docstring."""
    env = os.environ if env is None else env
    found: dict[str, Target] = {}
    notices: list[str] = []
    beside = folder_file(playbook_path)
    if beside is not None:
        try:
            data = read_config(beside)
        except UsageError as why:  # a repository's file cannot stop the responder's work
            notices.append(inline(f"ignoring {why.title}"))
            data = None
        if data is not None:
            verdict = trust.status(beside.parent, data)
            if verdict == "trusted":
                for entry in parse_config(beside, data, own=False).entries:
                    found[entry.name] = _resolve(entry, str(beside), env)
            else:
                why = "not trusted" if verdict == "untrusted" else "changed since you trusted it"
                notices.append(
                    inline(
                        f"ignoring {beside} ({why}; its targets are not used and no ${{ENV}} "
                        f"in it is expanded). Read it, then run: {trust_command(beside.parent)}"
                    )
                )
    allow_shell = False
    own = responder_config()
    own_data = read_config(own)
    if own_data is not None:
        config = parse_config(own, own_data, own=True)
        allow_shell = config.allow_unsandboxed_shell
        for entry in config.entries:
            found[entry.name] = _resolve(entry, str(own), env)  # the responder's own wins
    for pair in overrides:
        name, sep, uri = pair.partition("=")
        if not sep or not name.strip() or not uri.strip():
            # The value is not echoed: a malformed one may still hold a password.
            raise UsageError("--target takes name=URI (the value given is not shown).")
        name = name.strip()
        found[name] = Target(name, expand(uri.strip(), env, "--target"), "--target")
    return Targets(found, allow_unsandboxed_shell=allow_shell, notices=notices)


def responder_settings() -> Targets:
    """No targets, only the machine-wide settings of the responder's own config (for a
    drill, whose targets are its sandbox's)."""
    own = responder_config()
    data = read_config(own)
    allow = parse_config(own, data, own=True).allow_unsandboxed_shell if data else False
    return Targets(allow_unsandboxed_shell=allow)


def _resolve(entry: _Entry, source: str, env: Mapping[str, str]) -> Target:
    uri = expand(entry.uri, env, f"{source}: targets.{entry.name}")
    return Target(entry.name, uri, source, entry.privileged, entry.functions)


# --------------------------------------------------------------------------- ${ENV}


def expand(raw: str, env: Mapping[str, str], where: str) -> str:
    """``raw`` with each ``${NAME}`` replaced from ``env``, encoded for where it lands.

    A URI's userinfo, path, query and fragment get the value percent-encoded (every
    character but letters, digits and ``_.-~``), so a password holding ``/ # @ : ?`` or
    a space stays one password; the driver decodes it. The host part gets the value as
    is, refused if it would change the URI's shape. A libpq ``key=value`` string is
    read by libpq and rebuilt with libpq's own quoting. A placeholder that is the whole
    string stands for a complete connection string and is used as it is.

    Raises:
        UsageError: a variable is not set, or its value cannot stand where it is.
    """
    names = [m.group(1) for m in _ENV.finditer(raw)]
    if not names:
        return raw
    for name in names:
        if name not in env:
            raise UsageError(f"{where}: the environment variable {name} is not set.")
    redaction.remember(*(env[name] for name in names))
    whole = _ENV.fullmatch(raw.strip())
    if whole:
        return env[whole.group(1)]
    nonce = secrets.token_hex(6)
    values: dict[str, tuple[str, str]] = {}

    def token(match: re.Match[str]) -> str:
        placeholder = f"pbv{nonce}n{len(values)}v"  # letters and digits: fits any part
        values[placeholder] = (match.group(1), env[match.group(1)])
        return placeholder

    template = _ENV.sub(token, raw)
    if "://" in template:
        return _expand_uri(template, values, where)
    return _expand_conninfo(template, values, where)


def _put(text: str, values: Mapping[str, tuple[str, str]], encode: bool) -> str:
    for placeholder, (_name, value) in values.items():
        text = text.replace(placeholder, quote(value, safe="") if encode else value)
    return text


def _names_in(text: str, values: Mapping[str, tuple[str, str]]) -> list[str]:
    return [name for placeholder, (name, _v) in values.items() if placeholder in text]


def _expand_uri(template: str, values: Mapping[str, tuple[str, str]], where: str) -> str:
    parts = urlsplit(template)
    if _names_in(parts.scheme, values):
        raise UsageError(
            f"{where}: ${{{_names_in(parts.scheme, values)[0]}}} cannot be the scheme."
        )
    userinfo, at, hosts = parts.netloc.rpartition("@")
    meant = (_put(userinfo, values, True) if at else "", at, _put(hosts, values, False))
    out = f"{parts.scheme}://{''.join(meant)}{_put(parts.path, values, True)}"
    if parts.query:
        out += "?" + _put(parts.query, values, True)
    if parts.fragment:
        out += "#" + _put(parts.fragment, values, True)
    # The host part is taken as is (a host name, host:port, several hosts): it must not
    # move the URI's boundaries, or part of it would land in the userinfo or the path.
    check = urlsplit(out)
    if (
        check.netloc.rpartition("@") != meant
        or check.scheme != parts.scheme
        or check.path != _put(parts.path, values, True)
    ):
        name = (_names_in(hosts, values) or ["?"])[0]
        raise UsageError(
            f"{where}: the value of ${{{name}}} cannot stand in the host part: it holds a "
            "character (/ ? # @ …) that would change where the URI points.",
            "Put only a host name (and :port) in that variable.",
        )
    return out


def _expand_conninfo(template: str, values: Mapping[str, tuple[str, str]], where: str) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = conninfo_to_dict(template)
    except Exception:  # libpq's message may quote the text, and the text may hold a password
        raise UsageError(
            f"{where}: neither a URI (scheme://…) nor a libpq key=value string.",
            "The value is not shown: it may hold a password.",
        ) from None
    for key in params:
        if _names_in(key, values):
            raise UsageError(f"{where}: ${{{_names_in(key, values)[0]}}} cannot be a key.")
    return make_conninfo("", **{k: _put(str(v), values, False) for k, v in params.items()})


# --------------------------------------------------------------------------- lookup


def resolve_target(name: str, targets: Mapping[str, Target]) -> Target:
    """The target called ``name``, or an error saying where targets come from. (Which
    targets an incident may reach, a drill's rule included, is
    :mod:`playbook.service.targets`' decision.)

    Raises:
        UsageError: no such target, or a URI its driver's parser cannot read. That
            refusal names the driver and quotes nothing of the value or of the parser's
            message, which quotes the token it stopped at (often the password:
            ``invalid percent-encoded token: "50%off…"``).
    """
    if name in targets:
        driver = redaction.unreadable_by(targets[name].uri)
        if driver is not None:
            raise UsageError(
                f"The URI of target {name!r} ({targets[name].source}) could not be parsed "
                f"by {driver}: check its form.",
                "The value and the parser's message are not shown: they may hold a "
                "password. A reserved character in a password (% / ? # @ :) must be "
                "percent-encoded, or put the password in ${ENV}, which playbook encodes.",
            )
        return targets[name]
    known = ", ".join(sorted(targets)) or "none configured"
    advice = (
        f"Known: {known}. Add it to {CONFIG_NAME} under [targets], or pass --target {name}=URI."
    )
    for notice in getattr(targets, "notices", ()):
        advice += f"\nAlso: {notice}"
    raise UsageError(f"No target named {name!r}.", advice)


# --------------------------------------------------------------------------- schemes


class SchemeRefused(PlaybookError):
    """A target's scheme is not one its diagnostic's kind can honour: nothing ran."""

    exit_code = ExitCode.REFUSED


def scheme_of(uri: str) -> str:
    """The URI's scheme in lower case; ``""`` when it has none (``host=db dbname=app``)."""
    try:
        return urlsplit(uri).scheme.lower()
    except ValueError:
        return ""


LOCAL = "local:"
"""The one spelling of "this machine" (README, "Shell targets")."""


def is_local(uri: str) -> bool:
    """Whether ``uri`` is exactly ``local:``, read by :func:`urllib.parse.urlsplit`.

    Its parts must all be empty but the scheme (no ``//authority``, no ``user@``, no
    path, query or fragment), and the parts must spell ``uri`` again: urlsplit lowers
    the scheme's case and drops leading blanks, so ``LOCAL:`` or `` local:`` comes
    back as another text and is refused. A local target names no host; one that seems
    to (``local://app-host/``, ``local:ops@app-host``) would run here instead.
    """
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return parts.scheme == "local" and not any(parts[1:]) and urlunsplit(parts) == uri


def check_local(target: Target) -> None:
    """Refuse a ``local`` target that says more than ``local:``.

    Raises:
        SchemeRefused: naming the target, never its text (``local:`` as a whole is
            remembered as a target URI, and the rest may hold a password).
    """
    if is_local(target.uri):
        return
    raise SchemeRefused(
        f"Refused: target {target.name!r} has the scheme 'local' with more than "
        f"{LOCAL!r} (a host, a user, a path, a query or fragment, or another spelling). "
        "A local target names no other machine and runs here only. Nothing was run.",
        f"Define {target.name!r} as exactly {LOCAL} to run here, or as "
        "ssh://user@host[:port] to run on another machine.",
    )


def check_scheme(target: Target, kind: str, schemes: Iterable[str] | None) -> None:
    """Refuse ``target`` for a diagnostic or action of ``kind`` unless its scheme is one
    of ``schemes`` (the adapter's :attr:`~playbook.adapters.base.Adapter.schemes`; None
    means the adapter checks for itself).

    The one place the rule lives, for every kind: a shell diagnostic given ``redis://``
    or an http one given ``ssh://`` is refused here, never run somewhere else. The
    message names the scheme only: the rest of a URI may hold a password.

    Raises:
        SchemeRefused: naming the target, its scheme and the schemes the kind takes.
    """
    if schemes is None:
        return
    allowed = frozenset(schemes)
    scheme = scheme_of(target.uri)
    if scheme == "local" and scheme in allowed:
        check_local(target)
        return
    if scheme in allowed:
        return
    # Schemes by name only: a whole URI such as ``local:`` is remembered as a secret
    # (redaction cannot tell its parts), and any other part may hold a password.
    shown = ", ".join(repr(s) if s else "none (key=value)" for s in sorted(allowed))
    given = f"the scheme {scheme!r}" if scheme else "no scheme"
    raise SchemeRefused(
        f"Refused: target {target.name!r} has {given}, which a diagnostic of kind "
        f"{kind} cannot reach; that kind takes the schemes {shown}. Nothing was run.",
        f"Point the diagnostic at a {kind} target, or define {target.name!r} with one of "
        "those schemes in your playbook.toml.",
    )
