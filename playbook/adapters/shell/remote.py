"""A shell diagnostic on another host: ``ssh://user@host[:port]``, through the system ``ssh``.

The program and its arguments are the diagnostic's, parameters in place, exactly as a
local run gets them. ``ssh`` joins its arguments with spaces and the remote side hands
the result to the user's login shell, so each argument is quoted with
:func:`shlex.quote` here: a parameter ``; touch /tmp/x`` reaches the remote program as
one argument, never as a second command. That quoting is POSIX shell quoting: the
remote account's login shell must be a POSIX one (sh, bash, dash, ksh, zsh), not csh
or fish.

What protects what:

* **This machine.** The ``ssh`` process runs in the same kernel sandbox as a local
  program: it reads the installed system, plus only the identity and known-hosts files
  the target names; it connects over TCP only to the target's port; it gets no agent
  socket (no UNIX sockets) and none of the responder's environment. Its options are
  fixed here (``-F none``: no ssh_config is read, so a config cannot add a
  ``ProxyCommand`` or forwardings), ``BatchMode=yes`` (no prompt ever waits for a
  password or a host key), a ``ConnectTimeout`` from the run's deadline, no agent, X11
  or port forwarding, no TTY. The whole process tree dies at the deadline or on cancel.
* **The remote host.** Only what the remote account may do: there is no sandbox there.
  The diagnostic's program is the one the playbook names (as locally, a parameter can
  never become the program or an option unless declared ``option``), but it runs with
  that account's permissions, network and files. Use an account that can only read.

The target (from the responder's config) may add ``?identity=/path/key`` and
``?known_hosts=/path/known_hosts``: the only files of the responder's home the ssh
process may read. Without ``known_hosts`` only the system's
``/etc/ssh/ssh_known_hosts`` vouches for the host key, and an unknown key makes
BatchMode refuse the connection: that is intended (no key is ever accepted blindly).
"""

from __future__ import annotations

import math
import os
import shlex
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from playbook.adapters.base import Refused

DEFAULT_PORT = 22
QUERY_KEYS = ("identity", "known_hosts")


@dataclass(frozen=True)
class SshTarget:
    """Where to run: parsed from the target's URI by the standard library's parser."""

    host: str
    port: int
    user: str | None
    identity: str | None
    known_hosts: str | None

    @property
    def readable(self) -> tuple[str, ...]:
        """Files of the responder's the ssh process may read (its key, known hosts)."""
        found = [self.identity, self.known_hosts]
        if self.identity:
            found.append(self.identity + ".pub")  # ssh reads it beside the key if present
        return tuple(p for p in found if p and os.path.isfile(p))


def parse(uri: str) -> SshTarget:
    """The host, port, user and files of an ``ssh://`` target.

    Raises:
        Refused: not ``ssh://[user@]host[:port][?identity=…&known_hosts=…]``, a password
            given (BatchMode never sends one: use a key), or a user or host that ``ssh``
            would read as an option. The URI is never echoed (it may hold a secret).
    """
    try:
        parts = urlsplit(uri)
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise Refused("Refused: the ssh target is not a valid URI.") from None
    host, user = parts.hostname, parts.username
    if parts.scheme.lower() != "ssh" or not host:
        raise Refused("Refused: an ssh target is ssh://user@host[:port].")
    if parts.password is not None:
        raise Refused(
            "Refused: an ssh target carries no password; playbook runs ssh in batch mode, "
            "which never sends one.",
            "Give a key: ssh://user@host?identity=/path/to/key&known_hosts=/path/known_hosts.",
        )
    if parts.path not in ("", "/") or parts.fragment:
        raise Refused("Refused: an ssh target has no path or fragment: ssh://user@host[:port].")
    if (
        host.startswith("-")
        or (user or "").startswith("-")
        or any(c in (user or "") + host for c in " \t\r\n\x00")
    ):
        raise Refused("Refused: the ssh target's user or host would be read as an option.")
    files: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in QUERY_KEYS or key in files:
            raise Refused(
                "Refused: an ssh target takes only ?identity=PATH and ?known_hosts=PATH, each once."
            )
        if not os.path.isabs(value) or any(c.isspace() or c in "%\x00" for c in value):
            raise Refused(
                f"Refused: the ssh target's {key} must be an absolute path without blanks or %."
            )
        files[key] = value
    return SshTarget(host, port, user, files.get("identity"), files.get("known_hosts"))


def remote_command(argv: list[str], env: dict[str, str]) -> str:
    """The one string ssh sends: each argument quoted for a POSIX shell, so the remote
    shell splits it back into exactly ``argv``; declared variables through ``env``.

    Raises:
        Refused: the program's name holds ``=`` while variables are set (``env`` would
            take it for one more variable).
    """
    words = [shlex.quote(a) for a in argv]
    if not env:
        return " ".join(words)
    if "=" in argv[0]:
        raise Refused("Refused: a remote program's name cannot contain '=' when env is set.")
    assignments = [shlex.quote(f"{k}={v}") for k, v in env.items()]
    return " ".join(["env", *assignments, *words])


def ssh_argv(
    target: SshTarget, argv: list[str], env: dict[str, str], connect_seconds: float
) -> list[str]:
    """The local ``ssh`` command line that runs ``argv`` on ``target``.

    ``connect_seconds`` (the run's connect timeout, never past its deadline) becomes
    ``ConnectTimeout``, rounded up to whole seconds as ssh takes it.
    """
    timeout = max(1, math.ceil(connect_seconds))
    out = [
        "ssh",
        "-F",
        "none",
        "-T",
        "-a",
        "-x",
        "-o",
        "BatchMode=yes",
        "-o",
        f"ConnectTimeout={timeout}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "ClearAllForwardings=yes",
        "-o",
        "PermitLocalCommand=no",
        "-o",
        "UpdateHostKeys=no",
        "-p",
        str(target.port),
    ]
    if target.user:
        out += ["-l", target.user]
    if target.identity:
        out += ["-o", "IdentitiesOnly=yes", "-i", target.identity]
    if target.known_hosts:
        out += ["-o", f"UserKnownHostsFile={target.known_hosts}"]
    return [*out, "--", target.host, remote_command(argv, env)]
